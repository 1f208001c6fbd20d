/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_acl.c - ACL file parsing, topic checks and subscription classes. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/acl.h"
#include "core/topic.h"

typedef struct {
    unsigned n, n_errors;
    unsigned line[16];
    bool is_error[16];
    char msg[16][128];
} reports_t;

static void collect(void *arg, const char *file, unsigned line, bool is_error, const char *msg)
{
    reports_t *r = arg;
    cr_expect(eq(str, (char *)file, "acl.txt"));
    if (r->n < 16) {
        r->line[r->n] = line;
        r->is_error[r->n] = is_error;
        snprintf(r->msg[r->n], sizeof r->msg[0], "%s", msg);
    }
    r->n++;
    r->n_errors += is_error;
}

static mq_acl_t *load(const char *text)
{
    reports_t r = {0};
    mq_acl_t *acl = NULL;
    int rc = mq_acl_parse("acl.txt", text, strlen(text), collect, &r, &acl);
    cr_assert(eq(int, rc, 0), "parse failed: line %u: %s", r.line[0], r.msg[0]);
    cr_assert(acl != NULL);
    return acl;
}

/* Client helpers: user NULL = anonymous. */
static bool can(const mq_acl_t *acl, const char *user, const char *cid, const char *topic,
                enum mq_acl_access a)
{
    mq_str_t u = mq_str(user);
    mq_acl_client_t c = {user ? &u : NULL, mq_str(cid)};
    return mq_acl_check(acl, &c, topic, strlen(topic), a);
}

static enum mq_acl_grant cls(const mq_acl_t *acl, const char *user, const char *cid,
                             const char *filter)
{
    mq_str_t u = mq_str(user);
    mq_acl_client_t c = {user ? &u : NULL, mq_str(cid)};
    return mq_acl_classify(acl, &c, filter, strlen(filter));
}

#define R MQ_ACL_READ
#define W MQ_ACL_WRITE
#define NONE MQ_ACL_GRANT_NONE
#define PART MQ_ACL_GRANT_PARTIAL
#define FULL MQ_ACL_GRANT_FULL

/* The example from mosquitto.conf(5) and aclfile.example, extended. */
static const char *EXAMPLE = "# This affects access control for clients with no username.\n"
                             "topic read $SYS/#\n"
                             "\n"
                             "# This only affects clients with username \"roger\".\n"
                             "user roger\n"
                             "topic foo/bar\n"
                             "\n"
                             "# This affects all clients.\n"
                             "pattern write $SYS/broker/connection/%c/state\n"
                             "pattern readwrite devices/%u/#\n";

Test(acl, parses_mosquittos_example_file)
{
    mq_acl_t *acl = load(EXAMPLE);
    cr_expect(eq(sz, mq_acl_count_topics(acl), 2));
    cr_expect(eq(sz, mq_acl_count_patterns(acl), 2));
    /* anonymous: $SYS read only */
    cr_expect(can(acl, NULL, "c1", "$SYS/broker/uptime", R));
    cr_expect(not(can(acl, NULL, "c1", "$SYS/broker/uptime", W)));
    cr_expect(not(can(acl, NULL, "c1", "foo/bar", R)));
    /* roger: foo/bar readwrite, not the anonymous section, and his devices via %u */
    cr_expect(can(acl, "roger", "c2", "foo/bar", R));
    cr_expect(can(acl, "roger", "c2", "foo/bar", W));
    cr_expect(not(can(acl, "roger", "c2", "$SYS/broker/uptime", R)));
    cr_expect(can(acl, "roger", "c2", "devices/roger/temp", W));
    cr_expect(can(acl, "roger", "c2", "devices/roger", R), "'#' matches the parent level");
    cr_expect(not(can(acl, "roger", "c2", "devices/other/temp", R)));
    /* patterns apply to everyone; %u patterns skip clients without user name */
    cr_expect(can(acl, NULL, "bridge1", "$SYS/broker/connection/bridge1/state", W));
    cr_expect(not(can(acl, NULL, "bridge1", "$SYS/broker/connection/bridge2/state", W)));
    cr_expect(can(acl, "someone", "bridge1", "$SYS/broker/connection/bridge1/state", W));
    cr_expect(not(can(acl, NULL, "x", "devices/%u/a", R)), "no literal %%u for anonymous");
    /* a user not in the file gets the patterns only */
    cr_expect(can(acl, "eve", "e", "devices/eve/x", R));
    cr_expect(not(can(acl, "eve", "e", "foo/bar", R)));
    mq_acl_free(acl);
}

