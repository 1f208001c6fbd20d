/* SPDX-License-Identifier: MIT */
/* broker/config.c - mosquitto.conf parsing driven by one option table (see config_internal.h).
 *
 * The syntax is mosquitto's: one "option value..." per line, a line whose first non-blank
 * character is '#' is a comment, blank lines are ignored, tokens are separated by spaces or
 * tabs. Every error names the file and line. Options that mosquitto knows but Starling does
 * not implement yet are refused by name, so that nobody believes a password file, an ACL or a
 * TLS certificate is in force when it is not. */
#include "broker/config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#include "broker/config_internal.h"
#include "broker/logging.h"
#include "broker/status.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/utf8.h"
#include "net/jwriter.h"

#define MQ_CONFIG_MAX_INCLUDE_DEPTH 8
#define MQ_CONFIG_MAX_TOKENS 8
#define MQTT_MAX_REMAINING_LENGTH 268435455u
/* max_inflight_messages 0 (mosquitto: unlimited) as a window: the whole packet id space */
#define MQ_CONFIG_INFLIGHT_UNLIMITED 65535

_Static_assert(MQ_CONFIG_MAX_LISTENERS <= MQ_SERVER_MAX_LISTENERS,
               "every configured listener must fit in mq_server_opts_t");
_Static_assert(offsetof(mq_config_t, listeners) == 0, "a row's 'seen' of 0 means none");

struct mq_config_parse {
    mq_config_t *cfg;
    const char *file;
    unsigned line;
    char *err;
    size_t errlen;
    int depth;
    mq_listener_conf_t *cur; /* the listener that listener options apply to; NULL = default */
};

