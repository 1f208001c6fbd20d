/* SPDX-License-Identifier: MIT */
/* broker/config.c - mosquitto.conf parsing (see config.h).
 *
 * The syntax is mosquitto's: one "option value..." per line, a line whose first non-blank
 * character is '#' is a comment, blank lines are ignored, tokens are separated by spaces or
 * tabs. Every error names the file and line. Options that mosquitto knows but Starling does
 * not implement yet are refused by name, so that nobody believes a password file, an ACL or a
 * TLS certificate is in force when it is not. */
#include "broker/config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "broker/logging.h"
#include "core/log.h"

#define MQ_CONFIG_MAX_INCLUDE_DEPTH 8
#define MQ_CONFIG_MAX_TOKENS 8
#define MQTT_MAX_REMAINING_LENGTH 268435455u

typedef struct parse_ctx {
    mq_config_t *cfg;
    const char *file;
    unsigned line;
    char *err;
    size_t errlen;
    int depth;
    mq_listener_conf_t *cur; /* the listener that listener options apply to; NULL = default */
} parse_ctx_t;

static int fail(parse_ctx_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(parse_ctx_t *p, const char *fmt, ...)
{
    int n = snprintf(p->err, p->errlen, "%s:%u: ", p->file, p->line);
    if (n < 0 || (size_t)n >= p->errlen)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

void mq_config_init(mq_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->allow_anonymous = true;
    cfg->allow_zero_length_clientid = true;
    cfg->auto_id_prefix = strdup("auto-");
    cfg->max_inflight_messages = 20;
    cfg->max_queued_messages = 1000;
    cfg->max_keepalive = 65535;
    cfg->max_qos = 2;
    cfg->retain_available = true;
    cfg->set_tcp_nodelay = true;
    cfg->user = strdup("mosquitto");
    cfg->sys_interval = 10;
    cfg->connection_messages = true;
    cfg->log_dest = MQ_LOGDEST_STDERR;
    cfg->log_types = MQ_LOG_DEFAULT;
    cfg->log_timestamp = true;
    cfg->log_facility = LOG_DAEMON;
}

void mq_config_fini(mq_config_t *cfg)
{
    for (unsigned i = 0; i < cfg->n_listeners; i++)
        free(cfg->listeners[i].bind_address);
    free(cfg->default_listener.bind_address);
    free(cfg->auto_id_prefix);
    free(cfg->pid_file);
    free(cfg->user);
    free(cfg->log_file);
    free(cfg->metrics_address);
    free(cfg->log_timestamp_format);
    memset(cfg, 0, sizeof(*cfg));
}

/* --- values -------------------------------------------------------------------------------- */

/* The options where mosquitto takes -1 for "no limit" (stored as 0). */
static bool is_counting_limit(const char *opt)
{
    return strcmp(opt, "max_connections") == 0 || strcmp(opt, "max_queued_messages") == 0 ||
           strcmp(opt, "max_queued_bytes") == 0 || strcmp(opt, "max_inflight_messages") == 0;
}

static int parse_u64(parse_ctx_t *p, const char *opt, const char *s, uint64_t lo, uint64_t hi,
                     uint64_t *out)
{
    if (strcmp(s, "-1") == 0 && lo == 0 && is_counting_limit(opt)) {
        /* mosquitto spells "unlimited" as -1 for the counting limits */
        *out = 0;
        return 0;
    }
    if (*s < '0' || *s > '9')
        return fail(p, "invalid value '%s' for %s: expected a number from %llu to %llu", s, opt,
                    (unsigned long long)lo, (unsigned long long)hi);
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v < lo || v > hi)
        return fail(p, "invalid value '%s' for %s: expected a number from %llu to %llu", s, opt,
                    (unsigned long long)lo, (unsigned long long)hi);
    *out = v;
    return 0;
}

static int parse_bool(parse_ctx_t *p, const char *opt, const char *s, bool *out)
{
    if (strcmp(s, "true") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "false") == 0) {
        *out = false;
        return 0;
    }
    return fail(p, "invalid value '%s' for %s: expected true or false", s, opt);
}

