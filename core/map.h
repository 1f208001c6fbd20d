/* SPDX-License-Identifier: MIT */
/* core/map.h - single-thread open-addressing hash map from non-zero 64-bit keys to pointers. */
#ifndef MQ_CORE_MAP_H
#define MQ_CORE_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct mq_map_slot {
    uint64_t key; /* 0 = empty */
    void *val;
} mq_map_slot_t;

/* Linear probing with backward-shift deletion: no tombstones, lookups stay short. */
typedef struct mq_map {
    mq_map_slot_t *slots;
    size_t cap; /* power of two, or 0 */
    size_t len; /* keys present */
} mq_map_t;

void mq_map_init(mq_map_t *m);
void mq_map_fini(mq_map_t *m);

/* Returns the value for 'key' (non-zero), or NULL. */
void *mq_map_get(const mq_map_t *m, uint64_t key);

/* Sets 'key' (non-zero) to 'val' (non-NULL), replacing any previous value. */
void mq_map_put(mq_map_t *m, uint64_t key, void *val);

/* Removes 'key'; returns its value, or NULL when absent. */
void *mq_map_del(mq_map_t *m, uint64_t key);

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ...; do not modify the
 * map while iterating. */

/* --- names: byte strings to numbers, for tables built once and read often ------------------ */

/* A name indexed, as the owner keeps it (the index does not copy it). */
typedef struct mq_names_slot {
    const char *name; /* NULL = empty */
    size_t len;
    uint32_t num; /* >= 1: the owner's entry number + 1 */
} mq_names_slot_t;

/* Open addressing over XXH3 of the name (password file users, ACL file sections). */
typedef struct mq_names {
    mq_names_slot_t *slots;
    size_t cap; /* power of two, or 0 */
    size_t len;
} mq_names_t;

void mq_names_fini(mq_names_t *ix);

/* The number 'name' was put with, or 0. */
uint32_t mq_names_get(const mq_names_t *ix, const char *name, size_t len);

/* Sets 'name' to 'num' (>= 1), replacing any previous entry for an equal name; 'name' must stay
 * valid and unchanged while it is indexed, and a replaced entry's name until this returns (it is
 * compared against). */
void mq_names_put(mq_names_t *ix, const char *name, size_t len, uint32_t num);

#endif