static int fail(mq_config_parse_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(mq_config_parse_t *p, const char *fmt, ...)
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

/* --- the option table ---------------------------------------------------------------------- */

static mq_config_set_cb set_expiration;
static mq_config_set_cb set_mount_point, set_listener, set_include_dir, set_log_dest,
    set_log_facility, set_metrics_listener, set_http_dir, set_trusted_proxy;

static const mq_config_keyword_t log_dests[] = {
    {"stdout", MQ_LOGDEST_STDOUT},
    {"stderr", MQ_LOGDEST_STDERR},
    {"syslog", MQ_LOGDEST_SYSLOG},
    {"topic", MQ_LOGDEST_TOPIC},
    {"file", MQ_LOGDEST_FILE},
    {"none", 0},
    {NULL, 0},
};

static const mq_config_keyword_t log_types[] = {
    {"error", MQ_LOG_ERROR},
    {"warning", MQ_LOG_WARN},
    {"notice", MQ_LOG_NOTICE},
    {"information", MQ_LOG_INFO},
    {"subscribe", MQ_LOG_SUBSCRIBE},
    {"unsubscribe", MQ_LOG_UNSUBSCRIBE},
    {"debug", MQ_LOG_DEBUG},
    {"websockets", 0}, /* libwebsockets' own lines in mosquitto: Starling logs WebSocket
                          events as information and notice */
    {"none", 0},
    {"all", MQ_LOG_ALL},
    {NULL, 0},
};

/* mosquitto 2: the minimum version; unset = TLS 1.2 and 1.3 */
static const mq_config_keyword_t fsync_modes[] = {
    {"always", MQ_FSYNC_ALWAYS},
    {"interval", MQ_FSYNC_INTERVAL},
    {"never", MQ_FSYNC_NEVER},
    {NULL, 0},
};

static const mq_config_keyword_t tls_versions[] = {
    {"tlsv1.1", MQ_TLS_VERSION_1_1},
    {"tlsv1.2", MQ_TLS_VERSION_1_2},
    {"tlsv1.3", MQ_TLS_VERSION_1_3},
    {NULL, 0},
};

/* true | false, for a field that also has a third state: not given */
static const mq_config_keyword_t bools[] = {
    {"true", 1},
    {"false", 0},
    {NULL, 0},
};

static const mq_config_keyword_t domains[] = {
    {"ipv4", MQ_SERVER_IPV4},
    {"ipv6", MQ_SERVER_IPV6},
    {NULL, 0},
};

static const mq_config_keyword_t protocols[] = {
    {"mqtt", MQ_SERVER_MQTT},
    {"websockets", MQ_SERVER_WEBSOCKETS},
    {NULL, 0},
};

/* clang-format off */
/* A field of mq_config_t; BOTH_FIELD: a field of the same name in mq_listener_conf_t too
 * (a _Static_assert below checks that the sizes agree). */
#define FIELD(f) .off = offsetof(mq_config_t, f), .size = sizeof(((mq_config_t *)0)->f)
#define BOTH_FIELD(f) FIELD(f), .loff = offsetof(mq_listener_conf_t, f)
/* a field of mq_listener_conf_t only (scope LISTENER) */
#define LFIELD(f) \
    .loff = offsetof(mq_listener_conf_t, f), .size = sizeof(((mq_listener_conf_t *)0)->f)
#define SEEN(f) .seen = offsetof(mq_config_t, f)
#define LSEEN(f) .lseen = offsetof(mq_listener_conf_t, f)
#define RANGE(lo, hi) .min = (lo), .max = (hi)
#define FLAGS(f) .flags = (f)
#define STARLING .origin = MQ_CONFIG_STARLING
#define OPTION(n, k, sc) .name = (n), .kind = MQ_CONFIG_##k, .scope = MQ_CONFIG_##sc
#define FIXED(n, k) OPTION(n, k, GLOBAL), .status = MQ_CONFIG_FIXED, STARLING
/* a mosquitto option that Starling refuses by name: its kind and scope are mosquitto's */
#define REFUSED(n, k, sc) {OPTION(n, k, sc), .status = MQ_CONFIG_REFUSED}

const mq_config_option_t mq_config__options[] = {
    /* listeners */
    {OPTION("listener", SPECIAL, LISTENER), RANGE(1, 65535), FLAGS(MQ_CONFIG_OWN_ARGS),
     .set = set_listener},
    {OPTION("port", UINT, GLOBAL), FIELD(default_listener.port), RANGE(1, 65535), .def = 1883,
     FLAGS(MQ_CONFIG_DEFAULT_LISTENER)},
    {OPTION("bind_address", STRING, GLOBAL), FIELD(default_listener.bind_address),
     FLAGS(MQ_CONFIG_DEFAULT_LISTENER)},
    {OPTION("max_connections", UINT, BOTH), BOTH_FIELD(max_connections), RANGE(0, INT32_MAX),
     FLAGS(MQ_CONFIG_MINUS_ONE)},
    {OPTION("protocol", KEYWORD, LISTENER), LFIELD(protocol), .keywords = protocols},
    /* MQTT 5: a client that sets Request Response Information gets "PREFIX/CLIENT_ID" as
     * Response Information, the root of topics for its responses (off: mosquitto sends none) */
    {OPTION("response_information", STRING, GLOBAL), STARLING, FIELD(response_information)},
    {OPTION("metrics_listener", SPECIAL, GLOBAL), STARLING, FIELD(metrics_port), RANGE(1, 65535),
     FLAGS(MQ_CONFIG_VALUES), .set = set_metrics_listener},
    /* WebSockets listeners (net/ws.h): what applies to a 'protocol websockets' listener */
    {OPTION("http_dir", PATH, LISTENER), LFIELD(http_dir), .set = set_http_dir},
    {OPTION("websockets_headers_size", SIZE, LISTENER), LFIELD(websockets_headers_size),
     RANGE(1, 65535), .def = 1024},
    {OPTION("status_page", BOOL, LISTENER), STARLING, LFIELD(status_page)},
    {OPTION("websockets_trusted_proxy", STRING, LISTENER), STARLING,
     LFIELD(websockets_trusted_proxy), .set = set_trusted_proxy},
    /* libwebsockets' log level in mosquitto; there is no libwebsockets here: accepted so that
     * mosquitto files load, with no effect (no field) */
    {OPTION("websockets_log_level", UINT, GLOBAL), RANGE(0, INT32_MAX)},
    /* clients and sessions */
    {OPTION("max_inflight_messages", UINT, GLOBAL), FIELD(max_inflight_messages), RANGE(0, 65535),
     .def = 20, FLAGS(MQ_CONFIG_MINUS_ONE)},
    {OPTION("max_queued_messages", UINT, GLOBAL), FIELD(max_queued_messages),
     RANGE(0, UINT32_MAX), .def = 1000, FLAGS(MQ_CONFIG_MINUS_ONE)},
    {OPTION("max_queued_bytes", SIZE, GLOBAL), FIELD(max_queued_bytes), RANGE(0, UINT64_MAX / 2),
     FLAGS(MQ_CONFIG_MINUS_ONE)},
    {OPTION("max_inflight_bytes", SIZE, GLOBAL), FIELD(max_inflight_bytes),
     RANGE(0, UINT64_MAX / 2)},
    {OPTION("message_size_limit", SIZE, GLOBAL), FIELD(message_size_limit),
     RANGE(0, MQTT_MAX_REMAINING_LENGTH)},
    {OPTION("max_packet_size", SIZE, GLOBAL), FIELD(max_packet_size),
     RANGE(0, MQTT_MAX_REMAINING_LENGTH + 5), .at_least = 20},
    {OPTION("max_keepalive", UINT, GLOBAL), FIELD(max_keepalive), RANGE(0, 65535), .def = 65535},
    {OPTION("max_qos", UINT, GLOBAL), FIELD(max_qos), RANGE(0, 2), .def = 2},
    {OPTION("retain_available", BOOL, GLOBAL), FIELD(retain_available), .def = true},
    {OPTION("upgrade_outgoing_qos", BOOL, GLOBAL), FIELD(upgrade_outgoing_qos)},
    {OPTION("set_tcp_nodelay", BOOL, GLOBAL), FIELD(set_tcp_nodelay), .def = true},
    {OPTION("connection_messages", BOOL, GLOBAL), FIELD(connection_messages), .def = true},
    /* mosquitto 2 ignores it too: duplicates are always allowed (no field) */
    {OPTION("allow_duplicate_messages", BOOL, GLOBAL)},
    {FIXED("connect_timeout", UINT), FIELD(connect_timeout_s), .def = 10},
    {FIXED("out_high_water", SIZE), FIELD(out_high_water), .def = 256 * 1024},
    /* overload (issue 12): Starling's own, off by default */
    {OPTION("queue_full_timeout", UINT, GLOBAL), STARLING, FIELD(queue_full_timeout),
     RANGE(0, 86400)},
    /* mosquitto's: above this many heap bytes new publishes are refused (net/publish.c) */
    {OPTION("memory_limit", SIZE, GLOBAL), FIELD(memory_limit), RANGE(0, UINT64_MAX / 2)},
    /* the process */
    {OPTION("pid_file", PATH, GLOBAL), FIELD(pid_file)},
    {OPTION("user", STRING, GLOBAL), FIELD(user), .def_str = "mosquitto"},
    {OPTION("workers", UINT, GLOBAL), STARLING, FIELD(workers), RANGE(0, 1024)},
    {OPTION("sys_interval", UINT, GLOBAL), FIELD(sys_interval), RANGE(0, 65535), .def = 10},
    {OPTION("include_dir", PATH, GLOBAL), .set = set_include_dir},
    /* logging */
    {OPTION("log_dest", SPECIAL, GLOBAL), FIELD(log_dest), SEEN(log_dest_set),
     .def = MQ_LOGDEST_STDERR, .keywords = log_dests, FLAGS(MQ_CONFIG_VALUES), .set = set_log_dest},
    {OPTION("log_type", KEYWORD, GLOBAL), FIELD(log_types), SEEN(log_type_set),
     .def = MQ_LOG_DEFAULT, .keywords = log_types, FLAGS(MQ_CONFIG_ACCUMULATE)},
    {OPTION("log_timestamp", BOOL, GLOBAL), FIELD(log_timestamp), .def = true},
    {OPTION("log_timestamp_format", STRING, GLOBAL), FIELD(log_timestamp_format),
     FLAGS(MQ_CONFIG_REST_OF_LINE)},
    {OPTION("log_facility", UINT, GLOBAL), FIELD(log_facility), RANGE(0, 7), .def = LOG_DAEMON,
     .set = set_log_facility},

    /* authentication and authorisation (broker/security.c reads the files, net/auth.h checks);
     * SECURITY rows go to the broker's and the current listener's fields, and
     * per_listener_settings decides which are in force */
    {OPTION("allow_anonymous", BOOL, SECURITY), BOTH_FIELD(allow_anonymous),
     SEEN(allow_anonymous_set), LSEEN(allow_anonymous_set), .def = true},
    {OPTION("allow_zero_length_clientid", BOOL, SECURITY), BOTH_FIELD(allow_zero_length_clientid),
     .def = true},
    {OPTION("auto_id_prefix", STRING, SECURITY), BOTH_FIELD(auto_id_prefix), .def_str = "auto-",
     .max_len = MQ_AUTO_ID_PREFIX_MAX},
    {OPTION("password_file", PATH, SECURITY), BOTH_FIELD(password_file)},
    {OPTION("acl_file", PATH, SECURITY), BOTH_FIELD(acl_file)},
    {OPTION("per_listener_settings", BOOL, GLOBAL), FIELD(per_listener_settings)},
    {OPTION("session_owner_check", KEYWORD, GLOBAL), STARLING, FIELD(session_owner_check),
     .keywords = bools, .def = 2 /* not given: on when a password_file is configured */},
    REFUSED("auth_plugin", PATH, SECURITY),
    {OPTION("auth_opt_", STRING, SECURITY), .status = MQ_CONFIG_REFUSED,
     FLAGS(MQ_CONFIG_PREFIX)},
    REFUSED("plugin", PATH, SECURITY),
    {OPTION("plugin_opt_", STRING, SECURITY), .status = MQ_CONFIG_REFUSED,
     FLAGS(MQ_CONFIG_PREFIX)},
    /* TLS-PSK (net/tls.c): a listener with psk_hint takes PSK clients, keys from psk_file */
    {OPTION("psk_file", PATH, SECURITY), BOTH_FIELD(psk_file)},
    {OPTION("psk_hint", STRING, LISTENER), LFIELD(psk_hint)},
    /* TLS */
    REFUSED("tls_engine", STRING, LISTENER),
    REFUSED("tls_engine_kpass_sha1", STRING, LISTENER),
    REFUSED("tls_keyform", STRING, LISTENER),
    REFUSED("dhparamfile", PATH, LISTENER),
    REFUSED("ocsp_stapling", BOOL, LISTENER),
    /* TLS listeners (net/tls.c): certfile and keyfile make a listener TLS */
    {OPTION("cafile", PATH, LISTENER), LFIELD(cafile)},
    {OPTION("capath", PATH, LISTENER), LFIELD(capath)},
    {OPTION("certfile", PATH, LISTENER), LFIELD(certfile)},
    {OPTION("keyfile", PATH, LISTENER), LFIELD(keyfile)},
    {OPTION("crlfile", PATH, LISTENER), LFIELD(crlfile)},
    {OPTION("ciphers", STRING, LISTENER), LFIELD(ciphers)},
    {OPTION("ciphers_tls1.3", STRING, LISTENER), LFIELD(ciphers_tls13)},
    {OPTION("tls_version", KEYWORD, LISTENER), LFIELD(tls_version), .keywords = tls_versions},
    {OPTION("require_certificate", BOOL, LISTENER), LFIELD(require_certificate)},
    {OPTION("use_identity_as_username", BOOL, LISTENER), LFIELD(use_identity_as_username)},
    {OPTION("use_subject_as_username", BOOL, LISTENER), LFIELD(use_subject_as_username)},
    /* the user name (or the certificate's name above) replaces the client id: net/connect.c */
    {OPTION("use_username_as_clientid", BOOL, LISTENER), LFIELD(use_username_as_clientid)},
    /* listeners of other kinds */
    /* the interface whose addresses the listener binds (net/server.c) */
    {OPTION("bind_interface", STRING, LISTENER), LFIELD(bind_interface)},
    {OPTION("socket_domain", KEYWORD, LISTENER), LFIELD(socket_domain), .keywords = domains},
    /* the prefix its clients' topics are behind (net/client.c mq_client_mount) */
    {OPTION("mount_point", STRING, LISTENER), LFIELD(mount_point), .set = set_mount_point},
    /* MQTT 5: aliases a client may set per connection (mosquitto: per listener, default 10) */
    {OPTION("max_topic_alias", UINT, LISTENER), LFIELD(max_topic_alias), RANGE(0, 65535), .def = 10},
    REFUSED("use_unix_socket", BOOL, LISTENER),
    /* persistence */
    /* persistence (broker/persist.h): retained messages in a snapshot, as mosquitto's */
    {OPTION("persistence", BOOL, GLOBAL), FIELD(persistence)},
    {OPTION("persistence_file", STRING, GLOBAL), FIELD(persistence_file),
     .def_str = "mosquitto.db"},
    {OPTION("persistence_location", PATH, GLOBAL), FIELD(persistence_location)},
    {OPTION("autosave_interval", UINT, GLOBAL), FIELD(autosave_interval), RANGE(0, INT32_MAX),
     .def = 1800},
    {OPTION("autosave_on_changes", BOOL, GLOBAL), FIELD(autosave_on_changes)},
    {OPTION("persistent_client_expiration", SPECIAL, GLOBAL), FIELD(persistent_client_expiration),
     .set = set_expiration},
    {OPTION("queue_qos0_messages", BOOL, GLOBAL), FIELD(queue_qos0_messages)},
    /* Starling's own: when the journal is synced (net/jwriter.h) */
    {OPTION("persistence_fsync", KEYWORD, GLOBAL), STARLING, FIELD(persistence_fsync),
     .keywords = fsync_modes},
    /* Starling's own: journals above this size are folded into a snapshot at once */
    {OPTION("persistence_journal_limit", SIZE, GLOBAL), STARLING, FIELD(persistence_journal_limit),
     RANGE(4096, UINT64_MAX / 2), .def = 256ull << 20},
    /* bridges */
    REFUSED("connection", STRING, BRIDGE),
    REFUSED("address", STRING, BRIDGE),
    REFUSED("addresses", STRING, BRIDGE),
    REFUSED("topic", SPECIAL, BRIDGE),
    REFUSED("bridge_attempt_unsubscribe", BOOL, BRIDGE),
    REFUSED("bridge_bind_address", STRING, BRIDGE),
    REFUSED("bridge_cafile", PATH, BRIDGE),
    REFUSED("bridge_capath", PATH, BRIDGE),
    REFUSED("bridge_certfile", PATH, BRIDGE),
    REFUSED("bridge_identity", STRING, BRIDGE),
    REFUSED("bridge_insecure", BOOL, BRIDGE),
    REFUSED("bridge_keyfile", PATH, BRIDGE),
    REFUSED("bridge_max_packet_size", SIZE, BRIDGE),
    REFUSED("bridge_outgoing_retain", BOOL, BRIDGE),
    REFUSED("bridge_protocol_version", STRING, BRIDGE),
    REFUSED("bridge_psk", STRING, BRIDGE),
    REFUSED("bridge_require_ocsp", BOOL, BRIDGE),
    REFUSED("bridge_tls_version", STRING, BRIDGE),
    REFUSED("bridge_alpn", STRING, BRIDGE),
    REFUSED("cleansession", BOOL, BRIDGE),
    REFUSED("local_cleansession", BOOL, BRIDGE),
    REFUSED("clientid", STRING, BRIDGE),
    REFUSED("local_clientid", STRING, BRIDGE),
    REFUSED("keepalive_interval", UINT, BRIDGE),
    REFUSED("idle_timeout", UINT, BRIDGE),
    REFUSED("local_password", STRING, BRIDGE),
    REFUSED("local_username", STRING, BRIDGE),
    REFUSED("notifications", BOOL, BRIDGE),
    REFUSED("notifications_local_only", BOOL, BRIDGE),
    REFUSED("notification_topic", STRING, BRIDGE),
    REFUSED("remote_clientid", STRING, BRIDGE),
    REFUSED("remote_password", STRING, BRIDGE),
    REFUSED("remote_username", STRING, BRIDGE),
    REFUSED("restart_timeout", SPECIAL, BRIDGE),
    REFUSED("round_robin", BOOL, BRIDGE),
    REFUSED("start_type", STRING, BRIDGE),
    REFUSED("threshold", UINT, BRIDGE),
    REFUSED("try_private", BOOL, BRIDGE),
    /* the rest */
    /* a retained message goes to a new subscriber only while its publisher may still publish
     * it (mosquitto's default, CVE-2018-12546) */
    {OPTION("check_retain_source", BOOL, GLOBAL), FIELD(check_retain_source), .def = true},
    /* deprecated in mosquitto 2.0, still in force there, with a warning: the same */
    {OPTION("clientid_prefixes", STRING, GLOBAL), FIELD(clientid_prefixes)},
    REFUSED("max_queued_bytes_per_client", SIZE, GLOBAL),
    /* gone in mosquitto 2.0, which warns and goes on (a QoS 1/2 message is sent again at a
     * reconnect only, as here): the same, so that 1.x files load */
    {OPTION("retry_interval", UINT, GLOBAL), SEEN(retry_interval_set), RANGE(0, INT32_MAX)},
    REFUSED("websockets_origin", STRING, LISTENER),
};
/* clang-format on */

const size_t mq_config__n_options = MQ_ARRAY_LEN(mq_config__options);

#define SAME_SIZE(f)                                                                               \
    _Static_assert(sizeof(((mq_config_t *)0)->f) == sizeof(((mq_listener_conf_t *)0)->f),          \
                   "BOTH_FIELD(" #f "): one size for both fields")
SAME_SIZE(max_connections);
SAME_SIZE(allow_anonymous);
SAME_SIZE(allow_zero_length_clientid);
SAME_SIZE(auto_id_prefix);
SAME_SIZE(password_file);
SAME_SIZE(acl_file);

/* --- fields and defaults ------------------------------------------------------------------- */

static bool in_config(const mq_config_option_t *o) /* has a field in mq_config_t */
{
    return o->size && o->status != MQ_CONFIG_REFUSED && o->scope != MQ_CONFIG_LISTENER;
}

static bool in_listener(const mq_config_option_t *o) /* has a field in mq_listener_conf_t */
{
    return o->size && o->status != MQ_CONFIG_REFUSED &&
           (o->scope == MQ_CONFIG_LISTENER || o->scope == MQ_CONFIG_BOTH ||
            (o->scope == MQ_CONFIG_SECURITY && o->loff));
}

static bool is_string(const mq_config_option_t *o)
{
    return o->kind == MQ_CONFIG_STRING || o->kind == MQ_CONFIG_PATH;
}

static void store_uint(void *dst, size_t size, uint64_t v)
{
    uint8_t v8 = (uint8_t)v;
    uint16_t v16 = (uint16_t)v;
    uint32_t v32 = (uint32_t)v;
    switch (size) {
    case 1:
        memcpy(dst, &v8, 1);
        break;
    case 2:
        memcpy(dst, &v16, 2);
        break;
    case 4:
        memcpy(dst, &v32, 4);
        break;
    default:
        MQ_ASSERT(size == 8);
        memcpy(dst, &v, 8);
    }
}

uint64_t mq_config__load_uint(const void *src, size_t size)
{
    uint8_t v8;
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    switch (size) {
    case 1:
        memcpy(&v8, src, 1);
        return v8;
    case 2:
        memcpy(&v16, src, 2);
        return v16;
    case 4:
        memcpy(&v32, src, 4);
        return v32;
    default:
        MQ_ASSERT(size == 8);
        memcpy(&v64, src, 8);
        return v64;
    }
}

static char *copy_string(const char *s)
{
    return s ? mq_strndup(s, strlen(s)) : NULL;
}

/* Replaces the owned string at 'dst' with a copy of 's'. */
static void set_string(char **dst, const char *s)
{
    char *copy = copy_string(s);
    mq_free(*dst);
    *dst = copy;
}

static void store_default(void *dst, const mq_config_option_t *o)
{
    if (is_string(o))
        *(char **)dst = copy_string(o->def_str);
    else
        store_uint(dst, o->size, o->def);
}

/* Applies the defaults of the listener-scope options to 'l'. */
static void listener_defaults(mq_listener_conf_t *l)
{
    for (size_t i = 0; i < mq_config__n_options; i++) {
        const mq_config_option_t *o = &mq_config__options[i];
        if (in_listener(o))
            store_default((char *)l + o->loff, o);
    }
}

/* Releases the strings 'l' owns and leaves it empty. */
static void listener_fini(mq_listener_conf_t *l)
{
    mq_free(l->bind_address); /* set by 'listener', not a row's field */
    for (size_t i = 0; i < mq_config__n_options; i++) {
        const mq_config_option_t *o = &mq_config__options[i];
        if (in_listener(o) && is_string(o))
            mq_free(*(char **)((char *)l + o->loff));
    }
    memset(l, 0, sizeof(*l));
}

void mq_config_init(mq_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < mq_config__n_options; i++) {
        const mq_config_option_t *o = &mq_config__options[i];
        if (in_config(o))
            store_default((char *)cfg + o->off, o);
    }
    listener_defaults(&cfg->default_listener);
}

void mq_config_fini(mq_config_t *cfg)
{
    for (size_t i = 0; i < mq_config__n_options; i++) {
        const mq_config_option_t *o = &mq_config__options[i];
        if (in_config(o) && is_string(o)) {
            char **s = (char **)((char *)cfg + o->off);
            mq_free(*s);
            *s = NULL; /* bind_address lives in default_listener, released again below */
        }
    }
    for (unsigned i = 0; i < cfg->n_listeners; i++)
        listener_fini(&cfg->listeners[i]);
    listener_fini(&cfg->default_listener);
    mq_free(cfg->log_file); /* set by the handlers of log_dest and metrics_listener */
    mq_free(cfg->metrics_address);
    memset(cfg, 0, sizeof(*cfg));
}

/* The field a line of 'o' sets: the broker's, the current listener's, or none. */
static void *field_of(mq_config_parse_t *p, const mq_config_option_t *o)
{
    if (o->size == 0)
        return NULL;
    MQ_ASSERT(o->scope != MQ_CONFIG_BRIDGE); /* no bridges yet: no field to point at */
    if (o->scope == MQ_CONFIG_LISTENER || (o->scope == MQ_CONFIG_BOTH && p->cur) ||
        (o->scope == MQ_CONFIG_SECURITY && o->loff)) {
        mq_listener_conf_t *l = p->cur ? p->cur : &p->cfg->default_listener;
        return (char *)l + o->loff;
    }
    return (char *)p->cfg + o->off;
}

/* Marks 'o' as given; returns true on its first line (whose value replaces the default). */
static bool note_seen(mq_config_parse_t *p, const mq_config_option_t *o)
{
    if (!o->seen)
        return false;
    bool *seen = (bool *)((char *)p->cfg + o->seen);
    bool first = !*seen;
    *seen = true;
    return first;
}

/* A SECURITY line was stored in the listener's field 'dst': the broker's field takes the same
 * value (in force without per_listener_settings, wherever the line stands, as in mosquitto),
 * and the listener notes that it was given. */
static void mirror_security(mq_config_parse_t *p, const mq_config_option_t *o, const void *dst)
{
    void *global = (char *)p->cfg + o->off;
    if (is_string(o))
        set_string(global, *(char *const *)dst);
    else
        memcpy(global, dst, o->size);
    if (o->lseen) {
        mq_listener_conf_t *l = p->cur ? p->cur : &p->cfg->default_listener;
        *(bool *)((char *)l + o->lseen) = true;
    }
}

/* --- values -------------------------------------------------------------------------------- */

static int parse_u64(mq_config_parse_t *p, const char *opt, const char *s, uint64_t lo, uint64_t hi,
                     bool minus_one, uint64_t *out)
{
    if (minus_one && lo == 0 && strcmp(s, "-1") == 0) {
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

static int parse_number(mq_config_parse_t *p, const mq_config_option_t *o, const char *s,
                        uint64_t *out)
{
    if (parse_u64(p, o->name, s, o->min, o->max, o->flags & MQ_CONFIG_MINUS_ONE, out) < 0)
        return -1;
    if (*out != 0 && *out < o->at_least)
        return fail(p, "invalid value '%s' for %s: must be at least %llu", s, o->name,
                    (unsigned long long)o->at_least);
    return 0;
}

static int parse_bool(mq_config_parse_t *p, const char *opt, const char *s, bool *out)
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

static const mq_config_keyword_t *find_keyword(const mq_config_keyword_t *k, const char *s)
{
    for (; k->name; k++)
        if (strcmp(k->name, s) == 0)
            return k;
    return NULL;
}

/* Stores a line's value into the field of 'o' according to its kind ('o' has no handler). */
static int set_value(mq_config_parse_t *p, const mq_config_option_t *o, char **tok, int ntok)
{
    void *dst = field_of(p, o);
    bool b = false;
    uint64_t v = 0;
    const mq_config_keyword_t *k;
    char line[256] = "";
    switch (o->kind) {
    case MQ_CONFIG_BOOL:
        if (parse_bool(p, o->name, tok[1], &b) < 0)
            return -1;
        v = b;
        break;
    case MQ_CONFIG_UINT:
    case MQ_CONFIG_SIZE:
        if (parse_number(p, o, tok[1], &v) < 0)
            return -1;
        break;
    case MQ_CONFIG_STRING:
    case MQ_CONFIG_PATH:
        if (!(o->flags & MQ_CONFIG_REST_OF_LINE)) {
            if (o->max_len && strlen(tok[1]) > o->max_len)
                return fail(p, "invalid value for %s: longer than %zu bytes", o->name, o->max_len);
            if (dst)
                set_string(dst, tok[1]);
            break;
        }
        /* e.g. a strftime format, which may hold spaces */
        for (int i = 1; i < ntok; i++) {
            if (i > 1)
                strncat(line, " ", sizeof(line) - strlen(line) - 1);
            strncat(line, tok[i], sizeof(line) - strlen(line) - 1);
        }
        if (dst)
            set_string(dst, line);
        break;
    case MQ_CONFIG_KEYWORD:
        if (!(k = find_keyword(o->keywords, tok[1])))
            return fail(p, "invalid value '%s' for %s", tok[1], o->name);
        v = k->value;
        if (o->flags & MQ_CONFIG_ACCUMULATE) /* the first line replaces the default */
            v |= note_seen(p, o) ? 0 : mq_config__load_uint(dst, o->size);
        break;
    default:
        MQ_ASSERT(o->kind != MQ_CONFIG_SPECIAL); /* a SPECIAL row has a handler */
        return -1;
    }
    if (dst && !is_string(o))
        store_uint(dst, o->size, v);
    if (o->scope == MQ_CONFIG_SECURITY && o->loff)
        mirror_security(p, o, dst);
    note_seen(p, o);
    if (o->flags & MQ_CONFIG_DEFAULT_LISTENER) /* 'port', 'bind_address': mosquitto 1.x style */
        p->cfg->has_default_listener = p->cfg->has_explicit_listener = true;
    return 0;
}

/* --- handlers ------------------------------------------------------------------------------ */

static int set_listener(mq_config_parse_t *p, const mq_config_option_t *o, char **tok, int ntok)
{
    mq_config_t *cfg = p->cfg;
    if (ntok < 2)
        return fail(p, "listener needs a port");
    if (ntok > 3)
        return fail(p, "unexpected '%s' after listener's bind address", tok[3]);
    if (cfg->n_listeners == MQ_CONFIG_MAX_LISTENERS)
        return fail(p, "too many listeners (at most %d)", MQ_CONFIG_MAX_LISTENERS);
    uint64_t port;
    if (parse_u64(p, o->name, tok[1], o->min, o->max, false, &port) < 0)
        return -1;
    for (unsigned i = 0; i < cfg->n_listeners; i++) {
        const char *a = cfg->listeners[i].bind_address, *b = ntok == 3 ? tok[2] : NULL;
        if (cfg->listeners[i].port == port && ((!a && !b) || (a && b && strcmp(a, b) == 0)))
            return fail(p, "duplicate listener %s %s", tok[1], b ? b : "");
    }
    mq_listener_conf_t *l = &cfg->listeners[cfg->n_listeners];
    memset(l, 0, sizeof(*l));
    listener_defaults(l);
    l->port = (uint16_t)port;
    if (ntok == 3)
        set_string(&l->bind_address, tok[2]);
    cfg->n_listeners++;
    cfg->has_explicit_listener = true;
    p->cur = l;
    return 0;
}

static int parse_file_at(mq_config_parse_t *p, const char *path);

static int set_include_dir(mq_config_parse_t *p, const mq_config_option_t *o, char **tok, int ntok)
{
    (void)o;
    (void)ntok; /* one value, checked by apply() */
    const char *dir = tok[1];
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
                mq_config_parse_t sub = *p;
                sub.depth++;
                rc = parse_file_at(&sub, path);
                p->cur = sub.cur;
            }
        }
        free(names[i]); /* scandir's, from libc malloc */
    }
    free(names);
    return rc;
}

