/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_map.c - u64 -> pointer map: put, get, delete, growth; the name index. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/map.h"

static mq_map_t m;

static void setup(void)
{
    mq_map_init(&m);
}

static void teardown(void)
{
    mq_map_fini(&m);
}

TestSuite(map, .init = setup, .fini = teardown);

/* A distinct non-NULL value for each key, never dereferenced. */
static void *val(uint64_t k)
{
    return (void *)(uintptr_t)(k * 8 + 8);
}

Test(map, empty_map_finds_and_deletes_nothing)
{
    cr_assert(eq(ptr, mq_map_get(&m, 1), NULL));
    cr_assert(eq(ptr, mq_map_del(&m, 1), NULL));
    cr_assert(eq(sz, m.len, 0));
}

Test(map, put_then_get_returns_the_value)
{
    mq_map_put(&m, 7, val(7));
    mq_map_put(&m, UINT64_MAX, val(9));
    cr_assert(eq(ptr, mq_map_get(&m, 7), val(7)));
    cr_assert(eq(ptr, mq_map_get(&m, UINT64_MAX), val(9)));
    cr_assert(eq(ptr, mq_map_get(&m, 8), NULL));
    cr_assert(eq(sz, m.len, 2));
}

Test(map, put_on_an_existing_key_replaces_its_value)
{
    mq_map_put(&m, 5, val(5));
    mq_map_put(&m, 5, val(6));
    cr_assert(eq(ptr, mq_map_get(&m, 5), val(6)));
    cr_assert(eq(sz, m.len, 1));
}

Test(map, del_returns_the_value_and_removes_the_key)
{
    mq_map_put(&m, 3, val(3));
    mq_map_put(&m, 4, val(4));
    cr_assert(eq(ptr, mq_map_del(&m, 3), val(3)));
    cr_assert(eq(ptr, mq_map_get(&m, 3), NULL));
    cr_assert(eq(ptr, mq_map_del(&m, 3), NULL));
    cr_assert(eq(ptr, mq_map_get(&m, 4), val(4)));
    cr_assert(eq(sz, m.len, 1));
    mq_map_put(&m, 3, val(33)); /* re-put after delete */
    cr_assert(eq(ptr, mq_map_get(&m, 3), val(33)));
    cr_assert(eq(sz, m.len, 2));
}

Test(map, many_keys_survive_growth)
{
    enum { N = 20000 };
    for (uint64_t k = 1; k <= N; k++)
        mq_map_put(&m, k, val(k));
    cr_assert(eq(sz, m.len, N));
    cr_assert(ge(sz, m.cap * 3, m.len * 4)); /* at most 3/4 full */
    for (uint64_t k = 1; k <= N; k++)
        cr_assert(eq(ptr, mq_map_get(&m, k), val(k)), "key %llu", (unsigned long long)k);
    cr_assert(eq(ptr, mq_map_get(&m, N + 1), NULL));
    size_t seen = 0;
    for (size_t i = 0; i < m.cap; i++)
        seen += m.slots[i].key != 0;
    cr_assert(eq(sz, seen, N));
}

/* Backward-shift deletion must keep every other key reachable, whatever its probe run. Keys
 * spread by a large stride collide in the low bits; sequential ones cluster after hashing. */
Test(map, deleting_any_key_keeps_the_others_reachable)
{
    enum { N = 5000 };
    const uint64_t strides[] = {1, 1ull << 17, 1ull << 32, 0x9E3779B97F4A7C15ull};
    for (size_t s = 0; s < sizeof(strides) / sizeof(strides[0]); s++) {
        mq_map_fini(&m);
        uint64_t st = strides[s];
        for (uint64_t i = 1; i <= N; i++)
            mq_map_put(&m, i * st, val(i));
        for (uint64_t i = 1; i <= N; i += 3)
            cr_assert(eq(ptr, mq_map_del(&m, i * st), val(i)), "stride %zu key %llu", s,
                      (unsigned long long)i);
        for (uint64_t i = 1; i <= N; i++) {
            void *want = (i - 1) % 3 == 0 ? NULL : val(i);
            cr_assert(eq(ptr, mq_map_get(&m, i * st), want), "stride %zu key %llu", s,
                      (unsigned long long)i);
        }
        cr_assert(eq(sz, m.len, N - (N + 2) / 3));
        for (uint64_t i = 1; i <= N; i += 3)
            mq_map_put(&m, i * st, val(i + N));
        for (uint64_t i = 1; i <= N; i++) {
            void *want = (i - 1) % 3 == 0 ? val(i + N) : val(i);
            cr_assert(eq(ptr, mq_map_get(&m, i * st), want), "stride %zu key %llu", s,
                      (unsigned long long)i);
        }
        cr_assert(eq(sz, m.len, N));
    }
}

Test(map, deleting_everything_empties_the_table)
{
    enum { N = 1000 };
    for (uint64_t k = 1; k <= N; k++)
        mq_map_put(&m, k * 1000003u, val(k));
    for (uint64_t k = N; k >= 1; k--)
        cr_assert(eq(ptr, mq_map_del(&m, k * 1000003u), val(k)));
    cr_assert(eq(sz, m.len, 0));
    for (size_t i = 0; i < m.cap; i++)
        cr_assert(eq(u64, m.slots[i].key, 0), "slot %zu", i);
    mq_map_put(&m, 1, val(1));
    cr_assert(eq(ptr, mq_map_get(&m, 1), val(1)));
}

Test(map, fini_leaves_an_empty_reusable_map)
{
    mq_map_put(&m, 1, val(1));
    mq_map_fini(&m);
    cr_assert(eq(ptr, mq_map_get(&m, 1), NULL));
    cr_assert(eq(sz, m.len, 0));
    mq_map_put(&m, 2, val(2));
    cr_assert(eq(ptr, mq_map_get(&m, 2), val(2)));
}

/* --- names ---------------------------------------------------------------------------------- */

Test(names, finds_every_name_put_and_no_other_across_growth)
{
    enum { N = 3000 };
    static char names[N][16];
    mq_names_t ix = {0};
    cr_assert(eq(u32, mq_names_get(&ix, "x", 1), 0)); /* empty index */
    for (uint32_t i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "user%u", i);
        mq_names_put(&ix, names[i], strlen(names[i]), i + 1);
    }
    cr_assert(eq(sz, ix.len, N));
    for (uint32_t i = 0; i < N; i++)
        cr_assert(eq(u32, mq_names_get(&ix, names[i], strlen(names[i])), i + 1), "%s", names[i]);
    cr_assert(eq(u32, mq_names_get(&ix, "user", 4), 0));     /* a prefix */
    cr_assert(eq(u32, mq_names_get(&ix, "user10x", 7), 0));  /* an indexed name and more */
    cr_assert(eq(u32, mq_names_get(&ix, "user3000", 8), 0)); /* never put */
    mq_names_fini(&ix);
}

Test(names, the_empty_name_is_a_name_and_put_replaces)
{
    mq_names_t ix = {0};
    mq_names_put(&ix, "", 0, 7);
    cr_assert(eq(u32, mq_names_get(&ix, NULL, 0), 7));
    char again[] = "bob", first[] = "bob";
    mq_names_put(&ix, first, 3, 1);
    mq_names_put(&ix, again, 3, 2); /* an equal name: replaced, pointer and number */
    cr_assert(eq(sz, ix.len, 2));
    cr_assert(eq(u32, mq_names_get(&ix, "bob", 3), 2));
    mq_names_fini(&ix);
    cr_assert(eq(u32, mq_names_get(&ix, "bob", 3), 0));
}
