/* SPDX-License-Identifier: MIT */
/* core/props.c - MQTT v5 properties: one table of types and allowed packets, decode, encode. */
#include "core/codec_internal.h"

#include "core/topic.h"
#include "core/utf8.h"

enum ptype { PT_NONE, PT_BYTE, PT_U16, PT_U32, PT_VARINT, PT_UTF8, PT_BIN, PT_PAIR };

#define C(x) (1u << (x))
#define ACKS C(MQ_PCTX_PUBACK)
#define PUB_WILL (C(MQ_PCTX_PUBLISH) | C(MQ_PCTX_WILL))
#define ALL 0xFFFFFFFFu

/* MQTT v5 §2.2.2.2: each property's data type and the packets it may appear in. */
static const struct {
    uint8_t type;
    uint32_t ctx; /* bit per enum mq_prop_ctx */
} props_table[64] = {
    [MQ_PROP_PAYLOAD_FORMAT] = {PT_BYTE, PUB_WILL},
    [MQ_PROP_MESSAGE_EXPIRY] = {PT_U32, PUB_WILL},
    [MQ_PROP_CONTENT_TYPE] = {PT_UTF8, PUB_WILL},
    [MQ_PROP_RESPONSE_TOPIC] = {PT_UTF8, PUB_WILL},
    [MQ_PROP_CORRELATION_DATA] = {PT_BIN, PUB_WILL},
    [MQ_PROP_SUBSCRIPTION_ID] = {PT_VARINT, C(MQ_PCTX_PUBLISH) | C(MQ_PCTX_SUBSCRIBE)},
    [MQ_PROP_SESSION_EXPIRY] = {PT_U32,
                                C(MQ_PCTX_CONNECT) | C(MQ_PCTX_CONNACK) | C(MQ_PCTX_DISCONNECT)},
    [MQ_PROP_ASSIGNED_CLIENT_ID] = {PT_UTF8, C(MQ_PCTX_CONNACK)},
    [MQ_PROP_SERVER_KEEP_ALIVE] = {PT_U16, C(MQ_PCTX_CONNACK)},
    [MQ_PROP_AUTH_METHOD] = {PT_UTF8, C(MQ_PCTX_CONNECT) | C(MQ_PCTX_CONNACK) | C(MQ_PCTX_AUTH)},
    [MQ_PROP_AUTH_DATA] = {PT_BIN, C(MQ_PCTX_CONNECT) | C(MQ_PCTX_CONNACK) | C(MQ_PCTX_AUTH)},
    [MQ_PROP_REQUEST_PROBLEM_INFO] = {PT_BYTE, C(MQ_PCTX_CONNECT)},
    [MQ_PROP_WILL_DELAY] = {PT_U32, C(MQ_PCTX_WILL)},
    [MQ_PROP_REQUEST_RESPONSE_INFO] = {PT_BYTE, C(MQ_PCTX_CONNECT)},
    [MQ_PROP_RESPONSE_INFO] = {PT_UTF8, C(MQ_PCTX_CONNACK)},
    [MQ_PROP_SERVER_REFERENCE] = {PT_UTF8, C(MQ_PCTX_CONNACK) | C(MQ_PCTX_DISCONNECT)},
    [MQ_PROP_REASON_STRING] = {PT_UTF8, C(MQ_PCTX_CONNACK) | ACKS | C(MQ_PCTX_SUBACK) |
                                            C(MQ_PCTX_UNSUBACK) | C(MQ_PCTX_DISCONNECT) |
                                            C(MQ_PCTX_AUTH)},
    [MQ_PROP_RECEIVE_MAXIMUM] = {PT_U16, C(MQ_PCTX_CONNECT) | C(MQ_PCTX_CONNACK)},
    [MQ_PROP_TOPIC_ALIAS_MAXIMUM] = {PT_U16, C(MQ_PCTX_CONNECT) | C(MQ_PCTX_CONNACK)},
    [MQ_PROP_TOPIC_ALIAS] = {PT_U16, C(MQ_PCTX_PUBLISH)},
    [MQ_PROP_MAXIMUM_QOS] = {PT_BYTE, C(MQ_PCTX_CONNACK)},
    [MQ_PROP_RETAIN_AVAILABLE] = {PT_BYTE, C(MQ_PCTX_CONNACK)},
    [MQ_PROP_USER_PROPERTY] = {PT_PAIR, ALL},
    [MQ_PROP_MAXIMUM_PACKET_SIZE] = {PT_U32, C(MQ_PCTX_CONNECT) | C(MQ_PCTX_CONNACK)},
    [MQ_PROP_WILDCARD_SUB_AVAILABLE] = {PT_BYTE, C(MQ_PCTX_CONNACK)},
    [MQ_PROP_SUB_ID_AVAILABLE] = {PT_BYTE, C(MQ_PCTX_CONNACK)},
    [MQ_PROP_SHARED_SUB_AVAILABLE] = {PT_BYTE, C(MQ_PCTX_CONNACK)},
};

