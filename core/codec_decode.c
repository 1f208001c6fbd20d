/* SPDX-License-Identifier: MIT */
/* core/codec_decode.c - strict, incremental, zero-copy decoding of MQTT control packets. */
#include "core/codec.h"

#include "core/codec_internal.h"
#include "core/topic.h"
#include "core/utf8.h"

enum { ST_TYPE = 0, ST_LEN = 1, ST_BODY = 2 };

#define FAIL(code, text)                                                                           \
    do {                                                                                           \
        *why = (text);                                                                             \
        return (code);                                                                             \
    } while (0)

/* Packets each side may receive, one bit per type (§2.1.2 "Direction of flow"). */
#define T(x) (1u << (x))
static const uint16_t server_receives =
    T(MQ_CONNECT) | T(MQ_PUBLISH) | T(MQ_PUBACK) | T(MQ_PUBREC) | T(MQ_PUBREL) | T(MQ_PUBCOMP) |
    T(MQ_SUBSCRIBE) | T(MQ_UNSUBSCRIBE) | T(MQ_PINGREQ) | T(MQ_DISCONNECT) | T(MQ_AUTH);
static const uint16_t client_receives =
    T(MQ_CONNACK) | T(MQ_PUBLISH) | T(MQ_PUBACK) | T(MQ_PUBREC) | T(MQ_PUBREL) | T(MQ_PUBCOMP) |
    T(MQ_SUBACK) | T(MQ_UNSUBACK) | T(MQ_PINGRESP) | T(MQ_DISCONNECT) | T(MQ_AUTH);

void mq_decoder_init(mq_decoder_t *d, enum mq_role role, uint8_t proto, uint32_t max_packet_size)
{
    memset(d, 0, sizeof(*d));
    d->role = (uint8_t)role;
    d->proto = proto;
    d->max_packet_size = max_packet_size;
    mq_buf_init(&d->_body);
}

void mq_decoder_fini(mq_decoder_t *d)
{
    mq_buf_fini(&d->_body);
}

void mq_decoder_set_proto(mq_decoder_t *d, uint8_t proto)
{
    d->proto = proto;
}

/* Checks the first byte of the fixed header, before any body byte is needed, so that a
 * wrong packet is refused before the server buffers it. */
static enum mq_rc check_header(enum mq_role role, uint8_t proto, uint8_t hdr, const char **why)
{
    uint8_t type = hdr >> 4, flags = hdr & 0x0F;
    if (type == 0)
        FAIL(MQ_RC_MALFORMED_PACKET, "reserved packet type 0");
    if (type == MQ_AUTH && proto != 0 && proto < MQ_PROTO_5)
        FAIL(MQ_RC_MALFORMED_PACKET, "AUTH before MQTT 5");
    /* [MQTT-2.2.2-1], [MQTT-2.2.2-2] reserved flags */
    if (type == MQ_PUBLISH) {
        uint8_t qos = (flags >> 1) & 3;
        if (qos == 3) /* [MQTT-3.3.1-4] */
            FAIL(MQ_RC_MALFORMED_PACKET, "PUBLISH QoS 3");
        if (qos == 0 && (flags & 0x08)) /* [MQTT-3.3.1-2] */
            FAIL(MQ_RC_MALFORMED_PACKET, "PUBLISH DUP set with QoS 0");
    } else if (type == MQ_PUBREL || type == MQ_SUBSCRIBE || type == MQ_UNSUBSCRIBE) {
        /* MQTT 3.1 gave these QoS 1 in the header and a re-send the DUP flag (mosquitto
         * accepts it from 3.1 clients); 3.1.1 and 5 reserve the flags */
        if (flags != 0x02 && !(proto == MQ_PROTO_31 && flags == 0x0A))
            FAIL(MQ_RC_MALFORMED_PACKET, "reserved header flags must be 0010");
    } else if (flags != 0) {
        FAIL(MQ_RC_MALFORMED_PACKET, "reserved header flags must be 0");
    }
    uint16_t allowed = role == MQ_ROLE_SERVER ? server_receives : client_receives;
    if (!(allowed & T(type)))
        FAIL(MQ_RC_PROTOCOL_ERROR, "packet type not sent in this direction");
    if (role == MQ_ROLE_SERVER && proto == 0 && type != MQ_CONNECT) /* [MQTT-3.1.0-1] */
        FAIL(MQ_RC_PROTOCOL_ERROR, "first packet is not CONNECT");
    if (role == MQ_ROLE_CLIENT && type == MQ_DISCONNECT && proto != 0 && proto < MQ_PROTO_5)
        FAIL(MQ_RC_PROTOCOL_ERROR, "DISCONNECT from a server before MQTT 5");
    return MQ_RC_SUCCESS;
}

