/* SPDX-License-Identifier: MIT */
/* core/sess.h - one client session: subscriptions, outbound QoS window and queue, inbound QoS 2. */
#ifndef MQ_CORE_SESS_H
#define MQ_CORE_SESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/msg.h"
#include "core/rc.h"

/* A session is owned by exactly one worker (DESIGN.md rule 1) and touched by no other
 * thread. It does no I/O: while a connection is attached, it appends the packets it must
 * send to that connection's output buffer ('out'); the worker flushes it. Detached, it queues
 * what a persistent session must keep (QoS 1 and 2) and drops QoS 0, as mosquitto does with
 * queue_qos0_messages false (limits->queue_qos0 keeps it too). Everything here is designed to be
 * journaled later: the state is subscriptions, in-flight entries and the queue, each a plain
 * record. */

typedef struct mq_sess_limits {
    uint16_t max_inflight;       /* outbound QoS 1/2 messages awaiting acknowledgement; >= 1 */
    uint32_t max_queued;         /* messages queued beyond the window; 0 = unlimited */
    uint64_t max_queued_bytes;   /* payload bytes queued; 0 = unlimited */
    uint64_t max_inflight_bytes; /* another QoS 1/2 message goes in flight only while the
                                    payload bytes in flight are below this; 0 = unlimited */
    size_t out_high_water;       /* output bytes waiting for the socket above which messages
                                    queue (QoS 0 too) instead of being written; 0 = none */
    bool queue_qos0;             /* queue_qos0_messages: QoS 0 is queued for a detached session
                                    too (else dropped, mosquitto's default) */
} mq_sess_limits_t;

/* 32 bytes: a filter of up to 14 bytes is kept inside (most are short), a longer one in an
 * allocation of its own; read it with mq_sub_filter(). */
typedef struct mq_sub {
    uint64_t fid; /* filter id in the shared index */
    union {
        char *heap; /* len >= MQ_SUB_INLINE: owned, NUL-terminated */
        struct {
            char inl[15]; /* len < MQ_SUB_INLINE: the filter and its NUL */
            /* authorisation (net/auth.h): enum mq_acl_grant decided at SUBSCRIBE (and again
             * after an ACL reload); FULL (the default, also without an ACL) costs nothing per
             * delivery */
            uint8_t grant;
        };
    };
    uint16_t len;
    uint8_t qos;     /* granted */
    uint8_t opts;    /* MQ_SUB_NO_LOCAL | MQ_SUB_RAP, and retain handling << 2 (v5) */
    uint32_t sub_id; /* v5 Subscription Identifier; 0 = none */
} mq_sub_t;

#define MQ_SUB_INLINE 15
_Static_assert(sizeof(((mq_sub_t *)0)->inl) == MQ_SUB_INLINE, "inline filter size");
_Static_assert(offsetof(mq_sub_t, grant) == offsetof(mq_sub_t, inl) + MQ_SUB_INLINE,
               "the grant follows the inline filter, past the heap pointer");
_Static_assert(sizeof(mq_sub_t) == 32, "a subscription entry is 32 bytes");

/* The subscription's filter, NUL-terminated ('len' bytes). A short one lives in the entry:
 * the pointer is good until the session's subscriptions change (an add may move the array, a
 * removal moves the last entry into the hole). */
static inline const char *mq_sub_filter(const mq_sub_t *sub)
{
    return sub->len < MQ_SUB_INLINE ? sub->inl : sub->heap;
}

#define MQ_SUB_NO_LOCAL 0x01 /* not delivered to the session that published it */
#define MQ_SUB_RAP 0x02      /* Retain As Published */

enum mq_out_state {
    MQ_OUT_PUBLISH = 0, /* PUBLISH sent, awaiting PUBACK (QoS 1) or PUBREC (QoS 2) */
    MQ_OUT_PUBREL = 1,  /* PUBREL sent, awaiting PUBCOMP (QoS 2) */
};

typedef struct mq_outmsg {
    mq_msg_t *msg; /* a reference; NULL once a QoS 2 message reached PUBREL */
    uint16_t packet_id;
    uint8_t qos;
    uint8_t state;     /* enum mq_out_state */
    bool retain;       /* the retain flag to send */
    uint8_t n_sub_ids; /* v5 Subscription Identifiers to send with it */
    bool shared;       /* delivered for a shared subscription (mq_sess_each_shared) */
    union {
        uint32_t sub_id;   /* n_sub_ids == 1 */
        uint32_t *sub_ids; /* n_sub_ids > 1: owned */
        uint32_t bytes;    /* state PUBREL: the payload bytes it had (max_inflight_bytes) */
    };
    uint64_t mid; /* persistence: its number in the session's journal records (rising in
                   * delivery order); 0 = not journaled */
} mq_outmsg_t;

