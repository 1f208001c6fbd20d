/* SPDX-License-Identifier: MIT */
/* bench/hist.c - log-linear latency histogram (HdrHistogram's bucket layout, simplified). */
#include "bench/hist.h"

#include <math.h>

#define RLX memory_order_relaxed

static unsigned index_of(uint64_t v)
{
    if (v < 2u * SB_HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - SB_HIST_SUB_BITS; /* >= 1 */
    unsigned top = (unsigned)(v >> shift);   /* SB_HIST_SUB .. 2 * SB_HIST_SUB - 1 */
    return 2u * SB_HIST_SUB + (shift - 1u) * SB_HIST_SUB + (top - SB_HIST_SUB);
}

/* The middle of bucket 'i': half its width off the true value at most. */
static uint64_t value_of(unsigned i)
{
    if (i < 2u * SB_HIST_SUB)
        return i;
    unsigned shift = (i - 2u * SB_HIST_SUB) / SB_HIST_SUB + 1u;
    uint64_t top = SB_HIST_SUB + (i - 2u * SB_HIST_SUB) % SB_HIST_SUB;
    uint64_t lo = top << shift;
    return lo + ((1ull << shift) >> 1);
}

void sb_hist_reset(sb_hist_t *h)
{
    for (unsigned i = 0; i < SB_HIST_N; i++)
        atomic_store_explicit(&h->counts[i], 0, RLX);
    atomic_store_explicit(&h->max, 0, RLX);
}

void sb_hist_record(sb_hist_t *h, uint64_t v)
{
    _Atomic uint64_t *c = &h->counts[index_of(v)];
    /* single writer: load + store instead of a locked add */
    atomic_store_explicit(c, atomic_load_explicit(c, RLX) + 1, RLX);
    if (v > atomic_load_explicit(&h->max, RLX))
        atomic_store_explicit(&h->max, v, RLX);
}

void sb_hist_add(sb_hist_t *dst, const sb_hist_t *src)
{
    for (unsigned i = 0; i < SB_HIST_N; i++) {
        uint64_t n = atomic_load_explicit(&src->counts[i], RLX);
        if (n)
            atomic_store_explicit(&dst->counts[i], atomic_load_explicit(&dst->counts[i], RLX) + n,
                                  RLX);
    }
    uint64_t m = atomic_load_explicit(&src->max, RLX);
    if (m > atomic_load_explicit(&dst->max, RLX))
        atomic_store_explicit(&dst->max, m, RLX);
}

void sb_hist_diff(sb_hist_t *dst, const sb_hist_t *a, const sb_hist_t *b)
{
    uint64_t top = 0;
    for (unsigned i = 0; i < SB_HIST_N; i++) {
        uint64_t x = atomic_load_explicit(&a->counts[i], RLX);
        uint64_t y = atomic_load_explicit(&b->counts[i], RLX);
        uint64_t d = x > y ? x - y : 0;
        atomic_store_explicit(&dst->counts[i], d, RLX);
        if (d)
            top = value_of(i);
    }
    uint64_t m = atomic_load_explicit(&a->max, RLX);
    atomic_store_explicit(&dst->max, top < m ? top : m, RLX);
}

uint64_t sb_hist_count(const sb_hist_t *h)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < SB_HIST_N; i++)
        n += atomic_load_explicit(&h->counts[i], RLX);
    return n;
}

uint64_t sb_hist_percentile(const sb_hist_t *h, double p)
{
    uint64_t total = sb_hist_count(h);
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)ceil((double)total * p / 100.0);
    if (want < 1)
        want = 1;
    uint64_t seen = 0, max = sb_hist_max(h);
    for (unsigned i = 0; i < SB_HIST_N; i++) {
        seen += atomic_load_explicit(&h->counts[i], RLX);
        if (seen >= want) {
            uint64_t v = value_of(i);
            return v < max || max == 0 ? v : max;
        }
    }
    return max;
}

uint64_t sb_hist_max(const sb_hist_t *h)
{
    return atomic_load_explicit(&h->max, RLX);
}
