/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_ws_http.c - libFuzzer target for the WebSocket upgrade request parser.
 *
 * Input: byte 0 is the chunk size the stream is fed in (1..256), byte 1 the head size limit
 * (0 = mosquitto's 1024, else n * 8 bytes); the rest is the byte stream. Checked on every
 * input:
 *  - no out-of-bounds access, leak or undefined behaviour (ASan/UBSan);
 *  - fed whole and fed in chunks, the head ends at the same byte with the same verdict and
 *    the same fields;
 *  - an upgrade always gets a 101 response; a rejection always has a status and a reason;
 *  - a file name from mq_ws_http_path() never starts with '/' and has no "." or ".."
 *    segment. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ws.h"

typedef struct trace {
    enum mq_rc rc;
    size_t used;
    mq_ws_req_t req;
    char fields[8192]; /* the views, copied: they die with the parser */
    size_t flen;
} trace_t;

static void keep(trace_t *t, mq_str_t s)
{
    if (t->flen + s.len + 1 > sizeof(t->fields))
        abort(); /* the head never exceeds its limit, which is below this */
    if (s.len)
        memcpy(t->fields + t->flen, s.ptr, s.len);
    t->flen += s.len;
    t->fields[t->flen++] = '|';
}

static void check_upgrade(const mq_ws_req_t *r)
{
    char out[256];
    if (r->kind == MQ_WS_REQ_UPGRADE && mq_ws_http_101(r, out, sizeof(out)) == 0)
        abort();
    if (r->kind == MQ_WS_REQ_ERROR && (r->status < 400 || !r->why))
        abort();
    char name[64];
    int n = mq_ws_http_path(r->path, name, sizeof(name));
    if (n >= 0) {
        if ((size_t)n != strlen(name) || name[0] == '/')
            abort();
        for (char *seg = name; seg; seg = strchr(seg, '/') ? strchr(seg, '/') + 1 : NULL)
            if (!strncmp(seg, "./", 2) || !strncmp(seg, "../", 3) || !strcmp(seg, ".") ||
                !strcmp(seg, ".."))
                abort();
    }
    mq_str_t ff = mq_ws_forwarded_for(r);
    if (ff.len > r->forwarded_for.len)
        abort();
}

static void run(const uint8_t *in, size_t len, size_t limit, size_t chunk, trace_t *t)
{
    mq_ws_http_t p;
    mq_ws_http_init(&p, limit);
    memset(t, 0, sizeof(*t));
    t->rc = MQ_RC_AGAIN;
    size_t off = 0;
    while (off < len && t->rc == MQ_RC_AGAIN) {
        size_t n = len - off < chunk ? len - off : chunk, used = 0;
        t->rc = mq_ws_http_feed(&p, in + off, n, &used, &t->req);
        if (used > n || (t->rc == MQ_RC_AGAIN && used != n) || used == 0)
            abort();
        off += used;
    }
    t->used = off;
    if (t->rc == MQ_RC_SUCCESS) {
        const mq_ws_req_t *r = &t->req;
        check_upgrade(r);
        keep(t, r->method), keep(t, r->target), keep(t, r->path), keep(t, r->host);
        keep(t, r->key), keep(t, r->version), keep(t, r->protocols), keep(t, r->forwarded_for);
        keep(t, mq_str(r->subprotocol));
    }
    mq_ws_http_fini(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t chunk = 1 + data[0];
    size_t limit = (size_t)data[1] * 8;
    static trace_t whole, pieces;
    run(data + 2, size - 2, limit, size, &whole);
    run(data + 2, size - 2, limit, chunk, &pieces);
    if (whole.rc != pieces.rc || whole.used != pieces.used)
        abort();
    if (whole.rc == MQ_RC_SUCCESS &&
        (whole.req.kind != pieces.req.kind || whole.req.status != pieces.req.status ||
         whole.req.is_head != pieces.req.is_head || whole.flen != pieces.flen ||
         memcmp(whole.fields, pieces.fields, whole.flen) != 0))
        abort();
    return 0;
}
