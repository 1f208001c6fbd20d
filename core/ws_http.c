/* SPDX-License-Identifier: MIT */
/* core/ws_http.c - the HTTP/1.1 request head that opens a WebSocket listener's connection. */
#include "core/ws.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

/* What the header lines told, beyond the views kept in mq_ws_req_t. */
typedef struct head_ctx {
    bool up_websocket; /* Upgrade lists "websocket" */
    bool conn_upgrade; /* Connection lists "upgrade" */
    unsigned n_host, n_key, n_version, n_protocol;
} head_ctx_t;

#define REQ_FAIL(req, st, text)                                                                    \
    do {                                                                                           \
        (req)->kind = MQ_WS_REQ_ERROR;                                                             \
        (req)->status = (st);                                                                      \
        (req)->why = (text);                                                                       \
        return;                                                                                    \
    } while (0)

/* RFC 9110 §5.6.2 tchar */
static bool is_tchar(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool eq_nocase(mq_str_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.ptr, lit, n) == 0;
}

static mq_str_t trim(mq_str_t s)
{
    while (s.len && is_ows(s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len && is_ows(s.ptr[s.len - 1]))
        s.len--;
    return s;
}

/* Next element of a comma-separated list (RFC 9110 §5.6.1) starting at *pos, trimmed;
 * false at the end. Empty elements are skipped. */
static bool list_next(mq_str_t list, size_t *pos, mq_str_t *elem)
{
    while (*pos < list.len) {
        const char *p = list.ptr + *pos;
        const char *comma = memchr(p, ',', list.len - *pos);
        size_t n = comma ? (size_t)(comma - p) : list.len - *pos;
        *pos += n + (comma ? 1 : 0);
        *elem = trim((mq_str_t){p, n});
        if (elem->len)
            return true;
    }
    return false;
}

static bool list_has(mq_str_t list, const char *token)
{
    size_t pos = 0;
    mq_str_t e;
    while (list_next(list, &pos, &e))
        if (eq_nocase(e, token))
            return true;
    return false;
}

/* ---- the request head -------------------------------------------------------------------- */

/* request-line = method SP request-target SP HTTP-version (RFC 9112 §3) */
static void parse_request_line(mq_str_t l, mq_ws_req_t *req)
{
    const char *sp1 = memchr(l.ptr, ' ', l.len);
    if (!sp1 || sp1 == l.ptr)
        REQ_FAIL(req, 400, "bad request line");
    req->method = (mq_str_t){l.ptr, (size_t)(sp1 - l.ptr)};
    for (size_t i = 0; i < req->method.len; i++)
        if (!is_tchar((uint8_t)req->method.ptr[i]))
            REQ_FAIL(req, 400, "bad method");
    const char *t = sp1 + 1, *end = l.ptr + l.len;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2 || sp2 == t)
        REQ_FAIL(req, 400, "bad request line");
    req->target = (mq_str_t){t, (size_t)(sp2 - t)};
    for (size_t i = 0; i < req->target.len; i++) {
        uint8_t c = (uint8_t)t[i];
        if (c <= 0x20 || c == 0x7F)
            REQ_FAIL(req, 400, "bad character in the request target");
    }
    mq_str_t v = {sp2 + 1, (size_t)(end - sp2 - 1)};
    if (v.len != 8 || memcmp(v.ptr, "HTTP/", 5) != 0 || v.ptr[5] < '0' || v.ptr[5] > '9' ||
        v.ptr[6] != '.' || v.ptr[7] < '0' || v.ptr[7] > '9')
        REQ_FAIL(req, 400, "bad HTTP version");
    if (v.ptr[5] != '1')
        REQ_FAIL(req, 505, "not HTTP/1.x");
    req->minor = (uint8_t)(v.ptr[7] - '0');
    if (t[0] != '/')
        REQ_FAIL(req, 400, "request target is not a path"); /* origin-form only */
    const char *q = memchr(t, '?', req->target.len);
    req->path = (mq_str_t){t, q ? (size_t)(q - t) : req->target.len};
}

