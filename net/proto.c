/* SPDX-License-Identifier: MIT */
/* net/proto.c - the MQTT packet loop of one worker: dispatch, connection lifecycle, sessions'
 * ends and deadlines. PUBLISH is net/publish.c, SUBSCRIBE net/subscribe.c, CONNECT
 * net/connect.c. */
#include "net/proto.h"

#include <string.h>
#include <unistd.h>

#include "core/deadline.h"
#include "core/log.h"
#include "core/mem.h"
#include "net/auth.h"
#include "net/client.h"
#include "net/connect.h"
#include "net/jwriter.h"
#include "net/marks.h"
#include "net/overload.h"
#include "net/publish.h"
#include "net/subscribe.h"
#include "net/tls.h"
#include "net/trace.h"
#include "net/will.h"

void mq_proto_deliver(mq_proto_t *p, mq_msg_t *msg, const uint64_t *fids, uint32_t n)
{
    uint64_t refused = mq_jwriter_refused(p->env.jw);
    mq_publish_deliver(p, msg, fids, n);
    /* mailed by the worker that routed it: for a client's PUBLISH the owner of its session
     * (origin, net/publish.c) */
    mq_marks_check_refused(p, msg, (unsigned)(msg->origin % p->env.n_workers), refused);
}

void mq_proto_deliver_shared(mq_proto_t *p, mq_msg_t *msg, uint64_t fid, uint64_t gid,
                             uint64_t token, unsigned from)
{
    uint64_t refused = mq_jwriter_refused(p->env.jw);
    mq_publish_deliver_shared(p, msg, fid, gid, token);
    mq_marks_check_refused(p, msg, from, refused);
}

void mq_proto_publish(mq_proto_t *p, mq_msg_t *msg)
{
    (void)mq_publish_route(p, msg);
}

/* A DISCONNECT from the client: a clean end discards the will [MQTT-3.14.4-3], unless a v5
 * client asks for it (0x04); a v5 client may change its Session Expiry Interval, but not
 * from 0 [MQTT-3.14.2-2]. */
static int handle_disconnect(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    if (cl->proto == MQ_PROTO_5 && mq_props_has(&pkt->props, MQ_PROP_SESSION_EXPIRY)) {
        if (cl->sess->expiry_s == 0 && pkt->props.session_expiry != 0) {
            mq_client_end_rc(p, cl, MQ_RC_PROTOCOL_ERROR, true,
                             "session expiry changed from 0 at DISCONNECT");
            return MQ_CONN_CLOSED;
        }
        if (p->env.jw && !cl->sess->clean && pkt->props.session_expiry == 0)
            (void)mq_jwriter_sess_del(p->env.jw, cl->sess); /* ends with this connection now */
        cl->sess->expiry_s = pkt->props.session_expiry;
        cl->sess->clean = cl->sess->expiry_s == 0;
    }
    bool with_will = cl->proto == MQ_PROTO_5 && pkt->reason.rc == MQ_RC_DISCONNECT_WITH_WILL;
    mq_client_end(cl, with_will, NULL);
    return MQ_CONN_CLOSED;
}

static int handle_packet(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    p->cnt.msgs_received++;
    if (cl->conn.state == MQ_CONN_PRE) /* the decoder only lets a CONNECT through first */
        return mq_connect_handle(p, cl, pkt);
    switch (pkt->type) {
    case MQ_PUBLISH:
        return mq_publish_handle(p, cl, pkt);
    case MQ_PUBACK:
    case MQ_PUBREC:
    case MQ_PUBCOMP:
        mq_publish_on_ack(p, cl, pkt);
        return MQ_CONN_OK;
    case MQ_PUBREL:
        mq_publish_on_pubrel(p, cl, pkt);
        return MQ_CONN_OK;
    case MQ_SUBSCRIBE:
        mq_subscribe_handle(p, cl, pkt);
        return MQ_CONN_OK;
    case MQ_UNSUBSCRIBE:
        mq_unsubscribe_handle(p, cl, pkt);
        return MQ_CONN_OK;
    case MQ_PINGREQ:
        mq_codec_append_pingresp(mq_conn_out(&cl->conn));
        p->cnt.msgs_sent++;
        mq_conn_mark_dirty(&cl->conn);
        return MQ_CONN_OK;
    case MQ_DISCONNECT:
        return handle_disconnect(p, cl, pkt);
    case MQ_AUTH: /* no authentication method was agreed at CONNECT [MQTT-4.12.0-1] */
        mq_client_end_rc(p, cl, MQ_RC_PROTOCOL_ERROR, true, "AUTH without a method");
        return MQ_CONN_CLOSED;
    default: /* nothing else passes the decoder */
        mq_client_end(cl, true, "unexpected packet");
        return MQ_CONN_CLOSED;
    }
}

