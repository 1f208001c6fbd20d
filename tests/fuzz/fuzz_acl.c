/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_acl.c - libFuzzer target for the ACL parser, checks and classification.
 *
 * Input: "ACL FILE\0USER\0CLIENT ID\0FILTER" (missing parts are empty; USER "-" = anonymous).
 * Checked on every input:
 *  - parsing, checking and classifying never read out of bounds or leak (ASan/LSan);
 *  - a refused file reports at least one error; an accepted one reports none;
 *  - for a valid FILTER, classify is consistent with check on topics the filter matches (made
 *    by filling its wildcards): FULL -> every one readable, NONE -> none readable. */
#include <stdlib.h>
#include <string.h>

#include "core/acl.h"
#include "core/buf.h"
#include "core/topic.h"

static void report(void *arg, const char *file, unsigned line, bool is_error, const char *msg)
{
    if (!file || !msg || line == 0)
        abort();
    if (is_error)
        ++*(unsigned *)arg;
}

static mq_str_t take(const char **p, const char *end)
{
    const char *nul = memchr(*p, '\0', (size_t)(end - *p));
    mq_str_t s = {*p, nul ? (size_t)(nul - *p) : (size_t)(end - *p)};
    *p = nul ? nul + 1 : end;
    return s;
}

/* A topic the filter matches: '+' and '#' become 'fill' ("a/#" may also stop at "a"). */
static void instantiate(mq_str_t f, const char *fill, bool drop_hash, mq_buf_t *out)
{
    out->len = 0;
    for (size_t i = 0; i < f.len; i++) {
        if (f.ptr[i] == '+' || f.ptr[i] == '#') {
            if (f.ptr[i] == '#' && drop_hash && out->len > 0) {
                out->len--; /* the '/' before it */
                return;
            }
            mq_buf_append(out, fill, strlen(fill));
        } else {
            mq_buf_append(out, &f.ptr[i], 1);
        }
    }
}

static void consistency(const mq_acl_t *acl, const mq_acl_client_t *c, mq_str_t f)
{
    if (mq_topic_validate_filter(f.ptr, f.len, NULL) != MQ_RC_SUCCESS ||
        (f.len >= 7 && memcmp(f.ptr, "$share/", 7) == 0))
        return;
    enum mq_acl_grant g = mq_acl_classify(acl, c, f.ptr, f.len);
    static const char *fills[] = {"x", "", "$x", "a"};
    mq_buf_t t;
    mq_buf_init(&t);
    for (size_t i = 0; i < 2 * sizeof fills / sizeof fills[0]; i++) {
        instantiate(f, fills[i / 2], i % 2, &t);
        if (t.len == 0 || !mq_topic_matches(f.ptr, f.len, (const char *)t.data, t.len))
            continue;
        bool ok = mq_acl_check(acl, c, (const char *)t.data, t.len, MQ_ACL_READ);
        if ((g == MQ_ACL_GRANT_FULL && !ok) || (g == MQ_ACL_GRANT_NONE && ok))
            abort();
        (void)mq_acl_check(acl, c, (const char *)t.data, t.len, MQ_ACL_WRITE);
    }
    mq_buf_fini(&t);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    mq_str_t file = take(&p, end), user = take(&p, end), cid = take(&p, end);
    mq_str_t filter = {p, (size_t)(end - p)};
    unsigned errors = 0;
    mq_acl_t *acl = NULL;
    int rc = mq_acl_parse("fuzz", file.ptr, file.len, report, &errors, &acl);
    if ((rc == 0) != (errors == 0) || (rc == 0) != (acl != NULL))
        abort();
    if (!acl)
        return 0;
    bool anon = user.len == 1 && user.ptr[0] == '-';
    mq_acl_client_t c = {anon ? NULL : &user, cid};
    consistency(acl, &c, filter);
    if (filter.len > 0 && !memchr(filter.ptr, '\0', filter.len))
        (void)mq_acl_check(acl, &c, filter.ptr, filter.len, MQ_ACL_READ);
    mq_acl_free(acl);
    return 0;
}
