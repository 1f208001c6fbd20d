/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_ws.c - WebSocket frames and the upgrade request, under every chunking. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/ws.h"

#include "support/support.h"

static const uint8_t key4[4] = {0x37, 0xfa, 0x21, 0x3d}; /* the masking key of RFC 6455 §5.7 */

/* Appends one frame to out at *n: header, then the payload masked with 'mask' (or not). */
static void put_frame(uint8_t *out, size_t *n, enum mq_ws_opcode op, bool fin, const void *payload,
                      size_t len, const uint8_t *mask)
{
    *n += mq_ws_frame_header(out + *n, op, fin, len, mask);
    if (len)
        memcpy(out + *n, payload, len);
    if (mask)
        mq_ws_mask(out + *n, len, mask, 0);
    *n += len;
}

/* Everything a decoder produced for one stream. */
typedef struct outcome {
    uint8_t *data; /* the MQTT bytes, concatenated over the calls */
    size_t len;
    enum mq_ws_result res;
    uint16_t code;
    const char *why;
    unsigned n_replies;
    uint8_t reply[MQ_WS_MAX_REPLY]; /* the last reply */
    uint8_t reply_len;
} outcome_t;

/* Feeds in[0..n) in pieces cut at 'cuts' (ascending offsets, 'n_cuts' of them) or, when
 * 'step' > 0, in pieces of 'step' bytes. Each piece is copied into its own buffer first, as
 * a received buffer would be, since the decoder works in place. */
static void run(uint32_t flags, uint64_t max, const uint8_t *in, size_t n, size_t step,
                const size_t *cuts, size_t n_cuts, outcome_t *o)
{
    mq_ws_decoder_t d;
    mq_ws_decoder_init(&d, max, flags);
    memset(o, 0, sizeof(*o));
    o->data = malloc(n + 1);
    o->res = MQ_WS_OK;
    size_t off = 0, ci = 0;
    while (off < n) {
        size_t end = step ? (n - off > step ? off + step : n) : (ci < n_cuts ? cuts[ci++] : n);
        uint8_t *piece = malloc(end - off + 1);
        memcpy(piece, in + off, end - off);
        mq_ws_rx_t rx;
        o->res = mq_ws_decode(&d, piece, end - off, &rx);
        cr_assert(le(sz, rx.len, end - off));
        memcpy(o->data + o->len, piece, rx.len);
        o->len += rx.len;
        if (rx.reply_len) {
            o->n_replies++;
            memcpy(o->reply, rx.reply, rx.reply_len);
            o->reply_len = rx.reply_len;
        }
        free(piece);
        off = end;
        if (o->res != MQ_WS_OK) {
            o->code = rx.code;
            o->why = rx.why;
            break;
        }
    }
}

/* The same stream must give the same bytes and verdict whole, byte by byte, and cut at
 * every offset (and at every pair of offsets when 'pairs'). */
static void expect_all_chunkings(uint32_t flags, uint64_t max, const uint8_t *in, size_t n,
                                 const outcome_t *want, bool pairs)
{
    outcome_t o;
    for (size_t step = 1; step <= 3; step++) {
        run(flags, max, in, n, step, NULL, 0, &o);
        cr_assert(eq(int, o.res, want->res), "step %zu", step);
        cr_assert(eq(sz, o.len, want->len), "step %zu", step);
        cr_assert(o.len == 0 || memcmp(o.data, want->data, o.len) == 0, "step %zu", step);
        cr_assert(eq(u16, o.code, want->code), "step %zu", step);
        free(o.data);
    }
    for (size_t k = 1; k < n; k++) {
        for (size_t j = pairs ? k + 1 : n; j <= n; j++) {
            size_t cuts[2] = {k, j};
            run(flags, max, in, n, 0, cuts, 2, &o);
            cr_assert(eq(int, o.res, want->res), "cut at %zu, %zu", k, j);
            cr_assert(eq(sz, o.len, want->len), "cut at %zu, %zu", k, j);
            cr_assert(o.len == 0 || memcmp(o.data, want->data, o.len) == 0, "cut at %zu, %zu", k,
                      j);
            cr_assert(eq(u16, o.code, want->code), "cut at %zu, %zu", k, j);
            free(o.data);
        }
    }
}

/* ---- frame encoding ---------------------------------------------------------------------- */