struct mq_sess;

/* Persistence (net/jwriter.h): what a persistent session's outbound messages go through,
 * reported as they happen so the owning worker can journal them. 'o' is borrowed for the
 * call. */
typedef struct mq_sess_journal {
    void *arg;
    /* queued, or put in flight (o->packet_id set) */
    void (*put)(void *arg, const struct mq_sess *s, const mq_outmsg_t *o);
    /* given a packet id (queue to window), or PUBREC received (o->state MQ_OUT_PUBREL) */
    void (*update)(void *arg, const struct mq_sess *s, const mq_outmsg_t *o);
    /* acknowledged, dropped, expired, handed to another member, or written at QoS 0 */
    void (*del)(void *arg, const struct mq_sess *s, uint64_t mid);
} mq_sess_journal_t;

/* Plain counters of a worker's sessions, written by that worker only (DESIGN.md rule 8). */
typedef struct mq_sess_stats {
    uint64_t dropped;       /* messages dropped by the queue limits or while offline */
    uint64_t publish_sent;  /* PUBLISH packets written */
    uint64_t publish_bytes; /* their payload bytes */
    uint64_t packets_sent;  /* every packet written (PUBLISH and PUBREL) */
    uint64_t expired;       /* messages whose Message Expiry passed before delivery (v5) */
    uint64_t too_large;     /* messages over the client's Maximum Packet Size (v5) */
} mq_sess_stats_t;

/* What the sessions of one worker share, one per worker: the broker's limits, the worker's
 * clock for message expiry, and the counters every session adds to. A session carries no
 * counters of its own (issue 13: they were 48 of its 224 bytes, summed for $SYS anyway). */
typedef struct mq_sess_home {
    const mq_sess_limits_t *limits;
    const uint64_t *clock; /* ms, any monotonic clock; NULL: no message expires */
    mq_sess_stats_t stats;
    const mq_sess_journal_t *journal; /* NULL: persistence off */
    const mq_str_t *mounts; /* mount points, by mq_sess_link_t.mount - 1 (net/: a listener's
                             * mount_point, which its clients' topics are behind) */
    uint64_t last_mid;      /* the last message number given: max(last + 1, wall-clock µs) */
} mq_sess_home_t;

/* What the attached connection asked for (MQTT 5 CONNECT properties); zero = no limit. */
typedef struct mq_sess_peer {
    uint8_t proto;       /* protocol level of the attached connection (enum mq_proto) */
    uint8_t mount;       /* 0, or 1 + the index of its mount point in home->mounts */
    uint16_t recv_max;   /* Receive Maximum: bounds outbound QoS 1/2 in flight */
    uint32_t max_packet; /* Maximum Packet Size the client accepts */
    uint16_t alias_max;  /* Topic Alias Maximum: aliases the broker may assign (the session
                          * keeps it in the connection's alias table, made at attach) */
} mq_sess_peer_t;

/* What a session keeps of its connection's limits (mq_sess_peer_t without the aliases). */
typedef struct mq_sess_link {
    uint8_t proto;
    uint8_t mount;
    uint16_t recv_max;
    uint32_t max_packet;
} mq_sess_link_t;

/* What an idle session does not need, made at its first use and freed with the session
 * (issue 13: 48 bytes less for every session that never queues, receives a QoS 2 PUBLISH or
 * assigns a Topic Alias). */
typedef struct mq_sess_rare {
    mq_outmsg_t *queue; /* ring buffer of waiting messages */
    uint64_t q_bytes;   /* payload bytes in the queue */
    uint32_t q_head, q_len, q_cap;
    uint32_t n_qos2_in, cap_qos2_in;
    uint16_t *qos2_in;            /* inbound QoS 2 packet ids received and not yet released */
    struct mq_alias_out *aliases; /* outbound Topic Aliases of this connection, or NULL */
} mq_sess_rare_t;

/* One per client id, so its size counts per connection (issue 13): the fields are ordered so
 * that no padding is left (112 bytes, a jemalloc size class): the small ones first,
 * then every array's counts, then the pointers. */
