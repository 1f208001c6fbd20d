/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_journal.c - persistence framing (core/journal.c) and record payloads
 * (core/jrec.c): round trips, torn tails, corruption, garbage, windows, strict decoding. */
#include "core/journal.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "core/jrec.h"

#define SALT 0x5eed5a17c0ffee11ull

static mq_buf_t buf;

static void setup(void)
{
    mq_buf_init(&buf);
}

static void teardown(void)
{
    mq_buf_fini(&buf);
}

TestSuite(journal, .init = setup, .fini = teardown);

/* v5 PUBLISH properties: payload format 1, message expiry 60, content type "text", user
 * property k=v. Will properties: will delay 5. */
static const char pub_props[] =
    "\x01\x01\x02\x00\x00\x00\x3c\x03\x00\x04text\x26\x00\x01k\x00\x01v";
static const char will_props[] = "\x18\x00\x00\x00\x05";
#define S(lit) ((mq_str_t){(lit), sizeof(lit) - 1})

/* One record of every type (two of some), FILE_HEADER first. */
static size_t samples(mq_jrec_t *r)
{
    size_t n = 0;
    memset(r, 0, 16 * sizeof(*r));
    r[n].type = MQ_JREC_FILE_HEADER;
    r[n++].header =
        (mq_jrec_header_t){MQ_JREC_VERSION, MQ_JREC_KIND_WORKER, 2, 4, 7, 1700000000, SALT};
    r[n].type = MQ_JREC_RETAIN_SET;
    r[n++].retain = (mq_jrec_retain_t){
        .seq = 9,
        .msg = {S("a/b"), S("payload\0bin"), S(pub_props), 1, 1700000060},
        .src = {.present = true, .has_username = true, .port = 8883, S("pub-1"), S("alice")}};
    r[n].type = MQ_JREC_RETAIN_CLEAR;
    r[n++].retain = (mq_jrec_retain_t){.seq = 10, .msg = {.topic = S("a/c")}};
    r[n].type = MQ_JREC_SESS_PUT;
    r[n++].sess = (mq_jrec_sess_t){.client_id = S("dev-1"),
                                   .username = S("alice"),
                                   .has_username = true,
                                   .has_will = true,
                                   .will_retain = true,
                                   .level = 5,
                                   .expiry_interval = 3600,
                                   .disconnected_at = 1700000100,
                                   .will_delay = 5,
                                   .will = {S("dev-1/status"), S("gone"), S(will_props), 2, 0}};
    r[n].type = MQ_JREC_SESS_PUT; /* 3.1.1, no will, no username */
    r[n++].sess = (mq_jrec_sess_t){.client_id = S("dev-2"), .level = 4, .expiry_interval = ~0u};
    r[n].type = MQ_JREC_SUB_ADD;
    r[n++].sub = (mq_jrec_sub_t){S("dev-1"), S("$share/g/a/+/#"),
                                 2 | MQ_JREC_SUBOPT_NO_LOCAL | MQ_JREC_SUBOPT_RAP | 2 << 4, 42};
    r[n].type = MQ_JREC_SUB_DEL;
    r[n++].sub = (mq_jrec_sub_t){S("dev-1"), S("x/#"), 0, 0};
    r[n].type = MQ_JREC_MSG_PUT;
    r[n++].out = (mq_jrec_out_t){S("dev-1"),
                                 3,
                                 17,
                                 1,
                                 MQ_JREC_MSG_DUP | MQ_JREC_MSG_RETAIN,
                                 {S("a/b"), S("x"), S(pub_props), 2, 1700000200}};
    r[n].type = MQ_JREC_MSG_PUT; /* queued QoS 0 (queue_qos0_messages), no packet id */
    r[n++].out = (mq_jrec_out_t){S("dev-2"), 4, 0, 0, 0, {S("t"), S(""), S(""), 0, 0}};
    r[n].type = MQ_JREC_MSG_UPDATE;
    r[n++].out = (mq_jrec_out_t){.client_id = S("dev-1"), .mid = 3, .packet_id = 17, .state = 1};
    r[n].type = MQ_JREC_MSG_DEL;
    r[n++].out = (mq_jrec_out_t){.client_id = S("dev-1"), .mid = 3};
    r[n].type = MQ_JREC_QOS2_IN_ADD;
    r[n++].qos2 = (mq_jrec_qos2_t){S("dev-1"), 65535};
    r[n].type = MQ_JREC_QOS2_IN_DEL;
    r[n++].qos2 = (mq_jrec_qos2_t){S("dev-1"), 1};
    r[n].type = MQ_JREC_SESS_DEL;
    r[n++].sess = (mq_jrec_sess_t){.client_id = S("dev-2")};
    r[n].type = MQ_JREC_SNAP_END;
    r[n++].snap_end = (mq_jrec_snap_end_t){7, 13};
    return n;
}

