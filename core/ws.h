/* SPDX-License-Identifier: MIT */
/* core/ws.h - WebSocket (RFC 6455) for MQTT: upgrade request parser, HTTP answers, frames. */
/*
 * Own code rather than a Debian 12 library, because none fits a loop that hands in byte
 * ranges from provided buffers which go back to the ring before the completion returns:
 * - libwslay-dev 1.1.1: its frame API pulls input through a recv callback into its own
 *   buffer, and its event API gathers each whole message before a callback sees it, which
 *   is a copy per message and a read loop that the library drives, not ours.
 * - llhttp is not packaged in Debian 12; libhttp-parser-dev 2.9.4 is archived upstream,
 *   hands header names and values out as callback fragments that we would gather anyway,
 *   and knows none of the WebSocket rules (key, version, token lists) that are most of the
 *   work for one GET request head of at most websockets_headers_size bytes.
 * What is needed is small: a resumable scan for the end of one request head, and a frame
 * header of 2-14 bytes that is resumable at every byte, with payloads unmasked in place
 * while the frame headers are squeezed out. Both are fuzzed (tests/fuzz/fuzz_ws_*.c).
 * SHA-1 and base64 for Sec-WebSocket-Accept come from OpenSSL's libcrypto.
 *
 * Nothing here does I/O: bytes in, bytes and decisions out (net/ acts on them).
 */
#ifndef MQ_CORE_WS_H
#define MQ_CORE_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/rc.h"

/* ---- frames ------------------------------------------------------------------------------ */

#define MQ_WS_MAX_HEADER 14u   /* 2 + 8 extended length + 4 masking key */
#define MQ_WS_MAX_CONTROL 125u /* payload limit of a control frame (RFC 6455 §5.5) */
#define MQ_WS_MAX_REPLY (2u + MQ_WS_MAX_CONTROL) /* an unmasked pong or close frame */

enum mq_ws_opcode {
    MQ_WS_OP_CONT = 0x0,
    MQ_WS_OP_TEXT = 0x1,
    MQ_WS_OP_BINARY = 0x2,
    MQ_WS_OP_CLOSE = 0x8,
    MQ_WS_OP_PING = 0x9,
    MQ_WS_OP_PONG = 0xA,
};

/* Close status codes (RFC 6455 §7.4.1). */
enum mq_ws_close {
    MQ_WS_CLOSE_NORMAL = 1000,
    MQ_WS_CLOSE_GOING_AWAY = 1001,
    MQ_WS_CLOSE_PROTOCOL_ERROR = 1002,
    MQ_WS_CLOSE_UNSUPPORTED_DATA = 1003,
    MQ_WS_CLOSE_NO_STATUS = 1005, /* never sent: reported when a close frame carried no code */
    MQ_WS_CLOSE_INVALID_DATA = 1007,
    MQ_WS_CLOSE_POLICY = 1008,
    MQ_WS_CLOSE_TOO_BIG = 1009,
    MQ_WS_CLOSE_INTERNAL_ERROR = 1011,
};

/* mq_ws_decoder_init() flags. MQ_WS_ACCEPT_TEXT passes text frames through as MQTT bytes, as
 * mosquitto does (libwebsockets hands it both kinds); without it a text frame closes with 1003
 * [MQTT-6.0.0-1]. MQ_WS_CLIENT decodes a server's (unmasked) frames, for tools. */
#define MQ_WS_CLIENT 0x1u
#define MQ_WS_ACCEPT_TEXT 0x2u

/* Incremental frame decoder for one connection's received byte stream. Holds back at most a
 * partial frame header (14 bytes) and a partial control payload (125 bytes); data payloads
 * never wait. No allocation: embed it, no _fini needed. */