/* Reads "property length + properties" (v5) at r, leaving r after them. */
static enum mq_rc read_props(mq_codec__rd_t *r, enum mq_prop_ctx ctx, enum mq_role role,
                             mq_props_t *p, const char **why)
{
    uint32_t n;
    if (!mq_codec__varint(r, &n))
        FAIL(MQ_RC_MALFORMED_PACKET, "bad property length");
    if (n > mq_codec__left(r))
        FAIL(MQ_RC_MALFORMED_PACKET, "property length past the packet");
    enum mq_rc rc = mq_props_decode(ctx, role, r->p, n, p, why);
    r->p += n;
    return rc;
}

static bool read_str(mq_codec__rd_t *r, mq_str_t *s)
{
    return mq_codec__bin(r, s) && mq_utf8_is_valid((const uint8_t *)s->ptr, s->len);
}

static enum mq_rc decode_connect(mq_codec__rd_t *r, mq_packet_t *pkt, const char **why)
{
    mq_connect_t *c = &pkt->connect;
    mq_str_t name;
    uint8_t level, flags;
    if (!mq_codec__bin(r, &name) || !mq_codec__u8(r, &level))
        FAIL(MQ_RC_MALFORMED_PACKET, "CONNECT truncated");
    c->level = level;
    /* [MQTT-3.1.2-1], [MQTT-3.1.2-2]: name and level must agree and be known */
    bool is_31 = mq_str_eq(name, MQ_STR_LIT("MQIsdp")) && level == MQ_PROTO_31;
    bool is_mqtt =
        mq_str_eq(name, MQ_STR_LIT("MQTT")) && (level == MQ_PROTO_311 || level == MQ_PROTO_5);
    if (!is_31 && !is_mqtt)
        FAIL(MQ_RC_UNSUPPORTED_PROTOCOL_VERSION, "unknown protocol name or level");
    if (!mq_codec__u8(r, &flags) || !mq_codec__u16(r, &c->keep_alive))
        FAIL(MQ_RC_MALFORMED_PACKET, "CONNECT truncated");
    if (flags & 0x01) /* [MQTT-3.1.2-3] */
        FAIL(MQ_RC_MALFORMED_PACKET, "CONNECT reserved flag set");
    c->clean_start = flags & 0x02;
    c->has_will = flags & 0x04;
    c->will_qos = (flags >> 3) & 3;
    c->will_retain = flags & 0x20;
    c->has_password = flags & 0x40;
    c->has_username = flags & 0x80;
    if (c->will_qos == 3) /* [MQTT-3.1.2-14] */
        FAIL(MQ_RC_MALFORMED_PACKET, "will QoS 3");
    if (!c->has_will && (c->will_qos || c->will_retain)) /* [MQTT-3.1.2-11], [-13], [-15] */
        FAIL(MQ_RC_MALFORMED_PACKET, "will QoS or retain without will");
    if (level < MQ_PROTO_5 && c->has_password && !c->has_username) /* 3.1.1 [MQTT-3.1.2-22] */
        FAIL(MQ_RC_MALFORMED_PACKET, "password without user name");
    enum mq_rc rc;
    if (level == MQ_PROTO_5 &&
        (rc = read_props(r, MQ_PCTX_CONNECT, MQ_ROLE_SERVER, &pkt->props, why)) != MQ_RC_SUCCESS)
        return rc;
    if (!read_str(r, &c->client_id)) /* [MQTT-3.1.3-4] */
        FAIL(MQ_RC_MALFORMED_PACKET, "client identifier truncated or not UTF-8");
    if (c->has_will) {
        if (level == MQ_PROTO_5 && (rc = read_props(r, MQ_PCTX_WILL, MQ_ROLE_SERVER, &c->will_props,
                                                    why)) != MQ_RC_SUCCESS)
            return rc;
        if (!read_str(r, &c->will_topic) || !mq_codec__bin(r, &c->will_payload))
            FAIL(MQ_RC_MALFORMED_PACKET, "will truncated or not UTF-8");
        if (mq_topic_validate_name(c->will_topic.ptr, c->will_topic.len, why) != MQ_RC_SUCCESS)
            FAIL(MQ_RC_TOPIC_NAME_INVALID, "invalid will topic");
    }
    if (c->has_username && !read_str(r, &c->username))
        FAIL(MQ_RC_MALFORMED_PACKET, "user name truncated or not UTF-8");
    if (c->has_password && !mq_codec__bin(r, &c->password))
        FAIL(MQ_RC_MALFORMED_PACKET, "password truncated");
    return MQ_RC_SUCCESS;
}

