/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_passwd.c - password file parsing, verification and line making. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "core/passwd.h"

/* Lines written by Debian's mosquitto_passwd 2.0.11 on the build machine. */
#define ALICE_7 /* secret, default iterations */                                                   \
    "alice:$7$101$NZGwNvTHtPTJeSo6$SQNQzBYNeKuU0s6V78ttkdodwyQtbjcregnJpNUbTflmTYDjr5FHcNNs0Suhn"  \
    "/OIrq9RPM8GcXoXXt4KEgqFSw==\n"
#define BOB_6 /* hunter2, -H sha512 */                                                             \
    "bob:$6$j700SdYHchQSAjZH$xDfDOuReXj/cnY8RZHDSbxtyMhmjrH7TqRKvD90izPkVIajqhyIKmCQdpZDVl6OqToGb" \
    "LeQx4H1Gbvk0+Espbw==\n"
#define CAROL_7 /* pässwörd, -I 1000 */                                                          \
    "carol:$7$1000$u8KtwGsk//bXT7vj$byeJqzYbKJmKeI0M0oasvMQ0P8WPvLk+s0j+U+QBXQgrljUhBLi4lZaLSJul"  \
    "vRFKprU7rM8rbUUqzEm6nwaGgA==\n"
#define DAVE_7 /* empty password */                                                                \
    "dave:$7$101$+bpX50Gqjnp/KuLy$8q5yrqdM9F9DB27ITLxBzQCyRDbwvUWUyrwfryybpW8SqdvDxR7AZFAe6nm2QB8" \
    "Mw2/j9m/R4hNiP6DnyFA3ZQ==\n"
#define EVE_6 /* user "eve smith", password "a:b c", -H sha512 */                                  \
    "eve smith:$6$CyZ9WM2CfOmMvpX5$3g4lVJKAussRxzwsw6FCS7YSsTJFvM3Ar/V6K5kEuAqPkXq4XkO3VkiGx7Y+x8" \
    "JTJ62rZ7JpDjf0NP0xfrscrA==\n"

/* Collected reports. */
typedef struct {
    unsigned n;
    unsigned line[16];
    char why[16][96];
    char file[64];
} reports_t;

static void collect(void *arg, const char *file, unsigned line, const char *why)
{
    reports_t *r = arg;
    snprintf(r->file, sizeof r->file, "%s", file);
    if (r->n < 16) {
        r->line[r->n] = line;
        snprintf(r->why[r->n], sizeof r->why[0], "%s", why);
    }
    r->n++;
}

static mq_passwd_t *parse(const char *text, reports_t *r)
{
    memset(r, 0, sizeof *r);
    return mq_passwd_parse("pw.txt", text, strlen(text), collect, r);
}

static enum mq_passwd_result check(const mq_passwd_t *t, const char *user, const char *pw)
{
    return mq_passwd_check(t, user, strlen(user), pw, pw ? strlen(pw) : 0);
}

Test(passwd, verifies_every_kind_of_line_mosquitto_passwd_writes)
{
    reports_t r;
    mq_passwd_t *t = parse(ALICE_7 BOB_6 CAROL_7 DAVE_7 EVE_6, &r);
    cr_assert(eq(u32, r.n, 0));
    cr_assert(eq(sz, mq_passwd_count(t), 5));
    cr_expect(eq(int, check(t, "alice", "secret"), MQ_PASSWD_OK));
    cr_expect(eq(int, check(t, "bob", "hunter2"), MQ_PASSWD_OK));
    cr_expect(eq(int, check(t, "carol", "p\xc3\xa4ssw\xc3\xb6rd"), MQ_PASSWD_OK));
    /* dave's line hashes the empty password, which authenticates nobody (as in mosquitto,
     * which reads a zero-length password as none) */
    cr_expect(eq(int, check(t, "dave", ""), MQ_PASSWD_BAD_PASSWORD));
    cr_expect(eq(int, check(t, "eve smith", "a:b c"), MQ_PASSWD_OK));

    const mq_passwd_entry_t *e = mq_passwd_find(t, "carol", 5);
    cr_assert(e != NULL);
    cr_expect(eq(int, mq_passwd_entry_hash(e), MQ_PASSWD_SHA512_PBKDF2));
    cr_expect(eq(u32, mq_passwd_entry_iterations(e), 1000));
    cr_expect(mq_str_eq(mq_passwd_entry_user(e), MQ_STR_LIT("carol")));
    e = mq_passwd_find(t, "bob", 3);
    cr_expect(eq(int, mq_passwd_entry_hash(e), MQ_PASSWD_SHA512));
    cr_expect(eq(u32, mq_passwd_entry_iterations(e), 1));
    mq_passwd_free(t);
}