static int set_log_dest(mq_config_parse_t *p, const mq_config_option_t *o, char **tok, int ntok)
{
    mq_config_t *cfg = p->cfg;
    const mq_config_keyword_t *k = find_keyword(o->keywords, tok[1]);
    if (!k) {
        if (strcmp(tok[1], "dlt") == 0)
            return fail(p, "log_dest dlt is not supported");
        return fail(p, "invalid value '%s' for log_dest", tok[1]);
    }
    if (k->value == MQ_LOGDEST_FILE) {
        if (ntok < 3)
            return fail(p, "log_dest file needs a path");
        if (ntok > 3)
            return fail(p, "unexpected '%s' after the log file path", tok[3]);
        set_string(&cfg->log_file, tok[2]);
    } else if (ntok > 2) {
        return fail(p, "unexpected '%s' after log_dest %s", tok[2], tok[1]);
    }
    if (note_seen(p, o))
        cfg->log_dest = 0; /* the first log_dest line replaces the default */
    cfg->log_dest |= k->value;
    return 0;
}

static int set_log_facility(mq_config_parse_t *p, const mq_config_option_t *o, char **tok, int ntok)
{
    static const int local[8] = {LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2, LOG_LOCAL3,
                                 LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7};
    (void)ntok; /* one value, checked by apply() */
    uint64_t v;
    if (parse_u64(p, o->name, tok[1], o->min, o->max, false, &v) < 0)
        return -1;
    p->cfg->log_facility = local[v];
    return 0;
}

