/* SPDX-License-Identifier: MIT */
/* core/sess.c - session state machine: outbound window and queue, acknowledgements, resume. */
#include "core/sess.h"

#include <string.h>

#include <xxhash.h>

#include "core/codec.h"
#include "core/jrec.h"
#include "core/map.h"
#include "core/mem.h"

/* Outbound Topic Aliases of one connection (MQTT 5 §3.3.2.3.4): the first topics sent get an
 * alias each, up to the client's Topic Alias Maximum; later messages on those topics are sent
 * with the alias and an empty topic. mosquitto 2.0 assigns none. */
struct mq_alias_out {
    mq_map_t by_hash; /* topic hash -> alias (as an integer) */
    char **topics;    /* [alias - 1]: owned copies, to tell hash collisions apart */
    uint16_t n, max;
};

static void aliases_free(struct mq_alias_out *a)
{
    if (a == NULL)
        return;
    for (uint16_t i = 0; i < a->n; i++)
        mq_free(a->topics[i]);
    mq_free(a->topics);
    mq_map_fini(&a->by_hash);
    mq_free(a);
}

/* The session's rarer state, made at its first use (mq_sess_rare_t). */
static mq_sess_rare_t *rare(mq_sess_t *s)
{
    if (s->rare == NULL)
        s->rare = mq_calloc(1, sizeof(*s->rare));
    return s->rare;
}

/* The alias table of the connection (aliases belong to one [MQTT-3.3.2-7]) goes, with it. */
static void drop_aliases(mq_sess_t *s)
{
    if (s->rare == NULL)
        return;
    aliases_free(s->rare->aliases);
    s->rare->aliases = NULL;
}

/* The alias for 'm''s topic: *known when the client has it already; 0 when none is left. */
static uint16_t alias_for(mq_sess_t *s, const mq_msg_t *m, bool *known)
{
    struct mq_alias_out *a = s->rare ? s->rare->aliases : NULL;
    *known = false;
    if (a == NULL) /* the client takes none (made at attach when it does) */
        return 0;
    mq_str_t t = mq_msg_topic(m);
    uint64_t h = XXH3_64bits(t.ptr, t.len) | 1; /* never 0, the map's empty key */
    uintptr_t got = (uintptr_t)mq_map_get(&a->by_hash, h);
    if (got) {
        const char *have = a->topics[got - 1];
        if (strlen(have) == t.len && memcmp(have, t.ptr, t.len) == 0) {
            *known = true;
            return (uint16_t)got;
        }
        return 0; /* another topic has this hash: send it in full */
    }
    if (a->n >= a->max)
        return 0;
    a->topics = mq_realloc(a->topics, (size_t)(a->n + 1) * sizeof(*a->topics));
    a->topics[a->n++] = mq_strndup(t.ptr, t.len);
    mq_map_put(&a->by_hash, h, (void *)(uintptr_t)a->n);
    return a->n;
}

mq_sess_t *mq_sess_new(const char *client_id, size_t len, uint64_t id_hash, bool clean,
                       mq_sess_home_t *home)
{
    mq_sess_t *s = mq_calloc(1, sizeof(*s));
    s->client_id = mq_strndup(client_id, len);
    s->id_len = len;
    s->id_hash = id_hash;
    s->clean = clean;
    s->home = home;
    s->next_packet_id = 1;
    return s;
}

/* A message this session will never send: counted for the worker, and noted for
 * net/overload.c (a client dropping messages has a full queue). */
static void count_drop(mq_sess_t *s)
{
    s->home->stats.dropped++;
    s->dropped_lately = true;
}

/* Gives 'o' its Subscription Identifiers (at most 255; more than one are copied). */
static void set_sub_ids(mq_outmsg_t *o, const uint32_t *sub_ids, uint32_t n)
{
    o->n_sub_ids = (uint8_t)(n > 255 ? 255 : n);
    if (o->n_sub_ids == 1) {
        o->sub_id = sub_ids[0];
    } else if (o->n_sub_ids > 1) {
        o->sub_ids = mq_alloc(o->n_sub_ids * sizeof(uint32_t));
        memcpy(o->sub_ids, sub_ids, o->n_sub_ids * sizeof(uint32_t));
    }
}

