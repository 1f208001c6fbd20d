/* SPDX-License-Identifier: MIT */
/* bench/client.c - the connection engine: one epoll loop per thread, edge-triggered,
 * non-blocking sockets, packets built and parsed by the core codec. */
#include "bench/client.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "core/codec.h"
#include "core/mem.h"
#include "core/ws.h"

#define RLX memory_order_relaxed
#define READ_BUF_SIZE (64u * 1024u)
#define OUT_HIGH_WATER (256u * 1024u) /* unsent bytes past which a publisher waits */
#define MAX_HANDSHAKES 256u           /* per thread at once when no -R rate is set */
#define MAX_TRACKED_PUB (1u << 20)    /* publisher ids we keep sequence state for */
#define MAX_EVENTS 256
#define MAX_LOGGED_ERRORS 5u /* per thread; later errors are only counted */

/* CS_TLS: the TCP connect is done, the TLS handshake runs (--tls only) */
enum cstate { CS_IDLE, CS_CONNECTING, CS_TLS, CS_CONNACK, CS_SUBACK, CS_READY, CS_CLOSED };

typedef sb_track_t track_t;

typedef struct client {
    int fd;
    sb_tls_t *tls; /* NULL: plain TCP */
    uint8_t role;  /* enum sb_role */
    uint8_t state; /* enum cstate */
    bool in_flush; /* on the thread's flush list */
    bool was_ready;
    bool upgrading; /* ws://: the 101 answer to our upgrade request has not come yet */
    uint32_t gi;    /* global client index: client id and plan entry */
    const sb_plan_t *plan;
    mq_decoder_t dec;
    mq_ws_decoder_t *wsd; /* ws://: the frame decoder; NULL on plain TCP */
    mq_buf_t hs;          /* ws://: the 101 answer's head, gathered */
    mq_buf_t out;         /* encoded, unsent bytes start at out_off */
    size_t out_off;
    uint64_t t_start;  /* CLOCK_MONOTONIC ns of connect() */
    uint64_t seq;      /* publisher: messages sent */
    uint64_t acked;    /* publisher: PUBACK / PUBCOMP received */
    uint64_t next_due; /* publisher with -I: next send time, ns */
    uint16_t next_pid; /* last packet id used */
    uint16_t window;   /* publisher: QoS>0 in flight, -W capped by a v5 Receive Maximum */
    uint64_t *sent_ts; /* 'pub' at QoS>0: send time of sequence s at [s % inflight] */
    uint32_t one_pub;  /* subscriber: publisher tracked in 'one', UINT32_MAX = none */
    track_t one;
    track_t *many; /* subscriber hearing several publishers: indexed by publisher id */
    uint32_t n_many;
    struct client *next_flush;
} client_t;

struct sb_thread {
    sb_run_t *run;
    const sb_opts_t *o;
    uint32_t index;
    pthread_t tid;
    int ep;
    client_t *clients;
    uint32_t n;
    client_t **pubs; /* the publishers among 'clients', in schedule order */
    uint32_t n_pubs;
    uint32_t cursor; /* -I schedule: next publisher due */
    bool schedule_started;
    uint32_t next_connect; /* clients[next_connect] is the next to connect */
    uint32_t handshakes;   /* connects waiting for CONNACK */
    uint64_t next_connect_ns;
    uint64_t connect_gap_ns; /* 0 = no rate limit */
    uint64_t next_ping_ns;
    uint32_t n_logged;
    client_t *flush; /* clients with bytes to send */
    uint8_t *rbuf;
    uint8_t *payload;
    uint64_t mask_state; /* ws://: xorshift64 for the frames' masking keys */
    sb_stats_t st;
};

uint64_t sb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Single-writer counter update: the engine thread owns every counter in its sb_stats_t. */
static inline void bump(_Atomic uint64_t *c, uint64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, RLX) + d, RLX);
}

static inline void drop_one(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, RLX) - 1, RLX);
}

static void log_error(sb_thread_t *t, const client_t *c, const char *what, const char *detail)
{
    if (t->n_logged++ >= MAX_LOGGED_ERRORS)
        return;
    fprintf(stderr, "starling-bench: client %u: %s%s%s%s\n", c->gi, what, detail ? " (" : "",
            detail ? detail : "", detail ? ")" : "");
    if (t->n_logged == MAX_LOGGED_ERRORS)
        fprintf(stderr, "starling-bench: thread %u: further errors are only counted\n", t->index);
}

