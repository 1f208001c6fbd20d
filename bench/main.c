/* SPDX-License-Identifier: MIT */
/* bench/main.c - starling-bench: command line, run plan, phases, live progress and summary. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench/client.h"
#include "bench/hist.h"
#include "bench/relay.h"
#include "core/mem.h"
#include "core/rc.h"

#define RLX memory_order_relaxed
#define TICK_NS 100000000ull /* control loop period: 100 ms */
#define SEC_NS 1000000000ull

/* The one piece of global mutable state: a signal handler can reach nothing else. */
static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

static const struct {
    const char *name;
    enum sb_scenario sc;
    const char *topic; /* default topic template */
    const char *what;
} SCENARIOS[] = {
    {"conn", SB_CONN, "", "open -c connections at -R per second, measure CONNACK latency"},
    {"sub", SB_SUB, "bench/pub/%i", "-c subscribers (filter -t), count what arrives"},
    {"pub", SB_PUB, "bench/pub/%i", "-c publishers, every -I ms or as fast as allowed"},
    {"pairs", SB_PAIRS, "bench/pairs/%i", "-c publisher->subscriber pairs on distinct topics"},
    {"fanout", SB_FANOUT, "bench/fanout", "1 publisher, -c subscribers on one topic"},
    {"fanin", SB_FANIN, "bench/fanin/%i", "-c publishers, 1 subscriber on the wildcard"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: starling-bench SCENARIO [options]\n\nscenarios:\n");
    for (size_t i = 0; i < MQ_ARRAY_LEN(SCENARIOS); i++)
        fprintf(f, "  %-7s %s\n", SCENARIOS[i].name, SCENARIOS[i].what);
    fprintf(f, "  %-7s %s\n", "relay",
            "serve as a trivial MQTT relay on 127.0.0.1:-p (calibrates the bench)");
    fprintf(f,
            "\noptions:\n"
            "  -h HOST          broker host (127.0.0.1); ws://HOST[:PORT][/PATH]: MQTT over\n"
            "                   WebSockets (port 80 unless given, path /mqtt)\n"
            "  -p PORT          broker port (1883)\n"
            "  -c COUNT         clients, or pairs for 'pairs' (10)\n"
            "  -q QOS           0, 1 or 2 for publishes and subscriptions (0)\n"
            "  -s SIZE          payload bytes, at least %u for the measurement header (256)\n"
            "  -I MS            interval between publishes per publisher; 0 = as fast as the\n"
            "                   window allows (0)\n"
            "  -W, --inflight N messages a publisher may have outstanding: unacknowledged\n"
            "                   (QoS>0) and not yet delivered to our subscribers; fanin\n"
            "                   shares it among the publishers (100, QoS 2: 20)\n"
            "  -t TOPIC         topic template, %%i = client index (per scenario)\n"
            "  -d SECONDS       publishing time; 'conn' and 'sub': holding time (10)\n"
            "  -V 3|4|5         MQTT version: 3.1, 3.1.1 or 5 (4)\n"
            "  -R RATE          new connections per second, all threads (0 = no limit)\n"
            "  -k SECONDS       keep alive, 0 = off (0)\n"
            "  -u USER, -P PASS credentials (%%i in USER = client index)\n"
            "  --tls            connect with TLS (implied by the next three)\n"
            "  --cafile FILE    TLS: verify the broker's certificate against these CAs\n"
            "  --cert FILE, --key FILE  TLS: the client's certificate and key\n"
            "  --threads N      event-loop threads (1)\n"
            "  --retain         publishes set the retain flag (each one replaces its topic's\n"
            "                   retained message; with persistence, a journal record)\n"
            "  --quiet          no live progress on stderr\n"
            "  --help\n"
            "\nLive progress goes to stderr once a second; the summary and one line starting\n"
            "with 'RESULT ' go to stdout. Exit status: 0 ok, 1 a connection failed or (QoS>0)\n"
            "a message was lost or duplicated, 2 bad usage.\n",
            SB_HDR_SIZE);
}

__attribute__((format(printf, 1, 2), noreturn)) static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "starling-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(starling-bench --help for usage)\n");
    va_end(ap);
    exit(2);
}

static uint32_t parse_u32(const char *arg, const char *opt, uint32_t min, uint32_t max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(arg, &end, 10);
    if (errno || end == arg || *end || arg[0] == '-' || v < min || v > max)
        die_usage("%s: expected a number from %u to %u, got '%s'", opt, min, max, arg);
    return (uint32_t)v;
}

