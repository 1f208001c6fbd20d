/* SPDX-License-Identifier: MIT */
/* net/xport.c - choosing a listener's transport: plain TCP (with a guard that answers an HTTP
 * request on it) or WebSocket framing (net/ws). TLS (net/tls) plugs in here too. */
#include "net/xport.h"

#include <errno.h>

#include "core/mem.h"
#include "net/ws.h"

struct mq_xport_listener {
    mq_ws_listener_t *ws; /* protocol websockets */
};

int mq_xport_listener_new(const mq_server_listener_t *l, mq_xport_listener_t **out, char *err,
                          size_t errlen)
{
    *out = NULL; /* plain TCP */
    if (l->protocol != MQ_SERVER_WEBSOCKETS)
        return 0;
    mq_ws_listener_t *ws;
    int rc = mq_ws_listener_new(l, &ws, err, errlen);
    if (rc < 0)
        return rc;
    mq_xport_listener_t *xl = mq_calloc(1, sizeof(*xl));
    xl->ws = ws;
    *out = xl;
    return 0;
}

void mq_xport_listener_free(mq_xport_listener_t *xl)
{
    if (!xl)
        return;
    mq_ws_listener_free(xl->ws);
    mq_free(xl);
}

int mq_xport_attach(mq_conn_t *c, const mq_xport_listener_t *xl)
{
    if (xl == NULL) {
        mq_ws_guard_attach(c); /* plain TCP, after one look at the first bytes */
        return 0;
    }
    return mq_ws_attach(c, xl->ws);
}
