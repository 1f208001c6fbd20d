/* SPDX-License-Identifier: MIT */
/* core/route.c - sessions by id, the filter table, topic matching with a cache, de-duplication. */
#include "core/route.h"

#include <string.h>
#include <xxhash.h>

#include "core/map.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/topic.h"

/* A cached match result: the (filter id, worker mask) pairs of a topic, valid while the
 * index generation it was computed under is current. */
#define CACHE_SLOTS 256 /* direct-mapped by topic hash */
#define CACHE_PAIRS 8   /* results with more pairs are not cached */
#define CACHE_TOPIC 64  /* longer topics are not cached */

typedef struct cache_entry {
    uint64_t gen; /* index generation; 0 = empty */
    uint64_t hash;
    uint16_t tlen;
    uint8_t n;
    char topic[CACHE_TOPIC];
    uint64_t fid[CACHE_PAIRS];
    uint64_t workers[CACHE_PAIRS];
} cache_entry_t;

/* A filter as this worker knows it: the sessions subscribed to it. */
typedef struct lsub {
    mq_sess_t *sess;
    uint64_t gid; /* shared group, or 0 for a plain subscription */
    uint32_t sub_id;
    uint8_t qos;
    uint8_t flags; /* MQ_SUB_NO_LOCAL | MQ_SUB_RAP */
    uint8_t grant; /* the subscription's mq_sub_t.grant, where the delivery path reads it */
} lsub_t;          /* 24 bytes: most filters have one subscriber on a worker */

typedef struct lfilter {
    uint32_t n, cap;
    lsub_t subs[];
} lfilter_t; /* one allocation: 32 bytes for the usual single subscriber */

/* Per-delivery de-duplication: session -> index in 'dest', valid while 'gen' matches. */
typedef struct seen {
    uint64_t gen;
    const mq_sess_t *sess;
    uint32_t idx;
} seen_t;

struct mq_route {
    mq_tindex_t *ix;
    mq_shared_t *sh;
    mq_route_pick_t **picks; /* per target worker: shared groups picked for the match */
    uint32_t *n_picks, *cap_picks;

    mq_epoch_rec_t *ep;
    unsigned self, n_workers;
    mq_sess_t **ids; /* open addressing by id hash; NULL = empty */
    size_t ids_cap, n_ids;
    mq_map_t filters; /* filter id -> lfilter_t */
    uint64_t **tfids; /* per target worker: the filter ids of the match in progress */
    uint32_t *n_tfids, *cap_tfids;
    uint64_t touched;
    cache_entry_t *cache;
    cache_entry_t *rec; /* the entry being filled by the match in progress, or NULL */
    mq_route_cache_stats_t cstats;
    mq_route_dest_t *dest;
    uint32_t cap_dest;
    uint32_t *sids; /* the destinations' Subscription Identifiers, in order */
    uint32_t cap_sids;
    seen_t *seen; /* power-of-two table, at least twice the candidates */
    size_t cap_seen;
    uint64_t gen;
};

mq_route_t *mq_route_new(mq_tindex_t *ix, unsigned self, unsigned n_workers, mq_epoch_rec_t *ep,
                         mq_shared_t *sh)
{
    mq_route_t *r = mq_calloc(1, sizeof(*r));
    r->ix = ix;
    r->sh = sh;
    r->picks = mq_calloc(n_workers, sizeof(*r->picks));
    r->n_picks = mq_calloc(n_workers, sizeof(*r->n_picks));
    r->cap_picks = mq_calloc(n_workers, sizeof(*r->cap_picks));
    r->ep = ep;
    r->self = self;
    r->n_workers = n_workers;
    mq_map_init(&r->filters);
    r->tfids = mq_calloc(n_workers, sizeof(*r->tfids));
    r->n_tfids = mq_calloc(n_workers, sizeof(*r->n_tfids));
    r->cap_tfids = mq_calloc(n_workers, sizeof(*r->cap_tfids));
    r->cache = mq_calloc(CACHE_SLOTS, sizeof(*r->cache));
    return r;
}

/* ---- sessions by client id: linear probing, backward-shift deletion ------------------------ */

/* The slot comes from the hash's high half: its low bits chose the worker (hash % n_workers),
 * so with a power-of-two worker count they are the same for every session of this table and
 * would leave all but 1 slot in n_workers without a home. */
