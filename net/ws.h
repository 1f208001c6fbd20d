/* SPDX-License-Identifier: MIT */
/* net/ws.h - the WebSocket transport: HTTP upgrade, plain GETs, MQTT in binary frames. */
#ifndef MQ_NET_WS_H
#define MQ_NET_WS_H

#include <stddef.h>

#include "net/conn.h"
#include "net/opts.h"
#include "net/tls.h"

/* A 'protocol websockets' listener's connections start as HTTP (core/ws.h parses the request
 * head, incrementally, at most ws_headers_size bytes). An upgrade request with Sec-WebSocket-
 * Version 13 is answered 101 (with the subprotocol "mqtt" or "mqttv3.1" when the client
 * offered one) and from then on the connection carries MQTT in WebSocket frames, under the
 * protocol, at the transport seam of net/conn.h: received frames are unmasked in place in the
 * loop's receive buffer and their payloads go up as one byte stream (a packet may span frames,
 * a frame may carry several packets); pings are answered, a close frame is answered and ends
 * the connection, violations of RFC 6455 close it with 1002/1003/1007/1009. What the protocol
 * writes goes out as one binary frame per flush, the header sent in front of the protocol's
 * own buffer (no copy). A plain GET or HEAD is answered from the listener's http_dir or with
 * the status page at "/", else 404 (or 426 when the listener serves nothing), then the
 * connection closes; a malformed request gets its 4xx/5xx answer. Every end is logged with
 * its reason through mq_conn_close(). */

/* One listener's WebSocket settings; shared read-only by the workers. */
typedef struct mq_ws_listener mq_ws_listener_t;

/* Main thread, at start: the settings of listener 'l' (protocol websockets); with 'tls' (the
 * listener's TLS context, net/tls.h, borrowed: it must outlive *out) its connections are
 * wss://, TLS under the framing. Returns 0, or
 * -errno with a message in err (http_dir is not a directory; ws_trusted_proxy is not an IP
 * address). *out is owned by the caller: mq_ws_listener_free(). 'l' and the strings it points
 * to are copied where needed; status_page is borrowed (static storage). */
int mq_ws_listener_new(const mq_server_listener_t *l, const mq_tls_ctx_t *tls,
                       mq_ws_listener_t **out, char *err, size_t errlen);

/* Main thread, after the workers have stopped. NULL is a no-op. */
void mq_ws_listener_free(mq_ws_listener_t *wl);

/* The accepting worker, right after mq_conn_new(): makes 'c' a WebSocket connection of 'wl'
 * (which must outlive it). Allocates the connection's transport state (with its TLS state for
 * wss://), freed with it. Returns 0, or -ENOMEM when OpenSSL cannot make a TLS state (the
 * caller closes the connection). */
int mq_ws_attach(mq_conn_t *c, const mq_ws_listener_t *wl);

/* The accepting worker, for a plain MQTT listener: looks at the connection's first received
 * bytes once, then steps aside (c->xport = NULL). An HTTP request there (a WebSocket client
 * on the wrong port) gets "400 Bad Request" and the connection is closed and logged instead
 * of feeding "GET /..." to the MQTT decoder. */
void mq_ws_guard_attach(mq_conn_t *c);

#endif