/* ---- persistence: a persistent session's messages, reported to the journal ----------------- */

static bool journals(const mq_sess_t *s)
{
    return s->home->journal && !s->clean;
}

/* A number for a message this session keeps: rising, and above what the clock said before a
 * restart (so mids of restored messages stay below new ones). */
static uint64_t new_mid(mq_sess_home_t *h)
{
    h->last_mid = mq_jrec_next(h->last_mid, mq_jrec_wall_us());
    return h->last_mid;
}

static void j_put(mq_sess_t *s, mq_outmsg_t *o)
{
    if (journals(s)) {
        o->mid = new_mid(s->home);
        s->home->journal->put(s->home->journal->arg, s, o);
    }
}

static void j_update(const mq_sess_t *s, const mq_outmsg_t *o)
{
    if (o->mid && journals(s))
        s->home->journal->update(s->home->journal->arg, s, o);
}

static void j_del(const mq_sess_t *s, const mq_outmsg_t *o)
{
    if (o->mid && journals(s))
        s->home->journal->del(s->home->journal->arg, s, o->mid);
}

/* Drops what an outbound entry holds. */
static void out_release(mq_outmsg_t *o)
{
    mq_msg_unref(o->msg);
    o->msg = NULL;
    if (o->n_sub_ids > 1)
        mq_free(o->sub_ids);
    o->n_sub_ids = 0;
}

void mq_sess_free(mq_sess_t *s)
{
    if (s == NULL)
        return;
    for (uint32_t i = 0; i < s->n_inflight; i++)
        out_release(&s->inflight[i]);
    mq_sess_rare_t *r = s->rare;
    if (r) {
        for (uint32_t i = 0; i < r->q_len; i++)
            out_release(&r->queue[(r->q_head + i) % r->q_cap]);
        aliases_free(r->aliases);
        mq_free(r->queue);
        mq_free(r->qos2_in);
        mq_free(r);
    }
    for (uint32_t i = 0; i < s->n_subs; i++)
        if (s->subs[i].len >= MQ_SUB_INLINE)
            mq_free(s->subs[i].heap);
    mq_free(s->subs);
    mq_free(s->inflight);
    mq_free(s->client_id);
    mq_free(s->username);
    mq_free(s);
}

uint32_t mq_sess_filter_queue(mq_sess_t *s, mq_sess_keep_cb *keep, void *arg)
{
    mq_sess_rare_t *r = s->rare;
    if (r == NULL)
        return 0;
    uint32_t kept = 0, n = r->q_len;
    for (uint32_t i = 0; i < n; i++) { /* compacts in place, from the head on */
        mq_outmsg_t o = r->queue[(r->q_head + i) % r->q_cap];
        if (keep(arg, s, o.msg)) {
            r->queue[(r->q_head + kept++) % r->q_cap] = o;
            continue;
        }
        r->q_bytes -= o.msg->payload_len;
        count_drop(s);
        j_del(s, &o);
        out_release(&o);
    }
    r->q_len = kept;
    return n - kept;
}

void mq_sess_set_username(mq_sess_t *s, const char *user, size_t len)
{
    mq_free(s->username);
    s->username = user ? mq_strndup(user, len) : NULL;
    s->user_len = user ? (uint16_t)len : 0;
}

static void write_ack(mq_sess_t *s, uint8_t type, uint16_t packet_id)
{
    s->home->stats.packets_sent++;
    /* The session does not know the protocol version, and needs not: an ack with reason
     * code 0 and no properties is the same 4 bytes in 3.1, 3.1.1 and 5 [MQTT-3.6.2.1]. */
    mq_codec_append_ack(s->out, type, packet_id, MQ_PROTO_311, MQ_RC_SUCCESS, NULL);
}