Test(passwd, refuses_wrong_missing_and_odd_passwords)
{
    reports_t r;
    mq_passwd_t *t = parse(ALICE_7 BOB_6 DAVE_7, &r);
    cr_expect(eq(int, check(t, "alice", "Secret"), MQ_PASSWD_BAD_PASSWORD));
    cr_expect(eq(int, check(t, "alice", "secret "), MQ_PASSWD_BAD_PASSWORD));
    cr_expect(eq(int, check(t, "alice", ""), MQ_PASSWD_BAD_PASSWORD));
    cr_expect(eq(int, check(t, "alice", NULL), MQ_PASSWD_BAD_PASSWORD), "no password field");
    cr_expect(eq(int, check(t, "dave", NULL), MQ_PASSWD_BAD_PASSWORD),
              "an empty password is not the same as none");
    cr_expect(eq(int, check(t, "bob", "hunter"), MQ_PASSWD_BAD_PASSWORD));
    cr_expect(eq(int, check(t, "bob", "hunter2x"), MQ_PASSWD_BAD_PASSWORD));
    cr_expect(eq(int, check(t, "bob", "secret"), MQ_PASSWD_BAD_PASSWORD),
              "another user's password");
    cr_expect(eq(int, mq_passwd_check(t, "alice", 5, "secret\0x", 8), MQ_PASSWD_BAD_PASSWORD),
              "a NUL byte never matches");
    cr_expect(eq(int, check(t, "mallory", "secret"), MQ_PASSWD_UNKNOWN_USER));
    cr_expect(eq(int, check(t, "Alice", "secret"), MQ_PASSWD_UNKNOWN_USER), "names are exact");
    cr_expect(eq(int, check(t, "alic", "secret"), MQ_PASSWD_UNKNOWN_USER));
    cr_expect(eq(int, mq_passwd_check(t, NULL, 0, "x", 1), MQ_PASSWD_UNKNOWN_USER));
    cr_expect(not(mq_passwd_verify(NULL, "secret", 6)));
    mq_passwd_free(t);
}

Test(passwd, format_line_reproduces_mosquitto_passwd_byte_for_byte)
{
    static const struct {
        const char *line, *user, *pw;
        enum mq_passwd_hash kind;
        int iter;
    } v[] = {
        {ALICE_7, "alice", "secret", MQ_PASSWD_SHA512_PBKDF2, 101},
        {BOB_6, "bob", "hunter2", MQ_PASSWD_SHA512, 0},
        {CAROL_7, "carol", "p\xc3\xa4ssw\xc3\xb6rd", MQ_PASSWD_SHA512_PBKDF2, 1000},
        {EVE_6, "eve smith", "a:b c", MQ_PASSWD_SHA512, 0},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        /* take the salt from mosquitto's line, then hash the password again ourselves */
        uint8_t salt[MQ_PASSWD_SALT_LEN];
        const char *s = strchr(v[i].line, '$') + 3;
        if (v[i].kind == MQ_PASSWD_SHA512_PBKDF2)
            s = strchr(s, '$') + 1;
        uint8_t raw[12];
        cr_assert(eq(int, EVP_DecodeBlock(raw, (const unsigned char *)s, 16), 12));
        memcpy(salt, raw, sizeof salt);
        mq_buf_t out;
        mq_buf_init(&out);
        cr_assert(eq(int,
                     mq_passwd_format_line(&out, v[i].user, strlen(v[i].user), v[i].pw,
                                           strlen(v[i].pw), v[i].kind, v[i].iter, salt),
                     0));
        cr_expect(eq(sz, out.len, strlen(v[i].line)), "line %zu", i);
        cr_expect(eq(int, memcmp(out.data, v[i].line, out.len), 0), "line %zu: %.*s", i,
                  (int)out.len, (const char *)out.data);
        mq_buf_fini(&out);
    }
}

