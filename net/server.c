/* SPDX-License-Identifier: MIT */
/* net/server.c - listeners, the acceptor thread (multishot accept), start and stop. */
#include "net/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "net/server_internal.h"

static int listen_on(const mq_server_listener_t *l, int *fd_out, uint16_t *port_out, char *err,
                     size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", l->port);
    int rc = getaddrinfo(l->bind_address, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s:%u: %s", l->bind_address ? l->bind_address : "*", l->port,
                 gai_strerror(rc));
        return -EINVAL;
    }
    /* With no bind address, prefer one IPv6 socket that also takes IPv4; else the first. */
    struct addrinfo *ai = res;
    for (struct addrinfo *a = res; a && !l->bind_address; a = a->ai_next)
        if (a->ai_family == AF_INET6)
            ai = a;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int e = errno;
    if (fd >= 0) {
        int one = 1, zero = 0;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* best effort */
        if (ai->ai_family == AF_INET6 && !l->bind_address)
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "%s:%u: %s", l->bind_address ? l->bind_address : "*", l->port,
                 strerror(e));
        return -e;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    *port_out = l->port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *port_out = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                  : ((struct sockaddr_in6 *)&ss)->sin6_port);
    *fd_out = fd;
    return 0;
}

static void arm_accept(mq_server_t *srv, unsigned i)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&srv->acc_ring);
    io_uring_prep_multishot_accept(sqe, srv->listeners[i].fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, mq_op_pack(&srv->listeners[i], MQ_OP_ACCEPT));
}

/* Hands a new connection to the next worker, round-robin (DESIGN.md: the worker that reads
 * its CONNECT moves it to the session's owner if need be). */
static void dispatch(mq_server_t *srv, int fd, unsigned li)
{
    mq_listener_rt_t *l = &srv->listeners[li];
    uint32_t n = (uint32_t)atomic_fetch_add_explicit(&srv->n_conns, 1, memory_order_relaxed);
    uint32_t nl = (uint32_t)atomic_fetch_add_explicit(&l->n_conns, 1, memory_order_relaxed);
    if ((srv->opts.max_connections && n >= srv->opts.max_connections) ||
        (l->max_connections && nl >= l->max_connections)) {
        atomic_fetch_sub_explicit(&srv->n_conns, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&l->n_conns, 1, memory_order_relaxed);
        MQ_LOG(MQ_LOG_NOTICE, "Client connection refused: max_connections reached.");
        close(fd);
        return;
    }
    if (srv->opts.set_tcp_nodelay) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* best effort */
    }
    unsigned to = srv->next_worker++ % srv->n_workers;
    mq_worker_t *w = &srv->workers[to];
    mq_ring_entry_t e = {.type = MQ_RE_NEW_CONN, .a = {(uint64_t)fd, li}};
    while (!mq_ring_push(w->inbox, &e)) {
        /* the acceptor has nothing better to do than wait for room: new connections are not
         * worth dropping, and back-pressure here slows accepting, which is right */
        sched_yield();
    }
    if (!atomic_exchange_explicit(&w->wake_pending, 1, memory_order_seq_cst)) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&srv->acc_ring);
        if (sqe == NULL) {
            io_uring_submit(&srv->acc_ring);
            sqe = io_uring_get_sqe(&srv->acc_ring);
        }
        io_uring_prep_msg_ring(sqe, w->ring_fd, 0, mq_op_pack(NULL, MQ_OP_WAKE), 0);
        io_uring_sqe_set_data64(sqe, mq_op_pack(NULL, MQ_OP_MSG));
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    }
}

static void *acceptor_main(void *arg)
{
    mq_server_t *srv = arg;
    pthread_setname_np(pthread_self(), "starling-acc");
    for (unsigned i = 0; i < srv->n_listeners; i++)
        arm_accept(srv, i);
    while (!atomic_load_explicit(&srv->acc_stop, memory_order_relaxed)) {
        int rc = io_uring_submit_and_wait(&srv->acc_ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            MQ_LOG(MQ_LOG_ERROR, "acceptor: io_uring_submit_and_wait: %s", strerror(-rc));
            continue;
        }
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&srv->acc_ring, head, cqe)
        {
            n++;
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            if (mq_op_of(ud) != MQ_OP_ACCEPT)
                continue; /* a wake-up (stop) or a failed MSG_RING */
            mq_listener_rt_t *l = mq_op_ptr(ud);
            unsigned li = (unsigned)(l - srv->listeners);
            if (cqe->res >= 0)
                dispatch(srv, cqe->res, li);
            else if (cqe->res != -EINTR && cqe->res != -ECONNABORTED)
                MQ_LOG(MQ_LOG_WARN, "accept on port %u: %s", l->port, strerror(-cqe->res));
            if (!(cqe->flags & IORING_CQE_F_MORE) &&
                !atomic_load_explicit(&srv->acc_stop, memory_order_relaxed))
                arm_accept(srv, li); /* multishot ended (e.g. EMFILE): re-arm */
        }
        io_uring_cq_advance(&srv->acc_ring, n);
    }
    return NULL;
}

