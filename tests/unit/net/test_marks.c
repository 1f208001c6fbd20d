/* SPDX-License-Identifier: MIT */
/* tests/unit/net/test_marks.c - durability marks (net/marks.h): an acknowledgement waits until
 * every worker it mailed has answered its turn, in turn order. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/mem.h"
#include "net/marks.h"

#define NW 4

static mq_mailbox_t boxes[NW];
static mq_mailbox_t *to[NW];
static mq_outbox_t ob;
static mq_proto_t *p;
static mq_conn_loop_t loop;
static mq_conn_t a, b;
static const char *closed_why;

static void on_closing(void *arg, mq_conn_t *c, const char *why)
{
    (void)arg;
    (void)c;
    closed_why = why;
}

static mq_conn_handler_t handler = {.on_closing = on_closing};

static void setup(void)
{
    for (int i = 0; i < NW; i++) {
        mq_mailbox_init(&boxes[i], 64);
        to[i] = &boxes[i];
    }
    mq_outbox_init(&ob, to, NW, 0);
    p = mq_calloc(1, sizeof(*p));
    p->env.self = 0;
    p->env.n_workers = NW;
    p->env.outbox = &ob;
    p->marks.durable = mq_calloc(NW, sizeof(uint64_t));
    p->marks.refused = mq_calloc(NW, sizeof(bool));
    memset(&loop, 0, sizeof(loop));
    loop.h = &handler;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.loop = b.loop = &loop;
    a.fd = b.fd = -1;
    closed_why = NULL;
}

static void drop(mq_mail_t *m)
{
    (void)m;
}

static void teardown(void)
{
    mq_marks_fini(p);
    mq_free(p);
    mq_outbox_fini(&ob, drop);
    for (int i = 0; i < NW; i++)
        mq_mailbox_fini(&boxes[i], drop);
}

TestSuite(marks, .init = setup, .fini = teardown);

/* The next mail of 'type' worker 'w' got, as {sender, turn}; false when none. */
static bool mail_at(int w, uint32_t type, uint64_t *sender, uint64_t *turn)
{
    mq_mail_t m;
    mq_mailbox_begin_drain(&boxes[w]);
    if (!mq_mailbox_take(&boxes[w], &m))
        return false;
    cr_assert_eq(m.type, type);
    *sender = m.a[0];
    *turn = m.a[1];
    return true;
}

/* The mark worker 'w' got (MQ_MAIL_MARK). */
static bool mark_to(int w, uint64_t *sender, uint64_t *turn)
{
    return mail_at(w, MQ_MAIL_MARK, sender, turn);
}

Test(marks, an_acknowledgement_waits_for_every_worker_it_mailed)
{
    mq_marks_gate(p, &a, (1u << 0) | (1u << 1) | (1u << 2)); /* itself left out */
    cr_assert(a.gate_remote && a.n_ops == 1);
    mq_marks_send(p); /* end of turn 0 */
    uint64_t from, t;
    cr_assert(mark_to(1, &from, &t) && from == 0 && t == 0);
    cr_assert(mark_to(2, &from, &t) && from == 0 && t == 0);
    cr_assert(!mark_to(3, &from, &t), "worker 3 was not mailed");
    cr_assert(!mark_to(0, &from, &t), "no mark to itself");
    mq_marks_on_durable(p, 1, 0);
    cr_assert(a.gate_remote, "worker 2 has not answered");
    mq_marks_on_durable(p, 2, 0);
    cr_assert(!a.gate_remote && a.n_ops == 0 && a.in_dirty);
}

Test(marks, turns_are_released_in_order_and_a_connection_waits_for_its_last)
{
    mq_marks_gate(p, &a, 1u << 1);
    mq_marks_send(p); /* turn 0: a */
    mq_marks_gate(p, &a, 1u << 2);
    mq_marks_gate(p, &b, 1u << 2);
    mq_marks_send(p); /* turn 1: a again, b */
    cr_assert_eq(a.n_ops, 2);
    mq_marks_on_durable(p, 2, 1); /* turn 1's worker answers first */
    cr_assert(a.gate_remote && b.gate_remote, "turn 1 goes only after turn 0");
    mq_marks_on_durable(p, 1, 0);
    cr_assert(!a.gate_remote && !b.gate_remote);
    cr_assert(a.n_ops == 0 && b.n_ops == 0);
}

Test(marks, a_connection_gated_again_waits_for_the_later_turn)
{
    mq_marks_gate(p, &a, 1u << 1);
    mq_marks_send(p);
    mq_marks_gate(p, &a, 1u << 1);
    mq_marks_on_durable(p, 1, 0); /* turn 0 answered; turn 1's mark not even sent */
    cr_assert(a.gate_remote && a.n_ops == 1);
    mq_marks_send(p);
    mq_marks_on_durable(p, 1, 1);
    cr_assert(!a.gate_remote && a.n_ops == 0);
}

