/* SPDX-License-Identifier: MIT */
/* core/codec_varint.c - the public names of the codec's Variable Byte Integer helpers. */
#include "core/codec.h"

#include "core/codec_internal.h"

int mq_codec_read_varint(const uint8_t *in, size_t len, uint32_t *value)
{
    return mq_codec__read_varint(in, len, value);
}

size_t mq_codec_write_varint(uint8_t *out, uint32_t v)
{
    return mq_codec__write_varint(out, v);
}
