/* SPDX-License-Identifier: MIT */
/* net/connect.c - CONNECT: admission, client identifiers, take-over, hand-off to the owner. */
#include "net/connect.h"

#include <string.h>
#include <sys/random.h>
#include <xxhash.h>

#include "core/log.h"
#include "core/mem.h"

/* An identifier for a client that sent none, chosen so that this worker owns it. */
static size_t make_client_id(mq_proto_t *p, const char *prefix, char *buf, size_t cap)
{
    for (;;) {
        uint64_t r;
        if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
            r = XXH3_64bits(&p->next_auto_id, sizeof(p->next_auto_id)) ^ p->env.loop->now_ms;
        r ^= ++p->next_auto_id;
        int n = snprintf(buf, cap, "%s%016llx", prefix, (unsigned long long)r);
        size_t len = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
        if (XXH3_64bits(buf, len) % p->env.n_workers == p->env.self)
            return len;
    }
}

/* The checks a CONNECT must pass before any session is touched; false when refused. */
static bool admit(mq_proto_t *p, client_t *cl, const mq_connect_t *cp)
{
    const mq_server_opts_t *o = p->o;
    const mq_server_listener_t *lo = &o->listeners[cl->conn.listener];
    if (cp->level == MQ_PROTO_5) {
        /* MQTT 5 semantics are their own issue: refuse plainly rather than half-serve */
        mq_client_send_connack(p, cl, false, MQ_RC_UNSUPPORTED_PROTOCOL_VERSION);
        mq_client_end(cl, false, "MQTT 5 is not supported yet");
        return false;
    }
    if (o->max_keepalive && cp->keep_alive > o->max_keepalive) {
        /* mosquitto.conf(5): a 3.1.1 client asking for more than max_keepalive is refused
         * with "identifier rejected", there being no way to tell it a lower value */
        mq_client_refuse(p, cl, CONNACK_ID_REJECTED, "keepalive above max_keepalive");
        return false;
    }
    if (cp->client_id.len == 0 &&
        (cp->level == MQ_PROTO_31 || !cp->clean_start || !lo->allow_zero_length_clientid)) {
        /* [MQTT-3.1.3-7], [MQTT-3.1.3-8]; 3.1 requires an identifier */
        mq_client_refuse(p, cl, CONNACK_ID_REJECTED, "empty client identifier");
        return false;
    }
    return true;
}

/* The CONNACK code for 'rc' in the client's protocol: v5 takes it as is, 3.1.1 its nearest. */
static uint8_t refusal_code(const client_t *cl, enum mq_rc rc)
{
    if (cl->proto == MQ_PROTO_5)
        return (uint8_t)rc;
    switch (rc) {
    case MQ_RC_BAD_USERNAME_OR_PASSWORD:
        return CONNACK_BAD_CREDENTIALS;
    case MQ_RC_CLIENT_ID_NOT_VALID:
        return CONNACK_ID_REJECTED;
    default:
        return CONNACK_NOT_AUTHORIZED;
    }
}

/* Authentication, the will's ACL and session ownership (net/auth.h decides), on the owner
 * worker so that a handed-off CONNECT verifies its password once. Returns MQ_CONN_OK,
 * MQ_CONN_CLOSED when refused, or MQ_CONN_GONE when the password went to the verifier thread
 * (the connection leaves the loop as for a hand-off and comes back with the answer). */
static int authorise(mq_proto_t *p, client_t *cl, const mq_connect_t *cp, mq_str_t id, uint64_t h)
{
    const mq_auth_t *a = mq_auth_get(p->env.auth);
    mq_auth_refresh(a, p->route, &p->auth_gen); /* a reload since: subscriptions first */
    const mq_server_listener_t *lo = &p->o->listeners[cl->conn.listener];
    const mq_sess_t *existing =
        p->o->session_owner_check ? mq_route_find(p->route, id.ptr, id.len, h) : NULL;
    const char *why = NULL;
    /* one trip to the verifier per CONNECT: an answer for an older state (a reload in between)
     * is verified here */
    bool may_defer = p->env.verifier != NULL && cl->auth_pending == NULL;
    enum mq_rc rc =
        mq_auth_admit(a, lo, cp, existing, &p->auth_cache, cl->auth_pending, may_defer, &why);
    if (rc == MQ_RC_AGAIN) {
        cl->auth_pending = mq_auth_pending_new(cp, lo->auth_domain);
        if (mq_auth_verifier_submit(p->env.verifier, &cl->conn, p->env.self, cl->auth_pending))
            return MQ_CONN_GONE; /* mq_connect_hand_off() takes it out of the loop */
        rc = mq_auth_admit(a, lo, cp, existing, &p->auth_cache, NULL, false, &why);
    }
    mq_free(cl->auth_pending); /* answered (or never asked): the password copy goes */
    cl->auth_pending = NULL;
    if (rc == MQ_RC_SUCCESS)
        return MQ_CONN_OK;
    MQ_LOG(MQ_LOG_NOTICE, "Client %.*s refused: %s.", (int)id.len, id.ptr, why);
    mq_client_refuse(p, cl, refusal_code(cl, rc), why);
    return MQ_CONN_CLOSED;
}

/* The will's topic against the ACL, at CONNECT: a will the client may not publish is dropped
 * and the CONNECT accepted, as with mosquitto 2.0 (which drops it when it would publish it). */