/* mosquitto's duration: a number and a unit, h(ours) d(ays) w(eeks) m(onths: 30 days)
 * y(ears: 365 days), e.g. "14d". */
static int set_expiration(mq_config_parse_t *p, const mq_config_option_t *o, char **tok, int ntok)
{
    (void)ntok;
    char *end;
    unsigned long long n = strtoull(tok[1], &end, 10);
    static const struct {
        char unit;
        uint32_t s;
    } units[] = {{'h', 3600}, {'d', 86400}, {'w', 604800}, {'m', 2592000}, {'y', 31536000}};
    for (size_t i = 0; end != tok[1] && end[0] && !end[1] && i < MQ_ARRAY_LEN(units); i++) {
        if (end[0] == units[i].unit && n > 0 && n <= UINT32_MAX / units[i].s) {
            p->cfg->persistent_client_expiration = (uint32_t)n * units[i].s;
            return 0;
        }
    }
    return fail(p, "invalid value '%s' for %s: a number and a unit h, d, w, m or y (e.g. 14d)",
                tok[1], o->name);
}

static int set_metrics_listener(mq_config_parse_t *p, const mq_config_option_t *o, char **tok,
                                int ntok)
{
    uint64_t v;
    if (ntok > 3)
        return fail(p, "unexpected '%s' after metrics_listener's address", tok[3]);
    if (parse_u64(p, o->name, tok[1], o->min, o->max, false, &v) < 0)
        return -1;
    p->cfg->metrics_port = (uint16_t)v;
    if (ntok == 3)
        set_string(&p->cfg->metrics_address, tok[2]);
    return 0;
}

