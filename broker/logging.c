/* SPDX-License-Identifier: MIT */
/* broker/logging.c - the logging thread and its bounded multi-producer queue (see logging.h).
 *
 * The queue is core/mpsc.h (the same queue as the workers' inboxes): a producer claims a slot
 * with one CAS, writes the line in place and publishes it; it never waits, and a full queue
 * drops the line and counts it. The consumer sleeps on an eventfd; producers write to it only
 * when the consumer said it was going to sleep, so a burst of lines costs one wake-up. */
#include "broker/logging.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <syslog.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/mpsc.h"

typedef struct slot {
    uint8_t type;
    uint16_t len;
    time_t when;
    char line[MQ_LOG_LINE_MAX + 1];
} slot_t;

struct mq_logging {
    mq_mpsc_t *q;
    _Alignas(64) atomic_uint_fast64_t dropped;
    atomic_bool sleeping;
    atomic_bool reopen;
    atomic_bool stop;
    pthread_mutex_t srv_lock; /* held while publishing a line, so that the server is not
                                 stopped under the logging thread (mq_logging_set_server) */
    mq_server_t *srv;         /* under srv_lock */
    int efd;
    pthread_t thread;

    /* the logging thread's own */
    mq_logging_opts_t o;
    char *file_path;
    char *ts_format;
    FILE *file;
    uint64_t dropped_reported;
};

/* --- producers (any thread) ---------------------------------------------------------------- */

/* Wakes the logging thread (an eventfd counter cannot overflow at this rate). */
static void wake(mq_logging_t *lg)
{
    uint64_t one = 1;
    ssize_t w = write(lg->efd, &one, sizeof(one));
    (void)w;
}

static void sink(void *arg, enum mq_log_type type, time_t when, const char *line, size_t len)
{
    mq_logging_t *lg = arg;
    uint64_t ticket;
    slot_t *s = mq_mpsc_claim(lg->q, &ticket);
    if (s == NULL) {
        atomic_fetch_add_explicit(&lg->dropped, 1, memory_order_relaxed); /* full */
        return;
    }
    s->type = (uint8_t)type;
    s->when = when;
    s->len = (uint16_t)len;
    memcpy(s->line, line, len);
    s->line[len] = '\0';
    mq_mpsc_publish(lg->q, ticket);
    /* pairs with the consumer's fence between announcing sleep and re-checking the queue */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&lg->sleeping, memory_order_relaxed) &&
        atomic_exchange_explicit(&lg->sleeping, false, memory_order_relaxed))
        wake(lg);
}

/* --- the logging thread -------------------------------------------------------------------- */

static int syslog_priority(enum mq_log_type type)
{
    switch (type) {
    case MQ_LOG_ERROR:
        return LOG_ERR;
    case MQ_LOG_WARN:
        return LOG_WARNING;
    case MQ_LOG_NOTICE:
        return LOG_NOTICE;
    case MQ_LOG_INFO:
    case MQ_LOG_SUBSCRIBE:
    case MQ_LOG_UNSUBSCRIBE:
        return LOG_INFO;
    default:
        return LOG_DEBUG;
    }
}

static void emit(mq_logging_t *lg, enum mq_log_type type, time_t when, const char *line, size_t len)
{
    char buf[MQ_LOG_LINE_MAX + 128];
    size_t n = 0;
    if (lg->o.timestamp) {
        if (lg->ts_format) {
            struct tm tm;
            localtime_r(&when, &tm);
            /* the operator's log_timestamp_format, as mosquitto takes it */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            n = strftime(buf, 64, lg->ts_format, &tm);
#pragma GCC diagnostic pop
            if (n == 0) { /* too long, or empty: say so, as mosquitto does */
                memcpy(buf, "Time error", 10);
                n = 10;
            }
        } else {
            n = (size_t)snprintf(buf, 64, "%ld", (long)when);
        }
        buf[n++] = ':';
        buf[n++] = ' ';
    }
    memcpy(buf + n, line, len);
    n += len;
    buf[n] = '\n';

    unsigned d = lg->o.dests;
    if (d & MQ_LOGDEST_STDOUT) {
        ssize_t w = write(STDOUT_FILENO, buf, n + 1);
        (void)w;
    }
    if (d & MQ_LOGDEST_STDERR) {
        ssize_t w = write(STDERR_FILENO, buf, n + 1);
        (void)w;
    }
    if ((d & MQ_LOGDEST_FILE) && lg->file)
        fwrite(buf, 1, n + 1, lg->file);
    if (d & MQ_LOGDEST_SYSLOG)
        syslog(syslog_priority(type), "%s", line);
    /* as mosquitto: debug lines are never published (a debug line about delivery would feed
     * itself); subscribe/unsubscribe lines go to M/subscribe and M/unsubscribe */
    if ((d & MQ_LOGDEST_TOPIC) && type != MQ_LOG_DEBUG) {
        char topic[40];
        snprintf(topic, sizeof(topic), "$SYS/broker/log/%c%s", mq_log_type_letter(type),
                 type == MQ_LOG_SUBSCRIBE     ? "/subscribe"
                 : type == MQ_LOG_UNSUBSCRIBE ? "/unsubscribe"
                                              : "");
        pthread_mutex_lock(&lg->srv_lock);
        if (lg->srv)
            mq_server_publish(lg->srv, topic, buf, n, false);
        pthread_mutex_unlock(&lg->srv_lock);
    }
}

