/* SPDX-License-Identifier: MIT */
/* core/acl.c - mosquitto ACL files: parsing, per-topic checks, SUBSCRIBE-time classification. */
#include "core/acl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/map.h"
#include "core/mem.h"
#include "core/topic.h"

#define ACL_TOPIC_MAX 65535

typedef struct rule {
    char *topic; /* owned, 'len' bytes + NUL */
    size_t len;
    unsigned access;   /* MQ_ACL_READ | MQ_ACL_WRITE; unused in a deny list */
    bool has_c, has_u; /* pattern text contains "%c" / "%u" */
} rule_t;

/* A section: deny lines and granting lines apart, since deny lines win whatever the order. */
typedef struct rules {
    rule_t *deny, *allow;
    uint32_t n_deny, cap_deny, n_allow, cap_allow;
} rules_t;

typedef struct user {
    char *name; /* owned */
    size_t len;
    rules_t rules;
} user_t;

struct mq_acl {
    user_t *users; /* named sections */
    uint32_t n_users, cap_users;
    mq_names_t names; /* section name -> number in 'users' + 1 */
    rules_t anon;     /* lines before the first "user" line */
    rules_t patterns;
    bool patterns_use_c, patterns_use_u;
    size_t n_topics;
};

/* The values substituted into patterns; user NULL for a client without user name. */
typedef struct subst {
    mq_str_t cid;
    const mq_str_t *user;
} subst_t;

/* --- matching ------------------------------------------------------------------------------- */

/* Compares one filter level (literal, possibly with %c/%u when 's' is given) with one topic
 * level. */
static bool level_eq(const char *f, size_t fl, const char *t, size_t tl, const subst_t *s)
{
    if (!s)
        return fl == tl && memcmp(f, t, fl) == 0;
    size_t ti = 0;
    for (size_t i = 0; i < fl; i++) {
        if (f[i] == '%' && i + 1 < fl && (f[i + 1] == 'c' || (f[i + 1] == 'u' && s->user))) {
            mq_str_t v = f[i + 1] == 'c' ? s->cid : *s->user;
            if (tl - ti < v.len || (v.len && memcmp(t + ti, v.ptr, v.len) != 0))
                return false;
            ti += v.len;
            i++;
            continue;
        }
        if (ti >= tl || t[ti] != f[i])
            return false;
        ti++;
    }
    return ti == tl;
}

static size_t level_end(const char *p, size_t len, size_t from)
{
    if (from >= len) /* also an empty topic, whose 'p' may be NULL */
        return len;
    const char *slash = memchr(p + from, '/', len - from);
    return slash ? (size_t)(slash - p) : len;
}

/* MQTT filter matching with substitution, and mosquitto's '$' rule on the raw text. */
static bool rule_matches(const rule_t *r, const char *t, size_t tl, const subst_t *s)
{
    const char *f = r->topic;
    size_t fl = r->len;
    if (t[0] == '$' && f[0] != '$')
        return false;
    size_t fi = 0, ti = 0;
    for (;;) {
        size_t fe = level_end(f, fl, fi), te = level_end(t, tl, ti);
        if (fe - fi == 1 && f[fi] == '#')
            return true; /* this level, all below, and (via "a/#") the parent */
        if (!(fe - fi == 1 && f[fi] == '+') && !level_eq(f + fi, fe - fi, t + ti, te - ti, s))
            return false;
        if (fe == fl && te == tl)
            return true;
        if (te == tl) /* topic ended: "a/#" still matches "a" */
            return fe + 2 == fl && f[fe + 1] == '#';
        if (fe == fl)
            return false;
        fi = fe + 1;
        ti = te + 1;
    }
}

/* 1 = denied, 2 = allowed, 0 = no decision from 'rs'. */
static int decide(const rules_t *rs, const char *t, size_t tl, unsigned access, const subst_t *s)
{
    for (size_t i = 0; i < rs->n_deny; i++) {
        const rule_t *r = &rs->deny[i];
        if (s && r->has_u && !s->user)
            continue;
        if (rule_matches(r, t, tl, s))
            return 1;
    }
    for (size_t i = 0; i < rs->n_allow; i++) {
        const rule_t *r = &rs->allow[i];
        if (!(r->access & access) || (s && r->has_u && !s->user))
            continue;
        if (rule_matches(r, t, tl, s))
            return 2;
    }
    return 0;
}