/* The mount point of the connection, if it has one (home->mounts). */
static mq_str_t mount_of(const mq_sess_t *s)
{
    return s->peer.mount ? s->home->mounts[s->peer.mount - 1] : (mq_str_t){NULL, 0};
}

/* Whether 'm' is seen from behind the connection's mount point: its topic is the mount point
 * and more. Subscriptions made there match nothing else; those made on another listener by
 * the same session may, and what they match is not sent here (it has no name behind it). */
static bool in_mount(const mq_sess_t *s, const mq_msg_t *m)
{
    mq_str_t mp = mount_of(s), t = mq_msg_topic(m);
    return t.len > mp.len && memcmp(t.ptr, mp.ptr, mp.len) == 0;
}

/* Leading topic bytes the connection does not see: its mount point (net/: mount_point). */
static uint16_t skip_of(const mq_sess_t *s, const mq_msg_t *m)
{
    return s->peer.mount && in_mount(s, m) ? (uint16_t)mount_of(s).len : 0;
}

/* The per-delivery parts of a v5 PUBLISH of 'o' ('o' must not have reached PUBREL). */
static mq_msg_v5_t v5_parts(mq_sess_t *s, const mq_outmsg_t *o, bool with_alias)
{
    mq_msg_v5_t x = {0};
    const mq_msg_t *m = o->msg;
    if (m->expire_at) {
        uint64_t now = s->home->clock ? *s->home->clock : 0;
        uint64_t left = m->expire_at > now ? m->expire_at - now : 0;
        x.has_expiry = true; /* the interval less the time waited [MQTT-3.3.2-6] */
        x.expiry_left = (uint32_t)((left + 999) / 1000);
    }
    x.n_sub_ids = o->n_sub_ids;
    x.sub_ids = o->n_sub_ids == 1 ? &o->sub_id : o->sub_ids;
    x.skip = skip_of(s, m);
    if (with_alias)
        x.alias = alias_for(s, m, &x.alias_only);
    return x;
}

/* Bytes 'o' takes on the wire for this connection (without a Topic Alias). */
static size_t publish_size(mq_sess_t *s, const mq_outmsg_t *o)
{
    if (s->peer.proto < MQ_PROTO_5 && s->peer.mount)
        return mq_msg_publish_size_skip(o->msg, o->qos, skip_of(s, o->msg));
    if (s->peer.proto < MQ_PROTO_5)
        return mq_msg_publish_size(o->msg, o->qos);
    mq_msg_v5_t x = v5_parts(s, o, false);
    return mq_msg_publish_size_v5(o->msg, o->qos, &x);
}

/* Bytes a delivery's own parts add to a message at most: a packet id, a Message Expiry, 255
 * Subscription Identifiers, a Topic Alias, a property length. */
#define DELIVERY_PARTS_MAX 2048u

/* The largest packet this connection takes: the client's Maximum Packet Size, or any. */
static size_t packet_max(const mq_sess_t *s)
{
    return s->peer.max_packet ? s->peer.max_packet : MQ_CODEC_MAX_PACKET;
}

/* False when 'o' is far enough below packet_max() that no delivery parts can take it over. */
static bool near_max(const mq_sess_t *s, const mq_outmsg_t *o)
{
    return (size_t)o->msg->wire_len + o->msg->props_len + DELIVERY_PARTS_MAX > packet_max(s);
}

/* A Topic Alias may go with 'o' only when the packet still fits with it; decided before the
 * alias is chosen, since choosing one is remembered. */
static bool alias_fits(mq_sess_t *s, const mq_outmsg_t *o)
{
    if (!near_max(s, o))
        return true;
    mq_msg_v5_t x = v5_parts(s, o, false);
    x.alias = 1; /* and the topic in full: the larger of the two forms */
    return mq_msg_publish_size_v5(o->msg, o->qos, &x) <= packet_max(s);
}

