/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_sess.c - session window, queue, acknowledgements, resume and dedup. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/codec.h"
#include "core/msg.h"
#include "core/rc.h"
#include "core/sess.h"

/* One packet the session wrote, decoded with the project codec as a 3.1.1 client would. */
typedef struct pkt {
    uint8_t type;
    uint8_t qos;
    bool dup;
    bool retain;
    uint16_t packet_id;
    char topic[64];
    char payload[64];
} pkt_t;

#define MAX_MSGS 16

static mq_sess_limits_t lim;
static mq_sess_home_t home; /* the worker's counters and clock, fresh in each test */
static const mq_sess_peer_t peer311 = {.proto = MQ_PROTO_311};
static mq_sess_t *s;
static mq_buf_t out;
static mq_msg_t *msgs[MAX_MSGS]; /* the test's own references, released in teardown */
static size_t n_msgs;

static void setup(void)
{
    lim = (mq_sess_limits_t){
        .max_inflight = 2, .max_queued = 0, .max_queued_bytes = 0, .out_high_water = 0};
    s = NULL;
    home = (mq_sess_home_t){.limits = &lim};
    n_msgs = 0;
    mq_buf_init(&out);
}

static void teardown(void)
{
    mq_sess_free(s);
    for (size_t i = 0; i < n_msgs; i++)
        mq_msg_unref(msgs[i]);
    mq_buf_fini(&out);
}

TestSuite(sess, .init = setup, .fini = teardown);

/* A session using 'lim' (set the limits first), attached to 'out' when 'attach'. */
static void open_sess(bool attach)
{
    s = mq_sess_new("client-1", 8, 42, false, &home);
    cr_assert(not(eq(ptr, s, NULL)));
    if (attach)
        mq_sess_attach(s, &out, &peer311);
}

/* A message on topic "t/<i>" with payload "<i>"; the test keeps one reference. */
static mq_msg_t *msg(const char *payload)
{
    char topic[32];
    snprintf(topic, sizeof(topic), "t/%s", payload);
    mq_msg_t *m = mq_msg_new(topic, strlen(topic), payload, strlen(payload), 1, false);
    cr_assert(not(eq(ptr, m, NULL)));
    cr_assert(lt(sz, n_msgs, MAX_MSGS));
    msgs[n_msgs++] = m;
    return m;
}

static unsigned refs(const mq_msg_t *m)
{
    return atomic_load(&((mq_msg_t *)m)->refs);
}

static void copy_str(char *dst, size_t cap, mq_str_t v)
{
    cr_assert(lt(sz, v.len, cap));
    memcpy(dst, v.ptr, v.len);
    dst[v.len] = '\0';
}

/* Decodes every packet in 'b' into p[0..max), empties 'b'; returns the packet count. Fails the
 * test when the bytes are not a sequence of whole, valid packets. */
static size_t take(mq_buf_t *b, pkt_t *p, size_t max)
{
    size_t off = 0, n = 0;
    while (off < b->len) {
        uint32_t rem = 0;
        int vn = mq_codec_read_varint(b->data + off + 1, b->len - off - 1, &rem);
        cr_assert(gt(int, vn, 0), "bad fixed header at offset %zu", off);
        size_t plen = 1 + (size_t)vn + rem;
        cr_assert(le(sz, off + plen, b->len), "truncated packet at offset %zu", off);
        mq_packet_t pkt;
        const char *why = "";
        enum mq_rc rc =
            mq_codec_decode(MQ_ROLE_CLIENT, MQ_PROTO_311, b->data + off, plen, &pkt, &why);
        cr_assert(eq(int, rc, MQ_RC_SUCCESS), "packet %zu does not decode: %s", n, why);
        cr_assert(lt(sz, n, max), "more than %zu packets written", max);
        pkt_t *q = &p[n];
        memset(q, 0, sizeof(*q));
        q->type = pkt.type;
        if (pkt.type == MQ_PUBLISH) {
            q->qos = pkt.publish.qos;
            q->dup = pkt.publish.dup;
            q->retain = pkt.publish.retain;
            q->packet_id = pkt.publish.packet_id;
            copy_str(q->topic, sizeof(q->topic), pkt.publish.topic);
            copy_str(q->payload, sizeof(q->payload), pkt.publish.payload);
        } else {
            q->packet_id = pkt.ack.packet_id;
        }
        off += plen;
        n++;
    }
    b->len = 0;
    return n;
}

/* Asserts that p is a PUBLISH of payload 'payload' at 'qos' with 'dup'. */
static void expect_publish(const pkt_t *p, const char *payload, uint8_t qos, bool dup)
{
    char topic[32];
    snprintf(topic, sizeof(topic), "t/%s", payload);
    cr_assert(eq(u8, p->type, MQ_PUBLISH));
    cr_assert_str_eq(p->payload, payload);
    cr_assert_str_eq(p->topic, topic);
    cr_assert(eq(u8, p->qos, qos));
    cr_assert(eq(int, p->dup, dup));
    if (qos == 0)
        cr_assert(eq(u16, p->packet_id, 0));
    else
        cr_assert(not(eq(u16, p->packet_id, 0)));
}

/* ---- QoS 0 ------------------------------------------------------------------------------- */

Test(sess, qos0_is_written_at_once_without_keeping_a_reference)
{
    open_sess(true);
    mq_msg_t *m = msg("a");
    cr_assert(mq_sess_deliver(s, m, 0, false));
    pkt_t p[4];
    cr_assert(eq(sz, take(&out, p, 4), 1));
    expect_publish(&p[0], "a", 0, false);
    cr_assert(not(p[0].retain));
    cr_assert(eq(u32, mq_sess_inflight(s), 0));
    cr_assert(eq(u32, mq_sess_queued(s), 0));
    cr_assert(eq(u32, refs(m), 1));
    cr_assert(eq(u64, home.stats.publish_sent, 1));
    cr_assert(eq(u64, home.stats.publish_bytes, 1));
    cr_assert(eq(u64, home.stats.packets_sent, 1));
}

Test(sess, retain_flag_is_written_as_requested)
{
    open_sess(true);
    cr_assert(mq_sess_deliver(s, msg("a"), 0, true));
    cr_assert(mq_sess_deliver(s, msg("b"), 1, true));
    cr_assert(mq_sess_deliver(s, msg("c"), 1, false));
    pkt_t p[4];
    cr_assert(eq(sz, take(&out, p, 4), 3));
    cr_assert(p[0].retain);
    cr_assert(p[1].retain);
    cr_assert(not(p[2].retain));
}

/* ---- QoS 1 window and queue --------------------------------------------------------------- */

Test(sess, qos1_is_written_and_held_until_puback)
{
    open_sess(true);
    mq_msg_t *m = msg("a");
    cr_assert(mq_sess_deliver(s, m, 1, false));
    pkt_t p[4];
    cr_assert(eq(sz, take(&out, p, 4), 1));
    expect_publish(&p[0], "a", 1, false);
    cr_assert(eq(u32, mq_sess_inflight(s), 1));
    cr_assert(eq(u32, refs(m), 2));

    cr_assert(eq(int, mq_sess_on_puback(s, p[0].packet_id), MQ_RC_SUCCESS));
    cr_assert(eq(u32, mq_sess_inflight(s), 0));
    cr_assert(eq(u32, refs(m), 1));
    cr_assert(eq(sz, take(&out, p, 4), 0)); /* the session writes nothing for a PUBACK */
}

