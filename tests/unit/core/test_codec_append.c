/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_codec_append.c - the codec's append API and its typed helpers for the
 * packets a broker sends: exact bytes per version, v5 reason codes and properties, round
 * trips through the client-side decoder, and the ack fast path against the generic encoder. */
#include "core/codec.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#include "support/support.h"

static mq_buf_t out;

static void setup(void)
{
    mq_buf_init(&out);
}

static void teardown(void)
{
    mq_buf_fini(&out);
}

TestSuite(codec_append, .init = setup, .fini = teardown);

static const uint8_t all_protos[] = {MQ_PROTO_31, MQ_PROTO_311, MQ_PROTO_5};
static const uint8_t ack_types[] = {MQ_PUBACK, MQ_PUBREC, MQ_PUBREL, MQ_PUBCOMP};

/* Expects 'out' to hold exactly the bytes written as hex in 'want'. */
static void expect_bytes(const mq_buf_t *b, const char *want, const char *what)
{
    uint8_t w[512];
    size_t n = mqt_hex(want, w, sizeof(w));
    cr_assert(eq(sz, b->len, n), "%s: %zu bytes, expected %zu", what, b->len, n);
    cr_assert(eq(int, memcmp(b->data, w, n), 0), "%s: bytes differ", what);
}

/* Decodes 'out' as one packet a client receives; asserts success. */
static void decode_client(uint8_t proto, mq_packet_t *pkt, const char *what)
{
    const char *why = NULL;
    enum mq_rc rc = mq_codec_decode(MQ_ROLE_CLIENT, proto, out.data, out.len, pkt, &why);
    cr_assert(eq(int, rc, MQ_RC_SUCCESS), "%s: decode rc 0x%x (%s)", what, rc, why ? why : "");
}

/* The bytes net/proto.c and core/sess.c built by hand before the codec wrote them. */
static void legacy_ack(uint8_t *b, uint8_t type, uint16_t id)
{
    b[0] = (uint8_t)(type << 4 | (type == MQ_PUBREL ? 0x02 : 0));
    b[1] = 2;
    b[2] = (uint8_t)(id >> 8);
    b[3] = (uint8_t)id;
}

/* A mq_str_t initializer usable in static data (MQ_STR_LIT is a compound literal). */
/* clang-format off */
#define LIT(s) {(s), sizeof(s) - 1}
/* clang-format on */

static const mq_user_prop_t users[] = {
    {LIT("k"), LIT("v")},
    {LIT("region"), LIT("eu")},
};

/* A reason string "no" and one user property k=v: 1f 00 02 6e 6f 26 00 01 6b 00 01 76. */
static mq_props_t reason_and_user(void)
{
    mq_props_t p;
    memset(&p, 0, sizeof(p));
    p.reason_string = MQ_STR_LIT("no");
    mq_props_set(&p, MQ_PROP_REASON_STRING);
    p.user = users;
    p.n_user = 1;
    mq_props_set(&p, MQ_PROP_USER_PROPERTY);
    return p;
}

#define REASON_AND_USER_HEX "0c 1f 00 02 6e 6f 26 00 01 6b 00 01 76"

/* Expects the decoded properties to be reason_and_user(). */
static void expect_reason_and_user(const mq_props_t *p, const char *what)
{
    cr_expect(mq_str_eq(p->reason_string, MQ_STR_LIT("no")), "%s: reason string", what);
    cr_expect(eq(u32, p->n_user, 1), "%s: user property count", what);
    size_t pos = 0;
    mq_str_t k, v;
    cr_assert(mq_props_next_user(p, &pos, &k, &v), "%s: user property missing", what);
    cr_expect(mq_str_eq(k, MQ_STR_LIT("k")) && mq_str_eq(v, MQ_STR_LIT("v")), "%s: k=v", what);
}

/* ---- acknowledgements -------------------------------------------------------------------- */

