/* SPDX-License-Identifier: MIT */
/* core/map.c - open-addressing u64 map with linear probing and backward-shift deletion. */
#include "core/map.h"

#include "core/mem.h"
#include "core/rc.h"

#include <string.h>
#include <xxhash.h>

static inline size_t slot_of(uint64_t key, size_t cap)
{
    /* Fibonacci hashing spreads sequential ids (filter ids are a counter) */
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

void mq_map_init(mq_map_t *m)
{
    m->slots = NULL;
    m->cap = m->len = 0;
}

void mq_map_fini(mq_map_t *m)
{
    mq_free(m->slots);
    mq_map_init(m);
}

void *mq_map_get(const mq_map_t *m, uint64_t key)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[i].key == key)
            return m->slots[i].val;
        if (m->slots[i].key == 0)
            return NULL;
    }
}

static void grow(mq_map_t *m)
{
    mq_map_t n = {mq_calloc(m->cap ? m->cap * 2 : 16, sizeof(mq_map_slot_t)),
                  m->cap ? m->cap * 2 : 16, 0};
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            mq_map_put(&n, m->slots[i].key, m->slots[i].val);
    mq_free(m->slots);
    *m = n;
}

void mq_map_put(mq_map_t *m, uint64_t key, void *val)
{
    MQ_ASSERT(key != 0);
    if ((m->len + 1) * 4 > m->cap * 3)
        grow(m);
    for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[i].key == key) {
            m->slots[i].val = val;
            return;
        }
        if (m->slots[i].key == 0) {
            m->slots[i].key = key;
            m->slots[i].val = val;
            m->len++;
            return;
        }
    }
}

void *mq_map_del(mq_map_t *m, uint64_t key)
{
    MQ_ASSERT(key != 0); /* 0 marks an empty slot */
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1, i = slot_of(key, m->cap);
    while (m->slots[i].key != key) {
        if (m->slots[i].key == 0)
            return NULL;
        i = (i + 1) & mask;
    }
    void *val = m->slots[i].val;
    /* backward shift: move later members of the probe run into the hole */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = slot_of(m->slots[j].key, m->cap);
        /* j may move to 'hole' when its home is not in (hole, j] cyclically */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].key = 0;
    m->slots[hole].val = NULL;
    m->len--;
    return val;
}

/* --- names ---------------------------------------------------------------------------------- */

void mq_names_fini(mq_names_t *ix)
{
    mq_free(ix->slots);
    *ix = (mq_names_t){0};
}

/* The slot holding 'name', or the empty slot where it would go; 'cap' must be non-zero. */
static mq_names_slot_t *names_slot(const mq_names_t *ix, const char *name, size_t len)
{
    size_t mask = ix->cap - 1;
    for (size_t i = (size_t)XXH3_64bits(name, len) & mask;; i = (i + 1) & mask) {
        mq_names_slot_t *s = &ix->slots[i];
        if (!s->name || (s->len == len && memcmp(s->name, name, len) == 0))
            return s;
    }
}

uint32_t mq_names_get(const mq_names_t *ix, const char *name, size_t len)
{
    if (ix->cap == 0)
        return 0;
    return names_slot(ix, name ? name : "", len)->num;
}

void mq_names_put(mq_names_t *ix, const char *name, size_t len, uint32_t num)
{
    MQ_ASSERT(name && num != 0);
    if ((ix->len + 1) * 2 > ix->cap) {
        mq_names_t n = {mq_calloc(ix->cap ? ix->cap * 2 : 16, sizeof(mq_names_slot_t)),
                        ix->cap ? ix->cap * 2 : 16, ix->len};
        for (size_t i = 0; i < ix->cap; i++)
            if (ix->slots[i].name)
                *names_slot(&n, ix->slots[i].name, ix->slots[i].len) = ix->slots[i];
        mq_free(ix->slots);
        *ix = n;
    }
    mq_names_slot_t *s = names_slot(ix, name, len);
    ix->len += s->name == NULL;
    *s = (mq_names_slot_t){name, len, num};
}