Test(sess, window_holds_max_inflight_and_queues_the_rest_in_order)
{
    lim.max_inflight = 2;
    open_sess(true);
    const char *names[] = {"0", "1", "2", "3", "4"};
    for (int i = 0; i < 5; i++)
        cr_assert(mq_sess_deliver(s, msg(names[i]), 1, false));
    pkt_t p[8];
    cr_assert(eq(sz, take(&out, p, 8), 2));
    expect_publish(&p[0], "0", 1, false);
    expect_publish(&p[1], "1", 1, false);
    cr_assert(not(eq(u16, p[0].packet_id, p[1].packet_id)));
    cr_assert(eq(u32, mq_sess_inflight(s), 2));
    cr_assert(eq(u32, mq_sess_queued(s), 3));
    cr_assert(eq(u64, mq_sess_queued_bytes(s), 3));

    /* each PUBACK frees one slot, which the oldest queued message takes */
    uint16_t pending[2] = {p[0].packet_id, p[1].packet_id};
    for (int next = 2; next < 5; next++) {
        cr_assert(eq(int, mq_sess_on_puback(s, pending[0]), MQ_RC_SUCCESS));
        cr_assert(eq(sz, take(&out, p, 8), 1));
        expect_publish(&p[0], names[next], 1, false);
        cr_assert(not(eq(u16, p[0].packet_id, pending[1])));
        pending[0] = pending[1];
        pending[1] = p[0].packet_id;
        cr_assert(eq(u32, mq_sess_inflight(s), 2));
        cr_assert(eq(u32, mq_sess_queued(s), (uint32_t)(4 - next)));
    }
    cr_assert(eq(int, mq_sess_on_puback(s, pending[1]), MQ_RC_SUCCESS)); /* out of order */
    cr_assert(eq(int, mq_sess_on_puback(s, pending[0]), MQ_RC_SUCCESS));
    cr_assert(eq(u32, mq_sess_inflight(s), 0));
    cr_assert(eq(u64, mq_sess_queued_bytes(s), 0));
    cr_assert(eq(sz, take(&out, p, 8), 0));
    for (size_t i = 0; i < n_msgs; i++)
        cr_assert(eq(u32, refs(msgs[i]), 1), "message %zu still referenced", i);
}

/* max_inflight_bytes (mosquitto's rule): another QoS 1/2 message goes in flight while the
 * payload bytes in flight are below the limit; a QoS 2 message counts until PUBCOMP; one
 * larger than the limit goes alone; QoS 0 is not held. */
Test(sess, max_inflight_bytes_bounds_the_window_by_payload)
{
    lim.max_inflight = 10;
    lim.max_inflight_bytes = 16;
    open_sess(true);
    const char *names[] = {"message1", "message2", "message3"};
    for (int i = 0; i < 3; i++)
        cr_assert(mq_sess_deliver(s, msg(names[i]), 2, false));
    pkt_t p[8];
    cr_assert(eq(sz, take(&out, p, 8), 2), "16 bytes in flight: the limit");
    expect_publish(&p[0], "message1", 2, false);
    expect_publish(&p[1], "message2", 2, false);
    cr_assert(eq(u32, mq_sess_queued(s), 1));
    cr_assert(eq(int, mq_sess_on_pubrec(s, p[0].packet_id), MQ_RC_SUCCESS));
    pkt_t q[8];
    cr_assert(eq(sz, take(&out, q, 8), 1)); /* the PUBREL only: its 8 bytes still count */
    cr_assert(eq(int, q[0].type, MQ_PUBREL));
    cr_assert(eq(u32, mq_sess_queued(s), 1));
    cr_assert(eq(int, mq_sess_on_pubcomp(s, p[0].packet_id), MQ_RC_SUCCESS));
    cr_assert(eq(sz, take(&out, q, 8), 1));
    expect_publish(&q[0], "message3", 2, false);
    uint16_t id3 = q[0].packet_id;
    cr_assert(eq(u32, mq_sess_inflight(s), 2));

    /* QoS 0 is not in flight, and not held */
    cr_assert(mq_sess_deliver(s, msg("zero"), 0, false));
    cr_assert(eq(sz, take(&out, q, 8), 1));
    expect_publish(&q[0], "zero", 0, false);

    /* a message over the limit goes once nothing is in flight, alone */
    cr_assert(eq(int, mq_sess_on_pubrec(s, p[1].packet_id), MQ_RC_SUCCESS));
    cr_assert(eq(int, mq_sess_on_pubcomp(s, p[1].packet_id), MQ_RC_SUCCESS));
    cr_assert(eq(int, mq_sess_on_pubrec(s, id3), MQ_RC_SUCCESS));
    cr_assert(eq(int, mq_sess_on_pubcomp(s, id3), MQ_RC_SUCCESS));
    (void)take(&out, q, 8);
    cr_assert(mq_sess_deliver(s, msg("a-payload-of-twenty-bytes"), 1, false));
    cr_assert(mq_sess_deliver(s, msg("x"), 1, false));
    cr_assert(eq(sz, take(&out, q, 8), 1));
    expect_publish(&q[0], "a-payload-of-twenty-bytes", 1, false);
    cr_assert(eq(int, mq_sess_on_puback(s, q[0].packet_id), MQ_RC_SUCCESS));
    cr_assert(eq(sz, take(&out, q, 8), 1));
    expect_publish(&q[0], "x", 1, false);
}

Test(sess, qos0_waits_behind_queued_qos1_to_keep_order)
{
    lim.max_inflight = 1;
    open_sess(true);
    cr_assert(mq_sess_deliver(s, msg("a"), 1, false));
    cr_assert(mq_sess_deliver(s, msg("b"), 1, false));
    cr_assert(mq_sess_deliver(s, msg("c"), 0, false));
    pkt_t p[4];
    cr_assert(eq(sz, take(&out, p, 4), 1));
    expect_publish(&p[0], "a", 1, false);
    cr_assert(eq(u32, mq_sess_queued(s), 2));

    cr_assert(eq(int, mq_sess_on_puback(s, p[0].packet_id), MQ_RC_SUCCESS));
    cr_assert(eq(sz, take(&out, p, 4), 2));
    expect_publish(&p[0], "b", 1, false);
    expect_publish(&p[1], "c", 0, false);
    cr_assert(eq(u32, mq_sess_queued(s), 0));
    cr_assert(eq(u32, refs(msgs[2]), 1)); /* the queue's reference to the QoS 0 one is gone */
}

Test(sess, queue_beyond_max_queued_drops_and_counts)
{
    lim.max_inflight = 1;
    lim.max_queued = 2;
    open_sess(true);
    cr_assert(mq_sess_deliver(s, msg("a"), 1, false)); /* in flight */
    cr_assert(mq_sess_deliver(s, msg("b"), 1, false)); /* queued */
    cr_assert(mq_sess_deliver(s, msg("c"), 2, false)); /* queued */
    mq_msg_t *d = msg("d");
    cr_assert(not(mq_sess_deliver(s, d, 1, false)));
    cr_assert(not(mq_sess_deliver(s, msg("e"), 0, false))); /* QoS 0 queues behind, too */
    cr_assert(eq(u64, home.stats.dropped, 2));
    cr_assert(eq(u32, mq_sess_queued(s), 2));
    cr_assert(eq(u32, refs(d), 1)); /* a dropped message is not referenced */

    /* the queue drains in order and the dropped ones never appear */
    pkt_t p[4];
    cr_assert(eq(sz, take(&out, p, 4), 1));
    cr_assert(eq(int, mq_sess_on_puback(s, p[0].packet_id), MQ_RC_SUCCESS));
    cr_assert(eq(sz, take(&out, p, 4), 1));
    expect_publish(&p[0], "b", 1, false);
    cr_assert(eq(int, mq_sess_on_puback(s, p[0].packet_id), MQ_RC_SUCCESS));
    cr_assert(eq(sz, take(&out, p, 4), 1));
    expect_publish(&p[0], "c", 2, false);
    cr_assert(eq(u32, mq_sess_queued(s), 0));
}

