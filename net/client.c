/* SPDX-License-Identifier: MIT */
/* net/client.c - a client's output through the codec, ending it, its session link. */
#include "net/client.h"

#include "core/log.h"

void mq_client_send_ack(mq_proto_t *p, client_t *cl, uint8_t type, uint16_t packet_id)
{
    mq_codec_append_ack(mq_conn_out(&cl->conn), type, packet_id, cl->proto, MQ_RC_SUCCESS, NULL);
    p->cnt.msgs_sent++;
    mq_conn_mark_dirty(&cl->conn);
}

void mq_client_send_connack(mq_proto_t *p, client_t *cl, bool session_present, uint8_t rc)
{
    mq_codec_append_connack(mq_conn_out(&cl->conn), cl->proto, session_present, rc, NULL);
    p->cnt.msgs_sent++;
    mq_conn_mark_dirty(&cl->conn);
}

void mq_client_end(client_t *cl, bool with_will, const char *why)
{
    if (cl->conn.state == MQ_CONN_CLOSING)
        return;
    cl->closing_by_us = true;
    cl->will_pending = with_will && cl->will != NULL;
    mq_conn_close(&cl->conn, why);
}

void mq_client_refuse(mq_proto_t *p, client_t *cl, uint8_t code, const char *why)
{
    mq_client_send_connack(p, cl, false, code);
    mq_client_end(cl, false, why);
}

void mq_client_detach(mq_proto_t *p, client_t *cl)
{
    mq_sess_detach(cl->sess);
    cl->sess = NULL;
    p->n_online--;
}

void mq_client_destroy_sess(mq_proto_t *p, mq_sess_t *s)
{
    p->cnt.retired.dropped += s->stats.dropped;
    p->cnt.retired.publish_sent += s->stats.publish_sent;
    p->cnt.retired.publish_bytes += s->stats.publish_bytes;
    p->cnt.retired.packets_sent += s->stats.packets_sent;
    mq_route_drop(p->route, s);
}
