/* SPDX-License-Identifier: MIT */
/* net/marks.c - durability marks between workers (net/marks.h). */
#include "net/marks.h"

#include <string.h>

#include "core/mem.h"
#include "net/jwriter.h"

/* The connections gated in one turn, and the workers that must answer for it. */
struct mq_mark_batch {
    uint64_t turn;
    uint64_t mask; /* workers mailed in that turn, one bit each, this one's left out */
    bool failed;   /* one of them could not journal what it was sent: nothing is acknowledged */
    mq_conn_t **conns;
    uint32_t n, cap;
};

static mq_mark_batch_t *open_batch(mq_proto_t *p)
{
    mq_marks_t *m = &p->marks;
    if (m->n > 0 && m->q[(m->head + m->n - 1) % m->cap].turn == m->turn)
        return &m->q[(m->head + m->n - 1) % m->cap];
    if (m->n == m->cap) /* grow the ring, keeping its order and every slot's array */
        m->q = mq_ring_grow(m->q, &m->cap, &m->head, m->n, sizeof(*m->q), 8);
    mq_mark_batch_t *b = &m->q[(m->head + m->n++) % m->cap];
    mq_conn_t **keep = b->conns; /* a slot's array is reused */
    uint32_t kcap = b->cap;
    *b = (mq_mark_batch_t){.turn = m->turn, .conns = keep, .cap = kcap};
    return b;
}

void mq_marks_gate(mq_proto_t *p, mq_conn_t *c, uint64_t mailed)
{
    mailed &= ~(1ull << p->env.self);
    if (mailed == 0)
        return;
    mq_mark_batch_t *b = open_batch(p);
    b->mask |= mailed;
    p->marks.mailed |= mailed;
    if (c->mark_open)
        return; /* in this turn's batch already */
    if (b->n == b->cap)
        b->conns = mq_grow(b->conns, &b->cap, sizeof(*b->conns), 16);
    b->conns[b->n++] = c;
    c->mark_open = true;
    c->gate_remote = true;
    c->n_marks++;
    c->n_ops++; /* each batch it is in keeps 'c' alive */
}

void mq_marks_mailed(mq_proto_t *p, unsigned w, const mq_msg_t *msg)
{
    if (msg->qos > 0 && p->env.jw && mq_jwriter_gates(p->env.jw))
        p->marks.mailed |= 1ull << w;
}

void mq_marks_send(mq_proto_t *p)
{
    mq_marks_t *m = &p->marks;
    if (m->mailed == 0)
        return;
    for (uint64_t w = m->mailed; w; w &= w - 1) {
        unsigned b = (unsigned)__builtin_ctzll(w);
        mq_mail_t e = {.type = MQ_MAIL_MARK, .a = {p->env.self, m->turn}};
        mq_outbox_send(p->env.outbox, b, &e);
    }
    m->mailed = 0;
    const mq_mark_batch_t *open = m->n ? &m->q[(m->head + m->n - 1) % m->cap] : NULL;
    for (uint32_t i = 0; open && open->turn == m->turn && i < open->n; i++)
        open->conns[i]->mark_open = false;
    m->turn++; /* what is gated from now on waits for the next turn's marks */
}

void mq_marks_check_refused(mq_proto_t *p, const mq_msg_t *msg, unsigned from, uint64_t before)
{
    /* wills and $SYS (origin 0) and QoS 0 copies acknowledge nothing */
    if (msg->origin != 0 && msg->qos > 0 && mq_jwriter_refused(p->env.jw) != before)
        p->marks.refused[from] = true;
}

/* An answer's turn with this bit: records of copies the marking worker mailed were refused
 * since its last mark (this worker's journal broken: net/jwriter.h). */
#define MARK_FAILED (1ull << 63)

void mq_marks_on_mark(mq_proto_t *p, unsigned from, uint64_t t)
{
    if (p->marks.refused[from]) { /* at once: waiting would not make the copies durable */
        p->marks.refused[from] = false;
        mq_marks_answer(p, from, t | MARK_FAILED);
    } else if (p->env.jw)
        mq_jwriter_after_durable(p->env.jw, from, t);
    else
        mq_marks_answer(p, from, t);
}

void mq_marks_answer(void *arg, unsigned to, uint64_t t)
{
    mq_proto_t *p = arg;
    mq_mail_t e = {.type = MQ_MAIL_DURABLE, .a = {p->env.self, t}};
    mq_outbox_send(p->env.outbox, to, &e);
}

static bool answered(const mq_marks_t *m, const mq_mark_batch_t *b)
{
    for (uint64_t w = b->mask; w; w &= w - 1)
        if (m->durable[__builtin_ctzll(w)] < b->turn + 1) /* stored as turn + 1: 0 = none */
            return false;
    return true;
}

/* Worker 'from' refused records of copies this worker mailed it in turn 't' (every turn that
 * mails a QoS 1/2 copy sends a mark, and a worker's mail is FIFO, so the refusal is about
 * turn 't'). Its journal is broken, so what earlier turns still wait for is not durable
 * either (their answers wait behind the failed write): the failed answer, which comes first,
 * must not release them. The connections every unanswered turn up to 't' gated for 'from'
 * acknowledge nothing. */
static void fail_batches(mq_marks_t *m, unsigned from, uint64_t t)
{
    for (uint32_t i = 0; i < m->n; i++) {
        mq_mark_batch_t *b = &m->q[(m->head + i) % m->cap];
        if (b->turn > t)
            break;
        if (b->turn + 1 > m->durable[from] && (b->mask & (1ull << from)))
            b->failed = true;
    }
}

void mq_marks_on_durable(mq_proto_t *p, unsigned from, uint64_t t)
{
    mq_marks_t *m = &p->marks;
    if (t & MARK_FAILED) {
        t &= ~MARK_FAILED;
        fail_batches(m, from, t);
    }
    if (m->durable[from] < t + 1)
        m->durable[from] = t + 1;
    /* in turn order: a later batch never goes before an earlier one */
    while (m->n > 0) {
        mq_mark_batch_t *b = &m->q[m->head];
        if (b->turn == m->turn || !answered(m, b))
            break; /* the open turn's marks are not even sent yet */
        for (uint32_t i = 0; i < b->n; i++) {
            mq_conn_t *c = b->conns[i];
            c->n_ops--;
            if (--c->n_marks == 0) /* not gated again in a later turn */
                c->gate_remote = false;
            if (b->failed) /* an acknowledgement of what is not on disk must not go */
                mq_conn_abort_unsent(c, "another worker's persistence journal could not be "
                                        "written");
            mq_conn_mark_dirty(c); /* the output goes, or the closing goes on, at the flush */
        }
        b->n = 0;
        m->head = (m->head + 1) % m->cap;
        m->n--;
    }
}

void mq_marks_fini(mq_proto_t *p)
{
    mq_marks_t *m = &p->marks;
    for (uint32_t i = 0; i < m->cap; i++)
        mq_free(m->q[i].conns);
    mq_free(m->q);
    mq_free(m->durable);
    mq_free(m->refused);
    memset(m, 0, sizeof(*m));
}
