/* SPDX-License-Identifier: MIT */
/* core/msg.c - building and releasing shared messages; encoding their delivery variants. */
#include "core/msg.h"

#include <string.h>

#include "core/codec.h"
#include "core/mem.h"

/* The properties that do not travel with a message (a delivery adds its own). */
#define NOT_KEPT                                                                                   \
    (1ull << MQ_PROP_TOPIC_ALIAS | 1ull << MQ_PROP_SUBSCRIPTION_ID |                               \
     1ull << MQ_PROP_MESSAGE_EXPIRY | 1ull << MQ_PROP_WILL_DELAY)

/* Bytes of the kept properties of 'in' and, when 'out' is not NULL, the bytes themselves: a
 * decoded block is copied in the order it came ("unchanged and in order"), one built by the
 * caller is encoded. */
static size_t kept_props(const mq_props_t *in, uint8_t *out)
{
    if (in->raw.len > 0)
        return mq_props_copy_raw(in, NOT_KEPT, out);
    mq_props_t p = *in;
    p.present &= ~NOT_KEPT;
    p.n_sub_ids = 0;
    p.sub_ids = NULL;
    return out ? mq_props_write(&p, out) : mq_props_size(&p);
}

mq_msg_t *mq_msg_new(const char *topic, size_t topic_len, const void *payload, size_t payload_len,
                     uint8_t qos, bool retain)
{
    return mq_msg_new_props(topic, topic_len, payload, payload_len, qos, retain, NULL);
}

mq_msg_t *mq_msg_new_props(const char *topic, size_t topic_len, const void *payload,
                           size_t payload_len, uint8_t qos, bool retain, const mq_props_t *props)
{
    size_t rem = 2 + topic_len + payload_len;
    if (topic_len > 65535 || rem > MQ_CODEC_MAX_REMAINING)
        return NULL;
    size_t plen = props ? kept_props(props, NULL) : 0;
    if (plen > MQ_CODEC_MAX_REMAINING)
        return NULL;
    size_t hdr = 1 + mq_codec_varint_size((uint32_t)rem);
    mq_msg_t *m = mq_alloc(sizeof(*m) + hdr + rem + plen);
    atomic_init(&m->refs, 1);
    m->qos = qos;
    m->retain = retain;
    m->topic_len = (uint16_t)topic_len;
    m->payload_len = (uint32_t)payload_len;
    m->hdr_len = (uint32_t)hdr;
    m->wire_len = (uint32_t)(hdr + rem);
    m->props_len = (uint32_t)plen;
    m->origin = 0;
    m->expire_at = 0;
    memset(&m->retire, 0, sizeof(m->retire));
    m->src = NULL;
    if (plen)
        (void)kept_props(props, m->wire + m->wire_len);
    uint8_t *o = m->wire;
    *o++ = MQ_PUBLISH << 4;
    o += mq_codec_write_varint(o, (uint32_t)rem);
    *o++ = (uint8_t)(topic_len >> 8);
    *o++ = (uint8_t)topic_len;
    memcpy(o, topic, topic_len);
    if (payload_len)
        memcpy(o + topic_len, payload, payload_len);
    return m;
}

void mq_msg_unref(mq_msg_t *m)
{
    if (m == NULL)
        return;
    /* acq_rel: the releasing decrement publishes this thread's reads of the message before
     * the freeing thread (which acquires here) reuses the memory */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        mq_free(m->src);
        mq_free(m);
    }
}

void mq_msg_set_src(mq_msg_t *m, uint8_t domain, uint16_t port, mq_str_t client_id,
                    const mq_str_t *user)
{
    size_t ul = user ? user->len : 0;
    mq_msg_src_t *src = mq_alloc(sizeof(*src) + client_id.len + ul);
    src->domain = domain;
    src->port = port;
    src->has_user = user != NULL;
    src->id_len = (uint16_t)client_id.len;
    src->user_len = (uint16_t)ul;
    memcpy(src->bytes, client_id.ptr, client_id.len);
    if (ul)
        memcpy(src->bytes + client_id.len, user->ptr, ul);
    mq_free(m->src);
    m->src = src;
}

size_t mq_msg_publish_size(const mq_msg_t *m, uint8_t qos)
{
    if (qos == 0)
        return m->wire_len;
    uint32_t rem = m->wire_len - m->hdr_len + 2;
    return 1 + mq_codec_varint_size(rem) + rem;
}

size_t mq_msg_write_publish(const mq_msg_t *m, uint8_t qos, uint16_t packet_id, bool retain,
                            bool dup, uint8_t *out)
{
    uint8_t first =
        (uint8_t)(MQ_PUBLISH << 4 | (dup && qos ? 0x08 : 0) | qos << 1 | (retain ? 0x01 : 0));
    if (qos == 0) {
        memcpy(out, m->wire, m->wire_len);
        out[0] = first;
        return m->wire_len;
    }
    uint32_t rem = m->wire_len - m->hdr_len + 2;
    uint8_t *o = out;
    *o++ = first;
    o += mq_codec_write_varint(o, rem);
    const uint8_t *body = m->wire + m->hdr_len;
    memcpy(o, body, 2 + m->topic_len);
    o += 2 + m->topic_len;
    *o++ = (uint8_t)(packet_id >> 8);
    *o++ = (uint8_t)packet_id;
    memcpy(o, body + 2 + m->topic_len, m->payload_len);
    return (size_t)(o - out) + m->payload_len;
}

