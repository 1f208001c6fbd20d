/* SPDX-License-Identifier: MIT */
/* net/server_internal.h - the structures shared by the acceptor, the workers and the handlers. */
#ifndef MQ_NET_SERVER_INTERNAL_H
#define MQ_NET_SERVER_INTERNAL_H

#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/codec.h"
#include "core/epoch.h"
#include "core/map.h"
#include "core/msg.h"
#include "core/sess.h"
#include "core/tindex.h"
#include "net/ring.h"
#include "net/server.h"

/* ---- user_data of every SQE: a pointer with the operation in its low 3 bits ------------- */

enum mq_op {
    MQ_OP_RECV = 1,   /* ptr = conn */
    MQ_OP_SEND = 2,   /* ptr = conn */
    MQ_OP_ACCEPT = 3, /* ptr = listener (acceptor ring) */
    MQ_OP_WAKE = 4,   /* ptr = NULL: a MSG_RING from another thread */
    MQ_OP_TIMER = 5,  /* ptr = worker */
    MQ_OP_MSG = 6,    /* ptr = NULL: completion of a MSG_RING we sent */
};

static inline uint64_t mq_op_pack(void *p, enum mq_op op)
{
    return (uint64_t)(uintptr_t)p | (uint64_t)op;
}

static inline void *mq_op_ptr(uint64_t ud)
{
    return (void *)(uintptr_t)(ud & ~7ull);
}

static inline enum mq_op mq_op_of(uint64_t ud)
{
    return (enum mq_op)(ud & 7);
}

/* ---- ring entries between threads ---------------------------------------------------------- */

enum mq_msg_type {
    MQ_RE_NEW_CONN = 1, /* acceptor -> worker: a[0] = fd, a[1] = listener index */
    MQ_RE_HANDOFF = 2,  /* worker -> owner: ptr = conn, whose CONNECT is in conn->pre */
    MQ_RE_DELIVER = 3,  /* worker -> worker: ptr = msg (a reference), a[0..n) = filter ids, or
                           n > MQ_RING_INLINE: a[0] = pointer to n ids (owned by the consumer) */
    MQ_RE_STOP = 4,     /* main -> worker */
    MQ_RE_PUBLISH = 5,  /* main -> worker 0: ptr = msg (a reference) to publish as the broker */
};

/* ---- connections --------------------------------------------------------------------------- */

enum mq_conn_state {
    MQ_CONN_PRE = 0,     /* accepted, CONNECT not processed; single-shot receives */
    MQ_CONN_ACTIVE = 1,  /* session attached; multishot receive */
    MQ_CONN_CLOSING = 2, /* flushing what is left, then shut down */
};

typedef struct mq_worker mq_worker_t;

typedef struct mq_conn {
    mq_worker_t *w;
    int fd;
    uint8_t state;
    uint8_t proto;      /* protocol level once CONNECT is decoded */
    uint8_t listener;   /* index, for the per-listener connection count */
    bool recv_armed;    /* a receive is submitted */
    bool send_busy;     /* a send is submitted */
    bool need_rearm;    /* the multishot receive ended for lack of buffers */
    bool in_dirty;      /* queued on the worker's dirty list */
    bool will_pending;  /* publish the will when the connection ends */
    bool is_counted;    /* counted in the connection totals */
    uint8_t handoff_to; /* owner worker, when the CONNECT names another worker's session */
    unsigned n_ops;     /* submitted operations not yet completed */
    uint16_t keep_alive;
    uint64_t last_rx_ms;
    uint64_t born_ms;
    mq_decoder_t dec;
    mq_buf_t pre;  /* bytes received before CONNECT was processed (handed off whole) */
    mq_buf_t out;  /* packets waiting to be sent */
    mq_buf_t wbuf; /* the packets of the send in flight */
    size_t wsent;  /* bytes of wbuf already sent */
    mq_sess_t *sess;
    mq_msg_t *will; /* reference, or NULL */
    bool will_retain;
    uint8_t will_qos;
    struct mq_conn *next_dirty;
    struct mq_conn *prev, *next; /* the worker's connection list */
    char peer[64];               /* "address:port" for the log */
} mq_conn_t;

/* A cached match result: the (filter id, worker mask) pairs of a topic, valid while the
 * index generation it was computed under is current (net/proto.c route()). */
#define MQ_MATCH_CACHE_SLOTS 256 /* per worker, direct-mapped by topic hash */
#define MQ_MATCH_CACHE_PAIRS 8   /* results with more pairs are not cached */
#define MQ_MATCH_CACHE_TOPIC 64  /* longer topics are not cached */

