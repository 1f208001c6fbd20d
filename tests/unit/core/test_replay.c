/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_replay.c - start-up model (core/replay.c): applying records, reading
 * damaged files, retained ordering, expiry, redistribution and the snapshot round trip. */
#include "core/replay.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>
#include <xxhash.h>

#include "core/msg.h"

#define SALT 0xabcdef0123456789ull
#define S(lit) ((mq_str_t){(lit), sizeof(lit) - 1})

static mq_replay_t rp;
static mq_buf_t buf;

static void setup(void)
{
    mq_replay_init(&rp, 3);
    mq_buf_init(&buf);
}

static void teardown(void)
{
    mq_replay_fini(&rp);
    mq_buf_fini(&buf);
}

TestSuite(replay, .init = setup, .fini = teardown);

/* ---- record builders --------------------------------------------------------------------- */

static mq_jrec_t header(uint8_t kind, uint64_t gen)
{
    mq_jrec_t r = {.type = MQ_JREC_FILE_HEADER};
    r.header = (mq_jrec_header_t){MQ_JREC_VERSION, kind, 0, 2, gen, 1700000000, SALT};
    return r;
}

static mq_jrec_t sess(const char *id, uint32_t expiry)
{
    mq_jrec_t r = {.type = MQ_JREC_SESS_PUT};
    r.sess = (mq_jrec_sess_t){.client_id = mq_str(id), .level = 5, .expiry_interval = expiry};
    return r;
}

static mq_jrec_t sub(uint8_t type, const char *id, const char *filter, uint8_t opts)
{
    mq_jrec_t r = {.type = type};
    r.sub = (mq_jrec_sub_t){mq_str(id), mq_str(filter), opts, opts ? 9 : 0};
    return r;
}

static mq_jrec_t msg(const char *id, uint64_t mid, uint16_t pid, uint8_t qos, int64_t exp)
{
    mq_jrec_t r = {.type = MQ_JREC_MSG_PUT};
    r.out = (mq_jrec_out_t){mq_str(id), mid, pid, 0, 0, {S("t/x"), S("body"), S(""), qos, exp}};
    return r;
}

static mq_jrec_t ref(uint8_t type, const char *id, uint64_t mid, uint16_t pid, uint8_t state)
{
    mq_jrec_t r = {.type = type};
    r.out = (mq_jrec_out_t){.client_id = mq_str(id), .mid = mid, .packet_id = pid, .state = state};
    return r;
}

static mq_jrec_t qos2(uint8_t type, const char *id, uint16_t pid)
{
    mq_jrec_t r = {.type = type};
    r.qos2 = (mq_jrec_qos2_t){mq_str(id), pid};
    return r;
}

static mq_jrec_t retain(uint8_t type, const char *topic, uint64_t seq, const char *payload)
{
    mq_jrec_t r = {.type = type};
    r.retain = (mq_jrec_retain_t){.seq = seq, .msg = {mq_str(topic), mq_str(payload), S(""), 1, 0}};
    return r;
}

static enum mq_replay_res apply(mq_jrec_t r)
{
    return mq_replay_apply(&rp, &r);
}

/* ---- applying ---------------------------------------------------------------------------- */