/* Encodes the samples into 'buf'; starts[i] is the offset of record i, starts[n] the end. */
static size_t encode_samples(mq_jrec_t *r, size_t *starts)
{
    size_t n = samples(r);
    for (size_t i = 0; i < n; i++)
        starts[i] = mq_jrec_encode(&buf, &r[i], SALT);
    starts[n] = buf.len;
    return n;
}

/* What a reader saw: records (type, offset) and the skipped stretches. */
typedef struct seen {
    size_t n_rec, n_corrupt, n_torn, n_unknown;
    uint64_t rec_off[64];
    uint8_t rec_type[64];
    uint64_t corrupt_off[64], corrupt_len[64];
    uint64_t torn_off, torn_len;
    uint64_t valid_end, skipped;
} seen_t;

/* Reads b[0..len) whole, switching to the file's salt after the first record. */
static void read_all(const uint8_t *b, size_t len, seen_t *s)
{
    memset(s, 0, sizeof(*s));
    mq_journal_reader_t r;
    mq_journal_reader_init(&r, 0);
    mq_journal_reader_feed(&r, b, len, true);
    mq_journal_item_t it;
    enum mq_journal_ev ev;
    for (int guard = 0; (ev = mq_journal_next(&r, &it)) != MQ_JOURNAL_END; guard++) {
        cr_assert(lt(int, guard, 10000), "reader does not terminate");
        cr_assert(ne(int, ev, MQ_JOURNAL_AGAIN), "AGAIN on a whole file");
        if (ev == MQ_JOURNAL_RECORD || ev == MQ_JOURNAL_UNKNOWN) {
            cr_assert(lt(sz, s->n_rec, 64));
            s->rec_off[s->n_rec] = it.offset;
            s->rec_type[s->n_rec++] = it.type;
            s->n_unknown += ev == MQ_JOURNAL_UNKNOWN;
            r.salt = SALT;
        } else if (ev == MQ_JOURNAL_CORRUPT) {
            cr_assert(lt(sz, s->n_corrupt, 64));
            s->corrupt_off[s->n_corrupt] = it.offset;
            s->corrupt_len[s->n_corrupt++] = it.len;
        } else {
            cr_assert(eq(int, ev, MQ_JOURNAL_TORN));
            cr_assert(eq(sz, s->n_torn, 0), "two torn tails");
            s->n_torn++;
            s->torn_off = it.offset;
            s->torn_len = it.len;
            cr_assert(eq(u64, it.offset + it.len, len), "torn tail does not reach the end");
        }
    }
    s->valid_end = r.valid_end;
    s->skipped = r.skipped;
}

static void expect_records(const seen_t *s, const size_t *starts, const size_t *want, size_t n)
{
    cr_assert(eq(sz, s->n_rec, n), "%zu records, want %zu", s->n_rec, n);
    for (size_t i = 0; i < n; i++)
        cr_assert(eq(u64, s->rec_off[i], starts[want[i]]), "record %zu at %llu", i,
                  (unsigned long long)s->rec_off[i]);
}

/* ---- framing ----------------------------------------------------------------------------- */

Test(journal, empty_file_ends_at_once)
{
    seen_t s;
    read_all(NULL, 0, &s);
    cr_assert(eq(sz, s.n_rec + s.n_corrupt + s.n_torn, 0));
    cr_assert(eq(u64, s.valid_end, 0));
}