Test(codec_append, ack_without_code_is_the_4_bytes_written_by_hand_in_every_version)
{
    const uint16_t ids[] = {1, 0x1234, 0xFFFF};
    for (size_t t = 0; t < MQ_ARRAY_LEN(ack_types); t++)
        for (size_t v = 0; v < MQ_ARRAY_LEN(all_protos); v++)
            for (size_t i = 0; i < MQ_ARRAY_LEN(ids); i++) {
                out.len = 0;
                mq_codec_append_ack(&out, ack_types[t], ids[i], all_protos[v], MQ_RC_SUCCESS, NULL);
                uint8_t want[4];
                legacy_ack(want, ack_types[t], ids[i]);
                cr_assert(eq(sz, out.len, 4), "%s v%u: %zu bytes", mq_ptype_str(ack_types[t]),
                          all_protos[v], out.len);
                cr_expect(eq(int, memcmp(out.data, want, 4), 0), "%s v%u id %u: bytes differ",
                          mq_ptype_str(ack_types[t]), all_protos[v], ids[i]);
            }
}

Test(codec_append, pubrel_has_header_flags_0010)
{
    mq_codec_append_ack(&out, MQ_PUBREL, 0x0102, MQ_PROTO_311, MQ_RC_SUCCESS, NULL);
    expect_bytes(&out, "62 02 01 02", "PUBREL");
}

Test(codec_append, v5_ack_with_a_code_and_no_properties_is_5_bytes)
{
    mq_codec_append_ack(&out, MQ_PUBACK, 0x1234, MQ_PROTO_5, MQ_RC_NO_MATCHING_SUBSCRIBERS, NULL);
    expect_bytes(&out, "40 03 12 34 10", "PUBACK 0x10");
    mq_packet_t pkt;
    decode_client(MQ_PROTO_5, &pkt, "PUBACK 0x10");
    cr_expect(eq(u16, pkt.ack.packet_id, 0x1234));
    cr_expect(eq(u8, pkt.ack.rc, MQ_RC_NO_MATCHING_SUBSCRIBERS));

    out.len = 0;
    mq_codec_append_ack(&out, MQ_PUBCOMP, 7, MQ_PROTO_5, MQ_RC_PACKET_ID_NOT_FOUND, NULL);
    expect_bytes(&out, "70 03 00 07 92", "PUBCOMP 0x92");
}

Test(codec_append, ack_code_and_properties_are_dropped_before_v5)
{
    mq_props_t p = reason_and_user();
    for (size_t v = 0; v < 2; v++) {
        out.len = 0;
        mq_codec_append_ack(&out, MQ_PUBREC, 9, all_protos[v], MQ_RC_QUOTA_EXCEEDED, &p);
        expect_bytes(&out, "50 02 00 09", "PUBREC before v5");
        out.len = 0;
        mq_codec_append_ack(&out, MQ_PUBREC, 9, all_protos[v], MQ_RC_QUOTA_EXCEEDED, NULL);
        expect_bytes(&out, "50 02 00 09", "PUBREC before v5, fast path");
    }
}

Test(codec_append, v5_ack_with_reason_string_and_user_property)
{
    mq_props_t p = reason_and_user();
    mq_codec_append_ack(&out, MQ_PUBACK, 0x1234, MQ_PROTO_5, MQ_RC_UNSPECIFIED, &p);
    expect_bytes(&out, "40 10 12 34 80 " REASON_AND_USER_HEX, "PUBACK with properties");
    mq_packet_t pkt;
    decode_client(MQ_PROTO_5, &pkt, "PUBACK with properties");
    cr_expect(eq(u16, pkt.ack.packet_id, 0x1234));
    cr_expect(eq(u8, pkt.ack.rc, MQ_RC_UNSPECIFIED));
    expect_reason_and_user(&pkt.props, "PUBACK");

    /* success with properties keeps the code byte: the property length needs it first */
    out.len = 0;
    mq_codec_append_ack(&out, MQ_PUBREL, 0x1234, MQ_PROTO_5, MQ_RC_SUCCESS, &p);
    expect_bytes(&out, "62 10 12 34 00 " REASON_AND_USER_HEX, "PUBREL success with properties");
    decode_client(MQ_PROTO_5, &pkt, "PUBREL");
    expect_reason_and_user(&pkt.props, "PUBREL");
}

/* The fast path (props NULL) must write what the generic encoder writes for the same packet,
 * which is also what an empty, non-NULL property set takes through mq_codec_append(). */
