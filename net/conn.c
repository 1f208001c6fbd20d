/* SPDX-License-Identifier: MIT */
/* net/conn.c - connections on a worker's io_uring: provided-buffer receives, sends, closing. */
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"
#include "net/op.h"

#define BGID 1                /* our one provided-buffer group */
#define N_BUFS 512            /* receive buffers per worker */
#define BUF_SIZE (8 * 1024)   /* bytes each */
#define WBUF_KEEP (64 * 1024) /* a send buffer grown past this by a burst is given back */

/* A received buffer whose processing waits until the worker is no longer congested. */
struct mq_conn_deferred {
    mq_conn_t *c;
    uint16_t bid;
    uint32_t len;
};

int mq_conn_loop_init(mq_conn_loop_t *l, struct io_uring *ring, const mq_conn_handler_t *h,
                      size_t conn_size, char *err, size_t errlen)
{
    MQ_ASSERT(conn_size >= sizeof(mq_conn_t));
    l->ring = ring;
    l->h = h;
    l->conn_size = conn_size;
    /* provided-buffer ring (liburing 2.3: registered by hand): an idle connection holds no
     * receive buffer, the kernel picks one when data arrives (DESIGN.md rule 7) */
    size_t ring_bytes = N_BUFS * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) {
        snprintf(err, errlen, "mmap: %s", strerror(errno));
        return -errno;
    }
    struct io_uring_buf_reg reg = {
        .ring_addr = (unsigned long)mem, .ring_entries = N_BUFS, .bgid = BGID};
    int rc = io_uring_register_buf_ring(ring, &reg, 0);
    if (rc < 0) {
        snprintf(err, errlen, "provided buffer rings (IORING_REGISTER_PBUF_RING, Linux 5.19): %s",
                 strerror(-rc));
        munmap(mem, ring_bytes);
        return rc;
    }
    l->br = mem;
    l->n_bufs = N_BUFS;
    l->buf_size = BUF_SIZE;
    io_uring_buf_ring_init(l->br);
    l->bufs = mq_alloc((size_t)N_BUFS * BUF_SIZE);
    /* touched now: the kernel uses the buffers in ring order, so a loaded worker has every one
     * resident anyway; a fixed cost at start, not page faults in the first receives */
    memset(l->bufs, 0, (size_t)N_BUFS * BUF_SIZE);
    for (unsigned i = 0; i < N_BUFS; i++)
        io_uring_buf_ring_add(l->br, l->bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(N_BUFS), (int)i);
    io_uring_buf_ring_advance(l->br, N_BUFS);
    return 0;
}

void mq_conn_free(mq_conn_t *c)
{
    if (c->xport && c->xport->free)
        c->xport->free(c);
    mq_buf_fini(&c->out);
    mq_buf_fini(&c->wbuf);
    mq_free(c);
}

/* Takes 'c' off its loop's list of connections to flush (a short list: this turn's). */
static void undirty(mq_conn_loop_t *l, mq_conn_t *c)
{
    for (mq_conn_t **pp = &l->dirty; *pp; pp = &(*pp)->next_dirty) {
        if (*pp == c) {
            *pp = c->next_dirty;
            break;
        }
    }
    c->in_dirty = false;
    c->next_dirty = NULL;
}

void mq_conn_unlink(mq_conn_t *c)
{
    mq_conn_loop_t *l = c->loop;
    if (l && c->in_dirty) /* what it has to send goes with the next owner's flush */
        undirty(l, c);
    if (c->prev)
        c->prev->next = c->next;
    else if (l && l->conns == c)
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->loop = NULL; /* from here on only the next owner touches it */
}

void mq_conn_link(mq_conn_loop_t *l, mq_conn_t *c)
{
    c->loop = l;
    c->prev = NULL;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
}

