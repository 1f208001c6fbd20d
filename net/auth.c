/* SPDX-License-Identifier: MIT */
/* net/auth.c - the shared security state, its publication on reload, and the checks on it. */
#include "net/auth.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "core/log.h"
#include "core/mem.h"

typedef struct domain {
    mq_passwd_t *pw; /* owned; NULL = no password file */
    mq_acl_t *acl;   /* owned; NULL = no ACL file */
} domain_t;

struct mq_auth {
    mq_epoch_entry_t retire; /* embedded: retiring allocates nothing */
    uint64_t gen;
    unsigned n;
    domain_t d[];
};

mq_auth_t *mq_auth_new(unsigned n_domains)
{
    MQ_ASSERT(n_domains >= 1);
    mq_auth_t *a = mq_calloc(1, sizeof(*a) + n_domains * sizeof(domain_t));
    a->n = n_domains;
    return a;
}

void mq_auth_set_domain(mq_auth_t *a, unsigned d, mq_passwd_t *pw, mq_acl_t *acl)
{
    MQ_ASSERT(d < a->n);
    mq_passwd_free(a->d[d].pw);
    mq_acl_free(a->d[d].acl);
    a->d[d].pw = pw;
    a->d[d].acl = acl;
}

void mq_auth_free(mq_auth_t *a)
{
    if (a == NULL)
        return;
    for (unsigned i = 0; i < a->n; i++) {
        mq_passwd_free(a->d[i].pw);
        mq_acl_free(a->d[i].acl);
    }
    mq_free(a);
}

mq_auth_t *mq_auth_publish(mq_auth_slot_t *slot, mq_auth_t *a)
{
    a->gen = ++slot->last_gen;
    /* release pairs with the acquire in mq_auth_get: a reader sees the tables complete */
    return atomic_exchange_explicit(&slot->cur, a, memory_order_acq_rel);
}

void mq_auth_reload_begin(mq_auth_slot_t *slot)
{
    /* the wait counts from when the signal was first found pending, not from now */
    atomic_store(&slot->reloading, true);
}

void mq_auth_reload_end(mq_auth_slot_t *slot)
{
    atomic_store(&slot->reloading, false);
    atomic_fetch_add(&slot->reloads, 1); /* a wait start recorded for this one is stale now */
}

/* due_since: the reloads ended when the wait started (high bits), a valid bit, the ms */
#define SINCE_MS_BITS 40 /* 2^40 ms: 34 years of CLOCK_MONOTONIC */
#define SINCE_VALID (1ull << SINCE_MS_BITS)
#define SINCE_MS_MASK (SINCE_VALID - 1)
#define SINCE_GEN(x) ((x) & ((1ull << (63 - SINCE_MS_BITS)) - 1)) /* the bits that fit */

bool mq_auth_reload_due(mq_auth_slot_t *slot, uint64_t now_ms)
{
    if (slot->reload_signal == 0)
        return false;
    uint64_t ended = atomic_load(&slot->reloads); /* before the signal and the flag */
    /* the pending set, then the flag: the main thread raises the flag before it takes the
     * signal, both under the kernel's signal lock, so one of the two shows the reload */
    sigset_t pending;
    bool due = (sigpending(&pending) == 0 && sigismember(&pending, slot->reload_signal) == 1) ||
               atomic_load(&slot->reloading);
    if (!due)
        return false;
    uint64_t mark =
        SINCE_GEN(ended) << (SINCE_MS_BITS + 1) | SINCE_VALID | (now_ms & SINCE_MS_MASK);
    uint64_t cur = atomic_load(&slot->due_since);
    for (;;) {
        /* a start recorded before the last reload ended belongs to that one: replaced */
        if ((cur & SINCE_VALID) && cur >> (SINCE_MS_BITS + 1) == SINCE_GEN(ended))
            return (int64_t)(now_ms - (cur & SINCE_MS_MASK)) < MQ_AUTH_RELOAD_WAIT_MS;
        if (atomic_compare_exchange_weak(&slot->due_since, &cur, mark))
            return true; /* the first to find it due: its wait starts */
    }
}