typedef struct mq_match_entry {
    uint64_t gen; /* index generation; 0 = empty */
    uint64_t hash;
    uint16_t tlen;
    uint8_t n;
    char topic[MQ_MATCH_CACHE_TOPIC];
    uint64_t fid[MQ_MATCH_CACHE_PAIRS];
    uint64_t workers[MQ_MATCH_CACHE_PAIRS];
} mq_match_entry_t;

/* A filter as this worker knows it: the sessions subscribed to it (DESIGN.md rule 3). */
typedef struct mq_lsub {
    mq_sess_t *sess;
    uint8_t qos;
} mq_lsub_t;

typedef struct mq_lfilter {
    uint64_t fid;
    mq_lsub_t *subs;
    uint32_t n, cap;
} mq_lfilter_t;

/* One worker's counters, written by that worker alone with plain increments (DESIGN.md
 * rule 8: no atomic read-modify-write and no shared cache line on the hot path). */
typedef struct mq_worker_cnt {
    uint64_t msgs_received;      /* packets received */
    uint64_t msgs_sent;          /* packets written outside sessions (acks, CONNACK, ...) */
    uint64_t pub_received;       /* PUBLISH received */
    uint64_t pub_bytes_received; /* their payload bytes */
    uint64_t pub_dropped;        /* PUBLISH dropped on receipt (message_size_limit) */
    uint64_t bytes_received, bytes_sent;
    uint64_t sockets;        /* connections this worker took from the acceptor */
    uint64_t connects;       /* CONNECTs accepted */
    mq_sess_stats_t retired; /* counters of sessions already destroyed */
} mq_worker_cnt_t;

/* What other threads read: the worker refreshes it once a second (relaxed stores), the
 * control thread sums the workers' figures (relaxed loads). */
typedef struct mq_worker_stats {
    atomic_uint_fast64_t msgs_received, msgs_sent;
    atomic_uint_fast64_t pub_received, pub_sent, pub_dropped;
    atomic_uint_fast64_t pub_bytes_received, pub_bytes_sent;
    atomic_uint_fast64_t bytes_received, bytes_sent;
    atomic_uint_fast64_t sockets;
    atomic_uint_fast64_t connects;
    atomic_uint_fast64_t connections; /* sessions with a connection */
    atomic_uint_fast64_t sessions;    /* all sessions, connected or not */
    atomic_uint_fast64_t subscriptions;
    atomic_uint_fast64_t inflight; /* outbound QoS 1/2 awaiting acknowledgement */
    atomic_uint_fast64_t queued;   /* messages queued for sessions */
    atomic_uint_fast64_t queued_bytes;
    atomic_uint_fast64_t ring_depth; /* inbox entries waiting */
    atomic_uint_fast64_t loop_us;    /* longest loop turn in the last second, microseconds */
} mq_worker_stats_t;

/* A received buffer whose processing waits until this worker's overflow drains. */
typedef struct mq_deferred {
    mq_conn_t *c;
    uint16_t bid;
    uint32_t len;
} mq_deferred_t;

/* Entries a producer could not push because the target's ring was full, kept in order. */
typedef struct mq_overflow {
    mq_ring_entry_t *e;
    uint32_t head, len, cap;
} mq_overflow_t;

struct mq_worker {
    unsigned idx;
    mq_server_t *srv;
    pthread_t thread;
    struct io_uring ring;
    int ring_fd; /* for MSG_RING from other threads */
    mq_ring_t *inbox;
    atomic_int wake_pending; /* a wake-up is on its way: producers need not send another */
    atomic_bool stop;
    bool has_ring;
    int init_rc; /* result of the ring set-up done by the thread */
    char init_err[160];
    sem_t go; /* posted by the main thread once every worker is up */
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    unsigned n_bufs, buf_size;
    mq_epoch_rec_t *ep;
    uint64_t now_ms;
    mq_map_t sessions; /* client id hash -> mq_sess_t chain */
    mq_map_t filters;  /* filter id -> mq_lfilter_t */
    mq_conn_t *conns;  /* every connection of this worker */
    mq_conn_t *dirty;  /* connections with output to flush this turn */
    uint64_t stamp;    /* per-message counter for de-duplication */
    mq_sess_t **dsess; /* scratch: sessions a message goes to */
    uint32_t n_dsess, cap_dsess;
    uint64_t **tfids; /* scratch per target worker: matched filter ids */
    uint32_t *n_tfids, *cap_tfids;
    uint64_t touched;         /* target workers with ids in tfids */
    mq_match_entry_t *mcache; /* MQ_MATCH_CACHE_SLOTS entries */
    mq_match_entry_t *mrec;   /* the entry being filled by the match in progress, or NULL */
    uint64_t wake_mask;       /* target workers to wake at the end of the turn */
    mq_overflow_t *overflow;  /* per target worker */
    bool congested;           /* some overflow list is long: stop consuming publishers' input */
    mq_deferred_t *deferred;  /* buffers held while congested, in arrival order */
    uint32_t n_deferred, cap_deferred;
    mq_conn_t **rearm; /* connections whose receive waits for free buffers */
    uint32_t n_rearm, cap_rearm;
    uint64_t next_auto_id;
    uint64_t n_sessions;  /* sessions in 'sessions' */
    uint64_t n_online;    /* of which connected */
    uint64_t loop_ns_max; /* longest turn since the last tick */
    mq_worker_cnt_t cnt;
    mq_worker_stats_t stats;
};

