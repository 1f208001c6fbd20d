/* SPDX-License-Identifier: MIT */
/* net/tls.h - TLS (OpenSSL 3 over memory BIOs) as a transport under the protocol. */
#ifndef MQ_NET_TLS_H
#define MQ_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/epoch.h"
#include "net/conn.h"
#include "net/opts.h"

/* DESIGN.md rule 11: TLS is a layer at the seam of net/conn.h. OpenSSL never touches the
 * socket: received wire bytes are written into the connection's read BIO, the records it
 * decrypts go up to the protocol, protocol bytes go down through SSL_write into the write
 * BIO, whose bytes the connection sends at its next flush. So a handshake never blocks a
 * worker, and a stalled one is ended by the connect timeout (the connection stays
 * MQ_CONN_PRE until its CONNECT, net/proto.c mq_proto_tick). Renegotiation is off.
 *
 * Two ways to use it:
 *   - MQTT over TLS: mq_tls_attach() puts mq_tls_transport under the protocol (net/xport.c);
 *   - another transport on top of TLS (wss://, net/ws.c) keeps an mq_tls_t in its own state
 *     and calls the buffer functions: mq_tls_recv() on the wire bytes of each receive, then
 *     its own decoding on the plain bytes; mq_tls_send() on its framed bytes at each flush
 *     (also with len 0: a handshake reply or an alert may be waiting, mq_tls_pending()); it
 *     calls mq_tls_close() once the connection is closing, and sets its transport's 'tls'
 *     hook so that mq_tls_username() finds the state. */

/* ---- a listener's context ---------------------------------------------------------------------
 */

/* A listener's TLS context: the SSL_CTX made from its options, replaced whole on reload. */
typedef struct mq_tls_ctx mq_tls_ctx_t;

/* Main thread, at start: a context from 'o' (o->certfile set) for the listener on 'port'.
 * Returns 0 and an owned *out, or -EINVAL with "what failed: file: reason" in err (a missing
 * or unreadable file, a key that does not match the certificate, a bad cipher list). */
int mq_tls_ctx_new(const mq_server_tls_t *o, uint16_t port, mq_tls_ctx_t **out, char *err,
                   size_t errlen);

/* Main thread, on reload (SIGHUP): builds a new SSL_CTX from the same options (the files are
 * read again) and swaps it in for new connections; connections already open keep theirs (each
 * SSL holds a reference). The old one is released once every worker has passed a quiescent
 * point ('ep', core/epoch.h), so no worker that read the old pointer still uses it. Returns 0,
 * or -EINVAL with err set and the running context unchanged. */
int mq_tls_ctx_reload(mq_tls_ctx_t *x, mq_epoch_t *ep, char *err, size_t errlen);

/* Main thread, after the workers have stopped. NULL is a no-op. */
void mq_tls_ctx_free(mq_tls_ctx_t *x);

/* ---- one connection's TLS state: the buffer-level functions ------------------------------------
 */

typedef struct mq_tls mq_tls_t;

/* The worker that owns the connection: a server-side TLS state on the listener's current
 * context, for the peer 'peer' (copied; used in log lines while the state lives). Returns an
 * owned state, or NULL when OpenSSL cannot make one (out of memory: close the connection). */
mq_tls_t *mq_tls_new(const mq_tls_ctx_t *x, const char *peer);

/* Owning worker. NULL is a no-op. */
void mq_tls_free(mq_tls_t *t);

/* Owning worker: feeds 'len' received wire bytes (len may be 0) and appends what they decrypt
 * to 'plain' (nothing while the handshake runs). Returns 0, or -EPROTO when the connection
 * must end (handshake failure, bad record, the peer's close_notify) with the reason in *why
 * (a static or thread-local string, valid until the next call on this thread). Either way
 * wire bytes may be pending afterwards (a handshake reply, an alert): send them. */
int mq_tls_recv(mq_tls_t *t, const uint8_t *in, size_t len, mq_buf_t *plain, const char **why);

/* Owning worker: encrypts plain[0..len) and appends every pending wire byte (handshake
 * replies, session tickets, alerts, close_notify, the new records) to 'wire'. Returns the
 * number of plain bytes taken: len once the handshake is done, 0 before (keep them). */
size_t mq_tls_send(mq_tls_t *t, const uint8_t *plain, size_t len, mq_buf_t *wire);

/* Owning worker: wire bytes wait for mq_tls_send(). */
bool mq_tls_pending(const mq_tls_t *t);

/* Owning worker: the session has failed (a record could not be read or written); the
 * connection has to close. */
bool mq_tls_is_failed(const mq_tls_t *t);

/* Owning worker: queues a close_notify (once, after a completed handshake; after a failed one
 * the alert is already pending). Sent by the next mq_tls_send(). */
void mq_tls_close(mq_tls_t *t);

/* ---- MQTT over TLS: the transport ---------------------------------------------------------------
 */

extern const mq_transport_t mq_tls_transport;

/* The accepting worker, right after mq_conn_new(): puts TLS under the protocol for 'c'.
 * Returns 0, or -ENOMEM (the caller closes the connection). */
int mq_tls_attach(mq_conn_t *c, const mq_tls_ctx_t *x);

/* ---- for the protocol ---------------------------------------------------------------------------
 */

/* What a listener with use_identity_as_username / use_subject_as_username makes of the
 * client's username (mosquitto's handle__connect). */
enum mq_tls_user {
    MQ_TLS_USER_CONNECT = 0, /* not such a listener (or no TLS): the CONNECT's username stands */
    MQ_TLS_USER_CERT = 1,    /* *user is the certificate's CN or subject: use it instead of the
                                CONNECT's username, and do not check a password */
    MQ_TLS_USER_MISSING = 2, /* such a listener, but no certificate (or no CN, or a CN with a
                                NUL): refuse, CONNACK 0x04 (3.1.1) / 0x86 (5), as mosquitto */
};

/* The owning worker, once CONNECT has arrived (the handshake is then complete): the TLS
 * username of 'c' (see enum mq_tls_user). *user is borrowed from the connection, valid while
 * it lives; NULL unless MQ_TLS_USER_CERT. For the authentication code (password_file, ACLs). */
enum mq_tls_user mq_tls_username(const mq_conn_t *c, const char **user);

/* Any thread: 'p' starts like a TLS handshake record (a ClientHello), for the log line of a
 * TLS client on a plain listener. */
bool mq_tls_looks_like_hello(const uint8_t *p, size_t len);

#endif
