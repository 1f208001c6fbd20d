/* SPDX-License-Identifier: MIT */
/* net/publish.c - PUBLISH: admission, topic aliases, properties, routing, acknowledgements. */
#include "net/publish.h"

#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/topic.h"
#include "net/auth.h"
#include "net/jwriter.h"
#include "net/marks.h"
#include "net/will.h"

/* ---- routing ------------------------------------------------------------------------------- */

/* A delivery through a partially granted subscription: the topic against the ACL. */
static bool may_read(mq_proto_t *p, const mq_sess_t *s, const mq_msg_t *msg)
{
    mq_str_t t = mq_msg_topic(msg);
    return mq_auth_may_read(mq_auth_get(p->env.auth), s, t.ptr, t.len);
}

void mq_publish_deliver(mq_proto_t *p, mq_msg_t *msg, const uint64_t *fids, uint32_t n)
{
    const mq_route_dest_t *d;
    uint32_t k = mq_route_resolve(p->route, fids, n, msg, p->o->upgrade_outgoing_qos, &d);
    for (uint32_t i = 0; i < k; i++) {
        mq_sess_t *s = d[i].sess;
        if (d[i].grant != MQ_ACL_GRANT_FULL && !may_read(p, s, msg)) /* partial subscriptions */
            continue;
        /* a drop is counted in s->home */
        (void)mq_sess_deliver_ids(s, msg, d[i].qos, d[i].retain, d[i].sub_ids, d[i].n_sub_ids);
        if (s->out)
            mq_conn_mark_dirty(mq_conn_of_out(s->out));
    }
}

void mq_publish_deliver_shared(mq_proto_t *p, mq_msg_t *msg, uint64_t fid, uint64_t gid,
                               uint64_t token)
{
    const mq_route_dest_t *d;
    if (mq_route_resolve_shared(p->route, fid, gid, token, msg, p->o->upgrade_outgoing_qos, &d) ==
        0)
        return;
    mq_sess_t *s = d->sess;
    if (d->grant != MQ_ACL_GRANT_FULL && !may_read(p, s, msg))
        return;
    (void)mq_sess_deliver_shared(s, msg, d->qos, d->retain, d->sub_ids, d->n_sub_ids);
    if (s->out)
        mq_conn_mark_dirty(mq_conn_of_out(s->out));
}

/* 'msg' (borrowed) to member 'token' of shared group 'gid' on 'fid', living on worker 'w'. */
static void to_member(mq_proto_t *p, mq_msg_t *msg, unsigned w, uint64_t fid, uint64_t gid,
                      uint64_t token)
{
    if (w == p->env.self) {
        mq_publish_deliver_shared(p, msg, fid, gid, token);
        return;
    }
    mq_mail_t e = {.type = MQ_MAIL_DELIVER_SHARED,
                   .ptr = mq_msg_ref(msg),
                   .a = {fid, gid, token, p->env.self}};
    mq_outbox_send(p->env.outbox, w, &e);
    mq_marks_mailed(p, w, msg);
}

/* A session's shared subscriptions, for handing its messages on to their groups. */
typedef struct group_sub {
    uint64_t fid, gid;
    mq_str_t filter; /* the part after $share/GROUP/, in the session's subscription */
} group_sub_t;

typedef struct hand_on {
    mq_proto_t *p;
    uint64_t self;    /* the session's token: not picked again */
    bool online_only; /* connection lost: to a member that has one, else it stays */
    group_sub_t *gs;
    uint32_t n_gs, cap_gs;
} hand_on_t;

/* Gives 'msg' to another member of the session's group that gave it; false (the message
 * stays) when there is none, or when several of the session's groups match its topic and
 * the one that gave it cannot be told (handing it to the wrong one would duplicate it there
 * and take it from the right one). */
