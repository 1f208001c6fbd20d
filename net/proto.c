/* SPDX-License-Identifier: MIT */
/* net/proto.c - MQTT 3.1/3.1.1 broker behaviour: CONNECT, sessions, routing, subscriptions. */
#include "net/server_internal.h"

#include <string.h>
#include <sys/random.h>
#include <xxhash.h>

#include "core/deadline.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/topic.h"

/* ---- sessions by client id ------------------------------------------------------------------- */

static mq_sess_t *find_sess(mq_worker_t *w, const char *id, size_t len, uint64_t h)
{
    for (mq_sess_t *s = mq_map_get(&w->sessions, h); s; s = s->next_in_bucket)
        if (s->id_len == len && memcmp(s->client_id, id, len) == 0)
            return s;
    return NULL;
}

static void insert_sess(mq_worker_t *w, mq_sess_t *s)
{
    w->n_sessions++;
    s->next_in_bucket = mq_map_get(&w->sessions, s->id_hash);
    mq_map_put(&w->sessions, s->id_hash, s);
}

static void unlink_sess(mq_worker_t *w, mq_sess_t *s)
{
    mq_sess_t *head = mq_map_get(&w->sessions, s->id_hash);
    if (head == s) {
        if (s->next_in_bucket)
            mq_map_put(&w->sessions, s->id_hash, s->next_in_bucket);
        else
            mq_map_del(&w->sessions, s->id_hash);
        return;
    }
    for (mq_sess_t *p = head; p; p = p->next_in_bucket) {
        if (p->next_in_bucket == s) {
            p->next_in_bucket = s->next_in_bucket;
            return;
        }
    }
}

/* ---- this worker's filter table (filter id -> subscribed sessions) -------------------------- */

static void lfilter_add(mq_worker_t *w, uint64_t fid, mq_sess_t *s, uint8_t qos)
{
    mq_lfilter_t *lf = mq_map_get(&w->filters, fid);
    if (lf == NULL) {
        lf = mq_calloc(1, sizeof(*lf));
        lf->fid = fid;
        mq_map_put(&w->filters, fid, lf);
    }
    if (lf->n == lf->cap) {
        lf->cap = lf->cap ? lf->cap * 2 : 4;
        lf->subs = mq_realloc(lf->subs, lf->cap * sizeof(*lf->subs));
    }
    lf->subs[lf->n++] = (mq_lsub_t){s, qos};
}

static void lfilter_set_qos(mq_worker_t *w, uint64_t fid, mq_sess_t *s, uint8_t qos)
{
    mq_lfilter_t *lf = mq_map_get(&w->filters, fid);
    for (uint32_t i = 0; lf && i < lf->n; i++)
        if (lf->subs[i].sess == s)
            lf->subs[i].qos = qos;
}

/* Removes 's' from the filter; when no session of this worker is left on it, this worker's
 * interest bit in the shared index goes too. */
static void unsubscribe_one(mq_worker_t *w, mq_sess_t *s, mq_sub_t *sub)
{
    mq_lfilter_t *lf = mq_map_get(&w->filters, sub->fid);
    if (lf) {
        /* linear in the filter's local subscribers: fine for subscribe-time work; a
         * back-index would make it O(1) for very large fan-outs (noted in issue 3) */
        for (uint32_t i = 0; i < lf->n; i++) {
            if (lf->subs[i].sess == s) {
                lf->subs[i] = lf->subs[--lf->n];
                break;
            }
        }
        if (lf->n == 0) {
            mq_map_del(&w->filters, sub->fid);
            mq_free(lf->subs);
            mq_free(lf);
            mq_tindex_remove_interest(w->srv->ix, sub->filter, sub->len, w->idx, w->ep);
        }
    }
    mq_sess_remove_sub(s, sub);
}

static void destroy_sess(mq_worker_t *w, mq_sess_t *s)
{
    while (s->n_subs > 0)
        unsubscribe_one(w, s, &s->subs[s->n_subs - 1]);
    unlink_sess(w, s);
    w->n_sessions--;
    w->cnt.retired.dropped += s->stats.dropped;
    w->cnt.retired.publish_sent += s->stats.publish_sent;
    w->cnt.retired.publish_bytes += s->stats.publish_bytes;
    w->cnt.retired.packets_sent += s->stats.packets_sent;
    mq_sess_free(s);
}

