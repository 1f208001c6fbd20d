/* SPDX-License-Identifier: MIT */
/* net/tls.c - TLS over memory BIOs: listener contexts, per-connection state, the transport. */
#include "net/tls.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/utf8.h"

/* mosquitto's cipher list for TLS 1.2 and below when 'ciphers' is not given */
#define DEFAULT_CIPHERS "DEFAULT:!aNULL:!eNULL:!LOW:!EXPORT:!SSLv2:@STRENGTH"

enum user_mode { USER_NONE = 0, USER_IDENTITY = 1, USER_SUBJECT = 2 };

struct mq_tls_ctx {
    /* the context new connections get: loaded with acquire by the workers (mq_tls_new),
     * replaced with an acq_rel exchange by the main thread (mq_tls_ctx_reload) */
    _Atomic(SSL_CTX *) ctx;
    mq_server_tls_t o; /* the listener's options; strings borrowed from the configuration,
                        * which outlives the server */
    uint16_t port;
    uint8_t user_mode; /* enum user_mode */
};

struct mq_tls {
    SSL *ssl;
    BIO *rbio, *wbio;            /* owned by 'ssl': wire bytes in, wire bytes out */
    char peer[MQ_CONN_PEER_LEN]; /* for the log */
    char *user;                  /* owned: the certificate's CN or subject (user_mode), else NULL */
    char *psk_identity;          /* owned: the identity a PSK client's key was found for */
    uint8_t user_mode;           /* enum user_mode, the listener's */
    bool is_ready;               /* handshake complete */
    bool is_failed;              /* a fatal error: nothing more is read or written, alerts aside */
    bool is_closed;              /* close_notify queued */
    bool has_input;              /* wire bytes have arrived */
};

/* ---- errors -------------------------------------------------------------------------------------
 */

/* The reason of the oldest error in OpenSSL's queue (the cause, not its consequences), then
 * the queue is cleared. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown OpenSSL error";
}

static int ctx_fail(char *err, size_t errlen, const char *what, const char *path,
                    const char *option)
{
    snprintf(err, errlen, "Unable to load %s \"%s\" (check %s): %s", what, path, option,
             ssl_reason());
    return -EINVAL;
}

/* A readable file: the error names it with the system's reason, clearer than OpenSSL's. */
static int check_file(const char *path, const char *option, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s \"%s\": %s", option, path, strerror(errno));
        return -EINVAL;
    }
    fclose(f);
    return 0;
}

/* ---- a listener's context -----------------------------------------------------------------------
 */

/* An encrypted key would make OpenSSL prompt on the terminal, which a daemon (and a reload)
 * must never do: refuse it instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Protocol versions, ciphers and session settings, as mosquitto's net__tls_server_ctx. */
static int set_protocol(SSL_CTX *ctx, const mq_server_tls_t *o, uint16_t port, char *err,
                        size_t errlen)
{
    int min = o->tls_version == MQ_TLS_VERSION_1_1   ? TLS1_1_VERSION
              : o->tls_version == MQ_TLS_VERSION_1_3 ? TLS1_3_VERSION
                                                     : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx, min);
    /* renegotiation off (DESIGN: a client must not restart the handshake mid-session) */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION);
    /* an idle connection keeps no record buffers (DESIGN.md rule 7) */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    char sid[32];
    int n = snprintf(sid, sizeof(sid), "starling-%u", port);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)sid, (unsigned)n);
    const char *ciphers = o->ciphers ? o->ciphers : DEFAULT_CIPHERS;
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        snprintf(err, errlen, "Unable to set TLS ciphers \"%s\" (check ciphers): %s", ciphers,
                 ssl_reason());
        return -EINVAL;
    }
    if (o->ciphers_tls13 && SSL_CTX_set_ciphersuites(ctx, o->ciphers_tls13) != 1) {
        snprintf(err, errlen,
                 "Unable to set TLS 1.3 ciphersuites \"%s\" (check ciphers_tls1.3): %s",
                 o->ciphers_tls13, ssl_reason());
        return -EINVAL;
    }
    return 0;
}