Test(sess, queue_beyond_max_queued_bytes_drops_and_counts)
{
    lim.max_inflight = 1;
    lim.max_queued_bytes = 5;
    open_sess(true);
    cr_assert(mq_sess_deliver(s, msg("xxxxxxxx"), 1, false)); /* in flight: not counted */
    cr_assert(mq_sess_deliver(s, msg("aaa"), 1, false));      /* 3 queued bytes */
    cr_assert(mq_sess_deliver(s, msg("bb"), 1, false));       /* 5: exactly the limit */
    cr_assert(not(mq_sess_deliver(s, msg("c"), 1, false)));   /* 6 would be over */
    cr_assert(eq(u64, home.stats.dropped, 1));
    cr_assert(eq(u64, mq_sess_queued_bytes(s), 5));
    cr_assert(eq(u32, mq_sess_queued(s), 2));

    pkt_t p[4];
    cr_assert(eq(sz, take(&out, p, 4), 1));
    cr_assert(eq(int, mq_sess_on_puback(s, p[0].packet_id), MQ_RC_SUCCESS));
    cr_assert(eq(u64, mq_sess_queued_bytes(s), 2)); /* "aaa" moved into the window */
    cr_assert(mq_sess_deliver(s, msg("ccc"), 1, false));
    cr_assert(eq(u64, mq_sess_queued_bytes(s), 5));
}

/* ---- QoS 2 ------------------------------------------------------------------------------- */

Test(sess, qos2_goes_publish_pubrec_pubrel_pubcomp)
{
    lim.max_inflight = 1;
    open_sess(true);
    mq_msg_t *m = msg("a");
    cr_assert(mq_sess_deliver(s, m, 2, false));
    cr_assert(mq_sess_deliver(s, msg("b"), 2, false)); /* waits for the whole exchange */
    pkt_t p[4];
    cr_assert(eq(sz, take(&out, p, 4), 1));
    expect_publish(&p[0], "a", 2, false);
    uint16_t id = p[0].packet_id;

    cr_assert(eq(int, mq_sess_on_pubrec(s, id), MQ_RC_SUCCESS));
    cr_assert(eq(sz, take(&out, p, 4), 1));
    cr_assert(eq(u8, p[0].type, MQ_PUBREL));
    cr_assert(eq(u16, p[0].packet_id, id));
    cr_assert(eq(u32, refs(m), 1)); /* the message is no longer needed after PUBREC */
    cr_assert(eq(u32, mq_sess_inflight(s), 1));
    cr_assert(eq(u32, mq_sess_queued(s), 1));

    cr_assert(eq(int, mq_sess_on_pubcomp(s, id), MQ_RC_SUCCESS));
    cr_assert(eq(sz, take(&out, p, 4), 1));
    expect_publish(&p[0], "b", 2, false);
    cr_assert(eq(u32, mq_sess_inflight(s), 1));
    cr_assert(eq(u32, mq_sess_queued(s), 0));
    cr_assert(eq(u64, home.stats.packets_sent, 3));
    cr_assert(eq(u64, home.stats.publish_sent, 2));
}

Test(sess, repeated_pubrec_writes_pubrel_again)
{
    open_sess(true);
    cr_assert(mq_sess_deliver(s, msg("a"), 2, false));
    pkt_t p[4];
    cr_assert(eq(sz, take(&out, p, 4), 1));
    uint16_t id = p[0].packet_id;
    cr_assert(eq(int, mq_sess_on_pubrec(s, id), MQ_RC_SUCCESS));
    cr_assert(eq(int, mq_sess_on_pubrec(s, id), MQ_RC_SUCCESS));
    cr_assert(eq(sz, take(&out, p, 4), 2));
    cr_assert(eq(u8, p[1].type, MQ_PUBREL));
    cr_assert(eq(u16, p[1].packet_id, id));
}

Test(sess, acks_for_unknown_or_mismatched_ids_return_packet_id_not_found)
{
    open_sess(true);
    cr_assert(mq_sess_deliver(s, msg("q1"), 1, false));
    cr_assert(mq_sess_deliver(s, msg("q2"), 2, false));
    pkt_t p[4];
    cr_assert(eq(sz, take(&out, p, 4), 2));
    uint16_t id1 = p[0].packet_id, id2 = p[1].packet_id;
    uint16_t unknown = (uint16_t)(id1 + id2 + 100);

    cr_assert(eq(int, mq_sess_on_puback(s, unknown), MQ_RC_PACKET_ID_NOT_FOUND));
    cr_assert(eq(int, mq_sess_on_pubrec(s, unknown), MQ_RC_PACKET_ID_NOT_FOUND));
    cr_assert(eq(int, mq_sess_on_pubcomp(s, unknown), MQ_RC_PACKET_ID_NOT_FOUND));
    /* the right id with the wrong acknowledgement for its QoS or state */
    cr_assert(eq(int, mq_sess_on_puback(s, id2), MQ_RC_PACKET_ID_NOT_FOUND));
    cr_assert(eq(int, mq_sess_on_pubrec(s, id1), MQ_RC_PACKET_ID_NOT_FOUND));
    cr_assert(eq(int, mq_sess_on_pubcomp(s, id1), MQ_RC_PACKET_ID_NOT_FOUND));
    cr_assert(eq(int, mq_sess_on_pubcomp(s, id2), MQ_RC_PACKET_ID_NOT_FOUND)); /* before PUBREC */
    cr_assert(eq(u32, mq_sess_inflight(s), 2));
    cr_assert(eq(sz, take(&out, p, 4), 0));

    /* an id acknowledged once is unknown the second time */
    cr_assert(eq(int, mq_sess_on_puback(s, id1), MQ_RC_SUCCESS));
    cr_assert(eq(int, mq_sess_on_puback(s, id1), MQ_RC_PACKET_ID_NOT_FOUND));
    cr_assert(eq(int, mq_sess_on_pubrec(s, id2), MQ_RC_SUCCESS));
    cr_assert(eq(int, mq_sess_on_pubcomp(s, id2), MQ_RC_SUCCESS));
    cr_assert(eq(int, mq_sess_on_pubcomp(s, id2), MQ_RC_PACKET_ID_NOT_FOUND));
    cr_assert(eq(u32, mq_sess_inflight(s), 0));
}

/* ---- offline sessions and resume ---------------------------------------------------------- */

