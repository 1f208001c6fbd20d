/* SPDX-License-Identifier: MIT */
/* net/will.h - wills waiting for their MQTT 5 Will Delay Interval or their session's end. */
#ifndef MQ_NET_WILL_H
#define MQ_NET_WILL_H

#include "net/client.h"

/* A will is published at the earlier of its delay and the end of its session
 * [MQTT-3.1.3-9]; a new connection for the same client id before then cancels it
 * [MQTT-3.1.3-10]. The owning worker's thread only. */

/* Keeps 'will' (takes the reference) for client 'id' until 'fire_at' (loop clock, ms). */
void mq_will_defer(mq_proto_t *p, const char *id, size_t len, uint64_t hash, mq_msg_t *will,
                   uint64_t fire_at);

/* Forgets the will waiting for client 'id', if any (a reconnect). */
void mq_will_cancel(mq_proto_t *p, const char *id, size_t len, uint64_t hash);

/* Takes the will of client 'id' (its session ends now), or NULL; the caller publishes it and
 * drops the reference. */
mq_msg_t *mq_will_take(mq_proto_t *p, const char *id, size_t len, uint64_t hash);

/* Takes the next will whose time has come at 'now', or NULL when no more is due, with its
 * session in *owner (NULL if it has none any more). '*pos' is the caller's place in one pass
 * (0 to start it), so that the pass is linear. */
mq_msg_t *mq_will_take_due(mq_proto_t *p, uint64_t now, uint32_t *pos, const mq_sess_t **owner);

/* Calls cb(arg, w) for each waiting will. */
typedef void mq_will_cb(void *arg, const pending_will_t *w);
void mq_will_each(const mq_proto_t *p, mq_will_cb *cb, void *arg);

/* Drops every waiting will (shutdown). */
void mq_will_free_all(mq_proto_t *p);

#endif