Test(ws, frame_headers_match_rfc_6455_examples)
{
    uint8_t h[MQ_WS_MAX_HEADER], want[16];
    size_t n = mq_ws_frame_header(h, MQ_WS_OP_TEXT, true, 5, NULL);
    cr_expect(eq(sz, n, 2));
    cr_expect(memcmp(h, ((uint8_t[]){0x81, 0x05}), 2) == 0);
    n = mq_ws_frame_header(h, MQ_WS_OP_TEXT, true, 5, key4);
    cr_expect(eq(sz, mqt_hex("81 85 37 fa 21 3d", want, sizeof(want)), n));
    cr_expect(memcmp(h, want, n) == 0, "masked header");
    n = mq_ws_frame_header(h, MQ_WS_OP_TEXT, false, 3, NULL);
    cr_expect(memcmp(h, ((uint8_t[]){0x01, 0x03}), 2) == 0, "first fragment has FIN clear");
    n = mq_ws_frame_header(h, MQ_WS_OP_BINARY, true, 256, NULL);
    cr_expect(eq(sz, n, 4));
    cr_expect(memcmp(h, ((uint8_t[]){0x82, 0x7E, 0x01, 0x00}), 4) == 0, "16-bit length");
    n = mq_ws_frame_header(h, MQ_WS_OP_BINARY, true, 65536, NULL);
    cr_expect(eq(sz, n, 10));
    cr_expect(memcmp(h, ((uint8_t[]){0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}), 10) == 0,
              "64-bit length");
    n = mq_ws_frame_header(h, MQ_WS_OP_BINARY, true, 65535, NULL);
    cr_expect(memcmp(h, ((uint8_t[]){0x82, 0x7E, 0xFF, 0xFF}), 4) == 0, "65535 still fits 16 bits");
    cr_expect(eq(sz, mq_ws_header_size(125, false), 2));
    cr_expect(eq(sz, mq_ws_header_size(126, false), 4));
    cr_expect(eq(sz, mq_ws_header_size(65536, true), 14));
}

Test(ws, masking_resumes_at_any_key_offset)
{
    uint8_t a[37], b[37];
    for (size_t i = 0; i < sizeof(a); i++)
        a[i] = b[i] = (uint8_t)(i * 7);
    mq_ws_mask(a, sizeof(a), key4, 0);
    mq_ws_mask(b, 5, key4, 0);
    mq_ws_mask(b + 5, 11, key4, 5);
    mq_ws_mask(b + 16, 21, key4, 16);
    cr_expect(memcmp(a, b, 37) == 0);
    uint8_t hello[5] = "Hello", want[5];
    mq_ws_mask(hello, 5, key4, 0);
    mqt_hex("7f 9f 4d 51 58", want, sizeof(want));
    cr_expect(memcmp(hello, want, 5) == 0, "RFC 6455 §5.7 masked \"Hello\"");
}

Test(ws, close_frames_carry_the_code_and_a_reason_cut_to_fit)
{
    uint8_t out[MQ_WS_MAX_REPLY];
    size_t n = mq_ws_encode_close(out, sizeof(out), 1000, MQ_STR_LIT("bye"));
    cr_expect(eq(sz, n, 7));
    cr_expect(memcmp(out, ((uint8_t[]){0x88, 0x05, 0x03, 0xE8, 'b', 'y', 'e'}), 7) == 0);
    char big[300];
    memset(big, 'x', sizeof(big));
    n = mq_ws_encode_close(out, sizeof(out), 1009, (mq_str_t){big, sizeof(big)});
    cr_expect(eq(sz, n, MQ_WS_MAX_REPLY), "a control payload stays within 125 bytes");
    cr_expect(eq(u8, out[1], 125));
    n = mq_ws_encode_close(out, sizeof(out), 0, MQ_STR_LIT("ignored"));
    cr_expect(eq(sz, n, 2), "code 0: no status, no reason");
    cr_expect(eq(sz, mq_ws_encode_close(out, 5, 1000, MQ_STR_LIT("bye")), 0), "too small");
}

/* ---- frame decoding ---------------------------------------------------------------------- */

Test(ws, decodes_rfc_masked_hello_in_place_when_text_is_accepted)
{
    uint8_t in[16];
    size_t n = mqt_hex("81 85 37 fa 21 3d 7f 9f 4d 51 58", in, sizeof(in));
    mq_ws_decoder_t d;
    mq_ws_decoder_init(&d, 0, MQ_WS_ACCEPT_TEXT);
    mq_ws_rx_t rx;
    cr_assert(eq(int, mq_ws_decode(&d, in, n, &rx), MQ_WS_OK));
    cr_expect(eq(sz, rx.len, 5));
    cr_expect(memcmp(in, "Hello", 5) == 0, "payload unmasked and moved to the front");
    cr_expect(eq(u8, rx.reply_len, 0));
}

/* A stream a browser could send: a packet spread over a fragmented message with a ping in
 * the middle, a frame with several packets, 16-bit and 64-bit lengths, an empty frame. */