/* http_dir must be a directory now (the broker would fail at start): said with its line. */
static int set_http_dir(mq_config_parse_t *p, const mq_config_option_t *o, char **tok, int ntok)
{
    (void)ntok; /* one value, checked by apply() */
    struct stat st;
    if (stat(tok[1], &st) != 0)
        return fail(p, "http_dir %s: %s", tok[1], strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fail(p, "http_dir %s: not a directory", tok[1]);
    set_string(field_of(p, o), tok[1]);
    return 0;
}

/* An address compared with the socket peer's, so a host name cannot work: refused here. */
/* A mount point is a topic name's beginning: no wildcard, UTF-8, no NUL (mosquitto refuses a
 * wildcard with "Invalid mount_point"). */
static int set_mount_point(mq_config_parse_t *p, const mq_config_option_t *o, char **tok, int ntok)
{
    (void)ntok; /* one value, checked by apply() */
    size_t n = strlen(tok[1]);
    if (strpbrk(tok[1], "+#") != NULL)
        return fail(p, "invalid mount_point '%s': it must not contain a wildcard (+ or #)", tok[1]);
    if (n > 65535 || !mq_utf8_is_valid((const uint8_t *)tok[1], n))
        return fail(p, "invalid mount_point: not a topic (UTF-8, at most 65535 bytes)");
    set_string(field_of(p, o), tok[1]);
    return 0;
}

static int set_trusted_proxy(mq_config_parse_t *p, const mq_config_option_t *o, char **tok,
                             int ntok)
{
    (void)ntok; /* one value, checked by apply() */
    unsigned char bin[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, tok[1], bin) != 1 && inet_pton(AF_INET6, tok[1], bin) != 1)
        return fail(p, "websockets_trusted_proxy %s: not an IP address", tok[1]);
    set_string(field_of(p, o), tok[1]);
    return 0;
}

