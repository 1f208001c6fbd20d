/* SPDX-License-Identifier: MIT */
/* core/tindex.h - sharded topic index: lock-free match, per-shard locked update, retained store. */
#ifndef MQ_CORE_TINDEX_H
#define MQ_CORE_TINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/epoch.h"
#include "core/msg.h"

/* The index is a topic tree shared by all workers. Each node is one topic level; a node at
 * which some worker has subscribers carries a stable 64-bit filter id and a mask of the
 * interested workers (bit w = worker w has at least one subscriber to this exact filter).
 * Which sessions those are is each worker's private business (DESIGN.md rule 3). Retained
 * messages live in the nodes of their topics.
 *
 * Readers (match, retained lookup) take no lock: they must run between two quiescent points
 * of their epoch record (core/epoch.h), and nothing they are handed survives that, except a
 * message they take a reference to. Writers serialize per shard (the first topic level). */

typedef struct mq_tindex mq_tindex_t;

#define MQ_TINDEX_MAX_WORKERS 64

/* Creates an empty index whose memory is reclaimed through 'ep'. */
mq_tindex_t *mq_tindex_new(mq_epoch_t *ep);

/* Frees the index and every node and retained message; no thread may use it any more. */
void mq_tindex_free(mq_tindex_t *ix);

/* Called once per matching filter with its id and the mask of interested workers. */
typedef void mq_tindex_match_cb(void *arg, uint64_t filter_id, uint64_t workers);

/* Calls 'cb' for each filter with interest matching the valid topic name 'topic' ('$'
 * topics are not matched by a leading wildcard); returns the number of calls. Any worker, in
 * an epoch read section. */
size_t mq_tindex_match(const mq_tindex_t *ix, const char *topic, size_t len, mq_tindex_match_cb *cb,
                       void *arg);

/* A number that changes whenever the answer of mq_tindex_match() may change (a worker's
 * interest in a filter was added or removed). A caller may keep a match result and reuse it
 * while the generation it read before matching is still current. Any thread (acquire). */
uint64_t mq_tindex_generation(const mq_tindex_t *ix);

/* Sets worker 'w''s interest bit on the valid, non-shared 'filter', creating its node;
 * returns the filter id. Takes the shard lock; 'r' is the caller's epoch record. */
uint64_t mq_tindex_add_interest(mq_tindex_t *ix, const char *filter, size_t len, unsigned w,
                                mq_epoch_rec_t *r);

/* Clears worker 'w''s interest bit on 'filter' and prunes nodes that hold nothing any more. */
void mq_tindex_remove_interest(mq_tindex_t *ix, const char *filter, size_t len, unsigned w,
                               mq_epoch_rec_t *r);

/* Stores 'msg' as the retained message of its topic (takes a new reference), replacing the
 * previous one; a message with an empty payload deletes the topic's retained message instead
 * [MQTT-3.3.1-10]. Returns +1 when a topic gained a retained message, -1 when one lost it, 0
 * when one was replaced or nothing changed. */
int mq_tindex_retain(mq_tindex_t *ix, mq_msg_t *msg, mq_epoch_rec_t *r);

/* Persistence: from now on every change mq_tindex_retain makes is numbered in msg->rseq,
 * under the lock of the topic's shard, mq_jrec_next(the shard's last, wall-clock µs) — for
 * one topic the numbers follow the order of the store's changes and, across restarts, the
 * clock — starting above 'floor' (the highest a journal held). Before the first change;
 * without it nothing is numbered (and no clock is read). */
void mq_tindex_number_changes(mq_tindex_t *ix, uint64_t floor);

/* Called for each retained message matching a filter; 'msg' is borrowed (take a reference
 * to keep it past the read section). */
typedef void mq_tindex_retained_cb(void *arg, mq_msg_t *msg);

/* Calls 'cb' for every retained message whose topic matches the valid filter 'filter'
 * (the same rules as mq_tindex_match); returns the count. Any worker, in a read section. */
size_t mq_tindex_retained(const mq_tindex_t *ix, const char *filter, size_t len,
                          mq_tindex_retained_cb *cb, void *arg);

/* Calls 'cb' for every retained message of the index, '$' topics included (what a snapshot
 * of the store walks); returns the count. Any thread, in a read section; writers may run
 * meanwhile (a message stored or removed during the walk may or may not be seen). */
size_t mq_tindex_each_retained(const mq_tindex_t *ix, mq_tindex_retained_cb *cb, void *arg);

/* Number of topics holding a retained message, and their payload bytes. Any thread. */
uint64_t mq_tindex_retained_count(const mq_tindex_t *ix);
uint64_t mq_tindex_retained_bytes(const mq_tindex_t *ix);

/* Number of retained messages stored, replaced or removed since the index was made (what
 * autosave_on_changes counts). Any thread. */
uint64_t mq_tindex_retained_changes(const mq_tindex_t *ix);

#endif