static size_t build_mixed_stream(uint8_t *out, uint8_t *data, size_t *data_len, size_t big)
{
    static const uint8_t k2[4] = {0x01, 0x02, 0x03, 0xFF};
    uint8_t connect[] = {0x10, 0x0C, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0};
    uint8_t pings[] = {0xC0, 0x00, 0xC0, 0x00, 0xC0, 0x00};
    size_t n = 0, dl = 0;
    put_frame(out, &n, MQ_WS_OP_BINARY, false, connect, 3, key4);
    put_frame(out, &n, MQ_WS_OP_PING, true, "abc", 3, k2);
    put_frame(out, &n, MQ_WS_OP_CONT, false, connect + 3, 5, k2);
    put_frame(out, &n, MQ_WS_OP_CONT, false, NULL, 0, key4);
    put_frame(out, &n, MQ_WS_OP_CONT, true, connect + 8, sizeof(connect) - 8, key4);
    memcpy(data + dl, connect, sizeof(connect));
    dl += sizeof(connect);
    put_frame(out, &n, MQ_WS_OP_BINARY, true, pings, sizeof(pings), k2);
    memcpy(data + dl, pings, sizeof(pings));
    dl += sizeof(pings);
    put_frame(out, &n, MQ_WS_OP_PONG, true, "", 0, key4);
    uint8_t *mid = data + dl;
    for (size_t i = 0; i < 300; i++)
        mid[i] = (uint8_t)(i * 13 + 1);
    put_frame(out, &n, MQ_WS_OP_BINARY, true, mid, 300, key4);
    dl += 300;
    if (big) {
        uint8_t *b = data + dl;
        for (size_t i = 0; i < big; i++)
            b[i] = (uint8_t)(i ^ (i >> 8));
        put_frame(out, &n, MQ_WS_OP_BINARY, true, b, big, k2);
        dl += big;
    }
    *data_len = dl;
    return n;
}

Test(ws, yields_the_mqtt_stream_under_every_split)
{
    static uint8_t in[512], data[512];
    size_t dl, n = build_mixed_stream(in, data, &dl, 0);
    outcome_t want = {.data = data, .len = dl, .res = MQ_WS_OK};
    outcome_t whole;
    run(0, 0, in, n, 0, NULL, 0, &whole);
    cr_assert(eq(int, whole.res, MQ_WS_OK), "%s", whole.why ? whole.why : "");
    cr_assert(eq(sz, whole.len, dl));
    cr_assert(memcmp(whole.data, data, dl) == 0);
    cr_expect(eq(u32, whole.n_replies, 1), "one pong");
    cr_expect(memcmp(whole.reply, ((uint8_t[]){0x8A, 0x03, 'a', 'b', 'c'}), 5) == 0,
              "the pong echoes the ping's payload, unmasked");
    free(whole.data);
    expect_all_chunkings(0, 0, in, n, &want, true);
}

Test(ws, takes_16_and_64_bit_lengths_whole_and_byte_by_byte)
{
    size_t big = 70000;
    uint8_t *in = malloc(big + 1024), *data = malloc(big + 1024);
    size_t dl, n = build_mixed_stream(in, data, &dl, big);
    outcome_t o;
    for (size_t step = 0; step <= 1; step++) {
        run(0, 0, in, n, step, NULL, 0, &o);
        cr_assert(eq(int, o.res, MQ_WS_OK), "%s", o.why ? o.why : "");
        cr_assert(eq(sz, o.len, dl));
        cr_assert(memcmp(o.data, data, dl) == 0, "step %zu", step);
        free(o.data);
    }
    run(0, 65536, in, n, 0, NULL, 0, &o);
    cr_expect(eq(int, o.res, MQ_WS_FAIL), "70000 bytes is over a 65536-byte limit");
    cr_expect(eq(u16, o.code, MQ_WS_CLOSE_TOO_BIG));
    cr_expect(eq(sz, o.len, dl - big), "the frames before it still come through");
    free(o.data);
    run(0, 70000, in, n, 0, NULL, 0, &o);
    cr_expect(eq(int, o.res, MQ_WS_OK), "the limit itself is allowed");
    free(o.data);
    free(in);
    free(data);
}

Test(ws, answers_a_close_by_echoing_its_code_after_delivering_what_came_before)
{
    uint8_t in[64], payload[] = {0x03, 0xE8, 'b', 'y', 'e'};
    size_t n = 0;
    put_frame(in, &n, MQ_WS_OP_BINARY, true, "\xE0\x00", 2, key4);
    put_frame(in, &n, MQ_WS_OP_CLOSE, true, payload, sizeof(payload), key4);
    size_t before = n;
    put_frame(in, &n, MQ_WS_OP_BINARY, true, "zz", 2, key4); /* after the close: ignored */
    outcome_t want = {.data = (uint8_t *)"\xE0\x00", .len = 2, .res = MQ_WS_CLOSED, .code = 1000};
    outcome_t o;
    run(0, 0, in, n, 0, NULL, 0, &o);
    cr_assert(eq(int, o.res, MQ_WS_CLOSED));
    cr_expect(eq(u16, o.code, 1000));
    cr_expect(eq(sz, o.len, 2));
    cr_expect(eq(u8, o.reply_len, 4));
    cr_expect(memcmp(o.reply, ((uint8_t[]){0x88, 0x02, 0x03, 0xE8}), 4) == 0);
    free(o.data);
    expect_all_chunkings(0, 0, in, before, &want, false);

    n = 0;
    put_frame(in, &n, MQ_WS_OP_CLOSE, true, NULL, 0, key4);
    run(0, 0, in, n, 0, NULL, 0, &o);
    cr_expect(eq(int, o.res, MQ_WS_CLOSED));
    cr_expect(eq(u16, o.code, MQ_WS_CLOSE_NO_STATUS), "an empty close reports 1005");
    cr_expect(memcmp(o.reply, ((uint8_t[]){0x88, 0x00}), 2) == 0, "and is answered without a code");
    free(o.data);
}

