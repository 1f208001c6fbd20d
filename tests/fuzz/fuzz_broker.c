/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_broker.c - libFuzzer target: the protocol layer of 3 workers, no sockets.
 *
 * net/proto.c, net/connect.c, net/client.c and the real mailboxes run unchanged over the fake
 * connection layer of fake_conn.c. The input is a program of operations by 6 fake clients:
 * open a connection on a worker, CONNECT (ids that collide, take-overs, clean or not, wills,
 * keep-alive, whole, split or cut), SUBSCRIBE, UNSUBSCRIBE, PUBLISH at every QoS, acks for
 * known and unknown ids, PINGREQ, DISCONNECT, raw bytes, the peer closing, one worker's turn,
 * the clock moving with keep-alive ticks, and settling every worker. Byte 0 picks limits.
 * Checked after every operation (abort on failure):
 *  - sessions: each lives on the worker its id hashes to; a session's connection is a live
 *    client of that worker pointing back at it; the online count matches; a clean session
 *    has a connection; in-flight ids are unique and within max_inflight; queued bytes add up;
 *  - every QoS 1/2 PUBLISH the broker sent and the client did not acknowledge is still in
 *    flight in its session (or the session ended as a clean one), in the right state; a
 *    resumed session re-sends all of them (DUP, or PUBREL); session-present is right;
 *  - everything the broker sends to a well-behaved client decodes;
 *  - once settled: nothing waits in a queue of an online session with room in its window;
 *  - after the input: no leak (LeakSanitizer), every message and session freed.
 * FUZZ_BROKER_LOG=1 in the environment prints the operations, the model's view and the
 * broker's log lines while replaying one input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/codec.h"
#include "core/epoch.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/msg.h"
#include "core/tindex.h"
#include "net/client.h"
#include "net/mailbox.h"
#include "net/auth.h"
#include "net/proto.h"
#include "tests/fuzz/fake_conn.h"

#define NW 3    /* workers */
#define NSLOT 6 /* fake clients */
#define NID 4   /* named client ids; id index NID is the empty id */
#define MAX_OWED 64
#define MAX_INTENT FAKE_CONN_MAX_SEGS

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_broker: invariant failed: " __VA_ARGS__);                        \
            fprintf(stderr, "\n");                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char *const ids[NID] = {"a", "b", "c", "dev-17"};
static const char *const topics[] = {"a/b", "a/c", "x", "$SYS/x", "a"};
static const char *const filters[] = {"a/b", "a/+", "#", "a/#", "+/b", "$SYS/#", "x", "a/#/b"};

typedef struct owed {
    uint16_t id;
    uint8_t qos;
    uint8_t state; /* 0: PUBLISH sent; 1: PUBREL sent (QoS 2) */
} owed_t;

/* What the harness knows of one named session, from the wire alone. */
typedef struct model {
    bool known;      /* false once a badly behaved client may have touched it */
    bool persistent; /* a session with clean session 0 exists */
    owed_t owed[MAX_OWED];
    uint32_t n_owed;
} model_t;

typedef struct intent {
    uint8_t type; /* an ack the harness sent (0: something else) */
    uint16_t id;
    uint32_t at; /* late: bytes of output the broker had written when it took the ack */
} intent_t;

typedef struct slot {
    mq_conn_t *c;     /* NULL: no connection */
    int id;           /* index into ids, NID = empty, -1 = no CONNECT sent */
    bool clean;       /* of the CONNECT sent */
    bool dirty;       /* the client wrote bytes that are not one whole valid packet */
    bool connacked;   /* a CONNACK accepted it */
    uint8_t level;    /* protocol of the CONNECT */
    mq_decoder_t dec; /* the broker's output, as the client reads it */
    intent_t intent[MAX_INTENT];
    uint32_t n_intent;
    owed_t resend[MAX_OWED];   /* owed when the CONNACK said session present: must come again */
    intent_t late[MAX_INTENT]; /* acks the broker took while output written before them was
                                  still unflushed: each applies once the harness has read
                                  that output, and before what was written after it (a
                                  PUBLISH that reuses the acknowledged packet id, say) */
    uint32_t n_late;
    uint32_t n_resend;
} slot_t;