Test(acl, deny_lines_win_wherever_they_stand)
{
    mq_acl_t *acl = load("user u\n"
                         "topic read a/#\n"
                         "topic deny a/secret/#\n"
                         "topic write a/+/in\n");
    cr_expect(can(acl, "u", "c", "a/x", R));
    cr_expect(not(can(acl, "u", "c", "a/secret", R)));
    cr_expect(not(can(acl, "u", "c", "a/secret/k", R)));
    cr_expect(not(can(acl, "u", "c", "a/secret/in", W)), "deny covers both accesses");
    cr_expect(can(acl, "u", "c", "a/x/in", W));
    cr_expect(not(can(acl, "u", "c", "a/x", W)), "read does not grant write");
    cr_expect(can(acl, "u", "c", "a/x/in", R), "a later write line does not take read away");
    mq_acl_free(acl);
}

Test(acl, dollar_topics_need_lines_that_start_with_dollar)
{
    mq_acl_t *acl = load("user u\ntopic read #\ntopic read +/x\npattern read %c/#\n");
    cr_expect(can(acl, "u", "c", "a/b", R));
    cr_expect(can(acl, "u", "c", "q/x", R));
    cr_expect(not(can(acl, "u", "c", "$SYS/broker/uptime", R)));
    cr_expect(not(can(acl, "u", "c", "$q/x", R)));
    cr_expect(can(acl, "u", "c", "c/anything", R));
    cr_expect(not(can(acl, "u", "$SYS", "$SYS/broker/uptime", R)),
              "a substituted leading '$' does not open $SYS");
    mq_acl_free(acl);
    acl = load("user u\ntopic read $SYS/#\ntopic read $share/g/#\n");
    cr_expect(can(acl, "u", "c", "$SYS/broker/uptime", R));
    cr_expect(can(acl, "u", "c", "$SYS", R));
    cr_expect(not(can(acl, "u", "c", "SYS/x", R)));
    mq_acl_free(acl);
}

Test(acl, a_user_line_is_checked_before_the_patterns)
{
    /* mosquitto returns at the first decision in the user's own lines */
    mq_acl_t *acl = load("user u\n"
                         "topic read shared/x\n"
                         "topic deny dev/u/secret\n"
                         "pattern deny shared/#\n"
                         "pattern read dev/%u/#\n");
    cr_expect(can(acl, "u", "c", "shared/x", R), "own allow beats a pattern deny");
    cr_expect(not(can(acl, "u", "c", "shared/y", R)));
    cr_expect(not(can(acl, "u", "c", "dev/u/secret", R)), "own deny beats a pattern allow");
    cr_expect(can(acl, "u", "c", "dev/u/other", R));
    mq_acl_free(acl);
}

