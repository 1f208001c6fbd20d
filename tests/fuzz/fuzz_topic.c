/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fuzz_topic.c - libFuzzer target for topic name and filter rules and matching.
 *
 * Input: "filter\0topic" (or one string used as both). Checked on every input:
 *  - validation and matching never read out of bounds (ASan/UBSan);
 *  - a valid topic name is also a valid filter and matches itself;
 *  - "#" matches every topic not starting with '$', and "+" exactly those with one level;
 *  - a valid shared filter splits into a non-empty share name and a non-empty filter;
 *  - matching agrees with a straightforward level-by-level reference implementation. */
#include <stdlib.h>
#include <string.h>

#include "core/topic.h"

/* Reference matcher: split both at '/', compare level by level. */
static bool ref_match(const char *f, size_t fl, const char *t, size_t tl)
{
    if (tl && t[0] == '$' && fl && (f[0] == '+' || f[0] == '#'))
        return false;
    size_t fi = 0, ti = 0;
    for (;;) {
        size_t fe = fi, te = ti;
        while (fe < fl && f[fe] != '/')
            fe++;
        while (te < tl && t[te] != '/')
            te++;
        if (fe - fi == 1 && f[fi] == '#')
            return true;
        bool ok = (fe - fi == 1 && f[fi] == '+') ||
                  (fe - fi == te - ti && memcmp(f + fi, t + ti, fe - fi) == 0);
        if (!ok)
            return false;
        bool f_done = fe == fl, t_done = te == tl;
        if (f_done && t_done)
            return true;
        if (t_done) /* "a/#" matches "a" */
            return fe + 2 == fl && f[fe + 1] == '#';
        if (f_done)
            return false;
        fi = fe + 1;
        ti = te + 1;
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nul = memchr(s, '\0', size);
    const char *f = s, *t = s;
    size_t fl = size, tl = size;
    if (nul) {
        fl = (size_t)(nul - s);
        t = nul + 1;
        tl = size - fl - 1;
    }
    const char *why = NULL;
    bool name_ok = mq_topic_validate_name(t, tl, &why) == MQ_RC_SUCCESS;
    bool filter_ok = mq_topic_validate_filter(f, fl, &why) == MQ_RC_SUCCESS;
    bool wild = mq_topic_has_wildcard(f, fl);
    (void)wild;

    if (name_ok) {
        if (mq_topic_validate_filter(t, tl, NULL) != MQ_RC_SUCCESS &&
            !(tl >= 7 && !memcmp(t, "$share/", 7)))
            abort();
        if (!mq_topic_matches(t, tl, t, tl) && !(tl >= 7 && !memcmp(t, "$share/", 7)))
            abort();
        if (mq_topic_matches("#", 1, t, tl) != (t[0] != '$'))
            abort();
        if (mq_topic_matches("+", 1, t, tl) != (t[0] != '$' && !memchr(t, '/', tl)))
            abort();
    }
    if (filter_ok) {
        mq_str_t share, rest;
        if (mq_topic_split_shared(f, fl, &share, &rest)) {
            /* the rest is a plain filter (it may itself start with "$share/") */
            if (share.len == 0 || rest.len == 0 || memchr(share.ptr, '/', share.len) ||
                rest.ptr != share.ptr + share.len + 1 || rest.ptr + rest.len != f + fl)
                abort();
        } else if (name_ok) {
            if (mq_topic_matches(f, fl, t, tl) != ref_match(f, fl, t, tl))
                abort();
        }
    }
    return 0;
}
