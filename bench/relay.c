/* SPDX-License-Identifier: MIT */
/* bench/relay.c - `starling-bench relay`: the cheapest thing that can stand in for a broker.
 *
 * It exists to show that the load generator is not the bottleneck: driven against the relay,
 * starling-bench must reach a much higher rate than against any broker. The relay does the
 * least MQTT work the scenarios need and nothing else: it frames packets by their fixed
 * header, answers CONNECT with CONNACK, SUBSCRIBE with SUBACK (granting the requested QoS)
 * and remembers the exact filter, PINGREQ with PINGRESP, acknowledges QoS 1/2 publishes, and
 * forwards each PUBLISH's topic and payload (as QoS 1 where publish and subscription are both
 * QoS 1 or 2, with a packet id of its own and nothing kept in flight; as QoS 0 otherwise) to the
 * connections subscribed to exactly that topic, or to a filter "PREFIX/#" or "PREFIX/+" whose
 * wildcard is its last level (fan-in's one subscriber; a list walked per PUBLISH, for a handful
 * of such filters). No other wildcards, no sessions, no retained messages, no validation. One
 * thread, epoll, edge-triggered, one write per connection per loop turn. Loopback only. */
#include "bench/relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/buf.h"
#include "core/codec.h"
#include "core/mem.h"

#define MAX_EVENTS 256
#define TABLE_BITS 16 /* topic table: 65536 buckets, chained */

typedef struct conn conn_t;
typedef struct sub {
    struct sub *next;
    uint64_t hash;
    conn_t *c;
    size_t len;  /* of the exact topic, or of a "PREFIX/#" or "PREFIX/+" filter's "PREFIX/" */
    char wild;   /* '#', '+', or 0 for an exact topic */
    uint8_t qos; /* granted */
    char topic[];
} sub_t;

struct conn {
    int fd;
    mq_buf_t in, out;
    bool dirty; /* on the flush list */
    conn_t *next_dirty;
    sub_t **mine; /* this connection's subscriptions (to drop on close) */
    size_t n_mine, cap_mine;
    uint16_t next_id; /* packet id of the next QoS 1 forward */
};

typedef struct relay {
    int ep;
    sub_t *table[1u << TABLE_BITS];
    sub_t *wild; /* the "PREFIX/#" and "PREFIX/+" filters */
    conn_t *dirty;
} relay_t;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void mark(relay_t *r, conn_t *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->next_dirty = r->dirty;
        r->dirty = c;
    }
}

/* The chain 's' is on: the wildcard list, or its exact topic's bucket. */
static sub_t **chain_of(relay_t *r, const sub_t *s)
{
    return s->wild ? &r->wild : &r->table[s->hash & ((1u << TABLE_BITS) - 1)];
}

static void conn_close(relay_t *r, conn_t *c)
{
    for (size_t i = 0; i < c->n_mine; i++) { /* unlink this connection's subscriptions */
        sub_t *s = c->mine[i];
        sub_t **pp = chain_of(r, s);
        while (*pp != s)
            pp = &(*pp)->next;
        *pp = s->next;
        mq_free(s);
    }
    mq_free(c->mine);
    close(c->fd);
    c->fd = -1; /* freed by the flush walk */
    mq_buf_fini(&c->in);
    mq_buf_fini(&c->out);
}