/* Trusted CAs, client certificate policy, revocation list. */
static int set_verify(SSL_CTX *ctx, const mq_server_tls_t *o, char *err, size_t errlen)
{
    if (o->cafile) {
        if (check_file(o->cafile, "cafile", err, errlen) < 0)
            return -EINVAL;
        if (SSL_CTX_load_verify_file(ctx, o->cafile) != 1)
            return ctx_fail(err, errlen, "CA certificates", o->cafile, "cafile");
    }
    if (o->capath && SSL_CTX_load_verify_dir(ctx, o->capath) != 1)
        return ctx_fail(err, errlen, "CA certificates", o->capath, "capath");
    SSL_CTX_set_verify(ctx,
                       o->require_certificate ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                              : SSL_VERIFY_NONE,
                       NULL);
    if (o->crlfile) {
        if (check_file(o->crlfile, "crlfile", err, errlen) < 0)
            return -EINVAL;
        X509_STORE *store = SSL_CTX_get_cert_store(ctx);
        X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
        if (lookup == NULL || X509_load_crl_file(lookup, o->crlfile, X509_FILETYPE_PEM) < 1)
            return ctx_fail(err, errlen, "certificate revocation list", o->crlfile, "crlfile");
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    return 0;
}

/* The server's certificate chain and key, which must match. */
static int set_identity(SSL_CTX *ctx, const mq_server_tls_t *o, char *err, size_t errlen)
{
    if (check_file(o->certfile, "certfile", err, errlen) < 0 ||
        check_file(o->keyfile, "keyfile", err, errlen) < 0)
        return -EINVAL;
    if (SSL_CTX_use_certificate_chain_file(ctx, o->certfile) != 1)
        return ctx_fail(err, errlen, "server certificate", o->certfile, "certfile");
    if (SSL_CTX_use_PrivateKey_file(ctx, o->keyfile, SSL_FILETYPE_PEM) != 1)
        return ctx_fail(err, errlen, "server key", o->keyfile, "keyfile");
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "Server key \"%s\" does not match certificate \"%s\": %s", o->keyfile,
                 o->certfile, ssl_reason());
        return -EINVAL;
    }
    return 0;
}

/* ---- TLS-PSK (mosquitto's psk_hint and psk_file) ---------------------------------------- */

/* The keys of psk_file, kept with the SSL_CTX they were read for (ex_data, freed with it),
 * so that a reload swaps keys and context together. */
typedef struct psk_entry {
    char *identity; /* owned */
    uint16_t len;
    unsigned char key[PSK_MAX_PSK_LEN];
} psk_entry_t;

typedef struct psk_table {
    psk_entry_t *v;
    uint32_t n, cap;
} psk_table_t;

static int psk_index = -1; /* SSL_CTX ex_data slot, made once at the first PSK listener */

static void psk_table_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                           void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    psk_table_t *t = ptr;
    if (t == NULL)
        return;
    for (uint32_t i = 0; i < t->n; i++) {
        OPENSSL_cleanse(t->v[i].key, sizeof(t->v[i].key));
        mq_free(t->v[i].identity);
    }
    mq_free(t->v);
    mq_free(t);
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* One "identity:hexkey" line into 'e'; NULL, or why it is not one. */
static const char *psk_line(const char *line, size_t len, psk_entry_t *e)
{
    const char *colon = memchr(line, ':', len);
    if (colon == NULL || colon == line)
        return "not identity:key";
    size_t hex = len - (size_t)(colon + 1 - line);
    if (hex == 0 || hex % 2 || hex / 2 > PSK_MAX_PSK_LEN)
        return "the key is not an even number of hex digits (at most 1024)";
    for (size_t i = 0; i < hex / 2; i++) {
        int hi = hex_digit(colon[1 + 2 * i]), lo = hex_digit(colon[2 + 2 * i]);
        if (hi < 0 || lo < 0)
            return "the key is not hexadecimal";
        e->key[i] = (unsigned char)(hi << 4 | lo);
    }
    e->len = (uint16_t)(hex / 2);
    e->identity = mq_strndup(line, (size_t)(colon - line));
    return NULL;
}

