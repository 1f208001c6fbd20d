/* SPDX-License-Identifier: MIT */
/* tests/unit/broker/test_config.c - mosquitto.conf parsing, defaults and errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/config.h"
#include "broker/config_internal.h"
#include "broker/logging.h"
#include "core/log.h"

static mq_config_t cfg;
static char err[512];

static void setup(void)
{
    mq_config_init(&cfg);
    err[0] = '\0';
}

static void teardown(void)
{
    mq_config_fini(&cfg);
}

TestSuite(config, .init = setup, .fini = teardown);

static int parse(const char *text)
{
    return mq_config_parse_string(&cfg, "test.conf", text, err, sizeof(err));
}

Test(config, defaults_match_mosquitto)
{
    cr_assert_eq(cfg.max_inflight_messages, 20);
    cr_assert_eq(cfg.max_queued_messages, 1000);
    cr_assert_eq(cfg.max_queued_bytes, 0);
    cr_assert_eq(cfg.memory_limit, 0);
    cr_assert_eq(cfg.max_keepalive, 65535);
    cr_assert_eq(cfg.max_qos, 2);
    cr_assert(cfg.retain_available);
    cr_assert(cfg.allow_zero_length_clientid);
    cr_assert_str_eq(cfg.auto_id_prefix, "auto-");
    cr_assert_eq(cfg.sys_interval, 10);
    cr_assert(!cfg.upgrade_outgoing_qos);
    cr_assert(!cfg.persistence);
    cr_assert_str_eq(cfg.persistence_file, "mosquitto.db");
    cr_assert_null(cfg.persistence_location);
    cr_assert_eq(cfg.autosave_interval, 1800);
    cr_assert(!cfg.autosave_on_changes);
}

Test(config, no_listener_means_local_only_with_anonymous_access)
{
    cr_assert_eq(parse("# nothing\n\n"), 0, "%s", err);
    cr_assert_eq(mq_config_finish(&cfg, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.n_listeners, 1);
    cr_assert_eq(cfg.listeners[0].port, 1883);
    cr_assert_null(cfg.listeners[0].bind_address);
    cr_assert(cfg.listeners[0].loopback, "127.0.0.1 and ::1, as mosquitto 2");
    cr_assert(cfg.allow_anonymous);
}

Test(config, port_override_keeps_local_only_mode)
{
    cr_assert_eq(mq_config_finish(&cfg, 1884, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.n_listeners, 1);
    cr_assert_eq(cfg.listeners[0].port, 1884);
    cr_assert(cfg.listeners[0].loopback);
}

Test(config, a_listener_turns_anonymous_access_off_by_default)
{
    cr_assert_eq(parse("listener 1883\n"), 0, "%s", err);
    cr_assert_eq(mq_config_finish(&cfg, 0, err, sizeof(err)), 0);
    cr_assert_eq(cfg.n_listeners, 1);
    cr_assert_null(cfg.listeners[0].bind_address);
    cr_assert(!cfg.allow_anonymous);
}

Test(config, explicit_allow_anonymous_wins)
{
    cr_assert_eq(parse("listener 1883\nallow_anonymous true\n"), 0, "%s", err);
    cr_assert_eq(mq_config_finish(&cfg, 0, err, sizeof(err)), 0);
    cr_assert(cfg.allow_anonymous);
}

Test(config, several_listeners_with_bind_addresses_and_own_limits)
{
    cr_assert_eq(parse("max_connections 100\n"
                       "listener 1883 127.0.0.1\n"
                       "max_connections 5\n"
                       "listener 8883 ::1\n"),
                 0, "%s", err);
    cr_assert_eq(mq_config_finish(&cfg, 0, err, sizeof(err)), 0);
    cr_assert_eq(cfg.n_listeners, 2);
    cr_assert_eq(cfg.max_connections, 100);
    cr_assert_eq(cfg.listeners[0].port, 1883);
    cr_assert_str_eq(cfg.listeners[0].bind_address, "127.0.0.1");
    cr_assert_eq(cfg.listeners[0].max_connections, 5);
    cr_assert_eq(cfg.listeners[1].port, 8883);
    cr_assert_str_eq(cfg.listeners[1].bind_address, "::1");
    cr_assert_eq(cfg.listeners[1].max_connections, 0);
}

Test(config, port_and_bind_address_make_the_default_listener)
{
    cr_assert_eq(parse("port 1999\nbind_address 10.0.0.1\nlistener 2000\n"), 0, "%s", err);
    cr_assert_eq(mq_config_finish(&cfg, 0, err, sizeof(err)), 0);
    cr_assert_eq(cfg.n_listeners, 2);
    cr_assert_eq(cfg.listeners[0].port, 1999);
    cr_assert_str_eq(cfg.listeners[0].bind_address, "10.0.0.1");
    cr_assert_eq(cfg.listeners[1].port, 2000);
    cr_assert(!cfg.allow_anonymous);
}

Test(config, every_supported_option_is_applied)
{
    cr_assert_eq(parse("allow_zero_length_clientid false\n"
                       "auto_id_prefix dev-\n"
                       "max_inflight_messages 5\n"
                       "max_queued_messages 0\n"
                       "max_queued_bytes 1048576\n"
                       "message_size_limit 1024\n"
                       "max_packet_size 4096\n"
                       "max_keepalive 120\n"
                       "max_qos 1\n"
                       "retain_available false\n"
                       "upgrade_outgoing_qos true\n"
                       "set_tcp_nodelay false\n"
                       "pid_file /run/starling.pid\n"
                       "user nobody\n"
                       "workers 3\n"
                       "sys_interval 0\n"
                       "connection_messages false\n"
                       "log_type all\n"
                       "  \t# indented comment\n"
                       "allow_duplicate_messages true\n"
                       "persistence true\n"
                       "persistence_location /var/lib/mosquitto/\n"
                       "persistence_file starling.db\n"
                       "autosave_interval 60\n"
                       "autosave_on_changes true\n"
                       "queue_qos0_messages true\n"
                       "memory_limit 268435456\n"
                       "protocol mqtt\n"),
                 0, "%s", err);
    cr_assert(!cfg.allow_zero_length_clientid);
    cr_assert_str_eq(cfg.auto_id_prefix, "dev-");
    cr_assert_eq(cfg.max_inflight_messages, 5);
    cr_assert_eq(cfg.max_queued_messages, 0);
    cr_assert_eq(cfg.max_queued_bytes, 1048576);
    cr_assert_eq(cfg.memory_limit, 268435456);
    cr_assert_eq(cfg.message_size_limit, 1024);
    cr_assert_eq(cfg.max_packet_size, 4096);
    cr_assert_eq(cfg.max_keepalive, 120);
    cr_assert_eq(cfg.max_qos, 1);
    cr_assert(!cfg.retain_available);
    cr_assert(cfg.upgrade_outgoing_qos);
    cr_assert(!cfg.set_tcp_nodelay);
    cr_assert_str_eq(cfg.pid_file, "/run/starling.pid");
    cr_assert_str_eq(cfg.user, "nobody");
    cr_assert_eq(cfg.workers, 3);
    cr_assert_eq(cfg.sys_interval, 0);
    cr_assert(!cfg.connection_messages);
    cr_assert_eq(cfg.log_types, MQ_LOG_ALL);
    cr_assert(cfg.persistence);
    cr_assert_str_eq(cfg.persistence_location, "/var/lib/mosquitto/");
    cr_assert_str_eq(cfg.persistence_file, "starling.db");
    cr_assert_eq(cfg.autosave_interval, 60);
    cr_assert(cfg.autosave_on_changes);
    cr_assert(cfg.queue_qos0_messages);
}

Test(config, websockets_listener_options_reach_the_engine)
{
    cr_assert_eq(parse("listener 1883\n"
                       "listener 8080 127.0.0.1\n"
                       "protocol websockets\n"
                       "http_dir /tmp\n"
                       "websockets_headers_size 4096\n"
                       "status_page true\n"
                       "websockets_trusted_proxy 10.0.0.1\n"
                       "websockets_log_level 255\n"
                       "max_packet_size 65536\n"),
                 0, "%s", err);
    cr_assert_eq(mq_config_finish(&cfg, 0, err, sizeof(err)), 0, "%s", err);
    mq_server_opts_t o;
    mq_config_server_opts(&cfg, &o);
    cr_assert_eq(o.n_listeners, 2);
    const mq_server_listener_t *tcp = &o.listeners[0], *ws = &o.listeners[1];
    cr_expect_eq(tcp->protocol, MQ_SERVER_MQTT);
    cr_expect_null(tcp->http_dir);
    cr_expect_null(tcp->status_page);
    cr_expect_eq(tcp->ws_headers_size, 1024, "mosquitto's default");
    cr_expect_eq(ws->protocol, MQ_SERVER_WEBSOCKETS);
    cr_expect_str_eq(ws->http_dir, "/tmp");
    cr_expect_eq(ws->ws_headers_size, 4096);
    cr_expect_str_eq(ws->ws_trusted_proxy, "10.0.0.1");
    cr_expect_eq(ws->ws_max_frame, 65536);
    cr_assert_not_null(ws->status_page);
    cr_expect_gt(ws->status_page_len, 1000);
    cr_expect_eq(memcmp(ws->status_page, "<!DOCTYPE html>", 15), 0, "the bundled index.html");
}

Test(config, minus_one_means_unlimited_for_the_counting_limits)
{
    cr_assert_eq(parse("max_connections -1\nmax_queued_messages -1\nmax_queued_bytes -1\n"
                       "max_inflight_messages -1\n"),
                 0, "%s", err);
    cr_expect_eq(cfg.max_connections, 0);
    cr_expect_eq(cfg.max_queued_messages, 0);
    cr_expect_eq(cfg.max_queued_bytes, 0);
    cr_expect_eq(cfg.max_inflight_messages, 0);
}

Test(config, crlf_line_endings_are_accepted)
{
    cr_assert_eq(parse("max_qos 1\r\nmax_keepalive 30\r\n"), 0, "%s", err);
    cr_assert_eq(cfg.max_qos, 1);
    cr_assert_eq(cfg.max_keepalive, 30);
}

struct bad_case {
    const char *text;
    const char *expect; /* substring of the message */
};

