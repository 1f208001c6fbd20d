/* SPDX-License-Identifier: MIT */
/* net/connect.c - CONNECT: admission, client identifiers, take-over, hand-off to the owner. */
#include "net/connect.h"

#include <string.h>
#include <sys/random.h>
#include <xxhash.h>

#include "core/log.h"
#include "core/mem.h"
#include "net/jwriter.h"
#include "net/publish.h"
#include "net/tls.h"
#include "net/will.h"

/* An identifier for a client that sent none, chosen so that this worker owns it: the prefix
 * and 16 hex digits, in 'cap' >= strlen(prefix) + 17 bytes. */
static size_t make_client_id(mq_proto_t *p, const char *prefix, char *buf, size_t cap)
{
    for (;;) {
        uint64_t r;
        if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
            r = XXH3_64bits(&p->next_auto_id, sizeof(p->next_auto_id)) ^ p->env.loop->now_ms;
        r ^= ++p->next_auto_id;
        size_t len = (size_t)snprintf(buf, cap, "%s%016llx", prefix, (unsigned long long)r);
        if (XXH3_64bits(buf, len) % p->env.n_workers == p->env.self)
            return len;
    }
}

/* The checks a CONNECT must pass before any session is touched; false when refused. */
static bool admit(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    const mq_server_opts_t *o = p->o;
    const mq_connect_t *cp = &pkt->connect;
    const mq_server_listener_t *lo = &o->listeners[cl->conn.listener];
    if (cp->level < MQ_PROTO_5 && o->max_keepalive && cp->keep_alive > o->max_keepalive) {
        /* mosquitto.conf(5): a 3.1.1 client asking for more than max_keepalive is refused
         * with "identifier rejected", there being no way to tell it a lower value (a v5
         * client is told the server's value instead: Server Keep Alive) */
        mq_client_refuse(p, cl, CONNACK_ID_REJECTED, "keepalive above max_keepalive");
        return false;
    }
    if (cp->client_id.len == 0 &&
        (cp->level == MQ_PROTO_31 || (cp->level == MQ_PROTO_311 && !cp->clean_start) ||
         !lo->allow_zero_length_clientid)) {
        /* [MQTT-3.1.3-7], [MQTT-3.1.3-8]; 3.1 requires an identifier; v5 assigns one
         * whatever Clean Start says [MQTT-3.1.3-6] */
        mq_client_refuse(p, cl, CONNACK_ID_REJECTED, "empty client identifier");
        return false;
    }
    if (mq_props_has(&pkt->props, MQ_PROP_AUTH_METHOD)) {
        /* no enhanced authentication method is configured (as mosquitto without a plugin);
         * a method plugs in here, answering with AUTH 0x18 Continue Authentication */
        mq_props_t pr = {0};
        mq_client_send_connack(p, cl, false, MQ_RC_BAD_AUTHENTICATION_METHOD, &pr);
        mq_client_end(cl, false, "authentication method not supported");
        return false;
    }
    const char *tls_user; /* the name itself replaces the user name in connect_as() */
    if (mq_tls_username(&cl->conn, &tls_user) == MQ_TLS_USER_MISSING) {
        /* use_identity_as_username / use_subject_as_username without a certificate (or a CN):
         * refused as by mosquitto */
        mq_client_refuse(p, cl, CONNACK_BAD_CREDENTIALS, "no username in a client certificate");
        return false;
    }
    return true;
}

/* The keep-alive the server holds the client to: its own, or max_keepalive when that is
 * lower (or the client asked for none) and the client can be told (MQTT 5). */