static void free_retired(mq_epoch_entry_t *e)
{
    mq_auth_free((mq_auth_t *)((char *)e - offsetof(mq_auth_t, retire)));
}

void mq_auth_retire(mq_epoch_rec_t *rec, mq_auth_t *a)
{
    if (a)
        mq_epoch_retire(rec, &a->retire, free_retired);
}

uint64_t mq_auth_generation(const mq_auth_t *a)
{
    return a->gen;
}

/* ---- CONNECT ----------------------------------------------------------------------------- */

static size_t cache_slot(mq_str_t user)
{
    return (size_t)XXH3_64bits(user.ptr, user.len) % MQ_AUTH_CACHE_SLOTS;
}

/* Remembers verified credentials in a worker's cache. */
static void cache_put(mq_auth_cache_t *c, mq_str_t user, const mq_passwd_key_t *key)
{
    size_t i = cache_slot(user);
    c->key[i] = *key;
    c->used[i] = true;
}

/* Verifies through the cache: a $7$ entry costs PBKDF2 ('iterations' HMAC-SHA512 rounds) the
 * first time, one keyed hash afterwards while the same password table is in force. With
 * 'may_defer', a PBKDF2 run is not done here: MQ_RC_AGAIN. */
static enum mq_rc verify_cached(const mq_passwd_t *t, const mq_passwd_entry_t *e,
                                const mq_str_t *pw, mq_auth_cache_t *c, bool may_defer)
{
    if (c == NULL || mq_passwd_entry_hash(e) != MQ_PASSWD_SHA512_PBKDF2) /* $6$: one SHA-512 */
        return mq_passwd_verify(e, pw->ptr, pw->len) ? MQ_RC_SUCCESS : MQ_RC_NOT_AUTHORIZED;
    mq_passwd_key_t k;
    bool keyed = mq_passwd_cache_key(t, e, pw->ptr, pw->len, &k);
    size_t i = cache_slot(mq_passwd_entry_user(e));
    if (keyed && c->used[i] && mq_passwd_key_eq(&c->key[i], &k)) {
        c->hits++;
        return MQ_RC_SUCCESS;
    }
    if (may_defer)
        return MQ_RC_AGAIN;
    c->misses++;
    if (!mq_passwd_verify(e, pw->ptr, pw->len))
        return MQ_RC_NOT_AUTHORIZED;
    if (keyed)
        cache_put(c, mq_passwd_entry_user(e), &k);
    return MQ_RC_SUCCESS;
}

enum mq_rc mq_auth_connect(const mq_auth_t *a, unsigned d, bool allow_anonymous,
                           const mq_connect_t *cp, mq_auth_cache_t *cache, bool may_defer)
{
    MQ_ASSERT(d < a->n);
    const mq_passwd_t *t = a->d[d].pw;
    if (!cp->has_username || t == NULL) /* anonymous, or nothing to check a name against */
        return allow_anonymous ? MQ_RC_SUCCESS : MQ_RC_NOT_AUTHORIZED;
    const mq_passwd_entry_t *e = mq_passwd_find(t, cp->username.ptr, cp->username.len);
    if (e == NULL || !cp->has_password)
        return MQ_RC_NOT_AUTHORIZED;
    return verify_cached(t, e, &cp->password, cache, may_defer);
}