static void subscribe(relay_t *r, conn_t *c, const uint8_t *p, size_t len)
{
    /* body: packet id, then (u16 len, filter, options)* ; answer one code per filter */
    if (len < 2)
        return;
    uint8_t codes[256];
    size_t n = 0, off = 2;
    while (off + 2 <= len && n < sizeof(codes)) {
        size_t flen = (size_t)p[off] << 8 | p[off + 1];
        if (off + 2 + flen + 1 > len)
            break;
        sub_t *s = mq_alloc(sizeof(*s) + flen);
        const uint8_t *f = p + off + 2;
        bool w = flen >= 2 && f[flen - 2] == '/' && (f[flen - 1] == '#' || f[flen - 1] == '+');
        s->wild = w ? (char)f[flen - 1] : 0;
        s->len = s->wild ? flen - 1 : flen;
        memcpy(s->topic, f, s->len);
        s->hash = XXH3_64bits(s->topic, s->len);
        s->c = c;
        sub_t **head = chain_of(r, s);
        s->next = *head;
        *head = s;
        if (c->n_mine == c->cap_mine) {
            c->cap_mine = c->cap_mine ? 2 * c->cap_mine : 4;
            c->mine = mq_realloc(c->mine, c->cap_mine * sizeof(*c->mine));
        }
        c->mine[c->n_mine++] = s;
        s->qos = p[off + 2 + flen] & 3;
        codes[n++] = s->qos;
        off += 2 + flen + 1;
    }
    /* SUBACK: remaining length = packet id + codes */
    size_t rem = 2 + n;
    uint8_t hdr[7] = {0x90};
    size_t hl = 1 + mq_codec_write_varint(hdr + 1, (uint32_t)rem);
    hdr[hl++] = p[0];
    hdr[hl++] = p[1];
    mq_buf_append(&c->out, hdr, hl);
    mq_buf_append(&c->out, codes, n);
    mark(r, c);
}

/* What a PUBLISH is forwarded as, worked out once for all its subscribers: the fixed header
 * as QoS 0 and, when it came at QoS 1 or 2, as QoS 1. */
typedef struct fwd {
    const uint8_t *p; /* topic length, topic */
    size_t tlen;
    const uint8_t *body;
    size_t body_len;
    bool qos;
    uint8_t fh[2][5];
    size_t fl[2];
} fwd_t;

static void fwd_init(fwd_t *f, uint8_t hdr, const uint8_t *p, size_t tlen, size_t body_off,
                     size_t len)
{
    *f = (fwd_t){.p = p,
                 .tlen = tlen,
                 .body = p + body_off,
                 .body_len = len - body_off,
                 .qos = ((hdr >> 1) & 3) != 0};
    for (int q = 0; q <= (int)f->qos; q++) {
        f->fh[q][0] = (uint8_t)(0x30 | (q ? 2 : 0) | (hdr & 1));
        size_t rem = 2 + tlen + (q ? 2 : 0) + f->body_len;
        f->fl[q] = 1 + mq_codec_write_varint(f->fh[q] + 1, (uint32_t)rem);
    }
}

/* One PUBLISH to 's': QoS 1 when both the publish and the subscription are QoS 1 or 2 (with a
 * packet id of the relay's; the subscriber's PUBACK is read and ignored, nothing is kept in
 * flight), QoS 0 otherwise. */
static void forward(relay_t *r, const sub_t *s, const fwd_t *f)
{
    conn_t *d = s->c;
    int q1 = f->qos && s->qos;
    mq_buf_append(&d->out, f->fh[q1], f->fl[q1]);
    mq_buf_append(&d->out, f->p, 2 + f->tlen);
    if (q1) {
        if (++d->next_id == 0)
            d->next_id = 1;
        uint8_t id[2] = {(uint8_t)(d->next_id >> 8), (uint8_t)d->next_id};
        mq_buf_append(&d->out, id, 2);
    }
    mq_buf_append(&d->out, f->body, f->body_len);
    mark(r, d);
}

static void publish(relay_t *r, conn_t *c, uint8_t hdr, const uint8_t *p, size_t len)
{
    if (len < 2)
        return;
    size_t tlen = (size_t)p[0] << 8 | p[1];
    if (2 + tlen > len)
        return;
    uint8_t qos = (hdr >> 1) & 3;
    size_t body_off = 2 + tlen + (qos ? 2 : 0);
    if (body_off > len)
        return;
    if (qos) { /* PUBACK or PUBREC */
        uint8_t ack[4] = {qos == 1 ? 0x40 : 0x50, 2, p[2 + tlen], p[3 + tlen]};
        mq_buf_append(&c->out, ack, 4);
        mark(r, c);
    }
    fwd_t f;
    fwd_init(&f, hdr, p, tlen, body_off, len);
    uint64_t h = XXH3_64bits(p + 2, tlen);
    for (sub_t *s = r->table[h & ((1u << TABLE_BITS) - 1)]; s; s = s->next) {
        if (s->hash == h && s->len == tlen && memcmp(s->topic, p + 2, tlen) == 0)
            forward(r, s, &f);
    }
    for (sub_t *s = r->wild; s; s = s->next)
        if (s->len < tlen && memcmp(s->topic, p + 2, s->len) == 0 &&
            (s->wild == '#' || memchr(p + 2 + s->len, '/', tlen - s->len) == NULL))
            forward(r, s, &f);
}

