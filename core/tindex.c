/* SPDX-License-Identifier: MIT */
/* core/tindex.c - topic tree with copy-free lock-free lookups: per-node open-addressing child
 * tables whose slots are published with release stores, grown by copy and epoch retirement. */
#include "core/tindex.h"

#include <stdatomic.h>
#include <string.h>
#include <pthread.h>
#include <xxhash.h>

#include "core/jrec.h"
#include "core/mem.h"
#include "core/rc.h"

#define N_SHARDS 64u
#define TOMB ((node_t *)1) /* a removed child: lookups skip it, inserts may reuse it */

typedef struct node node_t;

/* A node's children. Slots only ever change from NULL or TOMB to a node, or from a node to
 * TOMB, each with a release store, so a reader sees either the old or the new occupant. */
typedef struct kids {
    mq_epoch_entry_t retire;
    uint32_t cap;  /* power of two */
    uint32_t used; /* slots not NULL (nodes and tombstones); writer only */
    _Atomic(node_t *) slot[];
} kids_t;

/* 56 bytes before the level, so a node with a level of up to 7 bytes is in jemalloc's 64-byte
 * class, up to 23 in the 80-byte one. What only the writer reads shares its bytes with the
 * retirement entry: a node is retired once it is out of the tree and the writer is done with it,
 * while readers may still be in it, reading the other fields. */
struct node {
    union {
        mq_epoch_entry_t retire;
        /* writer only, shard lock held, and never read from a retired node (the bytes are
         * the epoch entry's then): nothing may walk up a node's parents outside the writer */
        struct {
            node_t *parent;
            uint32_t n_kids; /* live children */
        } w;
    };
    _Atomic(kids_t *) kids;
    atomic_uint_fast64_t interest; /* bit per worker with subscribers to this exact filter */
    _Atomic(mq_msg_t *) retained;
    uint64_t fid;  /* stable filter id, never reused */
    uint32_t hash; /* the low half of the level's hash */
    uint32_t len;
    char level[];
};
_Static_assert(offsetof(node_t, level) == 56, "a node's fixed part is 56 bytes");

typedef struct shard {
    pthread_mutex_t lock; /* writers of this shard; readers never take it (a pthread mutex, not
                           * C11 mtx_t: ThreadSanitizer does not see glibc's mtx_lock) */
    node_t *root;
    uint64_t last_seq; /* the last retained change's number (msg->rseq); writer, lock held */
} shard_t;

struct mq_tindex {
    mq_epoch_t *ep;
    atomic_uint_fast64_t next_fid;
    atomic_uint_fast64_t generation; /* bumped whenever a match result may change */
    atomic_uint_fast64_t n_retained;
    atomic_uint_fast64_t retained_bytes;
    atomic_uint_fast64_t retained_changes;
    uint64_t hash_plus, hash_hash;
    bool numbered; /* retained changes are numbered (persistence on) */
    shard_t shards[N_SHARDS];
};

static inline uint64_t level_hash(const char *p, size_t len)
{
    return XXH3_64bits(p, len);
}

static node_t *node_new(mq_tindex_t *ix, node_t *parent, const char *level, size_t len,
                        uint64_t hash)
{
    node_t *n = mq_calloc(1, sizeof(*n) + len + 1);
    n->w.parent = parent;
    n->fid = atomic_fetch_add_explicit(&ix->next_fid, 1, memory_order_relaxed);
    n->hash = (uint32_t)hash;
    n->len = (uint32_t)len;
    memcpy(n->level, level, len);
    return n;
}

mq_tindex_t *mq_tindex_new(mq_epoch_t *ep)
{
    mq_tindex_t *ix = mq_calloc(1, sizeof(*ix));
    ix->ep = ep;
    atomic_init(&ix->next_fid, 1);
    atomic_init(&ix->generation, 1);
    ix->hash_plus = level_hash("+", 1);
    ix->hash_hash = level_hash("#", 1);
    for (unsigned i = 0; i < N_SHARDS; i++) {
        MQ_ASSERT(pthread_mutex_init(&ix->shards[i].lock, NULL) == 0);
        ix->shards[i].root = node_new(ix, NULL, "", 0, 0);
    }
    return ix;
}

