/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_mpsc.c - MPSC queue: order, capacity, depth, in-place slots, concurrent
 * producers. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "core/mpsc.h"

#define INLINE 5

/* A 64-byte entry, as the workers' mail (net/mailbox.h). */
typedef struct entry {
    uint32_t type;
    uint32_t n;
    void *ptr;
    uint64_t a[INLINE];
} entry_t;

static mq_mpsc_t *r;

static void teardown(void)
{
    mq_mpsc_free(r);
}

TestSuite(mpsc, .fini = teardown);

static entry_t entry(uint64_t v)
{
    entry_t e;
    memset(&e, 0, sizeof(e));
    e.type = (uint32_t)v;
    e.n = (uint32_t)(v >> 32) ^ 0xA5A5A5A5u;
    e.ptr = (void *)(uintptr_t)(v * 16 + 16);
    for (int i = 0; i < INLINE; i++)
        e.a[i] = v * 31 + (uint64_t)i;
    return e;
}

/* Pops one entry and checks that every field is the one pushed for 'v'. */
static void expect_pop(uint64_t v)
{
    entry_t got, want = entry(v);
    memset(&got, 0xFF, sizeof(got));
    cr_assert(mq_mpsc_pop(r, &got), "ring empty, wanted %llu", (unsigned long long)v);
    cr_assert(eq(u32, got.type, want.type));
    cr_assert(eq(u32, got.n, want.n));
    cr_assert(eq(ptr, got.ptr, want.ptr));
    for (int i = 0; i < INLINE; i++)
        cr_assert(eq(u64, got.a[i], want.a[i]));
}

static bool push(uint64_t v)
{
    entry_t e = entry(v);
    return mq_mpsc_push(r, &e);
}

Test(mpsc, new_ring_is_empty)
{
    r = mq_mpsc_new(8, sizeof(entry_t));
    entry_t e;
    cr_assert(not(mq_mpsc_pop(r, &e)));
    cr_assert(eq(u32, mq_mpsc_depth(r), 0));
}

Test(mpsc, entries_come_out_in_fifo_order)
{
    r = mq_mpsc_new(16, sizeof(entry_t));
    for (uint64_t v = 1; v <= 10; v++)
        cr_assert(push(v));
    for (uint64_t v = 1; v <= 10; v++)
        expect_pop(v);
    entry_t e;
    cr_assert(not(mq_mpsc_pop(r, &e)));
}

Test(mpsc, full_ring_rejects_push_until_popped)
{
    r = mq_mpsc_new(8, sizeof(entry_t));
    for (uint64_t v = 0; v < 8; v++)
        cr_assert(push(v), "push %llu", (unsigned long long)v);
    cr_assert(not(push(100)));
    cr_assert(not(push(101)));
    cr_assert(eq(u32, mq_mpsc_depth(r), 8));
    expect_pop(0);
    cr_assert(push(8));
    cr_assert(not(push(102)));
    for (uint64_t v = 1; v <= 8; v++)
        expect_pop(v); /* the rejected entries left no trace */
    entry_t e;
    cr_assert(not(mq_mpsc_pop(r, &e)));
}

Test(mpsc, capacity_is_rounded_up_to_a_power_of_two)
{
    r = mq_mpsc_new(5, sizeof(entry_t));
    int n = 0;
    while (n < 100 && push((uint64_t)n))
        n++;
    cr_assert(eq(int, n, 8));
    mq_mpsc_free(r);
    r = mq_mpsc_new(1, sizeof(entry_t));
    n = 0;
    while (n < 100 && push((uint64_t)n))
        n++;
    cr_assert(eq(int, n, 2));
}

Test(mpsc, depth_follows_pushes_and_pops)
{
    r = mq_mpsc_new(8, sizeof(entry_t));
    for (uint32_t i = 1; i <= 5; i++) {
        cr_assert(push(i));
        cr_assert(eq(u32, mq_mpsc_depth(r), i));
    }
    expect_pop(1);
    expect_pop(2);
    cr_assert(eq(u32, mq_mpsc_depth(r), 3));
    for (uint64_t v = 3; v <= 5; v++)
        expect_pop(v);
    cr_assert(eq(u32, mq_mpsc_depth(r), 0));
}

Test(mpsc, order_holds_across_many_laps)
{
    r = mq_mpsc_new(4, sizeof(entry_t));
    uint64_t in = 0, out = 0;
    for (int round = 0; round < 5000; round++) {
        int k = 1 + round % 4;
        for (int i = 0; i < k; i++)
            cr_assert(push(in++));
        cr_assert(eq(u32, mq_mpsc_depth(r), (uint32_t)(in - out)));
        for (int i = 0; i < k; i++)
            expect_pop(out++);
    }
    cr_assert(eq(u32, mq_mpsc_depth(r), 0));
}

/* ---- many producers, one consumer ------------------------------------------------------ */

#define PRODUCERS 4
#define PER_PRODUCER 50000u

typedef struct producer {
    pthread_t thread;
    uint32_t id;
    uint64_t retries; /* pushes refused because the ring was full */
} producer_t;

static pthread_barrier_t start;
static atomic_uint finished; /* producers done pushing */

