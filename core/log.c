/* SPDX-License-Identifier: MIT */
/* core/log.c - message formatting and the sink hand-off (see log.h). */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

atomic_uint mq_log_mask = MQ_LOG_DEFAULT;

/* The sink changes only at start-up and shutdown, while the broker's threads are quiet; the
 * pair is read with acquire so that arg is seen with cb. */
static _Atomic(mq_log_sink_cb *) sink_cb;
static void *_Atomic sink_arg;

void mq_log_set_sink(mq_log_sink_cb *cb, void *arg)
{
    if (cb == NULL) { /* callback first: nobody may pair the old callback with a NULL arg */
        atomic_store_explicit(&sink_cb, NULL, memory_order_release);
        atomic_store_explicit(&sink_arg, NULL, memory_order_release);
        return;
    }
    atomic_store_explicit(&sink_arg, arg, memory_order_relaxed);
    atomic_store_explicit(&sink_cb, cb, memory_order_release);
}

char mq_log_type_letter(enum mq_log_type type)
{
    switch (type) {
    case MQ_LOG_ERROR:
        return 'E';
    case MQ_LOG_WARN:
        return 'W';
    case MQ_LOG_NOTICE:
        return 'N';
    case MQ_LOG_INFO:
        return 'I';
    case MQ_LOG_SUBSCRIBE:
    case MQ_LOG_UNSUBSCRIBE:
        return 'M';
    default:
        return 'D';
    }
}

void mq_log_write(enum mq_log_type type, const char *fmt, ...)
{
    char line[MQ_LOG_LINE_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    time_t now = time(NULL);

    mq_log_sink_cb *cb = atomic_load_explicit(&sink_cb, memory_order_acquire);
    if (cb) {
        cb(atomic_load_explicit(&sink_arg, memory_order_relaxed), type, now, line, len);
        return;
    }
    char out[MQ_LOG_LINE_MAX + 32];
    int m = snprintf(out, sizeof(out), "%ld: %.*s\n", (long)now, (int)len, line);
    if (m > 0) {
        ssize_t w =
            write(STDERR_FILENO, out, (size_t)m < sizeof(out) ? (size_t)m : sizeof(out) - 1);
        (void)w; /* nothing useful to do when stderr is gone */
    }
}