typedef struct mq_sess {
    char *client_id; /* owned, NUL-terminated */
    uint64_t id_hash;
    uint32_t id_len;     /* bytes of 'client_id' (an MQTT string: at most 65,535) */
    bool clean;          /* clean session: discarded when the connection ends */
    bool is_online;      /* a connection is attached */
    uint8_t auth_domain; /* security domain (per listener with per_listener_settings) */
    bool dropped_lately; /* a message was dropped since net/overload.c last looked (it clears
                          * it); the count is in home->stats.dropped */
    uint16_t user_len;   /* bytes of 'username' */
    uint16_t next_packet_id;
    mq_sess_link_t peer;               /* what the attached connection accepts */
    uint32_t expiry_s;                 /* v5 Session Expiry Interval; 0xFFFFFFFF = never */
    uint32_t n_subs, cap_subs;         /* subs */
    uint32_t n_inflight, cap_inflight; /* inflight */

    mq_buf_t *out;        /* the attached connection's output, or NULL (net/ finds the connection
                           * from it: mq_conn_of_out) */
    uint64_t expire_at;   /* broker clock ms at which a detached session ends; 0 */
    mq_sess_home_t *home; /* the owning worker's clock and counters */
    /* authorisation (net/auth.h): who owns the session; auth_domain says which listener's
     * rules apply */
    char *username;        /* owned, NUL-terminated; NULL = connected without a user name */
    mq_sub_t *subs;        /* the session's subscriptions */
    mq_outmsg_t *inflight; /* oldest first */
    mq_sess_rare_t *rare;  /* the queue, inbound QoS 2 ids, aliases; NULL until needed */
} mq_sess_t;
_Static_assert(sizeof(mq_sess_t) <= 112, "a session outgrew its jemalloc size class");

/* Returns a new detached session for 'client_id', owned by the caller; 'home' (the owning
 * worker's, not NULL) outlives it. */
mq_sess_t *mq_sess_new(const char *client_id, size_t len, uint64_t id_hash, bool clean,
                       mq_sess_home_t *home);

/* Frees the session, dropping every message reference. Subscriptions must have been removed
 * from the index by the caller (it knows the index; the session does not). NULL is a no-op. */
void mq_sess_free(mq_sess_t *s);

/* Attaches a connection's output buffer and re-sends what the session owes it: every
 * in-flight PUBLISH again with DUP set, every pending PUBREL [MQTT-4.4.0-1], then queued
 * messages up to the window. 'peer' says what the connection accepts (protocol level, MQTT 5
 * limits); Topic Aliases start afresh with each connection [MQTT-3.3.2-7]. */
void mq_sess_attach(mq_sess_t *s, mq_buf_t *out, const mq_sess_peer_t *peer);

/* Detaches the connection; from now on QoS 1/2 messages queue and QoS 0 ones are dropped. */
void mq_sess_detach(mq_sess_t *s);

/* Delivers 'msg' at 'qos' (already min(subscription, publication)) with 'retain' as the
 * retain flag to send. Writes it now, or queues it, or drops it (counted in home->stats.dropped)
 * when the queue limits say so or when its packet id would make it larger than a PUBLISH
 * can be; returns false when dropped. */
bool mq_sess_deliver(mq_sess_t *s, mq_msg_t *msg, uint8_t qos, bool retain);

/* As mq_sess_deliver(), with the Subscription Identifiers of the matching subscriptions
 * (sent to MQTT 5 clients; copied). */
bool mq_sess_deliver_ids(mq_sess_t *s, mq_msg_t *msg, uint8_t qos, bool retain,
                         const uint32_t *sub_ids, uint32_t n_sub_ids);

/* As mq_sess_deliver_ids(), for a message a shared subscription's group chose this session
 * for: if the connection or the session ends before the client has it, mq_sess_give_shared()
 * finds it so that another member can have it (MQTT 5 §4.8.2). */
bool mq_sess_deliver_shared(mq_sess_t *s, mq_msg_t *msg, uint8_t qos, bool retain,
                            const uint32_t *sub_ids, uint32_t n_sub_ids);

/* Offers each message delivered for a shared subscription that the client has not
 * acknowledged to give(arg, msg), in order: QoS 1 ones in flight before PUBACK (given ones
 * stay, since a returning client gets them again [MQTT-4.4.0-1], but lose the mark: they are
 * given once; QoS 2 in flight stays the client's alone [MQTT-4.8.2-4/5]), then the queued
 * ones (given ones leave the queue). give() returns whether
 * it took the message. Returns the number given. */
typedef bool mq_sess_give_cb(void *arg, mq_msg_t *msg);
uint32_t mq_sess_give_shared(mq_sess_t *s, mq_sess_give_cb *give, void *arg);

/* The connection's output drained below the high-water mark: writes what waits. */
void mq_sess_on_writable(mq_sess_t *s);

/* Outbound acknowledgements. Each returns MQ_RC_SUCCESS, or MQ_RC_PACKET_ID_NOT_FOUND for an
 * id that is not in flight in the right state (the caller logs it; not fatal in 3.1.1). */
enum mq_rc mq_sess_on_puback(mq_sess_t *s, uint16_t packet_id);
enum mq_rc mq_sess_on_pubrec(mq_sess_t *s, uint16_t packet_id);
enum mq_rc mq_sess_on_pubcomp(mq_sess_t *s, uint16_t packet_id);