/* --- sections ------------------------------------------------------------------------------- */

static const rules_t *section_of(const mq_acl_t *acl, const mq_str_t *user)
{
    if (!user)
        return &acl->anon;
    uint32_t k = mq_names_get(&acl->names, user->ptr, user->len);
    return k ? &acl->users[k - 1].rules : NULL;
}

static bool has(const mq_str_t *s, char c)
{
    return s && s->len && memchr(s->ptr, c, s->len) != NULL;
}

/* Step 2 of the decision (acl.h): true when the patterns must not be used for 'c'. */
static bool patterns_barred(const mq_acl_t *acl, const mq_acl_client_t *c)
{
    if (acl->patterns.n_deny + acl->patterns.n_allow == 0)
        return true; /* nothing to use anyway */
    if (has(c->user, '+') || has(c->user, '#') || has(&c->client_id, '+') ||
        has(&c->client_id, '#'))
        return true;
    return (acl->patterns_use_u && has(c->user, '/')) ||
           (acl->patterns_use_c && has(&c->client_id, '/'));
}

bool mq_acl_check(const mq_acl_t *acl, const mq_acl_client_t *client, const char *topic, size_t len,
                  enum mq_acl_access access)
{
    if (!acl || len == 0)
        return false;
    const rules_t *own = section_of(acl, client->user);
    int d = own ? decide(own, topic, len, (unsigned)access, NULL) : 0;
    if (d)
        return d == 2;
    if (patterns_barred(acl, client))
        return false;
    subst_t s = {client->client_id, client->user};
    return decide(&acl->patterns, topic, len, (unsigned)access, &s) == 2;
}

/* --- classification ------------------------------------------------------------------------- */

/* Level i of a filter, walking with a cursor. */
typedef struct cur {
    const char *p;
    size_t len, pos;
    bool done;    /* no more levels */
    mq_str_t lev; /* current level */
    unsigned idx; /* 1-based level number */
} cur_t;

static void cur_next(cur_t *c)
{
    if (c->done || (c->idx > 0 && c->pos > c->len)) {
        c->done = true;
        return;
    }
    size_t e = level_end(c->p, c->len, c->pos);
    /* an empty text may come as NULL: no pointer arithmetic on it */
    c->lev = (mq_str_t){c->p ? c->p + c->pos : c->p, e - c->pos};
    c->pos = e + 1;
    c->idx++;
}

static void cur_init(cur_t *c, const char *p, size_t len)
{
    *c = (cur_t){.p = p, .len = len};
    cur_next(c);
}

static bool is_hash(const cur_t *c)
{
    return !c->done && c->lev.len == 1 && c->lev.ptr[0] == '#';
}

static bool is_plus(const cur_t *c)
{
    return !c->done && c->lev.len == 1 && c->lev.ptr[0] == '+';
}

static bool lit_dollar(const cur_t *c)
{
    return c->lev.len > 0 && c->lev.ptr[0] == '$';
}

/* True when every topic 'f' matches is matched by 'a' (both valid filters). */
static bool covers(const char *a, size_t al, const char *f, size_t fl)
{
    cur_t A, F;
    cur_init(&A, a, al);
    cur_init(&F, f, fl);
    for (;;) {
        if (is_hash(&A)) /* first level '#' excludes '$' topics: so must F */
            return A.idx > 1 || is_hash(&F) || is_plus(&F) || !lit_dollar(&F);
        if (is_hash(&F)) {
            /* F also matches its parent level ("x/#" matches "x"), except as first level */
            cur_t n = A;
            cur_next(&n);
            return F.idx == 1 && is_plus(&A) && is_hash(&n);
        }
        if (A.done || F.done)
            return A.done && F.done;
        if (is_plus(&A)) {
            if (A.idx == 1 && !is_plus(&F) && lit_dollar(&F))
                return false;
        } else if (is_plus(&F) || !mq_str_eq(A.lev, F.lev)) {
            return false;
        }
        cur_next(&A);
        cur_next(&F);
    }
}