typedef struct world {
    mq_server_opts_t o;
    mq_epoch_t *ep;
    mq_tindex_t *ix;
    mq_shared_t *shared;
    mq_auth_slot_t auth;
    mq_mailbox_t box[NW];
    mq_mailbox_t *boxes[NW];
    struct {
        mq_outbox_t ob;
        mq_epoch_rec_t *er;
        mq_conn_loop_t loop;
        mq_proto_t *p;
    } w[NW];
    slot_t s[NSLOT];
    model_t m[NID];
    uint64_t now_ms;
    const uint8_t *in;
    size_t len, pos;
} world_t;

static uint8_t next(world_t *x)
{
    return x->pos < x->len ? x->in[x->pos++] : 0;
}

static slot_t *slot_of(world_t *x, const mq_conn_t *c)
{
    for (int i = 0; i < NSLOT; i++)
        if (x->s[i].c == c)
            return &x->s[i];
    return NULL;
}

static void unknown_all(world_t *x)
{
    for (int i = 0; i < NID; i++)
        x->m[i].known = false;
}

static model_t *model_of(world_t *x, const slot_t *s)
{
    return s->id >= 0 && s->id < NID ? &x->m[s->id] : NULL;
}

static owed_t *find_owed(owed_t *v, uint32_t n, uint16_t id)
{
    for (uint32_t i = 0; i < n; i++)
        if (v[i].id == id)
            return &v[i];
    return NULL;
}

static void drop_owed(owed_t *v, uint32_t *n, owed_t *o)
{
    *o = v[--*n];
}

/* ---- what the broker sends ------------------------------------------------------------- */

static void on_connack(world_t *x, slot_t *s, const mq_packet_t *pkt)
{
    model_t *m = model_of(x, s);
    if (pkt->connack.rc != 0)
        return;
    CHECK(!s->connacked, "two CONNACKs on one connection");
    s->connacked = true;
    if (m == NULL)
        return;
    bool present = pkt->connack.session_present;
    /* a session outlives its connection: 3.1/3.1.1 without clean session; MQTT 5 only with
     * a Session Expiry Interval, which the harness's v5 CONNECTs do not set */
    bool keeps = !s->clean && s->level != MQ_PROTO_5;
    if (s->level == MQ_PROTO_31) { /* 3.1's CONNACK has no session-present flag */
        CHECK(!present, "session present sent to a 3.1 client");
        present = keeps && m->persistent;
        if (!s->clean && !m->known)
            return; /* resumed or not: the harness cannot tell */
    }
    if (m->known)
        CHECK(present == (!s->clean && m->persistent), "session present %d for id %s", present,
              ids[s->id]);
    if (s->clean || !present) {
        m->n_owed = 0;
        m->known = true;
    }
    m->persistent = keeps;
    if (m->known && present) { /* everything owed must come again [MQTT-4.4.0-1] */
        memcpy(s->resend, m->owed, m->n_owed * sizeof(owed_t));
        s->n_resend = m->n_owed;
    }
}

static void on_sent(world_t *x, slot_t *s, const mq_packet_t *pkt)
{
    model_t *m = model_of(x, s);
    if (m == NULL || !m->known || !s->connacked)
        return;
    uint16_t id = pkt->type == MQ_PUBLISH ? pkt->publish.packet_id : pkt->ack.packet_id;
    owed_t *r = find_owed(s->resend, s->n_resend, id);
    if (pkt->type == MQ_PUBLISH && pkt->publish.qos > 0) {
        if (r && r->state == 0 && pkt->publish.dup)
            drop_owed(s->resend, &s->n_resend, r);
        owed_t *o = find_owed(m->owed, m->n_owed, id);
        CHECK(o == NULL || pkt->publish.dup, "packet id %u reused while in flight", id);
        if (o == NULL && m->n_owed < MAX_OWED)
            m->owed[m->n_owed++] = (owed_t){id, pkt->publish.qos, 0};
    } else if (pkt->type == MQ_PUBREL) {
        if (r && r->state == 1)
            drop_owed(s->resend, &s->n_resend, r);
        owed_t *o = find_owed(m->owed, m->n_owed, id);
        if (o && o->qos == 2)
            o->state = 1;
    }
}

