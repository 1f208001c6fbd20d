/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_tindex.c - topic index: interest, wildcard matching, retained store. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/epoch.h"
#include "core/msg.h"
#include "core/rc.h"
#include "core/tindex.h"

#define MAX_HITS 64

typedef struct hit {
    uint64_t fid;
    uint64_t workers;
} hit_t;

typedef struct hits {
    size_t n;
    hit_t h[MAX_HITS];
} hits_t;

typedef struct rhits {
    size_t n;
    char topic[MAX_HITS][64];
    mq_msg_t *msg[MAX_HITS];
} rhits_t;

static mq_epoch_t *ep;
static mq_epoch_rec_t *rec;
static mq_tindex_t *ix;

static void setup(void)
{
    ep = mq_epoch_new(4); /* record 0: the test thread; 1..3: reader threads */
    rec = mq_epoch_register(ep, 0);
    ix = mq_tindex_new(ep);
}

static void teardown(void)
{
    mq_tindex_free(ix);
    mq_epoch_quiescent(rec);
    mq_epoch_free(ep);
}

TestSuite(tindex, .init = setup, .fini = teardown);

static uint64_t add(const char *filter, unsigned w)
{
    return mq_tindex_add_interest(ix, filter, strlen(filter), w, rec);
}

static void del(const char *filter, unsigned w)
{
    mq_tindex_remove_interest(ix, filter, strlen(filter), w, rec);
}

static void on_match(void *arg, uint64_t fid, uint64_t workers)
{
    hits_t *h = arg;
    cr_assert(lt(sz, h->n, MAX_HITS));
    h->h[h->n++] = (hit_t){fid, workers};
}

/* Matches 'topic'; checks that the returned count equals the callbacks made. */
static hits_t match(const char *topic)
{
    hits_t h = {0};
    size_t n = mq_tindex_match(ix, topic, strlen(topic), on_match, &h);
    cr_assert(eq(sz, n, h.n), "topic %s", topic);
    return h;
}

/* The workers mask reported for 'fid' on 'topic'; 0 when not reported; fails if twice. */
static uint64_t workers_for(const hits_t *h, uint64_t fid)
{
    uint64_t w = 0;
    int seen = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (h->h[i].fid == fid) {
            w = h->h[i].workers;
            seen++;
        }
    }
    cr_assert(le(int, seen, 1), "filter id %llu reported %d times", (unsigned long long)fid, seen);
    return w;
}

/* True when 'topic' is matched by (exactly) the one filter whose id is 'fid'. */
static bool only(const char *topic, uint64_t fid)
{
    hits_t h = match(topic);
    return h.n == 1 && h.h[0].fid == fid;
}

static size_t n_matches(const char *topic)
{
    return match(topic).n;
}

/* ---- interest and matching ---------------------------------------------------------------- */

Test(tindex, exact_filter_matches_only_its_own_topic)
{
    uint64_t fid = add("a/b", 0);
    cr_assert(not(eq(u64, fid, 0)));
    hits_t h = match("a/b");
    cr_assert(eq(sz, h.n, 1));
    cr_assert(eq(u64, h.h[0].fid, fid));
    cr_assert(eq(u64, h.h[0].workers, 1));
    cr_assert(eq(sz, n_matches("a"), 0));
    cr_assert(eq(sz, n_matches("a/c"), 0));
    cr_assert(eq(sz, n_matches("a/b/c"), 0));
    cr_assert(eq(sz, n_matches("a/bb"), 0));
    cr_assert(eq(sz, n_matches("b"), 0));
    cr_assert(eq(sz, n_matches("/a/b"), 0));
}

Test(tindex, one_filter_on_several_workers_reports_one_mask)
{
    uint64_t f0 = add("x/y", 0);
    uint64_t f5 = add("x/y", 5);
    uint64_t f63 = add("x/y", 63);
    cr_assert(eq(u64, f0, f5));
    cr_assert(eq(u64, f0, f63));
    hits_t h = match("x/y");
    cr_assert(eq(sz, h.n, 1));
    cr_assert(eq(u64, h.h[0].workers, 1ull | 1ull << 5 | 1ull << 63));
}