/* Closes 'c'. 'is_error': an unexpected end (counted in errors, and in conn_fail when the
 * client never became ready). */
static void close_client(sb_thread_t *t, client_t *c, bool is_error, const char *what,
                         const char *detail)
{
    if (c->state == CS_CLOSED || c->state == CS_IDLE)
        return;
    if (is_error) {
        log_error(t, c, what, detail);
        bump(&t->st.errors, 1);
        if (!c->was_ready)
            bump(&t->st.conn_fail, 1);
    }
    if (c->state == CS_CONNECTING || c->state == CS_TLS || c->state == CS_CONNACK)
        t->handshakes--;
    if (c->state == CS_READY)
        drop_one(&t->st.ready);
    if (c->tls)
        sb_tls_free(c->tls);
    c->tls = NULL;
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    c->state = CS_CLOSED;
    drop_one(&t->st.open);
}

/* Puts 'c' on the thread's flush list. */
static void want_flush(sb_thread_t *t, client_t *c)
{
    if (!c->in_flush) {
        c->in_flush = true;
        c->next_flush = t->flush;
        t->flush = c;
    }
}

/* ws://: a masking key per frame, as RFC 6455 §5.3 asks of clients (xorshift64: the bench
 * needs them cheap, not unpredictable). */
static void next_mask(sb_thread_t *t, uint8_t key[4])
{
    uint64_t x = t->mask_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t->mask_state = x;
    memcpy(key, &x, 4);
}

static void queue_packet(sb_thread_t *t, client_t *c, const mq_packet_t *pkt)
{
    size_t n = mq_codec_encoded_size(pkt, t->o->proto);
    MQ_ASSERT(n > 0);
    uint8_t key[4], hdr[MQ_WS_MAX_HEADER];
    size_t hn = 0;
    if (c->wsd) { /* one masked binary frame per packet, as browser clients send them */
        next_mask(t, key);
        hn = mq_ws_frame_header(hdr, MQ_WS_OP_BINARY, true, n, key);
    }
    mq_buf_reserve(&c->out, hn + n);
    memcpy(c->out.data + c->out.len, hdr, hn);
    uint8_t *p = c->out.data + c->out.len + hn;
    size_t w = mq_codec_encode(pkt, t->o->proto, p, c->out.cap - c->out.len - hn);
    MQ_ASSERT(w == n);
    if (c->wsd)
        mq_ws_mask(p, n, key, 0);
    c->out.len += hn + w;
    want_flush(t, c);
}

static void queue_ack(sb_thread_t *t, client_t *c, uint8_t type, uint16_t packet_id)
{
    mq_packet_t pkt = {.type = type};
    pkt.ack.packet_id = packet_id;
    queue_packet(t, c, &pkt);
}

/* send(2), through TLS when the client has it; *why: TLS's reason for EPROTO. */
static ssize_t io_send(client_t *c, const void *p, size_t len, const char **why)
{
    if (c->tls)
        return sb_tls_send(c->tls, p, len, why);
    return send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static ssize_t io_recv(client_t *c, void *p, size_t len, const char **why)
{
    if (c->tls)
        return sb_tls_recv(c->tls, p, len, why);
    return recv(c->fd, p, len, MSG_DONTWAIT);
}

/* Sends what 'c' has queued; on EAGAIN keeps the rest for the next EPOLLOUT edge. */
static void flush_client(sb_thread_t *t, client_t *c)
{
    while (c->out_off < c->out.len) {
        const char *why = NULL;
        ssize_t r = io_send(c, c->out.data + c->out_off, c->out.len - c->out_off, &why);
        if (r > 0) {
            c->out_off += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->out_off > c->out.len / 2) { /* keep the buffer from creeping forward */
                mq_buf_consume(&c->out, c->out_off);
                c->out_off = 0;
            }
            return;
        }
        close_client(t, c, true, "send failed", why ? why : strerror(errno));
        return;
    }
    c->out.len = c->out_off = 0;
}

static void flush_all(sb_thread_t *t)
{
    client_t *c = t->flush;
    t->flush = NULL;
    while (c) {
        client_t *next = c->next_flush;
        c->in_flush = false;
        if (c->state != CS_CLOSED && c->state != CS_CONNECTING && c->state != CS_TLS)
            flush_client(t, c);
        c = next;
    }
}