static size_t id_slot(const mq_route_t *r, uint64_t hash)
{
    return (size_t)(hash >> 32) & (r->ids_cap - 1);
}

mq_sess_t *mq_route_find(const mq_route_t *r, const char *id, size_t len, uint64_t hash)
{
    if (r->ids_cap == 0)
        return NULL;
    for (size_t i = id_slot(r, hash);; i = (i + 1) & (r->ids_cap - 1)) {
        mq_sess_t *s = r->ids[i];
        if (s == NULL)
            return NULL;
        if (s->id_hash == hash && s->id_len == len && memcmp(s->client_id, id, len) == 0)
            return s;
    }
}

static void id_place(mq_route_t *r, mq_sess_t *s)
{
    size_t i = id_slot(r, s->id_hash);
    while (r->ids[i])
        i = (i + 1) & (r->ids_cap - 1);
    r->ids[i] = s;
}

void mq_route_add(mq_route_t *r, mq_sess_t *s)
{
    /* the load stays at or under three quarters: at one half, the table was 16-32 bytes of
     * every session's memory (issue 13); linear probing stays short enough for a lookup that
     * happens once per CONNECT */
    if ((r->n_ids + 1) * 4 > r->ids_cap * 3) {
        mq_sess_t **old = r->ids;
        size_t old_cap = r->ids_cap;
        r->ids_cap = old_cap ? old_cap * 2 : 16;
        r->ids = mq_calloc(r->ids_cap, sizeof(*r->ids));
        for (size_t i = 0; i < old_cap; i++)
            if (old[i])
                id_place(r, old[i]);
        mq_free(old);
    }
    id_place(r, s);
    r->n_ids++;
}

static void id_remove(mq_route_t *r, const mq_sess_t *s)
{
    size_t mask = r->ids_cap - 1, i = id_slot(r, s->id_hash);
    while (r->ids[i] != s) {
        MQ_ASSERT(r->ids[i] != NULL); /* the session is in the table */
        i = (i + 1) & mask;
    }
    /* shift later entries of the cluster back so that no lookup stops early */
    for (size_t j = (i + 1) & mask; r->ids[j]; j = (j + 1) & mask) {
        size_t home = id_slot(r, r->ids[j]->id_hash);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            r->ids[i] = r->ids[j];
            i = j;
        }
    }
    r->ids[i] = NULL;
    r->n_ids--;
}

size_t mq_route_count(const mq_route_t *r)
{
    return r->n_ids;
}

mq_sess_t *mq_route_next(const mq_route_t *r, size_t *pos)
{
    for (size_t i = *pos; i < r->ids_cap; i++) {
        if (r->ids[i]) {
            *pos = i + 1;
            return r->ids[i];
        }
    }
    *pos = r->ids_cap;
    return NULL;
}

/* ---- the filter table ---------------------------------------------------------------------- */

static void lfilter_add(mq_route_t *r, uint64_t fid, mq_sess_t *s, lsub_t ls)
{
    lfilter_t *lf = mq_map_get(&r->filters, fid);
    if (lf == NULL || lf->n == lf->cap) {
        uint32_t cap = lf ? lf->cap * 2 : 1; /* most filters have one subscriber on a worker */
        MQ_ASSERT(cap > (lf ? lf->cap : 0)); /* a count that would wrap */
        lf = mq_realloc(lf, sizeof(*lf) + (size_t)cap * sizeof(lf->subs[0]));
        if (cap == 1)
            lf->n = 0;
        lf->cap = cap;
        mq_map_put(&r->filters, fid, lf);
    }
    ls.sess = s;
    lf->subs[lf->n++] = ls;
}

static void lfilter_set(mq_route_t *r, uint64_t fid, const mq_sess_t *s, lsub_t ls)
{
    lfilter_t *lf = mq_map_get(&r->filters, fid);
    for (uint32_t i = 0; lf && i < lf->n; i++) {
        if (lf->subs[i].sess == s && lf->subs[i].gid == ls.gid) {
            ls.sess = lf->subs[i].sess;
            lf->subs[i] = ls;
        }
    }
}

/* The filter as the index knows it: a shared subscription's filter after "$share/GROUP/";
 * *gid gets the group (0 for a plain one). */
