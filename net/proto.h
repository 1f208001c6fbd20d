/* SPDX-License-Identifier: MIT */
/* net/proto.h - MQTT broker behaviour of one worker, over connections (net/conn.h). */
#ifndef MQ_NET_PROTO_H
#define MQ_NET_PROTO_H

#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>

#include "core/epoch.h"
#include "core/msg.h"
#include "core/stats.h"
#include "core/tindex.h"
#include "net/client.h"
#include "net/conn.h"
#include "net/mailbox.h"
#include "net/opts.h"

/* The protocol layer decides; the connection layer moves bytes; the worker runs the loop.
 * An mq_proto_t is one worker's protocol state: its sessions and routing tables
 * (core/route.h), its counters, and what it needs to reach the rest — the shared index, its
 * outbox to the other workers, its connection loop. Every function runs on that worker's
 * thread; nothing here blocks or touches another worker's sessions. */
/* mq_proto_t and mq_proto_env_t: net/client.h. */

/* 'env' is copied; what it points to must outlive the protocol state. */
mq_proto_t *mq_proto_new(const mq_proto_env_t *env);

/* Frees every session (shutdown: no wills are published). NULL is a no-op. */
void mq_proto_free(mq_proto_t *p);

/* The handler the connection loop calls (net/conn.h), and the size of a connection with
 * the protocol's state around it. */
const mq_conn_handler_t *mq_proto_handler(const mq_proto_t *p);
size_t mq_proto_conn_size(void);

/* A connection the acceptor handed to this worker (already made with mq_conn_new). */
void mq_proto_on_accept(mq_proto_t *p, mq_conn_t *c);

/* A connection another worker handed over (its CONNECT bytes inside), linked to this
 * worker's loop. */
void mq_proto_on_handoff(mq_proto_t *p, mq_conn_t *c);

/* A CONNECT that takes over a connected session waits a turn out of the loop (net/connect.c:
 * take_over_later), one that comes during a reload waits for its end (net/auth.h). Before the
 * worker enters its ring: marks what waits so far as due for the next turn, and says how long
 * the worker may sleep there. */
enum mq_proto_wait {
    MQ_PROTO_SLEEP,       /* nothing waits: until a completion */
    MQ_PROTO_NO_SLEEP,    /* a take-over: into the ring and back */
    MQ_PROTO_SLEEP_SHORT, /* only reloads: MQ_PROTO_RELOAD_POLL_MS at most */
};
#define MQ_PROTO_RELOAD_POLL_MS 1
enum mq_proto_wait mq_proto_seal_waiting(mq_proto_t *p);

/* At the start of a turn: processes the CONNECTs sealed before the last wait, in order. */
void mq_proto_resume_waiting(mq_proto_t *p);

/* Releases a connection that will never be processed (shutdown); no will. Any state. */
void mq_proto_drop_conn(mq_conn_t *c);

/* A look at every session of every worker (the persistence snapshot): each worker calls
 * cb(arg, worker, session, NULL, 0) for each of its sessions, then cb(arg, worker, session,
 * will, fire_at) for each will waiting for its delay (fire_at: loop clock, ms), on its own
 * thread, then posts 'done'. 'cb' only reads what it is shown and writes what is 'worker''s
 * alone. */
struct mq_sess;
typedef void mq_proto_visit_cb(void *arg, unsigned worker, const struct mq_sess *s,
                               const mq_msg_t *will, uint64_t fire_at);
typedef struct mq_proto_visit {
    mq_proto_visit_cb *cb;
    void *arg;
    sem_t *done;
} mq_proto_visit_t;

/* Shows this worker's sessions to 'v' (without posting 'done'). */
void mq_proto_visit(mq_proto_t *p, const mq_proto_visit_t *v);

/* Start-up: creates the detached persistent sessions of the kept model 'rp' (core/replay.h)
 * that this worker owns, with their subscriptions (in the index, classified by the ACL),
 * messages in flight and queued, and inbound QoS 2 state; 'wall' is now in seconds since the
 * epoch (expiry counts the time the broker was down). Returns the sessions restored. */
struct mq_replay;
size_t mq_proto_restore(mq_proto_t *p, const struct mq_replay *rp, int64_t wall);

/* Delivers 'msg' (borrowed) to this worker's sessions subscribed to filters 'fids'. */
void mq_proto_deliver(mq_proto_t *p, mq_msg_t *msg, const uint64_t *fids, uint32_t n);

/* Delivers 'msg' (borrowed) to this worker's member 'token' of shared group 'gid' on filter
 * 'fid' (the publisher picked it, or a session of worker 'from' handed it on). */
void mq_proto_deliver_shared(mq_proto_t *p, mq_msg_t *msg, uint64_t fid, uint64_t gid,
                             uint64_t token, unsigned from);

/* Publishes 'msg' (borrowed) as if a client had: retained store, then routing. */
void mq_proto_publish(mq_proto_t *p, mq_msg_t *msg);

/* The broker is shutting down: every MQTT 5 client gets DISCONNECT 0x8B (Server shutting
 * down) and its connection ends after the flush; no will is published (a shutdown is no
 * client failure, as with mosquitto). */
void mq_proto_goodbye(mq_proto_t *p);

/* Once a second: connect and keep-alive deadlines. */
void mq_proto_tick(mq_proto_t *p);

/* This worker's figures (core/stats.h) but the loop's own (bytes, ring depth, loop time). */
void mq_proto_stats(const mq_proto_t *p, mq_stats_t *st);

#endif
