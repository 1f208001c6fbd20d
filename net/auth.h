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
#include "net/mailbox.h"
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
    /* the reload in the making (mq_auth_reload_due) */
    int reload_signal;          /* the signal that asks for one; set before workers run */
    atomic_bool reloading;      /* main thread: from mq_auth_reload_begin to _end */
    _Atomic uint64_t reloads;   /* main thread: reloads ended (mq_auth_reload_end) */
    _Atomic uint64_t due_since; /* when a worker first found the next one due: that count,
                                 * a valid bit and the loop clock's ms (see auth.c) */
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

/* A reload, as mosquitto's single loop makes it: once the reload signal has been sent (kill
 * has returned), a CONNECT that arrives is decided by the files as they are now, not by the
 * state before. The main thread raises the flag before it takes the signal from the pending
 * set (mq_auth_reload_begin) and lowers it once the new state is published or refused
 * (mq_auth_reload_end); mq_auth_reload_due looks at the pending set first, then at the flag,
 * so that no moment between the signal and the end of the reload escapes it. A CONNECT waits
 * for it at most MQ_AUTH_RELOAD_WAIT_MS from the first time a worker found it due (signal
 * pending or flag raised), so that a main thread busy elsewhere (a long snapshot) holds no
 * client longer than that. */
#define MQ_AUTH_RELOAD_WAIT_MS 1000
void mq_auth_reload_begin(mq_auth_slot_t *slot);
void mq_auth_reload_end(mq_auth_slot_t *slot);

/* Whether a CONNECT received now waits for a reload (see above); 'now_ms' is the caller's
 * loop clock (CLOCK_MONOTONIC, ms). False when slot->reload_signal is 0. Any thread. */
bool mq_auth_reload_due(mq_auth_slot_t *slot, uint64_t now_ms);

/* A number that changes with every published state (1, 2, ...). */
uint64_t mq_auth_generation(const mq_auth_t *a);

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
 * may be NULL. With 'may_defer', a password that would cost a PBKDF2 run (a $7$ entry not in
 * the cache) is not verified: MQ_RC_AGAIN asks the caller to hand it to the verifier. */
enum mq_rc mq_auth_connect(const mq_auth_t *a, unsigned d, bool allow_anonymous,
                           const mq_connect_t *cp, mq_auth_cache_t *cache, bool may_defer);

/* ---- the verifier: PBKDF2 off the worker loops ------------------------------------------- */

/* A password verification handed to the verifier thread: the connection waits outside its
 * worker's loop (unlinked, as for a hand-off) and comes back to its owner worker as an
 * MQ_MAIL_HANDOFF, which decodes its CONNECT again and finds the answer here. Allocated by
 * the worker with mq_auth_pending_new, owned by the client; the verifier writes the answer
 * before it posts the connection back (the mailbox orders the writes before the read). */
typedef struct mq_auth_pending {
    uint64_t gen;        /* the state the answer holds for; 0 = not answered yet */
    bool ok;             /* the password is right */
    bool has_key;        /* 'key' holds (libcrypto could make it) */
    mq_passwd_key_t key; /* when ok: the credentials' cache key in state 'gen' */
    uint8_t domain;
    mq_str_t user, pw; /* copies, in the same allocation */
} mq_auth_pending_t;

/* A job for 'cp''s user name and password on domain 'd' (copied). Free with mq_free. */
mq_auth_pending_t *mq_auth_pending_new(const mq_connect_t *cp, unsigned d);

typedef struct mq_auth_verifier mq_auth_verifier_t;

/* Called by the verifier thread at shutdown for each connection it will never answer. */
typedef void mq_auth_drop_conn_cb(void *arg, void *conn);

/* Starts the verifier thread: it reads the state from 'slot' inside the epoch record 'rec'
 * (its own), and posts answered connections to boxes[owner] (the workers' inboxes, 'n' of
 * them, ring_fd set). At shutdown it hands each connection it will not answer to 'drop'.
 * Returns NULL with err set when the thread cannot start. Main thread. */
mq_auth_verifier_t *mq_auth_verifier_start(mq_auth_slot_t *slot, mq_epoch_rec_t *rec,
                                           mq_mailbox_t **boxes, unsigned n,
                                           mq_auth_drop_conn_cb *drop, void *drop_arg, char *err,
                                           size_t errlen);

/* Worker thread: queues the verification of 'pending' for connection 'conn' of worker 'owner'.
 * False when the queue is full or the verifier stops: the caller verifies inline. */
bool mq_auth_verifier_submit(mq_auth_verifier_t *v, void *conn, unsigned owner,
                             mq_auth_pending_t *pending);

/* Main thread, once the workers have stopped but before their inboxes are finalised: stops
 * and joins the thread; connections not answered go to 'drop'. NULL is a no-op. */
void mq_auth_verifier_stop(mq_auth_verifier_t *v);

/* The CONNECT decision for a client on listener 'lo': mq_auth_connect (skipped when
 * 'cert_user': the user name came from a client certificate that the TLS handshake verified,
 * use_identity_as_username / use_subject_as_username, which mosquitto takes as authenticated
 * too), then session ownership
 * against 'existing' (the session of the client
 * id, or NULL when there is none or ownership is not checked: a session of another user name
 * refuses with MQ_RC_CLIENT_ID_NOT_VALID, CONNACK 0x02 for 3.1.1). 'answered' (or NULL) is the
 * verifier's answer for this CONNECT, used when it holds for state 'a'. Returns MQ_RC_SUCCESS,
 * MQ_RC_AGAIN (only with 'may_defer': hand the password to the verifier, see mq_auth_connect) or
 * the refusal, with *why set to a short reason for the log (no credentials in it). */
enum mq_rc mq_auth_admit(const mq_auth_t *a, const mq_server_listener_t *lo, const mq_connect_t *cp,
                         bool cert_user, const mq_sess_t *existing, mq_auth_cache_t *cache,
                         const mq_auth_pending_t *answered, bool may_defer, const char **why);

/* May the client of session 's' (its user name, client id and domain) publish to 'topic'
 * (write), or receive a message on it (read)? Without an ACL in its domain: yes. */
bool mq_auth_may_write(const mq_auth_t *a, const mq_sess_t *s, const char *topic, size_t len);
bool mq_auth_may_read(const mq_auth_t *a, const mq_sess_t *s, const char *topic, size_t len);

/* As mq_auth_may_write for a client whose session does not exist yet (the will at CONNECT:
 * mosquitto 2.0 accepts such a CONNECT and never publishes the will; so does Starling). */
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