/* Handles every whole packet in c->in; returns false to close. */
static bool process(relay_t *r, conn_t *c)
{
    size_t off = 0;
    while (c->in.len - off >= 2) {
        const uint8_t *b = c->in.data + off;
        size_t avail = c->in.len - off;
        uint32_t rem;
        int vl = mq_codec_read_varint(b + 1, avail - 1, &rem);
        if (vl < 0)
            return false; /* malformed length */
        if (vl == 0)
            break; /* need more */
        size_t i = 1 + (size_t)vl;
        if (avail < i + rem)
            break;
        const uint8_t *body = b + i;
        switch (b[0] >> 4) {
        case 1: /* CONNECT */
            mq_buf_append(&c->out, "\x20\x02\x00\x00", 4);
            mark(r, c);
            break;
        case 3:
            publish(r, c, b[0], body, rem);
            break;
        case 6: /* PUBREL -> PUBCOMP */
            if (rem >= 2) {
                uint8_t ack[4] = {0x70, 2, body[0], body[1]};
                mq_buf_append(&c->out, ack, 4);
                mark(r, c);
            }
            break;
        case 8:
            subscribe(r, c, body, rem);
            break;
        case 10: /* UNSUBSCRIBE -> UNSUBACK (subscriptions stay: the bench never relies on it) */
            if (rem >= 2) {
                uint8_t ack[4] = {0xb0, 2, body[0], body[1]};
                mq_buf_append(&c->out, ack, 4);
                mark(r, c);
            }
            break;
        case 12:
            mq_buf_append(&c->out, "\xd0\x00", 2);
            mark(r, c);
            break;
        case 14:
            return false;
        default: /* acknowledgements from subscribers: nothing to do */
            break;
        }
        off += i + rem;
    }
    mq_buf_consume(&c->in, off);
    return true;
}

static bool flush(conn_t *c)
{
    while (c->out.len > 0) {
        ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        mq_buf_consume(&c->out, (size_t)n);
    }
    return true;
}

int sb_relay_main(uint16_t port, bool quiet)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4096) < 0) {
        fprintf(stderr, "starling-bench relay: 127.0.0.1:%u: %s\n", port, strerror(errno));
        return 1;
    }
    relay_t *r = mq_calloc(1, sizeof(*r));
    r->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(r->ep, EPOLL_CTL_ADD, lfd, &ev);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (!quiet)
        fprintf(stderr, "starling-bench relay: listening on 127.0.0.1:%u (Ctrl-C stops)\n", port);
    struct epoll_event evs[MAX_EVENTS];
    while (!g_stop) {
        int n = epoll_wait(r->ep, evs, MAX_EVENTS, 200);
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            if (c == NULL) { /* accept everything pending */
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    conn_t *nc = mq_calloc(1, sizeof(*nc));
                    nc->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                                              .data.ptr = nc};
                    epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            if (c->fd < 0)
                continue;
            bool ok = true;
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    mq_buf_reserve(&c->in, 65536);
                    ssize_t got = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
                    if (got > 0) {
                        c->in.len += (size_t)got;
                        continue;
                    }
                    ok = got < 0 && (errno == EAGAIN || errno == EINTR);
                    break;
                }
                ok = ok && process(r, c);
            }
            if (evs[k].events & EPOLLOUT)
                mark(r, c);
            if (!ok) {
                conn_close(r, c);
                mark(r, c); /* the flush walk frees it */
            }
        }
        conn_t *list = r->dirty;
        r->dirty = NULL;
        for (conn_t *c = list, *next; c; c = next) {
            next = c->next_dirty;
            c->dirty = false;
            if (c->fd < 0) {
                mq_free(c);
                continue;
            }
            if (!flush(c)) {
                conn_close(r, c);
                mq_free(c);
            }
        }
    }
    close(lfd);
    close(r->ep);
    mq_free(r);
    return 0;
}