static const struct bad_case bad_cases[] = {
    {"max_qos 1\nfoo bar\n", "test.conf:2: unknown option 'foo'"},
    {"max_qos 3\n", "test.conf:1: invalid value '3' for max_qos"},
    {"max_qos\n", "test.conf:1: option 'max_qos' needs a value"},
    {"max_qos 1 2\n", "test.conf:1: unexpected '2'"},
    {"allow_anonymous yes\n",
     "test.conf:1: invalid value 'yes' for allow_anonymous: expected true or false"},
    {"listener\n", "test.conf:1: listener needs a port"},
    {"listener 70000\n", "test.conf:1: invalid value '70000' for listener"},
    {"listener 1883\nlistener 1883\n", "test.conf:2: duplicate listener"},
    {"max_keepalive -5\n", "invalid value '-5' for max_keepalive"},
    {"max_inflight_messages 12abc\n", "invalid value '12abc'"},
    {"max_packet_size 10\n", "must be at least 20"},
    {"message_size_limit 268435456\n", "invalid value '268435456' for message_size_limit"},
    {"\n\n\nauth_plugin /usr/lib/auth.so\n",
     "test.conf:4: option 'auth_plugin' is a mosquitto option"},
    {"listener 8883\npsk_hint x\ntls_engine y\n", "'tls_engine'"},
    {"session_owner_check maybe\n", "test.conf:1: invalid value 'maybe' for session_owner_check"},
    {"listener 8883\ndhparamfile /etc/dh.pem\n", "test.conf:2: option 'dhparamfile'"},
    {"tls_engine x\n", "'tls_engine'"},
    {"listener 8883\n\ntls_version tlsv1.0\n",
     "test.conf:3: invalid value 'tlsv1.0' for tls_version"},
    {"auth_opt_db x\n", "'auth_opt_db'"},
    {"max_inflight_bytes 1e3\n", "invalid value '1e3' for max_inflight_bytes"},
    {"listener 1883\nmount_point a/+/\n",
     "test.conf:2: invalid mount_point 'a/+/': it must not contain a wildcard (+ or #)"},
    {"listener 1883\nmount_point #\n",
     "test.conf:2: invalid mount_point '#': it must not contain a wildcard (+ or #)"},
    {"listener 1883\nsocket_domain ipv5\n", "test.conf:2: invalid value 'ipv5' for socket_domain"},
    {"connection bridge1\n", "'connection'"},
    {"protocol http\n", "test.conf:1: invalid value 'http' for protocol"},
    {"listener 8080\nprotocol websockets\nstatus_page yes\n",
     "test.conf:3: invalid value 'yes' for status_page"},
    {"listener 8080\nprotocol websockets\nhttp_dir /nonexistent/www\n",
     "test.conf:3: http_dir /nonexistent/www: No such file or directory"},
    {"listener 8080\nprotocol websockets\nwebsockets_trusted_proxy proxy.example\n",
     "test.conf:3: websockets_trusted_proxy proxy.example: not an IP address"},
    {"log_type chatty\n", "invalid value 'chatty' for log_type"},
    {"workers 5000\n", "invalid value '5000' for workers"},
    {"max_qos -1\n", "invalid value '-1' for max_qos"},
    {"log_facility -1\n", "invalid value '-1' for log_facility"},
};