/* Remembers the first Sec-WebSocket-Protocol offer that we speak [MQTT-6.0.0-3]. */
static void pick_protocol(mq_str_t list, mq_ws_req_t *req)
{
    size_t pos = 0;
    mq_str_t e;
    while (!req->subprotocol && list_next(list, &pos, &e)) {
        if (eq_nocase(e, "mqtt"))
            req->subprotocol = "mqtt";
        else if (eq_nocase(e, "mqttv3.1"))
            req->subprotocol = "mqttv3.1";
    }
}

static void store_header(mq_str_t name, mq_str_t val, head_ctx_t *ctx, mq_ws_req_t *req)
{
    if (eq_nocase(name, "host")) {
        if (ctx->n_host++)
            REQ_FAIL(req, 400, "more than one Host"); /* RFC 9112 §3.2 */
        req->host = val;
    } else if (eq_nocase(name, "upgrade")) {
        req->upgrade = val;
        ctx->up_websocket |= list_has(val, "websocket");
    } else if (eq_nocase(name, "connection")) {
        req->connection = val;
        ctx->conn_upgrade |= list_has(val, "upgrade");
    } else if (eq_nocase(name, "sec-websocket-key")) {
        if (ctx->n_key++)
            REQ_FAIL(req, 400, "more than one Sec-WebSocket-Key");
        req->key = val;
    } else if (eq_nocase(name, "sec-websocket-version")) {
        if (ctx->n_version++)
            REQ_FAIL(req, 400, "more than one Sec-WebSocket-Version");
        req->version = val;
    } else if (eq_nocase(name, "sec-websocket-protocol")) {
        if (!ctx->n_protocol++)
            req->protocols = val;
        pick_protocol(val, req);
    } else if (eq_nocase(name, "x-forwarded-for")) {
        req->forwarded_for = val;
    } else if (eq_nocase(name, "origin")) {
        req->origin = val;
    } else if (eq_nocase(name, "transfer-encoding") ||
               (eq_nocase(name, "content-length") && !(val.len == 1 && val.ptr[0] == '0'))) {
        REQ_FAIL(req, 400, "request with a body"); /* nothing here reads one */
    }
}

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 §5) */
static void parse_header(mq_str_t l, head_ctx_t *ctx, mq_ws_req_t *req)
{
    if (is_ows(l.ptr[0]))
        REQ_FAIL(req, 400, "obsolete line folding"); /* RFC 9112 §5.2 */
    const char *colon = memchr(l.ptr, ':', l.len);
    if (!colon || colon == l.ptr)
        REQ_FAIL(req, 400, "bad header line");
    mq_str_t name = {l.ptr, (size_t)(colon - l.ptr)};
    for (size_t i = 0; i < name.len; i++)
        if (!is_tchar((uint8_t)name.ptr[i]))
            REQ_FAIL(req, 400, "bad header name"); /* also blanks before ':' (§5.1) */
    mq_str_t val = trim((mq_str_t){colon + 1, l.len - name.len - 1});
    for (size_t i = 0; i < val.len; i++) {
        uint8_t c = (uint8_t)val.ptr[i];
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            REQ_FAIL(req, 400, "bad character in a header value");
    }
    store_header(name, val, ctx, req);
}

