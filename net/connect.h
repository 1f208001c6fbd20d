/* SPDX-License-Identifier: MIT */
/* net/connect.h - CONNECT: admission, client identifiers, take-over, hand-off to the owner. */
#ifndef MQ_NET_CONNECT_H
#define MQ_NET_CONNECT_H

#include "net/client.h"

/* The owning worker's thread only. */

/* Handles the first packet (a CONNECT): returns an enum mq_conn_result; MQ_CONN_GONE when
 * the session belongs to another worker (cl->handoff_to says which), when the password went
 * to the verifier thread (cl->auth_pending set), or when it takes a connected session over
 * and waits a turn first (cl->handoff_to is this worker): mq_connect_hand_off() follows. */
int mq_connect_handle(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt);

/* Takes 'cl' out of this worker's loop and sends it to the worker cl->handoff_to, which
 * re-decodes its CONNECT; with cl->auth_pending the verifier thread has it and sends it back;
 * with cl->handoff_to this worker, it waits for mq_proto_resume_waiting(). */
void mq_connect_hand_off(mq_proto_t *p, client_t *cl);

#endif