static int set_string(parse_ctx_t *p, char **dst, const char *s)
{
    char *copy = strdup(s);
    if (!copy)
        return fail(p, "out of memory");
    free(*dst);
    *dst = copy;
    return 0;
}

/* --- options ------------------------------------------------------------------------------- */

/* mosquitto 2.0 options that Starling refuses until it implements them. Each entry says why
 * refusing matters; security options must never be ignored silently. */
static const char *const unsupported[] = {
    /* authentication and authorisation */
    "password_file",
    "acl_file",
    "auth_plugin",
    "auth_opt_",
    "plugin",
    "plugin_opt_",
    "psk_file",
    "psk_hint",
    "use_identity_as_username",
    "use_subject_as_username",
    "use_username_as_clientid",
    "per_listener_settings",
    /* TLS */
    "cafile",
    "capath",
    "certfile",
    "keyfile",
    "crlfile",
    "ciphers",
    "ciphers_tls1.3",
    "tls_version",
    "tls_engine",
    "tls_engine_kpass_sha1",
    "tls_keyform",
    "require_certificate",
    "dhparamfile",
    "ocsp_stapling",
    /* listeners of other kinds */
    "bind_interface",
    "socket_domain",
    "http_dir",
    "websockets_log_level",
    "websockets_headers_size",
    "mount_point",
    "max_topic_alias",
    "use_unix_socket",
    /* persistence */
    "persistence",
    "persistence_file",
    "persistence_location",
    "autosave_interval",
    "autosave_on_changes",
    "persistent_client_expiration",
    "queue_qos0_messages",
    /* bridges */
    "connection",
    "address",
    "addresses",
    "topic",
    "bridge_attempt_unsubscribe",
    "bridge_bind_address",
    "bridge_cafile",
    "bridge_capath",
    "bridge_certfile",
    "bridge_identity",
    "bridge_insecure",
    "bridge_keyfile",
    "bridge_max_packet_size",
    "bridge_outgoing_retain",
    "bridge_protocol_version",
    "bridge_psk",
    "bridge_require_ocsp",
    "bridge_tls_version",
    "bridge_alpn",
    "cleansession",
    "local_cleansession",
    "clientid",
    "local_clientid",
    "keepalive_interval",
    "idle_timeout",
    "local_password",
    "local_username",
    "notifications",
    "notifications_local_only",
    "notification_topic",
    "remote_clientid",
    "remote_password",
    "remote_username",
    "restart_timeout",
    "round_robin",
    "start_type",
    "threshold",
    "try_private",
    /* the rest */
    "memory_limit",
    "check_retain_source",
    "clientid_prefixes",
    "max_queued_bytes_per_client",
    "retry_interval",
    "websockets_origin",
};

static bool is_unsupported(const char *opt)
{
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        const char *u = unsupported[i];
        size_t n = strlen(u);
        if (u[n - 1] == '_' ? strncmp(opt, u, n) == 0 : strcmp(opt, u) == 0)
            return true;
    }
    return false;
}

static int parse_file_at(parse_ctx_t *p, const char *path);