typedef struct mq_ws_decoder {
    uint64_t max_frame; /* payload bytes of one frame, else 1009; 0 = no limit */
    uint32_t flags;     /* MQ_WS_CLIENT, MQ_WS_ACCEPT_TEXT */
    /* private: resumable state */
    uint8_t _state;    /* 0 = frame header, 1 = payload, 2 = ended (closed or failed) */
    uint8_t _hn;       /* header bytes gathered in _hdr */
    uint8_t _opcode;   /* of the frame being read */
    uint8_t _mask_pos; /* offset of the next payload byte in the masking key, 0..3 */
    uint8_t _cn;       /* control payload bytes gathered in _ctl */
    bool _masked;      /* the frame being read has a masking key */
    bool _in_msg;      /* a fragmented data message is open: continuations expected */
    uint8_t _mask[4];  /* masking key of the frame being read */
    uint8_t _hdr[MQ_WS_MAX_HEADER];
    uint8_t _ctl[MQ_WS_MAX_CONTROL];
    uint64_t _left; /* payload bytes of the current frame still to come */
} mq_ws_decoder_t;

enum mq_ws_result {
    MQ_WS_OK = 0,     /* every byte was taken; feed more when it arrives */
    MQ_WS_CLOSED = 1, /* the peer sent a close frame: send rx->reply, then close */
    MQ_WS_FAIL = 2,   /* the peer broke RFC 6455: send rx->reply (a close frame), then close */
};

/* What one mq_ws_decode() call produced. */
typedef struct mq_ws_rx {
    size_t len;        /* MQTT stream bytes, unmasked, now at in[0..len) (every result) */
    uint16_t code;     /* CLOSED: the peer's status (MQ_WS_CLOSE_NO_STATUS when none);
                          FAIL: the status we close with (1002, 1003, 1007, 1009) */
    const char *why;   /* FAIL: a few words for the log (static storage) */
    uint8_t reply_len; /* bytes in 'reply' to send after what is already queued; 0 = none */
    uint8_t reply[MQ_WS_MAX_REPLY]; /* a pong (OK) or a close frame (CLOSED, FAIL) */
} mq_ws_rx_t;

/* 'max_frame' = largest accepted frame payload (0 = unlimited); 'flags' = MQ_WS_* above. */
void mq_ws_decoder_init(mq_ws_decoder_t *d, uint64_t max_frame, uint32_t flags);

/* Decodes the frames in in[0..len), in place: data payloads are unmasked and moved to the
 * front of 'in' over the frame headers (one read and one write per byte, the cost of
 * unmasking alone), so on return in[0..rx->len) is the MQTT byte stream they carried, ready
 * for mq_decoder_feed(). An MQTT packet may span frames and a frame may carry several
 * packets: this layer does not care. Binary frames and their continuations carry data
 * (text ones too with MQ_WS_ACCEPT_TEXT); pings are answered (rx->reply holds the pong for
 * the last ping completed in this call; RFC 6455 §5.5.3 allows answering only the last one);
 * pongs are ignored. Every byte of 'in' is taken; the tail of an incomplete frame header or
 * control payload is kept in 'd'.
 * Returns MQ_WS_OK, or MQ_WS_CLOSED / MQ_WS_FAIL as described above; after those, 'd' must
 * not be fed again and bytes after the closing frame are ignored. rx->len is valid with every
 * result: hand those bytes up before acting on the close. Owning thread of the stream only.
 * Rejections (FAIL): unmasked frame from a client / masked one from a server, reserved bits
 * (no extension is negotiated), unknown opcode, fragmented control frame, control payload
 * over 125 bytes, continuation without a message or a new message inside a fragmented one,
 * 64-bit length with the top bit set, close payload of 1 byte or an invalid close code:
 * 1002; text frame: 1003; close reason not UTF-8: 1007; frame over max_frame: 1009. */
MQ_MUST_CHECK enum mq_ws_result mq_ws_decode(mq_ws_decoder_t *d, uint8_t *in, size_t len,
                                             mq_ws_rx_t *rx);

/* Bytes of a frame header for a payload of 'len' bytes: 2, 4 or 10, plus 4 when masked. */
static inline size_t mq_ws_header_size(uint64_t len, bool masked)
{
    return (len < 126 ? 2u : len <= 0xFFFFu ? 4u : 10u) + (masked ? 4u : 0u);
}

/* Writes a frame header for a 'len'-byte payload into out[0..mq_ws_header_size()) and
 * returns its size. Servers send unmasked frames: 'mask' = NULL. A client passes its 4-byte
 * masking key and masks the payload itself with mq_ws_mask(). 'fin' = false starts or
 * continues a fragmented message. Any thread. */