static bool give_to_group(void *arg, mq_msg_t *msg)
{
    hand_on_t *h = arg;
    mq_str_t t = mq_msg_topic(msg);
    const group_sub_t *g = NULL;
    for (uint32_t k = 0; k < h->n_gs; k++) {
        if (!mq_topic_matches(h->gs[k].filter.ptr, h->gs[k].filter.len, t.ptr, t.len))
            continue;
        if (g)
            return false;
        g = &h->gs[k];
    }
    unsigned w;
    uint64_t token;
    if (g == NULL ||
        !mq_shared_pick_one(h->p->env.shared, g->fid, g->gid, h->self, h->online_only, &w, &token))
        return false;
    to_member(h->p, msg, w, g->fid, g->gid, token);
    return true;
}

/* Hands what shared groups gave 's' and its client has not acknowledged on to other members
 * of those groups (mq_sess_give_shared says which stay). */
static void hand_on(mq_proto_t *p, mq_sess_t *s, bool online_only, const char *why)
{
    if (p->stopping) /* the other workers may have stopped: their mail would be lost */
        return;
    hand_on_t h = {.p = p, .self = s->id_hash, .online_only = online_only};
    for (uint32_t i = 0; i < s->n_subs; i++) {
        mq_str_t share, rest;
        const mq_sub_t *sub = &s->subs[i];
        if (!mq_topic_split_shared(mq_sub_filter(sub), sub->len, &share, &rest))
            continue;
        if (h.n_gs == h.cap_gs)
            h.gs = mq_grow(h.gs, &h.cap_gs, sizeof(*h.gs), 2);
        /* 'rest' may point into the entry itself (mq_sub_filter): nothing below changes the
         * subscriptions of 's' */
        h.gs[h.n_gs++] = (group_sub_t){sub->fid, mq_shared_gid(share.ptr, share.len), rest};
    }
    uint32_t n = h.n_gs ? mq_sess_give_shared(s, give_to_group, &h) : 0;
    if (n)
        MQ_LOG(MQ_LOG_INFO,
               "worker=%u client=%s %s: %u unacknowledged shared subscription "
               "messages handed on to other members",
               p->env.self, s->client_id, why, n);
    mq_free(h.gs);
}

void mq_publish_hand_on(mq_proto_t *p, mq_sess_t *s)
{
    hand_on(p, s, true, "connection lost");
}

void mq_publish_end_expired(mq_proto_t *p, mq_sess_t *s)
{
    mq_msg_t *w = mq_will_take(p, s->client_id, s->id_len, s->id_hash);
    if (w) {
        mq_publish_will(p, s, w, false, 0);
        mq_msg_unref(w);
    }
    p->cnt.expired_sessions++;
    mq_publish_end_session(p, s);
}

void mq_publish_end_session(mq_proto_t *p, mq_sess_t *s)
{
    if (p->env.jw && !s->clean) /* a persistent one was journaled: it ends there too */
        (void)mq_jwriter_sess_del(p->env.jw, s);
    hand_on(p, s, false, "session ended");
    mq_client_destroy_sess(p, s);
}

/* One mail to worker 'b': the filter ids of its plain subscribers of 'msg'. */
static void send_fids(mq_proto_t *p, mq_msg_t *msg, unsigned b, const uint64_t *fids, uint32_t n)
{
    mq_mail_t e = {.type = MQ_MAIL_DELIVER, .n = n, .ptr = mq_msg_ref(msg)};
    if (n <= MQ_MAIL_INLINE) {
        memcpy(e.a, fids, n * sizeof(uint64_t));
    } else { /* rare: many distinct filters of one worker match */
        uint64_t *ids = mq_alloc(n * sizeof(uint64_t));
        memcpy(ids, fids, n * sizeof(uint64_t));
        e.a[0] = (uint64_t)(uintptr_t)ids;
    }
    mq_outbox_send(p->env.outbox, b, &e);
    mq_marks_mailed(p, b, msg);
}

/* The shared groups whose member on worker 'b' gets 'msg'. */
static void send_picks(mq_proto_t *p, mq_msg_t *msg, unsigned b)
{
    uint32_t n;
    const mq_route_pick_t *pk = mq_route_take_shared(p->route, b, &n);
    for (uint32_t i = 0; i < n; i++)
        to_member(p, msg, b, pk[i].fid, pk[i].gid, pk[i].token);
}

