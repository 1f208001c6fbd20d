/* SPDX-License-Identifier: MIT */
/* core/mpsc.h - bounded lock-free multi-producer single-consumer queue of fixed-size slots. */
#ifndef MQ_CORE_MPSC_H
#define MQ_CORE_MPSC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Vyukov's bounded array queue (a sequence number per slot) used with one consumer. A
 * producer claims a slot with one CAS and never waits: a full queue is reported, and the
 * producer decides (the workers keep an overflow list, the logging path counts a drop).
 * Slots are written and read in place, so an entry is copied once on each side at most.
 *
 * The one queue behind the workers' inboxes (net/mailbox.h) and the logging thread's queue
 * (broker/logging.c). It creates no thread and does no I/O. */
typedef struct mq_mpsc mq_mpsc_t;

/* A queue of at least 'cap' slots (rounded up to a power of two) of 'slot_size' bytes. */
mq_mpsc_t *mq_mpsc_new(uint32_t cap, size_t slot_size);
void mq_mpsc_free(mq_mpsc_t *q);

/* Producer, any thread: claims the next slot and returns its memory, or NULL when the queue
 * is full. Fill it, then call mq_mpsc_publish() with the same 'ticket'. */
void *mq_mpsc_claim(mq_mpsc_t *q, uint64_t *ticket);

/* Producer: makes the slot claimed under 'ticket' visible to the consumer (release). */
void mq_mpsc_publish(mq_mpsc_t *q, uint64_t ticket);

/* Consumer, the one thread: the oldest published slot, or NULL when there is none. The
 * slot stays the consumer's until mq_mpsc_release(). */
void *mq_mpsc_peek(mq_mpsc_t *q);

/* Consumer: gives the slot returned by the last mq_mpsc_peek() back to the producers. */
void mq_mpsc_release(mq_mpsc_t *q);

/* Copying forms: push a copy of 'slot_size' bytes; pop into 'out'. False when full/empty. */
bool mq_mpsc_push(mq_mpsc_t *q, const void *entry);
bool mq_mpsc_pop(mq_mpsc_t *q, void *out);

/* Approximate number of entries waiting (for $SYS). Any thread. */
uint32_t mq_mpsc_depth(const mq_mpsc_t *q);

/* Slots in the queue (after rounding). */
uint32_t mq_mpsc_cap(const mq_mpsc_t *q);

#endif
