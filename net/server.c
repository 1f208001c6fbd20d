/* SPDX-License-Identifier: MIT */
/* net/server.c - listeners, the acceptor thread (multishot accept), start and stop. */
#include "net/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "net/auth.h"
#include "net/mailbox.h"
#include "net/op.h"
#include "net/jwriter.h"
#include "net/worker.h"
#include "net/xport.h"

/* A listener has a socket per address it binds (bind_address "localhost" names two). */
#define MAX_ADDRS 8 /* addresses one listener binds, at most */
#define MQ_SERVER_MAX_SOCKETS (MQ_SERVER_MAX_LISTENERS * MAX_ADDRS)
typedef struct {
    int fd;
    uint8_t listener; /* index into opts.listeners */
} listen_sock_t;

/* The running broker. Created and destroyed by the main thread; the acceptor thread reads the
 * listeners and posts to the workers' inboxes; the workers read 'opts' and the index. */
struct mq_server {
    mq_server_opts_t opts;
    char *auto_id_prefix[MQ_SERVER_MAX_LISTENERS]; /* copies: opts' strings point here */
    mq_auth_slot_t auth;          /* the security state; replaced by mq_server_set_auth() */
    mq_epoch_rec_t *ctl_ep;       /* the control thread's epoch record, offline between uses */
    mq_auth_verifier_t *verifier; /* the password verifier thread */
    unsigned n_workers;
    mq_worker_t *workers;
    mq_mailbox_t **boxes; /* &workers[i].inbox */
    mq_epoch_t *ep;
    mq_tindex_t *ix;
    mq_shared_t *shared;
    listen_sock_t socks[MQ_SERVER_MAX_SOCKETS]; /* every listener's, in listener order */
    unsigned n_socks;
    uint16_t ports[MQ_SERVER_MAX_LISTENERS];
    mq_xport_listener_t *xports[MQ_SERVER_MAX_LISTENERS]; /* NULL: plain TCP */
    atomic_uint_fast32_t listener_conns[MQ_SERVER_MAX_LISTENERS];
    unsigned n_listeners;
    atomic_uint_fast32_t n_conns; /* open connections, all listeners */
    sem_t started;                /* posted by each worker once its ring is set up (or failed) */
    pthread_t acceptor;
    struct io_uring acc_ring;
    atomic_bool acc_stop;
    bool halted; /* mq_server_halt() has run */
    unsigned next_worker;
    struct io_uring ctl_ring; /* the main thread's, to send MSG_RING wake-ups */
    pthread_mutex_t ctl_lock; /* ctl_ring users (main thread and signal paths) */
};

/* A listening socket on 'sa', or -errno. 'dual': an IPv6 socket on all addresses that takes
 * IPv4 too. */
static int listen_socket(const mq_server_listener_t *l, const struct sockaddr *sa, socklen_t len,
                         bool dual)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* best effort */
    if (sa->sa_family == AF_INET6 && l->domain == MQ_SERVER_IPV6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    else if (sa->sa_family == AF_INET6 && dual)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, sa, len) < 0 || listen(fd, 4096) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* A failure that means "this family or address is not on this host": the next one is tried. */
static bool not_here(int rc)
{
    return rc == -EAFNOSUPPORT || rc == -EPROTONOSUPPORT || rc == -EADDRNOTAVAIL;
}