static void send_connect(sb_thread_t *t, client_t *c)
{
    char id[48];
    snprintf(id, sizeof(id), "sb%x-%c%u", (unsigned)getpid() & 0xfffffu, "cps"[c->role], c -> gi);
    mq_packet_t pkt = {.type = MQ_CONNECT};
    mq_connect_t *k = &pkt.connect;
    k->level = t->o->proto;
    k->clean_start = true;
    k->keep_alive = t->o->keepalive;
    k->client_id = mq_str(id);
    char user[256];
    if (t->o->username) {
        /* "%i" in the user name becomes the client index: a storm of distinct users */
        const char *u = t->o->username, *at = strstr(u, "%i");
        if (at) {
            snprintf(user, sizeof(user), "%.*s%u%s", (int)(at - u), u, c->gi, at + 2);
            u = user;
        }
        k->has_username = true;
        k->username = mq_str(u);
    }
    if (t->o->password) {
        k->has_password = true;
        k->password = mq_str(t->o->password);
    }
    queue_packet(t, c, &pkt);
    c->state = CS_CONNACK;
}

/* ws://: the opening handshake; CONNECT follows the 101 (on_upgrade_bytes). */
static void send_upgrade(sb_thread_t *t, client_t *c)
{
    const sb_opts_t *o = t->o;
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: c3RhcmxpbmctYmVuY2gtMQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
                     o->ws_path, o->host, o->port);
    mq_buf_append(&c->out, req, (size_t)n);
    want_flush(t, c);
    c->upgrading = true;
    c->state = CS_CONNACK; /* a handshake in progress, for close_client's accounting */
}

/* ws://: gathers the answer to the upgrade; returns the bytes of 'p' taken, and sends
 * CONNECT once the head is complete and says 101. */