Test(config, bad_lines_are_errors_naming_file_and_line)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        mq_config_fini(&cfg);
        mq_config_init(&cfg);
        err[0] = '\0';
        cr_expect_eq(parse(bad_cases[i].text), -1, "accepted: %s", bad_cases[i].text);
        cr_expect(strstr(err, bad_cases[i].expect) != NULL, "case %zu: got \"%s\", want \"%s\"", i,
                  err, bad_cases[i].expect);
    }
}

Test(config, unreadable_file_names_the_file)
{
    cr_assert_eq(mq_config_parse_file(&cfg, "/nonexistent/starling.conf", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "/nonexistent/starling.conf: No such file or directory");
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

Test(config, include_dir_reads_conf_files_in_order_and_reports_their_lines)
{
    char dir[] = "/tmp/mq-config-test-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char main_path[256], inc[128], a[256], b[256], other[256];
    snprintf(inc, sizeof(inc), "%s/conf.d", dir);
    cr_assert_eq(mkdir(inc, 0700), 0);
    snprintf(main_path, sizeof(main_path), "%s/main.conf", dir);
    snprintf(a, sizeof(a), "%s/a.conf", inc);
    snprintf(b, sizeof(b), "%s/b.conf", inc);
    snprintf(other, sizeof(other), "%s/notes.txt", inc);
    char text[512];
    snprintf(text, sizeof(text), "max_qos 2\ninclude_dir %s\n", inc);
    write_file(main_path, text);
    write_file(a, "max_keepalive 10\nlistener 1900\n");
    write_file(b, "max_keepalive 20\nmax_connections 7\n"); /* after a.conf: wins */
    write_file(other, "this is not a config file\n");

    cr_assert_eq(mq_config_parse_file(&cfg, main_path, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(cfg.max_keepalive, 20);
    cr_expect_eq(cfg.n_listeners, 1);
    cr_expect_eq(cfg.listeners[0].max_connections, 7, "listener options carry across files");

    write_file(b, "max_keepalive 20\n\nbogus 1\n");
    mq_config_fini(&cfg);
    mq_config_init(&cfg);
    cr_expect_eq(mq_config_parse_file(&cfg, main_path, err, sizeof(err)), -1);
    char want[300];
    snprintf(want, sizeof(want), "%s:3: unknown option 'bogus'", b);
    cr_expect_str_eq(err, want);

    unlink(a);
    unlink(b);
    unlink(other);
    rmdir(inc);
    unlink(main_path);
    rmdir(dir);
}

Test(config, auto_id_prefix_longer_than_an_assigned_id_can_hold_is_an_error)
{
    static char text[MQ_AUTO_ID_PREFIX_MAX + 64];
    int n = snprintf(text, sizeof(text), "auto_id_prefix %0*d\n", MQ_AUTO_ID_PREFIX_MAX, 0);
    cr_assert_eq(parse(text), 0, "%s", err); /* the longest allowed */
    snprintf(text + n - 1, sizeof(text) - (size_t)n + 1, "0\n");
    cr_assert_eq(parse(text), -1);
    cr_assert(strstr(err, "test.conf:1: invalid value for auto_id_prefix: longer than 65519 bytes"),
              "%s", err);
}

Test(config, include_dir_that_does_not_exist_is_an_error)
{
    cr_assert_eq(parse("include_dir /nonexistent/conf.d\n"), -1);
    cr_assert(strstr(err, "test.conf:1: include_dir /nonexistent/conf.d:") != NULL, "%s", err);
}

/* --- the option table ---------------------------------------------------------------------- */

#define N_OPTIONS mq_config__n_options
#define OPTION(i) (&mq_config__options[i])

static bool is_string(const mq_config_option_t *o)
{
    return o->kind == MQ_CONFIG_STRING || o->kind == MQ_CONFIG_PATH;
}

/* Fields in mq_config_t, and in mq_listener_conf_t, that a row owns. */
static bool has_cfg_field(const mq_config_option_t *o)
{
    return o->size && o->status != MQ_CONFIG_REFUSED && o->scope != MQ_CONFIG_LISTENER;
}

static bool has_listener_field(const mq_config_option_t *o)
{
    return o->size && o->status != MQ_CONFIG_REFUSED &&
           (o->scope == MQ_CONFIG_LISTENER || o->scope == MQ_CONFIG_BOTH ||
            (o->scope == MQ_CONFIG_SECURITY && o->loff));
}

/* Checks that the field at 'p' holds the default of 'o'. */
static void expect_default(const mq_config_option_t *o, const void *p, const char *where)
{
    if (is_string(o)) {
        const char *s = *(char *const *)p;
        if (o->def_str)
            cr_expect(s && strcmp(s, o->def_str) == 0, "%s in %s: \"%s\", want \"%s\"", o->name,
                      where, s ? s : "(null)", o->def_str);
        else
            cr_expect_null(s, "%s in %s: \"%s\", want none", o->name, where, s);
    } else {
        cr_expect_eq(mq_config__load_uint(p, o->size), o->def, "%s in %s: %llu, want %llu", o->name,
                     where, (unsigned long long)mq_config__load_uint(p, o->size),
                     (unsigned long long)o->def);
    }
}

Test(config, table_names_are_unique_and_no_prefix_hides_an_option)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const mq_config_option_t *a = OPTION(i);
        cr_assert(a->name && a->name[0], "row %zu has no name", i);
        for (size_t j = 0; j < N_OPTIONS; j++) {
            const mq_config_option_t *b = OPTION(j);
            if (i == j)
                continue;
            cr_expect(strcmp(a->name, b->name) != 0, "'%s' is in the table twice", a->name);
            if (a->flags & MQ_CONFIG_PREFIX)
                cr_expect(strncmp(b->name, a->name, strlen(a->name)) != 0, "prefix '%s' hides '%s'",
                          a->name, b->name);
        }
    }
}

Test(config, table_rows_are_consistent)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const mq_config_option_t *o = OPTION(i);
        if (o->status == MQ_CONFIG_REFUSED) {
            cr_expect(o->size == 0 && o->set == NULL, "refused '%s' has an effect", o->name);
            continue;
        }
        cr_expect(o->scope != MQ_CONFIG_BRIDGE, "'%s': there are no bridges yet", o->name);
        cr_expect(o->kind != MQ_CONFIG_SPECIAL || o->set, "'%s' needs a handler", o->name);
        cr_expect(o->kind != MQ_CONFIG_KEYWORD || o->keywords, "'%s' has no keywords", o->name);
        cr_expect(o->status != MQ_CONFIG_FIXED || o->size, "fixed '%s' has no field", o->name);
        cr_expect(!(o->flags & MQ_CONFIG_ACCUMULATE) || (o->seen && o->size),
                  "'%s' accumulates: it needs a field and a 'seen' flag", o->name);
        if (!o->size || is_string(o)) {
            cr_expect(!o->size || o->size == sizeof(char *), "'%s': string field size", o->name);
            continue;
        }
        cr_expect(o->size == 1 || o->size == 2 || o->size == 4 || o->size == 8,
                  "'%s': field of %u bytes", o->name, o->size);
        uint64_t top = o->size == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * o->size)) - 1;
        cr_expect(o->max <= top, "'%s': max %llu does not fit its field", o->name,
                  (unsigned long long)o->max);
        cr_expect(o->def <= top, "'%s': default does not fit its field", o->name);
        cr_expect(o->min <= o->max, "'%s': empty range", o->name);
        if (o->kind == MQ_CONFIG_BOOL)
            cr_expect(o->size == sizeof(bool) && o->def <= 1, "'%s': not a bool field", o->name);
        if ((o->kind == MQ_CONFIG_UINT || o->kind == MQ_CONFIG_SIZE) && !o->set &&
            o->status == MQ_CONFIG_IMPLEMENTED)
            cr_expect(o->def >= o->min && o->def <= o->max, "'%s': default out of range", o->name);
    }
}