/* True when some topic is matched by both valid filters. */
static bool meets(const char *a, size_t al, const char *f, size_t fl)
{
    cur_t A, F;
    cur_init(&A, a, al);
    cur_init(&F, f, fl);
    for (;;) {
        bool ha = is_hash(&A), hf = is_hash(&F);
        if (ha || hf) {
            unsigned level = ha ? A.idx : F.idx; /* the other one may have ended a level before */
            if (level > 1 || (ha && hf))
                return true;
            const cur_t *other = ha ? &F : &A; /* "#" meets a '$' literal first level never */
            return other->done || is_plus(other) || !lit_dollar(other);
        }
        if (A.done || F.done)
            return A.done && F.done;
        bool pa = is_plus(&A), pf = is_plus(&F);
        if (pa && pf) {
            /* any level fits */
        } else if (pa || pf) {
            if (A.idx == 1 && lit_dollar(pa ? &F : &A))
                return false;
        } else if (!mq_str_eq(A.lev, F.lev)) {
            return false;
        }
        cur_next(&A);
        cur_next(&F);
    }
}

/* A rule as a plain filter for 'covers'/'meets': substituted into 'buf' for patterns. Returns
 * false when the rule can match nothing for this client. */
static bool rule_filter(const rule_t *r, const subst_t *s, mq_buf_t *buf, mq_str_t *out)
{
    if (!s || (!r->has_c && !r->has_u)) {
        *out = (mq_str_t){r->topic, r->len};
        return true;
    }
    if (r->has_u && !s->user)
        return false;
    buf->len = 0;
    for (size_t i = 0; i < r->len; i++) {
        char c = r->topic[i];
        if (c == '%' && i + 1 < r->len && (r->topic[i + 1] == 'c' || r->topic[i + 1] == 'u')) {
            mq_str_t v = r->topic[i + 1] == 'c' ? s->cid : *s->user;
            mq_buf_append(buf, v.ptr, v.len);
            i++;
        } else {
            mq_buf_append(buf, &c, 1);
        }
    }
    /* matching looks at the raw text for the '$' rule: a substituted leading '$' matches none */
    if (buf->len > 0 && buf->data[0] == '$' && r->topic[0] != '$')
        return false;
    *out = (mq_str_t){(const char *)buf->data, buf->len};
    return true;
}

typedef struct verdict {
    bool deny_covers, deny_meets, allow_covers, allow_meets;
} verdict_t;

static void scan(const rules_t *rs, const subst_t *s, const char *f, size_t fl, mq_buf_t *buf,
                 verdict_t *v)
{
    mq_str_t x;
    for (size_t i = 0; i < rs->n_deny && !v->deny_covers; i++) {
        if (!rule_filter(&rs->deny[i], s, buf, &x) || !meets(x.ptr, x.len, f, fl))
            continue;
        v->deny_meets = true;
        v->deny_covers = covers(x.ptr, x.len, f, fl);
    }
    for (size_t i = 0; i < rs->n_allow && !v->allow_covers; i++) {
        if (!(rs->allow[i].access & MQ_ACL_READ) || !rule_filter(&rs->allow[i], s, buf, &x) ||
            !meets(x.ptr, x.len, f, fl))
            continue;
        v->allow_meets = true;
        v->allow_covers = covers(x.ptr, x.len, f, fl);
    }
}

enum mq_acl_grant mq_acl_classify(const mq_acl_t *acl, const mq_acl_client_t *client,
                                  const char *filter, size_t len)
{
    if (!acl || len == 0)
        return MQ_ACL_GRANT_NONE;
    verdict_t u = {0}, p = {0};
    const rules_t *own = section_of(acl, client->user);
    mq_buf_t buf;
    mq_buf_init(&buf);
    if (own)
        scan(own, NULL, filter, len, &buf, &u);
    if (!patterns_barred(acl, client)) {
        subst_t s = {client->client_id, client->user};
        scan(&acl->patterns, &s, filter, len, &buf, &p);
    }
    mq_buf_fini(&buf);
    if (u.deny_covers || (!u.allow_meets && (!p.allow_meets || p.deny_covers)))
        return MQ_ACL_GRANT_NONE;
    if (!u.deny_meets && (u.allow_covers || (!p.deny_meets && p.allow_covers)))
        return MQ_ACL_GRANT_FULL;
    return MQ_ACL_GRANT_PARTIAL;
}

