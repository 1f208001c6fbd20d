/* SPDX-License-Identifier: MIT */
/* core/shared.c - the shared subscription registry: filter id -> groups -> members per worker. */
#include "core/shared.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <xxhash.h>

#include "core/map.h"
#include "core/mem.h"
#include "core/rc.h"

typedef struct member {
    unsigned worker;
    atomic_bool offline; /* its session has no connection: picked only if no one else is */
    uint64_t token;
} member_t;

typedef struct group {
    uint64_t gid;
    member_t *m; /* in the order they joined; under the lock */
    uint32_t n, cap;
    atomic_uint_fast32_t rr; /* messages picked for so far; any reader advances it */
} group_t;

typedef struct groups {
    group_t *g;
    uint32_t n, cap;
} groups_t;

struct mq_shared {
    pthread_rwlock_t lock;
    mq_map_t by_fid; /* fid -> groups_t */
    atomic_uint_fast64_t n_groups;
};

mq_shared_t *mq_shared_new(void)
{
    mq_shared_t *sh = mq_calloc(1, sizeof(*sh));
    MQ_ASSERT(pthread_rwlock_init(&sh->lock, NULL) == 0);
    mq_map_init(&sh->by_fid);
    atomic_init(&sh->n_groups, 0);
    return sh;
}

void mq_shared_free(mq_shared_t *sh)
{
    if (sh == NULL)
        return;
    for (size_t i = 0; i < sh->by_fid.cap; i++) {
        if (sh->by_fid.slots[i].key) {
            groups_t *gs = sh->by_fid.slots[i].val;
            for (uint32_t k = 0; k < gs->n; k++)
                mq_free(gs->g[k].m);
            mq_free(gs->g);
            mq_free(gs);
        }
    }
    mq_map_fini(&sh->by_fid);
    pthread_rwlock_destroy(&sh->lock);
    mq_free(sh);
}

uint64_t mq_shared_gid(const char *group, size_t len)
{
    return XXH3_64bits(group, len) | 1;
}

static group_t *find(groups_t *gs, uint64_t gid)
{
    for (uint32_t i = 0; gs && i < gs->n; i++)
        if (gs->g[i].gid == gid)
            return &gs->g[i];
    return NULL;
}

void mq_shared_join(mq_shared_t *sh, uint64_t fid, uint64_t gid, unsigned worker, uint64_t token)
{
    pthread_rwlock_wrlock(&sh->lock);
    groups_t *gs = mq_map_get(&sh->by_fid, fid);
    if (gs == NULL) {
        gs = mq_calloc(1, sizeof(*gs));
        mq_map_put(&sh->by_fid, fid, gs);
    }
    group_t *g = find(gs, gid);
    if (g == NULL) {
        if (gs->n == gs->cap)
            gs->g = mq_grow(gs->g, &gs->cap, sizeof(*gs->g), 2);
        g = &gs->g[gs->n++];
        memset(g, 0, sizeof(*g));
        g->gid = gid;
        atomic_init(&g->rr, 0);
        atomic_fetch_add_explicit(&sh->n_groups, 1, memory_order_relaxed);
    }
    if (g->n == g->cap)
        g->m = mq_grow(g->m, &g->cap, sizeof(*g->m), 4);
    member_t *m = &g->m[g->n++];
    m->worker = worker;
    m->token = token;
    atomic_init(&m->offline, false);
    pthread_rwlock_unlock(&sh->lock);
}

void mq_shared_leave(mq_shared_t *sh, uint64_t fid, uint64_t gid, unsigned worker, uint64_t token)
{
    pthread_rwlock_wrlock(&sh->lock);
    groups_t *gs = mq_map_get(&sh->by_fid, fid);
    group_t *g = find(gs, gid);
    for (uint32_t k = 0; g && k < g->n; k++) {
        if (g->m[k].worker != worker || g->m[k].token != token)
            continue;
        /* keep the order (the flags move with their members: no reader holds the lock) */
        memmove(&g->m[k], &g->m[k + 1], (g->n - k - 1) * sizeof(*g->m));
        if (--g->n == 0) { /* the last member: the group goes */
            mq_free(g->m);
            *g = gs->g[--gs->n];
            atomic_fetch_sub_explicit(&sh->n_groups, 1, memory_order_relaxed);
            if (gs->n == 0) {
                mq_map_del(&sh->by_fid, fid);
                mq_free(gs->g);
                mq_free(gs);
            }
        }
        break;
    }
    pthread_rwlock_unlock(&sh->lock);
}

bool mq_shared_any(const mq_shared_t *sh)
{
    return atomic_load_explicit(&((mq_shared_t *)sh)->n_groups, memory_order_relaxed) > 0;
}

uint64_t mq_shared_count(const mq_shared_t *sh)
{
    return atomic_load_explicit(&((mq_shared_t *)sh)->n_groups, memory_order_relaxed);
}

void mq_shared_set_online(mq_shared_t *sh, uint64_t fid, uint64_t gid, unsigned worker,
                          uint64_t token, bool online)
{
    pthread_rwlock_rdlock(&sh->lock); /* the members stay where they are; the flag is atomic */
    group_t *g = find(mq_map_get(&sh->by_fid, fid), gid);
    for (uint32_t k = 0; g && k < g->n; k++)
        if (g->m[k].worker == worker && g->m[k].token == token)
            atomic_store_explicit(&g->m[k].offline, !online, memory_order_relaxed);
    pthread_rwlock_unlock(&sh->lock);
}

/* The member of 'g' whose turn it is: the next online one from the turn counter on, or, when
 * every member is offline and not 'online_only', the one at the counter (its session queues
 * the message); never 'exclude'. -1 when there is none. */
static int64_t turn(group_t *g, uint64_t exclude, bool online_only)
{
    uint32_t k = (uint32_t)atomic_fetch_add_explicit(&g->rr, 1, memory_order_relaxed) % g->n;
    int64_t fallback = -1;
    for (uint32_t tried = 0; tried < g->n; tried++, k = (k + 1) % g->n) {
        if (g->m[k].token == exclude)
            continue;
        if (!atomic_load_explicit(&g->m[k].offline, memory_order_relaxed))
            return k;
        if (fallback < 0 && !online_only)
            fallback = k;
    }
    return fallback;
}

bool mq_shared_pick_one(mq_shared_t *sh, uint64_t fid, uint64_t gid, uint64_t exclude,
                        bool online_only, unsigned *worker, uint64_t *token)
{
    bool found = false;
    pthread_rwlock_rdlock(&sh->lock);
    groups_t *gs = mq_map_get(&sh->by_fid, fid);
    for (uint32_t i = 0; gs && i < gs->n && !found; i++) {
        group_t *g = &gs->g[i];
        if (g->gid != gid || g->n == 0)
            continue;
        int64_t k = turn(g, exclude, online_only);
        if (k >= 0) {
            *worker = g->m[k].worker;
            *token = g->m[k].token;
            found = true;
        }
    }
    pthread_rwlock_unlock(&sh->lock);
    return found;
}

void mq_shared_pick(mq_shared_t *sh, uint64_t fid, mq_shared_pick_cb *cb, void *arg)
{
    pthread_rwlock_rdlock(&sh->lock);
    groups_t *gs = mq_map_get(&sh->by_fid, fid);
    for (uint32_t i = 0; gs && i < gs->n; i++) {
        group_t *g = &gs->g[i];
        int64_t k = turn(g, 0, false); /* tokens are client id hashes: 0 is no member's */
        if (k >= 0)
            cb(arg, fid, g->gid, g->m[k].worker, g->m[k].token);
    }
    pthread_rwlock_unlock(&sh->lock);
}