Test(config, init_applies_every_default_in_the_table)
{
    cr_assert_eq(parse("listener 1883\n"), 0, "%s", err);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const mq_config_option_t *o = OPTION(i);
        if (has_cfg_field(o))
            expect_default(o, (const char *)&cfg + o->off, "mq_config_t");
        if (has_listener_field(o)) {
            expect_default(o, (const char *)&cfg.default_listener + o->loff, "default listener");
            expect_default(o, (const char *)&cfg.listeners[0] + o->loff, "listener 1883");
        }
    }
    /* spot checks that the table says what mosquitto and Starling document */
    cr_expect_eq(cfg.connect_timeout_s, 10);
    cr_expect_eq(cfg.out_high_water, 256 * 1024);
    cr_expect_eq(cfg.log_dest, MQ_LOGDEST_STDERR);
    cr_expect_eq(cfg.log_types, MQ_LOG_DEFAULT);
    cr_expect(cfg.log_timestamp);
    cr_expect(cfg.allow_anonymous);
    cr_expect(cfg.set_tcp_nodelay);
    cr_expect(cfg.connection_messages);
    cr_expect_str_eq(cfg.user, "mosquitto");
    cr_expect_eq(cfg.default_listener.port, 1883);
}

/* The names of the rows with 'status' and all of 'flags', as " a b c ". */
static void names_with(unsigned status, unsigned flags, char *out, size_t cap)
{
    snprintf(out, cap, " ");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const mq_config_option_t *o = OPTION(i);
        if (o->status == status && (o->flags & flags) == flags)
            snprintf(out + strlen(out), cap - strlen(out), "%s ", o->name);
    }
}