/* A Sec-WebSocket-Key is the base64 of 16 bytes: 22 characters and "==" (RFC 6455 §4.1). */
static bool key_ok(mq_str_t k)
{
    if (k.len != 24 || k.ptr[22] != '=' || k.ptr[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++) {
        char c = k.ptr[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return false;
    }
    return true;
}

static void classify(const head_ctx_t *ctx, mq_ws_req_t *req)
{
    /* methods are case-sensitive (RFC 9110 §9.1) */
    bool get = req->method.len == 3 && memcmp(req->method.ptr, "GET", 3) == 0;
    bool head = req->method.len == 4 && memcmp(req->method.ptr, "HEAD", 4) == 0;
    if (ctx->up_websocket) { /* an opening handshake: RFC 6455 §4.2.1 */
        if (!get)
            REQ_FAIL(req, 400, "upgrade not with GET");
        if (req->minor < 1)
            REQ_FAIL(req, 400, "upgrade needs HTTP/1.1");
        if (!ctx->conn_upgrade)
            REQ_FAIL(req, 400, "Connection does not list upgrade");
        if (!ctx->n_host)
            REQ_FAIL(req, 400, "no Host");
        if (!ctx->n_version)
            REQ_FAIL(req, 400, "no Sec-WebSocket-Version");
        if (!(req->version.len == 2 && memcmp(req->version.ptr, "13", 2) == 0))
            REQ_FAIL(req, 426, "Sec-WebSocket-Version is not 13"); /* §4.4 */
        if (!key_ok(req->key))
            REQ_FAIL(req, 400, "bad Sec-WebSocket-Key");
        req->kind = MQ_WS_REQ_UPGRADE;
        return;
    }
    if (!get && !head)
        REQ_FAIL(req, 405, "method not GET or HEAD");
    if (req->minor >= 1 && !ctx->n_host)
        REQ_FAIL(req, 400, "no Host"); /* RFC 9112 §3.2 */
    req->kind = MQ_WS_REQ_GET;
    req->is_head = head;
}

/* Next line of head[*pos..len): without its LF or CRLF; false when a bare CR is found or
 * no line ends before 'len'. */
static bool next_line(const char *head, size_t len, size_t *pos, mq_str_t *line)
{
    const char *p = head + *pos;
    const char *lf = memchr(p, '\n', len - *pos);
    if (!lf)
        return false;
    size_t n = (size_t)(lf - p);
    *pos += n + 1;
    if (n && p[n - 1] == '\r')
        n--;
    if (memchr(p, '\r', n))
        return false; /* a bare CR (RFC 9112 §2.2 allows rejecting it) */
    *line = (mq_str_t){p, n};
    return true;
}

void mq_ws_http_parse(const char *head, size_t len, mq_ws_req_t *req)
{
    memset(req, 0, sizeof(*req));
    head_ctx_t ctx = {0};
    size_t pos = 0;
    mq_str_t line;
    if (!next_line(head, len, &pos, &line))
        REQ_FAIL(req, 400, "bad line ending");
    parse_request_line(line, req);
    if (req->kind == MQ_WS_REQ_ERROR)
        return;
    for (;;) {
        if (!next_line(head, len, &pos, &line))
            REQ_FAIL(req, 400, "bad line ending");
        if (line.len == 0)
            break;
        parse_header(line, &ctx, req);
        if (req->kind == MQ_WS_REQ_ERROR)
            return;
    }
    classify(&ctx, req);
}

/* ---- incremental feeding ----------------------------------------------------------------- */

void mq_ws_http_init(mq_ws_http_t *p, size_t limit)
{
    memset(p, 0, sizeof(*p));
    p->limit = limit ? limit : MQ_WS_HEADERS_SIZE_DEFAULT;
    mq_buf_init(&p->_head);
    p->_in_method = true;
}

void mq_ws_http_fini(mq_ws_http_t *p)
{
    mq_buf_fini(&p->_head);
}

static enum mq_rc feed_fail(mq_ws_http_t *p, size_t used_n, size_t *used, mq_ws_req_t *req,
                            uint16_t status, const char *why)
{
    memset(req, 0, sizeof(*req));
    req->kind = MQ_WS_REQ_ERROR;
    req->status = status;
    req->why = why;
    p->_done = true;
    *used = used_n;
    return MQ_RC_SUCCESS;
}

enum mq_rc mq_ws_http_feed(mq_ws_http_t *p, const uint8_t *in, size_t len, size_t *used,
                           mq_ws_req_t *req)
{
    MQ_ASSERT(!p->_done);
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        size_t total = p->_head.len + i + 1; /* head bytes including this one */
        if (p->_in_method) {
            if (c == ' ' && total > 1)
                p->_in_method = false;
            else if (!is_tchar(c))
                return feed_fail(p, i + 1, used, req, 400, "not an HTTP request");
        }
        if (total > p->limit)
            return feed_fail(p, i + 1, used, req, 431, "request head over the size limit");
        if (c == '\n') {
            if (p->_eol) { /* LF LF or LF CR LF: the empty line ends the head */
                mq_buf_append(&p->_head, in, i + 1);
                p->_done = true;
                *used = i + 1;
                mq_ws_http_parse((const char *)p->_head.data, p->_head.len, req);
                return MQ_RC_SUCCESS;
            }
            p->_eol = 1;
        } else {
            p->_eol = (c == '\r' && p->_eol == 1) ? 2 : 0;
        }
    }
    mq_buf_append(&p->_head, in, len);
    *used = len;
    return MQ_RC_AGAIN;
}

bool mq_ws_looks_like_http(const uint8_t *in, size_t len)
{
    return len > 0 && memcmp(in, "GET ", len < 4 ? len : 4) == 0;
}

mq_str_t mq_ws_forwarded_for(const mq_ws_req_t *req)
{
    mq_str_t v = req->forwarded_for;
    const char *last = v.len ? memrchr(v.ptr, ',', v.len) : NULL;
    if (last)
        v = (mq_str_t){last + 1, v.len - (size_t)(last + 1 - v.ptr)};
    return trim(v);
}

/* ---- responses --------------------------------------------------------------------------- */

bool mq_ws_accept_key(mq_str_t key, char out[MQ_WS_ACCEPT_LEN + 1])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; /* RFC 6455 §1.3 */
    char buf[128];
    uint8_t digest[SHA_DIGEST_LENGTH];
    if (key.len > sizeof(buf) - (sizeof(guid) - 1))
        return false;
    memcpy(buf, key.ptr, key.len);
    memcpy(buf + key.len, guid, sizeof(guid) - 1);
    if (!SHA1((const unsigned char *)buf, key.len + sizeof(guid) - 1, digest))
        return false;
    return EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH) == MQ_WS_ACCEPT_LEN;
}