static void free_tree(node_t *n)
{
    kids_t *k = atomic_load_explicit(&n->kids, memory_order_relaxed);
    for (uint32_t i = 0; k && i < k->cap; i++) {
        node_t *c = atomic_load_explicit(&k->slot[i], memory_order_relaxed);
        if (c && c != TOMB)
            free_tree(c);
    }
    mq_free(k);
    mq_msg_unref(atomic_load_explicit(&n->retained, memory_order_relaxed));
    mq_free(n);
}

void mq_tindex_free(mq_tindex_t *ix)
{
    if (ix == NULL)
        return;
    for (unsigned i = 0; i < N_SHARDS; i++) {
        free_tree(ix->shards[i].root);
        pthread_mutex_destroy(&ix->shards[i].lock);
    }
    mq_free(ix);
}

/* ---- child tables ------------------------------------------------------------------------- */

static inline uint32_t home(uint64_t hash, uint32_t cap)
{
    /* from the half a node keeps; the low bits chose the shard */
    return ((uint32_t)hash >> 6) & (cap - 1);
}

static node_t *lookup(const node_t *n, const char *p, size_t len, uint64_t h)
{
    /* acquire pairs with the release publishing a (new) table in kids_insert */
    kids_t *k = atomic_load_explicit(&((node_t *)n)->kids, memory_order_acquire);
    if (k == NULL)
        return NULL;
    for (uint32_t i = home(h, k->cap);; i = (i + 1) & (k->cap - 1)) {
        /* acquire pairs with the release store of the slot: the node's fields are set */
        node_t *c = atomic_load_explicit(&k->slot[i], memory_order_acquire);
        if (c == NULL)
            return NULL;
        if (c != TOMB && c->hash == (uint32_t)h && c->len == len && memcmp(c->level, p, len) == 0)
            return c;
    }
}

static void free_kids(mq_epoch_entry_t *e)
{
    mq_free((kids_t *)((char *)e - offsetof(kids_t, retire)));
}

static void put_slot(kids_t *k, node_t *c)
{
    for (uint32_t i = home(c->hash, k->cap);; i = (i + 1) & (k->cap - 1)) {
        node_t *s = atomic_load_explicit(&k->slot[i], memory_order_relaxed);
        if (s == NULL || s == TOMB) {
            if (s == NULL)
                k->used++;
            atomic_store_explicit(&k->slot[i], c, memory_order_release);
            return;
        }
    }
}

/* Writer, shard lock held. */
static void kids_insert(node_t *n, node_t *c, mq_epoch_rec_t *r)
{
    kids_t *k = atomic_load_explicit(&n->kids, memory_order_relaxed);
    if (k == NULL || (k->used + 1) * 4 > k->cap * 3) {
        uint32_t cap = 4;
        while ((n->w.n_kids + 1) * 2 > cap) /* at most half full after a rebuild */
            cap *= 2;
        kids_t *nk = mq_calloc(1, sizeof(*nk) + cap * sizeof(nk->slot[0]));
        nk->cap = cap;
        for (uint32_t i = 0; k && i < k->cap; i++) {
            node_t *s = atomic_load_explicit(&k->slot[i], memory_order_relaxed);
            if (s && s != TOMB)
                put_slot(nk, s);
        }
        /* release: the table's contents are visible before the table */
        atomic_store_explicit(&n->kids, nk, memory_order_release);
        if (k)
            mq_epoch_retire(r, &k->retire, free_kids);
        k = nk;
    }
    put_slot(k, c);
    n->w.n_kids++;
}

static void free_node(mq_epoch_entry_t *e)
{
    node_t *n = (node_t *)((char *)e - offsetof(node_t, retire));
    mq_free(atomic_load_explicit(&n->kids, memory_order_relaxed));
    mq_free(n);
}

static void kids_remove(node_t *n, node_t *c, mq_epoch_rec_t *r)
{
    kids_t *k = atomic_load_explicit(&n->kids, memory_order_relaxed);
    for (uint32_t i = home(c->hash, k->cap);; i = (i + 1) & (k->cap - 1)) {
        if (atomic_load_explicit(&k->slot[i], memory_order_relaxed) == c) {
            atomic_store_explicit(&k->slot[i], TOMB, memory_order_release);
            break;
        }
    }
    n->w.n_kids--;
    mq_epoch_retire(r, &c->retire, free_node);
}

