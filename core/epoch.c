/* SPDX-License-Identifier: MIT */
/* core/epoch.c - QSBR: a global epoch, a per-thread "seen" epoch, per-thread retire lists. */
#include "core/epoch.h"

#include <sched.h>

#include "core/mem.h"
#include "core/rc.h"

/* A record's retired entries in batches, oldest first: what one thread retired between two
 * of its quiescent points, with the epoch of the batch's last retirement (the largest: the
 * global epoch only grows). A batch is freed once every online thread has announced a later
 * epoch. When all batches are in use, the newest takes more: its entries then wait for the
 * last of them, which is later, never earlier, than their own epoch. */
#define BATCHES 8

typedef struct batch {
    mq_epoch_entry_t *head, **tail;
    uint64_t epoch;
} batch_t;

struct mq_epoch_rec {
    _Alignas(64) atomic_uint_fast64_t seen; /* epoch at the last quiescent point; 0 offline */
    mq_epoch_t *ep;
    batch_t b[BATCHES]; /* a ring: b[first] is the oldest, b[(first + n - 1) % BATCHES] open */
    unsigned first, n;  /* n >= 1: the open batch always exists */
    uint64_t n_pending;
    unsigned idx;
};

struct mq_epoch {
    _Alignas(64) atomic_uint_fast64_t global;
    unsigned n;
    mq_epoch_rec_t recs[];
};

static batch_t *open_batch(mq_epoch_rec_t *r)
{
    return &r->b[(r->first + r->n - 1) % BATCHES];
}

static void batch_reset(batch_t *b)
{
    b->head = NULL;
    b->tail = &b->head;
    b->epoch = 0;
}

mq_epoch_t *mq_epoch_new(unsigned max_threads)
{
    mq_epoch_t *ep = mq_calloc(1, sizeof(*ep) + max_threads * sizeof(mq_epoch_rec_t));
    atomic_init(&ep->global, 1);
    ep->n = max_threads;
    for (unsigned i = 0; i < max_threads; i++) {
        mq_epoch_rec_t *r = &ep->recs[i];
        atomic_init(&r->seen, 0);
        r->ep = ep;
        r->n = 1;
        batch_reset(&r->b[0]);
        r->idx = i;
    }
    return ep;
}

/* Runs the callbacks of the batches retired before epoch 'below', oldest first; then, when the
 * open batch holds entries, opens the next one. A batch leaves the ring before its callbacks
 * run, so one that retires on this record puts its entry in the open batch, with its own
 * epoch. */
static void run_all(mq_epoch_rec_t *r, uint64_t below)
{
    for (;;) {
        batch_t *b = &r->b[r->first];
        if (b->head == NULL || b->epoch >= below)
            break;
        mq_epoch_entry_t *e = b->head;
        batch_reset(b);
        if (r->n > 1) { /* (the open one, n == 1, stays, empty) */
            r->first = (r->first + 1) % BATCHES;
            r->n--;
        }
        for (mq_epoch_entry_t *next; e; e = next) {
            next = e->next; /* fn frees what holds 'e' */
            r->n_pending--;
            e->fn(e);
        }
    }
    if (open_batch(r)->head && r->n < BATCHES) {
        r->n++;
        batch_reset(open_batch(r));
    }
}

void mq_epoch_free(mq_epoch_t *ep)
{
    if (ep == NULL)
        return;
    for (unsigned i = 0; i < ep->n; i++)
        run_all(&ep->recs[i], UINT64_MAX);
    mq_free(ep);
}

mq_epoch_rec_t *mq_epoch_register(mq_epoch_t *ep, unsigned idx)
{
    MQ_ASSERT(idx < ep->n);
    mq_epoch_rec_t *r = &ep->recs[idx];
    mq_epoch_online(r);
    return r;
}

/* Smallest epoch seen by any online thread: everything retired before it is unreachable. */
static uint64_t min_seen(const mq_epoch_t *ep)
{
    uint64_t min = atomic_load_explicit(&ep->global, memory_order_seq_cst);
    for (unsigned i = 0; i < ep->n; i++) {
        uint64_t s = atomic_load_explicit(&ep->recs[i].seen, memory_order_seq_cst);
        if (s != 0 && s < min)
            min = s;
    }
    return min;
}

void mq_epoch_quiescent(mq_epoch_rec_t *r)
{
    /* seq_cst pairs with the seq_cst increment in retire and the loads in min_seen: a thread
     * that announces epoch g has finished with everything unlinked before g was taken. */
    uint64_t g = atomic_load_explicit(&r->ep->global, memory_order_seq_cst);
    atomic_store_explicit(&r->seen, g, memory_order_seq_cst);
    if (r->n_pending)
        run_all(r, min_seen(r->ep));
}

void mq_epoch_offline(mq_epoch_rec_t *r)
{
    atomic_store_explicit(&r->seen, 0, memory_order_seq_cst);
}

void mq_epoch_online(mq_epoch_rec_t *r)
{
    uint64_t g = atomic_load_explicit(&r->ep->global, memory_order_seq_cst);
    atomic_store_explicit(&r->seen, g, memory_order_seq_cst);
    atomic_thread_fence(memory_order_seq_cst); /* before any shared read that follows */
}

void mq_epoch_synchronize(mq_epoch_t *ep)
{
    /* seq_cst, as in mq_epoch_quiescent: a thread that announces 'g' or later (or goes
     * offline) after this increment has finished with anything unlinked before it */
    uint64_t g = atomic_fetch_add_explicit(&ep->global, 1, memory_order_seq_cst) + 1;
    for (unsigned i = 0; i < ep->n; i++) {
        for (;;) {
            uint64_t s = atomic_load_explicit(&ep->recs[i].seen, memory_order_seq_cst);
            if (s == 0 || s >= g)
                break;
            sched_yield(); /* a worker's turn is short; a waiting worker is offline */
        }
    }
}

void mq_epoch_retire(mq_epoch_rec_t *r, mq_epoch_entry_t *e, mq_epoch_free_cb *fn)
{
    e->fn = fn;
    e->next = NULL;
    batch_t *b = open_batch(r);
    /* the entry is unreachable from now on; threads that saw an epoch <= this one may still
     * hold it, threads that announce a later epoch cannot */
    b->epoch = atomic_fetch_add_explicit(&r->ep->global, 1, memory_order_seq_cst);
    *b->tail = e;
    b->tail = &e->next;
    r->n_pending++;
}

uint64_t mq_epoch_pending(const mq_epoch_rec_t *r)
{
    return r->n_pending;
}
