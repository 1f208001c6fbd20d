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
 *    re-encodes to exactly the same bytes;
 *  - the file replays into a model (core/replay.c) whose snapshot replays, complete, into a
 *    model of the same size;
 *  - every retained message and every session message of the finished model becomes a routed
 *    message (mq_replay_msg_new, what start-up builds) with the same topic and payload. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jrec.h"
#include "core/journal.h"
#include "core/msg.h"
#include "core/replay.h"

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

/* Replays d[0..n) from 'salt' 0 into 'rp'; returns the reader's verdict. */
static enum mq_rc replay(mq_replay_t *rp, const uint8_t *d, size_t n, mq_replay_file_t *f)
{
    mq_journal_reader_t r;
    mq_journal_reader_init(&r, 0);
    mq_journal_reader_feed(&r, d, n, true);
    mq_replay_file_init(f);
    enum mq_rc rc = mq_replay_read(rp, &r, f);
    if (rc == MQ_RC_AGAIN)
        abort();
    return rc;
}

/* The session of model 'arg' with the id of 's' holds as much as 's'. A snapshot keeps only
 * the messages held, so its next_mid may be lower, but stays above each of them. */
static void same_sess(void *arg, mq_replay_sess_t *s)
{
    mq_replay_sess_t *t = mq_replay_find_sess(arg, s->info.client_id);
    if (!t || t->n_subs != s->n_subs || t->n_out != s->n_out || t->n_qos2_in != s->n_qos2_in ||
        t->next_mid > s->next_mid || (t->n_out && t->next_mid <= t->out[t->n_out - 1].mid) ||
        t->info.has_will != s->info.has_will ||
        !mq_str_eq(t->info.will.payload, s->info.will.payload))
        abort();
    for (uint32_t i = 0; i < s->n_out; i++)
        if (t->out[i].mid != s->out[i].mid ||
            !mq_str_eq(t->out[i].msg.payload, s->out[i].msg.payload))
            abort();
}

/* What start-up makes of a kept message: it must build, whatever the file held. */
static void check_msg(const mq_jrec_msg_t *m, int64_t wall)
{
    mq_msg_t *msg = mq_replay_msg_new(m, true, wall, 1000);
    if (msg == NULL || !mq_str_eq(mq_msg_topic(msg), m->topic) ||
        !mq_str_eq(mq_msg_payload(msg), m->payload) ||
        (m->expiry_at > wall && msg->expire_at < 1000 + 1000))
        abort();
    mq_msg_unref(msg);
}

static void check_retained_msg(void *arg, mq_replay_retained_t *e)
{
    check_msg(&e->msg, *(const int64_t *)arg);
}

static void check_sess_msgs(void *arg, mq_replay_sess_t *s)
{
    for (uint32_t i = 0; i < s->n_out; i++)
        if (s->out[i].state == 0) /* past PUBREC only the packet id is used */
            check_msg(&s->out[i].msg, *(const int64_t *)arg);
}

static void check_replay(const uint8_t *d, size_t n)
{
    mq_replay_t a, b;
    mq_replay_file_t f = {0};
    mq_replay_init(&a, 3);
    mq_replay_init(&b, 1);
    if (replay(&a, d, n, &f) == MQ_RC_SUCCESS) {
        mq_buf_t snap;
        mq_buf_init(&snap);
        mq_jrec_header_t h = {MQ_JREC_VERSION, MQ_JREC_KIND_SNAPSHOT, 0, 3, 1, 0, 42};
        mq_replay_encode(&a, &snap, &h);
        if (replay(&b, snap.data, snap.len, &f) != MQ_RC_SUCCESS || !f.complete ||
            b.n_sessions != a.n_sessions || b.n_retained != a.n_retained ||
            f.n_orphans + f.n_stale + f.n_malformed != 0)
            abort();
        mq_replay_each_sess(&a, same_sess, &b);
        mq_buf_fini(&snap);
        int64_t wall = (int64_t)n;
        (void)mq_replay_finish(&a, wall);
        mq_replay_each_retained(&a, check_retained_msg, &wall);
        mq_replay_each_sess(&a, check_sess_msgs, &wall);
    }
    mq_replay_fini(&a);
    mq_replay_fini(&b);
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
    check_replay(data, size);
    return 0;
}
