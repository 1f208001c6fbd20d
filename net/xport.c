/* SPDX-License-Identifier: MIT */
/* net/xport.c - choosing a listener's transport: plain TCP (with a guard that answers an HTTP
 * request on it), TLS (net/tls) when the listener has a certificate, WebSocket framing
 * (net/ws) with 'protocol websockets', over TLS for wss:// when it has both. */
#include "net/xport.h"

#include <errno.h>

#include "core/mem.h"
#include "net/tls.h"
#include "net/ws.h"

struct mq_xport_listener {
    mq_tls_ctx_t *tls;    /* NULL: no TLS */
    mq_ws_listener_t *ws; /* protocol websockets; NULL: MQTT */
};

int mq_xport_listener_new(const mq_server_listener_t *l, mq_xport_listener_t **out, char *err,
                          size_t errlen)
{
    *out = NULL; /* plain TCP */
    bool has_tls = l->tls.certfile != NULL || l->tls.keyfile != NULL || l->tls.psk_hint != NULL;
    if (!has_tls && l->protocol != MQ_SERVER_WEBSOCKETS)
        return 0;
    mq_xport_listener_t *xl = mq_calloc(1, sizeof(*xl));
    int rc = 0;
    if (has_tls && (rc = mq_tls_ctx_new(&l->tls, l->port, &xl->tls, err, errlen)) < 0)
        goto fail;
    if (l->protocol == MQ_SERVER_WEBSOCKETS &&
        (rc = mq_ws_listener_new(l, xl->tls, &xl->ws, err, errlen)) < 0)
        goto fail;
    *out = xl;
    return 0;
fail:
    mq_xport_listener_free(xl);
    return rc;
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
    mq_ws_listener_free(xl->ws); /* before the TLS context it points to */
    mq_tls_ctx_free(xl->tls);
    mq_free(xl);
}

int mq_xport_attach(mq_conn_t *c, const mq_xport_listener_t *xl)
{
    if (xl == NULL) {
        mq_ws_guard_attach(c); /* plain TCP, after one look at the first bytes */
        return 0;
    }
    if (xl->ws)
        return mq_ws_attach(c, xl->ws); /* with TLS under the framing when xl->tls is set */
    return mq_tls_attach(c, xl->tls);
}
