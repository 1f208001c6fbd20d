/* SPDX-License-Identifier: MIT */
/* core/mem.h - the one allocation interface: jemalloc arenas when built in, libc otherwise. */
#ifndef MQ_CORE_MEM_H
#define MQ_CORE_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* These never return NULL: on exhaustion they log and abort (h2o's h2o_fatal). Any thread.
 * mq_free(NULL) is a no-op. */
void *mq_alloc(size_t size) __attribute__((malloc, alloc_size(1)));
void *mq_calloc(size_t n, size_t size) __attribute__((malloc, alloc_size(1, 2)));
void *mq_realloc(void *p, size_t size) __attribute__((alloc_size(2)));
void mq_free(void *p);
char *mq_strndup(const char *s, size_t len);

/* Allocation of a client-controlled size: returns NULL instead of aborting, so the caller can
 * close that one connection (0x95 / 0x97). */
void *mq_try_alloc(size_t size);

/* Sets *out = a * b; false on overflow. */
static inline bool mq_size_mul(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/* Grows the array 'p' of '*cap' elements of 'elem' bytes so that one more fits: the capacity
 * doubles, or becomes 'initial' when it was 0. Returns the (possibly moved) array; never NULL.
 * The one growth rule for the broker's arrays. Any thread (the array is the caller's). */
void *mq_grow(void *p, uint32_t *cap, size_t elem, uint32_t initial);

/* The same for a ring buffer 'p' of '*cap' elements holding 'len' from index '*head': a new
 * array (zeroed past the elements) with them moved to the front in order, '*head' 0; the old
 * one freed. */
void *mq_ring_grow(void *p, uint32_t *cap, uint32_t *head, uint32_t len, size_t elem,
                   uint32_t initial);

/* Bytes the allocator has handed out and not taken back, from jemalloc's "stats.allocated";
 * 0 when jemalloc is not built in (libc malloc keeps no such total). Any thread. */
size_t mq_mem_allocated(void);

/* Bytes of heap in use, for a limit (memory_limit): jemalloc's "stats.allocated", the
 * sanitizer allocator's figure under ASan/TSan, glibc's mallinfo2() otherwise. Costs a few
 * microseconds (every arena is visited): call it a few times a second, not per message. */
size_t mq_mem_in_use(void);

#endif
