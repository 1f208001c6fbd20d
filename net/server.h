/* SPDX-License-Identifier: MIT */
/* net/server.h - the running broker: listeners, acceptor thread, worker threads. */
#ifndef MQ_NET_SERVER_H
#define MQ_NET_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/sess.h"

#define MQ_SERVER_MAX_LISTENERS 16

typedef struct mq_server_listener {
    const char *bind_address; /* NULL: all addresses */
    uint16_t port;
    uint32_t max_connections; /* 0 = unlimited */
} mq_server_listener_t;

/* Everything the engine needs from the configuration; copied at start, immutable after. */
typedef struct mq_server_opts {
    mq_server_listener_t listeners[MQ_SERVER_MAX_LISTENERS];
    unsigned n_listeners;
    unsigned workers;         /* 0 = online CPUs */
    uint32_t max_connections; /* whole broker; 0 = unlimited */
    bool allow_anonymous;
    bool allow_zero_length_clientid;
    const char *auto_id_prefix;
    uint16_t max_keepalive; /* 0 = no limit */
    uint8_t max_qos;
    bool retain_available;
    bool upgrade_outgoing_qos;
    bool set_tcp_nodelay;
    uint32_t message_size_limit; /* payload bytes; 0 = unlimited */
    uint32_t max_packet_size;    /* 0 = protocol maximum */
    uint32_t connect_timeout_s;  /* a connection must send CONNECT within this */
    mq_sess_limits_t limits;
    bool connection_messages; /* log connects and disconnects */
} mq_server_opts_t;

typedef struct mq_server mq_server_t;

/* Binds every listener and starts the acceptor and worker threads. Returns 0, or a negative
 * errno with a message in err[0..errlen) naming what failed (e.g. "127.0.0.1:1883: Address
 * already in use", or the io_uring feature the kernel lacks). Main thread. */
int mq_server_start(mq_server_t **out, const mq_server_opts_t *opts, char *err, size_t errlen);

/* Stops accepting, closes every connection (no wills are published: a broker shutdown is not
 * a client failure, as with mosquitto), joins the threads and frees everything. Main thread. */
void mq_server_stop(mq_server_t *srv);

/* Broker-wide figures, summed over the workers (relaxed loads of single-writer counters
 * that each worker refreshes once a second). */
typedef struct mq_server_stats {
    uint64_t msgs_received, msgs_sent; /* packets */
    uint64_t pub_received, pub_sent, pub_dropped;
    uint64_t pub_bytes_received, pub_bytes_sent;
    uint64_t bytes_received, bytes_sent;
    uint64_t sockets;      /* connections accepted so far */
    uint64_t connects;     /* CONNECTs accepted so far */
    uint64_t connections;  /* sessions with a connection now */
    uint64_t sessions;     /* sessions, connected or not */
    uint64_t disconnected; /* sessions without a connection (the two above, never negative:
                              they are read apart and may cross for a moment) */
    uint64_t subscriptions;
    uint64_t inflight, queued, queued_bytes; /* outbound messages held for sessions */
    uint64_t ring_depth;                     /* inbox entries waiting */
    uint64_t loop_us;                        /* longest loop turn in the last second */
    uint64_t retained, retained_bytes;
} mq_server_stats_t;

/* Fills *total, and per_worker[0..mq_server_workers()) when not NULL. Any thread. */
void mq_server_stats(const mq_server_t *srv, mq_server_stats_t *total,
                     mq_server_stats_t *per_worker);

unsigned mq_server_workers(const mq_server_t *srv);

/* Publishes a message as the broker itself ($SYS): it is routed by worker 0 like any PUBLISH
 * (retained when 'retain'). Main thread. */
void mq_server_publish(mq_server_t *srv, const char *topic, const void *payload, size_t len,
                       bool retain);

/* The port actually bound by listener 'i' (useful with port 0). */
uint16_t mq_server_port(const mq_server_t *srv, unsigned i);

#endif