Test(ws, answers_only_the_last_of_several_pings_in_one_call)
{
    uint8_t in[64];
    size_t n = 0;
    put_frame(in, &n, MQ_WS_OP_PING, true, "1", 1, key4);
    put_frame(in, &n, MQ_WS_OP_PING, true, "22", 2, key4);
    mq_ws_decoder_t d;
    mq_ws_decoder_init(&d, 0, 0);
    mq_ws_rx_t rx;
    cr_assert(eq(int, mq_ws_decode(&d, in, n, &rx), MQ_WS_OK));
    cr_expect(eq(sz, rx.len, 0));
    cr_expect(eq(u8, rx.reply_len, 4));
    cr_expect(memcmp(rx.reply, ((uint8_t[]){0x8A, 0x02, '2', '2'}), 4) == 0);
}

Test(ws, a_client_decoder_takes_unmasked_server_frames)
{
    uint8_t in[32];
    size_t n = 0;
    put_frame(in, &n, MQ_WS_OP_BINARY, false, "\x20\x02", 2, NULL);
    put_frame(in, &n, MQ_WS_OP_PING, true, "p", 1, NULL);
    put_frame(in, &n, MQ_WS_OP_CONT, true, "\x00\x00", 2, NULL);
    outcome_t want = {.data = (uint8_t *)"\x20\x02\x00\x00", .len = 4, .res = MQ_WS_OK};
    outcome_t o;
    run(MQ_WS_CLIENT, 0, in, n, 0, NULL, 0, &o);
    cr_assert(eq(int, o.res, MQ_WS_OK));
    cr_expect(eq(sz, o.len, 4));
    cr_expect(memcmp(o.reply, ((uint8_t[]){0x8A, 0x81, 0, 0, 0, 0, 'p'}), 7) == 0,
              "a client's pong is masked");
    free(o.data);
    expect_all_chunkings(MQ_WS_CLIENT, 0, in, n, &want, false);
}

/* Parameters are copied into each test's process: arrays, not pointers (Criterion). */
struct frame_reject {
    char name[48];
    uint32_t flags;
    uint64_t max;
    char hex[64]; /* the stream */
    uint16_t code;
    size_t data_len; /* MQTT bytes delivered before the failure */
};

static struct frame_reject frame_rejects[] = {
    {"unmasked client frame", 0, 0, "82 01 00", 1002, 0},
    {"masked server frame", MQ_WS_CLIENT, 0, "82 81 00 00 00 00 00", 1002, 0},
    {"rsv1", 0, 0, "c2 80 00 00 00 00", 1002, 0},
    {"rsv3", 0, 0, "92 80 00 00 00 00", 1002, 0},
    {"data opcode 3", 0, 0, "83 80 00 00 00 00", 1002, 0},
    {"control opcode 0xB", 0, 0, "8b 80 00 00 00 00", 1002, 0},
    {"fragmented ping", 0, 0, "09 80 00 00 00 00", 1002, 0},
    {"ping of 126 bytes", 0, 0, "89 fe 00 7e", 1002, 0},
    {"continuation first", 0, 0, "80 80 00 00 00 00", 1002, 0},
    {"binary inside a fragmented message", 0, 0, "02 81 00 00 00 00 41 82 81 00 00 00 00 42", 1002,
     1},
    {"text frame", 0, 0, "81 81 00 00 00 00 41", 1003, 0},
    {"64-bit length with the top bit", 0, 0, "82 ff 80 00 00 00 00 00 00 00 00 00 00 00", 1002, 0},
    {"frame over the limit", 0, 10, "82 8b 00 00 00 00", 1009, 0},
    {"close with 1 byte", 0, 0, "88 81 00 00 00 00 03", 1002, 0},
    {"close code 1005", 0, 0, "88 82 00 00 00 00 03 ed", 1002, 0},
    {"close code 999", 0, 0, "88 82 00 00 00 00 03 e7", 1002, 0},
    {"close code 5000", 0, 0, "88 82 00 00 00 00 13 88", 1002, 0},
    {"close reason not UTF-8", 0, 0, "88 83 00 00 00 00 03 e8 ff", 1007, 0},
    {"good frame then unmasked", 0, 0, "82 82 01 02 03 04 31 32 82 01 00", 1002, 2},
};

