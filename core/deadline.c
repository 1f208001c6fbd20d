/* SPDX-License-Identifier: MIT */
/* core/deadline.c - connection deadlines (see deadline.h). */
#include "core/deadline.h"

enum mq_deadline mq_deadline_check(bool connected, uint64_t born_ms, uint64_t last_rx_ms,
                                   uint16_t keep_alive_s, uint32_t connect_timeout_s,
                                   uint64_t now_ms)
{
    if (!connected)
        return now_ms > born_ms && now_ms - born_ms > (uint64_t)connect_timeout_s * 1000
                   ? MQ_DEADLINE_CONNECT
                   : MQ_DEADLINE_NONE;
    /* [MQTT-3.1.2-24]: one and a half times the keep alive without a control packet */
    if (keep_alive_s && now_ms > last_rx_ms && now_ms - last_rx_ms > (uint64_t)keep_alive_s * 1500)
        return MQ_DEADLINE_KEEPALIVE;
    return MQ_DEADLINE_NONE;
}