/* The options' defaults for the scenario named 'name'; exits with status 2 for an unknown one. */
static sb_opts_t default_opts(const char *name)
{
    size_t s;
    for (s = 0; s < MQ_ARRAY_LEN(SCENARIOS); s++)
        if (strcmp(name, SCENARIOS[s].name) == 0)
            break;
    if (s == MQ_ARRAY_LEN(SCENARIOS))
        die_usage("unknown scenario '%s'", name);
    return (sb_opts_t){.scenario = SCENARIOS[s].sc,
                       .scenario_name = SCENARIOS[s].name,
                       .host = "127.0.0.1",
                       .port = 1883,
                       .count = 10,
                       .size = 256,
                       .topic = SCENARIOS[s].topic,
                       .duration_s = 10,
                       .proto = 4,
                       .threads = 1,
                       .inflight = 0};
}

/* -I: milliseconds, fractions allowed, as nanoseconds. */
static uint64_t parse_interval(const char *arg)
{
    char *end;
    double ms = strtod(arg, &end);
    if (end == arg || *end || !(ms >= 0) || ms > 3600000)
        die_usage("-I: expected milliseconds (fractions allowed), got '%s'", arg);
    uint64_t ns = (uint64_t)(ms * 1e6);
    if (ms > 0 && ns < 1000)
        die_usage("-I: at least 0.001 ms");
    return ns;
}

/* -d: seconds, fractions allowed. */
static double parse_seconds(const char *arg)
{
    char *end;
    double s = strtod(arg, &end);
    if (end == arg || *end || !(s >= 0) || s > 1e6)
        die_usage("-d: expected seconds, got '%s'", arg);
    return s;
}

/* -h ws://HOST[:PORT][/PATH] (an IPv6 address in brackets). The strings stay for the run. */
static void parse_ws_url(sb_opts_t *o, const char *url)
{
    const char *h = url + 5, *end = h + strcspn(h, "/");
    const char *colon = NULL;
    if (*h == '[') { /* [v6]:port */
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb)
            die_usage("-h: bad URL '%s'", url);
        colon = rb[1] == ':' ? rb + 1 : NULL;
        o->host = mq_strndup(h + 1, (size_t)(rb - h - 1));
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        o->host = mq_strndup(h, (size_t)((colon ? colon : end) - h));
    }
    if (o->host[0] == '\0')
        die_usage("-h: no host in '%s'", url);
    if (!o->port_given)
        o->port = 80;
    if (colon) {
        char port[8] = "";
        size_t n = (size_t)(end - colon - 1);
        if (n == 0 || n >= sizeof(port))
            die_usage("-h: bad port in '%s'", url);
        memcpy(port, colon + 1, n);
        o->port = (uint16_t)parse_u32(port, "-h port", 1, 65535);
    }
    o->ws = true;
    o->ws_path = *end ? end : "/mqtt";
}

/* Applies option 'ch' (getopt_long's result) with argument 'arg' to 'o'. */
static void apply_option(sb_opts_t *o, int ch, char *arg)
{
    switch (ch) {
    case 'h':
        if (strncmp(arg, "ws://", 5) == 0)
            parse_ws_url(o, arg);
        else
            o->host = arg;
        break;
    case 'p':
        o->port = (uint16_t)parse_u32(arg, "-p", 1, 65535);
        o->port_given = true;
        break;
    case 'c':
        o->count = parse_u32(arg, "-c", 1, 10000000);
        break;
    case 'q':
        o->qos = (uint8_t)parse_u32(arg, "-q", 0, 2);
        break;
    case 's':
        o->size = parse_u32(arg, "-s", 0, 256u << 20);
        break;
    case 'I':
        o->interval_ns = parse_interval(arg);
        break;
    case 'W':
        o->inflight = parse_u32(arg, "-W", 1, 65535);
        break;
    case 't':
        o->topic = arg;
        break;
    case 'V':
        o->proto = (uint8_t)parse_u32(arg, "-V", 3, 5);
        break;
    case 'R':
        o->conn_rate = parse_u32(arg, "-R", 0, 10000000);
        break;
    case 'k':
        o->keepalive = (uint16_t)parse_u32(arg, "-k", 0, 65535);
        break;
    case 'u':
        o->username = arg;
        break;
    case 'P':
        o->password = arg;
        break;
    case 'T':
        o->threads = parse_u32(arg, "--threads", 1, 256);
        break;
    case 'Q':
        o->quiet = true;
        break;
    case 'r':
        o->retain = true;
        break;
    case 'H':
        usage(stdout);
        exit(0);
    case 'S':
        o->tls = true;
        break;
    case 'A':
        o->cafile = arg;
        o->tls = true;
        break;
    case 'C':
        o->certfile = arg;
        o->tls = true;
        break;
    case 'K':
        o->keyfile = arg;
        o->tls = true;
        break;
    case 'd':
        o->duration_s = parse_seconds(arg);
        break;
    default:
        die_usage("bad option");
    }
}

