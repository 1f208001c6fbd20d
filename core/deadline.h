/* SPDX-License-Identifier: MIT */
/* core/deadline.h - when a connection has waited too long: the connect timeout and the
 * keep-alive rule [MQTT-3.1.2-24]. Pure functions of an injected clock reading ('now_ms',
 * milliseconds of any monotonic clock), so the rules are testable without sleeping. */
#ifndef MQ_CORE_DEADLINE_H
#define MQ_CORE_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

enum mq_deadline {
    MQ_DEADLINE_NONE = 0,      /* nothing is due */
    MQ_DEADLINE_CONNECT = 1,   /* no CONNECT within the connect timeout: close, no will */
    MQ_DEADLINE_KEEPALIVE = 2, /* silent for more than 1.5 x keep alive: close, with the will */
};

/* 'connected': a CONNECT was accepted (else the connection is still waiting for one);
 * 'born_ms': when it was accepted; 'last_rx_ms': when its last bytes arrived; 'keep_alive_s':
 * the CONNECT's keep alive (0 = none); 'connect_timeout_s': the broker's limit. A reading
 * earlier than the stamps (a clock that stepped back) never expires anything. */
enum mq_deadline mq_deadline_check(bool connected, uint64_t born_ms, uint64_t last_rx_ms,
                                   uint16_t keep_alive_s, uint32_t connect_timeout_s,
                                   uint64_t now_ms);

#endif