static bool family_wanted(const mq_server_listener_t *l, int family)
{
    return family == AF_INET    ? l->domain != MQ_SERVER_IPV6
           : family == AF_INET6 ? l->domain != MQ_SERVER_IPV4
                                : false;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                          : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static bool same_host(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* The addresses one listener binds, a socket each. */
typedef struct {
    struct sockaddr_storage a[MAX_ADDRS];
    unsigned n;
} addrs_t;

static void add_addr(addrs_t *as, const struct sockaddr *sa, uint16_t port)
{
    if (as->n == MAX_ADDRS)
        return;
    for (unsigned i = 0; i < as->n; i++)
        if (same_host(&as->a[i], sa))
            return; /* a name listed twice in /etc/hosts */
    struct sockaddr_storage *ss = &as->a[as->n++];
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, sa,
           sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    set_port(ss, port);
}

/* bind_interface: the interface's first address of each family the listener takes or, with a
 * bind address as well, those of its addresses that the bind address names (mosquitto's
 * rules). 'named' holds what bind_address resolved to (NULL: none given). */
static int interface_addrs(const mq_server_listener_t *l, const struct addrinfo *named, addrs_t *as,
                           char *err, size_t errlen)
{
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) < 0) {
        int e = errno;
        snprintf(err, errlen, "bind_interface: %s", strerror(e));
        return -e;
    }
    bool exists = false, have[2] = {false, false};
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (strcmp(i->ifa_name, l->bind_interface) != 0)
            continue;
        exists = true;
        if (!i->ifa_addr || !family_wanted(l, i->ifa_addr->sa_family))
            continue;
        bool v6 = i->ifa_addr->sa_family == AF_INET6;
        if (named) {
            for (const struct addrinfo *a = named; a; a = a->ai_next)
                if (same_host((const struct sockaddr_storage *)(const void *)i->ifa_addr,
                              a->ai_addr))
                    add_addr(as, i->ifa_addr, l->port);
        } else if (!have[v6]) {
            add_addr(as, i->ifa_addr, l->port);
            have[v6] = true;
        }
    }
    freeifaddrs(ifs);
    if (as->n > 0)
        return 0;
    if (!exists && if_nametoindex(l->bind_interface) == 0)
        snprintf(err, errlen, "no such network interface (bind_interface)");
    else if (named)
        snprintf(err, errlen, "the interface does not have address %s (bind_interface)",
                 l->bind_address);
    else
        snprintf(err, errlen, "the interface has no %s address (bind_interface)",
                 l->domain == MQ_SERVER_IPV4   ? "IPv4"
                 : l->domain == MQ_SERVER_IPV6 ? "IPv6"
                                               : "IPv4 or IPv6");
    return -EADDRNOTAVAIL;
}

/* What listener 'l' binds: every address of its bind address, of its interface, or of the
 * loopback; with none of these the wildcard addresses (the caller binds one of them). */
static int listener_addrs(const mq_server_listener_t *l, addrs_t *as, char *err, size_t errlen)
{
    as->n = 0;
    if (l->loopback) {
        struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        if (family_wanted(l, AF_INET))
            add_addr(as, (struct sockaddr *)&v4, l->port);
        if (family_wanted(l, AF_INET6))
            add_addr(as, (struct sockaddr *)&v6, l->port);
        return 0;
    }
    struct addrinfo hints = {.ai_family = l->domain == MQ_SERVER_IPV4   ? AF_INET
                                          : l->domain == MQ_SERVER_IPV6 ? AF_INET6
                                                                        : AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", l->port);
    if (l->bind_address || !l->bind_interface) {
        int rc = getaddrinfo(l->bind_address, port, &hints, &res);
        if (rc != 0) {
            snprintf(err, errlen, "%s", gai_strerror(rc));
            return -EINVAL;
        }
    }
    int rc = 0;
    if (l->bind_interface) {
        rc = interface_addrs(l, res, as, err, errlen);
    } else {
        for (struct addrinfo *a = res; a; a = a->ai_next)
            if (family_wanted(l, a->ai_family))
                add_addr(as, a->ai_addr, l->port);
    }
    if (res)
        freeaddrinfo(res);
    return rc;
}

/* Opens listener 'li''s sockets into srv->socks (its port into srv->ports[li]). A listener
 * on all addresses is one IPv6 socket that takes IPv4 too, or on a host without IPv6 (a
 * container with it disabled) IPv4 alone; one on named addresses has a socket per address,
 * those of a family the host lacks left out (as mosquitto does). */
static int listen_on(mq_server_t *srv, unsigned li, char *err, size_t errlen)
{
    const mq_server_listener_t *l = &srv->opts.listeners[li];
    const char *what = l->bind_interface ? l->bind_interface
                       : l->bind_address ? l->bind_address
                       : l->loopback     ? "localhost"
                                         : "*";
    char why[160] = "";
    addrs_t as;
    int rc = listener_addrs(l, &as, why, sizeof(why));
    if (rc < 0) {
        snprintf(err, errlen, "%s:%u: %s", what, l->port, why);
        return rc;
    }
    bool wildcard = !l->bind_address && !l->bind_interface && !l->loopback;
    unsigned first = srv->n_socks;
    int fd = -EAFNOSUPPORT;
    uint16_t bound_port = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < as.n; i++) {
            struct sockaddr_storage *ss = &as.a[i];
            bool v6_first = wildcard && ss->ss_family == AF_INET6;
            if (pass == 0 ? !v6_first : v6_first)
                continue;
            if (wildcard && srv->n_socks > first)
                break; /* one socket takes all addresses */
            if (bound_port)
                set_port(ss, bound_port); /* port 0: every address on the one port given */
            socklen_t len =
                ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
            int r = listen_socket(l, (struct sockaddr *)ss, len, wildcard);
            if (r < 0 && not_here(r)) {
                fd = r; /* the last failure is the one told if none works */
                continue;
            }
            if (r < 0) {
                fd = r;
                goto fail;
            }
            MQ_ASSERT(srv->n_socks < MQ_SERVER_MAX_SOCKETS); /* MAX_ADDRS per listener */
            struct sockaddr_storage got;
            socklen_t gl = sizeof(got);
            if (!bound_port && getsockname(r, (struct sockaddr *)&got, &gl) == 0)
                bound_port = port_of(&got);
            srv->socks[srv->n_socks++] = (listen_sock_t){.fd = r, .listener = (uint8_t)li};
        }
    }
    if (srv->n_socks == first)
        goto fail;
    srv->ports[li] = bound_port ? bound_port : l->port;
    return 0;