/* Fills in what depends on other options and rejects combinations that cannot run. */
static void finish_opts(sb_opts_t *o)
{
    if (o->inflight == 0)
        /* mosquitto's max_inflight_messages is 20 and over 3.1.1 it silently drops the QoS 2
         * messages past it (v5 announces it as Receive Maximum, which we honour) */
        o->inflight = o->qos == 2 ? 20 : 100;
    if (o->size < SB_HDR_SIZE) {
        fprintf(stderr,
                "starling-bench: -s raised to %u bytes: each payload carries the "
                "publisher id, sequence number and send time\n",
                SB_HDR_SIZE);
        o->size = SB_HDR_SIZE;
    }
    if (o->ws && o->tls)
        die_usage("ws:// with --tls (wss://) is not supported by the bench yet");
    bool publishes = o->scenario != SB_CONN && o->scenario != SB_SUB;
    if (publishes && strpbrk(o->topic, "+#"))
        die_usage("-t: a publish topic cannot hold the wildcards + or #: '%s'", o->topic);
    if (o->scenario != SB_CONN && o->topic[0] == '\0')
        die_usage("-t: the topic is empty");
    if ((o->certfile == NULL) != (o->keyfile == NULL))
        die_usage("--cert and --key go together");
}

static void parse_args(int argc, char **argv, sb_opts_t *o)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        exit(argc < 2 ? 2 : 0);
    }
    *o = default_opts(argv[1]);
    static const struct option longs[] = {
        {"threads", required_argument, NULL, 'T'},
        {"inflight", required_argument, NULL, 'W'},
        {"rate", required_argument, NULL, 'R'},
        {"quiet", no_argument, NULL, 'Q'},
        {"help", no_argument, NULL, 'H'},
        {"tls", no_argument, NULL, 'S'},
        {"cafile", required_argument, NULL, 'A'},
        {"cert", required_argument, NULL, 'C'},
        {"key", required_argument, NULL, 'K'},
        {"retain", no_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "h:p:c:q:s:I:W:t:d:V:R:k:u:P:", longs, NULL)) != -1)
        apply_option(o, ch, optarg);
    if (optind < argc)
        die_usage("unexpected argument '%s'", argv[optind]);
    finish_opts(o);
}

