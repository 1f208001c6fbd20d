/* SPDX-License-Identifier: MIT */
/* net/publish.h - PUBLISH in and out: checks, topic aliases, routing, acknowledgements. */
#ifndef MQ_NET_PUBLISH_H
#define MQ_NET_PUBLISH_H

#include "net/client.h"

/* The owning worker's thread only. */

/* A PUBLISH from 'cl'; returns an enum mq_conn_result. */
int mq_publish_handle(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt);

/* PUBACK / PUBREC / PUBCOMP from 'cl' for a message the broker sent. */
void mq_publish_on_ack(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt);

/* PUBREL from 'cl' for a QoS 2 message it sent. */
void mq_publish_on_pubrel(mq_proto_t *p, client_t *cl, const mq_packet_t *pkt);

/* Stores (or clears) a retained message, then routes 'msg' (borrowed) to every interested
 * worker; returns whether any subscriber's worker was found. */
bool mq_publish_route(mq_proto_t *p, mq_msg_t *msg);

/* Ends session 's' (mq_client_destroy_sess) and hands the messages that shared subscription
 * groups gave it, and that its client had not acknowledged, on to another member of the same
 * group (MQTT 5 §4.8.2: "If the Client's Session terminates before the Client reconnects, the
 * Server SHOULD send the Application Message to another Client"). */
void mq_publish_end_session(mq_proto_t *p, mq_sess_t *s);

/* Ends the detached session 's' whose expiry has passed: its waiting will is published (a
 * will goes when its session ends, if that is before its delay [MQTT-3.1.3-9]), then
 * mq_publish_end_session. */
void mq_publish_end_expired(mq_proto_t *p, mq_sess_t *s);

/* The connection of persistent session 's' is gone: the same hand-on ("It MAY attempt to
 * send the message to another Client as soon as it loses its connection to the first
 * Client"). Queued messages move; those in flight are also kept for the client, which gets
 * them again if it returns [MQTT-4.4.0-1] (at least once: both members may have them). */
void mq_publish_hand_on(mq_proto_t *p, mq_sess_t *s);

/* Delivers 'msg' (borrowed) to this worker's sessions subscribed to filters 'fids'. */
void mq_publish_deliver(mq_proto_t *p, mq_msg_t *msg, const uint64_t *fids, uint32_t n);

/* Delivers 'msg' (borrowed) to member 'token' of shared group 'gid' on filter 'fid'. */
void mq_publish_deliver_shared(mq_proto_t *p, mq_msg_t *msg, uint64_t fid, uint64_t gid,
                               uint64_t token);

/* Whether the ACL in force lets session 'owner' publish its will 'will'; a refusal is logged
 * and counted as dropped. */
bool mq_publish_will_allowed(mq_proto_t *p, const mq_sess_t *owner, const mq_msg_t *will);

/* Publishes a will (borrowed) of session 'owner' (NULL: not known) unless it targets $SYS or
 * the ACL in force now denies 'owner' its topic (a reload since the CONNECT, where it was
 * checked first, may have revoked it; mosquitto 2.0 checks when it publishes too); with
 * 'has_expiry' its Message Expiry counts from now (a delayed will's was set when deferred). */
void mq_publish_will(mq_proto_t *p, const mq_sess_t *owner, mq_msg_t *will, bool has_expiry,
                     uint32_t expiry_s);

#endif