enum mq_rc mq_auth_admit(const mq_auth_t *a, const mq_server_listener_t *lo, const mq_connect_t *cp,
                         bool cert_user, const mq_sess_t *existing, mq_auth_cache_t *cache,
                         const mq_auth_pending_t *answered, bool may_defer, const char **why)
{
    const mq_str_t *user = cp->has_username ? &cp->username : NULL;
    enum mq_rc rc;
    if (cert_user) {
        rc = MQ_RC_SUCCESS; /* the certificate is the credential */
    } else if (answered &&
               answered->gen == a->gen) { /* the verifier's answer, for this very state */
        rc = answered->ok ? MQ_RC_SUCCESS : MQ_RC_NOT_AUTHORIZED;
        if (answered->ok && answered->has_key && cache)
            cache_put(cache, answered->user, &answered->key);
    } else {
        rc = mq_auth_connect(a, lo->auth_domain, lo->allow_anonymous, cp, cache, may_defer);
    }
    if (rc == MQ_RC_AGAIN)
        return rc;
    if (rc != MQ_RC_SUCCESS) {
        *why = user ? "bad user name or password" : "anonymous (allow_anonymous false)";
        return MQ_RC_NOT_AUTHORIZED;
    }
    if (existing && !mq_auth_same_owner(existing, user)) {
        *why = "client id in use by another user (session_owner_check)";
        return MQ_RC_CLIENT_ID_NOT_VALID;
    }
    return MQ_RC_SUCCESS;
}

/* ---- ACL ----------------------------------------------------------------------------------- */

static const mq_acl_t *acl_of(const mq_auth_t *a, unsigned d)
{
    return d < a->n ? a->d[d].acl : NULL;
}

static mq_acl_client_t client_of_sess(const mq_sess_t *s, mq_str_t *user)
{
    *user = (mq_str_t){s->username, s->user_len};
    return (mq_acl_client_t){.user = s->username ? user : NULL,
                             .client_id = {s->client_id, s->id_len}};
}

static bool may(const mq_auth_t *a, const mq_sess_t *s, const char *topic, size_t len,
                enum mq_acl_access access)
{
    const mq_acl_t *acl = acl_of(a, s->auth_domain);
    if (acl == NULL)
        return true;
    mq_str_t user;
    mq_acl_client_t c = client_of_sess(s, &user);
    return mq_acl_check(acl, &c, topic, len, access);
}

bool mq_auth_may_write(const mq_auth_t *a, const mq_sess_t *s, const char *topic, size_t len)
{
    return may(a, s, topic, len, MQ_ACL_WRITE);
}

bool mq_auth_may_read(const mq_auth_t *a, const mq_sess_t *s, const char *topic, size_t len)
{
    return may(a, s, topic, len, MQ_ACL_READ);
}

bool mq_auth_may_write_as(const mq_auth_t *a, unsigned d, const mq_str_t *user, mq_str_t client_id,
                          const char *topic, size_t len)
{
    const mq_acl_t *acl = acl_of(a, d);
    if (acl == NULL)
        return true;
    mq_acl_client_t c = {.user = user, .client_id = client_id};
    return mq_acl_check(acl, &c, topic, len, MQ_ACL_WRITE);
}

enum mq_acl_grant mq_auth_classify(const mq_auth_t *a, const mq_sess_t *s, const char *filter,
                                   size_t len)
{
    const mq_acl_t *acl = acl_of(a, s->auth_domain);
    if (acl == NULL)
        return MQ_ACL_GRANT_FULL;
    mq_str_t user;
    mq_acl_client_t c = client_of_sess(s, &user);
    return mq_acl_classify(acl, &c, filter, len);
}

static bool still_readable(void *arg, const mq_sess_t *s, const mq_msg_t *msg)
{
    mq_str_t t = mq_msg_topic(msg);
    return mq_auth_may_read(arg, s, t.ptr, t.len);
}

size_t mq_auth_reclassify_sess(const mq_auth_t *a, mq_route_t *r, mq_sess_t *s)
{
    size_t changed = 0;
    bool check_queue = false;
    for (uint32_t i = 0; i < s->n_subs; i++) {
        mq_sub_t *sub = &s->subs[i];
        uint8_t g = (uint8_t)mq_auth_classify(a, s, mq_sub_filter(sub), sub->len);
        check_queue |= g != MQ_ACL_GRANT_FULL; /* a partial one's rules may have changed too */
        if (g != sub->grant) {
            mq_route_set_grant(r, s, sub, g);
            changed++;
        }
    }
    /* what waits in the queue was allowed when it was queued: a topic the new rules deny goes
     * too, as mosquitto checks each message when it sends it */
    if (check_queue && mq_sess_queued(s) > 0)
        (void)mq_sess_filter_queue(s, still_readable, (void *)a); /* drops are in s->home */
    return changed;
}

