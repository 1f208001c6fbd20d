/* SPDX-License-Identifier: MIT */
/* core/buf.c - growable owned buffers. */
#include "core/buf.h"

#include <errno.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/rc.h"

void mq_buf_fini(mq_buf_t *b)
{
    mq_free(b->data);
    mq_buf_init(b);
}

void mq_buf_reserve(mq_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t cap = b->cap ? b->cap : MQ_BUF_FIRST;
    while (cap - b->len < extra)
        cap *= 2;
    b->data = mq_realloc(b->data, cap);
    b->cap = cap;
}

void mq_buf_append(mq_buf_t *b, const void *p, size_t len)
{
    if (len == 0)
        return;
    mq_buf_reserve(b, len);
    memcpy(b->data + b->len, p, len);
    b->len += len;
}

void mq_buf_consume(mq_buf_t *b, size_t n)
{
    MQ_ASSERT(n <= b->len);
    if (n == 0)
        return; /* (data may be NULL) */
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

int mq_buf_read_fd(mq_buf_t *b, int fd)
{
    for (;;) {
        mq_buf_reserve(b, 8192);
        ssize_t n = read(fd, b->data + b->len, b->cap - b->len);
        if (n > 0)
            b->len += (size_t)n;
        else if (n == 0)
            return 0;
        else if (errno != EINTR)
            return -errno; /* EISDIR for a directory */
    }
}
