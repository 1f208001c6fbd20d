/* SPDX-License-Identifier: MIT */
/* bench/track.h - per-publisher sequence tracking (mqtt-stresser style): what one subscriber
 * learns about loss, duplicates and reordering from the sequence numbers it receives. */
#ifndef SB_BENCH_TRACK_H
#define SB_BENCH_TRACK_H

#include <stdbool.h>
#include <stdint.h>

/* Sequence state of one publisher as seen by one subscriber; zero-initialised = nothing seen. */
typedef struct sb_track {
    uint64_t next; /* next expected sequence number */
    uint64_t seen; /* bit i: sequence next-1-i has arrived (64 deep, for dup vs. late) */
} sb_track_t;

typedef enum sb_seq_verdict {
    SB_SEQ_NEW,  /* in order, or ahead of a gap (the gap's size is in *gap) */
    SB_SEQ_DUP,  /* already arrived */
    SB_SEQ_LATE, /* behind one already received and not seen before: was counted lost */
} sb_seq_verdict_t;

/* Accounts for the arrival of 'seq'. For SB_SEQ_NEW, *gap = how many sequence numbers were
 * skipped just before it (counted lost until they arrive late) and *advanced = how far 'next'
 * moved (gap + 1). Past the 64-deep window a late message cannot be told from a duplicate and
 * is called late. */
sb_seq_verdict_t sb_track_arrival(sb_track_t *k, uint64_t seq, uint64_t *gap, uint64_t *advanced);

/* Messages a publisher sent that never arrived at this subscriber, at the end of a run. */
static inline uint64_t sb_track_tail_loss(const sb_track_t *k, uint64_t sent)
{
    return sent > k->next ? sent - k->next : 0;
}

#endif