static void apply_ack(world_t *x, slot_t *s, intent_t in);

static void on_output(void *arg, mq_conn_t *c, const uint8_t *p, size_t len)
{
    world_t *x = arg;
    slot_t *s = slot_of(x, c);
    if (s == NULL)
        return;
    if (s->dirty) { /* what a misbehaving client gets is not modelled */
        if (!s->connacked)
            unknown_all(x); /* its CONNECT, whatever id it named, may have been taken */
        return;
    }
    size_t done = 0; /* bytes of this output read */
    uint32_t li = 0; /* late acks applied */
    while (len > 0) {
        mq_packet_t pkt;
        size_t used;
        const char *why = NULL;
        enum mq_rc rc = mq_decoder_feed(&s->dec, p, len, &used, &pkt, &why);
        if (rc == MQ_RC_AGAIN)
            break;
        CHECK(rc == MQ_RC_SUCCESS, "broker output does not decode: %s", why ? why : "?");
        p += used;
        len -= used;
        done += used;
        if (pkt.type == MQ_CONNACK)
            on_connack(x, s, &pkt);
        else if (pkt.type == MQ_PUBLISH || pkt.type == MQ_PUBREL)
            on_sent(x, s, &pkt);
        for (; li < s->n_late && s->late[li].at <= done; li++)
            apply_ack(x, s, s->late[li]);
    }
    CHECK(s->n_resend == 0, "a session resumed without re-sending packet id %u", s->resend[0].id);
    for (; li < s->n_late; li++)
        apply_ack(x, s, s->late[li]);
    s->n_late = 0;
}

/* An ack the broker took: the model follows. */
static void apply_ack(world_t *x, slot_t *s, intent_t in)
{
    model_t *m = model_of(x, s);
    if (s->dirty || !m || !m->known)
        return;
    owed_t *o = find_owed(m->owed, m->n_owed, in.id);
    if (o == NULL)
        return;
    if ((in.type == MQ_PUBACK && o->qos == 1) || (in.type == MQ_PUBCOMP && o->state == 1))
        drop_owed(m->owed, &m->n_owed, o);
    else if (in.type == MQ_PUBREC && o->qos == 2)
        o->state = 1;
}

/* A receive segment went up. An ack in it counts after what the broker had already written
 * to the client (a re-sent PUBLISH, say): the harness reads that at the flush. */
static void on_delivered(void *arg, mq_conn_t *c, int r)
{
    world_t *x = arg;
    slot_t *s = slot_of(x, c);
    if (s == NULL || s->n_intent == 0)
        return;
    intent_t in = s->intent[0];
    memmove(s->intent, s->intent + 1, (--s->n_intent) * sizeof(intent_t));
    if (getenv("FUZZ_BROKER_LOG"))
        fprintf(stderr, "delivered: intent %u id %u r %d state %u dirty %d\n", in.type, in.id, r,
                c->state, s->dirty);
    if (in.type == 0 || r != MQ_CONN_OK || c->state == MQ_CONN_CLOSING)
        return;
    if (c->out.len > 0 && s->n_late < MAX_INTENT) {
        in.at = (uint32_t)c->out.len;
        s->late[s->n_late++] = in;
    } else
        apply_ack(x, s, in);
}

static void on_freed(void *arg, mq_conn_t *c)
{
    world_t *x = arg;
    slot_t *s = slot_of(x, c);
    if (s == NULL)
        return;
    mq_decoder_fini(&s->dec);
    s->c = NULL;
}

/* ---- invariants -------------------------------------------------------------------------- */

static bool client_on_loop(const mq_conn_loop_t *l, const mq_conn_t *c)
{
    for (const mq_conn_t *k = l->conns; k; k = k->next)
        if (k == c)
            return true;
    return false;
}

