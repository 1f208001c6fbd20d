/* SPDX-License-Identifier: MIT */
/* net/worker.c - one worker thread: its io_uring loop, connections, sends, inbox and wake-ups. */
#include "net/server_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

#define BGID 1              /* our one provided-buffer group */
#define N_BUFS 512          /* receive buffers per worker */
#define BUF_SIZE (8 * 1024) /* bytes each */
#define RING_ENTRIES 4096   /* SQ size; the CQ is twice that */
#define INBOX_ENTRIES 16384
/* Back-pressure between workers: past OVF_HIGH entries waiting for one target, a worker
 * stops consuming its connections' input until the lists are back under OVF_LOW. */
#define OVF_HIGH 16384u
#define OVF_LOW 4096u

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One SQE, submitting first when the SQ is full (STYLE.md §7). */
static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    while (sqe == NULL) {
        int rc = io_uring_submit(ring);
        if (rc < 0 && rc != -EAGAIN && rc != -EBUSY)
            MQ_LOG(MQ_LOG_ERROR, "io_uring_submit: %s", strerror(-rc));
        sqe = io_uring_get_sqe(ring);
    }
    return sqe;
}

static int setup_ring(struct io_uring *ring, unsigned entries)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 2;
    int rc = io_uring_queue_init_params(entries, ring, &p);
    if (rc == -EINVAL) { /* kernels before 6.1: no DEFER_TASKRUN */
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 2;
        rc = io_uring_queue_init_params(entries, ring, &p);
    }
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof(p));
        rc = io_uring_queue_init_params(entries, ring, &p);
    }
    return rc;
}

/* Memory and tables; the ring is set up by the worker thread itself (mq_worker__main), since
 * with IORING_SETUP_SINGLE_ISSUER the ring belongs to the thread that creates it. */
void mq_worker__init(mq_worker_t *w, mq_server_t *srv, unsigned idx)
{
    memset(w, 0, sizeof(*w));
    w->idx = idx;
    w->srv = srv;
    w->ring_fd = -1;
    w->inbox = mq_ring_new(INBOX_ENTRIES);
    atomic_init(&w->wake_pending, 0);
    atomic_init(&w->stop, false);
    mq_map_init(&w->sessions);
    mq_map_init(&w->filters);
    w->tfids = mq_calloc(srv->n_workers, sizeof(*w->tfids));
    w->n_tfids = mq_calloc(srv->n_workers, sizeof(*w->n_tfids));
    w->cap_tfids = mq_calloc(srv->n_workers, sizeof(*w->cap_tfids));
    w->mcache = mq_calloc(MQ_MATCH_CACHE_SLOTS, sizeof(*w->mcache));
    w->overflow = mq_calloc(srv->n_workers, sizeof(*w->overflow));
    w->now_ms = now_ms();
}

static int init_ring(mq_worker_t *w)
{
    unsigned idx = w->idx;
    int rc = setup_ring(&w->ring, RING_ENTRIES);
    if (rc < 0) {
        snprintf(w->init_err, sizeof(w->init_err), "worker %u: io_uring_queue_init: %s", idx,
                 strerror(-rc));
        return rc;
    }
    w->has_ring = true;
    /* Provided-buffer ring (liburing 2.3: register by hand): an idle connection holds no
     * receive buffer, the kernel picks one when data arrives. */
    w->n_bufs = N_BUFS;
    w->buf_size = BUF_SIZE;
    size_t ring_bytes = N_BUFS * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) {
        snprintf(w->init_err, sizeof(w->init_err), "worker %u: mmap: %s", idx, strerror(errno));
        return -errno;
    }
    struct io_uring_buf_reg reg = {
        .ring_addr = (unsigned long)mem, .ring_entries = N_BUFS, .bgid = BGID};
    rc = io_uring_register_buf_ring(&w->ring, &reg, 0);
    if (rc < 0) {
        snprintf(w->init_err, sizeof(w->init_err),
                 "worker %u: provided buffer rings (IORING_REGISTER_PBUF_RING, Linux 5.19): %s",
                 idx, strerror(-rc));
        munmap(mem, ring_bytes);
        return rc;
    }
    w->br = mem;
    io_uring_buf_ring_init(w->br);
    w->bufs = mq_alloc((size_t)N_BUFS * BUF_SIZE);
    for (unsigned i = 0; i < N_BUFS; i++)
        io_uring_buf_ring_add(w->br, w->bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(N_BUFS), (int)i);
    io_uring_buf_ring_advance(w->br, N_BUFS);
    w->ring_fd = w->ring.ring_fd;
    return 0;
}