/* A decoder rejection. Before CONNECT: an unknown protocol version gets CONNACK 0x01 as
 * 3.1.1 asks [MQTT-3.1.2-2]; any other broken CONNECT closes. After: a v5 client gets
 * DISCONNECT with the reason; 3.1.1 has none. */
static void on_decode_error(mq_proto_t *p, client_t *cl, enum mq_rc rc, const mq_packet_t *pkt,
                            const char *why)
{
    if (cl->conn.state == MQ_CONN_PRE && cl->pre &&
        mq_tls_looks_like_hello(cl->pre->data, cl->pre->len))
        why = "a TLS handshake on a plain MQTT listener"; /* clearer than the decoder's reason */
    char msg[128];
    snprintf(msg, sizeof(msg), "rc=0x%02x %s: %s", rc, mq_rc_str(rc), why ? why : "");
    if (cl->conn.state == MQ_CONN_PRE && pkt->type == MQ_CONNECT) {
        if (rc == MQ_RC_UNSUPPORTED_PROTOCOL_VERSION) {
            cl->proto = MQ_PROTO_311;
            mq_client_refuse(p, cl, CONNACK_BAD_PROTOCOL, why);
            return;
        }
        /* a broken CONNECT otherwise just closes, as with mosquitto (a CONNACK with the
         * reason is optional [MQTT-4.13.1-1]) */
        mq_client_end(cl, false, msg);
        return;
    }
    mq_client_end_rc(p, cl, rc < 0x80 || rc >= 0x100 ? MQ_RC_MALFORMED_PACKET : rc, true, msg);
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
    if (c->state == MQ_CONN_PRE) { /* kept whole in case the connection must move */
        if (cl->pre == NULL)
            cl->pre = mq_calloc(1, sizeof(*cl->pre));
        mq_buf_append(cl->pre, b, len);
    }
    int r = process(p, cl, b, len);
    if (r == MQ_CONN_GONE)
        mq_connect_hand_off(p, cl);
    return r;
}

void mq_proto_on_handoff(mq_proto_t *p, mq_conn_t *c)
{
    client_t *cl = client_of(c);
    mq_buf_t *b = cl->pre; /* (on_bytes keeps what it is given anew) */
    cl->pre = NULL;
    if (b == NULL) { /* a connection moves for a CONNECT it received: never without one */
        mq_client_end(cl, false, "handed over without its CONNECT");
        return;
    }
    int r = on_bytes(p, c, b->data, b->len);
    mq_buf_fini(b);
    mq_free(b);
    /* the owner keeps what it owns; only a password may still go to the verifier (and come
     * back here), or a take-over wait a turn: on_bytes() has handed it over already */
    MQ_ASSERT(r != MQ_CONN_GONE || cl->auth_pending != NULL || cl->handoff_to == p->env.self);
    if (r == MQ_CONN_OK)
        mq_conn_arm(c);
}

enum mq_proto_wait mq_proto_seal_waiting(mq_proto_t *p)
{
    p->n_due = p->n_waiting;
    enum mq_proto_wait w = MQ_PROTO_SLEEP;
    for (uint32_t i = 0; i < p->n_due && w != MQ_PROTO_NO_SLEEP; i++)
        w = p->waiting[i].reload ? MQ_PROTO_SLEEP_SHORT : MQ_PROTO_NO_SLEEP;
    return w;
}

/* Whether one of the first 'n' waiting CONNECTs has client id hash 'h'. */
static bool waits_in(const mq_waiting_t *w, uint32_t n, uint64_t h)
{
    for (uint32_t i = 0; i < n; i++)
        if (w[i].h == h)
            return true;
    return false;
}

void mq_proto_resume_waiting(mq_proto_t *p)
{
    uint32_t n = p->n_due;
    if (n == 0)
        return;
    p->n_due = 0;
    /* while the reload lasts, the CONNECTs waiting for it stay where they are, undecoded, and
     * so does any later one with the same client id: the earlier CONNECT still goes first */
    bool reload = false;
    for (uint32_t i = 0; i < n && !reload; i++)
        reload = p->waiting[i].reload;
    reload = reload && mq_auth_reload_due(p->env.auth, p->env.loop->now_ms);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) { /* (a CONNECT that waited once does not wait again) */
        mq_waiting_t w = p->waiting[i];
        if ((reload && w.reload) || waits_in(p->waiting, kept, w.h)) {
            w.reload = true; /* behind one that waits for the reload, it waits for it too */
            p->waiting[kept++] = w;
            continue;
        }
        mq_conn_link(p->env.loop, &w.cl->conn);
        mq_proto_on_handoff(p, &w.cl->conn); /* its CONNECT again, from the bytes it kept */
    }
    memmove(p->waiting + kept, p->waiting + n, (p->n_waiting - n) * sizeof(*p->waiting));
    p->n_waiting -= n - kept;
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
    char peer[MQ_CONN_PEER_LEN];
    if (why)
        MQ_LOG(MQ_LOG_INFO, "worker=%u client=%s peer=%s closing: %s", p->env.self,
               cl->sess ? cl->sess->client_id : "-", mq_conn_peer(c, peer), why);
}