/* --- building ------------------------------------------------------------------------------- */

static void rules_add(rules_t *rs, const rule_t *r)
{
    bool deny = r->access == 0;
    rule_t **v = deny ? &rs->deny : &rs->allow;
    uint32_t *n = deny ? &rs->n_deny : &rs->n_allow, *cap = deny ? &rs->cap_deny : &rs->cap_allow;
    if (*n == *cap)
        *v = mq_grow(*v, cap, sizeof **v, 4);
    (*v)[(*n)++] = *r;
}

static void rules_fini(rules_t *rs)
{
    for (size_t i = 0; i < rs->n_deny; i++)
        mq_free(rs->deny[i].topic);
    for (size_t i = 0; i < rs->n_allow; i++)
        mq_free(rs->allow[i].topic);
    mq_free(rs->deny);
    mq_free(rs->allow);
}

/* Returns the number of the section named 'name', creating it if needed. */
static size_t user_section(mq_acl_t *acl, mq_str_t name)
{
    uint32_t k = mq_names_get(&acl->names, name.ptr, name.len);
    if (k)
        return k - 1;
    if (acl->n_users == acl->cap_users)
        acl->users = mq_grow(acl->users, &acl->cap_users, sizeof *acl->users, 8);
    user_t *u = &acl->users[acl->n_users];
    *u = (user_t){.name = mq_strndup(name.ptr, name.len), .len = name.len};
    mq_names_put(&acl->names, u->name, u->len, ++acl->n_users);
    return acl->n_users - 1;
}

void mq_acl_free(mq_acl_t *acl)
{
    if (!acl)
        return;
    for (size_t i = 0; i < acl->n_users; i++) {
        mq_free(acl->users[i].name);
        rules_fini(&acl->users[i].rules);
    }
    mq_free(acl->users);
    mq_names_fini(&acl->names);
    rules_fini(&acl->anon);
    rules_fini(&acl->patterns);
    mq_free(acl);
}

size_t mq_acl_count_topics(const mq_acl_t *acl)
{
    return acl ? acl->n_topics : 0;
}

size_t mq_acl_count_patterns(const mq_acl_t *acl)
{
    return acl ? acl->patterns.n_deny + acl->patterns.n_allow : 0;
}

/* --- parsing -------------------------------------------------------------------------------- */

typedef struct parser {
    mq_acl_t *acl;
    const char *file;
    mq_acl_report_cb *report;
    void *arg;
    unsigned line;
    long section; /* -1 = anonymous, else a user section number */
    unsigned errors;
} parser_t;