Test(codec_append, ack_fast_path_equals_the_generic_encoder)
{
    const uint8_t codes[] = {0x00, 0x10, 0x80, 0x92, 0x97};
    const uint16_t ids[] = {1, 0x00FF, 0xABCD};
    mq_props_t none;
    memset(&none, 0, sizeof(none));
    for (size_t t = 0; t < MQ_ARRAY_LEN(ack_types); t++)
        for (size_t v = 0; v < MQ_ARRAY_LEN(all_protos); v++)
            for (size_t c = 0; c < MQ_ARRAY_LEN(codes); c++)
                for (size_t i = 0; i < MQ_ARRAY_LEN(ids); i++) {
                    mq_packet_t pkt;
                    memset(&pkt, 0, sizeof(pkt));
                    pkt.type = ack_types[t];
                    pkt.ack.packet_id = ids[i];
                    pkt.ack.rc = codes[c];
                    uint8_t want[16];
                    size_t n = mq_codec_encode(&pkt, all_protos[v], want, sizeof(want));
                    cr_assert(n > 0);
                    out.len = 0;
                    mq_codec_append_ack(&out, ack_types[t], ids[i], all_protos[v],
                                        (enum mq_rc)codes[c], NULL);
                    cr_assert(eq(sz, out.len, n), "%s v%u rc 0x%02x: fast %zu, generic %zu",
                              mq_ptype_str(ack_types[t]), all_protos[v], codes[c], out.len, n);
                    cr_expect(eq(int, memcmp(out.data, want, n), 0), "%s v%u rc 0x%02x differ",
                              mq_ptype_str(ack_types[t]), all_protos[v], codes[c]);
                    out.len = 0;
                    mq_codec_append_ack(&out, ack_types[t], ids[i], all_protos[v],
                                        (enum mq_rc)codes[c], &none);
                    cr_expect(out.len == n && memcmp(out.data, want, n) == 0,
                              "%s v%u rc 0x%02x: empty properties differ",
                              mq_ptype_str(ack_types[t]), all_protos[v], codes[c]);
                }
}

Test(codec_append, appends_after_what_the_buffer_holds)
{
    mq_buf_append(&out, "xyz", 3);
    for (uint32_t i = 1; i <= 1000; i++)
        mq_codec_append_ack(&out, MQ_PUBACK, (uint16_t)i, MQ_PROTO_311, MQ_RC_SUCCESS, NULL);
    cr_assert(eq(sz, out.len, 3 + 4000));
    cr_expect(eq(int, memcmp(out.data, "xyz", 3), 0), "earlier bytes kept");
    for (uint32_t i = 1; i <= 1000; i++) {
        uint8_t want[4];
        legacy_ack(want, MQ_PUBACK, (uint16_t)i);
        cr_expect(eq(int, memcmp(out.data + 3 + 4 * (i - 1), want, 4), 0), "ack %u", i);
    }
}

/* ---- CONNACK ----------------------------------------------------------------------------- */

Test(codec_append, connack_session_present_byte_per_version)
{
    /* MQTT 3.1 has no Session Present flag: the byte is reserved and stays 0 */
    mq_codec_append_connack(&out, MQ_PROTO_31, true, 0, NULL);
    expect_bytes(&out, "20 02 00 00", "3.1 accepted");
    out.len = 0;
    mq_codec_append_connack(&out, MQ_PROTO_311, true, 0, NULL);
    expect_bytes(&out, "20 02 01 00", "3.1.1 session present");
    out.len = 0;
    mq_codec_append_connack(&out, MQ_PROTO_311, false, 5, NULL);
    expect_bytes(&out, "20 02 00 05", "3.1.1 not authorized");
    out.len = 0;
    mq_codec_append_connack(&out, MQ_PROTO_31, false, 2, NULL);
    expect_bytes(&out, "20 02 00 02", "3.1 identifier rejected");
    mq_packet_t pkt;
    decode_client(MQ_PROTO_31, &pkt, "3.1 CONNACK");
    cr_expect(eq(u8, pkt.connack.rc, 2));
}