static void on_writable(void *arg, mq_conn_t *c)
{
    (void)arg;
    client_t *cl = client_of(c);
    if (cl->sess && mq_sess_queued(cl->sess) > 0)
        mq_sess_on_writable(cl->sess);
}

/* The will of a connection that ended: now, or after its Will Delay Interval if the session
 * outlives the connection (the earlier of the two [MQTT-3.1.3-9]). */
static void release_will(mq_proto_t *p, client_t *cl, const mq_sess_t *s)
{
    if (!cl->will_pending)
        return;
    cl->will_pending = false;
    bool lives = s != NULL && !s->clean;
    if (cl->will_delay > 0 && lives) {
        uint32_t d = cl->will_delay < s->expiry_s ? cl->will_delay : s->expiry_s;
        mq_msg_t *w = cl->will;
        if (cl->has_will_expiry) /* counted from the publication */
            w->expire_at = 0;
        mq_will_defer(p, s->client_id, s->id_len, s->id_hash, mq_msg_ref(w),
                      p->env.loop->now_ms + (uint64_t)d * 1000);
        if (p->env.jw) /* it waits across a restart too */
            (void)mq_jwriter_will(p->env.jw, s, w, d);
        return;
    }
    mq_publish_will(p, s, cl->will, cl->has_will_expiry, cl->will_expiry);
}

/* The connection is gone: detaches or ends its session, publishes the will if due. */
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
        if (!s->clean && s->expiry_s != 0xFFFFFFFFu)
            s->expire_at = p->env.loop->now_ms + (uint64_t)s->expiry_s * 1000;
        if (p->env.jw && !s->clean) /* its expiry counts from now, across a restart too */
            (void)mq_jwriter_sess_put(p->env.jw, s, false);
        mq_route_set_online(p->route, s, false); /* its groups pick others from now on */
    }
    release_will(p, cl, s);
    if (s && s->clean)
        mq_publish_end_session(p, s);
    else if (s) /* offline: its groups get what it had not acknowledged */
        mq_publish_hand_on(p, s);
    mq_proto_drop_conn(c);
}

void mq_proto_drop_conn(mq_conn_t *c)
{
    client_t *cl = client_of(c);
    if (cl->sess) /* shutdown: the session stays in the tables until they are freed */
        mq_sess_detach(cl->sess);
    cl->sess = NULL;
    mq_client_free_state(cl);
}

/* ---- the worker's protocol state ----------------------------------------------------------------
 */

/* ---- a persistent session's messages in the journal (core/sess.h: mq_sess_journal_t) ------ */

/* A QoS 2 message journaled for an online session: the subscriber sees it once the record is
 * durable, or a crash could give it to the client again under another packet id. */
static void gate_delivery(mq_proto_t *p, const mq_sess_t *s, const mq_outmsg_t *o)
{
    if (o->qos == 2 && s->out)
        mq_jwriter_hold(p->env.jw, mq_conn_of_out(s->out), true, 0);
}

static void j_put(void *arg, const mq_sess_t *s, const mq_outmsg_t *o)
{
    mq_proto_t *p = arg;
    if (mq_jwriter_msg_put(p->env.jw, s, o))
        gate_delivery(p, s, o);
}

static void j_update(void *arg, const mq_sess_t *s, const mq_outmsg_t *o)
{
    mq_proto_t *p = arg;
    if (mq_jwriter_msg_update(p->env.jw, s, o))
        gate_delivery(p, s, o);
}

static void j_del(void *arg, const mq_sess_t *s, uint64_t mid)
{
    mq_proto_t *p = arg;
    (void)mq_jwriter_msg_del(p->env.jw, s, mid);
}