static void free_conn(mq_conn_t *c)
{
    mq_decoder_fini(&c->dec);
    mq_buf_fini(&c->pre);
    mq_buf_fini(&c->out);
    mq_buf_fini(&c->wbuf);
    mq_msg_unref(c->will);
    mq_free(c);
}

void mq_worker__unlink(mq_worker_t *w, mq_conn_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (w->conns == c)
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void link_conn(mq_worker_t *w, mq_conn_t *c)
{
    c->w = w;
    c->prev = NULL;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
}

void mq_worker__fini(mq_worker_t *w)
{
    while (w->conns) {
        mq_conn_t *c = w->conns;
        mq_worker__unlink(w, c);
        if (c->fd >= 0)
            close(c->fd);
        c->will_pending = false; /* broker shutdown: no wills */
        if (c->sess)
            mq_sess_detach(c->sess);
        free_conn(c);
    }
    mq_proto__fini(w);
    mq_ring_entry_t e;
    while (mq_ring_pop(w->inbox, &e)) {
        if (e.type == MQ_RE_NEW_CONN)
            close((int)e.a[0]);
        else if (e.type == MQ_RE_DELIVER || e.type == MQ_RE_PUBLISH) {
            mq_msg_unref(e.ptr);
            if (e.n > MQ_RING_INLINE)
                mq_free((void *)(uintptr_t)e.a[0]);
        } else if (e.type == MQ_RE_HANDOFF) {
            mq_conn_t *c = e.ptr;
            close(c->fd);
            free_conn(c);
        }
    }
    for (unsigned i = 0; i < w->srv->n_workers; i++) {
        mq_free(w->tfids[i]);
        for (uint32_t k = 0; k < w->overflow[i].len; k++) {
            mq_ring_entry_t *oe = &w->overflow[i].e[(w->overflow[i].head + k) % w->overflow[i].cap];
            if (oe->type == MQ_RE_DELIVER) {
                mq_msg_unref(oe->ptr);
                if (oe->n > MQ_RING_INLINE)
                    mq_free((void *)(uintptr_t)oe->a[0]);
            }
        }
        mq_free(w->overflow[i].e);
    }
    mq_free(w->tfids);
    mq_free(w->mcache);
    mq_free(w->n_tfids);
    mq_free(w->cap_tfids);
    mq_free(w->overflow);
    mq_free(w->dsess);
    mq_free(w->deferred);
    mq_free(w->rearm);
    mq_ring_free(w->inbox);
    if (w->br)
        munmap(w->br, w->n_bufs * sizeof(struct io_uring_buf));
    if (w->has_ring)
        io_uring_queue_exit(&w->ring);
    mq_free(w->bufs);
}

/* ---- cross-worker messages ------------------------------------------------------------------ */

static void overflow_push(mq_overflow_t *o, const mq_ring_entry_t *e)
{
    if (o->len == o->cap) {
        uint32_t cap = o->cap ? o->cap * 2 : 64;
        mq_ring_entry_t *ne = mq_alloc(cap * sizeof(*ne));
        for (uint32_t i = 0; i < o->len; i++)
            ne[i] = o->e[(o->head + i) % o->cap];
        mq_free(o->e);
        o->e = ne;
        o->cap = cap;
        o->head = 0;
    }
    o->e[(o->head + o->len) % o->cap] = *e;
    o->len++;
}

void mq_worker__send(mq_worker_t *w, unsigned to, const mq_ring_entry_t *e)
{
    mq_worker_t *t = &w->srv->workers[to];
    mq_overflow_t *o = &w->overflow[to];
    /* order matters (a subscriber sees one publisher's messages in order): once something
     * waits in the overflow list, later entries wait behind it */
    if (o->len > 0 || !mq_ring_push(t->inbox, e)) {
        overflow_push(o, e);
        if (o->len > OVF_HIGH)
            w->congested = true;
    }
    w->wake_mask |= 1ull << to;
}

static void retry_overflow(mq_worker_t *w)
{
    uint32_t longest = 0;
    for (unsigned to = 0; to < w->srv->n_workers; to++) {
        mq_overflow_t *o = &w->overflow[to];
        while (o->len > 0 && mq_ring_push(w->srv->workers[to].inbox, &o->e[o->head])) {
            o->head = (o->head + 1) % o->cap;
            o->len--;
            w->wake_mask |= 1ull << to;
        }
        if (o->len > 0)
            w->wake_mask |= 1ull << to; /* keep nudging the consumer */
        if (o->len > longest)
            longest = o->len;
    }
    /* hysteresis, so that reading does not flap on and off around one threshold */
    w->congested = w->congested ? longest > OVF_LOW : longest > OVF_HIGH;
}

/* At most one wake-up per target per loop turn, and none when one is already on its way
 * (DESIGN.md rule 2): the target clears wake_pending before it drains its inbox. */
static void send_wakes(mq_worker_t *w)
{
    uint64_t m = w->wake_mask;
    w->wake_mask = 0;
    while (m) {
        unsigned to = (unsigned)__builtin_ctzll(m);
        m &= m - 1;
        mq_worker_t *t = &w->srv->workers[to];
        if (to == w->idx || atomic_exchange_explicit(&t->wake_pending, 1, memory_order_seq_cst))
            continue;
        struct io_uring_sqe *sqe = get_sqe(&w->ring);
        io_uring_prep_msg_ring(sqe, t->ring_fd, 0, mq_op_pack(NULL, MQ_OP_WAKE), 0);
        io_uring_sqe_set_data64(sqe, mq_op_pack(NULL, MQ_OP_MSG));
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    }
}

static mq_conn_t *conn_new(mq_worker_t *w, int fd, unsigned listener)
{
    mq_conn_t *c = mq_calloc(1, sizeof(*c));
    c->fd = fd;
    c->listener = (uint8_t)listener;
    c->is_counted = true;
    c->born_ms = c->last_rx_ms = w->now_ms;
    mq_decoder_init(&c->dec, MQ_ROLE_SERVER, 0, w->srv->opts.max_packet_size);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        char host[48] = "?";
        uint16_t port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
            port = ntohs(sin->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
            port = ntohs(sin6->sin6_port);
        }
        snprintf(c->peer, sizeof(c->peer), "%s:%u", host, port);
    }
    link_conn(w, c);
    return c;
}