/* --- lines --------------------------------------------------------------------------------- */

static const mq_config_option_t *find_option(const char *name)
{
    for (size_t i = 0; i < mq_config__n_options; i++) {
        const mq_config_option_t *o = &mq_config__options[i];
        if (o->status == MQ_CONFIG_FIXED)
            continue; /* not an option of the file */
        if ((o->flags & MQ_CONFIG_PREFIX) ? strncmp(name, o->name, strlen(o->name)) == 0
                                          : strcmp(name, o->name) == 0)
            return o;
    }
    return NULL;
}

static int apply(mq_config_parse_t *p, char **tok, int ntok)
{
    const char *opt = tok[0];
    const mq_config_option_t *o = find_option(opt);
    if (!o)
        return fail(p, "unknown option '%s'", opt);
    if (o->status == MQ_CONFIG_REFUSED)
        return fail(p,
                    "option '%s' is a mosquitto option that Starling does not implement yet; "
                    "remove it (refusing rather than ignoring it)",
                    opt);
    if (!(o->flags & MQ_CONFIG_OWN_ARGS) && ntok < 2)
        return fail(p, "option '%s' needs a value", opt);
    if (ntok > 2 && !(o->flags & (MQ_CONFIG_OWN_ARGS | MQ_CONFIG_VALUES | MQ_CONFIG_REST_OF_LINE)))
        return fail(p, "unexpected '%s' after the value of %s", tok[2], opt);
    return o->set ? o->set(p, o, tok, ntok) : set_value(p, o, tok, ntok);
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

static int parse_line(mq_config_parse_t *p, char *line)
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

static int parse_text(mq_config_parse_t *p, const char *text)
{
    const char *s = text;
    p->line = 0;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        p->line++;
        char *line = mq_alloc(len + 1);
        memcpy(line, s, len);
        line[len] = '\0';
        int rc = parse_line(p, line);
        mq_free(line);
        if (rc < 0)
            return -1;
        s += len;
        if (*s == '\n')
            s++;
    }
    return 0;
}

