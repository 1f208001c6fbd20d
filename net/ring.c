/* SPDX-License-Identifier: MIT */
/* net/ring.c - Vyukov's bounded queue (per-slot sequence numbers), single consumer. */
#include "net/ring.h"

#include <stdatomic.h>
#include <stddef.h>

#include "core/mem.h"
#include "core/rc.h"

typedef struct slot {
    atomic_uint_fast64_t seq; /* == position: free for the producer of that position;
                                 == position + 1: holds that position's entry */
    mq_ring_entry_t e;
} slot_t;

struct mq_ring {
    _Alignas(64) atomic_uint_fast64_t tail; /* next position to claim (producers) */
    _Alignas(64) uint64_t head;             /* next position to read (consumer only) */
    atomic_uint_fast64_t head_pub;          /* head, published for mq_ring_depth */
    uint64_t mask;
    slot_t *slots;
};

mq_ring_t *mq_ring_new(uint32_t cap)
{
    MQ_ASSERT(cap <= (1u << 31));
    uint32_t n = 2;
    while (n < cap)
        n *= 2;
    mq_ring_t *r = mq_calloc(1, sizeof(*r));
    r->slots = mq_calloc(n, sizeof(slot_t));
    r->mask = n - 1;
    for (uint32_t i = 0; i < n; i++)
        atomic_init(&r->slots[i].seq, i);
    atomic_init(&r->tail, 0);
    atomic_init(&r->head_pub, 0);
    return r;
}

void mq_ring_free(mq_ring_t *r)
{
    if (r == NULL)
        return;
    mq_free(r->slots);
    mq_free(r);
}

bool mq_ring_push(mq_ring_t *r, const mq_ring_entry_t *e)
{
    uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        slot_t *s = &r->slots[pos & r->mask];
        /* acquire pairs with the consumer's release in pop: the slot is free for reuse */
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                s->e = *e;
                /* release pairs with the consumer's acquire: the entry is written */
                atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
                return true;
            }
        } else if (dif < 0) {
            return false; /* full: the slot still holds an entry from one lap ago */
        } else {
            pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        }
    }
}

bool mq_ring_pop(mq_ring_t *r, mq_ring_entry_t *e)
{
    slot_t *s = &r->slots[r->head & r->mask];
    /* acquire pairs with the producer's release in push */
    if (atomic_load_explicit(&s->seq, memory_order_acquire) != r->head + 1)
        return false;
    *e = s->e;
    /* release pairs with the producers' acquire: the slot may be reused one lap later */
    atomic_store_explicit(&s->seq, r->head + r->mask + 1, memory_order_release);
    r->head++;
    atomic_store_explicit(&r->head_pub, r->head, memory_order_relaxed);
    return true;
}

uint32_t mq_ring_depth(const mq_ring_t *r)
{
    uint64_t t = atomic_load_explicit(&((mq_ring_t *)r)->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&((mq_ring_t *)r)->head_pub, memory_order_relaxed);
    return t > h ? (uint32_t)(t - h) : 0;
}
