/* SPDX-License-Identifier: MIT */
/* tests/unit/net/test_mailbox.c - inboxes, ordered spill lists, the outbox's congestion. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#include "net/mailbox.h"

static mq_mailbox_t box;
static int dropped;

static void drop(mq_mail_t *m)
{
    (void)m;
    dropped++;
}

static void setup(void)
{
    dropped = 0;
    mq_mailbox_init(&box, 4);
}

static void teardown(void)
{
    mq_mailbox_fini(&box, drop);
}

TestSuite(mailbox, .init = setup, .fini = teardown);

static mq_mail_t mail(uint32_t n)
{
    return (mq_mail_t){.type = MQ_MAIL_DELIVER, .n = n};
}

Test(mailbox, a_full_inbox_spills_and_order_is_kept_behind_the_spill)
{
    mq_mail_spill_t spill = {0};
    for (uint32_t i = 0; i < 6; i++) {
        mq_mail_t m = mail(i);
        mq_mailbox_send(&box, &spill, &m);
    }
    cr_assert(eq(u32, spill.len, 2));
    mq_mail_t got;
    cr_assert(mq_mailbox_take(&box, &got));
    cr_assert(eq(u32, got.n, 0));
    /* room now, but a new entry must wait behind the spilled ones */
    mq_mail_t m = mail(6);
    mq_mailbox_send(&box, &spill, &m);
    cr_assert(eq(u32, spill.len, 3));
    for (uint32_t want = 1; want <= 6; want++) {
        if (!mq_mailbox_take(&box, &got)) {
            cr_assert(gt(u32, mq_mailbox_retry(&box, &spill), 0));
            cr_assert(mq_mailbox_take(&box, &got));
        }
        cr_assert(eq(u32, got.n, want));
    }
    cr_assert(eq(u32, spill.len, 0));
    mq_mail_spill_fini(&spill, drop);
}

Test(mailbox, what_is_left_at_shutdown_is_dropped_through_the_callback)
{
    mq_mail_spill_t spill = {0};
    for (uint32_t i = 0; i < 7; i++) {
        mq_mail_t m = mail(i);
        mq_mailbox_send(&box, &spill, &m);
    }
    mq_mail_spill_fini(&spill, drop);
    cr_assert(eq(int, dropped, 3));
    mq_mailbox_fini(&box, drop);
    cr_assert(eq(int, dropped, 7));
}

Test(mailbox, the_outbox_reports_congestion_with_hysteresis)
{
    mq_mailbox_t *to[2] = {&box, &box};
    mq_outbox_t ob;
    mq_outbox_init(&ob, to, 2, 0);
    mq_mail_t m = mail(1);
    for (uint32_t i = 0; i < MQ_OUTBOX_HIGH + 10; i++)
        mq_outbox_send(&ob, 1, &m);
    cr_assert(ob.congested);
    cr_assert(eq(u64, ob.wake_mask, 2));
    /* the consumer drains; the spill list shrinks only as the inbox takes it */
    mq_mail_t got;
    while (ob.spill[1].len > MQ_OUTBOX_LOW + 8) { /* 4 move per retry */
        while (mq_mailbox_take(&box, &got))
            ;
        mq_outbox_retry(&ob);
    }
    cr_assert(ob.congested, "still above the low mark: no flapping");
    while (ob.spill[1].len > 0) {
        while (mq_mailbox_take(&box, &got))
            ;
        mq_outbox_retry(&ob);
    }
    cr_assert(not(ob.congested));
    mq_outbox_fini(&ob, drop);
}