Test(journal, every_record_type_round_trips)
{
    mq_jrec_t in[16];
    size_t starts[17];
    size_t n = encode_samples(in, starts);
    seen_t s;
    read_all(buf.data, buf.len, &s);
    size_t want[16];
    for (size_t i = 0; i < n; i++)
        want[i] = i;
    expect_records(&s, starts, want, n);
    cr_assert(eq(u64, s.valid_end, buf.len));
    cr_assert(eq(sz, s.n_corrupt + s.n_torn + s.n_unknown, 0));

    /* each payload decodes and re-encodes to the same bytes */
    for (size_t i = 0; i < n; i++) {
        mq_str_t p = {(const char *)buf.data + starts[i] + MQ_JOURNAL_HDR,
                      starts[i + 1] - starts[i] - MQ_JOURNAL_HDR};
        mq_jrec_t out;
        const char *why = NULL;
        cr_assert(eq(int, mq_jrec_decode(in[i].type, p, &out, &why), MQ_RC_SUCCESS), "%s: %s",
                  mq_jrec_type_str(in[i].type), why);
        mq_buf_t again;
        mq_buf_init(&again);
        (void)mq_jrec_encode(&again, &out, SALT);
        cr_assert(eq(sz, again.len, starts[i + 1] - starts[i]));
        cr_assert(eq(int, memcmp(again.data, buf.data + starts[i], again.len), 0), "%s differs",
                  mq_jrec_type_str(in[i].type));
        mq_buf_fini(&again);
    }
}

Test(journal, decoded_fields_are_the_encoded_ones)
{
    mq_jrec_t in[16];
    size_t starts[17];
    encode_samples(in, starts);
    mq_jrec_t out;
    const char *why;
    mq_str_t p = {(const char *)buf.data + starts[3] + MQ_JOURNAL_HDR,
                  starts[4] - starts[3] - MQ_JOURNAL_HDR};
    cr_assert(eq(int, mq_jrec_decode(MQ_JREC_SESS_PUT, p, &out, &why), MQ_RC_SUCCESS));
    cr_assert(mq_str_eq(out.sess.client_id, S("dev-1")));
    mq_jrec_t ret;
    mq_str_t rp = {(const char *)buf.data + starts[1] + MQ_JOURNAL_HDR,
                   starts[2] - starts[1] - MQ_JOURNAL_HDR};
    cr_assert(eq(int, mq_jrec_decode(MQ_JREC_RETAIN_SET, rp, &ret, &why), MQ_RC_SUCCESS));
    cr_assert(ret.retain.src.present && ret.retain.src.has_username);
    cr_assert(eq(u16, ret.retain.src.port, 8883));
    cr_assert(mq_str_eq(ret.retain.src.client_id, S("pub-1")));
    cr_assert(mq_str_eq(ret.retain.src.username, S("alice")));
    cr_assert(mq_str_eq(out.sess.username, S("alice")));
    cr_assert(out.sess.has_will && out.sess.will_retain && !out.sess.clean);
    cr_assert(eq(u32, out.sess.will_delay, 5));
    cr_assert(eq(i64, out.sess.disconnected_at, 1700000100));
    cr_assert(mq_str_eq(out.sess.will.props, S(will_props)));
    cr_assert(mq_str_eq(mq_jrec_client_id(&out), S("dev-1")));

    p = (mq_str_t){(const char *)buf.data + starts[7] + MQ_JOURNAL_HDR,
                   starts[8] - starts[7] - MQ_JOURNAL_HDR};
    cr_assert(eq(int, mq_jrec_decode(MQ_JREC_MSG_PUT, p, &out, &why), MQ_RC_SUCCESS));
    cr_assert(eq(u64, out.out.mid, 3));
    cr_assert(eq(u16, out.out.packet_id, 17));
    cr_assert(eq(u8, out.out.state, 1));
    cr_assert(eq(u8, out.out.msg.qos, 2));
    cr_assert(mq_str_eq(out.out.msg.props, S(pub_props)));
    cr_assert(eq(i64, out.out.msg.expiry_at, 1700000200));
}