size_t mq_auth_reclassify(const mq_auth_t *a, mq_route_t *r)
{
    size_t changed = 0, pos = 0;
    for (mq_sess_t *s; (s = mq_route_next(r, &pos)) != NULL;)
        changed += mq_auth_reclassify_sess(a, r, s);
    return changed;
}

void mq_auth_refresh(const mq_auth_t *a, mq_route_t *r, uint64_t *gen)
{
    if (*gen == a->gen)
        return;
    size_t changed = *gen == 0 ? 0 : mq_auth_reclassify(a, r); /* 0: the first state */
    *gen = a->gen;
    if (changed)
        MQ_LOG(MQ_LOG_INFO, "security state %llu: %zu subscriptions changed class",
               (unsigned long long)a->gen, changed);
}

bool mq_auth_same_owner(const mq_sess_t *s, const mq_str_t *user)
{
    if (s->username == NULL || user == NULL)
        return s->username == NULL && user == NULL;
    return s->user_len == user->len && memcmp(s->username, user->ptr, user->len) == 0;
}

/* ---- the verifier thread --------------------------------------------------------------------- */

#define VERIFIER_QUEUE 1024 /* connections waiting for a PBKDF2 run; more verify inline */

struct mq_auth_verifier {
    mq_auth_slot_t *slot;
    mq_epoch_rec_t *rec;  /* the verifier's own, online only while it reads the state */
    mq_mailbox_t **boxes; /* the workers' inboxes: answered connections go back there */
    unsigned n;
    mq_mailbox_t inbox; /* jobs: ptr = connection, a[0] = owner, a[1] = mq_auth_pending_t * */
    sem_t wake;         /* posted by each submit (and by stop) */
    atomic_bool stop;
    struct io_uring ring; /* only to send MSG_RING wake-ups to the workers */
    pthread_t thread;
    mq_auth_drop_conn_cb *drop; /* shutdown: a connection that will not be answered */
    void *drop_arg;
};

mq_auth_pending_t *mq_auth_pending_new(const mq_connect_t *cp, unsigned d)
{
    mq_auth_pending_t *p = mq_calloc(1, sizeof(*p) + cp->username.len + cp->password.len + 1);
    char *u = (char *)(p + 1), *w = u + cp->username.len;
    memcpy(u, cp->username.ptr, cp->username.len);
    memcpy(w, cp->password.ptr, cp->password.len);
    p->user = (mq_str_t){u, cp->username.len};
    p->pw = (mq_str_t){w, cp->password.len};
    p->domain = (uint8_t)d;
    return p;
}

/* The verifier's answer for 'p' against the state in force now (inside the epoch record, so
 * that a reload cannot free the table under the PBKDF2 run). */
static void answer(mq_auth_verifier_t *v, mq_auth_pending_t *p)
{
    mq_epoch_online(v->rec);
    const mq_auth_t *a = mq_auth_get(v->slot);
    const mq_passwd_t *t = p->domain < a->n ? a->d[p->domain].pw : NULL;
    const mq_passwd_entry_t *e = t ? mq_passwd_find(t, p->user.ptr, p->user.len) : NULL;
    p->ok = e && mq_passwd_verify(e, p->pw.ptr, p->pw.len);
    p->has_key = p->ok && mq_passwd_cache_key(t, e, p->pw.ptr, p->pw.len, &p->key);
    p->gen = a->gen;
    mq_epoch_quiescent(v->rec); /* frees nothing of its own; announces it holds nothing */
    mq_epoch_offline(v->rec);
}

