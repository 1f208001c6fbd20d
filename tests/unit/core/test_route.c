/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_route.c - routing tables: client ids, filters, matching, the cache, dedup.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "core/epoch.h"
#include "core/msg.h"
#include "core/route.h"
#include "core/sess.h"
#include "core/tindex.h"

static mq_epoch_t *ep;
static mq_epoch_rec_t *rec;
static mq_tindex_t *ix;
static mq_route_t *r0, *r1; /* two workers' tables over one index */
static mq_shared_t *sh;
static mq_sess_limits_t lim = {.max_inflight = 10};
static mq_sess_home_t home = {.limits = &lim};
static mq_msg_t *msgs[16];
static int n_msgs;

/* A message at 'qos' published by the broker (kept until teardown). */
static const mq_msg_t *M(uint8_t qos)
{
    mq_msg_t *m = mq_msg_new("t", 1, "x", 1, qos, false);
    msgs[n_msgs++] = m;
    return m;
}

static void setup(void)
{
    ep = mq_epoch_new(2);
    rec = mq_epoch_register(ep, 0);
    ix = mq_tindex_new(ep);
    sh = mq_shared_new();
    r0 = mq_route_new(ix, 0, 2, rec, sh);
    r1 = mq_route_new(ix, 1, 2, rec, sh); /* the test thread acts for both workers */
}

static void teardown(void)
{
    while (n_msgs > 0)
        mq_msg_unref(msgs[--n_msgs]);
    mq_route_free(r0);
    mq_route_free(r1);
    mq_shared_free(sh);
    mq_tindex_free(ix);
    mq_epoch_quiescent(rec);
    mq_epoch_free(ep);
}

TestSuite(route, .init = setup, .fini = teardown);

static mq_sess_t *sess(mq_route_t *r, const char *id)
{
    mq_sess_t *s = mq_sess_new(id, strlen(id), XXH3_64bits(id, strlen(id)), false, &home);
    mq_route_add(r, s);
    return s;
}

static mq_sess_t *find(mq_route_t *r, const char *id)
{
    return mq_route_find(r, id, strlen(id), XXH3_64bits(id, strlen(id)));
}

Test(route, sessions_are_found_by_client_id_and_dropped)
{
    mq_sess_t *a = sess(r0, "alpha"), *b = sess(r0, "beta");
    cr_assert(eq(ptr, find(r0, "alpha"), a));
    cr_assert(eq(ptr, find(r0, "beta"), b));
    cr_assert(eq(ptr, find(r0, "gamma"), NULL));
    cr_assert(eq(sz, mq_route_count(r0), 2));
    mq_route_drop(r0, a);
    cr_assert(eq(ptr, find(r0, "alpha"), NULL));
    cr_assert(eq(ptr, find(r0, "beta"), b));
    cr_assert(eq(sz, mq_route_count(r0), 1));
}

Test(route, many_sessions_survive_growth_and_removal_in_any_order)
{
    enum { N = 2000 };
    char id[32];
    mq_sess_t *s[N];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "client-%d", i);
        s[i] = sess(r0, id);
    }
    for (int i = 0; i < N; i += 3) /* every third goes: clusters must shift back correctly */
        mq_route_drop(r0, s[i]);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "client-%d", i);
        cr_assert(eq(ptr, find(r0, id), i % 3 == 0 ? NULL : s[i]), "%s", id);
    }
    size_t pos = 0, seen = 0;
    while (mq_route_next(r0, &pos))
        seen++;
    cr_assert(eq(sz, seen, mq_route_count(r0)));
    cr_assert(eq(sz, seen, (size_t)(N - (N + 2) / 3)));
}

Test(route, ids_with_the_same_hash_are_told_apart)
{
    /* two sessions forced onto one hash value: the id itself decides */
    mq_sess_t *a = mq_sess_new("one", 3, 42, false, &home);
    mq_sess_t *b = mq_sess_new("two", 3, 42, false, &home);
    mq_route_add(r0, a);
    mq_route_add(r0, b);
    cr_assert(eq(ptr, mq_route_find(r0, "one", 3, 42), a));
    cr_assert(eq(ptr, mq_route_find(r0, "two", 3, 42), b));
    mq_route_drop(r0, a);
    cr_assert(eq(ptr, mq_route_find(r0, "two", 3, 42), b));
}