Test(config, the_implemented_options_are_exactly_these)
{
    char names[2048];
    names_with(MQ_CONFIG_IMPLEMENTED, 0, names, sizeof(names));
    cr_expect_str_eq(
        names,
        " listener port bind_address max_connections protocol"
        " response_information metrics_listener http_dir"
        " websockets_headers_size status_page websockets_trusted_proxy"
        " websockets_log_level max_inflight_messages max_queued_messages"
        " max_queued_bytes max_inflight_bytes message_size_limit max_packet_size max_keepalive"
        " max_qos retain_available upgrade_outgoing_qos set_tcp_nodelay"
        " connection_messages allow_duplicate_messages queue_full_timeout memory_limit"
        " pid_file user workers sys_interval include_dir log_dest log_type"
        " log_timestamp log_timestamp_format log_facility allow_anonymous"
        " allow_zero_length_clientid auto_id_prefix password_file acl_file"
        " per_listener_settings session_owner_check psk_file psk_hint cafile capath certfile"
        " keyfile crlfile ciphers ciphers_tls1.3 tls_version"
        " require_certificate use_identity_as_username use_subject_as_username"
        " use_username_as_clientid bind_interface socket_domain mount_point"
        " max_topic_alias persistence persistence_file persistence_location"
        " autosave_interval autosave_on_changes persistent_client_expiration"
        " queue_qos0_messages persistence_fsync persistence_journal_limit"
        " check_retain_source clientid_prefixes retry_interval ");
    names_with(MQ_CONFIG_IMPLEMENTED, MQ_CONFIG_MINUS_ONE, names, sizeof(names));
    cr_expect_str_eq(names, " max_connections max_inflight_messages max_queued_messages"
                            " max_queued_bytes ");
}

/* Writes into 'text' lines that set 'o' to its default; false when no line can. */
static bool default_lines(const mq_config_option_t *o, char *text, size_t cap)
{
    text[0] = '\0';
    if (o->keywords) {
        /* keywords whose values together make the default (several for ACCUMULATE) */
        for (const mq_config_keyword_t *k = o->keywords; k->name; k++) {
            bool part = o->size && (o->flags & MQ_CONFIG_ACCUMULATE || o->set)
                            ? k->value && (k->value & ~o->def) == 0
                            : k->value == o->def;
            if (part && (o->size || !text[0]))
                snprintf(text + strlen(text), cap - strlen(text), "%s %s\n", o->name, k->name);
        }
        return text[0] != '\0';
    }
    if (o->set)
        return false;
    if (o->kind == MQ_CONFIG_BOOL)
        snprintf(text, cap, "%s %s\n", o->name, o->def ? "true" : "false");
    else if (o->kind == MQ_CONFIG_UINT || o->kind == MQ_CONFIG_SIZE)
        snprintf(text, cap, "%s %llu\n", o->name, (unsigned long long)o->def);
    else if (is_string(o) && o->def_str)
        snprintf(text, cap, "%s %s\n", o->name, o->def_str);
    return text[0] != '\0';
}

Test(config, every_implemented_option_accepts_its_default_back)
{
    /* no line gives these their default: no default, or one the file cannot spell (NULL,
     * LOG_DAEMON, metrics off) */
    static const char *const unspellable =
        " listener bind_address include_dir log_facility metrics_listener pid_file"
        " log_timestamp_format persistent_client_expiration response_information http_dir"
        " websockets_trusted_proxy cafile capath certfile keyfile crlfile ciphers ciphers_tls1.3"
        " tls_version password_file acl_file session_owner_check persistence_location"
        " clientid_prefixes socket_domain bind_interface mount_point psk_file psk_hint ";
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const mq_config_option_t *o = OPTION(i);
        if (o->status != MQ_CONFIG_IMPLEMENTED)
            continue;
        char text[512], name[80];
        snprintf(name, sizeof(name), " %s ", o->name);
        if (!default_lines(o, text, sizeof(text))) {
            cr_expect(strstr(unspellable, name) != NULL, "no line sets '%s' to its default",
                      o->name);
            continue;
        }
        cr_expect(strstr(unspellable, name) == NULL, "'%s' is spellable after all", o->name);
        mq_config_fini(&cfg);
        mq_config_init(&cfg);
        cr_expect_eq(parse(text), 0, "%s: %s", text, err);
        if (has_cfg_field(o))
            expect_default(o, (const char *)&cfg + o->off, text);
    }
}

/* Parses "name value" on line 2 of a fresh configuration. */
static int parse_line2(const char *name, const char *value)
{
    char text[256];
    snprintf(text, sizeof(text), "# line 1\n%s %s\n", name, value);
    mq_config_fini(&cfg);
    mq_config_init(&cfg);
    err[0] = '\0';
    return parse(text);
}

static void expect_out_of_range(const mq_config_option_t *o, const char *value)
{
    char want[256];
    snprintf(want, sizeof(want),
             "test.conf:2: invalid value '%s' for %s: expected a number from %llu to %llu", value,
             o->name, (unsigned long long)o->min, (unsigned long long)o->max);
    cr_expect_eq(parse_line2(o->name, value), -1, "%s %s accepted", o->name, value);
    cr_expect_str_eq(err, want);
}