static void check_window(world_t *x, const mq_sess_t *s, bool settled)
{
    CHECK(s->n_inflight <= x->o.limits.max_inflight, "%s: %u in flight", s->client_id,
          s->n_inflight);
    for (uint32_t i = 0; i < s->n_inflight; i++) {
        CHECK(s->inflight[i].packet_id != 0, "%s: packet id 0 in flight", s->client_id);
        CHECK((s->inflight[i].msg == NULL) == (s->inflight[i].state == MQ_OUT_PUBREL),
              "%s: in-flight message and state disagree", s->client_id);
        for (uint32_t k = i + 1; k < s->n_inflight; k++)
            CHECK(s->inflight[i].packet_id != s->inflight[k].packet_id,
                  "%s: packet id %u twice in flight", s->client_id, s->inflight[i].packet_id);
    }
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < mq_sess_queued(s); i++)
        bytes += mq_sess_queued_at(s, i)->msg->payload_len;
    CHECK(bytes == mq_sess_queued_bytes(s), "%s: queued bytes %llu, counted %llu", s->client_id,
          (unsigned long long)bytes, (unsigned long long)mq_sess_queued_bytes(s));
    if (x->o.limits.max_queued)
        CHECK(mq_sess_queued(s) <= x->o.limits.max_queued, "%s: queue over max_queued",
              s->client_id);
    if (settled && s->out && mq_sess_queued(s) > 0) { /* settled: every output went out */
        const mq_outmsg_t *head = mq_sess_queued_at(s, 0);
        CHECK(head->qos > 0 && s->n_inflight >= x->o.limits.max_inflight,
              "%s: %u queued with room in the window (%u in flight)", s->client_id,
              mq_sess_queued(s), s->n_inflight);
    }
}

static uint64_t check_sessions(world_t *x, unsigned w, bool settled)
{
    mq_proto_t *p = x->w[w].p;
    uint64_t online = 0;
    size_t pos = 0;
    for (mq_sess_t *s; (s = mq_route_next(p->route, &pos)) != NULL;) {
        CHECK(XXH3_64bits(s->client_id, s->id_len) % NW == w, "%s on worker %u", s->client_id, w);
        mq_conn_t *sc = mq_conn_of_out(s->out);
        CHECK((sc != NULL) == s->is_online, "%s: attachment fields disagree", s->client_id);
        CHECK(!s->clean || sc, "%s: clean session without a connection", s->client_id);
        if (sc) {
            online++;
            client_t *cl = client_of(sc);
            CHECK(client_on_loop(&x->w[w].loop, sc), "%s: connection not on its worker",
                  s->client_id);
            CHECK(cl->sess == s && s->out == &cl->conn.out, "%s: connection points elsewhere",
                  s->client_id);
        }
        check_window(x, s, settled);
    }
    CHECK(online == p->n_online, "worker %u: %llu online, counted %llu", w,
          (unsigned long long)online, (unsigned long long)p->n_online);
    for (mq_conn_t *c = x->w[w].loop.conns; c; c = c->next) {
        client_t *cl = client_of(c);
        CHECK(cl->sess == NULL || cl->sess->out == &c->out,
              "a client's session is attached elsewhere");
        CHECK(cl->sess == NULL || c->state != MQ_CONN_PRE, "a session on a connection in PRE");
    }
    return online;
}

/* Every QoS 1/2 message sent and not acknowledged is still in flight, in its state. */
static void check_owed(world_t *x)
{
    for (int i = 0; i < NID; i++) {
        model_t *m = &x->m[i];
        if (!m->known)
            continue;
        uint64_t h = XXH3_64bits(ids[i], strlen(ids[i]));
        mq_sess_t *s = mq_route_find(x->w[h % NW].p->route, ids[i], strlen(ids[i]), h);
        if (s == NULL) {
            CHECK(!m->persistent, "persistent session %s lost", ids[i]);
            m->n_owed = 0; /* a clean session ended with its connection */
            continue;
        }
        for (uint32_t k = 0; k < m->n_owed; k++) {
            const owed_t *o = &m->owed[k];
            bool found = false;
            for (uint32_t j = 0; j < s->n_inflight && !found; j++)
                found = s->inflight[j].packet_id == o->id && s->inflight[j].qos == o->qos &&
                        s->inflight[j].state == o->state;
            CHECK(found, "%s: QoS %u message %u (state %u) sent, not acknowledged, not in flight",
                  ids[i], o->qos, o->id, o->state);
        }
    }
}