fail:
    while (srv->n_socks > first)
        close(srv->socks[--srv->n_socks].fd);
    snprintf(err, errlen, "%s:%u: %s", what, l->port, strerror(-fd));
    return fd;
}

/* Listening socket 'k' on the acceptor's ring; the ACCEPT user_data carries its index. */
static void arm_accept(mq_server_t *srv, unsigned k)
{
    struct io_uring_sqe *sqe = mq_op_sqe(&srv->acc_ring);
    MQ_ASSERT(sqe != NULL); /* the acceptor's ring refuses every submission: it cannot run */
    io_uring_prep_multishot_accept(sqe, srv->socks[k].fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, mq_op_pack_index(k, MQ_OP_ACCEPT));
}

/* Counts a new connection against max_connections (whole broker and listener); false when
 * either is full (the counts are left unchanged). */
static bool admit(mq_server_t *srv, unsigned li)
{
    uint32_t n = (uint32_t)atomic_fetch_add_explicit(&srv->n_conns, 1, memory_order_relaxed);
    uint32_t nl =
        (uint32_t)atomic_fetch_add_explicit(&srv->listener_conns[li], 1, memory_order_relaxed);
    uint32_t lmax = srv->opts.listeners[li].max_connections;
    if ((srv->opts.max_connections && n >= srv->opts.max_connections) || (lmax && nl >= lmax)) {
        atomic_fetch_sub_explicit(&srv->n_conns, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&srv->listener_conns[li], 1, memory_order_relaxed);
        return false;
    }
    return true;
}

/* Hands a new connection to the next worker, round-robin (DESIGN.md: the worker that reads
 * its CONNECT moves it to the session's owner if need be). Acceptor thread. */
static void dispatch(mq_server_t *srv, int fd, unsigned li)
{
    if (!admit(srv, li)) {
        MQ_LOG(MQ_LOG_NOTICE, "Client connection refused: max_connections reached.");
        close(fd);
        return;
    }
    if (srv->opts.set_tcp_nodelay) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* best effort */
    }
    mq_mailbox_t *to = srv->boxes[srv->next_worker++ % srv->n_workers];
    mq_mail_t e = {.type = MQ_MAIL_NEW_CONN, .a = {(uint64_t)fd, li}};
    while (!mq_mailbox_post(to, &e)) {
        /* the acceptor has nothing better to do than wait for room: new connections are not
         * worth dropping, and back-pressure here slows accepting, which is right */
        sched_yield();
    }
    (void)mq_mailbox_wake(to, &srv->acc_ring); /* submitted with the next wait */
}

/* One accept completion on listening socket 'k'; returns true when its multishot accept has
 * ended for good (stopping), false while it is armed (or was re-armed). */