/* The template with every %i replaced by 'i' ("%%" is a literal %). Owned by the caller. */
static char *expand(const char *tmpl, uint32_t i)
{
    size_t cap = strlen(tmpl) + 64, n = 0;
    char *out = mq_alloc(cap);
    for (const char *p = tmpl; *p; p++) {
        if (n + 16 > cap)
            out = mq_realloc(out, cap *= 2);
        if (p[0] == '%' && p[1] == 'i') {
            n += (size_t)snprintf(out + n, cap - n, "%u", i);
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            out[n++] = '%';
            p++;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return out;
}

/* The template as a filter: every level holding %i becomes '+'. Owned by the caller. */
static char *wildcard(const char *tmpl)
{
    char *out = mq_alloc(strlen(tmpl) + 2);
    size_t n = 0;
    const char *p = tmpl;
    while (1) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (memmem(p, len, "%i", 2)) {
            out[n++] = '+';
        } else {
            memcpy(out + n, p, len);
            n += len;
        }
        if (!end)
            break;
        out[n++] = '/';
        p = end + 1;
    }
    out[n] = '\0';
    return out;
}

static void plan_client(sb_run_t *r, uint32_t gi, uint8_t role, uint32_t thread, uint32_t pub_id,
                        int64_t expect, char *topic)
{
    r->plan[gi] = (sb_plan_t){.role = role,
                              .thread = thread % r->o->threads,
                              .pub_id = pub_id,
                              .expect = expect,
                              .topic = topic};
}

/* Lays out who connects where: pairs share a thread, so delivery stays thread-local. */
static void build_plan(sb_run_t *r)
{
    const sb_opts_t *o = r->o;
    uint32_t n = o->count;
    switch (o->scenario) {
    case SB_CONN:
        r->n_clients = n;
        break;
    case SB_SUB:
        r->n_clients = n;
        break;
    case SB_PUB:
        r->n_clients = n;
        r->n_pubs = n;
        break;
    case SB_PAIRS:
        r->n_clients = 2 * n;
        r->n_pubs = n;
        r->fan = 1;
        break;
    case SB_FANOUT:
        r->n_clients = n + 1;
        r->n_pubs = 1;
        r->fan = n;
        break;
    case SB_FANIN:
        r->n_clients = n + 1;
        r->n_pubs = n;
        r->fan = 1;
        break;
    }
    r->plan = mq_calloc(r->n_clients, sizeof(sb_plan_t));
    r->pubs = mq_calloc(r->n_pubs ? r->n_pubs : 1, sizeof(sb_pubstat_t));
    for (uint32_t i = 0; i < n; i++) {
        switch (o->scenario) {
        case SB_CONN:
            plan_client(r, i, SB_ROLE_CONN, i, 0, 0, NULL);
            break;
        case SB_SUB:
            plan_client(r, i, SB_ROLE_SUB, i, 0, SB_EXPECT_NONE, expand(o->topic, i));
            break;
        case SB_PUB:
            plan_client(r, i, SB_ROLE_PUB, i, i, 0, expand(o->topic, i));
            break;
        case SB_PAIRS:
            plan_client(r, 2 * i, SB_ROLE_SUB, i, 0, i, expand(o->topic, i));
            plan_client(r, 2 * i + 1, SB_ROLE_PUB, i, i, 0, expand(o->topic, i));
            break;
        case SB_FANOUT:
            plan_client(r, i + 1, SB_ROLE_SUB, i, 0, 0, expand(o->topic, 0));
            break;
        case SB_FANIN:
            plan_client(r, i + 1, SB_ROLE_PUB, i, i, 0, expand(o->topic, i));
            break;
        }
    }
    if (o->scenario == SB_FANOUT)
        plan_client(r, 0, SB_ROLE_PUB, 0, 0, 0, expand(o->topic, 0));
    if (o->scenario == SB_FANIN)
        plan_client(r, 0, SB_ROLE_SUB, 0, 0, SB_EXPECT_ALL, wildcard(o->topic));
}

/* Raises the open-file limit to the hard limit; false when even that is too low. */
static bool raise_nofile(uint32_t n_clients, uint32_t threads)
{
    uint64_t need = (uint64_t)n_clients + threads + 16; /* sockets, epoll fds, stdio, slack */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return true; /* cannot tell: let socket() report EMFILE per client */
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            rl.rlim_cur = old;
    }
    if (rl.rlim_max != RLIM_INFINITY && need > rl.rlim_max) {
        fprintf(stderr,
                "starling-bench: %u connections need about %llu file descriptors, but the "
                "hard limit on open files (RLIMIT_NOFILE) is %llu.\n"
                "  Lower -c, or raise the hard limit (ulimit -Hn as root, LimitNOFILE= in a "
                "systemd unit, nofile in /etc/security/limits.conf).\n",
                n_clients, (unsigned long long)need, (unsigned long long)rl.rlim_max);
        return false;
    }
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur)
        fprintf(stderr,
                "starling-bench: warning: open-file limit %llu is below the %llu "
                "needed\n",
                (unsigned long long)rl.rlim_cur, (unsigned long long)need);
    return true;
}

/* Warns when one source address cannot hold that many connections to one port. */
static void check_port_range(uint32_t n_clients)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    unsigned lo, hi;
    if (!f)
        return;
    if (fscanf(f, "%u %u", &lo, &hi) == 2 && hi >= lo && n_clients > hi - lo + 1)
        fprintf(stderr,
                "starling-bench: warning: %u connections but only %u local ports "
                "(net.ipv4.ip_local_port_range)\n",
                n_clients, hi - lo + 1);
    fclose(f);
}

static void resolve(sb_opts_t *o)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    char port[8];
    snprintf(port, sizeof(port), "%u", o->port);
    int rc = getaddrinfo(o->host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "starling-bench: %s: %s\n", o->host, gai_strerror(rc));
        exit(1);
    }
    memcpy(&o->addr, res->ai_addr, res->ai_addrlen);
    o->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
}

/* ---- totals ------------------------------------------------------------------------------ */

typedef struct totals {
    uint64_t sent, recv, acked, lost, dup, reorder, foreign, errors, conn_ok, conn_fail, open,
        ready, subs_ready, last_recv_ns;
} totals_t;

