/* SPDX-License-Identifier: MIT */
/* broker/main.c - starling: mosquitto's command line, configuration, signals, lifecycle. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/config.h"
#include "broker/logging.h"
#include "broker/metrics.h"
#include "broker/sys.h"
#include "core/log.h"
#include "mq_config.h"
#include "net/server.h"

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
    fprintf(f,
            "starling version %s\n\n"
            "starling is an MQTT v3.1.1/v3.1 broker (a multi-core mosquitto replacement).\n\n"
            "Usage: starling [-c config_file] [-d] [-h] [-p port] [-v]\n\n"
            " -c, --config-file : specify the broker config file.\n"
            " -d, --daemon      : put the broker into the background after starting.\n"
            " -h, --help        : display this help.\n"
            " -p, --port        : start the broker listening on the specified port.\n"
            "                     Not recommended in conjunction with the -c option.\n"
            " -v, --verbose     : verbose mode - enable all logging types. This overrides\n"
            "                     any logging options given in the config file.\n",
            MQ_VERSION);
}

static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 1 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

static void to_opts(const mq_config_t *cfg, mq_server_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    for (unsigned i = 0; i < cfg->n_listeners && i < MQ_SERVER_MAX_LISTENERS; i++) {
        o->listeners[i].bind_address = cfg->listeners[i].bind_address;
        o->listeners[i].port = cfg->listeners[i].port;
        o->listeners[i].max_connections = cfg->listeners[i].max_connections;
        o->n_listeners++;
    }
    o->workers = cfg->workers;
    o->max_connections = cfg->max_connections;
    o->allow_anonymous = cfg->allow_anonymous;
    o->allow_zero_length_clientid = cfg->allow_zero_length_clientid;
    o->auto_id_prefix = cfg->auto_id_prefix;
    o->max_keepalive = cfg->max_keepalive;
    o->max_qos = cfg->max_qos;
    o->retain_available = cfg->retain_available;
    o->upgrade_outgoing_qos = cfg->upgrade_outgoing_qos;
    o->set_tcp_nodelay = cfg->set_tcp_nodelay;
    o->message_size_limit = cfg->message_size_limit;
    o->max_packet_size = cfg->max_packet_size;
    o->connect_timeout_s = 10;
    o->limits.max_inflight = cfg->max_inflight_messages ? cfg->max_inflight_messages : 65535;
    o->limits.max_queued = cfg->max_queued_messages;
    o->limits.max_queued_bytes = cfg->max_queued_bytes;
    o->limits.out_high_water = 256 * 1024;
    o->connection_messages = cfg->connection_messages;
}

/* As mosquitto: when started as root, run as 'user' (or 'nobody' if it does not exist). */
static int drop_privileges(const char *user)
{
    if (geteuid() != 0 || user == NULL || user[0] == '\0')
        return 0;
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        MQ_LOG(MQ_LOG_WARN,
               "Warning: Unable to drop privileges to '%s' because this user does "
               "not exist. Trying 'nobody' instead.",
               user);
        pw = getpwnam("nobody");
        if (pw == NULL) {
            MQ_LOG(MQ_LOG_ERROR, "Error: Unable to drop privileges to 'nobody'.");
            return -1;
        }
    }
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
        setuid(pw->pw_uid) < 0) {
        MQ_LOG(MQ_LOG_ERROR, "Error setting user to '%s': %s.", pw->pw_name, strerror(errno));
        return -1;
    }
    return 0;
}

