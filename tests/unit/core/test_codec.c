/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_codec.c - MQTT 3.1 / 3.1.1 / 5.0 codec: round trips, exact bytes,
 * every chunking through the incremental decoder, and the rejection rules (core/codec_*.c). */
#include "core/codec.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"

TestSuite(codec);

static const uint8_t all_protos[] = {MQ_PROTO_31, MQ_PROTO_311, MQ_PROTO_5};

/* A mq_str_t initializer usable in static data (MQ_STR_LIT is a compound literal). */
#define LIT(s) {(s), sizeof(s) - 1}

/* ---- helpers ----------------------------------------------------------------------------- */

static bool str_eq(mq_str_t a, mq_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

#define EXPECT_STR(got, want, ...)                                                                 \
    cr_expect(str_eq((got), (want)), __VA_ARGS__)

/* The protocol a decoder starts with: a server learns it from CONNECT. */
static uint8_t start_proto(enum mq_role role, uint8_t type, uint8_t proto)
{
    return role == MQ_ROLE_SERVER && type == MQ_CONNECT ? 0 : proto;
}

/* Re-encodes a decoded packet (entries of SUBSCRIBE / UNSUBSCRIBE rebuilt from 'raw'). */
static size_t reencode(const mq_packet_t *p, uint8_t proto, uint8_t *out, size_t cap)
{
    mq_packet_t q = *p;
    mq_sub_entry_t ents[32];
    if (p->type == MQ_SUBSCRIBE || p->type == MQ_UNSUBSCRIBE) {
        size_t pos = 0;
        uint32_t n = 0;
        while (n < 32 && mq_sub_next(p, proto, &pos, &ents[n]))
            n++;
        cr_assert(eq(u32, n, p->subscribe.n), "mq_sub_next walked %u of %u entries", n,
                  p->subscribe.n);
        q.subscribe.entries = ents;
    }
    if (p->type == MQ_CONNECT)
        proto = p->connect.level;
    return mq_codec_encode(&q, proto, out, cap);
}

/* Feeds b[0..n) to a fresh decoder in pieces ending at cuts[0..ncut) and at n; expects
 * MQ_RC_AGAIN for every piece but the last, then one packet taking the whole last piece
 * that re-encodes to exactly the input. */
static void feed_pieces(enum mq_role role, uint8_t proto, const uint8_t *b, size_t n,
                        const size_t *cuts, size_t ncut, const char *how)
{
    mq_decoder_t d;
    mq_decoder_init(&d, role, start_proto(role, b[0] >> 4, proto), 0);
    size_t start = 0;
    for (size_t i = 0; i <= ncut; i++) {
        size_t end = i < ncut ? cuts[i] : n;
        size_t used = 12345;
        const char *why = NULL;
        mq_packet_t pkt;
        enum mq_rc rc = mq_decoder_feed(&d, b + start, end - start, &used, &pkt, &why);
        if (i < ncut) {
            cr_assert(eq(int, rc, MQ_RC_AGAIN), "%s: piece ending at %zu of %zu: rc 0x%x (%s)",
                      how, end, n, rc, why ? why : "");
            cr_assert(eq(sz, used, end - start), "%s: piece ending at %zu not all taken", how, end);
        } else {
            cr_assert(eq(int, rc, MQ_RC_SUCCESS), "%s: last piece of %zu bytes: rc 0x%x (%s)", how,
                      n, rc, why ? why : "");
            cr_assert(eq(sz, used, end - start), "%s: last piece: used %zu of %zu", how, used,
                      end - start);
            uint8_t *again = malloc(n);
            size_t m = reencode(&pkt, proto, again, n);
            cr_assert(eq(sz, m, n), "%s: re-encoded size %zu, input %zu", how, m, n);
            cr_assert(eq(int, memcmp(again, b, n), 0), "%s: re-encoded bytes differ", how);
            free(again);
        }
        start = end;
    }
    mq_decoder_fini(&d);
}

/* Whole, byte by byte, and split at every offset into two feeds. */
static void check_chunkings(enum mq_role role, uint8_t proto, const uint8_t *b, size_t n)
{
    feed_pieces(role, proto, b, n, NULL, 0, "whole");
    if (n > 20000)
        return; /* the big remaining-length cases: whole feed only, keeps the test fast */
    size_t *cuts = calloc(n, sizeof(*cuts));
    for (size_t i = 1; i < n; i++)
        cuts[i - 1] = i;
    feed_pieces(role, proto, b, n, cuts, n - 1, "byte by byte");
    for (size_t k = 1; k < n; k++) {
        char how[64];
        snprintf(how, sizeof(how), "split at %zu", k);
        feed_pieces(role, proto, b, n, &k, 1, how);
    }
    free(cuts);
}

/* Encodes *in for 'proto' (checking size, exact-cap and short-cap behaviour), decodes it
 * whole into *out (views into buf) and checks every chunking through the stream decoder.
 * Returns the encoded length. */
static size_t roundtrip(const mq_packet_t *in, uint8_t proto, enum mq_role role, uint8_t *buf,
                        size_t cap, mq_packet_t *out)
{
    size_t n = mq_codec_encoded_size(in, proto);
    cr_assert(gt(sz, n, 0), "%s v%u: not encodable", mq_ptype_str(in->type), proto);
    cr_assert(le(sz, n, cap), "%s v%u: %zu bytes do not fit the test buffer",
              mq_ptype_str(in->type), proto, n);
    cr_assert(eq(sz, mq_codec_encode(in, proto, buf, n - 1), 0), "%s v%u: short buffer accepted",
              mq_ptype_str(in->type), proto);
    cr_assert(eq(sz, mq_codec_encode(in, proto, buf, n), n), "%s v%u: size and encode disagree",
              mq_ptype_str(in->type), proto);
    const char *why = NULL;
    enum mq_rc rc = mq_codec_decode(role, start_proto(role, in->type, proto), buf, n, out, &why);
    cr_assert(eq(int, rc, MQ_RC_SUCCESS), "%s v%u: decode rc 0x%x (%s)", mq_ptype_str(in->type),
              proto, rc, why ? why : "");
    cr_assert(eq(u8, out->type, in->type));
    cr_expect(eq(u32, out->remaining_len, (uint32_t)(n - 1 - mq_codec_varint_size(
                                                           out->remaining_len))));
    /* a strict prefix is never a packet */
    mq_packet_t tmp;
    rc = mq_codec_decode(role, start_proto(role, in->type, proto), buf, n - 1, &tmp, &why);
    cr_expect(eq(int, rc, MQ_RC_AGAIN), "%s v%u: prefix gave 0x%x", mq_ptype_str(in->type), proto,
              rc);
    check_chunkings(role, proto, buf, n);
    return n;
}

/* Compares every v5 property of 'got' with what 'want' asked to encode. */
static void expect_props(const mq_props_t *got, const mq_props_t *want, const char *ctx)
{
    cr_expect(eq(u64, got->present, want->present), "%s: present bits", ctx);
#define NUM(f) cr_expect(eq(u64, (uint64_t)got->f, (uint64_t)want->f), "%s: " #f, ctx)
    NUM(message_expiry);
    NUM(session_expiry);
    NUM(will_delay);
    NUM(max_packet_size);
    NUM(subscription_id);
    NUM(server_keep_alive);
    NUM(receive_maximum);
    NUM(topic_alias_maximum);
    NUM(topic_alias);
    NUM(payload_format);
    NUM(request_problem_info);
    NUM(request_response_info);
    NUM(maximum_qos);
    NUM(retain_available);
    NUM(wildcard_sub_available);
    NUM(sub_id_available);
    NUM(shared_sub_available);
#undef NUM
#define STR(f) EXPECT_STR(got->f, want->f, "%s: " #f, ctx)
    STR(content_type);
    STR(response_topic);
    STR(correlation_data);
    STR(assigned_client_id);
    STR(auth_method);
    STR(auth_data);
    STR(response_info);
    STR(server_reference);
    STR(reason_string);
#undef STR
    cr_expect(eq(u32, got->n_user, want->n_user), "%s: user property count", ctx);
    size_t pos = 0;
    mq_str_t k, v;
    for (uint32_t i = 0; i < want->n_user; i++) {
        cr_assert(mq_props_next_user(got, &pos, &k, &v), "%s: user property %u missing", ctx, i);
        EXPECT_STR(k, want->user[i].key, "%s: user property %u key", ctx, i);
        EXPECT_STR(v, want->user[i].val, "%s: user property %u value", ctx, i);
    }
    cr_expect(not(mq_props_next_user(got, &pos, &k, &v)), "%s: extra user property", ctx);
    uint32_t want_ids = want->sub_ids ? want->n_sub_ids
                                      : mq_props_has(want, MQ_PROP_SUBSCRIPTION_ID) ? 1 : 0;
    cr_expect(eq(u32, got->n_sub_ids, want_ids), "%s: subscription id count", ctx);
    pos = 0;
    uint32_t id;
    for (uint32_t i = 0; i < want_ids; i++) {
        cr_assert(mq_props_next_sub_id(got, &pos, &id), "%s: subscription id %u missing", ctx, i);
        uint32_t w = want->sub_ids ? want->sub_ids[i] : want->subscription_id;
        cr_expect(eq(u32, id, w), "%s: subscription id %u", ctx, i);
    }
    cr_expect(not(mq_props_next_sub_id(got, &pos, &id)), "%s: extra subscription id", ctx);
}

static const mq_packet_t zero_pkt;

static mq_packet_t make(uint8_t type)
{
    mq_packet_t p = zero_pkt;
    p.type = type;
    return p;
}

static const mq_user_prop_t users[] = {
    {LIT("region"), LIT("eu-west")},
    {LIT("region"), LIT("eu-north")}, /* same key twice is allowed */
    {LIT(""), LIT("")},
    {LIT("caf\xc3\xa9"), LIT("\xe2\x82\xac")},
};

static void add_users(mq_props_t *p, uint32_t n)
{
    p->user = users;
    p->n_user = n;
    mq_props_set(p, MQ_PROP_USER_PROPERTY);
}

static uint8_t big[2200000];    /* room for the 2097152-byte remaining length case */
static uint8_t bigsrc[2200000]; /* its payload */
static uint8_t buf[70000];

/* ---- round trips ------------------------------------------------------------------------- */

static void check_connect(const mq_packet_t *in, uint8_t proto, const char *name)
{
    mq_packet_t out;
    roundtrip(in, proto, MQ_ROLE_SERVER, buf, sizeof(buf), &out);
    const mq_connect_t *w = &in->connect, *g = &out.connect;
    cr_expect(eq(u8, g->level, proto), "%s v%u: level", name, proto);
    cr_expect(eq(int, g->clean_start, w->clean_start), "%s v%u: clean start", name, proto);
    cr_expect(eq(int, g->has_will, w->has_will), "%s v%u: will flag", name, proto);
    cr_expect(eq(int, g->will_retain, w->will_retain), "%s v%u: will retain", name, proto);
    cr_expect(eq(u8, g->will_qos, w->will_qos), "%s v%u: will qos", name, proto);
    cr_expect(eq(int, g->has_username, w->has_username), "%s v%u: user flag", name, proto);
    cr_expect(eq(int, g->has_password, w->has_password), "%s v%u: password flag", name, proto);
    cr_expect(eq(u16, g->keep_alive, w->keep_alive), "%s v%u: keep alive", name, proto);
    EXPECT_STR(g->client_id, w->client_id, "%s v%u: client id", name, proto);
    if (w->has_will) {
        EXPECT_STR(g->will_topic, w->will_topic, "%s v%u: will topic", name, proto);
        EXPECT_STR(g->will_payload, w->will_payload, "%s v%u: will payload", name, proto);
    }
    if (w->has_username)
        EXPECT_STR(g->username, w->username, "%s v%u: user name", name, proto);
    if (w->has_password)
        EXPECT_STR(g->password, w->password, "%s v%u: password", name, proto);
    if (proto == MQ_PROTO_5) {
        expect_props(&out.props, &in->props, name);
        expect_props(&g->will_props, &w->will_props, name);
    } else {
        cr_expect(eq(u64, out.props.present, 0), "%s v%u: properties before v5", name, proto);
    }
}

Test(codec, round_trips_connect_in_every_version)
{
    for (size_t i = 0; i < MQ_ARRAY_LEN(all_protos); i++) {
        uint8_t proto = all_protos[i];
        mq_packet_t p = make(MQ_CONNECT);
        p.connect.clean_start = true;
        p.connect.keep_alive = 60;
        p.connect.client_id = MQ_STR_LIT("a");
        check_connect(&p, proto, "minimal");

        p = make(MQ_CONNECT);
        p.connect.client_id = MQ_STR_LIT(""); /* server assigns one */
        check_connect(&p, proto, "empty client id, no clean start");

        static const char will_payload[] = {0x00, 0x01, (char)0xff, 0x00};
        p = make(MQ_CONNECT);
        p.connect.keep_alive = 0xFFFF;
        p.connect.client_id = MQ_STR_LIT("sensor-\xc3\xa9-17");
        p.connect.has_will = true;
        p.connect.will_qos = 2;
        p.connect.will_retain = true;
        p.connect.will_topic = MQ_STR_LIT("devices/sensor-17/status");
        p.connect.will_payload = (mq_str_t){will_payload, sizeof(will_payload)};
        p.connect.has_username = true;
        p.connect.username = MQ_STR_LIT("user");
        p.connect.has_password = true;
        p.connect.password = MQ_STR_LIT("p\x00ss"); /* binary: NUL allowed */
        if (proto == MQ_PROTO_5) {
            mq_props_t *c = &p.props;
            c->session_expiry = 0xFFFFFFFF;
            mq_props_set(c, MQ_PROP_SESSION_EXPIRY);
            c->receive_maximum = 20;
            mq_props_set(c, MQ_PROP_RECEIVE_MAXIMUM);
            c->max_packet_size = 1048576;
            mq_props_set(c, MQ_PROP_MAXIMUM_PACKET_SIZE);
            c->topic_alias_maximum = 10;
            mq_props_set(c, MQ_PROP_TOPIC_ALIAS_MAXIMUM);
            c->request_problem_info = 0;
            mq_props_set(c, MQ_PROP_REQUEST_PROBLEM_INFO);
            c->request_response_info = 1;
            mq_props_set(c, MQ_PROP_REQUEST_RESPONSE_INFO);
            c->auth_method = MQ_STR_LIT("SCRAM-SHA-256");
            mq_props_set(c, MQ_PROP_AUTH_METHOD);
            c->auth_data = (mq_str_t){will_payload, sizeof(will_payload)};
            mq_props_set(c, MQ_PROP_AUTH_DATA);
            add_users(c, 4);
            mq_props_t *w = &p.connect.will_props;
            w->will_delay = 30;
            mq_props_set(w, MQ_PROP_WILL_DELAY);
            w->payload_format = 1;
            mq_props_set(w, MQ_PROP_PAYLOAD_FORMAT);
            w->message_expiry = 3600;
            mq_props_set(w, MQ_PROP_MESSAGE_EXPIRY);
            w->content_type = MQ_STR_LIT("text/plain");
            mq_props_set(w, MQ_PROP_CONTENT_TYPE);
            w->response_topic = MQ_STR_LIT("replies/17");
            mq_props_set(w, MQ_PROP_RESPONSE_TOPIC);
            w->correlation_data = MQ_STR_LIT("\x01\x02");
            mq_props_set(w, MQ_PROP_CORRELATION_DATA);
            add_users(w, 2);
        }
        check_connect(&p, proto, "will, user name, password, properties");

        p.connect.will_qos = 1;
        p.connect.will_retain = false;
        p.connect.has_password = false;
        check_connect(&p, proto, "will qos 1, user name only");
    }
}

Test(codec, round_trips_v5_connect_with_password_but_no_user_name)
{
    mq_packet_t p = make(MQ_CONNECT);
    p.connect.client_id = MQ_STR_LIT("c");
    p.connect.has_password = true;
    p.connect.password = MQ_STR_LIT("token");
    check_connect(&p, MQ_PROTO_5, "password only");
}

Test(codec, round_trips_connack_in_every_version)
{
    for (size_t i = 0; i < MQ_ARRAY_LEN(all_protos); i++) {
        uint8_t proto = all_protos[i];
        mq_packet_t p = make(MQ_CONNACK), out;
        p.connack.session_present = true;
        roundtrip(&p, proto, MQ_ROLE_CLIENT, buf, sizeof(buf), &out);
        cr_expect(eq(int, out.connack.session_present, 1), "v%u session present", proto);
        cr_expect(eq(u8, out.connack.rc, 0), "v%u rc", proto);

        p.connack.session_present = false;
        p.connack.rc = proto == MQ_PROTO_5 ? MQ_RC_NOT_AUTHORIZED : 5;
        if (proto == MQ_PROTO_5) {
            mq_props_t *c = &p.props;
            c->session_expiry = 120;
            mq_props_set(c, MQ_PROP_SESSION_EXPIRY);
            c->assigned_client_id = MQ_STR_LIT("auto-1234");
            mq_props_set(c, MQ_PROP_ASSIGNED_CLIENT_ID);
            c->server_keep_alive = 30;
            mq_props_set(c, MQ_PROP_SERVER_KEEP_ALIVE);
            c->receive_maximum = 65535;
            mq_props_set(c, MQ_PROP_RECEIVE_MAXIMUM);
            c->topic_alias_maximum = 0;
            mq_props_set(c, MQ_PROP_TOPIC_ALIAS_MAXIMUM);
            c->maximum_qos = 1;
            mq_props_set(c, MQ_PROP_MAXIMUM_QOS);
            c->retain_available = 0;
            mq_props_set(c, MQ_PROP_RETAIN_AVAILABLE);
            c->max_packet_size = 268435460;
            mq_props_set(c, MQ_PROP_MAXIMUM_PACKET_SIZE);
            c->wildcard_sub_available = 1;
            mq_props_set(c, MQ_PROP_WILDCARD_SUB_AVAILABLE);
            c->sub_id_available = 0;
            mq_props_set(c, MQ_PROP_SUB_ID_AVAILABLE);
            c->shared_sub_available = 1;
            mq_props_set(c, MQ_PROP_SHARED_SUB_AVAILABLE);
            c->response_info = MQ_STR_LIT("resp/");
            mq_props_set(c, MQ_PROP_RESPONSE_INFO);
            c->server_reference = MQ_STR_LIT("other.example:1883");
            mq_props_set(c, MQ_PROP_SERVER_REFERENCE);
            c->reason_string = MQ_STR_LIT("not allowed");
            mq_props_set(c, MQ_PROP_REASON_STRING);
            c->auth_method = MQ_STR_LIT("m");
            mq_props_set(c, MQ_PROP_AUTH_METHOD);
            c->auth_data = MQ_STR_LIT("");
            mq_props_set(c, MQ_PROP_AUTH_DATA);
            add_users(c, 3);
        }
        roundtrip(&p, proto, MQ_ROLE_CLIENT, buf, sizeof(buf), &out);
        cr_expect(eq(int, out.connack.session_present, 0), "v%u refusal: session present", proto);
        cr_expect(eq(u8, out.connack.rc, p.connack.rc), "v%u refusal: rc", proto);
        if (proto == MQ_PROTO_5)
            expect_props(&out.props, &p.props, "CONNACK");
    }
}

static void set_publish_props(mq_props_t *c)
{
    c->payload_format = 1;
    mq_props_set(c, MQ_PROP_PAYLOAD_FORMAT);
    c->message_expiry = 0x01020304;
    mq_props_set(c, MQ_PROP_MESSAGE_EXPIRY);
    c->topic_alias = 7;
    mq_props_set(c, MQ_PROP_TOPIC_ALIAS);
    c->content_type = MQ_STR_LIT("application/json");
    mq_props_set(c, MQ_PROP_CONTENT_TYPE);
    c->response_topic = MQ_STR_LIT("reply/to/me");
    mq_props_set(c, MQ_PROP_RESPONSE_TOPIC);
    c->correlation_data = (mq_str_t){"\x00\xff\x10", 3};
    mq_props_set(c, MQ_PROP_CORRELATION_DATA);
    add_users(c, 2);
}

Test(codec, round_trips_publish_for_every_qos_retain_and_dup)
{
    static const char payload[] = {'h', 'i', 0x00, (char)0xc0, (char)0xff};
    for (size_t i = 0; i < MQ_ARRAY_LEN(all_protos); i++) {
        uint8_t proto = all_protos[i];
        for (uint8_t qos = 0; qos <= 2; qos++) {
            for (int retain = 0; retain <= 1; retain++) {
                for (int dup = 0; dup <= (qos ? 1 : 0); dup++) {
                    for (int with_payload = 0; with_payload <= 1; with_payload++) {
                        mq_packet_t p = make(MQ_PUBLISH), out;
                        p.publish.qos = qos;
                        p.publish.retain = retain;
                        p.publish.dup = dup;
                        p.publish.packet_id = qos ? (uint16_t)(0xFFFF - qos) : 0;
                        p.publish.topic = MQ_STR_LIT("sport/tennis/player1");
                        if (with_payload)
                            p.publish.payload = (mq_str_t){payload, sizeof(payload)};
                        if (proto == MQ_PROTO_5 && with_payload)
                            set_publish_props(&p.props);
                        size_t n = roundtrip(&p, proto, MQ_ROLE_SERVER, buf, sizeof(buf), &out);
                        uint8_t hdr = (uint8_t)(0x30 | dup << 3 | qos << 1 | retain);
                        cr_expect(eq(u8, buf[0], hdr), "v%u q%u r%d d%d: header byte", proto,
                                  qos, retain, dup);
                        cr_expect(eq(u8, out.flags, hdr & 0x0F));
                        cr_expect(eq(u8, out.publish.qos, qos), "v%u: qos", proto);
                        cr_expect(eq(int, out.publish.retain, retain), "v%u: retain", proto);
                        cr_expect(eq(int, out.publish.dup, dup), "v%u: dup", proto);
                        cr_expect(eq(u16, out.publish.packet_id, p.publish.packet_id),
                                  "v%u q%u: packet id", proto, qos);
                        EXPECT_STR(out.publish.topic, p.publish.topic, "v%u: topic", proto);
                        EXPECT_STR(out.publish.payload, p.publish.payload, "v%u: payload",
                                   proto);
                        cr_expect(out.publish.payload.ptr == NULL ||
                                      (const uint8_t *)out.publish.payload.ptr == buf + n -
                                          out.publish.payload.len,
                                  "payload must be a view at the end of the input");
                        if (proto == MQ_PROTO_5)
                            expect_props(&out.props, &p.props, "PUBLISH");
                    }
                }
            }
        }
    }
}

Test(codec, round_trips_v5_publish_with_topic_alias_and_empty_topic)
{
    mq_packet_t p = make(MQ_PUBLISH), out;
    p.publish.qos = 1;
    p.publish.packet_id = 1;
    p.props.topic_alias = 65535;
    mq_props_set(&p.props, MQ_PROP_TOPIC_ALIAS);
    p.publish.payload = MQ_STR_LIT("x");
    roundtrip(&p, MQ_PROTO_5, MQ_ROLE_SERVER, buf, sizeof(buf), &out);
    cr_expect(eq(sz, out.publish.topic.len, 0));
    cr_expect(eq(u16, out.props.topic_alias, 65535));
}

Test(codec, round_trips_v5_publish_to_client_with_several_subscription_ids)
{
    static const uint32_t ids[] = {1, 127, 128, 16384, 268435455};
    mq_packet_t p = make(MQ_PUBLISH), out;
    p.publish.topic = MQ_STR_LIT("a/b");
    p.props.sub_ids = ids;
    p.props.n_sub_ids = MQ_ARRAY_LEN(ids);
    p.props.subscription_id = ids[0];
    mq_props_set(&p.props, MQ_PROP_SUBSCRIPTION_ID);
    add_users(&p.props, 1);
    roundtrip(&p, MQ_PROTO_5, MQ_ROLE_CLIENT, buf, sizeof(buf), &out);
    expect_props(&out.props, &p.props, "PUBLISH with subscription ids");

    /* one id, from the single field */
    mq_packet_t q = make(MQ_PUBLISH);
    q.publish.topic = MQ_STR_LIT("a/b");
    q.props.subscription_id = 2097152;
    mq_props_set(&q.props, MQ_PROP_SUBSCRIPTION_ID);
    roundtrip(&q, MQ_PROTO_5, MQ_ROLE_CLIENT, buf, sizeof(buf), &out);
    expect_props(&out.props, &q.props, "PUBLISH with one subscription id");
}

Test(codec, round_trips_publish_acknowledgements)
{
    static const uint8_t types[] = {MQ_PUBACK, MQ_PUBREC, MQ_PUBREL, MQ_PUBCOMP};
    for (size_t t = 0; t < MQ_ARRAY_LEN(types); t++) {
        uint8_t type = types[t];
        uint8_t fail_rc = type == MQ_PUBREL || type == MQ_PUBCOMP ? 0x92 : 0x10;
        for (size_t i = 0; i < MQ_ARRAY_LEN(all_protos); i++) {
            uint8_t proto = all_protos[i];
            for (int variant = 0; variant < (proto == MQ_PROTO_5 ? 4 : 1); variant++) {
                mq_packet_t p = make(type), out;
                p.ack.packet_id = variant & 1 ? 0xFFFF : 1;
                if (variant >= 1)
                    p.ack.rc = fail_rc;
                if (variant >= 2) {
                    p.props.reason_string = MQ_STR_LIT("why not");
                    mq_props_set(&p.props, MQ_PROP_REASON_STRING);
                }
                if (variant == 3)
                    add_users(&p.props, 2);
                for (int r = 0; r <= 1; r++) {
                    enum mq_role role = r ? MQ_ROLE_CLIENT : MQ_ROLE_SERVER;
                    size_t n = roundtrip(&p, proto, role, buf, sizeof(buf), &out);
                    const char *name = mq_ptype_str(type);
                    cr_expect(eq(u8, buf[0], type == MQ_PUBREL ? 0x62 : type << 4),
                              "%s v%u: header", name, proto);
                    size_t want_len = proto < MQ_PROTO_5 || variant == 0 ? 4 : variant == 1 ? 5 : 0;
                    if (want_len)
                        cr_expect(eq(sz, n, want_len), "%s v%u variant %d: length", name, proto,
                                  variant);
                    cr_expect(eq(u16, out.ack.packet_id, p.ack.packet_id), "%s v%u: id", name,
                              proto);
                    cr_expect(eq(u8, out.ack.rc, p.ack.rc), "%s v%u: rc", name, proto);
                    if (proto == MQ_PROTO_5)
                        expect_props(&out.props, &p.props, name);
                }
            }
        }
    }
}

Test(codec, round_trips_subscribe_and_walks_its_entries)
{
    static const mq_sub_entry_t ents[] = {
        {.filter = LIT("sport/tennis/+"), .qos = 0},
        {.filter = LIT("a/#"), .qos = 1, .no_local = true, .retain_handling = 2},
        {.filter = LIT("$share/g/x/y"), .qos = 2, .retain_as_published = true,
         .retain_handling = 1},
        {.filter = LIT("caf\xc3\xa9"), .qos = 1, .no_local = true,
         .retain_as_published = true},
    };
    for (size_t i = 0; i < MQ_ARRAY_LEN(all_protos); i++) {
        uint8_t proto = all_protos[i];
        mq_packet_t p = make(MQ_SUBSCRIBE), out;
        p.subscribe.packet_id = 0x1234;
        p.subscribe.n = MQ_ARRAY_LEN(ents);
        p.subscribe.entries = ents;
        if (proto == MQ_PROTO_5) {
            p.props.subscription_id = 16384;
            mq_props_set(&p.props, MQ_PROP_SUBSCRIPTION_ID);
            add_users(&p.props, 2);
        }
        roundtrip(&p, proto, MQ_ROLE_SERVER, buf, sizeof(buf), &out);
        cr_expect(eq(u8, buf[0], 0x82));
        cr_expect(eq(u16, out.subscribe.packet_id, 0x1234));
        cr_expect(eq(u32, out.subscribe.n, MQ_ARRAY_LEN(ents)));
        size_t pos = 0;
        mq_sub_entry_t e;
        for (size_t k = 0; k < MQ_ARRAY_LEN(ents); k++) {
            cr_assert(mq_sub_next(&out, proto, &pos, &e), "v%u: entry %zu missing", proto, k);
            EXPECT_STR(e.filter, ents[k].filter, "v%u entry %zu: filter", proto, k);
            cr_expect(eq(u8, e.qos, ents[k].qos), "v%u entry %zu: qos", proto, k);
            bool v5 = proto == MQ_PROTO_5; /* options exist only in v5 */
            cr_expect(eq(int, e.no_local, v5 && ents[k].no_local), "v%u entry %zu: nl", proto, k);
            cr_expect(eq(int, e.retain_as_published, v5 && ents[k].retain_as_published),
                      "v%u entry %zu: rap", proto, k);
            cr_expect(eq(u8, e.retain_handling, v5 ? ents[k].retain_handling : 0),
                      "v%u entry %zu: rh", proto, k);
            cr_expect(eq(u8, e.rc, MQ_RC_SUCCESS), "v%u entry %zu: rc", proto, k);
        }
        cr_expect(not(mq_sub_next(&out, proto, &pos, &e)), "v%u: extra entry", proto);
        if (proto == MQ_PROTO_5)
            expect_props(&out.props, &p.props, "SUBSCRIBE");
    }
}

Test(codec, round_trips_unsubscribe)
{
    static const mq_sub_entry_t ents[] = {
        {.filter = LIT("a/b")},
        {.filter = LIT("#")},
        {.filter = LIT("$share/g/+")},
    };
    for (size_t i = 0; i < MQ_ARRAY_LEN(all_protos); i++) {
        uint8_t proto = all_protos[i];
        mq_packet_t p = make(MQ_UNSUBSCRIBE), out;
        p.subscribe.packet_id = 7;
        p.subscribe.n = MQ_ARRAY_LEN(ents);
        p.subscribe.entries = ents;
        if (proto == MQ_PROTO_5)
            add_users(&p.props, 1);
        size_t n = roundtrip(&p, proto, MQ_ROLE_SERVER, buf, sizeof(buf), &out);
        cr_expect(eq(u8, buf[0], 0xA2));
        cr_expect(eq(sz, n, 2 + 2 + (proto == MQ_PROTO_5 ? 1 + 1 + 2 + 6 + 2 + 7 : 0) + 5 + 3 + 12));
        cr_expect(eq(u16, out.subscribe.packet_id, 7));
        size_t pos = 0;
        mq_sub_entry_t e;
        for (size_t k = 0; k < MQ_ARRAY_LEN(ents); k++) {
            cr_assert(mq_sub_next(&out, proto, &pos, &e), "v%u: entry %zu missing", proto, k);
            EXPECT_STR(e.filter, ents[k].filter, "v%u entry %zu: filter", proto, k);
            cr_expect(eq(u8, e.rc, MQ_RC_SUCCESS));
        }
        cr_expect(not(mq_sub_next(&out, proto, &pos, &e)));
        if (proto == MQ_PROTO_5)
            expect_props(&out.props, &p.props, "UNSUBSCRIBE");
    }
}

Test(codec, round_trips_suback_and_unsuback)
{
    static const uint8_t sub_rcs[] = {0x00, 0x01, 0x02, 0x80};
    static const uint8_t sub_rcs5[] = {0x00, 0x01, 0x02, 0x80, 0x8F, 0x9E, 0xA1, 0xA2};
    static const uint8_t unsub_rcs5[] = {0x00, 0x11, 0x8F, 0x87};
    for (size_t i = 0; i < MQ_ARRAY_LEN(all_protos); i++) {
        uint8_t proto = all_protos[i];
        bool v5 = proto == MQ_PROTO_5;
        mq_packet_t p = make(MQ_SUBACK), out;
        p.suback.packet_id = 0x8001;
        p.suback.rcs = v5 ? sub_rcs5 : sub_rcs;
        p.suback.n = v5 ? MQ_ARRAY_LEN(sub_rcs5) : MQ_ARRAY_LEN(sub_rcs);
        if (v5) {
            p.props.reason_string = MQ_STR_LIT("partly");
            mq_props_set(&p.props, MQ_PROP_REASON_STRING);
            add_users(&p.props, 2);
        }
        roundtrip(&p, proto, MQ_ROLE_CLIENT, buf, sizeof(buf), &out);
        cr_expect(eq(u16, out.suback.packet_id, 0x8001));
        cr_assert(eq(u32, out.suback.n, p.suback.n), "v%u: SUBACK code count", proto);
        cr_expect(eq(int, memcmp(out.suback.rcs, p.suback.rcs, p.suback.n), 0));
        if (v5)
            expect_props(&out.props, &p.props, "SUBACK");

        p = make(MQ_UNSUBACK);
        p.suback.packet_id = 3;
        p.suback.rcs = unsub_rcs5;
        p.suback.n = MQ_ARRAY_LEN(unsub_rcs5); /* dropped before v5 */
        if (v5) {
            p.props.reason_string = MQ_STR_LIT("r");
            mq_props_set(&p.props, MQ_PROP_REASON_STRING);
        }
        size_t n = roundtrip(&p, proto, MQ_ROLE_CLIENT, buf, sizeof(buf), &out);
        cr_expect(eq(u16, out.suback.packet_id, 3));
        if (v5) {
            cr_assert(eq(u32, out.suback.n, MQ_ARRAY_LEN(unsub_rcs5)));
            cr_expect(eq(int, memcmp(out.suback.rcs, unsub_rcs5, out.suback.n), 0));
            expect_props(&out.props, &p.props, "UNSUBACK");
        } else {
            cr_expect(eq(sz, n, 4), "v%u: UNSUBACK is 4 bytes", proto);
            cr_expect(eq(u32, out.suback.n, 0));
        }
    }
}

Test(codec, round_trips_pings_in_every_version)
{
    for (size_t i = 0; i < MQ_ARRAY_LEN(all_protos); i++) {
        mq_packet_t p = make(MQ_PINGREQ), out;
        cr_expect(eq(sz, roundtrip(&p, all_protos[i], MQ_ROLE_SERVER, buf, sizeof(buf), &out), 2));
        cr_expect(eq(u8, buf[0], 0xC0));
        cr_expect(eq(u8, buf[1], 0x00));
        p = make(MQ_PINGRESP);
        cr_expect(eq(sz, roundtrip(&p, all_protos[i], MQ_ROLE_CLIENT, buf, sizeof(buf), &out), 2));
        cr_expect(eq(u8, buf[0], 0xD0));
        cr_expect(eq(u8, buf[1], 0x00));
    }
}

Test(codec, round_trips_disconnect)
{
    mq_packet_t p = make(MQ_DISCONNECT), out;
    for (size_t i = 0; i < MQ_ARRAY_LEN(all_protos); i++) {
        cr_expect(eq(sz, roundtrip(&p, all_protos[i], MQ_ROLE_SERVER, buf, sizeof(buf), &out), 2),
                  "v%u: bare DISCONNECT", all_protos[i]);
        cr_expect(eq(u8, buf[0], 0xE0));
        cr_expect(eq(u8, out.reason.rc, 0));
    }
    /* v5: reason code alone, then with properties, in both directions */
    p.reason.rc = MQ_RC_DISCONNECT_WITH_WILL;
    cr_expect(eq(sz, roundtrip(&p, MQ_PROTO_5, MQ_ROLE_SERVER, buf, sizeof(buf), &out), 3));
    cr_expect(eq(u8, out.reason.rc, MQ_RC_DISCONNECT_WITH_WILL));

    p.props.session_expiry = 0;
    mq_props_set(&p.props, MQ_PROP_SESSION_EXPIRY);
    p.props.reason_string = MQ_STR_LIT("bye");
    mq_props_set(&p.props, MQ_PROP_REASON_STRING);
    add_users(&p.props, 4);
    roundtrip(&p, MQ_PROTO_5, MQ_ROLE_SERVER, buf, sizeof(buf), &out);
    cr_expect(eq(u8, out.reason.rc, MQ_RC_DISCONNECT_WITH_WILL));
    expect_props(&out.props, &p.props, "DISCONNECT from client");

    p = make(MQ_DISCONNECT);
    p.reason.rc = MQ_RC_USE_ANOTHER_SERVER;
    p.props.server_reference = MQ_STR_LIT("b.example");
    mq_props_set(&p.props, MQ_PROP_SERVER_REFERENCE);
    roundtrip(&p, MQ_PROTO_5, MQ_ROLE_CLIENT, buf, sizeof(buf), &out);
    cr_expect(eq(u8, out.reason.rc, MQ_RC_USE_ANOTHER_SERVER));
    expect_props(&out.props, &p.props, "DISCONNECT from server");
}

Test(codec, round_trips_v5_auth_and_refuses_to_encode_it_before_v5)
{
    mq_packet_t p = make(MQ_AUTH), out;
    for (int r = 0; r <= 1; r++) {
        enum mq_role role = r ? MQ_ROLE_CLIENT : MQ_ROLE_SERVER;
        cr_expect(eq(sz, roundtrip(&p, MQ_PROTO_5, role, buf, sizeof(buf), &out), 2));
        cr_expect(eq(u8, buf[0], 0xF0));
    }
    p.reason.rc = MQ_RC_CONTINUE_AUTHENTICATION;
    p.props.auth_method = MQ_STR_LIT("SCRAM-SHA-1");
    mq_props_set(&p.props, MQ_PROP_AUTH_METHOD);
    p.props.auth_data = (mq_str_t){"\x00\x01\x02\xff", 4};
    mq_props_set(&p.props, MQ_PROP_AUTH_DATA);
    p.props.reason_string = MQ_STR_LIT("step 2");
    mq_props_set(&p.props, MQ_PROP_REASON_STRING);
    add_users(&p.props, 3);
    for (int r = 0; r <= 1; r++) {
        enum mq_role role = r ? MQ_ROLE_CLIENT : MQ_ROLE_SERVER;
        roundtrip(&p, MQ_PROTO_5, role, buf, sizeof(buf), &out);
        cr_expect(eq(u8, out.reason.rc, MQ_RC_CONTINUE_AUTHENTICATION));
        expect_props(&out.props, &p.props, "AUTH");
    }
    p.reason.rc = MQ_RC_REAUTHENTICATE;
    roundtrip(&p, MQ_PROTO_5, MQ_ROLE_SERVER, buf, sizeof(buf), &out);
    cr_expect(eq(u8, out.reason.rc, MQ_RC_REAUTHENTICATE));

    cr_expect(eq(sz, mq_codec_encoded_size(&p, MQ_PROTO_311), 0), "AUTH has no v4 form");
    cr_expect(eq(sz, mq_codec_encode(&p, MQ_PROTO_311, buf, sizeof(buf)), 0));
    cr_expect(eq(sz, mq_codec_encoded_size(&p, MQ_PROTO_31), 0), "AUTH has no v3 form");
}

Test(codec, reencodes_a_decoded_packet_byte_for_byte)
{
    /* decoded user properties and subscription ids are copied from 'raw' when re-encoded */
    mq_packet_t p = make(MQ_PUBLISH), out;
    static const uint32_t ids[] = {5, 300};
    p.publish.topic = MQ_STR_LIT("t");
    p.props.sub_ids = ids;
    p.props.n_sub_ids = 2;
    p.props.subscription_id = 5;
    mq_props_set(&p.props, MQ_PROP_SUBSCRIPTION_ID);
    p.props.message_expiry = 9;
    mq_props_set(&p.props, MQ_PROP_MESSAGE_EXPIRY);
    add_users(&p.props, 4);
    size_t n = roundtrip(&p, MQ_PROTO_5, MQ_ROLE_CLIENT, buf, sizeof(buf), &out);
    uint8_t again[256];
    cr_assert(eq(sz, mq_codec_encoded_size(&out, MQ_PROTO_5), n));
    cr_assert(eq(sz, mq_codec_encode(&out, MQ_PROTO_5, again, sizeof(again)), n));
    cr_expect(eq(int, memcmp(again, buf, n), 0));
}

/* ---- exact bytes ------------------------------------------------------------------------- */

struct exact_case {
    const char *name;
    uint8_t proto;
    uint8_t role;
    const char *hex;
};

/* Hand-written from the specifications' field layouts. */
static const struct exact_case exact[] = {
    {"CONNECT v4 client id 'a', clean, keep alive 60", 4, MQ_ROLE_SERVER,
     "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 61"},
    {"CONNECT v3 (MQIsdp) client id 'a'", 3, MQ_ROLE_SERVER,
     "10 0f 00 06 4d 51 49 73 64 70 03 02 00 3c 00 01 61"},
    {"CONNECT v5 client id 'a', empty properties", 5, MQ_ROLE_SERVER,
     "10 0e 00 04 4d 51 54 54 05 02 00 3c 00 00 01 61"},
    {"CONNECT v4 will + user + password", 4, MQ_ROLE_SERVER,
     "10 1d 00 04 4d 51 54 54 04 ee 00 0a 00 01 63 00 03 77 2f 74 00 02 68 69 00 01 75 00 02 70 "
     "77"},
    {"CONNACK v4 accepted", 4, MQ_ROLE_CLIENT, "20 02 00 00"},
    {"CONNACK v4 session present", 4, MQ_ROLE_CLIENT, "20 02 01 00"},
    {"CONNACK v5 accepted, no properties", 5, MQ_ROLE_CLIENT, "20 03 00 00 00"},
    {"PUBLISH v4 qos 0 'a/b' payload 'hi'", 4, MQ_ROLE_SERVER, "30 07 00 03 61 2f 62 68 69"},
    {"PUBLISH v4 qos 1 retain id 10", 4, MQ_ROLE_SERVER, "33 09 00 03 61 2f 62 00 0a 68 69"},
    {"PUBLISH v4 qos 2 dup id 0xffff", 4, MQ_ROLE_SERVER, "3c 07 00 03 61 2f 62 ff ff"},
    {"PUBLISH v5 qos 0 topic alias 1", 5, MQ_ROLE_SERVER, "30 07 00 01 61 03 23 00 01"},
    {"PUBLISH v5 empty topic + alias", 5, MQ_ROLE_SERVER, "30 06 00 00 03 23 00 01"},
    {"PUBACK v4", 4, MQ_ROLE_SERVER, "40 02 00 0a"},
    {"PUBACK v5 no matching subscribers", 5, MQ_ROLE_CLIENT, "40 03 00 0a 10"},
    {"PUBREC v4", 4, MQ_ROLE_SERVER, "50 02 12 34"},
    {"PUBREL v4", 4, MQ_ROLE_SERVER, "62 02 00 01"},
    {"PUBCOMP v5 with reason string", 5, MQ_ROLE_SERVER, "70 08 00 01 92 04 1f 00 01 78"},
    {"SUBSCRIBE v4 'a/b' qos 1", 4, MQ_ROLE_SERVER, "82 08 00 01 00 03 61 2f 62 01"},
    {"SUBSCRIBE v5 'a/b' nl rap rh 2 qos 2", 5, MQ_ROLE_SERVER, "82 09 00 01 00 00 03 61 2f 62 2e"},
    {"SUBACK v4", 4, MQ_ROLE_CLIENT, "90 04 00 01 01 80"},
    {"UNSUBSCRIBE v4", 4, MQ_ROLE_SERVER, "a2 07 00 02 00 03 61 2f 62"},
    {"UNSUBACK v4", 4, MQ_ROLE_CLIENT, "b0 02 00 02"},
    {"UNSUBACK v5", 5, MQ_ROLE_CLIENT, "b0 04 00 02 00 11"},
    {"PINGREQ", 4, MQ_ROLE_SERVER, "c0 00"},
    {"PINGRESP", 4, MQ_ROLE_CLIENT, "d0 00"},
    {"DISCONNECT v4", 4, MQ_ROLE_SERVER, "e0 00"},
    {"DISCONNECT v5 with will", 5, MQ_ROLE_SERVER, "e0 01 04"},
    {"AUTH v5 continue, method 'm'", 5, MQ_ROLE_SERVER, "f0 06 18 04 15 00 01 6d"},
};

Test(codec, decodes_and_reencodes_hand_written_packets_exactly)
{
    for (size_t i = 0; i < MQ_ARRAY_LEN(exact); i++) {
        uint8_t in[128];
        size_t n = mqt_hex(exact[i].hex, in, sizeof(in));
        mq_packet_t pkt;
        const char *why = NULL;
        enum mq_rc rc =
            mq_codec_decode(exact[i].role, start_proto(exact[i].role, in[0] >> 4, exact[i].proto),
                            in, n, &pkt, &why);
        cr_expect(eq(int, rc, MQ_RC_SUCCESS), "%s: rc 0x%x (%s)", exact[i].name, rc,
                  why ? why : "");
        if (rc != MQ_RC_SUCCESS)
            continue;
        uint8_t out[128];
        size_t m = reencode(&pkt, exact[i].proto, out, sizeof(out));
        cr_expect(eq(sz, m, n), "%s: re-encoded to %zu bytes, expected %zu", exact[i].name, m, n);
        cr_expect(m == n && memcmp(out, in, n) == 0, "%s: re-encoded bytes differ", exact[i].name);
        check_chunkings(exact[i].role, exact[i].proto, in, n);
    }
}

Test(codec, encodes_connect_v4_for_client_a_as_in_the_spec)
{
    mq_packet_t p = make(MQ_CONNECT);
    p.connect.clean_start = true;
    p.connect.keep_alive = 60;
    p.connect.client_id = MQ_STR_LIT("a");
    uint8_t want[32], got[32];
    size_t n = mqt_hex("10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 61", want, sizeof(want));
    cr_assert(eq(sz, mq_codec_encode(&p, MQ_PROTO_311, got, sizeof(got)), n));
    cr_expect(eq(int, memcmp(got, want, n), 0));
    mq_packet_t d;
    const char *why;
    cr_assert(eq(int, mq_codec_decode(MQ_ROLE_SERVER, 0, want, n, &d, &why), MQ_RC_SUCCESS));
    cr_expect(eq(u8, d.connect.level, 4));
    cr_expect(eq(int, d.connect.clean_start, 1));
    cr_expect(eq(u16, d.connect.keep_alive, 60));
    EXPECT_STR(d.connect.client_id, MQ_STR_LIT("a"), "client id");
}

Test(codec, encodes_pingreq_as_c0_00)
{
    mq_packet_t p = make(MQ_PINGREQ);
    uint8_t out[8] = {0};
    cr_assert(eq(sz, mq_codec_encoded_size(&p, MQ_PROTO_311), 2));
    cr_assert(eq(sz, mq_codec_encode(&p, MQ_PROTO_311, out, sizeof(out)), 2));
    cr_expect(eq(u8, out[0], 0xC0));
    cr_expect(eq(u8, out[1], 0x00));
}

struct varint_case {
    uint32_t v;
    const char *hex;
};

static const struct varint_case varints[] = {
    {0, "00"},
    {1, "01"},
    {127, "7f"},
    {128, "80 01"},
    {16383, "ff 7f"},
    {16384, "80 80 01"},
    {2097151, "ff ff 7f"},
    {2097152, "80 80 80 01"},
    {268435455, "ff ff ff 7f"},
};

Test(codec, writes_and_reads_variable_byte_integers_at_every_boundary)
{
    for (size_t i = 0; i < MQ_ARRAY_LEN(varints); i++) {
        uint8_t want[8], got[8] = {0};
        size_t n = mqt_hex(varints[i].hex, want, sizeof(want));
        cr_expect(eq(sz, mq_codec_varint_size(varints[i].v), n), "size of %u", varints[i].v);
        cr_expect(eq(sz, mq_codec_write_varint(got, varints[i].v), n), "write %u", varints[i].v);
        cr_expect(eq(int, memcmp(got, want, n), 0), "bytes of %u", varints[i].v);
        uint32_t v = 0xdeadbeef;
        cr_expect(eq(int, mq_codec_read_varint(want, n, &v), (int)n), "read %u", varints[i].v);
        cr_expect(eq(u32, v, varints[i].v), "value of %s", varints[i].hex);
        for (size_t k = 0; k < n; k++)
            cr_expect(eq(int, mq_codec_read_varint(want, k, &v), 0),
                      "%s cut to %zu bytes needs more", varints[i].hex, k);
    }
    uint8_t five[] = {0xff, 0xff, 0xff, 0xff, 0x7f};
    uint32_t v;
    cr_expect(eq(int, mq_codec_read_varint(five, 5, &v), -1), "a fifth byte is malformed");
    cr_expect(eq(int, mq_codec_read_varint(five, 4, &v), -1), "4 continuation bytes malformed");
}

Test(codec, encodes_remaining_length_minimally_at_every_boundary)
{
    /* PUBLISH QoS 0 to topic "t": remaining length = 3 + payload */
    static const uint32_t rems[] = {127, 128, 16383, 16384, 2097151, 2097152};
    for (size_t i = 0; i < MQ_ARRAY_LEN(rems); i++) {
        uint32_t rem = rems[i];
        mq_packet_t p = make(MQ_PUBLISH), out;
        p.publish.topic = MQ_STR_LIT("t");
        memset(bigsrc, 'p', rem - 3);
        p.publish.payload = (mq_str_t){(const char *)bigsrc, rem - 3};
        size_t vs = mq_codec_varint_size(rem);
        size_t n = roundtrip(&p, MQ_PROTO_311, MQ_ROLE_SERVER, big, sizeof(big), &out);
        cr_expect(eq(sz, n, 1 + vs + rem), "rem %u: total", rem);
        uint8_t want[8];
        cr_assert(eq(sz, mqt_hex(varints[2 + i].hex, want, sizeof(want)), vs));
        cr_expect(eq(int, memcmp(big + 1, want, vs), 0), "rem %u: length bytes", rem);
        cr_expect(eq(u32, out.remaining_len, rem));
        cr_expect(eq(sz, out.publish.payload.len, rem - 3));
    }
    /* the largest remaining length: sized, never allocated */
    mq_packet_t p = make(MQ_PUBLISH);
    p.publish.topic = MQ_STR_LIT("t");
    p.publish.payload = (mq_str_t){(const char *)bigsrc, MQ_CODEC_MAX_REMAINING - 3};
    cr_expect(eq(sz, mq_codec_encoded_size(&p, MQ_PROTO_311), 1 + 4 + (size_t)268435455));
    p.publish.payload.len++;
    cr_expect(eq(sz, mq_codec_encoded_size(&p, MQ_PROTO_311), 0), "one byte over the maximum");
    cr_expect(eq(sz, mq_codec_encode(&p, MQ_PROTO_311, big, sizeof(big)), 0));
}