/* An MQTT 5 PUBREC with a failure reason: the QoS 2 flow ends there (no PUBREL). */
enum mq_rc mq_sess_on_pubrec_failed(mq_sess_t *s, uint16_t packet_id);

/* Inbound QoS 2: returns true when 'packet_id' is new (the caller routes the message), false
 * when it is a re-send of a message not yet released (not routed again [MQTT-4.3.3-10]).
 * Either way the caller answers PUBREC. */
bool mq_sess_qos2_received(mq_sess_t *s, uint16_t packet_id);

/* Whether an inbound QoS 2 'packet_id' was received and waits for its PUBREL. */
bool mq_sess_qos2_pending(const mq_sess_t *s, uint16_t packet_id);

/* Inbound PUBREL: forgets 'packet_id'; the caller answers PUBCOMP. Returns whether the id
 * was known (MQTT 5 answers 0x92 Packet Identifier not found otherwise). */
bool mq_sess_qos2_released(mq_sess_t *s, uint16_t packet_id);

/* Drops every queued message (not those in flight) for which 'keep' returns false, counting
 * each in home->stats.dropped; the others keep their order. Returns the number dropped. For the
 * broker's authorisation after an ACL reload (net/auth.h). */
typedef bool mq_sess_keep_cb(void *arg, const mq_sess_t *s, const mq_msg_t *msg);
uint32_t mq_sess_filter_queue(mq_sess_t *s, mq_sess_keep_cb *keep, void *arg);

/* Persistence, start-up: puts back a message that was in flight when the broker stopped,
 * with its packet id and state (enum mq_out_state; in MQ_OUT_PUBREL 'msg' is NULL, else the
 * session takes a reference) and the Subscription Identifiers to send with it (copied). Like every
 * message in flight it is sent again when a connection attaches: with DUP, or as the PUBREL. A
 * detached session only; the caller restores in the order they were sent and gives distinct packet
 * ids; 'mid' is its number in the journal (0: none). */
void mq_sess_restore_inflight(mq_sess_t *s, mq_msg_t *msg, uint8_t qos, bool retain,
                              uint16_t packet_id, uint8_t state, const uint32_t *sub_ids,
                              uint32_t n_sub_ids, uint64_t mid);

/* Persistence, start-up: puts back a message that was queued, with its number 'mid' (as
 * mq_sess_deliver_ids() would queue it for a detached session, limits included). */
bool mq_sess_restore_queued(mq_sess_t *s, mq_msg_t *msg, uint8_t qos, bool retain,
                            const uint32_t *sub_ids, uint32_t n_sub_ids, uint64_t mid);

/* Records the user name the session belongs to ('user' NULL = none; copied). */
void mq_sess_set_username(mq_sess_t *s, const char *user, size_t len);

/* Subscriptions (the session's own list; the worker keeps the index and its filter table in
 * step). Returns the existing entry for 'filter', or NULL. */
mq_sub_t *mq_sess_find_sub(mq_sess_t *s, const char *filter, size_t len);

/* Adds a subscription; the filter is copied. Returns the new entry. */
mq_sub_t *mq_sess_add_sub(mq_sess_t *s, const char *filter, size_t len, uint64_t fid, uint8_t qos);

/* Removes the subscription at 'sub' (from mq_sess_find_sub). */
void mq_sess_remove_sub(mq_sess_t *s, mq_sub_t *sub);

/* A detached session whose expiry has passed at 'now' (its end is due). */
static inline bool mq_sess_expired(const mq_sess_t *s, uint64_t now)
{
    return s->out == NULL && s->expire_at != 0 && s->expire_at <= now;
}

/* Outbound QoS 1/2 messages awaiting acknowledgement. */
static inline uint32_t mq_sess_inflight(const mq_sess_t *s)
{
    return s->n_inflight;
}

/* Messages waiting in the queue (not in flight), and their payload bytes. */
static inline uint32_t mq_sess_queued(const mq_sess_t *s)
{
    return s->rare ? s->rare->q_len : 0;
}

static inline uint64_t mq_sess_queued_bytes(const mq_sess_t *s)
{
    return s->rare ? s->rare->q_bytes : 0;
}

/* The i-th waiting message from the head (i < mq_sess_queued). */
static inline const mq_outmsg_t *mq_sess_queued_at(const mq_sess_t *s, uint32_t i)
{
    const mq_sess_rare_t *r = s->rare;
    return &r->queue[(r->q_head + i) % r->q_cap];
}

/* Inbound QoS 2 packet ids received and not yet released, and the i-th of them. */
static inline uint32_t mq_sess_qos2_in_count(const mq_sess_t *s)
{
    return s->rare ? s->rare->n_qos2_in : 0;
}

static inline uint16_t mq_sess_qos2_in_at(const mq_sess_t *s, uint32_t i)
{
    return s->rare->qos2_in[i];
}

#endif