/* ---- writers ------------------------------------------------------------------------------ */

static size_t first_level_len(const char *p, size_t len)
{
    const char *s = memchr(p, '/', len);
    return s ? (size_t)(s - p) : len;
}

static shard_t *shard_of(mq_tindex_t *ix, const char *p, size_t len)
{
    return &ix->shards[level_hash(p, first_level_len(p, len)) & (N_SHARDS - 1)];
}

/* Walks 'topic' level by level from the shard root; creates missing nodes when 'create'. */
static node_t *walk(mq_tindex_t *ix, shard_t *sh, const char *p, size_t len, bool create,
                    mq_epoch_rec_t *r)
{
    node_t *n = sh->root;
    const char *end = p + len;
    for (;;) {
        const char *s = memchr(p, '/', (size_t)(end - p));
        size_t l = (size_t)((s ? s : end) - p);
        uint64_t h = level_hash(p, l);
        node_t *c = lookup(n, p, l, h);
        if (c == NULL) {
            if (!create)
                return NULL;
            c = node_new(ix, n, p, l, h);
            kids_insert(n, c, r);
        }
        n = c;
        if (s == NULL)
            return n;
        p = s + 1;
    }
}

static void prune(node_t *n, mq_epoch_rec_t *r)
{
    while (n->w.parent && n->w.n_kids == 0 &&
           atomic_load_explicit(&n->interest, memory_order_relaxed) == 0 &&
           atomic_load_explicit(&n->retained, memory_order_relaxed) == NULL) {
        node_t *p = n->w.parent; /* read before kids_remove retires n */
        kids_remove(p, n, r);
        n = p;
    }
}

uint64_t mq_tindex_generation(const mq_tindex_t *ix)
{
    return atomic_load_explicit(&ix->generation, memory_order_acquire);
}

uint64_t mq_tindex_add_interest(mq_tindex_t *ix, const char *filter, size_t len, unsigned w,
                                mq_epoch_rec_t *r)
{
    MQ_ASSERT(w < MQ_TINDEX_MAX_WORKERS);
    shard_t *sh = shard_of(ix, filter, len);
    pthread_mutex_lock(&sh->lock);
    node_t *n = walk(ix, sh, filter, len, true, r);
    /* release: a reader that sees the bit also sees the node (published before) */
    uint64_t old = atomic_fetch_or_explicit(&n->interest, 1ull << w, memory_order_release);
    if (!(old & (1ull << w))) /* after the change: a reader that sees it sees the bit */
        atomic_fetch_add_explicit(&ix->generation, 1, memory_order_release);
    uint64_t fid = n->fid;
    pthread_mutex_unlock(&sh->lock);
    return fid;
}

void mq_tindex_remove_interest(mq_tindex_t *ix, const char *filter, size_t len, unsigned w,
                               mq_epoch_rec_t *r)
{
    shard_t *sh = shard_of(ix, filter, len);
    pthread_mutex_lock(&sh->lock);
    node_t *n = walk(ix, sh, filter, len, false, r);
    if (n) {
        uint64_t old = atomic_fetch_and_explicit(&n->interest, ~(1ull << w), memory_order_relaxed);
        if (old & (1ull << w))
            atomic_fetch_add_explicit(&ix->generation, 1, memory_order_release);
        prune(n, r);
    }
    pthread_mutex_unlock(&sh->lock);
}

static void free_retained(mq_epoch_entry_t *e)
{
    mq_msg_unref((mq_msg_t *)((char *)e - offsetof(mq_msg_t, retire)));
}

void mq_tindex_number_changes(mq_tindex_t *ix, uint64_t floor)
{
    ix->numbered = true;
    for (unsigned i = 0; i < N_SHARDS; i++)
        ix->shards[i].last_seq = floor;
}