static void write_publish(mq_sess_t *s, const mq_outmsg_t *o, bool dup)
{
    size_t w;
    if (s->peer.proto < MQ_PROTO_5 && s->peer.mount) {
        uint16_t skip = skip_of(s, o->msg);
        mq_buf_reserve(s->out, mq_msg_publish_size_skip(o->msg, o->qos, skip));
        w = mq_msg_write_publish_skip(o->msg, o->qos, o->packet_id, o->retain, dup, skip,
                                      s->out->data + s->out->len);
    } else if (s->peer.proto < MQ_PROTO_5) {
        mq_buf_reserve(s->out, mq_msg_publish_size(o->msg, o->qos));
        w = mq_msg_write_publish(o->msg, o->qos, o->packet_id, o->retain, dup,
                                 s->out->data + s->out->len);
    } else {
        mq_msg_v5_t x = v5_parts(s, o, alias_fits(s, o));
        mq_buf_reserve(s->out, mq_msg_publish_size_v5(o->msg, o->qos, &x));
        w = mq_msg_write_publish_v5(o->msg, o->qos, o->packet_id, o->retain, dup, &x,
                                    s->out->data + s->out->len);
    }
    s->out->len += w;
    s->home->stats.publish_sent++;
    s->home->stats.packets_sent++;
    s->home->stats.publish_bytes += o->msg->payload_len;
}

/* The Message Expiry Interval of 'o' has passed. */
static bool expired(const mq_sess_t *s, const mq_outmsg_t *o)
{
    return o->msg->expire_at && s->home->clock && *s->home->clock >= o->msg->expire_at;
}

/* A message that must not go out to this connection: expired before onward delivery
 * started [MQTT-3.3.2-5], or larger than the client accepts [MQTT-3.1.2-25] or than any
 * packet can be (a message near the limit and the parts of a v5 delivery). Counted. */
static bool undeliverable(mq_sess_t *s, const mq_outmsg_t *o)
{
    if (s->peer.mount && !in_mount(s, o->msg))
        return true; /* queued for a subscription made elsewhere: no name behind the mount */
    if (expired(s, o)) {
        s->home->stats.expired++;
        return true;
    }
    if (near_max(s, o) && publish_size(s, o) > packet_max(s)) {
        s->home->stats.too_large++;
        return true;
    }
    return false;
}

/* The outbound window: the server's limit, or the client's Receive Maximum if lower. */
static uint32_t window(const mq_sess_t *s)
{
    uint32_t w = s->home->limits->max_inflight;
    return s->peer.recv_max && s->peer.recv_max < w ? s->peer.recv_max : w;
}

/* Room in the window for another QoS 1/2 message: under the count, and under
 * max_inflight_bytes when that is set (mosquitto's rule: a message goes in flight while the
 * bytes in flight are below the limit, so one larger than it still goes, alone). The bytes
 * are summed over the window when asked, which costs only with the option set. */
static bool room(const mq_sess_t *s)
{
    if (s->n_inflight >= window(s))
        return false;
    uint64_t max = s->home->limits->max_inflight_bytes, n = 0;
    for (uint32_t i = 0; max && i < s->n_inflight && n < max; i++) {
        const mq_outmsg_t *o = &s->inflight[i];
        n += o->state == MQ_OUT_PUBREL ? o->bytes : o->msg->payload_len;
    }
    return n < max || max == 0;
}

static bool packet_id_in_flight(const mq_sess_t *s, uint16_t id)
{
    for (uint32_t i = 0; i < s->n_inflight; i++)
        if (s->inflight[i].packet_id == id)
            return true;
    return false;
}

static uint16_t next_packet_id(mq_sess_t *s)
{
    /* at most 65535 in flight, so a free id always exists; the window is usually small and
     * the ids in it consecutive, so the scan ends at once */
    for (;;) {
        uint16_t id = s->next_packet_id++;
        if (s->next_packet_id == 0)
            s->next_packet_id = 1;
        if (!packet_id_in_flight(s, id))
            return id;
    }
}

