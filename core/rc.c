/* SPDX-License-Identifier: MIT */
/* core/rc.c - names of result codes, for logs and tools. */
#include "core/rc.h"

const char *mq_rc_str(enum mq_rc rc)
{
    switch (rc) {
    case MQ_RC_SUCCESS:
        return "Success";
    case MQ_RC_GRANTED_QOS1:
        return "Granted QoS 1";
    case MQ_RC_GRANTED_QOS2:
        return "Granted QoS 2";
    case MQ_RC_DISCONNECT_WITH_WILL:
        return "Disconnect with Will Message";
    case MQ_RC_NO_MATCHING_SUBSCRIBERS:
        return "No matching subscribers";
    case MQ_RC_NO_SUBSCRIPTION_EXISTED:
        return "No subscription existed";
    case MQ_RC_CONTINUE_AUTHENTICATION:
        return "Continue authentication";
    case MQ_RC_REAUTHENTICATE:
        return "Re-authenticate";
    case MQ_RC_UNSPECIFIED:
        return "Unspecified error";
    case MQ_RC_MALFORMED_PACKET:
        return "Malformed Packet";
    case MQ_RC_PROTOCOL_ERROR:
        return "Protocol Error";
    case MQ_RC_IMPLEMENTATION_SPECIFIC:
        return "Implementation specific error";
    case MQ_RC_UNSUPPORTED_PROTOCOL_VERSION:
        return "Unsupported Protocol Version";
    case MQ_RC_CLIENT_ID_NOT_VALID:
        return "Client Identifier not valid";
    case MQ_RC_BAD_USERNAME_OR_PASSWORD:
        return "Bad User Name or Password";
    case MQ_RC_NOT_AUTHORIZED:
        return "Not authorized";
    case MQ_RC_SERVER_UNAVAILABLE:
        return "Server unavailable";
    case MQ_RC_SERVER_BUSY:
        return "Server busy";
    case MQ_RC_BANNED:
        return "Banned";
    case MQ_RC_SERVER_SHUTTING_DOWN:
        return "Server shutting down";
    case MQ_RC_BAD_AUTHENTICATION_METHOD:
        return "Bad authentication method";
    case MQ_RC_KEEP_ALIVE_TIMEOUT:
        return "Keep Alive timeout";
    case MQ_RC_SESSION_TAKEN_OVER:
        return "Session taken over";
    case MQ_RC_TOPIC_FILTER_INVALID:
        return "Topic Filter invalid";
    case MQ_RC_TOPIC_NAME_INVALID:
        return "Topic Name invalid";
    case MQ_RC_PACKET_ID_IN_USE:
        return "Packet Identifier in use";
    case MQ_RC_PACKET_ID_NOT_FOUND:
        return "Packet Identifier not found";
    case MQ_RC_RECEIVE_MAXIMUM_EXCEEDED:
        return "Receive Maximum exceeded";
    case MQ_RC_TOPIC_ALIAS_INVALID:
        return "Topic Alias invalid";
    case MQ_RC_PACKET_TOO_LARGE:
        return "Packet too large";
    case MQ_RC_MESSAGE_RATE_TOO_HIGH:
        return "Message rate too high";
    case MQ_RC_QUOTA_EXCEEDED:
        return "Quota exceeded";
    case MQ_RC_ADMINISTRATIVE_ACTION:
        return "Administrative action";
    case MQ_RC_PAYLOAD_FORMAT_INVALID:
        return "Payload format invalid";
    case MQ_RC_RETAIN_NOT_SUPPORTED:
        return "Retain not supported";
    case MQ_RC_QOS_NOT_SUPPORTED:
        return "QoS not supported";
    case MQ_RC_USE_ANOTHER_SERVER:
        return "Use another server";
    case MQ_RC_SERVER_MOVED:
        return "Server moved";
    case MQ_RC_SHARED_SUBSCRIPTIONS_NOT_SUPPORTED:
        return "Shared Subscriptions not supported";
    case MQ_RC_CONNECTION_RATE_EXCEEDED:
        return "Connection rate exceeded";
    case MQ_RC_MAXIMUM_CONNECT_TIME:
        return "Maximum connect time";
    case MQ_RC_SUBSCRIPTION_IDS_NOT_SUPPORTED:
        return "Subscription Identifiers not supported";
    case MQ_RC_WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED:
        return "Wildcard Subscriptions not supported";
    case MQ_RC_AGAIN:
        return "Need more bytes";
    }
    return "Unknown";
}