static bool connack_rc_valid(uint8_t proto, uint8_t rc)
{
    if (proto < MQ_PROTO_5)
        return rc <= 5; /* 3.1.1 §3.2.2.3 */
    switch (rc) {
    case 0x00:
    case 0x80:
    case 0x81:
    case 0x82:
    case 0x83:
    case 0x84:
    case 0x85:
    case 0x86:
    case 0x87:
    case 0x88:
    case 0x89:
    case 0x8A:
    case 0x8C:
    case 0x90:
    case 0x95:
    case 0x97:
    case 0x99:
    case 0x9A:
    case 0x9B:
    case 0x9C:
    case 0x9D:
    case 0x9F:
        return true;
    default:
        return false;
    }
}

static enum mq_rc decode_connack(mq_codec__rd_t *r, uint8_t proto, mq_packet_t *pkt,
                                 const char **why)
{
    uint8_t flags;
    if (!mq_codec__u8(r, &flags) || !mq_codec__u8(r, &pkt->connack.rc))
        FAIL(MQ_RC_MALFORMED_PACKET, "CONNACK truncated");
    if (flags & 0xFE) /* [MQTT-3.2.2-1] */
        FAIL(MQ_RC_MALFORMED_PACKET, "CONNACK reserved flags set");
    pkt->connack.session_present = flags & 1;
    if (!connack_rc_valid(proto, pkt->connack.rc))
        FAIL(proto < MQ_PROTO_5 ? MQ_RC_MALFORMED_PACKET : MQ_RC_PROTOCOL_ERROR,
             "unknown CONNACK code");
    if (pkt->connack.session_present && pkt->connack.rc != 0) /* [MQTT-3.2.2-4] */
        FAIL(MQ_RC_PROTOCOL_ERROR, "session present with a refusal");
    if (proto == MQ_PROTO_5)
        return read_props(r, MQ_PCTX_CONNACK, MQ_ROLE_CLIENT, &pkt->props, why);
    return MQ_RC_SUCCESS;
}

static enum mq_rc decode_publish(mq_codec__rd_t *r, enum mq_role role, uint8_t proto,
                                 mq_packet_t *pkt, const char **why)
{
    mq_publish_t *p = &pkt->publish;
    p->qos = (pkt->flags >> 1) & 3;
    p->dup = pkt->flags & 0x08;
    p->retain = pkt->flags & 0x01;
    if (!read_str(r, &p->topic))
        FAIL(MQ_RC_MALFORMED_PACKET, "topic truncated or not UTF-8");
    if (p->qos > 0) {
        if (!mq_codec__u16(r, &p->packet_id))
            FAIL(MQ_RC_MALFORMED_PACKET, "PUBLISH truncated");
        if (p->packet_id == 0) /* [MQTT-2.2.1-3] */
            FAIL(MQ_RC_MALFORMED_PACKET, "packet identifier 0");
    }
    enum mq_rc rc;
    if (proto == MQ_PROTO_5 &&
        (rc = read_props(r, MQ_PCTX_PUBLISH, role, &pkt->props, why)) != MQ_RC_SUCCESS)
        return rc;
    /* A v5 PUBLISH may leave the topic empty when it names a Topic Alias [MQTT-3.3.2-1]. */
    if (!(p->topic.len == 0 && mq_props_has(&pkt->props, MQ_PROP_TOPIC_ALIAS)) &&
        mq_topic_validate_name(p->topic.ptr, p->topic.len, why) != MQ_RC_SUCCESS)
        return MQ_RC_TOPIC_NAME_INVALID;
    p->payload.ptr = (const char *)r->p;
    p->payload.len = mq_codec__left(r);
    r->p = r->end;
    return MQ_RC_SUCCESS;
}

