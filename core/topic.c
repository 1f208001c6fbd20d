/* SPDX-License-Identifier: MIT */
/* core/topic.c - topic name and filter rules and matching (see topic.h). */
#include "core/topic.h"

#include <string.h>

#define SHARE_PREFIX "$share/"
#define SHARE_PREFIX_LEN (sizeof(SHARE_PREFIX) - 1)

static void set_why(const char **why, const char *text)
{
    if (why)
        *why = text;
}

enum mq_rc mq_topic_validate_name(const char *topic, size_t len, const char **why)
{
    if (len == 0) {
        set_why(why, "empty topic name");
        return MQ_RC_TOPIC_NAME_INVALID;
    }
    for (size_t i = 0; i < len; i++) {
        if (topic[i] == '+' || topic[i] == '#') {
            set_why(why, "wildcard in topic name");
            return MQ_RC_TOPIC_NAME_INVALID;
        }
    }
    return MQ_RC_SUCCESS;
}

enum mq_rc mq_topic_validate_plain_filter(const char *f, size_t len, const char **why)
{
    if (len == 0) {
        set_why(why, "empty topic filter");
        return MQ_RC_TOPIC_FILTER_INVALID;
    }
    for (size_t i = 0; i < len; i++) {
        char c = f[i];
        if (c != '+' && c != '#')
            continue;
        bool starts_level = i == 0 || f[i - 1] == '/';
        bool ends_level = i + 1 == len || f[i + 1] == '/';
        if (!starts_level || !ends_level) {
            set_why(why, "wildcard is not a whole level");
            return MQ_RC_TOPIC_FILTER_INVALID;
        }
        if (c == '#' && i + 1 != len) {
            set_why(why, "'#' is not the last level");
            return MQ_RC_TOPIC_FILTER_INVALID;
        }
    }
    return MQ_RC_SUCCESS;
}

enum mq_rc mq_topic_validate_filter(const char *filter, size_t len, const char **why)
{
    if (len >= SHARE_PREFIX_LEN && memcmp(filter, SHARE_PREFIX, SHARE_PREFIX_LEN) == 0) {
        const char *name = filter + SHARE_PREFIX_LEN;
        size_t left = len - SHARE_PREFIX_LEN;
        const char *slash = memchr(name, '/', left);
        if (!slash) {
            set_why(why, "shared subscription without a filter");
            return MQ_RC_TOPIC_FILTER_INVALID;
        }
        size_t nlen = (size_t)(slash - name);
        if (nlen == 0) {
            set_why(why, "empty share name");
            return MQ_RC_TOPIC_FILTER_INVALID;
        }
        if (memchr(name, '+', nlen) || memchr(name, '#', nlen)) {
            set_why(why, "wildcard in share name");
            return MQ_RC_TOPIC_FILTER_INVALID;
        }
        return mq_topic_validate_plain_filter(slash + 1, left - nlen - 1, why);
    }
    return mq_topic_validate_plain_filter(filter, len, why);
}

bool mq_topic_split_shared(const char *filter, size_t len, mq_str_t *share, mq_str_t *rest)
{
    if (len < SHARE_PREFIX_LEN || memcmp(filter, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
        return false;
    const char *name = filter + SHARE_PREFIX_LEN;
    size_t left = len - SHARE_PREFIX_LEN;
    const char *slash = memchr(name, '/', left);
    if (!slash)
        return false;
    size_t nlen = (size_t)(slash - name);
    share->ptr = name;
    share->len = nlen;
    rest->ptr = slash + 1;
    rest->len = left - nlen - 1;
    return true;
}

bool mq_topic_matches(const char *filter, size_t flen, const char *topic, size_t tlen)
{
    /* [MQTT-4.7.2-1]: a leading wildcard never matches a '$' topic. */
    if (tlen > 0 && topic[0] == '$' && flen > 0 && (filter[0] == '+' || filter[0] == '#'))
        return false;

    size_t fi = 0, ti = 0;
    for (;;) {
        /* at the start of a level in both */
        if (fi < flen && filter[fi] == '#')
            return true; /* matches this level, all below, and (reached via "a/#") the parent */
        if (fi < flen && filter[fi] == '+') {
            fi++;
            while (ti < tlen && topic[ti] != '/')
                ti++;
        } else {
            while (fi < flen && ti < tlen && filter[fi] != '/' && topic[ti] != '/') {
                if (filter[fi] != topic[ti])
                    return false;
                fi++;
                ti++;
            }
            bool f_end = fi == flen || filter[fi] == '/';
            bool t_end = ti == tlen || topic[ti] == '/';
            if (!f_end || !t_end)
                return false;
        }
        /* both at the end of a level */
        if (fi == flen && ti == tlen)
            return true;
        if (ti == tlen) {
            /* topic ended; "a/#" still matches "a" */
            return fi + 2 == flen && filter[fi] == '/' && filter[fi + 1] == '#';
        }
        if (fi == flen)
            return false;
        fi++; /* skip '/' in both */
        ti++;
    }
}

bool mq_topic_has_wildcard(const char *filter, size_t len)
{
    return memchr(filter, '+', len) != NULL || memchr(filter, '#', len) != NULL;
}

bool mq_topic_is_sys(const char *topic, size_t len)
{
    return len >= 4 && memcmp(topic, "$SYS", 4) == 0 && (len == 4 || topic[4] == '/');
}