/* Matches 'msg' once against the shared index and hands each interested worker one entry
 * {message reference, filter ids} (DESIGN.md rule 3), and each shared group's chosen
 * worker one entry for its member. */
static bool route_msg(mq_proto_t *p, mq_msg_t *msg)
{
    mq_str_t t = mq_msg_topic(msg);
    uint64_t m = mq_route_match(p->route, t.ptr, t.len);
    bool any = m != 0;
    p->last_routed = m;
    while (m) {
        unsigned b = (unsigned)__builtin_ctzll(m);
        m &= m - 1;
        uint32_t n;
        const uint64_t *fids = mq_route_take(p->route, b, &n);
        if (b == p->env.self && n > 0)
            mq_publish_deliver(p, msg, fids, n);
        else if (n > 0)
            send_fids(p, msg, b, fids, n);
        send_picks(p, msg, b);
    }
    return any;
}

/* Stores (or clears) the retained message, then routes it with the retain flag cleared for
 * live subscribers [MQTT-3.3.1-9] (the message's bytes never carry it). */
bool mq_publish_route(mq_proto_t *p, mq_msg_t *msg)
{
    if (msg->retain) {
        (void)mq_tindex_retain(p->env.ix, msg, p->env.ep); /* count changes are read by $SYS */
        /* journaled after the store has it; $SYS is made anew, never kept */
        mq_str_t t = mq_msg_topic(msg);
        if (p->env.jw && !mq_topic_is_sys(t.ptr, t.len))
            (void)mq_jwriter_retain(p->env.jw, msg);
    }
    return route_msg(p, msg);
}

#define BRIDGE_STATE_PREFIX "$SYS/broker/connection/"
#define BRIDGE_STATE_PREFIX_LEN (sizeof(BRIDGE_STATE_PREFIX) - 1)

/* A topic no client publishes to: the broker's $SYS tree, and "$share/..." (a shared
 * subscription's syntax, which no subscription could match as a topic), as mosquitto refuses
 * both. One exception, as in mosquitto: "$SYS/broker/connection/ID/state", where a bridge
 * (mosquitto's, connecting to this broker) publishes and wills its own state. */
static bool is_sys_topic(const char *t, size_t len)
{
    if (len >= 7 && memcmp(t, "$share/", 7) == 0)
        return true;
    if (!mq_topic_is_sys(t, len))
        return false;
    if (len > BRIDGE_STATE_PREFIX_LEN + 6 &&
        memcmp(t, BRIDGE_STATE_PREFIX, BRIDGE_STATE_PREFIX_LEN) == 0 &&
        memcmp(t + len - 6, "/state", 6) == 0) {
        const char *id = t + BRIDGE_STATE_PREFIX_LEN;
        size_t id_len = len - BRIDGE_STATE_PREFIX_LEN - 6;
        return memchr(id, '/', id_len) != NULL; /* exactly one level: a bridge's state */
    }
    return true;
}

/* check_retain_source: a retained message remembers its publisher, whose ACL rules are
 * asked again before it goes to a new subscriber (net/subscribe.c). */
static void set_src(mq_proto_t *p, mq_msg_t *msg, const mq_sess_t *s)
{
    mq_str_t user = {s->username, s->user_len};
    /* the port names the domain in persistence: a domain is a listener's, or the broker's */
    uint16_t port = s->auth_domain < p->o->n_listeners ? p->o->listeners[s->auth_domain].port : 0;
    mq_msg_set_src(msg, s->auth_domain, port, (mq_str_t){s->client_id, s->id_len},
                   s->username ? &user : NULL);
}

bool mq_publish_will_allowed(mq_proto_t *p, const mq_sess_t *owner, const mq_msg_t *will)
{
    mq_str_t wt = mq_msg_topic(will);
    if (mq_auth_may_write(mq_auth_get(p->env.auth), owner, wt.ptr, wt.len))
        return true;
    MQ_LOG(MQ_LOG_INFO, "worker=%u client=%s will on '%.*s' denied by the ACL: dropped",
           p->env.self, owner->client_id, (int)(wt.len > 64 ? 64 : wt.len), wt.ptr);
    p->cnt.pub_dropped++;
    return false;
}

