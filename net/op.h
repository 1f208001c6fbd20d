/* SPDX-License-Identifier: MIT */
/* net/op.h - the one place that packs and unpacks io_uring user_data. */
#ifndef MQ_NET_OP_H
#define MQ_NET_OP_H

#include <errno.h>
#include <liburing.h>
#include <stdint.h>

/* user_data of every SQE: a pointer (8-byte aligned) with the operation in its low 3 bits,
 * as liburing's examples/proxy.h packs its struct userdata. Any thread, pure. */
enum mq_op {
    MQ_OP_RECV = 1,    /* ptr = mq_conn_t */
    MQ_OP_SEND = 2,    /* ptr = mq_conn_t */
    MQ_OP_ACCEPT = 3,  /* index = the acceptor's listener (mq_op_pack_index) */
    MQ_OP_WAKE = 4,    /* ptr = NULL: a MSG_RING from another thread (net/mailbox.h) */
    MQ_OP_TIMER = 5,   /* ptr = the worker */
    MQ_OP_MSG = 6,     /* ptr = NULL: completion of a MSG_RING this ring sent */
    MQ_OP_JOURNAL = 7, /* ptr = the worker's journal, or its sync tag (net/jwriter.h) */
};

static inline uint64_t mq_op_pack(void *p, enum mq_op op)
{
    return (uint64_t)(uintptr_t)p | (uint64_t)op;
}

static inline void *mq_op_ptr(uint64_t ud)
{
    return (void *)(uintptr_t)(ud & ~7ull);
}

/* For operations that name a small index instead of an object. */
static inline uint64_t mq_op_pack_index(uint32_t index, enum mq_op op)
{
    return (uint64_t)index << 3 | (uint64_t)op;
}

static inline uint32_t mq_op_index(uint64_t ud)
{
    return (uint32_t)(ud >> 3);
}

static inline enum mq_op mq_op_of(uint64_t ud)
{
    return (enum mq_op)(ud & 7);
}

/* One SQE from 'ring', submitting first when the SQ is full (STYLE.md §7). The thread that
 * owns 'ring' only. */
static inline struct io_uring_sqe *mq_op_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    while (sqe == NULL) {
        int rc = io_uring_submit(ring);
        if (rc < 0 && rc != -EAGAIN && rc != -EBUSY && rc != -EINTR)
            return NULL; /* the ring is unusable; the caller treats it as a failed submit */
        sqe = io_uring_get_sqe(ring);
    }
    return sqe;
}

#endif