static bool read_utf8(mq_codec__rd_t *r, mq_str_t *s)
{
    return mq_codec__bin(r, s) && mq_utf8_is_valid((const uint8_t *)s->ptr, s->len);
}

/* Reads a byte-valued property that may only be 0 or 1; a 2 is a protocol error. */
static enum mq_rc read_flag(mq_codec__rd_t *r, uint8_t *v, const char **why)
{
    if (!mq_codec__u8(r, v)) {
        *why = "property truncated";
        return MQ_RC_MALFORMED_PACKET;
    }
    if (*v > 1) {
        *why = "property value must be 0 or 1";
        return MQ_RC_PROTOCOL_ERROR;
    }
    return MQ_RC_SUCCESS;
}

static enum mq_rc read_value(mq_codec__rd_t *r, uint8_t id, mq_props_t *p, const char **why)
{
    bool ok = false; /* set by the reads that fall through to the check below */
    uint32_t u32 = 0;
    mq_str_t k, v;
    switch (id) {
    case MQ_PROP_PAYLOAD_FORMAT:
        return read_flag(r, &p->payload_format, why);
    case MQ_PROP_REQUEST_PROBLEM_INFO:
        return read_flag(r, &p->request_problem_info, why);
    case MQ_PROP_REQUEST_RESPONSE_INFO:
        return read_flag(r, &p->request_response_info, why);
    case MQ_PROP_MAXIMUM_QOS:
        return read_flag(r, &p->maximum_qos, why);
    case MQ_PROP_RETAIN_AVAILABLE:
        return read_flag(r, &p->retain_available, why);
    case MQ_PROP_WILDCARD_SUB_AVAILABLE:
        return read_flag(r, &p->wildcard_sub_available, why);
    case MQ_PROP_SUB_ID_AVAILABLE:
        return read_flag(r, &p->sub_id_available, why);
    case MQ_PROP_SHARED_SUB_AVAILABLE:
        return read_flag(r, &p->shared_sub_available, why);
    case MQ_PROP_MESSAGE_EXPIRY:
        ok = mq_codec__u32(r, &p->message_expiry);
        break;
    case MQ_PROP_SESSION_EXPIRY:
        ok = mq_codec__u32(r, &p->session_expiry);
        break;
    case MQ_PROP_WILL_DELAY:
        ok = mq_codec__u32(r, &p->will_delay);
        break;
    case MQ_PROP_MAXIMUM_PACKET_SIZE:
        if (!mq_codec__u32(r, &p->max_packet_size))
            break;
        if (p->max_packet_size == 0) { /* [MQTT-3.1.2.11] / §3.2.2.3.6 */
            *why = "maximum packet size 0";
            return MQ_RC_PROTOCOL_ERROR;
        }
        return MQ_RC_SUCCESS;
    case MQ_PROP_SERVER_KEEP_ALIVE:
        ok = mq_codec__u16(r, &p->server_keep_alive);
        break;
    case MQ_PROP_TOPIC_ALIAS_MAXIMUM:
        ok = mq_codec__u16(r, &p->topic_alias_maximum);
        break;
    case MQ_PROP_RECEIVE_MAXIMUM:
        if (!mq_codec__u16(r, &p->receive_maximum))
            break;
        if (p->receive_maximum == 0) { /* §3.1.2.11.3: 0 is a protocol error */
            *why = "receive maximum 0";
            return MQ_RC_PROTOCOL_ERROR;
        }
        return MQ_RC_SUCCESS;
    case MQ_PROP_TOPIC_ALIAS:
        if (!mq_codec__u16(r, &p->topic_alias))
            break;
        if (p->topic_alias == 0) { /* [MQTT-3.3.2-8] */
            *why = "topic alias 0";
            return MQ_RC_TOPIC_ALIAS_INVALID;
        }
        return MQ_RC_SUCCESS;
    case MQ_PROP_SUBSCRIPTION_ID:
        if (!mq_codec__varint(r, &u32))
            break;
        if (u32 == 0) { /* §3.3.2.3.8: 0 is a protocol error */
            *why = "subscription identifier 0";
            return MQ_RC_PROTOCOL_ERROR;
        }
        if (p->n_sub_ids++ == 0)
            p->subscription_id = u32;
        return MQ_RC_SUCCESS;
    case MQ_PROP_CONTENT_TYPE:
        ok = read_utf8(r, &p->content_type);
        break;
    case MQ_PROP_RESPONSE_TOPIC:
        if (!read_utf8(r, &p->response_topic))
            break;
        /* [MQTT-3.3.2-14] a Response Topic is a Topic Name: no wildcards, not empty */
        if (mq_topic_validate_name(p->response_topic.ptr, p->response_topic.len, why) !=
            MQ_RC_SUCCESS) {
            *why = "invalid response topic";
            return MQ_RC_PROTOCOL_ERROR;
        }
        return MQ_RC_SUCCESS;
    case MQ_PROP_ASSIGNED_CLIENT_ID:
        ok = read_utf8(r, &p->assigned_client_id);
        break;
    case MQ_PROP_AUTH_METHOD:
        ok = read_utf8(r, &p->auth_method);
        break;
    case MQ_PROP_RESPONSE_INFO:
        ok = read_utf8(r, &p->response_info);
        break;
    case MQ_PROP_SERVER_REFERENCE:
        ok = read_utf8(r, &p->server_reference);
        break;
    case MQ_PROP_REASON_STRING:
        ok = read_utf8(r, &p->reason_string);
        break;
    case MQ_PROP_CORRELATION_DATA:
        ok = mq_codec__bin(r, &p->correlation_data);
        break;
    case MQ_PROP_AUTH_DATA:
        ok = mq_codec__bin(r, &p->auth_data);
        break;
    case MQ_PROP_USER_PROPERTY:
        ok = read_utf8(r, &k) && read_utf8(r, &v);
        if (ok)
            p->n_user++;
        break;
    default:
        MQ_ASSERT(0 && "property id not in the table");
    }
    if (!ok) {
        *why = "property truncated or not UTF-8";
        return MQ_RC_MALFORMED_PACKET;
    }
    return MQ_RC_SUCCESS;
}