Test(replay, session_state_follows_its_records)
{
    cr_assert(eq(int, apply(sess("dev", 60)), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, apply(sub(MQ_JREC_SUB_ADD, "dev", "a/#", 1)), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, apply(sub(MQ_JREC_SUB_ADD, "dev", "b/+", 0)), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, apply(sub(MQ_JREC_SUB_ADD, "dev", "a/#", 2)), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, apply(sub(MQ_JREC_SUB_DEL, "dev", "b/+", 0)), MQ_REPLAY_APPLIED));
    for (uint64_t mid = 1; mid <= 4; mid++)
        cr_assert(eq(int, apply(msg("dev", mid, 0, 2, 0)), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, apply(ref(MQ_JREC_MSG_UPDATE, "dev", 2, 7, 1)), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, apply(ref(MQ_JREC_MSG_DEL, "dev", 1, 0, 0)), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, apply(ref(MQ_JREC_MSG_DEL, "dev", 3, 0, 0)), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, apply(qos2(MQ_JREC_QOS2_IN_ADD, "dev", 11)), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, apply(qos2(MQ_JREC_QOS2_IN_ADD, "dev", 12)), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, apply(qos2(MQ_JREC_QOS2_IN_DEL, "dev", 11)), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, apply(sess("dev", 120)), MQ_REPLAY_APPLIED)); /* update keeps state */

    mq_replay_sess_t *s = mq_replay_find_sess(&rp, S("dev"));
    cr_assert(ne(ptr, s, NULL));
    cr_assert(eq(u32, s->info.expiry_interval, 120));
    cr_assert(eq(u32, s->n_subs, 1));
    cr_assert(mq_str_eq(s->subs[0].filter, S("a/#")));
    cr_assert(eq(u8, s->subs[0].options, 2));
    cr_assert(eq(u32, s->n_out, 2));
    cr_assert(eq(u64, s->out[0].mid, 2));
    cr_assert(eq(u16, s->out[0].packet_id, 7));
    cr_assert(eq(u8, s->out[0].state, 1));
    cr_assert(eq(u64, s->out[1].mid, 4));
    cr_assert(mq_str_eq(s->out[1].msg.payload, S("body")));
    cr_assert(eq(u64, s->next_mid, 5));
    cr_assert(eq(u32, s->n_qos2_in, 1));
    cr_assert(eq(u16, s->qos2_in[0], 12));

    cr_assert(eq(int, apply(sess("dev", 0)), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, (apply((mq_jrec_t){.type = MQ_JREC_SESS_DEL, .sess.client_id = S("dev")})),
                 MQ_REPLAY_APPLIED));
    cr_assert(eq(ptr, mq_replay_find_sess(&rp, S("dev")), NULL));
    cr_assert(eq(sz, rp.n_sessions, 0));
}

Test(replay, messages_stay_in_mid_order_whatever_the_record_order)
{
    apply(sess("dev", 60));
    static const uint64_t mids[] = {5, 1, 9, 3, 7};
    for (size_t i = 0; i < MQ_ARRAY_LEN(mids); i++)
        apply(msg("dev", mids[i], 0, 1, 0));
    apply(msg("dev", 3, 4, 1, 0)); /* re-put replaces */
    mq_replay_sess_t *s = mq_replay_find_sess(&rp, S("dev"));
    cr_assert(eq(u32, s->n_out, 5));
    for (uint32_t i = 0; i < 5; i++)
        cr_assert(eq(u64, s->out[i].mid, 2 * i + 1));
    cr_assert(eq(u16, s->out[1].packet_id, 4));
    cr_assert(eq(u64, s->next_mid, 10));
}

Test(replay, records_about_absent_things_are_orphans)
{
    cr_assert(eq(int, apply(sub(MQ_JREC_SUB_ADD, "ghost", "a", 0)), MQ_REPLAY_ORPHAN));
    cr_assert(eq(int, apply(msg("ghost", 1, 0, 1, 0)), MQ_REPLAY_ORPHAN));
    apply(sess("dev", 60));
    cr_assert(eq(int, apply(sub(MQ_JREC_SUB_DEL, "dev", "a", 0)), MQ_REPLAY_ORPHAN));
    cr_assert(eq(int, apply(ref(MQ_JREC_MSG_UPDATE, "dev", 1, 1, 0)), MQ_REPLAY_ORPHAN));
    cr_assert(eq(int, apply(ref(MQ_JREC_MSG_DEL, "dev", 1, 0, 0)), MQ_REPLAY_ORPHAN));
    cr_assert(eq(int, apply(qos2(MQ_JREC_QOS2_IN_DEL, "dev", 1)), MQ_REPLAY_ORPHAN));
    cr_assert(eq(int, apply((mq_jrec_t){.type = MQ_JREC_SESS_DEL, .sess.client_id = S("x")}),
                 MQ_REPLAY_ORPHAN));
    cr_assert(eq(int, apply(header(MQ_JREC_KIND_WORKER, 1)), MQ_REPLAY_IGNORED));
}