static void sum(sb_thread_t **th, uint32_t n, totals_t *t, sb_hist_t *lat, sb_hist_t *connack)
{
    *t = (totals_t){0};
    if (lat)
        sb_hist_reset(lat);
    if (connack)
        sb_hist_reset(connack);
    for (uint32_t i = 0; i < n; i++) {
        const sb_stats_t *s = sb_thread_stats(th[i]);
        t->sent += atomic_load_explicit(&s->sent, RLX);
        t->recv += atomic_load_explicit(&s->recv, RLX);
        t->acked += atomic_load_explicit(&s->acked, RLX);
        t->lost += atomic_load_explicit(&s->lost, RLX);
        t->dup += atomic_load_explicit(&s->dup, RLX);
        t->reorder += atomic_load_explicit(&s->reorder, RLX);
        t->foreign += atomic_load_explicit(&s->foreign, RLX);
        t->errors += atomic_load_explicit(&s->errors, RLX);
        t->conn_ok += atomic_load_explicit(&s->conn_ok, RLX);
        t->conn_fail += atomic_load_explicit(&s->conn_fail, RLX);
        t->open += atomic_load_explicit(&s->open, RLX);
        t->ready += atomic_load_explicit(&s->ready, RLX);
        t->subs_ready += atomic_load_explicit(&s->subs_ready, RLX);
        uint64_t l = atomic_load_explicit(&s->last_recv_ns, RLX);
        if (l > t->last_recv_ns)
            t->last_recv_ns = l;
        if (lat)
            sb_hist_add(lat, &s->lat);
        if (connack)
            sb_hist_add(connack, &s->connack);
    }
}

/* Formats a duration in ns for people: "87us", "1.25ms", "2.10s". */
static const char *fmt_ns(char *buf, size_t cap, uint64_t ns)
{
    if (ns < 1000000)
        snprintf(buf, cap, "%.0fus", ns / 1e3);
    else if (ns < SEC_NS)
        snprintf(buf, cap, "%.2fms", ns / 1e6);
    else
        snprintf(buf, cap, "%.2fs", ns / 1e9);
    return buf;
}

/* Formats a count for people: "950", "12.3k", "1.52M". */
static const char *fmt_n(char *buf, size_t cap, double v)
{
    if (v < 1e4)
        snprintf(buf, cap, "%.0f", v);
    else if (v < 1e6)
        snprintf(buf, cap, "%.1fk", v / 1e3);
    else
        snprintf(buf, cap, "%.2fM", v / 1e6);
    return buf;
}

/* Live progress, like emqtt-bench: one line a second on stderr. */
typedef struct progress {
    uint64_t t0, last_ns;
    totals_t prev;
    sb_hist_t *prev_lat, *cur_lat, *win_lat, *connack;
} progress_t;

static void progress_tick(progress_t *p, sb_thread_t **th, uint32_t n, const sb_run_t *r, int phase,
                          uint64_t now)
{
    totals_t t;
    sum(th, n, &t, p->cur_lat, p->connack);
    double dt = (now - p->last_ns) / 1e9;
    char a[16], b[16], c[16], d[16];
    if (phase == SB_PHASE_SETUP) {
        fprintf(stderr, "[%6.1fs] setup: ready=%llu/%u failed=%llu connack p50=%s p99=%s\n",
                (now - p->t0) / 1e9, (unsigned long long)t.ready, r->n_clients,
                (unsigned long long)t.conn_fail,
                fmt_ns(a, sizeof(a), sb_hist_percentile(p->connack, 50)),
                fmt_ns(b, sizeof(b), sb_hist_percentile(p->connack, 99)));
    } else {
        sb_hist_diff(p->win_lat, p->cur_lat, p->prev_lat);
        fprintf(stderr,
                "[%6.1fs] %s conns=%llu sent=%s/s recv=%s/s p50=%s p99=%s lost=%llu dup=%llu "
                "err=%llu\n",
                (now - p->t0) / 1e9, phase == SB_PHASE_RUN ? "run" : "drain",
                (unsigned long long)t.open, fmt_n(a, sizeof(a), (t.sent - p->prev.sent) / dt),
                fmt_n(b, sizeof(b), (t.recv - p->prev.recv) / dt),
                fmt_ns(c, sizeof(c), sb_hist_percentile(p->win_lat, 50)),
                fmt_ns(d, sizeof(d), sb_hist_percentile(p->win_lat, 99)),
                (unsigned long long)t.lost, (unsigned long long)t.dup,
                (unsigned long long)t.errors);
    }
    p->prev = t;
    p->last_ns = now;
    sb_hist_t *x = p->prev_lat;
    p->prev_lat = p->cur_lat;
    p->cur_lat = x;
}

static void set_phase(sb_run_t *r, int phase)
{
    /* release: publishes run_start_ns and fan to the engines (their acquire load) */
    atomic_store_explicit(&r->phase, phase, memory_order_release);
}