void mq_conn_loop_fini(mq_conn_loop_t *l, void (*release)(void *arg, mq_conn_t *c), void *arg)
{
    while (l->conns) {
        mq_conn_t *c = l->conns;
        mq_conn_unlink(c);
        if (c->fd >= 0) {
            /* its receive still holds the socket until the ring's asynchronous teardown,
             * after this process may have exited: end the connection now */
            shutdown(c->fd, SHUT_RDWR);
            close(c->fd);
        }
        release(arg, c);
        mq_conn_free(c);
    }
    mq_free(l->deferred);
    mq_free(l->rearm);
    mq_free(l->gate_open);
    mq_free(l->gate_sealed);
    mq_buf_fini(&l->scratch);
    if (l->br) {
        io_uring_unregister_buf_ring(l->ring, BGID);
        munmap(l->br, l->n_bufs * sizeof(struct io_uring_buf));
    }
    mq_free(l->bufs);
    l->br = NULL;
    l->bufs = NULL;
}

static void read_peer(mq_conn_t *c)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        c->peer.family = AF_INET;
        c->peer.port = ntohs(sin->sin_port);
        memcpy(c->peer.ip, &sin->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        c->peer.family = AF_INET6;
        c->peer.port = ntohs(sin6->sin6_port);
        memcpy(c->peer.ip, &sin6->sin6_addr, 16);
    }
}

const char *mq_conn_peer(const mq_conn_t *c, char *buf)
{
    char host[INET6_ADDRSTRLEN];
    if (c->peer.family == 0 || !inet_ntop(c->peer.family, c->peer.ip, host, sizeof(host)))
        snprintf(buf, MQ_CONN_PEER_LEN, "?");
    else if (c->peer.port == 0)
        snprintf(buf, MQ_CONN_PEER_LEN, "%s", host);
    else
        snprintf(buf, MQ_CONN_PEER_LEN, "%s:%u", host, c->peer.port);
    return buf;
}

bool mq_conn_set_peer(mq_conn_t *c, const char *text)
{
    int family = strchr(text, ':') ? AF_INET6 : AF_INET;
    uint8_t ip[16];
    if (inet_pton(family, text, ip) != 1)
        return false;
    c->peer.family = (uint8_t)family;
    c->peer.port = 0;
    memcpy(c->peer.ip, ip, family == AF_INET ? 4 : 16);
    return true;
}

/* A receive into a provided buffer: single-shot before the protocol admits the connection
 * (it may still move to another worker, so nothing may stay armed), multishot afterwards. */
static void arm_recv(mq_conn_t *c, bool multishot)
{
    struct io_uring_sqe *sqe = mq_op_sqe(c->loop->ring);
    if (sqe == NULL) { /* the ring is unusable: this connection cannot be served */
        mq_conn_close(c, "io_uring: no submission queue entry for a receive");
        return;
    }
    if (multishot)
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    else
        io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, mq_op_pack(c, MQ_OP_RECV));
    c->recv_armed = true;
    c->n_ops++;
}

mq_conn_t *mq_conn_new(mq_conn_loop_t *l, int fd, unsigned listener)
{
    mq_conn_t *c = mq_calloc(1, l->conn_size);
    c->fd = fd;
    c->listener = (uint8_t)listener;
    c->is_counted = true;
    c->since_ms = l->now_ms;
    read_peer(c);
    mq_conn_link(l, c);
    arm_recv(c, false);
    return c;
}

void mq_conn_activate(mq_conn_t *c)
{
    c->state = MQ_CONN_ACTIVE;
    c->since_ms = c->loop->now_ms; /* the keep-alive counts from here */
}

void mq_conn_arm(mq_conn_t *c)
{
    if (!c->recv_armed && c->state != MQ_CONN_CLOSING)
        arm_recv(c, c->state == MQ_CONN_ACTIVE);
}

void mq_conn_mark_dirty(mq_conn_t *c)
{
    if (c->in_dirty)
        return;
    mq_conn_loop_t *l = c->loop;
    c->in_dirty = true;
    c->next_dirty = l->dirty;
    l->dirty = c;
}

void mq_conn_close(mq_conn_t *c, const char *why)
{
    if (c->state == MQ_CONN_CLOSING)
        return;
    c->state = MQ_CONN_CLOSING;
    c->loop->h->on_closing(c->loop->h->arg, c, why);
    /* whatever is queued (a CONNACK refusal, say) still goes out; then the socket is shut so
     * that a pending receive completes and the connection can be released */
    mq_conn_mark_dirty(c);
}