void mq_proto__fini(mq_worker_t *w)
{
    for (size_t i = 0; i < w->sessions.cap; i++) {
        mq_sess_t *s = w->sessions.slots[i].key ? w->sessions.slots[i].val : NULL;
        while (s) {
            mq_sess_t *next = s->next_in_bucket;
            for (uint32_t k = 0; k < s->n_subs; k++)
                mq_tindex_remove_interest(w->srv->ix, s->subs[k].filter, s->subs[k].len, w->idx,
                                          w->ep);
            mq_sess_free(s);
            s = next;
        }
    }
    mq_map_fini(&w->sessions);
    for (size_t i = 0; i < w->filters.cap; i++) {
        if (w->filters.slots[i].key) {
            mq_lfilter_t *lf = w->filters.slots[i].val;
            mq_free(lf->subs);
            mq_free(lf);
        }
    }
    mq_map_fini(&w->filters);
}

/* ---- routing -----------------------------------------------------------------------------------
 */

static void push_dsess(mq_worker_t *w, mq_sess_t *s)
{
    if (w->n_dsess == w->cap_dsess) {
        w->cap_dsess = w->cap_dsess ? w->cap_dsess * 2 : 64;
        w->dsess = mq_realloc(w->dsess, w->cap_dsess * sizeof(*w->dsess));
    }
    w->dsess[w->n_dsess++] = s;
}

void mq_proto__deliver(mq_worker_t *w, mq_msg_t *msg, const uint64_t *fids, uint32_t n)
{
    const mq_server_opts_t *o = &w->srv->opts;
    uint64_t stamp = ++w->stamp;
    w->n_dsess = 0;
    /* one delivery per session, at the highest QoS of its matching subscriptions
     * (overlapping subscriptions, MQTT 3.1.1 §3.3.5) */
    for (uint32_t i = 0; i < n; i++) {
        mq_lfilter_t *lf = mq_map_get(&w->filters, fids[i]);
        if (lf == NULL)
            continue; /* unsubscribed since the publisher matched */
        for (uint32_t k = 0; k < lf->n; k++) {
            mq_sess_t *s = lf->subs[k].sess;
            uint8_t q = o->upgrade_outgoing_qos      ? lf->subs[k].qos
                        : lf->subs[k].qos < msg->qos ? lf->subs[k].qos
                                                     : msg->qos;
            if (s->stamp != stamp) {
                s->stamp = stamp;
                s->stamp_qos = q;
                push_dsess(w, s);
            } else if (q > s->stamp_qos) {
                s->stamp_qos = q;
            }
        }
    }
    for (uint32_t i = 0; i < w->n_dsess; i++) {
        mq_sess_t *s = w->dsess[i];
        (void)mq_sess_deliver(s, msg, s->stamp_qos, false); /* a drop is in s->stats */
        if (s->conn)
            mq_worker__mark_dirty(w, s->conn);
    }
}

static void collect(void *arg, uint64_t fid, uint64_t workers)
{
    mq_worker_t *w = arg;
    mq_match_entry_t *rec = w->mrec;
    if (rec) { /* remember the pair for the cache; too many and the result is not kept */
        if (rec->n < MQ_MATCH_CACHE_PAIRS) {
            rec->fid[rec->n] = fid;
            rec->workers[rec->n] = workers;
            rec->n++;
        } else {
            w->mrec = NULL;
            rec->gen = 0;
        }
    }
    while (workers) {
        unsigned b = (unsigned)__builtin_ctzll(workers);
        workers &= workers - 1;
        if (w->n_tfids[b] == w->cap_tfids[b]) {
            w->cap_tfids[b] = w->cap_tfids[b] ? w->cap_tfids[b] * 2 : 16;
            w->tfids[b] = mq_realloc(w->tfids[b], w->cap_tfids[b] * sizeof(uint64_t));
        }
        w->tfids[b][w->n_tfids[b]++] = fid;
        w->touched |= 1ull << b;
    }
}

/* Matches 'topic' against the shared index, or replays the cached result for it when the
 * index has not changed since (a publisher usually repeats its topics). The generation is
 * read before matching: a change during the match leaves the entry stale, never wrong. */
