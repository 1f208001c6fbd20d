/* SPDX-License-Identifier: MIT */
/* core/mem.c - allocation wrappers; the only file that knows whether jemalloc is in. */
#include "core/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rc.h"
#include "mq_config.h"
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MQ_SANITIZER_ALLOCATOR 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MQ_SANITIZER_ALLOCATOR 1
#endif
#if MQ_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#elif defined(MQ_SANITIZER_ALLOCATOR)
#include <sanitizer/allocator_interface.h>
#else
#include <malloc.h>
#endif

static void oom(size_t size)
{
    fprintf(stderr, "starling: out of memory allocating %zu bytes\n", size);
    abort();
}

void *mq_alloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        oom(size);
    return p;
}

void *mq_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *mq_realloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL)
        oom(size);
    return q;
}

void mq_free(void *p)
{
    free(p);
}

char *mq_strndup(const char *s, size_t len)
{
    char *d = mq_alloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

void *mq_try_alloc(size_t size)
{
    return malloc(size ? size : 1);
}

size_t mq_mem_allocated(void)
{
#if MQ_HAVE_JEMALLOC
    /* jemalloc's statistics are cached per epoch: bump it to read a fresh figure. */
    uint64_t epoch = 1;
    size_t sz = sizeof(epoch);
    (void)mallctl("epoch", &epoch, &sz, &epoch, sz); /* failure leaves the old figure */
    size_t allocated = 0;
    sz = sizeof(allocated);
    if (mallctl("stats.allocated", &allocated, &sz, NULL, 0) != 0)
        return 0;
    return allocated;
#else
    return 0;
#endif
}

size_t mq_mem_in_use(void)
{
#if MQ_HAVE_JEMALLOC
    return mq_mem_allocated();
#elif defined(MQ_SANITIZER_ALLOCATOR)
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2(); /* every arena: in-use small blocks + mmapped ones */
    return mi.uordblks + mi.hblkhd;
#endif
}

void *mq_ring_grow(void *p, uint32_t *cap, uint32_t *head, uint32_t len, size_t elem,
                   uint32_t initial)
{
    uint32_t old = *cap;
    uint32_t n = old ? old * 2 : initial;
    MQ_ASSERT(n > old && len <= old);
    uint8_t *q = mq_calloc(n, elem);
    for (uint32_t i = 0; i < len; i++)
        memcpy(q + (size_t)i * elem, (uint8_t *)p + (size_t)((*head + i) % old) * elem, elem);
    mq_free(p);
    *cap = n;
    *head = 0;
    return q;
}

void *mq_grow(void *p, uint32_t *cap, size_t elem, uint32_t initial)
{
    uint32_t n = *cap ? *cap * 2 : initial;
    MQ_ASSERT(n > *cap); /* a 32-bit count that would wrap is a programmer error */
    size_t bytes;
    bool fits = mq_size_mul(n, elem, &bytes);
    MQ_ASSERT(fits);
    *cap = n;
    return mq_realloc(p, bytes);
}
