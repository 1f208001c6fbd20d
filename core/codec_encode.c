/* SPDX-License-Identifier: MIT */
/* core/codec_encode.c - exact-size encoding of MQTT control packets into a caller's buffer. */
#include "core/codec.h"

#include "core/codec_internal.h"

#define STR_MAX 65535u /* two-byte length prefix */

const char *mq_ptype_str(uint8_t type)
{
    static const char *const names[] = {
        "?",       "CONNECT",  "CONNACK",    "PUBLISH", "PUBACK",      "PUBREC",
        "PUBREL",  "PUBCOMP",  "SUBSCRIBE",  "SUBACK",  "UNSUBSCRIBE", "UNSUBACK",
        "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
    };
    return type < MQ_ARRAY_LEN(names) ? names[type] : "?";
}

/* Size of "property length + properties", or 0 before v5. */
static size_t props_field_size(const mq_props_t *p, uint8_t proto)
{
    if (proto != MQ_PROTO_5)
        return 0;
    size_t n = mq_props_size(p);
    return mq_codec_varint_size((uint32_t)n) + n;
}

static bool str_ok(mq_str_t s)
{
    return s.len <= STR_MAX;
}

/* First header byte of any packet but PUBLISH (whose flags come from the packet). */
static uint8_t header_byte(uint8_t type)
{
    /* [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1] */
    bool flags = type == MQ_PUBREL || type == MQ_SUBSCRIBE || type == MQ_UNSUBSCRIBE;
    return (uint8_t)(type << 4 | (flags ? 0x02 : 0));
}

/* Remaining length of a PUBACK/PUBREC/PUBREL/PUBCOMP without properties: v5 omits a
 * success code [MQTT-3.4.2.1], earlier versions have no code at all. */
static size_t ack_rem(uint8_t proto, uint8_t rc)
{
    return proto == MQ_PROTO_5 && rc != 0 ? 3 : 2;
}

/* Packet id and, when the remaining length 'rem' has room, the reason code of an ack. */
static uint8_t *put_ack_head(uint8_t *o, uint16_t id, uint8_t rc, size_t rem)
{
    o = mq_codec__put_u16(o, id);
    if (rem >= 3)
        *o++ = rc;
    return o;
}

/* Remaining length of *pkt for 'proto'; SIZE_MAX when it cannot be encoded. */
static size_t body_size(const mq_packet_t *pkt, uint8_t proto)
{
    size_t n = 0;
    const mq_connect_t *c = &pkt->connect;
    switch (pkt->type) {
    case MQ_CONNECT:
        n = 2 + (proto == MQ_PROTO_31 ? 6 : 4) + 1 + 1 + 2 + props_field_size(&pkt->props, proto);
        if (!str_ok(c->client_id) || !str_ok(c->will_topic) || !str_ok(c->will_payload) ||
            !str_ok(c->username) || !str_ok(c->password))
            return SIZE_MAX;
        n += 2 + c->client_id.len;
        if (c->has_will)
            n += props_field_size(&c->will_props, proto) + 2 + c->will_topic.len + 2 +
                 c->will_payload.len;
        if (c->has_username)
            n += 2 + c->username.len;
        if (c->has_password)
            n += 2 + c->password.len;
        return n;
    case MQ_CONNACK:
        return 2 + props_field_size(&pkt->props, proto);
    case MQ_PUBLISH:
        if (!str_ok(pkt->publish.topic))
            return SIZE_MAX;
        return 2 + pkt->publish.topic.len + (pkt->publish.qos ? 2 : 0) +
               props_field_size(&pkt->props, proto) + pkt->publish.payload.len;
    case MQ_PUBACK:
    case MQ_PUBREC:
    case MQ_PUBREL:
    case MQ_PUBCOMP:
        n = proto == MQ_PROTO_5 ? mq_props_size(&pkt->props) : 0;
        if (n == 0) /* §3.4.2.1: omit reason code and properties when they say nothing */
            return ack_rem(proto, pkt->ack.rc);
        return 3 + mq_codec_varint_size((uint32_t)n) + n;
    case MQ_SUBSCRIBE:
    case MQ_UNSUBSCRIBE:
        n = 2 + props_field_size(&pkt->props, proto);
        for (uint32_t i = 0; i < pkt->subscribe.n; i++) {
            if (!str_ok(pkt->subscribe.entries[i].filter))
                return SIZE_MAX;
            n += 2 + pkt->subscribe.entries[i].filter.len + (pkt->type == MQ_SUBSCRIBE);
        }
        return n;
    case MQ_SUBACK:
    case MQ_UNSUBACK:
        if (pkt->type == MQ_UNSUBACK && proto != MQ_PROTO_5)
            return 2;
        return 2 + props_field_size(&pkt->props, proto) + pkt->suback.n;
    case MQ_PINGREQ:
    case MQ_PINGRESP:
        return 0;
    case MQ_DISCONNECT:
    case MQ_AUTH:
        if (proto != MQ_PROTO_5)
            return pkt->type == MQ_AUTH ? SIZE_MAX : 0;
        n = mq_props_size(&pkt->props);
        if (n == 0)
            return pkt->reason.rc == 0 ? 0 : 1;
        return 1 + mq_codec_varint_size((uint32_t)n) + n;
    default:
        return SIZE_MAX;
    }
}

