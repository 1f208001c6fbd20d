/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_ws_frame.c - libFuzzer target for the in-place WebSocket frame decoder.
 *
 * Input: byte 0 picks the decoder flags (bit 0 MQ_WS_CLIENT, bit 1 MQ_WS_ACCEPT_TEXT) and the
 * chunk size the stream is fed in (bits 2-7, 1..64 bytes); byte 1 the frame size limit
 * (0 = none, else n * 16 bytes); the rest is the byte stream. Checked on every input:
 *  - no out-of-bounds access or undefined behaviour (ASan/UBSan), even though the decoder
 *    writes into the buffer it reads;
 *  - fed whole and fed in chunks, the same MQTT bytes come out, with the same verdict,
 *    close code and closing reply;
 *  - every call returns at most as many bytes as it was given, every failure says why, and
 *    every end of the stream answers with a close frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ws.h"

typedef struct trace {
    uint8_t *data;
    size_t len;
    enum mq_ws_result res;
    uint16_t code;
    uint8_t reply_len;
    uint8_t reply[MQ_WS_MAX_REPLY];
} trace_t;

static void run(const uint8_t *in, size_t len, uint32_t flags, uint64_t max, size_t chunk,
                trace_t *t)
{
    mq_ws_decoder_t d;
    mq_ws_decoder_init(&d, max, flags);
    memset(t, 0, sizeof(*t));
    t->data = malloc(len + 1);
    uint8_t *piece = malloc(chunk + 1);
    if (!t->data || !piece)
        abort();
    for (size_t off = 0; off < len;) {
        size_t n = len - off < chunk ? len - off : chunk;
        memcpy(piece, in + off, n); /* a received buffer of exactly n bytes */
        mq_ws_rx_t rx;
        t->res = mq_ws_decode(&d, piece, n, &rx);
        if (rx.len > n || rx.reply_len > MQ_WS_MAX_REPLY)
            abort();
        memcpy(t->data + t->len, piece, rx.len);
        t->len += rx.len;
        off += n;
        if (t->res == MQ_WS_OK)
            continue;
        if ((t->res == MQ_WS_FAIL && !rx.why) || rx.reply_len < 2 || rx.reply[0] != 0x88)
            abort();
        t->code = rx.code;
        t->reply_len = rx.reply_len;
        memcpy(t->reply, rx.reply, rx.reply_len);
        break;
    }
    free(piece);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t flags = data[0] & 3u;
    size_t chunk = 1 + (data[0] >> 2);
    uint64_t max = (uint64_t)data[1] * 16;
    trace_t whole, pieces;
    run(data + 2, size - 2, flags, max, size, &whole);
    run(data + 2, size - 2, flags, max, chunk, &pieces);
    if (whole.res != pieces.res || whole.len != pieces.len || whole.code != pieces.code ||
        whole.reply_len != pieces.reply_len)
        abort();
    if (memcmp(whole.data, pieces.data, whole.len) != 0 ||
        memcmp(whole.reply, pieces.reply, whole.reply_len) != 0)
        abort();
    free(whole.data);
    free(pieces.data);
    return 0;
}
