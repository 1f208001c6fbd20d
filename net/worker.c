/* SPDX-License-Identifier: MIT */
/* net/worker.c - one worker thread: the io_uring loop and nothing else. */
#include "net/worker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/msg.h"
#include "net/jwriter.h"
#include "net/marks.h"
#include "net/op.h"
#include "net/trace.h"

#define RING_ENTRIES 4096 /* SQ size; the CQ is twice that */
#define INBOX_ENTRIES 16384

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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

/* The connection totals the acceptor raised go down when a connection's socket closes. */
static void uncount(void *arg, mq_conn_t *c)
{
    mq_worker_t *w = arg;
    atomic_fetch_sub_explicit(w->env.n_conns, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&w->env.listener_conns[c->listener], 1, memory_order_relaxed);
}

void mq_worker_init(mq_worker_t *w, const mq_worker_env_t *env, unsigned idx)
{
    memset(w, 0, sizeof(*w));
    w->idx = idx;
    w->env = *env;
    mq_mailbox_init(&w->inbox, INBOX_ENTRIES);
    mq_outbox_init(&w->outbox, env->boxes, env->n_workers, idx);
    atomic_init(&w->stop, false);
    atomic_init(&w->drain_until_ms, 0);
    sem_init(&w->go, 0, 0);
}

/* The worker's journal of generation opts->journal_gen (persistence on). A file that cannot
 * be made is an error in the log; the worker serves without it, as when a snapshot cannot be
 * written. */
static void open_journal(mq_worker_t *w)
{
    const mq_server_opts_t *o = w->env.opts;
    if (o->journal_base == NULL)
        return;
    char path[4096];
    int fd = mq_jwriter_create(o->journal_base, o->journal_gen, w->idx, path, sizeof(path));
    if (fd < 0) {
        MQ_LOG(MQ_LOG_ERROR,
               "Error: persistence journal %s: %s; changes reach the disk only with snapshots.",
               path, strerror(-fd));
        return;
    }
    mq_jwriter_sync_dir(path); /* its name durable before anything in it is acknowledged */
    w->jw = mq_jwriter_new(&w->ring, &w->loop, fd, path, o->journal_gen, w->idx, w->env.n_workers,
                           (enum mq_fsync_mode)o->persistence_fsync);
}

static int init_thread(mq_worker_t *w)
{
    char err[128];
    int rc = setup_ring(&w->ring, RING_ENTRIES);
    if (rc < 0) {
        snprintf(w->init_err, sizeof(w->init_err), "worker %u: io_uring_queue_init: %s", w->idx,
                 strerror(-rc));
        return rc;
    }
    w->has_ring = true;
    w->inbox.ring_fd = w->ring.ring_fd;
    w->ep = mq_epoch_register(w->env.ep, w->idx);
    open_journal(w);
    mq_proto_env_t pe = {.opts = w->env.opts,
                         .auth = w->env.auth,
                         .verifier = w->env.verifier,
                         .ix = w->env.ix,
                         .shared = w->env.shared,
                         .ep = w->ep,
                         .outbox = &w->outbox,
                         .loop = &w->loop,
                         .self = w->idx,
                         .n_workers = w->env.n_workers,
                         .jw = w->jw};
    w->proto = mq_proto_new(&pe);
    if (w->jw) /* durability marks are answered from the journal's completions */
        mq_jwriter_on_durable(w->jw, mq_marks_answer, w->proto);
    rc = mq_conn_loop_init(&w->loop, &w->ring, mq_proto_handler(w->proto), mq_proto_conn_size(),
                           err, sizeof(err));
    if (rc < 0) {
        snprintf(w->init_err, sizeof(w->init_err), "worker %u: %s", w->idx, err);
        return rc;
    }
    w->loop.on_uncount = uncount;
    w->loop.uncount_arg = w;
    w->loop.trace_out = mq_trace_out; /* -v: one line per packet sent */
    w->loop.now_ms = mono_ns() / 1000000;
    if (w->env.opts->kept) /* before the first client: the sessions it resumes are there */
        w->restored = mq_proto_restore(w->proto, w->env.opts->kept, w->env.opts->kept_wall);
    return 0;
}