/* Waits until every engine has acted on 'phase' (or later). */
static void wait_seen(sb_thread_t **th, uint32_t n, int phase)
{
    for (uint32_t i = 0; i < n; i++)
        while (atomic_load_explicit(&sb_thread_stats(th[i])->seen_phase, memory_order_acquire) <
               phase)
            nanosleep(&(struct timespec){0, 1000000}, NULL);
}

static void sleep_tick(void)
{
    nanosleep(&(struct timespec){0, (long)TICK_NS}, NULL);
}

/* ---- summary ----------------------------------------------------------------------------- */

static int report(const sb_run_t *r, const totals_t *t, const sb_hist_t *lat,
                  const sb_hist_t *connack, uint64_t timed_out, double run_s, double recv_s)
{
    const sb_opts_t *o = r->o;
    bool is_conn = o->scenario == SB_CONN;
    const sb_hist_t *h = is_conn ? connack : lat;
    uint64_t p50 = sb_hist_percentile(h, 50), p90 = sb_hist_percentile(h, 90),
             p99 = sb_hist_percentile(h, 99), p999 = sb_hist_percentile(h, 99.9),
             max = sb_hist_max(h);
    uint64_t errors = t->errors + timed_out;
    double rate_sent = run_s > 0 ? t->sent / run_s : 0,
           rate_recv = recv_s > 0 ? t->recv / recv_s : 0;
    char a[16], b[16], c[16], d[16], e[16];

    printf("starling-bench %s: %u clients (-c %u), QoS %u, %u B payload, %.1f s, %u thread%s\n",
           o->scenario_name, r->n_clients, o->count, o->qos, o->size, run_s, o->threads,
           o->threads == 1 ? "" : "s");
    printf("  connections  %llu ok, %llu failed%s, CONNACK p50 %s p99 %s max %s\n",
           (unsigned long long)t->conn_ok, (unsigned long long)(t->conn_fail + timed_out),
           timed_out ? " (incl. setup timeouts)" : "",
           fmt_ns(a, sizeof(a), sb_hist_percentile(connack, 50)),
           fmt_ns(b, sizeof(b), sb_hist_percentile(connack, 99)),
           fmt_ns(c, sizeof(c), sb_hist_max(connack)));
    if (!is_conn) {
        printf("  messages     sent %llu (%.0f/s), received %llu (%.0f/s)",
               (unsigned long long)t->sent, rate_sent, (unsigned long long)t->recv, rate_recv);
        if (o->qos > 0)
            printf(", acked %llu", (unsigned long long)t->acked);
        printf("\n  latency      p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%llu samples)\n",
               fmt_ns(a, sizeof(a), p50), fmt_ns(b, sizeof(b), p90), fmt_ns(c, sizeof(c), p99),
               fmt_ns(d, sizeof(d), p999), fmt_ns(e, sizeof(e), max),
               (unsigned long long)sb_hist_count(lat));
        printf("  integrity    lost %llu%s, duplicates %llu, reordered %llu",
               (unsigned long long)t->lost, o->qos == 0 && t->lost ? " (QoS 0: allowed)" : "",
               (unsigned long long)t->dup, (unsigned long long)t->reorder);
        if (t->foreign)
            printf(", foreign payloads %llu", (unsigned long long)t->foreign);
        printf("\n");
    }
    printf("  errors       %llu\n", (unsigned long long)errors);
    printf("RESULT scenario=%s clients=%u count=%u threads=%u qos=%u size=%u duration=%.2f "
           "sent=%llu recv=%llu rate_sent=%.0f rate_recv=%.0f p50_us=%.1f p90_us=%.1f "
           "p99_us=%.1f p999_us=%.1f max_us=%.1f lost=%llu dup=%llu reorder=%llu errors=%llu "
           "conn_ok=%llu conn_fail=%llu connack_p50_us=%.1f connack_p99_us=%.1f setup_s=%.3f "
           "conn_rate=%.0f\n",
           o->scenario_name, r->n_clients, o->count, o->threads, o->qos, o->size, run_s,
           (unsigned long long)t->sent, (unsigned long long)t->recv, rate_sent, rate_recv,
           p50 / 1e3, p90 / 1e3, p99 / 1e3, p999 / 1e3, max / 1e3, (unsigned long long)t->lost,
           (unsigned long long)t->dup, (unsigned long long)t->reorder, (unsigned long long)errors,
           (unsigned long long)t->conn_ok, (unsigned long long)(t->conn_fail + timed_out),
           sb_hist_percentile(connack, 50) / 1e3, sb_hist_percentile(connack, 99) / 1e3, r->setup_s,
           r->setup_s > 0 ? (double)t->conn_ok / r->setup_s : 0.0);
    fflush(stdout);
    bool failed = errors > 0 || t->conn_fail > 0 || (o->qos > 0 && (t->lost > 0 || t->dup > 0));
    return failed ? 1 : 0;
}