/* Remaining length of *pkt for 'proto'; SIZE_MAX when it cannot be encoded. Property values
 * are checked here, once, rather than in every branch of body_size(). */
static size_t remaining_size(const mq_packet_t *pkt, uint8_t proto)
{
    if (proto == MQ_PROTO_5 && !mq_codec__props_fit(&pkt->props))
        return SIZE_MAX;
    if (proto == MQ_PROTO_5 && pkt->type == MQ_CONNECT && pkt->connect.has_will &&
        !mq_codec__props_fit(&pkt->connect.will_props))
        return SIZE_MAX;
    return body_size(pkt, proto);
}

size_t mq_codec_encoded_size(const mq_packet_t *pkt, uint8_t proto)
{
    size_t rem = remaining_size(pkt, proto);
    if (rem > MQ_CODEC_MAX_REMAINING)
        return 0;
    return 1 + mq_codec_varint_size((uint32_t)rem) + rem;
}

static uint8_t *put_props_field(uint8_t *o, const mq_props_t *p, uint8_t proto)
{
    if (proto != MQ_PROTO_5)
        return o;
    o += mq_codec__write_varint(o, (uint32_t)mq_props_size(p));
    return mq_codec__put_props(o, p);
}

static uint8_t first_byte(const mq_packet_t *pkt)
{
    if (pkt->type != MQ_PUBLISH)
        return header_byte(pkt->type);
    uint8_t flags = (uint8_t)((pkt->publish.dup ? 0x08 : 0) | (pkt->publish.qos & 3) << 1 |
                              (pkt->publish.retain ? 0x01 : 0));
    return (uint8_t)(MQ_PUBLISH << 4 | flags);
}

static uint8_t *put_connect(uint8_t *o, const mq_packet_t *pkt, uint8_t proto)
{
    const mq_connect_t *c = &pkt->connect;
    o = mq_codec__put_bin(o, proto == MQ_PROTO_31 ? MQ_STR_LIT("MQIsdp") : MQ_STR_LIT("MQTT"));
    *o++ = proto;
    uint8_t flags = (uint8_t)((c->clean_start ? 0x02 : 0) | (c->has_username ? 0x80 : 0) |
                              (c->has_password ? 0x40 : 0));
    if (c->has_will)
        flags |= (uint8_t)(0x04 | (c->will_qos & 3) << 3 | (c->will_retain ? 0x20 : 0));
    *o++ = flags;
    o = mq_codec__put_u16(o, c->keep_alive);
    o = put_props_field(o, &pkt->props, proto);
    o = mq_codec__put_bin(o, c->client_id);
    if (c->has_will) {
        o = put_props_field(o, &c->will_props, proto);
        o = mq_codec__put_bin(o, c->will_topic);
        o = mq_codec__put_bin(o, c->will_payload);
    }
    if (c->has_username)
        o = mq_codec__put_bin(o, c->username);
    if (c->has_password)
        o = mq_codec__put_bin(o, c->password);
    return o;
}