Test(tindex, distinct_filters_get_distinct_ids)
{
    uint64_t ids[] = {add("a", 0), add("a/b", 0), add("a/+", 0), add("+", 0),
                      add("#", 0), add("a/#", 0), add("b", 0),   add("/", 0)};
    for (size_t i = 0; i < MQ_ARRAY_LEN(ids); i++)
        for (size_t j = i + 1; j < MQ_ARRAY_LEN(ids); j++)
            cr_assert(not(eq(u64, ids[i], ids[j])), "filters %zu and %zu", i, j);
}

Test(tindex, plus_matches_exactly_one_level)
{
    uint64_t mid = add("a/+/c", 1);
    uint64_t top = add("+", 2);
    uint64_t two = add("+/+", 3);
    cr_assert(only("a/b/c", mid));
    cr_assert(only("a//c", mid)); /* an empty level is a level */
    cr_assert(eq(sz, n_matches("a/b/d/c"), 0));
    cr_assert(eq(sz, n_matches("a/b/c/d"), 0));
    cr_assert(only("x", top));
    cr_assert(only("x/y", two));
    cr_assert(only("/y", two)); /* empty first level */
    cr_assert(only("a/c", two));
    cr_assert(eq(sz, n_matches("x/y/z"), 0));
    hits_t h = match("x/y");
    cr_assert(eq(u64, workers_for(&h, two), 1ull << 3));
}

Test(tindex, hash_matches_the_parent_level_and_everything_below)
{
    uint64_t ah = add("a/#", 0);
    cr_assert(only("a", ah)); /* [MQTT-4.7.1-2] "a/#" matches "a" */
    cr_assert(only("a/b", ah));
    cr_assert(only("a/b/c/d", ah));
    cr_assert(only("a/", ah));
    cr_assert(eq(sz, n_matches("ab"), 0));
    cr_assert(eq(sz, n_matches("b/a"), 0));

    uint64_t all = add("#", 1);
    hits_t h = match("a/b");
    cr_assert(eq(sz, h.n, 2));
    cr_assert(eq(u64, workers_for(&h, ah), 1));
    cr_assert(eq(u64, workers_for(&h, all), 2));
    cr_assert(only("z", all));
    cr_assert(only("/", all));
}

Test(tindex, every_matching_filter_is_reported_once)
{
    const char *filters[] = {"a/b", "a/+", "a/#", "#", "+/b", "+/+", "+/#", "a/b/#", "a/+/#"};
    uint64_t ids[MQ_ARRAY_LEN(filters)];
    for (size_t i = 0; i < MQ_ARRAY_LEN(filters); i++)
        ids[i] = add(filters[i], (unsigned)i);
    add("a/c", 9);    /* not matching */
    add("+/c", 10);   /* not matching */
    add("a/b/c", 11); /* not matching */
    add("b/#", 12);   /* not matching */
    hits_t h = match("a/b");
    cr_assert(eq(sz, h.n, MQ_ARRAY_LEN(filters)));
    for (size_t i = 0; i < MQ_ARRAY_LEN(filters); i++)
        cr_assert(eq(u64, workers_for(&h, ids[i]), 1ull << i), "filter %s", filters[i]);
}

Test(tindex, dollar_topics_are_matched_only_by_dollar_filters)
{
    uint64_t all = add("#", 0);
    add("+/broker/uptime", 0);
    add("+/#", 0);
    add("+/+/+", 0);
    uint64_t sys_all = add("$SYS/#", 1);
    uint64_t sys_plus = add("$SYS/broker/+", 2);
    hits_t h = match("$SYS/broker/uptime");
    cr_assert(eq(sz, h.n, 2)); /* [MQTT-4.7.2-1] */
    cr_assert(eq(u64, workers_for(&h, sys_all), 2));
    cr_assert(eq(u64, workers_for(&h, sys_plus), 4));
    cr_assert(eq(u64, workers_for(&h, all), 0));
    /* the same filters do match an ordinary topic of that shape */
    cr_assert(eq(sz, n_matches("SYS/broker/uptime"), 4));
    /* a '$' further down is an ordinary character */
    uint64_t x = add("a/+", 3);
    hits_t h2 = match("a/$x");
    cr_assert(eq(u64, workers_for(&h2, x), 8));
}