static void match_cached(mq_worker_t *w, mq_str_t t)
{
    mq_tindex_t *ix = w->srv->ix;
    if (t.len > MQ_MATCH_CACHE_TOPIC) {
        mq_tindex_match(ix, t.ptr, t.len, collect, w);
        return;
    }
    uint64_t gen = mq_tindex_generation(ix);
    uint64_t h = XXH3_64bits(t.ptr, t.len);
    mq_match_entry_t *e = &w->mcache[h & (MQ_MATCH_CACHE_SLOTS - 1)];
    if (e->gen == gen && e->hash == h && e->tlen == t.len && memcmp(e->topic, t.ptr, t.len) == 0) {
        for (uint8_t i = 0; i < e->n; i++)
            collect(w, e->fid[i], e->workers[i]);
        return;
    }
    e->gen = 0;
    e->n = 0;
    w->mrec = e;
    mq_tindex_match(ix, t.ptr, t.len, collect, w);
    if (w->mrec) { /* complete: keep it */
        e->hash = h;
        e->tlen = (uint16_t)t.len;
        memcpy(e->topic, t.ptr, t.len);
        e->gen = gen;
    }
    w->mrec = NULL;
}

/* Matches 'msg' once against the shared index and hands each interested worker one entry
 * {message reference, filter ids} (DESIGN.md rule 3). */
static void route(mq_worker_t *w, mq_msg_t *msg)
{
    mq_str_t t = mq_msg_topic(msg);
    w->touched = 0;
    match_cached(w, t);
    uint64_t m = w->touched;
    while (m) {
        unsigned b = (unsigned)__builtin_ctzll(m);
        m &= m - 1;
        uint32_t n = w->n_tfids[b];
        w->n_tfids[b] = 0;
        if (b == w->idx) {
            mq_proto__deliver(w, msg, w->tfids[b], n);
            continue;
        }
        mq_ring_entry_t e = {.type = MQ_RE_DELIVER, .n = n, .ptr = mq_msg_ref(msg)};
        if (n <= MQ_RING_INLINE) {
            memcpy(e.a, w->tfids[b], n * sizeof(uint64_t));
        } else { /* rare: many distinct filters of one worker match */
            uint64_t *ids = mq_alloc(n * sizeof(uint64_t));
            memcpy(ids, w->tfids[b], n * sizeof(uint64_t));
            e.a[0] = (uint64_t)(uintptr_t)ids;
        }
        mq_worker__send(w, b, &e);
    }
}

/* Stores (or clears) the retained message, then routes it with the retain flag cleared for
 * live subscribers [MQTT-3.3.1-9] (the message's bytes never carry it). */
void mq_proto__publish(mq_worker_t *w, mq_msg_t *msg)
{
    if (msg->retain)
        (void)mq_tindex_retain(w->srv->ix, msg, w->ep); /* count changes are read by $SYS */
    route(w, msg);
}

/* ---- output helpers ----------------------------------------------------------------------------
 */

static void out_ack(mq_conn_t *c, uint8_t type, uint16_t packet_id)
{
    uint8_t b[4] = {(uint8_t)(type << 4 | (type == MQ_PUBREL ? 0x02 : 0)), 2,
                    (uint8_t)(packet_id >> 8), (uint8_t)packet_id};
    mq_buf_append(&c->out, b, sizeof(b));
    c->w->cnt.msgs_sent++;
    mq_worker__mark_dirty(c->w, c);
}

static void out_connack(mq_conn_t *c, bool session_present, uint8_t rc)
{
    /* 3.1 has no session present flag: its first byte is reserved */
    uint8_t b[4] = {MQ_CONNACK << 4, 2,
                    (uint8_t)(session_present && c->proto >= MQ_PROTO_311 ? 1 : 0), rc};
    mq_buf_append(&c->out, b, sizeof(b));
    c->w->cnt.msgs_sent++;
    mq_worker__mark_dirty(c->w, c);
}

/* 3.1.1 CONNACK return codes (§3.2.2.3). */
enum {
    CONNACK_ACCEPTED = 0,
    CONNACK_BAD_PROTOCOL = 1,
    CONNACK_ID_REJECTED = 2,
    CONNACK_UNAVAILABLE = 3,
    CONNACK_BAD_CREDENTIALS = 4,
    CONNACK_NOT_AUTHORIZED = 5,
};

/* ---- CONNECT ----------------------------------------------------------------------------------
 */

static void refuse(mq_conn_t *c, uint8_t code, const char *why)
{
    out_connack(c, false, code);
    mq_worker__close(c, false, why);
}

/* Ends the link between 'c' and its session: the one place the online count goes down (it
 * went up when the session was attached). */