/* ---- main -------------------------------------------------------------------------------- */

/* 'starling-bench relay [-p PORT] [--quiet]': calibration, see bench/relay.c. */
static int run_relay(int argc, char **argv)
{
    uint32_t port = 1883;
    bool quiet = false;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-p") == 0 && i + 1 < argc)
            port = parse_u32(argv[++i], "-p", 1, 65535);
        else if (strcmp(argv[i], "--quiet") == 0)
            quiet = true;
        else
            die_usage("relay takes -p PORT and --quiet");
    }
    return sb_relay_main((uint16_t)port, quiet);
}

static void catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Creates the o->threads engines; NULL after printing why. Owned by the caller. */
static sb_thread_t **new_engines(sb_run_t *run)
{
    uint32_t n = run->o->threads;
    sb_thread_t **th = mq_calloc(n, sizeof(*th));
    for (uint32_t i = 0; i < n; i++) {
        th[i] = sb_thread_new(run, i);
        if (!th[i]) {
            fprintf(stderr, "starling-bench: epoll_create1: %s\n", strerror(errno));
            for (uint32_t k = 0; k < i; k++)
                sb_thread_free(th[k]);
            mq_free(th);
            return NULL;
        }
    }
    return th;
}

/* Starts the engines in order; returns how many started (n unless pthread_create failed). */
static uint32_t start_engines(sb_thread_t **th, uint32_t n)
{
    uint32_t started = 0;
    for (; started < n; started++) {
        int rc = sb_thread_start(th[started]);
        if (rc < 0) {
            fprintf(stderr, "starling-bench: pthread_create: %s\n", strerror(-rc));
            break;
        }
    }
    return started;
}

static void init_progress(progress_t *pg)
{
    *pg = (progress_t){.t0 = sb_now_ns()};
    pg->last_ns = pg->t0;
    pg->prev_lat = mq_calloc(1, sizeof(sb_hist_t));
    pg->cur_lat = mq_calloc(1, sizeof(sb_hist_t));
    pg->win_lat = mq_calloc(1, sizeof(sb_hist_t));
    pg->connack = mq_calloc(1, sizeof(sb_hist_t));
}

/* Setup phase: waits until every client connected (and subscribed) or failed, within a
 * deadline. Leaves the totals in 't'; returns how many clients the deadline cut off. */
static uint64_t await_setup(const sb_run_t *run, sb_thread_t **th, uint32_t started, progress_t *pg,
                            totals_t *t)
{
    const sb_opts_t *o = run->o;
    uint64_t setup_ns =
        10 * SEC_NS + (o->conn_rate ? (uint64_t)run->n_clients * SEC_NS / o->conn_rate
                                    : run->n_clients * 1000000ull);
    for (;;) {
        uint64_t now = sb_now_ns();
        sum(th, o->threads, t, NULL, NULL);
        if (started < o->threads || g_interrupted || t->ready + t->conn_fail >= run->n_clients)
            return 0;
        if (now - pg->t0 > setup_ns) {
            uint64_t timed_out = run->n_clients - t->ready - t->conn_fail;
            fprintf(stderr, "starling-bench: %llu clients not ready after %.0f s\n",
                    (unsigned long long)timed_out, setup_ns / 1e9);
            return timed_out;
        }
        if (!o->quiet && now - pg->last_ns >= SEC_NS)
            progress_tick(pg, th, o->threads, run, SB_PHASE_SETUP, now);
        sleep_tick();
    }
}

/* Run phase: the publishers publish for -d seconds (not at all when no client is ready). */
static void run_publishers(sb_run_t *run, sb_thread_t **th, uint32_t started, progress_t *pg,
                           const totals_t *t)
{
    const sb_opts_t *o = run->o;
    run->run_start_ns = sb_now_ns();
    run->setup_s = (double)(run->run_start_ns - pg->t0) / 1e9;
    set_phase(run, SB_PHASE_RUN);
    pg->last_ns = run->run_start_ns;
    uint64_t run_ns = t->ready ? (uint64_t)(o->duration_s * 1e9) : 0; /* nobody to run */
    while (!g_interrupted && started == o->threads) {
        uint64_t now = sb_now_ns();
        if (now - run->run_start_ns >= run_ns)
            break;
        if (!o->quiet && now - pg->last_ns >= SEC_NS)
            progress_tick(pg, th, o->threads, run, SB_PHASE_RUN, now);
        uint64_t left = run_ns - (now - run->run_start_ns);
        nanosleep(&(struct timespec){0, (long)(left < TICK_NS ? left : TICK_NS)}, NULL);
    }
}