void mq_publish_will(mq_proto_t *p, const mq_sess_t *owner, mq_msg_t *will, bool has_expiry,
                     uint32_t expiry_s)
{
    mq_str_t wt = mq_msg_topic(will);
    if (is_sys_topic(wt.ptr, wt.len)) /* as for a PUBLISH: $SYS is the broker's */
        return;
    if (owner && !mq_publish_will_allowed(p, owner, will))
        return;
    if (owner && will->retain && p->o->check_retain_source && will->src == NULL)
        set_src(p, will, owner);
    if (has_expiry) /* the will is still its connection's alone: not yet shared */
        will->expire_at = p->env.loop->now_ms + (uint64_t)expiry_s * 1000 + (expiry_s ? 0 : 1);
    (void)mq_publish_route(p, will);
}

/* ---- inbound PUBLISH ------------------------------------------------------------------------- */

/* The topic of a v5 PUBLISH with a Topic Alias: sets the alias, or resolves it
 * [MQTT-3.3.2-12]; false (with *rc) when the alias is out of range or unknown. */
static bool resolve_alias(client_t *cl, const mq_packet_t *pkt, mq_str_t *topic, enum mq_rc *rc)
{
    uint16_t a = pkt->props.topic_alias;
    if (a == 0 || a > cl->alias_max) {
        *rc = MQ_RC_TOPIC_ALIAS_INVALID; /* [MQTT-3.3.2-9], [MQTT-3.3.2-10] */
        return false;
    }
    if (cl->in_alias == NULL)
        cl->in_alias = mq_calloc(cl->alias_max, sizeof(*cl->in_alias));
    char **slot = &cl->in_alias[a - 1];
    if (topic->len > 0) {
        mq_free(*slot);
        *slot = mq_strndup(topic->ptr, topic->len);
        return true;
    }
    if (*slot == NULL) {
        *rc = MQ_RC_PROTOCOL_ERROR; /* an alias never set */
        return false;
    }
    *topic = (mq_str_t){*slot, strlen(*slot)};
    return true;
}

/* Whether a received PUBLISH is routed: not to $SYS, not over message_size_limit, not a
 * QoS 2 re-send before PUBREL. Dropping here still acknowledges it, as mosquitto does. */
static bool should_route(mq_proto_t *p, client_t *cl, const mq_publish_t *pub, mq_str_t topic,
                         mq_str_t seen, enum mq_rc *ack)
{
    /* 'seen': the topic as the client named it, before its listener's mount point */
    if (is_sys_topic(topic.ptr, topic.len) || is_sys_topic(seen.ptr, seen.len)) {
        /* $SYS belongs to the broker: acknowledged, never delivered (as mosquitto), so that
         * no client can forge the metrics that dashboards trust; an MQTT 5 client is told
         * 0x87 Not authorized, as mosquitto tells it */
        MQ_LOG(MQ_LOG_DEBUG, "worker=%u client=%s PUBLISH to '%.*s' ignored", p->env.self,
               cl->sess->client_id, (int)(topic.len > 64 ? 64 : topic.len), topic.ptr);
        *ack = MQ_RC_NOT_AUTHORIZED;
        return false;
    }
    if (!mq_auth_may_write(mq_auth_get(p->env.auth), cl->sess, topic.ptr, topic.len)) {
        /* mosquitto 2.0: a denied PUBLISH is dropped and, in 3.1.1, still acknowledged; an
         * MQTT 5 client is told: 0x87 Not authorized */
        MQ_LOG(MQ_LOG_DEBUG, "worker=%u client=%s PUBLISH to '%.*s' denied by the ACL", p->env.self,
               cl->sess->client_id, (int)(topic.len > 64 ? 64 : topic.len), topic.ptr);
        p->cnt.pub_dropped++;
        *ack = MQ_RC_NOT_AUTHORIZED;
        return false;
    }
    if (p->o->message_size_limit && pub->payload.len > p->o->message_size_limit) {
        /* mosquitto drops it and still acknowledges, so the client does not resend it */
        MQ_LOG(MQ_LOG_INFO,
               "worker=%u client=%s dropped PUBLISH of %zu bytes over message_size_limit",
               p->env.self, cl->sess->client_id, pub->payload.len);
        p->cnt.pub_dropped++;
        /* v5: said in the acknowledgement; 0x97 Quota exceeded, the PUBACK code for a limit
         * (mosquitto sends 0x95, which PUBACK does not allow [MQTT-3.4.2.1]) */
        *ack = MQ_RC_QUOTA_EXCEEDED;
        return false;
    }
    /* a re-send before PUBREL was delivered once already [MQTT-4.3.3-10] */
    return pub->qos != 2 || mq_sess_qos2_received(cl->sess, pub->packet_id);
}

