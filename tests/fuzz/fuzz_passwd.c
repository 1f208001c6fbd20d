/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_passwd.c - libFuzzer target for the password file parser and verification.
 *
 * Input: a password file. Checked on every input:
 *  - parsing never reads out of bounds or leaks (ASan/LSan), reports carry line numbers that
 *    exist in the input, in increasing order;
 *  - the table holds at most one user per line, and every user found through the parser's own
 *    line splitting can be verified (cheap entries only: at most 1000 iterations);
 *  - a line made for a valid user name with mq_passwd_format_line parses back and verifies. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/passwd.h"

typedef struct {
    unsigned lines, last;
} seen_t;

static void report(void *arg, const char *file, unsigned line, const char *why)
{
    seen_t *s = arg;
    if (!file || !why || line == 0 || line > s->lines || line <= s->last)
        abort();
    s->last = line;
}

static void probe(const mq_passwd_t *t, const char *p, size_t len)
{
    mq_str_t user, pass;
    if (!mq_passwd_split_line(p, len, &user, &pass))
        return;
    const mq_passwd_entry_t *e = mq_passwd_find(t, user.ptr, user.len);
    if (!e)
        return;
    if (!mq_str_eq(mq_passwd_entry_user(e), user))
        abort();
    if (mq_passwd_entry_iterations(e) <= 1000) {
        (void)mq_passwd_verify(e, pass.ptr, pass.len);
        mq_passwd_key_t k;
        mq_passwd_cache_key(t, e, pass.ptr, pass.len, &k);
    }
    /* a fresh line for the same name and this "password" must round-trip */
    /* (a name starting with '#' makes a comment line, in mosquitto too) */
    if (mq_passwd_user_problem(user.ptr, user.len) == NULL && pass.len <= 64 &&
        user.ptr[0] != '#') {
        static const uint8_t salt[MQ_PASSWD_SALT_LEN] = {7};
        mq_buf_t line;
        mq_buf_init(&line);
        if (mq_passwd_format_line(&line, user.ptr, user.len, pass.ptr, pass.len,
                                  MQ_PASSWD_SHA512_PBKDF2, 1, salt) != 0)
            abort();
        mq_passwd_t *one = mq_passwd_parse("line", (const char *)line.data, line.len, NULL, NULL);
        if (mq_passwd_check(one, user.ptr, user.len, pass.ptr, pass.len) != MQ_PASSWD_OK &&
            !memchr(pass.ptr, '\0', pass.len))
            abort();
        mq_passwd_free(one);
        mq_buf_fini(&line);
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const char *s = (const char *)data;
    seen_t seen = {0, 0};
    for (size_t i = 0; i < size;) {
        const char *nl = memchr(s + i, '\n', size - i);
        seen.lines++;
        i = nl ? (size_t)(nl - s) + 1 : size;
    }
    mq_passwd_t *t = mq_passwd_parse("fuzz", s, size, report, &seen);
    if (mq_passwd_count(t) > seen.lines)
        abort();
    for (size_t i = 0; i < size;) {
        const char *nl = memchr(s + i, '\n', size - i);
        size_t len = nl ? (size_t)(nl - (s + i)) : size - i;
        probe(t, s + i, len);
        i += len + 1;
    }
    mq_passwd_free(t);
    return 0;
}