/* Reports 'msg', followed by a quoted sample of 'what' when it is not empty. */
static void say(parser_t *ps, bool is_error, const char *msg, mq_str_t what)
{
    if (is_error)
        ps->errors++;
    if (!ps->report)
        return;
    char text[200];
    int shown = what.len > 64 ? 64 : (int)what.len; /* a sample, not the whole line */
    if (shown > 0)
        snprintf(text, sizeof text, "%s \"%.*s\"", msg, shown, what.ptr);
    else
        snprintf(text, sizeof text, "%s", msg);
    ps->report(ps->arg, ps->file, ps->line, is_error, text);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static mq_str_t trim(mq_str_t s)
{
    while (s.len > 0 && is_blank(s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len > 0 && is_blank(s.ptr[s.len - 1]))
        s.len--;
    return s;
}

/* Splits the first word off 's' (at a space or tab); 's' becomes the rest after that one
 * separator, or {NULL, 0} when the word ended the text. */
static mq_str_t word(mq_str_t *s)
{
    mq_str_t t = trim(*s);
    size_t i = 0;
    while (i < t.len && t.ptr[i] != ' ' && t.ptr[i] != '\t')
        i++;
    mq_str_t w = {t.ptr, i};
    *s = i < t.len ? (mq_str_t){t.ptr + i + 1, t.len - i - 1} : (mq_str_t){NULL, 0};
    return w;
}

/* mosquitto_sub_topic_check: wildcards as whole levels, '#' last, 1..65535 bytes. */
static bool valid_filter(mq_str_t f)
{
    return f.len <= ACL_TOPIC_MAX &&
           mq_topic_validate_plain_filter(f.ptr, f.len, NULL) == MQ_RC_SUCCESS;
}

static bool parse_access(mq_str_t a, unsigned *out)
{
    static const struct {
        const char *name;
        unsigned access;
    } words[] = {{"read", MQ_ACL_READ},
                 {"write", MQ_ACL_WRITE},
                 {"readwrite", MQ_ACL_READ | MQ_ACL_WRITE},
                 {"deny", 0}};
    for (size_t i = 0; i < MQ_ARRAY_LEN(words); i++) {
        if (mq_str_eq(a, mq_str(words[i].name))) {
            *out = words[i].access;
            return true;
        }
    }
    return false;
}

static void parse_rule(parser_t *ps, mq_str_t rest, bool is_pattern)
{
    mq_str_t access_s = word(&rest), topic = trim(rest);
    unsigned access = MQ_ACL_READ | MQ_ACL_WRITE;
    if (access_s.len == 0) {
        say(ps, true, "empty topic in ACL line", (mq_str_t){NULL, 0});
        return;
    }
    if (topic.len == 0) {
        topic = access_s; /* "topic read" is the topic "read", as in mosquitto */
    } else if (!parse_access(access_s, &access)) {
        say(ps, true, "invalid topic access type", access_s);
        return;
    }
    if (!valid_filter(topic)) {
        say(ps, true, "invalid ACL topic", topic);
        return;
    }
    rule_t r = {.topic = mq_strndup(topic.ptr, topic.len), .len = topic.len, .access = access};
    for (size_t i = 0; i + 1 < topic.len; i++) {
        if (topic.ptr[i] == '%' && topic.ptr[i + 1] == 'c')
            r.has_c = true;
        if (topic.ptr[i] == '%' && topic.ptr[i + 1] == 'u')
            r.has_u = true;
    }
    if (is_pattern) {
        if (!r.has_c && !r.has_u)
            say(ps, false, "ACL pattern without %c or %u", topic);
        ps->acl->patterns_use_c |= r.has_c;
        ps->acl->patterns_use_u |= r.has_u;
        rules_add(&ps->acl->patterns, &r);
        return;
    }
    r.has_c = r.has_u = false; /* "topic" lines are literal */
    ps->acl->n_topics++;
    rules_add(ps->section < 0 ? &ps->acl->anon : &ps->acl->users[ps->section].rules, &r);
}

static void parse_line(parser_t *ps, mq_str_t line)
{
    mq_str_t rest = trim(line);
    if (rest.len == 0 || rest.ptr[0] == '#')
        return;
    if (memchr(rest.ptr, '\0', rest.len)) {
        say(ps, true, "NUL byte in ACL line", (mq_str_t){NULL, 0});
        return;
    }
    mq_str_t kw = word(&rest);
    if (mq_str_eq(kw, MQ_STR_LIT("topic")) || mq_str_eq(kw, MQ_STR_LIT("pattern"))) {
        parse_rule(ps, rest, kw.ptr[0] == 'p');
    } else if (mq_str_eq(kw, MQ_STR_LIT("user"))) {
        mq_str_t name = trim(rest);
        if (name.len == 0)
            say(ps, true, "missing user name in ACL line", (mq_str_t){NULL, 0});
        else
            ps->section = (long)user_section(ps->acl, name);
    } else {
        say(ps, true, "invalid line in ACL file", trim(line));
    }
}

int mq_acl_parse(const char *file, const char *buf, size_t len, mq_acl_report_cb *report, void *arg,
                 mq_acl_t **out)
{
    parser_t ps = {.acl = mq_calloc(1, sizeof(mq_acl_t)),
                   .file = file ? file : "(acl file)",
                   .report = report,
                   .arg = arg,
                   .section = -1};
    size_t pos = 0;
    while (pos < len) {
        const char *p = buf + pos;
        const char *nl = memchr(p, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - p) : len - pos;
        pos += llen + (nl ? 1 : 0);
        ps.line++;
        parse_line(&ps, (mq_str_t){p, llen});
    }
    if (ps.errors) {
        mq_acl_free(ps.acl);
        *out = NULL;
        return -EINVAL;
    }
    *out = ps.acl;
    return 0;
}
