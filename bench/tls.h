/* SPDX-License-Identifier: MIT */
/* bench/tls.h - TLS for starling-bench's clients: OpenSSL on the non-blocking sockets. */
#ifndef SB_BENCH_TLS_H
#define SB_BENCH_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct ssl_ctx_st sb_tls_ctx_t; /* OpenSSL's SSL_CTX */
typedef struct ssl_st sb_tls_t;         /* OpenSSL's SSL */

/* Main thread, before the engines start: a client context. With 'cafile' the broker's
 * certificate is verified (chain and host name 'host'), as mosquitto_pub --cafile does;
 * without it nothing is verified. 'certfile'/'keyfile': the client's certificate (both or
 * neither). NULL with the reason printed on stderr. Shared read-only by every engine. */
sb_tls_ctx_t *sb_tls_ctx_new(const char *cafile, const char *certfile, const char *keyfile);

void sb_tls_ctx_free(sb_tls_ctx_t *ctx);

/* Engine thread: client TLS on the connected socket 'fd' for broker 'host'. NULL on failure. */
sb_tls_t *sb_tls_new(sb_tls_ctx_t *ctx, int fd, const char *host);

void sb_tls_free(sb_tls_t *t);

/* Drives the handshake: 1 done, 0 waiting for the socket (the next edge), -1 failed with the
 * reason in *why (static). */
int sb_tls_handshake(sb_tls_t *t, const char **why);

/* As send(2) and recv(2) on a non-blocking socket: bytes moved, or -1 with errno EAGAIN
 * (wait for the next edge) or EPROTO (*why says why); recv returns 0 at the end. */
ssize_t sb_tls_send(sb_tls_t *t, const void *p, size_t len, const char **why);
ssize_t sb_tls_recv(sb_tls_t *t, void *p, size_t len, const char **why);

#endif
