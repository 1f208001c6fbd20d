/* SPDX-License-Identifier: MIT */
/* broker/logging.h - mosquitto's log destinations behind a logging thread.
 *
 * Any thread logs through MQ_LOG (core/log.h); the line goes into a bounded lock-free queue
 * and a dedicated thread writes it to every destination (stdout, stderr, syslog, a file,
 * $SYS/broker/log/X topics). A worker never blocks on logging: when the queue is full the
 * line is dropped and counted, and the count is logged once the thread catches up. */
#ifndef MQ_BROKER_LOGGING_H
#define MQ_BROKER_LOGGING_H

#include <stddef.h>
#include <stdint.h>

#include "net/server.h"

enum mq_log_dest {
    MQ_LOGDEST_STDOUT = 1u << 0,
    MQ_LOGDEST_STDERR = 1u << 1,
    MQ_LOGDEST_SYSLOG = 1u << 2,
    MQ_LOGDEST_TOPIC = 1u << 3,
    MQ_LOGDEST_FILE = 1u << 4,
};

typedef struct mq_logging_opts {
    unsigned dests;               /* enum mq_log_dest bits; 0 = none */
    const char *file;             /* with MQ_LOGDEST_FILE */
    bool timestamp;               /* prefix lines with the time */
    const char *timestamp_format; /* strftime(3) format; NULL = seconds since the epoch */
    int syslog_facility;          /* LOG_LOCAL0..7, or LOG_DAEMON */
    uint32_t queue_lines;         /* queue capacity in lines; 0 = default (1024) */
} mq_logging_opts_t;

typedef struct mq_logging mq_logging_t;

/* Opens the destinations, starts the logging thread and routes MQ_LOG to it. Returns NULL
 * with err set when the log file cannot be opened. Main thread, after daemon(). */
mq_logging_t *mq_logging_start(const mq_logging_opts_t *opts, char *err, size_t errlen);

/* Enables the topic destination once the server runs (NULL before stopping it). */
void mq_logging_set_server(mq_logging_t *lg, mq_server_t *srv);

/* Asks the logging thread to re-open the log file (SIGHUP: log rotation). Any thread. */
void mq_logging_reopen(mq_logging_t *lg);

/* Lines dropped because the queue was full, so far. Any thread. */
uint64_t mq_logging_dropped(const mq_logging_t *lg);

/* Writes what is queued, stops the thread, closes the destinations and restores the default
 * stderr sink. Main thread. */
void mq_logging_stop(mq_logging_t *lg);

#endif