enum mq_rc mq_props_decode(enum mq_prop_ctx ctx, enum mq_role role, const uint8_t *in, size_t len,
                           mq_props_t *p, const char **why)
{
    memset(p, 0, sizeof(*p));
    p->raw.ptr = (const char *)in;
    p->raw.len = len;
    mq_codec__rd_t r = {in, in + len};
    while (r.p < r.end) {
        uint32_t id;
        /* The identifier is a Variable Byte Integer, though every defined one fits a byte. */
        if (!mq_codec__varint(&r, &id)) {
            *why = "bad property identifier";
            return MQ_RC_MALFORMED_PACKET;
        }
        if (id >= MQ_ARRAY_LEN(props_table) || props_table[id].type == PT_NONE) {
            *why = "unknown property";
            return MQ_RC_MALFORMED_PACKET;
        }
        if (!(props_table[id].ctx & C(ctx))) {
            *why = "property not allowed in this packet";
            return MQ_RC_PROTOCOL_ERROR;
        }
        bool repeatable =
            id == MQ_PROP_USER_PROPERTY ||
            (id == MQ_PROP_SUBSCRIPTION_ID && ctx == MQ_PCTX_PUBLISH && role == MQ_ROLE_CLIENT);
        if (mq_props_has(p, id) && !repeatable) { /* §2.2.2.2: more than once is an error */
            *why = "duplicate property";
            return MQ_RC_PROTOCOL_ERROR;
        }
        if (id == MQ_PROP_SUBSCRIPTION_ID && ctx == MQ_PCTX_PUBLISH && role == MQ_ROLE_SERVER) {
            *why = "subscription identifier from a client"; /* [MQTT-3.3.4-6] */
            return MQ_RC_PROTOCOL_ERROR;
        }
        if (id == MQ_PROP_SESSION_EXPIRY && ctx == MQ_PCTX_DISCONNECT && role == MQ_ROLE_CLIENT) {
            *why = "session expiry in a server DISCONNECT"; /* [MQTT-3.14.2-2] */
            return MQ_RC_PROTOCOL_ERROR;
        }
        mq_props_set(p, (enum mq_prop_id)id);
        enum mq_rc rc = read_value(&r, (uint8_t)id, p, why);
        if (rc != MQ_RC_SUCCESS)
            return rc;
    }
    /* §3.1.2.11.10: Authentication Data without an Authentication Method is a Protocol Error.
     * Checked after the loop: the method may come after the data in the block. */
    if (mq_props_has(p, MQ_PROP_AUTH_DATA) && !mq_props_has(p, MQ_PROP_AUTH_METHOD)) {
        *why = "authentication data without authentication method";
        return MQ_RC_PROTOCOL_ERROR;
    }
    return MQ_RC_SUCCESS;
}