/* What a mail holds when it will never be processed (shutdown). */
static void drop_mail(mq_mail_t *m)
{
    switch (m->type) {
    case MQ_MAIL_NEW_CONN:
        close((int)m->a[0]);
        break;
    case MQ_MAIL_DELIVER:
    case MQ_MAIL_PUBLISH:
    case MQ_MAIL_DELIVER_SHARED:
        mq_msg_unref(m->ptr);
        if (m->type == MQ_MAIL_DELIVER && m->n > MQ_MAIL_INLINE)
            mq_free((void *)(uintptr_t)m->a[0]);
        break;
    case MQ_MAIL_HANDOFF: {
        mq_conn_t *c = m->ptr;
        close(c->fd);
        mq_proto_drop_conn(c);
        mq_conn_free(c);
        break;
    }
    case MQ_MAIL_VISIT: /* the visitor waits for every worker's answer */
        sem_post(((mq_proto_visit_t *)m->ptr)->done);
        break;
    case MQ_MAIL_JOURNAL: /* so does a rotation; the file it brought is not used */
        sem_post(((mq_jwriter_rotation_t *)m->ptr)->done);
        break;
    default:
        break;
    }
}

static void release_conn(void *arg, mq_conn_t *c)
{
    (void)arg;
    mq_proto_drop_conn(c);
}

void mq_worker_fini(mq_worker_t *w)
{
    if (w->ep == NULL) /* the thread never set up: the epoch record is registered here */
        w->ep = mq_epoch_register(w->env.ep, w->idx);
    if (w->loop.ring)
        mq_conn_loop_fini(&w->loop, release_conn, NULL);
    mq_proto_free(w->proto);
    mq_mailbox_fini(&w->inbox, drop_mail);
    mq_outbox_fini(&w->outbox, drop_mail);
    if (w->has_ring)
        io_uring_queue_exit(&w->ring);
    sem_destroy(&w->go);
}

static void on_mail(mq_worker_t *w, mq_mail_t *e)
{
    switch (e->type) {
    case MQ_MAIL_NEW_CONN: {
        unsigned li = (unsigned)e->a[1];
        mq_conn_t *c = mq_conn_new(&w->loop, (int)e->a[0], li);
        mq_proto_on_accept(w->proto, c);
        char peer[MQ_CONN_PEER_LEN];
        if (w->env.opts->connection_messages)
            MQ_LOG(MQ_LOG_NOTICE, "New connection from %s on port %u.", mq_conn_peer(c, peer),
                   w->env.ports[li]);
        if (mq_xport_attach(c, w->env.xports[li]) < 0)
            mq_conn_close(c, "transport set-up failed");
        break;
    }
    case MQ_MAIL_HANDOFF:
        mq_conn_link(&w->loop, e->ptr);
        mq_proto_on_handoff(w->proto, e->ptr);
        break;
    case MQ_MAIL_DELIVER:
        if (e->n > MQ_MAIL_INLINE) {
            uint64_t *ids = (uint64_t *)(uintptr_t)e->a[0];
            mq_proto_deliver(w->proto, e->ptr, ids, e->n);
            mq_free(ids);
        } else {
            mq_proto_deliver(w->proto, e->ptr, e->a, e->n);
        }
        mq_msg_unref(e->ptr);
        break;
    case MQ_MAIL_STOP:
        atomic_store(&w->stop, true);
        break;
    case MQ_MAIL_PUBLISH:
        mq_proto_publish(w->proto, e->ptr);
        mq_msg_unref(e->ptr);
        break;
    case MQ_MAIL_DELIVER_SHARED:
        mq_proto_deliver_shared(w->proto, e->ptr, e->a[0], e->a[1], e->a[2], (unsigned)e->a[3]);
        mq_msg_unref(e->ptr);
        break;
    case MQ_MAIL_VISIT: {
        const mq_proto_visit_t *v = e->ptr;
        mq_proto_visit(w->proto, v);
        sem_post(v->done);
        break;
    }
    case MQ_MAIL_MARK:
        mq_marks_on_mark(w->proto, (unsigned)e->a[0], e->a[1]);
        break;
    case MQ_MAIL_DURABLE:
        mq_marks_on_durable(w->proto, (unsigned)e->a[0], e->a[1]);
        break;
    case MQ_MAIL_JOURNAL: {
        const mq_jwriter_rotation_t *r = e->ptr;
        if (w->jw)
            mq_jwriter_rotate(w->jw, r->fds[w->idx], r->paths[w->idx], r->gen);
        else
            close(r->fds[w->idx]);
        sem_post(r->done);
        break;
    }
    default:
        MQ_ASSERT(0 && "unknown mail");
    }
}