static void check_all(world_t *x, bool settled)
{
    for (unsigned w = 0; w < NW; w++)
        (void)check_sessions(x, w, settled);
    check_owed(x);
}

/* ---- the workers ------------------------------------------------------------------------- */

static void on_mail(world_t *x, unsigned w, mq_mail_t *e)
{
    switch (e->type) {
    case MQ_MAIL_HANDOFF:
        mq_conn_link(&x->w[w].loop, e->ptr);
        mq_proto_on_handoff(x->w[w].p, e->ptr);
        break;
    case MQ_MAIL_DELIVER:
        if (e->n > MQ_MAIL_INLINE) {
            uint64_t *fids = (uint64_t *)(uintptr_t)e->a[0];
            mq_proto_deliver(x->w[w].p, e->ptr, fids, e->n);
            mq_free(fids);
        } else {
            mq_proto_deliver(x->w[w].p, e->ptr, e->a, e->n);
        }
        mq_msg_unref(e->ptr);
        break;
    default:
        CHECK(0, "unexpected mail %u", e->type);
    }
}

/* One turn of worker 'w', in net/worker.c's order; true when anything happened. */
static bool turn(world_t *x, unsigned w)
{
    bool any = false;
    mq_mailbox_begin_drain(&x->box[w]);
    mq_mail_t e;
    while (mq_mailbox_take(&x->box[w], &e)) {
        on_mail(x, w, &e);
        any = true;
    }
    any |= fake_loop_turn(&x->w[w].loop);
    mq_outbox_retry(&x->w[w].ob);
    for (unsigned k = 0; k < NW; k++)
        any |= x->w[w].ob.spill[k].len > 0;
    x->w[w].ob.wake_mask = 0; /* every inbox is looked at by the next turn anyway */
    mq_epoch_quiescent(x->w[w].er);
    return any;
}

static void settle(world_t *x)
{
    int rounds = 0;
    for (bool any = true; any; rounds++) {
        CHECK(rounds < 1000, "the workers never settle");
        any = false;
        for (unsigned w = 0; w < NW; w++)
            any |= turn(x, w);
    }
    check_all(x, true);
}

static void tick(world_t *x, uint64_t ms)
{
    x->now_ms += ms;
    for (unsigned w = 0; w < NW; w++) {
        x->w[w].loop.now_ms = x->now_ms;
        mq_proto_tick(x->w[w].p);
    }
}

static void drop_mail(mq_mail_t *m)
{
    if (m->type == MQ_MAIL_HANDOFF) {
        mq_proto_drop_conn(m->ptr);
        mq_conn_free(m->ptr);
        return;
    }
    mq_msg_unref(m->ptr);
    if (m->n > MQ_MAIL_INLINE)
        mq_free((void *)(uintptr_t)m->a[0]);
}

static void release_conn(void *arg, mq_conn_t *c)
{
    (void)arg;
    mq_proto_drop_conn(c);
}

static void discard_log(void *arg, enum mq_log_type type, time_t when, const char *line, size_t len)
{
    (void)arg, (void)type, (void)when, (void)line, (void)len;
}

static void set_opts(world_t *x, uint8_t a, uint8_t b)
{
    mq_server_opts_t *o = &x->o;
    o->listeners[0].allow_anonymous = true;
    o->listeners[0].auto_id_prefix = "auto-";
    o->listeners[0].max_topic_alias = 10;
    o->connect_timeout_s = 10;
    o->limits.max_inflight = (uint16_t)(1 + a % 3);
    o->limits.max_queued = (a >> 2) % 4;
    o->limits.max_queued_bytes = (a >> 4) & 1 ? 6 : 0;
    o->limits.out_high_water = (a >> 5) & 1 ? 48 : 0;
    o->upgrade_outgoing_qos = (a >> 6) & 1;
    o->message_size_limit = (a >> 7) & 1 ? 2 : 0;
    o->max_qos = b % 3 == 0 ? 1 : 2;
    o->max_keepalive = b & 4 ? 30 : 0;
    o->retain_available = !(b & 8);
    o->listeners[0].allow_zero_length_clientid = !(b & 16);
    o->queue_full_timeout_s = b & 32 ? 2 : 0;
}