Test(sess, detached_session_drops_qos0_and_queues_qos1_and_qos2)
{
    open_sess(false);
    mq_msg_t *q0 = msg("a");
    cr_assert(not(mq_sess_deliver(s, q0, 0, false)));
    cr_assert(mq_sess_deliver(s, msg("b"), 1, false));
    cr_assert(mq_sess_deliver(s, msg("c"), 2, false));
    cr_assert(mq_sess_deliver(s, msg("d"), 1, false));
    cr_assert(eq(u64, home.stats.dropped, 1));
    cr_assert(eq(u32, refs(q0), 1));
    cr_assert(eq(u32, mq_sess_queued(s), 3));
    cr_assert(eq(u32, mq_sess_inflight(s), 0)); /* nothing is in flight without a connection */
    cr_assert(eq(u64, home.stats.packets_sent, 0));

    /* attaching sends the queue up to the window (2), in order, as first transmissions */
    mq_sess_attach(s, &out, &peer311);
    cr_assert(s->is_online);
    pkt_t p[8];
    cr_assert(eq(sz, take(&out, p, 8), 2));
    expect_publish(&p[0], "b", 1, false);
    expect_publish(&p[1], "c", 2, false);
    cr_assert(eq(u32, mq_sess_queued(s), 1));
    cr_assert(eq(int, mq_sess_on_puback(s, p[0].packet_id), MQ_RC_SUCCESS));
    cr_assert(eq(sz, take(&out, p, 8), 1));
    expect_publish(&p[0], "d", 1, false);
}

Test(sess, with_queue_qos0_a_detached_session_keeps_qos0_in_order)
{
    lim.queue_qos0 = true; /* queue_qos0_messages true */
    open_sess(false);
    cr_assert(mq_sess_deliver(s, msg("a"), 0, false));
    cr_assert(mq_sess_deliver(s, msg("b"), 1, false));
    cr_assert(mq_sess_deliver(s, msg("c"), 0, false));
    cr_assert(eq(u64, home.stats.dropped, 0));
    cr_assert(eq(u32, mq_sess_queued(s), 3));
    mq_sess_attach(s, &out, &peer311);
    pkt_t p[8];
    cr_assert(eq(sz, take(&out, p, 8), 3));
    expect_publish(&p[0], "a", 0, false);
    expect_publish(&p[1], "b", 1, false);
    expect_publish(&p[2], "c", 0, false);
    cr_assert(eq(u32, mq_sess_queued(s), 0));
    cr_assert(eq(u32, refs(msgs[0]), 1)); /* written and let go */
}

static bool keep_not_x(void *arg, const mq_sess_t *ss, const mq_msg_t *m)
{
    (void)ss;
    ++*(int *)arg;
    mq_str_t t = mq_msg_topic(m);
    return !(t.len == 3 && memcmp(t.ptr, "t/x", 3) == 0);
}

Test(sess, filter_queue_drops_what_is_refused_and_keeps_the_order)
{
    open_sess(false); /* detached: every QoS 1 message queues */
    const char *names[] = {"a", "x", "b", "x", "c"};
    mq_msg_t *m[5];
    for (int i = 0; i < 5; i++)
        cr_assert(mq_sess_deliver(s, m[i] = msg(names[i]), 1, false));
    uint64_t bytes = mq_sess_queued_bytes(s);
    int calls = 0;
    cr_assert(eq(u32, mq_sess_filter_queue(s, keep_not_x, &calls), 2));
    cr_assert(eq(int, calls, 5));
    cr_assert(eq(u32, mq_sess_queued(s), 3));
    cr_assert(eq(u64, mq_sess_queued_bytes(s), bytes - 2));
    cr_assert(eq(u64, home.stats.dropped, 2));
    cr_assert(eq(u32, refs(m[1]), 1), "a dropped message's reference is released");
    mq_sess_attach(s, &out, &peer311);
    pkt_t p[8];
    cr_assert(eq(sz, take(&out, p, 8), 2));
    expect_publish(&p[0], "a", 1, false);
    expect_publish(&p[1], "b", 1, false);
    cr_assert(eq(int, mq_sess_on_puback(s, p[0].packet_id), MQ_RC_SUCCESS));
    cr_assert(eq(sz, take(&out, p, 8), 1));
    expect_publish(&p[0], "c", 1, false);
}

Test(sess, reattach_resends_inflight_with_dup_and_pending_pubrel)
{
    lim.max_inflight = 3;
    open_sess(true);
    cr_assert(mq_sess_deliver(s, msg("a"), 1, false));
    cr_assert(mq_sess_deliver(s, msg("b"), 2, true));
    cr_assert(mq_sess_deliver(s, msg("c"), 2, false));
    cr_assert(mq_sess_deliver(s, msg("d"), 1, false)); /* queued: window full */
    pkt_t p[8];
    cr_assert(eq(sz, take(&out, p, 8), 3));
    uint16_t ida = p[0].packet_id, idb = p[1].packet_id, idc = p[2].packet_id;
    cr_assert(eq(int, mq_sess_on_pubrec(s, idc), MQ_RC_SUCCESS));
    cr_assert(eq(sz, take(&out, p, 8), 1)); /* PUBREL c */

    mq_sess_detach(s);
    cr_assert(not(s->is_online));
    cr_assert(eq(ptr, s->out, NULL));
    cr_assert(mq_sess_deliver(s, msg("e"), 1, false));

    mq_buf_t out2;
    mq_buf_init(&out2);
    mq_sess_attach(s, &out2, &peer311);
    size_t n = take(&out2, p, 8);
    mq_buf_fini(&out2);
    cr_assert(eq(sz, n, 3));
    expect_publish(&p[0], "a", 1, true);
    cr_assert(eq(u16, p[0].packet_id, ida));
    expect_publish(&p[1], "b", 2, true);
    cr_assert(eq(u16, p[1].packet_id, idb));
    cr_assert(p[1].retain); /* re-sent as first sent */
    cr_assert(eq(u8, p[2].type, MQ_PUBREL));
    cr_assert(eq(u16, p[2].packet_id, idc));
    cr_assert(eq(u32, mq_sess_queued(s), 2)); /* d and e still wait for the window */
    mq_sess_detach(s);
}

Test(sess, pubrec_while_detached_moves_to_pubrel_sent_on_attach)
{
    open_sess(true);
    cr_assert(mq_sess_deliver(s, msg("a"), 2, false));
    pkt_t p[4];
    cr_assert(eq(sz, take(&out, p, 4), 1));
    uint16_t id = p[0].packet_id;
    mq_sess_detach(s);
    cr_assert(eq(int, mq_sess_on_pubrec(s, id), MQ_RC_SUCCESS));
    cr_assert(eq(sz, take(&out, p, 4), 0)); /* nothing written without a connection */
    mq_sess_attach(s, &out, &peer311);
    cr_assert(eq(sz, take(&out, p, 4), 1));
    cr_assert(eq(u8, p[0].type, MQ_PUBREL));
    cr_assert(eq(u16, p[0].packet_id, id));
}