/* A receive into a provided buffer: single-shot before CONNECT (the connection may still move
 * to another worker, so nothing may stay armed), multishot afterwards. */
static void arm_recv(mq_conn_t *c, bool multishot)
{
    struct io_uring_sqe *sqe = get_sqe(&c->w->ring);
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

void mq_worker__arm_recv(mq_conn_t *c)
{
    if (!c->recv_armed && c->state != MQ_CONN_CLOSING)
        arm_recv(c, c->state == MQ_CONN_ACTIVE);
}

void mq_worker__mark_dirty(mq_worker_t *w, mq_conn_t *c)
{
    if (c->in_dirty)
        return;
    c->in_dirty = true;
    c->next_dirty = w->dirty;
    w->dirty = c;
}

/* Both sides are done with 'c' once its operations have completed. */
static void maybe_release(mq_conn_t *c)
{
    if (c->state != MQ_CONN_CLOSING || c->n_ops > 0 || c->in_dirty)
        return;
    mq_worker_t *w = c->w;
    mq_proto__on_closed(c);
    mq_worker__unlink(w, c);
    close(c->fd);
    if (c->is_counted) {
        atomic_fetch_sub_explicit(&w->srv->n_conns, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&w->srv->listeners[c->listener].n_conns, 1, memory_order_relaxed);
    }
    free_conn(c);
}

static void flush(mq_conn_t *c)
{
    if (c->send_busy || c->out.len == 0 || c->fd < 0)
        return;
    mq_buf_t t = c->wbuf; /* swap: the send owns wbuf, new output goes to out */
    c->wbuf = c->out;
    c->out = t;
    c->out.len = 0;
    c->wsent = 0;
    struct io_uring_sqe *sqe = get_sqe(&c->w->ring);
    io_uring_prep_send(sqe, c->fd, c->wbuf.data, c->wbuf.len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, mq_op_pack(c, MQ_OP_SEND));
    c->send_busy = true;
    c->n_ops++;
}

void mq_worker__close(mq_conn_t *c, bool with_will, const char *why)
{
    if (c->state == MQ_CONN_CLOSING)
        return;
    if (why)
        MQ_LOG(MQ_LOG_INFO, "worker=%u client=%s peer=%s closing: %s", c->w->idx,
               c->sess ? c->sess->client_id : "-", c->peer, why);
    c->state = MQ_CONN_CLOSING;
    c->will_pending = with_will && c->will != NULL;
    /* whatever is queued (a CONNACK refusal, say) still goes out; then the socket is shut so
     * that a pending receive completes and the connection can be released */
    mq_worker__mark_dirty(c->w, c);
}

static void finish_close(mq_conn_t *c)
{
    if (!c->send_busy && c->out.len == 0)
        shutdown(c->fd, SHUT_RDWR);
}

static void flush_dirty(mq_worker_t *w)
{
    while (w->dirty) {
        mq_conn_t *c = w->dirty;
        w->dirty = c->next_dirty;
        c->in_dirty = false;
        flush(c);
        if (c->state == MQ_CONN_CLOSING) {
            finish_close(c);
            maybe_release(c);
        }
    }
}

/* ---- back-pressure -------------------------------------------------------------------------- */

static void defer(mq_worker_t *w, mq_conn_t *c, unsigned bid, uint32_t len)
{
    if (w->n_deferred == w->cap_deferred) { /* at most one entry per provided buffer */
        w->cap_deferred = w->cap_deferred ? w->cap_deferred * 2 : 64;
        w->deferred = mq_realloc(w->deferred, w->cap_deferred * sizeof(*w->deferred));
    }
    w->deferred[w->n_deferred++] = (mq_deferred_t){c, (uint16_t)bid, len};
    c->n_ops++; /* the held buffer keeps 'c' alive */
}

static void return_buffer(mq_worker_t *w, unsigned bid)
{
    io_uring_buf_ring_add(w->br, w->bufs + (size_t)bid * w->buf_size, w->buf_size,
                          (unsigned short)bid, io_uring_buf_ring_mask(w->n_bufs), 0);
    io_uring_buf_ring_advance(w->br, 1);
}

/* Processes held buffers in arrival order while the worker is not congested, then re-arms
 * the receives that stopped for lack of buffers. */
static void resume_input(mq_worker_t *w)
{
    uint32_t i = 0;
    while (i < w->n_deferred && !w->congested) {
        mq_deferred_t d = w->deferred[i++];
        d.c->n_ops--;
        if (d.c->state == MQ_CONN_ACTIVE) {
            w->cnt.bytes_received += d.len;
            (void)mq_proto__on_bytes(d.c, w->bufs + (size_t)d.bid * w->buf_size, d.len);
        }
        return_buffer(w, d.bid);
        if (d.c->state == MQ_CONN_CLOSING)
            maybe_release(d.c);
    }
    memmove(w->deferred, w->deferred + i, (w->n_deferred - i) * sizeof(*w->deferred));
    w->n_deferred -= i;
    if (w->n_deferred > 0)
        return;
    for (uint32_t k = 0; k < w->n_rearm; k++) {
        mq_conn_t *c = w->rearm[k];
        c->need_rearm = false;
        c->n_ops--;
        /* a connection still before its CONNECT is re-armed too (single-shot): leaving it
         * out stalled it until the connect timeout when the buffers ran dry under churn */
        if (c->state != MQ_CONN_CLOSING && !c->recv_armed)
            arm_recv(c, c->state == MQ_CONN_ACTIVE);
        else
            maybe_release(c);
    }
    w->n_rearm = 0;
}

/* ---- completions ----------------------------------------------------------------------------- */

static void on_recv(mq_worker_t *w, mq_conn_t *c, struct io_uring_cqe *cqe)
{
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (!more) {
        c->recv_armed = false;
        c->n_ops--;
    }
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        uint8_t *data = w->bufs + (size_t)bid * w->buf_size;
        int r = MQ_BYTES_OK;
        if (cqe->res > 0 && c->state == MQ_CONN_ACTIVE && (w->congested || w->n_deferred)) {
            /* back-pressure: keep the buffer (the ring runs dry, receives stop with ENOBUFS,
             * TCP pushes back on the clients) and process it once the overflow drains */
            defer(w, c, bid, (uint32_t)cqe->res);
            c->last_rx_ms = w->now_ms;
            goto after_buffer;
        }
        if (cqe->res > 0 && c->state != MQ_CONN_CLOSING) {
            c->last_rx_ms = w->now_ms;
            w->cnt.bytes_received += (uint64_t)cqe->res;
            r = mq_proto__on_bytes(c, data, (size_t)cqe->res); /* closing is handled below */
        }
        /* the buffer goes back before this handler returns (STYLE.md §4): everything we keep
         * was copied by the decoder or the session */
        io_uring_buf_ring_add(w->br, data, w->buf_size, (unsigned short)bid,
                              io_uring_buf_ring_mask(w->n_bufs), 0);
        io_uring_buf_ring_advance(w->br, 1);
        if (r == MQ_BYTES_GONE)
            return; /* 'c' belongs to another worker now */
    }
after_buffer:
    if (c->state == MQ_CONN_CLOSING) {
        maybe_release(c);
        return;
    }
    if (cqe->res == 0) {
        mq_worker__close(c, true, "connection closed by the client");
    } else if (cqe->res == -ENOBUFS) {
        /* re-armed once buffers are back (at once if none is held back) */
        if (!c->need_rearm) {
            c->need_rearm = true;
            c->n_ops++; /* the pending re-arm keeps 'c' alive */
            if (w->n_rearm == w->cap_rearm) {
                w->cap_rearm = w->cap_rearm ? w->cap_rearm * 2 : 64;
                w->rearm = mq_realloc(w->rearm, w->cap_rearm * sizeof(*w->rearm));
            }
            w->rearm[w->n_rearm++] = c;
        }
    } else if (cqe->res < 0) {
        mq_worker__close(c, true, strerror(-cqe->res));
    } else if (!c->recv_armed && c->state != MQ_CONN_CLOSING) {
        /* single-shot before CONNECT, or a multishot the kernel ended: receive again */
        arm_recv(c, c->state == MQ_CONN_ACTIVE);
    }
    if (c->state == MQ_CONN_CLOSING)
        maybe_release(c);
}

