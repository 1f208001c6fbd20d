/* SPDX-License-Identifier: MIT */
/* broker/main.c - starling: mosquitto's command line, configuration, signals, lifecycle. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "broker/config.h"
#include "broker/logging.h"
#include "broker/metrics.h"
#include "broker/persist.h"
#include "broker/security.h"
#include "broker/sys.h"
#include "core/log.h"
#include "core/mem.h"
#include "mq_config.h"
#include "net/server.h"

/* How long a stop on SIGINT/SIGTERM lets connections flush what is queued for them: short,
 * as a service manager waits on it (systemd gives 90 s, then SIGKILL). */
#define SHUTDOWN_FLUSH_MS 2000

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
            "starling is an MQTT v5.0/v3.1.1/v3.1 broker (a multi-core mosquitto replacement).\n\n"
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

/* What the command line asks for. */
typedef struct cli {
    const char *config_file; /* NULL = the default configuration */
    bool daemonize;
    bool verbose;
    uint16_t port; /* -p; 0 = none */
} cli_t;

/* The running broker: each part is NULL (or false) until started, so that one teardown
 * releases whatever start-up got to. */
typedef struct broker {
    mq_config_t cfg;
    sigset_t signals; /* taken synchronously by the control loop */
    int sigfd;        /* a signalfd of 'signals': the control loop sees them pending; -1 */
    int sigfd_errno;  /* why there is none */
    mq_logging_t *logging;
    bool wrote_pid_file;
    double start_s; /* monotonic time the server started */
    mq_server_t *srv;
    mq_metrics_t *metrics;
    mq_sys_t *sys;
    mq_persist_t *persist; /* NULL: persistence off */
    bool served;           /* the control loop ran: an exit saves the snapshot */
    unsigned flush_ms;     /* what a stop gives connections to flush: set once a signal asks */
} broker_t;

/* Parses argv into *cli. Returns -1 to go on, or the exit status (after -h, or with the
 * message printed). */