size_t mq_ws_frame_header(uint8_t *out, enum mq_ws_opcode opcode, bool fin, uint64_t len,
                          const uint8_t *mask);

/* XORs p[0..len) with the masking key, starting at key offset 'offset % 4'. Any thread. */
void mq_ws_mask(uint8_t *p, size_t len, const uint8_t mask[4], size_t offset);

/* Writes an unmasked close frame with 'code' and 'reason' (cut to 123 bytes; pass a UTF-8
 * string) into out[0..cap); returns its size (at most MQ_WS_MAX_REPLY), 0 when 'cap' is too
 * small. code 0 writes a close frame without a status. Any thread. */
size_t mq_ws_encode_close(uint8_t *out, size_t cap, uint16_t code, mq_str_t reason);

/* ---- HTTP upgrade request ---------------------------------------------------------------- */

#define MQ_WS_HEADERS_SIZE_DEFAULT 1024u /* mosquitto's websockets_headers_size when unset */
#define MQ_WS_ACCEPT_LEN 28u             /* base64 of a SHA-1 digest */

enum mq_ws_req_kind {
    MQ_WS_REQ_UPGRADE = 1, /* a valid WebSocket opening handshake: answer mq_ws_http_101() */
    MQ_WS_REQ_GET = 2,     /* a plain GET or HEAD: serve http_dir / the status page, or 404;
                              with nothing to serve on this listener, 426 */
    MQ_WS_REQ_ERROR = 3,   /* answer req->status with mq_ws_http_error(), then close */
};

/* A parsed request head. Views point into the parser's buffer: valid until the parser is
 * fed again or finished. Absent headers are empty views. */
typedef struct mq_ws_req {
    enum mq_ws_req_kind kind;
    uint16_t status; /* ERROR: 400, 405 (method), 426 (Sec-WebSocket-Version not 13),
                        431 (head over the size limit) or 505 (not HTTP/1.x); else 0 */
    const char *why; /* ERROR: a few words for the log (static storage) */
    bool is_head;    /* HEAD: answer with the head of the response only */
    uint8_t minor;   /* HTTP/1.<minor> */
    mq_str_t method;
    mq_str_t target; /* the request target as sent */
    mq_str_t path;   /* the target up to '?', still percent-encoded: see mq_ws_http_path() */
    mq_str_t host;
    mq_str_t origin;
    mq_str_t upgrade; /* token lists, as sent (the last header when repeated) */
    mq_str_t connection;
    mq_str_t key;            /* Sec-WebSocket-Key */
    mq_str_t version;        /* Sec-WebSocket-Version */
    mq_str_t protocols;      /* Sec-WebSocket-Protocol (the first header when repeated) */
    mq_str_t forwarded_for;  /* X-Forwarded-For (the last header when repeated) */
    const char *subprotocol; /* "mqtt" or "mqttv3.1": the first of the client's offers that we
                                speak; NULL when it offered none of them (or none at all) */
} mq_ws_req_t;

/* Incremental parser for the request head that opens a WebSocket listener's connection. */
typedef struct mq_ws_http {
    size_t limit; /* head bytes accepted before 431 (websockets_headers_size) */
    /* private */
    mq_buf_t _head;  /* the head gathered so far (never more than 'limit' bytes) */
    uint8_t _eol;    /* end-of-head scan: 0 = in a line, 1 = after LF, 2 = after LF CR */
    bool _in_method; /* still in the method token: a non-token byte fails at once */
    bool _done;
} mq_ws_http_t;

/* 'limit' 0 = MQ_WS_HEADERS_SIZE_DEFAULT. Allocates nothing until fed. */
void mq_ws_http_init(mq_ws_http_t *p, size_t limit);
void mq_ws_http_fini(mq_ws_http_t *p);

