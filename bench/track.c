/* SPDX-License-Identifier: MIT */
/* bench/track.c - per-publisher sequence tracking (see track.h). */
#include "bench/track.h"

sb_seq_verdict_t sb_track_arrival(sb_track_t *k, uint64_t seq, uint64_t *gap, uint64_t *advanced)
{
    if (seq >= k->next) {
        uint64_t step = seq + 1 - k->next; /* this message and the gap before it */
        *gap = step - 1;
        *advanced = step;
        k->seen = step >= 64 ? 1 : (k->seen << step) | 1;
        k->next = seq + 1;
        return SB_SEQ_NEW;
    }
    uint64_t back = k->next - 1 - seq;
    if (back < 64 && (k->seen >> back) & 1)
        return SB_SEQ_DUP;
    if (back < 64)
        k->seen |= 1ull << back;
    return SB_SEQ_LATE;
}