/* Puts 'o' in flight (assigning its packet id) and writes it; returns its slot. */
static mq_outmsg_t *send_inflight(mq_sess_t *s, mq_outmsg_t o)
{
    if (s->n_inflight == s->cap_inflight) {
        s->inflight = mq_grow(s->inflight, &s->cap_inflight, sizeof(*s->inflight), 4);
    }
    o.packet_id = next_packet_id(s);
    o.state = MQ_OUT_PUBLISH;
    mq_outmsg_t *slot = &s->inflight[s->n_inflight++];
    *slot = o;
    write_publish(s, slot, false);
    return slot;
}

static bool enqueue(mq_sess_t *s, mq_outmsg_t o)
{
    const mq_sess_limits_t *l = s->home->limits;
    if ((l->max_queued && mq_sess_queued(s) >= l->max_queued) ||
        (l->max_queued_bytes &&
         mq_sess_queued_bytes(s) + o.msg->payload_len > l->max_queued_bytes)) {
        count_drop(s);
        return false;
    }
    mq_sess_rare_t *r = rare(s);
    if (r->q_len == r->q_cap)
        r->queue = mq_ring_grow(r->queue, &r->q_cap, &r->q_head, r->q_len, sizeof(*r->queue), 8);
    r->queue[(r->q_head + r->q_len) % r->q_cap] = o;
    r->q_len++;
    r->q_bytes += o.msg->payload_len;
    mq_msg_ref(o.msg);
    return true;
}

/* True when the connection already has more output waiting than it should (a subscriber
 * slower than its publishers): messages then queue, bounded, instead of growing 'out'. */
static bool congested(const mq_sess_t *s)
{
    return s->home->limits->out_high_water && s->out->len >= s->home->limits->out_high_water;
}

/* Moves queued messages into the window while there is room and a connection. */
static void pump(mq_sess_t *s)
{
    mq_sess_rare_t *r = s->rare;
    while (s->out && r && r->q_len > 0 && !congested(s)) {
        mq_outmsg_t o = r->queue[r->q_head];
        /* a full window holds QoS 1/2 back; an expired message is dropped at once */
        if (o.qos > 0 && !room(s) && !expired(s, &o))
            return;
        r->q_head = (r->q_head + 1) % r->q_cap;
        r->q_len--;
        r->q_bytes -= o.msg->payload_len;
        if (undeliverable(s, &o)) {
            j_del(s, &o);
            out_release(&o);
        } else if (o.qos == 0) {
            write_publish(s, &o, false);
            j_del(s, &o);
            out_release(&o);
        } else {
            /* the queue's reference moves into the window, with its new packet id */
            j_update(s, send_inflight(s, o));
        }
    }
}

bool mq_sess_deliver(mq_sess_t *s, mq_msg_t *msg, uint8_t qos, bool retain)
{
    return mq_sess_deliver_ids(s, msg, qos, retain, NULL, 0);
}

enum placed { DROPPED, WRITTEN, KEPT };

/* Queues 'o', journaled as it is put in the queue. */
static enum placed keep(mq_sess_t *s, mq_outmsg_t *o)
{
    if (!enqueue(s, *o))
        return DROPPED;
    j_put(s, (mq_outmsg_t *)mq_sess_queued_at(s, s->rare->q_len - 1));
    return KEPT;
}

/* Sends or queues 'o' (which holds no reference yet). */
static enum placed place(mq_sess_t *s, mq_outmsg_t *o)
{
    if (s->out == NULL) {
        /* QoS 0 is not kept for the offline (as mosquitto), unless queue_qos0_messages */
        if (o->qos == 0 && !s->home->limits->queue_qos0) {
            count_drop(s);
            return DROPPED;
        }
        return keep(s, o);
    }
    if (mq_sess_queued(s) > 0 || congested(s)) /* keeps order behind what already waits */
        return keep(s, o);
    if (undeliverable(s, o))
        return DROPPED;
    if (o->qos == 0) {
        write_publish(s, o, false);
        return WRITTEN;
    }
    if (room(s)) {
        mq_msg_ref(o->msg);
        mq_outmsg_t *slot = send_inflight(s, *o);
        j_put(s, slot);
        return KEPT;
    }
    return keep(s, o); /* keeps order behind what already waits */
}

