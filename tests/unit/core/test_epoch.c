/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_epoch.c - QSBR: when retired entries may and may not be freed. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <unistd.h>

#include "core/epoch.h"

typedef struct item {
    mq_epoch_entry_t retire;
    int id;
} item_t;

#define MAX_ITEMS 16

static item_t items[MAX_ITEMS];
static int freed[MAX_ITEMS]; /* ids in the order they were freed */
static int n_freed;
static mq_epoch_t *ep;

static void setup(void)
{
    n_freed = 0;
    for (int i = 0; i < MAX_ITEMS; i++)
        items[i].id = i;
    ep = mq_epoch_new(4);
}

static void teardown(void)
{
    mq_epoch_free(ep);
}

TestSuite(epoch, .init = setup, .fini = teardown);

static void free_item(mq_epoch_entry_t *e)
{
    item_t *it = (item_t *)((char *)e - offsetof(item_t, retire));
    cr_assert(lt(int, n_freed, MAX_ITEMS));
    freed[n_freed++] = it->id;
}

static void retire(mq_epoch_rec_t *r, int i)
{
    mq_epoch_retire(r, &items[i].retire, free_item);
}

/* Records are owned by threads only by convention, so one test thread can play several
 * workers: what counts is the order of quiescent points and retirements. */

Test(epoch, retired_entry_waits_for_every_online_thread)
{
    mq_epoch_rec_t *r0 = mq_epoch_register(ep, 0);
    mq_epoch_rec_t *r1 = mq_epoch_register(ep, 1);
    retire(r0, 0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 1));
    mq_epoch_quiescent(r0);
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 1)); /* r1 may still hold it */
    cr_assert(eq(int, n_freed, 0));
    mq_epoch_quiescent(r1);
    cr_assert(eq(int, n_freed, 0)); /* only the retiring record frees its entries */
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 0));
    cr_assert(eq(int, n_freed, 1));
    cr_assert(eq(int, freed[0], 0));
}

Test(epoch, quiescent_point_before_the_retirement_does_not_count)
{
    mq_epoch_rec_t *r0 = mq_epoch_register(ep, 0);
    mq_epoch_rec_t *r1 = mq_epoch_register(ep, 1);
    mq_epoch_quiescent(r1);
    retire(r0, 0);
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 1));
    mq_epoch_quiescent(r1);
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 0));
}

Test(epoch, what_a_thread_retired_between_two_quiescent_points_frees_together)
{
    mq_epoch_rec_t *r0 = mq_epoch_register(ep, 0);
    mq_epoch_rec_t *r1 = mq_epoch_register(ep, 1);
    retire(r0, 0);
    retire(r0, 1);
    mq_epoch_quiescent(r1); /* covers 0 and 1, not 2 and 3 */
    retire(r0, 2);
    retire(r0, 3);
    mq_epoch_quiescent(r0); /* one batch: it waits for its last entry */
    cr_assert(eq(u64, mq_epoch_pending(r0), 4));
    cr_assert(eq(int, n_freed, 0));
    mq_epoch_quiescent(r1);
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 0));
    cr_assert(eq(int, n_freed, 4));
    for (int i = 0; i < 4; i++)
        cr_assert(eq(int, freed[i], i), "retirement order");
}

Test(epoch, batches_free_in_retirement_order_as_they_become_safe)
{
    mq_epoch_rec_t *r0 = mq_epoch_register(ep, 0);
    mq_epoch_rec_t *r1 = mq_epoch_register(ep, 1);
    retire(r0, 0);
    mq_epoch_quiescent(r0); /* r1 has not passed one: 0 waits */
    mq_epoch_quiescent(r1); /* covers 0 */
    retire(r0, 1);
    retire(r0, 2);
    cr_assert(eq(u64, mq_epoch_pending(r0), 3));
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 2));
    cr_assert(eq(int, n_freed, 1));
    cr_assert(eq(int, freed[0], 0));
    mq_epoch_quiescent(r1);
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 0));
    cr_assert(eq(int, n_freed, 3));
    cr_assert(eq(int, freed[1], 1));
    cr_assert(eq(int, freed[2], 2));
}

