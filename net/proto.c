/* SPDX-License-Identifier: MIT */
/* net/proto.c - MQTT 3.1/3.1.1 broker behaviour: PUBLISH, acks, subscriptions, the packet loop. */
#include "net/proto.h"

#include <string.h>

#include "core/deadline.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/topic.h"
#include "net/client.h"
#include "net/connect.h"
#include "net/overload.h"
#include "net/trace.h"

/* ---- routing ----------------------------------------------------------------------------------
 */

void mq_proto_deliver(mq_proto_t *p, mq_msg_t *msg, const uint64_t *fids, uint32_t n)
{
    const mq_route_dest_t *d;
    uint32_t k = mq_route_resolve(p->route, fids, n, msg->qos, p->o->upgrade_outgoing_qos, &d);
    for (uint32_t i = 0; i < k; i++) {
        mq_sess_t *s = d[i].sess;
        (void)mq_sess_deliver(s, msg, d[i].qos, false); /* a drop is in s->stats */
        if (s->conn)
            mq_conn_mark_dirty(s->conn);
    }
}

/* Matches 'msg' once against the shared index and hands each interested worker one entry
 * {message reference, filter ids} (DESIGN.md rule 3). */
static void route_msg(mq_proto_t *p, mq_msg_t *msg)
{
    mq_str_t t = mq_msg_topic(msg);
    uint64_t m = mq_route_match(p->route, t.ptr, t.len);
    while (m) {
        unsigned b = (unsigned)__builtin_ctzll(m);
        m &= m - 1;
        uint32_t n;
        const uint64_t *fids = mq_route_take(p->route, b, &n);
        if (b == p->env.self) {
            mq_proto_deliver(p, msg, fids, n);
            continue;
        }
        mq_mail_t e = {.type = MQ_MAIL_DELIVER, .n = n, .ptr = mq_msg_ref(msg)};
        if (n <= MQ_MAIL_INLINE) {
            memcpy(e.a, fids, n * sizeof(uint64_t));
        } else { /* rare: many distinct filters of one worker match */
            uint64_t *ids = mq_alloc(n * sizeof(uint64_t));
            memcpy(ids, fids, n * sizeof(uint64_t));
            e.a[0] = (uint64_t)(uintptr_t)ids;
        }
        mq_outbox_send(p->env.outbox, b, &e);
    }
}

/* Stores (or clears) the retained message, then routes it with the retain flag cleared for
 * live subscribers [MQTT-3.3.1-9] (the message's bytes never carry it). */
void mq_proto_publish(mq_proto_t *p, mq_msg_t *msg)
{
    if (msg->retain)
        (void)mq_tindex_retain(p->env.ix, msg, p->env.ep); /* count changes are read by $SYS */
    route_msg(p, msg);
}

static bool is_sys_topic(const char *t, size_t len)
{
    return len >= 4 && memcmp(t, "$SYS", 4) == 0 && (len == 4 || t[4] == '/');
}

/* ---- PUBLISH and acknowledgements ------------------------------------------------------------ */

/* Whether a received PUBLISH is routed: not to $SYS, not over message_size_limit, not a
 * QoS 2 re-send before PUBREL. Dropping here still acknowledges it, as mosquitto does. */
static bool should_route(mq_proto_t *p, client_t *cl, const mq_publish_t *pub)
{
    if (is_sys_topic(pub->topic.ptr, pub->topic.len)) {
        /* $SYS belongs to the broker: acknowledged, never delivered (as mosquitto), so that
         * no client can forge the metrics that dashboards trust */
        MQ_LOG(MQ_LOG_DEBUG, "worker=%u client=%s PUBLISH to $SYS ignored", p->env.self,
               cl->sess->client_id);
        return false;
    }
    if (p->o->message_size_limit && pub->payload.len > p->o->message_size_limit) {
        /* mosquitto drops it and still acknowledges, so the client does not resend it */
        MQ_LOG(MQ_LOG_INFO,
               "worker=%u client=%s dropped PUBLISH of %zu bytes over message_size_limit",
               p->env.self, cl->sess->client_id, pub->payload.len);
        p->cnt.pub_dropped++;
        return false;
    }
    /* a re-send before PUBREL was delivered once already [MQTT-4.3.3-10] */
    return pub->qos != 2 || mq_sess_qos2_received(cl->sess, pub->packet_id);
}