static bool deliver(mq_sess_t *s, mq_msg_t *msg, uint8_t qos, bool retain, const uint32_t *sub_ids,
                    uint32_t n_sub_ids, bool shared)
{
    if (s->out && s->peer.mount && !in_mount(s, msg))
        return false; /* not seen from behind the connection's mount point (an offline session
                       * queues it: the connection it next has decides, at write time) */
    mq_outmsg_t o = {.msg = msg, .qos = qos, .retain = retain, .shared = shared};
    /* A packet id adds 2 bytes: a QoS 0 message of the largest size delivered at QoS 1/2
     * (upgrade_outgoing_qos) would need a 5-byte remaining length [MQTT-1.5.5]; drop it. */
    if (qos > 0 && msg->wire_len - msg->hdr_len + 2 > MQ_CODEC_MAX_REMAINING) {
        count_drop(s);
        return false;
    }
    set_sub_ids(&o, sub_ids, n_sub_ids);
    enum placed r = place(s, &o);
    if (r != KEPT && o.n_sub_ids > 1)
        mq_free(o.sub_ids);
    return r != DROPPED;
}

bool mq_sess_deliver_ids(mq_sess_t *s, mq_msg_t *msg, uint8_t qos, bool retain,
                         const uint32_t *sub_ids, uint32_t n_sub_ids)
{
    return deliver(s, msg, qos, retain, sub_ids, n_sub_ids, false);
}

bool mq_sess_deliver_shared(mq_sess_t *s, mq_msg_t *msg, uint8_t qos, bool retain,
                            const uint32_t *sub_ids, uint32_t n_sub_ids)
{
    return deliver(s, msg, qos, retain, sub_ids, n_sub_ids, true);
}

uint32_t mq_sess_give_shared(mq_sess_t *s, mq_sess_give_cb *give, void *arg)
{
    uint32_t given = 0;
    for (uint32_t i = 0; i < s->n_inflight; i++) {
        mq_outmsg_t *o = &s->inflight[i];
        /* QoS 2 in flight is the client's to finish [MQTT-4.8.2-4], never another's
         * [MQTT-4.8.2-5] */
        if (o->shared && o->qos == 1 && o->state == MQ_OUT_PUBLISH && o->msg && give(arg, o->msg)) {
            o->shared = false;
            given++;
        }
    }
    mq_sess_rare_t *r = s->rare;
    if (r == NULL)
        return given;
    uint32_t kept = 0, n = r->q_len;
    for (uint32_t i = 0; i < n; i++) { /* compacts in place, from the head on */
        mq_outmsg_t o = r->queue[(r->q_head + i) % r->q_cap];
        if (!o.shared || !give(arg, o.msg)) {
            r->queue[(r->q_head + kept++) % r->q_cap] = o;
            continue;
        }
        r->q_bytes -= o.msg->payload_len;
        j_del(s, &o);
        out_release(&o);
        given++;
    }
    r->q_len = kept;
    return given;
}

static mq_outmsg_t *find_inflight(mq_sess_t *s, uint16_t id, uint8_t qos, uint8_t state)
{
    for (uint32_t i = 0; i < s->n_inflight; i++) {
        mq_outmsg_t *o = &s->inflight[i];
        if (o->packet_id == id && o->qos == qos && o->state == state)
            return o;
    }
    return NULL;
}

static void remove_inflight(mq_sess_t *s, mq_outmsg_t *o)
{
    out_release(o);
    size_t i = (size_t)(o - s->inflight);
    memmove(o, o + 1, (s->n_inflight - i - 1) * sizeof(*o));
    s->n_inflight--;
}

