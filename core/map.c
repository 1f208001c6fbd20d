/* SPDX-License-Identifier: MIT */
/* core/map.c - open-addressing u64 map with linear probing and backward-shift deletion. */
#include "core/map.h"

#include "core/mem.h"
#include "core/rc.h"

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