Test(journal, torn_tail_at_every_offset_of_the_last_record_is_dropped)
{
    mq_jrec_t in[16];
    size_t starts[17];
    size_t n = encode_samples(in, starts);
    size_t want[16];
    for (size_t i = 0; i < n; i++)
        want[i] = i;
    for (size_t cut = starts[n - 1]; cut < starts[n]; cut++) {
        seen_t s;
        read_all(buf.data, cut, &s);
        expect_records(&s, starts, want, n - 1);
        cr_assert(eq(u64, s.valid_end, starts[n - 1]), "cut at %zu", cut);
        cr_assert(eq(sz, s.n_corrupt, 0), "cut at %zu", cut);
        cr_assert(eq(sz, s.n_torn, cut > starts[n - 1]), "cut at %zu", cut);
        if (cut > starts[n - 1])
            cr_assert(eq(u64, s.torn_off, starts[n - 1]));
    }
}

Test(journal, corrupt_byte_anywhere_in_a_middle_record_skips_only_that_record)
{
    mq_jrec_t in[16];
    size_t starts[17];
    size_t n = encode_samples(in, starts);
    const size_t bad = 3; /* the first SESS_PUT */
    size_t want[16], k = 0;
    for (size_t i = 0; i < n; i++)
        if (i != bad)
            want[k++] = i;
    static const uint8_t flips[] = {0x01, 0x80, 0xFF};
    for (size_t at = starts[bad]; at < starts[bad + 1]; at++) {
        for (size_t f = 0; f < sizeof(flips); f++) {
            buf.data[at] ^= flips[f];
            seen_t s;
            read_all(buf.data, buf.len, &s);
            expect_records(&s, starts, want, n - 1);
            cr_assert(eq(sz, s.n_corrupt, 1), "byte %zu", at);
            cr_assert(eq(u64, s.corrupt_off[0], starts[bad]), "byte %zu", at);
            cr_assert(eq(u64, s.corrupt_len[0], starts[bad + 1] - starts[bad]), "byte %zu", at);
            cr_assert(eq(sz, s.n_torn, 0));
            cr_assert(eq(u64, s.valid_end, buf.len));
            buf.data[at] ^= flips[f];
        }
    }
}

Test(journal, random_garbage_between_records_is_skipped)
{
    mq_jrec_t in[16];
    size_t n = samples(in);
    size_t starts[17], gaps[16];
    uint32_t seed = 12345;
    for (size_t i = 0; i < n; i++) {
        size_t g = buf.len, glen = 1 + (seed >> 16) % 200;
        for (size_t j = 0; j < glen; j++) {
            seed = seed * 1103515245u + 12345u;
            uint8_t byte = (uint8_t)(seed >> 16);
            /* sprinkle sync markers and plausible headers among the garbage */
            if (j % 37 == 0 && glen - j > 8) {
                mq_buf_append(&buf, "\xF5SJR\x10\0\0\0", 8);
                j += 7;
                continue;
            }
            mq_buf_append(&buf, &byte, 1);
        }
        gaps[i] = g;
        starts[i] = mq_jrec_encode(&buf, &in[i], i ? SALT : 0);
    }
    starts[n] = buf.len;
    seen_t s;
    read_all(buf.data, buf.len, &s);
    size_t want[16];
    for (size_t i = 0; i < n; i++)
        want[i] = i;
    expect_records(&s, starts, want, n);
    cr_assert(eq(sz, s.n_corrupt, n));
    for (size_t i = 0; i < n; i++) {
        cr_assert(eq(u64, s.corrupt_off[i], gaps[i]));
        cr_assert(eq(u64, s.corrupt_len[i], starts[i] - gaps[i]));
    }
    cr_assert(eq(u64, s.valid_end, buf.len));
}