/* The flow of 'packet_id' (at 'qos', in 'state') has ended: its window slot goes to the queue. */
static enum mq_rc finish(mq_sess_t *s, uint16_t packet_id, uint8_t qos, uint8_t state)
{
    mq_outmsg_t *o = find_inflight(s, packet_id, qos, state);
    if (o == NULL)
        return MQ_RC_PACKET_ID_NOT_FOUND;
    j_del(s, o);
    remove_inflight(s, o);
    pump(s);
    return MQ_RC_SUCCESS;
}

enum mq_rc mq_sess_on_puback(mq_sess_t *s, uint16_t packet_id)
{
    return finish(s, packet_id, 1, MQ_OUT_PUBLISH);
}

enum mq_rc mq_sess_on_pubrec(mq_sess_t *s, uint16_t packet_id)
{
    mq_outmsg_t *o = find_inflight(s, packet_id, 2, MQ_OUT_PUBLISH);
    if (o == NULL) {
        o = find_inflight(s, packet_id, 2, MQ_OUT_PUBREL);
        if (o == NULL)
            return MQ_RC_PACKET_ID_NOT_FOUND;
    } else {
        /* [MQTT-4.3.3-4] after PUBREC the message itself is no longer needed; its size still
         * counts for max_inflight_bytes until PUBCOMP */
        uint32_t bytes = o->msg->payload_len;
        out_release(o);
        o->state = MQ_OUT_PUBREL;
        o->bytes = bytes;
        j_update(s, o);
    }
    if (s->out)
        write_ack(s, MQ_PUBREL, packet_id);
    return MQ_RC_SUCCESS;
}

enum mq_rc mq_sess_on_pubrec_failed(mq_sess_t *s, uint16_t packet_id)
{
    return finish(s, packet_id, 2, MQ_OUT_PUBLISH);
}

enum mq_rc mq_sess_on_pubcomp(mq_sess_t *s, uint16_t packet_id)
{
    return finish(s, packet_id, 2, MQ_OUT_PUBREL);
}

void mq_sess_attach(mq_sess_t *s, mq_buf_t *out, const mq_sess_peer_t *peer)
{
    s->out = out;
    s->is_online = true;
    s->peer = (mq_sess_link_t){peer->proto, peer->mount, peer->recv_max, peer->max_packet};
    drop_aliases(s);           /* aliases belong to a connection [MQTT-3.3.2-7] */
    if (peer->alias_max > 0) { /* the broker may assign them: a table for this connection */
        struct mq_alias_out *a = rare(s)->aliases = mq_calloc(1, sizeof(*a));
        mq_map_init(&a->by_hash);
        a->max = peer->alias_max;
    }
    for (uint32_t i = 0; i < s->n_inflight;) {
        mq_outmsg_t *o = &s->inflight[i];
        if (o->state != MQ_OUT_PUBREL && s->peer.mount && !in_mount(s, o->msg)) {
            /* sent through a connection without this mount point: no name for it here */
            j_del(s, o);
            remove_inflight(s, o);
            continue;
        }
        if (o->state == MQ_OUT_PUBREL)
            write_ack(s, MQ_PUBREL, o->packet_id);
        else
            write_publish(s, o, true);
        i++;
    }
    pump(s);
}

void mq_sess_restore_inflight(mq_sess_t *s, mq_msg_t *msg, uint8_t qos, bool retain,
                              uint16_t packet_id, uint8_t state, const uint32_t *sub_ids,
                              uint32_t n_sub_ids, uint64_t mid)
{
    MQ_ASSERT(s->out == NULL && packet_id != 0 && qos > 0);
    if (s->n_inflight == s->cap_inflight)
        s->inflight = mq_grow(s->inflight, &s->cap_inflight, sizeof(*s->inflight), 4);
    mq_outmsg_t o = {.msg = msg ? mq_msg_ref(msg) : NULL,
                     .packet_id = packet_id,
                     .qos = qos,
                     .state = state,
                     .retain = retain,
                     .mid = mid};
    set_sub_ids(&o, sub_ids, n_sub_ids);
    s->inflight[s->n_inflight++] = o;
    if (mid > s->home->last_mid) /* new numbers go above the restored ones */
        s->home->last_mid = mid;
    /* new ids continue after the restored ones (next_packet_id skips any in flight) */
    s->next_packet_id = packet_id == 0xFFFF ? 1 : (uint16_t)(packet_id + 1);
}