static void world_init(world_t *x)
{
    static const fake_conn_cb_t cb0 = {0};
    fake_conn_cb_t cb = cb0;
    cb.arg = x;
    cb.on_output = on_output;
    cb.on_freed = on_freed;
    cb.on_delivered = on_delivered;
    x->ep = mq_epoch_new(NW);
    x->ix = mq_tindex_new(x->ep);
    x->shared = mq_shared_new();
    (void)mq_auth_publish(&x->auth, mq_auth_new(1)); /* no password file, no ACL */
    for (unsigned w = 0; w < NW; w++) {
        mq_mailbox_init(&x->box[w], 4); /* tiny inboxes: the spill lists get used */
        x->boxes[w] = &x->box[w];
    }
    for (unsigned w = 0; w < NW; w++) {
        mq_outbox_init(&x->w[w].ob, x->boxes, NW, w);
        x->w[w].er = mq_epoch_register(x->ep, w);
        mq_proto_env_t pe = {.opts = &x->o,
                             .ix = x->ix,
                             .shared = x->shared,
                             .auth = &x->auth,
                             .ep = x->w[w].er,
                             .outbox = &x->w[w].ob,
                             .loop = &x->w[w].loop,
                             .self = w,
                             .n_workers = NW};
        x->w[w].p = mq_proto_new(&pe);
        fake_loop_init(&x->w[w].loop, mq_proto_handler(x->w[w].p), mq_proto_conn_size(), &cb);
    }
}

static void world_fini(world_t *x)
{
    for (int i = 0; i < NSLOT; i++) {
        if (x->s[i].c)
            mq_decoder_fini(&x->s[i].dec);
        x->s[i].c = NULL;
    }
    for (unsigned w = 0; w < NW; w++)
        fake_loop_fini(&x->w[w].loop, release_conn, NULL);
    for (unsigned w = 0; w < NW; w++) {
        mq_outbox_fini(&x->w[w].ob, drop_mail);
        mq_mailbox_fini(&x->box[w], drop_mail);
    }
    for (unsigned w = 0; w < NW; w++)
        mq_proto_free(x->w[w].p);
    mq_tindex_free(x->ix);
    mq_shared_free(x->shared);
    mq_auth_free(atomic_load_explicit(&x->auth.cur, memory_order_relaxed));
    mq_epoch_free(x->ep);
}

/* ---- what the clients do ----------------------------------------------------------------- */

static void push_intent(slot_t *s, uint8_t type, uint16_t id)
{
    if (s->n_intent < MAX_INTENT)
        s->intent[s->n_intent++] = (intent_t){.type = type, .id = id};
}

/* The client's stream stops being one of whole valid packets: what the broker makes of it
 * is not modelled any more. */
static void make_dirty(world_t *x, slot_t *s)
{
    s->dirty = true;
    if (!s->connacked)
        unknown_all(x); /* garbage may still parse as a CONNECT for anyone */
    else if (model_of(x, s))
        model_of(x, s)->known = false;
}

/* Writes a packet whole (mode 0-1), split in two receives (2) or cut short (3: the stream
 * is then broken). An ack is remembered with the receive that completes it, to follow it
 * into the model. */
static void write_pkt(world_t *x, slot_t *s, const mq_packet_t *pkt, uint8_t proto, int mode)
{
    mq_buf_t b;
    mq_buf_init(&b);
    if (s->c && mq_codec_append(&b, pkt, proto) > 0) {
        size_t cut = b.len > 1 ? 1 + next(x) % (b.len - 1) : b.len;
        bool is_ack = pkt->type >= MQ_PUBACK && pkt->type <= MQ_PUBCOMP;
        if (mode == 3) {
            if (fake_conn_write(s->c, b.data, cut)) {
                push_intent(s, 0, 0);
                make_dirty(x, s);
            }
        } else if (mode == 2 && b.len > 1) {
            if (fake_conn_write(s->c, b.data, cut)) {
                push_intent(s, 0, 0);
                if (fake_conn_write(s->c, b.data + cut, b.len - cut)) /* completes it */
                    push_intent(s, is_ack ? pkt->type : 0, is_ack ? pkt->ack.packet_id : 0);
                else
                    make_dirty(x, s); /* half a packet went */
            }
        } else if (fake_conn_write(s->c, b.data, b.len)) {
            push_intent(s, is_ack ? pkt->type : 0, is_ack ? pkt->ack.packet_id : 0);
        }
    }
    mq_buf_fini(&b);
}

