/* SPDX-License-Identifier: MIT */
/* tests/unit/bench/test_track.c - loss, duplicate and reorder accounting of starling-bench. */
#include <criterion/criterion.h>

#include "bench/track.h"

/* Feeds 'seqs' and totals what the bench would count. */
typedef struct tally {
    uint64_t lost, dup, late, delivered;
} tally_t;

static tally_t feed(sb_track_t *k, const uint64_t *seqs, size_t n)
{
    tally_t t = {0};
    for (size_t i = 0; i < n; i++) {
        uint64_t gap = 0, adv = 0;
        switch (sb_track_arrival(k, seqs[i], &gap, &adv)) {
        case SB_SEQ_NEW:
            t.lost += gap;
            t.delivered += adv;
            break;
        case SB_SEQ_DUP:
            t.dup++;
            break;
        case SB_SEQ_LATE:
            t.late++;
            t.lost--; /* it had been counted lost when its gap opened */
            break;
        }
    }
    return t;
}

Test(track, in_order_arrivals_count_nothing_wrong)
{
    sb_track_t k = {0};
    uint64_t s[] = {0, 1, 2, 3, 4};
    tally_t t = feed(&k, s, 5);
    cr_expect_eq(t.lost, 0);
    cr_expect_eq(t.dup, 0);
    cr_expect_eq(t.late, 0);
    cr_expect_eq(t.delivered, 5);
    cr_expect_eq(sb_track_tail_loss(&k, 5), 0);
}

Test(track, a_gap_is_loss)
{
    sb_track_t k = {0};
    uint64_t s[] = {0, 1, 4, 5};
    tally_t t = feed(&k, s, 4);
    cr_expect_eq(t.lost, 2);
    cr_expect_eq(t.late, 0);
}

Test(track, a_late_arrival_turns_loss_into_reorder)
{
    sb_track_t k = {0};
    uint64_t s[] = {0, 2, 3, 1};
    tally_t t = feed(&k, s, 4);
    cr_expect_eq(t.lost, 0);
    cr_expect_eq(t.late, 1);
    cr_expect_eq(t.dup, 0);
}

Test(track, a_repeat_is_a_duplicate_in_order_or_not)
{
    sb_track_t k = {0};
    uint64_t s[] = {0, 1, 1, 2, 0, 3};
    tally_t t = feed(&k, s, 6);
    cr_expect_eq(t.dup, 2);
    cr_expect_eq(t.lost, 0);
}

Test(track, a_late_message_arriving_twice_is_late_then_duplicate)
{
    sb_track_t k = {0};
    uint64_t s[] = {0, 5, 3, 3};
    tally_t t = feed(&k, s, 4);
    cr_expect_eq(t.late, 1);
    cr_expect_eq(t.dup, 1);
    cr_expect_eq(t.lost, 3); /* 1, 2 and 4 still missing */
}

Test(track, the_window_is_64_deep)
{
    sb_track_t k = {0};
    uint64_t s[] = {0, 100, 100 - 64, 100 - 63};
    tally_t t = feed(&k, s, 4);
    /* 36 is beyond the window: called late (cannot be told from a duplicate); 37 is inside */
    cr_expect_eq(t.late, 2);
    cr_expect_eq(t.dup, 0);
    uint64_t again[] = {100 - 63};
    tally_t t2 = feed(&k, again, 1);
    cr_expect_eq(t2.dup, 1, "inside the window a repeat is recognised");
}

Test(track, messages_sent_after_the_last_arrival_are_tail_loss)
{
    sb_track_t k = {0};
    uint64_t s[] = {0, 1, 2};
    feed(&k, s, 3);
    cr_expect_eq(sb_track_tail_loss(&k, 10), 7);
    cr_expect_eq(sb_track_tail_loss(&k, 3), 0);
    cr_expect_eq(sb_track_tail_loss(&k, 2), 0, "never negative");
}
