/* SPDX-License-Identifier: MIT */
/* net/mailbox.h - what threads send each other: entry types, inboxes, spill lists, wake-ups. */
#ifndef MQ_NET_MAILBOX_H
#define MQ_NET_MAILBOX_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/mpsc.h"

/* Every cross-thread message goes through a mailbox (DESIGN.md rule 2): the acceptor hands
 * new connections to workers, workers hand connections and deliveries to each other, the
 * control thread publishes $SYS and stops the workers. A mailbox belongs to the thread that
 * drains it (its owner); any thread may post to it. */

enum mq_mail_type {
    MQ_MAIL_NEW_CONN = 1,       /* acceptor -> worker: a[0] = fd, a[1] = listener index */
    MQ_MAIL_HANDOFF = 2,        /* worker -> owner: ptr = mq_conn_t, its CONNECT bytes inside */
    MQ_MAIL_DELIVER = 3,        /* worker -> worker: ptr = mq_msg_t (a reference), a[0..n) = filter
                                   ids, or n > MQ_MAIL_INLINE: a[0] = pointer to n ids (owned by the
                                   consumer) */
    MQ_MAIL_STOP = 4,           /* control -> worker */
    MQ_MAIL_PUBLISH = 5,        /* control -> worker 0: ptr = mq_msg_t (a reference) to publish */
    MQ_MAIL_DELIVER_SHARED = 6, /* worker -> worker: ptr = mq_msg_t (a reference) for member
                                   a[2] (its client id hash) of shared group a[1] on filter
                                   a[0] */
    MQ_MAIL_VISIT = 7,          /* control -> worker: ptr = mq_proto_visit_t, each session to
                                   be shown to it, then its 'done' posted */
    MQ_MAIL_JOURNAL = 8,        /* control -> worker: ptr = mq_jwriter_rotation_t (a snapshot
                                   begins: switch to its file), then its 'done' posted */
    MQ_MAIL_MARK = 9,           /* worker -> worker: a[0] = sender, a[1] = its turn: answer once
                                   your journal holds what came before (net/marks.h) */
    MQ_MAIL_DURABLE = 10,       /* worker -> worker: a[0] = sender, a[1] = the turn answered */
};

#define MQ_MAIL_INLINE 5 /* 64-bit words carried inline: the entry is 64 bytes */

/* Ownership of what 'ptr' (and a[0] for a long DELIVER) points to travels with the entry. */
typedef struct mq_mail {
    uint32_t type;
    uint32_t n;
    void *ptr;
    uint64_t a[MQ_MAIL_INLINE];
} mq_mail_t;

typedef struct mq_mailbox {
    mq_mpsc_t *q;
    atomic_int wake_pending; /* a wake-up is on its way: producers need not send another */
    int ring_fd;             /* the owner's io_uring, target of MSG_RING; -1 until set */
} mq_mailbox_t;

/* Entries a producer could not post because the target's inbox was full, kept in order
 * (nothing is dropped: DESIGN.md rule 2). One per producer and target; the producer's own. */
typedef struct mq_mail_spill {
    mq_mail_t *e;
    uint32_t head, len, cap;
} mq_mail_spill_t;

/* Frees what an entry holds when it will never be consumed (shutdown). */
typedef void mq_mail_drop_cb(mq_mail_t *m);

/* Owner thread, before any producer sees the mailbox. */
void mq_mailbox_init(mq_mailbox_t *mb, uint32_t cap);

/* Owner thread, once no producer is left: drops every waiting entry through 'drop'. */
void mq_mailbox_fini(mq_mailbox_t *mb, mq_mail_drop_cb *drop);

/* Any thread: posts a copy of *m; false when the inbox is full. Does not wake the owner. */
bool mq_mailbox_post(mq_mailbox_t *mb, const mq_mail_t *m);

/* Producer thread: posts *m behind whatever already waits in 'spill' for this target, so a
 * target sees one producer's entries in order; returns the spill list's length after. */
uint32_t mq_mailbox_send(mq_mailbox_t *to, mq_mail_spill_t *spill, const mq_mail_t *m);

/* Producer thread: moves what it can from 'spill' into the target's inbox; returns how many
 * entries it moved. */
uint32_t mq_mailbox_retry(mq_mailbox_t *to, mq_mail_spill_t *spill);

/* Producer thread: drops what is left in 'spill' and frees it. */
void mq_mail_spill_fini(mq_mail_spill_t *spill, mq_mail_drop_cb *drop);

/* Producer thread that owns 'from': prepares a MSG_RING on 'from' that wakes the owner of
 * 'to', unless a wake-up is already on its way. Returns true when an SQE was prepared (the
 * caller submits). Coalesces wake-ups: the owner clears wake_pending before it drains. */
bool mq_mailbox_wake(mq_mailbox_t *to, struct io_uring *from);

/* Prepares a MSG_RING on 'from' to the ring 'ring_fd' (the acceptor's, which has no inbox).
 * False when no SQE could be had. */
bool mq_mailbox_ring(struct io_uring *from, int ring_fd);

/* Owner thread: call before draining, so that a producer posting after this sends a new
 * wake-up. */
void mq_mailbox_begin_drain(mq_mailbox_t *mb);

/* Owner thread: takes the oldest entry into *m; false when empty. */
bool mq_mailbox_take(mq_mailbox_t *mb, mq_mail_t *m);

/* Entries waiting (approximate; for $SYS). Any thread. */
uint32_t mq_mailbox_depth(const mq_mailbox_t *mb);

/* ---- a worker's outgoing side: one spill list per target, wake-ups once per turn ---------- */

/* Past MQ_OUTBOX_HIGH entries spilled for one target, the producer reports congestion (the
 * worker then stops consuming its connections' input) until every spill list is back under
 * MQ_OUTBOX_LOW: back-pressure instead of unbounded memory, with hysteresis. */
#define MQ_OUTBOX_HIGH 16384u
#define MQ_OUTBOX_LOW 4096u

typedef struct mq_outbox {
    mq_mailbox_t **to;      /* every worker's inbox, by worker index (borrowed) */
    mq_mail_spill_t *spill; /* per target */
    unsigned n, self;
    uint64_t wake_mask; /* targets to wake at the end of the turn */
    bool congested;
} mq_outbox_t;

/* The producing worker's thread only, for every function below. 'to' has 'n' entries and
 * outlives the outbox; 'self' is the producer's own index (never woken by itself). */
void mq_outbox_init(mq_outbox_t *ob, mq_mailbox_t **to, unsigned n, unsigned self);
void mq_outbox_fini(mq_outbox_t *ob, mq_mail_drop_cb *drop);

/* Sends *m to worker 'to' in order behind anything spilled for it, and schedules its
 * wake-up for the end of the turn. */
void mq_outbox_send(mq_outbox_t *ob, unsigned to, const mq_mail_t *m);

/* Once a turn: moves spilled entries into their inboxes and updates 'congested'. */
void mq_outbox_retry(mq_outbox_t *ob);

/* End of a turn: one MSG_RING per target with new entries, prepared on 'ring'. */
void mq_outbox_wake(mq_outbox_t *ob, struct io_uring *ring);

#endif
