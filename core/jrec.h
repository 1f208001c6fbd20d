/* SPDX-License-Identifier: MIT */
/* core/jrec.h - payloads of the persistence records: plain structs to framed bytes and back. */
#ifndef MQ_CORE_JREC_H
#define MQ_CORE_JREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/journal.h"
#include "core/rc.h"

/* What persistence keeps (issue 11), one record type each (enum mq_journal_type). Payload
 * fields are little-endian fixed-width integers; "s16" is a u16 length and bytes, "b32" a u32
 * length and bytes. MQTT 5 properties are kept as the raw encoded property block (without its
 * length prefix), so a property added to the protocol never changes the format.
 *
 *   FILE_HEADER  u8 version, u8 kind, u16 worker, u16 n_workers, u64 generation,
 *                i64 wall_time, u64 salt
 *   SNAP_END     u64 generation, u64 n_records
 *   RETAIN_SET   u64 seq, i64 expiry_at, u8 qos, s16 topic, b32 payload, b32 props,
 *                [the publisher (version 2, when known): u16 port, u8 has_username,
 *                s16 client_id, s16 username]
 *   RETAIN_CLEAR u64 seq, s16 topic
 *   SESS_PUT     s16 client_id, u8 flags, u8 level, u32 expiry_interval, i64 disconnected_at,
 *                s16 username, [has_will: u8 will_qos, u32 will_delay, s16 will_topic,
 *                b32 will_payload, b32 will_props]
 *   SESS_DEL     s16 client_id
 *   SUB_ADD      s16 client_id, s16 filter, u8 options, u32 sub_id
 *   SUB_DEL      s16 client_id, s16 filter
 *   MSG_PUT      s16 client_id, u64 mid, u16 packet_id, u8 qos, u8 state, u8 flags,
 *                i64 expiry_at, s16 topic, b32 payload, b32 props
 *   MSG_UPDATE   s16 client_id, u64 mid, u16 packet_id, u8 state, u8 flags
 *   MSG_DEL      s16 client_id, u64 mid
 *   QOS2_IN_ADD, QOS2_IN_DEL  s16 client_id, u16 packet_id
 *
 * Times are wall-clock seconds since the Unix epoch (so expiry counts the time the broker was
 * down); 0 means none. Decoding is strict: every length is checked against what remains,
 * strings are checked as MQTT requires (UTF-8, topic names, filters), property blocks are
 * validated, and trailing bytes are malformed. Pure; any thread. */

#define MQ_JREC_VERSION                                                                            \
    2 /* format version written in FILE_HEADER; 1 (no publisher of                                 \
       * retained messages) is read as well */

/* Wall-clock microseconds since the epoch: the scale of the numbers that order persistence
 * records across restarts (a retained change's seq, a session message's mid). Any thread. */
uint64_t mq_jrec_wall_us(void);

/* The number that follows 'last' on that scale: max(last + 1, 'now_us'). */
static inline uint64_t mq_jrec_next(uint64_t last, uint64_t now_us)
{
    return now_us > last ? now_us : last + 1;
}

enum mq_jrec_kind {
    MQ_JREC_KIND_WORKER = 1,   /* a worker's journal of the sessions it owns */
    MQ_JREC_KIND_RETAINED = 2, /* the retained journal */
    MQ_JREC_KIND_SNAPSHOT = 3, /* a snapshot: complete only when SNAP_END closes it */
};

typedef struct mq_jrec_header {
    uint8_t version;     /* MQ_JREC_VERSION */
    uint8_t kind;        /* enum mq_jrec_kind */
    uint16_t worker;     /* KIND_WORKER: index of the writer, < n_workers; else 0 */
    uint16_t n_workers;  /* workers of the broker that wrote the file, >= 1 */
    uint64_t generation; /* journals of a generation follow the snapshot of the same one */
    int64_t wall_time;   /* when the file was begun */
    uint64_t salt;       /* checksum salt of every later record of the file */
} mq_jrec_header_t;

typedef struct mq_jrec_snap_end {
    uint64_t generation; /* that of the snapshot's FILE_HEADER */
    uint64_t n_records;  /* records between FILE_HEADER and SNAP_END */
} mq_jrec_snap_end_t;

/* An application message: views into the record (decoded) or the caller's bytes (encoded). */
typedef struct mq_jrec_msg {
    mq_str_t topic;    /* a valid topic name */
    mq_str_t payload;  /* up to MQ_CODEC_MAX_REMAINING bytes */
    mq_str_t props;    /* v5 PUBLISH (will: Will) property block; empty before v5 */
    uint8_t qos;       /* 0..2 */
    int64_t expiry_at; /* message expiry deadline; 0 = never (not stored for a will) */
} mq_jrec_msg_t;

/* RETAIN_SET (msg) and RETAIN_CLEAR (msg.topic only). 'seq' orders changes of one topic made
 * by different writers: replay keeps the highest; 0 = in file order. */
/* Who published a retained message, for check_retain_source (core/msg.h mq_msg_src_t). */
typedef struct mq_jrec_src {
    bool present; /* else the record ends after the message */
    bool has_username;
    uint16_t port;      /* the configured port of the listener it came through (which names
                         * its security domain with per_listener_settings); 0: none */
    mq_str_t client_id; /* 1..65535 bytes of UTF-8 */
    mq_str_t username;  /* when has_username: UTF-8 */
} mq_jrec_src_t;

