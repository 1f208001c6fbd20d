/* SPDX-License-Identifier: MIT */
/* core/codec.h - MQTT 3.1 / 3.1.1 / 5.0 control packets: incremental strict decoder, encoders. */
#ifndef MQ_CORE_CODEC_H
#define MQ_CORE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/rc.h"

/* ---- protocol constants ------------------------------------------------------------------ */

enum mq_proto {
    MQ_PROTO_31 = 3,  /* MQTT 3.1, protocol name "MQIsdp" */
    MQ_PROTO_311 = 4, /* MQTT 3.1.1, protocol name "MQTT" */
    MQ_PROTO_5 = 5,   /* MQTT 5.0, protocol name "MQTT" */
};

enum mq_ptype {
    MQ_CONNECT = 1,
    MQ_CONNACK = 2,
    MQ_PUBLISH = 3,
    MQ_PUBACK = 4,
    MQ_PUBREC = 5,
    MQ_PUBREL = 6,
    MQ_PUBCOMP = 7,
    MQ_SUBSCRIBE = 8,
    MQ_SUBACK = 9,
    MQ_UNSUBSCRIBE = 10,
    MQ_UNSUBACK = 11,
    MQ_PINGREQ = 12,
    MQ_PINGRESP = 13,
    MQ_DISCONNECT = 14,
    MQ_AUTH = 15, /* MQTT 5 only */
};

/* Which side decodes: a server receives what clients send and the reverse. Packets that may
 * only travel the other way are a protocol error (e.g. a CONNACK sent to a server). */
enum mq_role {
    MQ_ROLE_SERVER = 0,
    MQ_ROLE_CLIENT = 1,
};

#define MQ_CODEC_MAX_REMAINING 268435455u /* largest 4-byte Variable Byte Integer */
#define MQ_CODEC_MAX_PACKET (1u + 4u + MQ_CODEC_MAX_REMAINING) /* the largest packet */
#define MQ_CODEC_MAX_HEADER 5u /* fixed header: type byte + up to 4 length bytes */