Test(sess, restored_inflight_messages_are_resent_with_their_ids_and_new_ids_follow)
{
    lim.max_inflight = 4;
    open_sess(false); /* what persistence restores at start-up: a detached session */
    static const uint32_t ids[] = {7, 9};
    mq_sess_restore_inflight(s, msg("a"), 1, false, 300, MQ_OUT_PUBLISH, ids, 2, 0);
    mq_sess_restore_inflight(s, NULL, 2, false, 301, MQ_OUT_PUBREL, NULL, 0, 0);
    mq_sess_restore_inflight(s, msg("b"), 2, true, 302, MQ_OUT_PUBLISH, ids, 1, 0);
    cr_assert(eq(u8, s->inflight[0].n_sub_ids, 2));
    cr_assert(eq(u32, s->inflight[0].sub_ids[1], 9)); /* copied, freed with the entry */
    cr_assert(eq(u32, s->inflight[2].sub_id, 7));
    cr_assert(eq(u32, refs(msgs[0]), 2));              /* the session took its own reference */
    cr_assert(mq_sess_deliver(s, msg("c"), 1, false)); /* queued behind them */
    cr_assert(eq(u32, mq_sess_inflight(s), 3));

    mq_sess_attach(s, &out, &peer311);
    pkt_t p[8];
    cr_assert(eq(sz, take(&out, p, 8), 4));
    expect_publish(&p[0], "a", 1, true);
    cr_assert(eq(u16, p[0].packet_id, 300));
    cr_assert(eq(u8, p[1].type, MQ_PUBREL));
    cr_assert(eq(u16, p[1].packet_id, 301));
    expect_publish(&p[2], "b", 2, true);
    cr_assert(eq(u16, p[2].packet_id, 302));
    cr_assert(p[2].retain);
    expect_publish(&p[3], "c", 1, false);
    cr_assert(eq(u16, p[3].packet_id, 303)); /* after the restored ids */

    cr_assert(eq(int, mq_sess_on_pubcomp(s, 301), MQ_RC_SUCCESS));
    cr_assert(eq(int, mq_sess_on_puback(s, 300), MQ_RC_SUCCESS));
    cr_assert(eq(u32, refs(msgs[0]), 1));
    cr_assert(eq(u32, mq_sess_inflight(s), 2));
    mq_sess_detach(s);
}

Test(sess, free_releases_inflight_and_queued_references)
{
    lim.max_inflight = 1;
    open_sess(true);
    mq_msg_t *a = msg("a"), *b = msg("b"), *c = msg("c");
    cr_assert(mq_sess_deliver(s, a, 1, false));
    cr_assert(mq_sess_deliver(s, b, 2, false));
    cr_assert(mq_sess_deliver(s, c, 1, false));
    cr_assert(eq(u32, refs(a), 2));
    cr_assert(eq(u32, refs(b), 2));
    cr_assert(eq(u32, refs(c), 2));
    mq_sess_free(s);
    s = NULL;
    cr_assert(eq(u32, refs(a), 1));
    cr_assert(eq(u32, refs(b), 1));
    cr_assert(eq(u32, refs(c), 1));
}

/* ---- packet ids ------------------------------------------------------------------------- */

Test(sess, packet_ids_are_never_zero_and_wrap_to_one)
{
    lim.max_inflight = 1;
    open_sess(true);
    mq_msg_t *m = msg("a");
    pkt_t p[2];
    uint16_t prev = 0;
    for (uint32_t i = 0; i < 65535u + 3u; i++) {
        cr_assert(mq_sess_deliver(s, m, 1, false));
        cr_assert(eq(sz, take(&out, p, 2), 1));
        uint16_t id = p[0].packet_id;
        cr_assert(not(eq(u16, id, 0)));
        uint16_t want = prev == 65535 ? 1 : (uint16_t)(prev + 1);
        cr_assert(eq(u16, id, want), "message %u", i);
        cr_assert(eq(int, mq_sess_on_puback(s, id), MQ_RC_SUCCESS));
        prev = id;
    }
    cr_assert(eq(u16, prev, 3));
}

Test(sess, wrapped_packet_ids_skip_ids_still_in_flight)
{
    lim.max_inflight = 2;
    open_sess(true);
    pkt_t p[2];
    cr_assert(mq_sess_deliver(s, msg("held"), 1, false));
    cr_assert(eq(sz, take(&out, p, 2), 1));
    cr_assert(eq(u16, p[0].packet_id, 1)); /* never acknowledged */
    mq_msg_t *m = msg("a");
    for (uint32_t id = 2; id <= 65535; id++) {
        cr_assert(mq_sess_deliver(s, m, 1, false));
        cr_assert(eq(sz, take(&out, p, 2), 1));
        cr_assert(eq(u16, p[0].packet_id, (uint16_t)id));
        cr_assert(eq(int, mq_sess_on_puback(s, p[0].packet_id), MQ_RC_SUCCESS));
    }
    cr_assert(mq_sess_deliver(s, m, 1, false));
    cr_assert(eq(sz, take(&out, p, 2), 1));
    cr_assert(eq(u16, p[0].packet_id, 2));
}

/* ---- output back-pressure ----------------------------------------------------------------- */

Test(sess, output_above_high_water_queues_until_writable)
{
    lim.out_high_water = 10;
    open_sess(true);
    cr_assert(mq_sess_deliver(s, msg("0123456789"), 0, false)); /* written: output was empty */
    size_t first = out.len;
    cr_assert(ge(sz, first, 10));
    cr_assert(mq_sess_deliver(s, msg("b"), 0, false));
    cr_assert(mq_sess_deliver(s, msg("c"), 1, false));
    cr_assert(eq(sz, out.len, first)); /* nothing more written while congested */
    cr_assert(eq(u32, mq_sess_queued(s), 2));
    cr_assert(eq(u32, mq_sess_inflight(s), 0));

    mq_sess_on_writable(s); /* still congested: still nothing */
    cr_assert(eq(sz, out.len, first));

    pkt_t p[4];
    cr_assert(eq(sz, take(&out, p, 4), 1)); /* the worker flushed the output */
    mq_sess_on_writable(s);
    cr_assert(eq(sz, take(&out, p, 4), 2));
    expect_publish(&p[0], "b", 0, false);
    expect_publish(&p[1], "c", 1, false);
    cr_assert(eq(u32, mq_sess_queued(s), 0));
    cr_assert(eq(u32, mq_sess_inflight(s), 1));
}

/* ---- inbound QoS 2 ------------------------------------------------------------------------ */

Test(sess, inbound_qos2_id_is_duplicate_until_released)
{
    open_sess(true);
    cr_assert(mq_sess_qos2_received(s, 7));
    cr_assert(not(mq_sess_qos2_received(s, 7)));
    cr_assert(mq_sess_qos2_received(s, 8)); /* other ids are independent */
    mq_sess_qos2_released(s, 7);
    cr_assert(mq_sess_qos2_received(s, 7));
    cr_assert(not(mq_sess_qos2_received(s, 8)));
    mq_sess_qos2_released(s, 9); /* unknown: ignored */
    cr_assert(not(mq_sess_qos2_received(s, 7)));
}

Test(sess, inbound_qos2_tracks_many_ids)
{
    open_sess(false);
    for (uint16_t id = 1; id <= 100; id++)
        cr_assert(mq_sess_qos2_received(s, id));
    for (uint16_t id = 1; id <= 100; id++)
        cr_assert(not(mq_sess_qos2_received(s, id)), "id %u", id);
    for (uint16_t id = 1; id <= 100; id += 2)
        mq_sess_qos2_released(s, id);
    for (uint16_t id = 1; id <= 100; id++)
        cr_assert(eq(int, mq_sess_qos2_received(s, id), id % 2 == 1), "id %u", id);
}

/* ---- subscriptions ------------------------------------------------------------------------ */

