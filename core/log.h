/* SPDX-License-Identifier: MIT */
/* core/log.h - leveled one-line logging; the level is checked before arguments are evaluated. */
#ifndef MQ_CORE_LOG_H
#define MQ_CORE_LOG_H

#include <stdatomic.h>

enum mq_log_level {
    MQ_LOG_ERROR = 0,  /* the broker cannot do its job */
    MQ_LOG_WARN = 1,   /* degraded */
    MQ_LOG_NOTICE = 2, /* lifecycle */
    MQ_LOG_INFO = 3,   /* client misbehaviour, connects and disconnects */
    MQ_LOG_DEBUG = 4,  /* the rest */
};

extern atomic_int mq_log_max; /* most verbose level written; set once at start-up */

#define MQ_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if ((int)(level) <= atomic_load_explicit(&mq_log_max, memory_order_relaxed))               \
            mq_log_write((level), __VA_ARGS__);                                                    \
    } while (0)

/* Writes "TIMESTAMP: message" as one line to stderr. Any thread. (The logging issue replaces
 * the destination with mosquitto's log_dest options and a logging thread.) */
void mq_log_write(enum mq_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