ParameterizedTestParameters(ws, rejects_broken_frames_with_the_right_close_code)
{
    return cr_make_param_array(struct frame_reject, frame_rejects, MQ_ARRAY_LEN(frame_rejects));
}

ParameterizedTest(struct frame_reject *c, ws, rejects_broken_frames_with_the_right_close_code)
{
    uint8_t in[64];
    size_t n = mqt_hex(c->hex, in, sizeof(in));
    outcome_t o;
    run(c->flags, c->max, in, n, 0, NULL, 0, &o);
    cr_assert(eq(int, o.res, MQ_WS_FAIL), "%s", c->name);
    cr_expect(eq(u16, o.code, c->code), "%s: %s", c->name, o.why);
    cr_expect(o.why != NULL, "%s: no reason", c->name);
    cr_expect(eq(sz, o.len, c->data_len), "%s", c->name);
    cr_expect(eq(u8, o.reply[0], 0x88), "%s: a close frame goes back", c->name);
    cr_expect(eq(u16, (uint16_t)(o.reply[2] << 8 | o.reply[3]), c->code), "%s", c->name);
    outcome_t want = o;
    uint8_t *wd = o.data;
    expect_all_chunkings(c->flags, c->max, in, n, &want, false);
    free(wd);
}

Test(ws, the_control_limit_and_text_option_allow_what_they_should)
{
    uint8_t in[200], p[125];
    memset(p, 'p', sizeof(p));
    size_t n = 0;
    put_frame(in, &n, MQ_WS_OP_PING, true, p, 125, key4);
    outcome_t o;
    run(0, 0, in, n, 1, NULL, 0, &o);
    cr_expect(eq(int, o.res, MQ_WS_OK), "a 125-byte ping is allowed");
    cr_expect(eq(u8, o.reply_len, 127));
    free(o.data);
    n = 0;
    put_frame(in, &n, MQ_WS_OP_TEXT, false, "ab", 2, key4);
    put_frame(in, &n, MQ_WS_OP_CONT, true, "c", 1, key4);
    run(MQ_WS_ACCEPT_TEXT, 0, in, n, 0, NULL, 0, &o);
    cr_expect(eq(int, o.res, MQ_WS_OK));
    cr_expect(eq(sz, o.len, 3));
    free(o.data);
}

/* ---- the upgrade request ----------------------------------------------------------------- */

static const char chrome_req[] = "GET /mqtt?x=1 HTTP/1.1\r\n"
                                 "Host: broker.example:8080\r\n"
                                 "Connection: Upgrade\r\n"
                                 "Pragma: no-cache\r\n"
                                 "Upgrade: websocket\r\n"
                                 "Origin: http://broker.example:8080\r\n"
                                 "Sec-WebSocket-Version: 13\r\n"
                                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                 "Sec-WebSocket-Protocol: mqtt\r\n"
                                 "X-Forwarded-For: 203.0.113.9, 10.0.0.2 \r\n"
                                 "\r\n";