/* A reason to refuse a PUBLISH outright (the connection ends), or MQ_RC_SUCCESS. */
static enum mq_rc refusal(mq_proto_t *p, client_t *cl, const mq_publish_t *pub)
{
    if (pub->qos > p->o->max_qos)
        return MQ_RC_QOS_NOT_SUPPORTED; /* [MQTT-3.2.2-11] */
    if (pub->retain && !p->o->retain_available)
        return MQ_RC_RETAIN_NOT_SUPPORTED; /* [MQTT-3.2.2-14] */
    if (pub->qos == 2 && cl->proto == MQ_PROTO_5 && p->o->limits.max_inflight < 65535 &&
        mq_sess_qos2_in_count(cl->sess) >= p->o->limits.max_inflight)
        return MQ_RC_RECEIVE_MAXIMUM_EXCEEDED; /* [MQTT-3.3.4-7] */
    return MQ_RC_SUCCESS;
}

/* The message a PUBLISH makes: its v5 properties, expiry and publisher kept with it; NULL
 * when it would not fit in a packet (the decoder bounded the packet, but a Topic Alias brings
 * a topic from an earlier one). */
static mq_msg_t *make_msg(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt, mq_str_t topic)
{
    const mq_publish_t *pub = &pkt->publish;
    const mq_props_t *pr = cl->proto == MQ_PROTO_5 ? &pkt->props : NULL;
    mq_msg_t *msg = mq_msg_new_props(topic.ptr, topic.len, pub->payload.ptr, pub->payload.len,
                                     pub->qos, pub->retain, pr);
    if (msg == NULL) /* over the largest packet: an alias's topic + a payload near the limit */
        return NULL;
    msg->origin = cl->sess->id_hash;
    if (pub->retain && p->o->check_retain_source)
        set_src(p, msg, cl->sess);
    if (pr && mq_props_has(pr, MQ_PROP_MESSAGE_EXPIRY))
        msg->expire_at = p->env.loop->now_ms + (uint64_t)pr->message_expiry * 1000 +
                         (pr->message_expiry ? 0 : 1);
    return msg;
}

/* memory_limit (mosquitto's): whether the heap is above it, measured at most ten times a
 * second per worker (a measurement visits every arena); a change is logged once. */
static bool over_memory_limit(mq_proto_t *p)
{
    uint64_t now = p->env.loop->now_ms;
    if (now - p->mem_checked_ms >= 100) {
        p->mem_checked_ms = now;
        size_t used = mq_mem_in_use();
        bool over = used > p->o->memory_limit;
        if (over != p->mem_over)
            MQ_LOG(over ? MQ_LOG_WARN : MQ_LOG_NOTICE,
                   "worker=%u heap %zu bytes %s memory_limit %llu: publishes %s", p->env.self, used,
                   over ? "above" : "back under", (unsigned long long)p->o->memory_limit,
                   over ? "refused" : "accepted again");
        p->mem_over = over;
    }
    return p->mem_over;
}

/* Above memory_limit a new message is not taken in: QoS 0 is dropped, an MQTT 5 QoS 1/2
 * PUBLISH is answered 0x97 Quota exceeded, and an MQTT 3.1.1 QoS 1/2 publisher, which has
 * no refusal to hear, is disconnected without an acknowledgement so that it sends the message
 * again later (mosquitto disconnects every publisher whose packet it cannot allocate). A
 * QoS 2 re-send already received is let through: its PUBREL must still find it. */