Test(replay, retained_changes_keep_the_highest_sequence)
{
    cr_assert(eq(int, apply(retain(MQ_JREC_RETAIN_SET, "a", 5, "five")), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, apply(retain(MQ_JREC_RETAIN_SET, "a", 3, "three")), MQ_REPLAY_STALE));
    cr_assert(mq_str_eq(mq_replay_find_retained(&rp, S("a"))->msg.payload, S("five")));
    cr_assert(eq(int, apply(retain(MQ_JREC_RETAIN_CLEAR, "a", 6, "")), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, apply(retain(MQ_JREC_RETAIN_SET, "a", 4, "four")), MQ_REPLAY_STALE));
    cr_assert(mq_replay_find_retained(&rp, S("a"))->is_clear);
    /* seq 0: file order */
    cr_assert(eq(int, apply(retain(MQ_JREC_RETAIN_SET, "b", 0, "x")), MQ_REPLAY_APPLIED));
    cr_assert(eq(int, apply(retain(MQ_JREC_RETAIN_SET, "b", 0, "y")), MQ_REPLAY_APPLIED));
    cr_assert(mq_str_eq(mq_replay_find_retained(&rp, S("b"))->msg.payload, S("y")));
    cr_assert(eq(u64, rp.max_retain_seq, 6));
    cr_assert(eq(sz, rp.n_retained, 2));
    cr_assert(eq(sz, mq_replay_finish(&rp, 1), 0)); /* the clear goes, uncounted */
    cr_assert(eq(ptr, mq_replay_find_retained(&rp, S("a")), NULL));
    cr_assert(eq(sz, rp.n_retained, 1));
}

Test(replay, finish_drops_what_expired_while_down)
{
    mq_jrec_t r = retain(MQ_JREC_RETAIN_SET, "old", 0, "x");
    r.retain.msg.expiry_at = 1000;
    apply(r);
    r = retain(MQ_JREC_RETAIN_SET, "new", 0, "x");
    r.retain.msg.expiry_at = 3000;
    apply(r);
    apply(retain(MQ_JREC_RETAIN_SET, "forever", 0, "x"));
    apply(sess("dev", 60));
    apply(msg("dev", 1, 1, 1, 1500));
    apply(msg("dev", 2, 2, 1, 0));
    apply(msg("dev", 3, 3, 1, 2000));
    apply(msg("dev", 4, 4, 1, 2500));
    cr_assert(eq(sz, mq_replay_finish(&rp, 2000), 3));
    cr_assert(eq(ptr, mq_replay_find_retained(&rp, S("old")), NULL));
    cr_assert(ne(ptr, mq_replay_find_retained(&rp, S("new")), NULL));
    cr_assert(ne(ptr, mq_replay_find_retained(&rp, S("forever")), NULL));
    mq_replay_sess_t *s = mq_replay_find_sess(&rp, S("dev"));
    cr_assert(eq(u32, s->n_out, 2));
    cr_assert(eq(u64, s->out[0].mid, 2));
    cr_assert(eq(u64, s->out[1].mid, 4));
}

static void count_owner(void *arg, mq_replay_sess_t *s)
{
    uint32_t *per = arg;
    cr_assert(eq(u64, s->id_hash, XXH3_64bits(s->info.client_id.ptr, s->info.client_id.len)));
    cr_assert(eq(u32, s->owner, (uint32_t)(s->id_hash % 3)));
    per[s->owner]++;
}

Test(replay, sessions_from_two_workers_are_redistributed_over_three)
{
    /* two journals of a 2-worker broker, each with the sessions worker owned */
    mq_buf_t files[2];
    for (int w = 0; w < 2; w++) {
        mq_buf_init(&files[w]);
        mq_jrec_t h = header(MQ_JREC_KIND_WORKER, 4);
        h.header.worker = (uint16_t)w;
        (void)mq_jrec_encode(&files[w], &h, 0);
    }
    char id[16];
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof(id), "client-%d", i);
        mq_jrec_t r = sess(id, 60);
        int w = (int)(XXH3_64bits(id, strlen(id)) % 2);
        (void)mq_jrec_encode(&files[w], &r, SALT);
    }
    for (int w = 0; w < 2; w++) {
        mq_journal_reader_t r;
        mq_replay_file_t f = {0};
        mq_replay_file_init(&f);
        mq_journal_reader_init(&r, 0);
        mq_journal_reader_feed(&r, files[w].data, files[w].len, true);
        cr_assert(eq(int, mq_replay_read(&rp, &r, &f), MQ_RC_SUCCESS));
        cr_assert(eq(u16, f.header.n_workers, 2));
        mq_buf_fini(&files[w]);
    }
    cr_assert(eq(sz, rp.n_sessions, 200));
    uint32_t per[3] = {0};
    mq_replay_each_sess(&rp, count_owner, per);
    cr_assert(eq(u32, per[0] + per[1] + per[2], 200));
    cr_assert(per[0] > 0 && per[1] > 0 && per[2] > 0);
}