static int write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        MQ_LOG(MQ_LOG_ERROR, "Error: Unable to write pid file '%s': %s.", path, strerror(errno));
        return -1;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config-file", required_argument, NULL, 'c'},
        {"daemon", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"verbose", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    const char *config_file = NULL;
    bool daemonize = false, verbose = false;
    uint16_t port = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:dhp:v", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_file = optarg;
            break;
        case 'd':
            daemonize = true;
            break;
        case 'p':
            if (parse_port(optarg, &port) < 0) {
                fprintf(stderr, "Error: Invalid port specified (%s).\n", optarg);
                return 1;
            }
            break;
        case 'v':
            verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "Error: Unknown option '%s'.\n", argv[optind]);
        usage(stderr);
        return 1;
    }

    mq_config_t cfg;
    char err[512];
    mq_config_init(&cfg);
    if (config_file && mq_config_parse_file(&cfg, config_file, err, sizeof(err)) < 0) {
        fprintf(stderr, "Error: %s\n", err);
        mq_config_fini(&cfg);
        return 1;
    }
    if (mq_config_finish(&cfg, port, err, sizeof(err)) < 0) {
        fprintf(stderr, "Error: %s\n", err);
        mq_config_fini(&cfg);
        return 1;
    }
    /* -v overrides the configuration's log types, as with mosquitto */
    atomic_store(&mq_log_mask, verbose ? MQ_LOG_ALL : cfg.log_types);

    if (daemonize && daemon(1, 0) < 0) { /* before any thread exists */
        fprintf(stderr, "Error: Unable to fork: %s\n", strerror(errno));
        return 1;
    }
    /* signals are taken synchronously by this thread; workers inherit the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    mq_logging_opts_t lopts = {
        .dests = cfg.log_dest,
        .file = cfg.log_file,
        .timestamp = cfg.log_timestamp,
        .timestamp_format = cfg.log_timestamp_format,
        .syslog_facility = cfg.log_facility,
    };
    mq_logging_t *logging = mq_logging_start(&lopts, err, sizeof(err));
    if (logging == NULL) {
        fprintf(stderr, "Error: %s\n", err);
        mq_config_fini(&cfg);
        return 1;
    }

    MQ_LOG(MQ_LOG_NOTICE, "starling version %s starting", MQ_VERSION);
    if (config_file)
        MQ_LOG(MQ_LOG_NOTICE, "Config loaded from %s.", config_file);
    else
        MQ_LOG(MQ_LOG_NOTICE, "Using default config.");
    if (!cfg.has_explicit_listener) /* mosquitto 2's words for the same mode */
        MQ_LOG(MQ_LOG_NOTICE, "Starting in local only mode. Connections will only be possible "
                              "from clients running on this machine.");
    if (cfg.pid_file && write_pid_file(cfg.pid_file) < 0) {
        mq_logging_stop(logging);
        mq_config_fini(&cfg);
        return 1;
    }

    double start_s = mono_s();
    mq_server_opts_t opts;
    to_opts(&cfg, &opts);
    mq_server_t *srv;
    int rc = mq_server_start(&srv, &opts, err, sizeof(err));
    if (rc < 0) {
        MQ_LOG(MQ_LOG_ERROR, "Error: %s", err);
        if (cfg.pid_file)
            unlink(cfg.pid_file);
        mq_logging_stop(logging);
        mq_config_fini(&cfg);
        return 1;
    }
    mq_logging_set_server(logging, srv);
    for (unsigned i = 0; i < opts.n_listeners; i++)
        MQ_LOG(MQ_LOG_NOTICE, "Opening ipv4/ipv6 listen socket on port %u.",
               mq_server_port(srv, i));
    if (drop_privileges(cfg.user) < 0) {
        mq_logging_set_server(logging, NULL);
        mq_server_stop(srv);
        mq_logging_stop(logging);
        mq_config_fini(&cfg);
        return 1;
    }
    mq_metrics_t *metrics = NULL;
    if (cfg.metrics_port) {
        metrics = mq_metrics_start(srv, logging, cfg.metrics_address, cfg.metrics_port, start_s,
                                   err, sizeof(err));
        if (metrics == NULL) {
            MQ_LOG(MQ_LOG_ERROR, "Error: %s", err);
            mq_logging_set_server(logging, NULL);
            mq_server_stop(srv);
            mq_logging_stop(logging);
            mq_config_fini(&cfg);
            return 1;
        }
        MQ_LOG(MQ_LOG_NOTICE, "Serving Prometheus metrics on http://%s:%u/metrics",
               cfg.metrics_address ? cfg.metrics_address : "*", mq_metrics_port(metrics));
    }
    MQ_LOG(MQ_LOG_NOTICE, "starling version %s running", MQ_VERSION);

    /* The control thread: signals, and $SYS every sys_interval (0 disables the tree). */
    mq_sys_t *sys = cfg.sys_interval ? mq_sys_new(srv, start_s) : NULL;
    double next_sys = mono_s();
    for (;;) {
        if (sys && mono_s() >= next_sys) {
            mq_sys_update(sys, mono_s());
            next_sys += cfg.sys_interval;
            if (next_sys < mono_s()) /* a stall: do not publish in a burst to catch up */
                next_sys = mono_s() + cfg.sys_interval;
        }
        int sig;
        if (sys) {
            double wait = next_sys - mono_s();
            struct timespec ts = {.tv_sec = (time_t)wait,
                                  .tv_nsec = (long)((wait - (double)(time_t)wait) * 1e9)};
            if (wait < 0)
                ts.tv_sec = ts.tv_nsec = 0;
            sig = sigtimedwait(&set, NULL, &ts);
        } else {
            sig = sigwaitinfo(&set, NULL);
        }
        if (sig < 0)
            continue; /* timeout (EAGAIN) or EINTR */
        if (sig == SIGINT || sig == SIGTERM)
            break;
        if (sig == SIGHUP) {
            mq_logging_reopen(logging); /* log rotation */
            MQ_LOG(MQ_LOG_NOTICE, "SIGHUP received: log file re-opened; configuration reload "
                                  "is not implemented yet, the running configuration is "
                                  "unchanged.");
        }
    }
    MQ_LOG(MQ_LOG_NOTICE, "starling version %s terminating", MQ_VERSION);
    mq_sys_free(sys);
    mq_metrics_stop(metrics);
    mq_logging_set_server(logging, NULL);
    mq_server_stop(srv);
    if (cfg.pid_file)
        unlink(cfg.pid_file);
    mq_logging_stop(logging);
    mq_config_fini(&cfg);
    return 0;
}