Test(passwd, make_line_round_trips_with_a_fresh_salt_each_time)
{
    mq_buf_t a, b;
    mq_buf_init(&a);
    mq_buf_init(&b);
    cr_assert(eq(int, mq_passwd_make_line(&a, "u1", 2, "pw", 2, MQ_PASSWD_SHA512_PBKDF2, 7), 0));
    cr_assert(eq(int, mq_passwd_make_line(&b, "u1", 2, "pw", 2, MQ_PASSWD_SHA512_PBKDF2, 7), 0));
    cr_expect(a.len == b.len && memcmp(a.data, b.data, a.len) != 0, "salts differ");
    cr_expect(eq(int, memcmp(a.data, "u1:$7$7$", 8), 0));
    cr_assert(eq(int, mq_passwd_make_line(&a, "u2", 2, "x y", 3, MQ_PASSWD_SHA512, 0), 0));
    reports_t r = {0};
    mq_passwd_t *t = mq_passwd_parse("mem", (const char *)a.data, a.len, collect, &r);
    cr_expect(eq(u32, r.n, 0));
    cr_expect(eq(int, check(t, "u1", "pw"), MQ_PASSWD_OK));
    cr_expect(eq(int, check(t, "u2", "x y"), MQ_PASSWD_OK));
    cr_expect(eq(u32, mq_passwd_entry_iterations(mq_passwd_find(t, "u1", 2)), 7));
    mq_passwd_free(t);
    mq_buf_fini(&a);
    mq_buf_fini(&b);
}

Test(passwd, make_line_rejects_what_mosquitto_passwd_rejects)
{
    mq_buf_t out;
    mq_buf_init(&out);
    cr_expect(eq(int, mq_passwd_make_line(&out, "a:b", 3, "p", 1, MQ_PASSWD_SHA512, 0), -EINVAL));
    cr_expect(eq(int, mq_passwd_make_line(&out, "a\tb", 3, "p", 1, MQ_PASSWD_SHA512, 0), -EINVAL));
    cr_expect(eq(int, mq_passwd_make_line(&out, "", 0, "p", 1, MQ_PASSWD_SHA512, 0), -EINVAL));
    cr_expect(
        eq(int, mq_passwd_make_line(&out, "a", 1, "p", 1, MQ_PASSWD_SHA512_PBKDF2, 0), -EINVAL));
    char *big = mq_alloc(MQ_PASSWD_FIELD_MAX + 1);
    memset(big, 'x', MQ_PASSWD_FIELD_MAX + 1);
    cr_expect(eq(
        int, mq_passwd_make_line(&out, big, MQ_PASSWD_FIELD_MAX + 1, "p", 1, MQ_PASSWD_SHA512, 0),
        -EINVAL));
    cr_expect(eq(
        int, mq_passwd_make_line(&out, "a", 1, big, MQ_PASSWD_FIELD_MAX + 1, MQ_PASSWD_SHA512, 0),
        -EINVAL));
    cr_expect(eq(sz, out.len, 0), "nothing appended on error");
    cr_expect(eq(str, (char *)mq_passwd_user_problem("a:b", 3),
                 "Error: Username must not contain the ':' character."));
    cr_expect(eq(str, (char *)mq_passwd_user_problem("a\x01", 2),
                 "Error: Username must not contain control characters."));
    cr_expect(mq_passwd_user_problem("j\xc3\xb6rg smith", 11) == NULL);
    mq_free(big);
    mq_buf_fini(&out);
}