static uint16_t keep_alive_of(const mq_server_opts_t *o, const mq_connect_t *cp)
{
    if (cp->level == MQ_PROTO_5 && o->max_keepalive &&
        (cp->keep_alive == 0 || cp->keep_alive > o->max_keepalive))
        return o->max_keepalive;
    return cp->keep_alive;
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
static int authorise(mq_proto_t *p, client_t *cl, const mq_connect_t *cp, bool cert_user,
                     mq_str_t id, uint64_t h)
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
    enum mq_rc rc = mq_auth_admit(a, lo, cp, cert_user, existing, &p->auth_cache, cl->auth_pending,
                                  may_defer, &why);
    if (rc == MQ_RC_AGAIN) {
        cl->auth_pending = mq_auth_pending_new(cp, lo->auth_domain);
        if (mq_auth_verifier_submit(p->env.verifier, &cl->conn, p->env.self, cl->auth_pending))
            return MQ_CONN_GONE; /* mq_connect_hand_off() takes it out of the loop */
        rc = mq_auth_admit(a, lo, cp, cert_user, existing, &p->auth_cache, NULL, false, &why);
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
    mq_str_t topic = cp->will_topic;
    if (mq_client_mount(p, cl, &topic, false) && /* else take_will refuses it */
        mq_auth_may_write_as(mq_auth_get(p->env.auth), lo->auth_domain,
                             cp->has_username ? &cp->username : NULL, id, topic.ptr, topic.len))
        return true;
    MQ_LOG(MQ_LOG_INFO, "worker=%u client=%.*s will on '%.*s' denied by the ACL: dropped",
           p->env.self, (int)id.len, id.ptr,
           (int)(cp->will_topic.len > 64 ? 64 : cp->will_topic.len), cp->will_topic.ptr);
    return false;
}

/* The CONNECT leaves the loop as for a hand-off, to be decoded again next turn from the bytes
 * it kept (mq_connect_hand_off parks it, mq_proto_resume_waiting takes it back). */
static int wait_turn(mq_proto_t *p, client_t *cl, uint64_t h, bool for_reload)
{
    cl->handoff_to = (uint8_t)p->env.self; /* mq_connect_hand_off() keeps it waiting */
    p->wait_hash = h;
    p->wait_reload = for_reload;
    return MQ_CONN_GONE;
}

/* A CONNECT that would take over a session whose connection is up waits one turn of the loop
 * first (once), out of the loop as for a hand-off: what the old connection's client sent
 * before this one connected may have arrived and not been processed yet, and the take-over
 * would end that connection and drop it (a client's last PUBLISH before it closed and
 * connected again). Its completion can come later in the very batch this CONNECT came in: a
 * receive that finds its data when it is submitted (a new connection's first) completes during
 * the submission, ahead of the kernel's pending work that reads an armed socket whose data
 * came first. Or the CONNECT came by hand-off (another worker, the verifier) while that work
 * was still pending. By the next turn the worker has handled the rest of the batch and been
 * into its ring once more: the old connection has read what had arrived (and has usually seen
 * its client's close, so that no take-over is left to do). */
static int take_over_later(mq_proto_t *p, client_t *cl, uint64_t h)
{
    cl->takeover_waited = true;
    return wait_turn(p, cl, h, false);
}

/* Whether a CONNECT for client id hash 'h' waits a turn already: a later one waits behind it,
 * so that the later CONNECT still takes the session last. */
static bool waits_already(const mq_proto_t *p, uint64_t h)
{
    for (uint32_t i = 0; i < p->n_waiting; i++)
        if (p->waiting[i].h == h)
            return true;
    return false;
}

/* Attaches 'cl' to the session 'id' of this worker, taking over or discarding what is there. */
static mq_sess_t *take_session(mq_proto_t *p, client_t *cl, const mq_connect_t *cp, const char *id,
                               size_t id_len, uint64_t h, bool *present)
{
    mq_sess_t *s = mq_route_find(p->route, id, id_len, h);
    if (s && s->out) { /* take-over [MQTT-3.1.4-2]: the old connection ends, with its will */
        client_t *old = client_of(mq_conn_of_out(s->out));
        /* the old will goes now unless it has a delay and the session goes on: the new
         * connection cancels it (MQTT 5 §3.1.4, take-over) */
        bool goes_on = !cp->clean_start && !s->clean;
        mq_client_detach(p, old); /* its close then leaves the session alone */
        mq_client_end_rc(p, old, MQ_RC_SESSION_TAKEN_OVER, !(goes_on && old->will_delay > 0),
                         "session taken over");
        /* its will is checked now, as its owner's (the session changes hands below, and the
         * detached connection publishes it without a session) */
        if (old->will_pending && !mq_publish_will_allowed(p, s, old->will))
            old->will_pending = false;
    }
    /* a session that ends with its connection (3.1.1 clean session [MQTT-3.1.2-6], v5
     * Session Expiry 0) ends at a take-over too (MQTT 5 §3.1.4); a clean CONNECT (v5: Clean
     * Start) discards any state [MQTT-3.1.2-4] */
    if (s && (cp->clean_start || s->clean)) {
        mq_publish_end_session(p, s); /* what a shared group gave it goes on */
        s = NULL;
    }
    *present = s != NULL;
    if (s == NULL) {
        s = mq_sess_new(id, id_len, h, cp->clean_start, &p->home);
        mq_route_add(p->route, s);
    }
    s->expire_at = 0;
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

/* Session Expiry Interval: v5 from CONNECT (0 if absent); 3.1.1: 0 for a clean session,
 * else persistent_client_expiration (0xFFFFFFFF: never). */
static void set_expiry(mq_proto_t *p, mq_sess_t *s, const mq_packet_t *pkt)
{
    const mq_connect_t *cp = &pkt->connect;
    if (cp->level == MQ_PROTO_5) {
        s->expiry_s =
            mq_props_has(&pkt->props, MQ_PROP_SESSION_EXPIRY) ? pkt->props.session_expiry : 0;
    } else {
        uint32_t pce = p->o->persistent_client_expiration;
        s->expiry_s = cp->clean_start ? 0 : pce ? pce : 0xFFFFFFFFu;
    }
    s->clean = s->expiry_s == 0;
}

/* The will of a CONNECT, with its v5 properties; false when it cannot be kept. */
static bool take_will(mq_proto_t *p, client_t *cl, const mq_connect_t *cp)
{
    if (!cp->has_will)
        return true;
    const mq_props_t *wp = cp->level == MQ_PROTO_5 ? &cp->will_props : NULL;
    mq_str_t topic = cp->will_topic; /* behind the listener's mount point */
    if (!mq_client_mount(p, cl, &topic, false))
        return false;
    cl->will = mq_msg_new_props(topic.ptr, topic.len, cp->will_payload.ptr, cp->will_payload.len,
                                cp->will_qos, cp->will_retain, wp);
    if (cl->will == NULL)
        return false;
    cl->will_expiry = wp && mq_props_has(wp, MQ_PROP_MESSAGE_EXPIRY) ? wp->message_expiry : 0;
    cl->has_will_expiry = wp && mq_props_has(wp, MQ_PROP_MESSAGE_EXPIRY);
    cl->will_delay = wp && mq_props_has(wp, MQ_PROP_WILL_DELAY) ? wp->will_delay : 0;
    cl->will->origin = 0;
    return true;
}

/* Response Information for a client that asked for it [MQTT-3.1.2-28]: "PREFIX/CLIENT_ID"
 * in 'buf' when response_information is configured. */
static void response_info(const mq_server_opts_t *o, const mq_packet_t *pkt, const char *id,
                          size_t id_len, char *buf, size_t cap, mq_props_t *pr)
{
    if (o->response_information == NULL ||
        !mq_props_has(&pkt->props, MQ_PROP_REQUEST_RESPONSE_INFO) ||
        pkt->props.request_response_info == 0)
        return;
    int n = snprintf(buf, cap, "%s/%.*s", o->response_information, (int)id_len, id);
    pr->response_info = (mq_str_t){buf, n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1};
    mq_props_set(pr, MQ_PROP_RESPONSE_INFO);
}

/* What the server decided, for a v5 CONNACK [MQTT-3.2.2.3]; 'buf' holds strings it points to. */
static void connack_props(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt, const char *id,
                          size_t id_len, mq_props_t *pr, char *buf, size_t cap)
{
    const mq_server_opts_t *o = p->o;
    /* mosquitto's order, so that tools comparing CONNACK bytes with mosquitto's agree */
    static const uint8_t order[] = {MQ_PROP_SERVER_KEEP_ALIVE,   MQ_PROP_TOPIC_ALIAS_MAXIMUM,
                                    MQ_PROP_ASSIGNED_CLIENT_ID,  MQ_PROP_RESPONSE_INFO,
                                    MQ_PROP_MAXIMUM_QOS,         MQ_PROP_RETAIN_AVAILABLE,
                                    MQ_PROP_MAXIMUM_PACKET_SIZE, MQ_PROP_RECEIVE_MAXIMUM};
    *pr = (mq_props_t){.order = order, .n_order = sizeof(order)};
    response_info(o, pkt, id, id_len, buf, cap, pr);
    if (pkt->connect.client_id.len == 0) { /* the assigned id, or the user name taken as id */
        pr->assigned_client_id = (mq_str_t){id, id_len};
        mq_props_set(pr, MQ_PROP_ASSIGNED_CLIENT_ID);
    }
    if (cl->keep_alive != pkt->connect.keep_alive) {
        pr->server_keep_alive = cl->keep_alive;
        mq_props_set(pr, MQ_PROP_SERVER_KEEP_ALIVE);
    }
    if (o->limits.max_inflight < 65535) { /* inbound QoS 2 awaiting PUBREL */
        pr->receive_maximum = o->limits.max_inflight;
        mq_props_set(pr, MQ_PROP_RECEIVE_MAXIMUM);
    }
    if (o->max_qos < 2) {
        pr->maximum_qos = o->max_qos;
        mq_props_set(pr, MQ_PROP_MAXIMUM_QOS);
    }
    if (!o->retain_available) {
        pr->retain_available = 0;
        mq_props_set(pr, MQ_PROP_RETAIN_AVAILABLE);
    }
    if (o->max_packet_size) {
        pr->max_packet_size = o->max_packet_size;
        mq_props_set(pr, MQ_PROP_MAXIMUM_PACKET_SIZE);
    }
    pr->topic_alias_maximum = cl->alias_max;
    mq_props_set(pr, MQ_PROP_TOPIC_ALIAS_MAXIMUM);
}

/* What the client accepts, from its v5 CONNECT properties. */
static mq_sess_peer_t peer_of(const mq_packet_t *pkt)
{
    mq_sess_peer_t peer = {.proto = pkt->connect.level};
    const mq_props_t *pr = &pkt->props;
    if (pkt->connect.level == MQ_PROTO_5) {
        if (mq_props_has(pr, MQ_PROP_RECEIVE_MAXIMUM))
            peer.recv_max = pr->receive_maximum;
        if (mq_props_has(pr, MQ_PROP_MAXIMUM_PACKET_SIZE))
            peer.max_packet = pr->max_packet_size;
        if (mq_props_has(pr, MQ_PROP_TOPIC_ALIAS_MAXIMUM))
            peer.alias_max = pr->topic_alias_maximum;
    }
    return peer;
}

/* The client is admitted to session 's': CONNACK, then what the session owes it. */
static void welcome(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt, mq_sess_t *s, bool present)
{
    const mq_connect_t *cp = &pkt->connect;
    mq_conn_activate(&cl->conn);
    mq_client_drop_pre(cl);
    p->n_online++;
    p->cnt.connects++;
    if (cp->level == MQ_PROTO_5) {
        mq_props_t pr;
        char buf[512];
        connack_props(p, cl, pkt, s->client_id, s->id_len, &pr, buf, sizeof(buf));
        mq_client_send_connack(p, cl, present, CONNACK_ACCEPTED, &pr);
    } else {
        mq_client_send_connack(p, cl, present, CONNACK_ACCEPTED, NULL);
    }
    mq_sess_peer_t peer = peer_of(pkt);
    if (p->mounts[cl->conn.listener].len) /* its topics are sent without the mount point */
        peer.mount = (uint8_t)(cl->conn.listener + 1);
    mq_sess_attach(s, mq_conn_out(&cl->conn), &peer); /* re-sends what is owed */
    mq_route_set_online(p->route, s, true);           /* its shared groups pick it again */
    if (p->env.jw && !s->clean) /* a persistent session made or resumed (its user, expiry) */
        (void)mq_jwriter_sess_put(p->env.jw, s, true);
    char addr[MQ_CONN_PEER_LEN];
    if (p->o->connection_messages)
        MQ_LOG(MQ_LOG_NOTICE, "New client connected from %s as %s (p%d, c%d, k%u).",
               mq_conn_peer(&cl->conn, addr), s->client_id,
               cp->level == MQ_PROTO_5    ? 5
               : cp->level == MQ_PROTO_31 ? 1
                                          : 2,
               cp->clean_start ? 1 : 0, cl->keep_alive);
}

/* The CONNECT of an admitted client as client 'id'. */
static int connect_as(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt, const char *id,
                      size_t id_len)
{
    const mq_connect_t *cp = &pkt->connect;
    /* use_identity_as_username / use_subject_as_username: the certificate's name replaces
     * whatever user name and password the CONNECT has, for the password file (not asked: the
     * certificate authenticated the client), the ACL, the will and session ownership, as
     * with mosquitto */
    mq_connect_t by_cert;
    const char *tls_user;
    bool cert_user = mq_tls_username(&cl->conn, &tls_user) == MQ_TLS_USER_CERT;
    if (cert_user) {
        by_cert = *cp;
        by_cert.has_username = true;
        by_cert.username = mq_str(tls_user);
        by_cert.has_password = false;
        by_cert.password = (mq_str_t){NULL, 0};
        cp = &by_cert;
    }
    uint64_t h = XXH3_64bits(id, id_len);
    unsigned owner = (unsigned)(h % p->env.n_workers);
    if (owner != p->env.self) {
        /* the session lives on its owner: move the connection there with the bytes read so
         * far (DESIGN.md rule 1); it re-decodes the CONNECT from them */
        cl->handoff_to = (uint8_t)owner;
        return MQ_CONN_GONE;
    }
    /* a reload signalled before this CONNECT was read decides it, as in mosquitto's one loop
     * (net/auth.h): it waits here, on its session's owner, while the main thread reads the
     * files, turn after turn */
    if (cl->auth_pending == NULL && mq_auth_reload_due(p->env.auth, p->env.loop->now_ms)) {
        cl->takeover_waited = true; /* it spans ring entries: no take-over wait after it */
        return wait_turn(p, cl, h, true);
    }
    /* (an answer from the verifier has spanned a ring entry already: it does not wait) */
    const mq_sess_t *held = mq_route_find(p->route, id, id_len, h);
    if (!cl->takeover_waited && cl->auth_pending == NULL &&
        ((held && held->out && mq_conn_of_out(held->out)->state == MQ_CONN_ACTIVE) ||
         waits_already(p, h)))
        return take_over_later(p, cl, h);
    int r = authorise(p, cl, cp, cert_user, (mq_str_t){id, id_len}, h);
    if (r != MQ_CONN_OK)
        return r;
    if (cp->has_will && p->o->message_size_limit &&
        cp->will_payload.len > p->o->message_size_limit) {
        /* a will that could never be published is refused now, as mosquitto refuses it */
        mq_client_refuse(p, cl,
                         cp->level == MQ_PROTO_5 ? MQ_RC_PACKET_TOO_LARGE : CONNACK_NOT_AUTHORIZED,
                         "will payload over message_size_limit");
        return MQ_CONN_CLOSED;
    }
    bool will_ok = !cp->has_will || will_allowed(p, cl, cp, (mq_str_t){id, id_len});
    if (will_ok && !take_will(p, cl, cp)) {
        mq_client_refuse(p, cl, CONNACK_UNAVAILABLE, "will too large");
        return MQ_CONN_CLOSED;
    }
    cl->keep_alive = keep_alive_of(p->o, cp);
    if (cp->level == MQ_PROTO_5)
        cl->alias_max = p->o->listeners[cl->conn.listener].max_topic_alias;
    mq_sess_t *gone = mq_route_find(p->route, id, id_len, h);
    if (gone && mq_sess_expired(gone, p->env.loop->now_ms))
        mq_publish_end_expired(p, gone); /* expired, the tick that ends it not yet come (one
                                            restored after a restart): its will goes now */
    mq_will_cancel(p, id, id_len, h);    /* a delayed will is cancelled by a reconnect */
    bool present;
    uint64_t journaled = mq_jwriter_appended(p->env.jw);
    mq_sess_t *s = take_session(p, cl, cp, id, id_len, h, &present);
    bool was_kept = present && !s->clean;
    set_expiry(p, s, pkt);
    if (p->env.jw && was_kept && s->clean) /* resumed to end with this connection (v5 expiry
                                              0): a restart must not bring it, nor its will,
                                              back */
        (void)mq_jwriter_sess_del(p->env.jw, s);
    welcome(p, cl, pkt, s, present);
    /* a persistent session made, resumed or discarded: the CONNACK (what it says of the
     * session) follows the disk, as the acknowledgements do */
    mq_jwriter_hold(p->env.jw, &cl->conn, false, journaled);
    return MQ_CONN_OK;
}

/* The client id a CONNECT is served as, after it is admitted: the one it gives, or one
 * assigned to an empty one (the prefix, at most MQ_AUTO_ID_PREFIX_MAX bytes, and 16 hex
 * digits); clientid_prefixes checks that; use_username_as_clientid then puts the user name in
 * its place, as mosquitto does in that order. */
static int connect_named(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt, mq_str_t given)
{
    const mq_connect_t *cp = &pkt->connect;
    const char *want = p->o->clientid_prefixes;
    if (want && (given.len < strlen(want) || memcmp(given.ptr, want, strlen(want)) != 0)) {
        mq_client_refuse(p, cl, refusal_code(cl, MQ_RC_NOT_AUTHORIZED),
                         "client id without the clientid_prefixes prefix");
        return MQ_CONN_CLOSED;
    }
    if (!p->o->listeners[cl->conn.listener].use_username_as_clientid)
        return connect_as(p, cl, pkt, given.ptr, given.len);
    /* the user name, or the certificate's name that replaces it, is the client id: one user
     * cannot take another's session over by naming its id (mosquitto's option; it is applied
     * again, the same, after a hand-off to the owner worker) */
    const char *tls_user;
    mq_str_t user = cp->has_username ? cp->username : (mq_str_t){NULL, 0};
    if (mq_tls_username(&cl->conn, &tls_user) == MQ_TLS_USER_CERT)
        user = mq_str(tls_user);
    if (user.len == 0) {
        mq_client_refuse(p, cl, refusal_code(cl, MQ_RC_NOT_AUTHORIZED),
                         "no user name to use as the client id");
        return MQ_CONN_CLOSED;
    }
    return connect_as(p, cl, pkt, user.ptr, user.len);
}

int mq_connect_handle(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt)
{
    const mq_connect_t *cp = &pkt->connect;
    cl->proto = cp->level;
    cl->problem_info =
        !(cp->level == MQ_PROTO_5 && mq_props_has(&pkt->props, MQ_PROP_REQUEST_PROBLEM_INFO) &&
          pkt->props.request_problem_info == 0);
    if (!admit(p, cl, pkt))
        return MQ_CONN_CLOSED;
    if (cp->client_id.len > 0)
        return connect_named(p, cl, pkt, cp->client_id);
    const char *prefix = p->o->listeners[cl->conn.listener].auto_id_prefix;
    char stack[128];
    size_t cap = strlen(prefix) + 17;
    char *buf = cap <= sizeof(stack) ? stack : mq_alloc(cap);
    size_t len = make_client_id(p, prefix, buf, cap);
    int r = connect_named(p, cl, pkt, (mq_str_t){buf, len});
    if (buf != stack)
        mq_free(buf);
    return r;
}

void mq_connect_hand_off(mq_proto_t *p, client_t *cl)
{
    mq_conn_unlink(&cl->conn);
    mq_decoder_fini(&cl->dec);
    mq_decoder_init(&cl->dec, MQ_ROLE_SERVER, 0, p->o->max_packet_size);
    if (cl->auth_pending) /* with the verifier, which hands it back to this worker */
        return;
    if (cl->handoff_to == p->env.self) { /* wait_turn(): until mq_proto_resume_waiting() */
        if (p->n_waiting == p->cap_waiting)
            p->waiting = mq_grow(p->waiting, &p->cap_waiting, sizeof(*p->waiting), 16);
        p->waiting[p->n_waiting++] = (mq_waiting_t){cl, p->wait_hash, p->wait_reload};
        return;
    }
    mq_mail_t e = {.type = MQ_MAIL_HANDOFF, .ptr = cl};
    mq_outbox_send(p->env.outbox, cl->handoff_to, &e);
}
