/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_topic.c - topic name / filter rules and matching (core/topic.c). */
#include "core/topic.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

TestSuite(topic);

struct valid_case {
    const char *s;
    bool valid;
};

static const struct valid_case names[] = {
    {"a", true},
    {"sport/tennis/player1", true},
    {"/", true},
    {"//", true},
    {"/finance", true},
    {"finance/", true},
    {"$SYS/broker/uptime", true},
    {" ", true},
    {"a b/c d", true},
    {"$share/g/t", true}, /* a name, not a filter: '$share' has no meaning here */
    {"", false},
    {"+", false},
    {"#", false},
    {"sport/+", false},
    {"sport/#", false},
    {"a+b", false},
    {"a#", false},
    {"sport/tennis/#/x", false},
};

Test(topic, validates_topic_names)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *why = NULL;
        enum mq_rc rc = mq_topic_validate_name(names[i].s, strlen(names[i].s), &why);
        if (names[i].valid) {
            cr_expect(eq(int, rc, MQ_RC_SUCCESS), "name '%s' should be valid (%s)", names[i].s,
                      why ? why : "");
        } else {
            cr_expect(eq(int, rc, MQ_RC_TOPIC_NAME_INVALID), "name '%s' should be invalid",
                      names[i].s);
            cr_expect(why != NULL, "name '%s': no reason given", names[i].s);
        }
    }
}

Test(topic, validate_name_accepts_null_why)
{
    cr_expect(eq(int, mq_topic_validate_name("a/+", 3, NULL), MQ_RC_TOPIC_NAME_INVALID));
    cr_expect(eq(int, mq_topic_validate_filter("a+", 2, NULL), MQ_RC_TOPIC_FILTER_INVALID));
}

Test(topic, validate_name_uses_length_not_nul)
{
    /* the wildcard lies past 'len': not part of the name */
    cr_expect(eq(int, mq_topic_validate_name("ab+", 2, NULL), MQ_RC_SUCCESS));
    cr_expect(eq(int, mq_topic_validate_name("ab", 0, NULL), MQ_RC_TOPIC_NAME_INVALID));
}

static const struct valid_case filters[] = {
    {"a", true},
    {"#", true},
    {"+", true},
    {"/", true},
    {"+/+", true},
    {"/+", true},
    {"+/", true},
    {"sport/tennis/player1/#", true},
    {"sport/#", true},
    {"sport/tennis/+", true},
    {"sport/+/player1", true},
    {"+/tennis/#", true},
    {"$SYS/#", true},
    {"a//b", true},
    {"$share", true},      /* no slash: an ordinary filter */
    {"$shared/x/y", true}, /* not the share prefix */
    {"$share/g/a/b", true},
    {"$share/g/#", true},
    {"$share/g/+/x", true},
    {"$share/group-1/sport/+/player1", true},
    {"$share/g//", true}, /* filter "/" */
    {"", false},
    {"sport/tennis#", false},
    {"sport/tennis/#/ranking", false},
    {"sport+", false},
    {"+sport", false},
    {"sport/+x", false},
    {"#/", false},
    {"##", false},
    {"++", false},
    {"a/#/", false},
    {"$share/", false},    /* no share name, no filter */
    {"$share/g", false},   /* no filter */
    {"$share/g/", false},  /* empty filter */
    {"$share//a", false},  /* empty share name */
    {"$share/+/a", false}, /* wildcard share name */
    {"$share/#/a", false},
    {"$share/a+b/x", false},
    {"$share/g/a#", false}, /* invalid filter after the share name */
    {"$share/g/#/a", false},
};

Test(topic, validates_topic_filters_including_shared)
{
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
        const char *why = NULL;
        enum mq_rc rc = mq_topic_validate_filter(filters[i].s, strlen(filters[i].s), &why);
        if (filters[i].valid) {
            cr_expect(eq(int, rc, MQ_RC_SUCCESS), "filter '%s' should be valid (%s)", filters[i].s,
                      why ? why : "");
        } else {
            cr_expect(eq(int, rc, MQ_RC_TOPIC_FILTER_INVALID), "filter '%s' should be invalid",
                      filters[i].s);
            cr_expect(why != NULL, "filter '%s': no reason given", filters[i].s);
        }
    }
}

Test(topic, splits_shared_subscription_into_share_name_and_filter)
{
    mq_str_t share = {0}, rest = {0};
    const char *f = "$share/grp/sport/+/player1";
    cr_assert(mq_topic_split_shared(f, strlen(f), &share, &rest));
    cr_expect(eq(sz, share.len, 3));
    cr_expect(eq(int, memcmp(share.ptr, "grp", 3), 0));
    cr_expect(share.ptr == f + 7, "share name must be a view into the filter");
    cr_expect(eq(sz, rest.len, strlen("sport/+/player1")));
    cr_expect(eq(int, memcmp(rest.ptr, "sport/+/player1", rest.len), 0));

    f = "$share/g/#";
    cr_assert(mq_topic_split_shared(f, strlen(f), &share, &rest));
    cr_expect(eq(sz, share.len, 1));
    cr_expect(eq(sz, rest.len, 1));
    cr_expect(eq(chr, rest.ptr[0], '#'));
}

