/* SPDX-License-Identifier: MIT */
/* core/replay.h - start-up state rebuilt from snapshot and journals, as plain structures. */
#ifndef MQ_CORE_REPLAY_H
#define MQ_CORE_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/journal.h"
#include "core/jrec.h"
#include "core/map.h"

/* Start-up reads the snapshot, then the journals of its generation and later ones in
 * generation order, into one mq_replay_t; then it hands each session to the worker
 * 'owner' (xxh3(client_id) % the current worker count, DESIGN.md rule 1) whatever the worker
 * count of the files was, and the retained messages to the store. Everything here is owned
 * by the one thread that runs start-up; nothing is shared. Pure: no I/O, no clock (times
 * are passed in). Every view in these structures points into memory the model owns. */

typedef struct mq_replay_retained {
    uint64_t seq;  /* of the change that set it (jrec.h: replay keeps the highest) */
    bool is_clear; /* a clear kept only to order later changes; mq_replay_finish drops it */
    mq_jrec_msg_t msg;
    mq_jrec_src_t src; /* its publisher, when the record named one */
    /* private */
    void *_mem;
    uint64_t _hash;
    struct mq_replay_retained *_next; /* same hash */
} mq_replay_retained_t;

typedef struct mq_replay_sub {
    mq_str_t filter;
    uint8_t options; /* subscription options byte (MQ_JREC_SUBOPT_*) */
    uint32_t sub_id; /* 0 = none */
} mq_replay_sub_t;

typedef struct mq_replay_out {
    uint64_t mid;
    uint16_t packet_id; /* 0 while queued without one */
    uint8_t state;      /* enum mq_out_state */
    uint8_t flags;      /* MQ_JREC_MSG_* */
    mq_jrec_msg_t msg;  /* msg.qos: the QoS it is delivered at */
    void *_mem;
} mq_replay_out_t;

typedef struct mq_replay_sess {
    mq_jrec_sess_t info; /* the last SESS_PUT */
    uint64_t id_hash;    /* XXH3-64 of the client id, as net/ computes it */
    uint32_t owner;      /* id_hash % n_workers of the model */
    mq_replay_sub_t *subs;
    uint32_t n_subs, cap_subs;
    mq_replay_out_t *out; /* queued and in flight, ascending mid = delivery order */
    uint32_t n_out, cap_out;
    uint16_t *qos2_in; /* inbound QoS 2 packet ids received, not released */
    uint32_t n_qos2_in, cap_qos2_in;
    uint64_t next_mid; /* one above the highest mid put: where the session resumes. A
                          snapshot keeps only held messages, so after one it may be lower
                          than before; mids of deleted messages may then come again, which
                          is harmless since nothing refers to them any more */
    /* private */
    void *_mem;
    struct mq_replay_sess *_next; /* same hash */
} mq_replay_sess_t;

typedef struct mq_replay {
    uint32_t n_workers; /* of the broker starting now */
    size_t n_retained;  /* entries in the retained table, clears included */
    size_t n_sessions;
    uint64_t max_retain_seq; /* the writer of retained changes resumes above it */
    /* private */
    mq_map_t _retained; /* hash of topic -> chain */
    mq_map_t _sessions; /* hash of client id -> chain */
} mq_replay_t;

void mq_replay_init(mq_replay_t *rp, uint32_t n_workers);

/* Frees everything the model holds. */
void mq_replay_fini(mq_replay_t *rp);

enum mq_replay_res {
    MQ_REPLAY_APPLIED = 0,
    MQ_REPLAY_IGNORED = 1, /* FILE_HEADER, SNAP_END: no state */
    MQ_REPLAY_ORPHAN = 2,  /* refers to a session, subscription, message or id not present
                              (records lost before it; counted and logged by the caller) */
    MQ_REPLAY_STALE = 3,   /* a retained change older (by seq) than one already applied */
};

/* Applies one decoded record; copies what it keeps, so 'r' may point into a buffer that goes
 * away. SESS_PUT creates a session or replaces its fields, keeping its subscriptions,
 * messages and QoS 2 ids; SESS_DEL drops all of it; SUB_ADD replaces a subscription to the
 * same filter; MSG_PUT inserts or replaces by mid. */
enum mq_replay_res mq_replay_apply(mq_replay_t *rp, const mq_jrec_t *r);

/* ---- reading one file -------------------------------------------------------------------- */