/* Both sides are done with 'c' once its operations have completed. */
static void maybe_release(mq_conn_t *c)
{
    if (c->state != MQ_CONN_CLOSING || c->n_ops > 0 || c->in_dirty)
        return;
    mq_conn_loop_t *l = c->loop;
    if (!c->lingering) /* a lingering one was released to the protocol when it started */
        l->h->on_release(l->h->arg, c);
    mq_conn_unlink(c);
    close(c->fd);
    if (c->is_counted && l->on_uncount)
        l->on_uncount(l->uncount_arg, c);
    mq_conn_free(c);
}

static mq_conn_head_t *conn_head(const mq_conn_t *c)
{
    return c->xport && c->xport->head ? c->xport->head(c) : NULL;
}

static size_t head_len(const mq_conn_t *c)
{
    const mq_conn_head_t *h = conn_head(c);
    return h ? h->len : 0;
}

/* The send is over (or will never be): the head is spent too. */
static void head_spent(mq_conn_t *c)
{
    mq_conn_head_t *h = conn_head(c);
    if (h)
        h->len = 0;
}

/* Sends what is left of the head + wbuf: one send, or one sendmsg while some of a transport's
 * header is unsent (the header and the payload go out together without a copy). */
static void submit_send(mq_conn_t *c)
{
    struct io_uring_sqe *sqe = mq_op_sqe(c->loop->ring);
    if (sqe == NULL) { /* the ring is unusable: what was to go cannot, the connection ends */
        c->wbuf.len = 0;
        head_spent(c);
        mq_conn_close(c, "io_uring: no submission queue entry for a send");
        return;
    }
    size_t hl = head_len(c);
    if (c->wsent < hl) {
        mq_conn_head_t *h = conn_head(c);
        h->iov[0] = (struct iovec){h->bytes + c->wsent, hl - c->wsent};
        h->iov[1] = (struct iovec){c->wbuf.data, c->wbuf.len};
        h->msg = (struct msghdr){.msg_iov = h->iov, .msg_iovlen = c->wbuf.len ? 2 : 1};
        io_uring_prep_sendmsg(sqe, c->fd, &h->msg, MSG_NOSIGNAL);
    } else {
        size_t off = c->wsent - hl;
        io_uring_prep_send(sqe, c->fd, c->wbuf.data + off, c->wbuf.len - off, MSG_NOSIGNAL);
    }
    io_uring_sqe_set_data64(sqe, mq_op_pack(c, MQ_OP_SEND));
    c->send_busy = true;
    c->n_ops++;
}

static void flush(mq_conn_t *c)
{
    if (c->send_busy || c->fd < 0 || c->gated || c->gate_remote)
        return;
    if (c->out.len && c->loop->trace_out && MQ_LOG_ON(MQ_LOG_DEBUG))
        c->loop->trace_out(c, c->out.data, c->out.len);
    if (c->xport) {
        c->xport->send(c, &c->out, &c->wbuf); /* the transport encodes into wbuf */
    } else {
        if (c->out.len == 0)
            return;
        mq_buf_t t = c->wbuf; /* swap: the send owns wbuf, new output goes to out */
        c->wbuf = c->out;
        c->out = t;
        c->out.len = 0;
    }
    c->wsent = 0;
    if (c->wbuf.len + head_len(c) > 0)
        submit_send(c);
}

/* The output has gone: the socket is shut, or only its writing while the client's input
 * is read to its end (a lingering close, mq_conn_close()). */