static uint8_t *put_body(uint8_t *o, const mq_packet_t *pkt, uint8_t proto, size_t rem)
{
    switch (pkt->type) {
    case MQ_CONNECT:
        return put_connect(o, pkt, proto);
    case MQ_CONNACK:
        *o++ = pkt->connack.session_present ? 1 : 0;
        *o++ = pkt->connack.rc;
        return put_props_field(o, &pkt->props, proto);
    case MQ_PUBLISH:
        o = mq_codec__put_bin(o, pkt->publish.topic);
        if (pkt->publish.qos)
            o = mq_codec__put_u16(o, pkt->publish.packet_id);
        o = put_props_field(o, &pkt->props, proto);
        if (pkt->publish.payload.len)
            memcpy(o, pkt->publish.payload.ptr, pkt->publish.payload.len);
        return o + pkt->publish.payload.len;
    case MQ_PUBACK:
    case MQ_PUBREC:
    case MQ_PUBREL:
    case MQ_PUBCOMP:
        o = put_ack_head(o, pkt->ack.packet_id, pkt->ack.rc, rem);
        if (rem >= 4)
            o = put_props_field(o, &pkt->props, proto);
        return o;
    case MQ_SUBSCRIBE:
    case MQ_UNSUBSCRIBE:
        o = mq_codec__put_u16(o, pkt->subscribe.packet_id);
        o = put_props_field(o, &pkt->props, proto);
        for (uint32_t i = 0; i < pkt->subscribe.n; i++) {
            const mq_sub_entry_t *e = &pkt->subscribe.entries[i];
            o = mq_codec__put_bin(o, e->filter);
            if (pkt->type == MQ_UNSUBSCRIBE)
                continue;
            uint8_t opt = e->qos & 3;
            if (proto == MQ_PROTO_5)
                opt |= (uint8_t)((e->no_local ? 0x04 : 0) | (e->retain_as_published ? 0x08 : 0) |
                                 (e->retain_handling & 3) << 4);
            *o++ = opt;
        }
        return o;
    case MQ_SUBACK:
    case MQ_UNSUBACK:
        o = mq_codec__put_u16(o, pkt->suback.packet_id);
        if (pkt->type == MQ_UNSUBACK && proto != MQ_PROTO_5)
            return o;
        o = put_props_field(o, &pkt->props, proto);
        if (pkt->suback.n)
            memcpy(o, pkt->suback.rcs, pkt->suback.n);
        return o + pkt->suback.n;
    case MQ_DISCONNECT:
    case MQ_AUTH:
        if (rem >= 1)
            *o++ = pkt->reason.rc;
        if (rem >= 2)
            o = put_props_field(o, &pkt->props, proto);
        return o;
    default: /* PINGREQ, PINGRESP */
        return o;
    }
}

/* Writes the whole packet, 'total' bytes with remaining length 'rem', at 'out'. */
static void put_packet(uint8_t *out, const mq_packet_t *pkt, uint8_t proto, size_t rem,
                       size_t total)
{
    uint8_t *o = out;
    *o++ = first_byte(pkt);
    o += mq_codec__write_varint(o, (uint32_t)rem);
    o = put_body(o, pkt, proto, rem);
    MQ_ASSERT((size_t)(o - out) == total); /* size and writer must agree */
}

size_t mq_codec_encode(const mq_packet_t *pkt, uint8_t proto, uint8_t *out, size_t cap)
{
    size_t rem = remaining_size(pkt, proto);
    if (rem > MQ_CODEC_MAX_REMAINING)
        return 0;
    size_t total = 1 + mq_codec_varint_size((uint32_t)rem) + rem;
    if (cap < total)
        return 0;
    put_packet(out, pkt, proto, rem, total);
    return total;
}

size_t mq_codec_append(mq_buf_t *out, const mq_packet_t *pkt, uint8_t proto)
{
    size_t rem = remaining_size(pkt, proto);
    if (rem > MQ_CODEC_MAX_REMAINING)
        return 0;
    size_t total = 1 + mq_codec_varint_size((uint32_t)rem) + rem;
    mq_buf_reserve(out, total);
    put_packet(out->data + out->len, pkt, proto, rem, total);
    out->len += total;
    return total;
}

/* ---- typed helpers for the control packets a broker sends ------------------------------- */