static mq_str_t index_filter(const char *filter, size_t len, uint64_t *gid)
{
    mq_str_t share, rest;
    if (mq_topic_split_shared(filter, len, &share, &rest)) {
        *gid = mq_shared_gid(share.ptr, share.len);
        return rest;
    }
    *gid = 0;
    return (mq_str_t){filter, len};
}

void mq_route_set_grant(mq_route_t *r, mq_sess_t *s, mq_sub_t *sub, uint8_t grant)
{
    sub->grant = grant;
    uint64_t gid;
    (void)index_filter(mq_sub_filter(sub), sub->len, &gid);
    lfilter_t *lf = mq_map_get(&r->filters, sub->fid);
    for (uint32_t i = 0; lf && i < lf->n; i++)
        if (lf->subs[i].sess == s && lf->subs[i].gid == gid)
            lf->subs[i].grant = grant;
}

/* Removes 's' from the filter; when no session of this worker is left on it, this worker's
 * interest bit in the shared index goes too. */
static void unsubscribe_one(mq_route_t *r, mq_sess_t *s, mq_sub_t *sub)
{
    uint64_t gid;
    mq_str_t f = index_filter(mq_sub_filter(sub), sub->len, &gid);
    lfilter_t *lf = mq_map_get(&r->filters, sub->fid);
    if (lf) {
        /* linear in the filter's local subscribers: subscribe-time work; a back-index would
         * make it O(1) for very large fan-outs */
        for (uint32_t i = 0; i < lf->n; i++) {
            if (lf->subs[i].sess == s && lf->subs[i].gid == gid) {
                lf->subs[i] = lf->subs[--lf->n];
                break;
            }
        }
        if (lf->n == 0) {
            mq_map_del(&r->filters, sub->fid);
            mq_free(lf);
            mq_tindex_remove_interest(r->ix, f.ptr, f.len, r->self, r->ep);
        }
    }
    if (gid && r->sh)
        mq_shared_leave(r->sh, sub->fid, gid, r->self, s->id_hash);
    mq_sess_remove_sub(s, sub);
}

mq_sub_t *mq_route_subscribe(mq_route_t *r, mq_sess_t *s, const char *filter, size_t len,
                             uint8_t qos, const mq_route_opts_t *o, bool *is_new)
{
    lsub_t ls = {.qos = qos,
                 .flags = o ? o->flags : 0,
                 .sub_id = o ? o->sub_id : 0,
                 .grant = 2}; /* full until mq_route_set_grant says else */
    mq_str_t f = index_filter(filter, len, &ls.gid);
    mq_sub_t *sub = mq_sess_find_sub(s, filter, len);
    if (is_new)
        *is_new = sub == NULL;
    if (sub == NULL) {
        uint64_t fid = mq_tindex_add_interest(r->ix, f.ptr, f.len, r->self, r->ep);
        sub = mq_sess_add_sub(s, filter, len, fid, qos);
        lfilter_add(r, fid, s, ls);
        if (ls.gid && r->sh)
            mq_shared_join(r->sh, fid, ls.gid, r->self, s->id_hash);
    } else { /* [MQTT-3.8.4-3] replaces the existing subscription */
        sub->qos = qos;
        lfilter_set(r, sub->fid, s, ls);
    }
    sub->opts = ls.flags;
    sub->sub_id = ls.sub_id;
    return sub;
}

bool mq_route_unsubscribe(mq_route_t *r, mq_sess_t *s, const char *filter, size_t len)
{
    mq_sub_t *sub = mq_sess_find_sub(s, filter, len);
    if (sub == NULL)
        return false;
    unsubscribe_one(r, s, sub);
    return true;
}

void mq_route_set_online(mq_route_t *r, const mq_sess_t *s, bool online)
{
    for (uint32_t k = 0; r->sh && k < s->n_subs; k++) {
        uint64_t gid;
        (void)index_filter(mq_sub_filter(&s->subs[k]), s->subs[k].len, &gid);
        if (gid)
            mq_shared_set_online(r->sh, s->subs[k].fid, gid, r->self, s->id_hash, online);
    }
}

void mq_route_drop(mq_route_t *r, mq_sess_t *s)
{
    while (s->n_subs > 0)
        unsubscribe_one(r, s, &s->subs[s->n_subs - 1]);
    id_remove(r, s);
    mq_sess_free(s);
}

