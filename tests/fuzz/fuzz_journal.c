/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_journal.c - libFuzzer target for the persistence reader and record decoders.
 *
 * Input: byte 0 picks the reader's window size (1 + byte * 3 bytes, grown when the reader
 * needs more); the rest is a file. Checked on every input:
 *  - reader and decoders never read out of bounds, loop or leak (ASan/UBSan, libFuzzer);
 *  - items tile the file: each starts where the previous one ended, and the last ends at the
 *    file's end; valid_end is the end of the last record;
 *  - reading in windows yields the same records, valid_end and skipped bytes as reading whole;
 *  - every record payload, and the whole input as the payload of every type, that decodes
 *    re-encodes to exactly the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jrec.h"
#include "core/journal.h"

#define MAX_RECS 4096

typedef struct trace {
    size_t n;
    uint64_t off[MAX_RECS];
    uint64_t valid_end, skipped;
} trace_t;

static void check_reencode(uint8_t type, mq_str_t payload)
{
    mq_jrec_t r;
    const char *why = NULL;
    if (mq_jrec_decode(type, payload, &r, &why) != MQ_RC_SUCCESS)
        return;
    mq_buf_t b;
    mq_buf_init(&b);
    size_t at = mq_jrec_encode(&b, &r, 0);
    if (b.len - at - MQ_JOURNAL_HDR != payload.len ||
        (payload.len && memcmp(b.data + at + MQ_JOURNAL_HDR, payload.ptr, payload.len) != 0))
        abort();
    mq_buf_fini(&b);
}

/* After the first record, a decodable FILE_HEADER supplies the salt, as start-up does. */
static void on_record(mq_journal_reader_t *r, const mq_journal_item_t *it, trace_t *t, bool check)
{
    if (r->n_records == 1 && it->type == MQ_JREC_FILE_HEADER) {
        mq_jrec_t h;
        const char *why;
        if (mq_jrec_decode(it->type, it->payload, &h, &why) == MQ_RC_SUCCESS)
            r->salt = h.header.salt;
    }
    if (t->n < MAX_RECS)
        t->off[t->n] = it->offset;
    t->n++;
    if (check)
        check_reencode(it->type, it->payload);
}

static void read_whole(const uint8_t *d, size_t n, trace_t *t)
{
    mq_journal_reader_t r;
    mq_journal_reader_init(&r, 0);
    mq_journal_reader_feed(&r, d, n, true);
    mq_journal_item_t it;
    enum mq_journal_ev ev;
    uint64_t at = 0;
    while ((ev = mq_journal_next(&r, &it)) != MQ_JOURNAL_END) {
        if (ev == MQ_JOURNAL_AGAIN || it.offset != at || it.len == 0)
            abort();
        at += it.len;
        if (ev == MQ_JOURNAL_RECORD || ev == MQ_JOURNAL_UNKNOWN)
            on_record(&r, &it, t, true);
        if (ev == MQ_JOURNAL_TORN && at != n)
            abort();
    }
    if (at != n || (t->n && t->off[t->n < MAX_RECS ? t->n - 1 : 0] >= r.valid_end))
        abort();
    t->valid_end = r.valid_end;
    t->skipped = r.skipped;
}

static void read_windows(const uint8_t *d, size_t n, size_t win, trace_t *t)
{
    mq_journal_reader_t r;
    mq_journal_reader_init(&r, 0);
    size_t w = win;
    for (;;) {
        size_t off = (size_t)mq_journal_reader_offset(&r);
        size_t len = n - off < w ? n - off : w;
        mq_journal_reader_feed(&r, d + off, len, off + len == n);
        mq_journal_item_t it;
        enum mq_journal_ev ev;
        bool progress = false;
        while ((ev = mq_journal_next(&r, &it)) != MQ_JOURNAL_AGAIN && ev != MQ_JOURNAL_END) {
            progress = true;
            if (ev == MQ_JOURNAL_RECORD || ev == MQ_JOURNAL_UNKNOWN)
                on_record(&r, &it, t, false);
        }
        if (ev == MQ_JOURNAL_END)
            break;
        w = progress ? win : w * 2;
    }
    t->valid_end = r.valid_end;
    t->skipped = r.skipped;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t win = 1 + (size_t)data[0] * 3;
    data++, size--;

    static const uint8_t types[] = {
        MQ_JREC_FILE_HEADER, MQ_JREC_SNAP_END,
        MQ_JREC_RETAIN_SET,  MQ_JREC_RETAIN_CLEAR,
        MQ_JREC_SESS_PUT,    MQ_JREC_SESS_DEL,
        MQ_JREC_SUB_ADD,     MQ_JREC_SUB_DEL,
        MQ_JREC_MSG_PUT,     MQ_JREC_MSG_UPDATE,
        MQ_JREC_MSG_DEL,     MQ_JREC_QOS2_IN_ADD,
        MQ_JREC_QOS2_IN_DEL, 0x7F,
    };
    for (size_t i = 0; i < sizeof(types); i++)
        check_reencode(types[i], (mq_str_t){(const char *)data, size});

    static trace_t whole, part;
    memset(&whole, 0, sizeof(whole));
    memset(&part, 0, sizeof(part));
    read_whole(data, size, &whole);
    read_windows(data, size, win, &part);
    if (whole.n != part.n || whole.valid_end != part.valid_end || whole.skipped != part.skipped)
        abort();
    for (size_t i = 0; i < whole.n && i < MAX_RECS; i++)
        if (whole.off[i] != part.off[i])
            abort();
    return 0;
}