static bool refused_for_memory(mq_proto_t *p, client_t *cl, const mq_publish_t *pub)
{
    if (p->o->memory_limit == 0 || !over_memory_limit(p))
        return false;
    if (pub->qos == 2 && mq_sess_qos2_pending(cl->sess, pub->packet_id))
        return false;
    p->cnt.pub_dropped++;
    return true;
}

/* A PUBLISH whose acknowledgement promises what only the journal keeps across a crash: a
 * retained QoS 1/2 change, and a persistent session's QoS 2 packet id (so that a re-send
 * after a restart is not delivered again). */
static bool needs_journal(const client_t *cl, const mq_publish_t *pub)
{
    return (pub->retain && pub->qos > 0) || (pub->qos == 2 && !cl->sess->clean);
}

/* While the journal cannot be written (net/jwriter.h), such a PUBLISH is not taken in: its
 * acknowledgement would promise what the disk does not hold. */
static bool refused_for_journal(mq_proto_t *p, client_t *cl, const mq_publish_t *pub)
{
    /* a QoS 2 re-send too: its first record may be among those not written; its id stays
     * pending, so the re-send after the disk is back (or a PUBREL) still finds it */
    if (p->env.jw == NULL || !needs_journal(cl, pub) || !mq_jwriter_broken(p->env.jw))
        return false;
    p->cnt.pub_dropped++;
    return true;
}

int mq_publish_handle(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    const mq_publish_t *pub = &pkt->publish;
    p->cnt.pub_received++;
    p->cnt.pub_bytes_received += pub->payload.len;
    mq_str_t topic = pub->topic;
    enum mq_rc rc = refusal(p, cl, pub);
    if (rc == MQ_RC_SUCCESS && mq_props_has(&pkt->props, MQ_PROP_TOPIC_ALIAS))
        (void)resolve_alias(cl, pkt, &topic, &rc);
    mq_str_t seen = topic;
    if (rc == MQ_RC_SUCCESS && !mq_client_mount(p, cl, &topic, false))
        rc = MQ_RC_TOPIC_NAME_INVALID; /* longer than a topic can be, behind the mount point */
    if (rc != MQ_RC_SUCCESS) {
        mq_client_end_rc(p, cl, rc, true, mq_rc_str(rc));
        return MQ_CONN_CLOSED;
    }
    enum mq_rc ack = MQ_RC_SUCCESS;
    bool taken = false; /* neither refused for memory nor for the journal */
    uint64_t journaled = mq_jwriter_appended(p->env.jw);
    uint64_t refused = mq_jwriter_refused(p->env.jw);
    if (refused_for_memory(p, cl, pub)) {
        if (pub->qos > 0 && cl->proto < MQ_PROTO_5) {
            mq_client_end(cl, true, "memory_limit reached: PUBLISH not accepted");
            return MQ_CONN_CLOSED;
        }
        ack = MQ_RC_QUOTA_EXCEEDED;
    } else if (refused_for_journal(p, cl, pub)) {
        /* nothing acknowledged may be lost: such a PUBLISH waits for the disk */
        if (cl->proto < MQ_PROTO_5) {
            mq_client_end(cl, true, "persistence journal not writable: PUBLISH not accepted");
            return MQ_CONN_CLOSED;
        }
        ack = MQ_RC_UNSPECIFIED;
    } else {
        taken = true;
        p->last_routed = 0;
        if (should_route(p, cl, pub, topic, seen, &ack)) {
            /* at QoS 2 routing means the id was new: a persistent session keeps it */
            if (pub->qos == 2 && p->env.jw && !cl->sess->clean)
                (void)mq_jwriter_qos2(p->env.jw, cl->sess, pub->packet_id, true);
            mq_msg_t *msg = make_msg(p, cl, pkt, topic);
            if (msg == NULL) {
                mq_client_end_rc(p, cl, MQ_RC_PACKET_TOO_LARGE, true,
                                 "the aliased topic and the payload exceed the largest packet");
                return MQ_CONN_CLOSED;
            }
            /* v5 PUBACK: 0x10 No matching subscribers [MQTT-3.4.2.1] (PUBREC says nothing of
             * it, as mosquitto: the flow goes on to PUBREL either way) */
            if (!mq_publish_route(p, msg) && pub->qos == 1)
                ack = MQ_RC_NO_MATCHING_SUBSCRIBERS;
            mq_msg_unref(msg);
        }
        if (pub->qos > 0 && mq_jwriter_refused(p->env.jw) != refused) {
            /* copies for persistent sessions here that the journal could not take: not
             * acknowledged, so the client sends it again (at least once) */
            mq_client_end_rc(p, cl, MQ_RC_UNSPECIFIED, true,
                             "persistence journal not writable: PUBLISH not acknowledged");
            return MQ_CONN_CLOSED;
        }
    }
    if (cl->proto < MQ_PROTO_5)
        ack = MQ_RC_SUCCESS;
    if (pub->qos == 1)
        mq_client_send_ack_rc(p, cl, MQ_PUBACK, pub->packet_id, ack);
    else if (pub->qos == 2)
        mq_client_send_ack_rc(p, cl, MQ_PUBREC, pub->packet_id, ack);
    if (taken && pub->qos > 0) {
        /* the acknowledgement follows the disk: this worker's journal for a retained change,
         * a QoS 2 id (a re-send's too: its first record may still be in flight) or copies for
         * its persistent sessions; the journals of the other workers the message reached */
        mq_jwriter_hold(p->env.jw, &cl->conn, needs_journal(cl, pub), journaled);
        if (p->env.jw && mq_jwriter_gates(p->env.jw))
            mq_marks_gate(p, &cl->conn, p->last_routed);
    }
    return MQ_CONN_OK;
}