static bool on_accept_cqe(mq_server_t *srv, const struct io_uring_cqe *cqe, unsigned k,
                          bool cancelled)
{
    unsigned li = srv->socks[k].listener;
    if (cqe->res >= 0 && cancelled)
        close(cqe->res); /* accepted while stopping */
    else if (cqe->res >= 0)
        dispatch(srv, cqe->res, li);
    else if (cqe->res != -EINTR && cqe->res != -ECONNABORTED && cqe->res != -ECANCELED)
        MQ_LOG(MQ_LOG_WARN, "accept on port %u: %s", srv->ports[li], strerror(-cqe->res));
    if (cqe->flags & IORING_CQE_F_MORE)
        return false;
    if (cancelled)
        return true;
    arm_accept(srv, k); /* multishot ended (e.g. EMFILE): re-arm */
    return false;
}

/* Cancels every armed accept (one SQE, submitted with the next wait). */
static void cancel_accepts(mq_server_t *srv)
{
    struct io_uring_sqe *sqe = mq_op_sqe(&srv->acc_ring);
    MQ_ASSERT(sqe != NULL); /* as in arm_accept */
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, mq_op_pack(NULL, MQ_OP_MSG));
}

/* Runs until mq_server_stop() asks and every multishot accept has posted its last completion.
 * An armed accept holds a reference to the listening socket, and a ring's requests are torn
 * down asynchronously once the ring is gone (even after the process has exited): closing the
 * listener then left it listening for a few milliseconds, and a broker restarted at once on
 * the same port failed with EADDRINUSE. So the accepts are cancelled and reaped here, before
 * mq_server_stop() closes the listeners (tests/integration/test_restart.py). */
static void *acceptor_main(void *arg)
{
    mq_server_t *srv = arg;
    pthread_setname_np(pthread_self(), "starling-acc");
    for (unsigned k = 0; k < srv->n_socks; k++)
        arm_accept(srv, k);
    unsigned armed = srv->n_socks;
    bool cancelled = false;
    while (armed > 0) {
        if (!cancelled && atomic_load_explicit(&srv->acc_stop, memory_order_relaxed)) {
            cancel_accepts(srv);
            cancelled = true; /* what was re-armed before was submitted before the cancel */
        }
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
                continue; /* a wake-up (stop), the cancel, or a failed MSG_RING */
            if (on_accept_cqe(srv, cqe, mq_op_index(ud), cancelled))
                armed--;
        }
        io_uring_cq_advance(&srv->acc_ring, n);
    }
    return NULL;
}

/* Main thread (and the control paths): submits what the control ring has prepared, and
 * reaps its completions (only failures complete: wake-ups skip their success CQE). */
static void ctl_submit(mq_server_t *srv)
{
    io_uring_submit(&srv->ctl_ring);
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&srv->ctl_ring, &cqe) == 0) {
        if (cqe->res < 0)
            MQ_LOG(MQ_LOG_WARN, "control wake-up failed: %s", strerror(-cqe->res));
        io_uring_cqe_seen(&srv->ctl_ring, cqe);
    }
}

/* Wakes a worker from the control thread (it drains its inbox) or, with mb NULL, the
 * acceptor's ring 'ring_fd'. */
static void ctl_wake(mq_server_t *srv, mq_mailbox_t *mb, int ring_fd)
{
    pthread_mutex_lock(&srv->ctl_lock);
    bool armed =
        mb ? mq_mailbox_wake(mb, &srv->ctl_ring) : mq_mailbox_ring(&srv->ctl_ring, ring_fd);
    if (armed)
        ctl_submit(srv);
    pthread_mutex_unlock(&srv->ctl_lock);
}

/* A connection the verifier will never answer (shutdown): as a hand-off mail left over. */
static void drop_parked(void *arg, void *conn)
{
    (void)arg;
    mq_conn_t *c = conn;
    close(c->fd);
    mq_proto_drop_conn(c);
    mq_conn_free(c);
}