static void drain_inbox(mq_worker_t *w)
{
    mq_mailbox_begin_drain(&w->inbox); /* before draining: later posts wake us again */
    mq_mail_t e;
    while (mq_mailbox_take(&w->inbox, &e))
        on_mail(w, &e);
}

#define PUT(f, ...) atomic_store_explicit(&w->stats.f, st.f, memory_order_relaxed);

/* Once a second: the figures other threads read. */
static void publish_stats(mq_worker_t *w)
{
    mq_stats_t st = {0};
    mq_proto_stats(w->proto, &st);
    st.bytes_received = w->loop.bytes_received;
    st.bytes_sent = w->loop.bytes_sent;
    st.ring_depth = mq_mailbox_depth(&w->inbox);
    st.loop_us = w->loop_ns_max / 1000;
    w->loop_ns_max = 0;
    MQ_STATS(PUT)
}

#define GET(f, ...) out->f = atomic_load_explicit(&w->stats.f, memory_order_relaxed);

void mq_worker_read_stats(const mq_worker_t *w, mq_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    MQ_STATS(GET)
}

static void arm_timer(mq_worker_t *w)
{
    static struct __kernel_timespec one_second = {.tv_sec = 1, .tv_nsec = 0};
    struct io_uring_sqe *sqe = mq_op_sqe(&w->ring);
    MQ_ASSERT(sqe != NULL); /* the worker's own ring refuses every submission: it cannot run */
    io_uring_prep_timeout(sqe, &one_second, 0, 0);
    io_uring_sqe_set_data64(sqe, mq_op_pack(w, MQ_OP_TIMER));
}