Test(config, numbers_outside_their_range_are_rejected_with_file_and_line)
{
    size_t n_checked = 0;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const mq_config_option_t *o = OPTION(i);
        if (o->status != MQ_CONFIG_IMPLEMENTED || o->max == 0)
            continue;
        char v[32];
        snprintf(v, sizeof(v), "%llu", (unsigned long long)o->max + 1);
        expect_out_of_range(o, v);
        if (o->min > 0) {
            snprintf(v, sizeof(v), "%llu", (unsigned long long)o->min - 1);
            expect_out_of_range(o, v);
        }
        if (o->flags & MQ_CONFIG_MINUS_ONE) {
            cr_expect_eq(parse_line2(o->name, "-1"), 0, "%s -1: %s", o->name, err);
            cr_expect_eq(mq_config__load_uint((const char *)&cfg + o->off, o->size), 0, "%s -1",
                         o->name);
        } else {
            expect_out_of_range(o, "-1");
        }
        if (o->at_least > 1) {
            snprintf(v, sizeof(v), "%llu", (unsigned long long)o->at_least - 1);
            cr_expect_eq(parse_line2(o->name, v), -1, "%s %s accepted", o->name, v);
            char want[200];
            snprintf(want, sizeof(want),
                     "test.conf:2: invalid value '%s' for %s: must be at least %llu", v, o->name,
                     (unsigned long long)o->at_least);
            cr_expect_str_eq(err, want);
        }
        n_checked++;
    }
    cr_expect_geq(n_checked, 12, "the table lost its ranges");
}

Test(config, refused_options_are_refused_by_name_with_or_without_a_value)
{
    size_t n_refused = 0;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const mq_config_option_t *o = OPTION(i);
        if (o->status != MQ_CONFIG_REFUSED)
            continue;
        char name[80], want[300];
        snprintf(name, sizeof(name), "%s%s", o->name, o->flags & MQ_CONFIG_PREFIX ? "x" : "");
        snprintf(want, sizeof(want),
                 "test.conf:2: option '%s' is a mosquitto option that Starling does not "
                 "implement yet; remove it (refusing rather than ignoring it)",
                 name);
        cr_expect_eq(parse_line2(name, "x"), -1, "%s accepted", name);
        cr_expect_str_eq(err, want);
        cr_expect_eq(parse_line2(name, ""), -1, "%s accepted without a value", name);
        cr_expect_str_eq(err, want);
        n_refused++;
    }
    cr_expect_geq(n_refused, 50); /* TLS, WebSockets, MQTT 5, persistence, retry_interval,
                                   bind_interface, mount_point, check_retain_source, TLS-PSK
                                   left it */
}

/* mosquitto 2.0 dropped retry_interval and warns (broker/main.c logs the same words) */
Test(config, retry_interval_loads_and_is_noted_for_the_warning)
{
    cr_assert_eq(parse_line2("retry_interval", "20"), 0, "%s", err);
    cr_assert(cfg.retry_interval_set);
    cr_assert_eq(parse_line2("log_type", "all"), 0);
    cr_assert(!cfg.retry_interval_set);
    cr_assert_eq(parse_line2("retry_interval", "soon"), -1);
    cr_assert_str_eq(err, "test.conf:2: invalid value 'soon' for retry_interval: expected a "
                          "number from 0 to 2147483647");
}

Test(config, fixed_settings_are_not_options_of_the_file)
{
    size_t n_fixed = 0;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const mq_config_option_t *o = OPTION(i);
        if (o->status != MQ_CONFIG_FIXED)
            continue;
        char want[200];
        snprintf(want, sizeof(want), "test.conf:2: unknown option '%s'", o->name);
        cr_expect_eq(parse_line2(o->name, "5"), -1, "%s accepted", o->name);
        cr_expect_str_eq(err, want);
        n_fixed++;
    }
    cr_expect_eq(n_fixed, 2);
}

Test(config, options_of_one_value_refuse_a_second)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const mq_config_option_t *o = OPTION(i);
        if (o->status != MQ_CONFIG_IMPLEMENTED ||
            (o->flags & (MQ_CONFIG_OWN_ARGS | MQ_CONFIG_VALUES | MQ_CONFIG_REST_OF_LINE)))
            continue;
        char want[200];
        snprintf(want, sizeof(want), "test.conf:2: unexpected 'extra' after the value of %s",
                 o->name);
        cr_expect_eq(parse_line2(o->name, "1 extra"), -1, "%s accepted two values", o->name);
        cr_expect_str_eq(err, want);
        snprintf(want, sizeof(want), "test.conf:2: option '%s' needs a value", o->name);
        cr_expect_eq(parse_line2(o->name, ""), -1, "%s accepted no value", o->name);
        cr_expect_str_eq(err, want);
    }
}

/* --- the engine's options ------------------------------------------------------------------ */

Test(config, server_opts_get_every_default_filled_in)
{
    cr_assert_eq(mq_config_finish(&cfg, 0, err, sizeof(err)), 0, "%s", err);
    mq_server_opts_t o;
    memset(&o, 0xA5, sizeof(o)); /* nothing may be left over */
    mq_config_server_opts(&cfg, &o);
    cr_assert_eq(o.n_listeners, 1);
    cr_expect_eq(o.listeners[0].port, 1883);
    cr_expect_null(o.listeners[0].bind_address);
    cr_expect(o.listeners[0].loopback);
    cr_expect_null(o.listeners[0].bind_interface);
    cr_expect_eq(o.listeners[0].max_connections, 0);
    cr_expect_eq(o.workers, 0);
    cr_expect_eq(o.max_connections, 0);
    cr_expect(o.listeners[0].allow_anonymous);
    cr_expect(o.listeners[0].allow_zero_length_clientid);
    cr_expect_str_eq(o.listeners[0].auto_id_prefix, "auto-");
    cr_expect_eq(o.listeners[0].auth_domain, 0);
    cr_expect(!o.session_owner_check, "no password file: nothing to own a session by");
    cr_expect_null(o.auth);
    cr_expect_eq(o.max_keepalive, 65535);
    cr_expect_eq(o.max_qos, 2);
    cr_expect(o.retain_available);
    cr_expect(!o.upgrade_outgoing_qos);
    cr_expect(o.set_tcp_nodelay);
    cr_expect_eq(o.message_size_limit, 0);
    cr_expect_eq(o.max_packet_size, 0);
    cr_expect_eq(o.connect_timeout_s, 10);
    cr_expect_eq(o.limits.max_inflight, 20);
    cr_expect_eq(o.limits.max_queued, 1000);
    cr_expect_eq(o.limits.max_queued_bytes, 0);
    cr_expect_eq(o.limits.out_high_water, 256 * 1024);
    cr_expect(o.connection_messages);
}