/* Sends a MSG_RING from the main thread to 'ring_fd'. */
static void ctl_wake(mq_server_t *srv, int ring_fd)
{
    pthread_mutex_lock(&srv->ctl_lock);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&srv->ctl_ring);
    if (sqe) {
        io_uring_prep_msg_ring(sqe, ring_fd, 0, mq_op_pack(NULL, MQ_OP_WAKE), 0);
        io_uring_sqe_set_data64(sqe, 0);
        io_uring_submit_and_wait(&srv->ctl_ring, 1);
        struct io_uring_cqe *cqe;
        if (io_uring_peek_cqe(&srv->ctl_ring, &cqe) == 0)
            io_uring_cqe_seen(&srv->ctl_ring, cqe);
    }
    pthread_mutex_unlock(&srv->ctl_lock);
}

int mq_server_start(mq_server_t **out, const mq_server_opts_t *opts, char *err, size_t errlen)
{
    mq_server_t *srv = mq_calloc(1, sizeof(*srv));
    srv->opts = *opts;
    srv->auto_id_prefix = mq_strndup(opts->auto_id_prefix ? opts->auto_id_prefix : "auto-",
                                     strlen(opts->auto_id_prefix ? opts->auto_id_prefix : "auto-"));
    srv->opts.auto_id_prefix = srv->auto_id_prefix;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    srv->n_workers = opts->workers ? opts->workers : (unsigned)(cpus > 0 ? cpus : 1);
    if (srv->n_workers > MQ_TINDEX_MAX_WORKERS)
        srv->n_workers = MQ_TINDEX_MAX_WORKERS;
    if (srv->opts.limits.max_inflight == 0)
        srv->opts.limits.max_inflight = 65535;
    if (srv->opts.connect_timeout_s == 0)
        srv->opts.connect_timeout_s = 10;
    pthread_mutex_init(&srv->ctl_lock, NULL);
    int rc = 0;
    unsigned started = 0;
    for (unsigned i = 0; i < opts->n_listeners; i++) {
        mq_listener_rt_t *l = &srv->listeners[i];
        rc = listen_on(&opts->listeners[i], &l->fd, &l->port, err, errlen);
        if (rc < 0)
            goto fail;
        l->max_connections = opts->listeners[i].max_connections;
        srv->n_listeners++;
    }
    srv->ep = mq_epoch_new(srv->n_workers);
    srv->ix = mq_tindex_new(srv->ep);
    srv->workers = mq_calloc(srv->n_workers, sizeof(mq_worker_t));
    sem_init(&srv->started, 0, 0);
    if ((rc = io_uring_queue_init(64, &srv->acc_ring, 0)) < 0) {
        snprintf(err, errlen, "io_uring_queue_init: %s", strerror(-rc));
        goto fail;
    }
    if ((rc = io_uring_queue_init(8, &srv->ctl_ring, 0)) < 0) {
        io_uring_queue_exit(&srv->acc_ring);
        snprintf(err, errlen, "io_uring_queue_init: %s", strerror(-rc));
        goto fail;
    }
    for (unsigned i = 0; i < srv->n_workers; i++) {
        mq_worker__init(&srv->workers[i], srv, i);
        sem_init(&srv->workers[i].go, 0, 0);
        pthread_create(&srv->workers[i].thread, NULL, mq_worker__main, &srv->workers[i]);
        started++;
    }
    for (unsigned i = 0; i < started; i++)
        sem_wait(&srv->started);
    rc = 0;
    for (unsigned i = 0; i < started && rc == 0; i++) {
        if (srv->workers[i].init_rc < 0) {
            rc = srv->workers[i].init_rc;
            snprintf(err, errlen, "%s", srv->workers[i].init_err);
        }
    }
    for (unsigned i = 0; i < started; i++) {
        if (rc < 0)
            atomic_store(&srv->workers[i].stop, true);
        sem_post(&srv->workers[i].go);
    }
    if (rc < 0) {
        for (unsigned i = 0; i < started; i++)
            pthread_join(srv->workers[i].thread, NULL);
        io_uring_queue_exit(&srv->acc_ring);
        io_uring_queue_exit(&srv->ctl_ring);
        goto fail;
    }
    pthread_create(&srv->acceptor, NULL, acceptor_main, srv);
    *out = srv;
    return 0;
fail:
    for (unsigned i = 0; i < started; i++) {
        srv->workers[i].ep = mq_epoch_register(srv->ep, i);
        mq_worker__fini(&srv->workers[i]);
    }
    for (unsigned i = 0; i < srv->n_listeners; i++)
        close(srv->listeners[i].fd);
    mq_free(srv->workers);
    mq_tindex_free(srv->ix);
    mq_epoch_free(srv->ep);
    mq_free(srv->auto_id_prefix);
    mq_free(srv);
    return rc < 0 ? rc : -EINVAL;
}