static bool drain(mq_logging_t *lg)
{
    bool any = false;
    for (slot_t *s; (s = mq_mpsc_peek(lg->q)) != NULL; any = true) {
        emit(lg, (enum mq_log_type)s->type, s->when, s->line, s->len);
        mq_mpsc_release(lg->q);
    }
    if (lg->file && any)
        fflush(lg->file);
    return any;
}

static void open_file(mq_logging_t *lg)
{
    if (!(lg->o.dests & MQ_LOGDEST_FILE))
        return;
    if (lg->file)
        fclose(lg->file);
    lg->file = fopen(lg->file_path, "a");
    if (!lg->file) {
        char msg[MQ_LOG_LINE_MAX];
        int n = snprintf(msg, sizeof(msg), "Error: Unable to open log file %s: %s.", lg->file_path,
                         strerror(errno));
        size_t len = n < 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
        emit(lg, MQ_LOG_ERROR, time(NULL), msg, len);
    }
}

static void report_dropped(mq_logging_t *lg)
{
    uint64_t d = atomic_load_explicit(&lg->dropped, memory_order_relaxed);
    if (d == lg->dropped_reported)
        return;
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "Warning: %llu log lines dropped: logging fell behind.",
                     (unsigned long long)(d - lg->dropped_reported));
    lg->dropped_reported = d;
    emit(lg, MQ_LOG_WARN, time(NULL), msg, (size_t)n);
}

static void *run(void *arg)
{
    mq_logging_t *lg = arg;
    for (;;) {
        /* re-open first: lines logged after the SIGHUP go to the new file */
        if (atomic_exchange_explicit(&lg->reopen, false, memory_order_acq_rel))
            open_file(lg);
        drain(lg);
        report_dropped(lg);
        if (atomic_load_explicit(&lg->stop, memory_order_acquire)) {
            drain(lg);
            report_dropped(lg);
            return NULL;
        }
        atomic_store_explicit(&lg->sleeping, true, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (mq_mpsc_peek(lg->q) != NULL) {
            atomic_store_explicit(&lg->sleeping, false, memory_order_relaxed);
            continue;
        }
        struct pollfd p = {.fd = lg->efd, .events = POLLIN};
        if (poll(&p, 1, 1000) > 0) {
            uint64_t v;
            ssize_t r = read(lg->efd, &v, sizeof(v));
            (void)r;
        }
        atomic_store_explicit(&lg->sleeping, false, memory_order_relaxed);
    }
}

/* --- lifecycle (main thread) --------------------------------------------------------------- */

mq_logging_t *mq_logging_start(const mq_logging_opts_t *opts, char *err, size_t errlen)
{
    mq_logging_t *lg = mq_calloc(1, sizeof(*lg));
    lg->q = mq_mpsc_new(opts->queue_lines ? (uint32_t)opts->queue_lines : 1024, sizeof(slot_t));
    lg->o = *opts;
    lg->file_path = opts->file ? mq_strndup(opts->file, strlen(opts->file)) : NULL;
    lg->ts_format = opts->timestamp_format
                        ? mq_strndup(opts->timestamp_format, strlen(opts->timestamp_format))
                        : NULL;
    pthread_mutex_init(&lg->srv_lock, NULL);
    lg->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (lg->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    if (opts->dests & MQ_LOGDEST_FILE) {
        lg->file = fopen(lg->file_path, "a");
        if (!lg->file) {
            snprintf(err, errlen, "Unable to open log file %s: %s", lg->file_path, strerror(errno));
            goto fail;
        }
    }
    if (opts->dests & MQ_LOGDEST_SYSLOG)
        openlog("starling", LOG_PID | LOG_NDELAY, opts->syslog_facility);
    if (pthread_create(&lg->thread, NULL, run, lg) != 0) {
        snprintf(err, errlen, "cannot start the logging thread");
        goto fail;
    }
    mq_log_set_sink(sink, lg);
    return lg;
fail:
    pthread_mutex_destroy(&lg->srv_lock);
    if (lg->file)
        fclose(lg->file);
    if (lg->efd >= 0)
        close(lg->efd);
    mq_free(lg->file_path);
    mq_free(lg->ts_format);
    mq_mpsc_free(lg->q);
    mq_free(lg);
    return NULL;
}

void mq_logging_set_server(mq_logging_t *lg, mq_server_t *srv)
{
    if (srv == NULL) {
        /* let lines already queued for the topic go out while the server still runs */
        wake(lg);
        for (int i = 0; i < 100 && mq_mpsc_depth(lg->q) > 0; i++)
            usleep(1000);
    }
    /* waits for a publish in progress: after this, the thread no longer touches the server */
    pthread_mutex_lock(&lg->srv_lock);
    lg->srv = srv;
    pthread_mutex_unlock(&lg->srv_lock);
}

void mq_logging_reopen(mq_logging_t *lg)
{
    atomic_store_explicit(&lg->reopen, true, memory_order_release);
    wake(lg);
}

uint64_t mq_logging_dropped(const mq_logging_t *lg)
{
    return atomic_load_explicit(&lg->dropped, memory_order_relaxed);
}

void mq_logging_stop(mq_logging_t *lg)
{
    if (lg == NULL)
        return;
    mq_log_set_sink(NULL, NULL);
    atomic_store_explicit(&lg->stop, true, memory_order_release);
    wake(lg);
    pthread_join(lg->thread, NULL);
    if (lg->o.dests & MQ_LOGDEST_SYSLOG)
        closelog();
    if (lg->file)
        fclose(lg->file);
    close(lg->efd);
    pthread_mutex_destroy(&lg->srv_lock);
    mq_free(lg->file_path);
    mq_free(lg->ts_format);
    mq_mpsc_free(lg->q);
    mq_free(lg);
}
