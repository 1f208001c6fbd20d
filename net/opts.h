/* SPDX-License-Identifier: MIT */
/* net/opts.h - what the engine takes from the configuration (broker/ fills it, net/ reads it). */
#ifndef MQ_NET_OPTS_H
#define MQ_NET_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/sess.h"

#define MQ_SERVER_MAX_LISTENERS 16

typedef struct mq_server_listener {
    const char *bind_address; /* NULL: all addresses */
    uint16_t port;
    uint32_t max_connections; /* 0 = unlimited */
} mq_server_listener_t;

/* Everything the engine needs from the configuration, complete (broker/ applies every
 * default): copied by mq_server_start(), immutable after, read by every thread. */
typedef struct mq_server_opts {
    mq_server_listener_t listeners[MQ_SERVER_MAX_LISTENERS];
    unsigned n_listeners;
    unsigned workers;         /* 0 = online CPUs */
    uint32_t max_connections; /* whole broker; 0 = unlimited */
    bool allow_anonymous;
    bool allow_zero_length_clientid;
    const char *auto_id_prefix;
    uint16_t max_keepalive; /* 0 = no limit */
    uint8_t max_qos;
    bool retain_available;
    bool upgrade_outgoing_qos;
    bool set_tcp_nodelay;
    uint32_t message_size_limit; /* payload bytes; 0 = unlimited */
    uint32_t max_packet_size;    /* 0 = protocol maximum */
    uint32_t connect_timeout_s;  /* a connection must send CONNECT within this */
    mq_sess_limits_t limits;
    bool connection_messages; /* log connects and disconnects */
    uint32_t queue_full_timeout_s; /* a client whose queue stays full this long is
                                    * disconnected (net/overload.h); 0 = never */
} mq_server_opts_t;

#endif