static void finish_close(mq_conn_t *c)
{
    if (c->send_busy || c->out.len > 0 || c->lingering)
        return;
    if (c->read_done || c->has_held || c->need_rearm) {
        shutdown(c->fd, SHUT_RDWR);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    c->since_ms = c->loop->now_ms;
    if (!c->recv_armed)
        arm_recv(c, false);
    /* for the protocol the connection has ended: its session detaches (or ends) now, not
     * when the client gets round to closing its side */
    c->loop->h->on_release(c->loop->h->arg, c);
}

void mq_conn_trim(mq_conn_t *c)
{
    if (!c->send_busy && c->out.len == 0 && c->wbuf.len == 0) {
        mq_buf_fini(&c->out);
        mq_buf_fini(&c->wbuf);
    }
}

void mq_conn_linger_check(mq_conn_t *c, uint64_t now_ms)
{
    if (c->lingering && !c->read_done && now_ms - c->since_ms >= MQ_CONN_LINGER_MS) {
        c->read_done = true; /* the receive completes; the connection is released */
        shutdown(c->fd, SHUT_RDWR);
    }
}

static void flush_dirty(mq_conn_loop_t *l)
{
    while (l->dirty) {
        mq_conn_t *c = l->dirty;
        l->dirty = c->next_dirty;
        c->in_dirty = false;
        flush(c);
        if (c->state == MQ_CONN_CLOSING) {
            finish_close(c);
            maybe_release(c);
        }
    }
}

/* ---- back-pressure -------------------------------------------------------------------------- */

static void return_buffer(mq_conn_loop_t *l, unsigned bid)
{
    io_uring_buf_ring_add(l->br, l->bufs + (size_t)bid * l->buf_size, l->buf_size,
                          (unsigned short)bid, io_uring_buf_ring_mask(l->n_bufs), 0);
    io_uring_buf_ring_advance(l->br, 1);
}

static void defer(mq_conn_loop_t *l, mq_conn_t *c, unsigned bid, uint32_t len)
{
    if (l->n_deferred == l->cap_deferred) /* at most one entry per provided buffer */
        l->deferred = mq_grow(l->deferred, &l->cap_deferred, sizeof(*l->deferred), 64);
    l->deferred[l->n_deferred++] = (mq_conn_deferred_t){c, (uint16_t)bid, len};
    c->n_ops++; /* the held buffer keeps 'c' alive */
}

int mq_conn_up(mq_conn_t *c, const uint8_t *p, size_t len)
{
    return c->loop->h->on_bytes(c->loop->h->arg, c, p, len);
}

/* Received wire bytes, through the transport if there is one. */
static int deliver_up(mq_conn_t *c, const uint8_t *p, size_t len)
{
    return c->xport ? c->xport->recv(c, p, len) : mq_conn_up(c, p, len);
}

/* Processes held buffers in arrival order while not congested, then re-arms the receives
 * that stopped for lack of buffers. */
static void resume_input(mq_conn_loop_t *l)
{
    uint32_t i = 0;
    while (i < l->n_deferred && !l->congested) {
        mq_conn_deferred_t d = l->deferred[i++];
        d.c->n_ops--;
        if (d.c->state == MQ_CONN_ACTIVE) {
            l->bytes_received += d.len;
            (void)deliver_up(d.c, l->bufs + (size_t)d.bid * l->buf_size, d.len);
        }
        return_buffer(l, d.bid);
        if (d.c->state == MQ_CONN_CLOSING)
            maybe_release(d.c);
    }
    if (i > 0) { /* (the array may not exist yet: re-arms without held buffers) */
        memmove(l->deferred, l->deferred + i, (l->n_deferred - i) * sizeof(*l->deferred));
        l->n_deferred -= i;
    }
    if (l->n_deferred > 0)
        return;
    for (uint32_t k = 0; k < l->n_rearm; k++) {
        mq_conn_t *c = l->rearm[k];
        c->need_rearm = false;
        c->n_ops--;
        /* a connection not yet admitted is re-armed too (single-shot): leaving it out
         * stalled it until the connect timeout when the buffers ran dry under churn */
        if (c->state != MQ_CONN_CLOSING && !c->recv_armed)
            arm_recv(c, c->state == MQ_CONN_ACTIVE);
        else
            maybe_release(c);
    }
    l->n_rearm = 0;
}

/* ---- durability gates ------------------------------------------------------------------------ */

void mq_conn_gate(mq_conn_t *c)
{
    c->gated = true;
    if (c->gate_open) /* waits for the records not yet submitted already */
        return;
    /* also when it waits for the write in flight: what it queued since answers records that
     * write does not hold, so its output must wait for the next one too */
    mq_conn_loop_t *l = c->loop;
    if (l->n_gate_open == l->cap_gate_open)
        l->gate_open = mq_grow(l->gate_open, &l->cap_gate_open, sizeof(*l->gate_open), 64);
    l->gate_open[l->n_gate_open++] = c;
    c->gate_open = true;
    c->n_ops++; /* each list it is on keeps 'c' alive */
}

void mq_conn_gates_seal(mq_conn_loop_t *l)
{
    for (uint32_t i = 0; i < l->n_gate_open; i++) {
        if (l->n_gate_sealed == l->cap_gate_sealed)
            l->gate_sealed =
                mq_grow(l->gate_sealed, &l->cap_gate_sealed, sizeof(*l->gate_sealed), 64);
        l->gate_sealed[l->n_gate_sealed++] = l->gate_open[i];
        l->gate_open[i]->gate_open = false;
    }
    l->n_gate_open = 0;
}

void mq_conn_abort_unsent(mq_conn_t *c, const char *why)
{
    c->out.len = 0; /* an acknowledgement of what is not durable must not go */
    c->read_done = true;
    mq_conn_close(c, why);
    shutdown(c->fd, SHUT_RDWR);
}

void mq_conn_gates_release(mq_conn_loop_t *l, bool ok)
{
    if (!ok)
        mq_conn_gates_seal(l);
    for (uint32_t i = 0; i < l->n_gate_sealed; i++) {
        mq_conn_t *c = l->gate_sealed[i];
        c->n_ops--;
        if (c->gate_open)
            continue; /* gated again since: it waits for the next write as well */
        c->gated = false;
        if (!ok)
            mq_conn_abort_unsent(c, "the persistence journal could not be written");
        mq_conn_mark_dirty(c); /* the output goes, or the closing goes on, at the flush */
    }
    l->n_gate_sealed = 0;
}

bool mq_conn_loop_idle(const mq_conn_loop_t *l)
{
    for (const mq_conn_t *c = l->conns; c; c = c->next)
        if (c->send_busy || c->in_dirty || c->out.len > 0)
            return false;
    return true;
}

void mq_conn_loop_turn(mq_conn_loop_t *l)
{
    if (l->n_deferred || l->n_rearm)
        resume_input(l);
    flush_dirty(l);
}

/* ---- completions ----------------------------------------------------------------------------- */

static void wait_for_buffers(mq_conn_loop_t *l, mq_conn_t *c)
{
    if (c->need_rearm)
        return;
    c->need_rearm = true;
    c->n_ops++; /* the pending re-arm keeps 'c' alive */
    if (l->n_rearm == l->cap_rearm)
        l->rearm = mq_grow(l->rearm, &l->cap_rearm, sizeof(*l->rearm), 64);
    l->rearm[l->n_rearm++] = c;
}

/* Handles the buffer of a receive; false when 'c' is gone to another worker. */
static bool take_buffer(mq_conn_loop_t *l, mq_conn_t *c, const struct io_uring_cqe *cqe)
{
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    if (cqe->res > 0 && c->state == MQ_CONN_PRE && c->send_busy) {
        /* it may move to another worker, which must find nothing of it in flight: the bytes
         * wait for the send (a TLS handshake reply) to complete, no receive armed meanwhile */
        c->has_held = true;
        c->held_bid = (uint16_t)bid;
        c->held_len = (uint32_t)cqe->res;
        c->n_ops++; /* the held buffer keeps 'c' alive */
        return true;
    }
    if (cqe->res > 0 && c->state == MQ_CONN_ACTIVE && (l->congested || l->n_deferred)) {
        /* back-pressure: keep the buffer (the ring runs dry, receives stop with ENOBUFS,
         * TCP pushes back on the clients) and process it once the congestion clears */
        defer(l, c, bid, (uint32_t)cqe->res);
        c->since_ms = l->now_ms;
        return true;
    }
    int r = MQ_CONN_OK;
    if (cqe->res > 0 && c->state != MQ_CONN_CLOSING) {
        if (c->state == MQ_CONN_ACTIVE) /* (before CONNECT, the connect timeout runs on) */
            c->since_ms = l->now_ms;
        l->bytes_received += (uint64_t)cqe->res;
        r = deliver_up(c, l->bufs + (size_t)bid * l->buf_size, (size_t)cqe->res);
    }
    /* the buffer goes back before this handler returns (STYLE.md §4): everything kept was
     * copied by the decoder or the session */
    return_buffer(l, bid);
    return r != MQ_CONN_GONE;
}

void mq_conn_on_recv(mq_conn_loop_t *l, mq_conn_t *c, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        c->recv_armed = false;
        c->n_ops--;
    }
    if ((cqe->flags & IORING_CQE_F_BUFFER) && !take_buffer(l, c, cqe))
        return; /* 'c' belongs to another worker now */
    if (cqe->res <= 0 && cqe->res != -ENOBUFS)
        c->read_done = true;
    if (c->state != MQ_CONN_CLOSING) {
        if (cqe->res == 0)
            mq_conn_close(c, "connection closed by the client");
        else if (cqe->res == -ENOBUFS)
            wait_for_buffers(l, c); /* re-armed once buffers are back */
        else if (cqe->res < 0)
            mq_conn_close(c, strerror(-cqe->res));
        else if (!c->recv_armed && !c->has_held && c->state != MQ_CONN_CLOSING)
            arm_recv(c, c->state == MQ_CONN_ACTIVE); /* single-shot, or a multishot ended */
    } else if (c->lingering && !c->recv_armed && cqe->res > 0) {
        arm_recv(c, false); /* dropped; read on until the client's end of stream */
    }
    if (c->state == MQ_CONN_CLOSING)
        maybe_release(c);
}