/* Appends a packet the caller built and knows to be encodable (a failure is a bug). */
static void append_checked(mq_buf_t *out, const mq_packet_t *pkt, uint8_t proto)
{
    size_t n = mq_codec_append(out, pkt, proto);
    MQ_ASSERT(n > 0); /* reason string or user properties past the protocol maximum */
}

/* A packet of 'type' with a copy of 'props' (or none). */
static void init_packet(mq_packet_t *pkt, uint8_t type, const mq_props_t *props)
{
    memset(pkt, 0, sizeof(*pkt));
    pkt->type = type;
    if (props)
        pkt->props = *props;
}

void mq_codec_append_ack(mq_buf_t *out, uint8_t type, uint16_t id, uint8_t proto, enum mq_rc rc,
                         const mq_props_t *props)
{
    MQ_ASSERT(type >= MQ_PUBACK && type <= MQ_PUBCOMP && rc < 0x100);
    if (props == NULL) {
        /* The QoS 1/2 hot path: the same pieces as put_packet() without filling the ~300-byte
         * mq_packet_t nor sizing properties (measured: 5 ns instead of 25 per ack). */
        size_t rem = ack_rem(proto, (uint8_t)rc);
        mq_buf_reserve(out, 2 + rem);
        uint8_t *o = out->data + out->len;
        o[0] = header_byte(type);
        o[1] = (uint8_t)rem;
        o = put_ack_head(o + 2, id, (uint8_t)rc, rem);
        out->len = (size_t)(o - out->data);
        return;
    }
    mq_packet_t pkt;
    init_packet(&pkt, type, props);
    pkt.ack.packet_id = id;
    pkt.ack.rc = (uint8_t)rc;
    append_checked(out, &pkt, proto);
}

void mq_codec_append_connack(mq_buf_t *out, uint8_t proto, bool session_present, uint8_t rc,
                             const mq_props_t *props)
{
    mq_packet_t pkt;
    init_packet(&pkt, MQ_CONNACK, props);
    /* MQTT 3.1 has no Session Present flag: the first byte is reserved and 0 */
    pkt.connack.session_present = session_present && proto >= MQ_PROTO_311;
    pkt.connack.rc = rc;
    append_checked(out, &pkt, proto);
}

/* SUBACK and UNSUBACK. */
static void append_codes(mq_buf_t *out, uint8_t type, uint8_t proto, uint16_t id,
                         const uint8_t *codes, uint32_t n, const mq_props_t *props)
{
    mq_packet_t pkt;
    init_packet(&pkt, type, props);
    pkt.suback.packet_id = id;
    pkt.suback.n = n;
    pkt.suback.rcs = codes;
    append_checked(out, &pkt, proto);
}

void mq_codec_append_suback(mq_buf_t *out, uint8_t proto, uint16_t id, const uint8_t *codes,
                            uint32_t n, const mq_props_t *props)
{
    append_codes(out, MQ_SUBACK, proto, id, codes, n, props);
}

void mq_codec_append_unsuback(mq_buf_t *out, uint8_t proto, uint16_t id, const uint8_t *codes,
                              uint32_t n, const mq_props_t *props)
{
    append_codes(out, MQ_UNSUBACK, proto, id, codes, n, props);
}

void mq_codec_append_pingresp(mq_buf_t *out)
{
    mq_packet_t pkt;
    init_packet(&pkt, MQ_PINGRESP, NULL);
    append_checked(out, &pkt, MQ_PROTO_311);
}

void mq_codec_append_disconnect(mq_buf_t *out, uint8_t proto, enum mq_rc rc,
                                const mq_props_t *props)
{
    MQ_ASSERT(rc < 0x100);
    mq_packet_t pkt;
    init_packet(&pkt, MQ_DISCONNECT, props);
    pkt.reason.rc = (uint8_t)rc;
    append_checked(out, &pkt, proto);
}

void mq_codec_append_auth(mq_buf_t *out, enum mq_rc rc, const mq_props_t *props)
{
    MQ_ASSERT(rc < 0x100);
    mq_packet_t pkt;
    init_packet(&pkt, MQ_AUTH, props);
    pkt.reason.rc = (uint8_t)rc;
    append_checked(out, &pkt, MQ_PROTO_5);
}