static void detach(mq_conn_t *c)
{
    mq_sess_detach(c->sess);
    c->sess = NULL;
    c->w->n_online--;
}

/* An identifier for a client that sent none, chosen so that this worker owns it. */
static size_t make_client_id(mq_worker_t *w, char *buf, size_t cap)
{
    const char *prefix = w->srv->auto_id_prefix;
    for (;;) {
        uint64_t r;
        if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
            r = XXH3_64bits(&w->next_auto_id, sizeof(w->next_auto_id)) ^ w->now_ms;
        r ^= ++w->next_auto_id;
        int n = snprintf(buf, cap, "%s%016llx", prefix, (unsigned long long)r);
        size_t len = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
        if (XXH3_64bits(buf, len) % w->srv->n_workers == w->idx)
            return len;
    }
}

static int handle_connect(mq_conn_t *c, const mq_packet_t *pkt)
{
    mq_worker_t *w = c->w;
    const mq_server_opts_t *o = &w->srv->opts;
    const mq_connect_t *cp = &pkt->connect;
    c->proto = cp->level;
    if (cp->level == MQ_PROTO_5) {
        /* MQTT 5 semantics are their own issue: refuse plainly rather than half-serve */
        uint8_t b[] = {MQ_CONNACK << 4, 3, 0, MQ_RC_UNSUPPORTED_PROTOCOL_VERSION, 0};
        mq_buf_append(&c->out, b, sizeof(b));
        mq_worker__close(c, false, "MQTT 5 is not supported yet");
        return MQ_BYTES_CLOSED;
    }
    if (o->max_keepalive && cp->keep_alive > o->max_keepalive) {
        /* mosquitto.conf(5): a 3.1.1 client asking for more than max_keepalive is refused
         * with "identifier rejected", there being no way to tell it a lower value */
        refuse(c, CONNACK_ID_REJECTED, "keepalive above max_keepalive");
        return MQ_BYTES_CLOSED;
    }
    char idbuf[128];
    const char *id = cp->client_id.ptr;
    size_t id_len = cp->client_id.len;
    if (id_len == 0) {
        /* [MQTT-3.1.3-7], [MQTT-3.1.3-8]; 3.1 requires an identifier */
        if (cp->level == MQ_PROTO_31 || !cp->clean_start || !o->allow_zero_length_clientid) {
            refuse(c, CONNACK_ID_REJECTED, "empty client identifier");
            return MQ_BYTES_CLOSED;
        }
        id_len = make_client_id(w, idbuf, sizeof(idbuf));
        id = idbuf;
    }
    if (!o->allow_anonymous) {
        /* no authentication backend exists yet (password_file is refused at start-up), so
         * with anonymous access off nobody may connect, as with mosquitto */
        refuse(c, CONNACK_NOT_AUTHORIZED, "not authorised (allow_anonymous false)");
        return MQ_BYTES_CLOSED;
    }
    uint64_t h = XXH3_64bits(id, id_len);
    unsigned owner = (unsigned)(h % w->srv->n_workers);
    if (owner != w->idx) {
        /* the session lives on its owner: move the connection there with the bytes read so
         * far (DESIGN.md rule 1); it re-decodes the CONNECT from them */
        c->handoff_to = (uint8_t)owner;
        return MQ_BYTES_GONE;
    }
    if (cp->has_will) {
        c->will = mq_msg_new(cp->will_topic.ptr, cp->will_topic.len, cp->will_payload.ptr,
                             cp->will_payload.len, cp->will_qos, cp->will_retain);
        if (c->will == NULL) {
            refuse(c, CONNACK_UNAVAILABLE, "will too large");
            return MQ_BYTES_CLOSED;
        }
        c->will_qos = cp->will_qos;
        c->will_retain = cp->will_retain;
    }
    c->keep_alive = cp->keep_alive;
    mq_sess_t *s = find_sess(w, id, id_len, h);
    if (s && s->conn) { /* take-over [MQTT-3.1.4-2]: the old connection ends, with its will */
        mq_conn_t *old = s->conn;
        detach(old); /* its close then leaves the session alone */
        mq_worker__close(old, true, "session taken over");
    }
    /* a clean session ends with its connection [MQTT-3.1.2-6], even when a persistent
     * CONNECT takes it over; a clean CONNECT discards any state */
    if (s && (cp->clean_start || s->clean)) {
        destroy_sess(w, s);
        s = NULL;
    }
    bool present = s != NULL;
    if (s == NULL) {
        s = mq_sess_new(id, id_len, h, cp->clean_start, &o->limits);
        insert_sess(w, s);
    }
    s->clean = cp->clean_start;
    c->sess = s;
    c->state = MQ_CONN_ACTIVE;
    mq_buf_fini(&c->pre);
    w->n_online++;
    w->cnt.connects++;
    out_connack(c, present, CONNACK_ACCEPTED);
    mq_sess_attach(s, &c->out, c); /* re-sends in-flight and queued messages after CONNACK */
    if (o->connection_messages)
        MQ_LOG(MQ_LOG_NOTICE, "New client connected from %s as %s (p%d, c%d, k%u).", c->peer,
               s->client_id, cp->level == MQ_PROTO_31 ? 1 : 2, cp->clean_start ? 1 : 0,
               cp->keep_alive);
    return MQ_BYTES_OK;
}

