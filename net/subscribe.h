/* SPDX-License-Identifier: MIT */
/* net/subscribe.h - SUBSCRIBE and UNSUBSCRIBE: options, retained messages, reason codes. */
#ifndef MQ_NET_SUBSCRIBE_H
#define MQ_NET_SUBSCRIBE_H

#include "net/client.h"

/* The owning worker's thread only. */
void mq_subscribe_handle(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt);
void mq_unsubscribe_handle(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt);

#endif
