/* SPDX-License-Identifier: MIT */
/* net/server.h - the running broker: listeners, acceptor thread, worker threads. */
#ifndef MQ_NET_SERVER_H
#define MQ_NET_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/stats.h"
#include "net/opts.h"

typedef struct mq_server mq_server_t;

/* Binds every listener and starts the acceptor and worker threads. Returns 0, or a negative
 * errno with a message in err[0..errlen) naming what failed (e.g. "127.0.0.1:1883: Address
 * already in use", or the io_uring feature the kernel lacks). Main thread. */
int mq_server_start(mq_server_t **out, const mq_server_opts_t *opts, char *err, size_t errlen);

/* Stops accepting; with flush_ms > 0, stops reading and gives every connection up to
 * flush_ms to send what is queued for it (a shutdown that says goodbye); then closes every
 * connection (no wills are published: a broker shutdown is not a client failure, as with
 * mosquitto) and joins the threads. The retained store stays readable
 * (mq_server_each_retained: the snapshot taken at exit sees every last change). Main thread. */
void mq_server_halt(mq_server_t *srv, unsigned flush_ms);

/* mq_server_halt() unless done, then frees everything. Main thread. */
void mq_server_stop(mq_server_t *srv, unsigned flush_ms);

/* Calls 'cb' with every retained message (borrowed: take a reference to keep it), '$SYS'
 * included, while the workers go on serving; returns the count. 'cb' must not block. Main
 * thread. */
struct mq_msg;
typedef void mq_server_retained_cb(void *arg, struct mq_msg *msg);
size_t mq_server_each_retained(mq_server_t *srv, mq_server_retained_cb *cb, void *arg);

/* Calls cb(arg, worker, session, NULL, 0) for every session and cb(arg, worker, session,
 * will, fire_at) for every will waiting for its delay (net/proto.h, mq_proto_visit_t), for the
 * persistence snapshot: on each worker's own thread while they run, returning once all have
 * answered (within a loop turn each); on this thread after mq_server_halt(). 'cb' reads only
 * and writes what is 'worker''s alone. Main thread. */
struct mq_sess;
typedef void mq_server_sess_cb(void *arg, unsigned worker, const struct mq_sess *s,
                               const struct mq_msg *will, uint64_t fire_at);
void mq_server_each_session(mq_server_t *srv, mq_server_sess_cb *cb, void *arg);

/* A snapshot of generation 'gen' begins: every worker switches its journal to a new file
 * "base.gen.wI" (net/jwriter.h), returning once all have (within a loop turn each). Every
 * change made after that is in the new files; everything in the old ones is in the store and
 * the sessions the snapshot reads next. 0 (also when journals are off or the workers have
 * stopped), or -errno when a file could not be made (nothing switched). Main thread. */
int mq_server_rotate_journals(mq_server_t *srv, const char *base, uint64_t gen);

/* Retained messages stored, replaced or removed since start-up. Any thread. */
uint64_t mq_server_retained_changes(const mq_server_t *srv);

/* Broker-wide figures (core/stats.h), summed over the workers: relaxed loads of
 * single-writer figures that each worker refreshes once a second. */
typedef mq_stats_t mq_server_stats_t;

/* Fills *total, and per_worker[0..mq_server_workers()) when not NULL. Any thread. */
void mq_server_stats(const mq_server_t *srv, mq_server_stats_t *total,
                     mq_server_stats_t *per_worker);

unsigned mq_server_workers(const mq_server_t *srv);

/* Publishes a message as the broker itself ($SYS): it is routed by worker 0 like any PUBLISH
 * (retained when 'retain'). Main thread. */
void mq_server_publish(mq_server_t *srv, const char *topic, const void *payload, size_t len,
                       bool retain);

/* Re-reads the certificate and key (and CA files, CRL) of every TLS listener for the
 * connections that come next (mosquitto does so on SIGHUP); open connections keep theirs. A
 * listener whose files do not load keeps its running ones; each outcome is logged. Returns the
 * number of listeners that failed. Main thread. */
int mq_server_reload_tls(mq_server_t *srv);

/* Replaces the security state (a reload of password_file and acl_file): takes ownership of
 * 'auth' (net/auth.h), publishes it to the workers with one pointer swap and frees the
 * previous one once no worker can hold it (waits up to a second for that). Connections stay;
 * each worker classifies its subscriptions again with the new ACL. Main thread. */
struct mq_auth;
void mq_server_set_auth(mq_server_t *srv, struct mq_auth *auth);

/* A reload of the security state is under way (opts.reload_signal has been sent): from
 * mq_server_reload_begin, called while the signal is still pending, until mq_server_set_auth
 * publishes the new state or mq_server_reload_end says there is none, a CONNECT waits for it
 * (net/auth.h: mq_auth_reload_due). Main thread. */
void mq_server_reload_begin(mq_server_t *srv);
void mq_server_reload_end(mq_server_t *srv);

/* The port actually bound by listener 'i' (useful with port 0). */
uint16_t mq_server_port(const mq_server_t *srv, unsigned i);

/* Listening socket 'k' (a listener has one per address it binds, in listener order): the
 * address families it takes, in mosquitto's words for its log line, "ipv4", "ipv6" or
 * "ipv4/ipv6" (one IPv6 socket on all addresses that takes IPv4 too), and its listener's
 * index in '*listener'. NULL past the last socket. */
const char *mq_server_socket(const mq_server_t *srv, unsigned k, unsigned *listener);

#endif
