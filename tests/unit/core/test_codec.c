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
/* clang-format off */
#define LIT(s) {(s), sizeof(s) - 1}
/* clang-format on */

/* ---- helpers ----------------------------------------------------------------------------- */

static bool str_eq(mq_str_t a, mq_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

#define EXPECT_STR(got, want, ...) cr_expect(str_eq((got), (want)), __VA_ARGS__)

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
            cr_assert(eq(int, rc, MQ_RC_AGAIN), "%s: piece ending at %zu of %zu: rc 0x%x (%s)", how,
                      end, n, rc, why ? why : "");
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
    cr_expect(
        eq(u32, out->remaining_len, (uint32_t)(n - 1 - mq_codec_varint_size(out->remaining_len))));
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
    uint32_t want_ids = want->sub_ids                                 ? want->n_sub_ids
                        : mq_props_has(want, MQ_PROP_SUBSCRIPTION_ID) ? 1
                                                                      : 0;
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
                        cr_expect(eq(u8, buf[0], hdr), "v%u q%u r%d d%d: header byte", proto, qos,
                                  retain, dup);
                        cr_expect(eq(u8, out.flags, hdr & 0x0F));
                        cr_expect(eq(u8, out.publish.qos, qos), "v%u: qos", proto);
                        cr_expect(eq(int, out.publish.retain, retain), "v%u: retain", proto);
                        cr_expect(eq(int, out.publish.dup, dup), "v%u: dup", proto);
                        cr_expect(eq(u16, out.publish.packet_id, p.publish.packet_id),
                                  "v%u q%u: packet id", proto, qos);
                        EXPECT_STR(out.publish.topic, p.publish.topic, "v%u: topic", proto);
                        EXPECT_STR(out.publish.payload, p.publish.payload, "v%u: payload", proto);
                        cr_expect(out.publish.payload.ptr == NULL ||
                                      (const uint8_t *)out.publish.payload.ptr ==
                                          buf + n - out.publish.payload.len,
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
        {.filter = LIT("$share/g/x/y"),
         .qos = 2,
         .retain_as_published = true,
         .retain_handling = 1},
        {.filter = LIT("caf\xc3\xa9"), .qos = 1, .no_local = true, .retain_as_published = true},
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
            cr_expect(eq(int, e.no_local, v5 &&ents[k].no_local), "v%u entry %zu: nl", proto, k);
            cr_expect(eq(int, e.retain_as_published, v5 &&ents[k].retain_as_published),
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
        cr_expect(
            eq(sz, n, 2 + 2 + (proto == MQ_PROTO_5 ? 1 + 1 + 2 + 6 + 2 + 7 : 0) + 5 + 3 + 12));
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

/* ---- rejections -------------------------------------------------------------------------- */

/* No pointers in here: Criterion runs each parameter in a fresh process and hands it the
 * parameter's bytes, so strings live inside the struct. */
struct reject_case {
    char name[64];
    uint8_t role;  /* enum mq_role */
    uint8_t proto; /* decoder's protocol: 0 = a server before CONNECT */
    uint32_t max;  /* decoder's max_packet_size; 0 = protocol maximum */
    uint8_t n_ok;  /* packets that decode before the failing one */
    bool stream;   /* only the stream decoder sees this rule (not mq_codec_decode) */
    uint16_t rc;   /* expected result */
    char hex[128]; /* the input */
};

#define S MQ_ROLE_SERVER
#define C MQ_ROLE_CLIENT
#define CONNECT_V4_A "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 61 "

static struct reject_case rejects[] = {
    /* 0x81 Malformed Packet: fixed header */
    {"reserved packet type 0", S, 4, 0, 0, 0, 0x81, "00 00"},
    {"PINGREQ with flag bits", S, 4, 0, 0, 0, 0x81, "c1 00"},
    {"PUBREL with flags 0000", S, 4, 0, 0, 0, 0x81, "60 02 00 01"},
    {"SUBSCRIBE with flags 0000", S, 4, 0, 0, 0, 0x81, "80 08 00 01 00 03 61 2f 62 01"},
    {"UNSUBSCRIBE with flags 0011", S, 4, 0, 0, 0, 0x81, "a3 05 00 01 00 01 61"},
    {"CONNACK with flag bits", C, 4, 0, 0, 0, 0x81, "21 02 00 00"},
    {"v5 DISCONNECT with flag bits", S, 5, 0, 0, 0, 0x81, "e8 00"},
    {"CONNECT with flag bits", S, 0, 0, 0, 0, 0x81, "11 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 61"},
    {"PUBLISH QoS 3", S, 4, 0, 0, 0, 0x81, "36 05 00 01 61 00 01"},
    {"PUBLISH QoS 3 with DUP and retain", S, 5, 0, 0, 0, 0x81, "3f 06 00 01 61 00 01 00"},
    {"PUBLISH DUP with QoS 0", S, 4, 0, 0, 0, 0x81, "38 03 00 01 61"},
    {"remaining length over 4 bytes", S, 4, 0, 0, 0, 0x81, "30 ff ff ff ff 7f"},
    {"remaining length over 4 bytes on PINGREQ", S, 3, 0, 0, 0, 0x81, "c0 80 80 80 80 01"},
    {"v5 remaining length not minimal", S, 5, 0, 0, 0, 0x81, "c0 80 00"},
    {"v5 CONNECT remaining length not minimal", S, 0, 0, 0, 0, 0x81,
     "10 8e 00 00 04 4d 51 54 54 05 02 00 3c 00 00 01 61"},
    {"AUTH in a v4 stream", S, 4, 0, 0, 0, 0x81, "f0 00"},
    {"AUTH in a v3 stream to a client", C, 3, 0, 0, 0, 0x81, "f0 00"},
    /* 0x81: packet identifier 0 [MQTT-2.2.1-3] */
    {"PUBLISH QoS 1 packet id 0", S, 4, 0, 0, 0, 0x81, "32 05 00 01 61 00 00"},
    {"PUBLISH QoS 2 packet id 0", S, 5, 0, 0, 0, 0x81, "34 06 00 01 61 00 00 00"},
    {"PUBACK packet id 0", S, 4, 0, 0, 0, 0x81, "40 02 00 00"},
    {"PUBREC packet id 0", C, 4, 0, 0, 0, 0x81, "50 02 00 00"},
    {"PUBREL packet id 0", S, 5, 0, 0, 0, 0x81, "62 02 00 00"},
    {"PUBCOMP packet id 0", S, 3, 0, 0, 0, 0x81, "70 02 00 00"},
    {"SUBSCRIBE packet id 0", S, 4, 0, 0, 0, 0x81, "82 06 00 00 00 01 61 00"},
    {"UNSUBSCRIBE packet id 0", S, 4, 0, 0, 0, 0x81, "a2 05 00 00 00 01 61"},
    {"SUBACK packet id 0", C, 4, 0, 0, 0, 0x81, "90 03 00 00 00"},
    {"UNSUBACK packet id 0", C, 4, 0, 0, 0, 0x81, "b0 02 00 00"},
    /* 0x81: bad UTF-8 [MQTT-1.5.4-1], [MQTT-1.5.4-2] */
    {"topic not UTF-8", S, 4, 0, 0, 0, 0x81, "30 04 00 02 c3 28"},
    {"topic with U+0000", S, 4, 0, 0, 0, 0x81, "30 04 00 02 61 00"},
    {"topic with surrogate U+D800", S, 4, 0, 0, 0, 0x81, "30 05 00 03 ed a0 80"},
    {"topic with overlong '/'", S, 5, 0, 0, 0, 0x81, "30 05 00 02 c0 af 00"},
    {"topic above U+10FFFF", C, 4, 0, 0, 0, 0x81, "30 06 00 04 f4 90 80 80"},
    {"client id with U+0000", S, 0, 0, 0, 0, 0x81,
     "10 0e 00 04 4d 51 54 54 04 02 00 3c 00 02 61 00"},
    {"client id with surrogate U+DC00", S, 0, 0, 0, 0, 0x81,
     "10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 ed b0 80"},
    {"user name not UTF-8", S, 0, 0, 0, 0, 0x81,
     "10 10 00 04 4d 51 54 54 04 82 00 3c 00 01 61 00 01 ff"},
    {"will topic with overlong U+0000", S, 0, 0, 0, 0, 0x81,
     "10 13 00 04 4d 51 54 54 04 06 00 3c 00 01 61 00 02 c0 80 00 00"},
    {"SUBSCRIBE filter not UTF-8", S, 4, 0, 0, 0, 0x81, "82 06 00 01 00 01 ff 00"},
    {"UNSUBSCRIBE filter with U+0000", S, 4, 0, 0, 0, 0x81, "a2 05 00 01 00 01 00"},
    {"user property not UTF-8", S, 5, 0, 0, 0, 0x81, "30 0a 00 01 61 06 26 00 01 ff 00 00"},
    {"reason string with U+0000", C, 5, 0, 0, 0, 0x81, "40 08 00 01 10 04 1f 00 01 00"},
    /* 0x81: lengths that do not add up */
    {"PUBACK v4 with a trailing byte", S, 4, 0, 0, 0, 0x81, "40 03 00 01 00"},
    {"PINGREQ with a body", S, 4, 0, 0, 0, 0x81, "c0 01 00"},
    {"PINGRESP with a body", C, 5, 0, 0, 0, 0x81, "d0 01 00"},
    {"DISCONNECT v4 with a body", S, 4, 0, 0, 0, 0x81, "e0 01 00"},
    {"CONNACK v4 with a trailing byte", C, 4, 0, 0, 0, 0x81, "20 03 00 00 00"},
    {"UNSUBACK v4 with a reason code", C, 4, 0, 0, 0, 0x81, "b0 03 00 01 00"},
    {"CONNECT with a trailing byte", S, 0, 0, 0, 0, 0x81,
     "10 0e 00 04 4d 51 54 54 04 02 00 3c 00 01 61 00"},
    {"v5 PUBACK with bytes after its properties", S, 5, 0, 0, 0, 0x81, "40 05 00 01 00 00 00"},
    {"CONNECT truncated inside protocol name", S, 0, 0, 0, 0, 0x81, "10 03 00 04 4d"},
    {"CONNECT without client id", S, 0, 0, 0, 0, 0x81, "10 0a 00 04 4d 51 54 54 04 02 00 3c"},
    {"PUBLISH QoS 1 without packet id", S, 4, 0, 0, 0, 0x81, "32 03 00 01 61"},
    {"string length past the packet", S, 4, 0, 0, 0, 0x81, "30 04 00 05 61 62"},
    {"SUBSCRIBE without options byte", S, 4, 0, 0, 0, 0x81, "82 05 00 01 00 01 61"},
    {"v5 CONNECT properties past the packet", S, 0, 0, 0, 0, 0x81,
     "10 0e 00 04 4d 51 54 54 05 02 00 3c 05 00 01 61"},
    {"property length past the packet", S, 5, 0, 0, 0, 0x81, "40 04 00 01 00 05"},
    {"property length not minimal", C, 5, 0, 0, 0, 0x81, "20 04 00 00 80 00"},
    {"unknown property id 0x7f", C, 5, 0, 0, 0, 0x81, "40 05 00 01 00 01 7f"},
    {"unknown property id 0", C, 5, 0, 0, 0, 0x81, "40 05 00 01 00 01 00"},
    {"property value truncated", S, 5, 0, 0, 0, 0x81, "30 07 00 01 61 03 02 00 00"},
    /* a value cut by the end of its property block (the bytes after it are payload/fields) */
    {"topic alias cut by the end of the property block", S, 5, 0, 0, 0, 0x81,
     "30 07 00 01 61 01 23 00 01"},
    {"receive maximum cut by the end of the property block", S, 0, 0, 0, 0, 0x81,
     "10 0f 00 04 4d 51 54 54 05 02 00 3c 01 21 00 01 61"},
    {"maximum packet size cut, rest read as request response info", S, 0, 0, 0, 0, 0x81,
     "10 11 00 04 4d 51 54 54 05 02 00 3c 03 27 19 01 00 01 61"},
    {"maximum packet size cut, rest read as maximum qos", C, 5, 0, 0, 0, 0x81,
     "20 06 00 00 03 27 24 01"},
    {"subscription id cut by the end of the property block", S, 5, 0, 0, 0, 0x81,
     "82 08 00 01 01 0b 00 01 61 00"},
    {"response topic cut by the end of the property block", S, 5, 0, 0, 0, 0x81,
     "30 05 00 01 61 01 08"},
    {"message expiry cut by the end of the property block", S, 5, 0, 0, 0, 0x81,
     "30 08 00 01 61 02 02 00 00 00"},
    /* 0x81: flags and options */
    {"CONNECT reserved flag", S, 0, 0, 0, 0, 0x81, "10 0d 00 04 4d 51 54 54 04 03 00 3c 00 01 61"},
    {"will QoS 3", S, 0, 0, 0, 0, 0x81, "10 0d 00 04 4d 51 54 54 04 1e 00 3c 00 01 61"},
    {"will retain without will", S, 0, 0, 0, 0, 0x81,
     "10 0d 00 04 4d 51 54 54 04 22 00 3c 00 01 61"},
    {"will QoS without will", S, 0, 0, 0, 0, 0x81, "10 0d 00 04 4d 51 54 54 04 0a 00 3c 00 01 61"},
    {"v4 password without user name", S, 0, 0, 0, 0, 0x81,
     "10 10 00 04 4d 51 54 54 04 42 00 3c 00 01 61 00 01 70"},
    {"SUBSCRIBE options QoS 3", S, 4, 0, 0, 0, 0x81, "82 06 00 01 00 01 61 03"},
    {"v4 SUBSCRIBE reserved option bits", S, 4, 0, 0, 0, 0x81, "82 06 00 01 00 01 61 04"},
    {"v5 SUBSCRIBE reserved option bits", S, 5, 0, 0, 0, 0x81, "82 07 00 01 00 00 01 61 40"},
    {"v4 SUBACK return code 3", C, 4, 0, 0, 0, 0x81, "90 03 00 01 03"},
    {"v4 CONNACK return code 6", C, 4, 0, 0, 0, 0x81, "20 02 00 06"},
    {"CONNACK reserved acknowledge flags", C, 5, 0, 0, 0, 0x81, "20 03 02 00 00"},

    /* 0x82 Protocol Error */
    {"first packet is PINGREQ", S, 0, 0, 0, 0, 0x82, "c0 00"},
    {"first packet is PUBLISH", S, 0, 0, 0, 0, 0x82, "30 03 00 01 61"},
    {"first packet is DISCONNECT", S, 0, 0, 0, 0, 0x82, "e0 00"},
    {"second CONNECT", S, 0, 0, 1, 1, 0x82, CONNECT_V4_A CONNECT_V4_A},
    {"second CONNECT after other packets", S, 0, 0, 2, 1, 0x82, CONNECT_V4_A "c0 00 " CONNECT_V4_A},
    {"empty SUBSCRIBE v4", S, 4, 0, 0, 0, 0x82, "82 02 00 01"},
    {"empty SUBSCRIBE v5", S, 5, 0, 0, 0, 0x82, "82 03 00 01 00"},
    {"empty UNSUBSCRIBE v3", S, 3, 0, 0, 0, 0x82, "a2 02 00 01"},
    {"empty UNSUBSCRIBE v5", S, 5, 0, 0, 0, 0x82, "a2 03 00 01 00"},
    {"duplicate message expiry in PUBLISH", S, 5, 0, 0, 0, 0x82,
     "30 0e 00 01 61 0a 02 00 00 00 01 02 00 00 00 02"},
    {"duplicate session expiry in CONNECT", S, 0, 0, 0, 0, 0x82,
     "10 18 00 04 4d 51 54 54 05 02 00 3c 0a 11 00 00 00 01 11 00 00 00 02 00 01 61"},
    {"duplicate subscription id in SUBSCRIBE", S, 5, 0, 0, 0, 0x82,
     "82 0b 00 01 04 0b 01 0b 02 00 01 61 00"},
    {"duplicate reason string in PUBACK", C, 5, 0, 0, 0, 0x82,
     "40 0a 00 01 10 06 1f 00 00 1f 00 00"},
    {"session expiry in PUBLISH", S, 5, 0, 0, 0, 0x82, "30 09 00 01 61 05 11 00 00 00 01"},
    {"reason string in PUBLISH", S, 5, 0, 0, 0, 0x82, "30 08 00 01 61 04 1f 00 01 78"},
    {"topic alias in SUBSCRIBE", S, 5, 0, 0, 0, 0x82, "82 0a 00 01 03 23 00 01 00 01 61 00"},
    {"will delay in CONNECT properties", S, 0, 0, 0, 0, 0x82,
     "10 13 00 04 4d 51 54 54 05 02 00 3c 05 18 00 00 00 05 00 01 61"},
    {"CONNACK sent to a server", S, 4, 0, 0, 0, 0x82, "20 02 00 00"},
    {"SUBACK sent to a server", S, 4, 0, 0, 0, 0x82, "90 03 00 01 00"},
    {"SUBSCRIBE sent to a client", C, 4, 0, 0, 0, 0x82, "82 06 00 01 00 01 61 00"},
    {"PINGREQ sent to a client", C, 4, 0, 0, 0, 0x82, "c0 00"},
    {"CONNECT sent to a client", C, 4, 0, 0, 0, 0x82, CONNECT_V4_A},
    {"DISCONNECT from a server before v5", C, 4, 0, 0, 0, 0x82, "e0 00"},
    {"subscription id in a client PUBLISH", S, 5, 0, 0, 0, 0x82, "30 06 00 01 61 02 0b 01"},
    {"subscription id 0 in SUBSCRIBE", S, 5, 0, 0, 0, 0x82, "82 09 00 01 02 0b 00 00 01 61 00"},
    {"retain handling 3", S, 5, 0, 0, 0, 0x82, "82 07 00 01 00 00 01 61 30"},
    {"no local on a shared subscription", S, 5, 0, 0, 0, 0x82,
     "82 10 00 01 00 00 0a 24 73 68 61 72 65 2f 67 2f 61 04"},
    {"receive maximum 0 in CONNECT", S, 0, 0, 0, 0, 0x82,
     "10 11 00 04 4d 51 54 54 05 02 00 3c 03 21 00 00 00 01 61"},
    {"maximum packet size 0 in CONNECT", S, 0, 0, 0, 0, 0x82,
     "10 13 00 04 4d 51 54 54 05 02 00 3c 05 27 00 00 00 00 00 01 61"},
    {"payload format 2", S, 5, 0, 0, 0, 0x82, "30 06 00 01 61 02 01 02"},
    {"response topic with a wildcard", S, 5, 0, 0, 0, 0x82, "30 08 00 01 61 04 08 00 01 23"},
    {"session expiry in a server DISCONNECT", C, 5, 0, 0, 0, 0x82, "e0 07 00 05 11 00 00 00 01"},
    {"v4 CONNACK session present with refusal", C, 4, 0, 0, 0, 0x82, "20 02 01 05"},
    {"v5 CONNACK unknown reason code", C, 5, 0, 0, 0, 0x82, "20 03 00 01 00"},
    {"v5 PUBACK unknown reason code", S, 5, 0, 0, 0, 0x82, "40 03 00 01 05"},
    {"v5 PUBREL reason code 0x10", S, 5, 0, 0, 0, 0x82, "62 03 00 01 10"},
    {"v5 SUBACK without reason codes", C, 5, 0, 0, 0, 0x82, "90 03 00 01 00"},
    {"v4 SUBACK without return codes", C, 4, 0, 0, 0, 0x82, "90 02 00 01"},
    {"v5 SUBACK unknown reason code", C, 5, 0, 0, 0, 0x82, "90 04 00 01 00 03"},
    {"v5 UNSUBACK reason code 0x01", C, 5, 0, 0, 0, 0x82, "b0 04 00 01 00 01"},
    {"v5 DISCONNECT unknown reason code", S, 5, 0, 0, 0, 0x82, "e0 01 01"},
    {"v5 AUTH unknown reason code", S, 5, 0, 0, 0, 0x82, "f0 01 01"},
    /* §3.1.2.11.10: Authentication Data without Authentication Method */
    {"authentication data without method in CONNECT", S, 0, 0, 0, 0, 0x82,
     "10 12 00 04 4d 51 54 54 05 02 00 3c 04 16 00 01 78 00 01 61"},
    {"authentication data without method in CONNACK", C, 5, 0, 0, 0, 0x82,
     "20 06 00 00 03 16 00 00"},
    {"authentication data without method in AUTH", S, 5, 0, 0, 0, 0x82, "f0 05 18 03 16 00 00"},

    /* 0x84 Unsupported Protocol Version [MQTT-3.1.2-1], [MQTT-3.1.2-2] */
    {"protocol name MQTX", S, 0, 0, 0, 0, 0x84, "10 0d 00 04 4d 51 54 58 04 02 00 3c 00 01 61"},
    {"protocol name in lower case", S, 0, 0, 0, 0, 0x84,
     "10 0d 00 04 6d 71 74 74 04 02 00 3c 00 01 61"},
    {"MQTT with level 3", S, 0, 0, 0, 0, 0x84, "10 0d 00 04 4d 51 54 54 03 02 00 3c 00 01 61"},
    {"MQTT with level 6", S, 0, 0, 0, 0, 0x84, "10 0d 00 04 4d 51 54 54 06 02 00 3c 00 01 61"},
    {"MQIsdp with level 4", S, 0, 0, 0, 0, 0x84,
     "10 0f 00 06 4d 51 49 73 64 70 04 02 00 3c 00 01 61"},

    /* 0x90 Topic Name invalid */
    {"PUBLISH topic with '+'", S, 4, 0, 0, 0, 0x90, "30 05 00 03 61 2f 2b"},
    {"PUBLISH topic '#'", S, 5, 0, 0, 0, 0x90, "30 04 00 01 23 00"},
    {"PUBLISH to a client with a wildcard", C, 4, 0, 0, 0, 0x90, "30 05 00 03 61 2f 2b"},
    {"empty topic v3", S, 3, 0, 0, 0, 0x90, "30 02 00 00"},
    {"empty topic v4", S, 4, 0, 0, 0, 0x90, "30 02 00 00"},
    {"empty topic v5 without topic alias", S, 5, 0, 0, 0, 0x90, "30 03 00 00 00"},
    {"will topic with a wildcard", S, 0, 0, 0, 0, 0x90,
     "10 14 00 04 4d 51 54 54 04 06 00 3c 00 01 61 00 03 61 2f 23 00 00"},

    /* 0x94 Topic Alias invalid [MQTT-3.3.2-8] */
    {"topic alias 0", S, 5, 0, 0, 0, 0x94, "30 07 00 01 61 03 23 00 00"},
    {"topic alias 0 with empty topic", S, 5, 0, 0, 0, 0x94, "30 06 00 00 03 23 00 00"},

    /* 0x95 Packet too large: the decoder's max_packet_size, whole packet counted */
    {"PUBLISH one byte over the maximum", S, 4, 10, 0, 1, 0x95, "30 09 00 01 61 00 00 00 00 00 00"},
    {"refused from the fixed header alone", S, 4, 10, 0, 1, 0x95, "30 09"},
    {"huge remaining length refused before buffering", S, 5, 1000, 0, 1, 0x95, "30 ff ff ff 7f"},
    {"CONNECT over the maximum", S, 0, 14, 0, 1, 0x95, CONNECT_V4_A},
    {"second packet over the maximum", S, 4, 8, 1, 1, 0x95, "c0 00 30 07 00 01 61 00 00 00 00"},
};

#undef S
#undef C

/* Feeds the case's bytes 'step' at a time (0 = all at once) and returns the first result
 * that is neither a packet nor MQ_RC_AGAIN; MQ_RC_AGAIN when the input ran out. */
static enum mq_rc run_stream(const struct reject_case *c, const uint8_t *b, size_t n, size_t step,
                             unsigned *n_ok, const char **why, mq_packet_t *pkt)
{
    mq_decoder_t d;
    mq_decoder_init(&d, c->role, c->proto, c->max);
    size_t off = 0;
    enum mq_rc rc = MQ_RC_AGAIN;
    *n_ok = 0;
    while (off < n) {
        size_t len = step && n - off > step ? step : n - off, used = 0;
        rc = mq_decoder_feed(&d, b + off, len, &used, pkt, why);
        if (rc == MQ_RC_SUCCESS) {
            ++*n_ok;
            rc = MQ_RC_AGAIN;
        } else if (rc == MQ_RC_AGAIN) {
            cr_assert(eq(sz, used, len), "%s: AGAIN without taking every byte", c->name);
        } else {
            break;
        }
        cr_assert(gt(sz, used, 0), "%s: no progress", c->name);
        off += used;
    }
    mq_decoder_fini(&d);
    return rc;
}

ParameterizedTestParameters(codec, rejects_invalid_input_with_the_right_reason_code)
{
    return cr_make_param_array(struct reject_case, rejects, MQ_ARRAY_LEN(rejects));
}

ParameterizedTest(struct reject_case *c, codec, rejects_invalid_input_with_the_right_reason_code)
{
    uint8_t in[256];
    size_t n = mqt_hex(c->hex, in, sizeof(in));
    mq_packet_t pkt;
    const char *why = NULL;
    if (!c->stream) {
        enum mq_rc rc = mq_codec_decode(c->role, c->proto, in, n, &pkt, &why);
        cr_expect(eq(int, rc, c->rc), "%s: mq_codec_decode gave 0x%x (%s), expected 0x%x", c->name,
                  rc, why ? why : "", c->rc);
        cr_expect(why != NULL, "%s: no reason given", c->name);
        cr_expect(eq(u8, pkt.type, in[0] >> 4), "%s: packet type not reported", c->name);
    }
    static const size_t steps[] = {0, 1, 2, 3, 7};
    for (size_t i = 0; i < MQ_ARRAY_LEN(steps); i++) {
        unsigned n_ok;
        why = NULL;
        enum mq_rc rc = run_stream(c, in, n, steps[i], &n_ok, &why, &pkt);
        cr_expect(eq(int, rc, c->rc), "%s: stream in steps of %zu gave 0x%x (%s), expected 0x%x",
                  c->name, steps[i], rc, why ? why : "", c->rc);
        cr_expect(eq(u32, n_ok, c->n_ok), "%s: %u packets before the failure, expected %u", c->name,
                  n_ok, c->n_ok);
        cr_expect(why != NULL, "%s: stream gave no reason", c->name);
    }
}

Test(codec, reports_the_clients_level_with_an_unsupported_version)
{
    uint8_t in[64];
    size_t n = mqt_hex("10 0d 00 04 4d 51 54 54 06 02 00 3c 00 01 61", in, sizeof(in));
    mq_packet_t pkt;
    const char *why;
    cr_assert(eq(int, mq_codec_decode(MQ_ROLE_SERVER, 0, in, n, &pkt, &why),
                 MQ_RC_UNSUPPORTED_PROTOCOL_VERSION));
    cr_expect(eq(u8, pkt.type, MQ_CONNECT));
    cr_expect(eq(u8, pkt.connect.level, 6));
    /* a v5 client refused for another reason is still known as v5 */
    n = mqt_hex("10 11 00 04 4d 51 54 54 05 02 00 3c 03 21 00 00 00 01 61", in, sizeof(in));
    cr_assert(eq(int, mq_codec_decode(MQ_ROLE_SERVER, 0, in, n, &pkt, &why), MQ_RC_PROTOCOL_ERROR));
    cr_expect(eq(u8, pkt.connect.level, 5));
}

Test(codec, marks_each_invalid_subscribe_filter_with_0x8f_without_failing_the_packet)
{
    static const mq_sub_entry_t ents[] = {
        {.filter = LIT("a/#/b")},     {.filter = LIT("ok/+"), .qos = 1},
        {.filter = LIT("a+")},        {.filter = LIT("")},
        {.filter = LIT("$share//x")}, {.filter = LIT("$share/g/#"), .qos = 2},
        {.filter = LIT("sport#")},    {.filter = LIT("$share/g")},
        {.filter = LIT("+/+/#")},
    };
    static const uint8_t want[] = {0x8F, 0x00, 0x8F, 0x8F, 0x8F, 0x00, 0x8F, 0x8F, 0x00};
    static const uint8_t types[] = {MQ_SUBSCRIBE, MQ_UNSUBSCRIBE};
    for (size_t t = 0; t < MQ_ARRAY_LEN(types); t++) {
        for (size_t i = 0; i < MQ_ARRAY_LEN(all_protos); i++) {
            uint8_t proto = all_protos[i];
            mq_packet_t p = make(types[t]), out;
            p.subscribe.packet_id = 9;
            p.subscribe.n = MQ_ARRAY_LEN(ents);
            p.subscribe.entries = ents;
            roundtrip(&p, proto, MQ_ROLE_SERVER, buf, sizeof(buf), &out);
            size_t pos = 0;
            mq_sub_entry_t e;
            for (size_t k = 0; k < MQ_ARRAY_LEN(ents); k++) {
                cr_assert(mq_sub_next(&out, proto, &pos, &e));
                EXPECT_STR(e.filter, ents[k].filter, "entry %zu", k);
                cr_expect(eq(u8, e.rc, want[k]), "%s v%u: filter '%.*s' rc", mq_ptype_str(types[t]),
                          proto, (int)ents[k].filter.len, ents[k].filter.ptr);
            }
            cr_expect(not(mq_sub_next(&out, proto, &pos, &e)));
        }
    }
}

/* ---- the stream decoder ------------------------------------------------------------------ */

Test(codec, stream_decoder_accepts_a_packet_exactly_at_max_packet_size)
{
    uint8_t in[16];
    size_t n = mqt_hex("30 08 00 01 61 00 00 00 00 00", in, sizeof(in));
    mq_decoder_t d;
    mq_decoder_init(&d, MQ_ROLE_SERVER, MQ_PROTO_311, 10);
    mq_packet_t pkt;
    size_t used;
    const char *why;
    cr_expect(eq(int, mq_decoder_feed(&d, in, n, &used, &pkt, &why), MQ_RC_SUCCESS));
    cr_expect(eq(sz, used, n));
    cr_expect(eq(sz, pkt.publish.payload.len, 5));
    mq_decoder_fini(&d);
}

Test(codec, stream_decoder_learns_the_version_from_connect)
{
    uint8_t in[64];
    size_t n = mqt_hex("10 0e 00 04 4d 51 54 54 05 02 00 3c 00 00 01 61", in, sizeof(in));
    mq_decoder_t d;
    mq_decoder_init(&d, MQ_ROLE_SERVER, 0, 0);
    mq_packet_t pkt;
    size_t used;
    const char *why;
    cr_assert(eq(int, mq_decoder_feed(&d, in, n, &used, &pkt, &why), MQ_RC_SUCCESS));
    cr_expect(eq(u8, d.proto, MQ_PROTO_5));
    /* now a v5 PUBLISH carrying a property block decodes */
    n = mqt_hex("30 07 00 01 61 03 23 00 01", in, sizeof(in));
    cr_assert(eq(int, mq_decoder_feed(&d, in, n, &used, &pkt, &why), MQ_RC_SUCCESS));
    cr_expect(eq(u16, pkt.props.topic_alias, 1));
    mq_decoder_fini(&d);

    /* the same PUBLISH after a v4 CONNECT: the alias bytes are payload */
    mq_decoder_init(&d, MQ_ROLE_SERVER, 0, 0);
    n = mqt_hex(CONNECT_V4_A, in, sizeof(in));
    cr_assert(eq(int, mq_decoder_feed(&d, in, n, &used, &pkt, &why), MQ_RC_SUCCESS));
    cr_expect(eq(u8, d.proto, MQ_PROTO_311));
    n = mqt_hex("30 07 00 01 61 03 23 00 01", in, sizeof(in));
    cr_assert(eq(int, mq_decoder_feed(&d, in, n, &used, &pkt, &why), MQ_RC_SUCCESS));
    cr_expect(eq(sz, pkt.publish.payload.len, 4));
    cr_expect(eq(u64, pkt.props.present, 0));
    mq_decoder_fini(&d);
}

Test(codec, stream_decoder_splits_back_to_back_packets_under_every_chunk_size)
{
    static const char *const hex =
        "10 0e 00 04 4d 51 54 54 05 02 00 3c 00 00 01 61 " /* CONNECT v5 */
        "32 0a 00 03 61 2f 62 00 05 00 68 69 "             /* PUBLISH q1 */
        "82 0a 00 01 03 0b 80 01 00 01 61 01 "             /* SUBSCRIBE, sub id 128 */
        "c0 00 "                                           /* PINGREQ */
        "40 03 00 05 10 "                                  /* PUBACK rc 0x10 */
        "62 02 00 05 "                                     /* PUBREL */
        "a2 06 00 02 00 00 01 61 "                         /* UNSUBSCRIBE */
        "f0 00 "                                           /* AUTH */
        "e0 00";                                           /* DISCONNECT */
    static const uint8_t types[] = {MQ_CONNECT,     MQ_PUBLISH, MQ_SUBSCRIBE,
                                    MQ_PINGREQ,     MQ_PUBACK,  MQ_PUBREL,
                                    MQ_UNSUBSCRIBE, MQ_AUTH,    MQ_DISCONNECT};
    uint8_t in[128];
    size_t n = mqt_hex(hex, in, sizeof(in));
    for (size_t step = 1; step <= n; step++) {
        mq_decoder_t d;
        mq_decoder_init(&d, MQ_ROLE_SERVER, 0, 0);
        size_t off = 0, k = 0;
        while (off < n) {
            size_t len = n - off > step ? step : n - off, used;
            mq_packet_t pkt;
            const char *why = NULL;
            enum mq_rc rc = mq_decoder_feed(&d, in + off, len, &used, &pkt, &why);
            if (rc == MQ_RC_SUCCESS) {
                cr_assert(lt(sz, k, MQ_ARRAY_LEN(types)), "step %zu: too many packets", step);
                cr_expect(eq(u8, pkt.type, types[k]), "step %zu: packet %zu type", step, k);
                if (pkt.type == MQ_PUBLISH)
                    EXPECT_STR(pkt.publish.payload, MQ_STR_LIT("hi"), "step %zu payload", step);
                if (pkt.type == MQ_SUBSCRIBE)
                    cr_expect(eq(u32, pkt.props.subscription_id, 128), "step %zu sub id", step);
                if (pkt.type == MQ_PUBACK)
                    cr_expect(eq(u8, pkt.ack.rc, 0x10), "step %zu PUBACK rc", step);
                k++;
            } else {
                cr_assert(eq(int, rc, MQ_RC_AGAIN), "step %zu at %zu: rc 0x%x (%s)", step, off, rc,
                          why ? why : "");
            }
            off += used;
        }
        cr_expect(eq(sz, k, MQ_ARRAY_LEN(types)), "step %zu: packets decoded", step);
        mq_decoder_fini(&d);
    }
}

Test(codec, decode_refuses_bytes_after_one_whole_packet_and_waits_for_a_prefix)
{
    uint8_t in[8];
    mq_packet_t pkt;
    const char *why;
    size_t n = mqt_hex("c0 00 c0 00", in, sizeof(in));
    cr_expect(
        eq(int, mq_codec_decode(MQ_ROLE_SERVER, 4, in, n, &pkt, &why), MQ_RC_MALFORMED_PACKET));
    cr_expect(eq(int, mq_codec_decode(MQ_ROLE_SERVER, 4, in, 0, &pkt, &why), MQ_RC_AGAIN));
    cr_expect(eq(int, mq_codec_decode(MQ_ROLE_SERVER, 4, in, 1, &pkt, &why), MQ_RC_AGAIN));
    cr_expect(eq(int, mq_codec_decode(MQ_ROLE_SERVER, 4, in, 2, &pkt, &why), MQ_RC_SUCCESS));
}

Test(codec, accepts_authentication_data_before_its_method)
{
    /* property order is free: the method may follow the data in the same block */
    uint8_t in[32];
    size_t n = mqt_hex("f0 0b 18 09 16 00 00 15 00 03 61 62 63", in, sizeof(in));
    mq_packet_t pkt;
    const char *why = NULL;
    enum mq_rc rc = mq_codec_decode(MQ_ROLE_SERVER, MQ_PROTO_5, in, n, &pkt, &why);
    cr_assert(eq(int, rc, MQ_RC_SUCCESS), "rc 0x%x (%s)", rc, why ? why : "");
    EXPECT_STR(pkt.props.auth_method, MQ_STR_LIT("abc"), "method");
    cr_expect(eq(sz, pkt.props.auth_data.len, 0));
    cr_expect(mq_props_has(&pkt.props, MQ_PROP_AUTH_DATA));
}

Test(codec, round_trips_a_connect_with_a_multi_byte_remaining_length)
{
    static char id[300];
    memset(id, 'c', sizeof(id));
    for (size_t i = 0; i < MQ_ARRAY_LEN(all_protos); i++) {
        mq_packet_t p = make(MQ_CONNECT);
        p.connect.client_id = (mq_str_t){id, sizeof(id)};
        check_connect(&p, all_protos[i], "300-byte client id");
        cr_expect(eq(u8, buf[1] & 0x80, 0x80), "v%u: two length bytes expected", all_protos[i]);
    }
}

Test(codec, names_packet_types)
{
    cr_expect(eq(str, (char *)mq_ptype_str(MQ_CONNECT), "CONNECT"));
    cr_expect(eq(str, (char *)mq_ptype_str(MQ_PUBREL), "PUBREL"));
    cr_expect(eq(str, (char *)mq_ptype_str(MQ_AUTH), "AUTH"));
    cr_expect(eq(str, (char *)mq_ptype_str(0), "?"));
    cr_expect(eq(str, (char *)mq_ptype_str(16), "?"));
}

Test(codec, an_mqtt31_client_may_set_dup_on_pubrel_subscribe_and_unsubscribe)
{
    uint8_t in[16];
    mq_packet_t pkt;
    const char *why;
    /* PUBREL with DUP (3.1 gave it QoS 1 and a re-send the DUP flag, as mosquitto accepts) */
    size_t n = mqt_hex("6a 02 00 01", in, sizeof(in));
    cr_expect(
        eq(int, mq_codec_decode(MQ_ROLE_SERVER, MQ_PROTO_31, in, n, &pkt, &why), MQ_RC_SUCCESS));
    cr_expect(eq(u16, pkt.ack.packet_id, 1));
    cr_expect(eq(int, mq_codec_decode(MQ_ROLE_SERVER, MQ_PROTO_311, in, n, &pkt, &why),
                 MQ_RC_MALFORMED_PACKET)); /* 3.1.1 reserves the flags [MQTT-2.2.2-2] */
    n = mqt_hex("8a 06 00 02 00 01 61 00", in, sizeof(in)); /* SUBSCRIBE "a" with DUP */
    cr_expect(
        eq(int, mq_codec_decode(MQ_ROLE_SERVER, MQ_PROTO_31, in, n, &pkt, &why), MQ_RC_SUCCESS));
    cr_expect(eq(int, mq_codec_decode(MQ_ROLE_SERVER, MQ_PROTO_5, in, n, &pkt, &why),
                 MQ_RC_MALFORMED_PACKET));
    n = mqt_hex("6e 02 00 01", in, sizeof(in)); /* other flags stay malformed in 3.1 too */
    cr_expect(eq(int, mq_codec_decode(MQ_ROLE_SERVER, MQ_PROTO_31, in, n, &pkt, &why),
                 MQ_RC_MALFORMED_PACKET));
}