/* Matches 'topic' on 'r' and returns the mask; n0 and n1 receive the id counts per worker. */
static uint64_t match(mq_route_t *r, const char *topic, uint32_t *n0, uint32_t *n1)
{
    uint64_t m = mq_route_match(r, topic, strlen(topic));
    (void)mq_route_take(r, 0, n0);
    (void)mq_route_take(r, 1, n1);
    return m;
}

Test(route, a_match_names_the_workers_with_subscribers_and_their_filter_ids)
{
    mq_sess_t *a = sess(r0, "a"), *b = sess(r1, "b");
    mq_route_subscribe(r0, a, "x/+", 3, 1, NULL, NULL);
    mq_route_subscribe(r1, b, "x/#", 3, 2, NULL, NULL);
    uint32_t n0, n1;
    cr_assert(eq(u64, match(r0, "x/y", &n0, &n1), 3));
    cr_assert(eq(u32, n0, 1));
    cr_assert(eq(u32, n1, 1));
    cr_assert(eq(u64, match(r0, "z", &n0, &n1), 0));
    cr_assert(eq(u32, n0 + n1, 0));
}

Test(route, resolve_gives_one_delivery_per_session_at_its_highest_qos)
{
    mq_sess_t *a = sess(r0, "a"), *b = sess(r0, "b");
    mq_route_subscribe(r0, a, "t/+", 3, 0, NULL, NULL);
    mq_route_subscribe(r0, a, "t/#", 3, 2, NULL, NULL);
    mq_route_subscribe(r0, a, "t/1", 3, 1, NULL, NULL);
    mq_route_subscribe(r0, b, "t/1", 3, 1, NULL, NULL);
    uint32_t n0, n1;
    match(r0, "t/1", &n0, &n1);
    cr_assert(eq(u32, n0, 3));
    uint32_t n;
    const uint64_t *ids = mq_route_take(r0, 0, &n);
    uint64_t copy[3];
    memcpy(copy, ids, sizeof(copy));
    const mq_route_dest_t *d;
    uint32_t k = mq_route_resolve(r0, copy, n, M(2), false, &d);
    cr_assert(eq(u32, k, 2));
    for (uint32_t i = 0; i < k; i++) {
        if (d[i].sess == a)
            cr_assert(eq(u8, d[i].qos, 2), "a's QoS is the highest of its three");
        else
            cr_assert(eq(u8, d[i].qos, 1));
    }
    /* the message's QoS caps it, unless upgrade_outgoing_qos */
    k = mq_route_resolve(r0, copy, n, M(0), false, &d);
    cr_assert(eq(u32, k, 2));
    cr_assert(eq(u8, d[0].qos, 0));
    cr_assert(eq(u8, d[1].qos, 0));
    k = mq_route_resolve(r0, copy, n, M(0), true, &d);
    for (uint32_t i = 0; i < k; i++)
        cr_assert(eq(u8, d[i].qos, d[i].sess == a ? 2 : 1));
}

