/* SPDX-License-Identifier: MIT */
/* net/auth.h - the security state (passwords, ACLs) the workers share, and the checks on it. */
#ifndef MQ_NET_AUTH_H
#define MQ_NET_AUTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/acl.h"
#include "core/codec.h"
#include "core/epoch.h"
#include "core/passwd.h"
#include "core/rc.h"
#include "core/route.h"
#include "core/sess.h"
#include "net/opts.h"

/* The security state is one immutable object: for each security domain (one for the whole
 * broker, or one per listener with per_listener_settings) a password table and an ACL, each
 * optional. The main thread builds it (broker/ reads the files) and publishes it through an
 * mq_auth_slot_t; workers read the slot with an acquire load wherever they check, never keep
 * the pointer past the current loop turn, and so a reload replaces the whole state with one
 * pointer swap, the old one retired through the epoch (core/epoch.h). */
typedef struct mq_auth mq_auth_t;

/* ---- building and publishing (main thread) ------------------------------------------------ */

/* A state with 'n_domains' (>= 1) empty domains: no password file, no ACL. Owned by the
 * caller until published. */
mq_auth_t *mq_auth_new(unsigned n_domains);

/* Gives domain 'd' its password table and ACL; takes ownership of both (NULL = no such file:
 * no password check, every topic allowed). Before publishing only. */
void mq_auth_set_domain(mq_auth_t *a, unsigned d, mq_passwd_t *pw, mq_acl_t *acl);

/* Frees the state and its tables. NULL is a no-op. Only once no worker can hold it. */
void mq_auth_free(mq_auth_t *a);

/* Where workers find the current state. The main thread writes it; workers read it. */
typedef struct mq_auth_slot {
    _Atomic(mq_auth_t *) cur; /* never NULL once the server runs */
    uint64_t last_gen;        /* main thread: generation given to the latest state */
} mq_auth_slot_t;

/* Publishes 'a' (ownership passes to the slot) and returns the previous state, which the
 * caller retires with mq_auth_retire (or frees when no worker runs yet). Main thread. */
mq_auth_t *mq_auth_publish(mq_auth_slot_t *slot, mq_auth_t *a);

/* Hands 'a' to the epoch 'rec' (the calling thread's record): freed once no worker can hold
 * it. NULL is a no-op. */
void mq_auth_retire(mq_epoch_rec_t *rec, mq_auth_t *a);

/* The current state: borrowed until the end of the caller's loop turn. Any thread. */
static inline const mq_auth_t *mq_auth_get(mq_auth_slot_t *slot)
{
    /* acquire pairs with the release in mq_auth_publish: the tables are complete */
    return atomic_load_explicit(&slot->cur, memory_order_acquire);
}

/* A number that changes with every published state (1, 2, ...). */
uint64_t mq_auth_generation(const mq_auth_t *a);

/* True when some domain has a password file (session ownership is then checked by default). */
bool mq_auth_has_passwords(const mq_auth_t *a);

/* ---- the checks (a worker's thread; the state is read-only) -------------------------------- */

/* Credentials verified recently by one worker, so that a reconnecting client costs one keyed
 * hash instead of a PBKDF2 run (core/passwd.h, mq_passwd_cache_key). Keys of an older state
 * never match a newer one (each password table draws its own secret): a reload clears it. */
#define MQ_AUTH_CACHE_SLOTS 1024
typedef struct mq_auth_cache {
    mq_passwd_key_t key[MQ_AUTH_CACHE_SLOTS];
    bool used[MQ_AUTH_CACHE_SLOTS];
    uint64_t hits, misses; /* figures for the log and tests */
} mq_auth_cache_t;

/* Decides a CONNECT on a listener of domain 'd' as mosquitto 2.0 does: without a user name,
 * 'allow_anonymous' decides; with one, the domain's password file decides when there is one,
 * else 'allow_anonymous'. Returns MQ_RC_SUCCESS or MQ_RC_NOT_AUTHORIZED (mosquitto 2.0 answers
 * every refusal so: CONNACK 0x05 for 3.1.1, 0x87 for 5); the caller maps the code. 'cache'
 * may be NULL. */
enum mq_rc mq_auth_connect(const mq_auth_t *a, unsigned d, bool allow_anonymous,
                           const mq_connect_t *cp, mq_auth_cache_t *cache);

/* The whole CONNECT decision for a client on listener 'lo': mq_auth_connect, then the will's
 * topic (a will the client may not publish refuses the CONNECT with MQ_RC_NOT_AUTHORIZED, as
 * mosquitto 2.0 does), then session ownership against 'existing' (the session of the client
 * id, or NULL when there is none or ownership is not checked: a session of another user name
 * refuses with MQ_RC_CLIENT_ID_NOT_VALID, CONNACK 0x02 for 3.1.1). 'id' is the client id in use
 * (the assigned one for an empty id). Returns MQ_RC_SUCCESS or the refusal with *why set to a
 * short reason for the log (no credentials in it). */
enum mq_rc mq_auth_admit(const mq_auth_t *a, const mq_server_listener_t *lo, const mq_connect_t *cp,
                         mq_str_t id, const mq_sess_t *existing, mq_auth_cache_t *cache,
                         const char **why);

/* May the client of session 's' (its user name, client id and domain) publish to 'topic'
 * (write), or receive a message on it (read)? Without an ACL in its domain: yes. */
bool mq_auth_may_write(const mq_auth_t *a, const mq_sess_t *s, const char *topic, size_t len);
bool mq_auth_may_read(const mq_auth_t *a, const mq_sess_t *s, const char *topic, size_t len);

/* As mq_auth_may_write for a client whose session does not exist yet (the will at CONNECT). */
bool mq_auth_may_write_as(const mq_auth_t *a, unsigned d, const mq_str_t *user, mq_str_t client_id,
                          const char *topic, size_t len);

/* The class of the subscription filter 'filter' for session 's' (core/acl.h,
 * mq_acl_classify): MQ_ACL_GRANT_FULL without an ACL. */
enum mq_acl_grant mq_auth_classify(const mq_auth_t *a, const mq_sess_t *s, const char *filter,
                                   size_t len);

/* Classifies again every subscription of the sessions in 'r' with state 'a' (after a reload):
 * a revoked one stays in the tables with grant NONE and receives nothing. Returns the number of
 * subscriptions whose class changed. */
size_t mq_auth_reclassify(const mq_auth_t *a, mq_route_t *r);

/* The same for one session of 'r' (its identity changed: another user or listener). */
size_t mq_auth_reclassify_sess(const mq_auth_t *a, mq_route_t *r, mq_sess_t *s);

/* A worker's catch-up after a reload: when 'a' is not the state of generation *gen, classifies
 * every subscription in 'r' again (mq_auth_reclassify) and sets *gen. Cheap when nothing
 * changed (one comparison): called at each CONNECT and once a second. */
void mq_auth_refresh(const mq_auth_t *a, mq_route_t *r, uint64_t *gen);

/* Session ownership: true when a CONNECT as 'user' (NULL = no user name) may take over the
 * existing session 's', i.e. 's' belongs to the same user name (or both have none). */
bool mq_auth_same_owner(const mq_sess_t *s, const mq_str_t *user);

#endif
