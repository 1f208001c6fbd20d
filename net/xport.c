/* SPDX-License-Identifier: MIT */
/* net/xport.c - choosing a listener's transport: plain TCP, or TLS (net/tls) when the listener
 * has a certificate. WebSocket framing (net/ws) plugs in here too, at the seam of net/conn.h. */
#include "net/xport.h"

#include <errno.h>

#include "core/mem.h"
#include "net/tls.h"

struct mq_xport_listener {
    mq_tls_ctx_t *tls; /* NULL: no TLS */
};

int mq_xport_listener_new(const mq_server_listener_t *l, mq_xport_listener_t **out, char *err,
                          size_t errlen)
{
    *out = NULL; /* plain TCP */
    if (l->tls.certfile == NULL && l->tls.keyfile == NULL)
        return 0;
    mq_tls_ctx_t *tls;
    int rc = mq_tls_ctx_new(&l->tls, l->port, &tls, err, errlen);
    if (rc < 0)
        return rc;
    mq_xport_listener_t *xl = mq_calloc(1, sizeof(*xl));
    xl->tls = tls;
    *out = xl;
    return 0;
}

int mq_xport_listener_reload(mq_xport_listener_t *xl, mq_epoch_t *ep, char *err, size_t errlen)
{
    if (xl == NULL || xl->tls == NULL)
        return 0;
    return mq_tls_ctx_reload(xl->tls, ep, err, errlen);
}

bool mq_xport_listener_has_tls(const mq_xport_listener_t *xl)
{
    return xl != NULL && xl->tls != NULL;
}

void mq_xport_listener_free(mq_xport_listener_t *xl)
{
    if (xl == NULL)
        return;
    mq_tls_ctx_free(xl->tls);
    mq_free(xl);
}

int mq_xport_attach(mq_conn_t *c, const mq_xport_listener_t *xl)
{
    if (xl == NULL)
        return 0;
    return xl->tls ? mq_tls_attach(c, xl->tls) : -EPROTONOSUPPORT;
}