int mq_tindex_retain(mq_tindex_t *ix, mq_msg_t *msg, mq_epoch_rec_t *r)
{
    mq_str_t t = mq_msg_topic(msg);
    shard_t *sh = shard_of(ix, t.ptr, t.len);
    int delta = 0;
    /* the clock is read outside the lock; the lock orders the numbers */
    uint64_t now = ix->numbered ? mq_jrec_wall_us() : 0;
    pthread_mutex_lock(&sh->lock);
    if (ix->numbered) {
        sh->last_seq = mq_jrec_next(sh->last_seq, now);
        msg->rseq = sh->last_seq; /* before the exchange publishes it to readers */
    }
    node_t *n = walk(ix, sh, t.ptr, t.len, msg->payload_len > 0, r);
    if (n) {
        mq_msg_t *neu = msg->payload_len > 0 ? mq_msg_ref(msg) : NULL;
        /* release: a reader that loads the message sees its bytes */
        mq_msg_t *old = atomic_exchange_explicit(&n->retained, neu, memory_order_acq_rel);
        if (old) {
            atomic_fetch_sub_explicit(&ix->retained_bytes, old->payload_len, memory_order_relaxed);
            mq_epoch_retire(r, &old->retire, free_retained);
        }
        if (neu)
            atomic_fetch_add_explicit(&ix->retained_bytes, neu->payload_len, memory_order_relaxed);
        delta = (neu != NULL) - (old != NULL);
        if (neu || old)
            atomic_fetch_add_explicit(&ix->retained_changes, 1, memory_order_relaxed);
        if (delta)
            atomic_fetch_add_explicit(&ix->n_retained, (uint64_t)(int64_t)delta,
                                      memory_order_relaxed);
        if (neu == NULL)
            prune(n, r);
    }
    pthread_mutex_unlock(&sh->lock);
    return delta;
}

uint64_t mq_tindex_retained_count(const mq_tindex_t *ix)
{
    return atomic_load_explicit(&ix->n_retained, memory_order_relaxed);
}

uint64_t mq_tindex_retained_bytes(const mq_tindex_t *ix)
{
    return atomic_load_explicit(&ix->retained_bytes, memory_order_relaxed);
}

/* ---- readers ------------------------------------------------------------------------------ */

typedef struct mctx {
    const mq_tindex_t *ix;
    mq_tindex_match_cb *cb;
    void *arg;
    size_t n;
} mctx_t;

static void report(mctx_t *m, const node_t *n)
{
    /* acquire pairs with the release fetch_or in add_interest */
    uint64_t w = atomic_load_explicit(&((node_t *)n)->interest, memory_order_acquire);
    if (w) {
        m->cb(m->arg, n->fid, w);
        m->n++;
    }
}

/* 'n' matched every level before 'p'; p == NULL when no level is left. */
static void match_from(mctx_t *m, const node_t *n, const char *p, const char *end)
{
    if (p == NULL) {
        report(m, n);
        const node_t *h = lookup(n, "#", 1, m->ix->hash_hash); /* "a/#" matches "a" */
        if (h)
            report(m, h);
        return;
    }
    const char *s = memchr(p, '/', (size_t)(end - p));
    size_t l = (size_t)((s ? s : end) - p);
    const char *next = s ? s + 1 : NULL;
    const node_t *c = lookup(n, p, l, level_hash(p, l));
    if (c)
        match_from(m, c, next, end);
    if ((c = lookup(n, "+", 1, m->ix->hash_plus)))
        match_from(m, c, next, end);
    if ((c = lookup(n, "#", 1, m->ix->hash_hash)))
        report(m, c);
}

size_t mq_tindex_match(const mq_tindex_t *ix, const char *topic, size_t len, mq_tindex_match_cb *cb,
                       void *arg)
{
    mctx_t m = {ix, cb, arg, 0};
    const char *end = topic + len;
    const char *s = memchr(topic, '/', len);
    size_t l = (size_t)((s ? s : end) - topic);
    const char *next = s ? s + 1 : NULL;
    uint64_t h = level_hash(topic, l);
    const node_t *c = lookup(ix->shards[h & (N_SHARDS - 1)].root, topic, l, h);
    if (c)
        match_from(&m, c, next, end);
    if (len > 0 && topic[0] == '$') /* [MQTT-4.7.2-1] */
        return m.n;
    if ((c = lookup(ix->shards[ix->hash_plus & (N_SHARDS - 1)].root, "+", 1, ix->hash_plus)))
        match_from(&m, c, next, end);
    if ((c = lookup(ix->shards[ix->hash_hash & (N_SHARDS - 1)].root, "#", 1, ix->hash_hash)))
        report(&m, c);
    return m.n;
}