static bool ack_rc_valid(uint8_t type, uint8_t rc)
{
    if (type == MQ_PUBREL || type == MQ_PUBCOMP)
        return rc == 0x00 || rc == 0x92;
    switch (rc) { /* PUBACK, PUBREC */
    case 0x00:
    case 0x10:
    case 0x80:
    case 0x83:
    case 0x87:
    case 0x90:
    case 0x91:
    case 0x97:
    case 0x99:
        return true;
    default:
        return false;
    }
}

static enum mq_rc decode_ack(mq_codec__rd_t *r, enum mq_role role, uint8_t proto, mq_packet_t *pkt,
                             const char **why)
{
    if (!mq_codec__u16(r, &pkt->ack.packet_id))
        FAIL(MQ_RC_MALFORMED_PACKET, "acknowledgement truncated");
    if (pkt->ack.packet_id == 0) /* [MQTT-2.2.1-3] */
        FAIL(MQ_RC_MALFORMED_PACKET, "packet identifier 0");
    if (proto < MQ_PROTO_5) {
        if (mq_codec__left(r) != 0)
            FAIL(MQ_RC_MALFORMED_PACKET, "acknowledgement longer than 2 bytes");
        return MQ_RC_SUCCESS;
    }
    /* §3.4.2.1: reason code and properties may be absent (remaining length 2 or 3) */
    if (mq_codec__left(r) == 0)
        return MQ_RC_SUCCESS;
    (void)mq_codec__u8(r, &pkt->ack.rc); /* cannot fail: one byte is left */
    if (!ack_rc_valid(pkt->type, pkt->ack.rc))
        FAIL(MQ_RC_PROTOCOL_ERROR, "unknown reason code");
    if (mq_codec__left(r) == 0)
        return MQ_RC_SUCCESS;
    return read_props(r, MQ_PCTX_PUBACK, role, &pkt->props, why);
}

/* Reads one SUBSCRIBE / UNSUBSCRIBE entry; the options are checked, the filter only for
 * UTF-8 (its wildcard rules are the entry's own rc, see mq_sub_next). */
static enum mq_rc read_entry(mq_codec__rd_t *r, uint8_t type, uint8_t proto, mq_sub_entry_t *e,
                             const char **why)
{
    memset(e, 0, sizeof(*e));
    if (!read_str(r, &e->filter)) /* [MQTT-3.8.3-1] */
        FAIL(MQ_RC_MALFORMED_PACKET, "topic filter truncated or not UTF-8");
    if (type == MQ_UNSUBSCRIBE)
        return MQ_RC_SUCCESS;
    uint8_t o;
    if (!mq_codec__u8(r, &o))
        FAIL(MQ_RC_MALFORMED_PACKET, "subscription options missing");
    e->qos = o & 3;
    if (e->qos == 3) /* [MQTT-3.8.3-4] (v5: -5) */
        FAIL(MQ_RC_MALFORMED_PACKET, "requested QoS 3");
    if (proto < MQ_PROTO_5) {
        if (o & 0xFC) /* 3.1.1 [MQTT-3.8.3-4] */
            FAIL(MQ_RC_MALFORMED_PACKET, "reserved subscription bits set");
        return MQ_RC_SUCCESS;
    }
    if (o & 0xC0) /* [MQTT-3.8.3-5] */
        FAIL(MQ_RC_MALFORMED_PACKET, "reserved subscription bits set");
    e->no_local = o & 0x04;
    e->retain_as_published = o & 0x08;
    e->retain_handling = (o >> 4) & 3;
    if (e->retain_handling == 3)
        FAIL(MQ_RC_PROTOCOL_ERROR, "retain handling 3");
    mq_str_t share, rest;
    if (e->no_local && mq_topic_split_shared(e->filter.ptr, e->filter.len, &share, &rest))
        FAIL(MQ_RC_PROTOCOL_ERROR, "no local on a shared subscription"); /* [MQTT-3.8.3-4] */
    return MQ_RC_SUCCESS;
}

