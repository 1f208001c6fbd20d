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
    memset(&loop, 0, sizeof(loop));
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.loop = b.loop = &loop;
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

/* The mark worker 'w' got, as {sender, turn}; false when none. */
static bool mark_to(int w, uint64_t *sender, uint64_t *turn)
{
    mq_mail_t m;
    mq_mailbox_begin_drain(&boxes[w]);
    if (!mq_mailbox_take(&boxes[w], &m))
        return false;
    cr_assert_eq(m.type, MQ_MAIL_MARK);
    *sender = m.a[0];
    *turn = m.a[1];
    return true;
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