/* Steps over one property of an already-validated block; sets *entry to its bytes. */
static bool next_entry(const mq_props_t *p, size_t *pos, uint8_t *id, mq_str_t *entry)
{
    if (*pos >= p->raw.len)
        return false;
    mq_codec__rd_t r = {(const uint8_t *)p->raw.ptr + *pos,
                        (const uint8_t *)p->raw.ptr + p->raw.len};
    const uint8_t *start = r.p;
    uint32_t pid, u32;
    uint16_t u16;
    uint8_t u8;
    mq_str_t s;
    bool ok = mq_codec__varint(&r, &pid) && pid < MQ_ARRAY_LEN(props_table);
    if (ok) {
        switch (props_table[pid].type) {
        case PT_BYTE:
            ok = mq_codec__u8(&r, &u8);
            break;
        case PT_U16:
            ok = mq_codec__u16(&r, &u16);
            break;
        case PT_U32:
            ok = mq_codec__u32(&r, &u32);
            break;
        case PT_VARINT:
            ok = mq_codec__varint(&r, &u32);
            break;
        case PT_UTF8:
        case PT_BIN:
            ok = mq_codec__bin(&r, &s);
            break;
        case PT_PAIR:
            ok = mq_codec__bin(&r, &s) && mq_codec__bin(&r, &s);
            break;
        default:
            ok = false;
        }
    }
    if (!ok)
        return false; /* only reachable for a block that did not come from mq_props_decode */
    *id = (uint8_t)pid;
    entry->ptr = (const char *)start;
    entry->len = (size_t)(r.p - start);
    *pos += entry->len;
    return true;
}

bool mq_props_next_user(const mq_props_t *p, size_t *pos, mq_str_t *key, mq_str_t *val)
{
    uint8_t id;
    mq_str_t e;
    while (next_entry(p, pos, &id, &e)) {
        if (id != MQ_PROP_USER_PROPERTY)
            continue;
        mq_codec__rd_t r = {(const uint8_t *)e.ptr + 1, (const uint8_t *)e.ptr + e.len};
        return mq_codec__bin(&r, key) && mq_codec__bin(&r, val);
    }
    return false;
}

bool mq_props_next_sub_id(const mq_props_t *p, size_t *pos, uint32_t *sid)
{
    uint8_t id;
    mq_str_t e;
    while (next_entry(p, pos, &id, &e)) {
        if (id != MQ_PROP_SUBSCRIPTION_ID)
            continue;
        mq_codec__rd_t r = {(const uint8_t *)e.ptr + 1, (const uint8_t *)e.ptr + e.len};
        return mq_codec__varint(&r, sid);
    }
    return false;
}