Test(sess, subscriptions_are_added_found_replaced_and_removed)
{
    open_sess(false);
    char filter[] = "a/+";
    mq_sub_t *sub = mq_sess_add_sub(s, filter, 3, 11, 1);
    cr_assert(eq(u64, sub->fid, 11));
    filter[0] = 'z'; /* the session keeps its own copy */
    cr_assert(eq(ptr, mq_sess_find_sub(s, "z/+", 3), NULL));
    cr_assert(not(eq(ptr, mq_sess_add_sub(s, "b/#", 3, 12, 0), NULL)));
    cr_assert(not(eq(ptr, mq_sess_add_sub(s, "c", 1, 13, 2), NULL)));
    cr_assert(not(eq(ptr, mq_sess_add_sub(s, "c/d", 3, 14, 2), NULL)));
    cr_assert(eq(u32, s->n_subs, 4));

    sub = mq_sess_find_sub(s, "a/+", 3);
    cr_assert(not(eq(ptr, sub, NULL)));
    cr_assert(eq(str, (char *)mq_sub_filter(sub), "a/+"));
    cr_assert(eq(u8, sub->qos, 1));
    cr_assert(eq(ptr, mq_sess_find_sub(s, "a/", 2), NULL)); /* a prefix is not a match */
    cr_assert(eq(ptr, mq_sess_find_sub(s, "c/d/e", 5), NULL));

    /* re-subscribing replaces the granted QoS of the existing entry */
    sub = mq_sess_find_sub(s, "c", 1);
    cr_assert(eq(u64, sub->fid, 13));
    sub->qos = 0;
    cr_assert(eq(u8, mq_sess_find_sub(s, "c", 1)->qos, 0));

    mq_sess_remove_sub(s, mq_sess_find_sub(s, "a/+", 3));
    cr_assert(eq(u32, s->n_subs, 3));
    cr_assert(eq(ptr, mq_sess_find_sub(s, "a/+", 3), NULL));
    cr_assert(eq(u64, mq_sess_find_sub(s, "b/#", 3)->fid, 12));
    cr_assert(eq(u64, mq_sess_find_sub(s, "c", 1)->fid, 13));
    cr_assert(eq(u64, mq_sess_find_sub(s, "c/d", 3)->fid, 14));

    mq_sess_remove_sub(s, mq_sess_find_sub(s, "c/d", 3)); /* the last entry */
    cr_assert(eq(u32, s->n_subs, 2));
    cr_assert(eq(ptr, mq_sess_find_sub(s, "c/d", 3), NULL));
    cr_assert(eq(u64, mq_sess_find_sub(s, "c", 1)->fid, 13));
}

/* Filters up to 14 bytes are kept in the entry, longer ones apart; either kind keeps its grant
 * beside it, and both survive entries moving (removal moves the last into the hole; the array
 * grows by reallocation). LeakSanitizer checks the long ones are freed. */
Test(sess, short_and_long_filters_are_kept_whole)
{
    open_sess(false);
    static const char *const filters[] = {
        "a/b/c/d/e/f/gh", "a/b/c/d/e/f/ghi", "x", "", "devices/0123456789abcdef/commands/#",
        "0123456789abcd", "0123456789abcde"};
    enum { N = sizeof(filters) / sizeof(filters[0]) };
    for (unsigned i = 0; i < N; i++) {
        mq_sub_t *sub = mq_sess_add_sub(s, filters[i], strlen(filters[i]), 100 + i, 1);
        sub->grant = (uint8_t)(i % 3);
    }
    mq_sess_remove_sub(s, mq_sess_find_sub(s, "a/b/c/d/e/f/gh", 14)); /* the last moves here */
    mq_sess_remove_sub(s, mq_sess_find_sub(s, "a/b/c/d/e/f/ghi", 15));
    cr_assert(eq(u32, s->n_subs, N - 2));
    for (unsigned i = 2; i < N; i++) {
        mq_sub_t *sub = mq_sess_find_sub(s, filters[i], strlen(filters[i]));
        cr_assert(not(eq(ptr, sub, NULL)), "%s", filters[i]);
        cr_assert(eq(str, (char *)mq_sub_filter(sub), (char *)filters[i]));
        cr_assert(eq(u64, sub->fid, 100 + i));
        cr_assert(eq(u8, sub->grant, i % 3), "%s", filters[i]);
    }
}

/* ---- encoding ------------------------------------------------------------------------------ */

/* The packet id makes a QoS 1/2 PUBLISH 2 bytes longer than the shared QoS 0 encoding; where
 * that crosses a Variable Byte Integer boundary (127/128, 16383/16384) the header grows. */
Test(sess, publish_length_is_right_across_varint_boundaries)
{
    static char payload[16400];
    memset(payload, 'p', sizeof(payload));
    lim.max_inflight = 4;
    open_sess(true);
    const size_t sizes[] = {0,   1,     120,   121,   122,   123,   124,  125,
                            126, 16375, 16376, 16377, 16378, 16379, 16380};
    for (size_t i = 0; i < MQ_ARRAY_LEN(sizes); i++) {
        mq_msg_t *m = mq_msg_new("t/x", 3, payload, sizes[i], 0, false);
        cr_assert(not(eq(ptr, m, NULL)));
        for (uint8_t qos = 0; qos <= 2; qos++) {
            cr_assert(mq_sess_deliver(s, m, qos, false));
            mq_packet_t pkt;
            const char *why = "";
            enum mq_rc rc =
                mq_codec_decode(MQ_ROLE_CLIENT, MQ_PROTO_311, out.data, out.len, &pkt, &why);
            cr_assert(eq(int, rc, MQ_RC_SUCCESS), "payload %zu qos %u: %s", sizes[i], qos, why);
            cr_assert(eq(u8, pkt.type, MQ_PUBLISH));
            cr_assert(eq(u8, pkt.publish.qos, qos));
            cr_assert(eq(sz, pkt.publish.topic.len, 3));
            cr_assert(eq(sz, pkt.publish.payload.len, sizes[i]), "qos %u", qos);
            cr_assert(eq(sz, out.len, mq_msg_publish_size(m, qos)));
            if (qos == 1)
                cr_assert(eq(int, mq_sess_on_puback(s, pkt.publish.packet_id), MQ_RC_SUCCESS));
            if (qos == 2) {
                cr_assert(eq(int, mq_sess_on_pubrec(s, pkt.publish.packet_id), MQ_RC_SUCCESS));
                cr_assert(eq(int, mq_sess_on_pubcomp(s, pkt.publish.packet_id), MQ_RC_SUCCESS));
            }
            out.len = 0;
        }
        cr_assert(eq(u32, refs(m), 1));
        mq_msg_unref(m);
    }
}

Test(sess, qos0_is_not_held_behind_a_full_window)
{
    lim.max_inflight = 1;
    open_sess(true);
    cr_assert(mq_sess_deliver(s, msg("a"), 1, false));
    cr_assert(mq_sess_deliver(s, msg("b"), 0, false)); /* nothing queued: goes out now */
    pkt_t p[4];
    cr_assert(eq(sz, take(&out, p, 4), 2));
    expect_publish(&p[0], "a", 1, false);
    expect_publish(&p[1], "b", 0, false);
    cr_assert(eq(u32, mq_sess_queued(s), 0));
}

/* With upgrade_outgoing_qos a QoS 0 message of the largest size may be delivered at QoS 1/2;
 * its packet id would push the remaining length past what a Variable Byte Integer can hold
 * (and write a fifth length byte past the reserved space). It is dropped and counted. */
