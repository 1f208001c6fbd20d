/* SPDX-License-Identifier: MIT */
/* core/props.c - MQTT v5 properties: one table of types and allowed packets, decode, encode. */
#include "core/codec_internal.h"

#include <stddef.h>

#include "core/topic.h"
#include "core/utf8.h"

/* Wire type of a property value (§2.2.2.2). */
enum ptype { PT_NONE, PT_BYTE, PT_U16, PT_U32, PT_VARINT, PT_UTF8, PT_BIN, PT_PAIR };

/* What a decoded value must satisfy beyond its wire type. */
enum plimit {
    LIM_NONE,
    LIM_FLAG,    /* 0 or 1 */
    LIM_NONZERO, /* never 0 */
    LIM_TOPIC,   /* a valid Topic Name */
};

#define C(x) (1u << (x))
#define ACKS C(MQ_PCTX_PUBACK)
#define PUB_WILL (C(MQ_PCTX_PUBLISH) | C(MQ_PCTX_WILL))
#define ALL 0xFFFFFFFFu

/* One property: its wire type, where its value lives in mq_props_t, the packets it may
 * appear in, and the limit a decoded value must meet (with the code and log text when it
 * does not). Decode, size and encode walk these rows; only User Property and Subscription
 * Identifier (repeatable) have code of their own. */
typedef struct prop_def {
    uint8_t type;    /* enum ptype */
    uint8_t limit;   /* enum plimit */
    uint8_t size;    /* sizeof the field: 1, 2 or 4 for numbers, sizeof(mq_str_t) for strings */
    uint16_t off;    /* offsetof the field in mq_props_t; unused for PT_PAIR */
    uint16_t bad_rc; /* enum mq_rc when 'limit' is not met */
    uint32_t ctx;    /* bit per enum mq_prop_ctx */
    const char *why; /* log text when 'limit' is not met */
} prop_def_t;

/* clang-format off */
#define FIELD(f) .off = offsetof(mq_props_t, f), .size = sizeof(((mq_props_t *)0)->f)
#define VAL(t, f, c) {.type = (t), .limit = LIM_NONE, FIELD(f), .ctx = (c)}
#define FLAG(f, c) {.type = PT_BYTE, .limit = LIM_FLAG, FIELD(f), .ctx = (c), \
                    .bad_rc = MQ_RC_PROTOCOL_ERROR, .why = "property value must be 0 or 1"}
#define NONZERO(t, f, c, rc, text) {.type = (t), .limit = LIM_NONZERO, FIELD(f), .ctx = (c), \
                                    .bad_rc = (rc), .why = (text)}
/* clang-format on */

