/* SPDX-License-Identifier: MIT */
/* net/trace.c - formats one debug line per packet in and out, as mosquitto -v does. */
#include "net/trace.h"

#include <stdio.h>

/* mosquitto names a client by its id; a connection refused before it had a session has
 * none here (mosquitto would print the id from the refused CONNECT). */
static const char *who(const client_t *cl)
{
    return cl->sess ? cl->sess->client_id : "<unknown>";
}

static void publish_line(const char *dir, const char *prep, const char *id, const mq_publish_t *p)
{
    MQ_LOG(MQ_LOG_DEBUG, "%s PUBLISH %s %s (d%d, q%d, r%d, m%u, '%.*s', ... (%zu bytes))", dir,
           prep, id, p->dup, p->qos, p->retain, p->packet_id, (int)p->topic.len, p->topic.ptr,
           p->payload.len);
}

static void sub_lines(const client_t *cl, const mq_packet_t *pkt)
{
    size_t pos = 0;
    mq_sub_entry_t e;
    while (mq_sub_next(pkt, cl->proto, &pos, &e)) {
        if (pkt->type == MQ_SUBSCRIBE)
            MQ_LOG(MQ_LOG_DEBUG, "\t%.*s (QoS %d)", (int)e.filter.len, e.filter.ptr, e.qos);
        else
            MQ_LOG(MQ_LOG_DEBUG, "\t%.*s", (int)e.filter.len, e.filter.ptr);
    }
}

void mq_trace_in(const client_t *cl, const mq_packet_t *pkt)
{
    const char *id = who(cl);
    switch (pkt->type) {
    case MQ_CONNECT: /* the NOTICE line "New client connected from ..." says it */
        return;
    case MQ_PUBLISH:
        publish_line("Received", "from", id, &pkt->publish);
        return;
    case MQ_PUBACK:
    case MQ_PUBCOMP:
        MQ_LOG(MQ_LOG_DEBUG, "Received %s from %s (Mid: %u, RC:%u)", mq_ptype_str(pkt->type), id,
               pkt->ack.packet_id, pkt->ack.rc);
        return;
    case MQ_PUBREC:
    case MQ_PUBREL:
        MQ_LOG(MQ_LOG_DEBUG, "Received %s from %s (Mid: %u)", mq_ptype_str(pkt->type), id,
               pkt->ack.packet_id);
        return;
    case MQ_SUBSCRIBE:
    case MQ_UNSUBSCRIBE:
        MQ_LOG(MQ_LOG_DEBUG, "Received %s from %s", mq_ptype_str(pkt->type), id);
        sub_lines(cl, pkt);
        return;
    default:
        MQ_LOG(MQ_LOG_DEBUG, "Received %s from %s", mq_ptype_str(pkt->type), id);
        return;
    }
}

static void out_line(const client_t *cl, const mq_packet_t *pkt)
{
    const char *id = who(cl);
    switch (pkt->type) {
    case MQ_CONNACK:
        MQ_LOG(MQ_LOG_DEBUG, "Sending CONNACK to %s (%d, %u)", id, pkt->connack.session_present,
               pkt->connack.rc);
        return;
    case MQ_PUBLISH:
        publish_line("Sending", "to", id, &pkt->publish);
        return;
    case MQ_PUBACK:
    case MQ_PUBREC:
        MQ_LOG(MQ_LOG_DEBUG, "Sending %s to %s (m%u, rc%u)", mq_ptype_str(pkt->type), id,
               pkt->ack.packet_id, pkt->ack.rc);
        return;
    case MQ_PUBREL:
    case MQ_PUBCOMP:
        MQ_LOG(MQ_LOG_DEBUG, "Sending %s to %s (m%u)", mq_ptype_str(pkt->type), id,
               pkt->ack.packet_id);
        return;
    default:
        MQ_LOG(MQ_LOG_DEBUG, "Sending %s to %s", mq_ptype_str(pkt->type), id);
        return;
    }
}

void mq_trace_out(mq_conn_t *c, const uint8_t *p, size_t len)
{
    const client_t *cl = client_of(c);
    uint8_t proto = cl->proto ? cl->proto : MQ_PROTO_311;
    while (len > 1) {
        uint32_t rem;
        int n = mq_codec_read_varint(p + 1, len - 1, &rem);
        if (n <= 0 || rem > len - 1 - (size_t)n)
            return; /* the protocol writes whole packets: this is not one */
        mq_packet_t pkt;
        const char *why;
        if (mq_codec_decode_body(MQ_ROLE_CLIENT, proto, p[0], p + 1 + n, rem, &pkt, &why) ==
            MQ_RC_SUCCESS)
            out_line(cl, &pkt);
        else
            MQ_LOG(MQ_LOG_DEBUG, "Sending %s to %s", mq_ptype_str(p[0] >> 4), who(cl));
        p += 1 + (size_t)n + rem;
        len -= 1 + (size_t)n + rem;
    }
}