Test(acl, dangerous_names_are_denied_where_patterns_would_substitute_them)
{
    mq_acl_t *acl = load("user a+b\ntopic read own/x\n"
                         "pattern read dev/%c/#\n");
    /* mosquitto: '+' or '#' in user name or client id denies when there are patterns */
    cr_expect(not(can(acl, "a#", "c1", "dev/c1/x", R)));
    cr_expect(not(can(acl, NULL, "c+", "dev/c+/x", R)));
    cr_expect(not(can(acl, NULL, "c#", "dev/c#", R)));
    cr_expect(can(acl, "a+b", "c1", "own/x", R), "own lines still apply first");
    cr_expect(not(can(acl, "a+b", "c1", "dev/c1/x", R)));
    /* Starling: '/' where %c is substituted */
    cr_expect(not(can(acl, NULL, "c1/x", "dev/c1/x/y", R)));
    cr_expect(can(acl, "u/v", "c1", "dev/c1/y", R), "'/' in a user name no pattern substitutes");
    mq_acl_free(acl);

    acl = load("pattern read dev/%u/#\n");
    cr_expect(not(can(acl, "u/v", "c1", "dev/u/v/x", R)));
    cr_expect(can(acl, "u", "c1/x", "dev/u/x", R), "'/' in a client id no pattern substitutes");
    mq_acl_free(acl);

    acl = load("user a+\ntopic read x\n"); /* no patterns: no reason to deny */
    cr_expect(can(acl, "a+", "c#", "x", R));
    mq_acl_free(acl);
}

Test(acl, substitution_works_inside_a_level_and_repeats)
{
    mq_acl_t *acl = load("pattern readwrite pfx-%c-sfx/%u/%c\n");
    cr_expect(can(acl, "u", "id", "pfx-id-sfx/u/id", W));
    cr_expect(not(can(acl, "u", "id", "pfx-id-sfx/u/ix", W)));
    cr_expect(not(can(acl, "u", "id", "pfx-idsfx/u/id", W)));
    cr_expect(not(can(acl, NULL, "id", "pfx-id-sfx//id", W)));
    mq_acl_free(acl);
}

Test(acl, an_empty_file_denies_everything)
{
    mq_acl_t *acl = load("# nothing\n\n");
    cr_expect(not(can(acl, NULL, "c", "a", R)));
    cr_expect(not(can(acl, "u", "c", "a", W)));
    cr_expect(eq(int, cls(acl, "u", "c", "#"), NONE));
    mq_acl_free(acl);
    cr_expect(not(can(NULL, "u", "c", "a", R)));
}

Test(acl, reads_access_words_and_topics_as_mosquitto_does)
{
    mq_acl_t *acl = load("user u\n"
                         "topic read\n"            /* the topic "read", readwrite */
                         "topic write  a b c \n"   /* the topic "a b c" */
                         "   topic\tdeny\tx/y\r\n" /* indented, tabs, CRLF */
                         "  # an indented comment\n"
                         "user   john smith  \n"
                         "topic deny d\n");
    cr_expect(can(acl, "u", "c", "read", R));
    cr_expect(can(acl, "u", "c", "read", W));
    cr_expect(can(acl, "u", "c", "a b c", W));
    cr_expect(not(can(acl, "u", "c", "a b c", R)));
    cr_expect(not(can(acl, "u", "c", "x/y", R)));
    cr_expect(eq(sz, mq_acl_count_topics(acl), 4));
    cr_expect(not(can(acl, "john smith", "c", "read", R)), "a new section");
    mq_acl_free(acl);

    /* a repeated user continues the earlier section */
    acl = load("user u\ntopic read a\nuser v\ntopic read b\nuser u\ntopic read c\n");
    cr_expect(can(acl, "u", "c", "a", R));
    cr_expect(can(acl, "u", "c", "c", R));
    cr_expect(not(can(acl, "u", "c", "b", R)));
    cr_expect(can(acl, "v", "c", "b", R));
    mq_acl_free(acl);
}