static void op_open(world_t *x, slot_t *s)
{
    unsigned w = next(x) % NW;
    if (s->c) {
        fake_conn_peer_close(s->c);
        return;
    }
    memset(s, 0, sizeof(*s));
    s->id = -1;
    s->c = fake_conn_new(&x->w[w].loop);
    mq_proto_on_accept(x->w[w].p, s->c);
    mq_decoder_init(&s->dec, MQ_ROLE_CLIENT, MQ_PROTO_311, 0);
}

static void op_connect(world_t *x, slot_t *s)
{
    static const uint16_t keep[4] = {0, 1, 60, 65535};
    uint8_t f = next(x), g = next(x);
    mq_packet_t pkt = {.type = MQ_CONNECT};
    mq_connect_t *cp = &pkt.connect;
    int id = f % (NID + 1);
    cp->level = g % 8 == 0 ? MQ_PROTO_5 : g % 8 == 1 ? MQ_PROTO_31 : MQ_PROTO_311;
    cp->clean_start = (f >> 3) & 1;
    cp->keep_alive = keep[(f >> 5) & 3];
    cp->client_id = id < NID ? (mq_str_t){ids[id], strlen(ids[id])} : (mq_str_t){"", 0};
    if ((f >> 4) & 1) {
        cp->has_will = true;
        cp->will_qos = (g >> 5) % 3;
        cp->will_retain = (g >> 7) & 1;
        cp->will_topic = (mq_str_t){topics[(g >> 3) % 3], strlen(topics[(g >> 3) % 3])};
        cp->will_payload = (mq_str_t){"will", 4};
    }
    int mode = (g >> 3) % 4;
    if (s->c == NULL)
        return;
    if (getenv("FUZZ_BROKER_LOG"))
        fprintf(stderr, "CONNECT id %d level %u clean %d mode %d\n", id, cp->level, cp->clean_start,
                mode);
    if (s->id < 0) { /* the first CONNECT: what this client is */
        s->id = id;
        s->clean = cp->clean_start;
        s->level = cp->level;
        mq_decoder_set_proto(&s->dec, cp->level);
    }
    if (s->dirty || s->id != id)
        unknown_all(x); /* the broker may act on bytes the harness does not model */
    write_pkt(x, s, &pkt, cp->level, mode);
}

static void op_subscribe(world_t *x, slot_t *s, bool unsub)
{
    mq_sub_entry_t e[2] = {{0}, {0}};
    uint8_t f = next(x);
    uint32_t n = 1 + (f & 1);
    for (uint32_t i = 0; i < n; i++) {
        const char *flt = filters[next(x) % 8];
        e[i].filter = (mq_str_t){flt, strlen(flt)};
        e[i].qos = (f >> (1 + 2 * i)) % 3;
    }
    mq_packet_t pkt = {.type = unsub ? MQ_UNSUBSCRIBE : MQ_SUBSCRIBE};
    pkt.subscribe.packet_id = (uint16_t)(1 + next(x) % 8);
    pkt.subscribe.n = n;
    pkt.subscribe.entries = e;
    write_pkt(x, s, &pkt, s->level ? s->level : MQ_PROTO_311, (f >> 6) == 3 ? 2 : 0);
}