Test(tindex, removing_interest_stops_matches)
{
    uint64_t f = add("a/b", 0);
    add("a/b", 1);
    del("a/b", 0);
    hits_t h = match("a/b");
    cr_assert(eq(sz, h.n, 1));
    cr_assert(eq(u64, h.h[0].fid, f));
    cr_assert(eq(u64, h.h[0].workers, 2));
    del("a/b", 1);
    cr_assert(eq(sz, n_matches("a/b"), 0));
    del("a/b", 1);         /* again: nothing to do */
    del("never/added", 0); /* unknown: nothing to do */
    mq_epoch_quiescent(rec);
    cr_assert(eq(u64, mq_epoch_pending(rec), 0));

    uint64_t again = add("a/b", 0);
    cr_assert(not(eq(u64, again, f))); /* the node was pruned; ids are never reused */
    cr_assert(only("a/b", again));
}

Test(tindex, removing_a_parent_filter_keeps_its_children)
{
    uint64_t a = add("a", 0);
    uint64_t ab = add("a/b", 0);
    uint64_t ah = add("a/#", 0);
    del("a", 0);
    mq_epoch_quiescent(rec);
    cr_assert(only("a", ah));
    hits_t h = match("a/b");
    cr_assert(eq(sz, h.n, 2));
    cr_assert(eq(u64, workers_for(&h, ab), 1));
    cr_assert(eq(u64, workers_for(&h, ah), 1));
    del("a/#", 0);
    del("a/b", 0);
    cr_assert(eq(sz, n_matches("a"), 0));
    cr_assert(eq(sz, n_matches("a/b"), 0));
    cr_assert(not(eq(u64, add("a", 1), a)));
}

Test(tindex, removed_nodes_are_freed_after_a_quiescent_point)
{
    add("p/q/r", 0);
    del("p/q/r", 0);
    cr_assert(gt(u64, mq_epoch_pending(rec), 0)); /* unlinked but not yet freed */
    mq_epoch_quiescent(rec);
    cr_assert(eq(u64, mq_epoch_pending(rec), 0));
}

Test(tindex, many_sibling_filters_survive_growth_and_removal)
{
    enum { N = 300 };
    uint64_t ids[N];
    char f[32];
    for (unsigned i = 0; i < N; i++) {
        snprintf(f, sizeof(f), "k/%u", i);
        ids[i] = add(f, i % 64);
        if (i % 50 == 0)
            mq_epoch_quiescent(rec);
    }
    for (unsigned i = 0; i < N; i++) {
        snprintf(f, sizeof(f), "k/%u", i);
        hits_t h = match(f);
        cr_assert(eq(sz, h.n, 1), "%s", f);
        cr_assert(eq(u64, h.h[0].fid, ids[i]), "%s", f);
        cr_assert(eq(u64, h.h[0].workers, 1ull << (i % 64)), "%s", f);
    }
    for (unsigned i = 0; i < N; i += 2) {
        snprintf(f, sizeof(f), "k/%u", i);
        del(f, i % 64);
    }
    /* re-adding after removal reuses tombstoned slots and grows again */
    for (unsigned i = 0; i < N; i += 4) {
        snprintf(f, sizeof(f), "k/%u", i);
        ids[i] = add(f, 0);
    }
    mq_epoch_quiescent(rec);
    for (unsigned i = 0; i < N; i++) {
        snprintf(f, sizeof(f), "k/%u", i);
        hits_t h = match(f);
        if (i % 2 == 1 || i % 4 == 0) {
            cr_assert(eq(sz, h.n, 1), "%s", f);
            cr_assert(eq(u64, h.h[0].fid, ids[i]), "%s", f);
        } else {
            cr_assert(eq(sz, h.n, 0), "%s", f);
        }
    }
    cr_assert(eq(sz, n_matches("k/300"), 0));
    cr_assert(eq(u64, mq_epoch_pending(rec), 0));
}

/* ---- retained messages -------------------------------------------------------------------- */

static mq_msg_t *rmsg(const char *topic, const char *payload)
{
    mq_msg_t *m = mq_msg_new(topic, strlen(topic), payload, strlen(payload), 0, true);
    cr_assert(not(eq(ptr, m, NULL)));
    return m;
}

/* Retains a new message and drops the test's reference; returns the index's answer. */
static int retain(const char *topic, const char *payload)
{
    mq_msg_t *m = rmsg(topic, payload);
    int d = mq_tindex_retain(ix, m, rec);
    mq_msg_unref(m);
    return d;
}