/* Reads psk_file: blank lines and '#' comments are skipped, a bad line is logged with its
 * number and skipped (as mosquitto skips what it cannot parse). */
static psk_table_t *psk_read(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, errlen, "psk_file %s: %s", path, strerror(errno));
        return NULL;
    }
    psk_table_t *t = mq_calloc(1, sizeof(*t));
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    for (unsigned no = 1; (got = getline(&line, &cap, f)) >= 0; no++) {
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (len == 0 || line[0] == '#')
            continue;
        if (t->n == t->cap)
            t->v = mq_grow(t->v, &t->cap, sizeof(*t->v), 8);
        const char *why = psk_line(line, len, &t->v[t->n]);
        if (why) {
            OPENSSL_cleanse(t->v[t->n].key, sizeof(t->v[t->n].key)); /* a part may be there */
            MQ_LOG(MQ_LOG_WARN, "Warning: %s:%u: %s; line skipped.", path, no, why);
        } else {
            t->n++;
        }
    }
    OPENSSL_cleanse(line, cap); /* it held keys */
    free(line);
    fclose(f);
    return t;
}

/* OpenSSL asks for the key of 'identity' (TLS 1.2 PSK suites, and TLS 1.3 through the same
 * callback): its length, or 0 for an unknown identity (the handshake fails). */
static unsigned int psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk,
                                  unsigned int max_len)
{
    const psk_table_t *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), psk_index);
    mq_tls_t *conn = SSL_get_app_data(ssl);
    for (uint32_t i = 0; t && identity && i < t->n; i++) {
        if (strcmp(t->v[i].identity, identity) == 0 && t->v[i].len <= max_len) {
            memcpy(psk, t->v[i].key, t->v[i].len);
            mq_free(conn->psk_identity); /* the user name with use_identity_as_username */
            conn->psk_identity = mq_strndup(identity, strlen(identity));
            return t->v[i].len;
        }
    }
    return 0;
}

static int set_psk(SSL_CTX *ctx, const mq_server_tls_t *o, char *err, size_t errlen)
{
    if (psk_index < 0) /* main thread, at start: before any worker runs */
        psk_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, psk_table_free);
    psk_table_t *t = psk_read(o->psk_file, err, errlen);
    if (t == NULL)
        return -EINVAL;
    SSL_CTX_set_ex_data(ctx, psk_index, t);
    SSL_CTX_set_psk_server_callback(ctx, psk_server_cb);
    if (SSL_CTX_use_psk_identity_hint(ctx, o->psk_hint) != 1) {
        snprintf(err, errlen, "psk_hint %s: %s", o->psk_hint, ssl_reason());
        return -EINVAL;
    }
    return 0;
}

