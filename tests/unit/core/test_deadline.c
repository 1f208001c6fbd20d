/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_deadline.c - connect timeout and keep-alive, on an injected clock. */
#include <criterion/criterion.h>

#include "core/deadline.h"

#define T0 1000000ull /* an arbitrary clock reading: the clock's origin must not matter */

Test(deadline, a_connection_without_connect_expires_after_the_connect_timeout)
{
    cr_expect_eq(mq_deadline_check(false, T0, T0, 0, 10, T0 + 10000), MQ_DEADLINE_NONE,
                 "exactly the timeout is still in time");
    cr_expect_eq(mq_deadline_check(false, T0, T0, 0, 10, T0 + 10001), MQ_DEADLINE_CONNECT);
    cr_expect_eq(mq_deadline_check(false, T0, T0 + 9000, 60, 10, T0 + 10001), MQ_DEADLINE_CONNECT,
                 "bytes before CONNECT do not extend it");
}

Test(deadline, keep_alive_allows_one_and_a_half_times_the_interval)
{
    uint64_t last = T0 + 5000;
    cr_expect_eq(mq_deadline_check(true, T0, last, 60, 10, last + 90000), MQ_DEADLINE_NONE);
    cr_expect_eq(mq_deadline_check(true, T0, last, 60, 10, last + 90001), MQ_DEADLINE_KEEPALIVE);
    cr_expect_eq(mq_deadline_check(true, T0, last, 1, 10, last + 1500), MQ_DEADLINE_NONE);
    cr_expect_eq(mq_deadline_check(true, T0, last, 1, 10, last + 1501), MQ_DEADLINE_KEEPALIVE);
    cr_expect_eq(mq_deadline_check(true, T0, last, 65535, 10, last + 65535ull * 1500),
                 MQ_DEADLINE_NONE, "the largest keep alive does not overflow");
}

Test(deadline, keep_alive_zero_never_expires_and_connected_clients_skip_the_connect_timeout)
{
    cr_expect_eq(mq_deadline_check(true, T0, T0, 0, 10, T0 + 86400000ull), MQ_DEADLINE_NONE);
    cr_expect_eq(mq_deadline_check(true, T0, T0 + 100000, 60, 10, T0 + 100000), MQ_DEADLINE_NONE);
}

Test(deadline, a_clock_reading_before_the_stamps_expires_nothing)
{
    cr_expect_eq(mq_deadline_check(false, T0, T0, 0, 10, T0 - 50000), MQ_DEADLINE_NONE);
    cr_expect_eq(mq_deadline_check(true, T0, T0 + 5000, 1, 10, T0), MQ_DEADLINE_NONE);
}