static int do_include_dir(parse_ctx_t *p, const char *dir)
{
    if (p->depth >= MQ_CONFIG_MAX_INCLUDE_DEPTH)
        return fail(p, "include_dir nested more than %d deep", MQ_CONFIG_MAX_INCLUDE_DEPTH);
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort); /* mosquitto reads them in sorted order */
    if (n < 0)
        return fail(p, "include_dir %s: %s", dir, strerror(errno));
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        size_t len = strlen(name);
        if (rc == 0 && len > 5 && strcmp(name + len - 5, ".conf") == 0) {
            char path[PATH_MAX];
            if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
                rc = fail(p, "include_dir %s: path too long", dir);
            } else {
                parse_ctx_t sub = *p;
                sub.depth++;
                rc = parse_file_at(&sub, path);
                p->cur = sub.cur;
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static int add_listener(parse_ctx_t *p, char **tok, int ntok)
{
    mq_config_t *cfg = p->cfg;
    if (ntok < 2)
        return fail(p, "listener needs a port");
    if (ntok > 3)
        return fail(p, "unexpected '%s' after listener's bind address", tok[3]);
    if (cfg->n_listeners == MQ_CONFIG_MAX_LISTENERS)
        return fail(p, "too many listeners (at most %d)", MQ_CONFIG_MAX_LISTENERS);
    uint64_t port;
    if (parse_u64(p, "listener", tok[1], 1, 65535, &port) < 0)
        return -1;
    for (unsigned i = 0; i < cfg->n_listeners; i++) {
        const char *a = cfg->listeners[i].bind_address, *b = ntok == 3 ? tok[2] : NULL;
        if (cfg->listeners[i].port == port && ((!a && !b) || (a && b && strcmp(a, b) == 0)))
            return fail(p, "duplicate listener %s %s", tok[1], b ? b : "");
    }
    mq_listener_conf_t *l = &cfg->listeners[cfg->n_listeners];
    memset(l, 0, sizeof(*l));
    l->port = (uint16_t)port;
    if (ntok == 3 && set_string(p, &l->bind_address, tok[2]) < 0)
        return -1;
    cfg->n_listeners++;
    cfg->has_explicit_listener = true;
    p->cur = l;
    return 0;
}

static int parse_log_dest(parse_ctx_t *p, char **tok, int ntok)
{
    mq_config_t *cfg = p->cfg;
    static const struct {
        const char *name;
        unsigned bit;
    } dests[] = {
        {"stdout", MQ_LOGDEST_STDOUT}, {"stderr", MQ_LOGDEST_STDERR}, {"syslog", MQ_LOGDEST_SYSLOG},
        {"topic", MQ_LOGDEST_TOPIC},   {"file", MQ_LOGDEST_FILE},     {"none", 0},
    };
    for (size_t i = 0; i < sizeof(dests) / sizeof(dests[0]); i++) {
        if (strcmp(tok[1], dests[i].name) != 0)
            continue;
        if (dests[i].bit == MQ_LOGDEST_FILE) {
            if (ntok < 3)
                return fail(p, "log_dest file needs a path");
            if (ntok > 3)
                return fail(p, "unexpected '%s' after the log file path", tok[3]);
            if (set_string(p, &cfg->log_file, tok[2]) < 0)
                return -1;
        } else if (ntok > 2) {
            return fail(p, "unexpected '%s' after log_dest %s", tok[2], tok[1]);
        }
        if (!cfg->log_dest_set)
            cfg->log_dest = 0; /* the first log_dest line replaces the default */
        cfg->log_dest_set = true;
        cfg->log_dest |= dests[i].bit;
        return 0;
    }
    if (strcmp(tok[1], "dlt") == 0)
        return fail(p, "log_dest dlt is not supported");
    return fail(p, "invalid value '%s' for log_dest", tok[1]);
}

static int apply(parse_ctx_t *p, char **tok, int ntok)
{
    mq_config_t *cfg = p->cfg;
    const char *opt = tok[0];
    const char *val = ntok > 1 ? tok[1] : NULL;
    uint64_t v;

    if (strcmp(opt, "listener") == 0)
        return add_listener(p, tok, ntok);

    if (is_unsupported(opt))
        return fail(p,
                    "option '%s' is a mosquitto option that Starling does not implement yet; "
                    "remove it (refusing rather than ignoring it)",
                    opt);

    /* every remaining option takes exactly one value */
    static const char *const known[] = {
        "port",
        "bind_address",
        "max_connections",
        "allow_anonymous",
        "allow_zero_length_clientid",
        "auto_id_prefix",
        "max_inflight_messages",
        "max_queued_messages",
        "max_queued_bytes",
        "message_size_limit",
        "max_packet_size",
        "max_keepalive",
        "max_qos",
        "retain_available",
        "upgrade_outgoing_qos",
        "set_tcp_nodelay",
        "pid_file",
        "user",
        "workers",
        "sys_interval",
        "connection_messages",
        "log_type",
        "include_dir",
        "protocol",
        "allow_duplicate_messages",
        "log_dest",
        "log_timestamp",
        "log_timestamp_format",
        "log_facility",
        "metrics_listener",
    };
    bool is_known = false;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        is_known = is_known || strcmp(opt, known[i]) == 0;
    if (!is_known)
        return fail(p, "unknown option '%s'", opt);
    if (!val)
        return fail(p, "option '%s' needs a value", opt);
    if (strcmp(opt, "log_dest") == 0)
        return parse_log_dest(p, tok, ntok);
    if (strcmp(opt, "metrics_listener") == 0) {
        if (ntok > 3)
            return fail(p, "unexpected '%s' after metrics_listener's address", tok[3]);
        if (parse_u64(p, opt, val, 1, 65535, &v) < 0)
            return -1;
        cfg->metrics_port = (uint16_t)v;
        return ntok == 3 ? set_string(p, &cfg->metrics_address, tok[2]) : 0;
    }
    if (strcmp(opt, "log_timestamp_format") == 0) {
        /* a strftime format may hold spaces: the value is the rest of the line */
        char fmt[256] = "";
        for (int i = 1; i < ntok; i++) {
            if (i > 1)
                strncat(fmt, " ", sizeof(fmt) - strlen(fmt) - 1);
            strncat(fmt, tok[i], sizeof(fmt) - strlen(fmt) - 1);
        }
        return set_string(p, &cfg->log_timestamp_format, fmt);
    }
    if (ntok > 2)
        return fail(p, "unexpected '%s' after the value of %s", tok[2], opt);

    if (strcmp(opt, "include_dir") == 0)
        return do_include_dir(p, val);
    if (strcmp(opt, "port") == 0) {
        /* mosquitto 1.x style: the default listener */
        if (parse_u64(p, opt, val, 1, 65535, &v) < 0)
            return -1;
        cfg->default_listener.port = (uint16_t)v;
        cfg->has_default_listener = true;
        cfg->has_explicit_listener = true;
        return 0;
    }
    if (strcmp(opt, "bind_address") == 0) {
        cfg->has_default_listener = true;
        cfg->has_explicit_listener = true;
        return set_string(p, &cfg->default_listener.bind_address, val);
    }
    if (strcmp(opt, "protocol") == 0) {
        if (strcmp(val, "mqtt") != 0)
            return fail(p, "protocol %s is not supported yet (only mqtt)", val);
        return 0;
    }
    if (strcmp(opt, "max_connections") == 0) {
        if (parse_u64(p, opt, val, 0, INT32_MAX, &v) < 0)
            return -1;
        /* after a 'listener' line it is that listener's; before, the whole broker's */
        if (p->cur)
            p->cur->max_connections = (uint32_t)v;
        else
            cfg->max_connections = (uint32_t)v;
        return 0;
    }
    if (strcmp(opt, "allow_anonymous") == 0) {
        cfg->allow_anonymous_set = true;
        return parse_bool(p, opt, val, &cfg->allow_anonymous);
    }
    if (strcmp(opt, "allow_zero_length_clientid") == 0)
        return parse_bool(p, opt, val, &cfg->allow_zero_length_clientid);
    if (strcmp(opt, "auto_id_prefix") == 0)
        return set_string(p, &cfg->auto_id_prefix, val);
    if (strcmp(opt, "max_inflight_messages") == 0) {
        if (parse_u64(p, opt, val, 0, 65535, &v) < 0)
            return -1;
        cfg->max_inflight_messages = (uint16_t)v;
        return 0;
    }
    if (strcmp(opt, "max_queued_messages") == 0) {
        if (parse_u64(p, opt, val, 0, UINT32_MAX, &v) < 0)
            return -1;
        cfg->max_queued_messages = (uint32_t)v;
        return 0;
    }
    if (strcmp(opt, "max_queued_bytes") == 0)
        return parse_u64(p, opt, val, 0, UINT64_MAX / 2, &cfg->max_queued_bytes);
    if (strcmp(opt, "message_size_limit") == 0) {
        if (parse_u64(p, opt, val, 0, MQTT_MAX_REMAINING_LENGTH, &v) < 0)
            return -1;
        cfg->message_size_limit = (uint32_t)v;
        return 0;
    }
    if (strcmp(opt, "max_packet_size") == 0) {
        if (parse_u64(p, opt, val, 0, MQTT_MAX_REMAINING_LENGTH + 5, &v) < 0)
            return -1;
        if (v != 0 && v < 20)
            return fail(p, "invalid value '%s' for max_packet_size: must be at least 20", val);
        cfg->max_packet_size = (uint32_t)v;
        return 0;
    }
    if (strcmp(opt, "max_keepalive") == 0) {
        if (parse_u64(p, opt, val, 0, 65535, &v) < 0)
            return -1;
        cfg->max_keepalive = (uint16_t)v;
        return 0;
    }
    if (strcmp(opt, "max_qos") == 0) {
        if (parse_u64(p, opt, val, 0, 2, &v) < 0)
            return -1;
        cfg->max_qos = (uint8_t)v;
        return 0;
    }
    if (strcmp(opt, "retain_available") == 0)
        return parse_bool(p, opt, val, &cfg->retain_available);
    if (strcmp(opt, "upgrade_outgoing_qos") == 0)
        return parse_bool(p, opt, val, &cfg->upgrade_outgoing_qos);
    if (strcmp(opt, "set_tcp_nodelay") == 0)
        return parse_bool(p, opt, val, &cfg->set_tcp_nodelay);
    if (strcmp(opt, "pid_file") == 0)
        return set_string(p, &cfg->pid_file, val);
    if (strcmp(opt, "user") == 0)
        return set_string(p, &cfg->user, val);
    if (strcmp(opt, "workers") == 0) {
        if (parse_u64(p, opt, val, 0, 1024, &v) < 0)
            return -1;
        cfg->workers = (unsigned)v;
        return 0;
    }
    if (strcmp(opt, "sys_interval") == 0) {
        if (parse_u64(p, opt, val, 0, 65535, &v) < 0)
            return -1;
        cfg->sys_interval = (uint32_t)v;
        return 0;
    }
    if (strcmp(opt, "connection_messages") == 0)
        return parse_bool(p, opt, val, &cfg->connection_messages);
    if (strcmp(opt, "log_type") == 0) {
        static const struct {
            const char *name;
            unsigned bits;
        } types[] = {
            {"error", MQ_LOG_ERROR},
            {"warning", MQ_LOG_WARN},
            {"notice", MQ_LOG_NOTICE},
            {"information", MQ_LOG_INFO},
            {"subscribe", MQ_LOG_SUBSCRIBE},
            {"unsubscribe", MQ_LOG_UNSUBSCRIBE},
            {"debug", MQ_LOG_DEBUG},
            {"websockets", 0},
            {"none", 0},
            {"all", MQ_LOG_ALL},
        };
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
            if (strcmp(val, types[i].name) == 0) {
                if (!cfg->log_type_set)
                    cfg->log_types = 0; /* the first log_type line replaces the default */
                cfg->log_type_set = true;
                cfg->log_types |= types[i].bits;
                return 0;
            }
        }
        return fail(p, "invalid value '%s' for log_type", val);
    }
    if (strcmp(opt, "log_timestamp") == 0)
        return parse_bool(p, opt, val, &cfg->log_timestamp);
    if (strcmp(opt, "log_facility") == 0) {
        static const int local[8] = {LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3,
                                     LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7};
        if (parse_u64(p, opt, val, 0, 7, &v) < 0)
            return -1;
        cfg->log_facility = local[v];
        return 0;
    }
    if (strcmp(opt, "allow_duplicate_messages") == 0) {
        bool ignored; /* mosquitto 2 ignores it too: duplicates are always allowed */
        return parse_bool(p, opt, val, &ignored);
    }
    return fail(p, "unknown option '%s'", opt); /* not reached: 'known' lists them all */
}