/* Calls 'fn' for each repeated entry (user properties, extra subscription ids) to copy from a
 * decoded block; used by both size and put so that they cannot disagree. */
static size_t copy_raw(const mq_props_t *p, uint8_t want, uint8_t *o)
{
    size_t pos = 0, total = 0;
    uint8_t id;
    mq_str_t e;
    while (next_entry(p, &pos, &id, &e)) {
        if (id != want)
            continue;
        if (o) {
            memcpy(o + total, e.ptr, e.len);
        }
        total += e.len;
    }
    return total;
}

static size_t value_size(const mq_props_t *p, uint8_t id)
{
    switch (props_table[id].type) {
    case PT_BYTE:
        return 1;
    case PT_U16:
        return 2;
    case PT_U32:
        return 4;
    case PT_VARINT:
        return mq_codec_varint_size(p->subscription_id);
    default:
        break;
    }
    const mq_str_t *s = NULL;
    switch (id) {
    case MQ_PROP_CONTENT_TYPE:
        s = &p->content_type;
        break;
    case MQ_PROP_RESPONSE_TOPIC:
        s = &p->response_topic;
        break;
    case MQ_PROP_CORRELATION_DATA:
        s = &p->correlation_data;
        break;
    case MQ_PROP_ASSIGNED_CLIENT_ID:
        s = &p->assigned_client_id;
        break;
    case MQ_PROP_AUTH_METHOD:
        s = &p->auth_method;
        break;
    case MQ_PROP_AUTH_DATA:
        s = &p->auth_data;
        break;
    case MQ_PROP_RESPONSE_INFO:
        s = &p->response_info;
        break;
    case MQ_PROP_SERVER_REFERENCE:
        s = &p->server_reference;
        break;
    case MQ_PROP_REASON_STRING:
        s = &p->reason_string;
        break;
    default:
        MQ_ASSERT(0 && "no value for property");
    }
    return 2 + s->len;
}

/* Which repeatable properties come from arrays, raw, or the single field. */
static bool sub_ids_from_raw(const mq_props_t *p)
{
    return p->sub_ids == NULL && p->n_sub_ids > 1 && p->raw.len > 0;
}

size_t mq_props_size(const mq_props_t *p)
{
    size_t n = 0;
    uint64_t bits = p->present & ~(1ull << MQ_PROP_USER_PROPERTY);
    if (p->sub_ids || sub_ids_from_raw(p))
        bits &= ~(1ull << MQ_PROP_SUBSCRIPTION_ID);
    while (bits) {
        uint8_t id = (uint8_t)__builtin_ctzll(bits);
        bits &= bits - 1;
        if (id < MQ_ARRAY_LEN(props_table) && props_table[id].type != PT_NONE)
            n += 1 + value_size(p, id);
    }
    if (p->sub_ids) {
        for (uint32_t i = 0; i < p->n_sub_ids; i++)
            n += 1 + mq_codec_varint_size(p->sub_ids[i]);
    } else if (sub_ids_from_raw(p)) {
        n += copy_raw(p, MQ_PROP_SUBSCRIPTION_ID, NULL);
    }
    if (p->user) {
        for (uint32_t i = 0; i < p->n_user; i++)
            n += 1 + 2 + p->user[i].key.len + 2 + p->user[i].val.len;
    } else if (p->n_user > 0) {
        n += copy_raw(p, MQ_PROP_USER_PROPERTY, NULL);
    }
    return n;
}