/* ---- PUBLISH and acknowledgements ------------------------------------------------------------ */

static bool is_sys_topic(const char *t, size_t len)
{
    return len >= 4 && memcmp(t, "$SYS", 4) == 0 && (len == 4 || t[4] == '/');
}

static int handle_publish(mq_conn_t *c, const mq_packet_t *pkt)
{
    mq_worker_t *w = c->w;
    const mq_server_opts_t *o = &w->srv->opts;
    const mq_publish_t *p = &pkt->publish;
    w->cnt.pub_received++;
    w->cnt.pub_bytes_received += p->payload.len;
    if (p->qos > o->max_qos) {
        mq_worker__close(c, true, "PUBLISH QoS above max_qos");
        return MQ_BYTES_CLOSED;
    }
    if (p->retain && !o->retain_available) {
        mq_worker__close(c, true, "retained PUBLISH with retain_available false");
        return MQ_BYTES_CLOSED;
    }
    bool route_it = true;
    if (is_sys_topic(p->topic.ptr, p->topic.len)) {
        /* $SYS belongs to the broker: acknowledged, never delivered (as mosquitto), so that
         * no client can forge the metrics that dashboards trust */
        MQ_LOG(MQ_LOG_DEBUG, "worker=%u client=%s PUBLISH to $SYS ignored", w->idx,
               c->sess->client_id);
        route_it = false;
    }
    if (o->message_size_limit && p->payload.len > o->message_size_limit) {
        /* mosquitto drops it and still acknowledges, so the client does not resend it */
        MQ_LOG(MQ_LOG_INFO,
               "worker=%u client=%s dropped PUBLISH of %zu bytes over "
               "message_size_limit",
               w->idx, c->sess->client_id, p->payload.len);
        w->cnt.pub_dropped++;
        route_it = false;
    }
    if (p->qos == 2 && !mq_sess_qos2_received(c->sess, p->packet_id))
        route_it = false; /* a re-send before PUBREL: delivered once already [MQTT-4.3.3-10] */
    if (route_it) {
        mq_msg_t *msg = mq_msg_new(p->topic.ptr, p->topic.len, p->payload.ptr, p->payload.len,
                                   p->qos, p->retain);
        MQ_ASSERT(msg != NULL); /* the decoder bounded topic and payload */
        mq_proto__publish(w, msg);
        mq_msg_unref(msg);
    }
    if (p->qos == 1)
        out_ack(c, MQ_PUBACK, p->packet_id);
    else if (p->qos == 2)
        out_ack(c, MQ_PUBREC, p->packet_id);
    return MQ_BYTES_OK;
}

