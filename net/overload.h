/* SPDX-License-Identifier: MIT */
/* net/overload.h - what the broker does about clients that cannot keep up (issue 12). */
#ifndef MQ_NET_OVERLOAD_H
#define MQ_NET_OVERLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "net/client.h"
#include "net/opts.h"

/* Called once a second per connection (mq_proto_tick). Returns true when the session of 'cl'
 * has had a full queue (at max_queued_messages or max_queued_bytes, or dropping messages) at
 * every call for queue_full_timeout seconds or more: the caller then ends the client. Always
 * false when queue_full_timeout is 0 (the default). Keeps its state in 'cl'. Owning worker. */
bool mq_overload_queue_stuck(const mq_server_opts_t *o, client_t *cl, uint64_t now_ms);

#endif