static int parse_file_at(mq_config_parse_t *p, const char *path)
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
    mq_config_parse_t p = {.cfg = cfg, .file = path, .err = err, .errlen = errlen};
    if (cfg->n_listeners)
        p.cur = &cfg->listeners[cfg->n_listeners - 1];
    return parse_file_at(&p, path);
}

int mq_config_parse_string(mq_config_t *cfg, const char *name, const char *text, char *err,
                           size_t errlen)
{
    mq_config_parse_t p = {.cfg = cfg, .file = name, .err = err, .errlen = errlen};
    if (cfg->n_listeners)
        p.cur = &cfg->listeners[cfg->n_listeners - 1];
    return parse_text(&p, text);
}

static int finish_listeners(mq_config_t *cfg, uint16_t port_override, char *err, size_t errlen);

/* What mosquitto checks of a listener's TLS options before it starts. */
static int check_tls(const mq_listener_conf_t *l, char *err, size_t errlen)
{
    if ((l->certfile == NULL) != (l->keyfile == NULL)) {
        snprintf(err, errlen,
                 "listener %u: both certfile and keyfile must be provided if one of them is set",
                 l->port);
        return -1;
    }
    if (l->certfile && l->require_certificate && !l->cafile && !l->capath) {
        snprintf(err, errlen, "listener %u: require_certificate needs cafile or capath", l->port);
        return -1;
    }
    return 0;
}

int mq_config_finish(mq_config_t *cfg, uint16_t port_override, char *err, size_t errlen)
{
    if (finish_listeners(cfg, port_override, err, errlen) < 0)
        return -1;
    for (unsigned i = 0; i < cfg->n_listeners; i++)
        if (check_tls(&cfg->listeners[i], err, errlen) < 0)
            return -1;
    return 0;
}

