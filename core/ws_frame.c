/* SPDX-License-Identifier: MIT */
/* core/ws_frame.c - WebSocket frames: incremental in-place decoder, header and close encoders. */
#include "core/ws.h"

#include <string.h>

#include "core/utf8.h"

enum { ST_HEADER = 0, ST_PAYLOAD = 1, ST_ENDED = 2 };

#define B0_FIN 0x80u
#define B0_RSV 0x70u
#define B1_MASK 0x80u

void mq_ws_decoder_init(mq_ws_decoder_t *d, uint64_t max_frame, uint32_t flags)
{
    memset(d, 0, sizeof(*d));
    d->max_frame = max_frame;
    d->flags = flags;
}

/* ---- encoding ---------------------------------------------------------------------------- */

size_t mq_ws_frame_header(uint8_t *out, enum mq_ws_opcode opcode, bool fin, uint64_t len,
                          const uint8_t *mask)
{
    size_t n = 2;
    out[0] = (uint8_t)((fin ? B0_FIN : 0) | (opcode & 0x0F));
    uint8_t m = mask ? B1_MASK : 0;
    if (len < 126) {
        out[1] = (uint8_t)(m | len);
    } else if (len <= 0xFFFF) {
        out[1] = (uint8_t)(m | 126);
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = (uint8_t)(m | 127);
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

/* Unmasks src[0..n) into dst[0..n) with the key at offset *pos, eight bytes at a time.
 * dst <= src is allowed (the decoder squeezes headers out that way): each step reads its
 * eight source bytes before writing, and writes only below the next unread byte. */
static void unmask_to(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4],
                      uint8_t *pos)
{
    unsigned p = *pos;
    uint8_t k[8];
    for (unsigned j = 0; j < 8; j++)
        k[j] = mask[(p + j) & 3];
    uint64_t k64;
    memcpy(&k64, k, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= k64;
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ mask[(p + i) & 3];
    *pos = (uint8_t)((p + n) & 3);
}

void mq_ws_mask(uint8_t *p, size_t len, const uint8_t mask[4], size_t offset)
{
    uint8_t pos = (uint8_t)(offset & 3);
    unmask_to(p, p, len, mask, &pos);
}

size_t mq_ws_encode_close(uint8_t *out, size_t cap, uint16_t code, mq_str_t reason)
{
    size_t rlen =
        code ? (reason.len > MQ_WS_MAX_CONTROL - 2 ? MQ_WS_MAX_CONTROL - 2 : reason.len) : 0;
    size_t plen = code ? 2 + rlen : 0;
    if (cap < 2 + plen)
        return 0;
    size_t n = mq_ws_frame_header(out, MQ_WS_OP_CLOSE, true, plen, NULL);
    if (code) {
        out[n++] = (uint8_t)(code >> 8);
        out[n++] = (uint8_t)code;
        if (rlen)
            memcpy(out + n, reason.ptr, rlen);
        n += rlen;
    }
    return n;
}

/* ---- decoding ---------------------------------------------------------------------------- */

static enum mq_ws_result fail(mq_ws_decoder_t *d, mq_ws_rx_t *rx, uint16_t code, const char *why)
{
    d->_state = ST_ENDED;
    rx->code = code;
    rx->why = why;
    rx->reply_len = (uint8_t)mq_ws_encode_close(rx->reply, sizeof(rx->reply), code, mq_str(why));
    return MQ_WS_FAIL;
}

/* Builds the answer to a control frame into rx->reply: a pong, or a close (unmasked from a
 * server; a client's is masked with a zero key, which only tools use). */
static void reply_control(const mq_ws_decoder_t *d, mq_ws_rx_t *rx, enum mq_ws_opcode op,
                          const uint8_t *payload, size_t len)
{
    static const uint8_t zero_key[4] = {0, 0, 0, 0};
    bool client = d->flags & MQ_WS_CLIENT;
    size_t n = mq_ws_frame_header(rx->reply, op, true, len, client ? zero_key : NULL);
    if (client && n + len > sizeof(rx->reply))
        len = sizeof(rx->reply) - n; /* a masked reply has 4 bytes less room: cut the echo */
    if (client)
        rx->reply[1] = (uint8_t)(B1_MASK | len);
    if (len)
        memcpy(rx->reply + n, payload, len);
    rx->reply_len = (uint8_t)(n + len);
}

/* Close codes a peer may send (RFC 6455 §7.4.1-2; 1012-1014 registered with IANA later). */
static bool close_code_ok(unsigned c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

static enum mq_ws_result end_control(mq_ws_decoder_t *d, mq_ws_rx_t *rx)
{
    if (d->_opcode == MQ_WS_OP_PING) {
        reply_control(d, rx, MQ_WS_OP_PONG, d->_ctl, d->_cn);
        return MQ_WS_OK;
    }
    if (d->_opcode == MQ_WS_OP_PONG)
        return MQ_WS_OK; /* unsolicited pongs are allowed and need no answer (§5.5.3) */
    /* close */
    if (d->_cn == 1)
        return fail(d, rx, MQ_WS_CLOSE_PROTOCOL_ERROR, "close payload of 1 byte");
    uint16_t code = MQ_WS_CLOSE_NO_STATUS;
    if (d->_cn >= 2) {
        code = (uint16_t)(d->_ctl[0] << 8 | d->_ctl[1]);
        if (!close_code_ok(code))
            return fail(d, rx, MQ_WS_CLOSE_PROTOCOL_ERROR, "invalid close code");
        if (!mq_utf8_is_valid(d->_ctl + 2, d->_cn - 2u))
            return fail(d, rx, MQ_WS_CLOSE_INVALID_DATA, "close reason not UTF-8");
    }
    d->_state = ST_ENDED;
    rx->code = code;
    /* echo the status code (§5.5.1), or send none when none came */
    reply_control(d, rx, MQ_WS_OP_CLOSE, d->_ctl, d->_cn >= 2 ? 2 : 0);
    return MQ_WS_CLOSED;
}

/* Checks what the first two header bytes decide, as soon as they are there, so that the
 * verdict does not depend on how the stream was split. */
static enum mq_ws_result check_start(mq_ws_decoder_t *d, mq_ws_rx_t *rx)
{
    uint8_t b0 = d->_hdr[0], b1 = d->_hdr[1];
    uint8_t op = b0 & 0x0F;
    bool fin = b0 & B0_FIN;
    if (b0 & B0_RSV)
        return fail(d, rx, MQ_WS_CLOSE_PROTOCOL_ERROR, "reserved bits set");
    if (op >= 0x8) {
        if (op > MQ_WS_OP_PONG)
            return fail(d, rx, MQ_WS_CLOSE_PROTOCOL_ERROR, "unknown control opcode");
        if (!fin)
            return fail(d, rx, MQ_WS_CLOSE_PROTOCOL_ERROR, "fragmented control frame");
        if ((b1 & 0x7F) > MQ_WS_MAX_CONTROL)
            return fail(d, rx, MQ_WS_CLOSE_PROTOCOL_ERROR, "control frame over 125 bytes");
    } else if (op > MQ_WS_OP_BINARY) {
        return fail(d, rx, MQ_WS_CLOSE_PROTOCOL_ERROR, "unknown data opcode");
    }
    bool client = d->flags & MQ_WS_CLIENT;
    if (!(b1 & B1_MASK) && !client)
        return fail(d, rx, MQ_WS_CLOSE_PROTOCOL_ERROR, "unmasked client frame"); /* §5.1 */
    if ((b1 & B1_MASK) && client)
        return fail(d, rx, MQ_WS_CLOSE_PROTOCOL_ERROR, "masked server frame");
    if (op == MQ_WS_OP_CONT && !d->_in_msg)
        return fail(d, rx, MQ_WS_CLOSE_PROTOCOL_ERROR, "continuation without a message");
    if ((op == MQ_WS_OP_TEXT || op == MQ_WS_OP_BINARY) && d->_in_msg)
        return fail(d, rx, MQ_WS_CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one");
    if (op == MQ_WS_OP_TEXT && !(d->flags & MQ_WS_ACCEPT_TEXT))
        return fail(d, rx, MQ_WS_CLOSE_UNSUPPORTED_DATA, "text frame"); /* [MQTT-6.0.0-1] */
    if (op < 0x8)
        d->_in_msg = !fin;
    d->_opcode = op;
    d->_masked = b1 & B1_MASK;
    return MQ_WS_OK;
}

/* Header bytes needed once the first two are known. */
static size_t header_need(const mq_ws_decoder_t *d)
{
    uint8_t l7 = d->_hdr[1] & 0x7F;
    return 2u + (l7 == 126 ? 2u : l7 == 127 ? 8u : 0u) + (d->_masked ? 4u : 0u);
}

/* Takes header bytes from in[0..len); returns how many. Sets *res on a verdict, and moves
 * to the payload once the header is complete. */
static size_t take_header(mq_ws_decoder_t *d, const uint8_t *in, size_t len, mq_ws_rx_t *rx,
                          enum mq_ws_result *res)
{
    size_t used = 0;
    bool started = d->_hn >= 2; /* check_start() ran in an earlier call */
    while (d->_hn < 2 && used < len)
        d->_hdr[d->_hn++] = in[used++];
    if (d->_hn < 2)
        return used;
    if (!started && (*res = check_start(d, rx)) != MQ_WS_OK)
        return used;
    size_t need = header_need(d);
    size_t n = need - d->_hn < len - used ? need - d->_hn : len - used;
    memcpy(d->_hdr + d->_hn, in + used, n);
    d->_hn = (uint8_t)(d->_hn + n);
    used += n;
    if (d->_hn < need)
        return used;

    uint8_t l7 = d->_hdr[1] & 0x7F;
    uint64_t plen = l7;
    size_t at = 2;
    if (l7 >= 126) {
        size_t nb = l7 == 126 ? 2 : 8;
        plen = 0;
        for (size_t i = 0; i < nb; i++)
            plen = plen << 8 | d->_hdr[at + i];
        at += nb;
        if (plen >> 63) {
            *res = fail(d, rx, MQ_WS_CLOSE_PROTOCOL_ERROR, "64-bit length with the top bit set");
            return used;
        }
    }
    if (d->max_frame && plen > d->max_frame) {
        *res = fail(d, rx, MQ_WS_CLOSE_TOO_BIG, "frame over the size limit");
        return used;
    }
    if (d->_masked)
        memcpy(d->_mask, d->_hdr + at, 4);
    d->_mask_pos = 0;
    d->_left = plen;
    d->_cn = 0;
    d->_hn = 0;
    d->_state = ST_PAYLOAD;
    return used;
}

/* Takes payload bytes at in[r..r+n): data goes to in[*w..], control payload to d->_ctl. */
static void take_payload(mq_ws_decoder_t *d, uint8_t *in, size_t r, size_t n, size_t *w)
{
    if (d->_opcode >= 0x8) {
        /* n <= 125 - _cn: the header check bounded the control payload */
        if (d->_masked)
            unmask_to(d->_ctl + d->_cn, in + r, n, d->_mask, &d->_mask_pos);
        else
            memcpy(d->_ctl + d->_cn, in + r, n);
        d->_cn = (uint8_t)(d->_cn + n);
    } else {
        if (d->_masked)
            unmask_to(in + *w, in + r, n, d->_mask, &d->_mask_pos);
        else if (*w != r)
            memmove(in + *w, in + r, n);
        *w += n;
    }
    d->_left -= n;
}

enum mq_ws_result mq_ws_decode(mq_ws_decoder_t *d, uint8_t *in, size_t len, mq_ws_rx_t *rx)
{
    MQ_ASSERT(d->_state != ST_ENDED); /* the caller closes after CLOSED or FAIL */
    rx->len = 0;
    rx->code = 0;
    rx->why = NULL;
    rx->reply_len = 0;
    enum mq_ws_result res = MQ_WS_OK;
    size_t r = 0, w = 0;
    while (res == MQ_WS_OK) {
        if (d->_state == ST_HEADER) {
            if (r == len)
                break;
            r += take_header(d, in + r, len - r, rx, &res);
            if (res != MQ_WS_OK || d->_state != ST_PAYLOAD)
                continue;
        }
        size_t n = d->_left < len - r ? (size_t)d->_left : len - r;
        take_payload(d, in, r, n, &w);
        r += n;
        if (d->_left > 0)
            break; /* r == len: the frame goes on in the next call */
        d->_state = ST_HEADER;
        if (d->_opcode >= 0x8)
            res = end_control(d, rx);
    }
    rx->len = w;
    return res;
}