Test(acl, reports_every_bad_line_and_refuses_the_file)
{
    const char *text = "topic read a\n"         /* 1 */
                       "topic\n"                /* 2 */
                       "topic rw a/b\n"         /* 3 */
                       "topic read a/#/b\n"     /* 4 */
                       "topic read a+\n"        /* 5 */
                       "user\n"                 /* 6 */
                       "users x\n"              /* 7 */
                       "pattern read fixed/x\n" /* 8: a warning only */
                       "Topic read a\n";        /* 9 */
    reports_t r = {0};
    mq_acl_t *acl = (mq_acl_t *)1;
    cr_assert(eq(int, mq_acl_parse("acl.txt", text, strlen(text), collect, &r, &acl), -EINVAL));
    cr_expect(acl == NULL);
    cr_assert(eq(u32, r.n, 8));
    cr_expect(eq(u32, r.n_errors, 7));
    unsigned want[] = {2, 3, 4, 5, 6, 7, 8, 9};
    for (unsigned i = 0; i < 8; i++)
        cr_expect(eq(u32, r.line[i], want[i]), "report %u: %s", i, r.msg[i]);
    cr_expect(eq(str, r.msg[1], "invalid topic access type \"rw\""));
    cr_expect(not(r.is_error[6]), "a pattern without %%c or %%u is a warning");

    /* warnings alone do not refuse the file */
    memset(&r, 0, sizeof r);
    text = "pattern read fixed/x\n";
    cr_assert(eq(int, mq_acl_parse("acl.txt", text, strlen(text), collect, &r, &acl), 0));
    cr_expect(eq(u32, r.n, 1));
    cr_expect(can(acl, NULL, "c", "fixed/x", R));
    mq_acl_free(acl);

    /* NUL bytes and over-long topics */
    memset(&r, 0, sizeof r);
    cr_expect(eq(int, mq_acl_parse("acl.txt", "topic a\0b\n", 10, collect, &r, &acl), -EINVAL));
    static char big[70000];
    memcpy(big, "topic ", 6);
    memset(big + 6, 'x', sizeof big - 6);
    cr_expect(eq(int, mq_acl_parse("acl.txt", big, sizeof big, collect, &r, &acl), -EINVAL));
    mq_acl_free(NULL);
}

/* --- classification ------------------------------------------------------------------------ */

typedef struct {
    const char *acl, *user, *cid, *filter;
    enum mq_acl_grant want;
} class_case_t;

