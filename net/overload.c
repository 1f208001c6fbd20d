/* SPDX-License-Identifier: MIT */
/* net/overload.c - disconnecting a client whose queue has stayed full (queue_full_timeout). */
#include "net/overload.h"

#include "core/log.h"

/* Full: at a queue limit, or dropped something since the last look (a QoS 0 message is
 * dropped rather than queued past the limits, so the queue alone may look short). */
static bool queue_full(const mq_server_opts_t *o, const mq_sess_t *s)
{
    const mq_sess_limits_t *l = &o->limits;
    return (l->max_queued && mq_sess_queued(s) >= l->max_queued) ||
           (l->max_queued_bytes && mq_sess_queued_bytes(s) >= l->max_queued_bytes) ||
           s->dropped_lately;
}

bool mq_overload_queue_stuck(const mq_server_opts_t *o, client_t *cl, uint64_t now_ms)
{
    if (o->queue_full_timeout_s == 0 || cl->sess == NULL)
        return false;
    mq_sess_t *s = cl->sess;
    /* the loop clock's low 32 bits: the difference is right across a wrap (every 49 days), as
     * the limit is at most a day (broker/config.c); 0 means "not full" */
    uint32_t now = (uint32_t)now_ms;
    bool full = queue_full(o, s);
    s->dropped_lately = false; /* looked at: the next tick sees only newer drops */
    if (!full) {
        cl->full_since_ms = 0;
        return false;
    }
    if (cl->full_since_ms == 0) {
        cl->full_since_ms = now ? now : 1;
        return false;
    }
    if ((uint32_t)(now - cl->full_since_ms) < o->queue_full_timeout_s * 1000u)
        return false;
    MQ_LOG(MQ_LOG_NOTICE, "Client %s disconnected: its queue has been full for %u s.", s->client_id,
           o->queue_full_timeout_s);
    return true;
}
