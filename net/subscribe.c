/* SPDX-License-Identifier: MIT */
/* net/subscribe.c - SUBSCRIBE and UNSUBSCRIBE: options, retained messages, reason codes. */
#include "net/subscribe.h"

#include "core/log.h"
#include "core/mem.h"
#include "core/topic.h"
#include "net/auth.h"
#include "net/jwriter.h"

typedef struct retained_ctx {
    mq_proto_t *p;
    mq_sess_t *s;
    uint8_t qos;
    bool upgrade;
    uint8_t grant; /* the subscription's class: a partial one checks each retained message */
    uint32_t sub_id;
} retained_ctx_t;

static void send_retained(void *arg, mq_msg_t *msg)
{
    retained_ctx_t *rc = arg;
    mq_str_t t = mq_msg_topic(msg);
    const mq_auth_t *a = mq_auth_get(rc->p->env.auth);
    if (rc->grant != MQ_ACL_GRANT_FULL && !mq_auth_may_read(a, rc->s, t.ptr, t.len))
        return;
    const mq_msg_src_t *src = msg->src;
    if (src && rc->p->o->check_retain_source) {
        /* its publisher may no longer publish it (an ACL reloaded since): not sent, as
         * mosquitto's check_retain_source (CVE-2018-12546) */
        mq_str_t user = {src->bytes + src->id_len, src->user_len};
        if (!mq_auth_may_write_as(a, src->domain, src->has_user ? &user : NULL,
                                  (mq_str_t){src->bytes, src->id_len}, t.ptr, t.len))
            return;
    }
    uint8_t q = rc->upgrade || rc->qos < msg->qos ? rc->qos : msg->qos;
    /* [MQTT-3.3.1-8] retained messages go out with the retain flag set; a drop (expired,
     * over the limits) is counted in the session */
    (void)mq_sess_deliver_ids(rc->s, msg, q, true, &rc->sub_id, rc->sub_id ? 1 : 0);
}

/* The reason code for one entry, or its granted QoS (and the subscription is made).
 * *shared says whether it is a shared subscription: no retained messages are sent for
 * those (MQTT 5 §4.8.2). */
static uint8_t subscribe_one(mq_proto_t *p, client_t *cl, const mq_sub_entry_t *e, uint32_t sub_id,
                             bool *is_new, bool *shared)
{
    mq_sess_t *s = cl->sess;
    bool v5 = cl->proto == MQ_PROTO_5;
    mq_str_t share, rest;
    *shared = e->rc == MQ_RC_SUCCESS &&
              mq_topic_split_shared(e->filter.ptr, e->filter.len, &share, &rest);
    if (e->rc != MQ_RC_SUCCESS) {
        MQ_LOG(MQ_LOG_INFO, "worker=%u client=%s refused subscription '%.*s'", p->env.self,
               s->client_id, (int)(e->filter.len > 64 ? 64 : e->filter.len), e->filter.ptr);
        return v5 ? e->rc : 0x80; /* 0x8F Topic Filter invalid */
    }
    mq_str_t f = *shared ? rest : e->filter; /* the ACL reads the filter proper */
    enum mq_acl_grant g = mq_auth_classify(mq_auth_get(p->env.auth), s, f.ptr, f.len);
    if (g == MQ_ACL_GRANT_NONE) { /* nothing it matches is readable: refused, not kept */
        MQ_LOG(MQ_LOG_INFO, "worker=%u client=%s subscription '%.*s' denied by the ACL",
               p->env.self, s->client_id, (int)(e->filter.len > 64 ? 64 : e->filter.len),
               e->filter.ptr);
        return v5 ? MQ_RC_NOT_AUTHORIZED : 0x80;
    }
    uint8_t qos = e->qos < p->o->max_qos ? e->qos : p->o->max_qos;
    MQ_LOG(MQ_LOG_SUBSCRIBE, "%s %u %.*s", s->client_id, qos, (int)e->filter.len,
           e->filter.ptr); /* mosquitto's format: client qos filter */
    mq_route_opts_t o = {.flags = (uint8_t)((e->no_local ? MQ_SUB_NO_LOCAL : 0) |
                                            (e->retain_as_published ? MQ_SUB_RAP : 0)),
                         .sub_id = sub_id};
    mq_sub_t *sub = mq_route_subscribe(p->route, s, e->filter.ptr, e->filter.len, qos, &o, is_new);
    mq_route_set_grant(p->route, s, sub, (uint8_t)g);
    if (p->env.jw && !s->clean)
        (void)mq_jwriter_sub(p->env.jw, s, sub, e->filter);
    return qos;
}