/* The send that held back a received buffer (take_buffer) has completed: the bytes go up
 * now, with nothing of 'c' in flight. False when 'c' has moved to another worker. */
static bool release_held(mq_conn_loop_t *l, mq_conn_t *c)
{
    c->has_held = false;
    c->n_ops--;
    uint16_t bid = c->held_bid; /* 'c' may belong to another worker once the bytes went up */
    int r = MQ_CONN_OK;
    if (c->state != MQ_CONN_CLOSING) {
        l->bytes_received += c->held_len;
        r = deliver_up(c, l->bufs + (size_t)bid * l->buf_size, c->held_len);
    }
    return_buffer(l, bid);
    if (r == MQ_CONN_GONE)
        return false;
    if (!c->recv_armed && c->state != MQ_CONN_CLOSING)
        arm_recv(c, c->state == MQ_CONN_ACTIVE);
    return true;
}

void mq_conn_on_send(mq_conn_loop_t *l, mq_conn_t *c, const struct io_uring_cqe *cqe)
{
    c->n_ops--;
    c->send_busy = false;
    if (cqe->res < 0) {
        c->out.len = 0;
        c->wbuf.len = 0;
        head_spent(c);
        c->read_done = true; /* the peer is gone: no lingering */
        mq_conn_close(c, strerror(-cqe->res));
        shutdown(c->fd, SHUT_RDWR); /* a pending receive completes: the release follows, also
                                     * when the connection was closing already */
        if (c->has_held)            /* closing: the bytes are not wanted any more */
            (void)release_held(l, c);
        maybe_release(c);
        return;
    }
    l->bytes_sent += (uint64_t)cqe->res;
    c->wsent += (size_t)cqe->res;
    if (c->wsent < head_len(c) + c->wbuf.len) { /* a short send: resume it (STYLE.md §7) */
        submit_send(c);
        return;
    }
    c->wbuf.len = 0;
    head_spent(c);
    if (c->out.len == 0) {
        /* nothing more to send: a buffer a burst grew is given back, and so are buffers that
         * never grew past their first allocation (a CONNACK, a SUBACK, a few acks): a quiet
         * connection keeps none, and a storm of connects leaves no two small buffers per
         * client among the index's and the sessions' objects until the next tick trims them
         * (at 10,000 clients with a subscription each, 64-byte slabs a third full) */
        if (c->wbuf.cap > WBUF_KEEP || c->wbuf.cap <= MQ_BUF_FIRST)
            mq_buf_fini(&c->wbuf);
        if (c->out.cap <= MQ_BUF_FIRST)
            mq_buf_fini(&c->out);
    }
    if (c->has_held && !release_held(l, c))
        return; /* it moved to another worker */
    if (c->state == MQ_CONN_ACTIVE)
        l->h->on_writable(l->h->arg, c); /* what queued while the socket was slow */
    mq_conn_mark_dirty(c);               /* more output may be waiting; closing continues there */
}