Test(config, server_opts_carry_the_configured_values)
{
    cr_assert_eq(parse("max_connections 50\n"
                       "listener 1883 127.0.0.1\n"
                       "max_connections 5\n"
                       "listener 8883\n"
                       "bind_interface eth0\n"
                       "mount_point site1/\n"
                       "allow_anonymous true\n"
                       "allow_zero_length_clientid false\n"
                       "auto_id_prefix dev-\n"
                       "max_inflight_messages 0\n"
                       "max_queued_messages 7\n"
                       "max_queued_bytes 4096\n"
                       "message_size_limit 1024\n"
                       "max_packet_size 2048\n"
                       "max_keepalive 60\n"
                       "max_qos 1\n"
                       "retain_available false\n"
                       "upgrade_outgoing_qos true\n"
                       "set_tcp_nodelay false\n"
                       "workers 3\n"
                       "connection_messages false\n"),
                 0, "%s", err);
    cr_assert_eq(mq_config_finish(&cfg, 0, err, sizeof(err)), 0, "%s", err);
    mq_server_opts_t o;
    mq_config_server_opts(&cfg, &o);
    cr_assert_eq(o.n_listeners, 2);
    cr_expect_eq(o.listeners[0].port, 1883);
    cr_expect_str_eq(o.listeners[0].bind_address, "127.0.0.1");
    cr_expect_eq(o.listeners[0].max_connections, 5);
    cr_expect_eq(o.listeners[1].port, 8883);
    cr_expect_null(o.listeners[1].bind_address);
    cr_expect_str_eq(o.listeners[1].bind_interface, "eth0");
    cr_expect_str_eq(o.listeners[1].mount_point, "site1/");
    cr_expect_null(o.listeners[0].mount_point);
    cr_expect(!o.listeners[0].loopback && !o.listeners[1].loopback);
    cr_expect_eq(o.max_connections, 50);
    for (unsigned i = 0; i < 2; i++) { /* no per_listener_settings: the broker's values */
        cr_expect(o.listeners[i].allow_anonymous);
        cr_expect(!o.listeners[i].allow_zero_length_clientid);
        cr_expect_str_eq(o.listeners[i].auto_id_prefix, "dev-");
        cr_expect_eq(o.listeners[i].auth_domain, 0);
    }
    cr_expect_eq(o.limits.max_inflight, 65535, "0 = unlimited: the whole packet id space");
    cr_expect_eq(o.limits.max_queued, 7);
    cr_expect_eq(o.limits.max_queued_bytes, 4096);
    cr_expect_eq(o.message_size_limit, 1024);
    cr_expect_eq(o.max_packet_size, 2048);
    cr_expect_eq(o.max_keepalive, 60);
    cr_expect_eq(o.max_qos, 1);
    cr_expect(!o.retain_available);
    cr_expect(o.upgrade_outgoing_qos);
    cr_expect(!o.set_tcp_nodelay);
    cr_expect_eq(o.workers, 3);
    cr_expect(!o.connection_messages);
}

Test(config, security_options_are_per_listener_with_per_listener_settings)
{
    cr_assert_eq(parse("per_listener_settings true\n"
                       "listener 1883\n"
                       "allow_anonymous true\n"
                       "acl_file /a.acl\n"
                       "listener 1884\n"
                       "password_file /b.pw\n"
                       "auto_id_prefix b-\n"
                       "allow_zero_length_clientid false\n"),
                 0, "%s", err);
    cr_assert_eq(mq_config_finish(&cfg, 0, err, sizeof(err)), 0, "%s", err);
    mq_server_opts_t o;
    mq_config_server_opts(&cfg, &o);
    cr_assert_eq(o.n_listeners, 2);
    cr_expect(o.listeners[0].allow_anonymous);
    cr_expect(!o.listeners[1].allow_anonymous, "not given: mosquitto 2's default");
    cr_expect(o.listeners[0].allow_zero_length_clientid);
    cr_expect(!o.listeners[1].allow_zero_length_clientid);
    cr_expect_str_eq(o.listeners[0].auto_id_prefix, "auto-");
    cr_expect_str_eq(o.listeners[1].auto_id_prefix, "b-");
    cr_expect_eq(o.listeners[0].auth_domain, 0);
    cr_expect_eq(o.listeners[1].auth_domain, 1);
    cr_expect(o.session_owner_check, "a password file: sessions belong to their user");
    cr_assert_eq(mq_config_security_domains(&cfg), 2);
    const char *pw, *acl;
    mq_config_security_files(&cfg, 0, &pw, &acl);
    cr_expect_null(pw);
    cr_expect_str_eq(acl, "/a.acl");
    mq_config_security_files(&cfg, 1, &pw, &acl);
    cr_expect_str_eq(pw, "/b.pw");
    cr_expect_null(acl);
}

Test(config, security_options_anywhere_are_the_brokers_without_per_listener_settings)
{
    cr_assert_eq(parse("listener 1883\nlistener 1884\npassword_file /b.pw\n"
                       "session_owner_check false\n"),
                 0, "%s", err);
    cr_assert_eq(mq_config_finish(&cfg, 0, err, sizeof(err)), 0, "%s", err);
    mq_server_opts_t o;
    mq_config_server_opts(&cfg, &o);
    cr_expect_eq(o.listeners[0].auth_domain, 0);
    cr_expect_eq(o.listeners[1].auth_domain, 0);
    cr_expect(!o.session_owner_check, "turned off explicitly");
    cr_assert_eq(mq_config_security_domains(&cfg), 1);
    const char *pw, *acl;
    mq_config_security_files(&cfg, 0, &pw, &acl);
    cr_expect_str_eq(pw, "/b.pw");
    cr_expect_null(acl);
}

