/* SPDX-License-Identifier: MIT */
/* core/route.h - one worker's routing tables: sessions by client id, filters to subscribers. */
#ifndef MQ_CORE_ROUTE_H
#define MQ_CORE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/epoch.h"
#include "core/sess.h"
#include "core/shared.h"
#include "core/tindex.h"

/* What a worker knows for routing (DESIGN.md rule 3), in one place and with no I/O:
 *  - its sessions by client id (a session lives on the worker its id hashes to);
 *  - its filter table: filter id (from the shared index) -> the sessions of this worker
 *    subscribed to it, with their granted QoS; the worker's interest bit in the shared
 *    index is set while the table has the filter;
 *  - the match of a topic against the shared index, grouped by target worker, with a cache
 *    of recent results (a publisher usually repeats its topics);
 *  - the resolution of a delivery {message, filter ids} to sessions, one per session at the
 *    highest QoS of its matching subscriptions (overlapping subscriptions, MQTT 3.1.1 §3.3.5).
 * Owned by one worker and used by that worker's thread alone; the shared index is read
 * inside the worker's epoch read section (core/epoch.h). */
typedef struct mq_route mq_route_t;

typedef struct mq_route_dest {
    mq_sess_t *sess;
    uint8_t qos;             /* the QoS to deliver at */
    bool retain;             /* the retain flag to send (Retain As Published) */
    uint32_t n_sub_ids;      /* v5 Subscription Identifiers of the matching subscriptions */
    const uint32_t *sub_ids; /* valid until the next mq_route_resolve() */
    uint8_t grant;           /* the best mq_sub_t.grant among the matching subscriptions: 2
                              * (FULL) deliver, 1 (PARTIAL) the caller checks the topic first */
} mq_route_dest_t;

/* The options of a subscription beyond its QoS (MQTT 5 §3.8.3.1). */
typedef struct mq_route_opts {
    uint8_t flags;   /* MQ_SUB_NO_LOCAL | MQ_SUB_RAP (core/sess.h) */
    uint32_t sub_id; /* Subscription Identifier; 0 = none */
} mq_route_opts_t;

/* A routing table for worker 'self' of 'n_workers', on the shared index 'ix' and the shared
 * subscription registry 'sh'. Interest changes in the index are made with the epoch record
 * 'ep' (the worker's). */
mq_route_t *mq_route_new(mq_tindex_t *ix, unsigned self, unsigned n_workers, mq_epoch_rec_t *ep,
                         mq_shared_t *sh);

/* Frees the tables and every session still in them; the sessions' interest is withdrawn
 * from the index first. NULL is a no-op. */
void mq_route_free(mq_route_t *r);

/* ---- sessions by client id --------------------------------------------------------------- */

/* The session for client id 'id' ('hash' = XXH3_64bits(id)), or NULL. */
mq_sess_t *mq_route_find(const mq_route_t *r, const char *id, size_t len, uint64_t hash);

/* Adds 's' (its id must not be present). The table does not own it until mq_route_drop. */
void mq_route_add(mq_route_t *r, mq_sess_t *s);

/* Tells the shared groups 's' is a member of whether it has a connection (they prefer the
 * members that have one: core/shared.h). */
void mq_route_set_online(mq_route_t *r, const mq_sess_t *s, bool online);

/* Ends 's': withdraws its subscriptions, removes it from the table and frees it. */
void mq_route_drop(mq_route_t *r, mq_sess_t *s);

/* Sessions in the table. */
size_t mq_route_count(const mq_route_t *r);

/* Iteration: the next session at or after *pos, advancing *pos past it; NULL at the end.
 * The table must not change during an iteration. */
mq_sess_t *mq_route_next(const mq_route_t *r, size_t *pos);

/* ---- subscriptions ------------------------------------------------------------------------ */

/* Subscribes 's' to 'filter' (a shared subscription "$share/GROUP/FILTER" joins the group)
 * at 'qos' with options 'o' (NULL: none): a new subscription
 * (interest added to the index), or the existing one's QoS and options replaced
 * [MQTT-3.8.4-3]. Returns the session's entry (valid until the session's next subscription,
 * which may move the array); *is_new (may be NULL) says which. */
mq_sub_t *mq_route_subscribe(mq_route_t *r, mq_sess_t *s, const char *filter, size_t len,
                             uint8_t qos, const mq_route_opts_t *o, bool *is_new);

/* Sets the authorisation class of the subscription 'sub' of 's' (mq_sub_t.grant, enum
 * mq_acl_grant: 0 none, 1 partial, 2 full; new subscriptions start at 2) and of its entry in
 * the filter table, where mq_route_resolve reads it. */
void mq_route_set_grant(mq_route_t *r, mq_sess_t *s, mq_sub_t *sub, uint8_t grant);

/* Removes the subscription of 's' to 'filter'; false when it had none. */
bool mq_route_unsubscribe(mq_route_t *r, mq_sess_t *s, const char *filter, size_t len);

/* ---- publishing ---------------------------------------------------------------------------- */

/* Matches 'topic' against the shared index (or the cache): returns the set of workers with
 * matching filters as a bit mask. Then take each worker's filter ids with mq_route_take()
 * and its shared group picks with mq_route_take_shared(). */
uint64_t mq_route_match(mq_route_t *r, const char *topic, size_t len);

/* The filter ids matched for 'worker' by the last mq_route_match(); valid until the next
 * match. *n receives their count. */
const uint64_t *mq_route_take(mq_route_t *r, unsigned worker, uint32_t *n);

/* A shared group chosen for a message: filter id and group id. */
typedef struct mq_route_pick {
    uint64_t fid, gid, token; /* token: the member's client id hash */
} mq_route_pick_t;

/* The shared groups whose member on 'worker' gets the message of the last mq_route_match();
 * valid until the next match. *n receives their count. */
const mq_route_pick_t *mq_route_take_shared(mq_route_t *r, unsigned worker, uint32_t *n);

/* The member 'token' of this worker's members of shared group 'gid' on filter 'fid' (the
 * publisher picked it); 0 or 1 destinations in *out, valid until the next call. */
uint32_t mq_route_resolve_shared(mq_route_t *r, uint64_t fid, uint64_t gid, uint64_t token,
                                 const mq_msg_t *msg, bool upgrade, const mq_route_dest_t **out);

/* Resolves filter ids of this worker to the sessions to deliver 'msg' to, each once, at
 * min(subscription QoS, message QoS) — or the subscription's QoS when 'upgrade'
 * (upgrade_outgoing_qos) — with the Subscription Identifiers of every matching subscription
 * and the retain flag Retain As Published asks for. No Local subscriptions skip the session
 * that published it (msg->origin). Filters no longer in the table are skipped (unsubscribed
 * since the publisher matched). Returns the count; *out is valid until the next call. */
uint32_t mq_route_resolve(mq_route_t *r, const uint64_t *fids, uint32_t n, const mq_msg_t *msg,
                          bool upgrade, const mq_route_dest_t **out);

/* Cache figures (tests, diagnostics). */
typedef struct mq_route_cache_stats {
    uint64_t hits, misses;
} mq_route_cache_stats_t;
mq_route_cache_stats_t mq_route_cache_stats(const mq_route_t *r);

#endif