/* Posts the connection back to its owner (waiting while the inbox is full: this thread may
 * block, workers never do) and wakes the owner. */
static void send_back(mq_auth_verifier_t *v, void *conn, unsigned owner)
{
    mq_mail_t m = {.type = MQ_MAIL_HANDOFF, .ptr = conn};
    while (!mq_mailbox_post(v->boxes[owner], &m)) {
        if (atomic_load_explicit(&v->stop, memory_order_acquire)) { /* the owner is gone */
            v->drop(v->drop_arg, conn);
            return;
        }
        sched_yield();
    }
    if (mq_mailbox_wake(v->boxes[owner], &v->ring)) {
        io_uring_submit(&v->ring);
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&v->ring, &cqe) == 0) /* failures only complete */
            io_uring_cqe_seen(&v->ring, cqe);
    }
}

static void *verifier_main(void *arg)
{
    mq_auth_verifier_t *v = arg;
    pthread_setname_np(pthread_self(), "starling-auth");
    while (!atomic_load_explicit(&v->stop, memory_order_acquire)) {
        while (sem_wait(&v->wake) < 0 && errno == EINTR)
            ;
        mq_mail_t m;
        while (!atomic_load_explicit(&v->stop, memory_order_acquire) &&
               mq_mailbox_take(&v->inbox, &m)) {
            answer(v, (mq_auth_pending_t *)(uintptr_t)m.a[1]);
            send_back(v, m.ptr, (unsigned)m.a[0]);
        }
    }
    return NULL;
}

mq_auth_verifier_t *mq_auth_verifier_start(mq_auth_slot_t *slot, mq_epoch_rec_t *rec,
                                           mq_mailbox_t **boxes, unsigned n,
                                           mq_auth_drop_conn_cb *drop, void *drop_arg, char *err,
                                           size_t errlen)
{
    mq_auth_verifier_t *v = mq_calloc(1, sizeof(*v));
    v->drop = drop;
    v->drop_arg = drop_arg;
    v->slot = slot;
    v->rec = rec;
    v->boxes = boxes;
    v->n = n;
    mq_epoch_offline(rec);
    mq_mailbox_init(&v->inbox, VERIFIER_QUEUE);
    sem_init(&v->wake, 0, 0);
    int rc = io_uring_queue_init(8, &v->ring, 0);
    if (rc == 0 && (rc = -pthread_create(&v->thread, NULL, verifier_main, v)) < 0)
        io_uring_queue_exit(&v->ring);
    if (rc < 0) {
        snprintf(err, errlen, "password verifier thread: %s", strerror(-rc));
        mq_mailbox_fini(&v->inbox, NULL);
        sem_destroy(&v->wake);
        mq_free(v);
        return NULL;
    }
    return v;
}

bool mq_auth_verifier_submit(mq_auth_verifier_t *v, void *conn, unsigned owner,
                             mq_auth_pending_t *pending)
{
    if (v == NULL || atomic_load_explicit(&v->stop, memory_order_acquire))
        return false;
    mq_mail_t m = {.type = MQ_MAIL_HANDOFF, .ptr = conn, .a = {owner, (uintptr_t)pending}};
    if (!mq_mailbox_post(&v->inbox, &m))
        return false;
    sem_post(&v->wake);
    return true;
}

void mq_auth_verifier_stop(mq_auth_verifier_t *v)
{
    if (v == NULL)
        return;
    atomic_store_explicit(&v->stop, true, memory_order_release);
    sem_post(&v->wake);
    pthread_join(v->thread, NULL);
    mq_mail_t m;
    while (mq_mailbox_take(&v->inbox, &m))
        v->drop(v->drop_arg, m.ptr); /* the client owns its pending answer and frees it */
    mq_mailbox_fini(&v->inbox, NULL);
    io_uring_queue_exit(&v->ring);
    sem_destroy(&v->wake);
    mq_free(v);
}