/* MQTT v5 §2.2.2.2: each property's data type and the packets it may appear in. */
static const prop_def_t props_table[64] = {
    [MQ_PROP_PAYLOAD_FORMAT] = FLAG(payload_format, PUB_WILL),
    [MQ_PROP_MESSAGE_EXPIRY] = VAL(PT_U32, message_expiry, PUB_WILL),
    [MQ_PROP_CONTENT_TYPE] = VAL(PT_UTF8, content_type, PUB_WILL),
    /* [MQTT-3.3.2-14] a Response Topic is a Topic Name: no wildcards, not empty */
    [MQ_PROP_RESPONSE_TOPIC] = {.type = PT_UTF8,
                                .limit = LIM_TOPIC,
                                FIELD(response_topic),
                                .bad_rc = MQ_RC_PROTOCOL_ERROR,
                                .ctx = PUB_WILL,
                                .why = "invalid response topic"},
    [MQ_PROP_CORRELATION_DATA] = VAL(PT_BIN, correlation_data, PUB_WILL),
    /* §3.3.2.3.8: 0 is a protocol error */
    [MQ_PROP_SUBSCRIPTION_ID] =
        NONZERO(PT_VARINT, subscription_id, C(MQ_PCTX_PUBLISH) | C(MQ_PCTX_SUBSCRIBE),
                MQ_RC_PROTOCOL_ERROR, "subscription identifier 0"),
    [MQ_PROP_SESSION_EXPIRY] = VAL(PT_U32, session_expiry,
                                   C(MQ_PCTX_CONNECT) | C(MQ_PCTX_CONNACK) | C(MQ_PCTX_DISCONNECT)),
    [MQ_PROP_ASSIGNED_CLIENT_ID] = VAL(PT_UTF8, assigned_client_id, C(MQ_PCTX_CONNACK)),
    [MQ_PROP_SERVER_KEEP_ALIVE] = VAL(PT_U16, server_keep_alive, C(MQ_PCTX_CONNACK)),
    [MQ_PROP_AUTH_METHOD] =
        VAL(PT_UTF8, auth_method, C(MQ_PCTX_CONNECT) | C(MQ_PCTX_CONNACK) | C(MQ_PCTX_AUTH)),
    [MQ_PROP_AUTH_DATA] =
        VAL(PT_BIN, auth_data, C(MQ_PCTX_CONNECT) | C(MQ_PCTX_CONNACK) | C(MQ_PCTX_AUTH)),
    [MQ_PROP_REQUEST_PROBLEM_INFO] = FLAG(request_problem_info, C(MQ_PCTX_CONNECT)),
    [MQ_PROP_WILL_DELAY] = VAL(PT_U32, will_delay, C(MQ_PCTX_WILL)),
    [MQ_PROP_REQUEST_RESPONSE_INFO] = FLAG(request_response_info, C(MQ_PCTX_CONNECT)),
    [MQ_PROP_RESPONSE_INFO] = VAL(PT_UTF8, response_info, C(MQ_PCTX_CONNACK)),
    [MQ_PROP_SERVER_REFERENCE] =
        VAL(PT_UTF8, server_reference, C(MQ_PCTX_CONNACK) | C(MQ_PCTX_DISCONNECT)),
    [MQ_PROP_REASON_STRING] =
        VAL(PT_UTF8, reason_string,
            C(MQ_PCTX_CONNACK) | ACKS | C(MQ_PCTX_SUBACK) | C(MQ_PCTX_UNSUBACK) |
                C(MQ_PCTX_DISCONNECT) | C(MQ_PCTX_AUTH)),
    /* §3.1.2.11.3: 0 is a protocol error */
    [MQ_PROP_RECEIVE_MAXIMUM] =
        NONZERO(PT_U16, receive_maximum, C(MQ_PCTX_CONNECT) | C(MQ_PCTX_CONNACK),
                MQ_RC_PROTOCOL_ERROR, "receive maximum 0"),
    [MQ_PROP_TOPIC_ALIAS_MAXIMUM] =
        VAL(PT_U16, topic_alias_maximum, C(MQ_PCTX_CONNECT) | C(MQ_PCTX_CONNACK)),
    /* [MQTT-3.3.2-8] */
    [MQ_PROP_TOPIC_ALIAS] = NONZERO(PT_U16, topic_alias, C(MQ_PCTX_PUBLISH),
                                    MQ_RC_TOPIC_ALIAS_INVALID, "topic alias 0"),
    [MQ_PROP_MAXIMUM_QOS] = FLAG(maximum_qos, C(MQ_PCTX_CONNACK)),
    [MQ_PROP_RETAIN_AVAILABLE] = FLAG(retain_available, C(MQ_PCTX_CONNACK)),
    [MQ_PROP_USER_PROPERTY] = {.type = PT_PAIR, .limit = LIM_NONE, .ctx = ALL},
    /* [MQTT-3.1.2.11] / §3.2.2.3.6 */
    [MQ_PROP_MAXIMUM_PACKET_SIZE] =
        NONZERO(PT_U32, max_packet_size, C(MQ_PCTX_CONNECT) | C(MQ_PCTX_CONNACK),
                MQ_RC_PROTOCOL_ERROR, "maximum packet size 0"),
    [MQ_PROP_WILDCARD_SUB_AVAILABLE] = FLAG(wildcard_sub_available, C(MQ_PCTX_CONNACK)),
    [MQ_PROP_SUB_ID_AVAILABLE] = FLAG(sub_id_available, C(MQ_PCTX_CONNACK)),
    [MQ_PROP_SHARED_SUB_AVAILABLE] = FLAG(shared_sub_available, C(MQ_PCTX_CONNACK)),
};

/* The numeric field of row 'd' in 'p', whatever its width. */
static uint32_t load_num(const mq_props_t *p, const prop_def_t *d)
{
    const char *f = (const char *)p + d->off;
    switch (d->size) {
    case 1:
        return *(const uint8_t *)f;
    case 2:
        return *(const uint16_t *)f;
    default:
        return *(const uint32_t *)f;
    }
}