static enum mq_rc decode_subscribe(mq_codec__rd_t *r, enum mq_role role, uint8_t proto,
                                   mq_packet_t *pkt, const char **why)
{
    mq_subscribe_t *s = &pkt->subscribe;
    if (!mq_codec__u16(r, &s->packet_id))
        FAIL(MQ_RC_MALFORMED_PACKET, "packet truncated");
    if (s->packet_id == 0) /* [MQTT-2.2.1-3] */
        FAIL(MQ_RC_MALFORMED_PACKET, "packet identifier 0");
    enum mq_rc rc;
    enum mq_prop_ctx ctx = pkt->type == MQ_SUBSCRIBE ? MQ_PCTX_SUBSCRIBE : MQ_PCTX_UNSUBSCRIBE;
    if (proto == MQ_PROTO_5 && (rc = read_props(r, ctx, role, &pkt->props, why)) != MQ_RC_SUCCESS)
        return rc;
    s->raw.ptr = (const char *)r->p;
    s->raw.len = mq_codec__left(r);
    while (mq_codec__left(r) > 0) {
        mq_sub_entry_t e;
        if ((rc = read_entry(r, pkt->type, proto, &e, why)) != MQ_RC_SUCCESS)
            return rc;
        s->n++;
    }
    if (s->n == 0) /* [MQTT-3.8.3-3], [MQTT-3.10.3-2] */
        FAIL(MQ_RC_PROTOCOL_ERROR, "no topic filter");
    return MQ_RC_SUCCESS;
}

static bool suback_rc_valid(uint8_t type, uint8_t proto, uint8_t rc)
{
    if (proto < MQ_PROTO_5)
        return rc <= 2 || rc == 0x80; /* 3.1.1 §3.9.3 */
    if (type == MQ_SUBACK) {
        switch (rc) {
        case 0x00:
        case 0x01:
        case 0x02:
        case 0x80:
        case 0x83:
        case 0x87:
        case 0x8F:
        case 0x91:
        case 0x97:
        case 0x9E:
        case 0xA1:
        case 0xA2:
            return true;
        default:
            return false;
        }
    }
    switch (rc) {
    case 0x00:
    case 0x11:
    case 0x80:
    case 0x83:
    case 0x87:
    case 0x8F:
    case 0x91:
        return true;
    default:
        return false;
    }
}

static enum mq_rc decode_suback(mq_codec__rd_t *r, uint8_t proto, mq_packet_t *pkt,
                                const char **why)
{
    mq_suback_t *s = &pkt->suback;
    if (!mq_codec__u16(r, &s->packet_id))
        FAIL(MQ_RC_MALFORMED_PACKET, "packet truncated");
    if (s->packet_id == 0)
        FAIL(MQ_RC_MALFORMED_PACKET, "packet identifier 0");
    if (pkt->type == MQ_UNSUBACK && proto < MQ_PROTO_5) {
        if (mq_codec__left(r) != 0) /* 3.1.1 §3.11: remaining length 2 */
            FAIL(MQ_RC_MALFORMED_PACKET, "UNSUBACK longer than 2 bytes");
        return MQ_RC_SUCCESS;
    }
    enum mq_rc rc;
    enum mq_prop_ctx ctx = pkt->type == MQ_SUBACK ? MQ_PCTX_SUBACK : MQ_PCTX_UNSUBACK;
    if (proto == MQ_PROTO_5 &&
        (rc = read_props(r, ctx, MQ_ROLE_CLIENT, &pkt->props, why)) != MQ_RC_SUCCESS)
        return rc;
    s->rcs = r->p;
    s->n = (uint32_t)mq_codec__left(r);
    if (s->n == 0)
        FAIL(MQ_RC_PROTOCOL_ERROR, "no reason codes");
    for (uint32_t i = 0; i < s->n; i++)
        if (!suback_rc_valid(pkt->type, proto, s->rcs[i]))
            FAIL(proto < MQ_PROTO_5 ? MQ_RC_MALFORMED_PACKET : MQ_RC_PROTOCOL_ERROR,
                 "unknown reason code");
    r->p = r->end;
    return MQ_RC_SUCCESS;
}

