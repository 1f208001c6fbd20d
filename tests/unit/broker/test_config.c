/* SPDX-License-Identifier: MIT */
/* tests/unit/broker/test_config.c - mosquitto.conf parsing, defaults and errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/config.h"
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
    cr_assert_eq(cfg.max_keepalive, 65535);
    cr_assert_eq(cfg.max_qos, 2);
    cr_assert(cfg.retain_available);
    cr_assert(cfg.allow_zero_length_clientid);
    cr_assert_str_eq(cfg.auto_id_prefix, "auto-");
    cr_assert_eq(cfg.sys_interval, 10);
    cr_assert(!cfg.upgrade_outgoing_qos);
}

Test(config, no_listener_means_local_only_with_anonymous_access)
{
    cr_assert_eq(parse("# nothing\n\n"), 0, "%s", err);
    cr_assert_eq(mq_config_finish(&cfg, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.n_listeners, 1);
    cr_assert_eq(cfg.listeners[0].port, 1883);
    cr_assert_str_eq(cfg.listeners[0].bind_address, "127.0.0.1");
    cr_assert(cfg.allow_anonymous);
}

Test(config, port_override_keeps_local_only_mode)
{
    cr_assert_eq(mq_config_finish(&cfg, 1884, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.n_listeners, 1);
    cr_assert_eq(cfg.listeners[0].port, 1884);
    cr_assert_str_eq(cfg.listeners[0].bind_address, "127.0.0.1");
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
                       "protocol mqtt\n"),
                 0, "%s", err);
    cr_assert(!cfg.allow_zero_length_clientid);
    cr_assert_str_eq(cfg.auto_id_prefix, "dev-");
    cr_assert_eq(cfg.max_inflight_messages, 5);
    cr_assert_eq(cfg.max_queued_messages, 0);
    cr_assert_eq(cfg.max_queued_bytes, 1048576);
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
    {"\n\n\npassword_file /etc/mosquitto/passwd\n",
     "test.conf:4: option 'password_file' is a mosquitto option"},
    {"acl_file /etc/mosquitto/acl\n", "'acl_file'"},
    {"listener 8883\ncafile /etc/ca.pem\n", "test.conf:2: option 'cafile'"},
    {"certfile x\n", "'certfile'"},
    {"auth_opt_db x\n", "'auth_opt_db'"},
    {"persistence true\n", "'persistence'"},
    {"connection bridge1\n", "'connection'"},
    {"protocol websockets\n", "protocol websockets is not supported"},
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

Test(config, include_dir_that_does_not_exist_is_an_error)
{
    cr_assert_eq(parse("include_dir /nonexistent/conf.d\n"), -1);
    cr_assert(strstr(err, "test.conf:1: include_dir /nonexistent/conf.d:") != NULL, "%s", err);
}