void mq_route_free(mq_route_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->ids_cap; i++) {
        mq_sess_t *s = r->ids[i];
        if (s == NULL)
            continue;
        for (uint32_t k = 0; k < s->n_subs; k++) {
            uint64_t gid;
            mq_str_t f = index_filter(mq_sub_filter(&s->subs[k]), s->subs[k].len, &gid);
            mq_tindex_remove_interest(r->ix, f.ptr, f.len, r->self, r->ep);
            if (gid && r->sh)
                mq_shared_leave(r->sh, s->subs[k].fid, gid, r->self, s->id_hash);
        }
        mq_sess_free(s);
    }
    for (size_t i = 0; i < r->filters.cap; i++)
        if (r->filters.slots[i].key)
            mq_free(r->filters.slots[i].val);
    mq_map_fini(&r->filters);
    for (unsigned i = 0; i < r->n_workers; i++) {
        mq_free(r->tfids[i]);
        mq_free(r->picks[i]);
    }
    mq_free(r->picks);
    mq_free(r->n_picks);
    mq_free(r->cap_picks);
    mq_free(r->tfids);
    mq_free(r->n_tfids);
    mq_free(r->cap_tfids);
    mq_free(r->cache);
    mq_free(r->dest);
    mq_free(r->sids);
    mq_free(r->seen);
    mq_free(r->ids);
    mq_free(r);
}

/* ---- matching -------------------------------------------------------------------------------- */

static void add_pick(void *arg, uint64_t fid, uint64_t gid, unsigned w, uint64_t token)
{
    mq_route_t *r = arg;
    if (r->n_picks[w] == r->cap_picks[w])
        r->picks[w] = mq_grow(r->picks[w], &r->cap_picks[w], sizeof(mq_route_pick_t), 4);
    r->picks[w][r->n_picks[w]++] = (mq_route_pick_t){fid, gid, token};
    r->touched |= 1ull << w;
}

static void collect(void *arg, uint64_t fid, uint64_t workers)
{
    mq_route_t *r = arg;
    if (r->sh && mq_shared_any(r->sh)) /* a fresh pick per message, cached match or not */
        mq_shared_pick(r->sh, fid, add_pick, r);
    cache_entry_t *rec = r->rec;
    if (rec) { /* remember the pair for the cache; too many and the result is not kept */
        if (rec->n < CACHE_PAIRS) {
            rec->fid[rec->n] = fid;
            rec->workers[rec->n] = workers;
            rec->n++;
        } else {
            r->rec = NULL;
            rec->gen = 0;
        }
    }
    while (workers) {
        unsigned b = (unsigned)__builtin_ctzll(workers);
        workers &= workers - 1;
        if (r->n_tfids[b] == r->cap_tfids[b])
            r->tfids[b] = mq_grow(r->tfids[b], &r->cap_tfids[b], sizeof(uint64_t), 16);
        r->tfids[b][r->n_tfids[b]++] = fid;
        r->touched |= 1ull << b;
    }
}

/* The generation is read before matching: a change during the match leaves the cached
 * entry stale, never wrong. */
uint64_t mq_route_match(mq_route_t *r, const char *topic, size_t len)
{
    r->touched = 0;
    for (unsigned i = 0; i < r->n_workers; i++)
        r->n_tfids[i] = r->n_picks[i] = 0;
    if (len > CACHE_TOPIC) {
        mq_tindex_match(r->ix, topic, len, collect, r);
        return r->touched;
    }
    uint64_t gen = mq_tindex_generation(r->ix);
    uint64_t h = XXH3_64bits(topic, len);
    cache_entry_t *e = &r->cache[h & (CACHE_SLOTS - 1)];
    if (e->gen == gen && e->hash == h && e->tlen == len && memcmp(e->topic, topic, len) == 0) {
        r->cstats.hits++;
        for (uint8_t i = 0; i < e->n; i++)
            collect(r, e->fid[i], e->workers[i]);
        return r->touched;
    }
    r->cstats.misses++;
    e->gen = 0;
    e->n = 0;
    r->rec = e;
    mq_tindex_match(r->ix, topic, len, collect, r);
    if (r->rec) { /* complete: keep it */
        e->hash = h;
        e->tlen = (uint16_t)len;
        memcpy(e->topic, topic, len);
        e->gen = gen;
    }
    r->rec = NULL;
    return r->touched;
}