/* Called for each thing of a file that did not replay cleanly, for the caller's log:
 * CORRUPT and TORN (offset, len = bytes skipped), UNKNOWN (a record of an unknown type), and
 * RECORD with 'why' set (a record that verified but did not decode, or an orphan). */
typedef void mq_replay_note_cb(void *arg, enum mq_journal_ev ev, uint64_t offset, uint64_t len,
                               uint8_t type, const char *why);

typedef struct mq_replay_file {
    mq_replay_note_cb *note; /* may be NULL */
    void *note_arg;
    mq_jrec_header_t header; /* when has_header */
    bool has_header;         /* the first record was a FILE_HEADER of this format */
    bool complete;           /* a SNAP_END matching the header's generation and the count
                                of records before it was read */
    uint64_t n_applied, n_ignored, n_orphans, n_stale, n_malformed;
    uint64_t torn_at; /* offset of the torn tail, or UINT64_MAX */
} mq_replay_file_t;

/* Prepares *f for a new file (zeroes it, keeping 'note' and 'note_arg'). */
void mq_replay_file_init(mq_replay_file_t *f);

/* Applies what the reader 'r' yields (started with salt 0 at the beginning of a file) until
 * it asks for the next window or the file ends; sets r->salt from the FILE_HEADER. Returns
 * MQ_RC_AGAIN (feed the reader its next window and call again), MQ_RC_SUCCESS (the file
 * ended; f says what was skipped), or, when the file's first record is not a FILE_HEADER this
 * build can read, MQ_RC_UNSUPPORTED_PROTOCOL_VERSION (another format version) or
 * MQ_RC_MALFORMED_PACKET: nothing was applied; the caller moves the file aside. */
MQ_MUST_CHECK enum mq_rc mq_replay_read(mq_replay_t *rp, mq_journal_reader_t *r,
                                        mq_replay_file_t *f);

/* ---- after the last file ----------------------------------------------------------------- */

/* Drops retained clears, retained messages whose expiry_at <= now, and outbound messages
 * whose expiry_at <= now (their sessions keep their order). Sessions are left as they are:
 * the caller ends those whose expiry passed (disconnected_at + expiry_interval, counting a
 * 0 disconnected_at as the time the broker stopped) after publishing their wills. Returns the
 * number of messages dropped. */
size_t mq_replay_finish(mq_replay_t *rp, int64_t now);

/* The message to route or queue for a kept one: topic, payload, QoS and properties of 'm'
 * with 'retain'; its expiry (m->expiry_at, seconds since the epoch) counted from now, 'wall'
 * (seconds since the epoch) being 'mono_ms' on the loop clock. NULL when its properties no
 * longer decode as a PUBLISH's. One reference, the caller's. */
struct mq_msg *mq_replay_msg_new(const mq_jrec_msg_t *m, bool retain, int64_t wall,
                                 uint64_t mono_ms);

/* Looks up a session by client id; NULL when absent. */
mq_replay_sess_t *mq_replay_find_sess(const mq_replay_t *rp, mq_str_t client_id);

/* Looks up a retained entry (a clear too, before mq_replay_finish) by topic; NULL if absent. */
mq_replay_retained_t *mq_replay_find_retained(const mq_replay_t *rp, mq_str_t topic);

/* Calls 'cb' for each session (any order); the model must not change meanwhile. */
typedef void mq_replay_sess_cb(void *arg, mq_replay_sess_t *s);
void mq_replay_each_sess(const mq_replay_t *rp, mq_replay_sess_cb *cb, void *arg);

/* Calls 'cb' for each retained entry (any order). */
typedef void mq_replay_retained_cb(void *arg, mq_replay_retained_t *m);
void mq_replay_each_retained(const mq_replay_t *rp, mq_replay_retained_cb *cb, void *arg);

/* Appends the whole model to 'out' as a snapshot: FILE_HEADER *hdr (its kind should be
 * MQ_JREC_KIND_SNAPSHOT), the retained messages (clears too, so their seq still orders
 * later changes), each session with its subscriptions, messages and QoS 2 ids, and SNAP_END;
 * records are salted with hdr->salt. What start-up writes once it has replayed, so later
 * journals need not be read again (and what a different worker count needs). */
void mq_replay_encode(const mq_replay_t *rp, mq_buf_t *out, const mq_jrec_header_t *hdr);

#endif