/* A new SSL_CTX from the options (every file read now), or NULL with err set. */
static SSL_CTX *build_ctx(const mq_server_tls_t *o, uint16_t port, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "Unable to create a TLS context: %s", ssl_reason());
        return NULL;
    }
    if (set_protocol(ctx, o, port, err, errlen) < 0 || set_verify(ctx, o, err, errlen) < 0 ||
        (o->certfile && set_identity(ctx, o, err, errlen) < 0) ||
        (o->psk_hint && set_psk(ctx, o, err, errlen) < 0)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int mq_tls_ctx_new(const mq_server_tls_t *o, uint16_t port, mq_tls_ctx_t **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    if ((o->certfile == NULL || o->keyfile == NULL) &&
        (o->certfile || o->keyfile || !o->psk_hint)) {
        snprintf(err, errlen, "listener %u: certfile and keyfile must both be given for TLS", port);
        return -EINVAL;
    }
    if (o->psk_hint && o->psk_file == NULL) {
        snprintf(err, errlen, "listener %u: psk_hint needs a psk_file with the keys", port);
        return -EINVAL;
    }
    SSL_CTX *ctx = build_ctx(o, port, err, errlen);
    if (ctx == NULL)
        return -EINVAL;
    mq_tls_ctx_t *x = mq_calloc(1, sizeof(*x));
    atomic_init(&x->ctx, ctx);
    x->o = *o;
    x->port = port;
    x->user_mode = o->use_identity_as_username  ? USER_IDENTITY
                   : o->use_subject_as_username ? USER_SUBJECT
                                                : USER_NONE;
    *out = x;
    return 0;
}

int mq_tls_ctx_reload(mq_tls_ctx_t *x, mq_epoch_t *ep, char *err, size_t errlen)
{
    SSL_CTX *ctx = build_ctx(&x->o, x->port, err, errlen);
    if (ctx == NULL)
        return -EINVAL;
    /* release: a worker that loads the new pointer sees it fully built (mq_tls_new) */
    SSL_CTX *old = atomic_exchange_explicit(&x->ctx, ctx, memory_order_acq_rel);
    /* a worker may have loaded 'old' in its current turn and not yet taken its reference
     * (SSL_new): wait until every worker has passed a quiescent point */
    mq_epoch_synchronize(ep);
    SSL_CTX_free(old); /* open connections hold their own references */
    return 0;
}

void mq_tls_ctx_free(mq_tls_ctx_t *x)
{
    if (x == NULL)
        return;
    SSL_CTX_free(atomic_load_explicit(&x->ctx, memory_order_relaxed));
    mq_free(x);
}

/* ---- one connection
 * ------------------------------------------------------------------------------ */

mq_tls_t *mq_tls_new(const mq_tls_ctx_t *x, const char *peer)
{
    /* acquire: pairs with the exchange in mq_tls_ctx_reload (the context is complete); the
     * pointer is used within this turn, before the next quiescent point */
    SSL_CTX *ctx = atomic_load_explicit(&((mq_tls_ctx_t *)x)->ctx, memory_order_acquire);
    SSL *ssl = SSL_new(ctx); /* takes its own reference to ctx */
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    if (ssl == NULL || rbio == NULL || wbio == NULL) {
        SSL_free(ssl);
        BIO_free(rbio);
        BIO_free(wbio);
        ERR_clear_error();
        return NULL;
    }
    /* an empty read BIO means "wait for more bytes" (SSL_ERROR_WANT_READ), not end of file */
    BIO_set_mem_eof_return(rbio, -1);
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_accept_state(ssl);
    mq_tls_t *t = mq_calloc(1, sizeof(*t));
    SSL_set_app_data(ssl, t); /* the PSK callback records the identity here */
    t->ssl = ssl;
    t->rbio = rbio;
    t->wbio = wbio;
    snprintf(t->peer, sizeof(t->peer), "%s", peer);
    t->user_mode = x->user_mode;
    return t;
}

void mq_tls_free(mq_tls_t *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* and both BIOs */
    mq_free(t->user);
    mq_free(t->psk_identity);
    mq_free(t);
}

/* The username the certificate gives (mosquitto's handle__connect): its CN, refused when
 * it holds a NUL, or its whole subject in RFC 2253 form; NULL when there is none. */
static char *cert_user(const mq_tls_t *t)
{
    /* a PSK client: its identity, as the callback saw it or, for a resumed session (no
     * callback), as the session kept it */
    const char *psk_id = t->psk_identity ? t->psk_identity : SSL_get_psk_identity(t->ssl);
    if (psk_id && t->user_mode == USER_IDENTITY) {
        size_t n = strlen(psk_id);
        return mq_utf8_is_valid((const uint8_t *)psk_id, n) ? mq_strndup(psk_id, n) : NULL;
    }
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    X509_NAME *name = cert ? X509_get_subject_name(cert) : NULL;
    if (name == NULL)
        return NULL;
    if (t->user_mode == USER_IDENTITY) {
        int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
        X509_NAME_ENTRY *e = i < 0 ? NULL : X509_NAME_get_entry(name, i);
        ASN1_STRING *d = e ? X509_NAME_ENTRY_get_data(e) : NULL;
        if (d == NULL)
            return NULL;
        const unsigned char *p = ASN1_STRING_get0_data(d);
        size_t len = (size_t)ASN1_STRING_length(d);
        return memchr(p, 0, len) ? NULL : mq_strndup((const char *)p, len);
    }
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return NULL;
    X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253);
    char *p;
    long len = BIO_get_mem_data(b, &p);
    char *s = len > 0 ? mq_strndup(p, (size_t)len) : NULL;
    BIO_free(b);
    return s;
}