Test(codec_append, v5_connack_always_has_a_property_length)
{
    mq_codec_append_connack(&out, MQ_PROTO_5, false, MQ_RC_UNSUPPORTED_PROTOCOL_VERSION, NULL);
    expect_bytes(&out, "20 03 00 84 00", "v5 refusal as proto.c wrote it");
    out.len = 0;
    mq_codec_append_connack(&out, MQ_PROTO_5, true, 0, NULL);
    expect_bytes(&out, "20 03 01 00 00", "v5 session present");
    mq_packet_t pkt;
    decode_client(MQ_PROTO_5, &pkt, "v5 CONNACK");
    cr_expect(pkt.connack.session_present);
}

Test(codec_append, v5_connack_with_properties_round_trips)
{
    mq_props_t p;
    memset(&p, 0, sizeof(p));
    p.session_expiry = 300;
    mq_props_set(&p, MQ_PROP_SESSION_EXPIRY);
    p.assigned_client_id = MQ_STR_LIT("auto-1");
    mq_props_set(&p, MQ_PROP_ASSIGNED_CLIENT_ID);
    p.receive_maximum = 20;
    mq_props_set(&p, MQ_PROP_RECEIVE_MAXIMUM);
    p.user = users;
    p.n_user = 2;
    mq_props_set(&p, MQ_PROP_USER_PROPERTY);
    mq_codec_append_connack(&out, MQ_PROTO_5, false, 0, &p);
    /* properties in identifier order, then the user properties */
    expect_bytes(&out,
                 "20 28 00 00 25 11 00 00 01 2c 12 00 06 61 75 74 6f 2d 31 21 00 14 "
                 "26 00 01 6b 00 01 76 26 00 06 72 65 67 69 6f 6e 00 02 65 75",
                 "CONNACK with properties");
    mq_packet_t pkt;
    decode_client(MQ_PROTO_5, &pkt, "CONNACK with properties");
    cr_expect(eq(u32, pkt.props.session_expiry, 300));
    cr_expect(mq_str_eq(pkt.props.assigned_client_id, MQ_STR_LIT("auto-1")));
    cr_expect(eq(u16, pkt.props.receive_maximum, 20));
    cr_expect(eq(u32, pkt.props.n_user, 2));
}

/* ---- SUBACK / UNSUBACK ------------------------------------------------------------------- */

Test(codec_append, suback_codes_in_every_version)
{
    const uint8_t codes[] = {0x00, 0x01, 0x80};
    for (size_t v = 0; v < 2; v++) {
        out.len = 0;
        mq_codec_append_suback(&out, all_protos[v], 0x0102, codes, 3, NULL);
        expect_bytes(&out, "90 05 01 02 00 01 80", "SUBACK before v5");
        mq_packet_t pkt;
        decode_client(all_protos[v], &pkt, "SUBACK before v5");
        cr_expect(eq(u32, pkt.suback.n, 3));
    }
    out.len = 0;
    mq_codec_append_suback(&out, MQ_PROTO_5, 0x0102, codes, 3, NULL);
    expect_bytes(&out, "90 06 01 02 00 00 01 80", "v5 SUBACK");
}

Test(codec_append, v5_suback_with_reason_string_and_user_property)
{
    const uint8_t codes[] = {MQ_RC_GRANTED_QOS2, MQ_RC_SHARED_SUBSCRIPTIONS_NOT_SUPPORTED};
    mq_props_t p = reason_and_user();
    mq_codec_append_suback(&out, MQ_PROTO_5, 0x0304, codes, 2, &p);
    expect_bytes(&out, "90 11 03 04 " REASON_AND_USER_HEX " 02 9e", "v5 SUBACK");
    mq_packet_t pkt;
    decode_client(MQ_PROTO_5, &pkt, "v5 SUBACK");
    cr_expect(eq(u16, pkt.suback.packet_id, 0x0304));
    cr_assert(eq(u32, pkt.suback.n, 2));
    cr_expect(eq(u8, pkt.suback.rcs[0], 0x02));
    cr_expect(eq(u8, pkt.suback.rcs[1], 0x9e));
    expect_reason_and_user(&pkt.props, "SUBACK");
}