Test(sess, message_too_large_for_a_packet_id_is_dropped_at_qos1_and_qos2)
{
    size_t payload_len = MQ_CODEC_MAX_REMAINING - 2 - 3; /* remaining length at the maximum */
    char *payload = calloc(1, payload_len);              /* untouched zero pages: cheap */
    cr_assert(not(eq(ptr, payload, NULL)));
    mq_msg_t *m = mq_msg_new("t/x", 3, payload, payload_len, 0, false);
    free(payload);
    cr_assert(not(eq(ptr, m, NULL)));
    cr_assert(lt(sz, n_msgs, MAX_MSGS));
    msgs[n_msgs++] = m;

    open_sess(true);
    cr_assert(not(mq_sess_deliver(s, m, 1, false)));
    cr_assert(not(mq_sess_deliver(s, m, 2, false)));
    cr_assert(eq(u64, home.stats.dropped, 2));
    cr_assert(eq(sz, out.len, 0));
    cr_assert(eq(u32, mq_sess_inflight(s), 0));
    mq_sess_detach(s); /* nor is it queued for later */
    cr_assert(not(mq_sess_deliver(s, m, 1, false)));
    cr_assert(eq(u32, mq_sess_queued(s), 0));
    cr_assert(eq(u32, refs(m), 1));
}

/* A Topic Alias goes with a message only when the packet, alias included, stays within the
 * client's Maximum Packet Size [MQTT-3.1.2-25]; an alias already sent still saves the topic. */
Test(sess, a_topic_alias_never_takes_a_packet_over_the_maximum_packet_size)
{
    mq_msg_t *m = mq_msg_new("t/topic", 7, "x", 1, 0, false);
    msgs[n_msgs++] = m;
    /* v5 QoS 0: 1 + 1 (length) + 2 + 7 (topic) + 1 (no properties) + 1 (payload) = 13 */
    mq_sess_peer_t tight = {.proto = MQ_PROTO_5, .max_packet = 13, .alias_max = 10};
    s = mq_sess_new("client-1", 8, 42, false, &home);
    mq_sess_attach(s, &out, &tight);
    cr_assert(mq_sess_deliver(s, m, 0, false));
    cr_assert(eq(sz, out.len, 13), "no room for the alias's 3 bytes");
    mq_sess_detach(s);
    mq_sess_free(s);
    out.len = 0;

    mq_sess_peer_t room = {.proto = MQ_PROTO_5, .max_packet = 16, .alias_max = 10};
    s = mq_sess_new("client-1", 8, 42, false, &home);
    mq_sess_attach(s, &out, &room);
    cr_assert(mq_sess_deliver(s, m, 0, false));
    cr_assert(eq(sz, out.len, 16), "the topic and its new alias");
    cr_assert(mq_sess_deliver(s, m, 0, false));
    cr_assert(eq(sz, out.len, 16 + 9), "the alias alone: 1 + 1 + 2 + 1 + 3 + 1");
    cr_assert(eq(u64, home.stats.too_large, 0));
}

/* ---- a listener's mount point ------------------------------------------------------------ */

/* Decodes the one packet in 'out' as a client of 'proto' would, and empties 'out'. */
static mq_packet_t only_packet(uint8_t proto)
{
    mq_packet_t pkt;
    const char *why = "";
    cr_assert(eq(int, mq_codec_decode(MQ_ROLE_CLIENT, proto, out.data, out.len, &pkt, &why),
                 MQ_RC_SUCCESS),
              "%s", why);
    return pkt;
}

Test(sess, behind_a_mount_point_topics_go_out_without_it_and_others_not_at_all)
{
    static const mq_str_t mounts[] = {{"site1/", 6}};
    home.mounts = mounts;
    static char payload[200];
    memset(payload, 'p', sizeof(payload));
    mq_msg_t *in = mq_msg_new("site1/a/b", 9, payload, sizeof(payload), 1, false);
    mq_msg_t *bare = mq_msg_new("site1/", 6, "x", 1, 0, false); /* nothing behind it */
    mq_msg_t *out_of = mq_msg_new("site2/a", 7, "x", 1, 0, false);
    msgs[n_msgs++] = in;
    msgs[n_msgs++] = bare;
    msgs[n_msgs++] = out_of;
    lim.max_inflight = 8;
    static const uint8_t protos[] = {MQ_PROTO_311, MQ_PROTO_5};
    for (size_t pi = 0; pi < MQ_ARRAY_LEN(protos); pi++) {
        uint8_t proto = protos[pi];
        mq_sess_peer_t peer = {.proto = proto, .mount = 1};
        s = mq_sess_new("client-1", 8, 42, false, &home);
        mq_sess_attach(s, &out, &peer);
        for (uint8_t qos = 0; qos <= 2; qos++) {
            cr_assert(mq_sess_deliver(s, in, qos, true));
            mq_packet_t pkt = only_packet(proto);
            cr_assert(eq(u8, pkt.type, MQ_PUBLISH));
            cr_assert(eq(sz, pkt.publish.topic.len, 3), "proto %u qos %u", proto, qos);
            cr_assert(eq(int, memcmp(pkt.publish.topic.ptr, "a/b", 3), 0));
            cr_assert(eq(sz, pkt.publish.payload.len, sizeof(payload)));
            cr_assert(eq(u8, pkt.publish.qos, qos));
            cr_assert(pkt.publish.retain);
            out.len = 0;
        }
        cr_assert(not(mq_sess_deliver(s, bare, 0, false)), "no topic is left to send");
        cr_assert(not(mq_sess_deliver(s, out_of, 0, false)), "not behind the mount point");
        cr_assert(eq(sz, out.len, 0));
        mq_sess_detach(s);
        mq_sess_free(s);
        s = NULL;
    }
    /* a session on a listener without one sees the whole topic */
    s = mq_sess_new("client-1", 8, 42, false, &home);
    mq_sess_attach(s, &out, &peer311);
    cr_assert(mq_sess_deliver(s, in, 0, false));
    mq_packet_t pkt = only_packet(MQ_PROTO_311);
    cr_assert(eq(sz, pkt.publish.topic.len, 9));
    out.len = 0;
}

Test(sess, what_waits_for_a_session_is_sent_only_if_its_next_connection_can_name_it)
{
    static const mq_str_t mounts[] = {{"m/", 2}};
    home.mounts = mounts;
    lim.max_queued = 10;
    mq_msg_t *in = mq_msg_new("m/in", 4, "i", 1, 1, false);
    mq_msg_t *out_of = mq_msg_new("x/out", 5, "o", 1, 1, false);
    msgs[n_msgs++] = in;
    msgs[n_msgs++] = out_of;
    /* in flight through a connection without a mount point, then queued while offline */
    s = mq_sess_new("client-1", 8, 42, false, &home);
    mq_sess_attach(s, &out, &peer311);
    cr_assert(mq_sess_deliver(s, out_of, 1, false));
    out.len = 0;
    mq_sess_detach(s);
    cr_assert(mq_sess_deliver(s, in, 1, false));
    cr_assert(mq_sess_deliver(s, out_of, 1, false));
    /* the next connection is behind "m/": only what has a name there goes out, without it */
    mq_sess_peer_t mounted = {.proto = MQ_PROTO_311, .mount = 1};
    mq_sess_attach(s, &out, &mounted);
    pkt_t p[4];
    cr_assert(eq(sz, take(&out, p, 4), 1));
    cr_assert_str_eq(p[0].topic, "in");
    cr_assert(eq(u32, s->n_inflight, 1), "the others are not held in flight");
    cr_assert(eq(u32, mq_sess_queued(s), 0));
}

