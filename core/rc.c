/* SPDX-License-Identifier: MIT */
/* core/rc.c - names of result codes, for logs and tools. */
#include "core/rc.h"

/* The specification's names (MQTT v5 §2.4), then the internal codes. */
static const struct {
    enum mq_rc rc;
    const char *name;
} RC_NAMES[] = {
    {MQ_RC_SUCCESS, "Success"},
    {MQ_RC_GRANTED_QOS1, "Granted QoS 1"},
    {MQ_RC_GRANTED_QOS2, "Granted QoS 2"},
    {MQ_RC_DISCONNECT_WITH_WILL, "Disconnect with Will Message"},
    {MQ_RC_NO_MATCHING_SUBSCRIBERS, "No matching subscribers"},
    {MQ_RC_NO_SUBSCRIPTION_EXISTED, "No subscription existed"},
    {MQ_RC_CONTINUE_AUTHENTICATION, "Continue authentication"},
    {MQ_RC_REAUTHENTICATE, "Re-authenticate"},
    {MQ_RC_UNSPECIFIED, "Unspecified error"},
    {MQ_RC_MALFORMED_PACKET, "Malformed Packet"},
    {MQ_RC_PROTOCOL_ERROR, "Protocol Error"},
    {MQ_RC_IMPLEMENTATION_SPECIFIC, "Implementation specific error"},
    {MQ_RC_UNSUPPORTED_PROTOCOL_VERSION, "Unsupported Protocol Version"},
    {MQ_RC_CLIENT_ID_NOT_VALID, "Client Identifier not valid"},
    {MQ_RC_BAD_USERNAME_OR_PASSWORD, "Bad User Name or Password"},
    {MQ_RC_NOT_AUTHORIZED, "Not authorized"},
    {MQ_RC_SERVER_UNAVAILABLE, "Server unavailable"},
    {MQ_RC_SERVER_BUSY, "Server busy"},
    {MQ_RC_BANNED, "Banned"},
    {MQ_RC_SERVER_SHUTTING_DOWN, "Server shutting down"},
    {MQ_RC_BAD_AUTHENTICATION_METHOD, "Bad authentication method"},
    {MQ_RC_KEEP_ALIVE_TIMEOUT, "Keep Alive timeout"},
    {MQ_RC_SESSION_TAKEN_OVER, "Session taken over"},
    {MQ_RC_TOPIC_FILTER_INVALID, "Topic Filter invalid"},
    {MQ_RC_TOPIC_NAME_INVALID, "Topic Name invalid"},
    {MQ_RC_PACKET_ID_IN_USE, "Packet Identifier in use"},
    {MQ_RC_PACKET_ID_NOT_FOUND, "Packet Identifier not found"},
    {MQ_RC_RECEIVE_MAXIMUM_EXCEEDED, "Receive Maximum exceeded"},
    {MQ_RC_TOPIC_ALIAS_INVALID, "Topic Alias invalid"},
    {MQ_RC_PACKET_TOO_LARGE, "Packet too large"},
    {MQ_RC_MESSAGE_RATE_TOO_HIGH, "Message rate too high"},
    {MQ_RC_QUOTA_EXCEEDED, "Quota exceeded"},
    {MQ_RC_ADMINISTRATIVE_ACTION, "Administrative action"},
    {MQ_RC_PAYLOAD_FORMAT_INVALID, "Payload format invalid"},
    {MQ_RC_RETAIN_NOT_SUPPORTED, "Retain not supported"},
    {MQ_RC_QOS_NOT_SUPPORTED, "QoS not supported"},
    {MQ_RC_USE_ANOTHER_SERVER, "Use another server"},
    {MQ_RC_SERVER_MOVED, "Server moved"},
    {MQ_RC_SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, "Shared Subscriptions not supported"},
    {MQ_RC_CONNECTION_RATE_EXCEEDED, "Connection rate exceeded"},
    {MQ_RC_MAXIMUM_CONNECT_TIME, "Maximum connect time"},
    {MQ_RC_SUBSCRIPTION_IDS_NOT_SUPPORTED, "Subscription Identifiers not supported"},
    {MQ_RC_WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED, "Wildcard Subscriptions not supported"},
    {MQ_RC_AGAIN, "Need more bytes"},
};

const char *mq_rc_str(enum mq_rc rc)
{
    for (size_t i = 0; i < MQ_ARRAY_LEN(RC_NAMES); i++)
        if (RC_NAMES[i].rc == rc)
            return RC_NAMES[i].name;
    return "Unknown";
}