/* snprintf into out[*n..cap), tracking overflow in *n (set past cap). */
__attribute__((format(printf, 4, 5))) static void put(char *out, size_t cap, size_t *n,
                                                      const char *fmt, ...)
{
    if (*n >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(out + *n, cap - *n, fmt, ap);
    va_end(ap);
    *n = r < 0 ? cap : *n + (size_t)r;
}

size_t mq_ws_http_101(const mq_ws_req_t *req, char *out, size_t cap)
{
    char accept[MQ_WS_ACCEPT_LEN + 1];
    if (!mq_ws_accept_key(req->key, accept))
        return 0;
    size_t n = 0;
    put(out, cap, &n,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: %s\r\n",
        accept);
    if (req->subprotocol) /* [MQTT-6.0.0-4] */
        put(out, cap, &n, "Sec-WebSocket-Protocol: %s\r\n", req->subprotocol);
    put(out, cap, &n, "\r\n");
    return n < cap ? n : 0;
}

size_t mq_ws_http_head(uint16_t status, const char *content_type, uint64_t content_length,
                       char *out, size_t cap)
{
    size_t n = 0;
    put(out, cap, &n, "HTTP/1.1 %u %s\r\nServer: starling\r\n", status, mq_ws_http_reason(status));
    if (content_type)
        put(out, cap, &n, "Content-Type: %s\r\n", content_type);
    put(out, cap, &n,
        "Content-Length: %llu\r\nConnection: close\r\nCache-Control: no-cache\r\n"
        "X-Content-Type-Options: nosniff\r\n",
        (unsigned long long)content_length);
    if (status == 405)
        put(out, cap, &n, "Allow: GET, HEAD\r\n");
    if (status == 426) /* RFC 6455 §4.4: name the version we speak */
        put(out, cap, &n, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
    put(out, cap, &n, "\r\n");
    return n < cap ? n : 0;
}

size_t mq_ws_http_error(uint16_t status, bool is_head, char *out, size_t cap)
{
    char body[96];
    int blen = snprintf(body, sizeof(body), "%u %s\n", status, mq_ws_http_reason(status));
    size_t n = mq_ws_http_head(status, "text/plain; charset=utf-8", (size_t)blen, out, cap);
    if (n == 0 || is_head)
        return n;
    if (n + (size_t)blen >= cap)
        return 0;
    memcpy(out + n, body, (size_t)blen);
    return n + (size_t)blen;
}

const char *mq_ws_http_reason(uint16_t status)
{
    static const struct {
        uint16_t status;
        const char *reason;
    } reasons[] = {
        {101, "Switching Protocols"},
        {200, "OK"},
        {400, "Bad Request"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {414, "URI Too Long"},
        {426, "Upgrade Required"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {503, "Service Unavailable"},
        {505, "HTTP Version Not Supported"},
    };
    for (size_t i = 0; i < MQ_ARRAY_LEN(reasons); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

const char *mq_ws_http_content_type(mq_str_t name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"txt", "text/plain; charset=utf-8"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"svg", "image/svg+xml"},
        {"ico", "image/x-icon"},
        {"webp", "image/webp"},
        {"wasm", "application/wasm"},
        {"woff2", "font/woff2"},
        {"woff", "font/woff"},
    };
    const char *dot = name.len ? memrchr(name.ptr, '.', name.len) : NULL;
    const char *slash = name.len ? memrchr(name.ptr, '/', name.len) : NULL;
    if (dot && (!slash || dot > slash)) {
        mq_str_t ext = {dot + 1, name.len - (size_t)(dot + 1 - name.ptr)};
        for (size_t i = 0; i < MQ_ARRAY_LEN(types); i++)
            if (eq_nocase(ext, types[i].ext))
                return types[i].type;
    }
    return "application/octet-stream";
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Ends the segment out[start..n): "." and ".." could climb out of http_dir, "" is "//". */
static bool segment_ok(const char *out, size_t start, size_t n)
{
    size_t sl = n - start;
    return sl != 0 && !(sl == 1 && out[start] == '.') &&
           !(sl == 2 && out[start] == '.' && out[start + 1] == '.');
}

int mq_ws_http_path(mq_str_t path, char *out, size_t cap)
{
    if (path.len == 0 || path.ptr[0] != '/')
        return -EINVAL;
    size_t n = 0, seg = 0;
    for (size_t i = 1; i < path.len; i++) {
        char c = path.ptr[i];
        if (c == '/') {
            if (!segment_ok(out, seg, n))
                return -EINVAL;
            if (n + 1 >= cap)
                return -ENAMETOOLONG;
            out[n++] = '/';
            seg = n;
            continue;
        }
        if (c == '%') {
            int hi = i + 2 < path.len ? hex_val(path.ptr[i + 1]) : -1;
            int lo = hi >= 0 ? hex_val(path.ptr[i + 2]) : -1;
            if (lo < 0)
                return -EINVAL;
            c = (char)(hi << 4 | lo);
            i += 2;
            if (c == '/')
                return -EINVAL; /* an encoded '/' would dodge the segment checks */
        }
        if (c == '\0' || c == '\\')
            return -EINVAL;
        if (n + 1 >= cap)
            return -ENAMETOOLONG;
        out[n++] = c;
    }
    if (n == seg) { /* a directory: its index */
        static const char index[] = "index.html";
        if (n + sizeof(index) > cap)
            return -ENAMETOOLONG;
        memcpy(out + n, index, sizeof(index));
        return (int)(n + sizeof(index) - 1);
    }
    if (!segment_ok(out, seg, n))
        return -EINVAL;
    out[n] = '\0';
    return (int)n;
}