static size_t on_upgrade_bytes(sb_thread_t *t, client_t *c, const uint8_t *p, size_t len)
{
    size_t used = 0;
    while (used < len && c->hs.len < 4096) {
        mq_buf_append(&c->hs, p + used++, 1);
        if (c->hs.len >= 4 && memcmp(c->hs.data + c->hs.len - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    bool done = c->hs.len >= 4 && memcmp(c->hs.data + c->hs.len - 4, "\r\n\r\n", 4) == 0;
    if (!done && c->hs.len < 4096)
        return used;
    if (!done || c->hs.len < 12 || memcmp(c->hs.data, "HTTP/1.1 101", 12) != 0) {
        char first[64];
        size_t n = 0;
        for (; n < c->hs.len && n < sizeof(first) - 1 && c->hs.data[n] != '\r'; n++)
            first[n] = (char)c->hs.data[n];
        first[n] = '\0';
        close_client(t, c, true, "WebSocket upgrade refused", first);
        return len;
    }
    mq_buf_fini(&c->hs);
    c->upgrading = false;
    send_connect(t, c);
    return used;
}

static void start_connect(sb_thread_t *t, client_t *c)
{
    const sb_opts_t *o = t->o;
    int fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->t_start = sb_now_ns();
    if (fd < 0) {
        c->state = CS_CLOSED;
        bump(&t->st.errors, 1);
        bump(&t->st.conn_fail, 1);
        log_error(t, c, "socket() failed",
                  errno == EMFILE ? "too many open files: raise "
                                    "ulimit -n or lower -c"
                                  : strerror(errno));
        return;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* best effort */
    c->fd = fd;
    c->state = CS_CONNECTING;
    bump(&t->st.open, 1);
    t->handshakes++;
    mq_decoder_init(&c->dec, MQ_ROLE_CLIENT, o->proto, 0);
    if (o->ws) {
        if (!c->wsd)
            c->wsd = mq_alloc(sizeof(*c->wsd));
        mq_ws_decoder_init(c->wsd, 0, MQ_WS_CLIENT);
    }
    if (connect(fd, (const struct sockaddr *)&o->addr, o->addr_len) < 0 && errno != EINPROGRESS) {
        close_client(t, c, true, "connect failed", strerror(errno));
        return;
    }
    /* registered after connect(): an unconnected socket polls as EPOLLHUP. The EPOLLOUT edge
     * then reports the outcome of the handshake. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        close_client(t, c, true, "epoll_ctl failed", strerror(errno));
}

static void connect_more(sb_thread_t *t, uint64_t now, int *timeout_ms)
{
    while (t->next_connect < t->n) {
        if (t->connect_gap_ns) {
            if (now < t->next_connect_ns) {
                uint64_t ms = (t->next_connect_ns - now + 999999u) / 1000000u;
                if ((int)ms < *timeout_ms)
                    *timeout_ms = (int)ms;
                return;
            }
            t->next_connect_ns += t->connect_gap_ns;
        } else if (t->handshakes >= MAX_HANDSHAKES) {
            return;
        }
        start_connect(t, &t->clients[t->next_connect++]);
    }
}

/* ---- subscribers: sequence tracking ------------------------------------------------------ */

static track_t *track_for(client_t *c, uint32_t pub)
{
    if (c->one_pub == pub)
        return &c->one;
    if (c->one_pub == UINT32_MAX && !c->many) {
        c->one_pub = pub;
        return &c->one;
    }
    if (pub >= MAX_TRACKED_PUB)
        return NULL;
    if (pub >= c->n_many) {
        uint32_t n = c->n_many ? c->n_many : 16;
        while (n <= pub)
            n *= 2;
        c->many = mq_realloc(c->many, n * sizeof(track_t));
        memset(c->many + c->n_many, 0, (n - c->n_many) * sizeof(track_t));
        c->n_many = n;
    }
    return &c->many[pub];
}

static void on_publish(sb_thread_t *t, client_t *c, const mq_packet_t *pkt, uint64_t now)
{
    const mq_publish_t *p = &pkt->publish;
    bump(&t->st.recv, 1);
    atomic_store_explicit(&t->st.last_recv_ns, now, RLX);
    if (p->qos == 1)
        queue_ack(t, c, MQ_PUBACK, p->packet_id);
    else if (p->qos == 2)
        queue_ack(t, c, MQ_PUBREC, p->packet_id);

    uint32_t magic, pub;
    uint64_t seq, ts;
    if (p->payload.len < SB_HDR_SIZE) {
        bump(&t->st.foreign, 1);
        return;
    }
    memcpy(&magic, p->payload.ptr, 4);
    memcpy(&pub, p->payload.ptr + 4, 4);
    memcpy(&seq, p->payload.ptr + 8, 8);
    memcpy(&ts, p->payload.ptr + 16, 8);
    if (magic != SB_MAGIC) {
        bump(&t->st.foreign, 1);
        return;
    }
    if (now >= ts)
        sb_hist_record(&t->st.lat, now - ts);
    track_t *k = track_for(c, pub);
    if (!k)
        return;
    if (c->plan->expect == SB_EXPECT_NONE && k->next == 0 && k->seen == 0)
        k->next = seq; /* a publisher we did not start: count from what we hear first */
    uint64_t gap, advanced;
    switch (sb_track_arrival(k, seq, &gap, &advanced)) {
    case SB_SEQ_NEW:
        bump(&t->st.lost, gap);
        if (pub < t->run->n_pubs)
            atomic_fetch_add_explicit(&t->run->pubs[pub].delivered, advanced, RLX);
        break;
    case SB_SEQ_DUP:
        bump(&t->st.dup, 1);
        break;
    case SB_SEQ_LATE: /* it was counted lost when the gap opened */
        bump(&t->st.reorder, 1);
        if (atomic_load_explicit(&t->st.lost, RLX) > 0)
            drop_one(&t->st.lost);
        break;
    }
}

/* ---- publishers -------------------------------------------------------------------------- */

static bool can_publish(const sb_thread_t *t, const client_t *c)
{
    if (c->state != CS_READY || c->out.len - c->out_off >= OUT_HIGH_WATER)
        return false;
    if (t->o->qos > 0 && c->seq - c->acked >= c->window)
        return false;
    if (t->run->fan > 0) {
        /* end-to-end window: bounded work queued in the broker, whatever the QoS */
        uint64_t d = atomic_load_explicit(&t->run->pubs[c->plan->pub_id].delivered, RLX);
        if (c->seq - d / t->run->fan >= t->run->e2e_window)
            return false;
    }
    return true;
}

static void publish_one(sb_thread_t *t, client_t *c)
{
    uint32_t magic = SB_MAGIC, pub = c->plan->pub_id;
    uint64_t now = sb_now_ns();
    memcpy(t->payload, &magic, 4);
    memcpy(t->payload + 4, &pub, 4);
    memcpy(t->payload + 8, &c->seq, 8);
    memcpy(t->payload + 16, &now, 8);
    mq_packet_t pkt = {.type = MQ_PUBLISH};
    pkt.publish.qos = t->o->qos;
    pkt.publish.retain = t->o->retain;
    if (t->o->qos > 0) {
        if (++c->next_pid == 0)
            c->next_pid = 1;
        pkt.publish.packet_id = c->next_pid;
    }
    pkt.publish.topic = mq_str(c->plan->topic);
    pkt.publish.payload = (mq_str_t){(const char *)t->payload, t->o->size};
    queue_packet(t, c, &pkt);
    if (c->sent_ts)
        c->sent_ts[c->seq % t->o->inflight] = now;
    c->seq++;
    atomic_store_explicit(&t->run->pubs[pub].sent, c->seq, RLX);
    bump(&t->st.sent, 1);
}

/* Publishes what is due; returns true when it may have more to do right away. */
static bool publish_due(sb_thread_t *t, uint64_t now, int *timeout_ms)
{
    if (t->n_pubs == 0)
        return false;
    if (t->o->interval_ns == 0) {
        bool any = false;
        for (uint32_t i = 0; i < t->n_pubs; i++) {
            client_t *c = t->pubs[i];
            for (uint32_t k = 0; k < t->o->inflight && can_publish(t, c); k++) {
                publish_one(t, c);
                any = true;
            }
        }
        if (!any && *timeout_ms > 1)
            *timeout_ms = 1; /* deliveries seen by other threads open the window */
        return any;
    }
    uint64_t period = t->o->interval_ns;
    if (!t->schedule_started) { /* spread the publishers evenly over one period */
        t->schedule_started = true;
        for (uint32_t i = 0; i < t->n_pubs; i++)
            t->pubs[i]->next_due = now + period * i / t->n_pubs;
    }
    for (uint32_t budget = 4096; budget > 0; budget--) {
        client_t *c = t->pubs[t->cursor];
        if (c->next_due > now) {
            uint64_t ms = (c->next_due - now + 999999u) / 1000000u;
            if ((int)ms < *timeout_ms)
                *timeout_ms = (int)ms;
            return false;
        }
        if (can_publish(t, c))
            publish_one(t, c);
        c->next_due += period;
        if (now > c->next_due + 1000000000ull) /* a second behind: stop catching up */
            c->next_due = now + period;
        t->cursor = (t->cursor + 1) % t->n_pubs;
    }
    return true;
}

/* A PUBACK or PUBCOMP (or a refusing PUBREC) ended the oldest outstanding publish: brokers
 * acknowledge in order [MQTT-4.6.0-2], so it is sequence 'acked'. */
static void on_acked(sb_thread_t *t, client_t *c, uint64_t now)
{
    if (c->sent_ts && c->acked < c->seq) {
        uint64_t ts = c->sent_ts[c->acked % t->o->inflight];
        if (now >= ts)
            sb_hist_record(&t->st.lat, now - ts); /* 'pub': latency = publish to ack */
    }
    c->acked++;
    bump(&t->st.acked, 1);
}

/* ---- input ------------------------------------------------------------------------------- */

static void mark_ready(sb_thread_t *t, client_t *c)
{
    c->state = CS_READY;
    c->was_ready = true;
    bump(&t->st.ready, 1);
}

static void send_subscribe(sb_thread_t *t, client_t *c)
{
    mq_sub_entry_t e = {.filter = mq_str(c->plan->topic), .qos = t->o->qos};
    mq_packet_t sub = {.type = MQ_SUBSCRIBE};
    sub.subscribe.packet_id = 1;
    sub.subscribe.n = 1;
    sub.subscribe.entries = &e;
    queue_packet(t, c, &sub);
}

/* Returns false when no CONNACK was awaited (the caller closes 'c' for it). */
static bool on_connack(sb_thread_t *t, client_t *c, const mq_packet_t *pkt, uint64_t now)
{
    char why[64];
    if (c->state != CS_CONNACK)
        return false;
    t->handshakes--;
    c->state = CS_SUBACK; /* past the handshake for close_client's accounting */
    if (pkt->connack.rc != 0) {
        snprintf(why, sizeof(why), "rc=0x%02x", pkt->connack.rc);
        close_client(t, c, true, "connection refused by the broker", why);
        return true;
    }
    bump(&t->st.conn_ok, 1);
    sb_hist_record(&t->st.connack, now - c->t_start);
    c->window = (uint16_t)t->o->inflight;
    if (t->o->scenario == SB_PUB && t->o->qos > 0 && c->role == SB_ROLE_PUB && !c->sent_ts)
        c->sent_ts = mq_calloc(t->o->inflight, sizeof(uint64_t));
    if (mq_props_has(&pkt->props, MQ_PROP_RECEIVE_MAXIMUM) &&
        pkt->props.receive_maximum < c->window)
        c->window = pkt->props.receive_maximum; /* [MQTT-3.3.4-7] */
    if (c->role == SB_ROLE_SUB)
        send_subscribe(t, c);
    else
        mark_ready(t, c);
    return true;
}

/* Returns false when no SUBACK was awaited (the caller closes 'c' for it). */
static bool on_suback(sb_thread_t *t, client_t *c, const mq_packet_t *pkt)
{
    char why[64];
    if (c->state != CS_SUBACK || c->role != SB_ROLE_SUB)
        return false;
    if (pkt->suback.n < 1 || pkt->suback.rcs[0] >= 0x80) {
        snprintf(why, sizeof(why), "rc=0x%02x", pkt->suback.n ? pkt->suback.rcs[0] : 0);
        close_client(t, c, true, "subscription refused", why);
        return true;
    }
    mark_ready(t, c);
    bump(&t->st.subs_ready, 1);
    return true;
}

/* A v5 acknowledgement with a failure reason code: the broker refused the publish. */
static void count_refused(sb_thread_t *t, client_t *c, uint8_t rc)
{
    char why[64];
    snprintf(why, sizeof(why), "rc=0x%02x", rc);
    log_error(t, c, "publish refused", why);
    bump(&t->st.errors, 1);
}

static void on_packet(sb_thread_t *t, client_t *c, const mq_packet_t *pkt, uint64_t now)
{
    char why[64];
    switch (pkt->type) {
    case MQ_CONNACK:
        if (on_connack(t, c, pkt, now))
            return;
        break;
    case MQ_SUBACK:
        if (on_suback(t, c, pkt))
            return;
        break;
    case MQ_PUBLISH:
        on_publish(t, c, pkt, now);
        return;
    case MQ_PUBACK:
    case MQ_PUBCOMP:
        if (pkt->ack.rc >= 0x80)
            count_refused(t, c, pkt->ack.rc);
        on_acked(t, c, now);
        return;
    case MQ_PUBREC:
        if (pkt->ack.rc >= 0x80) { /* v5: refused, the flow ends here [MQTT-4.3.3] */
            count_refused(t, c, pkt->ack.rc);
            on_acked(t, c, now);
            return;
        }
        queue_ack(t, c, MQ_PUBREL, pkt->ack.packet_id);
        return;
    case MQ_PUBREL:
        queue_ack(t, c, MQ_PUBCOMP, pkt->ack.packet_id);
        return;
    case MQ_PINGRESP:
    case MQ_UNSUBACK:
        return;
    case MQ_DISCONNECT:
        snprintf(why, sizeof(why), "rc=0x%02x", pkt->reason.rc);
        close_client(t, c, true, "disconnected by the broker", why);
        return;
    default:
        break;
    }
    snprintf(why, sizeof(why), "%s", mq_ptype_str(pkt->type));
    close_client(t, c, true, "unexpected packet", why);
}

static void feed(sb_thread_t *t, client_t *c, const uint8_t *p, size_t len, uint64_t now)
{
    while (len > 0 && c->state != CS_CLOSED) {
        mq_packet_t pkt;
        size_t used = 0;
        const char *why = NULL;
        enum mq_rc rc = mq_decoder_feed(&c->dec, p, len, &used, &pkt, &why);
        if (rc == MQ_RC_AGAIN)
            return;
        if (rc != MQ_RC_SUCCESS) {
            close_client(t, c, true, "bad packet from the broker", why);
            return;
        }
        p += used;
        len -= used;
        on_packet(t, c, &pkt, now);
    }
}

/* ws://: the frames in p[0..len) (unmasked from the server, decoded in place), then the
 * MQTT bytes they carry. */
static void feed_ws(sb_thread_t *t, client_t *c, uint8_t *p, size_t len)
{
    if (c->upgrading) {
        size_t used = on_upgrade_bytes(t, c, p, len);
        p += used;
        len -= used;
        if (c->upgrading || c->state == CS_CLOSED || len == 0)
            return;
    }
    mq_ws_rx_t rx;
    enum mq_ws_result res = mq_ws_decode(c->wsd, p, len, &rx);
    feed(t, c, p, rx.len, sb_now_ns());
    if (res != MQ_WS_OK && c->state != CS_CLOSED) {
        char why[96];
        snprintf(why, sizeof(why), "status %u%s%s", rx.code, rx.why ? ": " : "",
                 rx.why ? rx.why : "");
        int phase = atomic_load_explicit(&t->run->phase, memory_order_acquire);
        close_client(t, c, phase != SB_PHASE_STOP, "WebSocket closed by the broker", why);
    }
}

static void read_all(sb_thread_t *t, client_t *c)
{
    while (c->state != CS_CLOSED) {
        const char *why = NULL;
        ssize_t r = io_recv(c, t->rbuf, READ_BUF_SIZE, &why);
        if (r > 0) {
            if (c->wsd)
                feed_ws(t, c, t->rbuf, (size_t)r);
            else
                feed(t, c, t->rbuf, (size_t)r, sb_now_ns());
            continue;
        }
        if (r == 0) {
            int phase = atomic_load_explicit(&t->run->phase, memory_order_acquire);
            close_client(t, c, phase != SB_PHASE_STOP, "connection closed by the broker", NULL);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            close_client(t, c, true, "recv failed", why ? why : strerror(errno));
        return;
    }
}

/* The TCP connect has completed (or failed): TLS next, or the CONNECT. False when 'c' has
 * nothing more to do on this event. */
static bool on_connected(sb_thread_t *t, client_t *c, uint32_t events)
{
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        return false;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        close_client(t, c, true, "connect failed", strerror(err));
        return false;
    }
    if (t->run->tls_ctx == NULL) {
        if (t->o->ws)
            send_upgrade(t, c);
        else
            send_connect(t, c);
        return true;
    }
    c->tls = sb_tls_new(t->run->tls_ctx, c->fd, t->o->host);
    if (c->tls == NULL) {
        close_client(t, c, true, "TLS set-up failed", NULL);
        return false;
    }
    c->state = CS_TLS;
    return true;
}

/* Advances the TLS handshake; the CONNECT goes once it is done. */
static bool on_tls(sb_thread_t *t, client_t *c)
{
    const char *why = NULL;
    int r = sb_tls_handshake(c->tls, &why);
    if (r < 0)
        close_client(t, c, true, "TLS handshake failed", why);
    if (r <= 0)
        return false;
    send_connect(t, c);
    return true;
}

static void on_event(sb_thread_t *t, client_t *c, uint32_t events)
{
    if (c->state == CS_CLOSED)
        return;
    if (c->state == CS_CONNECTING && !on_connected(t, c, events))
        return;
    if (c->state == CS_TLS && !on_tls(t, c))
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        read_all(t, c);
    if (c->state != CS_CLOSED && (events & EPOLLOUT) && c->out_off < c->out.len && !c->in_flush) {
        c->in_flush = true;
        c->next_flush = t->flush;
        t->flush = c;
    }
}

/* ---- the loop ---------------------------------------------------------------------------- */

/* Messages the broker never delivered: those after the last one each subscriber saw. */
static void count_tail_loss(sb_thread_t *t)
{
    for (uint32_t i = 0; i < t->n; i++) {
        client_t *c = &t->clients[i];
        if (c->role != SB_ROLE_SUB || !c->was_ready || c->plan->expect == SB_EXPECT_NONE)
            continue;
        uint32_t first = 0, last = t->run->n_pubs;
        if (c->plan->expect >= 0) {
            first = (uint32_t)c->plan->expect;
            last = first + 1;
        }
        for (uint32_t p = first; p < last; p++) {
            uint64_t sent = atomic_load_explicit(&t->run->pubs[p].sent, RLX);
            track_t *k = track_for(c, p);
            if (k)
                bump(&t->st.lost, sb_track_tail_loss(k, sent));
        }
    }
}

static void shut_down(sb_thread_t *t)
{
    count_tail_loss(t);
    for (uint32_t i = 0; i < t->n; i++) {
        client_t *c = &t->clients[i];
        if (c->state == CS_READY || c->state == CS_SUBACK) {
            mq_packet_t pkt = {.type = MQ_DISCONNECT};
            queue_packet(t, c, &pkt);
        }
    }
    flush_all(t); /* best effort: a full socket buffer loses the DISCONNECT, not the result */
    for (uint32_t i = 0; i < t->n; i++)
        close_client(t, &t->clients[i], false, NULL, NULL);
}

/* Keeps connections alive when -k is set: a PINGREQ per ready client every keepalive / 2. */
static void send_pings(sb_thread_t *t)
{
    for (uint32_t i = 0; i < t->n; i++) {
        client_t *c = &t->clients[i];
        if (c->state == CS_READY || c->state == CS_SUBACK) {
            mq_packet_t pkt = {.type = MQ_PINGREQ};
            queue_packet(t, c, &pkt);
        }
    }
}

static void *thread_main(void *arg)
{
    sb_thread_t *t = arg;
    struct epoll_event evs[MAX_EVENTS];
    t->next_connect_ns = sb_now_ns();
    t->next_ping_ns = t->next_connect_ns + (uint64_t)t->o->keepalive * 500000000ull;
    for (;;) {
        /* acquire: pairs with the main thread's release store of each phase */
        int phase = atomic_load_explicit(&t->run->phase, memory_order_acquire);
        if (phase == SB_PHASE_STOP)
            break;
        uint64_t now = sb_now_ns();
        int timeout = 50;
        bool busy = false;
        if (t->o->keepalive && now >= t->next_ping_ns) {
            send_pings(t);
            t->next_ping_ns = now + (uint64_t)t->o->keepalive * 500000000ull; /* half of it */
        }
        if (phase == SB_PHASE_SETUP)
            connect_more(t, now, &timeout);
        else if (phase == SB_PHASE_RUN)
            busy = publish_due(t, now, &timeout);
        flush_all(t);
        /* release: the main thread reads our final 'sent' counts once we report DRAIN */
        atomic_store_explicit(&t->st.seen_phase, phase, memory_order_release);
        int n = epoll_wait(t->ep, evs, MAX_EVENTS, busy ? 0 : timeout);
        for (int i = 0; i < n; i++)
            on_event(t, evs[i].data.ptr, evs[i].events);
        flush_all(t);
    }
    shut_down(t);
    atomic_store_explicit(&t->st.seen_phase, SB_PHASE_STOP, memory_order_release);
    return NULL;
}

sb_thread_t *sb_thread_new(sb_run_t *run, uint32_t index)
{
    sb_thread_t *t = mq_calloc(1, sizeof(*t));
    t->run = run;
    t->o = run->o;
    t->index = index;
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    if (t->ep < 0)
        goto fail;
    for (uint32_t i = 0; i < run->n_clients; i++)
        t->n += run->plan[i].thread == index;
    t->clients = mq_calloc(t->n ? t->n : 1, sizeof(client_t));
    t->pubs = mq_calloc(t->n ? t->n : 1, sizeof(client_t *));
    for (uint32_t i = 0, k = 0; i < run->n_clients; i++) {
        if (run->plan[i].thread != index)
            continue;
        client_t *c = &t->clients[k++];
        c->fd = -1;
        c->gi = i;
        c->plan = &run->plan[i];
        c->role = run->plan[i].role;
        c->one_pub = UINT32_MAX;
        if (c->role == SB_ROLE_PUB)
            t->pubs[t->n_pubs++] = c;
        if (c->role == SB_ROLE_SUB && c->plan->expect >= 0)
            c->one_pub = (uint32_t)c->plan->expect;
    }
    if (t->o->conn_rate)
        t->connect_gap_ns = 1000000000ull * run->o->threads / t->o->conn_rate;
    t->rbuf = mq_alloc(READ_BUF_SIZE);
    t->mask_state = 0x9E3779B97F4A7C15ull ^ ((uint64_t)index << 32) ^ (uint64_t)getpid();
    t->payload = mq_alloc(t->o->size);
    memset(t->payload, 'x', t->o->size);
    sb_hist_reset(&t->st.lat);
    sb_hist_reset(&t->st.connack);
    return t;
fail:
    mq_free(t);
    return NULL;
}

int sb_thread_start(sb_thread_t *t)
{
    int r = pthread_create(&t->tid, NULL, thread_main, t);
    return -r;
}

void sb_thread_join(sb_thread_t *t)
{
    (void)pthread_join(t->tid, NULL); /* our own joinable thread: cannot fail */
}

const sb_stats_t *sb_thread_stats(const sb_thread_t *t)
{
    return &t->st;
}

void sb_thread_free(sb_thread_t *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->n; i++) {
        client_t *c = &t->clients[i];
        if (c->state != CS_IDLE)
            mq_decoder_fini(&c->dec);
        mq_buf_fini(&c->out);
        mq_buf_fini(&c->hs);
        mq_free(c->wsd);
        mq_free(c->many);
        mq_free(c->sent_ts);
    }
    close(t->ep);
    mq_free(t->clients);
    mq_free(t->pubs);
    mq_free(t->rbuf);
    mq_free(t->payload);
    mq_free(t);
}