Test(sess, behind_a_mount_point_a_topic_alias_names_the_topic_without_it)
{
    static const mq_str_t mounts[] = {{"m/", 2}};
    home.mounts = mounts;
    mq_msg_t *m = mq_msg_new("m/topic", 7, "x", 1, 0, false);
    msgs[n_msgs++] = m;
    mq_sess_peer_t peer = {.proto = MQ_PROTO_5, .mount = 1, .alias_max = 10};
    s = mq_sess_new("client-1", 8, 42, false, &home);
    mq_sess_attach(s, &out, &peer);
    cr_assert(mq_sess_deliver(s, m, 0, false));
    /* 1 + 1 + 2 + 5 ("topic") + 1 + 3 (the alias) + 1 (payload) */
    cr_assert(eq(sz, out.len, 14));
    mq_packet_t pkt = only_packet(MQ_PROTO_5);
    cr_assert(eq(sz, pkt.publish.topic.len, 5));
    cr_assert(eq(u16, pkt.props.topic_alias, 1));
    out.len = 0;
    cr_assert(mq_sess_deliver(s, m, 0, false));
    cr_assert(eq(sz, out.len, 9), "the alias alone");
}

/* give(): takes every message whose payload is not "keep", noting the payloads offered. */
static bool take_payload(void *arg, mq_msg_t *m)
{
    char *names = arg;
    mq_str_t v = mq_msg_payload(m);
    strncat(names, v.ptr, v.len);
    return !(v.len == 4 && memcmp(v.ptr, "keep", 4) == 0);
}

Test(sess, give_shared_offers_what_a_shared_group_gave_and_was_not_acknowledged)
{
    lim.max_inflight = 2;
    open_sess(true);
    cr_assert(mq_sess_deliver_shared(s, msg("a"), 1, false, NULL, 0));    /* in flight */
    cr_assert(mq_sess_deliver(s, msg("p"), 1, false));                    /* in flight, plain */
    cr_assert(mq_sess_deliver_shared(s, msg("b"), 1, false, NULL, 0));    /* queued */
    cr_assert(mq_sess_deliver(s, msg("q"), 1, false));                    /* queued, plain */
    cr_assert(mq_sess_deliver_shared(s, msg("keep"), 1, false, NULL, 0)); /* queued, not taken */
    cr_assert(mq_sess_deliver_shared(s, msg("c"), 1, false, NULL, 0));    /* queued */
    pkt_t p[8];
    cr_assert(eq(sz, take(&out, p, 8), 2));
    char names[16] = "";
    cr_assert(eq(u32, mq_sess_give_shared(s, take_payload, names), 3));
    cr_assert(eq(str, names, "abkeepc"));
    /* the one in flight stays for the client, given once; the queued ones taken are gone */
    cr_assert(eq(u32, mq_sess_inflight(s), 2));
    cr_assert(eq(u32, mq_sess_queued(s), 2)); /* q and keep, in order */
    names[0] = '\0';
    cr_assert(eq(u32, mq_sess_give_shared(s, take_payload, names), 0));
    cr_assert(eq(str, names, "keep"));
    cr_assert(eq(int, mq_sess_on_puback(s, p[1].packet_id), MQ_RC_SUCCESS));
    cr_assert(eq(sz, take(&out, p, 8), 1));
    expect_publish(&p[0], "q", 1, false);
}

Test(sess, give_shared_leaves_qos2_in_flight_to_its_client)
{
    lim.max_inflight = 2;
    open_sess(true);
    cr_assert(mq_sess_deliver_shared(s, msg("two"), 2, false, NULL, 0));   /* in flight */
    cr_assert(mq_sess_deliver_shared(s, msg("one"), 1, false, NULL, 0));   /* in flight */
    cr_assert(mq_sess_deliver_shared(s, msg("later"), 2, false, NULL, 0)); /* queued */
    char names[16] = "";
    cr_assert(eq(u32, mq_sess_give_shared(s, take_payload, names), 2));
    cr_assert(eq(str, names, "onelater"), "[MQTT-4.8.2-4]: a QoS 2 delivery begun is finished "
                                          "with its client; queued QoS 2 may go elsewhere");
}

/* ---- persistence: what a persistent session reports to the journal ------------------------ */

typedef struct jev {
    char kind; /* 'P'ut, 'U'pdate, 'D'el */
    uint64_t mid;
    uint16_t packet_id;
    uint8_t state;
} jev_t;

static jev_t jevs[32];
static int n_jevs;

static void jput(void *arg, const mq_sess_t *ss, const mq_outmsg_t *o)
{
    (void)arg, (void)ss;
    jevs[n_jevs++] = (jev_t){'P', o->mid, o->packet_id, o->state};
}

static void jupdate(void *arg, const mq_sess_t *ss, const mq_outmsg_t *o)
{
    (void)arg, (void)ss;
    jevs[n_jevs++] = (jev_t){'U', o->mid, o->packet_id, o->state};
}

static void jdel(void *arg, const mq_sess_t *ss, uint64_t mid)
{
    (void)arg, (void)ss;
    jevs[n_jevs++] = (jev_t){'D', mid, 0, 0};
}

static const mq_sess_journal_t journal = {.put = jput, .update = jupdate, .del = jdel};

Test(sess, a_persistent_sessions_messages_are_reported_as_they_change)
{
    n_jevs = 0;
    home.journal = &journal;
    lim.max_inflight = 1;
    open_sess(false); /* offline: both are queued */
    cr_assert(mq_sess_deliver(s, msg("a"), 1, false));
    cr_assert(mq_sess_deliver(s, msg("b"), 2, false));
    cr_assert_eq(n_jevs, 2);
    cr_assert(jevs[0].kind == 'P' && jevs[0].packet_id == 0 && jevs[0].mid != 0);
    cr_assert(jevs[1].kind == 'P' && jevs[1].mid > jevs[0].mid, "mids rise in delivery order");
    uint64_t a = jevs[0].mid, b = jevs[1].mid;
    mq_sess_attach(s, &out, &peer311); /* 'a' goes in flight with a packet id */
    cr_assert_eq(n_jevs, 3);
    cr_assert(jevs[2].kind == 'U' && jevs[2].mid == a && jevs[2].packet_id != 0);
    cr_assert_eq(mq_sess_on_puback(s, jevs[2].packet_id), MQ_RC_SUCCESS);
    /* 'a' is gone, 'b' takes the window */
    cr_assert(jevs[3].kind == 'D' && jevs[3].mid == a);
    cr_assert(jevs[4].kind == 'U' && jevs[4].mid == b && jevs[4].state == MQ_OUT_PUBLISH);
    uint16_t pid = jevs[4].packet_id;
    cr_assert_eq(mq_sess_on_pubrec(s, pid), MQ_RC_SUCCESS);
    cr_assert(jevs[5].kind == 'U' && jevs[5].mid == b && jevs[5].state == MQ_OUT_PUBREL);
    cr_assert_eq(mq_sess_on_pubcomp(s, pid), MQ_RC_SUCCESS);
    cr_assert(jevs[6].kind == 'D' && jevs[6].mid == b);
    cr_assert_eq(n_jevs, 7);
    /* online with room: put straight in flight, its packet id in the first record */
    cr_assert(mq_sess_deliver(s, msg("c"), 1, false));
    cr_assert(jevs[7].kind == 'P' && jevs[7].packet_id != 0 && jevs[7].mid > b);
}

Test(sess, a_clean_session_reports_nothing)
{
    n_jevs = 0;
    home.journal = &journal;
    s = mq_sess_new("clean-1", 7, 43, true, &home);
    cr_assert(mq_sess_deliver(s, msg("a"), 1, false));
    mq_sess_attach(s, &out, &peer311);
    cr_assert_eq(n_jevs, 0);
}