static const class_case_t CASES[] = {
    /* one granting line */
    {"user u\ntopic read s/#\n", "u", "c", "s/#", FULL},
    {"user u\ntopic read s/#\n", "u", "c", "s", FULL},
    {"user u\ntopic read s/#\n", "u", "c", "s/+/t", FULL},
    {"user u\ntopic read s/#\n", "u", "c", "#", PART},
    {"user u\ntopic read s/#\n", "u", "c", "+/x", PART},
    {"user u\ntopic read s/#\n", "u", "c", "t/#", NONE},
    {"user u\ntopic read s/#\n", "u", "c", "$SYS/#", NONE},
    {"user u\ntopic read s/+\n", "u", "c", "s/#", PART},
    {"user u\ntopic read s/+\n", "u", "c", "s", NONE},
    {"user u\ntopic read s/+\n", "u", "c", "s/a", FULL},
    {"user u\ntopic read s/+\n", "u", "c", "s/a/b", NONE},
    {"user u\ntopic read s/+/#\n", "u", "c", "s/#", PART},
    {"user u\ntopic read s/a\n", "u", "c", "s/+", PART},
    {"user u\ntopic read s/a\n", "u", "c", "s/a", FULL},
    {"user u\ntopic read s/a\n", "u", "c", "s/a/#", PART},
    {"user u\ntopic read +/#\n", "u", "c", "#", FULL},
    {"user u\ntopic read #\n", "u", "c", "#", FULL},
    {"user u\ntopic read #\n", "u", "c", "+/+", FULL},
    {"user u\ntopic read #\n", "u", "c", "$SYS/#", NONE},
    {"user u\ntopic read #\n", "u", "c", "$SYS", NONE},
    {"user u\ntopic read $SYS/#\n", "u", "c", "$SYS/broker/+", FULL},
    {"user u\ntopic read $SYS/#\n", "u", "c", "#", NONE},
    {"user u\ntopic read +/+\n", "u", "c", "$SYS/x", NONE},
    {"user u\ntopic read +/+\n", "u", "c", "a/+", FULL},
    {"user u\ntopic read +/+\n", "u", "c", "+/#", PART},
    {"user u\ntopic read a//b\n", "u", "c", "a/+/b", PART},
    {"user u\ntopic read a/+/b\n", "u", "c", "a//b", FULL},
    /* access kinds */
    {"user u\ntopic write s/#\n", "u", "c", "s/#", NONE},
    {"user u\ntopic readwrite s/#\n", "u", "c", "s/#", FULL},
    {"user u\ntopic s/#\n", "u", "c", "s/x", FULL},
    /* deny lines */
    {"user u\ntopic read s/#\ntopic deny s/k/#\n", "u", "c", "s/#", PART},
    {"user u\ntopic read s/#\ntopic deny s/k/#\n", "u", "c", "s/k/x", NONE},
    {"user u\ntopic read s/#\ntopic deny s/k/#\n", "u", "c", "s/j/#", FULL},
    {"user u\ntopic read s/#\ntopic deny s/k/#\n", "u", "c", "s/+/x", PART},
    {"user u\ntopic read s/#\ntopic deny s/k\n", "u", "c", "s/k/x", FULL},
    {"user u\ntopic read #\ntopic deny #\n", "u", "c", "a", NONE},
    /* sections */
    {"topic read s/#\n", NULL, "c", "s/#", FULL},
    {"topic read s/#\n", "u", "c", "s/#", NONE},
    {"topic read s/#\nuser u\ntopic read t\n", NULL, "c", "t", NONE},
    /* patterns */
    {"pattern read dev/%c/#\n", "u", "d1", "dev/d1/#", FULL},
    {"pattern read dev/%c/#\n", "u", "d1", "dev/d2/#", NONE},
    {"pattern read dev/%c/#\n", "u", "d1", "dev/+/x", PART},
    {"pattern read dev/%c/#\n", "u", "d1/x", "dev/d1/x/#", NONE},
    {"pattern read dev/%c/#\n", "u", "d+", "dev/d+/#", NONE},
    {"pattern read dev/%u/#\n", NULL, "d1", "dev/#", NONE},
    {"pattern read dev/%u/#\n", "u", "d1", "dev/u", FULL},
    {"pattern read %c/#\n", "u", "$SYS", "$SYS/#", NONE},
    {"pattern read dev/%c/#\npattern deny dev/%c/k/#\n", "u", "d", "dev/d/#", PART},
    {"pattern read dev/%c/#\npattern deny dev/%c/k/#\n", "u", "d", "dev/d/j", FULL},
    {"pattern read dev/%c/#\npattern deny dev/%c/k/#\n", "u", "d", "dev/d/k/+", NONE},
    /* user lines before patterns */
    {"user u\ntopic read dev/d/k/x\npattern deny dev/%c/#\n", "u", "d", "dev/d/k/x", FULL},
    {"user u\ntopic read dev/d/k/x\npattern deny dev/%c/#\n", "u", "d", "dev/d/k/+", PART},
    {"user u\ntopic read a/#\npattern read dev/%c/#\n", "u", "d", "dev/d/+", FULL},
    {"user u\ntopic read a/#\npattern read dev/%c/#\n", "u", "d", "+/d/x", PART},
    {"user u\ntopic deny dev/d/k\npattern read dev/%c/#\n", "u", "d", "dev/d/#", PART},
    {"user u+\ntopic read a/#\npattern read dev/%c/#\n", "u+", "d", "a/b", FULL},
    {"user u+\ntopic read a/#\npattern read dev/%c/#\n", "u+", "d", "dev/d/x", NONE},
    {"user u\ntopic read x\npattern deny dev/#\n", "u", "d", "dev/#", NONE},
};