const uint64_t *mq_route_take(mq_route_t *r, unsigned worker, uint32_t *n)
{
    *n = r->n_tfids[worker];
    return r->tfids[worker];
}

const mq_route_pick_t *mq_route_take_shared(mq_route_t *r, unsigned worker, uint32_t *n)
{
    *n = r->n_picks[worker];
    return r->picks[worker];
}

mq_route_cache_stats_t mq_route_cache_stats(const mq_route_t *r)
{
    return r->cstats;
}

/* ---- resolving a delivery -------------------------------------------------------------------- */

static uint8_t deliver_qos(uint8_t sub_qos, uint8_t msg_qos, bool upgrade)
{
    return upgrade || sub_qos < msg_qos ? sub_qos : msg_qos;
}

static void reserve_dest(mq_route_t *r, uint32_t need)
{
    while (r->cap_dest < need)
        r->dest = mq_grow(r->dest, &r->cap_dest, sizeof(*r->dest), 64);
    while (r->cap_sids < need)
        r->sids = mq_grow(r->sids, &r->cap_sids, sizeof(*r->sids), 64);
}

/* A seen-table with room for 'n' sessions at a load of at most one half. */
static void reserve_seen(mq_route_t *r, size_t n)
{
    if (r->cap_seen >= n * 2)
        return;
    size_t cap = r->cap_seen ? r->cap_seen : 64;
    while (cap < n * 2)
        cap *= 2;
    mq_free(r->seen);
    r->seen = mq_calloc(cap, sizeof(*r->seen));
    r->cap_seen = cap;
    r->gen = 0;
}

/* True when 'ls' does not take 'msg': a shared subscription (by group pick alone), one an ACL
 * revoked (grant 0), or No Local and the message its own session's [MQTT-3.8.3-3]. */
static bool excluded(const lsub_t *ls, const mq_msg_t *msg)
{
    return ls->gid || ls->grant == 0 ||
           ((ls->flags & MQ_SUB_NO_LOCAL) && msg->origin == ls->sess->id_hash);
}

/* The destination of 'ls' for 'msg', or false when it is excluded. */
static bool dest_of(const lsub_t *ls, const mq_msg_t *msg, bool upgrade, mq_route_dest_t *d)
{
    if (excluded(ls, msg))
        return false;
    *d = (mq_route_dest_t){.sess = ls->sess,
                           .qos = deliver_qos(ls->qos, msg->qos, upgrade),
                           .retain = (ls->flags & MQ_SUB_RAP) && msg->retain,
                           .grant = ls->grant};
    return true;
}

/* Adds 'd' to dest, or merges it into the entry its session already has: the highest QoS,
 * the retain flag if any subscription keeps it, the best grant (a topic that a full
 * subscription matches is readable, so one full match spares the check). Subscription
 * Identifiers are gathered in a second pass (gather_ids). */
static void dedup_add(mq_route_t *r, uint32_t *n, const mq_route_dest_t *d)
{
    size_t mask = r->cap_seen - 1;
    size_t i = (size_t)XXH3_64bits(&d->sess, sizeof(d->sess)) & mask;
    while (r->seen[i].gen == r->gen) {
        if (r->seen[i].sess == d->sess) {
            mq_route_dest_t *e = &r->dest[r->seen[i].idx];
            if (d->qos > e->qos)
                e->qos = d->qos;
            e->retain |= d->retain;
            e->n_sub_ids += d->n_sub_ids;
            if (d->grant > e->grant)
                e->grant = d->grant;
            return;
        }
        i = (i + 1) & mask;
    }
    r->seen[i] = (seen_t){r->gen, d->sess, *n};
    r->dest[(*n)++] = *d;
}

/* Second pass: each destination's identifiers, contiguous in r->sids; the subscriptions are
 * the first pass's (dest_of), so each session's identifiers fill the room counted for it. */