/* MQTT v5 property identifiers (§2.2.2.2). */
enum mq_prop_id {
    MQ_PROP_PAYLOAD_FORMAT = 0x01,
    MQ_PROP_MESSAGE_EXPIRY = 0x02,
    MQ_PROP_CONTENT_TYPE = 0x03,
    MQ_PROP_RESPONSE_TOPIC = 0x08,
    MQ_PROP_CORRELATION_DATA = 0x09,
    MQ_PROP_SUBSCRIPTION_ID = 0x0B,
    MQ_PROP_SESSION_EXPIRY = 0x11,
    MQ_PROP_ASSIGNED_CLIENT_ID = 0x12,
    MQ_PROP_SERVER_KEEP_ALIVE = 0x13,
    MQ_PROP_AUTH_METHOD = 0x15,
    MQ_PROP_AUTH_DATA = 0x16,
    MQ_PROP_REQUEST_PROBLEM_INFO = 0x17,
    MQ_PROP_WILL_DELAY = 0x18,
    MQ_PROP_REQUEST_RESPONSE_INFO = 0x19,
    MQ_PROP_RESPONSE_INFO = 0x1A,
    MQ_PROP_SERVER_REFERENCE = 0x1C,
    MQ_PROP_REASON_STRING = 0x1F,
    MQ_PROP_RECEIVE_MAXIMUM = 0x21,
    MQ_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
    MQ_PROP_TOPIC_ALIAS = 0x23,
    MQ_PROP_MAXIMUM_QOS = 0x24,
    MQ_PROP_RETAIN_AVAILABLE = 0x25,
    MQ_PROP_USER_PROPERTY = 0x26,
    MQ_PROP_MAXIMUM_PACKET_SIZE = 0x27,
    MQ_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
    MQ_PROP_SUB_ID_AVAILABLE = 0x29,
    MQ_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* Where a property block sits; selects the properties allowed in it (§2.2.2.2 table). */
enum mq_prop_ctx {
    MQ_PCTX_CONNECT = MQ_CONNECT,
    MQ_PCTX_CONNACK = MQ_CONNACK,
    MQ_PCTX_PUBLISH = MQ_PUBLISH,
    MQ_PCTX_PUBACK = MQ_PUBACK, /* PUBACK, PUBREC, PUBREL and PUBCOMP allow the same set */
    MQ_PCTX_SUBSCRIBE = MQ_SUBSCRIBE,
    MQ_PCTX_SUBACK = MQ_SUBACK,
    MQ_PCTX_UNSUBSCRIBE = MQ_UNSUBSCRIBE,
    MQ_PCTX_UNSUBACK = MQ_UNSUBACK,
    MQ_PCTX_DISCONNECT = MQ_DISCONNECT,
    MQ_PCTX_AUTH = MQ_AUTH,
    MQ_PCTX_WILL = 16, /* the Will Properties inside CONNECT */
};

typedef struct mq_user_prop {
    mq_str_t key;
    mq_str_t val;
} mq_user_prop_t;

/* MQTT v5 properties of one packet. Decoding fills the fields of the properties present and
 * sets their bits in 'present'; every view points into the decoded bytes. Encoding writes the
 * fields whose bits are set.
 *
 * User Properties (and, in a server-to-client PUBLISH, repeated Subscription Identifiers)
 * may occur many times. Decoding counts them and keeps the whole block in 'raw'; walk them
 * with mq_props_next_user(). Encoding takes them from 'user' (n_user entries) when 'user' is
 * not NULL, else copies the ones found in 'raw' — so a decoded block re-encodes as it came. */
typedef struct mq_props {
    uint64_t present; /* bit (1 << id) for each property id present */
    mq_str_t raw;     /* decoded: the property block without its length prefix */

    uint32_t message_expiry;  /* seconds */
    uint32_t session_expiry;  /* seconds; 0xFFFFFFFF = never */
    uint32_t will_delay;      /* seconds */
    uint32_t max_packet_size; /* bytes, never 0 */
    uint32_t subscription_id; /* first one; 1..268435455 */
    uint16_t server_keep_alive;
    uint16_t receive_maximum; /* never 0 */
    uint16_t topic_alias_maximum;
    uint16_t topic_alias;          /* never 0 */
    uint8_t payload_format;        /* 0 bytes, 1 UTF-8 */
    uint8_t request_problem_info;  /* 0 or 1 */
    uint8_t request_response_info; /* 0 or 1 */
    uint8_t maximum_qos;           /* 0 or 1 */
    uint8_t retain_available;      /* 0 or 1 */
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;
    mq_str_t content_type;
    mq_str_t response_topic;
    mq_str_t correlation_data;
    mq_str_t assigned_client_id;
    mq_str_t auth_method;
    mq_str_t auth_data;
    mq_str_t response_info;
    mq_str_t server_reference;
    mq_str_t reason_string;

    const uint8_t *order; /* encoding: ids to write first, in this order (NULL: table order) */
    uint8_t n_order;
    const mq_user_prop_t *user; /* encoding: user properties to write (NULL: copy from raw) */
    uint32_t n_user;            /* user properties (decoded count, or entries in 'user') */
    const uint32_t *sub_ids;    /* encoding: extra subscription ids (server to client) */
    uint32_t n_sub_ids;         /* decoded: number of Subscription Identifiers in the block */
} mq_props_t;

static inline bool mq_props_has(const mq_props_t *p, enum mq_prop_id id)
{
    return (p->present >> id) & 1u;
}

static inline void mq_props_set(mq_props_t *p, enum mq_prop_id id)
{
    p->present |= 1ull << id;
}

/* Iterates the User Properties of a decoded block: start with *pos = 0; each call that
 * returns true sets *key and *val (views into p->raw) and advances *pos. */
bool mq_props_next_user(const mq_props_t *p, size_t *pos, mq_str_t *key, mq_str_t *val);

/* Iterates the Subscription Identifiers of a decoded block, like mq_props_next_user. */
bool mq_props_next_sub_id(const mq_props_t *p, size_t *pos, uint32_t *id);

/* ---- packets ----------------------------------------------------------------------------- */

typedef struct mq_connect {
    uint8_t level; /* 3, 4 or 5 (enum mq_proto) */
    bool clean_start;
    bool has_will;
    bool will_retain;
    uint8_t will_qos;
    bool has_username;
    bool has_password;
    uint16_t keep_alive; /* seconds */
    mq_str_t client_id;  /* may be empty */
    mq_str_t will_topic;
    mq_str_t will_payload;
    mq_str_t username;
    mq_str_t password;
    mq_props_t will_props; /* v5 */
} mq_connect_t;

typedef struct mq_connack {
    bool session_present;
    uint8_t rc; /* v5 reason code, or 3.1.1 return code 0..5 */
} mq_connack_t;

typedef struct mq_publish {
    uint8_t qos;
    bool dup;
    bool retain;
    uint16_t packet_id; /* 0 for QoS 0 */
    mq_str_t topic;     /* empty only with a v5 Topic Alias */
    mq_str_t payload;
} mq_publish_t;

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
typedef struct mq_ack {
    uint16_t packet_id;
    uint8_t rc; /* v5 reason code; 0 when absent or before v5 */
} mq_ack_t;

/* One entry of a SUBSCRIBE (filter + options byte) or of an UNSUBSCRIBE (filter only). */
typedef struct mq_sub_entry {
    mq_str_t filter;
    uint8_t qos;              /* requested maximum QoS */
    bool no_local;            /* v5 */
    bool retain_as_published; /* v5 */
    uint8_t retain_handling;  /* v5: 0, 1 or 2 */
    uint8_t rc;               /* decoded: MQ_RC_SUCCESS, or MQ_RC_TOPIC_FILTER_INVALID for a
                                 filter that breaks the wildcard rules (the server answers
                                 that entry with a failure code, it does not disconnect) */
} mq_sub_entry_t;

/* SUBSCRIBE and UNSUBSCRIBE. Decoding validates every entry and keeps them in 'raw' (the
 * payload); walk them with mq_sub_next(). Encoding writes 'entries'. */
typedef struct mq_subscribe {
    uint16_t packet_id;
    uint32_t n;                    /* number of entries */
    mq_str_t raw;                  /* decoded: the payload */
    const mq_sub_entry_t *entries; /* encoding: n entries */
} mq_subscribe_t;

/* SUBACK and UNSUBACK: one reason code per entry of the request. An UNSUBACK before v5 has
 * none (n = 0). */
typedef struct mq_suback {
    uint16_t packet_id;
    uint32_t n;
    const uint8_t *rcs; /* n codes: decoded views into the input, or the caller's array */
} mq_suback_t;

/* DISCONNECT and AUTH (v5; before v5 a DISCONNECT has no body). */
typedef struct mq_reason {
    uint8_t rc;
} mq_reason_t;

typedef struct mq_packet {
    uint8_t type;  /* enum mq_ptype */
    uint8_t flags; /* low nibble of the fixed header */
    uint32_t remaining_len;
    mq_props_t props; /* v5 properties of the packet (zero before v5) */
    union {
        mq_connect_t connect;
        mq_connack_t connack;
        mq_publish_t publish;
        mq_ack_t ack;
        mq_subscribe_t subscribe; /* also UNSUBSCRIBE */
        mq_suback_t suback;       /* also UNSUBACK */
        mq_reason_t reason;       /* DISCONNECT, AUTH */
    };
} mq_packet_t;

/* Walks the entries of a decoded SUBSCRIBE or UNSUBSCRIBE: start with *pos = 0; each call
 * that returns true fills *e (filter is a view into the input) and advances *pos. */
bool mq_sub_next(const mq_packet_t *pkt, uint8_t proto, size_t *pos, mq_sub_entry_t *e);

/* ---- decoding ---------------------------------------------------------------------------- */

/* Incremental decoder for one byte stream. The fixed header is read by a resumable state
 * machine; a body that arrives whole is parsed in place (zero copy), one that arrives in
 * pieces is gathered in the decoder's own buffer (at most max_packet_size bytes, checked
 * before anything is allocated). */
typedef struct mq_decoder {
    uint8_t role;             /* enum mq_role */
    uint8_t proto;            /* 0 until a CONNECT or mq_decoder_set_proto() fixes it */
    uint32_t max_packet_size; /* whole packet, fixed header included; 0 = protocol maximum */
    /* private: resumable state */
    uint8_t _state; /* 0 = type byte, 1 = length bytes, 2 = body */
    uint8_t _hdr;   /* first byte of the fixed header */
    uint8_t _n_len; /* length bytes read so far */
    uint32_t _rem;  /* remaining length, as far as read */
    mq_buf_t _body; /* body gathered across calls */
} mq_decoder_t;

/* 'proto' = 0 for a server (learned from CONNECT), or the version a client connects with. */
void mq_decoder_init(mq_decoder_t *d, enum mq_role role, uint8_t proto, uint32_t max_packet_size);
void mq_decoder_fini(mq_decoder_t *d);

/* Fixes the protocol version for the packets that follow (a client after choosing it). */
void mq_decoder_set_proto(mq_decoder_t *d, uint8_t proto);

/* Decodes at most one packet from 'in'. Returns:
 *  - MQ_RC_SUCCESS: *pkt holds a packet; *used bytes of 'in' were taken. Views in *pkt point
 *    into 'in' or into the decoder, valid until the next call on 'd' or until 'in' goes away.
 *    A CONNECT also fixes d->proto.
 *  - MQ_RC_AGAIN: every byte of 'in' was taken (*used = len); feed more.
 *  - an MQTT 5 reason code: the stream is broken (MQ_RC_MALFORMED_PACKET,
 *    MQ_RC_PROTOCOL_ERROR, MQ_RC_PACKET_TOO_LARGE, MQ_RC_UNSUPPORTED_PROTOCOL_VERSION,
 *    MQ_RC_TOPIC_NAME_INVALID, ...) and *why says why in a few words. pkt->type is set when
 *    known; for a CONNECT, pkt->connect.level too, so the server can answer in the client's
 *    version. The caller closes the connection; the decoder must not be fed again.
 * Owning thread of the stream only. */
MQ_MUST_CHECK enum mq_rc mq_decoder_feed(mq_decoder_t *d, const uint8_t *in, size_t len,
                                         size_t *used, mq_packet_t *pkt, const char **why);

/* Decodes exactly one whole packet from 'buf' (for tests, fuzzing and tools): returns
 * MQ_RC_SUCCESS only when 'len' bytes are one complete valid packet, MQ_RC_AGAIN when they are
 * a prefix of one, a reason code otherwise. Views point into 'buf'. */
MQ_MUST_CHECK enum mq_rc mq_codec_decode(enum mq_role role, uint8_t proto, const uint8_t *buf,
                                         size_t len, mq_packet_t *pkt, const char **why);

/* Decodes a body (the bytes after the fixed header) of a packet whose first header byte is
 * 'hdr'; the remaining length is 'len'. The building block of both functions above. */
MQ_MUST_CHECK enum mq_rc mq_codec_decode_body(enum mq_role role, uint8_t proto, uint8_t hdr,
                                              const uint8_t *body, uint32_t len, mq_packet_t *pkt,
                                              const char **why);

/* Validates a v5 property block (without its length prefix) for context 'ctx' and fills *p. */
MQ_MUST_CHECK enum mq_rc mq_props_decode(enum mq_prop_ctx ctx, enum mq_role role, const uint8_t *in,
                                         size_t len, mq_props_t *p, const char **why);

/* Reads a Variable Byte Integer from in[0..len): returns the number of bytes read (1..4),
 * 0 when more bytes are needed, -1 when malformed (a fifth byte would be needed). */
int mq_codec_read_varint(const uint8_t *in, size_t len, uint32_t *value);

/* ---- encoding ---------------------------------------------------------------------------- */

/* Number of bytes the Variable Byte Integer 'v' (<= MQ_CODEC_MAX_REMAINING) takes: 1..4. */
static inline size_t mq_codec_varint_size(uint32_t v)
{
    return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : 4;
}

/* Writes 'v' in the minimal encoding [MQTT-1.5.5-1]; returns the bytes written. */
size_t mq_codec_write_varint(uint8_t *out, uint32_t v);

/* Exact size of the whole packet *pkt encoded for 'proto' (v5 properties only when proto is
 * MQ_PROTO_5); 0 when it cannot be encoded (remaining length over the protocol maximum). The
 * type comes from pkt->type; fixed-header flags are derived (PUBLISH from dup/qos/retain,
 * PUBREL/SUBSCRIBE/UNSUBSCRIBE 0b0010). */
size_t mq_codec_encoded_size(const mq_packet_t *pkt, uint8_t proto);

/* Encodes *pkt into out[0..cap). Returns the bytes written, or 0 when 'cap' is smaller than
 * mq_codec_encoded_size() or the packet cannot be encoded. Writes nothing else; never
 * allocates. Any thread. */
size_t mq_codec_encode(const mq_packet_t *pkt, uint8_t proto, uint8_t *out, size_t cap);

/* Appends *pkt, encoded for 'proto' as mq_codec_encode() does, to 'out' (grown as needed;
 * aborts on memory exhaustion like every mq_buf_t). Returns the bytes appended, or 0 when the
 * packet cannot be encoded (then 'out' is unchanged). Owner of 'out' only. */
MQ_MUST_CHECK size_t mq_codec_append(mq_buf_t *out, const mq_packet_t *pkt, uint8_t proto);

/* Typed helpers for the control packets a broker sends: each fills an mq_packet_t and
 * appends it through mq_codec_append(), so the bytes are the codec's. Reason codes and
 * properties go on the wire only for MQ_PROTO_5; 'props' may be NULL (none) and is copied,
 * its views must stay valid for the call only. The packet must be encodable (strings within
 * 65535 bytes, the whole within MQ_CODEC_MAX_REMAINING): anything else is a programmer error
 * and aborts. Before MQTT 5 a caller must not pass a v5-only 'rc' expecting it to be sent;
 * it is dropped with the properties. Owner of 'out' only. */

/* PUBACK, PUBREC, PUBREL (flags 0010) or PUBCOMP for packet 'id'. Without properties it is
 * 4 bytes, or 5 in v5 when rc is not 0 [MQTT-3.4.2.1]. 'props' NULL is the QoS 1/2 hot path:
 * the same bytes, written without filling an mq_packet_t. */
void mq_codec_append_ack(mq_buf_t *out, uint8_t type, uint16_t id, uint8_t proto, enum mq_rc rc,
                         const mq_props_t *props);

/* CONNACK. 'rc' is a v5 reason code, or a 3.1/3.1.1 return code 0..5. MQTT 3.1 has no
 * Session Present flag: 'session_present' is ignored there (the byte is reserved, 0). */
void mq_codec_append_connack(mq_buf_t *out, uint8_t proto, bool session_present, uint8_t rc,
                             const mq_props_t *props);

/* SUBACK: one granted QoS or failure code per entry of the SUBSCRIBE, codes[0..n). */
void mq_codec_append_suback(mq_buf_t *out, uint8_t proto, uint16_t id, const uint8_t *codes,
                            uint32_t n, const mq_props_t *props);

/* UNSUBACK: v5 writes codes[0..n) (one per entry of the UNSUBSCRIBE) and 'props'; before v5
 * the packet is only its packet id and 'codes' may be NULL with n 0. */
void mq_codec_append_unsuback(mq_buf_t *out, uint8_t proto, uint16_t id, const uint8_t *codes,
                              uint32_t n, const mq_props_t *props);

/* PINGRESP: the same 2 bytes in every version. */
void mq_codec_append_pingresp(mq_buf_t *out);

/* DISCONNECT with reason 'rc' and 'props' (v5; a server sends none before v5, where this
 * would write the client's 2-byte form). rc 0 and no properties is 2 bytes [MQTT-3.14.2.1]. */
void mq_codec_append_disconnect(mq_buf_t *out, uint8_t proto, enum mq_rc rc,
                                const mq_props_t *props);

/* AUTH (MQTT 5 only): reason 'rc' (0x00, 0x18 or 0x19) and 'props' (method, data, ...). */
void mq_codec_append_auth(mq_buf_t *out, enum mq_rc rc, const mq_props_t *props);

/* Size of the properties of 'p' for 'ctx' as written on the wire, without the length prefix. */
size_t mq_props_size(const mq_props_t *p);

/* Copies the properties of a decoded block (p->raw) in the order they came, except those
 * whose id bit is set in 'drop', to 'out' (NULL: only counts); returns the bytes. */
size_t mq_props_copy_raw(const mq_props_t *p, uint64_t drop, uint8_t *out);

/* Writes the properties of 'p' (mq_props_size(p) bytes, without the length prefix) at 'out';
 * returns the bytes written. 'p' must fit (strings within 65535 bytes). */
size_t mq_props_write(const mq_props_t *p, uint8_t *out);

/* Human-readable packet type name ("PUBLISH"), or "?" for an unknown value. */
const char *mq_ptype_str(uint8_t type);

#endif