Test(acl, classifies_subscriptions)
{
    for (size_t i = 0; i < MQ_ARRAY_LEN(CASES); i++) {
        const class_case_t *c = &CASES[i];
        mq_acl_t *acl = load(c->acl);
        cr_expect(eq(int, cls(acl, c->user, c->cid, c->filter), c->want),
                  "case %zu: filter %s for %s/%s", i, c->filter, c->user ? c->user : "(anon)",
                  c->cid);
        mq_acl_free(acl);
    }
}

/* Every topic with 1..3 levels drawn from a small alphabet that includes '$' and empty levels,
 * and the filters made of the same levels plus '+' and '#'. */
static const char *LEVELS[] = {"a", "b", "$s", "", "d"};

static size_t gen(char out[][24], bool filters)
{
    size_t n = 0, nl = MQ_ARRAY_LEN(LEVELS) + (filters ? 2 : 0);
    for (size_t depth = 1; depth <= 3; depth++) {
        size_t total = 1;
        for (size_t d = 0; d < depth; d++)
            total *= nl;
        for (size_t k = 0; k < total; k++) {
            char buf[24] = "";
            size_t x = k;
            bool ok = true;
            for (size_t d = 0; d < depth; d++, x /= nl) {
                size_t li = x % nl;
                const char *lev = li < MQ_ARRAY_LEN(LEVELS) ? LEVELS[li] : li == nl - 2 ? "+" : "#";
                if (lev[0] == '#' && d + 1 != depth)
                    ok = false;
                if (d)
                    strcat(buf, "/");
                strcat(buf, lev);
            }
            if (ok && buf[0])
                strcpy(out[n++], buf);
        }
    }
    return n;
}

Test(acl, classes_agree_with_checks_on_every_small_topic)
{
    static char topics[256][24], filters[512][24];
    size_t nt = gen(topics, false), nf = gen(filters, true);
    cr_assert(nt > 100 && nf >= 300);
    static const char *ACLS[] = {
        "user u\ntopic read a/#\ntopic deny a/b/#\ntopic read +/d\n",
        "user u\ntopic read #\ntopic read $s/+\ntopic deny +/a\n",
        "user u\ntopic read a/+/d\npattern read %c/#\npattern deny %c/$s\n",
        "user u\ntopic deny d\npattern read b/%u/#\npattern read +/+/%c\n",
        "user u\ntopic read /#\ntopic read $s/#\ntopic deny $s//#\n",
    };
    for (size_t a = 0; a < MQ_ARRAY_LEN(ACLS); a++) {
        mq_acl_t *acl = load(ACLS[a]);
        for (size_t f = 0; f < nf; f++) {
            enum mq_acl_grant g = cls(acl, "u", "d", filters[f]);
            size_t matched = 0, allowed = 0;
            for (size_t t = 0; t < nt; t++) {
                if (!mq_topic_matches(filters[f], strlen(filters[f]), topics[t], strlen(topics[t])))
                    continue;
                matched++;
                allowed += can(acl, "u", "d", topics[t], R);
            }
            if (g == FULL)
                cr_expect(eq(sz, allowed, matched), "acl %zu filter %s FULL", a, filters[f]);
            if (g == NONE)
                cr_expect(eq(sz, allowed, 0), "acl %zu filter %s NONE", a, filters[f]);
        }
        mq_acl_free(acl);
    }
}

Test(acl, topic_lines_match_as_mqtt_filters_do)
{
    static char topics[256][24], filters[512][24];
    size_t nt = gen(topics, false), nf = gen(filters, true);
    char text[64];
    for (size_t f = 0; f < nf; f++) {
        snprintf(text, sizeof text, "topic read %.24s\n", filters[f]);
        mq_acl_t *acl = load(text);
        for (size_t t = 0; t < nt; t++) {
            bool want =
                mq_topic_matches(filters[f], strlen(filters[f]), topics[t], strlen(topics[t]));
            cr_expect(eq(int, can(acl, NULL, "c", topics[t], R), want), "%s vs %s", filters[f],
                      topics[t]);
        }
        mq_acl_free(acl);
    }
}
