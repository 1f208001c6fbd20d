/* SPDX-License-Identifier: MIT */
/* core/stats.h - the one list of the broker's figures: per worker, summed, $SYS and /metrics. */
#ifndef MQ_CORE_STATS_H
#define MQ_CORE_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Each figure once: X(field, how workers combine, $SYS topic under "$SYS/broker/", Prometheus
 * name, help, per-worker $SYS topic under "$SYS/broker/workers/N/", per-worker Prometheus
 * name, per-worker help, per-worker scale). NULL where a figure has no such form. 'how' is
 * SUM or MAX. Counters' Prometheus names end in _total (broker/metrics.c derives the type).
 * A figure added here appears in the per-worker stats, the broker totals, $SYS and /metrics;
 * a worker fills it in net/proto.c (mq_proto_stats). */
#define MQ_STATS(X)                                                                                \
    X(msgs_received, SUM, "messages/received", "starling_messages_received_total",                 \
      "MQTT packets received ($SYS/broker/messages/received).", "messages/received",               \
      "starling_worker_messages_received_total", "MQTT packets the worker received.", 1)           \
    X(msgs_sent, SUM, "messages/sent", "starling_messages_sent_total",                             \
      "MQTT packets sent ($SYS/broker/messages/sent).", "messages/sent",                           \
      "starling_worker_messages_sent_total", "MQTT packets the worker sent.", 1)                   \
    X(pub_received, SUM, "publish/messages/received", "starling_publish_messages_received_total",  \
      "PUBLISH packets received.", NULL, NULL, NULL, 1)                                            \
    X(pub_sent, SUM, "publish/messages/sent", "starling_publish_messages_sent_total",              \
      "PUBLISH packets sent.", NULL, NULL, NULL, 1)                                                \
    X(pub_dropped, SUM, "publish/messages/dropped", "starling_publish_messages_dropped_total",     \
      "Messages dropped by queue limits or for offline sessions.", NULL, NULL, NULL, 1)            \
    X(pub_bytes_received, SUM, "publish/bytes/received", "starling_publish_bytes_received_total",  \
      "PUBLISH payload bytes received.", NULL, NULL, NULL, 1)                                      \
    X(pub_bytes_sent, SUM, "publish/bytes/sent", "starling_publish_bytes_sent_total",              \
      "PUBLISH payload bytes sent.", NULL, NULL, NULL, 1)                                          \
    X(bytes_received, SUM, "bytes/received", "starling_bytes_received_total",                      \
      "Bytes received on all sockets.", NULL, NULL, NULL, 1)                                       \
    X(bytes_sent, SUM, "bytes/sent", "starling_bytes_sent_total", "Bytes sent on all sockets.",    \
      NULL, NULL, NULL, 1)                                                                         \
    X(pub_expired, SUM, "publish/messages/expired", "starling_publish_messages_expired_total",     \
      "Messages whose MQTT 5 Message Expiry Interval passed before delivery.", NULL, NULL, NULL,   \
      1)                                                                                           \
    X(pub_too_large, SUM, "publish/messages/too_large",                                            \
      "starling_publish_messages_too_large_total",                                                 \
      "Messages not sent: over the client's MQTT 5 Maximum Packet Size.", NULL, NULL, NULL, 1)     \
    X(sessions_expired, SUM, "clients/expired", "starling_sessions_expired_total",                 \
      "Sessions ended by their expiry interval.", NULL, NULL, NULL, 1)                             \
    X(sockets, SUM, NULL, "starling_sockets_total", "Connections accepted.", NULL, NULL, NULL, 1)  \
    X(connects, SUM, NULL, "starling_connects_total", "CONNECT packets accepted.", NULL, NULL,     \
      NULL, 1)                                                                                     \
    X(connections, SUM, "clients/connected", "starling_clients_connected",                         \
      "Clients with a connection ($SYS/broker/clients/connected).", "connections",                 \
      "starling_worker_connections", "Connections owned by the worker.", 1)                        \
    X(sessions, SUM, "clients/total", "starling_clients_sessions",                                 \
      "Sessions, connected or not ($SYS/broker/clients/total).", NULL, NULL, NULL, 1)              \
    X(subscriptions, SUM, "subscriptions/count", "starling_subscriptions",                         \
      "Subscriptions ($SYS/broker/subscriptions/count).", NULL, NULL, NULL, 1)                     \
    X(inflight, SUM, "messages/inflight", "starling_messages_inflight",                            \
      "Outbound QoS 1/2 messages awaiting acknowledgement.", NULL, NULL, NULL, 1)                  \
    X(queued, SUM, NULL, "starling_messages_queued", "Outbound messages queued for sessions.",     \
      NULL, NULL, NULL, 1)                                                                         \
    X(queued_bytes, SUM, NULL, "starling_messages_queued_bytes",                                   \
      "Payload bytes queued for sessions.", NULL, NULL, NULL, 1)                                   \
    X(ring_depth, SUM, NULL, NULL, NULL, "ring/depth", "starling_worker_ring_depth",               \
      "Entries waiting in the worker's inbox ring.", 1)                                            \
    X(loop_us, MAX, NULL, NULL, NULL, "loop/latency", "starling_worker_loop_latency_seconds",      \
      "Longest event-loop turn in the last second.", 1e-6)

/* The figures of one worker, or of the whole broker (then also the derived ones below). */
typedef struct mq_stats {
#define MQ_STATS_FIELD(f, ...) uint64_t f;
    MQ_STATS(MQ_STATS_FIELD)
#undef MQ_STATS_FIELD
    /* broker-wide only, filled by mq_server_stats() */
    uint64_t disconnected; /* sessions without a connection (sessions - connections, never
                              negative: the two are read apart and may cross for a moment) */
    uint64_t retained, retained_bytes;
    uint64_t shared_groups; /* shared subscription groups with members */
} mq_stats_t;

/* Folds one worker's figures into a total, each by its 'how'. */
static inline void mq_stats_add(mq_stats_t *total, const mq_stats_t *w)
{
#define MQ_STATS_SUM(f) total->f += w->f;
#define MQ_STATS_MAX(f) total->f = w->f > total->f ? w->f : total->f;
#define MQ_STATS_FOLD(f, how, ...) MQ_STATS_##how(f)
    MQ_STATS(MQ_STATS_FOLD)
#undef MQ_STATS_FOLD
#undef MQ_STATS_SUM
#undef MQ_STATS_MAX
}

/* The figure at byte offset 'off' of 'st' (a row's offsetof(mq_stats_t, field)). */
static inline uint64_t mq_stats_at(const mq_stats_t *st, size_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)st + off, sizeof(v));
    return v;
}

#endif