static void op_publish(world_t *x, slot_t *s)
{
    uint8_t f = next(x), g = next(x);
    mq_packet_t pkt = {.type = MQ_PUBLISH};
    mq_publish_t *pub = &pkt.publish;
    const char *t = topics[f % 5];
    pub->topic = (mq_str_t){t, strlen(t)};
    pub->qos = (f >> 3) % 3;
    pub->retain = (f >> 5) & 1;
    pub->dup = pub->qos > 0 && ((f >> 6) & 1);
    pub->packet_id = pub->qos ? (uint16_t)(1 + g % 4) : 0;
    pub->payload = (mq_str_t){"0123", (g >> 2) % 5};
    write_pkt(x, s, &pkt, s->level ? s->level : MQ_PROTO_311, (g >> 5) == 7 ? 3 : 0);
}

static void op_ack(world_t *x, slot_t *s)
{
    uint8_t f = next(x), g = next(x);
    mq_packet_t pkt = {.type = (uint8_t)(MQ_PUBACK + f % 4)};
    model_t *m = model_of(x, s);
    if (m && m->n_owed > 0 && (f & 4))
        pkt.ack.packet_id = m->owed[g % m->n_owed].id; /* one the broker waits for */
    else
        /* unknown for sure: a session numbers from 1, and 400 steps (6 ids each at most)
         * never reach 60000, so
         * an ack can not meet a PUBLISH the harness has not seen yet (the broker may have
         * written one this turn) */
        pkt.ack.packet_id = (uint16_t)(60000 + g % 6);
    write_pkt(x, s, &pkt, s->level ? s->level : MQ_PROTO_311, (f >> 3) == 31 ? 2 : 0);
}

static void op_raw(world_t *x, slot_t *s)
{
    uint8_t b[16];
    size_t n = 1 + next(x) % sizeof(b);
    for (size_t i = 0; i < n; i++)
        b[i] = next(x);
    if (s->c == NULL)
        return;
    make_dirty(x, s);
    if (fake_conn_write(s->c, b, n))
        push_intent(s, 0, 0);
}

static void step(world_t *x)
{
    uint8_t op = next(x);
    slot_t *s = &x->s[next(x) % NSLOT];
    if (getenv("FUZZ_BROKER_LOG"))
        fprintf(stderr, "op %u slot %d (conn %p, id %d)\n", op % 13, (int)(s - x->s), (void *)s->c,
                s->id);
    switch (op % 13) {
    case 0:
        op_open(x, s);
        break;
    case 1:
        op_connect(x, s);
        break;
    case 2:
    case 3:
        op_subscribe(x, s, op % 13 == 3);
        break;
    case 4:
        op_publish(x, s);
        break;
    case 5:
        op_ack(x, s);
        break;
    case 6: {
        mq_packet_t pkt = {.type = (op >> 4) & 1 ? MQ_DISCONNECT : MQ_PINGREQ};
        write_pkt(x, s, &pkt, s->level ? s->level : MQ_PROTO_311, 0);
        break;
    }
    case 7:
        op_raw(x, s);
        break;
    case 8:
        if (s->c)
            fake_conn_peer_close(s->c);
        break;
    case 9:
    case 10:
        (void)turn(x, next(x) % NW);
        break;
    case 11:
        settle(x);
        break;
    default: {
        static const uint64_t ms[5] = {0, 1000, 2000, 10000, 70000};
        tick(x, ms[next(x) % 5]);
        break;
    }
    }
    check_all(x, false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static world_t x; /* big: not on the stack */
    memset(&x, 0, sizeof(x));
    atomic_store(&mq_log_mask, MQ_LOG_ALL); /* every log line is formatted, then dropped */
    /* FUZZ_BROKER_LOG=1 shows the broker's lines (and -v packet traces) for one input */
    mq_log_set_sink(getenv("FUZZ_BROKER_LOG") ? NULL : discard_log, NULL);
    x.in = data;
    x.len = size;
    uint8_t a = next(&x), b = next(&x);
    set_opts(&x, a, b);
    x.now_ms = 1000000;
    world_init(&x);
    for (unsigned w = 0; w < NW; w++)
        x.w[w].loop.now_ms = x.now_ms;
    for (int steps = 0; x.pos < x.len && steps < 400; steps++)
        step(&x);
    settle(&x);
    world_fini(&x);
    return 0;
}