static bool disconnect_rc_valid(uint8_t rc)
{
    switch (rc) { /* v5 §3.14.2.1 */
    case 0x00:
    case 0x04:
    case 0x80:
    case 0x81:
    case 0x82:
    case 0x83:
    case 0x87:
    case 0x89:
    case 0x8B:
    case 0x8D:
    case 0x8E:
    case 0x8F:
    case 0x90:
    case 0x93:
    case 0x94:
    case 0x95:
    case 0x96:
    case 0x97:
    case 0x98:
    case 0x99:
    case 0x9A:
    case 0x9B:
    case 0x9C:
    case 0x9D:
    case 0x9E:
    case 0x9F:
    case 0xA0:
    case 0xA1:
    case 0xA2:
        return true;
    default:
        return false;
    }
}

/* DISCONNECT and AUTH: v5 reason code and properties, both optional. */
static enum mq_rc decode_reason(mq_codec__rd_t *r, enum mq_role role, uint8_t proto,
                                mq_packet_t *pkt, const char **why)
{
    if (proto < MQ_PROTO_5 || mq_codec__left(r) == 0)
        return MQ_RC_SUCCESS; /* a 3.1.1 body is rejected by the trailing-bytes check */
    (void)mq_codec__u8(r, &pkt->reason.rc); /* cannot fail: one byte is left */
    bool ok = pkt->type == MQ_DISCONNECT
                  ? disconnect_rc_valid(pkt->reason.rc)
                  : (pkt->reason.rc == 0x00 || pkt->reason.rc == 0x18 || pkt->reason.rc == 0x19);
    if (!ok)
        FAIL(MQ_RC_PROTOCOL_ERROR, "unknown reason code");
    if (mq_codec__left(r) == 0)
        return MQ_RC_SUCCESS;
    enum mq_prop_ctx ctx = pkt->type == MQ_DISCONNECT ? MQ_PCTX_DISCONNECT : MQ_PCTX_AUTH;
    return read_props(r, ctx, role, &pkt->props, why);
}

enum mq_rc mq_codec_decode_body(enum mq_role role, uint8_t proto, uint8_t hdr, const uint8_t *body,
                                uint32_t len, mq_packet_t *pkt, const char **why)
{
    memset(pkt, 0, sizeof(*pkt));
    pkt->type = hdr >> 4;
    pkt->flags = hdr & 0x0F;
    pkt->remaining_len = len;
    *why = NULL;
    mq_codec__rd_t r = {body, body + len};
    enum mq_rc rc;
    switch (pkt->type) {
    case MQ_CONNECT:
        rc = decode_connect(&r, pkt, why);
        break;
    case MQ_CONNACK:
        rc = decode_connack(&r, proto, pkt, why);
        break;
    case MQ_PUBLISH:
        rc = decode_publish(&r, role, proto, pkt, why);
        break;
    case MQ_PUBACK:
    case MQ_PUBREC:
    case MQ_PUBREL:
    case MQ_PUBCOMP:
        rc = decode_ack(&r, role, proto, pkt, why);
        break;
    case MQ_SUBSCRIBE:
    case MQ_UNSUBSCRIBE:
        rc = decode_subscribe(&r, role, proto, pkt, why);
        break;
    case MQ_SUBACK:
    case MQ_UNSUBACK:
        rc = decode_suback(&r, proto, pkt, why);
        break;
    case MQ_PINGREQ:
    case MQ_PINGRESP:
        rc = MQ_RC_SUCCESS;
        break;
    case MQ_DISCONNECT:
    case MQ_AUTH:
        rc = decode_reason(&r, role, proto, pkt, why);
        break;
    default:
        FAIL(MQ_RC_MALFORMED_PACKET, "reserved packet type");
    }
    if (rc != MQ_RC_SUCCESS) {
        if (*why == NULL)
            *why = "invalid packet";
        return rc;
    }
    if (r.p != r.end) /* every packet's length must be exactly its fields' */
        FAIL(MQ_RC_MALFORMED_PACKET, "trailing bytes after the last field");
    return MQ_RC_SUCCESS;
}