Test(marks, nothing_is_gated_when_only_this_worker_was_reached)
{
    mq_marks_gate(p, &a, 1u << 0);
    cr_assert(!a.gate_remote && a.n_ops == 0);
    mq_marks_send(p);
    uint64_t from, t;
    for (int w = 0; w < NW; w++)
        cr_assert(!mark_to(w, &from, &t));
}

Test(marks, copies_a_broken_journal_refused_fail_the_marks_of_their_publisher)
{
    /* as worker 0, answering worker 2's mark for its turn 5: a copy worker 2 mailed made this
     * journal refuse a record */
    mq_msg_t msg = {.origin = 6, .qos = 1};
    p->marks.refused[2] = false;
    mq_marks_check_refused(p, &msg, 2, 0); /* no journal: nothing refused */
    cr_assert(!p->marks.refused[2]);
    p->marks.refused[2] = true; /* as mq_marks_check_refused sets it when a count moved */
    mq_marks_on_mark(p, 2, 5);
    uint64_t from, t;
    cr_assert(mail_at(2, MQ_MAIL_DURABLE, &from, &t) && from == 0,
              "answered at once, without the journal");
    cr_assert(t >> 63, "the answer says the copies were refused");
    cr_assert(!p->marks.refused[2], "said once");
    mq_marks_on_mark(p, 2, 6);
    cr_assert(mail_at(2, MQ_MAIL_DURABLE, &from, &t) && t == 6,
              "the next mark is answered as usual");

    /* as the publisher: the connections its turns gated for worker 1 are closed unanswered */
    a.out.len = 7; /* the PUBACK, held */
    mq_marks_gate(p, &a, 1u << 1);
    mq_marks_send(p); /* turn 0 */
    mq_marks_gate(p, &b, 1u << 2);
    mq_marks_send(p); /* turn 1: another worker's */
    mq_marks_on_durable(p, 1, 0 | 1ull << 63);
    cr_assert(!a.gate_remote && a.state == MQ_CONN_CLOSING && a.out.len == 0,
              "closed without its acknowledgement");
    cr_assert_not_null(closed_why);
    cr_assert(b.gate_remote && b.state != MQ_CONN_CLOSING, "turn 1 did not wait for worker 1");
    mq_marks_on_durable(p, 2, 1);
    cr_assert(!b.gate_remote && b.state != MQ_CONN_CLOSING, "released as usual");
}

Test(marks, a_turn_that_mailed_copies_marks_without_a_gated_connection)
{
    /* a QoS 1/2 copy mailed with nothing gated (the publisher closed, a shared hand-on):
     * the mark still goes, so that the receiver's answer is about this turn */
    p->marks.mailed = 1u << 3;
    mq_marks_send(p);
    uint64_t from, t;
    cr_assert(mark_to(3, &from, &t) && from == 0 && t == 0);
    mq_marks_gate(p, &a, 1u << 3); /* the next turn's batch */
    mq_marks_send(p);
    cr_assert(mark_to(3, &from, &t) && t == 1);
    mq_marks_on_durable(p, 3, 0 | 1ull << 63); /* turn 0 failed: it gated nothing */
    cr_assert(a.gate_remote && a.state != MQ_CONN_CLOSING, "turn 1 is not turn 0");
    mq_marks_on_durable(p, 3, 1);
    cr_assert(!a.gate_remote && a.state != MQ_CONN_CLOSING);
}

Test(marks, a_failed_answer_does_not_release_an_earlier_turn_still_waiting)
{
    /* worker 1's write for turn 0 failed and is retried (its answer waits); then copies of
     * turn 1 are refused and turn 1 is answered at once as failed: turn 0 is not durable
     * either, so it must not be released by that answer */
    mq_marks_gate(p, &a, 1u << 1);
    mq_marks_send(p); /* turn 0 */
    mq_marks_gate(p, &b, 1u << 1);
    mq_marks_send(p); /* turn 1 */
    mq_marks_on_durable(p, 1, 1 | 1ull << 63);
    cr_assert(a.state == MQ_CONN_CLOSING && a.out.len == 0, "turn 0 closed, not released");
    cr_assert(b.state == MQ_CONN_CLOSING);
    mq_marks_on_durable(p, 1, 0); /* the late answer for turn 0 changes nothing */
    cr_assert(a.n_ops == 0 && b.n_ops == 0);
}