Test(route, resolve_carries_the_best_grant_and_skips_revoked_subscriptions)
{
    mq_sess_t *a = sess(r0, "a"), *b = sess(r0, "b"), *c = sess(r0, "c");
    mq_sub_t *a_all = mq_route_subscribe(r0, a, "g/#", 3, 1, NULL, NULL);
    mq_sub_t *a_one = mq_route_subscribe(r0, a, "g/1", 3, 1, NULL, NULL);
    mq_sub_t *b_all = mq_route_subscribe(r0, b, "g/#", 3, 1, NULL, NULL);
    mq_sub_t *c_one = mq_route_subscribe(r0, c, "g/1", 3, 1, NULL, NULL);
    /* a's second subscription may have moved its first (route.h) */
    cr_assert(eq(ptr, a_one, mq_sess_find_sub(a, "g/1", 3)));
    a_all = mq_sess_find_sub(a, "g/#", 3);
    cr_assert(eq(u8, a_all->grant, 2), "a new subscription is full");
    mq_route_set_grant(r0, a, a_all, 1); /* partial */
    mq_route_set_grant(r0, b, b_all, 1);
    mq_route_set_grant(r0, c, c_one, 0); /* revoked */
    (void)a_one;                         /* stays full: a's delivery needs no check */
    uint32_t n0, n1, n;
    match(r0, "g/1", &n0, &n1);
    uint64_t copy[2];
    const uint64_t *ids = mq_route_take(r0, 0, &n);
    cr_assert(eq(u32, n, 2));
    memcpy(copy, ids, sizeof(copy));
    const mq_route_dest_t *d;
    uint32_t k = mq_route_resolve(r0, copy, n, M(1), false, &d);
    cr_assert(eq(u32, k, 2), "c's revoked subscription receives nothing");
    for (uint32_t i = 0; i < k; i++) {
        cr_assert(d[i].sess == a || d[i].sess == b);
        cr_assert(eq(u8, d[i].grant, d[i].sess == a ? 2 : 1));
    }
    /* one filter: the path without de-duplication skips revoked entries too */
    mq_route_set_grant(r0, b, b_all, 0);
    mq_route_set_grant(r0, a, a_all, 0);
    match(r0, "g/2", &n0, &n1);
    ids = mq_route_take(r0, 0, &n);
    cr_assert(eq(u32, n, 1));
    cr_assert(eq(u32, mq_route_resolve(r0, ids, n, M(1), false, &d), 0));
}

Test(route, resubscribing_replaces_the_qos_and_unsubscribing_removes_interest)
{
    mq_sess_t *a = sess(r0, "a");
    mq_route_subscribe(r0, a, "q", 1, 0, NULL, NULL);
    mq_route_subscribe(r0, a, "q", 1, 2, NULL, NULL);
    cr_assert(eq(u32, a->n_subs, 1));
    uint32_t n0, n1, n;
    match(r0, "q", &n0, &n1);
    const uint64_t *ids0 = mq_route_take(r0, 0, &n);
    const mq_route_dest_t *d;
    cr_assert(eq(u32, mq_route_resolve(r0, ids0, n, M(2), false, &d), 1));
    cr_assert(eq(u8, d[0].qos, 2));
    cr_assert(mq_route_unsubscribe(r0, a, "q", 1));
    cr_assert(not(mq_route_unsubscribe(r0, a, "q", 1)));
    cr_assert(eq(u64, match(r0, "q", &n0, &n1), 0), "no worker is interested any more");
}

Test(route, a_filter_stays_while_another_session_of_the_worker_holds_it)
{
    mq_sess_t *a = sess(r0, "a"), *b = sess(r0, "b");
    mq_route_subscribe(r0, a, "f", 1, 1, NULL, NULL);
    mq_route_subscribe(r0, b, "f", 1, 1, NULL, NULL);
    mq_route_drop(r0, a);
    uint32_t n0, n1, n;
    cr_assert(eq(u64, match(r0, "f", &n0, &n1), 1));
    const uint64_t *ids0 = mq_route_take(r0, 0, &n);
    const mq_route_dest_t *d;
    cr_assert(eq(u32, mq_route_resolve(r0, ids0, n, M(1), false, &d), 1));
    cr_assert(eq(ptr, d[0].sess, b));
}

Test(route, the_cache_serves_a_repeated_topic_until_the_index_changes)
{
    mq_sess_t *a = sess(r0, "a");
    mq_route_subscribe(r0, a, "c/+", 3, 1, NULL, NULL);
    uint32_t n0, n1;
    match(r0, "c/1", &n0, &n1);
    match(r0, "c/1", &n0, &n1);
    mq_route_cache_stats_t st = mq_route_cache_stats(r0);
    cr_assert(eq(u64, st.hits, 1));
    cr_assert(eq(u64, st.misses, 1));
    mq_sess_t *b = sess(r1, "b");
    mq_route_subscribe(r1, b, "c/#", 3, 1, NULL, NULL); /* the index changes: the entry is stale */
    cr_assert(eq(u64, match(r0, "c/1", &n0, &n1), 3), "the new subscriber is seen at once");
    cr_assert(eq(u64, mq_route_cache_stats(r0).misses, 2));
}