Test(passwd, reports_bad_lines_with_their_numbers_and_keeps_the_rest)
{
    reports_t r;
    mq_passwd_t *t = parse("# comment\n"                     /* 1 */
                           "\n"                              /* 2 */
                           "   \t\n"                         /* 3 */
                           "just text\n"                     /* 4 */
                           ALICE_7                           /* 5 */
                           ":$6$j700SdYHchQSAjZH$xx\n"       /* 6 */
                           "nohash:\n"                       /* 7 */
                           "x:$5$j700SdYHchQSAjZH$abc\n"     /* 8 */
                           "x:$7$0$j700SdYHchQSAjZH$abc\n"   /* 9 */
                           "x:$7$abc$j700SdYHchQSAjZH$abc\n" /* 10 */
                           "x:$6$j700SdYHchQSAj$abc\n"       /* 11 */
                           "x:$6$j700SdYHchQSAjZH$abc\n"     /* 12 */
                           "x:$7$101$j700SdYHchQSAjZH\n"     /* 13 */
                           "x:$6$j700SdYHchQSAj*H$abc\n"     /* 14 */
                           "x:plaintext\n"                   /* 15 */
                           "  # indented comment\n"          /* 16 */
                           BOB_6,                            /* 17 */
                           &r);
    cr_assert(eq(u32, r.n, 11));
    unsigned want[] = {4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    for (unsigned i = 0; i < 11; i++)
        cr_expect(eq(u32, r.line[i], want[i]), "report %u: %s", i, r.why[i]);
    cr_expect(eq(str, r.file, "pw.txt"));
    cr_expect(eq(str, r.why[2], "empty password hash"));
    cr_expect(eq(str, r.why[3], "unknown password hash type (not $6$ or $7$)"));
    cr_expect(eq(str, r.why[4], "invalid hash iterations"));
    cr_expect(eq(sz, mq_passwd_count(t), 2));
    cr_expect(eq(int, check(t, "alice", "secret"), MQ_PASSWD_OK));
    cr_expect(eq(int, check(t, "bob", "hunter2"), MQ_PASSWD_OK));
    cr_expect(eq(int, check(t, "x", "plaintext"), MQ_PASSWD_UNKNOWN_USER));
    mq_passwd_free(t);
}

Test(passwd, tolerates_what_mosquitto_tolerates)
{
    reports_t r;
    /* CRLF, blanks around both fields, text after a second ':', no final newline */
    mq_passwd_t *t = parse("  alice \t: $7$101$NZGwNvTHtPTJeSo6$SQNQzBYNeKuU0s6V78ttkdodwyQtbjcre"
                           "gnJpNUbTflmTYDjr5FHcNNs0Suhn/OIrq9RPM8GcXoXXt4KEgqFSw== :extra\r\n"
                           "bob:$6$j700SdYHchQSAjZH$xDfDOuReXj/cnY8RZHDSbxtyMhmjrH7TqRKvD90izPkVIa"
                           "jqhyIKmCQdpZDVl6OqToGbLeQx4H1Gbvk0+Espbw==",
                           &r);
    cr_expect(eq(u32, r.n, 0), "%s", r.why[0]);
    cr_expect(eq(int, check(t, "alice", "secret"), MQ_PASSWD_OK));
    cr_expect(eq(int, check(t, "bob", "hunter2"), MQ_PASSWD_OK));
    mq_passwd_free(t);
}

Test(passwd, a_repeated_user_takes_the_later_line_and_says_so)
{
    reports_t r;
    mq_passwd_t *t = parse(BOB_6 "bob:$7$101$NZGwNvTHtPTJeSo6$SQNQzBYNeKuU0s6V78ttkdodwyQtbjcregn"
                                 "JpNUbTflmTYDjr5FHcNNs0Suhn/OIrq9RPM8GcXoXXt4KEgqFSw==\n",
                           &r);
    cr_expect(eq(u32, r.n, 1));
    cr_expect(eq(u32, r.line[0], 2));
    cr_expect(eq(sz, mq_passwd_count(t), 1));
    cr_expect(eq(int, check(t, "bob", "secret"), MQ_PASSWD_OK), "alice's hash under bob's name");
    cr_expect(eq(int, check(t, "bob", "hunter2"), MQ_PASSWD_BAD_PASSWORD));
    mq_passwd_free(t);
}

Test(passwd, looks_up_among_many_users)
{
    mq_buf_t file;
    mq_buf_init(&file);
    uint8_t salt[MQ_PASSWD_SALT_LEN] = {1, 2, 3};
    char user[32], pw[32];
    for (int i = 0; i < 300; i++) {
        int ul = snprintf(user, sizeof user, "user-%d", i);
        int pl = snprintf(pw, sizeof pw, "pw-%d", i);
        cr_assert(eq(int,
                     mq_passwd_format_line(&file, user, (size_t)ul, pw, (size_t)pl,
                                           MQ_PASSWD_SHA512, 0, salt),
                     0));
    }
    mq_passwd_t *t = mq_passwd_parse("big", (const char *)file.data, file.len, NULL, NULL);
    cr_assert(eq(sz, mq_passwd_count(t), 300));
    for (int i = 0; i < 300; i++) {
        snprintf(user, sizeof user, "user-%d", i);
        snprintf(pw, sizeof pw, "pw-%d", i);
        cr_expect(eq(int, check(t, user, pw), MQ_PASSWD_OK), "%s", user);
        snprintf(pw, sizeof pw, "pw-%d", i + 1);
        cr_expect(eq(int, check(t, user, pw), MQ_PASSWD_BAD_PASSWORD), "%s", user);
    }
    cr_expect(eq(int, check(t, "user-300", "pw-300"), MQ_PASSWD_UNKNOWN_USER));
    mq_passwd_free(t);
    mq_buf_fini(&file);

    t = mq_passwd_parse("empty", "", 0, NULL, NULL);
    cr_expect(eq(sz, mq_passwd_count(t), 0));
    cr_expect(eq(int, check(t, "a", "b"), MQ_PASSWD_UNKNOWN_USER));
    mq_passwd_free(t);
    mq_passwd_free(NULL);
}

Test(passwd, cache_keys_tell_passwords_and_tables_apart)
{
    reports_t r;
    mq_passwd_t *t1 = parse(ALICE_7 BOB_6, &r);
    mq_passwd_t *t2 = parse(ALICE_7 BOB_6, &r);
    const mq_passwd_entry_t *a1 = mq_passwd_find(t1, "alice", 5);
    const mq_passwd_entry_t *b1 = mq_passwd_find(t1, "bob", 3);
    const mq_passwd_entry_t *a2 = mq_passwd_find(t2, "alice", 5);
    mq_passwd_key_t k1, k1b, k2, k3, k4, k5;
    cr_assert(mq_passwd_cache_key(t1, a1, "secret", 6, &k1));
    cr_assert(mq_passwd_cache_key(t1, a1, "secret", 6, &k1b));
    cr_assert(mq_passwd_cache_key(t1, a1, "secreT", 6, &k2));
    cr_assert(mq_passwd_cache_key(t1, b1, "secret", 6, &k3));
    cr_assert(mq_passwd_cache_key(t2, a2, "secret", 6, &k4));
    cr_assert(mq_passwd_cache_key(t1, a1, NULL, 0, &k5));
    cr_expect(mq_passwd_key_eq(&k1, &k1b), "deterministic within a table");
    cr_expect(not(mq_passwd_key_eq(&k1, &k2)), "password");
    cr_expect(not(mq_passwd_key_eq(&k1, &k3)), "user");
    cr_expect(not(mq_passwd_key_eq(&k1, &k4)), "a reloaded table has a new secret");
    mq_passwd_key_t k6;
    cr_assert(mq_passwd_cache_key(t1, a1, "", 0, &k6));
    cr_expect(not(mq_passwd_key_eq(&k5, &k6)), "no password differs from an empty one");
    mq_passwd_free(t1);
    mq_passwd_free(t2);
}

Test(passwd, split_line_matches_mosquitto_passwd)
{
    mq_str_t u, p;
    cr_expect(mq_passwd_split_line(" a b :  pw x : rest", 19, &u, &p));
    cr_expect(mq_str_eq(u, MQ_STR_LIT("a b")));
    cr_expect(mq_str_eq(p, MQ_STR_LIT("pw x")));
    cr_expect(not(mq_passwd_split_line("nocolon", 7, &u, &p)));
    cr_expect(not(mq_passwd_split_line(" :pw", 4, &u, &p)));
    cr_expect(not(mq_passwd_split_line("user: ", 6, &u, &p)));
}
