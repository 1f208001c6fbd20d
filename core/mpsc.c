/* SPDX-License-Identifier: MIT */
/* core/mpsc.c - Vyukov's bounded queue (per-slot sequence numbers), single consumer. */
#include "core/mpsc.h"

#include <stdatomic.h>
#include <string.h>

#include "core/mem.h"
#include "core/rc.h"

/* A slot is its sequence number followed by 'slot_size' bytes of entry, padded to 8. */
typedef struct slot_hdr {
    atomic_uint_fast64_t seq; /* == position: free for the producer of that position;
                                 == position + 1: holds that position's entry */
} slot_hdr_t;

struct mq_mpsc {
    _Alignas(64) atomic_uint_fast64_t tail; /* next position to claim (producers) */
    _Alignas(64) uint64_t head;             /* next position to read (consumer only) */
    atomic_uint_fast64_t head_pub;          /* head, published for mq_mpsc_depth */
    uint64_t mask;
    size_t entry_size; /* bytes of entry in a slot */
    size_t stride;     /* bytes from one slot to the next */
    uint8_t *slots;
};

static slot_hdr_t *slot_at(const mq_mpsc_t *q, uint64_t pos)
{
    return (slot_hdr_t *)(q->slots + (size_t)(pos & q->mask) * q->stride);
}

static void *slot_data(slot_hdr_t *s)
{
    return (uint8_t *)s + sizeof(slot_hdr_t);
}

mq_mpsc_t *mq_mpsc_new(uint32_t cap, size_t slot_size)
{
    MQ_ASSERT(cap <= (1u << 31));
    uint32_t n = 2;
    while (n < cap)
        n *= 2;
    mq_mpsc_t *q = mq_calloc(1, sizeof(*q));
    q->entry_size = slot_size;
    q->stride = (sizeof(slot_hdr_t) + slot_size + 7) & ~(size_t)7;
    q->slots = mq_calloc(n, q->stride);
    q->mask = n - 1;
    for (uint32_t i = 0; i < n; i++)
        atomic_init(&slot_at(q, i)->seq, i);
    atomic_init(&q->tail, 0);
    atomic_init(&q->head_pub, 0);
    return q;
}

void mq_mpsc_free(mq_mpsc_t *q)
{
    if (q == NULL)
        return;
    mq_free(q->slots);
    mq_free(q);
}

void *mq_mpsc_claim(mq_mpsc_t *q, uint64_t *ticket)
{
    uint64_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
    for (;;) {
        slot_hdr_t *s = slot_at(q, pos);
        /* acquire pairs with the consumer's release in mq_mpsc_release: the slot is free */
        uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->tail, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *ticket = pos;
                return slot_data(s);
            }
        } else if (dif < 0) {
            return NULL; /* full: the slot still holds an entry from one lap ago */
        } else {
            pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
        }
    }
}

void mq_mpsc_publish(mq_mpsc_t *q, uint64_t ticket)
{
    /* release pairs with the consumer's acquire in mq_mpsc_peek: the entry is written */
    atomic_store_explicit(&slot_at(q, ticket)->seq, ticket + 1, memory_order_release);
}

void *mq_mpsc_peek(mq_mpsc_t *q)
{
    slot_hdr_t *s = slot_at(q, q->head);
    /* acquire pairs with the producer's release in mq_mpsc_publish */
    if (atomic_load_explicit(&s->seq, memory_order_acquire) != q->head + 1)
        return NULL;
    return slot_data(s);
}

void mq_mpsc_release(mq_mpsc_t *q)
{
    /* release pairs with the producers' acquire in mq_mpsc_claim: reusable one lap later */
    atomic_store_explicit(&slot_at(q, q->head)->seq, q->head + q->mask + 1, memory_order_release);
    q->head++;
    atomic_store_explicit(&q->head_pub, q->head, memory_order_relaxed);
}

bool mq_mpsc_push(mq_mpsc_t *q, const void *entry)
{
    uint64_t ticket;
    void *slot = mq_mpsc_claim(q, &ticket);
    if (slot == NULL)
        return false;
    memcpy(slot, entry, q->entry_size);
    mq_mpsc_publish(q, ticket);
    return true;
}

bool mq_mpsc_pop(mq_mpsc_t *q, void *out)
{
    void *slot = mq_mpsc_peek(q);
    if (slot == NULL)
        return false;
    memcpy(out, slot, q->entry_size);
    mq_mpsc_release(q);
    return true;
}

uint32_t mq_mpsc_depth(const mq_mpsc_t *q)
{
    uint64_t t = atomic_load_explicit(&((mq_mpsc_t *)q)->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&((mq_mpsc_t *)q)->head_pub, memory_order_relaxed);
    return t > h ? (uint32_t)(t - h) : 0;
}

uint32_t mq_mpsc_cap(const mq_mpsc_t *q)
{
    return (uint32_t)(q->mask + 1);
}