Test(route, a_filter_unsubscribed_after_the_match_is_skipped_on_delivery)
{
    mq_sess_t *a = sess(r0, "a");
    mq_route_subscribe(r0, a, "g", 1, 1, NULL, NULL);
    uint32_t n0, n1, n;
    match(r0, "g", &n0, &n1);
    uint64_t id = mq_route_take(r0, 0, &n)[0];
    mq_route_unsubscribe(r0, a, "g", 1);
    const mq_route_dest_t *d;
    cr_assert(eq(u32, mq_route_resolve(r0, &id, 1, M(1), false, &d), 0));
}

Test(route, many_overlapping_filters_deduplicate_across_many_sessions)
{
    enum { S = 300 };
    char id[16];
    mq_sess_t *s[S];
    for (int i = 0; i < S; i++) {
        snprintf(id, sizeof(id), "s%d", i);
        s[i] = sess(r0, id);
        mq_route_subscribe(r0, s[i], "m/#", 3, 0, NULL, NULL);
        mq_route_subscribe(r0, s[i], "m/+/z", 5, 1, NULL, NULL);
        if (i % 2)
            mq_route_subscribe(r0, s[i], "m/y/z", 5, 2, NULL, NULL);
    }
    uint32_t n0, n1, n;
    match(r0, "m/y/z", &n0, &n1);
    cr_assert(eq(u32, n0, 3));
    const uint64_t *ids0 = mq_route_take(r0, 0, &n);
    const mq_route_dest_t *d;
    uint32_t k = mq_route_resolve(r0, ids0, n, M(2), false, &d);
    cr_assert(eq(u32, k, S));
    for (uint32_t i = 0; i < k; i++) {
        int idx = -1;
        for (int j = 0; j < S; j++)
            if (s[j] == d[i].sess)
                idx = j;
        cr_assert(ge(int, idx, 0));
        cr_assert(eq(u8, d[i].qos, idx % 2 ? 2 : 1));
    }
}

/* ---- MQTT 5 subscription options ------------------------------------------------------------ */

Test(route, no_local_skips_the_publisher_and_rap_keeps_the_retain_flag)
{
    mq_sess_t *a = sess(r0, "a"), *b = sess(r0, "b");
    mq_route_opts_t nl = {.flags = MQ_SUB_NO_LOCAL}, rap = {.flags = MQ_SUB_RAP};
    mq_route_subscribe(r0, a, "n", 1, 1, &nl, NULL);
    mq_route_subscribe(r0, b, "n", 1, 1, &rap, NULL);
    mq_msg_t *m = mq_msg_new("n", 1, "x", 1, 1, true);
    m->origin = a->id_hash; /* published by a */
    uint32_t n0, n1, n;
    match(r0, "n", &n0, &n1);
    const uint64_t *ids0 = mq_route_take(r0, 0, &n);
    const mq_route_dest_t *d;
    cr_assert(eq(u32, mq_route_resolve(r0, ids0, n, m, false, &d), 1));
    cr_assert(eq(ptr, d[0].sess, b));
    cr_assert(d[0].retain, "Retain As Published keeps the flag");
    m->origin = 0; /* published by someone else: a gets it, without the retain flag */
    cr_assert(eq(u32, mq_route_resolve(r0, ids0, n, m, false, &d), 2));
    for (int i = 0; i < 2; i++)
        cr_assert(eq(int, d[i].retain, d[i].sess == b));
    mq_msg_unref(m);
}