static void on_send(mq_worker_t *w, mq_conn_t *c, struct io_uring_cqe *cqe)
{
    c->n_ops--;
    c->send_busy = false;
    if (cqe->res < 0) {
        c->out.len = 0;
        c->wbuf.len = 0;
        if (c->state != MQ_CONN_CLOSING)
            mq_worker__close(c, true, strerror(-cqe->res));
        maybe_release(c);
        return;
    }
    w->cnt.bytes_sent += (uint64_t)cqe->res;
    c->wsent += (size_t)cqe->res;
    if (c->wsent < c->wbuf.len) { /* a short send: resume it (STYLE.md §7) */
        struct io_uring_sqe *sqe = get_sqe(&w->ring);
        io_uring_prep_send(sqe, c->fd, c->wbuf.data + c->wsent, c->wbuf.len - c->wsent,
                           MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, mq_op_pack(c, MQ_OP_SEND));
        c->send_busy = true;
        c->n_ops++;
        return;
    }
    c->wbuf.len = 0;
    if (c->wbuf.cap > 64 * 1024) /* a burst grew it: give the memory back */
        mq_buf_fini(&c->wbuf);
    if (c->sess && c->state == MQ_CONN_ACTIVE && mq_sess_queued(c->sess) > 0)
        mq_sess_on_writable(c->sess); /* what queued while the socket was slow */
    mq_worker__mark_dirty(w, c);      /* more output may be waiting; closing continues there */
}