/* Stores 'v' (already checked against the wire type) in row d's field. */
static void store_num(mq_props_t *p, const prop_def_t *d, uint32_t v)
{
    char *f = (char *)p + d->off;
    switch (d->size) {
    case 1:
        *(uint8_t *)f = (uint8_t)v;
        break;
    case 2:
        *(uint16_t *)f = (uint16_t)v;
        break;
    default:
        *(uint32_t *)f = v;
        break;
    }
}

/* The string or binary field of row 'd' in 'p'. */
static const mq_str_t *str_field(const mq_props_t *p, const prop_def_t *d)
{
    return (const mq_str_t *)((const char *)p + d->off);
}

static bool read_utf8(mq_codec__rd_t *r, mq_str_t *s)
{
    return mq_codec__bin(r, s) && mq_utf8_is_valid((const uint8_t *)s->ptr, s->len);
}

/* Reads a number of wire type 'type'; false when truncated (or a malformed varint). */
static bool read_num(mq_codec__rd_t *r, uint8_t type, uint32_t *v)
{
    uint8_t u8;
    uint16_t u16;
    switch (type) {
    case PT_BYTE:
        if (!mq_codec__u8(r, &u8))
            return false;
        *v = u8;
        return true;
    case PT_U16:
        if (!mq_codec__u16(r, &u16))
            return false;
        *v = u16;
        return true;
    case PT_U32:
        return mq_codec__u32(r, v);
    default: /* PT_VARINT */
        return mq_codec__varint(r, v);
    }
}

/* Checks row d's limit on a number; MQ_RC_SUCCESS or d->bad_rc. */
static enum mq_rc check_num(const prop_def_t *d, uint32_t v, const char **why)
{
    bool ok = d->limit == LIM_FLAG ? v <= 1 : d->limit == LIM_NONZERO ? v != 0 : true;
    if (ok)
        return MQ_RC_SUCCESS;
    *why = d->why;
    return (enum mq_rc)d->bad_rc;
}

static enum mq_rc truncated(const char **why)
{
    *why = "property truncated or not UTF-8";
    return MQ_RC_MALFORMED_PACKET;
}

/* Reads a string or binary value into its field and checks its limit. */
static enum mq_rc read_str_value(mq_codec__rd_t *r, const prop_def_t *d, mq_props_t *p,
                                 const char **why)
{
    mq_str_t *s = (mq_str_t *)((char *)p + d->off);
    if (!(d->type == PT_UTF8 ? read_utf8(r, s) : mq_codec__bin(r, s)))
        return truncated(why);
    if (d->limit == LIM_TOPIC && mq_topic_validate_name(s->ptr, s->len, why) != MQ_RC_SUCCESS) {
        *why = d->why;
        return (enum mq_rc)d->bad_rc;
    }
    return MQ_RC_SUCCESS;
}

