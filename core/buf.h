/* SPDX-License-Identifier: MIT */
/* core/buf.h - borrowed byte views (mq_str_t) and growable owned buffers (mq_buf_t). */
#ifndef MQ_CORE_BUF_H
#define MQ_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A borrowed view of bytes: UTF-8 strings and binary data alike. Never owns 'ptr'; whoever
 * hands one out says how long it stays valid. 'ptr' may be NULL when 'len' is 0. */
typedef struct mq_str {
    const char *ptr;
    size_t len;
} mq_str_t;

#define MQ_STR_LIT(s) ((mq_str_t){(s), sizeof(s) - 1})

static inline mq_str_t mq_str(const char *s)
{
    return (mq_str_t){s, s ? strlen(s) : 0};
}

static inline bool mq_str_eq(mq_str_t a, mq_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* The first allocation of a buffer that grows from empty. */
#define MQ_BUF_FIRST 64

/* A growable byte buffer that owns its storage (allocated through core/mem). */
typedef struct mq_buf {
    uint8_t *data;
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
} mq_buf_t;

static inline void mq_buf_init(mq_buf_t *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Releases the storage; 'b' is empty and reusable afterwards. */
void mq_buf_fini(mq_buf_t *b);

/* Makes room for 'extra' more bytes; aborts on exhaustion (core/mem.h). */
void mq_buf_reserve(mq_buf_t *b, size_t extra);

/* Appends 'len' bytes. */
void mq_buf_append(mq_buf_t *b, const void *p, size_t len);

/* Drops the first 'n' bytes (n <= len), moving the rest to the front. */
void mq_buf_consume(mq_buf_t *b, size_t n);

/* Appends everything 'fd' reads until its end (blocking: files at start and reload, not
 * sockets). Returns 0, or -errno (what was read stays appended). */
int mq_buf_read_fd(mq_buf_t *b, int fd);

#endif