Test(config, repeated_options_replace_the_default_on_their_first_line)
{
    cr_assert_eq(parse("log_type error\nlog_type debug\nlog_dest stdout\nlog_dest file /tmp/x\n"
                       "log_timestamp_format %Y-%m-%d  %H:%M\n"),
                 0, "%s", err);
    cr_expect_eq(cfg.log_types, MQ_LOG_ERROR | MQ_LOG_DEBUG);
    cr_expect_eq(cfg.log_dest, MQ_LOGDEST_STDOUT | MQ_LOGDEST_FILE);
    cr_expect_str_eq(cfg.log_file, "/tmp/x");
    cr_expect_str_eq(cfg.log_timestamp_format, "%Y-%m-%d %H:%M");
    cr_expect(cfg.log_type_set && cfg.log_dest_set);
}

Test(config, long_string_values_are_kept_whole)
{
    char text[1200], prefix[1000];
    memset(prefix, 'p', sizeof(prefix) - 1);
    prefix[sizeof(prefix) - 1] = '\0';
    snprintf(text, sizeof(text), "auto_id_prefix %s\n", prefix);
    cr_assert_eq(parse(text), 0, "%s", err);
    cr_expect_str_eq(cfg.auto_id_prefix, prefix);
}

Test(config, persistent_client_expiration_takes_mosquittos_durations)
{
    static const struct {
        const char *v;
        uint32_t s;
    } ok[] = {{"2h", 7200}, {"14d", 1209600}, {"1w", 604800}, {"1m", 2592000}, {"1y", 31536000}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "persistent_client_expiration %s\n", ok[i].v);
        mq_config_fini(&cfg);
        mq_config_init(&cfg);
        cr_assert(parse(line) == 0, "%s", err);
        cr_expect(cfg.persistent_client_expiration == ok[i].s, "%s", ok[i].v);
    }
    for (const char *const *bad = (const char *const[]){"14", "d", "0d", "3x", "1dd", NULL}; *bad;
         bad++) {
        char line[64];
        snprintf(line, sizeof(line), "persistent_client_expiration %s\n", *bad);
        cr_expect(parse(line) != 0, "%s accepted", *bad);
        cr_expect(strstr(err, "persistent_client_expiration") != NULL, "%s", err);
    }
}

Test(config, max_topic_alias_is_per_listener_with_mosquittos_default)
{
    cr_assert(parse("listener 1 127.0.0.1\nlistener 2\nmax_topic_alias 3\n") == 0, "%s", err);
    cr_expect(cfg.listeners[0].max_topic_alias == 10);
    cr_expect(cfg.listeners[1].max_topic_alias == 3);
}

Test(config, tls_options_belong_to_their_listener)
{
    cr_assert_eq(parse("listener 1883\n"
                       "listener 8883\ncafile /ca.pem\ncertfile /srv.crt\nkeyfile /srv.key\n"
                       "crlfile /crl.pem\ncapath /cas\nciphers HIGH\nciphers_tls1.3 "
                       "TLS_AES_128_GCM_SHA256\ntls_version tlsv1.3\nrequire_certificate true\n"
                       "use_identity_as_username true\nuse_subject_as_username true\n"),
                 0, "%s", err);
    cr_assert_eq(mq_config_finish(&cfg, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_null(cfg.listeners[0].certfile);
    const mq_listener_conf_t *l = &cfg.listeners[1];
    cr_assert_str_eq(l->cafile, "/ca.pem");
    cr_assert_str_eq(l->certfile, "/srv.crt");
    cr_assert_str_eq(l->keyfile, "/srv.key");
    cr_assert_str_eq(l->crlfile, "/crl.pem");
    cr_assert_str_eq(l->capath, "/cas");
    cr_assert_str_eq(l->ciphers, "HIGH");
    cr_assert_str_eq(l->ciphers_tls13, "TLS_AES_128_GCM_SHA256");
    cr_assert_eq(l->tls_version, MQ_TLS_VERSION_1_3);
    cr_assert(l->require_certificate && l->use_identity_as_username && l->use_subject_as_username);
    mq_server_opts_t o;
    mq_config_server_opts(&cfg, &o);
    cr_assert_null(o.listeners[0].tls.certfile);
    cr_assert_str_eq(o.listeners[1].tls.certfile, "/srv.crt");
    cr_assert_str_eq(o.listeners[1].tls.ciphers_tls13, "TLS_AES_128_GCM_SHA256");
    cr_assert_eq(o.listeners[1].tls.tls_version, MQ_TLS_VERSION_1_3);
    cr_assert(o.listeners[1].tls.require_certificate);
    cr_assert(o.listeners[1].tls.use_identity_as_username);
}

Test(config, certfile_without_keyfile_is_refused_at_finish)
{
    cr_assert_eq(parse("listener 8883\ncertfile /srv.crt\n"), 0, "%s", err);
    cr_assert_eq(mq_config_finish(&cfg, 0, err, sizeof(err)), -1);
    cr_assert(strstr(err, "listener 8883: both certfile and keyfile") != NULL, "%s", err);
}

Test(config, require_certificate_needs_a_ca)
{
    cr_assert_eq(parse("listener 8883\ncertfile /c\nkeyfile /k\nrequire_certificate true\n"), 0,
                 "%s", err);
    cr_assert_eq(mq_config_finish(&cfg, 0, err, sizeof(err)), -1);
    cr_assert(strstr(err, "require_certificate needs cafile or capath") != NULL, "%s", err);
}