static void on_retained(void *arg, mq_msg_t *msg)
{
    rhits_t *r = arg;
    cr_assert(lt(sz, r->n, MAX_HITS));
    mq_str_t t = mq_msg_topic(msg);
    cr_assert(lt(sz, t.len, sizeof(r->topic[0])));
    memcpy(r->topic[r->n], t.ptr, t.len);
    r->topic[r->n][t.len] = '\0';
    r->msg[r->n] = msg;
    r->n++;
}

static rhits_t retained(const char *filter)
{
    rhits_t r = {0};
    size_t n = mq_tindex_retained(ix, filter, strlen(filter), on_retained, &r);
    cr_assert(eq(sz, n, r.n), "filter %s", filter);
    return r;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The topics of 'r', sorted and joined with spaces (a static buffer). */
static const char *joined(rhits_t *r)
{
    static char buf[MAX_HITS * 64];
    qsort(r->topic, r->n, sizeof(r->topic[0]), cmp_str);
    buf[0] = '\0';
    for (size_t i = 0; i < r->n; i++) {
        if (i)
            strcat(buf, " ");
        strcat(buf, r->topic[i]);
    }
    return buf;
}

/* The topics retained under 'filter', sorted and joined with spaces. */
static const char *retained_topics(const char *filter)
{
    rhits_t r = retained(filter);
    return joined(&r);
}

Test(tindex, retained_message_is_stored_replaced_and_deleted)
{
    mq_msg_t *m1 = rmsg("a/b", "one");
    cr_assert(eq(int, mq_tindex_retain(ix, m1, rec), 1));
    cr_assert(eq(u32, atomic_load(&m1->refs), 2)); /* the store took its own reference */
    cr_assert(eq(u64, mq_tindex_retained_count(ix), 1));
    cr_assert(eq(u64, mq_tindex_retained_bytes(ix), 3));
    rhits_t r = retained("a/b");
    cr_assert(eq(sz, r.n, 1));
    cr_assert(eq(ptr, r.msg[0], m1));

    mq_msg_t *m2 = rmsg("a/b", "second");
    cr_assert(eq(int, mq_tindex_retain(ix, m2, rec), 0));
    cr_assert(eq(u64, mq_tindex_retained_count(ix), 1));
    cr_assert(eq(u64, mq_tindex_retained_bytes(ix), 6));
    r = retained("a/b");
    cr_assert(eq(sz, r.n, 1));
    cr_assert(eq(ptr, r.msg[0], m2));
    /* readers may still hold the old one until the next quiescent point */
    cr_assert(eq(u32, atomic_load(&m1->refs), 2));
    mq_epoch_quiescent(rec);
    cr_assert(eq(u32, atomic_load(&m1->refs), 1));

    /* [MQTT-3.3.1-10] an empty payload deletes */
    cr_assert(eq(int, retain("a/b", ""), -1));
    cr_assert(eq(u64, mq_tindex_retained_count(ix), 0));
    cr_assert(eq(u64, mq_tindex_retained_bytes(ix), 0));
    cr_assert(eq(sz, retained("a/b").n, 0));
    cr_assert(eq(int, retain("a/b", ""), 0)); /* nothing left to delete */
    cr_assert(eq(int, retain("never/set", ""), 0));
    mq_epoch_quiescent(rec);
    cr_assert(eq(u32, atomic_load(&m2->refs), 1));
    cr_assert(eq(u64, mq_epoch_pending(rec), 0));
    mq_msg_unref(m1);
    mq_msg_unref(m2);
}

Test(tindex, retained_lookup_follows_the_wildcard_rules)
{
    const char *topics[] = {"a", "a/b", "a/b/c", "a/x/c", "b/x", "/lead", "$SYS/up", "$SYS/a/b"};
    for (size_t i = 0; i < MQ_ARRAY_LEN(topics); i++)
        cr_assert(eq(int, retain(topics[i], "v"), 1), "%s", topics[i]);
    cr_assert(eq(u64, mq_tindex_retained_count(ix), MQ_ARRAY_LEN(topics)));
    cr_assert(eq(u64, mq_tindex_retained_bytes(ix), MQ_ARRAY_LEN(topics)));

    cr_assert_str_eq(retained_topics("a"), "a");
    cr_assert_str_eq(retained_topics("a/b"), "a/b");
    cr_assert_str_eq(retained_topics("a/#"), "a a/b a/b/c a/x/c");
    cr_assert_str_eq(retained_topics("a/+"), "a/b");
    cr_assert_str_eq(retained_topics("a/+/c"), "a/b/c a/x/c");
    cr_assert_str_eq(retained_topics("a/+/#"), "a/b a/b/c a/x/c");
    cr_assert_str_eq(retained_topics("+"), "a");
    cr_assert_str_eq(retained_topics("+/x"), "b/x");
    cr_assert_str_eq(retained_topics("+/+"), "/lead a/b b/x");
    cr_assert_str_eq(retained_topics("#"), "/lead a a/b a/b/c a/x/c b/x");
    cr_assert_str_eq(retained_topics("+/#"), "/lead a a/b a/b/c a/x/c b/x");
    cr_assert_str_eq(retained_topics("$SYS/#"), "$SYS/a/b $SYS/up");
    cr_assert_str_eq(retained_topics("$SYS/+"), "$SYS/up");
    cr_assert_str_eq(retained_topics("a/b/c/#"), "a/b/c");
    cr_assert_str_eq(retained_topics("c/#"), "");
    cr_assert_str_eq(retained_topics("a/b/c/d"), "");
}

/* The whole store, '$' topics included, sorted and joined with spaces (what a snapshot saves). */
static const char *all_retained_topics(void)
{
    rhits_t r = {0};
    cr_assert(eq(sz, mq_tindex_each_retained(ix, on_retained, &r), r.n));
    return joined(&r);
}

Test(tindex, each_retained_walks_the_whole_store_and_changes_are_counted)
{
    cr_assert_str_eq(all_retained_topics(), "");
    const char *topics[] = {"a", "a/b/c", "b/x", "/lead", "$SYS/up", "$own/x"};
    for (size_t i = 0; i < MQ_ARRAY_LEN(topics); i++)
        cr_assert(eq(int, retain(topics[i], "v"), 1), "%s", topics[i]);
    add("a/b", 2); /* interest alone is not a retained message */
    cr_assert_str_eq(all_retained_topics(), "$SYS/up $own/x /lead a a/b/c b/x");
    cr_assert(eq(u64, mq_tindex_retained_changes(ix), 6));

    cr_assert(eq(int, retain("a", "w"), 0));        /* replaced: a change */
    cr_assert(eq(int, retain("b/x", ""), -1));      /* removed: a change */
    cr_assert(eq(int, retain("never/set", ""), 0)); /* nothing to remove: none */
    cr_assert(eq(u64, mq_tindex_retained_changes(ix), 8));
    cr_assert_str_eq(all_retained_topics(), "$SYS/up $own/x /lead a a/b/c");
    mq_epoch_quiescent(rec);
}

Test(tindex, retained_message_and_interest_share_a_node_independently)
{
    uint64_t f = add("s/t", 4);
    cr_assert(eq(int, retain("s/t", "v"), 1));
    del("s/t", 4);
    mq_epoch_quiescent(rec);
    cr_assert(eq(sz, retained("s/t").n, 1)); /* losing interest keeps the message */
    cr_assert(eq(sz, n_matches("s/t"), 0));

    uint64_t g = add("s/t", 4);
    cr_assert(eq(u64, g, f)); /* the node survived, so did its id */
    cr_assert(eq(int, retain("s/t", ""), -1));
    mq_epoch_quiescent(rec);
    cr_assert(only("s/t", f)); /* deleting the message keeps the interest */
    cr_assert(eq(sz, retained("s/t").n, 0));
}

Test(tindex, retained_messages_are_released_when_the_index_is_freed)
{
    mq_msg_t *m = rmsg("keep/me", "payload");
    cr_assert(eq(int, mq_tindex_retain(ix, m, rec), 1));
    mq_msg_t *old = rmsg("keep/old", "x");
    cr_assert(eq(int, mq_tindex_retain(ix, old, rec), 1));
    cr_assert(eq(int, retain("keep/old", "y"), 0)); /* 'old' now waits in the epoch */
    mq_tindex_free(ix);
    ix = NULL;
    cr_assert(eq(u32, atomic_load(&m->refs), 1));
    mq_epoch_quiescent(rec);
    cr_assert(eq(u32, atomic_load(&old->refs), 1));
    mq_msg_unref(m);
    mq_msg_unref(old);
}

/* ---- concurrent readers ------------------------------------------------------------------- */

#define READERS 2

static atomic_bool stop;
static atomic_uint_fast64_t bad;   /* wrong answers seen by readers (asserted on the main thread) */
static atomic_uint_fast64_t turns; /* reader loop turns */
static uint64_t stable_fid;

static void *reader(void *arg)
{
    mq_epoch_rec_t *r = mq_epoch_register(ep, (unsigned)(uintptr_t)arg);
    while (!atomic_load(&stop)) {
        hits_t h = {0};
        mq_tindex_match(ix, "s/stable", 8, on_match, &h);
        if (h.n != 1 || h.h[0].fid != stable_fid || h.h[0].workers != 1)
            atomic_fetch_add(&bad, 1);
        rhits_t rh = {0};
        mq_tindex_retained(ix, "s/stable", 8, on_retained, &rh);
        if (rh.n > 1)
            atomic_fetch_add(&bad, 1);
        for (size_t i = 0; i < rh.n; i++) {
            mq_str_t pl = mq_msg_payload(rh.msg[i]);
            if (pl.len != 2 || pl.ptr[0] != 'v' || (pl.ptr[1] != '1' && pl.ptr[1] != '2'))
                atomic_fetch_add(&bad, 1);
        }
        atomic_fetch_add(&turns, 1);
        mq_epoch_quiescent(r); /* end of this reader's "loop turn" */
    }
    mq_epoch_offline(r);
    return NULL;
}

Test(tindex, readers_see_a_stable_filter_while_siblings_churn, .timeout = 60)
{
    stable_fid = add("s/stable", 0);
    pthread_t t[READERS];
    for (uintptr_t i = 0; i < READERS; i++)
        cr_assert(eq(int, pthread_create(&t[i], NULL, reader, (void *)(i + 1)), 0));
    char f[32];
    for (int round = 0; round < 30; round++) {
        for (int i = 0; i < 150; i++) {
            snprintf(f, sizeof(f), "s/%d", i);
            add(f, (unsigned)(i % 64));
        }
        cr_assert(eq(int, retain("s/stable", round % 2 ? "v1" : "v2"), round == 0 ? 1 : 0));
        mq_epoch_quiescent(rec);
        for (int i = 0; i < 150; i++) {
            snprintf(f, sizeof(f), "s/%d", i);
            del(f, (unsigned)(i % 64));
        }
        mq_epoch_quiescent(rec);
    }
    cr_assert(eq(int, retain("s/stable", ""), -1));
    atomic_store(&stop, true);
    for (int i = 0; i < READERS; i++)
        cr_assert(eq(int, pthread_join(t[i], NULL), 0));
    cr_assert(eq(u64, atomic_load(&bad), 0));
    cr_assert(gt(u64, atomic_load(&turns), 0));
    mq_epoch_quiescent(rec); /* the readers are offline: everything retired can go */
    cr_assert(eq(u64, mq_epoch_pending(rec), 0));
    cr_log_info("reader turns: %llu", (unsigned long long)atomic_load(&turns));
}

Test(tindex, generation_changes_exactly_when_a_match_result_can_change)
{
    uint64_t g0 = mq_tindex_generation(ix);
    add("gen/a", 0);
    uint64_t g1 = mq_tindex_generation(ix);
    cr_expect_neq(g1, g0, "a new interest changes results");
    add("gen/a", 0);
    cr_expect_eq(mq_tindex_generation(ix), g1, "the same worker again changes nothing");
    add("gen/a", 1);
    uint64_t g2 = mq_tindex_generation(ix);
    cr_expect_neq(g2, g1, "another worker's interest changes the mask");
    del("gen/a", 1);
    uint64_t g3 = mq_tindex_generation(ix);
    cr_expect_neq(g3, g2);
    del("gen/nothing", 0);
    cr_expect_eq(mq_tindex_generation(ix), g3, "removing what is not there changes nothing");
    del("gen/a", 0);
    cr_expect_neq(mq_tindex_generation(ix), g3);
}
