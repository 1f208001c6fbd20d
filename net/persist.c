/* SPDX-License-Identifier: MIT */
/* net/persist.c - a worker's side of persistence: restoring the kept sessions it owns at
 * start-up, and showing its sessions to a snapshot (broker/persist.c writes the file). */
#include <string.h>
#include <xxhash.h>

#include "core/jrec.h"
#include "core/replay.h"
#include "core/topic.h"
#include "net/auth.h"
#include "net/client.h"
#include "net/proto.h"
#include "net/will.h"

typedef struct visit {
    mq_proto_t *p;
    const mq_proto_visit_t *v;
} visit_t;

static void visit_will(void *arg, const pending_will_t *w)
{
    const visit_t *vi = arg;
    const mq_sess_t *s =
        mq_route_find(vi->p->route, w->client_id, strlen(w->client_id), w->id_hash);
    if (s) /* a will waits for its delay only while its session lives */
        vi->v->cb(vi->v->arg, vi->p->env.self, s, w->will, w->fire_at);
}

void mq_proto_visit(mq_proto_t *p, const mq_proto_visit_t *v)
{
    size_t pos = 0;
    for (mq_sess_t *s; (s = mq_route_next(p->route, &pos)) != NULL;)
        v->cb(v->arg, p->env.self, s, NULL, 0);
    visit_t vi = {p, v};
    mq_will_each(p, visit_will, &vi);
}

typedef struct restore {
    mq_proto_t *p;
    int64_t wall;
    size_t n; /* sessions restored */
} restore_t;

static void restore_subs(mq_proto_t *p, mq_sess_t *s, const mq_replay_sess_t *rs)
{
    for (uint32_t i = 0; i < rs->n_subs; i++) {
        const mq_replay_sub_t *sub = &rs->subs[i];
        mq_route_opts_t o = {
            .flags = (uint8_t)((sub->options & MQ_JREC_SUBOPT_NO_LOCAL ? MQ_SUB_NO_LOCAL : 0) |
                               (sub->options & MQ_JREC_SUBOPT_RAP ? MQ_SUB_RAP : 0)),
            .sub_id = sub->sub_id};
        bool is_new;
        (void)mq_route_subscribe(p->route, s, sub->filter.ptr, sub->filter.len,
                                 sub->options & MQ_JREC_SUBOPT_QOS, &o, &is_new);
    }
    /* what the ACL in force grants the session's user (without an ACL: everything) */
    (void)mq_auth_reclassify_sess(mq_auth_get(p->env.auth), p->route, s);
    mq_route_set_online(p->route, s, false); /* no connection until its client returns */
}

/* The Subscription Identifiers a message on 'topic' is delivered with: those of the
 * session's matching subscriptions (the snapshot does not keep them per message; the
 * subscriptions are the ones it was queued for). Returns how many, at most 'cap'. */
static uint32_t sub_ids_for(const mq_sess_t *s, mq_str_t topic, uint32_t *ids, uint32_t cap)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->n_subs && n < cap; i++) {
        const mq_sub_t *sub = &s->subs[i];
        mq_str_t f = {mq_sub_filter(sub), sub->len}, rest;
        if (mq_topic_split_shared(f.ptr, f.len, &(mq_str_t){0}, &rest))
            f = rest;
        if (sub->sub_id && mq_topic_matches(f.ptr, f.len, topic.ptr, topic.len))
            ids[n++] = sub->sub_id;
    }
    return n;
}

/* Messages in flight first (their packet ids and states kept), then the queue, in order. */
static void restore_msgs(mq_proto_t *p, mq_sess_t *s, const mq_replay_sess_t *rs, int64_t wall)
{
    uint64_t now = p->env.loop->now_ms;
    uint32_t ids[64];
    for (uint32_t i = 0; i < rs->n_out; i++) {
        const mq_replay_out_t *o = &rs->out[i];
        bool retain = o->flags & MQ_JREC_MSG_RETAIN;
        mq_msg_t *m = NULL;
        if (o->state != MQ_OUT_PUBREL) { /* past PUBREC only the packet id matters */
            m = mq_replay_msg_new(&o->msg, false, wall, now);
            if (m == NULL)
                continue;
        }
        uint32_t n = m ? sub_ids_for(s, o->msg.topic, ids, 64) : 0;
        if (o->packet_id != 0)
            mq_sess_restore_inflight(s, m, o->msg.qos, retain, o->packet_id, o->state, ids, n,
                                     o->mid);
        else
            (void)mq_sess_restore_queued(s, m, o->msg.qos, retain, ids, n, o->mid);
        mq_msg_unref(m);
    }
    for (uint32_t i = 0; i < rs->n_qos2_in; i++)
        (void)mq_sess_qos2_received(s, rs->qos2_in[i]);
}

/* A will that was waiting for its delay waits for the rest of it (published at the first
 * tick when it came due while the broker was down). */
static void restore_will(mq_proto_t *p, const mq_sess_t *s, const mq_jrec_sess_t *in, int64_t wall)
{
    if (!in->has_will)
        return;
    uint64_t now = p->env.loop->now_ms;
    mq_msg_t *w = mq_replay_msg_new(&in->will, in->will_retain, wall, now);
    if (w == NULL)
        return;
    int64_t left = in->disconnected_at + (int64_t)in->will_delay - wall;
    mq_will_defer(p, s->client_id, s->id_len, s->id_hash, w,
                  now + (left > 0 ? (uint64_t)left * 1000u : 0));
}

static void restore_one(void *arg, mq_replay_sess_t *rs)
{
    restore_t *r = arg;
    mq_proto_t *p = r->p;
    const mq_jrec_sess_t *in = &rs->info;
    uint64_t h = XXH3_64bits(in->client_id.ptr, in->client_id.len);
    if (h % p->env.n_workers != p->env.self || in->clean || in->expiry_interval == 0)
        return; /* another worker's, or a session that ended with its connection */
    uint64_t now = p->env.loop->now_ms;
    uint64_t expire_at = 0;
    if (in->expiry_interval != 0xFFFFFFFFu) {
        /* connected when last written (a journal's SESS_PUT): counted from the restart */
        int64_t since = in->disconnected_at ? in->disconnected_at : r->wall;
        if (in->has_will && in->disconnected_at) /* rounded down when written (a journaled
                                                    will): its session never ends early */
            since++;
        int64_t left = since + (int64_t)in->expiry_interval - r->wall;
        if (left <= 0 && !in->has_will)
            return; /* expired while the broker was down */
        /* one with a waiting will ends at the first tick, which publishes the will (a will
         * goes when its session ends, if that is before its delay [MQTT-3.1.3-9]), as the
         * session's owner: the ACL in force decides */
        expire_at = now + (left > 0 ? (uint64_t)left * 1000u : 0);
    }
    mq_sess_t *s = mq_sess_new(in->client_id.ptr, in->client_id.len, h, false, &p->home);
    s->expiry_s = in->expiry_interval;
    s->expire_at = expire_at;
    if (in->has_username)
        mq_sess_set_username(s, in->username.ptr, in->username.len);
    mq_route_add(p->route, s);
    restore_subs(p, s, rs);
    restore_msgs(p, s, rs, r->wall);
    restore_will(p, s, in, r->wall);
    r->n++;
}

size_t mq_proto_restore(mq_proto_t *p, const struct mq_replay *rp, int64_t wall)
{
    restore_t r = {p, wall, 0};
    mq_replay_each_sess(rp, restore_one, &r);
    return r.n;
}