Test(route, every_matching_subscription_identifier_is_delivered_once_per_session)
{
    mq_sess_t *a = sess(r0, "a"), *b = sess(r0, "b");
    mq_route_opts_t i1 = {.sub_id = 11}, i2 = {.sub_id = 22}, i3 = {.sub_id = 33};
    mq_route_subscribe(r0, a, "s/+", 3, 1, &i1, NULL);
    mq_route_subscribe(r0, a, "s/#", 3, 0, &i2, NULL);
    mq_route_subscribe(r0, b, "s/#", 3, 1, &i3, NULL);
    mq_route_subscribe(r0, b, "s/x", 3, 1, NULL, NULL);
    uint32_t n0, n1, n;
    match(r0, "s/x", &n0, &n1);
    const uint64_t *ids0 = mq_route_take(r0, 0, &n);
    const mq_route_dest_t *d;
    uint32_t k = mq_route_resolve(r0, ids0, n, M(1), false, &d);
    cr_assert(eq(u32, k, 2));
    for (uint32_t i = 0; i < k; i++) {
        if (d[i].sess == a) {
            cr_assert(eq(u32, d[i].n_sub_ids, 2));
            uint32_t x = d[i].sub_ids[0], y = d[i].sub_ids[1];
            bool both = (x == 11 && y == 22) || (x == 22 && y == 11);
            cr_assert(both, "ids %u and %u", x, y);
            cr_assert(eq(u8, d[i].qos, 1));
        } else {
            cr_assert(eq(u32, d[i].n_sub_ids, 1));
            cr_assert(eq(u32, d[i].sub_ids[0], 33));
        }
    }
}

Test(route, an_excluded_subscription_gives_no_identifier_to_any_session)
{
    /* S: "a/#" No Local id 5 and "a/b" id 7; T: "a/b" id 9; S publishes to "a/b" */
    mq_sess_t *s = sess(r0, "s"), *t = sess(r0, "t");
    mq_route_opts_t nl5 = {.flags = MQ_SUB_NO_LOCAL, .sub_id = 5}, i7 = {.sub_id = 7},
                    i9 = {.sub_id = 9};
    mq_route_subscribe(r0, s, "a/#", 3, 1, &nl5, NULL);
    mq_route_subscribe(r0, s, "a/b", 3, 1, &i7, NULL);
    mq_route_subscribe(r0, t, "a/b", 3, 1, &i9, NULL);
    mq_msg_t *m = mq_msg_new("a/b", 3, "x", 1, 1, false);
    m->origin = s->id_hash;
    uint32_t n0, n1, n;
    match(r0, "a/b", &n0, &n1);
    const uint64_t *ids0 = mq_route_take(r0, 0, &n);
    const mq_route_dest_t *d;
    uint32_t k = mq_route_resolve(r0, ids0, n, m, false, &d);
    cr_assert(eq(u32, k, 2));
    for (uint32_t i = 0; i < k; i++) {
        cr_assert(eq(u32, d[i].n_sub_ids, 1), "session %s", d[i].sess->client_id);
        cr_assert(eq(u32, d[i].sub_ids[0], d[i].sess == s ? 7 : 9), "session %s",
                  d[i].sess->client_id);
    }
    mq_msg_unref(m);
}

Test(route, a_resubscription_reports_it_is_not_new_and_replaces_the_options)
{
    mq_sess_t *a = sess(r0, "a");
    bool is_new;
    mq_route_opts_t i1 = {.sub_id = 5};
    mq_route_subscribe(r0, a, "r", 1, 1, &i1, &is_new);
    cr_assert(is_new);
    mq_route_subscribe(r0, a, "r", 1, 1, NULL, &is_new);
    cr_assert(not(is_new));
    uint32_t n0, n1, n;
    match(r0, "r", &n0, &n1);
    const uint64_t *ids0 = mq_route_take(r0, 0, &n);
    const mq_route_dest_t *d;
    cr_assert(eq(u32, mq_route_resolve(r0, ids0, n, M(1), false, &d), 1));
    cr_assert(eq(u32, d[0].n_sub_ids, 0), "the identifier went with the old options");
}

/* ---- shared subscriptions ------------------------------------------------------------------- */

