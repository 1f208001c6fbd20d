/* SPDX-License-Identifier: MIT */
/* tests/unit/bench/test_hist.c - the load generator's latency histogram. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "bench/hist.h"

static sb_hist_t *new_hist(void)
{
    sb_hist_t *h = calloc(1, sizeof(*h));
    cr_assert_not_null(h);
    sb_hist_reset(h);
    return h;
}

Test(hist, empty_histogram_reports_zero)
{
    sb_hist_t *h = new_hist();
    cr_expect_eq(sb_hist_count(h), 0);
    cr_expect_eq(sb_hist_percentile(h, 50), 0);
    cr_expect_eq(sb_hist_max(h), 0);
    free(h);
}

Test(hist, small_values_are_exact)
{
    sb_hist_t *h = new_hist();
    for (uint64_t v = 0; v < 2 * SB_HIST_SUB; v++)
        sb_hist_record(h, v);
    cr_expect_eq(sb_hist_count(h), 2 * SB_HIST_SUB);
    cr_expect_eq(sb_hist_max(h), 2 * SB_HIST_SUB - 1);
    cr_expect_eq(sb_hist_percentile(h, 100), 2 * SB_HIST_SUB - 1);
    cr_expect_eq(sb_hist_percentile(h, 50), SB_HIST_SUB - 1);
    free(h);
}

Test(hist, percentiles_of_a_uniform_spread_are_within_two_percent)
{
    sb_hist_t *h = new_hist();
    for (uint64_t v = 1; v <= 100000; v++)
        sb_hist_record(h, v * 1000); /* 1 us .. 100 ms in ns */
    static const double ps[] = {10, 50, 90, 99, 99.9};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        double want = ps[i] / 100.0 * 100000 * 1000;
        double got = (double)sb_hist_percentile(h, ps[i]);
        cr_expect(got > want * 0.98 && got < want * 1.02, "p%.1f: got %.0f want %.0f", ps[i], got,
                  want);
    }
    cr_expect_eq(sb_hist_max(h), 100000ull * 1000, "the max is exact");
    free(h);
}

Test(hist, a_percentile_never_exceeds_the_max)
{
    sb_hist_t *h = new_hist();
    sb_hist_record(h, 1000003);
    cr_expect_leq(sb_hist_percentile(h, 100), 1000003);
    cr_expect_geq(sb_hist_percentile(h, 100), 1000003 * 0.98);
    free(h);
}

Test(hist, huge_values_are_recorded)
{
    sb_hist_t *h = new_hist();
    sb_hist_record(h, UINT64_MAX / 2);
    sb_hist_record(h, UINT64_MAX);
    cr_expect_eq(sb_hist_count(h), 2);
    cr_expect_eq(sb_hist_max(h), UINT64_MAX);
    free(h);
}

Test(hist, add_and_diff_give_interval_counts)
{
    sb_hist_t *a = new_hist(), *b = new_hist(), *sum = new_hist(), *d = new_hist();
    for (int i = 0; i < 100; i++)
        sb_hist_record(a, 500);
    sb_hist_add(b, a); /* snapshot */
    for (int i = 0; i < 50; i++)
        sb_hist_record(a, 5000000);
    sb_hist_diff(d, a, b); /* what happened since the snapshot */
    cr_expect_eq(sb_hist_count(d), 50);
    uint64_t p50 = sb_hist_percentile(d, 50);
    cr_expect(p50 > 5000000 * 0.98 && p50 < 5000000 * 1.02, "interval p50 %lu", (unsigned long)p50);
    sb_hist_add(sum, a);
    sb_hist_add(sum, b);
    cr_expect_eq(sb_hist_count(sum), 250);
    free(a);
    free(b);
    free(sum);
    free(d);
}
