/* SPDX-License-Identifier: MIT */
/* net/xport.c - choosing a listener's transport. Plain TCP is the only one so far: TLS
 * (net/tls) and WebSocket framing (net/ws) plug in here, at the seam of net/conn.h. */
#include "net/xport.h"

#include <errno.h>

int mq_xport_listener_new(const mq_server_listener_t *l, mq_xport_listener_t **out, char *err,
                          size_t errlen)
{
    (void)l;
    (void)err;
    (void)errlen;
    *out = NULL; /* plain TCP */
    return 0;
}

void mq_xport_listener_free(mq_xport_listener_t *xl)
{
    (void)xl;
}

int mq_xport_attach(mq_conn_t *c, const mq_xport_listener_t *xl)
{
    (void)c;
    return xl == NULL ? 0 : -EPROTONOSUPPORT;
}