void mq_server_stop(mq_server_t *srv)
{
    atomic_store(&srv->acc_stop, true);
    ctl_wake(srv, srv->acc_ring.ring_fd);
    pthread_join(srv->acceptor, NULL);
    for (unsigned i = 0; i < srv->n_listeners; i++)
        close(srv->listeners[i].fd);
    for (unsigned i = 0; i < srv->n_workers; i++) {
        atomic_store(&srv->workers[i].stop, true);
        ctl_wake(srv, srv->workers[i].ring_fd);
    }
    for (unsigned i = 0; i < srv->n_workers; i++)
        pthread_join(srv->workers[i].thread, NULL);
    /* every thread has stopped: the index and the sessions can go in any order */
    for (unsigned i = 0; i < srv->n_workers; i++) {
        srv->workers[i].ep = mq_epoch_register(srv->ep, i);
        mq_worker__fini(&srv->workers[i]);
    }
    io_uring_queue_exit(&srv->acc_ring);
    io_uring_queue_exit(&srv->ctl_ring);
    mq_tindex_free(srv->ix);
    mq_epoch_free(srv->ep);
    mq_free(srv->workers);
    mq_free(srv->auto_id_prefix);
    pthread_mutex_destroy(&srv->ctl_lock);
    mq_free(srv);
}

uint16_t mq_server_port(const mq_server_t *srv, unsigned i)
{
    return i < srv->n_listeners ? srv->listeners[i].port : 0;
}

unsigned mq_server_workers(const mq_server_t *srv)
{
    return srv->n_workers;
}

#define GET(field) atomic_load_explicit(&w->stats.field, memory_order_relaxed)

void mq_server_stats(const mq_server_t *srv, mq_server_stats_t *total,
                     mq_server_stats_t *per_worker)
{
    memset(total, 0, sizeof(*total));
    for (unsigned i = 0; i < srv->n_workers; i++) {
        mq_worker_t *w = &srv->workers[i];
        mq_server_stats_t s = {
            .msgs_received = GET(msgs_received),
            .msgs_sent = GET(msgs_sent),
            .pub_received = GET(pub_received),
            .pub_sent = GET(pub_sent),
            .pub_dropped = GET(pub_dropped),
            .pub_bytes_received = GET(pub_bytes_received),
            .pub_bytes_sent = GET(pub_bytes_sent),
            .bytes_received = GET(bytes_received),
            .bytes_sent = GET(bytes_sent),
            .sockets = GET(sockets),
            .connects = GET(connects),
            .connections = GET(connections),
            .sessions = GET(sessions),
            .subscriptions = GET(subscriptions),
            .inflight = GET(inflight),
            .queued = GET(queued),
            .queued_bytes = GET(queued_bytes),
            .ring_depth = GET(ring_depth),
            .loop_us = GET(loop_us),
        };
        if (per_worker)
            per_worker[i] = s;
        total->msgs_received += s.msgs_received;
        total->msgs_sent += s.msgs_sent;
        total->pub_received += s.pub_received;
        total->pub_sent += s.pub_sent;
        total->pub_dropped += s.pub_dropped;
        total->pub_bytes_received += s.pub_bytes_received;
        total->pub_bytes_sent += s.pub_bytes_sent;
        total->bytes_received += s.bytes_received;
        total->bytes_sent += s.bytes_sent;
        total->sockets += s.sockets;
        total->connects += s.connects;
        total->connections += s.connections;
        total->sessions += s.sessions;
        total->subscriptions += s.subscriptions;
        total->inflight += s.inflight;
        total->queued += s.queued;
        total->queued_bytes += s.queued_bytes;
        total->ring_depth += s.ring_depth;
        if (s.loop_us > total->loop_us)
            total->loop_us = s.loop_us;
    }
    total->disconnected =
        total->sessions > total->connections ? total->sessions - total->connections : 0;
    total->retained = mq_tindex_retained_count(srv->ix);
    total->retained_bytes = mq_tindex_retained_bytes(srv->ix);
}

void mq_server_publish(mq_server_t *srv, const char *topic, const void *payload, size_t len,
                       bool retain)
{
    mq_msg_t *msg = mq_msg_new(topic, strlen(topic), payload, len, 0, retain);
    if (msg == NULL)
        return;
    mq_worker_t *w = &srv->workers[0];
    mq_ring_entry_t e = {.type = MQ_RE_PUBLISH, .ptr = msg};
    while (!mq_ring_push(w->inbox, &e))
        sched_yield(); /* the control thread may wait; workers never do */
    if (!atomic_exchange_explicit(&w->wake_pending, 1, memory_order_seq_cst))
        ctl_wake(srv, w->ring_fd);
}