static void on_ready(mq_tls_t *t)
{
    t->is_ready = true;
    if (t->user_mode != USER_NONE)
        t->user = cert_user(t);
    MQ_LOG(MQ_LOG_DEBUG, "peer=%s TLS handshake done: %s %s%s%s%s", t->peer,
           SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl), t->user ? " username='" : "",
           t->user ? t->user : "", t->user ? "'" : "");
}

/* Why the handshake or a record failed, for the connection's closing log line. */
static const char *failure(mq_tls_t *t, int ssl_err)
{
    static _Thread_local char why[256];
    t->is_failed = true;
    if (ssl_err == SSL_ERROR_ZERO_RETURN)
        return "TLS close_notify from the client";
    const char *r = ssl_reason();
    long v = SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK) /* the certificate's own reason says more than "verify failed" */
        snprintf(why, sizeof(why), "TLS %s failed: %s (%s)", t->is_ready ? "read" : "handshake", r,
                 X509_verify_cert_error_string(v));
    else
        snprintf(why, sizeof(why), "TLS %s failed: %s", t->is_ready ? "read" : "handshake", r);
    return why;
}

/* Decrypts every complete record into 'plain'; 0 once OpenSSL wants more bytes. */
static int read_records(mq_tls_t *t, mq_buf_t *plain, const char **why)
{
    for (;;) {
        mq_buf_reserve(plain, 16 * 1024); /* one TLS record's worth */
        size_t room = plain->cap - plain->len;
        int n = SSL_read(t->ssl, plain->data + plain->len, room > INT_MAX ? INT_MAX : (int)room);
        if (n > 0) {
            plain->len += (size_t)n;
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            return 0;
        *why = failure(t, e);
        return -EPROTO;
    }
}

int mq_tls_recv(mq_tls_t *t, const uint8_t *in, size_t len, mq_buf_t *plain, const char **why)
{
    if (t->is_failed) /* bytes after a failure (before the close completes) are ignored */
        return 0;
    if (!t->has_input && len > 0 && in[0] == 0x10) {
        /* a CONNECT packet's first byte where a ClientHello (0x16) should be */
        t->is_failed = true;
        *why = "plain MQTT on a TLS listener (the client did not start a TLS handshake)";
        return -EPROTO;
    }
    t->has_input = t->has_input || len > 0;
    ERR_clear_error();
    if (len > 0 && BIO_write(t->rbio, in, (int)len) != (int)len) {
        t->is_failed = true;
        *why = "TLS: out of memory";
        return -EPROTO;
    }
    if (!t->is_ready) {
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                return 0; /* the reply (if any) is pending in the write BIO */
            *why = failure(t, e);
            return -EPROTO;
        }
        on_ready(t);
    }
    return read_records(t, plain, why);
}

/* Appends every wire byte OpenSSL has produced. */
static void drain(mq_tls_t *t, mq_buf_t *wire)
{
    size_t n = BIO_ctrl_pending(t->wbio);
    if (n == 0)
        return;
    mq_buf_reserve(wire, n);
    int r = BIO_read(t->wbio, wire->data + wire->len, n > INT_MAX ? INT_MAX : (int)n);
    if (r > 0)
        wire->len += (size_t)r;
}

size_t mq_tls_send(mq_tls_t *t, const uint8_t *plain, size_t len, mq_buf_t *wire)
{
    size_t taken = 0;
    if (len > 0 && (t->is_failed || t->is_closed)) {
        taken = len; /* the connection is ending: nothing more can go out */
    } else if (len > 0 && t->is_ready) {
        ERR_clear_error();
        /* a memory BIO takes everything: SSL_write completes (no partial write) */
        int n = SSL_write(t->ssl, plain, len > INT_MAX ? INT_MAX : (int)len);
        if (n <= 0) {
            const char *why = failure(t, SSL_get_error(t->ssl, n));
            MQ_LOG(MQ_LOG_INFO, "peer=%s %s", t->peer, why);
            n = (int)len; /* dropped: the connection cannot be served (the caller closes it) */
        }
        taken = (size_t)n;
    }
    drain(t, wire);
    return taken;
}

