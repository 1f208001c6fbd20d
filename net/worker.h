/* SPDX-License-Identifier: MIT */
/* net/worker.h - one worker thread: its io_uring loop over its inbox, connections and timer. */
#ifndef MQ_NET_WORKER_H
#define MQ_NET_WORKER_H

#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/epoch.h"
#include "core/stats.h"
#include "core/tindex.h"
#include "net/conn.h"
#include "net/mailbox.h"
#include "net/opts.h"
#include "net/proto.h"
#include "net/xport.h"

/* The worker is the loop only: each turn it drains its inbox, moves spilled mail, lets the
 * connections resume and flush, sends the turn's wake-ups, passes a quiescent point and
 * waits for completions, which it hands to the connection layer (net/conn.h). What to do
 * with bytes, deliveries and deadlines is the protocol's (net/proto.h). */

/* What the server gives every worker; outlives the workers. */
typedef struct mq_worker_env {
    const mq_server_opts_t *opts;
    mq_tindex_t *ix;
    mq_shared_t *shared; /* shared subscription groups */
    mq_epoch_t *ep;
    mq_mailbox_t **boxes; /* every worker's inbox, by index */
    unsigned n_workers;
    atomic_uint_fast32_t *n_conns;        /* open connections, all listeners */
    atomic_uint_fast32_t *listener_conns; /* open connections per listener */
    const uint16_t *ports;                /* the port each listener is bound to */
    mq_xport_listener_t *const *xports;   /* each listener's transport (NULL: plain TCP) */
    mq_auth_slot_t *auth;                 /* the current security state (net/auth.h) */
    mq_auth_verifier_t *verifier;         /* PBKDF2 off the loops (net/auth.h) */
    sem_t *started;                       /* posted once the worker's ring is set up (or not) */
} mq_worker_env_t;

/* Figures other threads read: the worker stores them once a second (relaxed), the control
 * thread loads them (relaxed) — single writer, no read-modify-write (DESIGN.md rule 8). */
typedef struct mq_worker_stats {
#define MQ_WORKER_STATS_FIELD(f, ...) atomic_uint_fast64_t f;
    MQ_STATS(MQ_WORKER_STATS_FIELD)
#undef MQ_WORKER_STATS_FIELD
} mq_worker_stats_t;

typedef struct mq_worker {
    unsigned idx;
    mq_worker_env_t env;
    pthread_t thread;
    struct io_uring ring;
    bool has_ring;
    int init_rc; /* result of the ring set-up done by the thread */
    char init_err[160];
    sem_t go;         /* posted by the main thread once every worker is up */
    size_t restored;  /* persistent sessions restored at start-up (opts->kept) */
    atomic_bool stop; /* set by the main thread (or a STOP mail) */
    /* set by the main thread to stop gracefully: input is held, output is flushed, and the
     * loop ends once every connection's output has gone or this monotonic ms has passed */
    atomic_uint_fast64_t drain_until_ms;
    mq_mailbox_t inbox;  /* any thread posts; this worker drains */
    mq_outbox_t outbox;  /* this worker's mail to the others */
    mq_conn_loop_t loop; /* this worker's connections */
    mq_proto_t *proto;
    struct mq_jwriter *jw; /* NULL: persistence off (or its file could not be made) */
    mq_epoch_rec_t *ep;
    uint64_t loop_ns_max; /* longest turn since the last tick */
    bool said_goodbye;    /* the shutdown's DISCONNECT went out (mq_proto_goodbye) */
    mq_worker_stats_t stats;
} mq_worker_t;

/* Main thread: memory and the inbox (whose ring fd is set by the thread itself: with
 * IORING_SETUP_SINGLE_ISSUER the ring belongs to the thread that creates it). */
void mq_worker_init(mq_worker_t *w, const mq_worker_env_t *env, unsigned idx);

/* The thread's body (pthread_create). Sets up the ring, posts env->started, waits for 'go',
 * then runs the loop until 'stop'. */
void *mq_worker_main(void *arg);

/* Main thread, after the thread has been joined (or never ran its loop): closes and frees
 * everything the worker holds. Sessions go without wills (a shutdown is no client failure). */
void mq_worker_fini(mq_worker_t *w);

/* Any thread: the worker's last published figures. */
void mq_worker_read_stats(const mq_worker_t *w, mq_stats_t *out);

#endif