typedef struct mq_listener_rt {
    int fd;
    uint16_t port;
    uint32_t max_connections;
    atomic_uint_fast32_t n_conns;
} mq_listener_rt_t;

struct mq_server {
    mq_server_opts_t opts;
    char *auto_id_prefix;
    unsigned n_workers;
    mq_worker_t *workers;
    mq_epoch_t *ep;
    mq_tindex_t *ix;
    mq_listener_rt_t listeners[MQ_SERVER_MAX_LISTENERS];
    unsigned n_listeners;
    atomic_uint_fast32_t n_conns; /* open connections, all listeners */
    pthread_t acceptor;
    struct io_uring acc_ring;
    atomic_bool acc_stop;
    unsigned next_worker;
    struct io_uring ctl_ring; /* the main thread's, to send MSG_RING wake-ups */
    pthread_mutex_t ctl_lock; /* ctl_ring users (main thread and signal paths) */
    sem_t started;            /* posted by each worker once its ring is set up (or failed) */
};

/* ---- worker.c ------------------------------------------------------------------------------ */

void *mq_worker__main(void *arg);
void mq_worker__init(mq_worker_t *w, mq_server_t *srv, unsigned idx);
void mq_worker__fini(mq_worker_t *w);

/* Queues 'c' for a flush at the end of this loop turn. */
void mq_worker__mark_dirty(mq_worker_t *w, mq_conn_t *c);

/* Starts closing 'c': flushes what is queued, then shuts the socket. When 'with_will', the
 * will (if any) is published. Owning worker only; 'c' stays valid until its operations end. */
void mq_worker__close(mq_conn_t *c, bool with_will, const char *why);

/* Sends entry 'e' to worker 'to' (ring, or overflow when full) and schedules its wake-up. */
void mq_worker__send(mq_worker_t *w, unsigned to, const mq_ring_entry_t *e);

/* Takes 'c' off the worker's connection list (before it moves to another worker). */
void mq_worker__unlink(mq_worker_t *w, mq_conn_t *c);

/* Switches 'c' to multishot receives (once its session is attached). */
void mq_worker__arm_recv(mq_conn_t *c);

/* ---- proto.c: MQTT behaviour ---------------------------------------------------------------- */

enum mq_bytes_result {
    MQ_BYTES_OK = 0,     /* keep receiving */
    MQ_BYTES_CLOSED = 1, /* the connection is closing */
    MQ_BYTES_GONE = 2,   /* handed to its owner worker: the caller must not touch it again */
};

/* Feeds received bytes through the decoder and handles each packet. */
int mq_proto__on_bytes(mq_conn_t *c, const uint8_t *p, size_t len);

/* Handles the CONNECT of a connection handed off by another worker (bytes in c->pre). */
void mq_proto__on_handoff(mq_conn_t *c);

/* Delivers 'msg' to this worker's sessions subscribed to the filters 'fids'. */
void mq_proto__deliver(mq_worker_t *w, mq_msg_t *msg, const uint64_t *fids, uint32_t n);

/* The connection is gone (socket closed): detaches or frees its session, publishes the will
 * when c->will_pending. */
void mq_proto__on_closed(mq_conn_t *c);

/* Publishes 'msg' as if a client had: retained store, then routing. */
void mq_proto__publish(mq_worker_t *w, mq_msg_t *msg);

/* Once a second: keep-alive and connect timeouts. */
void mq_proto__tick(mq_worker_t *w);

/* Frees every session of the worker (shutdown). */
void mq_proto__fini(mq_worker_t *w);

#endif
