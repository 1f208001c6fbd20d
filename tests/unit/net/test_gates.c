/* SPDX-License-Identifier: MIT */
/* tests/unit/net/test_gates.c - durability gates (net/conn.h): a connection's output waits for
 * every journal write that holds records it answers. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/mem.h"
#include "net/conn.h"

static int closings;

static void on_closing(void *arg, mq_conn_t *c, const char *why)
{
    (void)arg, (void)c, (void)why;
    closings++;
}

static mq_conn_handler_t h = {.on_closing = on_closing};
static mq_conn_loop_t loop;
static mq_conn_t a, b;

static void setup(void)
{
    memset(&loop, 0, sizeof(loop));
    loop.h = &h;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.loop = b.loop = &loop;
    a.fd = b.fd = -1;
    closings = 0;
}

static void teardown(void)
{
    mq_free(loop.gate_open);
    mq_free(loop.gate_sealed);
}

TestSuite(gates, .init = setup, .fini = teardown);

static bool dirty(const mq_conn_t *c)
{
    for (const mq_conn_t *d = loop.dirty; d; d = d->next_dirty)
        if (d == c)
            return true;
    return false;
}

Test(gates, a_write_releases_the_connections_gated_before_it_was_submitted)
{
    mq_conn_gate(&a);
    mq_conn_gate(&a); /* twice in one turn: one entry */
    cr_assert_eq(loop.n_gate_open, 1);
    cr_assert_eq(a.n_ops, 1);
    mq_conn_gates_seal(&loop); /* the write is submitted */
    mq_conn_gate(&b);          /* a later turn, while it is in flight */
    mq_conn_gates_release(&loop, true);
    cr_assert(!a.gated && a.n_ops == 0 && dirty(&a));
    cr_assert(b.gated && b.n_ops == 1 && !dirty(&b), "b waits for the next write");
}

Test(gates, gated_again_while_a_write_is_in_flight_waits_for_the_next_one_too)
{
    mq_conn_gate(&a);
    mq_conn_gates_seal(&loop);
    mq_conn_gate(&a); /* another acknowledgement, its record in the next write */
    cr_assert_eq(a.n_ops, 2);
    mq_conn_gates_release(&loop, true);
    cr_assert(a.gated, "released with the first write: its second answer is not durable");
    cr_assert_eq(a.n_ops, 1);
    cr_assert(!dirty(&a));
    mq_conn_gates_seal(&loop);
    mq_conn_gates_release(&loop, true);
    cr_assert(!a.gated && a.n_ops == 0 && dirty(&a));
}

Test(gates, a_failed_write_closes_every_gated_connection_without_its_output)
{
    mq_buf_append(&a.out, "ack", 3);
    mq_conn_gate(&a);
    mq_conn_gates_seal(&loop);
    mq_conn_gate(&a);
    mq_conn_gate(&b);
    mq_conn_gates_release(&loop, false);
    cr_assert(!a.gated && !b.gated);
    cr_assert(a.n_ops == 0 && b.n_ops == 0);
    cr_assert_eq(a.out.len, 0, "an acknowledgement of what is not durable must not go");
    cr_assert_eq(a.state, MQ_CONN_CLOSING);
    cr_assert_eq(b.state, MQ_CONN_CLOSING);
    cr_assert_eq(closings, 2);
    cr_assert_eq(loop.n_gate_open + loop.n_gate_sealed, 0);
    mq_buf_fini(&a.out);
}