size_t mq_msg_publish_size_skip(const mq_msg_t *m, uint8_t qos, uint16_t skip)
{
    uint32_t rem = m->wire_len - m->hdr_len - skip + (qos ? 2 : 0);
    return 1 + mq_codec_varint_size(rem) + rem;
}

size_t mq_msg_write_publish_skip(const mq_msg_t *m, uint8_t qos, uint16_t packet_id, bool retain,
                                 bool dup, uint16_t skip, uint8_t *out)
{
    uint32_t rem = m->wire_len - m->hdr_len - skip + (qos ? 2 : 0);
    uint16_t tl = (uint16_t)(m->topic_len - skip);
    uint8_t *o = out;
    *o++ = (uint8_t)(MQ_PUBLISH << 4 | (dup && qos ? 0x08 : 0) | qos << 1 | (retain ? 0x01 : 0));
    o += mq_codec_write_varint(o, rem);
    *o++ = (uint8_t)(tl >> 8);
    *o++ = (uint8_t)tl;
    const uint8_t *body = m->wire + m->hdr_len;
    memcpy(o, body + 2 + skip, tl);
    o += tl;
    if (qos) {
        *o++ = (uint8_t)(packet_id >> 8);
        *o++ = (uint8_t)packet_id;
    }
    memcpy(o, body + 2 + m->topic_len, m->payload_len);
    return (size_t)(o - out) + m->payload_len;
}

/* Bytes of the v5 property block of a delivery, without its length prefix. */
static size_t props_size_v5(const mq_msg_t *m, const mq_msg_v5_t *x)
{
    size_t n = m->props_len;
    if (x->has_expiry)
        n += 5;
    for (uint32_t i = 0; i < x->n_sub_ids; i++)
        n += 1 + mq_codec_varint_size(x->sub_ids[i]);
    if (x->alias)
        n += 3;
    return n;
}

/* Remaining length of a v5 PUBLISH: topic, packet id, properties, payload. */
static size_t rem_v5(const mq_msg_t *m, uint8_t qos, const mq_msg_v5_t *x)
{
    size_t pl = props_size_v5(m, x);
    size_t topic = x->alias_only ? 0 : (size_t)(m->topic_len - x->skip);
    return 2 + topic + (qos ? 2 : 0) + mq_codec_varint_size((uint32_t)pl) + pl + m->payload_len;
}

size_t mq_msg_publish_size_v5(const mq_msg_t *m, uint8_t qos, const mq_msg_v5_t *x)
{
    size_t rem = rem_v5(m, qos, x);
    return 1 + mq_codec_varint_size((uint32_t)rem) + rem;
}

static uint8_t *put_props_v5(const mq_msg_t *m, const mq_msg_v5_t *x, uint8_t *o)
{
    o += mq_codec_write_varint(o, (uint32_t)props_size_v5(m, x));
    if (x->has_expiry) {
        *o++ = MQ_PROP_MESSAGE_EXPIRY;
        *o++ = (uint8_t)(x->expiry_left >> 24);
        *o++ = (uint8_t)(x->expiry_left >> 16);
        *o++ = (uint8_t)(x->expiry_left >> 8);
        *o++ = (uint8_t)x->expiry_left;
    }
    if (x->alias) {
        *o++ = MQ_PROP_TOPIC_ALIAS;
        *o++ = (uint8_t)(x->alias >> 8);
        *o++ = (uint8_t)x->alias;
    }
    for (uint32_t i = 0; i < x->n_sub_ids; i++) {
        *o++ = MQ_PROP_SUBSCRIPTION_ID;
        o += mq_codec_write_varint(o, x->sub_ids[i]);
    }
    memcpy(o, m->wire + m->wire_len, m->props_len);
    return o + m->props_len;
}

size_t mq_msg_write_publish_v5(const mq_msg_t *m, uint8_t qos, uint16_t packet_id, bool retain,
                               bool dup, const mq_msg_v5_t *x, uint8_t *out)
{
    uint8_t *o = out;
    *o++ = (uint8_t)(MQ_PUBLISH << 4 | (dup && qos ? 0x08 : 0) | qos << 1 | (retain ? 0x01 : 0));
    o += mq_codec_write_varint(o, (uint32_t)rem_v5(m, qos, x));
    uint16_t tl = x->alias_only ? 0 : (uint16_t)(m->topic_len - x->skip);
    *o++ = (uint8_t)(tl >> 8);
    *o++ = (uint8_t)tl;
    const uint8_t *body = m->wire + m->hdr_len;
    memcpy(o, body + 2 + x->skip, tl);
    o += tl;
    if (qos) {
        *o++ = (uint8_t)(packet_id >> 8);
        *o++ = (uint8_t)packet_id;
    }
    o = put_props_v5(m, x, o);
    memcpy(o, body + 2 + m->topic_len, m->payload_len);
    return (size_t)(o - out) + m->payload_len;
}