static void handle_cqe(mq_worker_t *w, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    switch (mq_op_of(ud)) {
    case MQ_OP_RECV:
        mq_conn_on_recv(&w->loop, mq_op_ptr(ud), cqe);
        break;
    case MQ_OP_SEND:
        mq_conn_on_send(&w->loop, mq_op_ptr(ud), cqe);
        break;
    case MQ_OP_TIMER:
        publish_stats(w);
        mq_proto_tick(w->proto);
        if (w->jw)
            mq_jwriter_tick(w->jw);
        arm_timer(w);
        break;
    case MQ_OP_JOURNAL:
        mq_jwriter_on_cqe(w->jw, mq_op_ptr(ud), cqe);
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

/* Submits this turn's work and waits for completions: not at all when a take-over waits for
 * this entry (net/connect.c: take_over_later, due next turn), a moment when CONNECTs wait for
 * a reload to end (net/auth.h), else until one comes. */
static int enter_ring(mq_worker_t *w)
{
    switch (mq_proto_seal_waiting(w->proto)) {
    case MQ_PROTO_NO_SLEEP:
        return io_uring_submit_and_get_events(&w->ring);
    case MQ_PROTO_SLEEP_SHORT: {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {.tv_nsec = MQ_PROTO_RELOAD_POLL_MS * 1000000};
        return io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
    }
    case MQ_PROTO_SLEEP:
        break;
    }
    return io_uring_submit_and_wait(&w->ring, 1);
}

/* One turn's work, from the end of the wait to the next wait. */
static void turn(mq_worker_t *w)
{
    mq_proto_resume_waiting(w->proto); /* take-overs that waited for the last completions */
    drain_inbox(w);
    mq_outbox_retry(&w->outbox);
    /* stopping gracefully holds input too: what is queued goes out, nothing new comes in */
    bool stopping = atomic_load_explicit(&w->drain_until_ms, memory_order_relaxed) != 0;
    w->loop.congested = w->outbox.congested || stopping;
    if (stopping && !w->said_goodbye) { /* MQTT 5 clients are told why (0x8B), once */
        w->said_goodbye = true;
        mq_proto_goodbye(w->proto);
    }
    mq_conn_loop_turn(&w->loop);
    if (w->jw) /* after the flush: what this turn gated waits for this write */
        mq_jwriter_flush(w->jw);
    mq_marks_send(w->proto); /* after every delivery this turn mailed */
    mq_outbox_wake(&w->outbox, &w->ring);
}

/* Stopping gracefully: true once every output has gone, or the deadline has passed. */
static bool drained(mq_worker_t *w)
{
    uint64_t until = atomic_load_explicit(&w->drain_until_ms, memory_order_relaxed);
    return until != 0 && (w->loop.now_ms >= until || mq_conn_loop_idle(&w->loop));
}

/* The loop has ended: the journal's operation in flight completes (its buffer must outlive
 * it), then what is left is written with plain calls (mq_jwriter_free) before the thread
 * ends, so that a snapshot failing at exit still finds every change in the journal. */
static void settle_journal(mq_worker_t *w)
{
    if (w->jw == NULL)
        return;
    uint64_t deadline = mono_ns() + 10ull * 1000000000u; /* a disk that slow: give up */
    while (mq_jwriter_busy(w->jw) && mono_ns() < deadline) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 100000000};
        (void)io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
        unsigned head, n = 0;
        io_uring_for_each_cqe(&w->ring, head, cqe)
        {
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            if (mq_op_of(ud) == MQ_OP_JOURNAL)
                mq_jwriter_on_cqe(w->jw, mq_op_ptr(ud), cqe);
            n++;
        }
        io_uring_cq_advance(&w->ring, n);
    }
    mq_jwriter_free(w->jw); /* still busy: it leaves the buffer in use to the kernel */
    w->jw = NULL;
}

static void run(mq_worker_t *w)
{
    arm_timer(w);
    uint64_t turn_start = mono_ns();
    while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
        turn(w);
        if (drained(w))
            break;
        uint64_t ns = mono_ns() - turn_start; /* how long this turn's work took ($SYS) */
        if (ns > w->loop_ns_max)
            w->loop_ns_max = ns;
        /* end of a turn: nothing from the shared index is held any more (STYLE.md §6) */
        mq_epoch_quiescent(w->ep);
        mq_epoch_offline(w->ep);
        int rc = enter_ring(w);
        mq_epoch_online(w->ep);
        if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EAGAIN && rc != -EBUSY)
            MQ_LOG(MQ_LOG_ERROR, "worker=%u io_uring_submit_and_wait: %s", w->idx, strerror(-rc));
        turn_start = mono_ns();
        w->loop.now_ms = turn_start / 1000000;
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&w->ring, head, cqe)
        {
            handle_cqe(w, cqe);
            n++;
        }
        io_uring_cq_advance(&w->ring, n);
    }
    mq_epoch_offline(w->ep);
    settle_journal(w);
}

void *mq_worker_main(void *arg)
{
    mq_worker_t *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "starling-w%u", w->idx);
    pthread_setname_np(pthread_self(), name);
    w->init_rc = init_thread(w);
    sem_post(w->env.started);
    if (w->init_rc < 0)
        return NULL;
    /* every worker's ring exists before any thread may send to it: wait for the go */
    sem_wait(&w->go);
    if (!atomic_load(&w->stop))
        run(w);
    return NULL;
}