/* Drain phase: publishers stop; waits for what is still on its way, while it keeps coming.
 * Leaves the totals in 't'; returns when the phase started. */
static uint64_t drain(sb_run_t *run, sb_thread_t **th, uint32_t started, progress_t *pg,
                      totals_t *t)
{
    const sb_opts_t *o = run->o;
    set_phase(run, SB_PHASE_DRAIN);
    wait_seen(th, started, SB_PHASE_DRAIN);
    uint64_t drain_start = sb_now_ns(), last_change = drain_start, last_seen = UINT64_MAX;
    for (;;) { /* after Ctrl-C too, but briefly: the counts are worth a second */
        uint64_t now = sb_now_ns();
        sum(th, o->threads, t, NULL, NULL);
        bool all_in = run->fan ? t->recv >= t->sent * run->fan : true;
        bool all_acked = o->qos == 0 || t->acked >= t->sent;
        if ((all_in && all_acked) || now - drain_start > (g_interrupted ? 1 : 5) * SEC_NS)
            break;
        uint64_t progress = t->recv + t->acked;
        if (progress != last_seen) {
            last_seen = progress;
            last_change = now;
        } else if (now - last_change > SEC_NS / 2) {
            break; /* nothing more is coming */
        }
        if (!o->quiet && now - pg->last_ns >= SEC_NS)
            progress_tick(pg, th, o->threads, run, SB_PHASE_DRAIN, now);
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    return drain_start;
}

static void free_run(sb_run_t *run, sb_thread_t **th, progress_t *pg)
{
    for (uint32_t i = 0; i < run->o->threads; i++)
        sb_thread_free(th[i]);
    for (uint32_t i = 0; i < run->n_clients; i++)
        mq_free(run->plan[i].topic);
    mq_free(run->plan);
    mq_free(run->pubs);
    mq_free(th);
    mq_free(pg->prev_lat);
    mq_free(pg->cur_lat);
    mq_free(pg->win_lat);
    mq_free(pg->connack);
    sb_tls_ctx_free(run->tls_ctx);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "relay") == 0)
        return run_relay(argc, argv);
    sb_opts_t o;
    parse_args(argc, argv, &o);
    resolve(&o);

    sb_run_t run = {.o = &o};
    if (o.tls && !(run.tls_ctx = sb_tls_ctx_new(o.cafile, o.certfile, o.keyfile)))
        return 1;
    build_plan(&run);
    if (o.threads > run.n_clients)
        o.threads = run.n_clients; /* an idle engine thread would only cost a core's time */
    for (uint32_t i = 0; i < run.n_clients; i++)
        run.plan[i].thread %= o.threads;
    if (!raise_nofile(run.n_clients, o.threads))
        return 1;
    check_port_range(run.n_clients);
    catch_signals();

    sb_thread_t **th = new_engines(&run);
    if (!th)
        return 1;
    uint32_t started = start_engines(th, o.threads);
    progress_t pg;
    init_progress(&pg);
    totals_t t;
    uint64_t timed_out = await_setup(&run, th, started, &pg, &t);
    if (o.scenario == SB_FANOUT)
        run.fan = (uint32_t)t.subs_ready; /* deliveries per message the window waits for */
    /* fan-in: the publishers share one subscriber's queue in the broker, and so the window */
    run.e2e_window = o.scenario == SB_FANIN ? (o.inflight + o.count - 1) / o.count : o.inflight;
    run_publishers(&run, th, started, &pg, &t);
    uint64_t drain_start = drain(&run, th, started, &pg, &t);

    set_phase(&run, SB_PHASE_STOP);
    for (uint32_t i = 0; i < started; i++)
        sb_thread_join(th[i]);
    if (g_interrupted)
        fprintf(stderr, "starling-bench: interrupted\n");

    sum(th, o.threads, &t, pg.cur_lat, pg.connack);
    double run_s = (drain_start - run.run_start_ns) / 1e9;
    double recv_s = run_s;
    if (t.last_recv_ns > drain_start)
        recv_s = (t.last_recv_ns - run.run_start_ns) / 1e9;
    int rc = report(&run, &t, pg.cur_lat, pg.connack, timed_out, run_s, recv_s);
    if (started < o.threads)
        rc = 1;
    free_run(&run, th, &pg);
    return rc;
}