/* Adds the default listener where mosquitto would. */
static int finish_listeners(mq_config_t *cfg, uint16_t port_override, char *err, size_t errlen)
{
    if (!cfg->allow_anonymous_set)
        cfg->allow_anonymous = !cfg->has_explicit_listener; /* mosquitto 2's local-only mode */
    for (unsigned i = 0; i < cfg->n_listeners; i++)
        if (!cfg->listeners[i].allow_anonymous_set)
            cfg->listeners[i].allow_anonymous = !cfg->has_explicit_listener;
    if (!cfg->default_listener.allow_anonymous_set)
        cfg->default_listener.allow_anonymous = !cfg->has_explicit_listener;

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
    memset(&cfg->default_listener, 0, sizeof(cfg->default_listener)); /* moved into 'l' */
    if (port_override)
        l.port = port_override;
    if (!l.max_connections)
        l.max_connections = cfg->max_connections;
    l.loopback = local_only && !l.bind_address; /* 127.0.0.1 and ::1, as mosquitto 2 */
    for (unsigned i = 0; i < cfg->n_listeners; i++) {
        const char *a = cfg->listeners[i].bind_address, *b = l.bind_address;
        if (cfg->listeners[i].port == l.port && ((!a && !b) || (a && b && strcmp(a, b) == 0))) {
            listener_fini(&l); /* the same socket is already configured */
            return 0;
        }
    }
    /* the default listener comes first, as in mosquitto */
    memmove(&cfg->listeners[1], &cfg->listeners[0], cfg->n_listeners * sizeof(cfg->listeners[0]));
    cfg->listeners[0] = l;
    cfg->n_listeners++;
    return 0;
}

/* The WebSocket options of listener 'l' for the engine. */
static void ws_listener_opts(const mq_config_t *cfg, const mq_listener_conf_t *l,
                             mq_server_listener_t *o)
{
    o->protocol = l->protocol;
    o->http_dir = l->http_dir;
    o->ws_headers_size = l->websockets_headers_size;
    o->ws_max_frame = cfg->max_packet_size; /* a frame larger than a packet is refused */
    o->ws_trusted_proxy = l->websockets_trusted_proxy;
    if (l->status_page) { /* bundled into the binary at build time (broker/status.h) */
        o->status_page = mq_status_page;
        o->status_page_len = mq_status_page_len;
    }
}

/* The TLS options of a listener, borrowed. */
static mq_server_tls_t server_tls(const mq_listener_conf_t *l)
{
    return (mq_server_tls_t){.cafile = l->cafile,
                             .capath = l->capath,
                             .certfile = l->certfile,
                             .keyfile = l->keyfile,
                             .crlfile = l->crlfile,
                             .ciphers = l->ciphers,
                             .ciphers_tls13 = l->ciphers_tls13,
                             .tls_version = l->tls_version,
                             .require_certificate = l->require_certificate,
                             .use_identity_as_username = l->use_identity_as_username,
                             .use_subject_as_username = l->use_subject_as_username,
                             .psk_hint = l->psk_hint};
}

void mq_config_server_opts(const mq_config_t *cfg, mq_server_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    bool per = cfg->per_listener_settings;
    bool any_passwords = false;
    for (unsigned i = 0; i < cfg->n_listeners; i++) {
        const mq_listener_conf_t *l = &cfg->listeners[i];
        o->listeners[i].bind_address = l->bind_address;
        o->listeners[i].bind_interface = l->bind_interface;
        o->listeners[i].loopback = l->loopback;
        o->listeners[i].mount_point = l->mount_point;
        o->listeners[i].domain = l->socket_domain;
        o->listeners[i].port = l->port;
        o->listeners[i].max_connections = l->max_connections;
        o->listeners[i].allow_anonymous = per ? l->allow_anonymous : cfg->allow_anonymous;
        o->listeners[i].allow_zero_length_clientid =
            per ? l->allow_zero_length_clientid : cfg->allow_zero_length_clientid;
        o->listeners[i].auto_id_prefix = per ? l->auto_id_prefix : cfg->auto_id_prefix;
        o->listeners[i].auth_domain = (uint8_t)(per ? i : 0);
        any_passwords |= (per ? l->password_file : cfg->password_file) != NULL;
        o->listeners[i].max_topic_alias = l->max_topic_alias;
        o->listeners[i].use_username_as_clientid = l->use_username_as_clientid;
        ws_listener_opts(cfg, &cfg->listeners[i], &o->listeners[i]);
        o->listeners[i].tls = server_tls(&cfg->listeners[i]);
        o->listeners[i].tls.psk_file = per ? l->psk_file : cfg->psk_file;
    }
    o->n_listeners = cfg->n_listeners;
    o->workers = cfg->workers;
    o->max_connections = cfg->max_connections;
    o->session_owner_check =
        cfg->session_owner_check == 2 ? any_passwords : cfg->session_owner_check != 0;
    o->max_keepalive = cfg->max_keepalive;
    o->persistent_client_expiration = cfg->persistent_client_expiration;
    o->response_information = cfg->response_information;
    o->clientid_prefixes = cfg->clientid_prefixes;
    o->max_qos = cfg->max_qos;
    o->retain_available = cfg->retain_available;
    o->check_retain_source = cfg->check_retain_source;
    o->upgrade_outgoing_qos = cfg->upgrade_outgoing_qos;
    o->set_tcp_nodelay = cfg->set_tcp_nodelay;
    o->message_size_limit = cfg->message_size_limit;
    o->max_packet_size = cfg->max_packet_size;
    o->connect_timeout_s = cfg->connect_timeout_s;
    o->limits.max_inflight =
        cfg->max_inflight_messages ? cfg->max_inflight_messages : MQ_CONFIG_INFLIGHT_UNLIMITED;
    o->limits.max_queued = cfg->max_queued_messages;
    o->limits.max_queued_bytes = cfg->max_queued_bytes;
    o->limits.max_inflight_bytes = cfg->max_inflight_bytes;
    o->limits.out_high_water = cfg->out_high_water;
    o->limits.queue_qos0 = cfg->queue_qos0_messages;
    o->connection_messages = cfg->connection_messages;
    o->queue_full_timeout_s = cfg->queue_full_timeout;
    o->memory_limit = cfg->memory_limit;
    o->persistence_fsync = cfg->persistence_fsync;
}

unsigned mq_config_security_domains(const mq_config_t *cfg)
{
    return cfg->per_listener_settings && cfg->n_listeners > 0 ? cfg->n_listeners : 1;
}

void mq_config_security_files(const mq_config_t *cfg, unsigned d, const char **password_file,
                              const char **acl_file)
{
    if (cfg->per_listener_settings && d < cfg->n_listeners) {
        *password_file = cfg->listeners[d].password_file;
        *acl_file = cfg->listeners[d].acl_file;
    } else {
        *password_file = cfg->password_file;
        *acl_file = cfg->acl_file;
    }
}
