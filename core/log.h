/* SPDX-License-Identifier: MIT */
/* core/log.h - one-line logging by mosquitto's log types; the type is checked before the
 * arguments are evaluated, so a disabled line costs one relaxed load. */
#ifndef MQ_CORE_LOG_H
#define MQ_CORE_LOG_H

#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

/* mosquitto's log_type values, as bits of mq_log_mask. */
enum mq_log_type {
    MQ_LOG_ERROR = 1u << 0,       /* the broker cannot do its job */
    MQ_LOG_WARN = 1u << 1,        /* degraded */
    MQ_LOG_NOTICE = 1u << 2,      /* lifecycle, connects and disconnects */
    MQ_LOG_INFO = 1u << 3,        /* client misbehaviour */
    MQ_LOG_SUBSCRIBE = 1u << 4,   /* "client qos filter" per subscription */
    MQ_LOG_UNSUBSCRIBE = 1u << 5, /* "client filter" per unsubscription */
    MQ_LOG_DEBUG = 1u << 6,       /* the rest */
};

#define MQ_LOG_ALL 0x7Fu
#define MQ_LOG_DEFAULT                                                                             \
    (MQ_LOG_ERROR | MQ_LOG_WARN | MQ_LOG_NOTICE | MQ_LOG_INFO) /* mosquitto's                      \
                                                                */

extern atomic_uint mq_log_mask; /* the types written; set at start-up */

/* Whether lines of 'type' are written: one relaxed load. */
#define MQ_LOG_ON(type)                                                                            \
    (((unsigned)(type)&atomic_load_explicit(&mq_log_mask, memory_order_relaxed)) != 0)

#define MQ_LOG(type, ...)                                                                          \
    do {                                                                                           \
        if ((unsigned)(type)&atomic_load_explicit(&mq_log_mask, memory_order_relaxed))             \
            mq_log_write((type), __VA_ARGS__);                                                     \
    } while (0)

/* Formats the message (at most MQ_LOG_LINE_MAX bytes; longer ones are cut) and hands it with
 * the time to the sink. Any thread. */
#define MQ_LOG_LINE_MAX 1000
void mq_log_write(enum mq_log_type type, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Where lines go: called on the logging thread's behalf by any thread, so it must not block.
 * 'line' is NUL-terminated, without timestamp or newline. */
typedef void mq_log_sink_cb(void *arg, enum mq_log_type type, time_t when, const char *line,
                            size_t len);

/* Replaces the sink; NULL restores the default, which writes "TIMESTAMP: line" to stderr with
 * one write(2) (used before the broker's logging thread starts and after it stops). */
void mq_log_set_sink(mq_log_sink_cb *cb, void *arg);

/* The letter mosquitto uses for a type in $SYS/broker/log/X: E W N I M D (M for both
 * subscribe and unsubscribe). */
char mq_log_type_letter(enum mq_log_type type);

#endif