typedef struct rctx {
    const mq_tindex_t *ix;
    mq_tindex_retained_cb *cb;
    void *arg;
    size_t n;
} rctx_t;

static void emit(rctx_t *rc, const node_t *n)
{
    /* acquire pairs with the exchange in mq_tindex_retain */
    mq_msg_t *msg = atomic_load_explicit(&((node_t *)n)->retained, memory_order_acquire);
    if (msg) {
        rc->cb(rc->arg, msg);
        rc->n++;
    }
}

static void each_child(rctx_t *rc, const node_t *n, bool skip_dollar,
                       void (*fn)(rctx_t *, const node_t *, const char *, const char *),
                       const char *p, const char *end)
{
    kids_t *k = atomic_load_explicit(&((node_t *)n)->kids, memory_order_acquire);
    for (uint32_t i = 0; k && i < k->cap; i++) {
        node_t *c = atomic_load_explicit(&k->slot[i], memory_order_acquire);
        if (c == NULL || c == TOMB || (skip_dollar && c->len > 0 && c->level[0] == '$'))
            continue;
        fn(rc, c, p, end);
    }
}

static void emit_subtree(rctx_t *rc, const node_t *n, const char *p, const char *end)
{
    emit(rc, n);
    each_child(rc, n, false, emit_subtree, p, end);
}

static void retained_from(rctx_t *rc, const node_t *n, const char *p, const char *end);

/* 'p' is the filter level to apply to the children of 'n' (or NULL: 'n' itself matched). */
static void apply_level(rctx_t *rc, const node_t *n, const char *p, const char *end, bool root)
{
    const char *s = memchr(p, '/', (size_t)(end - p));
    size_t l = (size_t)((s ? s : end) - p);
    const char *next = s ? s + 1 : NULL;
    if (l == 1 && p[0] == '#') {
        if (!root)
            emit(rc, n); /* "a/#" matches "a" */
        each_child(rc, n, root, emit_subtree, NULL, NULL);
    } else if (l == 1 && p[0] == '+') {
        each_child(rc, n, root, retained_from, next, end);
    } else {
        const node_t *c = lookup(n, p, l, level_hash(p, l));
        if (c)
            retained_from(rc, c, next, end);
    }
}

static void retained_from(rctx_t *rc, const node_t *n, const char *p, const char *end)
{
    if (p == NULL)
        emit(rc, n);
    else
        apply_level(rc, n, p, end, false);
}

size_t mq_tindex_retained(const mq_tindex_t *ix, const char *filter, size_t len,
                          mq_tindex_retained_cb *cb, void *arg)
{
    rctx_t rc = {ix, cb, arg, 0};
    size_t l = first_level_len(filter, len);
    bool wild = l == 1 && (filter[0] == '+' || filter[0] == '#');
    if (!wild) {
        uint64_t h = level_hash(filter, l);
        apply_level(&rc, ix->shards[h & (N_SHARDS - 1)].root, filter, filter + len, true);
        return rc.n;
    }
    /* a leading wildcard spans every shard; '$' topics are not matched [MQTT-4.7.2-1] */
    for (unsigned i = 0; i < N_SHARDS; i++)
        apply_level(&rc, ix->shards[i].root, filter, filter + len, true);
    return rc.n;
}

size_t mq_tindex_each_retained(const mq_tindex_t *ix, mq_tindex_retained_cb *cb, void *arg)
{
    rctx_t rc = {ix, cb, arg, 0};
    for (unsigned i = 0; i < N_SHARDS; i++)
        emit_subtree(&rc, ix->shards[i].root, NULL, NULL);
    return rc.n;
}

uint64_t mq_tindex_retained_changes(const mq_tindex_t *ix)
{
    return atomic_load_explicit(&ix->retained_changes, memory_order_relaxed);
}