Test(topic, split_shared_refuses_ordinary_filters_and_leaves_outputs_alone)
{
    static const char *const plain[] = {
        "sport/#", "$share", "$share/nofilter", "$SHARE/g/x", "share/g/x", "$shared/g/x", "#"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        mq_str_t share = {"untouched", 9}, rest = {"untouched", 9};
        cr_expect(not(mq_topic_split_shared(plain[i], strlen(plain[i]), &share, &rest)),
                  "'%s' is not a shared subscription", plain[i]);
        cr_expect(eq(sz, share.len, 9), "'%s': share changed", plain[i]);
        cr_expect(eq(sz, rest.len, 9), "'%s': rest changed", plain[i]);
    }
}

Test(topic, detects_wildcards)
{
    cr_expect(mq_topic_has_wildcard("a/+/b", 5));
    cr_expect(mq_topic_has_wildcard("#", 1));
    cr_expect(mq_topic_has_wildcard("a/b/#", 5));
    cr_expect(mq_topic_has_wildcard("$share/g/+", 10));
    cr_expect(not(mq_topic_has_wildcard("a/b/c", 5)));
    cr_expect(not(mq_topic_has_wildcard("", 0)));
    cr_expect(not(mq_topic_has_wildcard("a/b#", 3)), "only 'len' bytes count");
}

struct match_case {
    const char *filter;
    const char *topic;
    bool match;
};

/* MQTT v5 §4.7.1.2, §4.7.1.3, §4.7.2 and v3.1.1 §4.7 non-normative examples, plus edges. */
static const struct match_case matches[] = {
    /* multi-level wildcard */
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/tennis/player1/#", "sport/tennis/player2", false},
    {"sport/tennis/player1/#", "sport/tennis", false},
    {"sport/#", "sport", true},
    {"sport/#", "sport/", true},
    {"sport/#", "sports", false},
    {"sport/#", "sportx/a", false},
    {"#", "sport", true},
    {"#", "/", true},
    {"#", "a/b/c/d", true},
    {"#", "/finance", true},
    /* single-level wildcard */
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"sport/+", "sport/tennis", true},
    {"sport/+", "sport/tennis/player1", false},
    {"+", "sport", true},
    {"+", "/finance", false},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+/tennis/#", "sport/tennis", true},
    {"+/tennis/#", "sport/tennis/x/y", true},
    {"+/tennis/#", "sport/golf", false},
    {"sport/+/player1", "sport/tennis/player1", true},
    {"sport/+/player1", "sport//player1", true},
    {"sport/+/player1", "sport/tennis/player2", false},
    /* '+' matches empty levels */
    {"+", "", true},
    {"+/+", "/", true},
    {"a/+/b", "a//b", true},
    {"+/+/+", "//", true},
    {"+/+/+", "/", false},
    {"/+", "/", true},
    {"+/", "a/", true},
    {"+/", "a", false},
    /* exact */
    {"a/b", "a/b", true},
    {"a/b", "a/b/", false},
    {"a/b/", "a/b", false},
    {"a/b", "a/bc", false},
    {"a/bc", "a/b", false},
    {"A/b", "a/b", false},
    {"/", "/", true},
    {"/", "", false},
    {"a//b", "a//b", true},
    {"a//b", "a/b", false},
    {"a/+", "a", false},
    {"a/+/#", "a/b", true},
    {"a/+/#", "a", false},
    /* $-topics [MQTT-4.7.2-1] */
    {"#", "$SYS/monitor/Clients", false},
    {"#", "$SYS", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"+", "$SYS", false},
    {"+/#", "$SYS/x", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"$SYS/+/Clients", "$SYS/monitor/Clients", true},
    {"a/#", "a/$SYS", true}, /* only the first level is special */
    {"a/+", "a/$x", true},
    {"$", "$", true},
};

Test(topic, matches_spec_examples)
{
    for (size_t i = 0; i < sizeof(matches) / sizeof(matches[0]); i++) {
        const struct match_case *m = &matches[i];
        bool got = mq_topic_matches(m->filter, strlen(m->filter), m->topic, strlen(m->topic));
        cr_expect(got == m->match, "filter '%s' vs topic '%s': expected %s", m->filter, m->topic,
                  m->match ? "match" : "no match");
    }
}

Test(topic, matching_respects_lengths_not_nul)
{
    /* filter "a/b" (prefix of "a/bc") vs topic "a/b" (prefix of "a/bx") */
    cr_expect(mq_topic_matches("a/bc", 3, "a/bx", 3));
    cr_expect(not(mq_topic_matches("a/b", 3, "a/bx", 4)));
    cr_expect(mq_topic_matches("a/#", 3, "a/b/c", 5));
}
