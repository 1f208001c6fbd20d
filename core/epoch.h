/* SPDX-License-Identifier: MIT */
/* core/epoch.h - quiescent-state-based reclamation (QSBR) for the shared index and store. */
#ifndef MQ_CORE_EPOCH_H
#define MQ_CORE_EPOCH_H

#include <stdatomic.h>
#include <stdint.h>

/* Shared data (index nodes, child tables, retained messages) is unlinked by a writer, then
 * retired; it is freed only once every registered thread has passed a quiescent point (a
 * moment where it holds no pointer into shared data: the end of a loop turn) since the
 * retirement, like urcu's rcu_quiescent_state(). A thread that blocks (waits for I/O) goes
 * offline first so that it does not hold reclamation up. */

typedef struct mq_epoch_entry mq_epoch_entry_t;
typedef void mq_epoch_free_cb(mq_epoch_entry_t *e);

/* Embedded in what is retired (ck_epoch_entry style): no allocation to retire. 16 bytes: the
 * epoch of a retirement is kept once per batch of entries, not in each (every index node
 * carries one). */
struct mq_epoch_entry {
    mq_epoch_entry_t *next;
    mq_epoch_free_cb *fn;
};

typedef struct mq_epoch mq_epoch_t;         /* the domain, shared by all threads */
typedef struct mq_epoch_rec mq_epoch_rec_t; /* one thread's record, owned by that thread */

/* Creates a domain for at most 'max_threads' records. */
mq_epoch_t *mq_epoch_new(unsigned max_threads);

/* Frees the domain and runs every pending free callback; no thread may use it any more. */
void mq_epoch_free(mq_epoch_t *ep);

/* Returns record number 'idx' (< max_threads) for the calling thread, online. */
mq_epoch_rec_t *mq_epoch_register(mq_epoch_t *ep, unsigned idx);

/* The calling thread holds no pointer into shared data now; frees what has become safe. */
void mq_epoch_quiescent(mq_epoch_rec_t *r);

/* Before blocking: the thread will not touch shared data until mq_epoch_online(). */
void mq_epoch_offline(mq_epoch_rec_t *r);
void mq_epoch_online(mq_epoch_rec_t *r);

/* For a thread with no record (the main thread, swapping a pointer the workers read): returns
 * once every registered thread has passed a quiescent point, or been offline, since the call,
 * so that none still holds what was reachable before it. Yields while it waits. Never call it
 * from a registered thread (it would wait for itself). */
void mq_epoch_synchronize(mq_epoch_t *ep);

/* Hands 'e' to the reclaimer: 'fn(e)' runs on this thread once it is safe. Owning thread. */
void mq_epoch_retire(mq_epoch_rec_t *r, mq_epoch_entry_t *e, mq_epoch_free_cb *fn);

/* Number of retired entries not yet freed by this record (for tests and $SYS). */
uint64_t mq_epoch_pending(const mq_epoch_rec_t *r);

#endif
