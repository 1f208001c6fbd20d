/* SPDX-License-Identifier: MIT */
/* core/acl.h - mosquitto's ACL file: parse, check a topic, classify a subscription filter. */
#ifndef MQ_CORE_ACL_H
#define MQ_CORE_ACL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/rc.h"

/* File format (mosquitto 2.0 acl_file), one statement a line:
 *
 *   # comment                       ('#' as the first character after blanks)
 *   topic [read|write|readwrite|deny] TOPIC
 *   pattern [read|write|readwrite|deny] TOPIC     (%c = client id, %u = user name)
 *   user NAME                       (the rest of the line, trimmed: may contain spaces)
 *
 * Without an access word the access is readwrite; "topic read" alone means the topic "read"
 * (mosquitto reads it so). TOPIC is the rest of the line, trimmed (it may contain spaces), and
 * must be a valid filter ('+', '#' as whole levels, '#' last, 1..65535 bytes). Lines before the
 * first "user" line are the anonymous section: they apply to clients without a user name. A
 * "user" line starts (or continues, if the name appeared before) that user's section; "pattern"
 * lines apply to every client wherever they stand. Blanks are spaces and tabs (mosquitto
 * splits at spaces only; files it accepts read the same here).
 *
 * Decision for a topic T and access A (read = a delivery, write = a PUBLISH or a will), exactly
 * as mosquitto 2.0's default ACL check:
 *  1. the client's section (the anonymous one when it has no user name, else the one named
 *     after its user name, possibly none): a matching "deny" line -> denied; else a matching line
 *     whose access includes A -> allowed;
 *  2. if the file has "pattern" lines and the user name or client id contains '+' or '#'
 *     -> denied (CVE-2017-7650). Starling also denies here when the client id contains '/' and
 *     a pattern uses %c, or the user name contains '/' and a pattern uses %u: substituted, the
 *     '/' would open another client's subtree (client "a/b" reading "dev/a/b/#" under
 *     "pattern read dev/%c/#" while it belongs to client "a");
 *  3. the patterns, %c and %u substituted (a pattern with %u is skipped for a client without
 *     user name): a matching "deny" -> denied; else a matching one whose access includes A ->
 *     allowed;
 *  4. denied. (An empty file therefore denies everything, as in mosquitto.)
 * "Matching" is MQTT filter matching, with mosquitto's rule that a topic starting with '$' is
 * only matched by a line whose text starts with '$'. For patterns the raw pattern text decides
 * (mosquitto looks at the substituted text: "pattern read %c/#" would give client "$SYS" all of
 * $SYS; here it gives nothing). Order within a section does not matter: deny lines win. */

typedef struct mq_acl mq_acl_t; /* opaque; immutable once parsed */

enum mq_acl_access {
    MQ_ACL_READ = 1,  /* receive a message on the topic */
    MQ_ACL_WRITE = 2, /* publish to the topic (also the will at CONNECT) */
};

/* What a subscription filter may receive, decided once at SUBSCRIBE time. */
enum mq_acl_grant {
    MQ_ACL_GRANT_NONE = 0,    /* no topic the filter matches is readable: refuse it (SUBACK 0x80
                               * / 0x87) or never deliver on it */
    MQ_ACL_GRANT_PARTIAL = 1, /* unknown or mixed: check each delivery with mq_acl_check */
    MQ_ACL_GRANT_FULL = 2,    /* every topic the filter matches is readable: deliver unchecked */
};

/* Called for each problem: 'file' as given to the parser, 'line' from 1; 'is_error' false for
 * a warning (a pattern without %c or %u, as mosquitto warns). Borrowed for the call only. */
typedef void mq_acl_report_cb(void *arg, const char *file, unsigned line, bool is_error,
                              const char *msg);

/* Parses a whole ACL file from 'buf' ('len' bytes; need not be NUL-terminated). Every error is
 * reported; if there was any, returns -EINVAL and sets *out to NULL (mosquitto refuses such a
 * file: keep the previous rules, or refuse to start), else returns 0 and sets *out to an owned
 * table (mq_acl_free). 'report' may be NULL. Any thread; the table does not refer to 'buf'. */
int mq_acl_parse(const char *file, const char *buf, size_t len, mq_acl_report_cb *report, void *arg,
                 mq_acl_t **out) MQ_MUST_CHECK;

/* Frees the table. NULL is a no-op. The owner decides when no thread still uses it (a replaced
 * table goes through the epoch, core/epoch.h). */
void mq_acl_free(mq_acl_t *acl);

/* Statement counts: 'topic' lines (all sections) and 'pattern' lines. */
size_t mq_acl_count_topics(const mq_acl_t *acl);
size_t mq_acl_count_patterns(const mq_acl_t *acl);

/* The client as the ACL sees it. 'user' NULL = no user name (anonymous section); 'client_id'
 * is the client id in use (the assigned one for a zero-length id). Views are borrowed. */
typedef struct mq_acl_client {
    const mq_str_t *user;
    mq_str_t client_id;
} mq_acl_client_t;

/* True when 'client' may 'access' the topic name 'topic' ('len' bytes; an empty topic is
 * denied). Read-only on the table: any thread, concurrently. Allocates nothing; costs one
 * user-name hash lookup plus a walk of the client's section and of the patterns. */
bool mq_acl_check(const mq_acl_t *acl, const mq_acl_client_t *client, const char *topic, size_t len,
                  enum mq_acl_access access);

/* Classifies the subscription filter 'filter' ('len' bytes: a valid filter, for a shared
 * subscription the part after "$share/NAME/") for reading by 'client'. Any thread.
 *
 * Decision procedure (every step is exact for single lines; unions of lines are not reasoned
 * about, so a filter covered only by several lines together is PARTIAL). For two filters X, F:
 * "X covers F" when every topic F matches, X matches; "X meets F" when some topic matches
 * both; both are computed level by level, with '#' matching the parent level and '+' or '#'
 * as first level never matching '$' topics. With Ud/Ua the client's deny lines / lines granting
 * read, Pd/Pa the same among the substituted patterns (none when step 2 above denies):
 *   NONE    if some Ud line covers F; or no Ua line and no Pa line meets F; or no Ua line meets
 *           F and some Pd line covers F;
 *   FULL    if no Ud line meets F, and some Ua line covers F, or no Pd line meets F and some Pa
 *           line covers F;
 *   PARTIAL otherwise.
 * So FULL implies mq_acl_check allows every topic F matches, NONE that it allows none. */
enum mq_acl_grant mq_acl_classify(const mq_acl_t *acl, const mq_acl_client_t *client,
                                  const char *filter, size_t len);

#endif