Test(epoch, more_batches_than_a_record_keeps_apart_still_free_in_order)
{
    /* a thread that passes many quiescent points while another stays behind: its batches
     * outnumber the ring, the newest takes the rest, nothing is freed early or lost */
    mq_epoch_rec_t *r0 = mq_epoch_register(ep, 0);
    mq_epoch_rec_t *r1 = mq_epoch_register(ep, 1);
    for (int i = 0; i < MAX_ITEMS; i++) {
        retire(r0, i);
        mq_epoch_quiescent(r0);
    }
    cr_assert(eq(u64, mq_epoch_pending(r0), MAX_ITEMS));
    cr_assert(eq(int, n_freed, 0));
    mq_epoch_quiescent(r1);
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 0));
    cr_assert(eq(int, n_freed, MAX_ITEMS));
    for (int i = 0; i < MAX_ITEMS; i++)
        cr_assert(eq(int, freed[i], i), "retirement order");
}

static mq_epoch_rec_t *chain_rec; /* free_then_retire's record */

static void free_then_retire(mq_epoch_entry_t *e)
{
    free_item(e);
    retire(chain_rec, 1); /* what a freed object may let go of in turn */
}

Test(epoch, an_entry_retired_by_a_free_callback_waits_its_own_grace_period)
{
    mq_epoch_rec_t *r0 = mq_epoch_register(ep, 0);
    mq_epoch_rec_t *r1 = mq_epoch_register(ep, 1);
    chain_rec = r0;
    mq_epoch_retire(r0, &items[0].retire, free_then_retire);
    mq_epoch_quiescent(r1);
    mq_epoch_quiescent(r0); /* frees 0, whose callback retires 1 */
    cr_assert(eq(int, n_freed, 1));
    cr_assert(eq(u64, mq_epoch_pending(r0), 1));
    mq_epoch_quiescent(r0); /* r1 has not passed a quiescent point since: 1 waits */
    cr_assert(eq(int, n_freed, 1));
    mq_epoch_quiescent(r1);
    mq_epoch_quiescent(r0);
    cr_assert(eq(int, n_freed, 2));
    cr_assert(eq(int, freed[1], 1));
    cr_assert(eq(u64, mq_epoch_pending(r0), 0));
}

Test(epoch, pending_is_counted_per_record)
{
    mq_epoch_rec_t *r0 = mq_epoch_register(ep, 0);
    mq_epoch_rec_t *r1 = mq_epoch_register(ep, 1);
    retire(r0, 0);
    retire(r1, 1);
    retire(r1, 2);
    cr_assert(eq(u64, mq_epoch_pending(r0), 1));
    cr_assert(eq(u64, mq_epoch_pending(r1), 2));
    mq_epoch_quiescent(r0);
    mq_epoch_quiescent(r1); /* both have now passed every retirement */
    cr_assert(eq(u64, mq_epoch_pending(r1), 0));
    cr_assert(eq(u64, mq_epoch_pending(r0), 1));
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 0));
    cr_assert(eq(int, n_freed, 3));
}

Test(epoch, offline_thread_does_not_block_reclamation)
{
    mq_epoch_rec_t *r0 = mq_epoch_register(ep, 0);
    mq_epoch_rec_t *r1 = mq_epoch_register(ep, 1);
    mq_epoch_offline(r1);
    retire(r0, 0);
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 0));
    cr_assert(eq(int, n_freed, 1));

    /* back online, it holds up what is retired from now on */
    mq_epoch_online(r1);
    retire(r0, 1);
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 1));
    mq_epoch_offline(r1); /* going offline is as good as a quiescent point */
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 0));
}

Test(epoch, thread_coming_online_after_a_retirement_does_not_block_it)
{
    mq_epoch_rec_t *r0 = mq_epoch_register(ep, 0);
    retire(r0, 0);
    mq_epoch_rec_t *r1 = mq_epoch_register(ep, 1); /* cannot have seen entry 0 */
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 0));
    retire(r0, 1);
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 1)); /* but it does block later ones */
    mq_epoch_quiescent(r1);
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 0));
}

Test(epoch, unregistered_records_do_not_block)
{
    mq_epoch_rec_t *r2 = mq_epoch_register(ep, 2); /* 0, 1 and 3 never register */
    retire(r2, 0);
    mq_epoch_quiescent(r2);
    cr_assert(eq(u64, mq_epoch_pending(r2), 0));
    cr_assert(eq(int, n_freed, 1));
}

