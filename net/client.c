/* SPDX-License-Identifier: MIT */
/* net/client.c - a client's output through the codec, ending it, its session link. */
#include "net/client.h"

#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/topic.h"

void mq_client_send_ack_rc(mq_proto_t *p, client_t *cl, uint8_t type, uint16_t packet_id,
                           enum mq_rc rc)
{
    mq_codec_append_ack(mq_conn_out(&cl->conn), type, packet_id, cl->proto, rc, NULL);
    p->cnt.msgs_sent++;
    mq_conn_mark_dirty(&cl->conn);
}

void mq_client_send_connack(mq_proto_t *p, client_t *cl, bool session_present, uint8_t rc,
                            const mq_props_t *props)
{
    mq_codec_append_connack(mq_conn_out(&cl->conn), cl->proto, session_present, rc, props);
    p->cnt.msgs_sent++;
    mq_conn_mark_dirty(&cl->conn);
}

/* The MQTT 5 reason for a 3.1.1 CONNACK return code (§3.2.2.2). */
static enum mq_rc v5_reason(uint8_t code)
{
    static const uint8_t map[] = {
        [CONNACK_ACCEPTED] = MQ_RC_SUCCESS,
        [CONNACK_BAD_PROTOCOL] = MQ_RC_UNSUPPORTED_PROTOCOL_VERSION,
        [CONNACK_ID_REJECTED] = MQ_RC_CLIENT_ID_NOT_VALID,
        [CONNACK_UNAVAILABLE] = MQ_RC_SERVER_UNAVAILABLE,
        [CONNACK_BAD_CREDENTIALS] = MQ_RC_BAD_USERNAME_OR_PASSWORD,
        [CONNACK_NOT_AUTHORIZED] = MQ_RC_NOT_AUTHORIZED,
    };
    return code < MQ_ARRAY_LEN(map) ? (enum mq_rc)map[code] : (enum mq_rc)code;
}

/* A Reason String property for 'why', or no properties (NULL) when the client asked for
 * none or there is nothing to say. */
static const mq_props_t *reason_props(const client_t *cl, const char *why, mq_props_t *pr)
{
    if (why == NULL || !cl->problem_info)
        return NULL;
    *pr = (mq_props_t){0};
    pr->reason_string = (mq_str_t){why, strlen(why) > 200 ? 200 : strlen(why)};
    mq_props_set(pr, MQ_PROP_REASON_STRING);
    return pr;
}

/* True for the reason codes a DISCONNECT may carry (MQTT 5 §3.14.2.1). */
static bool disconnect_code(enum mq_rc rc)
{
    static const uint8_t ok[] = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
    for (size_t i = 0; i < sizeof(ok); i++)
        if (ok[i] == rc)
            return true;
    return false;
}

void mq_client_end_rc(mq_proto_t *p, client_t *cl, enum mq_rc rc, bool with_will, const char *why)
{
    if (!disconnect_code(rc)) /* e.g. a decoder's 0x91: the nearest a DISCONNECT may say */
        rc = MQ_RC_PROTOCOL_ERROR;
    if (cl->conn.state == MQ_CONN_ACTIVE && cl->proto == MQ_PROTO_5) {
        mq_props_t pr;
        mq_codec_append_disconnect(mq_conn_out(&cl->conn), MQ_PROTO_5, rc,
                                   reason_props(cl, why, &pr));
        p->cnt.msgs_sent++;
    }
    mq_client_end(cl, with_will, why);
}

void mq_client_end(client_t *cl, bool with_will, const char *why)
{
    if (cl->conn.state == MQ_CONN_CLOSING) {
        /* the peer closed first (a network failure: its will was due), but the protocol now
         * says no will (a take-over by a reconnect of a session that goes on cancels a
         * delayed will [MQTT-3.1.3-10]) */
        if (!with_will)
            cl->will_pending = false;
        return;
    }
    cl->closing_by_us = true;
    cl->will_pending = with_will && cl->will != NULL;
    mq_conn_close(&cl->conn, why);
}

void mq_client_refuse(mq_proto_t *p, client_t *cl, uint8_t code, const char *why)
{
    if (cl->proto == MQ_PROTO_5) {
        mq_props_t pr;
        mq_client_send_connack(p, cl, false, v5_reason(code), reason_props(cl, why, &pr));
    } else {
        mq_client_send_connack(p, cl, false, code, NULL);
    }
    mq_client_end(cl, false, why);
}

void mq_client_detach(mq_proto_t *p, client_t *cl)
{
    mq_sess_detach(cl->sess);
    cl->sess = NULL;
    p->n_online--;
}

void mq_client_drop_pre(client_t *cl)
{
    if (cl->pre == NULL)
        return;
    mq_buf_fini(cl->pre);
    mq_free(cl->pre);
    cl->pre = NULL;
}

void mq_client_free_state(client_t *cl)
{
    mq_decoder_fini(&cl->dec);
    mq_client_drop_pre(cl);
    mq_msg_unref(cl->will);
    cl->will = NULL;
    for (uint16_t i = 0; cl->in_alias && i < cl->alias_max; i++)
        mq_free(cl->in_alias[i]);
    mq_free(cl->in_alias);
    cl->in_alias = NULL;
    mq_free(cl->auth_pending); /* a password still with the verifier, or its answer */
    cl->auth_pending = NULL;
}

void mq_client_destroy_sess(mq_proto_t *p, mq_sess_t *s)
{
    mq_route_drop(p->route, s);
}

bool mq_client_mount(mq_proto_t *p, const client_t *cl, mq_str_t *t, bool filter)
{
    mq_str_t mp = p->mounts[cl->conn.listener];
    if (mp.len == 0)
        return true;
    size_t head = 0; /* "$share/NAME/" stays in front */
    mq_str_t share, rest;
    if (filter && mq_topic_split_shared(t->ptr, t->len, &share, &rest))
        head = (size_t)(rest.ptr - t->ptr);
    size_t n = t->len + mp.len;
    if (n > 65535)
        return false;
    if (n > p->mount_cap) {
        p->mount_cap = n;
        mq_free(p->mount_buf);
        p->mount_buf = mq_alloc(n);
    }
    memcpy(p->mount_buf, t->ptr, head);
    memcpy(p->mount_buf + head, mp.ptr, mp.len);
    memcpy(p->mount_buf + head + mp.len, t->ptr + head, t->len - head);
    *t = (mq_str_t){p->mount_buf, n};
    return true;
}