/* net/proto.c wrote the SUBACK header with mq_codec_write_varint: check a 2-byte length. */
Test(codec_append, suback_with_200_codes_has_a_two_byte_remaining_length)
{
    uint8_t codes[200];
    for (size_t i = 0; i < sizeof(codes); i++)
        codes[i] = (uint8_t)(i % 3);
    mq_codec_append_suback(&out, MQ_PROTO_311, 42, codes, 200, NULL);
    cr_assert(eq(sz, out.len, 1 + 2 + 2 + 200));
    const uint8_t head[] = {0x90, 0xCA, 0x01, 0x00, 42};
    cr_expect(eq(int, memcmp(out.data, head, sizeof(head)), 0), "header");
    cr_expect(eq(int, memcmp(out.data + 5, codes, 200), 0), "codes");
    mq_packet_t pkt;
    decode_client(MQ_PROTO_311, &pkt, "SUBACK 200");
    cr_expect(eq(u32, pkt.suback.n, 200));
}

Test(codec_append, unsuback_has_no_codes_before_v5)
{
    const uint8_t codes[] = {0x00, 0x11};
    for (size_t v = 0; v < 2; v++) {
        out.len = 0;
        mq_codec_append_unsuback(&out, all_protos[v], 0x0506, NULL, 0, NULL);
        expect_bytes(&out, "b0 02 05 06", "UNSUBACK before v5");
        out.len = 0;
        mq_codec_append_unsuback(&out, all_protos[v], 0x0506, codes, 2, NULL);
        expect_bytes(&out, "b0 02 05 06", "UNSUBACK before v5, codes ignored");
    }
    out.len = 0;
    mq_codec_append_unsuback(&out, MQ_PROTO_5, 0x0506, codes, 2, NULL);
    expect_bytes(&out, "b0 05 05 06 00 00 11", "v5 UNSUBACK");
    mq_packet_t pkt;
    decode_client(MQ_PROTO_5, &pkt, "v5 UNSUBACK");
    cr_expect(eq(u8, pkt.suback.rcs[1], MQ_RC_NO_SUBSCRIPTION_EXISTED));

    out.len = 0;
    mq_props_t p = reason_and_user();
    mq_codec_append_unsuback(&out, MQ_PROTO_5, 0x0506, codes, 2, &p);
    expect_bytes(&out, "b0 11 05 06 " REASON_AND_USER_HEX " 00 11", "v5 UNSUBACK with props");
    decode_client(MQ_PROTO_5, &pkt, "v5 UNSUBACK with props");
    expect_reason_and_user(&pkt.props, "UNSUBACK");
}

/* ---- PINGRESP, DISCONNECT, AUTH ---------------------------------------------------------- */

Test(codec_append, pingresp_is_d0_00)
{
    mq_codec_append_pingresp(&out);
    expect_bytes(&out, "d0 00", "PINGRESP");
    mq_packet_t pkt;
    decode_client(MQ_PROTO_311, &pkt, "PINGRESP");
    cr_expect(eq(u8, pkt.type, MQ_PINGRESP));
}

Test(codec_append, v5_disconnect_codes_and_properties)
{
    mq_codec_append_disconnect(&out, MQ_PROTO_5, MQ_RC_SUCCESS, NULL);
    expect_bytes(&out, "e0 00", "normal disconnection");
    out.len = 0;
    mq_codec_append_disconnect(&out, MQ_PROTO_5, MQ_RC_SESSION_TAKEN_OVER, NULL);
    expect_bytes(&out, "e0 01 8e", "session taken over");
    mq_packet_t pkt;
    decode_client(MQ_PROTO_5, &pkt, "DISCONNECT 0x8e");
    cr_expect(eq(u8, pkt.reason.rc, MQ_RC_SESSION_TAKEN_OVER));

    out.len = 0;
    mq_props_t p = reason_and_user();
    p.server_reference = MQ_STR_LIT("b:1");
    mq_props_set(&p, MQ_PROP_SERVER_REFERENCE);
    mq_codec_append_disconnect(&out, MQ_PROTO_5, MQ_RC_USE_ANOTHER_SERVER, &p);
    expect_bytes(&out, "e0 14 9c 12 1c 00 03 62 3a 31 1f 00 02 6e 6f 26 00 01 6b 00 01 76",
                 "use another server");
    decode_client(MQ_PROTO_5, &pkt, "DISCONNECT 0x9c");
    cr_expect(eq(u8, pkt.reason.rc, MQ_RC_USE_ANOTHER_SERVER));
    cr_expect(mq_str_eq(pkt.props.server_reference, MQ_STR_LIT("b:1")));
    expect_reason_and_user(&pkt.props, "DISCONNECT");
}

