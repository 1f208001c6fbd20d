/* SPDX-License-Identifier: MIT */
/* core/rc.h - result codes (valued as MQTT v5 reason codes), assertions and attributes. */
#ifndef MQ_CORE_RC_H
#define MQ_CORE_RC_H

#include <stdio.h>
#include <stdlib.h>

#define MQ_MUST_CHECK __attribute__((warn_unused_result))
#define MQ_LIKELY(x) __builtin_expect(!!(x), 1)
#define MQ_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MQ_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Programmer errors only, never client input (STYLE.md §5). Active in every build type:
 * a broken invariant in a broker is worth a crash report more than silent corruption. */
#define MQ_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (MQ_UNLIKELY(!(cond))) {                                                                \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Protocol results. Values below 0x100 are MQTT v5 reason codes (§2.4) and may go on the
 * wire; values from 0x100 up are internal and never do. */
enum mq_rc {
    MQ_RC_SUCCESS = 0x00, /* also Normal disconnection, Granted QoS 0 */
    MQ_RC_GRANTED_QOS1 = 0x01,
    MQ_RC_GRANTED_QOS2 = 0x02,
    MQ_RC_DISCONNECT_WITH_WILL = 0x04,
    MQ_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQ_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQ_RC_CONTINUE_AUTHENTICATION = 0x18,
    MQ_RC_REAUTHENTICATE = 0x19,
    MQ_RC_UNSPECIFIED = 0x80,
    MQ_RC_MALFORMED_PACKET = 0x81,
    MQ_RC_PROTOCOL_ERROR = 0x82,
    MQ_RC_IMPLEMENTATION_SPECIFIC = 0x83,
    MQ_RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84,
    MQ_RC_CLIENT_ID_NOT_VALID = 0x85,
    MQ_RC_BAD_USERNAME_OR_PASSWORD = 0x86,
    MQ_RC_NOT_AUTHORIZED = 0x87,
    MQ_RC_SERVER_UNAVAILABLE = 0x88,
    MQ_RC_SERVER_BUSY = 0x89,
    MQ_RC_BANNED = 0x8A,
    MQ_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQ_RC_BAD_AUTHENTICATION_METHOD = 0x8C,
    MQ_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQ_RC_SESSION_TAKEN_OVER = 0x8E,
    MQ_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQ_RC_TOPIC_NAME_INVALID = 0x90,
    MQ_RC_PACKET_ID_IN_USE = 0x91,
    MQ_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQ_RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93,
    MQ_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQ_RC_PACKET_TOO_LARGE = 0x95,
    MQ_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQ_RC_QUOTA_EXCEEDED = 0x97,
    MQ_RC_ADMINISTRATIVE_ACTION = 0x98,
    MQ_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQ_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQ_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQ_RC_USE_ANOTHER_SERVER = 0x9C,
    MQ_RC_SERVER_MOVED = 0x9D,
    MQ_RC_SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E,
    MQ_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQ_RC_MAXIMUM_CONNECT_TIME = 0xA0,
    MQ_RC_SUBSCRIPTION_IDS_NOT_SUPPORTED = 0xA1,
    MQ_RC_WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2,

    MQ_RC_AGAIN = 0x100, /* internal: need more bytes (nginx NGX_AGAIN) */
};

/* Returns the specification's name of 'rc' ("Malformed Packet"), or "Unknown". */
const char *mq_rc_str(enum mq_rc rc);

#endif