static bool will_allowed(mq_proto_t *p, client_t *cl, const mq_connect_t *cp, mq_str_t id)
{
    const mq_server_listener_t *lo = &p->o->listeners[cl->conn.listener];
    if (mq_auth_may_write_as(mq_auth_get(p->env.auth), lo->auth_domain,
                             cp->has_username ? &cp->username : NULL, id, cp->will_topic.ptr,
                             cp->will_topic.len))
        return true;
    MQ_LOG(MQ_LOG_INFO, "worker=%u client=%.*s will on '%.*s' denied by the ACL: dropped",
           p->env.self, (int)id.len, id.ptr,
           (int)(cp->will_topic.len > 64 ? 64 : cp->will_topic.len), cp->will_topic.ptr);
    return false;
}

/* Attaches 'cl' to the session 'id' of this worker, taking over or discarding what is there. */
static mq_sess_t *take_session(mq_proto_t *p, client_t *cl, const mq_connect_t *cp, const char *id,
                               size_t id_len, uint64_t h, bool *present)
{
    mq_sess_t *s = mq_route_find(p->route, id, id_len, h);
    if (s && s->conn) { /* take-over [MQTT-3.1.4-2]: the old connection ends, with its will */
        client_t *old = client_of(s->conn);
        mq_client_detach(p, old); /* its close then leaves the session alone */
        mq_client_end(old, true, "session taken over");
    }
    /* a clean session ends with its connection [MQTT-3.1.2-6], even when a persistent
     * CONNECT takes it over; a clean CONNECT discards any state */
    if (s && (cp->clean_start || s->clean)) {
        mq_client_destroy_sess(p, s);
        s = NULL;
    }
    *present = s != NULL;
    if (s == NULL) {
        s = mq_sess_new(id, id_len, h, cp->clean_start, &p->o->limits);
        mq_route_add(p->route, s);
    }
    s->clean = cp->clean_start;
    /* the session belongs to the user it was last authorised for, under its listener's rules;
     * a kept session taken by another identity (session_owner_check false, or another
     * listener's domain) has its subscriptions classified again for the new one */
    uint8_t dom = p->o->listeners[cl->conn.listener].auth_domain;
    const mq_str_t *user = cp->has_username ? &cp->username : NULL;
    bool changed = !mq_auth_same_owner(s, user) || s->auth_domain != dom;
    mq_sess_set_username(s, user ? user->ptr : NULL, user ? user->len : 0);
    s->auth_domain = dom;
    if (*present && changed)
        mq_auth_reclassify_sess(mq_auth_get(p->env.auth), p->route, s);
    cl->sess = s;
    return s;
}

int mq_connect_handle(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    const mq_connect_t *cp = &pkt->connect;
    cl->proto = cp->level;
    if (!admit(p, cl, cp))
        return MQ_CONN_CLOSED;
    char idbuf[128];
    const char *id = cp->client_id.ptr;
    size_t id_len = cp->client_id.len;
    if (id_len == 0) {
        id_len = make_client_id(p, p->o->listeners[cl->conn.listener].auto_id_prefix, idbuf,
                                sizeof(idbuf));
        id = idbuf;
    }
    uint64_t h = XXH3_64bits(id, id_len);
    unsigned owner = (unsigned)(h % p->env.n_workers);
    if (owner != p->env.self) {
        /* the session lives on its owner: move the connection there with the bytes read so
         * far (DESIGN.md rule 1); it re-decodes the CONNECT from them */
        cl->handoff_to = (uint8_t)owner;
        return MQ_CONN_GONE;
    }
    int r = authorise(p, cl, cp, (mq_str_t){id, id_len}, h);
    if (r != MQ_CONN_OK)
        return r;
    if (cp->has_will && will_allowed(p, cl, cp, (mq_str_t){id, id_len})) {
        cl->will = mq_msg_new(cp->will_topic.ptr, cp->will_topic.len, cp->will_payload.ptr,
                              cp->will_payload.len, cp->will_qos, cp->will_retain);
        if (cl->will == NULL) {
            mq_client_refuse(p, cl, CONNACK_UNAVAILABLE, "will too large");
            return MQ_CONN_CLOSED;
        }
    }
    cl->keep_alive = cp->keep_alive;
    bool present;
    mq_sess_t *s = take_session(p, cl, cp, id, id_len, h, &present);
    mq_conn_activate(&cl->conn);
    mq_buf_fini(&cl->pre);
    p->n_online++;
    p->cnt.connects++;
    mq_client_send_connack(p, cl, present, CONNACK_ACCEPTED);
    mq_sess_attach(s, mq_conn_out(&cl->conn), &cl->conn); /* re-sends owed messages */
    if (p->o->connection_messages)
        MQ_LOG(MQ_LOG_NOTICE, "New client connected from %s as %s (p%d, c%d, k%u).", cl->conn.peer,
               s->client_id, cp->level == MQ_PROTO_31 ? 1 : 2, cp->clean_start ? 1 : 0,
               cp->keep_alive);
    return MQ_CONN_OK;
}

void mq_connect_hand_off(mq_proto_t *p, client_t *cl)
{
    mq_conn_unlink(&cl->conn);
    mq_decoder_fini(&cl->dec);
    mq_decoder_init(&cl->dec, MQ_ROLE_SERVER, 0, p->o->max_packet_size);
    if (cl->auth_pending) /* with the verifier, which hands it back to this worker */
        return;
    mq_mail_t e = {.type = MQ_MAIL_HANDOFF, .ptr = cl};
    mq_outbox_send(p->env.outbox, cl->handoff_to, &e);
}