static void on_new_conn(mq_worker_t *w, int fd, unsigned listener)
{
    mq_conn_t *c = conn_new(w, fd, listener);
    w->cnt.sockets++;
    if (w->srv->opts.connection_messages)
        MQ_LOG(MQ_LOG_NOTICE, "New connection from %s on port %u.", c->peer,
               w->srv->listeners[listener].port);
    arm_recv(c, false);
}

static void drain_inbox(mq_worker_t *w)
{
    atomic_store_explicit(&w->wake_pending, 0, memory_order_seq_cst); /* before draining */
    mq_ring_entry_t e;
    while (mq_ring_pop(w->inbox, &e)) {
        switch (e.type) {
        case MQ_RE_NEW_CONN:
            on_new_conn(w, (int)e.a[0], (unsigned)e.a[1]);
            break;
        case MQ_RE_HANDOFF: {
            mq_conn_t *c = e.ptr;
            link_conn(w, c);
            mq_proto__on_handoff(c);
            break;
        }
        case MQ_RE_DELIVER:
            if (e.n > MQ_RING_INLINE) {
                uint64_t *ids = (uint64_t *)(uintptr_t)e.a[0];
                mq_proto__deliver(w, e.ptr, ids, e.n);
                mq_free(ids);
            } else {
                mq_proto__deliver(w, e.ptr, e.a, e.n);
            }
            mq_msg_unref(e.ptr);
            break;
        case MQ_RE_STOP:
            atomic_store(&w->stop, true);
            break;
        case MQ_RE_PUBLISH:
            mq_proto__publish(w, e.ptr);
            mq_msg_unref(e.ptr);
            break;
        default:
            MQ_ASSERT(0 && "unknown ring entry");
        }
    }
}