static void *produce(void *arg)
{
    producer_t *p = arg;
    pthread_barrier_wait(&start);
    for (uint32_t seq = 0; seq < PER_PRODUCER; seq++) {
        entry_t e;
        memset(&e, 0, sizeof(e));
        e.type = p->id;
        e.n = seq;
        e.ptr = p;
        e.a[0] = (uint64_t)p->id << 32 | seq;
        e.a[4] = ~e.a[0];
        while (!mq_mpsc_push(r, &e)) {
            p->retries++;
            sched_yield();
        }
    }
    atomic_fetch_add(&finished, 1);
    return NULL;
}

Test(mpsc, concurrent_producers_deliver_everything_once_in_per_producer_order, .timeout = 60)
{
    r = mq_mpsc_new(64, sizeof(entry_t));
    producer_t prod[PRODUCERS];
    uint32_t next[PRODUCERS] = {0};
    cr_assert(eq(int, pthread_barrier_init(&start, NULL, PRODUCERS + 1), 0));
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        prod[i] = (producer_t){.id = i};
        cr_assert(eq(int, pthread_create(&prod[i].thread, NULL, produce, &prod[i]), 0));
    }
    pthread_barrier_wait(&start);

    uint64_t total = 0, empty = 0;
    while (total < (uint64_t)PRODUCERS * PER_PRODUCER) {
        entry_t e;
        if (!mq_mpsc_pop(r, &e)) {
            /* once every producer is done, an empty ring means whatever is missing was
             * lost: fail below instead of waiting for the timeout */
            if (atomic_load(&finished) == PRODUCERS) {
                if (!mq_mpsc_pop(r, &e))
                    break;
            } else {
                empty++;
                sched_yield();
                continue;
            }
        }
        cr_assert(lt(u32, e.type, PRODUCERS));
        uint32_t id = e.type;
        /* exactly once and in order: each producer's entries arrive as 0, 1, 2, ... */
        cr_assert(eq(u32, e.n, next[id]), "producer %u", id);
        cr_assert(eq(ptr, e.ptr, &prod[id]));
        cr_assert(eq(u64, e.a[0], (uint64_t)id << 32 | e.n));
        cr_assert(eq(u64, e.a[4], ~e.a[0])); /* the whole entry was copied, not torn */
        next[id]++;
        total++;
    }
    for (uint32_t i = 0; i < PRODUCERS; i++)
        cr_assert(eq(int, pthread_join(prod[i].thread, NULL), 0));
    for (uint32_t i = 0; i < PRODUCERS; i++)
        cr_assert(eq(u32, next[i], PER_PRODUCER));
    entry_t e;
    cr_assert(not(mq_mpsc_pop(r, &e))); /* nothing extra */
    cr_assert(eq(u32, mq_mpsc_depth(r), 0));
    pthread_barrier_destroy(&start);
    cr_log_info("pops on empty: %llu, pushes on full: %llu/%llu/%llu/%llu",
                (unsigned long long)empty, (unsigned long long)prod[0].retries,
                (unsigned long long)prod[1].retries, (unsigned long long)prod[2].retries,
                (unsigned long long)prod[3].retries);
}

/* ---- in-place slots of another size (the logging thread's lines) ------------------------- */

Test(mpsc, claimed_slots_are_seen_only_once_published_and_in_claim_order)
{
    r = mq_mpsc_new(4, 300);
    uint64_t t1, t2;
    char *a = mq_mpsc_claim(r, &t1);
    char *b = mq_mpsc_claim(r, &t2);
    cr_assert(not(eq(ptr, a, NULL)));
    cr_assert(not(eq(ptr, b, NULL)));
    memset(b, 'b', 300);
    mq_mpsc_publish(r, t2);
    cr_assert(eq(ptr, mq_mpsc_peek(r), NULL), "the first claimed slot is not published yet");
    memset(a, 'a', 300);
    mq_mpsc_publish(r, t1);
    char *got = mq_mpsc_peek(r);
    cr_assert(eq(ptr, got, a));
    cr_assert(eq(chr, got[299], 'a'));
    mq_mpsc_release(r);
    got = mq_mpsc_peek(r);
    cr_assert(eq(ptr, got, b));
    cr_assert(eq(chr, got[0], 'b'));
    mq_mpsc_release(r);
    cr_assert(eq(ptr, mq_mpsc_peek(r), NULL));
    cr_assert(eq(u32, mq_mpsc_cap(r), 4));
}

Test(mpsc, a_full_queue_refuses_a_claim)
{
    r = mq_mpsc_new(2, 16);
    uint64_t t;
    cr_assert(not(eq(ptr, mq_mpsc_claim(r, &t), NULL)));
    mq_mpsc_publish(r, t);
    cr_assert(not(eq(ptr, mq_mpsc_claim(r, &t), NULL)));
    mq_mpsc_publish(r, t);
    cr_assert(eq(ptr, mq_mpsc_claim(r, &t), NULL));
    cr_assert(not(eq(ptr, mq_mpsc_peek(r), NULL)));
    mq_mpsc_release(r);
    cr_assert(not(eq(ptr, mq_mpsc_claim(r, &t), NULL)));
}
