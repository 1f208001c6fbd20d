/* SPDX-License-Identifier: MIT */
/* net/auth.c - the shared security state, its publication on reload, and the checks on it. */
#include "net/auth.h"

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

bool mq_auth_has_passwords(const mq_auth_t *a)
{
    for (unsigned i = 0; i < a->n; i++)
        if (a->d[i].pw)
            return true;
    return false;
}

/* ---- CONNECT ----------------------------------------------------------------------------- */

/* Verifies through the cache: a $7$ entry costs PBKDF2 ('iterations' HMAC-SHA512 rounds) the
 * first time, one keyed hash afterwards while the same password table is in force. */
static bool verify_cached(const mq_passwd_t *t, const mq_passwd_entry_t *e, const mq_str_t *pw,
                          mq_auth_cache_t *c)
{
    if (c == NULL || mq_passwd_entry_hash(e) != MQ_PASSWD_SHA512_PBKDF2)
        return mq_passwd_verify(e, pw->ptr, pw->len); /* $6$ is one SHA-512: cheaper than a key */
    mq_passwd_key_t k;
    mq_passwd_cache_key(t, e, pw->ptr, pw->len, &k);
    mq_str_t user = mq_passwd_entry_user(e);
    size_t i = (size_t)XXH3_64bits(user.ptr, user.len) % MQ_AUTH_CACHE_SLOTS;
    if (c->used[i] && mq_passwd_key_eq(&c->key[i], &k)) {
        c->hits++;
        return true;
    }
    c->misses++;
    if (!mq_passwd_verify(e, pw->ptr, pw->len))
        return false;
    c->key[i] = k;
    c->used[i] = true;
    return true;
}

enum mq_rc mq_auth_connect(const mq_auth_t *a, unsigned d, bool allow_anonymous,
                           const mq_connect_t *cp, mq_auth_cache_t *cache)
{
    MQ_ASSERT(d < a->n);
    const mq_passwd_t *t = a->d[d].pw;
    if (!cp->has_username || t == NULL) /* anonymous, or nothing to check a name against */
        return allow_anonymous ? MQ_RC_SUCCESS : MQ_RC_NOT_AUTHORIZED;
    const mq_passwd_entry_t *e = mq_passwd_find(t, cp->username.ptr, cp->username.len);
    if (e == NULL || !cp->has_password)
        return MQ_RC_NOT_AUTHORIZED;
    return verify_cached(t, e, &cp->password, cache) ? MQ_RC_SUCCESS : MQ_RC_NOT_AUTHORIZED;
}

enum mq_rc mq_auth_admit(const mq_auth_t *a, const mq_server_listener_t *lo, const mq_connect_t *cp,
                         mq_str_t id, const mq_sess_t *existing, mq_auth_cache_t *cache,
                         const char **why)
{
    const mq_str_t *user = cp->has_username ? &cp->username : NULL;
    if (mq_auth_connect(a, lo->auth_domain, lo->allow_anonymous, cp, cache) != MQ_RC_SUCCESS) {
        *why = user ? "bad user name or password" : "anonymous (allow_anonymous false)";
        return MQ_RC_NOT_AUTHORIZED;
    }
    if (cp->has_will && !mq_auth_may_write_as(a, lo->auth_domain, user, id, cp->will_topic.ptr,
                                              cp->will_topic.len)) {
        *why = "will topic denied by the ACL";
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
        uint8_t g = (uint8_t)mq_auth_classify(a, s, sub->filter, sub->len);
        check_queue |= g != MQ_ACL_GRANT_FULL; /* a partial one's rules may have changed too */
        if (g != sub->grant) {
            mq_route_set_grant(r, s, sub, g);
            changed++;
        }
    }
    /* what waits in the queue was allowed when it was queued: a topic the new rules deny goes
     * too, as mosquitto checks each message when it sends it */
    if (check_queue && mq_sess_queued(s) > 0)
        (void)mq_sess_filter_queue(s, still_readable, (void *)a); /* drops are in s->stats */
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