static void arm_timer(mq_worker_t *w)
{
    static struct __kernel_timespec one_second = {.tv_sec = 1, .tv_nsec = 0};
    struct io_uring_sqe *sqe = get_sqe(&w->ring);
    io_uring_prep_timeout(sqe, &one_second, 0, 0);
    io_uring_sqe_set_data64(sqe, mq_op_pack(w, MQ_OP_TIMER));
}

static void handle_cqe(mq_worker_t *w, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    switch (mq_op_of(ud)) {
    case MQ_OP_RECV:
        on_recv(w, mq_op_ptr(ud), cqe);
        break;
    case MQ_OP_SEND:
        on_send(w, mq_op_ptr(ud), cqe);
        break;
    case MQ_OP_TIMER:
        mq_proto__tick(w);
        arm_timer(w);
        break;
    case MQ_OP_WAKE: /* the inbox is drained at the top of every turn */
        break;
    case MQ_OP_MSG:
        if (cqe->res < 0)
            MQ_LOG(MQ_LOG_WARN, "worker=%u wake-up failed: %s", w->idx, strerror(-cqe->res));
        break;
    default:
        MQ_LOG(MQ_LOG_WARN, "worker=%u unexpected completion %llu", w->idx, (unsigned long long)ud);
    }
}

void *mq_worker__main(void *arg)
{
    mq_worker_t *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "starling-w%u", w->idx);
    pthread_setname_np(pthread_self(), name);
    w->init_rc = init_ring(w);
    sem_post(&w->srv->started);
    if (w->init_rc < 0)
        return NULL;
    /* every worker's ring exists before any thread may send to it: wait for the go */
    sem_wait(&w->go);
    if (atomic_load(&w->stop))
        return NULL;
    w->ep = mq_epoch_register(w->srv->ep, w->idx);
    arm_timer(w);
    struct timespec turn_start;
    clock_gettime(CLOCK_MONOTONIC, &turn_start);
    while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
        drain_inbox(w);
        retry_overflow(w);
        if (w->n_deferred || w->n_rearm)
            resume_input(w);
        flush_dirty(w);
        send_wakes(w);
        /* how long this turn's work took, from the end of the wait to here ($SYS) */
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        uint64_t ns = (uint64_t)(t1.tv_sec - turn_start.tv_sec) * 1000000000u +
                      (uint64_t)t1.tv_nsec - (uint64_t)turn_start.tv_nsec;
        if (ns > w->loop_ns_max)
            w->loop_ns_max = ns;
        /* end of a turn: nothing from the shared index is held any more (STYLE.md §6) */
        mq_epoch_quiescent(w->ep);
        mq_epoch_offline(w->ep);
        int rc = io_uring_submit_and_wait(&w->ring, 1);
        mq_epoch_online(w->ep);
        if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EAGAIN && rc != -EBUSY)
            MQ_LOG(MQ_LOG_ERROR, "worker=%u io_uring_submit_and_wait: %s", w->idx, strerror(-rc));
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        w->now_ms = (uint64_t)t0.tv_sec * 1000 + (uint64_t)t0.tv_nsec / 1000000;
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&w->ring, head, cqe)
        {
            handle_cqe(w, cqe);
            n++;
        }
        io_uring_cq_advance(&w->ring, n);
        turn_start = t0;
    }
    mq_epoch_offline(w->ep);
    io_uring_unregister_buf_ring(&w->ring, BGID);
    return NULL;
}