Test(epoch, free_runs_pending_callbacks)
{
    mq_epoch_rec_t *r0 = mq_epoch_register(ep, 0);
    mq_epoch_register(ep, 1);
    retire(r0, 0);
    retire(r0, 1);
    mq_epoch_quiescent(r0);
    cr_assert(eq(int, n_freed, 0));
    mq_epoch_free(ep);
    ep = NULL;
    cr_assert(eq(int, n_freed, 2));
}

/* ---- with a real second thread -------------------------------------------------------------- */

static pthread_barrier_t step;
static mq_epoch_rec_t *other;

static void *reader(void *arg)
{
    (void)arg;
    other = mq_epoch_register(ep, 1);
    pthread_barrier_wait(&step); /* 1: registered */
    pthread_barrier_wait(&step); /* 2: the main thread retired and checked */
    mq_epoch_quiescent(other);
    pthread_barrier_wait(&step); /* 3: passed a quiescent point */
    pthread_barrier_wait(&step); /* 4: main checked; go offline and leave */
    mq_epoch_offline(other);
    return NULL;
}

Test(epoch, entry_retired_by_one_thread_waits_for_the_other_thread)
{
    pthread_t t;
    cr_assert(eq(int, pthread_barrier_init(&step, NULL, 2), 0));
    mq_epoch_rec_t *r0 = mq_epoch_register(ep, 0);
    cr_assert(eq(int, pthread_create(&t, NULL, reader, NULL), 0));
    pthread_barrier_wait(&step); /* 1 */
    retire(r0, 5);
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 1));
    cr_assert(eq(int, n_freed, 0));
    pthread_barrier_wait(&step); /* 2 */
    pthread_barrier_wait(&step); /* 3 */
    mq_epoch_quiescent(r0);
    cr_assert(eq(u64, mq_epoch_pending(r0), 0));
    cr_assert(eq(int, n_freed, 1));
    cr_assert(eq(int, freed[0], 5));
    pthread_barrier_wait(&step); /* 4 */
    cr_assert(eq(int, pthread_join(t, NULL), 0));
    pthread_barrier_destroy(&step);
}

/* synchronize: a worker (record 1) that stays in its turn until told to pass a quiescent
 * point; the main thread's synchronize must not return before it has. */
static atomic_bool may_pass, passed, sync_done;
static mq_epoch_rec_t *worker_rec;

static void *worker_turn(void *arg)
{
    (void)arg;
    worker_rec = mq_epoch_register(ep, 1); /* online, as in a turn */
    pthread_barrier_wait(&step);           /* 1: registered */
    while (!atomic_load(&may_pass))
        sched_yield();
    atomic_store(&passed, true);
    mq_epoch_quiescent(worker_rec);
    while (!atomic_load(&sync_done)) /* online still: synchronize needs no offline */
        sched_yield();
    mq_epoch_offline(worker_rec);
    return NULL;
}

static void *synchronizer(void *arg)
{
    (void)arg;
    mq_epoch_synchronize(ep);
    atomic_store(&sync_done, true);
    return NULL;
}

Test(epoch, synchronize_waits_for_every_online_record_to_pass_a_quiescent_point)
{
    pthread_t w, s;
    cr_assert(eq(int, pthread_barrier_init(&step, NULL, 2), 0));
    cr_assert(eq(int, pthread_create(&w, NULL, worker_turn, NULL), 0));
    pthread_barrier_wait(&step);                /* 1 */
    mq_epoch_offline(mq_epoch_register(ep, 2)); /* an offline record does not hold it up */
    cr_assert(eq(int, pthread_create(&s, NULL, synchronizer, NULL), 0));
    usleep(50 * 1000);
    cr_assert(not(atomic_load(&sync_done)), "returned while a record was in its turn");
    atomic_store(&may_pass, true);
    cr_assert(eq(int, pthread_join(s, NULL), 0));
    cr_assert(atomic_load(&passed));
    cr_assert(eq(int, pthread_join(w, NULL), 0));
    pthread_barrier_destroy(&step);
}

Test(epoch, synchronize_returns_at_once_when_every_record_is_offline)
{
    mq_epoch_offline(mq_epoch_register(ep, 0));
    mq_epoch_synchronize(ep); /* would hang (and time out) if an offline record counted */
}
