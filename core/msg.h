/* SPDX-License-Identifier: MIT */
/* core/msg.h - the immutable, refcounted application message shared by every worker. */
#ifndef MQ_CORE_MSG_H
#define MQ_CORE_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/epoch.h"

/* One PUBLISH as routed: built once by the receiving worker, then shared read-only by every
 * worker that delivers it (DESIGN.md rule 5). Its bytes are the encoded 3.1.1 PUBLISH at
 * QoS 0 without retain ('wire'); every other variant (QoS 1/2 with a packet id, retain set)
 * is that header patched, so topic and payload are copied into the message exactly once.
 * The MQTT 5 properties that travel with the message (payload format, content type,
 * response topic, correlation data, user properties, in order) follow 'wire', encoded once;
 * the per-delivery ones (Message Expiry Interval left, Subscription Identifiers, Topic
 * Alias) are added when a v5 PUBLISH is written (mq_msg_write_publish_v5). */
/* Who published a message: the security domain, client id and user name its ACL rules are
 * checked with again before it goes out as a retained message (check_retain_source). */
typedef struct mq_msg_src {
    uint8_t domain;    /* security domain (net/auth.h) */
    bool has_user;     /* connected with a user name */
    uint16_t port;     /* configured port of the listener of that domain (persistence) */
    uint16_t id_len;   /* bytes of the client id, first in 'bytes' */
    uint16_t user_len; /* bytes of the user name, after it */
    char bytes[];
} mq_msg_src_t;

typedef struct mq_msg {
    atomic_uint refs; /* mq_msg_ref/unref; freed at 0 */
    uint8_t qos;      /* QoS it was published with */
    bool retain;      /* published with the retain flag */
    uint16_t topic_len;
    uint32_t payload_len;
    uint32_t hdr_len;        /* fixed header bytes at the start of 'wire' (2..5) */
    uint32_t wire_len;       /* whole QoS 0 packet */
    uint32_t props_len;      /* v5 property bytes after 'wire' (no length prefix) */
    uint64_t origin;         /* client id hash of the publisher (No Local); 0 = the broker */
    uint64_t expire_at;      /* broker clock, ms (MQTT 5 Message Expiry); 0 = never */
    uint64_t rseq;           /* set by the retained store when it stores or clears with it:
                              * the change's number, in store order per topic (persistence) */
    mq_epoch_entry_t retire; /* used once: when the retained store lets go of it */
    mq_msg_src_t *src;       /* owned, or NULL: who published it (check_retain_source), set
                              * before the message is shared; NULL for the broker's own and
                              * for messages restored from persistence */
    uint8_t wire[];          /* hdr | topic length | topic | payload | v5 properties */
} mq_msg_t;

/* Builds a message; returns it with one reference, owned by the caller. NULL when the size
 * is beyond what a PUBLISH can carry (the caller has checked limits before). Any thread. */
mq_msg_t *mq_msg_new(const char *topic, size_t topic_len, const void *payload, size_t payload_len,
                     uint8_t qos, bool retain);

static inline mq_msg_t *mq_msg_ref(mq_msg_t *m)
{
    /* relaxed: a new reference is always made from an existing one (h2o's refcount) */
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

struct mq_props;

/* As mq_msg_new(), keeping the v5 properties of 'props' (a PUBLISH's or a will's) that
 * travel with a message: not the Topic Alias, Subscription Identifiers, Will Delay Interval
 * or Message Expiry Interval (the caller sets m->expire_at from the latter). 'props' may be
 * NULL. */
mq_msg_t *mq_msg_new_props(const char *topic, size_t topic_len, const void *payload,
                           size_t payload_len, uint8_t qos, bool retain,
                           const struct mq_props *props);

/* Records who published 'm' (mq_msg_src_t), before it is shared. 'user' NULL: none. */
void mq_msg_set_src(mq_msg_t *m, uint8_t domain, uint16_t port, mq_str_t client_id,
                    const mq_str_t *user);

/* Drops one reference; the last one frees the message. Any thread. */
void mq_msg_unref(mq_msg_t *m);

static inline mq_str_t mq_msg_topic(const mq_msg_t *m)
{
    return (mq_str_t){(const char *)m->wire + m->hdr_len + 2, m->topic_len};
}

static inline mq_str_t mq_msg_payload(const mq_msg_t *m)
{
    return (mq_str_t){(const char *)m->wire + m->hdr_len + 2 + m->topic_len, m->payload_len};
}

/* Size of the PUBLISH of 'm' delivered at 'qos' (a packet id is added for QoS > 0). */
size_t mq_msg_publish_size(const mq_msg_t *m, uint8_t qos);

/* Writes the 3.1/3.1.1 PUBLISH of 'm' at 'qos' with 'packet_id', 'retain' and 'dup' into 'out'
 * (mq_msg_publish_size(m, qos) bytes); returns the bytes written. */
size_t mq_msg_write_publish(const mq_msg_t *m, uint8_t qos, uint16_t packet_id, bool retain,
                            bool dup, uint8_t *out);

/* As the two above, with the first 'skip' bytes of the topic left out (a listener's
 * mount_point, which its clients do not see; skip < m->topic_len). */
size_t mq_msg_publish_size_skip(const mq_msg_t *m, uint8_t qos, uint16_t skip);
size_t mq_msg_write_publish_skip(const mq_msg_t *m, uint8_t qos, uint16_t packet_id, bool retain,
                                 bool dup, uint16_t skip, uint8_t *out);

/* What a v5 PUBLISH adds per delivery. */
typedef struct mq_msg_v5 {
    bool has_expiry; /* write a Message Expiry Interval of 'expiry_left' seconds */
    uint32_t expiry_left;
    const uint32_t *sub_ids; /* Subscription Identifiers, n_sub_ids of them */
    uint32_t n_sub_ids;
    uint16_t alias;  /* Topic Alias to send, 0 = none */
    bool alias_only; /* the alias is known to the client: the topic is sent empty */
    uint16_t skip;   /* leading topic bytes left out (a mount_point); < the topic's length */
} mq_msg_v5_t;

/* Size and bytes of the MQTT 5 PUBLISH of 'm' at 'qos' with the per-delivery parts 'x'. */
size_t mq_msg_publish_size_v5(const mq_msg_t *m, uint8_t qos, const mq_msg_v5_t *x);
size_t mq_msg_write_publish_v5(const mq_msg_t *m, uint8_t qos, uint16_t packet_id, bool retain,
                               bool dup, const mq_msg_v5_t *x, uint8_t *out);

#endif