/* Splits 'line' in place at blanks; returns the number of tokens or -1 when too many. */
static int tokenize(char *line, char **tok)
{
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == MQ_CONFIG_MAX_TOKENS)
            return -1;
        tok[n++] = t;
    }
    return n;
}

static int parse_line(parse_ctx_t *p, char *line)
{
    char *s = line;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '#' || *s == '\0' || *s == '\n' || *s == '\r')
        return 0;
    char *tok[MQ_CONFIG_MAX_TOKENS];
    int n = tokenize(s, tok);
    if (n < 0)
        return fail(p, "too many values on one line");
    if (n == 0)
        return 0;
    return apply(p, tok, n);
}

static int parse_text(parse_ctx_t *p, const char *text)
{
    const char *s = text;
    p->line = 0;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        p->line++;
        char *line = malloc(len + 1);
        if (!line)
            return fail(p, "out of memory");
        memcpy(line, s, len);
        line[len] = '\0';
        int rc = parse_line(p, line);
        free(line);
        if (rc < 0)
            return -1;
        s += len;
        if (*s == '\n')
            s++;
    }
    return 0;
}

static int parse_file_at(parse_ctx_t *p, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(p->err, p->errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    p->file = path;
    p->line = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        p->line++;
        if (memchr(line, '\0', (size_t)n)) {
            rc = fail(p, "NUL byte in line");
            break;
        }
        rc = parse_line(p, line);
    }
    if (rc == 0 && ferror(f))
        rc = fail(p, "read error: %s", strerror(errno));
    free(line);
    fclose(f);
    return rc;
}