/* ---- reading files ----------------------------------------------------------------------- */

typedef struct notes {
    int n[6];
    uint64_t last_off;
} notes_t;

static void on_note(void *arg, enum mq_journal_ev ev, uint64_t offset, uint64_t len, uint8_t type,
                    const char *why)
{
    notes_t *n = arg;
    (void)len, (void)type;
    cr_assert(ne(ptr, (void *)why, NULL));
    n->n[ev]++;
    n->last_off = offset;
}

/* Reads buf whole into rp. */
static enum mq_rc read_buf(mq_replay_file_t *f, notes_t *n)
{
    mq_journal_reader_t r;
    memset(n, 0, sizeof(*n));
    f->note = on_note;
    f->note_arg = n;
    mq_replay_file_init(f);
    mq_journal_reader_init(&r, 0);
    mq_journal_reader_feed(&r, buf.data, buf.len, true);
    return mq_replay_read(&rp, &r, f);
}

Test(replay, a_damaged_journal_replays_everything_that_verifies)
{
    mq_jrec_t h = header(MQ_JREC_KIND_WORKER, 1), r;
    (void)mq_jrec_encode(&buf, &h, 0);
    r = sess("dev", 60);
    (void)mq_jrec_encode(&buf, &r, SALT);
    r = msg("dev", 1, 1, 1, 0);
    size_t bad = mq_jrec_encode(&buf, &r, SALT);
    r = msg("dev", 2, 2, 1, 0);
    (void)mq_jrec_encode(&buf, &r, SALT);
    mq_journal_append(&buf, 0x7E, "later", 5, SALT);
    mq_journal_append(&buf, MQ_JREC_SUB_ADD, "\x03\x00", 2, SALT); /* verifies, malformed */
    r = sub(MQ_JREC_SUB_ADD, "nobody", "a", 0);
    (void)mq_jrec_encode(&buf, &r, SALT);
    r = qos2(MQ_JREC_QOS2_IN_ADD, "dev", 5);
    size_t torn = mq_jrec_encode(&buf, &r, SALT);
    buf.len -= 2;
    buf.data[bad + MQ_JOURNAL_HDR + 5] ^= 1;

    mq_replay_file_t f;
    notes_t n;
    cr_assert(eq(int, read_buf(&f, &n), MQ_RC_SUCCESS));
    cr_assert(f.has_header);
    cr_assert(not(f.complete));
    cr_assert(eq(u64, f.n_applied, 2));
    cr_assert(eq(u64, f.n_malformed, 1));
    cr_assert(eq(u64, f.n_orphans, 1));
    cr_assert(eq(u64, f.torn_at, torn));
    cr_assert(eq(int, n.n[MQ_JOURNAL_CORRUPT], 1));
    cr_assert(eq(int, n.n[MQ_JOURNAL_TORN], 1));
    cr_assert(eq(int, n.n[MQ_JOURNAL_UNKNOWN], 1));
    cr_assert(eq(int, n.n[MQ_JOURNAL_RECORD], 2)); /* the malformed one and the orphan */
    mq_replay_sess_t *s = mq_replay_find_sess(&rp, S("dev"));
    cr_assert(eq(u32, s->n_out, 1));
    cr_assert(eq(u64, s->out[0].mid, 2));
    cr_assert(eq(u32, s->n_qos2_in, 0));
}

