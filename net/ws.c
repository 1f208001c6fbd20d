/* SPDX-License-Identifier: MIT */
/* net/ws.c - the WebSocket transport: HTTP upgrade, plain GETs, MQTT in binary frames. */
#include "net/ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/ws.h"
#include "net/tls.h"

#define MQTT_MAX_PACKET (268435455u + 5u) /* remaining length limit + fixed header */
#define HTTP_FILE_MAX (64u << 20)         /* bytes of one file served from http_dir */
#define MQTT_CONNECT 0x10                 /* first byte of an MQTT CONNECT */

struct mq_ws_listener {
    size_t headers_size;          /* websockets_headers_size */
    uint64_t max_frame;           /* payload bytes of one frame */
    char *http_dir;               /* realpath() of http_dir; NULL = none */
    size_t http_dir_len;          /* strlen(http_dir) */
    const uint8_t *status_page;   /* borrowed, static storage; NULL = off */
    size_t status_page_len;       /* bytes */
    char proxy[INET6_ADDRSTRLEN]; /* trusted proxy, inet_ntop() form; "" = none */
    const mq_tls_ctx_t *tls;      /* wss://: the listener's TLS context (borrowed); NULL = ws:// */
};

enum ws_phase {
    WS_HTTP = 0,   /* reading the request head */
    WS_FRAMES = 1, /* upgraded: WebSocket frames both ways */
    WS_DONE = 2,   /* a plain request was answered: the connection is closing */
};

/* One connection's transport state (c->xport_state). */
typedef struct ws_conn {
    const mq_ws_listener_t *wl;
    uint8_t phase;     /* enum ws_phase */
    bool has_bytes;    /* bytes arrived before this read */
    bool close_sent;   /* our close frame is in a send */
    uint8_t close_len; /* bytes in close_frame: the answer to the peer's close, or our failure */
    uint8_t close_frame[MQ_WS_MAX_REPLY];
    mq_ws_http_t http;
    mq_ws_decoder_t dec;
    mq_buf_t ctl;        /* wire bytes of our own for the next send: HTTP answer, pongs */
    mq_tls_t *tls;       /* wss://: TLS under the framing; NULL = ws:// */
    mq_buf_t tout;       /* wss://: framed bytes for TLS (kept while the handshake runs) */
    mq_conn_head_t head; /* ws://: the frame header in front of the protocol bytes (its head()) */
} ws_conn_t;

/* ---- the listener --------------------------------------------------------------------------- */

static int set_http_dir(mq_ws_listener_t *wl, const char *dir, char *err, size_t errlen)
{
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(dir, real) || stat(real, &st) != 0) {
        int e = errno;
        snprintf(err, errlen, "http_dir %s: %s", dir, strerror(e));
        return -e;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "http_dir %s: not a directory", dir);
        return -ENOTDIR;
    }
    wl->http_dir_len = strlen(real);
    wl->http_dir = mq_strndup(real, wl->http_dir_len);
    return 0;
}

/* The trusted proxy's address in the form format_peer() (net/conn.c) writes. */
static int set_proxy(mq_ws_listener_t *wl, const char *addr, char *err, size_t errlen)
{
    uint8_t bin[sizeof(struct in6_addr)];
    int af = strchr(addr, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(af, addr, bin) != 1 || !inet_ntop(af, bin, wl->proxy, sizeof(wl->proxy))) {
        snprintf(err, errlen, "websockets_trusted_proxy %s: not an IP address", addr);
        return -EINVAL;
    }
    return 0;
}

int mq_ws_listener_new(const mq_server_listener_t *l, const mq_tls_ctx_t *tls,
                       mq_ws_listener_t **out, char *err, size_t errlen)
{
    mq_ws_listener_t *wl = mq_calloc(1, sizeof(*wl));
    int rc = 0;
    wl->tls = tls;
    wl->headers_size = l->ws_headers_size ? l->ws_headers_size : MQ_WS_HEADERS_SIZE_DEFAULT;
    wl->max_frame = l->ws_max_frame ? l->ws_max_frame : MQTT_MAX_PACKET;
    wl->status_page = l->status_page;
    wl->status_page_len = l->status_page_len;
    if (l->http_dir && (rc = set_http_dir(wl, l->http_dir, err, errlen)) < 0)
        goto fail;
    if (l->ws_trusted_proxy && (rc = set_proxy(wl, l->ws_trusted_proxy, err, errlen)) < 0)
        goto fail;
    *out = wl;
    return 0;
fail:
    mq_ws_listener_free(wl);
    *out = NULL;
    return rc;
}

