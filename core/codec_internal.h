/* SPDX-License-Identifier: MIT */
/* core/codec_internal.h - byte readers/writers shared by the codec's decode, encode and props. */
#ifndef MQ_CORE_CODEC_INTERNAL_H
#define MQ_CORE_CODEC_INTERNAL_H

#include <string.h>

#include "core/codec.h"

/* A bounds-checked reader over one packet body (or property block). Every read returns
 * false when the bytes run out; the caller turns that into MQ_RC_MALFORMED_PACKET. */
typedef struct mq_codec__rd {
    const uint8_t *p;
    const uint8_t *end;
} mq_codec__rd_t;

static inline size_t mq_codec__left(const mq_codec__rd_t *r)
{
    return (size_t)(r->end - r->p);
}

static inline bool mq_codec__u8(mq_codec__rd_t *r, uint8_t *v)
{
    if (r->p >= r->end)
        return false;
    *v = *r->p++;
    return true;
}

static inline bool mq_codec__u16(mq_codec__rd_t *r, uint16_t *v)
{
    if (mq_codec__left(r) < 2)
        return false;
    *v = (uint16_t)(r->p[0] << 8 | r->p[1]);
    r->p += 2;
    return true;
}

static inline bool mq_codec__u32(mq_codec__rd_t *r, uint32_t *v)
{
    if (mq_codec__left(r) < 4)
        return false;
    *v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    return true;
}

/* Two-byte length + bytes, as a view (Binary Data, or a string before UTF-8 checks). */
static inline bool mq_codec__bin(mq_codec__rd_t *r, mq_str_t *s)
{
    uint16_t n;
    if (!mq_codec__u16(r, &n) || mq_codec__left(r) < n)
        return false;
    s->ptr = (const char *)r->p;
    s->len = n;
    r->p += n;
    return true;
}

static inline uint8_t *mq_codec__put_u16(uint8_t *o, uint16_t v)
{
    o[0] = (uint8_t)(v >> 8);
    o[1] = (uint8_t)v;
    return o + 2;
}

static inline uint8_t *mq_codec__put_u32(uint8_t *o, uint32_t v)
{
    o[0] = (uint8_t)(v >> 24);
    o[1] = (uint8_t)(v >> 16);
    o[2] = (uint8_t)(v >> 8);
    o[3] = (uint8_t)v;
    return o + 4;
}

static inline uint8_t *mq_codec__put_bin(uint8_t *o, mq_str_t s)
{
    o = mq_codec__put_u16(o, (uint16_t)s.len);
    if (s.len)
        memcpy(o, s.ptr, s.len);
    return o + s.len;
}

/* Variable Byte Integers (§1.5.5). The one definition: the codec files use these directly so
 * that none of them calls into another for them; core/codec_varint.c exports them under the
 * public names of codec.h. */

/* Reads in[0..len): returns the bytes read (1..4), 0 when more bytes are needed, -1 when
 * malformed (a fifth byte would be needed). */
static inline int mq_codec__read_varint(const uint8_t *in, size_t len, uint32_t *value)
{
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (i >= len)
            return 0;
        v |= (uint32_t)(in[i] & 0x7F) << (7 * i);
        if (!(in[i] & 0x80)) {
            *value = v;
            return (int)i + 1;
        }
    }
    return -1; /* [MQTT-1.5.5] at most four bytes */
}

/* Writes 'v' (<= MQ_CODEC_MAX_REMAINING) in the minimal encoding [MQTT-1.5.5-1]; returns the
 * bytes written. */
static inline size_t mq_codec__write_varint(uint8_t *out, uint32_t v)
{
    size_t n = 0;
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        out[n++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return n;
}

/* Reads a v5 Variable Byte Integer in the minimal encoding; false when short or malformed. */
static inline bool mq_codec__varint(mq_codec__rd_t *r, uint32_t *v)
{
    int n = mq_codec__read_varint(r->p, mq_codec__left(r), v);
    if (n <= 0)
        return false;
    if ((size_t)n != mq_codec_varint_size(*v)) /* [MQTT-1.5.5-1] minimal encoding */
        return false;
    r->p += n;
    return true;
}

/* True when 'p' can be written: every string and binary value within its two-byte length
 * prefix, every Subscription Identifier a Variable Byte Integer. */
bool mq_codec__props_fit(const mq_props_t *p);

/* Writes the property block of 'p' (without the length prefix) at 'o'; returns the end. */
uint8_t *mq_codec__put_props(uint8_t *o, const mq_props_t *p);

#endif