static int handle_publish(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    const mq_publish_t *pub = &pkt->publish;
    p->cnt.pub_received++;
    p->cnt.pub_bytes_received += pub->payload.len;
    if (pub->qos > p->o->max_qos) {
        mq_client_end(cl, true, "PUBLISH QoS above max_qos");
        return MQ_CONN_CLOSED;
    }
    if (pub->retain && !p->o->retain_available) {
        mq_client_end(cl, true, "retained PUBLISH with retain_available false");
        return MQ_CONN_CLOSED;
    }
    if (should_route(p, cl, pub)) {
        mq_msg_t *msg = mq_msg_new(pub->topic.ptr, pub->topic.len, pub->payload.ptr,
                                   pub->payload.len, pub->qos, pub->retain);
        MQ_ASSERT(msg != NULL); /* the decoder bounded topic and payload */
        mq_proto_publish(p, msg);
        mq_msg_unref(msg);
    }
    if (pub->qos == 1)
        mq_client_send_ack(p, cl, MQ_PUBACK, pub->packet_id);
    else if (pub->qos == 2)
        mq_client_send_ack(p, cl, MQ_PUBREC, pub->packet_id);
    return MQ_CONN_OK;
}

static void handle_outbound_ack(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    mq_sess_t *s = cl->sess;
    uint16_t id = pkt->ack.packet_id;
    enum mq_rc rc = pkt->type == MQ_PUBACK   ? mq_sess_on_puback(s, id)
                    : pkt->type == MQ_PUBREC ? mq_sess_on_pubrec(s, id)
                                             : mq_sess_on_pubcomp(s, id);
    if (rc != MQ_RC_SUCCESS) {
        MQ_LOG(MQ_LOG_DEBUG, "worker=%u client=%s %s for unknown packet id %u", p->env.self,
               s->client_id, mq_ptype_str(pkt->type), id);
        if (pkt->type == MQ_PUBREC) /* as mosquitto: let the peer finish its flow */
            mq_client_send_ack(p, cl, MQ_PUBREL, id);
    }
    mq_conn_mark_dirty(&cl->conn);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------------------------
 */

typedef struct retained_ctx {
    mq_sess_t *s;
    uint8_t qos;
    bool upgrade;
} retained_ctx_t;

static void send_retained(void *arg, mq_msg_t *msg)
{
    retained_ctx_t *rc = arg;
    uint8_t q = rc->upgrade || rc->qos < msg->qos ? rc->qos : msg->qos;
    /* [MQTT-3.3.1-8] retained messages go out with the retain flag set */
    (void)mq_sess_deliver(rc->s, msg, q, true); /* a drop is counted in the session */
}

static void handle_subscribe(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    mq_sess_t *s = cl->sess;
    uint32_t n = 0;
    size_t pos = 0;
    mq_sub_entry_t e;
    while (mq_sub_next(pkt, cl->proto, &pos, &e)) {
        if (n == p->cap_codes)
            p->codes = mq_grow(p->codes, &p->cap_codes, 1, 16);
        mq_str_t share, rest;
        if (e.rc != MQ_RC_SUCCESS ||
            mq_topic_split_shared(e.filter.ptr, e.filter.len, &share, &rest)) {
            p->codes[n++] = 0x80; /* failure (shared subscriptions arrive with MQTT 5 work) */
            MQ_LOG(MQ_LOG_INFO, "worker=%u client=%s refused subscription '%.*s'", p->env.self,
                   s->client_id, (int)(e.filter.len > 64 ? 64 : e.filter.len), e.filter.ptr);
            continue;
        }
        uint8_t qos = e.qos < p->o->max_qos ? e.qos : p->o->max_qos;
        p->codes[n++] = qos;
        MQ_LOG(MQ_LOG_SUBSCRIBE, "%s %u %.*s", s->client_id, qos, (int)e.filter.len,
               e.filter.ptr); /* mosquitto's format: client qos filter */
        mq_route_subscribe(p->route, s, e.filter.ptr, e.filter.len, qos);
    }
    /* SUBACK first, then the retained messages of each filter [MQTT-3.8.4-1..-5] */
    mq_codec_append_suback(mq_conn_out(&cl->conn), cl->proto, pkt->subscribe.packet_id, p->codes, n,
                           NULL);
    p->cnt.msgs_sent++;
    pos = 0;
    for (uint32_t i = 0; i < n && mq_sub_next(pkt, cl->proto, &pos, &e); i++) {
        if (p->codes[i] == 0x80)
            continue;
        retained_ctx_t rc = {s, p->codes[i], p->o->upgrade_outgoing_qos};
        mq_tindex_retained(p->env.ix, e.filter.ptr, e.filter.len, send_retained, &rc);
    }
    mq_conn_mark_dirty(&cl->conn);
}

static void handle_unsubscribe(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    size_t pos = 0;
    mq_sub_entry_t e;
    while (mq_sub_next(pkt, cl->proto, &pos, &e)) {
        MQ_LOG(MQ_LOG_UNSUBSCRIBE, "%s %.*s", cl->sess->client_id, (int)e.filter.len, e.filter.ptr);
        (void)mq_route_unsubscribe(p->route, cl->sess, e.filter.ptr, e.filter.len);
    }
    mq_codec_append_unsuback(mq_conn_out(&cl->conn), cl->proto, pkt->subscribe.packet_id, NULL, 0,
                             NULL);
    p->cnt.msgs_sent++;
    mq_conn_mark_dirty(&cl->conn);
}

/* ---- the packet loop ----------------------------------------------------------------------------
 */

static int handle_packet(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    p->cnt.msgs_received++;
    if (cl->conn.state == MQ_CONN_PRE) /* the decoder only lets a CONNECT through first */
        return mq_connect_handle(p, cl, pkt);
    switch (pkt->type) {
    case MQ_PUBLISH:
        return handle_publish(p, cl, pkt);
    case MQ_PUBACK:
    case MQ_PUBREC:
    case MQ_PUBCOMP:
        handle_outbound_ack(p, cl, pkt);
        return MQ_CONN_OK;
    case MQ_PUBREL:
        mq_sess_qos2_released(cl->sess, pkt->ack.packet_id);
        mq_client_send_ack(p, cl, MQ_PUBCOMP, pkt->ack.packet_id);
        return MQ_CONN_OK;
    case MQ_SUBSCRIBE:
        handle_subscribe(p, cl, pkt);
        return MQ_CONN_OK;
    case MQ_UNSUBSCRIBE:
        handle_unsubscribe(p, cl, pkt);
        return MQ_CONN_OK;
    case MQ_PINGREQ:
        mq_codec_append_pingresp(mq_conn_out(&cl->conn));
        p->cnt.msgs_sent++;
        mq_conn_mark_dirty(&cl->conn);
        return MQ_CONN_OK;
    case MQ_DISCONNECT: /* a clean end: the will is discarded [MQTT-3.14.4-3] */
        mq_client_end(cl, false, NULL);
        return MQ_CONN_CLOSED;
    default: /* AUTH before v5 cannot pass the decoder; nothing else reaches here */
        mq_client_end(cl, true, "unexpected packet");
        return MQ_CONN_CLOSED;
    }
}

/* A decoder rejection: before CONNECT, answer an unknown protocol version as 3.1.1 asks
 * (CONNACK 0x01, [MQTT-3.1.2-2]); otherwise just close (3.1.1 has no DISCONNECT to send). */
static void on_decode_error(mq_proto_t *p, client_t *cl, enum mq_rc rc, const mq_packet_t *pkt,
                            const char *why)
{
    if (cl->conn.state == MQ_CONN_PRE && rc == MQ_RC_UNSUPPORTED_PROTOCOL_VERSION &&
        pkt->type == MQ_CONNECT) {
        cl->proto = MQ_PROTO_311;
        mq_client_refuse(p, cl, CONNACK_BAD_PROTOCOL, why);
        return;
    }
    char msg[128];
    snprintf(msg, sizeof(msg), "rc=0x%02x %s: %s", rc, mq_rc_str(rc), why ? why : "");
    mq_client_end(cl, true, msg);
}

static int process(mq_proto_t *p, client_t *cl, const uint8_t *b, size_t len)
{
    while (len > 0 && cl->conn.state != MQ_CONN_CLOSING) {
        mq_packet_t pkt;
        size_t used;
        const char *why = NULL;
        enum mq_rc rc = mq_decoder_feed(&cl->dec, b, len, &used, &pkt, &why);
        if (rc == MQ_RC_AGAIN)
            return MQ_CONN_OK;
        if (rc != MQ_RC_SUCCESS) {
            on_decode_error(p, cl, rc, &pkt, why);
            return MQ_CONN_CLOSED;
        }
        b += used;
        len -= used;
        MQ_TRACE_IN(cl, &pkt); /* -v: one line per packet received */
        int r = handle_packet(p, cl, &pkt);
        if (r != MQ_CONN_OK)
            return r;
    }
    return cl->conn.state == MQ_CONN_CLOSING ? MQ_CONN_CLOSED : MQ_CONN_OK;
}

static int on_bytes(void *arg, mq_conn_t *c, const uint8_t *b, size_t len)
{
    mq_proto_t *p = arg;
    client_t *cl = client_of(c);
    if (c->state == MQ_CONN_PRE)
        mq_buf_append(&cl->pre, b, len); /* kept whole in case the connection must move */
    int r = process(p, cl, b, len);
    if (r == MQ_CONN_GONE)
        mq_connect_hand_off(p, cl);
    return r;
}

void mq_proto_on_handoff(mq_proto_t *p, mq_conn_t *c)
{
    client_t *cl = client_of(c);
    mq_buf_t b = cl->pre;
    mq_buf_init(&cl->pre);
    int r = on_bytes(p, c, b.data, b.len);
    mq_buf_fini(&b);
    MQ_ASSERT(r != MQ_CONN_GONE); /* the owner keeps what it owns */
    if (r == MQ_CONN_OK)
        mq_conn_arm(c);
}

void mq_proto_on_accept(mq_proto_t *p, mq_conn_t *c)
{
    client_t *cl = client_of(c);
    mq_decoder_init(&cl->dec, MQ_ROLE_SERVER, 0, p->o->max_packet_size);
    p->cnt.sockets++;
}

static void on_closing(void *arg, mq_conn_t *c, const char *why)
{
    mq_proto_t *p = arg;
    client_t *cl = client_of(c);
    if (!cl->closing_by_us) /* the socket ended under the client: a failure, with its will */
        cl->will_pending = cl->will != NULL;
    if (why)
        MQ_LOG(MQ_LOG_INFO, "worker=%u client=%s peer=%s closing: %s", p->env.self,
               cl->sess ? cl->sess->client_id : "-", c->peer, why);
}

static void on_writable(void *arg, mq_conn_t *c)
{
    (void)arg;
    client_t *cl = client_of(c);
    if (cl->sess && mq_sess_queued(cl->sess) > 0)
        mq_sess_on_writable(cl->sess);
}

/* The connection is gone: detaches or frees its session, publishes the will if due. */
static void on_release(void *arg, mq_conn_t *c)
{
    mq_proto_t *p = arg;
    client_t *cl = client_of(c);
    mq_sess_t *s = cl->sess;
    if (s) {
        if (p->o->connection_messages)
            MQ_LOG(MQ_LOG_NOTICE, "Client %s %s.", s->client_id,
                   cl->will_pending ? "closed its connection" : "disconnected");
        mq_client_detach(p, cl);
        if (s->clean)
            mq_client_destroy_sess(p, s);
    }
    if (cl->will_pending) {
        cl->will_pending = false;
        mq_str_t wt = mq_msg_topic(cl->will);
        if (!is_sys_topic(wt.ptr, wt.len)) /* as for a PUBLISH: $SYS is the broker's */
            mq_proto_publish(p, cl->will);
    }
    mq_proto_drop_conn(c);
}

void mq_proto_drop_conn(mq_conn_t *c)
{
    client_t *cl = client_of(c);
    if (cl->sess) /* shutdown: the session stays in the tables until they are freed */
        mq_sess_detach(cl->sess);
    cl->sess = NULL;
    mq_decoder_fini(&cl->dec);
    mq_buf_fini(&cl->pre);
    mq_msg_unref(cl->will);
    cl->will = NULL;
}

/* ---- the worker's protocol state ----------------------------------------------------------------
 */

mq_proto_t *mq_proto_new(const mq_proto_env_t *env)
{
    mq_proto_t *p = mq_calloc(1, sizeof(*p));
    p->env = *env;
    p->o = env->opts;
    p->route = mq_route_new(env->ix, env->self, env->n_workers, env->ep);
    p->handler = (mq_conn_handler_t){.arg = p,
                                     .on_bytes = on_bytes,
                                     .on_closing = on_closing,
                                     .on_writable = on_writable,
                                     .on_release = on_release};
    return p;
}

void mq_proto_free(mq_proto_t *p)
{
    if (p == NULL)
        return;
    mq_route_free(p->route);
    mq_free(p->codes);
    mq_free(p);
}

const mq_conn_handler_t *mq_proto_handler(const mq_proto_t *p)
{
    return &p->handler;
}

size_t mq_proto_conn_size(void)
{
    return sizeof(client_t);
}

void mq_proto_tick(mq_proto_t *p)
{
    uint64_t now = p->env.loop->now_ms;
    for (mq_conn_t *c = p->env.loop->conns; c; c = c->next) {
        if (c->state == MQ_CONN_CLOSING)
            continue;
        client_t *cl = client_of(c);
        switch (mq_deadline_check(c->state == MQ_CONN_ACTIVE, c->born_ms, c->last_rx_ms,
                                  cl->keep_alive, p->o->connect_timeout_s, now)) {
        case MQ_DEADLINE_CONNECT:
            mq_client_end(cl, false, "no CONNECT in time");
            break;
        case MQ_DEADLINE_KEEPALIVE:
            mq_client_end(cl, true, "keepalive timeout");
            break;
        case MQ_DEADLINE_NONE:
            break;
        }
        if (mq_overload_queue_stuck(p->o, cl, now)) /* queue_full_timeout */
            mq_client_end(cl, true, "queue full for longer than queue_full_timeout");
    }
}

void mq_proto_stats(const mq_proto_t *p, mq_stats_t *st)
{
    mq_sess_stats_t t = p->cnt.retired;
    size_t pos = 0;
    for (mq_sess_t *s; (s = mq_route_next(p->route, &pos)) != NULL;) {
        t.dropped += s->stats.dropped;
        t.publish_sent += s->stats.publish_sent;
        t.publish_bytes += s->stats.publish_bytes;
        t.packets_sent += s->stats.packets_sent;
        st->subscriptions += s->n_subs;
        st->inflight += mq_sess_inflight(s);
        st->queued += mq_sess_queued(s);
        st->queued_bytes += s->q_bytes;
    }
    st->msgs_received = p->cnt.msgs_received;
    st->msgs_sent = p->cnt.msgs_sent + t.packets_sent;
    st->pub_received = p->cnt.pub_received;
    st->pub_bytes_received = p->cnt.pub_bytes_received;
    st->pub_sent = t.publish_sent;
    st->pub_bytes_sent = t.publish_bytes;
    st->pub_dropped = p->cnt.pub_dropped + t.dropped;
    st->sockets = p->cnt.sockets;
    st->connects = p->cnt.connects;
    st->connections = p->n_online;
    st->sessions = mq_route_count(p->route);
}