bool mq_tls_pending(const mq_tls_t *t)
{
    return BIO_ctrl_pending(t->wbio) > 0;
}

bool mq_tls_is_failed(const mq_tls_t *t)
{
    return t->is_failed;
}

void mq_tls_close(mq_tls_t *t)
{
    if (t->is_closed || t->is_failed || !t->is_ready)
        return;
    t->is_closed = true;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl); /* queues close_notify; the peer's is not awaited */
    ERR_clear_error();
}

/* ---- the transport
 * ------------------------------------------------------------------------------- */

static int xp_recv(mq_conn_t *c, const uint8_t *p, size_t len)
{
    mq_tls_t *t = c->xport_state;
    mq_buf_t *plain = &c->loop->scratch;
    plain->len = 0;
    const char *why = NULL;
    int rc = mq_tls_recv(t, p, len, plain, &why);
    int r = MQ_CONN_OK;
    if (plain->len > 0)
        r = mq_conn_up(c, plain->data, plain->len);
    if (r == MQ_CONN_GONE)
        return r; /* 'c' is another worker's now: what is pending goes with its next flush */
    if (mq_tls_pending(t))
        mq_conn_mark_dirty(c); /* a handshake reply, a session ticket, an alert */
    if (r == MQ_CONN_OK && rc < 0) {
        mq_conn_close(c, why);
        r = MQ_CONN_CLOSED;
    }
    return r;
}

static void xp_send(mq_conn_t *c, mq_buf_t *plain, mq_buf_t *wire)
{
    mq_tls_t *t = c->xport_state;
    size_t n = mq_tls_send(t, plain->data, plain->len, wire);
    if (n == plain->len)
        plain->len = 0;
    else
        mq_buf_consume(plain, n);
    if (mq_tls_is_failed(t))
        mq_conn_close(c, "TLS write failed"); /* what was taken is lost: say so, end it */
    if (c->state == MQ_CONN_CLOSING && plain->len == 0) {
        mq_tls_close(t); /* after the last records, before the socket is shut */
        (void)mq_tls_send(t, NULL, 0, wire);
    }
}

static void xp_free(mq_conn_t *c)
{
    mq_tls_free(c->xport_state);
    c->xport_state = NULL;
}

static struct mq_tls *xp_tls(const mq_conn_t *c)
{
    return c->xport_state;
}

const mq_transport_t mq_tls_transport = {
    .name = "tls",
    .recv = xp_recv,
    .send = xp_send,
    .free = xp_free,
    .tls = xp_tls,
};

int mq_tls_attach(mq_conn_t *c, const mq_tls_ctx_t *x)
{
    char peer[MQ_CONN_PEER_LEN];
    mq_tls_t *t = mq_tls_new(x, mq_conn_peer(c, peer));
    if (t == NULL)
        return -ENOMEM;
    c->xport = &mq_tls_transport;
    c->xport_state = t;
    return 0;
}

/* ---- for the protocol
 * ---------------------------------------------------------------------------- */

enum mq_tls_user mq_tls_username(const mq_conn_t *c, const char **user)
{
    *user = NULL;
    const mq_tls_t *t = c->xport && c->xport->tls ? c->xport->tls(c) : NULL;
    if (t == NULL || t->user_mode == USER_NONE)
        return MQ_TLS_USER_CONNECT;
    if (t->user == NULL)
        return MQ_TLS_USER_MISSING;
    *user = t->user;
    return MQ_TLS_USER_CERT;
}

bool mq_tls_looks_like_hello(const uint8_t *p, size_t len)
{
    /* a handshake record (22) of TLS 1.0..1.3's record versions 3.1..3.4 */
    return len >= 3 && p[0] == 0x16 && p[1] == 0x03 && p[2] <= 0x04;
}