static int parse_command_line(int argc, char **argv, cli_t *cli)
{
    static const struct option longopts[] = {
        {"config-file", required_argument, NULL, 'c'},
        {"daemon", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"verbose", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "c:dhp:v", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            cli->config_file = optarg;
            break;
        case 'd':
            cli->daemonize = true;
            break;
        case 'p':
            if (parse_port(optarg, &cli->port) < 0) {
                fprintf(stderr, "Error: Invalid port specified (%s).\n", optarg);
                return 1;
            }
            break;
        case 'v':
            cli->verbose = true;
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
    return -1;
}

/* Reads the configuration, daemonizes, blocks the signals and starts logging; errors go to
 * stderr. Returns 0 or -1. */
static int start_process(broker_t *b, const cli_t *cli)
{
    char err[512];
    if (cli->config_file && mq_config_parse_file(&b->cfg, cli->config_file, err, sizeof(err)) < 0)
        goto fail;
    if (mq_config_finish(&b->cfg, cli->port, err, sizeof(err)) < 0)
        goto fail;
    /* -v overrides the configuration's log types, as with mosquitto; without a destination
     * (log_dest none) no line is formatted at all */
    atomic_store(&mq_log_mask, cli->verbose ? MQ_LOG_ALL : b->cfg.log_dest ? b->cfg.log_types : 0u);

    if (cli->daemonize && daemon(1, 0) < 0) { /* before any thread exists */
        fprintf(stderr, "Error: Unable to fork: %s\n", strerror(errno));
        return -1;
    }
    /* signals are taken synchronously by the control loop; workers inherit the mask */
    sigemptyset(&b->signals);
    sigaddset(&b->signals, SIGINT);
    sigaddset(&b->signals, SIGTERM);
    sigaddset(&b->signals, SIGHUP);
    sigaddset(&b->signals, SIGUSR1);
    sigaddset(&b->signals, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &b->signals, NULL);
    b->sigfd = signalfd(-1, &b->signals, SFD_CLOEXEC); /* -1: sigtimedwait alone */
    b->sigfd_errno = b->sigfd < 0 ? errno : 0;
    signal(SIGPIPE, SIG_IGN);
    /* a file over RLIMIT_FSIZE (ulimit -f) fails its write with EFBIG, handled as a full disk
     * is (the snapshot keeps its previous copy), instead of killing the broker */
    signal(SIGXFSZ, SIG_IGN);

    mq_logging_opts_t lopts = {
        .dests = b->cfg.log_dest,
        .file = b->cfg.log_file,
        .timestamp = b->cfg.log_timestamp,
        .timestamp_format = b->cfg.log_timestamp_format,
        .syslog_facility = b->cfg.log_facility,
    };
    b->logging = mq_logging_start(&lopts, err, sizeof(err));
    if (b->logging == NULL)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "Error: %s\n", err);
    return -1;
}

/* Writes the pid file, starts the server, drops privileges and starts the metrics listener
 * and $SYS; errors are logged. Returns 0 or -1. */
static int start_broker(broker_t *b, const cli_t *cli)
{
    const mq_config_t *cfg = &b->cfg;
    char err[512];
    int rc;
    MQ_LOG(MQ_LOG_NOTICE, "starling version %s starting", MQ_VERSION);
    if (cli->config_file)
        MQ_LOG(MQ_LOG_NOTICE, "Config loaded from %s.", cli->config_file);
    else
        MQ_LOG(MQ_LOG_NOTICE, "Using default config.");
    if (cfg->clientid_prefixes)
        MQ_LOG(MQ_LOG_NOTICE, "The 'clientid_prefixes' option is now deprecated and will be "
                              "removed in a future version.");
    if (cfg->retry_interval_set)
        MQ_LOG(MQ_LOG_WARN, "Warning: The retry_interval option is no longer available.");
    if (!cfg->has_explicit_listener) /* mosquitto 2's words for the same mode */
        MQ_LOG(MQ_LOG_NOTICE, "Starting in local only mode. Connections will only be possible "
                              "from clients running on this machine.");
    if (cfg->pid_file && write_pid_file(cfg->pid_file) < 0)
        return -1;
    b->wrote_pid_file = cfg->pid_file != NULL;

    b->start_s = mono_s();
    mq_server_opts_t opts;
    mq_config_server_opts(cfg, &opts);
    opts.auth = mq_security_load(cfg, err, sizeof(err)); /* password_file, acl_file */
    opts.reload_signal = b->sigfd >= 0 ? SIGHUP : 0;     /* see wait_signal */
    if (b->sigfd < 0)
        MQ_LOG(MQ_LOG_WARN,
               "Warning: signalfd: %s; a CONNECT that comes during a SIGHUP "
               "reload may meet the previous rules.",
               strerror(b->sigfd_errno));
    if (opts.auth == NULL) {
        MQ_LOG(MQ_LOG_ERROR, "Error: %s", err);
        return -1;
    }
    b->persist = mq_persist_new(cfg);
    if (b->persist) /* before the first client: what start-up restores is there for it */
        mq_persist_load(b->persist, &opts);
    rc = mq_server_start(&b->srv, &opts, err, sizeof(err)); /* takes the messages' references */
    mq_persist_loaded(b->persist, &opts);
    if (rc < 0) {
        b->srv = NULL;
        MQ_LOG(MQ_LOG_ERROR, "Error: %s", err);
        return -1;
    }
    mq_logging_set_server(b->logging, b->srv);
    const char *families;
    unsigned li, last = UINT_MAX;
    for (unsigned k = 0; (families = mq_server_socket(b->srv, k, &li)) != NULL; last = li, k++) {
        bool ws = opts.listeners[li].protocol == MQ_SERVER_WEBSOCKETS;
        if (!ws || li != last) /* as mosquitto: a line per socket, one per WebSockets listener */
            MQ_LOG(MQ_LOG_NOTICE, "Opening %s listen socket on port %u.",
                   ws ? "websockets" : families, mq_server_port(b->srv, li));
    }
    if (drop_privileges(cfg->user) < 0)
        return -1;
    mq_persist_check(b->persist); /* as the user that will write the snapshots */
    if (cfg->metrics_port) {
        b->metrics = mq_metrics_start(b->srv, b->logging, cfg->metrics_address, cfg->metrics_port,
                                      b->start_s, err, sizeof(err));
        if (b->metrics == NULL) {
            MQ_LOG(MQ_LOG_ERROR, "Error: %s", err);
            return -1;
        }
        MQ_LOG(MQ_LOG_NOTICE, "Serving Prometheus metrics on http://%s:%u/metrics",
               cfg->metrics_address ? cfg->metrics_address : "*", mq_metrics_port(b->metrics));
    }
    MQ_LOG(MQ_LOG_NOTICE, "starling version %s running", MQ_VERSION);
    b->sys = cfg->sys_interval ? mq_sys_new(b->srv, b->start_s) : NULL; /* 0: no $SYS tree */
    return 0;
}

/* SIGHUP: password_file and acl_file are read again, as mosquitto does; a file that fails keeps
 * the rules in force. The rest of the configuration is not reloaded. */
static void reload_security(broker_t *b)
{
    char err[512];
    mq_auth_t *a = mq_security_load(&b->cfg, err, sizeof(err));
    if (a == NULL) {
        mq_server_reload_end(b->srv); /* the CONNECTs that waited meet the rules in force */
        MQ_LOG(MQ_LOG_ERROR,
               "Error: reloading password_file/acl_file: %s; the previous rules "
               "stay in force.",
               err);
        return;
    }
    mq_server_set_auth(b->srv, a);
    MQ_LOG(MQ_LOG_NOTICE, "SIGHUP received: log file re-opened, password_file and acl_file "
                          "re-read; the rest of the configuration is unchanged.");
}

/* Waits up to 'wait' seconds for one of the broker's signals and takes it; returns it, or -1.
 * A SIGHUP is announced to the workers (mq_server_reload_begin) while it is still pending, and
 * only then taken: a CONNECT that comes once kill has returned waits for the reload, as
 * mosquitto's one loop handles the signal before its next connection (net/auth.h). */
static int wait_signal(broker_t *b, double wait)
{
    if (wait < 0)
        wait = 0;
    struct timespec ts = {.tv_sec = (time_t)wait,
                          .tv_nsec = (long)((wait - (double)(time_t)wait) * 1e9)};
    if (b->sigfd < 0)
        return sigtimedwait(&b->signals, NULL, &ts);
    struct pollfd pfd = {.fd = b->sigfd, .events = POLLIN};
    if (ppoll(&pfd, 1, &ts, NULL) <= 0)
        return -1; /* timeout or EINTR */
    sigset_t pending, take;
    if (sigpending(&pending) < 0)
        return -1;
    sigandset(&take, &pending, &b->signals); /* no SIGHUP taken that was not announced */
    if (sigismember(&take, SIGHUP) == 1)
        mq_server_reload_begin(b->srv);
    return sigtimedwait(&take, NULL, &(struct timespec){0});
}

/* The control thread: signals, $SYS every sys_interval and the persistence autosave. Returns
 * on SIGINT or SIGTERM. */
static void run_control_loop(broker_t *b)
{
    uint32_t interval = b->cfg.sys_interval;
    double next_sys = mono_s();
    for (;;) {
        if (b->sys && mono_s() >= next_sys) {
            mq_sys_update(b->sys, mono_s());
            next_sys += interval;
            if (next_sys < mono_s()) /* a stall: do not publish in a burst to catch up */
                next_sys = mono_s() + interval;
        }
        (void)mq_persist_tick(b->persist, b->srv, mono_s());
        double wait = mq_persist_wait(b->persist, mono_s());
        if (b->sys && next_sys - mono_s() < wait)
            wait = next_sys - mono_s();
        int sig = wait_signal(b, wait);
        if (sig < 0)
            continue; /* timeout (EAGAIN) or EINTR */
        if (sig == SIGINT || sig == SIGTERM)
            break;
        if (sig == SIGHUP) {
            mq_logging_reopen(b->logging); /* log rotation */
            /* certificates and keys, for new connections (mosquitto's certfile/keyfile) */
            (void)mq_server_reload_tls(b->srv); /* each listener's outcome is logged */
            reload_security(b);
        }
        if (sig == SIGUSR1) { /* mosquitto's: save the in-memory database now */
            if (b->persist)
                (void)mq_persist_save(b->persist, b->srv);
            else
                MQ_LOG(MQ_LOG_NOTICE, "SIGUSR1 received: persistence is off, nothing saved.");
        }
    }
    MQ_LOG(MQ_LOG_NOTICE, "starling version %s terminating", MQ_VERSION);
}

/* A second SIGINT or SIGTERM while the broker flushes its connections: no more waiting. */
static void exit_now(int sig)
{
    (void)sig;
    _exit(1); /* async-signal-safe; what was not flushed is lost, as asked */
}

/* After the first SIGINT or SIGTERM: the next one ends the process at once. The other threads
 * keep the signals blocked, so the handler runs on this one. */
static void arm_second_signal(broker_t *b)
{
    struct sigaction sa = {.sa_handler = exit_now};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    b->flush_ms = SHUTDOWN_FLUSH_MS;
}

/* The one shutdown sequence, after a failed start-up as after the control loop: stops
 * whatever was started, in the reverse order. Returns -1 when the last snapshot could not be
 * written (the previous one is kept; the exit status says so). */
static int teardown(broker_t *b)
{
    int rc = 0;
    mq_sys_free(b->sys);
    mq_metrics_stop(b->metrics);
    if (b->srv) {
        mq_logging_set_server(b->logging, NULL);
        if (b->persist && b->served) {
            /* every connection closed and every worker stopped: nothing changes after this */
            mq_server_halt(b->srv, b->flush_ms);
            rc = mq_persist_save(b->persist, b->srv);
        }
        mq_server_stop(b->srv, b->flush_ms);
    }
    mq_persist_free(b->persist);
    if (b->wrote_pid_file)
        unlink(b->cfg.pid_file);
    mq_logging_stop(b->logging);
    mq_config_fini(&b->cfg);
    if (b->sigfd >= 0)
        close(b->sigfd);
    return rc;
}

int main(int argc, char **argv)
{
    cli_t cli = {0};
    int rc = parse_command_line(argc, argv, &cli);
    if (rc >= 0)
        return rc;
    broker_t b = {.sigfd = -1};
    mq_config_init(&b.cfg);
    rc = 1;
    if (start_process(&b, &cli) == 0 && start_broker(&b, &cli) == 0) {
        run_control_loop(&b);
        b.served = true;
        arm_second_signal(&b);
        rc = 0;
    }
    if (teardown(&b) < 0)
        rc = 1;
    return rc;
}
