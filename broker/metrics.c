/* SPDX-License-Identifier: MIT */
/* broker/metrics.c - Prometheus text exposition over a minimal HTTP/1.1 server (see metrics.h).
 *
 * One thread, blocking sockets with timeouts, one request per connection (Connection: close):
 * a scraper asks every few seconds, so simplicity beats concurrency here. A slow or silent
 * client is cut off after two seconds and cannot hold the listener longer than that. */
#include "broker/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "mq_config.h"

#define REQUEST_MAX 8192
#define IO_TIMEOUT_MS 2000

struct mq_metrics {
    mq_server_t *srv;
    mq_logging_t *logging;
    double start_s;
    int fd;
    int stop_fd; /* eventfd */
    uint16_t port;
    pthread_t thread;
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- rendering ----------------------------------------------------------------------------- */

static void put(mq_buf_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(mq_buf_t *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        mq_buf_append(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* A metric's type follows its name: counters end in _total (Prometheus' convention). */
static const char *type_of(const char *name)
{
    size_t n = strlen(name);
    return n > 6 && strcmp(name + n - 6, "_total") == 0 ? "counter" : "gauge";
}

static void metric(mq_buf_t *out, const char *name, const char *help, uint64_t value)
{
    const char *type = type_of(name);
    put(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
        (unsigned long long)value);
}

#define STAT(field) offsetof(mq_server_stats_t, field)

/* Broker-wide and per-worker figures come from the one list of figures (core/stats.h): each
 * entry with a Prometheus name becomes a metric, each with a per-worker name a labelled one. */
typedef struct metric_row {
    const char *name, *help;
    size_t off;
    double scale;
} metric_row_t;

#define BROKER_ROW(f, how, sys, metric, help, ...) {metric, help, STAT(f), 1},
static const metric_row_t broker_metrics[] = {
    MQ_STATS(BROKER_ROW)
    /* derived in mq_server_stats() */
    {"starling_clients_disconnected",
     "Persistent sessions without a connection ($SYS/broker/clients/disconnected).",
     STAT(disconnected), 1},
    {"starling_retained_messages", "Retained messages.", STAT(retained), 1},
    {"starling_retained_bytes", "Payload bytes of retained messages.", STAT(retained_bytes), 1},
};
#undef BROKER_ROW

#define WORKER_ROW(f, how, sys, metric, help, wsys, wmetric, whelp, wscale)                        \
    {wmetric, whelp, STAT(f), wscale},
static const metric_row_t worker_metrics[] = {MQ_STATS(WORKER_ROW)};
#undef WORKER_ROW

void mq_metrics_render(mq_server_t *srv, mq_logging_t *logging, double uptime_s, mq_buf_t *out)
{
    unsigned nw = mq_server_workers(srv);
    mq_server_stats_t st, *pw = mq_calloc(nw, sizeof(*pw));
    mq_server_stats(srv, &st, pw);

    put(out,
        "# HELP starling_build_info Broker version.\n# TYPE starling_build_info gauge\n"
        "starling_build_info{version=\"%s\"} 1\n",
        MQ_VERSION);
    put(out,
        "# HELP starling_uptime_seconds Seconds since the broker started.\n"
        "# TYPE starling_uptime_seconds gauge\nstarling_uptime_seconds %.3f\n",
        uptime_s);
    for (size_t k = 0; k < sizeof(broker_metrics) / sizeof(broker_metrics[0]); k++)
        if (broker_metrics[k].name) /* a figure without a broker-wide metric */
            metric(out, broker_metrics[k].name, broker_metrics[k].help,
                   mq_stats_at(&st, broker_metrics[k].off));

    size_t heap = mq_mem_allocated();
    if (heap) /* jemalloc only, as $SYS/broker/heap */
        metric(out, "starling_heap_bytes", "Bytes allocated (jemalloc).", heap);
    if (logging)
        metric(out, "starling_log_lines_dropped_total",
               "Log lines dropped because the logging thread fell behind.",
               mq_logging_dropped(logging));

    for (size_t k = 0; k < sizeof(worker_metrics) / sizeof(worker_metrics[0]); k++) {
        const char *name = worker_metrics[k].name;
        if (name == NULL) /* a figure without a per-worker metric */
            continue;
        put(out, "# HELP %s %s\n# TYPE %s %s\n", name, worker_metrics[k].help, name, type_of(name));
        for (unsigned i = 0; i < nw; i++) {
            uint64_t v = mq_stats_at(&pw[i], worker_metrics[k].off);
            if (worker_metrics[k].scale == 1)
                put(out, "%s{worker=\"%u\"} %llu\n", name, i, (unsigned long long)v);
            else
                put(out, "%s{worker=\"%u\"} %.6f\n", name, i, (double)v * worker_metrics[k].scale);
        }
    }
    mq_free(pw);
}

/* --- HTTP ---------------------------------------------------------------------------------- */

static void send_all(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, IO_TIMEOUT_MS) <= 0)
            return;
        ssize_t n = send(fd, c, len, MSG_NOSIGNAL);
        if (n <= 0) {
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            return;
        }
        c += n;
        len -= (size_t)n;
    }
}