static void gather_ids(mq_route_t *r, const mq_msg_t *msg, const uint64_t *fids, uint32_t n,
                       uint32_t count)
{
    uint32_t off = 0;
    for (uint32_t k = 0; k < count; k++) { /* n_sub_ids is the count from dedup_add */
        uint32_t c = r->dest[k].n_sub_ids;
        r->dest[k].sub_ids = r->sids + off;
        r->dest[k].n_sub_ids = 0;
        off += c;
    }
    size_t mask = r->cap_seen - 1;
    for (uint32_t i = 0; i < n; i++) {
        const lfilter_t *lf = mq_map_get(&r->filters, fids[i]);
        for (uint32_t k = 0; lf && k < lf->n; k++) {
            if (lf->subs[k].sub_id == 0 || excluded(&lf->subs[k], msg))
                continue;
            const mq_sess_t *s = lf->subs[k].sess;
            size_t j = (size_t)XXH3_64bits(&s, sizeof(s)) & mask;
            while (r->seen[j].gen == r->gen && r->seen[j].sess != s)
                j = (j + 1) & mask;
            if (r->seen[j].gen != r->gen)
                continue; /* not a destination (the first pass decides) */
            mq_route_dest_t *d = &r->dest[r->seen[j].idx];
            ((uint32_t *)d->sub_ids)[d->n_sub_ids++] = lf->subs[k].sub_id;
        }
    }
}

static uint32_t resolve_one(mq_route_t *r, const lfilter_t *lf, const mq_msg_t *msg, bool upgrade)
{
    uint32_t count = 0;
    for (uint32_t k = 0; lf && k < lf->n; k++) {
        mq_route_dest_t *d = &r->dest[count];
        if (!dest_of(&lf->subs[k], msg, upgrade, d))
            continue;
        if (lf->subs[k].sub_id) {
            r->sids[count] = lf->subs[k].sub_id;
            d->sub_ids = &r->sids[count];
            d->n_sub_ids = 1;
        }
        count++;
    }
    return count;
}

uint32_t mq_route_resolve(mq_route_t *r, const uint64_t *fids, uint32_t n, const mq_msg_t *msg,
                          bool upgrade, const mq_route_dest_t **out)
{
    uint32_t total = 0, count = 0;
    bool any_ids = false;
    for (uint32_t i = 0; i < n; i++) {
        const lfilter_t *lf = mq_map_get(&r->filters, fids[i]);
        total += lf ? lf->n : 0;
    }
    reserve_dest(r, total);
    *out = r->dest;
    if (n == 1) /* one filter: each session is on it once, nothing to de-duplicate */
        return resolve_one(r, mq_map_get(&r->filters, fids[0]), msg, upgrade);
    reserve_seen(r, total);
    r->gen++;
    for (uint32_t i = 0; i < n; i++) {
        const lfilter_t *lf = mq_map_get(&r->filters, fids[i]);
        for (uint32_t k = 0; lf && k < lf->n; k++) {
            mq_route_dest_t d;
            if (!dest_of(&lf->subs[k], msg, upgrade, &d))
                continue;
            d.n_sub_ids = lf->subs[k].sub_id != 0;
            any_ids |= d.n_sub_ids != 0;
            dedup_add(r, &count, &d);
        }
    }
    if (any_ids)
        gather_ids(r, msg, fids, n, count);
    return count;
}

uint32_t mq_route_resolve_shared(mq_route_t *r, uint64_t fid, uint64_t gid, uint64_t token,
                                 const mq_msg_t *msg, bool upgrade, const mq_route_dest_t **out)
{
    const lfilter_t *lf = mq_map_get(&r->filters, fid);
    reserve_dest(r, 1);
    *out = r->dest;
    for (uint32_t k = 0; lf && k < lf->n; k++) {
        const lsub_t *ls = &lf->subs[k];
        if (ls->gid != gid || ls->sess->id_hash != token || ls->grant == 0)
            continue;
        r->dest[0] = (mq_route_dest_t){.sess = ls->sess,
                                       .qos = deliver_qos(ls->qos, msg->qos, upgrade),
                                       .retain = (ls->flags & MQ_SUB_RAP) && msg->retain,
                                       .grant = ls->grant};
        if (ls->sub_id) {
            r->sids[0] = ls->sub_id;
            r->dest[0].sub_ids = r->sids;
            r->dest[0].n_sub_ids = 1;
        }
        return 1;
    }
    return 0; /* the member left since the publisher picked it */
}