Test(journal, huge_claimed_lengths_are_not_trusted)
{
    static const uint32_t lens[] = {0xFFFFFFFFu, MQ_JOURNAL_MAX_LEN + 1, MQ_JOURNAL_MAX_LEN, 21};
    for (size_t i = 0; i < MQ_ARRAY_LEN(lens); i++) {
        mq_buf_fini(&buf);
        mq_journal_append(&buf, MQ_JREC_SESS_DEL, "\x01\x00x", 3, 0);
        size_t second = buf.len;
        uint8_t hdr[MQ_JOURNAL_HDR] = {0xF5, 'S', 'J', 'R', MQ_JREC_SESS_DEL};
        for (int b = 0; b < 4; b++)
            hdr[8 + b] = (uint8_t)(lens[i] >> (8 * b));
        mq_buf_append(&buf, hdr, sizeof(hdr));
        mq_buf_append(&buf, "\x01\x00y", 3);
        seen_t s;
        read_all(buf.data, buf.len, &s);
        cr_assert(eq(sz, s.n_rec, 1));
        cr_assert(eq(sz, s.n_torn, 1));
        cr_assert(eq(u64, s.torn_off, second));
        cr_assert(eq(u64, s.valid_end, second));

        /* read in a window: a length beyond MQ_JOURNAL_MAX_LEN is refused without waiting */
        mq_journal_reader_t r;
        mq_journal_item_t it;
        mq_journal_reader_init(&r, 0);
        mq_journal_reader_feed(&r, buf.data, buf.len, false);
        cr_assert(eq(int, mq_journal_next(&r, &it), MQ_JOURNAL_RECORD));
        enum mq_journal_ev ev = mq_journal_next(&r, &it);
        if (lens[i] > MQ_JOURNAL_MAX_LEN)
            cr_assert(eq(int, ev, MQ_JOURNAL_CORRUPT));
        else
            cr_assert(eq(int, ev, MQ_JOURNAL_AGAIN));
    }
}

Test(journal, unknown_record_types_are_reported_and_skipped)
{
    mq_journal_append(&buf, MQ_JREC_SESS_DEL, "\x01\x00x", 3, 0);
    mq_journal_append(&buf, 0x7F, "future", 6, 0);
    mq_journal_append(&buf, MQ_JREC_SESS_DEL, "\x01\x00y", 3, 0);
    mq_journal_reader_t r;
    mq_journal_item_t it;
    mq_journal_reader_init(&r, 0);
    mq_journal_reader_feed(&r, buf.data, buf.len, true);
    cr_assert(eq(int, mq_journal_next(&r, &it), MQ_JOURNAL_RECORD));
    cr_assert(eq(int, mq_journal_next(&r, &it), MQ_JOURNAL_UNKNOWN));
    cr_assert(eq(u8, it.type, 0x7F));
    cr_assert(mq_str_eq(it.payload, S("future")));
    cr_assert(eq(int, mq_journal_next(&r, &it), MQ_JOURNAL_RECORD));
    cr_assert(mq_str_eq(it.payload, S("\x01\x00y")));
    cr_assert(eq(int, mq_journal_next(&r, &it), MQ_JOURNAL_END));
    cr_assert(eq(u64, r.n_unknown, 1));
    cr_assert(eq(u64, r.n_records, 3));
}

Test(journal, records_hidden_in_a_payload_never_surface)
{
    /* a client publishes a journal as a retained payload; the record holding it is torn */
    mq_buf_t inner;
    mq_buf_init(&inner);
    for (int i = 0; i < 5; i++)
        mq_journal_append(&inner, MQ_JREC_SESS_DEL, "\x01\x00z", 3, 0x1234);
    mq_jrec_t rec = {.type = MQ_JREC_RETAIN_SET};
    rec.retain.msg.topic = S("backup");
    rec.retain.msg.payload = (mq_str_t){(const char *)inner.data, inner.len};
    for (int salt = 0; salt < 2; salt++) {
        uint64_t outer = salt ? 0x1234 : SALT; /* same salt: the test can see a difference */
        mq_buf_fini(&buf);
        mq_journal_append(&buf, MQ_JREC_SESS_DEL, "\x01\x00x", 3, outer);
        size_t torn = mq_jrec_encode(&buf, &rec, outer);
        buf.len -= 1;
        mq_journal_reader_t r;
        mq_journal_item_t it;
        mq_journal_reader_init(&r, outer);
        mq_journal_reader_feed(&r, buf.data, buf.len, true);
        size_t n = 0;
        enum mq_journal_ev ev;
        while ((ev = mq_journal_next(&r, &it)) != MQ_JOURNAL_END)
            n += ev == MQ_JOURNAL_RECORD;
        if (salt) {
            cr_assert(eq(sz, n, 6), "inner records with the file's salt verify");
        } else {
            cr_assert(eq(sz, n, 1));
            cr_assert(eq(u64, r.valid_end, torn));
        }
    }
    mq_buf_fini(&inner);
}