typedef struct mq_jrec_retain {
    uint64_t seq;
    mq_jrec_msg_t msg;
    mq_jrec_src_t src; /* RETAIN_SET only */
} mq_jrec_retain_t;

typedef struct mq_jrec_sess {
    mq_str_t client_id; /* 1..65535 bytes of UTF-8 */
    mq_str_t username;  /* when has_username */
    bool has_username;
    bool clean; /* clean session / clean start flag of the last CONNECT */
    bool has_will;
    bool will_retain;
    uint8_t level;            /* protocol level: 3, 4 or 5 (enum mq_proto) */
    uint32_t expiry_interval; /* session expiry, seconds; 0xFFFFFFFF = never */
    int64_t disconnected_at;  /* when the client went away; 0 = connected when written */
    uint32_t will_delay;      /* seconds after disconnected_at */
    mq_jrec_msg_t will;       /* when has_will (will.expiry_at unused) */
} mq_jrec_sess_t;

/* The MQTT v5 Subscription Options byte (§3.8.3.1): bits 0-1 QoS, 2 No Local, 3 Retain As
 * Published, 4-5 Retain Handling; 6-7 zero. Before v5 only the QoS bits are set. */
#define MQ_JREC_SUBOPT_QOS 0x03u
#define MQ_JREC_SUBOPT_NO_LOCAL 0x04u
#define MQ_JREC_SUBOPT_RAP 0x08u
#define MQ_JREC_SUBOPT_RH_SHIFT 4

typedef struct mq_jrec_sub {
    mq_str_t client_id;
    mq_str_t filter; /* a valid filter, "$share/..." included */
    uint8_t options; /* SUB_ADD: subscription options byte */
    uint32_t sub_id; /* SUB_ADD: v5 Subscription Identifier, 0 = none */
} mq_jrec_sub_t;

/* Flags of an outbound message. */
#define MQ_JREC_MSG_RETAIN 0x01u /* the retain flag to send */
#define MQ_JREC_MSG_DUP 0x02u    /* sent at least once: re-send with DUP */

/* MSG_PUT (everything), MSG_UPDATE (client_id, mid, packet_id, state, flags), MSG_DEL
 * (client_id, mid). 'mid' numbers a session's outbound messages in delivery order, across
 * queue and in-flight window alike; it is never reused within a session. */
typedef struct mq_jrec_out {
    mq_str_t client_id;
    uint64_t mid;
    uint16_t packet_id; /* 0 while queued without one */
    uint8_t state;      /* enum mq_out_state (core/sess.h); MQ_OUT_PUBREL only at QoS 2 */
    uint8_t flags;      /* MQ_JREC_MSG_* */
    mq_jrec_msg_t msg;  /* MSG_PUT; msg.qos is the QoS it is delivered at */
} mq_jrec_out_t;

typedef struct mq_jrec_qos2 {
    mq_str_t client_id;
    uint16_t packet_id; /* non-zero */
} mq_jrec_qos2_t;

/* One decoded record, or one to encode: 'type' selects the member. */
typedef struct mq_jrec {
    uint8_t type; /* enum mq_journal_type */
    union {
        mq_jrec_header_t header;     /* FILE_HEADER */
        mq_jrec_snap_end_t snap_end; /* SNAP_END */
        mq_jrec_retain_t retain;     /* RETAIN_SET, RETAIN_CLEAR */
        mq_jrec_sess_t sess;         /* SESS_PUT; SESS_DEL (client_id only) */
        mq_jrec_sub_t sub;           /* SUB_ADD, SUB_DEL */
        mq_jrec_out_t out;           /* MSG_PUT, MSG_UPDATE, MSG_DEL */
        mq_jrec_qos2_t qos2;         /* QOS2_IN_ADD, QOS2_IN_DEL */
    };
} mq_jrec_t;

/* The publisher of 'm' as RETAIN_SET keeps it (views into m->src; absent without one). */
struct mq_msg;
mq_jrec_src_t mq_jrec_src_of(const struct mq_msg *m);

/* The client id of a session-scoped record (SESS_*, SUB_*, MSG_*, QOS2_*), else an empty view:
 * what start-up needs to route a record to its session and owner. */
mq_str_t mq_jrec_client_id(const mq_jrec_t *r);

/* Appends *r as one framed record (core/journal.h) with checksum salt 'salt' (always 0 for a
 * FILE_HEADER, which carries the salt of the rest) to 'out'. The
 * fields must be what mq_jrec_decode accepts (lengths within their prefix sizes are asserted;
 * the content is the caller's, already validated at the protocol edge). Returns the offset of
 * the record in 'out'. */
size_t mq_jrec_encode(mq_buf_t *out, const mq_jrec_t *r, uint64_t salt);

/* Decodes the payload of a record of 'type' into *r (views into 'payload'). Returns
 * MQ_RC_SUCCESS; MQ_RC_UNSUPPORTED_PROTOCOL_VERSION for a FILE_HEADER of another format
 * version (only r->header.version and kind are set); or MQ_RC_MALFORMED_PACKET with *why
 * (an unknown type, a short or overlong payload, a bad value). */
MQ_MUST_CHECK enum mq_rc mq_jrec_decode(uint8_t type, mq_str_t payload, mq_jrec_t *r,
                                        const char **why);

/* Name of a record type ("SESS_PUT"), or "?" for an unknown one; for logs. */
const char *mq_jrec_type_str(uint8_t type);

#endif