/* Parses the fixed header at in[0..len): 0 when complete (*hdr_len, *rem set), MQ_RC_AGAIN,
 * or a reason code. */
static enum mq_rc read_fixed_header(enum mq_role role, uint8_t proto, const uint8_t *in, size_t len,
                                    size_t *hdr_len, uint32_t *rem, const char **why)
{
    if (len == 0)
        return MQ_RC_AGAIN;
    enum mq_rc rc = check_header(role, proto, in[0], why);
    if (rc != MQ_RC_SUCCESS)
        return rc;
    int n = mq_codec__read_varint(in + 1, len - 1, rem);
    if (n < 0)
        FAIL(MQ_RC_MALFORMED_PACKET, "remaining length over 4 bytes");
    if (n == 0)
        return MQ_RC_AGAIN;
    if (proto == MQ_PROTO_5 && (size_t)n != mq_codec_varint_size(*rem))
        FAIL(MQ_RC_MALFORMED_PACKET, "remaining length not minimally encoded"); /* [MQTT-1.5.5-1] */
    *hdr_len = 1 + (size_t)n;
    return MQ_RC_SUCCESS;
}

/* [MQTT-1.5.5-1] for a v5 CONNECT, whose fixed header was read before its version was known. */
static bool connect_length_ok(const mq_packet_t *pkt, size_t n_len, uint32_t rem)
{
    return pkt->type != MQ_CONNECT || pkt->connect.level != MQ_PROTO_5 ||
           n_len == mq_codec_varint_size(rem);
}

enum mq_rc mq_codec_decode(enum mq_role role, uint8_t proto, const uint8_t *buf, size_t len,
                           mq_packet_t *pkt, const char **why)
{
    size_t hdr_len;
    uint32_t rem;
    memset(pkt, 0, sizeof(*pkt));
    *why = NULL;
    if (len > 0)
        pkt->type = buf[0] >> 4;
    enum mq_rc rc = read_fixed_header(role, proto, buf, len, &hdr_len, &rem, why);
    if (rc != MQ_RC_SUCCESS)
        return rc;
    if (len - hdr_len < rem)
        return MQ_RC_AGAIN;
    if (len - hdr_len > rem)
        FAIL(MQ_RC_MALFORMED_PACKET, "bytes after the packet");
    rc = mq_codec_decode_body(role, proto, buf[0], buf + hdr_len, rem, pkt, why);
    if (rc == MQ_RC_SUCCESS && !connect_length_ok(pkt, hdr_len - 1, rem))
        FAIL(MQ_RC_MALFORMED_PACKET, "remaining length not minimally encoded");
    return rc;
}

/* A whole body is at hand: decode it and apply what it teaches the stream. */
static enum mq_rc finish(mq_decoder_t *d, const uint8_t *body, mq_packet_t *pkt, const char **why)
{
    d->_state = ST_TYPE;
    enum mq_rc rc = mq_codec_decode_body(d->role, d->proto, d->_hdr, body, d->_rem, pkt, why);
    if (rc == MQ_RC_SUCCESS && !connect_length_ok(pkt, d->_n_len, d->_rem))
        FAIL(MQ_RC_MALFORMED_PACKET, "remaining length not minimally encoded");
    if (pkt->type == MQ_CONNECT && d->role == MQ_ROLE_SERVER && rc == MQ_RC_SUCCESS)
        d->proto = pkt->connect.level;
    return rc;
}

