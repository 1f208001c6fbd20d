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
        if (proto != MQ_PROTO_5)
            return 2;
        /* §3.4.2.1: omit reason code and properties when they say nothing */
        n = mq_props_size(&pkt->props);
        if (n == 0)
            return pkt->ack.rc == 0 ? 2 : 3;
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

size_t mq_codec_encoded_size(const mq_packet_t *pkt, uint8_t proto)
{
    size_t rem = body_size(pkt, proto);
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
    uint8_t flags = 0;
    switch (pkt->type) {
    case MQ_PUBLISH:
        flags = (uint8_t)((pkt->publish.dup ? 0x08 : 0) | (pkt->publish.qos & 3) << 1 |
                          (pkt->publish.retain ? 0x01 : 0));
        break;
    case MQ_PUBREL:
    case MQ_SUBSCRIBE:
    case MQ_UNSUBSCRIBE:
        flags = 0x02; /* [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1] */
        break;
    default:
        break;
    }
    return (uint8_t)(pkt->type << 4 | flags);
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
        o = mq_codec__put_u16(o, pkt->ack.packet_id);
        if (rem >= 3)
            *o++ = pkt->ack.rc;
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

size_t mq_codec_encode(const mq_packet_t *pkt, uint8_t proto, uint8_t *out, size_t cap)
{
    size_t rem = body_size(pkt, proto);
    if (rem > MQ_CODEC_MAX_REMAINING)
        return 0;
    size_t total = 1 + mq_codec_varint_size((uint32_t)rem) + rem;
    if (cap < total)
        return 0;
    uint8_t *o = out;
    *o++ = first_byte(pkt);
    o += mq_codec__write_varint(o, (uint32_t)rem);
    o = put_body(o, pkt, proto, rem);
    MQ_ASSERT((size_t)(o - out) == total); /* size and writer must agree */
    return total;
}