void mq_ws_listener_free(mq_ws_listener_t *wl)
{
    if (!wl)
        return;
    mq_free(wl->http_dir);
    mq_free(wl);
}

/* ---- plain HTTP requests ----------------------------------------------------------------------
 */

/* Copies at most 64 bytes of 's' into out[0..65) for the log, non-printables as '?'. */
static void log_sample(mq_str_t s, char out[65])
{
    size_t n = s.len < 64 ? s.len : 64;
    for (size_t i = 0; i < n; i++)
        out[i] = s.ptr[i] >= 0x20 && s.ptr[i] < 0x7f ? s.ptr[i] : '?';
    out[n] = '\0';
}

/* Reads http_dir/'name' into 'body'; returns the HTTP status to answer with. */
static uint16_t read_file(const mq_ws_listener_t *wl, const char *name, mq_buf_t *body)
{
    char path[PATH_MAX], real[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", wl->http_dir, name) >= sizeof(path))
        return 404;
    if (!realpath(path, real))
        return 404;
    /* a symbolic link that leads out of http_dir is not followed (mosquitto checks the same) */
    bool root = wl->http_dir_len == 1; /* http_dir / */
    if (strncmp(real, wl->http_dir, wl->http_dir_len) != 0 ||
        (!root && real[wl->http_dir_len] != '/'))
        return 404;
    /* Blocking file I/O on the worker, against STYLE.md §6, because it is bounded and rare:
     * one small local file (page cache) per plain GET, which then closes the connection, as
     * mosquitto's libwebsockets serves http_dir from its event loop. */
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errno == EACCES ? 403 : 404;
    struct stat st;
    uint16_t status = 200;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        status = 404;
    else if ((uint64_t)st.st_size > HTTP_FILE_MAX)
        status = 500;
    if (status == 200) {
        mq_buf_reserve(body, (size_t)st.st_size);
        ssize_t n;
        while (body->len < (size_t)st.st_size &&
               (n = read(fd, body->data + body->len, (size_t)st.st_size - body->len)) > 0)
            body->len += (size_t)n;
        if (body->len != (size_t)st.st_size)
            status = 500; /* a read error, or the file shrank under us */
    }
    close(fd);
    return status;
}

/* What a plain GET or HEAD of 'req' gets: the status, and the body (in 'file' or 'page'). */
static uint16_t choose_answer(const mq_ws_listener_t *wl, const mq_ws_req_t *req, mq_buf_t *file,
                              mq_str_t *page, const char **type)
{
    if (wl->status_page && mq_str_eq(req->path, MQ_STR_LIT("/"))) {
        *page = (mq_str_t){(const char *)wl->status_page, wl->status_page_len};
        *type = "text/html; charset=utf-8";
        return 200;
    }
    if (!wl->http_dir) /* nothing but WebSockets here: tell the client to upgrade */
        return wl->status_page ? 404 : 426;
    char name[PATH_MAX];
    int n = mq_ws_http_path(req->path, name, sizeof(name));
    if (n < 0)
        return n == -EINVAL ? 400 : 404;
    uint16_t status = read_file(wl, name, file);
    *page = (mq_str_t){(const char *)file->data, file->len};
    *type = mq_ws_http_content_type((mq_str_t){name, (size_t)n});
    return status;
}

/* Answers a plain GET or HEAD, then closes. */
static int answer_get(mq_conn_t *c, ws_conn_t *w, const mq_ws_req_t *req)
{
    mq_buf_t file;
    mq_buf_init(&file);
    mq_str_t body = {NULL, 0};
    const char *type = NULL;
    uint16_t status = choose_answer(w->wl, req, &file, &body, &type);
    char head[512];
    size_t n;
    if (status == 200) {
        n = mq_ws_http_head(200, type, body.len, head, sizeof(head));
        mq_buf_append(&w->ctl, head, n);
        if (!req->is_head)
            mq_buf_append(&w->ctl, body.ptr, body.len);
    } else {
        n = mq_ws_http_error(status, req->is_head, head, sizeof(head));
        mq_buf_append(&w->ctl, head, n);
    }
    mq_buf_fini(&file);
    char path[65], why[128];
    log_sample(req->path, path);
    snprintf(why, sizeof(why), "HTTP %s %s: %u %s", req->is_head ? "HEAD" : "GET", path, status,
             mq_ws_http_reason(status));
    w->phase = WS_DONE;
    mq_conn_close(c, why);
    return MQ_CONN_CLOSED;
}

/* Answers a request that cannot be served (req->status), then closes. An MQTT client on this
 * port ('is_mqtt': the stream began with a CONNECT) gets no HTTP answer: it would read it as
 * MQTT. */
static int answer_error(mq_conn_t *c, ws_conn_t *w, const mq_ws_req_t *req, bool is_mqtt)
{
    char why[128];
    w->phase = WS_DONE;
    if (is_mqtt) {
        mq_conn_close(c, "an MQTT client on a WebSockets listener (no HTTP upgrade)");
        return MQ_CONN_CLOSED;
    }
    char resp[512];
    size_t n = mq_ws_http_error(req->status, req->is_head, resp, sizeof(resp));
    mq_buf_append(&w->ctl, resp, n);
    snprintf(why, sizeof(why), "HTTP request refused: %u %s (%s)", req->status,
             mq_ws_http_reason(req->status), req->why ? req->why : "");
    mq_conn_close(c, why);
    return MQ_CONN_CLOSED;
}

/* ---- the upgrade ---------------------------------------------------------------------------- */

/* True when the socket peer of 'c' is the trusted proxy. */
static bool from_proxy(const mq_conn_t *c, const char *proxy)
{
    char peer[MQ_CONN_PEER_LEN];
    (void)mq_conn_peer(c, peer);
    const char *colon = strrchr(peer, ':');
    mq_str_t host = {peer, colon ? (size_t)(colon - peer) : strlen(peer)};
    if (host.len > 7 && strncmp(host.ptr, "::ffff:", 7) == 0 && memchr(host.ptr, '.', host.len)) {
        host.ptr += 7; /* an IPv4 client on a dual-stack socket */
        host.len -= 7;
    }
    return proxy[0] && mq_str_eq(host, mq_str(proxy));
}

/* X-Forwarded-For from the trusted proxy names the client in the logs from here on. */
static void take_forwarded_for(mq_conn_t *c, const mq_ws_req_t *req)
{
    mq_str_t ff = mq_ws_forwarded_for(req);
    char addr[INET6_ADDRSTRLEN], sample[65], peer[MQ_CONN_PEER_LEN];
    if (ff.len == 0)
        return;
    log_sample(ff, sample);
    (void)mq_conn_peer(c, peer);
    if (ff.len < sizeof(addr)) {
        memcpy(addr, ff.ptr, ff.len);
        addr[ff.len] = '\0';
    }
    if (ff.len >= sizeof(addr) || !mq_conn_set_peer(c, addr)) {
        MQ_LOG(MQ_LOG_INFO, "peer=%s X-Forwarded-For \"%s\" is not an IP address: ignored", peer,
               sample);
        return;
    }
    MQ_LOG(MQ_LOG_NOTICE, "WebSocket client %s via trusted proxy %s.", addr, peer);
}

/* Answers an upgrade request with 101; false when it cannot be answered (answered 400). */
static bool upgrade(mq_conn_t *c, ws_conn_t *w, const mq_ws_req_t *req)
{
    char resp[256];
    size_t n = mq_ws_http_101(req, resp, sizeof(resp));
    if (n == 0) { /* a Sec-WebSocket-Key too long for the accept computation */
        mq_ws_req_t bad = *req;
        bad.status = 400;
        bad.why = "Sec-WebSocket-Key not usable";
        (void)answer_error(c, w, &bad, false); /* closes */
        return false;
    }
    mq_buf_append(&w->ctl, resp, n);
    if (from_proxy(c, w->wl->proxy))
        take_forwarded_for(c, req);
    w->phase = WS_FRAMES;
    return true;
}

/* ---- frames --------------------------------------------------------------------------------- */

/* Decodes frames in place and passes the MQTT bytes up; answers pings and closes. */
static int frames_in(mq_conn_t *c, ws_conn_t *w, uint8_t *in, size_t len)
{
    if (w->close_len) {
        /* the stream ended (a close frame, or a violation) in a read whose CONNECT then took
         * the connection to another worker: it ends here, with the answer stored then */
        mq_conn_close(c, "WebSocket stream ended before the connection changed worker");
        return MQ_CONN_CLOSED;
    }
    mq_ws_rx_t rx;
    enum mq_ws_result res = mq_ws_decode(&w->dec, in, len, &rx);
    if (res == MQ_WS_OK && rx.reply_len) /* a pong: any time between frames */
        mq_buf_append(&w->ctl, rx.reply, rx.reply_len);
    else if (rx.reply_len) { /* a close frame: after whatever the protocol answers first */
        memcpy(w->close_frame, rx.reply, rx.reply_len);
        w->close_len = rx.reply_len;
    }
    int r = rx.len ? mq_conn_up(c, in, rx.len) : MQ_CONN_OK;
    /* handed to another worker: 'c' is not ours any more; what is pending in 'w' goes out
     * with the new owner's first flush. (A stream that ended in the same read as the CONNECT
     * is closed by that worker when it reads again, or sees the socket end: above.) */
    if (r == MQ_CONN_GONE)
        return r;
    if (res != MQ_WS_OK && c->state != MQ_CONN_CLOSING) {
        char why[128];
        if (res == MQ_WS_CLOSED)
            snprintf(why, sizeof(why), "WebSocket close frame from the client (status %u)",
                     rx.code);
        else
            snprintf(why, sizeof(why), "WebSocket protocol error: %s (closing with %u)",
                     rx.why ? rx.why : "", rx.code);
        mq_conn_close(c, why);
        r = MQ_CONN_CLOSED;
    }
    if (w->ctl.len)
        mq_conn_mark_dirty(c);
    return r;
}

/* The plain bytes of the connection (after TLS, for wss://), in a buffer we may rewrite. */
static int ws_in(mq_conn_t *c, ws_conn_t *w, uint8_t *in, size_t len)
{
    if (len == 0) /* a TLS handshake record: nothing for us yet */
        return MQ_CONN_OK;
    if (w->phase == WS_DONE)
        return MQ_CONN_CLOSED;
    if (w->phase == WS_HTTP) {
        size_t used = 0;
        mq_ws_req_t req;
        bool starts_mqtt = !w->has_bytes && len > 0 && in[0] == MQTT_CONNECT;
        w->has_bytes = true;
        if (mq_ws_http_feed(&w->http, in, len, &used, &req) == MQ_RC_AGAIN)
            return MQ_CONN_OK;
        int r = MQ_CONN_OK;
        if (req.kind == MQ_WS_REQ_GET)
            r = answer_get(c, w, &req);
        else if (req.kind == MQ_WS_REQ_ERROR)
            r = answer_error(c, w, &req, starts_mqtt && req.status == 400);
        else if (!upgrade(c, w, &req))
            r = MQ_CONN_CLOSED;
        mq_ws_http_fini(&w->http); /* 'req' pointed into it: done with both */
        if (r != MQ_CONN_OK)
            return r;
        in += used;
        len -= used;
        if (len == 0) {
            mq_conn_mark_dirty(c); /* the 101 */
            return MQ_CONN_OK;
        }
    }
    return frames_in(c, w, in, len);
}

/* wss://: decrypts into the loop's scratch buffer (ours until we return), then as ws://. */
static int wss_recv(mq_conn_t *c, ws_conn_t *w, const uint8_t *p, size_t len)
{
    mq_buf_t *plain = &c->loop->scratch;
    plain->len = 0;
    const char *why = NULL;
    int rc = mq_tls_recv(w->tls, p, len, plain, &why);
    size_t n = plain->len;
    plain->len = 0; /* emptied before it goes up: the next user starts afresh */
    int r = ws_in(c, w, plain->data, n);
    if (r == MQ_CONN_GONE)
        return r; /* 'c' is another worker's now: what is pending goes with its next flush */
    if (mq_tls_pending(w->tls))
        mq_conn_mark_dirty(c); /* a handshake reply, a session ticket, an alert */
    if (r == MQ_CONN_OK && rc < 0) {
        mq_conn_close(c, why);
        r = MQ_CONN_CLOSED;
    }
    return r;
}

static int ws_recv(mq_conn_t *c, const uint8_t *p, size_t len)
{
    ws_conn_t *w = c->xport_state;
    if (w->tls)
        return wss_recv(c, w, p, len);
    /* the loop's receive buffer, lent to us until we return (net/conn.h): unmasked in place */
    return ws_in(c, w, (uint8_t *)(uintptr_t)p, len);
}

/* Swaps the contents of two buffers. */
static void swap_bufs(mq_buf_t *a, mq_buf_t *b)
{
    mq_buf_t t = *a;
    *a = *b;
    *b = t;
}

/* Moves the bytes of 'src' to the end of 'dst' (without a copy when 'dst' is empty). */
static void move_bytes(mq_buf_t *dst, mq_buf_t *src)
{
    if (dst->len == 0) {
        swap_bufs(dst, src);
    } else {
        mq_buf_append(dst, src->data, src->len);
    }
    src->len = 0;
}

/* Appends to 'out' what goes to the client: our own bytes first (an HTTP answer, the 101,
 * pongs), then the protocol's bytes as one data frame, then the close frame when closing. */
static void frame_out(mq_conn_t *c, ws_conn_t *w, mq_buf_t *plain, mq_buf_t *out)
{
    bool closing = c->state == MQ_CONN_CLOSING && w->phase == WS_FRAMES && !w->close_sent;
    move_bytes(out, &w->ctl);
    if (w->phase != WS_FRAMES) { /* the protocol has heard nothing it could answer */
        MQ_ASSERT(plain->len == 0);
        return;
    }
    if (plain->len) {
        uint8_t hdr[MQ_WS_MAX_HEADER];
        size_t n = mq_ws_frame_header(hdr, MQ_WS_OP_BINARY, true, plain->len, NULL);
        mq_buf_append(out, hdr, n);
        mq_buf_append(out, plain->data, plain->len);
        plain->len = 0;
    }
    if (closing) {
        if (w->close_len == 0) /* the protocol ended it: a normal closure */
            w->close_len = (uint8_t)mq_ws_encode_close(w->close_frame, sizeof(w->close_frame),
                                                       MQ_WS_CLOSE_NORMAL, MQ_STR_LIT(""));
        mq_buf_append(out, w->close_frame, w->close_len);
        w->close_sent = true;
    }
}

/* wss://: the frames through TLS (a copy is in the nature of encryption). */
static void wss_send(mq_conn_t *c, ws_conn_t *w, mq_buf_t *plain, mq_buf_t *wire)
{
    frame_out(c, w, plain, &w->tout);
    size_t n = mq_tls_send(w->tls, w->tout.data, w->tout.len, wire);
    if (n == w->tout.len)
        w->tout.len = 0; /* also with nothing allocated yet */
    else
        mq_buf_consume(&w->tout, n);
    if (mq_tls_is_failed(w->tls))
        mq_conn_close(c, "TLS write failed"); /* what was taken is lost: say so, end it */
    if (c->state == MQ_CONN_CLOSING && w->tout.len == 0) {
        mq_tls_close(w->tls); /* after the last records (the close frame), before the shutdown */
        (void)mq_tls_send(w->tls, NULL, 0, wire);
    }
}

static void ws_send(mq_conn_t *c, mq_buf_t *plain, mq_buf_t *wire)
{
    ws_conn_t *w = c->xport_state;
    if (w->tls) {
        wss_send(c, w, plain, wire);
        return;
    }
    bool closing = c->state == MQ_CONN_CLOSING && w->phase == WS_FRAMES && !w->close_sent;
    if (w->phase == WS_FRAMES && w->ctl.len == 0 && !closing) {
        /* the common case: the protocol's bytes become the send buffer as they are, and the
         * frame header goes out in front of them from the head it lends (ws_head) */
        if (plain->len == 0)
            return;
        w->head.len =
            (uint8_t)mq_ws_frame_header(w->head.bytes, MQ_WS_OP_BINARY, true, plain->len, NULL);
        swap_bufs(plain, wire);
        plain->len = 0;
        return;
    }
    frame_out(c, w, plain, wire); /* wire is empty on entry: our own bytes go without a copy */
}

static void ws_free(mq_conn_t *c)
{
    ws_conn_t *w = c->xport_state;
    if (!w)
        return;
    mq_ws_http_fini(&w->http);
    mq_buf_fini(&w->ctl);
    mq_buf_fini(&w->tout);
    mq_tls_free(w->tls);
    mq_free(w);
    c->xport_state = NULL;
}

/* ws:// lends its frame header to the connection; wss:// frames into the TLS records. */
static mq_conn_head_t *ws_head(const mq_conn_t *c)
{
    ws_conn_t *w = c->xport_state;
    return w && !w->tls ? &w->head : NULL;
}

static struct mq_tls *ws_tls(const mq_conn_t *c)
{
    const ws_conn_t *w = c->xport_state;
    return w ? w->tls : NULL;
}

static const mq_transport_t ws_transport = {
    .name = "websockets",
    .recv = ws_recv,
    .send = ws_send,
    .free = ws_free,
    .tls = ws_tls,
    .head = ws_head,
};

int mq_ws_attach(mq_conn_t *c, const mq_ws_listener_t *wl)
{
    mq_tls_t *tls = NULL;
    char peer[MQ_CONN_PEER_LEN];
    if (wl->tls && (tls = mq_tls_new(wl->tls, mq_conn_peer(c, peer))) == NULL)
        return -ENOMEM;
    ws_conn_t *w = mq_calloc(1, sizeof(*w));
    w->wl = wl;
    w->tls = tls;
    mq_ws_http_init(&w->http, wl->headers_size);
    /* text frames pass as MQTT bytes, as mosquitto (libwebsockets) takes them */
    mq_ws_decoder_init(&w->dec, wl->max_frame, MQ_WS_ACCEPT_TEXT);
    mq_buf_init(&w->ctl);
    mq_buf_init(&w->tout);
    c->xport_state = w;
    c->xport = &ws_transport;
    return 0;
}

/* ---- the guard of plain MQTT listeners ------------------------------------------------------ */

static int guard_recv(mq_conn_t *c, const uint8_t *p, size_t len)
{
    c->xport = NULL; /* one look at the first bytes, then plain TCP without a transport */
    if (len == 0 || p[0] == MQTT_CONNECT || !mq_ws_looks_like_http(p, len))
        return mq_conn_up(c, p, len);
    char resp[512];
    size_t n = mq_ws_http_error(400, false, resp, sizeof(resp));
    mq_buf_append(mq_conn_out(c), resp, n); /* nothing else was queued: nothing went up */
    mq_conn_close(c, "an HTTP request (a WebSocket client?) on a plain MQTT listener");
    return MQ_CONN_CLOSED;
}

static void guard_send(mq_conn_t *c, mq_buf_t *plain, mq_buf_t *wire)
{
    (void)c;
    swap_bufs(plain, wire); /* only reached if the protocol writes before the first bytes */
    plain->len = 0;
}

static const mq_transport_t guard_transport = {
    .name = "mqtt-guard",
    .recv = guard_recv,
    .send = guard_send,
    .free = NULL,
};

void mq_ws_guard_attach(mq_conn_t *c)
{
    c->xport = &guard_transport;
}