Test(replay, a_file_without_a_readable_header_applies_nothing)
{
    mq_jrec_t r = sess("dev", 60);
    (void)mq_jrec_encode(&buf, &r, 0);
    mq_replay_file_t f;
    notes_t n;
    cr_assert(eq(int, read_buf(&f, &n), MQ_RC_MALFORMED_PACKET));
    cr_assert(eq(sz, rp.n_sessions, 0));

    mq_buf_fini(&buf);
    r = header(MQ_JREC_KIND_WORKER, 1);
    r.header.version = MQ_JREC_VERSION + 1;
    (void)mq_jrec_encode(&buf, &r, 0);
    r = sess("dev", 60);
    (void)mq_jrec_encode(&buf, &r, SALT);
    cr_assert(eq(int, read_buf(&f, &n), MQ_RC_UNSUPPORTED_PROTOCOL_VERSION));
    cr_assert(eq(sz, rp.n_sessions, 0));

    mq_buf_fini(&buf);
    cr_assert(eq(int, read_buf(&f, &n), MQ_RC_MALFORMED_PACKET)); /* empty file */
    mq_buf_append(&buf, "\0mosquitto db", 13);                    /* someone else's file */
    cr_assert(eq(int, read_buf(&f, &n), MQ_RC_MALFORMED_PACKET));
}

/* Builds a model with some of everything. */
static void populate(void)
{
    mq_jrec_t r = sess("a", 60);
    r.sess.has_username = true;
    r.sess.username = S("alice");
    r.sess.has_will = true;
    r.sess.will_delay = 30;
    r.sess.will = (mq_jrec_msg_t){S("a/gone"), S("bye"), S("\x18\x00\x00\x00\x05"), 1, 0};
    apply(r);
    apply(sess("b", ~0u));
    apply(sub(MQ_JREC_SUB_ADD, "a", "x/#", 0x1d));
    apply(sub(MQ_JREC_SUB_ADD, "b", "$share/g/y", 1));
    apply(msg("a", 1, 1, 1, 0));
    apply(msg("a", 2, 2, 2, 9999999999));
    apply(ref(MQ_JREC_MSG_UPDATE, "a", 2, 2, 1));
    apply(qos2(MQ_JREC_QOS2_IN_ADD, "b", 77));
    apply(retain(MQ_JREC_RETAIN_SET, "r/1", 1, "one"));
    apply(retain(MQ_JREC_RETAIN_CLEAR, "r/2", 2, ""));
}

static void check_populated(const mq_replay_t *m)
{
    cr_assert(eq(sz, m->n_sessions, 2));
    mq_replay_sess_t *a = mq_replay_find_sess(m, S("a")), *b = mq_replay_find_sess(m, S("b"));
    cr_assert(a && b);
    cr_assert(mq_str_eq(a->info.username, S("alice")));
    cr_assert(mq_str_eq(a->info.will.payload, S("bye")));
    cr_assert(eq(u32, a->info.will_delay, 30));
    cr_assert(eq(u32, b->info.expiry_interval, ~0u));
    cr_assert(eq(u32, a->n_subs, 1));
    cr_assert(eq(u8, a->subs[0].options, 0x1d));
    cr_assert(eq(u32, a->subs[0].sub_id, 9));
    cr_assert(mq_str_eq(b->subs[0].filter, S("$share/g/y")));
    cr_assert(eq(u32, a->n_out, 2));
    cr_assert(eq(u8, a->out[1].state, 1));
    cr_assert(eq(i64, a->out[1].msg.expiry_at, 9999999999));
    cr_assert(eq(u64, a->next_mid, 3));
    cr_assert(eq(u16, b->qos2_in[0], 77));
    cr_assert(mq_str_eq(mq_replay_find_retained(m, S("r/1"))->msg.payload, S("one")));
    cr_assert(mq_replay_find_retained(m, S("r/2"))->is_clear);
    cr_assert(eq(u64, m->max_retain_seq, 2));
}

