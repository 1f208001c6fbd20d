/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fake_conn.c - net/conn.h's protocol-facing functions over in-memory sockets. */
#include "tests/fuzz/fake_conn.h"

#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/rc.h"

#define MAX_SEGS FAKE_CONN_MAX_SEGS

/* What a fake socket holds, after the connection's conn_size bytes (one allocation). */
typedef struct fake_ext {
    mq_buf_t in;            /* bytes written by the client, not yet received */
    uint32_t seg[MAX_SEGS]; /* their split into receive segments */
    uint32_t n_seg;
    bool peer_closed; /* the client closed: after 'in', a zero-byte receive */
} fake_ext_t;

static fake_conn_cb_t cbs; /* one harness per process */

static size_t ext_offset(size_t conn_size)
{
    return (conn_size + 15) & ~(size_t)15;
}

static fake_ext_t *ext_of(const mq_conn_t *c, size_t conn_size)
{
    return (fake_ext_t *)((char *)c + ext_offset(conn_size));
}

/* The loop is gone while a connection is handed off: its size is kept in the ext header. */
typedef struct fake_hdr {
    size_t conn_size;
} fake_hdr_t;

static fake_hdr_t *hdr_of(const mq_conn_t *c)
{
    return (fake_hdr_t *)((char *)c - sizeof(fake_hdr_t));
}

static fake_ext_t *ext(const mq_conn_t *c)
{
    return ext_of(c, hdr_of(c)->conn_size);
}

void fake_loop_init(mq_conn_loop_t *l, const mq_conn_handler_t *h, size_t conn_size,
                    const fake_conn_cb_t *cb)
{
    memset(l, 0, sizeof(*l));
    l->h = h;
    l->conn_size = conn_size;
    cbs = *cb;
}

mq_conn_t *fake_conn_new(mq_conn_loop_t *l)
{
    size_t n = sizeof(fake_hdr_t) + ext_offset(l->conn_size) + sizeof(fake_ext_t);
    char *mem = mq_calloc(1, n);
    mq_conn_t *c = (mq_conn_t *)(mem + sizeof(fake_hdr_t));
    hdr_of(c)->conn_size = l->conn_size;
    c->fd = -1;
    c->is_counted = true;
    c->since_ms = l->now_ms;
    c->peer.port = 1; /* "fake:1" in the log (mq_conn_peer below) */
    mq_conn_link(l, c);
    c->recv_armed = true;
    return c;
}

void mq_conn_free(mq_conn_t *c)
{
    mq_buf_fini(&c->out);
    mq_buf_fini(&c->wbuf);
    mq_buf_fini(&ext(c)->in);
    mq_free(hdr_of(c));
}

void mq_conn_unlink(mq_conn_t *c)
{
    mq_conn_loop_t *l = c->loop;
    MQ_ASSERT(!c->in_dirty); /* a hand-off happens before any output */
    if (c->prev)
        c->prev->next = c->next;
    else if (l && l->conns == c)
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->loop = NULL;
}

void mq_conn_link(mq_conn_loop_t *l, mq_conn_t *c)
{
    MQ_ASSERT(c->loop == NULL);
    c->loop = l;
    c->prev = NULL;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
}

void mq_conn_activate(mq_conn_t *c)
{
    MQ_ASSERT(c->state == MQ_CONN_PRE);
    c->state = MQ_CONN_ACTIVE;
    c->since_ms = c->loop->now_ms;
}

void mq_conn_arm(mq_conn_t *c)
{
    MQ_ASSERT(c->loop != NULL);
    if (c->state != MQ_CONN_CLOSING)
        c->recv_armed = true;
}

void mq_conn_mark_dirty(mq_conn_t *c)
{
    MQ_ASSERT(c->loop != NULL); /* output for a connection in transit would be lost */
    if (c->in_dirty)
        return;
    c->in_dirty = true;
    c->next_dirty = NULL;
    /* first marked, first flushed: the harness then sees each worker's answers in the order
     * it decided them (the real loop's order is the reverse; both are valid) */
    mq_conn_t **pp = &c->loop->dirty;
    while (*pp)
        pp = &(*pp)->next_dirty;
    *pp = c;
}

void mq_conn_close(mq_conn_t *c, const char *why)
{
    if (c->state == MQ_CONN_CLOSING)
        return;
    c->state = MQ_CONN_CLOSING;
    c->recv_armed = false;
    c->loop->h->on_closing(c->loop->h->arg, c, why);
    mq_conn_mark_dirty(c);
}

/* A fake connection closes at once: nothing lingers. */
void mq_conn_linger_check(mq_conn_t *c, uint64_t now_ms)
{
    (void)c;
    (void)now_ms;
}

/* The fuzzed broker runs without persistence (no journal), so nothing gates a connection; the
 * gates are here for the linker and stay inert. */
void mq_conn_gate(mq_conn_t *c)
{
    (void)c;
    MQ_ASSERT(0 && "no journal in the fuzzed broker: nothing gates");
}

void mq_conn_gates_seal(mq_conn_loop_t *l)
{
    (void)l;
}

void mq_conn_abort_unsent(mq_conn_t *c, const char *why)
{
    (void)c;
    (void)why;
    MQ_ASSERT(0 && "no journal in the fuzzed broker: nothing is refused");
}