Test(route, a_shared_group_gets_each_message_once_in_turn_across_workers)
{
    mq_sess_t *a = sess(r0, "a"), *b = sess(r1, "b"), *c = sess(r1, "c"), *p = sess(r0, "plain");
    mq_route_subscribe(r0, a, "$share/g/sh/+", 13, 1, NULL, NULL);
    mq_route_subscribe(r1, b, "$share/g/sh/+", 13, 1, NULL, NULL);
    mq_route_subscribe(r1, c, "$share/g/sh/+", 13, 1, NULL, NULL);
    mq_route_subscribe(r0, p, "sh/+", 4, 1, NULL, NULL);
    int got[3] = {0};
    for (int i = 0; i < 30; i++) {
        uint32_t n0, n1, k0, k1;
        match(r0, "sh/x", &n0, &n1);
        const mq_route_pick_t *p0 = mq_route_take_shared(r0, 0, &k0);
        const mq_route_pick_t *p1 = mq_route_take_shared(r0, 1, &k1);
        cr_assert(eq(u32, k0 + k1, 1), "one pick per message for one group");
        const mq_route_pick_t *pk = k0 ? p0 : p1;
        mq_route_t *owner = k0 ? r0 : r1;
        const mq_route_dest_t *d;
        cr_assert(eq(
            u32, mq_route_resolve_shared(owner, pk->fid, pk->gid, pk->token, M(1), false, &d), 1));
        /* in the order the members joined: a, b, c, a, b, c, ... */
        mq_sess_t *want = i % 3 == 0 ? a : i % 3 == 1 ? b : c;
        cr_assert(eq(ptr, d->sess, want), "message %d", i);
        got[d->sess == a ? 0 : d->sess == b ? 1 : 2]++;
        /* the plain subscriber of the same filter gets it too, the members not as plain */
        uint32_t n;
        const uint64_t *ids0 = mq_route_take(r0, 0, &n);
        cr_assert(eq(u32, mq_route_resolve(r0, ids0, n, M(1), false, &d), 1));
        cr_assert(eq(ptr, d[0].sess, p));
        while (n_msgs > 0)
            mq_msg_unref(msgs[--n_msgs]);
    }
    cr_assert(eq(int, got[0], 10));
    cr_assert(eq(int, got[1], 10));
    cr_assert(eq(int, got[2], 10));
    cr_assert(eq(u64, mq_shared_count(sh), 1));
    mq_route_drop(r0, a);
    mq_route_drop(r1, b);
    mq_route_drop(r1, c);
    cr_assert(eq(u64, mq_shared_count(sh), 0), "the last member's leaving ends the group");
}

Test(route, a_shared_group_skips_offline_members_while_one_is_online)
{
    mq_sess_t *a = sess(r0, "a"), *b = sess(r1, "b");
    mq_route_subscribe(r0, a, "$share/g/off/+", 14, 1, NULL, NULL);
    mq_route_subscribe(r1, b, "$share/g/off/+", 14, 1, NULL, NULL);
    uint64_t fid = a->subs[0].fid, gid = mq_shared_gid("g", 1);
    unsigned w;
    uint64_t token;
    mq_route_set_online(r0, a, false);
    for (int i = 0; i < 4; i++) { /* b every time, whose turn it is or not */
        cr_assert(mq_shared_pick_one(sh, fid, gid, 0, false, &w, &token));
        cr_assert(eq(u64, token, b->id_hash));
        cr_assert(eq(u32, w, 1));
    }
    cr_assert(mq_shared_pick_one(sh, fid, gid, b->id_hash, false, &w, &token),
              "excluding b leaves a, offline but the only one: picked (its session queues)");
    cr_assert(eq(u64, token, a->id_hash));
    cr_assert(not(mq_shared_pick_one(sh, fid, gid, b->id_hash, true, &w, &token)),
              "online only: a hand-on on connection loss does not move messages to a");
    mq_route_set_online(r1, b, false); /* everyone offline: in turn again */
    int got_a = 0;
    for (int i = 0; i < 4; i++) {
        cr_assert(mq_shared_pick_one(sh, fid, gid, 0, false, &w, &token));
        got_a += token == a->id_hash;
    }
    cr_assert(eq(int, got_a, 2));
    mq_route_set_online(r0, a, true);
    cr_assert(mq_shared_pick_one(sh, fid, gid, 0, false, &w, &token));
    cr_assert(eq(u64, token, a->id_hash));
    cr_assert(mq_shared_pick_one(sh, fid, gid, 0, false, &w, &token));
    cr_assert(eq(u64, token, a->id_hash), "a is back, b is not");
    mq_route_drop(r0, a);
    mq_route_drop(r1, b);
}