/* No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4]. */
static bool no_local_on_shared(const mq_packet_t *pkt, uint8_t proto)
{
    size_t pos = 0;
    mq_sub_entry_t e;
    mq_str_t share, rest;
    while (mq_sub_next(pkt, proto, &pos, &e))
        if (e.no_local && mq_topic_split_shared(e.filter.ptr, e.filter.len, &share, &rest))
            return true;
    return false;
}

void mq_subscribe_handle(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    if (cl->proto == MQ_PROTO_5 && no_local_on_shared(pkt, cl->proto)) {
        mq_client_end_rc(p, cl, MQ_RC_PROTOCOL_ERROR, true, "No Local on a shared subscription");
        return;
    }
    uint64_t journaled = mq_jwriter_appended(p->env.jw);
    uint32_t sub_id =
        mq_props_has(&pkt->props, MQ_PROP_SUBSCRIPTION_ID) ? pkt->props.subscription_id : 0;
    uint32_t n = 0;
    size_t pos = 0;
    mq_sub_entry_t e;
    while (mq_sub_next(pkt, cl->proto, &pos, &e)) {
        if (n == p->cap_codes) {
            p->codes = mq_grow(p->codes, &p->cap_codes, 1, 16);
            p->fresh = mq_realloc(p->fresh, p->cap_codes);
        }
        if (e.rc == MQ_RC_SUCCESS && !mq_client_mount(p, cl, &e.filter, true))
            e.rc = MQ_RC_TOPIC_FILTER_INVALID; /* too long behind the mount point */
        bool is_new = false, shared = false;
        p->codes[n] = subscribe_one(p, cl, &e, sub_id, &is_new, &shared);
        p->fresh[n++] = shared ? 2 : is_new; /* 2: no retained messages at all */
    }
    /* SUBACK first, then the retained messages of each filter [MQTT-3.8.4-1..-5], as
     * Retain Handling asks: 0 always, 1 only for a new subscription, 2 never */
    mq_codec_append_suback(mq_conn_out(&cl->conn), cl->proto, pkt->subscribe.packet_id, p->codes, n,
                           NULL);
    p->cnt.msgs_sent++;
    /* a persistent session's SUBACK follows the disk (and the retained messages after it) */
    mq_jwriter_hold(p->env.jw, &cl->conn, !cl->sess->clean, journaled);
    pos = 0;
    for (uint32_t i = 0; i < n && mq_sub_next(pkt, cl->proto, &pos, &e); i++) {
        if (p->codes[i] >= 0x80 || p->fresh[i] == 2 /* shared: never [MQTT-4.8.2] */ ||
            e.retain_handling == 2 || (e.retain_handling == 1 && !p->fresh[i]))
            continue;
        (void)mq_client_mount(p, cl, &e.filter, true); /* it fitted in the first pass */
        mq_sub_t *sub = mq_sess_find_sub(cl->sess, e.filter.ptr, e.filter.len);
        retained_ctx_t rc = {p,
                             cl->sess,
                             p->codes[i],
                             p->o->upgrade_outgoing_qos,
                             sub ? sub->grant : (uint8_t)MQ_ACL_GRANT_FULL,
                             sub_id};
        mq_tindex_retained(p->env.ix, e.filter.ptr, e.filter.len, send_retained, &rc);
    }
    mq_conn_mark_dirty(&cl->conn);
}

void mq_unsubscribe_handle(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    uint64_t journaled = mq_jwriter_appended(p->env.jw);
    uint32_t n = 0;
    size_t pos = 0;
    mq_sub_entry_t e;
    while (mq_sub_next(pkt, cl->proto, &pos, &e)) {
        bool fits = mq_client_mount(p, cl, &e.filter, true);
        MQ_LOG(MQ_LOG_UNSUBSCRIBE, "%s %.*s", cl->sess->client_id, (int)e.filter.len, e.filter.ptr);
        bool had = fits && mq_route_unsubscribe(p->route, cl->sess, e.filter.ptr, e.filter.len);
        if (had && p->env.jw && !cl->sess->clean)
            (void)mq_jwriter_sub(p->env.jw, cl->sess, NULL, e.filter);
        if (n == p->cap_codes) {
            p->codes = mq_grow(p->codes, &p->cap_codes, 1, 16);
            p->fresh = mq_realloc(p->fresh, p->cap_codes);
        }
        p->codes[n++] = had ? MQ_RC_SUCCESS : MQ_RC_NO_SUBSCRIPTION_EXISTED; /* v5 only */
    }
    bool v5 = cl->proto == MQ_PROTO_5;
    mq_codec_append_unsuback(mq_conn_out(&cl->conn), cl->proto, pkt->subscribe.packet_id,
                             v5 ? p->codes : NULL, v5 ? n : 0, NULL);
    p->cnt.msgs_sent++;
    mq_jwriter_hold(p->env.jw, &cl->conn, !cl->sess->clean, journaled);
    mq_conn_mark_dirty(&cl->conn);
}
