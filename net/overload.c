/* SPDX-License-Identifier: MIT */
/* net/overload.c - disconnecting a client whose queue has stayed full (queue_full_timeout). */
#include "net/overload.h"

#include "core/log.h"

/* Full: at a queue limit, or dropped something since the last look (a QoS 0 message is
 * dropped rather than queued past the limits, so the queue alone may look short). */
static bool queue_full(const mq_server_opts_t *o, mq_sess_t *s)
{
    const mq_sess_limits_t *l = &o->limits;
    bool dropped = s->dropped_lately;
    s->dropped_lately = false;
    return (l->max_queued && s->q_len >= l->max_queued) ||
           (l->max_queued_bytes && s->q_bytes >= l->max_queued_bytes) || dropped;
}

bool mq_overload_queue_stuck(const mq_server_opts_t *o, client_t *cl, uint64_t now_ms)
{
    if (o->queue_full_timeout_s == 0 || cl->sess == NULL)
        return false;
    mq_sess_t *s = cl->sess;
    /* seconds of the loop clock, plus one: 0 means "not full" (the check runs once a second) */
    uint32_t now_s = (uint32_t)(now_ms / 1000u) + 1u;
    if (!queue_full(o, s)) {
        cl->full_since_s = 0;
        return false;
    }
    if (cl->full_since_s == 0) {
        cl->full_since_s = now_s;
        return false;
    }
    if (now_s - cl->full_since_s < o->queue_full_timeout_s)
        return false;
    MQ_LOG(MQ_LOG_NOTICE, "Client %s disconnected: its queue has been full for %u s.", s->client_id,
           o->queue_full_timeout_s);
    return true;
}
