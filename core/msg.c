/* SPDX-License-Identifier: MIT */
/* core/msg.c - building and releasing shared messages; encoding their delivery variants. */
#include "core/msg.h"

#include <string.h>

#include "core/codec.h"
#include "core/mem.h"

mq_msg_t *mq_msg_new(const char *topic, size_t topic_len, const void *payload, size_t payload_len,
                     uint8_t qos, bool retain)
{
    size_t rem = 2 + topic_len + payload_len;
    if (topic_len > 65535 || rem > MQ_CODEC_MAX_REMAINING)
        return NULL;
    size_t hdr = 1 + mq_codec_varint_size((uint32_t)rem);
    mq_msg_t *m = mq_alloc(sizeof(*m) + hdr + rem);
    atomic_init(&m->refs, 1);
    m->qos = qos;
    m->retain = retain;
    m->topic_len = (uint16_t)topic_len;
    m->payload_len = (uint32_t)payload_len;
    m->hdr_len = (uint32_t)hdr;
    m->wire_len = (uint32_t)(hdr + rem);
    memset(&m->retire, 0, sizeof(m->retire));
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
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        mq_free(m);
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