int mq_config_parse_file(mq_config_t *cfg, const char *path, char *err, size_t errlen)
{
    parse_ctx_t p = {.cfg = cfg, .file = path, .err = err, .errlen = errlen};
    if (cfg->n_listeners)
        p.cur = &cfg->listeners[cfg->n_listeners - 1];
    return parse_file_at(&p, path);
}

int mq_config_parse_string(mq_config_t *cfg, const char *name, const char *text, char *err,
                           size_t errlen)
{
    parse_ctx_t p = {.cfg = cfg, .file = name, .err = err, .errlen = errlen};
    if (cfg->n_listeners)
        p.cur = &cfg->listeners[cfg->n_listeners - 1];
    return parse_text(&p, text);
}

int mq_config_finish(mq_config_t *cfg, uint16_t port_override, char *err, size_t errlen)
{
    if (!cfg->allow_anonymous_set)
        cfg->allow_anonymous = !cfg->has_explicit_listener; /* mosquitto 2's local-only mode */

    bool need_default = cfg->has_default_listener || !cfg->has_explicit_listener;
    bool local_only = !cfg->has_explicit_listener;
    if (port_override && !need_default)
        need_default = true; /* -p with listeners configured: one more listener */
    if (!need_default)
        return 0;
    if (cfg->n_listeners == MQ_CONFIG_MAX_LISTENERS) {
        snprintf(err, errlen, "too many listeners (at most %d)", MQ_CONFIG_MAX_LISTENERS);
        return -1;
    }
    mq_listener_conf_t l = cfg->default_listener;
    cfg->default_listener.bind_address = NULL; /* moved */
    if (port_override)
        l.port = port_override;
    if (l.port == 0)
        l.port = 1883;
    if (!l.max_connections)
        l.max_connections = cfg->max_connections;
    if (local_only && !l.bind_address && !(l.bind_address = strdup("127.0.0.1"))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (unsigned i = 0; i < cfg->n_listeners; i++) {
        const char *a = cfg->listeners[i].bind_address, *b = l.bind_address;
        if (cfg->listeners[i].port == l.port && ((!a && !b) || (a && b && strcmp(a, b) == 0))) {
            free(l.bind_address); /* the same socket is already configured */
            return 0;
        }
    }
    /* the default listener comes first, as in mosquitto */
    memmove(&cfg->listeners[1], &cfg->listeners[0], cfg->n_listeners * sizeof(cfg->listeners[0]));
    cfg->listeners[0] = l;
    cfg->n_listeners++;
    return 0;
}
