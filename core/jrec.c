/* SPDX-License-Identifier: MIT */
/* core/jrec.c - persistence record payloads: encode into framed records, strict decode. */
#include "core/jrec.h"

#include <string.h>
#include <time.h>

#include "core/codec.h"
#include "core/msg.h"
#include "core/topic.h"
#include "core/utf8.h"

/* ---- writing: little-endian fields appended to the buffer -------------------------------- */

static void put_u8(mq_buf_t *b, uint8_t v)
{
    mq_buf_append(b, &v, 1);
}

static void put_le(mq_buf_t *b, uint64_t v, size_t n)
{
    uint8_t t[8];
    for (size_t i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    mq_buf_append(b, t, n);
}

static void put_s16(mq_buf_t *b, mq_str_t s)
{
    MQ_ASSERT(s.len <= UINT16_MAX);
    put_le(b, s.len, 2);
    mq_buf_append(b, s.ptr, s.len);
}

static void put_b32(mq_buf_t *b, mq_str_t s)
{
    MQ_ASSERT(s.len <= MQ_JOURNAL_MAX_LEN);
    put_le(b, s.len, 4);
    mq_buf_append(b, s.ptr, s.len);
}

/* ---- reading: a bounds-checked cursor; any short read makes the record malformed -------- */

typedef struct rd {
    const uint8_t *p, *end;
    bool ok; /* false once a read ran past the end */
} rd_t;

static uint64_t get_le(rd_t *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n) {
        r->ok = false;
        r->p = r->end;
        return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    return v;
}

static uint8_t get_u8(rd_t *r)
{
    return (uint8_t)get_le(r, 1);
}

static uint16_t get_u16(rd_t *r)
{
    return (uint16_t)get_le(r, 2);
}

static uint32_t get_u32(rd_t *r)
{
    return (uint32_t)get_le(r, 4);
}

static mq_str_t get_bytes(rd_t *r, size_t n)
{
    if (!r->ok || (size_t)(r->end - r->p) < n) {
        r->ok = false;
        r->p = r->end;
        return (mq_str_t){NULL, 0};
    }
    mq_str_t s = {(const char *)r->p, n};
    r->p += n;
    return s;
}

static mq_str_t get_s16(rd_t *r)
{
    return get_bytes(r, get_u16(r));
}

static mq_str_t get_b32(rd_t *r)
{
    return get_bytes(r, get_u32(r));
}

/* ---- encoding ---------------------------------------------------------------------------- */

static void put_msg_body(mq_buf_t *b, const mq_jrec_msg_t *m)
{
    put_s16(b, m->topic);
    put_b32(b, m->payload);
    put_b32(b, m->props);
}

static void encode_sess(mq_buf_t *b, const mq_jrec_sess_t *s)
{
    put_s16(b, s->client_id);
    put_u8(b, (uint8_t)(s->clean | s->has_username << 1 | s->has_will << 2 | s->will_retain << 3));
    put_u8(b, s->level);
    put_le(b, s->expiry_interval, 4);
    put_le(b, (uint64_t)s->disconnected_at, 8);
    put_s16(b, s->has_username ? s->username : (mq_str_t){NULL, 0});
    if (s->has_will) {
        put_u8(b, s->will.qos);
        put_le(b, s->will_delay, 4);
        put_msg_body(b, &s->will);
    }
}

static void encode_out(mq_buf_t *b, uint8_t type, const mq_jrec_out_t *o)
{
    put_s16(b, o->client_id);
    put_le(b, o->mid, 8);
    if (type == MQ_JREC_MSG_DEL)
        return;
    put_le(b, o->packet_id, 2);
    if (type == MQ_JREC_MSG_PUT)
        put_u8(b, o->msg.qos);
    put_u8(b, o->state);
    put_u8(b, o->flags);
    if (type == MQ_JREC_MSG_PUT) {
        put_le(b, (uint64_t)o->msg.expiry_at, 8);
        put_msg_body(b, &o->msg);
    }
}

static void encode_body(mq_buf_t *b, const mq_jrec_t *r)
{
    switch (r->type) {
    case MQ_JREC_FILE_HEADER:
        put_u8(b, r->header.version);
        put_u8(b, r->header.kind);
        put_le(b, r->header.worker, 2);
        put_le(b, r->header.n_workers, 2);
        put_le(b, r->header.generation, 8);
        put_le(b, (uint64_t)r->header.wall_time, 8);
        put_le(b, r->header.salt, 8);
        break;
    case MQ_JREC_SNAP_END:
        put_le(b, r->snap_end.generation, 8);
        put_le(b, r->snap_end.n_records, 8);
        break;
    case MQ_JREC_RETAIN_SET:
        put_le(b, r->retain.seq, 8);
        put_le(b, (uint64_t)r->retain.msg.expiry_at, 8);
        put_u8(b, r->retain.msg.qos);
        put_msg_body(b, &r->retain.msg);
        if (r->retain.src.present) {
            put_le(b, r->retain.src.port, 2);
            put_u8(b, r->retain.src.has_username);
            put_s16(b, r->retain.src.client_id);
            put_s16(b, r->retain.src.has_username ? r->retain.src.username : (mq_str_t){0});
        }
        break;
    case MQ_JREC_RETAIN_CLEAR:
        put_le(b, r->retain.seq, 8);
        put_s16(b, r->retain.msg.topic);
        break;
    case MQ_JREC_SESS_PUT:
        encode_sess(b, &r->sess);
        break;
    case MQ_JREC_SESS_DEL:
        put_s16(b, r->sess.client_id);
        break;
    case MQ_JREC_SUB_ADD:
    case MQ_JREC_SUB_DEL:
        put_s16(b, r->sub.client_id);
        put_s16(b, r->sub.filter);
        if (r->type == MQ_JREC_SUB_ADD) {
            put_u8(b, r->sub.options);
            put_le(b, r->sub.sub_id, 4);
        }
        break;
    case MQ_JREC_MSG_PUT:
    case MQ_JREC_MSG_UPDATE:
    case MQ_JREC_MSG_DEL:
        encode_out(b, r->type, &r->out);
        break;
    case MQ_JREC_QOS2_IN_ADD:
    case MQ_JREC_QOS2_IN_DEL:
        put_s16(b, r->qos2.client_id);
        put_le(b, r->qos2.packet_id, 2);
        break;
    default:
        MQ_ASSERT(!"unknown record type");
    }
}

size_t mq_jrec_encode(mq_buf_t *out, const mq_jrec_t *r, uint64_t salt)
{
    size_t start = mq_journal_begin(out, r->type);
    encode_body(out, r);
    mq_journal_end(out, start, r->type == MQ_JREC_FILE_HEADER ? 0 : salt);
    return start;
}

/* ---- decoding ---------------------------------------------------------------------------- */

#define BAD(msg)                                                                                   \
    do {                                                                                           \
        *why = (msg);                                                                              \
        return MQ_RC_MALFORMED_PACKET;                                                             \
    } while (0)

static bool utf8_ok(mq_str_t s)
{
    return mq_utf8_is_valid((const uint8_t *)s.ptr, s.len);
}

static enum mq_rc check_client_id(mq_str_t id, const char **why)
{
    if (id.len == 0 || !utf8_ok(id))
        BAD("client id empty or not UTF-8");
    return MQ_RC_SUCCESS;
}

static enum mq_rc check_topic(mq_str_t t, const char **why)
{
    if (!utf8_ok(t) || mq_topic_validate_name(t.ptr, t.len, NULL) != MQ_RC_SUCCESS)
        BAD("invalid topic name");
    return MQ_RC_SUCCESS;
}

/* Checks what the message fields of a record may hold; 'ctx' is the property context. */
static enum mq_rc check_msg(const mq_jrec_msg_t *m, enum mq_prop_ctx ctx, const char **why)
{
    if (m->qos > 2)
        BAD("QoS above 2");
    if (m->payload.len > MQ_CODEC_MAX_REMAINING)
        BAD("payload too large");
    if (check_topic(m->topic, why) != MQ_RC_SUCCESS)
        return MQ_RC_MALFORMED_PACKET;
    mq_props_t p;
    const char *pwhy = NULL;
    if (m->props.len > 0 && mq_props_decode(ctx, MQ_ROLE_SERVER, (const uint8_t *)m->props.ptr,
                                            m->props.len, &p, &pwhy) != MQ_RC_SUCCESS)
        BAD("invalid property block");
    return MQ_RC_SUCCESS;
}

static void get_msg_body(rd_t *r, mq_jrec_msg_t *m)
{
    m->topic = get_s16(r);
    m->payload = get_b32(r);
    m->props = get_b32(r);
}

static enum mq_rc decode_header(rd_t *r, mq_jrec_header_t *h, const char **why)
{
    h->version = get_u8(r);
    h->kind = get_u8(r);
    if (r->ok && h->version != MQ_JREC_VERSION && h->version != 1) {
        *why = "unsupported format version";
        return MQ_RC_UNSUPPORTED_PROTOCOL_VERSION;
    }
    h->worker = get_u16(r);
    h->n_workers = get_u16(r);
    h->generation = get_le(r, 8);
    h->wall_time = (int64_t)get_le(r, 8);
    h->salt = get_le(r, 8);
    if (h->kind < MQ_JREC_KIND_WORKER || h->kind > MQ_JREC_KIND_SNAPSHOT)
        BAD("unknown file kind");
    if (h->n_workers == 0 || h->worker >= h->n_workers ||
        (h->kind != MQ_JREC_KIND_WORKER && h->worker != 0))
        BAD("worker index out of range");
    return MQ_RC_SUCCESS;
}

static enum mq_rc decode_sess(rd_t *r, mq_jrec_sess_t *s, const char **why)
{
    s->client_id = get_s16(r);
    uint8_t flags = get_u8(r);
    s->level = get_u8(r);
    s->expiry_interval = get_u32(r);
    s->disconnected_at = (int64_t)get_le(r, 8);
    s->username = get_s16(r);
    s->clean = flags & 1;
    s->has_username = flags >> 1 & 1;
    s->has_will = flags >> 2 & 1;
    s->will_retain = flags >> 3 & 1;
    if (s->has_will) {
        s->will.qos = get_u8(r);
        s->will_delay = get_u32(r);
        get_msg_body(r, &s->will);
    }
    if (!r->ok)
        BAD("session record truncated");
    if (flags & 0xF0 || (!s->has_will && s->will_retain) || (!s->has_username && s->username.len))
        BAD("bad session flags");
    if (s->level < MQ_PROTO_31 || s->level > MQ_PROTO_5)
        BAD("bad protocol level");
    if (check_client_id(s->client_id, why) != MQ_RC_SUCCESS)
        return MQ_RC_MALFORMED_PACKET;
    if (s->has_username && !utf8_ok(s->username))
        BAD("username not UTF-8");
    if (s->has_will)
        return check_msg(&s->will, MQ_PCTX_WILL, why);
    return MQ_RC_SUCCESS;
}

static enum mq_rc decode_sub(rd_t *r, uint8_t type, mq_jrec_sub_t *s, const char **why)
{
    s->client_id = get_s16(r);
    s->filter = get_s16(r);
    if (type == MQ_JREC_SUB_ADD) {
        s->options = get_u8(r);
        s->sub_id = get_u32(r);
    }
    if (!r->ok)
        BAD("subscription record truncated");
    if (check_client_id(s->client_id, why) != MQ_RC_SUCCESS)
        return MQ_RC_MALFORMED_PACKET;
    if (!utf8_ok(s->filter) ||
        mq_topic_validate_filter(s->filter.ptr, s->filter.len, NULL) != MQ_RC_SUCCESS)
        BAD("invalid topic filter");
    if ((s->options & MQ_JREC_SUBOPT_QOS) == 3 || s->options >> MQ_JREC_SUBOPT_RH_SHIFT > 2)
        BAD("bad subscription options"); /* [MQTT-3.8.3-4], [MQTT-3.8.3-5] */
    if (s->sub_id > MQ_CODEC_MAX_REMAINING)
        BAD("subscription identifier out of range");
    return MQ_RC_SUCCESS;
}

static enum mq_rc decode_out(rd_t *r, uint8_t type, mq_jrec_out_t *o, const char **why)
{
    o->client_id = get_s16(r);
    o->mid = get_le(r, 8);
    if (type != MQ_JREC_MSG_DEL) {
        o->packet_id = get_u16(r);
        if (type == MQ_JREC_MSG_PUT)
            o->msg.qos = get_u8(r);
        o->state = get_u8(r);
        o->flags = get_u8(r);
    }
    if (type == MQ_JREC_MSG_PUT) {
        o->msg.expiry_at = (int64_t)get_le(r, 8);
        get_msg_body(r, &o->msg);
    }
    if (!r->ok)
        BAD("message record truncated");
    if (check_client_id(o->client_id, why) != MQ_RC_SUCCESS)
        return MQ_RC_MALFORMED_PACKET;
    if (o->state > 1 || o->flags & ~(MQ_JREC_MSG_RETAIN | MQ_JREC_MSG_DUP))
        BAD("bad message state or flags");
    if (o->state == 1 && o->packet_id == 0)
        BAD("PUBREL state without a packet id");
    if (type != MQ_JREC_MSG_PUT)
        return MQ_RC_SUCCESS;
    if (o->state == 1 && o->msg.qos != 2)
        BAD("PUBREL state below QoS 2");
    if (o->packet_id != 0 && o->msg.qos == 0)
        BAD("packet id at QoS 0");
    return check_msg(&o->msg, MQ_PCTX_PUBLISH, why);
}

/* The publisher after a RETAIN_SET's message (version 2). */
static enum mq_rc decode_src(rd_t *r, mq_jrec_retain_t *o, const char **why)
{
    mq_jrec_src_t *s = &o->src;
    s->present = true;
    s->port = get_u16(r);
    uint8_t has = get_u8(r);
    s->client_id = get_s16(r);
    s->username = get_s16(r);
    if (!r->ok)
        return MQ_RC_SUCCESS; /* reported as truncated */
    if (has > 1)
        BAD("bad publisher flags");
    s->has_username = has;
    if (!has && s->username.len)
        BAD("a user name without its flag");
    if (check_client_id(s->client_id, why) != MQ_RC_SUCCESS)
        return MQ_RC_MALFORMED_PACKET;
    if (!utf8_ok(s->username))
        BAD("user name not UTF-8");
    return check_msg(&o->msg, MQ_PCTX_PUBLISH, why);
}

static enum mq_rc decode_body(rd_t *r, uint8_t type, mq_jrec_t *o, const char **why)
{
    switch (type) {
    case MQ_JREC_FILE_HEADER:
        return decode_header(r, &o->header, why);
    case MQ_JREC_SNAP_END:
        o->snap_end.generation = get_le(r, 8);
        o->snap_end.n_records = get_le(r, 8);
        return MQ_RC_SUCCESS;
    case MQ_JREC_RETAIN_SET:
        o->retain.seq = get_le(r, 8);
        o->retain.msg.expiry_at = (int64_t)get_le(r, 8);
        o->retain.msg.qos = get_u8(r);
        get_msg_body(r, &o->retain.msg);
        if (r->ok && r->p != r->end)
            return decode_src(r, &o->retain, why);
        return r->ok ? check_msg(&o->retain.msg, MQ_PCTX_PUBLISH, why) : MQ_RC_SUCCESS;
    case MQ_JREC_RETAIN_CLEAR:
        o->retain.seq = get_le(r, 8);
        o->retain.msg.topic = get_s16(r);
        return r->ok ? check_topic(o->retain.msg.topic, why) : MQ_RC_SUCCESS;
    case MQ_JREC_SESS_PUT:
        return decode_sess(r, &o->sess, why);
    case MQ_JREC_SESS_DEL:
        o->sess.client_id = get_s16(r);
        return r->ok ? check_client_id(o->sess.client_id, why) : MQ_RC_SUCCESS;
    case MQ_JREC_SUB_ADD:
    case MQ_JREC_SUB_DEL:
        return decode_sub(r, type, &o->sub, why);
    case MQ_JREC_MSG_PUT:
    case MQ_JREC_MSG_UPDATE:
    case MQ_JREC_MSG_DEL:
        return decode_out(r, type, &o->out, why);
    case MQ_JREC_QOS2_IN_ADD:
    case MQ_JREC_QOS2_IN_DEL:
        o->qos2.client_id = get_s16(r);
        o->qos2.packet_id = get_u16(r);
        if (r->ok && o->qos2.packet_id == 0)
            BAD("packet id 0");
        return r->ok ? check_client_id(o->qos2.client_id, why) : MQ_RC_SUCCESS;
    default:
        BAD("unknown record type");
    }
}

enum mq_rc mq_jrec_decode(uint8_t type, mq_str_t payload, mq_jrec_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    out->type = type;
    rd_t r = {(const uint8_t *)payload.ptr, (const uint8_t *)payload.ptr + payload.len, true};
    enum mq_rc rc = decode_body(&r, type, out, why);
    if (rc != MQ_RC_SUCCESS)
        return rc;
    if (!r.ok)
        BAD("record truncated");
    if (r.p != r.end)
        BAD("trailing bytes in record");
    return MQ_RC_SUCCESS;
}

mq_str_t mq_jrec_client_id(const mq_jrec_t *r)
{
    switch (r->type) {
    case MQ_JREC_SESS_PUT:
    case MQ_JREC_SESS_DEL:
        return r->sess.client_id;
    case MQ_JREC_SUB_ADD:
    case MQ_JREC_SUB_DEL:
        return r->sub.client_id;
    case MQ_JREC_MSG_PUT:
    case MQ_JREC_MSG_UPDATE:
    case MQ_JREC_MSG_DEL:
        return r->out.client_id;
    case MQ_JREC_QOS2_IN_ADD:
    case MQ_JREC_QOS2_IN_DEL:
        return r->qos2.client_id;
    default:
        return (mq_str_t){NULL, 0};
    }
}

const char *mq_jrec_type_str(uint8_t type)
{
    static const char *const names[] = {
        [MQ_JREC_FILE_HEADER] = "FILE_HEADER", [MQ_JREC_SNAP_END] = "SNAP_END",
        [MQ_JREC_RETAIN_SET] = "RETAIN_SET",   [MQ_JREC_RETAIN_CLEAR] = "RETAIN_CLEAR",
        [MQ_JREC_SESS_PUT] = "SESS_PUT",       [MQ_JREC_SESS_DEL] = "SESS_DEL",
        [MQ_JREC_SUB_ADD] = "SUB_ADD",         [MQ_JREC_SUB_DEL] = "SUB_DEL",
        [MQ_JREC_MSG_PUT] = "MSG_PUT",         [MQ_JREC_MSG_UPDATE] = "MSG_UPDATE",
        [MQ_JREC_MSG_DEL] = "MSG_DEL",         [MQ_JREC_QOS2_IN_ADD] = "QOS2_IN_ADD",
        [MQ_JREC_QOS2_IN_DEL] = "QOS2_IN_DEL",
    };
    return type < MQ_ARRAY_LEN(names) && names[type] ? names[type] : "?";
}

uint64_t mq_jrec_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

mq_jrec_src_t mq_jrec_src_of(const mq_msg_t *m)
{
    const mq_msg_src_t *src = m->src;
    if (src == NULL)
        return (mq_jrec_src_t){0};
    return (mq_jrec_src_t){.present = true,
                           .has_username = src->has_user,
                           .port = src->port,
                           .client_id = {src->bytes, src->id_len},
                           .username = {src->bytes + src->id_len, src->user_len}};
}
