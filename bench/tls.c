/* SPDX-License-Identifier: MIT */
/* bench/tls.c - client TLS over the engine's non-blocking sockets (see tls.h). */
#include "bench/tls.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static const char *reason(void)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "connection closed during TLS";
}

sb_tls_ctx_t *sb_tls_ctx_new(const char *cafile, const char *certfile, const char *keyfile)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* a partial write keeps the rest for the next EPOLLOUT edge; the buffer may move */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (cafile) {
        if (SSL_CTX_load_verify_file(ctx, cafile) != 1) {
            fprintf(stderr, "starling-bench: --cafile %s: %s\n", cafile, reason());
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (certfile && SSL_CTX_use_certificate_chain_file(ctx, certfile) != 1) {
        fprintf(stderr, "starling-bench: --cert %s: %s\n", certfile, reason());
        goto fail;
    }
    if (keyfile && SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "starling-bench: --key %s: %s\n", keyfile, reason());
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void sb_tls_ctx_free(sb_tls_ctx_t *ctx)
{
    SSL_CTX_free(ctx);
}

sb_tls_t *sb_tls_new(sb_tls_ctx_t *ctx, int fd, const char *host)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    /* the name checked against the certificate (an address or a DNS name), and SNI */
    if (SSL_CTX_get_verify_mode(ctx) != SSL_VERIFY_NONE)
        (void)SSL_set1_host(ssl, host);
    (void)SSL_set_tlsext_host_name(ssl, host);
    SSL_set_connect_state(ssl);
    return ssl;
}

void sb_tls_free(sb_tls_t *t)
{
    SSL_free(t);
}

/* errno and the return value for an SSL_get_error() outcome. */
static ssize_t outcome(sb_tls_t *t, int r, const char **why)
{
    switch (SSL_get_error(t, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || ERR_peek_error() == 0) {
            ERR_clear_error();
            return 0; /* the broker closed the socket without close_notify */
        }
        break;
    default:
        break;
    }
    *why = reason();
    errno = EPROTO;
    return -1;
}

int sb_tls_handshake(sb_tls_t *t, const char **why)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(t);
    if (r == 1)
        return 1;
    ssize_t o = outcome(t, r, why);
    if (o < 0 && errno == EAGAIN)
        return 0;
    if (o == 0)
        *why = "the broker closed the connection during the TLS handshake";
    return -1;
}

ssize_t sb_tls_send(sb_tls_t *t, const void *p, size_t len, const char **why)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_write(t, p, len > INT_MAX ? INT_MAX : (int)len);
    if (r > 0)
        return r;
    ssize_t o = outcome(t, r, why);
    if (o == 0) { /* nothing can be written to a closed connection */
        *why = "connection closed";
        errno = EPIPE;
        return -1;
    }
    return o;
}

ssize_t sb_tls_recv(sb_tls_t *t, void *p, size_t len, const char **why)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(t, p, len > INT_MAX ? INT_MAX : (int)len);
    return r > 0 ? r : outcome(t, r, why);
}