void mq_conn_gates_release(mq_conn_loop_t *l, bool ok)
{
    (void)l;
    (void)ok;
}

void mq_conn_trim(mq_conn_t *c)
{
    if (c->out.len == 0 && c->wbuf.len == 0) {
        mq_buf_fini(&c->out);
        mq_buf_fini(&c->wbuf);
    }
}

const char *mq_conn_peer(const mq_conn_t *c, char *buf)
{
    snprintf(buf, MQ_CONN_PEER_LEN, "fake:%u", c->peer.port);
    return buf;
}

bool mq_conn_set_peer(mq_conn_t *c, const char *text)
{
    (void)text;
    c->peer.port = 0;
    return true;
}

int mq_conn_up(mq_conn_t *c, const uint8_t *p, size_t len)
{
    return c->loop->h->on_bytes(c->loop->h->arg, c, p, len);
}

bool fake_conn_write(mq_conn_t *c, const uint8_t *p, size_t len)
{
    fake_ext_t *e = ext(c);
    if (len == 0 || e->peer_closed || e->n_seg == MAX_SEGS)
        return false;
    mq_buf_append(&e->in, p, len);
    e->seg[e->n_seg++] = (uint32_t)len;
    return true;
}

void fake_conn_peer_close(mq_conn_t *c)
{
    ext(c)->peer_closed = true;
}

bool fake_conn_has_input(const mq_conn_t *c)
{
    const fake_ext_t *e = ext(c);
    return e->n_seg > 0 || e->peer_closed;
}

/* One receive completion: the oldest segment up to the protocol. False when 'c' moved to
 * another worker (it is not ours to touch any more). */
static bool receive_one(mq_conn_loop_t *l, mq_conn_t *c)
{
    fake_ext_t *e = ext(c);
    uint32_t n = e->seg[0];
    mq_buf_t seg;
    mq_buf_init(&seg);
    mq_buf_append(&seg, e->in.data, n); /* a receive buffer of its own, as a provided one */
    memmove(e->in.data, e->in.data + n, e->in.len - n);
    e->in.len -= n;
    memmove(e->seg, e->seg + 1, (e->n_seg - 1) * sizeof(e->seg[0]));
    e->n_seg--;
    if (c->state == MQ_CONN_ACTIVE) /* as net/conn.c: the connect timeout runs on before */
        c->since_ms = l->now_ms;
    l->bytes_received += n;
    bool single = c->state == MQ_CONN_PRE; /* single-shot: no receive armed during on_bytes */
    if (single)
        c->recv_armed = false;
    int r = l->h->on_bytes(l->h->arg, c, seg.data, seg.len);
    mq_buf_fini(&seg); /* the buffer goes back: the protocol copied what it keeps */
    if (cbs.on_delivered)
        cbs.on_delivered(cbs.arg, c, r);
    if (r == MQ_CONN_GONE)
        return false;
    if (single && c->state != MQ_CONN_CLOSING)
        c->recv_armed = true;
    return true;
}

static bool receive(mq_conn_loop_t *l)
{
    bool any = false;
    for (mq_conn_t *c = l->conns, *next; c; c = next) {
        next = c->next; /* 'c' may move to another worker; nothing else leaves the list here */
        fake_ext_t *e = ext(c);
        while (c->recv_armed && c->state != MQ_CONN_CLOSING && e->n_seg > 0) {
            any = true;
            if (!receive_one(l, c))
                break;
        }
        if (c->loop == l && c->recv_armed && c->state != MQ_CONN_CLOSING && e->n_seg == 0 &&
            e->peer_closed) {
            any = true;
            mq_conn_close(c, "connection closed by the client");
        }
    }
    return any;
}

static void release(mq_conn_loop_t *l, mq_conn_t *c)
{
    l->h->on_release(l->h->arg, c);
    mq_conn_unlink(c);
    if (cbs.on_freed)
        cbs.on_freed(cbs.arg, c);
    mq_conn_free(c);
}

static bool flush(mq_conn_loop_t *l)
{
    bool any = false;
    while (l->dirty) {
        mq_conn_t *c = l->dirty;
        l->dirty = c->next_dirty;
        c->in_dirty = false;
        any = true;
        if (c->out.len > 0) {
            size_t n = c->out.len;
            c->out.len = 0; /* as the real swap: new output goes to an empty buffer */
            l->bytes_sent += n;
            cbs.on_output(cbs.arg, c, c->out.data, n);
            if (c->state == MQ_CONN_ACTIVE) { /* the send completed: what waited may go */
                l->h->on_writable(l->h->arg, c);
                mq_conn_mark_dirty(c);
            }
        }
        if (c->state == MQ_CONN_CLOSING && !c->in_dirty)
            release(l, c);
    }
    return any;
}

bool fake_loop_turn(mq_conn_loop_t *l)
{
    bool a = receive(l);
    bool b = flush(l);
    return a || b;
}

void fake_loop_fini(mq_conn_loop_t *l, void (*rel)(void *arg, mq_conn_t *c), void *arg)
{
    while (l->conns) {
        mq_conn_t *c = l->conns;
        c->in_dirty = false;
        mq_conn_unlink(c);
        rel(arg, c);
        if (cbs.on_freed)
            cbs.on_freed(cbs.arg, c);
        mq_conn_free(c);
    }
    l->dirty = NULL;
}
