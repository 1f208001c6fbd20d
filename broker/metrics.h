/* SPDX-License-Identifier: MIT */
/* broker/metrics.h - the Prometheus exposition of the $SYS figures on an HTTP listener.
 *
 * 'metrics_listener PORT [ADDRESS]' starts a small HTTP/1.1 server on its own thread that
 * answers GET /metrics with the text exposition format 0.0.4. It reads the same single-writer
 * counters as $SYS (relaxed loads), so a scrape costs the workers nothing. */
#ifndef MQ_BROKER_METRICS_H
#define MQ_BROKER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "broker/logging.h"
#include "core/buf.h"
#include "net/server.h"

typedef struct mq_metrics mq_metrics_t;

/* Binds 'address' (NULL = all) : 'port' and starts the thread. Returns NULL with err set
 * ("ADDRESS:PORT: Address already in use"). 'logging' may be NULL. Main thread. */
mq_metrics_t *mq_metrics_start(mq_server_t *srv, mq_logging_t *logging, const char *address,
                               uint16_t port, double start_s, char *err, size_t errlen);

/* The port bound (useful with port 0). */
uint16_t mq_metrics_port(const mq_metrics_t *m);

/* Stops the thread and closes the listener. Main thread; NULL is a no-op. */
void mq_metrics_stop(mq_metrics_t *m);

/* Appends the exposition text for the current figures to 'out' (for the server and tests). */
void mq_metrics_render(mq_server_t *srv, mq_logging_t *logging, double uptime_s, mq_buf_t *out);

#endif