static void free_server(mq_server_t *srv)
{
    for (unsigned k = 0; k < srv->n_socks; k++)
        close(srv->socks[k].fd);
    for (unsigned i = 0; i < MQ_SERVER_MAX_LISTENERS; i++)
        mq_xport_listener_free(srv->xports[i]);
    mq_tindex_free(srv->ix);
    mq_shared_free(srv->shared);
    mq_auth_free(atomic_load_explicit(&srv->auth.cur, memory_order_relaxed)); /* threads gone */
    mq_epoch_free(srv->ep); /* runs what is still retired, older security states among it */
    mq_free(srv->workers);
    mq_free(srv->boxes);
    for (unsigned i = 0; i < MQ_SERVER_MAX_LISTENERS; i++)
        mq_free(srv->auto_id_prefix[i]);
    pthread_mutex_destroy(&srv->ctl_lock);
    sem_destroy(&srv->started);
    mq_free(srv);
}

static int bind_all(mq_server_t *srv, char *err, size_t errlen)
{
    for (unsigned i = 0; i < srv->opts.n_listeners; i++) {
        int rc = listen_on(srv, i, err, errlen);
        if (rc < 0)
            return rc;
        srv->n_listeners++;
        rc = mq_xport_listener_new(&srv->opts.listeners[i], &srv->xports[i], err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Starts the worker threads and waits until every one has set up its ring (or failed). */
static int start_workers(mq_server_t *srv, char *err, size_t errlen)
{
    mq_worker_env_t env = {.opts = &srv->opts,
                           .ix = srv->ix,
                           .shared = srv->shared,
                           .ep = srv->ep,
                           .boxes = srv->boxes,
                           .n_workers = srv->n_workers,
                           .n_conns = &srv->n_conns,
                           .listener_conns = srv->listener_conns,
                           .ports = srv->ports,
                           .xports = srv->xports,
                           .auth = &srv->auth,
                           .verifier = srv->verifier,
                           .started = &srv->started};
    for (unsigned i = 0; i < srv->n_workers; i++) {
        mq_worker_init(&srv->workers[i], &env, i);
        srv->boxes[i] = &srv->workers[i].inbox;
    }
    for (unsigned i = 0; i < srv->n_workers; i++)
        pthread_create(&srv->workers[i].thread, NULL, mq_worker_main, &srv->workers[i]);
    for (unsigned i = 0; i < srv->n_workers; i++)
        sem_wait(&srv->started);
    int rc = 0;
    for (unsigned i = 0; i < srv->n_workers && rc == 0; i++) {
        if (srv->workers[i].init_rc < 0) {
            rc = srv->workers[i].init_rc;
            snprintf(err, errlen, "%s", srv->workers[i].init_err);
        }
    }
    for (unsigned i = 0; i < srv->n_workers; i++) {
        if (rc < 0)
            atomic_store(&srv->workers[i].stop, true);
        sem_post(&srv->workers[i].go);
    }
    return rc;
}

/* flush_ms > 0: each worker holds input, flushes its connections' output and ends on its own
 * once all of it has gone or flush_ms have passed; 0: the workers end at once. */
static void stop_workers(mq_server_t *srv, unsigned flush_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* the workers' loop clock */
    uint64_t until = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u + flush_ms;
    for (unsigned i = 0; i < srv->n_workers; i++) {
        if (flush_ms)
            atomic_store(&srv->workers[i].drain_until_ms, until);
        else
            atomic_store(&srv->workers[i].stop, true);
        if (srv->workers[i].inbox.ring_fd >= 0)
            ctl_wake(srv, NULL, srv->workers[i].inbox.ring_fd);
    }
    for (unsigned i = 0; i < srv->n_workers; i++)
        pthread_join(srv->workers[i].thread, NULL);
    /* no worker submits any more: what the verifier still holds goes back to the inboxes or is
     * dropped, before the inboxes go */
    mq_auth_verifier_stop(srv->verifier);
    srv->verifier = NULL;
}

/* After stop_workers: every thread has stopped, the index and the sessions can go in any
 * order. */
static void fini_workers(mq_server_t *srv)
{
    for (unsigned i = 0; i < srv->n_workers; i++)
        mq_worker_fini(&srv->workers[i]);
}

/* Stores the retained messages the options hand over, before any thread serves; the
 * references are the server's to drop. */
static void restore_retained(mq_server_t *srv)
{
    mq_epoch_online(srv->ctl_ep);
    for (size_t i = 0; i < srv->opts.n_retained; i++) {
        (void)mq_tindex_retain(srv->ix, srv->opts.retained[i], srv->ctl_ep);
        mq_msg_unref(srv->opts.retained[i]);
    }
    mq_epoch_quiescent(srv->ctl_ep);
    mq_epoch_offline(srv->ctl_ep);
    srv->opts.retained = NULL;
    srv->opts.n_retained = 0;
}

int mq_server_start(mq_server_t **out, const mq_server_opts_t *opts, char *err, size_t errlen)
{
    mq_server_t *srv = mq_calloc(1, sizeof(*srv));
    srv->opts = *opts;
    for (unsigned i = 0; i < opts->n_listeners; i++) {
        const char *pre = opts->listeners[i].auto_id_prefix;
        srv->auto_id_prefix[i] = mq_strndup(pre, strlen(pre));
        srv->opts.listeners[i].auto_id_prefix = srv->auto_id_prefix[i];
    }
    srv->opts.auth = NULL; /* owned by the slot from here */
    /* NULL: no password file, no ACL, one domain */
    (void)mq_auth_publish(&srv->auth, opts->auth ? opts->auth : mq_auth_new(1));
    srv->auth.reload_signal = opts->reload_signal;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    srv->n_workers = opts->workers ? opts->workers : (unsigned)(cpus > 0 ? cpus : 1);
    if (srv->n_workers > MQ_TINDEX_MAX_WORKERS)
        srv->n_workers = MQ_TINDEX_MAX_WORKERS;
    pthread_mutex_init(&srv->ctl_lock, NULL);
    sem_init(&srv->started, 0, 0);
    /* after the workers' records: the control thread's, then the password verifier's */
    srv->ep = mq_epoch_new(srv->n_workers + 2);
    srv->ctl_ep = mq_epoch_register(srv->ep, srv->n_workers);
    mq_epoch_offline(srv->ctl_ep); /* it holds nothing shared between reloads */
    srv->ix = mq_tindex_new(srv->ep);
    if (opts->journal_base) /* retained changes numbered above what the journals held */
        mq_tindex_number_changes(srv->ix, opts->retain_seq_floor);
    restore_retained(srv);
    srv->shared = mq_shared_new();
    srv->workers = mq_calloc(srv->n_workers, sizeof(mq_worker_t));
    srv->boxes = mq_calloc(srv->n_workers, sizeof(*srv->boxes));
    int rc = bind_all(srv, err, errlen);
    if (rc < 0)
        goto fail;
    if ((rc = io_uring_queue_init(64, &srv->acc_ring, 0)) < 0) {
        snprintf(err, errlen, "io_uring_queue_init: %s", strerror(-rc));
        goto fail;
    }
    if ((rc = io_uring_queue_init(8, &srv->ctl_ring, 0)) < 0) {
        io_uring_queue_exit(&srv->acc_ring);
        snprintf(err, errlen, "io_uring_queue_init: %s", strerror(-rc));
        goto fail;
    }
    /* before the workers, which take its address; it answers only what they submit, into
     * inboxes set up by then */
    srv->verifier =
        mq_auth_verifier_start(&srv->auth, mq_epoch_register(srv->ep, srv->n_workers + 1),
                               srv->boxes, srv->n_workers, drop_parked, NULL, err, errlen);
    if (srv->verifier == NULL) {
        rc = -EAGAIN;
        io_uring_queue_exit(&srv->acc_ring);
        io_uring_queue_exit(&srv->ctl_ring);
        goto fail;
    }
    if ((rc = start_workers(srv, err, errlen)) < 0) {
        stop_workers(srv, 0);
        fini_workers(srv);
        io_uring_queue_exit(&srv->acc_ring);
        io_uring_queue_exit(&srv->ctl_ring);
        goto fail;
    }
    if (opts->kept) {
        size_t n = 0;
        for (unsigned i = 0; i < srv->n_workers; i++)
            n += srv->workers[i].restored;
        MQ_LOG(MQ_LOG_NOTICE, "Restored %zu persistent sessions.", n);
    }
    srv->opts.kept = NULL; /* the caller's, freed after this returns */
    pthread_create(&srv->acceptor, NULL, acceptor_main, srv);
    *out = srv;
    return 0;
fail:
    free_server(srv);
    return rc < 0 ? rc : -EINVAL;
}

void mq_server_halt(mq_server_t *srv, unsigned flush_ms)
{
    if (srv->halted)
        return;
    srv->halted = true;
    atomic_store(&srv->acc_stop, true);
    ctl_wake(srv, NULL, srv->acc_ring.ring_fd);
    pthread_join(srv->acceptor, NULL);
    for (unsigned k = 0; k < srv->n_socks; k++)
        close(srv->socks[k].fd);
    srv->n_socks = 0;
    srv->n_listeners = 0;
    stop_workers(srv, flush_ms);
    io_uring_queue_exit(&srv->acc_ring);
    io_uring_queue_exit(&srv->ctl_ring);
}

void mq_server_stop(mq_server_t *srv, unsigned flush_ms)
{
    mq_server_halt(srv, flush_ms);
    fini_workers(srv);
    free_server(srv);
}

void mq_server_each_session(mq_server_t *srv, mq_server_sess_cb *cb, void *arg)
{
    sem_t done;
    sem_init(&done, 0, 0);
    mq_proto_visit_t v = {cb, arg, &done};
    for (unsigned i = 0; i < srv->n_workers; i++) {
        if (srv->halted) { /* the threads are gone: their tables are this thread's now */
            mq_proto_visit(srv->workers[i].proto, &v);
            continue;
        }
        mq_mail_t e = {.type = MQ_MAIL_VISIT, .ptr = &v};
        while (!mq_mailbox_post(srv->boxes[i], &e))
            sched_yield(); /* the control thread may wait; workers never do */
        ctl_wake(srv, srv->boxes[i], -1);
    }
    if (!srv->halted) /* each worker answers within a loop turn (or when its inbox is dropped) */
        for (unsigned i = 0; i < srv->n_workers; i++)
            sem_wait(&done);
    sem_destroy(&done);
}

int mq_server_rotate_journals(mq_server_t *srv, const char *base, uint64_t gen)
{
    if (srv->halted || srv->opts.journal_base == NULL)
        return 0; /* nothing writes any more: the files it has hold every change */
    unsigned n = srv->n_workers;
    int *fds = mq_calloc(n, sizeof(*fds));
    char **paths = mq_calloc(n, sizeof(*paths));
    int rc = 0;
    for (unsigned i = 0; i < n; i++) {
        char path[4096];
        fds[i] = mq_jwriter_create(base, gen, i, path, sizeof(path));
        paths[i] = mq_strndup(path, strlen(path));
        if (fds[i] < 0 && rc == 0)
            rc = fds[i];
    }
    if (rc == 0) /* the new names durable before a worker acknowledges what it writes there */
        mq_jwriter_sync_dir(base);
    if (rc == 0) {
        sem_t done;
        sem_init(&done, 0, 0);
        mq_jwriter_rotation_t r = {fds, paths, gen, &done};
        for (unsigned i = 0; i < n; i++) {
            mq_mail_t e = {.type = MQ_MAIL_JOURNAL, .ptr = &r};
            while (!mq_mailbox_post(srv->boxes[i], &e))
                sched_yield();
            ctl_wake(srv, srv->boxes[i], -1);
        }
        for (unsigned i = 0; i < n; i++)
            sem_wait(&done);
        sem_destroy(&done);
    }
    for (unsigned i = 0; i < n; i++) {
        if (rc < 0 && fds[i] >= 0) {
            close(fds[i]);
            unlink(paths[i]);
        }
        mq_free(paths[i]);
    }
    mq_free(fds);
    mq_free(paths);
    return rc;
}

size_t mq_server_each_retained(mq_server_t *srv, mq_server_retained_cb *cb, void *arg)
{
    mq_epoch_online(srv->ctl_ep); /* what the walk is handed stays until the quiescent point */
    size_t n = mq_tindex_each_retained(srv->ix, cb, arg);
    mq_epoch_quiescent(srv->ctl_ep);
    mq_epoch_offline(srv->ctl_ep);
    return n;
}

uint64_t mq_server_retained_changes(const mq_server_t *srv)
{
    return mq_tindex_retained_changes(srv->ix);
}

int mq_server_reload_tls(mq_server_t *srv)
{
    int failed = 0;
    for (unsigned i = 0; i < srv->n_listeners; i++) {
        if (!mq_xport_listener_has_tls(srv->xports[i]))
            continue;
        char err[512];
        if (mq_xport_listener_reload(srv->xports[i], srv->ep, err, sizeof(err)) < 0) {
            MQ_LOG(MQ_LOG_ERROR,
                   "Error: TLS listener on port %u: %s; keeping the running "
                   "certificate and key.",
                   srv->ports[i], err);
            failed++;
        } else {
            MQ_LOG(MQ_LOG_NOTICE, "TLS listener on port %u: certificate and key reloaded.",
                   srv->ports[i]);
        }
    }
    return failed;
}

uint16_t mq_server_port(const mq_server_t *srv, unsigned i)
{
    return i < srv->n_listeners ? srv->ports[i] : 0;
}

const char *mq_server_socket(const mq_server_t *srv, unsigned k, unsigned *listener)
{
    if (k >= srv->n_socks)
        return NULL;
    *listener = srv->socks[k].listener;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(srv->socks[k].fd, (struct sockaddr *)&ss, &sl) < 0)
        return "ipv4/ipv6";
    if (ss.ss_family == AF_INET)
        return "ipv4";
    int only = 0;
    socklen_t ol = sizeof(only);
    (void)getsockopt(srv->socks[k].fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, &ol);
    const struct in6_addr *a = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
    return only || !IN6_IS_ADDR_UNSPECIFIED(a) ? "ipv6" : "ipv4/ipv6";
}

unsigned mq_server_workers(const mq_server_t *srv)
{
    return srv->n_workers;
}

void mq_server_stats(const mq_server_t *srv, mq_server_stats_t *total,
                     mq_server_stats_t *per_worker)
{
    memset(total, 0, sizeof(*total));
    for (unsigned i = 0; i < srv->n_workers; i++) {
        mq_stats_t s;
        mq_worker_read_stats(&srv->workers[i], &s);
        if (per_worker)
            per_worker[i] = s;
        mq_stats_add(total, &s);
    }
    total->disconnected =
        total->sessions > total->connections ? total->sessions - total->connections : 0;
    total->retained = mq_tindex_retained_count(srv->ix);
    total->retained_bytes = mq_tindex_retained_bytes(srv->ix);
    total->shared_groups = mq_shared_count(srv->shared);
}

void mq_server_publish(mq_server_t *srv, const char *topic, const void *payload, size_t len,
                       bool retain)
{
    mq_msg_t *msg = mq_msg_new(topic, strlen(topic), payload, len, 0, retain);
    if (msg == NULL)
        return;
    mq_mailbox_t *to = srv->boxes[0];
    mq_mail_t e = {.type = MQ_MAIL_PUBLISH, .ptr = msg};
    while (!mq_mailbox_post(to, &e))
        sched_yield(); /* the control thread may wait; workers never do */
    ctl_wake(srv, to, -1);
}

void mq_server_reload_begin(mq_server_t *srv)
{
    mq_auth_reload_begin(&srv->auth);
}

void mq_server_reload_end(mq_server_t *srv)
{
    mq_auth_reload_end(&srv->auth);
}

void mq_server_set_auth(mq_server_t *srv, mq_auth_t *auth)
{
    mq_epoch_online(srv->ctl_ep);
    mq_auth_retire(srv->ctl_ep, mq_auth_publish(&srv->auth, auth));
    mq_auth_reload_end(&srv->auth); /* the CONNECTs that waited for it go on */
    /* the old state is freed once every worker has passed a quiescent point, which a busy or
     * idle worker does within a loop turn: wait for it here (up to a second) rather than keep
     * it until the next reload */
    for (int i = 0; i < 100 && mq_epoch_pending(srv->ctl_ep) > 0; i++) {
        mq_epoch_quiescent(srv->ctl_ep);
        if (mq_epoch_pending(srv->ctl_ep) == 0)
            break;
        mq_epoch_offline(srv->ctl_ep);
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
        mq_epoch_online(srv->ctl_ep);
    }
    mq_epoch_offline(srv->ctl_ep);
}
