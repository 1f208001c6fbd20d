/* SPDX-License-Identifier: MIT */
/* net/will.c - the delayed wills of one worker: an unordered list, scanned once a second (and
 * at each CONNECT for its client id: a map would serve a fleet with many delayed wills better). */
#include "net/will.h"

#include <string.h>

#include "core/mem.h"

void mq_will_defer(mq_proto_t *p, const char *id, size_t len, uint64_t hash, mq_msg_t *will,
                   uint64_t fire_at)
{
    mq_will_cancel(p, id, len, hash); /* one per client id */
    if (p->n_wills == p->cap_wills)
        p->wills = mq_grow(p->wills, &p->cap_wills, sizeof(*p->wills), 8);
    p->wills[p->n_wills++] = (pending_will_t){hash, mq_strndup(id, len), will, fire_at};
}

static int find(const mq_proto_t *p, const char *id, size_t len, uint64_t hash)
{
    for (uint32_t i = 0; i < p->n_wills; i++) {
        const pending_will_t *w = &p->wills[i];
        if (w->id_hash == hash && strlen(w->client_id) == len && memcmp(w->client_id, id, len) == 0)
            return (int)i;
    }
    return -1;
}

/* Removes entry i and returns its will (the reference passes to the caller). */
static mq_msg_t *take_at(mq_proto_t *p, uint32_t i)
{
    mq_msg_t *m = p->wills[i].will;
    mq_free(p->wills[i].client_id);
    p->wills[i] = p->wills[--p->n_wills];
    return m;
}

void mq_will_cancel(mq_proto_t *p, const char *id, size_t len, uint64_t hash)
{
    int i = find(p, id, len, hash);
    if (i >= 0)
        mq_msg_unref(take_at(p, (uint32_t)i));
}

mq_msg_t *mq_will_take(mq_proto_t *p, const char *id, size_t len, uint64_t hash)
{
    int i = find(p, id, len, hash);
    return i >= 0 ? take_at(p, (uint32_t)i) : NULL;
}

mq_msg_t *mq_will_take_due(mq_proto_t *p, uint64_t now, uint32_t *pos, const mq_sess_t **owner)
{
    for (; *pos < p->n_wills; ++*pos) {
        const pending_will_t *w = &p->wills[*pos];
        if (w->fire_at <= now) {
            *owner = mq_route_find(p->route, w->client_id, strlen(w->client_id), w->id_hash);
            return take_at(p, *pos); /* the last entry moves into *pos: looked at next */
        }
    }
    return NULL;
}

void mq_will_each(const mq_proto_t *p, mq_will_cb *cb, void *arg)
{
    for (uint32_t i = 0; i < p->n_wills; i++)
        cb(arg, &p->wills[i]);
}

void mq_will_free_all(mq_proto_t *p)
{
    while (p->n_wills > 0)
        mq_msg_unref(take_at(p, p->n_wills - 1));
    mq_free(p->wills);
    p->wills = NULL;
    p->cap_wills = 0;
}