/* Feeds received bytes (any split, down to one byte at a time). Returns MQ_RC_AGAIN when all
 * of in[0..len) was taken and the head is not complete, or MQ_RC_SUCCESS when the head ended:
 * *used bytes were taken and in[*used..len) belong to what follows (WebSocket frames, for an
 * upgrade), and *req is filled; req->kind says what to answer. A stream that cannot be HTTP
 * (e.g. an MQTT CONNECT on a WebSocket port: its first byte is not a token character) ends
 * at its first byte as MQ_WS_REQ_ERROR 400 with why = "not an HTTP request". After
 * MQ_RC_SUCCESS the parser must not be fed again. Copies the head (at most 'limit' bytes,
 * once per connection). Owning thread of the stream only. */
MQ_MUST_CHECK enum mq_rc mq_ws_http_feed(mq_ws_http_t *p, const uint8_t *in, size_t len,
                                         size_t *used, mq_ws_req_t *req);

/* Parses one complete request head in head[0..len) (it must end with an empty line): the
 * building block of mq_ws_http_feed(), for tests and fuzzing. Views point into 'head'. */
void mq_ws_http_parse(const char *head, size_t len, mq_ws_req_t *req);

/* True when in[0..len) starts like an HTTP request ("GET "; a prefix of it when len < 4):
 * for logging a WebSocket or HTTP client that reached a plain MQTT port. Any thread. */
bool mq_ws_looks_like_http(const uint8_t *in, size_t len);

/* Sec-WebSocket-Accept for 'key': base64(SHA-1(key + RFC 6455 GUID)), NUL-terminated in
 * out[0..MQ_WS_ACCEPT_LEN]. Returns false when libcrypto fails. Any thread. */
MQ_MUST_CHECK bool mq_ws_accept_key(mq_str_t key, char out[MQ_WS_ACCEPT_LEN + 1]);

/* Writes the 101 Switching Protocols response to an MQ_WS_REQ_UPGRADE request (with
 * Sec-WebSocket-Accept and, when req->subprotocol is set, Sec-WebSocket-Protocol) into
 * out[0..cap). Returns its length, 0 when 'cap' is too small (256 always suffices) or
 * libcrypto fails. Any thread. */
size_t mq_ws_http_101(const mq_ws_req_t *req, char *out, size_t cap);

/* Writes a response head: status line, Content-Type (omitted when NULL), Content-Length,
 * Connection: close, and for 405 Allow / for 426 Upgrade + Sec-WebSocket-Version: 13, then
 * the empty line. The caller sends 'content_length' body bytes after it (none for HEAD).
 * Returns its length, 0 when 'cap' is too small (512 always suffices). Any thread. */
size_t mq_ws_http_head(uint16_t status, const char *content_type, uint64_t content_length,
                       char *out, size_t cap);

/* Writes a whole error response for 'status' (head + a one-line text/plain body, the body
 * left out when 'is_head'). Returns its length, 0 when 'cap' is too small (512 suffices). */
size_t mq_ws_http_error(uint16_t status, bool is_head, char *out, size_t cap);

/* Reason phrase for 'status' ("Not Found"), or "Unknown". */
const char *mq_ws_http_reason(uint16_t status);

/* Content-Type for a file name, by extension (html, css, js, json, png, svg, ico, txt, ...);
 * "application/octet-stream" when unknown. */
const char *mq_ws_http_content_type(mq_str_t name);

/* Turns a request path (req->path) into a file name relative to http_dir in out[0..cap),
 * NUL-terminated: percent-decoded, without the leading '/', "index.html" appended to a path
 * ending in '/' (mosquitto serves index.html for "/"). Rejects what could leave http_dir or
 * confuse a file system: a path not starting with '/', a "." or ".." segment, an empty
 * segment ("//"), a NUL or backslash, or a bad %-escape. Returns the length, -EINVAL for a
 * rejected path (answer 400 or 404), -ENAMETOOLONG when 'cap' is too small. Any thread. */
MQ_MUST_CHECK int mq_ws_http_path(mq_str_t path, char *out, size_t cap);

/* The client address a trusted proxy reported in X-Forwarded-For: the last element of the
 * list (the one the nearest proxy appended), without blanks; an empty view when the list is
 * empty. Only meaningful when the connection comes from a configured trusted proxy. */
mq_str_t mq_ws_forwarded_for(const mq_ws_req_t *req);

#endif