/* Reads the value of property 'id' (row 'd') into *p. */
static enum mq_rc read_value(mq_codec__rd_t *r, uint8_t id, const prop_def_t *d, mq_props_t *p,
                             const char **why)
{
    if (d->type == PT_PAIR) { /* User Property: counted, kept in p->raw */
        mq_str_t k, v;
        if (!read_utf8(r, &k) || !read_utf8(r, &v))
            return truncated(why);
        p->n_user++;
        return MQ_RC_SUCCESS;
    }
    if (d->type == PT_UTF8 || d->type == PT_BIN)
        return read_str_value(r, d, p, why);
    uint32_t v;
    if (!read_num(r, d->type, &v)) {
        if (d->type != PT_BYTE)
            return truncated(why);
        *why = "property truncated";
        return MQ_RC_MALFORMED_PACKET;
    }
    enum mq_rc rc = check_num(d, v, why);
    if (rc != MQ_RC_SUCCESS)
        return rc;
    /* Subscription Identifier may repeat (server to client): keep the first, count them all */
    if (id != MQ_PROP_SUBSCRIPTION_ID || p->n_sub_ids++ == 0)
        store_num(p, d, v);
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
        enum mq_rc rc = read_value(&r, (uint8_t)id, &props_table[id], p, why);
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
    mq_str_t s;
    bool ok = mq_codec__varint(&r, &pid) && pid < MQ_ARRAY_LEN(props_table);
    if (ok) {
        switch (props_table[pid].type) {
        case PT_BYTE:
        case PT_U16:
        case PT_U32:
        case PT_VARINT:
            ok = read_num(&r, props_table[pid].type, &u32);
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

/* The entries of one property only, for mq_props_copy_raw. */
#define ONLY(id) (~(1ull << (id)))

/* Bytes of the value of property 'id' (its identifier not included). */
static size_t value_size(const mq_props_t *p, uint8_t id)
{
    const prop_def_t *d = &props_table[id];
    switch (d->type) {
    case PT_BYTE:
        return 1;
    case PT_U16:
        return 2;
    case PT_U32:
        return 4;
    case PT_VARINT:
        return mq_codec_varint_size(load_num(p, d));
    case PT_UTF8:
    case PT_BIN:
        return 2 + str_field(p, d)->len;
    default:
        MQ_ASSERT(0 && "no value for property");
    }
    return 0;
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
        n += mq_props_copy_raw(p, ONLY(MQ_PROP_SUBSCRIPTION_ID), NULL);
    }
    if (p->user) {
        for (uint32_t i = 0; i < p->n_user; i++)
            n += 1 + 2 + p->user[i].key.len + 2 + p->user[i].val.len;
    } else if (p->n_user > 0) {
        n += mq_props_copy_raw(p, ONLY(MQ_PROP_USER_PROPERTY), NULL);
    }
    return n;
}

bool mq_codec__props_fit(const mq_props_t *p)
{
    for (uint64_t bits = p->present; bits; bits &= bits - 1) {
        const prop_def_t *d = &props_table[__builtin_ctzll(bits)];
        if ((d->type == PT_UTF8 || d->type == PT_BIN) && str_field(p, d)->len > UINT16_MAX)
            return false;
        if (d->type == PT_VARINT && load_num(p, d) > MQ_CODEC_MAX_REMAINING)
            return false;
    }
    for (uint32_t i = 0; p->user && i < p->n_user; i++)
        if (p->user[i].key.len > UINT16_MAX || p->user[i].val.len > UINT16_MAX)
            return false;
    for (uint32_t i = 0; p->sub_ids && i < p->n_sub_ids; i++)
        if (p->sub_ids[i] > MQ_CODEC_MAX_REMAINING)
            return false;
    return true;
}

static uint8_t *put_value(uint8_t *o, const mq_props_t *p, uint8_t id)
{
    const prop_def_t *d = &props_table[id];
    *o++ = id;
    switch (d->type) {
    case PT_BYTE:
        *o++ = (uint8_t)load_num(p, d);
        return o;
    case PT_U16:
        return mq_codec__put_u16(o, (uint16_t)load_num(p, d));
    case PT_U32:
        return mq_codec__put_u32(o, load_num(p, d));
    case PT_VARINT:
        return o + mq_codec__write_varint(o, load_num(p, d));
    case PT_UTF8:
    case PT_BIN:
        return mq_codec__put_bin(o, *str_field(p, d));
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
    for (uint8_t i = 0; i < p->n_order; i++) { /* the caller's order first (the wire allows
                                                  any; peers that compare bytes do not) */
        uint8_t id = p->order[i];
        if (id < 64 && (bits >> id & 1) && id < MQ_ARRAY_LEN(props_table) &&
            props_table[id].type != PT_NONE) {
            o = put_value(o, p, id);
            bits &= ~(1ull << id);
        }
    }
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
        o += mq_props_copy_raw(p, ONLY(MQ_PROP_SUBSCRIPTION_ID), o);
    }
    if (p->user) {
        for (uint32_t i = 0; i < p->n_user; i++) {
            *o++ = MQ_PROP_USER_PROPERTY;
            o = mq_codec__put_bin(o, p->user[i].key);
            o = mq_codec__put_bin(o, p->user[i].val);
        }
    } else if (p->n_user > 0) {
        o += mq_props_copy_raw(p, ONLY(MQ_PROP_USER_PROPERTY), o);
    }
    return o;
}

size_t mq_props_write(const mq_props_t *p, uint8_t *out)
{
    return (size_t)(mq_codec__put_props(out, p) - out);
}

size_t mq_props_copy_raw(const mq_props_t *p, uint64_t drop, uint8_t *out)
{
    size_t pos = 0, total = 0;
    uint8_t id;
    mq_str_t e;
    while (next_entry(p, &pos, &id, &e)) {
        if (id < 64 && (drop >> id & 1))
            continue;
        if (out)
            memcpy(out + total, e.ptr, e.len);
        total += e.len;
    }
    return total;
}