/* ---- acknowledgements ------------------------------------------------------------------------ */

void mq_publish_on_ack(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    mq_sess_t *s = cl->sess;
    uint16_t id = pkt->ack.packet_id;
    enum mq_rc rc;
    if (pkt->type == MQ_PUBACK)
        rc = mq_sess_on_puback(s, id);
    else if (pkt->type == MQ_PUBREC && pkt->ack.rc >= 0x80)
        rc = mq_sess_on_pubrec_failed(s, id); /* v5: the flow ends here [MQTT-4.3.3] */
    else if (pkt->type == MQ_PUBREC)
        rc = mq_sess_on_pubrec(s, id);
    else
        rc = mq_sess_on_pubcomp(s, id);
    if (rc != MQ_RC_SUCCESS) {
        MQ_LOG(MQ_LOG_DEBUG, "worker=%u client=%s %s for unknown packet id %u", p->env.self,
               s->client_id, mq_ptype_str(pkt->type), id);
        if (pkt->type == MQ_PUBREC && pkt->ack.rc < 0x80) /* as mosquitto: let it finish */
            mq_client_send_ack_rc(p, cl, MQ_PUBREL, id,
                                  cl->proto == MQ_PROTO_5 ? MQ_RC_PACKET_ID_NOT_FOUND : 0);
    }
    mq_conn_mark_dirty(&cl->conn);
}

void mq_publish_on_pubrel(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    mq_jwriter_t *jw = cl->sess->clean ? NULL : p->env.jw;
    if (jw && mq_jwriter_broken(jw) && mq_sess_qos2_pending(cl->sess, pkt->ack.packet_id)) {
        /* the release cannot be journaled: no PUBCOMP (the id stays; the client sends PUBREL
         * again when it is back) */
        mq_client_end(cl, true, "persistence journal not writable: PUBREL not completed");
        return;
    }
    bool known = mq_sess_qos2_released(cl->sess, pkt->ack.packet_id);
    if (known && jw)
        (void)mq_jwriter_qos2(jw, cl->sess, pkt->ack.packet_id, false);
    enum mq_rc rc = known || cl->proto < MQ_PROTO_5 ? MQ_RC_SUCCESS : MQ_RC_PACKET_ID_NOT_FOUND;
    mq_client_send_ack_rc(p, cl, MQ_PUBCOMP, pkt->ack.packet_id, rc);
    mq_jwriter_hold(jw, &cl->conn, true, 0); /* a stale id must not outlive its PUBCOMP */
}