enum mq_rc mq_decoder_feed(mq_decoder_t *d, const uint8_t *in, size_t len, size_t *used,
                           mq_packet_t *pkt, const char **why)
{
    const uint8_t *p = in, *end = in + len;
    enum mq_rc rc;
    *used = 0;
    *why = NULL;
    if (d->_state == ST_TYPE) {
        /* The views of the previous packet may have pointed into _body: only now is it free.
         * Freeing rather than keeping it means an idle connection holds no buffer. */
        if (d->_body.cap)
            mq_buf_fini(&d->_body);
        if (p == end)
            return MQ_RC_AGAIN;
        pkt->type = *p >> 4;
        if (d->role == MQ_ROLE_SERVER && d->proto != 0 && pkt->type == MQ_CONNECT)
            FAIL(MQ_RC_PROTOCOL_ERROR, "second CONNECT"); /* [MQTT-3.1.0-2] */
        if ((rc = check_header(d->role, d->proto, *p, why)) != MQ_RC_SUCCESS)
            return rc;
        d->_hdr = *p++;
        d->_state = ST_LEN;
        d->_n_len = 0;
        d->_rem = 0;
    }
    pkt->type = d->_hdr >> 4;
    while (d->_state == ST_LEN) {
        if (p == end) {
            *used = len;
            return MQ_RC_AGAIN;
        }
        uint8_t b = *p++;
        d->_rem |= (uint32_t)(b & 0x7F) << (7 * d->_n_len);
        d->_n_len++;
        if (b & 0x80) {
            if (d->_n_len == 4)
                FAIL(MQ_RC_MALFORMED_PACKET, "remaining length over 4 bytes");
            continue;
        }
        if (d->proto == MQ_PROTO_5 && d->_n_len != mq_codec_varint_size(d->_rem))
            FAIL(MQ_RC_MALFORMED_PACKET, "remaining length not minimally encoded");
        uint64_t total = 1ull + d->_n_len + d->_rem;
        if (d->max_packet_size && total > d->max_packet_size)
            FAIL(MQ_RC_PACKET_TOO_LARGE, "packet larger than the maximum packet size");
        d->_state = ST_BODY;
    }
    size_t avail = (size_t)(end - p);
    if (d->_body.len == 0 && avail >= d->_rem) { /* the common case: parse in place */
        *used = (size_t)(p - in) + d->_rem;
        return finish(d, p, pkt, why);
    }
    size_t take = d->_rem - d->_body.len;
    if (take > avail)
        take = avail;
    /* Grow with what actually arrives: a header claiming 256 MB must not cost 256 MB before
     * the bytes exist (bounded by max_packet_size anyway, checked above). */
    if (d->_body.cap == 0)
        mq_buf_reserve(&d->_body, d->_rem < 65536 ? d->_rem : 65536);
    mq_buf_append(&d->_body, p, take);
    p += take;
    *used = (size_t)(p - in);
    if (d->_body.len < d->_rem)
        return MQ_RC_AGAIN;
    return finish(d, d->_body.data, pkt, why);
}

bool mq_sub_next(const mq_packet_t *pkt, uint8_t proto, size_t *pos, mq_sub_entry_t *e)
{
    const mq_str_t *raw = &pkt->subscribe.raw;
    if (*pos >= raw->len)
        return false;
    mq_codec__rd_t r = {(const uint8_t *)raw->ptr + *pos, (const uint8_t *)raw->ptr + raw->len};
    const char *why;
    if (read_entry(&r, pkt->type, proto, e, &why) != MQ_RC_SUCCESS)
        return false; /* only for a packet that did not come from the decoder */
    *pos = (size_t)((const char *)r.p - raw->ptr);
    e->rc = mq_topic_validate_filter(e->filter.ptr, e->filter.len, &why) == MQ_RC_SUCCESS
                ? MQ_RC_SUCCESS
                : MQ_RC_TOPIC_FILTER_INVALID;
    return true;
}