static uint8_t *put_value(uint8_t *o, const mq_props_t *p, uint8_t id)
{
    *o++ = id;
    switch (id) {
    case MQ_PROP_PAYLOAD_FORMAT:
        *o++ = p->payload_format;
        return o;
    case MQ_PROP_REQUEST_PROBLEM_INFO:
        *o++ = p->request_problem_info;
        return o;
    case MQ_PROP_REQUEST_RESPONSE_INFO:
        *o++ = p->request_response_info;
        return o;
    case MQ_PROP_MAXIMUM_QOS:
        *o++ = p->maximum_qos;
        return o;
    case MQ_PROP_RETAIN_AVAILABLE:
        *o++ = p->retain_available;
        return o;
    case MQ_PROP_WILDCARD_SUB_AVAILABLE:
        *o++ = p->wildcard_sub_available;
        return o;
    case MQ_PROP_SUB_ID_AVAILABLE:
        *o++ = p->sub_id_available;
        return o;
    case MQ_PROP_SHARED_SUB_AVAILABLE:
        *o++ = p->shared_sub_available;
        return o;
    case MQ_PROP_MESSAGE_EXPIRY:
        return mq_codec__put_u32(o, p->message_expiry);
    case MQ_PROP_SESSION_EXPIRY:
        return mq_codec__put_u32(o, p->session_expiry);
    case MQ_PROP_WILL_DELAY:
        return mq_codec__put_u32(o, p->will_delay);
    case MQ_PROP_MAXIMUM_PACKET_SIZE:
        return mq_codec__put_u32(o, p->max_packet_size);
    case MQ_PROP_SERVER_KEEP_ALIVE:
        return mq_codec__put_u16(o, p->server_keep_alive);
    case MQ_PROP_TOPIC_ALIAS_MAXIMUM:
        return mq_codec__put_u16(o, p->topic_alias_maximum);
    case MQ_PROP_RECEIVE_MAXIMUM:
        return mq_codec__put_u16(o, p->receive_maximum);
    case MQ_PROP_TOPIC_ALIAS:
        return mq_codec__put_u16(o, p->topic_alias);
    case MQ_PROP_SUBSCRIPTION_ID:
        return o + mq_codec__write_varint(o, p->subscription_id);
    case MQ_PROP_CONTENT_TYPE:
        return mq_codec__put_bin(o, p->content_type);
    case MQ_PROP_RESPONSE_TOPIC:
        return mq_codec__put_bin(o, p->response_topic);
    case MQ_PROP_CORRELATION_DATA:
        return mq_codec__put_bin(o, p->correlation_data);
    case MQ_PROP_ASSIGNED_CLIENT_ID:
        return mq_codec__put_bin(o, p->assigned_client_id);
    case MQ_PROP_AUTH_METHOD:
        return mq_codec__put_bin(o, p->auth_method);
    case MQ_PROP_AUTH_DATA:
        return mq_codec__put_bin(o, p->auth_data);
    case MQ_PROP_RESPONSE_INFO:
        return mq_codec__put_bin(o, p->response_info);
    case MQ_PROP_SERVER_REFERENCE:
        return mq_codec__put_bin(o, p->server_reference);
    case MQ_PROP_REASON_STRING:
        return mq_codec__put_bin(o, p->reason_string);
    default:
        MQ_ASSERT(0 && "cannot encode property");
    }
    return o;
}

uint8_t *mq_codec__put_props(uint8_t *o, const mq_props_t *p)
{
    uint64_t bits = p->present & ~(1ull << MQ_PROP_USER_PROPERTY);
    if (p->sub_ids || sub_ids_from_raw(p))
        bits &= ~(1ull << MQ_PROP_SUBSCRIPTION_ID);
    while (bits) {
        uint8_t id = (uint8_t)__builtin_ctzll(bits);
        bits &= bits - 1;
        if (id < MQ_ARRAY_LEN(props_table) && props_table[id].type != PT_NONE)
            o = put_value(o, p, id);
    }
    if (p->sub_ids) {
        for (uint32_t i = 0; i < p->n_sub_ids; i++) {
            *o++ = MQ_PROP_SUBSCRIPTION_ID;
            o += mq_codec__write_varint(o, p->sub_ids[i]);
        }
    } else if (sub_ids_from_raw(p)) {
        o += copy_raw(p, MQ_PROP_SUBSCRIPTION_ID, o);
    }
    if (p->user) {
        for (uint32_t i = 0; i < p->n_user; i++) {
            *o++ = MQ_PROP_USER_PROPERTY;
            o = mq_codec__put_bin(o, p->user[i].key);
            o = mq_codec__put_bin(o, p->user[i].val);
        }
    } else if (p->n_user > 0) {
        o += copy_raw(p, MQ_PROP_USER_PROPERTY, o);
    }
    return o;
}