bool mq_sess_restore_queued(mq_sess_t *s, mq_msg_t *msg, uint8_t qos, bool retain,
                            const uint32_t *sub_ids, uint32_t n_sub_ids, uint64_t mid)
{
    MQ_ASSERT(s->out == NULL);
    mq_outmsg_t o = {.msg = msg, .qos = qos, .retain = retain, .mid = mid};
    set_sub_ids(&o, sub_ids, n_sub_ids);
    if (!enqueue(s, o)) {
        if (o.n_sub_ids > 1)
            mq_free(o.sub_ids);
        return false;
    }
    if (mid > s->home->last_mid)
        s->home->last_mid = mid;
    return true;
}

void mq_sess_detach(mq_sess_t *s)
{
    drop_aliases(s);
    s->out = NULL;
    s->is_online = false;
}

void mq_sess_on_writable(mq_sess_t *s)
{
    pump(s);
}

bool mq_sess_qos2_pending(const mq_sess_t *s, uint16_t packet_id)
{
    for (uint32_t i = 0; i < mq_sess_qos2_in_count(s); i++)
        if (s->rare->qos2_in[i] == packet_id)
            return true;
    return false;
}

bool mq_sess_qos2_received(mq_sess_t *s, uint16_t packet_id)
{
    if (mq_sess_qos2_pending(s, packet_id))
        return false;
    mq_sess_rare_t *r = rare(s);
    if (r->n_qos2_in == r->cap_qos2_in)
        r->qos2_in = mq_grow(r->qos2_in, &r->cap_qos2_in, sizeof(*r->qos2_in), 4);
    r->qos2_in[r->n_qos2_in++] = packet_id;
    return true;
}

bool mq_sess_qos2_released(mq_sess_t *s, uint16_t packet_id)
{
    mq_sess_rare_t *r = s->rare;
    for (uint32_t i = 0; i < mq_sess_qos2_in_count(s); i++) {
        if (r->qos2_in[i] == packet_id) {
            r->qos2_in[i] = r->qos2_in[--r->n_qos2_in];
            return true;
        }
    }
    return false;
}

mq_sub_t *mq_sess_find_sub(mq_sess_t *s, const char *filter, size_t len)
{
    for (uint32_t i = 0; i < s->n_subs; i++)
        if (s->subs[i].len == len && memcmp(mq_sub_filter(&s->subs[i]), filter, len) == 0)
            return &s->subs[i];
    return NULL;
}

mq_sub_t *mq_sess_add_sub(mq_sess_t *s, const char *filter, size_t len, uint64_t fid, uint8_t qos)
{
    /* opts and sub_id start at 0; the caller sets them (core/route.h) */
    if (s->n_subs == s->cap_subs)
        s->subs = mq_grow(s->subs, &s->cap_subs, sizeof(*s->subs), 1); /* most have one */
    mq_sub_t *sub = &s->subs[s->n_subs++];
    sub->fid = fid;
    if (len < MQ_SUB_INLINE) {
        memcpy(sub->inl, filter, len);
        sub->inl[len] = '\0';
    } else {
        sub->heap = mq_strndup(filter, len);
    }
    sub->len = (uint16_t)len;
    sub->qos = qos;
    sub->opts = 0;
    sub->sub_id = 0;
    sub->grant = 2; /* MQ_ACL_GRANT_FULL: net/auth.h lowers it when an ACL says so */
    return sub;
}

void mq_sess_remove_sub(mq_sess_t *s, mq_sub_t *sub)
{
    if (sub->len >= MQ_SUB_INLINE)
        mq_free(sub->heap);
    *sub = s->subs[--s->n_subs];
}