Test(replay, a_snapshot_of_the_model_replays_to_the_same_model)
{
    populate();
    mq_jrec_t h = header(MQ_JREC_KIND_SNAPSHOT, 8);
    h.header.n_workers = 3;
    mq_replay_encode(&rp, &buf, &h.header);
    mq_replay_fini(&rp);
    mq_replay_init(&rp, 5);

    mq_replay_file_t f;
    notes_t n;
    cr_assert(eq(int, read_buf(&f, &n), MQ_RC_SUCCESS));
    cr_assert(f.complete);
    cr_assert(eq(u64, f.header.generation, 8));
    cr_assert(eq(u64, f.n_orphans + f.n_malformed + f.n_stale, 0));
    check_populated(&rp);

    /* cut before SNAP_END: everything before it replays, but it is not complete */
    size_t whole = buf.len;
    for (size_t cut = whole - 1; cut >= whole - 36; cut--) {
        mq_replay_fini(&rp);
        mq_replay_init(&rp, 5);
        buf.len = cut;
        cr_assert(eq(int, read_buf(&f, &n), MQ_RC_SUCCESS));
        cr_assert(not(f.complete));
        check_populated(&rp);
    }
}

Test(replay, windowed_reads_replay_like_whole_ones)
{
    populate();
    mq_jrec_t h = header(MQ_JREC_KIND_SNAPSHOT, 2);
    mq_replay_encode(&rp, &buf, &h.header);
    mq_replay_fini(&rp);
    mq_replay_init(&rp, 1);
    mq_journal_reader_t r;
    mq_replay_file_t f = {0};
    mq_replay_file_init(&f);
    mq_journal_reader_init(&r, 0);
    size_t w = 16;
    int again = 0;
    enum mq_rc rc;
    do {
        size_t off = (size_t)mq_journal_reader_offset(&r);
        size_t len = buf.len - off < w ? buf.len - off : w;
        mq_journal_reader_feed(&r, buf.data + off, len, off + len == buf.len);
        size_t before = f.n_applied;
        rc = mq_replay_read(&rp, &r, &f);
        again += rc == MQ_RC_AGAIN;
        w = f.n_applied == before ? w * 2 : 16;
    } while (rc == MQ_RC_AGAIN);
    cr_assert(eq(int, rc, MQ_RC_SUCCESS));
    cr_assert(gt(int, again, 5));
    cr_assert(f.complete);
    check_populated(&rp);
}

Test(replay, a_kept_message_is_routed_with_its_properties_and_the_expiry_left)
{
    /* Content Type "text/plain" and one User Property k=v, as a PUBLISH carries them */
    static const uint8_t props[] = {0x03, 0x00, 0x0a, 't',  'e',  'x',  't', '/',  'p',  'l',
                                    'a',  'i',  'n',  0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v'};
    mq_jrec_msg_t m = {.topic = {"a/b", 3},
                       .payload = {"hello", 5},
                       .props = {(const char *)props, sizeof(props)},
                       .qos = 2,
                       .expiry_at = 1000 + 30};
    mq_msg_t *msg = mq_replay_msg_new(&m, true, 1000, 5000);
    cr_assert(not(eq(ptr, msg, NULL)));
    cr_assert(eq(u8, msg->qos, 2));
    cr_assert(msg->retain);
    cr_assert(eq(u64, msg->expire_at, 5000 + 30 * 1000)); /* 30 s left on the loop clock */
    cr_assert(eq(sz, msg->props_len, sizeof(props)));
    cr_assert(eq(int, memcmp(msg->wire + msg->wire_len, props, sizeof(props)), 0));
    mq_str_t t = mq_msg_topic(msg), p = mq_msg_payload(msg);
    cr_assert(eq(sz, t.len, 3));
    cr_assert(eq(int, memcmp(t.ptr, "a/b", 3), 0));
    cr_assert(eq(sz, p.len, 5));
    cr_assert(eq(int, memcmp(p.ptr, "hello", 5), 0));
    mq_msg_unref(msg);

    m.expiry_at = 0;                 /* none: never expires */
    m.props = (mq_str_t){"\x03", 1}; /* a truncated property: not a PUBLISH's any more */
    cr_assert(eq(ptr, mq_replay_msg_new(&m, false, 1000, 5000), NULL));
    m.props = (mq_str_t){NULL, 0};
    msg = mq_replay_msg_new(&m, false, 1000, 5000);
    cr_assert(eq(u64, msg->expire_at, 0));
    cr_assert(not(msg->retain));
    mq_msg_unref(msg);
}