Test(codec_append, v5_auth_round_trips)
{
    mq_props_t p;
    memset(&p, 0, sizeof(p));
    p.auth_method = MQ_STR_LIT("SCRAM");
    mq_props_set(&p, MQ_PROP_AUTH_METHOD);
    p.auth_data = MQ_STR_LIT("\x01\x02");
    mq_props_set(&p, MQ_PROP_AUTH_DATA);
    mq_codec_append_auth(&out, MQ_RC_CONTINUE_AUTHENTICATION, &p);
    expect_bytes(&out, "f0 0f 18 0d 15 00 05 53 43 52 41 4d 16 00 02 01 02", "AUTH");
    mq_packet_t pkt;
    decode_client(MQ_PROTO_5, &pkt, "AUTH");
    cr_expect(eq(u8, pkt.reason.rc, MQ_RC_CONTINUE_AUTHENTICATION));
    cr_expect(mq_str_eq(pkt.props.auth_method, MQ_STR_LIT("SCRAM")));
    cr_expect(mq_str_eq(pkt.props.auth_data, MQ_STR_LIT("\x01\x02")));
}

/* ---- the generic entry point ------------------------------------------------------------- */

Test(codec_append, append_writes_what_encode_writes)
{
    mq_packet_t pkt;
    memset(&pkt, 0, sizeof(pkt));
    pkt.type = MQ_PUBLISH;
    pkt.publish.qos = 1;
    pkt.publish.packet_id = 3;
    pkt.publish.topic = MQ_STR_LIT("a/b");
    pkt.publish.payload = MQ_STR_LIT("hello");
    uint8_t want[64];
    size_t n = mq_codec_encode(&pkt, MQ_PROTO_311, want, sizeof(want));
    cr_assert(n > 0);
    mq_buf_append(&out, "!", 1);
    cr_assert(eq(sz, mq_codec_append(&out, &pkt, MQ_PROTO_311), n));
    cr_assert(eq(sz, out.len, 1 + n));
    cr_expect(eq(int, memcmp(out.data + 1, want, n), 0));
}

Test(codec_append, append_refuses_what_cannot_be_encoded_and_leaves_the_buffer)
{
    mq_packet_t pkt;
    memset(&pkt, 0, sizeof(pkt));
    pkt.type = MQ_AUTH; /* no form before v5 */
    mq_buf_append(&out, "ab", 2);
    cr_expect(eq(sz, mq_codec_append(&out, &pkt, MQ_PROTO_311), 0));
    cr_expect(eq(sz, out.len, 2));
    cr_expect(eq(int, memcmp(out.data, "ab", 2), 0));
}

/* A property string longer than its two-byte length prefix cannot be written: refused, not
 * sent with a wrapped length. */
Test(codec_append, append_refuses_a_property_string_over_65535_bytes)
{
    static char big[65536];
    mq_packet_t pkt;
    memset(&pkt, 0, sizeof(pkt));
    pkt.type = MQ_PUBACK;
    pkt.ack.packet_id = 1;
    pkt.ack.rc = MQ_RC_UNSPECIFIED;
    pkt.props.reason_string = (mq_str_t){big, sizeof(big)};
    mq_props_set(&pkt.props, MQ_PROP_REASON_STRING);
    cr_expect(eq(sz, mq_codec_encoded_size(&pkt, MQ_PROTO_5), 0));
    cr_expect(eq(sz, mq_codec_append(&out, &pkt, MQ_PROTO_5), 0));
    cr_expect(eq(sz, out.len, 0));
    pkt.props.reason_string.len = 65535; /* the largest that fits */
    cr_expect(eq(sz, mq_codec_append(&out, &pkt, MQ_PROTO_5), 1 + 3 + 2 + 1 + 3 + 3 + 65535));

    mq_user_prop_t u = {MQ_STR_LIT("k"), {big, sizeof(big)}};
    memset(&pkt.props, 0, sizeof(pkt.props));
    pkt.props.user = &u;
    pkt.props.n_user = 1;
    mq_props_set(&pkt.props, MQ_PROP_USER_PROPERTY);
    cr_expect(eq(sz, mq_codec_encoded_size(&pkt, MQ_PROTO_5), 0), "user property value");
}