static void respond(int fd, const char *status, const char *ctype, const void *body, size_t len,
                    bool head)
{
    char hdr[256];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, ctype, len);
    send_all(fd, hdr, (size_t)n);
    if (!head)
        send_all(fd, body, len);
}

static void serve(mq_metrics_t *m, int fd)
{
    char req[REQUEST_MAX + 1];
    size_t len = 0;
    double deadline = mono_s() + IO_TIMEOUT_MS / 1000.0;
    while (len < REQUEST_MAX) { /* read the request head */
        int left = (int)((deadline - mono_s()) * 1000);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            return;
        ssize_t n = recv(fd, req + len, REQUEST_MAX - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    static const char text[] = "text/plain; charset=utf-8";
    if (len >= REQUEST_MAX) {
        respond(fd, "431 Request Header Fields Too Large", text, "too large\n", 10, false);
        return;
    }
    char method[8], path[256];
    if (sscanf(req, "%7s %255s HTTP/1.", method, path) != 2) {
        respond(fd, "400 Bad Request", text, "bad request\n", 12, false);
        return;
    }
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        respond(fd, "405 Method Not Allowed", text, "only GET\n", 9, false);
        return;
    }
    char *q = strchr(path, '?'); /* scrapers may add parameters; they do not matter here */
    if (q)
        *q = '\0';
    if (strcmp(path, "/metrics") != 0) {
        static const char body[] = "starling: metrics are at /metrics\n";
        respond(fd, "404 Not Found", text, body, sizeof(body) - 1, head);
        return;
    }
    mq_buf_t out;
    mq_buf_init(&out);
    mq_metrics_render(m->srv, m->logging, mono_s() - m->start_s, &out);
    respond(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", out.data, out.len, head);
    mq_buf_fini(&out);
}

static void *run(void *arg)
{
    mq_metrics_t *m = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = m->fd, .events = POLLIN},
                              {.fd = m->stop_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0)
            continue;
        if (p[1].revents)
            return NULL;
        if (!p[0].revents)
            continue;
        int fd = accept4(m->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            continue;
        serve(m, fd);
        shutdown(fd, SHUT_WR);
        close(fd);
    }
}

mq_metrics_t *mq_metrics_start(mq_server_t *srv, mq_logging_t *logging, const char *address,
                               uint16_t port, double start_s, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai;
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    int rc = getaddrinfo(address, service, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "metrics_listener %s:%u: %s", address ? address : "*", port,
                 gai_strerror(rc));
        return NULL;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 64) < 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(err, errlen, "metrics_listener %s:%u: %s", address ? address : "*", port,
                 strerror(e ? e : EADDRNOTAVAIL));
        return NULL;
    }
    mq_metrics_t *m = mq_calloc(1, sizeof(*m));
    m->srv = srv;
    m->logging = logging;
    m->start_s = start_s;
    m->fd = fd;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    m->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    m->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (m->stop_fd < 0 || pthread_create(&m->thread, NULL, run, m) != 0) {
        snprintf(err, errlen, "metrics_listener: cannot start its thread");
        if (m->stop_fd >= 0)
            close(m->stop_fd);
        close(fd);
        mq_free(m);
        return NULL;
    }
    return m;
}

uint16_t mq_metrics_port(const mq_metrics_t *m)
{
    return m->port;
}

void mq_metrics_stop(mq_metrics_t *m)
{
    if (m == NULL)
        return;
    uint64_t one = 1;
    ssize_t w = write(m->stop_fd, &one, sizeof(one));
    (void)w;
    pthread_join(m->thread, NULL);
    close(m->stop_fd);
    close(m->fd);
    mq_free(m);
}