static bool str_is(mq_str_t s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

Test(ws, accept_key_matches_rfc_6455_section_1_3)
{
    char out[MQ_WS_ACCEPT_LEN + 1];
    cr_assert(mq_ws_accept_key(MQ_STR_LIT("dGhlIHNhbXBsZSBub25jZQ=="), out));
    cr_expect(eq(str, out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
}

Test(ws, parses_a_browsers_upgrade_request)
{
    mq_ws_req_t r;
    mq_ws_http_parse(chrome_req, strlen(chrome_req), &r);
    cr_assert(eq(int, r.kind, MQ_WS_REQ_UPGRADE), "%s", r.why ? r.why : "");
    cr_expect(str_is(r.method, "GET"));
    cr_expect(str_is(r.target, "/mqtt?x=1"));
    cr_expect(str_is(r.path, "/mqtt"));
    cr_expect(str_is(r.host, "broker.example:8080"));
    cr_expect(str_is(r.origin, "http://broker.example:8080"));
    cr_expect(str_is(r.key, "dGhlIHNhbXBsZSBub25jZQ=="));
    cr_expect(str_is(r.version, "13"));
    cr_expect(str_is(r.protocols, "mqtt"));
    cr_expect(str_is(r.forwarded_for, "203.0.113.9, 10.0.0.2"));
    cr_expect(str_is(mq_ws_forwarded_for(&r), "10.0.0.2"), "the nearest proxy's entry");
    cr_expect(eq(str, (char *)r.subprotocol, "mqtt"));
    cr_expect(eq(u8, r.minor, 1));

    char out[256];
    size_t n = mq_ws_http_101(&r, out, sizeof(out));
    const char *want =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Sec-WebSocket-Protocol: mqtt\r\n\r\n";
    cr_assert(eq(sz, n, strlen(want)));
    cr_expect(memcmp(out, want, n) == 0);
    cr_expect(eq(sz, mq_ws_http_101(&r, out, 40), 0), "too small");
    r.subprotocol = NULL;
    n = mq_ws_http_101(&r, out, sizeof(out));
    cr_expect(strstr(out, "Sec-WebSocket-Protocol") == NULL, "no protocol header when none chosen");
}

Test(ws, feeding_stops_at_the_end_of_the_head_under_every_split)
{
    size_t hl = strlen(chrome_req);
    char in[1024];
    memcpy(in, chrome_req, hl);
    memcpy(in + hl, "\x82\x80", 2); /* a frame that follows at once is left for the decoder */
    size_t n = hl + 2;
    for (size_t k = 0; k <= n; k++) {
        for (size_t step = 0; step <= (k == 0 ? 1 : 0); step++) {
            mq_ws_http_t p;
            mq_ws_http_init(&p, 0);
            size_t off = 0, used = 0;
            enum mq_rc rc = MQ_RC_AGAIN;
            mq_ws_req_t r;
            while (rc == MQ_RC_AGAIN && off < n) {
                size_t end = step ? off + 1 : (off < k ? k : n);
                rc = mq_ws_http_feed(&p, (const uint8_t *)in + off, end - off, &used, &r);
                if (rc == MQ_RC_AGAIN)
                    cr_assert(eq(sz, used, end - off));
                off += used;
            }
            cr_assert(eq(int, rc, MQ_RC_SUCCESS), "split at %zu", k);
            cr_assert(eq(sz, off, hl), "split at %zu: stops after the empty line", k);
            cr_assert(eq(int, r.kind, MQ_WS_REQ_UPGRADE), "split at %zu", k);
            cr_assert(eq(str, (char *)r.subprotocol, "mqtt"));
            cr_assert(str_is(r.key, "dGhlIHNhbXBsZSBub25jZQ=="));
            mq_ws_http_fini(&p);
        }
    }
}

static mq_ws_req_t feed_all(const char *s, size_t limit, size_t *used)
{
    mq_ws_http_t p;
    mq_ws_http_init(&p, limit);
    mq_ws_req_t r;
    memset(&r, 0, sizeof(r));
    enum mq_rc rc = mq_ws_http_feed(&p, (const uint8_t *)s, strlen(s), used, &r);
    cr_assert(eq(int, rc, MQ_RC_SUCCESS), "head not complete: %s", s);
    mq_ws_http_fini(&p);
    r.method = r.target = r.path = r.host = r.key = (mq_str_t){0}; /* views died with p */
    return r;
}

Test(ws, picks_the_first_offered_protocol_it_speaks)
{
    const char *base = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\n"
                       "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n";
    static const struct {
        const char *hdrs, *want;
    } cases[] = {
        {"Sec-WebSocket-Protocol: mqttv3.1\r\n", "mqttv3.1"},
        {"Sec-WebSocket-Protocol: foo, mqtt, mqttv3.1\r\n", "mqtt"},
        {"Sec-WebSocket-Protocol: foo\r\nSec-WebSocket-Protocol: mqttv3.1\r\n", "mqttv3.1"},
        {"Sec-WebSocket-Protocol: foo\r\n", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < MQ_ARRAY_LEN(cases); i++) {
        char req[512];
        snprintf(req, sizeof(req), "%s%s\r\n", base, cases[i].hdrs);
        mq_ws_req_t r;
        mq_ws_http_parse(req, strlen(req), &r);
        cr_assert(eq(int, r.kind, MQ_WS_REQ_UPGRADE), "case %zu: %s", i, r.why ? r.why : "");
        if (cases[i].want)
            cr_expect(eq(str, (char *)r.subprotocol, (char *)cases[i].want), "case %zu", i);
        else
            cr_expect(r.subprotocol == NULL, "case %zu", i);
    }
}

Test(ws, classifies_plain_gets_and_heads)
{
    size_t used;
    mq_ws_req_t r = feed_all("GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", 0, &used);
    cr_expect(eq(int, r.kind, MQ_WS_REQ_GET));
    cr_expect(not(r.is_head));
    r = feed_all("HEAD / HTTP/1.1\nHost: x\n\n", 0, &used);
    cr_expect(eq(int, r.kind, MQ_WS_REQ_GET), "bare LF line endings are accepted");
    cr_expect(r.is_head);
    r = feed_all("GET / HTTP/1.0\r\n\r\n", 0, &used);
    cr_expect(eq(int, r.kind, MQ_WS_REQ_GET), "HTTP/1.0 needs no Host");
    r = feed_all("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", 0,
                 &used);
    cr_expect(eq(int, r.kind, MQ_WS_REQ_GET), "another upgrade is ignored");
}

struct http_reject {
    char name[48];
    char req[320];
    uint16_t status;
};

#define UPG_OK                                                                                     \
    "Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
#define KEY_OK "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

static struct http_reject http_rejects[] = {
    {"POST", "POST / HTTP/1.1\r\nHost: h\r\n\r\n", 405},
    {"lower-case get", "get / HTTP/1.1\r\nHost: h\r\n\r\n", 405},
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
    {"garbled version", "GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400},
    {"no target", "GET  HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"absolute target", "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
    {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", 400},
    {"blank before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
    {"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400},
    {"bare CR", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400},
    {"control character", "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", 400},
    {"body", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 400},
    {"chunked", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    {"version 8",
     "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Version: 8\r\n" KEY_OK "\r\n",
     426},
    {"no version",
     "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" KEY_OK "\r\n",
     400},
    {"no key", "GET / HTTP/1.1\r\n" UPG_OK "\r\n", 400},
    {"short key", "GET / HTTP/1.1\r\n" UPG_OK "Sec-WebSocket-Key: abc==\r\n\r\n", 400},
    {"key not base64",
     "GET / HTTP/1.1\r\n" UPG_OK "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ!==\r\n\r\n", 400},
    {"two keys", "GET / HTTP/1.1\r\n" UPG_OK KEY_OK KEY_OK "\r\n", 400},
    {"no Connection upgrade",
     "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
     "Connection: keep-alive\r\nSec-WebSocket-Version: 13\r\n" KEY_OK "\r\n",
     400},
    {"upgrade over HTTP/1.0", "GET / HTTP/1.0\r\n" UPG_OK KEY_OK "\r\n", 400},
    {"upgrade with HEAD", "HEAD / HTTP/1.1\r\n" UPG_OK KEY_OK "\r\n", 400},
    {"upgrade without Host",
     "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Version: 13\r\n" KEY_OK "\r\n",
     400},
};

ParameterizedTestParameters(ws, rejects_bad_requests_with_the_right_status)
{
    return cr_make_param_array(struct http_reject, http_rejects, MQ_ARRAY_LEN(http_rejects));
}

ParameterizedTest(struct http_reject *c, ws, rejects_bad_requests_with_the_right_status)
{
    size_t used;
    mq_ws_req_t r = feed_all(c->req, 0, &used);
    cr_expect(eq(int, r.kind, MQ_WS_REQ_ERROR), "%s", c->name);
    cr_expect(eq(u16, r.status, c->status), "%s: %s", c->name, r.why ? r.why : "");
    cr_expect(r.why != NULL, "%s: no reason", c->name);
}

Test(ws, an_mqtt_client_on_a_websocket_port_fails_at_its_first_byte)
{
    mq_ws_http_t p;
    mq_ws_http_init(&p, 0);
    static const uint8_t connect[] = {0x10, 0x0C, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 0};
    size_t used = 0;
    mq_ws_req_t r;
    cr_assert(eq(int, mq_ws_http_feed(&p, connect, sizeof(connect), &used, &r), MQ_RC_SUCCESS));
    cr_expect(eq(sz, used, 1));
    cr_expect(eq(int, r.kind, MQ_WS_REQ_ERROR));
    cr_expect(eq(u16, r.status, 400));
    cr_expect(eq(str, (char *)r.why, "not an HTTP request"));
    mq_ws_http_fini(&p);
    cr_expect(mq_ws_looks_like_http((const uint8_t *)"GET / HTTP/1.1", 14));
    cr_expect(mq_ws_looks_like_http((const uint8_t *)"GE", 2), "a prefix is enough");
    cr_expect(not(mq_ws_looks_like_http(connect, sizeof(connect))));
    cr_expect(not(mq_ws_looks_like_http(connect, 0)));
}

Test(ws, a_head_over_the_limit_is_431_at_the_first_byte_past_it)
{
    char req[2048];
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: h\r\nCookie: %0900d\r\n\r\n", 0);
    size_t used;
    mq_ws_req_t r = feed_all(req, 100, &used);
    cr_expect(eq(int, r.kind, MQ_WS_REQ_ERROR));
    cr_expect(eq(u16, r.status, 431));
    cr_expect(eq(sz, used, 101));
    r = feed_all(req, strlen(req), &used);
    cr_expect(eq(int, r.kind, MQ_WS_REQ_GET), "exactly the limit is allowed");
    r = feed_all(req, 0, &used);
    cr_expect(eq(int, r.kind, MQ_WS_REQ_GET), "0 means mosquitto's 1024");
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: h\r\nCookie: %01100d\r\n\r\n", 0);
    r = feed_all(req, 0, &used);
    cr_expect(eq(u16, r.status, 431), "over 1024 by default");
}

/* ---- HTTP answers ------------------------------------------------------------------------ */

Test(ws, builds_error_and_file_responses)
{
    char out[512];
    size_t n = mq_ws_http_error(404, false, out, sizeof(out));
    out[n] = '\0';
    cr_expect(strncmp(out, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    cr_expect(strstr(out, "Content-Type: text/plain; charset=utf-8\r\n") != NULL);
    cr_expect(strstr(out, "Content-Length: 14\r\n") != NULL);
    cr_expect(strstr(out, "Connection: close\r\n") != NULL);
    cr_expect(strstr(out, "\r\n\r\n404 Not Found\n") != NULL);
    cr_expect(eq(sz, strlen(strstr(out, "\r\n\r\n") + 4), 14), "Content-Length is the body");
    size_t h = mq_ws_http_error(404, true, out, sizeof(out));
    out[h] = '\0';
    cr_expect(eq(sz, h, n - 14), "HEAD: same head, no body");
    n = mq_ws_http_error(426, false, out, sizeof(out));
    out[n] = '\0';
    cr_expect(strstr(out, "Sec-WebSocket-Version: 13\r\n") != NULL);
    n = mq_ws_http_error(405, false, out, sizeof(out));
    out[n] = '\0';
    cr_expect(strstr(out, "Allow: GET, HEAD\r\n") != NULL);
    n = mq_ws_http_head(200, "text/html; charset=utf-8", 12345, out, sizeof(out));
    out[n] = '\0';
    cr_expect(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    cr_expect(strstr(out, "Content-Length: 12345\r\n") != NULL);
    cr_expect(eq(str, out + n - 4, "\r\n\r\n"));
    cr_expect(eq(sz, mq_ws_http_head(200, NULL, 1, out, 30), 0), "too small");
    cr_expect(eq(sz, mq_ws_http_error(404, false, out, n - 1), 0), "too small");
    cr_expect(eq(str, (char *)mq_ws_http_reason(431), "Request Header Fields Too Large"));
    cr_expect(eq(str, (char *)mq_ws_http_reason(299), "Unknown"));
}

Test(ws, content_types_by_extension)
{
    cr_expect(eq(str, (char *)mq_ws_http_content_type(MQ_STR_LIT("index.html")),
                 "text/html; charset=utf-8"));
    cr_expect(eq(str, (char *)mq_ws_http_content_type(MQ_STR_LIT("a/b.JS")),
                 "text/javascript; charset=utf-8"));
    cr_expect(eq(str, (char *)mq_ws_http_content_type(MQ_STR_LIT("x.svg")), "image/svg+xml"));
    cr_expect(eq(str, (char *)mq_ws_http_content_type(MQ_STR_LIT("a.d/README")),
                 "application/octet-stream"),
              "a dot in a directory is no extension");
    cr_expect(eq(str, (char *)mq_ws_http_content_type(MQ_STR_LIT("")), "application/octet-stream"));
}

Test(ws, request_paths_become_safe_relative_file_names)
{
    static const struct {
        const char *path, *want;
        int rc;
    } cases[] = {
        {"/", "index.html", 0},
        {"/app.js", "app.js", 0},
        {"/css/site.css", "css/site.css", 0},
        {"/docs/", "docs/index.html", 0},
        {"/a%20b%41", "a bA", 0},
        {"/..", NULL, -EINVAL},
        {"/../etc/passwd", NULL, -EINVAL},
        {"/a/../../b", NULL, -EINVAL},
        {"/%2e%2e/x", NULL, -EINVAL},
        {"/./x", NULL, -EINVAL},
        {"//etc/passwd", NULL, -EINVAL},
        {"/a%2Fb", NULL, -EINVAL},
        {"/a%00b", NULL, -EINVAL},
        {"/a\\b", NULL, -EINVAL},
        {"/a%4", NULL, -EINVAL},
        {"/a%zz", NULL, -EINVAL},
        {"x", NULL, -EINVAL},
        {"", NULL, -EINVAL},
        {"/..a", "..a", 0},
    };
    char out[64];
    for (size_t i = 0; i < MQ_ARRAY_LEN(cases); i++) {
        int rc = mq_ws_http_path(mq_str(cases[i].path), out, sizeof(out));
        if (cases[i].want) {
            cr_expect(eq(int, rc, (int)strlen(cases[i].want)), "%s", cases[i].path);
            cr_expect(eq(str, out, (char *)cases[i].want), "%s", cases[i].path);
        } else {
            cr_expect(eq(int, rc, cases[i].rc), "%s", cases[i].path);
        }
    }
    cr_expect(eq(int, mq_ws_http_path(MQ_STR_LIT("/abcdef"), out, 6), -ENAMETOOLONG));
    cr_expect(eq(int, mq_ws_http_path(MQ_STR_LIT("/abcde"), out, 6), 5), "room for the NUL");
    cr_expect(eq(int, mq_ws_http_path(MQ_STR_LIT("/"), out, 10), -ENAMETOOLONG));
}
