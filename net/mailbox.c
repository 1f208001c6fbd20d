/* SPDX-License-Identifier: MIT */
/* net/mailbox.c - inboxes on the MPSC queue, ordered spill lists, coalesced MSG_RING wake-ups. */
#include "net/mailbox.h"

#include "core/mem.h"
#include "net/op.h"

void mq_mailbox_init(mq_mailbox_t *mb, uint32_t cap)
{
    mb->q = mq_mpsc_new(cap, sizeof(mq_mail_t));
    atomic_init(&mb->wake_pending, 0);
    mb->ring_fd = -1;
}

void mq_mailbox_fini(mq_mailbox_t *mb, mq_mail_drop_cb *drop)
{
    if (mb->q == NULL)
        return;
    mq_mail_t m;
    while (mq_mpsc_pop(mb->q, &m))
        drop(&m);
    mq_mpsc_free(mb->q);
    mb->q = NULL;
}

bool mq_mailbox_post(mq_mailbox_t *mb, const mq_mail_t *m)
{
    return mq_mpsc_push(mb->q, m);
}

static void spill_push(mq_mail_spill_t *o, const mq_mail_t *m)
{
    if (o->len == o->cap)
        o->e = mq_ring_grow(o->e, &o->cap, &o->head, o->len, sizeof(*o->e), 64);
    o->e[(o->head + o->len) % o->cap] = *m;
    o->len++;
}

uint32_t mq_mailbox_send(mq_mailbox_t *to, mq_mail_spill_t *spill, const mq_mail_t *m)
{
    /* once something waits in the spill list, later entries wait behind it */
    if (spill->len > 0 || !mq_mpsc_push(to->q, m))
        spill_push(spill, m);
    return spill->len;
}

uint32_t mq_mailbox_retry(mq_mailbox_t *to, mq_mail_spill_t *spill)
{
    uint32_t moved = 0;
    while (spill->len > 0 && mq_mpsc_push(to->q, &spill->e[spill->head])) {
        spill->head = (spill->head + 1) % spill->cap;
        spill->len--;
        moved++;
    }
    return moved;
}

void mq_mail_spill_fini(mq_mail_spill_t *spill, mq_mail_drop_cb *drop)
{
    for (uint32_t k = 0; k < spill->len; k++)
        drop(&spill->e[(spill->head + k) % spill->cap]);
    mq_free(spill->e);
    *spill = (mq_mail_spill_t){0};
}

bool mq_mailbox_ring(struct io_uring *from, int ring_fd)
{
    struct io_uring_sqe *sqe = mq_op_sqe(from);
    if (sqe == NULL)
        return false;
    io_uring_prep_msg_ring(sqe, ring_fd, 0, mq_op_pack(NULL, MQ_OP_WAKE), 0);
    io_uring_sqe_set_data64(sqe, mq_op_pack(NULL, MQ_OP_MSG));
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    return true;
}

bool mq_mailbox_wake(mq_mailbox_t *to, struct io_uring *from)
{
    /* seq_cst pairs with the owner's seq_cst store in mq_mailbox_begin_drain: either the
     * owner sees our entry in this drain, or we see its 0 and send a new wake-up */
    if (atomic_exchange_explicit(&to->wake_pending, 1, memory_order_seq_cst))
        return false;
    if (mq_mailbox_ring(from, to->ring_fd))
        return true;
    atomic_store_explicit(&to->wake_pending, 0, memory_order_seq_cst); /* a later post retries */
    return false;
}

void mq_mailbox_begin_drain(mq_mailbox_t *mb)
{
    atomic_store_explicit(&mb->wake_pending, 0, memory_order_seq_cst);
}

bool mq_mailbox_take(mq_mailbox_t *mb, mq_mail_t *m)
{
    return mq_mpsc_pop(mb->q, m);
}

uint32_t mq_mailbox_depth(const mq_mailbox_t *mb)
{
    return mq_mpsc_depth(mb->q);
}

/* ---- outbox ------------------------------------------------------------------------------- */

void mq_outbox_init(mq_outbox_t *ob, mq_mailbox_t **to, unsigned n, unsigned self)
{
    *ob = (mq_outbox_t){.to = to, .n = n, .self = self};
    ob->spill = mq_calloc(n, sizeof(*ob->spill));
}

void mq_outbox_fini(mq_outbox_t *ob, mq_mail_drop_cb *drop)
{
    for (unsigned i = 0; ob->spill && i < ob->n; i++)
        mq_mail_spill_fini(&ob->spill[i], drop);
    mq_free(ob->spill);
    ob->spill = NULL;
}

void mq_outbox_send(mq_outbox_t *ob, unsigned to, const mq_mail_t *m)
{
    if (mq_mailbox_send(ob->to[to], &ob->spill[to], m) > MQ_OUTBOX_HIGH)
        ob->congested = true;
    ob->wake_mask |= 1ull << to;
}

void mq_outbox_retry(mq_outbox_t *ob)
{
    uint32_t longest = 0;
    for (unsigned to = 0; to < ob->n; to++) {
        mq_mail_spill_t *s = &ob->spill[to];
        if (s->len == 0)
            continue;
        mq_mailbox_retry(ob->to[to], s);
        ob->wake_mask |= 1ull << to; /* moved entries, or keep nudging the consumer */
        if (s->len > longest)
            longest = s->len;
    }
    /* hysteresis, so that reading does not flap on and off around one threshold */
    ob->congested = ob->congested ? longest > MQ_OUTBOX_LOW : longest > MQ_OUTBOX_HIGH;
}

void mq_outbox_wake(mq_outbox_t *ob, struct io_uring *ring)
{
    uint64_t m = ob->wake_mask & ~(1ull << ob->self);
    ob->wake_mask = 0;
    while (m) {
        unsigned to = (unsigned)__builtin_ctzll(m);
        m &= m - 1;
        (void)mq_mailbox_wake(ob->to[to], ring); /* false: one is already on its way */
    }
}
