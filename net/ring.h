/* SPDX-License-Identifier: MIT */
/* net/ring.h - bounded lock-free multi-producer single-consumer ring of 64-byte entries. */
#ifndef MQ_NET_RING_H
#define MQ_NET_RING_H

#include <stdbool.h>
#include <stdint.h>

#define MQ_RING_INLINE 5 /* 64-bit words of payload carried inline */

/* What travels between threads: a type, a count, a pointer and five words (DESIGN.md rule 2:
 * a delivery is {message ref, filter ids}). Ownership of what 'ptr' points to passes to the
 * consumer with the entry. */
typedef struct mq_ring_entry {
    uint32_t type;
    uint32_t n;
    void *ptr;
    uint64_t a[MQ_RING_INLINE];
} mq_ring_entry_t;

typedef struct mq_ring mq_ring_t;

/* Creates a ring of 'cap' entries (rounded up to a power of two). */
mq_ring_t *mq_ring_new(uint32_t cap);
void mq_ring_free(mq_ring_t *r);

/* Appends a copy of *e. Any thread; never blocks: returns false when the ring is full (the
 * producer keeps the entry in its own overflow list and retries on its next loop turn). */
bool mq_ring_push(mq_ring_t *r, const mq_ring_entry_t *e);

/* Takes the oldest entry into *e; false when empty. The one consumer thread only. */
bool mq_ring_pop(mq_ring_t *r, mq_ring_entry_t *e);

/* Approximate number of entries waiting (for $SYS). Any thread. */
uint32_t mq_ring_depth(const mq_ring_t *r);

#endif
