/* SPDX-License-Identifier: MIT */
/* bench/client.h - starling-bench's run plan, shared counters and per-thread connection engine
 * (one epoll loop per thread driving many non-blocking MQTT clients through the core codec). */
#ifndef SB_BENCH_CLIENT_H
#define SB_BENCH_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bench/hist.h"
#include "bench/tls.h"
#include "bench/track.h"

/* Every message the bench publishes starts with this header (native byte order: publisher and
 * subscriber run on the same host, which the shared CLOCK_MONOTONIC needs anyway). */
#define SB_MAGIC 0x314e4253u /* "SBN1" */
#define SB_HDR_SIZE 24u      /* magic u32, publisher id u32, sequence u64, send time u64 (ns) */

enum sb_scenario { SB_CONN, SB_SUB, SB_PUB, SB_PAIRS, SB_FANOUT, SB_FANIN };
enum sb_role { SB_ROLE_CONN, SB_ROLE_PUB, SB_ROLE_SUB };

/* Run phases, advanced by the main thread only (release store; engines load with acquire). */
enum sb_phase {
    SB_PHASE_SETUP = 0, /* connect, subscribe */
    SB_PHASE_RUN = 1,   /* publish */
    SB_PHASE_DRAIN = 2, /* publishers stop, subscribers keep receiving */
    SB_PHASE_STOP = 3,  /* account tail loss, DISCONNECT, close, exit the loop */
};

#define SB_EXPECT_NONE (-1) /* subscriber: publishers unknown (scenario 'sub') */
#define SB_EXPECT_ALL (-2)  /* subscriber: every publisher of the run (fan-in) */

typedef struct sb_opts {
    enum sb_scenario scenario;
    const char *scenario_name;
    const char *host;
    uint16_t port;
    bool port_given;              /* -p: a ws:// URL without a port keeps it (else 80) */
    bool ws;                      /* -h ws://HOST[:PORT][/PATH]: MQTT over WebSockets */
    const char *ws_path;          /* the upgrade request's path ("/mqtt") */
    struct sockaddr_storage addr; /* resolved 'host' and 'port' */
    socklen_t addr_len;
    uint32_t count;       /* -c: connections, publishers, subscribers or pairs */
    uint8_t qos;          /* -q */
    uint32_t size;        /* -s: payload bytes, >= SB_HDR_SIZE */
    uint64_t interval_ns; /* -I (milliseconds, fractions allowed): per publisher; 0 = as
                             fast as the window allows */
    const char *topic;    /* -t: template, %i = client index */
    double duration_s;    /* -d: publishing time (conn: holding time) */
    uint8_t proto;        /* -V: 3, 4 or 5 */
    uint32_t threads;     /* --threads */
    uint32_t inflight;    /* -W: outstanding messages per publisher (0 until defaulted) */
    uint32_t conn_rate;   /* -R: new connections per second over all threads; 0 = no limit */
    uint16_t keepalive;   /* -k: seconds, 0 = off */
    const char *username; /* -u */
    const char *password; /* -P */
    bool tls;             /* --tls, or any of the three below: connect with TLS */
    const char *cafile;   /* --cafile: verify the broker against it (else no check) */
    const char *certfile; /* --cert: client certificate */
    const char *keyfile;  /* --key: its key */
    bool quiet;           /* no live progress */
    bool retain;          /* --retain: publishes set the retain flag (the retained store, and
                           * with persistence the journal, on every message) */
} sb_opts_t;

/* One planned client. */
typedef struct sb_plan {
    uint8_t role;    /* enum sb_role */
    uint32_t thread; /* engine thread that owns it */
    uint32_t pub_id; /* publishers: index into sb_run_t.pubs */
    int64_t expect;  /* subscribers: expected publisher id, SB_EXPECT_NONE or SB_EXPECT_ALL */
    char *topic;     /* publish topic or subscription filter (owned by the run) */
} sb_plan_t;

/* Shared by every publisher's owner and the subscribers that hear it; on its own cache line. */
typedef struct sb_pubstat {
    _Atomic uint64_t sent;      /* messages published so far (= next sequence); owner writes */
    _Atomic uint64_t delivered; /* sequence numbers covered by subscribers (fetch_add) */
} __attribute__((aligned(64))) sb_pubstat_t;

/* Per-thread counters: the engine thread is the only writer (relaxed load + store), the main
 * thread reads them for progress and the summary. */
typedef struct sb_stats {
    _Atomic uint64_t sent, recv, acked;
    _Atomic uint64_t lost, dup, reorder, foreign; /* foreign: payloads without our header */
    _Atomic uint64_t errors;                      /* failed connections, protocol errors, drops */
    _Atomic uint64_t conn_ok, conn_fail;          /* CONNACK accepted / connection never ready */
    _Atomic uint64_t open, ready;                 /* sockets open / clients ready right now */
    _Atomic uint64_t subs_ready;                  /* subscribers that got their SUBACK, ever */
    _Atomic uint64_t last_recv_ns;                /* CLOCK_MONOTONIC of the latest PUBLISH in */
    _Atomic int seen_phase;                       /* the phase this thread has acted on (release) */
    sb_hist_t lat;     /* end-to-end latency, ns (pub: publish to PUBACK / PUBCOMP) */
    sb_hist_t connack; /* connect() to CONNACK, ns */
} sb_stats_t;

typedef struct sb_run {
    const sb_opts_t *o;
    _Atomic int phase;     /* enum sb_phase; main thread writes with release */
    uint64_t run_start_ns; /* set before phase RUN is published */
    double setup_s;        /* connect + subscribe phase, seconds (for connections/s) */
    uint32_t fan;          /* deliveries expected per message (0: no subscribers of ours) */
    uint32_t e2e_window;   /* per publisher: sent and not yet delivered to our subscribers */
    uint32_t n_clients;
    sb_plan_t *plan; /* n_clients entries */
    uint32_t n_pubs;
    sb_pubstat_t *pubs;    /* n_pubs entries */
    sb_tls_ctx_t *tls_ctx; /* NULL: plain TCP; shared read-only by the engines */
} sb_run_t;

typedef struct sb_thread sb_thread_t;

/* Creates engine thread 'index' for the clients of 'run' planned on it; returns an owned
 * engine, or NULL with errno set (epoll_create1 failed). Main thread. */
sb_thread_t *sb_thread_new(sb_run_t *run, uint32_t index);

/* Starts the loop; 0 or a negative errno. */
int sb_thread_start(sb_thread_t *t);

/* Waits for the loop to end (after SB_PHASE_STOP). */
void sb_thread_join(sb_thread_t *t);

/* The thread's counters; valid until sb_thread_free(). Any thread (read-only). */
const sb_stats_t *sb_thread_stats(const sb_thread_t *t);

/* Frees a joined engine; NULL is a no-op. */
void sb_thread_free(sb_thread_t *t);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t sb_now_ns(void);

#endif