/* Reads b[0..len) through windows of at most 'win' bytes (grown when the reader needs a
 * longer record), collecting records as read_all does. */
static void read_windows(const uint8_t *b, size_t len, size_t win, seen_t *s)
{
    memset(s, 0, sizeof(*s));
    mq_journal_reader_t r;
    mq_journal_reader_init(&r, 0);
    size_t w = win;
    for (int guard = 0;; guard++) {
        cr_assert(lt(int, guard, 100000));
        size_t off = (size_t)mq_journal_reader_offset(&r);
        size_t n = len - off < w ? len - off : w;
        mq_journal_reader_feed(&r, b + off, n, off + n == len);
        mq_journal_item_t it;
        enum mq_journal_ev ev;
        bool progress = false;
        while ((ev = mq_journal_next(&r, &it)) != MQ_JOURNAL_AGAIN && ev != MQ_JOURNAL_END) {
            progress = true;
            if (ev == MQ_JOURNAL_RECORD || ev == MQ_JOURNAL_UNKNOWN) {
                s->rec_off[s->n_rec++] = it.offset;
                r.salt = SALT;
            }
        }
        if (ev == MQ_JOURNAL_END)
            break;
        w = progress ? win : w * 2; /* no progress: the window is too small for one record */
    }
    s->valid_end = r.valid_end;
    s->skipped = r.skipped;
}

Test(journal, windows_of_any_size_read_the_same_records)
{
    mq_jrec_t in[16];
    size_t n = samples(in);
    for (size_t i = 0; i < n; i++) {
        mq_buf_append(&buf, "\xF5SJ\x00garbage\xF5", 12);
        (void)mq_jrec_encode(&buf, &in[i], i ? SALT : 0);
    }
    mq_buf_append(&buf, "\xF5SJR\x20\0\0\0\xff\0\0\0", 12); /* torn tail */
    seen_t whole;
    read_all(buf.data, buf.len, &whole);
    cr_assert(eq(sz, whole.n_rec, n));
    for (size_t win = 1; win < 300; win += (win < 40 ? 1 : 37)) {
        seen_t s;
        read_windows(buf.data, buf.len, win, &s);
        cr_assert(eq(sz, s.n_rec, whole.n_rec), "window %zu", win);
        for (size_t i = 0; i < s.n_rec; i++)
            cr_assert(eq(u64, s.rec_off[i], whole.rec_off[i]), "window %zu", win);
        cr_assert(eq(u64, s.valid_end, whole.valid_end), "window %zu", win);
        cr_assert(eq(u64, s.skipped, whole.skipped), "window %zu", win);
    }
}

/* ---- record payloads --------------------------------------------------------------------- */

Test(journal, every_truncation_and_any_trailing_byte_is_malformed)
{
    mq_jrec_t in[16];
    size_t starts[17];
    size_t n = encode_samples(in, starts);
    for (size_t i = 0; i < n; i++) {
        const char *p = (const char *)buf.data + starts[i] + MQ_JOURNAL_HDR;
        size_t len = starts[i + 1] - starts[i] - MQ_JOURNAL_HDR;
        mq_jrec_t out;
        const char *why = NULL;
        /* a RETAIN_SET without its publisher is one of version 1 */
        size_t no_src = in[i].type == MQ_JREC_RETAIN_SET && in[i].retain.src.present
                            ? len - (2 + 1 + 2 + in[i].retain.src.client_id.len + 2 +
                                     in[i].retain.src.username.len)
                            : 0;
        for (size_t cut = 0; cut < len; cut++)
            cr_assert(eq(int, mq_jrec_decode(in[i].type, (mq_str_t){p, cut}, &out, &why),
                         cut == no_src && no_src ? MQ_RC_SUCCESS : MQ_RC_MALFORMED_PACKET),
                      "%s cut at %zu", mq_jrec_type_str(in[i].type), cut);
        char *longer = malloc(len + 1);
        memcpy(longer, p, len);
        longer[len] = 0;
        cr_assert(eq(int, mq_jrec_decode(in[i].type, (mq_str_t){longer, len + 1}, &out, &why),
                     MQ_RC_MALFORMED_PACKET));
        free(longer);
    }
}