static void handle_outbound_ack(mq_conn_t *c, const mq_packet_t *pkt)
{
    mq_sess_t *s = c->sess;
    uint16_t id = pkt->ack.packet_id;
    enum mq_rc rc;
    switch (pkt->type) {
    case MQ_PUBACK:
        rc = mq_sess_on_puback(s, id);
        break;
    case MQ_PUBREC:
        rc = mq_sess_on_pubrec(s, id);
        break;
    default:
        rc = mq_sess_on_pubcomp(s, id);
        break;
    }
    if (rc != MQ_RC_SUCCESS) {
        MQ_LOG(MQ_LOG_DEBUG, "worker=%u client=%s %s for unknown packet id %u", c->w->idx,
               s->client_id, mq_ptype_str(pkt->type), id);
        if (pkt->type == MQ_PUBREC) /* as mosquitto: let the peer finish its flow */
            out_ack(c, MQ_PUBREL, id);
    }
    mq_worker__mark_dirty(c->w, c);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------------------------
 */

typedef struct retained_ctx {
    mq_worker_t *w;
    mq_sess_t *s;
    uint8_t qos;
} retained_ctx_t;

static void send_retained(void *arg, mq_msg_t *msg)
{
    retained_ctx_t *rc = arg;
    uint8_t q = rc->qos < msg->qos ? rc->qos : msg->qos;
    if (rc->w->srv->opts.upgrade_outgoing_qos)
        q = rc->qos;
    /* [MQTT-3.3.1-8] retained messages go out with the retain flag set */
    (void)mq_sess_deliver(rc->s, msg, q, true); /* a drop is counted in the session */
}

static void handle_subscribe(mq_conn_t *c, const mq_packet_t *pkt)
{
    mq_worker_t *w = c->w;
    mq_sess_t *s = c->sess;
    const mq_server_opts_t *o = &w->srv->opts;
    uint32_t n = pkt->subscribe.n;
    size_t total = 2 + n;
    mq_buf_reserve(&c->out, 5 + total);
    uint8_t *hdr = c->out.data + c->out.len;
    hdr[0] = MQ_SUBACK << 4;
    size_t hl = 1 + mq_codec_write_varint(hdr + 1, (uint32_t)total);
    hdr[hl] = (uint8_t)(pkt->subscribe.packet_id >> 8);
    hdr[hl + 1] = (uint8_t)pkt->subscribe.packet_id;
    uint8_t *codes = hdr + hl + 2;
    c->out.len += hl + total;
    w->cnt.msgs_sent++;
    /* SUBACK first, then the retained messages of each filter [MQTT-3.8.4-1..-5] */
    size_t pos = 0, i = 0;
    mq_sub_entry_t e;
    while (mq_sub_next(pkt, c->proto, &pos, &e)) {
        mq_str_t share, rest;
        bool shared = mq_topic_split_shared(e.filter.ptr, e.filter.len, &share, &rest);
        if (e.rc != MQ_RC_SUCCESS || shared) {
            codes[i++] = 0x80; /* failure (shared subscriptions arrive with MQTT 5 work) */
            MQ_LOG(MQ_LOG_INFO, "worker=%u client=%s refused subscription '%.*s'", w->idx,
                   s->client_id, (int)(e.filter.len > 64 ? 64 : e.filter.len), e.filter.ptr);
            continue;
        }
        uint8_t qos = e.qos < o->max_qos ? e.qos : o->max_qos;
        codes[i++] = qos;
        MQ_LOG(MQ_LOG_SUBSCRIBE, "%s %u %.*s", s->client_id, qos, (int)e.filter.len,
               e.filter.ptr); /* mosquitto's format: client qos filter */
        mq_sub_t *sub = mq_sess_find_sub(s, e.filter.ptr, e.filter.len);
        if (sub) { /* [MQTT-3.8.4-3] replaces the existing subscription's QoS */
            sub->qos = qos;
            lfilter_set_qos(w, sub->fid, s, qos);
        } else {
            uint64_t fid =
                mq_tindex_add_interest(w->srv->ix, e.filter.ptr, e.filter.len, w->idx, w->ep);
            mq_sess_add_sub(s, e.filter.ptr, e.filter.len, fid, qos);
            lfilter_add(w, fid, s, qos);
        }
        /* codes[] may move if the buffer grows while retained messages are written: */
        size_t codes_off = (size_t)(codes - c->out.data);
        retained_ctx_t rc = {w, s, qos};
        mq_tindex_retained(w->srv->ix, e.filter.ptr, e.filter.len, send_retained, &rc);
        codes = c->out.data + codes_off;
    }
    mq_worker__mark_dirty(w, c);
}

static void handle_unsubscribe(mq_conn_t *c, const mq_packet_t *pkt)
{
    mq_worker_t *w = c->w;
    size_t pos = 0;
    mq_sub_entry_t e;
    while (mq_sub_next(pkt, c->proto, &pos, &e)) {
        MQ_LOG(MQ_LOG_UNSUBSCRIBE, "%s %.*s", c->sess->client_id, (int)e.filter.len, e.filter.ptr);
        mq_sub_t *sub = mq_sess_find_sub(c->sess, e.filter.ptr, e.filter.len);
        if (sub)
            unsubscribe_one(w, c->sess, sub);
    }
    out_ack(c, MQ_UNSUBACK, pkt->subscribe.packet_id);
}

/* ---- the packet loop ---------------------------------------------------------------------------
 */

static int handle_packet(mq_conn_t *c, const mq_packet_t *pkt)
{
    mq_worker_t *w = c->w;
    w->cnt.msgs_received++;
    if (c->state == MQ_CONN_PRE) /* the decoder only lets a CONNECT through first */
        return handle_connect(c, pkt);
    switch (pkt->type) {
    case MQ_PUBLISH:
        return handle_publish(c, pkt);
    case MQ_PUBACK:
    case MQ_PUBREC:
    case MQ_PUBCOMP:
        handle_outbound_ack(c, pkt);
        return MQ_BYTES_OK;
    case MQ_PUBREL:
        mq_sess_qos2_released(c->sess, pkt->ack.packet_id);
        out_ack(c, MQ_PUBCOMP, pkt->ack.packet_id);
        return MQ_BYTES_OK;
    case MQ_SUBSCRIBE:
        handle_subscribe(c, pkt);
        return MQ_BYTES_OK;
    case MQ_UNSUBSCRIBE:
        handle_unsubscribe(c, pkt);
        return MQ_BYTES_OK;
    case MQ_PINGREQ: {
        uint8_t b[2] = {MQ_PINGRESP << 4, 0};
        mq_buf_append(&c->out, b, 2);
        w->cnt.msgs_sent++;
        mq_worker__mark_dirty(w, c);
        return MQ_BYTES_OK;
    }
    case MQ_DISCONNECT: /* a clean end: the will is discarded [MQTT-3.14.4-3] */
        mq_worker__close(c, false, NULL);
        return MQ_BYTES_CLOSED;
    default: /* AUTH before v5 cannot pass the decoder; nothing else reaches here */
        mq_worker__close(c, true, "unexpected packet");
        return MQ_BYTES_CLOSED;
    }
}

/* A decoder rejection: before CONNECT, answer an unknown protocol version as 3.1.1 asks
 * (CONNACK 0x01, [MQTT-3.1.2-2]); otherwise just close (3.1.1 has no DISCONNECT to send). */
static void on_decode_error(mq_conn_t *c, enum mq_rc rc, const mq_packet_t *pkt, const char *why)
{
    if (c->state == MQ_CONN_PRE && rc == MQ_RC_UNSUPPORTED_PROTOCOL_VERSION &&
        pkt->type == MQ_CONNECT) {
        c->proto = MQ_PROTO_311;
        refuse(c, CONNACK_BAD_PROTOCOL, why);
        return;
    }
    char msg[128];
    snprintf(msg, sizeof(msg), "rc=0x%02x %s: %s", rc, mq_rc_str(rc), why ? why : "");
    mq_worker__close(c, true, msg);
}

static int process(mq_conn_t *c, const uint8_t *p, size_t len)
{
    while (len > 0 && c->state != MQ_CONN_CLOSING) {
        mq_packet_t pkt;
        size_t used;
        const char *why = NULL;
        enum mq_rc rc = mq_decoder_feed(&c->dec, p, len, &used, &pkt, &why);
        if (rc == MQ_RC_AGAIN)
            return MQ_BYTES_OK;
        if (rc != MQ_RC_SUCCESS) {
            on_decode_error(c, rc, &pkt, why);
            return MQ_BYTES_CLOSED;
        }
        p += used;
        len -= used;
        int r = handle_packet(c, &pkt);
        if (r != MQ_BYTES_OK)
            return r;
    }
    return c->state == MQ_CONN_CLOSING ? MQ_BYTES_CLOSED : MQ_BYTES_OK;
}

static void hand_off(mq_conn_t *c)
{
    mq_worker_t *w = c->w;
    unsigned owner = c->handoff_to;
    mq_worker__unlink(w, c);
    mq_decoder_fini(&c->dec);
    mq_decoder_init(&c->dec, MQ_ROLE_SERVER, 0, w->srv->opts.max_packet_size);
    c->w = NULL; /* from here on only the owner touches it */
    mq_ring_entry_t e = {.type = MQ_RE_HANDOFF, .ptr = c};
    mq_worker__send(w, owner, &e);
}

int mq_proto__on_bytes(mq_conn_t *c, const uint8_t *p, size_t len)
{
    if (c->state == MQ_CONN_PRE)
        mq_buf_append(&c->pre, p, len); /* kept whole in case the connection must move */
    int r = process(c, p, len);
    if (r == MQ_BYTES_GONE)
        hand_off(c);
    return r;
}

void mq_proto__on_handoff(mq_conn_t *c)
{
    mq_buf_t b = c->pre;
    mq_buf_init(&c->pre);
    int r = mq_proto__on_bytes(c, b.data, b.len);
    mq_buf_fini(&b);
    MQ_ASSERT(r != MQ_BYTES_GONE); /* the owner keeps what it owns */
    if (r == MQ_BYTES_OK)
        mq_worker__arm_recv(c);
}

void mq_proto__on_closed(mq_conn_t *c)
{
    mq_worker_t *w = c->w;
    mq_sess_t *s = c->sess;
    if (s) {
        if (w->srv->opts.connection_messages)
            MQ_LOG(MQ_LOG_NOTICE, "Client %s %s.", s->client_id,
                   c->will_pending ? "closed its connection" : "disconnected");
        detach(c);
        if (s->clean)
            destroy_sess(w, s);
    }
    if (c->will_pending && c->will) {
        c->will_pending = false;
        mq_str_t wt = mq_msg_topic(c->will);
        if (!is_sys_topic(wt.ptr, wt.len)) /* as for a PUBLISH: $SYS is the broker's */
            mq_proto__publish(w, c->will);
    }
}

#define PUT(field, v) atomic_store_explicit(&w->stats.field, (v), memory_order_relaxed)

/* Sums the sessions' counters and gauges into the figures other threads read. */
static void publish_stats(mq_worker_t *w)
{
    mq_sess_stats_t t = w->cnt.retired;
    uint64_t subs = 0, inflight = 0, queued = 0, queued_bytes = 0;
    for (size_t i = 0; i < w->sessions.cap; i++) {
        if (w->sessions.slots[i].key == 0)
            continue;
        for (mq_sess_t *s = w->sessions.slots[i].val; s; s = s->next_in_bucket) {
            t.dropped += s->stats.dropped;
            t.publish_sent += s->stats.publish_sent;
            t.publish_bytes += s->stats.publish_bytes;
            t.packets_sent += s->stats.packets_sent;
            subs += s->n_subs;
            inflight += mq_sess_inflight(s);
            queued += mq_sess_queued(s);
            queued_bytes += s->q_bytes;
        }
    }
    PUT(msgs_received, w->cnt.msgs_received);
    PUT(msgs_sent, w->cnt.msgs_sent + t.packets_sent);
    PUT(pub_received, w->cnt.pub_received);
    PUT(pub_bytes_received, w->cnt.pub_bytes_received);
    PUT(pub_sent, t.publish_sent);
    PUT(pub_bytes_sent, t.publish_bytes);
    PUT(pub_dropped, w->cnt.pub_dropped + t.dropped);
    PUT(bytes_received, w->cnt.bytes_received);
    PUT(bytes_sent, w->cnt.bytes_sent);
    PUT(sockets, w->cnt.sockets);
    PUT(connects, w->cnt.connects);
    PUT(connections, w->n_online);
    PUT(sessions, w->n_sessions);
    PUT(subscriptions, subs);
    PUT(inflight, inflight);
    PUT(queued, queued);
    PUT(queued_bytes, queued_bytes);
    PUT(ring_depth, mq_ring_depth(w->inbox));
    PUT(loop_us, w->loop_ns_max / 1000);
    w->loop_ns_max = 0;
}

void mq_proto__tick(mq_worker_t *w)
{
    publish_stats(w);
    uint64_t now = w->now_ms;
    for (mq_conn_t *c = w->conns; c; c = c->next) {
        if (c->state == MQ_CONN_CLOSING)
            continue;
        switch (mq_deadline_check(c->state == MQ_CONN_ACTIVE, c->born_ms, c->last_rx_ms,
                                  c->keep_alive, w->srv->opts.connect_timeout_s, now)) {
        case MQ_DEADLINE_CONNECT:
            mq_worker__close(c, false, "no CONNECT in time");
            break;
        case MQ_DEADLINE_KEEPALIVE:
            mq_worker__close(c, true, "keepalive timeout");
            break;
        case MQ_DEADLINE_NONE:
            break;
        }
    }
}