mq_proto_t *mq_proto_new(const mq_proto_env_t *env)
{
    mq_proto_t *p = mq_calloc(1, sizeof(*p));
    p->env = *env;
    p->o = env->opts;
    p->route = mq_route_new(env->ix, env->self, env->n_workers, env->ep, env->shared);
    p->home.limits = &p->o->limits;
    p->home.clock = &env->loop->now_ms; /* message expiry (core/sess.h) */
    for (unsigned i = 0; i < p->o->n_listeners; i++) {
        const char *mp = p->o->listeners[i].mount_point;
        p->mounts[i] = (mq_str_t){mp, mp ? strlen(mp) : 0};
    }
    p->home.mounts = p->mounts;
    p->marks.durable = mq_calloc(env->n_workers, sizeof(*p->marks.durable));
    p->marks.refused = mq_calloc(env->n_workers, sizeof(*p->marks.refused));
    if (env->jw) { /* persistent sessions' messages go to the journal as they change */
        p->journal = (mq_sess_journal_t){.arg = p, .put = j_put, .update = j_update, .del = j_del};
        p->home.journal = &p->journal;
    }
    /* the security state this worker starts with: a reload before its first tick is then seen
     * as one (with 0 here, mq_auth_refresh took the first reload for the first state and did
     * not classify the subscriptions again) */
    p->auth_gen = mq_auth_generation(mq_auth_get(env->auth));
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
    for (uint32_t i = 0; i < p->n_waiting; i++) { /* as a hand-off never delivered */
        mq_conn_t *c = &p->waiting[i].cl->conn;
        close(c->fd);
        mq_proto_drop_conn(c);
        mq_conn_free(c);
    }
    mq_free(p->waiting);
    mq_will_free_all(p);
    mq_marks_fini(p);
    mq_route_free(p->route);
    mq_free(p->codes);
    mq_free(p->fresh);
    mq_free(p->ending);
    mq_free(p->mount_buf);
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

/* Ends detached sessions whose expiry has passed (their pending will goes now), then
 * publishes the delayed wills that are due. */
static void expire(mq_proto_t *p, uint64_t now)
{
    /* found first, ended after: ending one changes the table the walk goes through */
    size_t pos = 0;
    uint32_t n = 0;
    for (mq_sess_t *s; (s = mq_route_next(p->route, &pos)) != NULL;) {
        if (!mq_sess_expired(s, now))
            continue;
        if (n == p->cap_ending)
            p->ending = mq_grow(p->ending, &p->cap_ending, sizeof(*p->ending), 16);
        p->ending[n++] = s;
    }
    for (uint32_t i = 0; i < n; i++)
        mq_publish_end_expired(p, p->ending[i]);
    uint32_t at = 0;
    const mq_sess_t *owner;
    for (mq_msg_t *w; (w = mq_will_take_due(p, now, &at, &owner)) != NULL;) {
        if (p->env.jw && owner && !owner->clean) /* published: not again after a restart */
            (void)mq_jwriter_will(p->env.jw, owner, NULL, 0);
        mq_publish_will(p, owner, w, false, 0);
        mq_msg_unref(w);
    }
}

void mq_proto_tick(mq_proto_t *p)
{
    uint64_t now = p->env.loop->now_ms;
    mq_auth_refresh(mq_auth_get(p->env.auth), p->route, &p->auth_gen); /* after a reload */
    for (mq_conn_t *c = p->env.loop->conns; c; c = c->next) {
        if (c->state == MQ_CONN_CLOSING) {
            mq_conn_linger_check(c, now);
            continue;
        }
        client_t *cl = client_of(c);
        switch (mq_deadline_check(c->state == MQ_CONN_ACTIVE, c->since_ms, c->since_ms,
                                  cl->keep_alive, p->o->connect_timeout_s, now)) {
        case MQ_DEADLINE_CONNECT:
            mq_client_end(cl, false, "no CONNECT in time");
            break;
        case MQ_DEADLINE_KEEPALIVE:
            mq_client_end_rc(p, cl, MQ_RC_KEEP_ALIVE_TIMEOUT, true, "keepalive timeout");
            break;
        case MQ_DEADLINE_NONE:
            break;
        }
        if (mq_overload_queue_stuck(p->o, cl, now)) /* queue_full_timeout */
            mq_client_end(cl, true, "queue full for longer than queue_full_timeout");
        else
            mq_conn_trim(c);
    }
    expire(p, now);
}

void mq_proto_goodbye(mq_proto_t *p)
{
    p->stopping = true;
    for (mq_conn_t *c = p->env.loop->conns; c; c = c->next) {
        client_t *cl = client_of(c);
        if (c->state == MQ_CONN_ACTIVE && cl->proto == MQ_PROTO_5)
            mq_client_end_rc(p, cl, MQ_RC_SERVER_SHUTTING_DOWN, false, "server shutting down");
    }
}

void mq_proto_stats(const mq_proto_t *p, mq_stats_t *st)
{
    const mq_sess_stats_t t = p->home.stats;
    size_t pos = 0;
    for (mq_sess_t *s; (s = mq_route_next(p->route, &pos)) != NULL;) {
        st->subscriptions += s->n_subs;
        st->inflight += mq_sess_inflight(s);
        st->queued += mq_sess_queued(s);
        st->queued_bytes += mq_sess_queued_bytes(s);
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
    st->sessions_expired = p->cnt.expired_sessions;
    st->pub_expired = t.expired;
    st->pub_too_large = t.too_large;
}
