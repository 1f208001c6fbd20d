/* SPDX-License-Identifier: MIT */
/* net/xport.h - which transport a listener's connections get (plain TCP, TLS, WebSockets). */
#ifndef MQ_NET_XPORT_H
#define MQ_NET_XPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/epoch.h"
#include "net/conn.h"
#include "net/opts.h"

/* A listener's transport state (a TLS context, the WebSocket settings), built once at start
 * from its options and shared read-only by every worker for the connections it accepts.
 * NULL stands for plain TCP. */
typedef struct mq_xport_listener mq_xport_listener_t;

/* Main thread, at start: the transport state for listener 'l', or *out = NULL for plain TCP.
 * Returns 0, or -errno with a message in err (e.g. a certificate that does not load). */
int mq_xport_listener_new(const mq_server_listener_t *l, mq_xport_listener_t **out, char *err,
                          size_t errlen);

/* Main thread, on reload (SIGHUP): re-reads the listener's certificate and key for new
 * connections (net/tls.h, mq_tls_ctx_reload; 'ep' is the workers' epoch domain). 0 for a
 * listener without TLS, or NULL; -errno with err set when the files do not load (the running
 * ones stay in force). */
int mq_xport_listener_reload(mq_xport_listener_t *xl, mq_epoch_t *ep, char *err, size_t errlen);

/* Any thread: the listener speaks TLS. */
bool mq_xport_listener_has_tls(const mq_xport_listener_t *xl);

/* Main thread, after the workers have stopped. NULL is a no-op. */
void mq_xport_listener_free(mq_xport_listener_t *xl);

/* The accepting worker, right after mq_conn_new(): puts the listener's transport under the
 * protocol for 'c' (net/conn.h, mq_transport_t). Returns 0, or -errno when the connection
 * cannot be served (the caller closes it). With xl NULL (plain TCP) it attaches the guard of
 * net/ws.h, which steps aside after the first bytes (answering an HTTP request there). */
int mq_xport_attach(mq_conn_t *c, const mq_xport_listener_t *xl);

#endif
