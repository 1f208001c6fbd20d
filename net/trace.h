/* SPDX-License-Identifier: MIT */
/* net/trace.h - one debug line per MQTT packet in and out, in mosquitto's words (-v). */
#ifndef MQ_NET_TRACE_H
#define MQ_NET_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"
#include "core/log.h"
#include "net/client.h"
#include "net/conn.h"

/* Operators debug misbehaving devices with `mosquitto -v` and grep its lines, so these are
 * mosquitto's (2.0) lines, logged at MQ_LOG_DEBUG:
 *   Received PUBLISH from c1 (d0, q1, r0, m3, 'a/b', ... (5 bytes))
 *   Sending PUBACK to c1 (m3, rc0)
 *   Received SUBSCRIBE from c1 / "\ta/# (QoS 1)" per filter / Sending SUBACK to c1
 * With debug logging off a packet costs one relaxed load (MQ_TRACE_IN) and a flush one more
 * (net/conn.c). Everything here runs on the worker that owns the client. */

/* Logs 'pkt', just decoded from 'cl' (borrowed, for the call). Use MQ_TRACE_IN. */
void mq_trace_in(const client_t *cl, const mq_packet_t *pkt);

#define MQ_TRACE_IN(cl, pkt)                                                                       \
    do {                                                                                           \
        if (MQ_LOG_ON(MQ_LOG_DEBUG))                                                               \
            mq_trace_in((cl), (pkt));                                                              \
    } while (0)

/* The connection loop's output hook (mq_conn_loop_t.trace_out): logs every packet of
 * p[0..len), the whole packets a flush of 'c' (a client) is about to send. */
void mq_trace_out(mq_conn_t *c, const uint8_t *p, size_t len);

#endif
