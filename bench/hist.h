/* SPDX-License-Identifier: MIT */
/* bench/hist.h - HDR-style log-linear latency histogram: 64 linear sub-buckets per power of two
 * (under 1.6 % error), fixed size, one writer and any number of concurrent readers. */
#ifndef SB_BENCH_HIST_H
#define SB_BENCH_HIST_H

/* bench/ uses the prefix sb_ (starling-bench) instead of mq_: these names live only in the
 * load generator, and a distinct prefix keeps them apart from core's mq_ symbols it links. */

#include <stdatomic.h>
#include <stdint.h>

#define SB_HIST_SUB_BITS 6u
#define SB_HIST_SUB (1u << SB_HIST_SUB_BITS)
/* values below 2 * SB_HIST_SUB are exact; above, one row of SB_HIST_SUB buckets per power */
#define SB_HIST_N (2u * SB_HIST_SUB + (63u - SB_HIST_SUB_BITS) * SB_HIST_SUB)

/* Counts are atomics so that the main thread may read a histogram while its owning thread
 * records into it: the owner stores with relaxed order (no read-modify-write, there is only
 * one writer), readers get a slightly stale but untorn view. */
typedef struct sb_hist {
    _Atomic uint64_t counts[SB_HIST_N];
    _Atomic uint64_t max; /* largest value recorded, exact */
} sb_hist_t;

/* Zeroes 'h'. Owner only, before any reader looks. */
void sb_hist_reset(sb_hist_t *h);

/* Records one value (nanoseconds, or any unit). Owning thread only. */
void sb_hist_record(sb_hist_t *h, uint64_t v);

/* dst += src. 'dst' belongs to the caller; 'src' may be written concurrently by its owner. */
void sb_hist_add(sb_hist_t *dst, const sb_hist_t *src);

/* dst = a - b, bucket by bucket (for an interval: a later snapshot minus an earlier one). The
 * max of the result is a's bucket-level estimate of the largest value in the interval. */
void sb_hist_diff(sb_hist_t *dst, const sb_hist_t *a, const sb_hist_t *b);

/* Number of values recorded. */
uint64_t sb_hist_count(const sb_hist_t *h);

/* The value at percentile 'p' (0..100]: the smallest bucket value at or below which p % of the
 * values lie (the middle of its bucket, never above the max). 0 when the histogram is empty. */
uint64_t sb_hist_percentile(const sb_hist_t *h, double p);

/* Largest value recorded, 0 when empty. */
uint64_t sb_hist_max(const sb_hist_t *h);

#endif