/* Encodes 'r' and decodes it back; returns the decoder's verdict. */
static enum mq_rc reencode_rc(const mq_jrec_t *r)
{
    mq_buf_fini(&buf);
    size_t at = mq_jrec_encode(&buf, r, SALT);
    mq_jrec_t out;
    const char *why = NULL;
    mq_str_t p = {(const char *)buf.data + at + MQ_JOURNAL_HDR, buf.len - at - MQ_JOURNAL_HDR};
    return mq_jrec_decode(r->type, p, &out, &why);
}

Test(journal, values_outside_their_ranges_are_malformed)
{
    mq_jrec_t in[16], r;
    samples(in);
    const enum mq_rc bad = MQ_RC_MALFORMED_PACKET;

    r = in[1], r.retain.msg.qos = 3;
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[1], r.retain.msg.topic = S("a/+");
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[1], r.retain.msg.props = S("\x11\x00\x00\x00\x01"); /* session expiry: not PUBLISH */
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[1], r.retain.src.client_id = S(""); /* a publisher has a client id */
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[1], r.retain.src.username = S("\xc0\x80");
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[1], r.retain.src.has_username = false, r.retain.src.username = S("");
    cr_assert(eq(int, reencode_rc(&r), MQ_RC_SUCCESS));
    r = in[2], r.retain.msg.topic = S("a/\xff");
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[3], r.sess.level = 6;
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[3], r.sess.client_id = S("");
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[3], r.sess.will.props = S(pub_props); /* valid PUBLISH, and Will, properties */
    cr_assert(eq(int, reencode_rc(&r), MQ_RC_SUCCESS));
    r = in[3], r.sess.will.props = S("\x23\x00\x01"); /* topic alias: not in a will */
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[5], r.sub.options = 3;
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[5], r.sub.options = 3 << 4;
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[5], r.sub.options = 0x40;
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[5], r.sub.sub_id = MQ_CODEC_MAX_REMAINING + 1;
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[5], r.sub.filter = S("a/#/b");
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[7], r.out.msg.qos = 1; /* PUBREL state at QoS 1 */
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[7], r.out.flags = 0x04;
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[8], r.out.packet_id = 5; /* a packet id at QoS 0 */
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[9], r.out.packet_id = 0; /* PUBREL without packet id */
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[11], r.qos2.packet_id = 0;
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[0], r.header.worker = 4; /* of 4 workers */
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[0], r.header.kind = MQ_JREC_KIND_SNAPSHOT; /* a snapshot has no worker index */
    cr_assert(eq(int, reencode_rc(&r), bad));
    r = in[0], r.header.worker = 0, r.header.kind = MQ_JREC_KIND_SNAPSHOT;
    cr_assert(eq(int, reencode_rc(&r), MQ_RC_SUCCESS));
}

Test(journal, another_format_version_is_reported_as_such)
{
    mq_jrec_t r = {.type = MQ_JREC_FILE_HEADER};
    r.header = (mq_jrec_header_t){MQ_JREC_VERSION + 1, MQ_JREC_KIND_RETAINED, 0, 1, 1, 0, 0};
    cr_assert(eq(int, reencode_rc(&r), MQ_RC_UNSUPPORTED_PROTOCOL_VERSION));
    mq_jrec_t out;
    const char *why;
    cr_assert(eq(int, mq_jrec_decode(0x7F, S("x"), &out, &why), MQ_RC_MALFORMED_PACKET));
    cr_assert(eq(str, (char *)mq_jrec_type_str(0x7F), "?"));
    cr_assert(eq(str, (char *)mq_jrec_type_str(MQ_JREC_MSG_UPDATE), "MSG_UPDATE"));
}
