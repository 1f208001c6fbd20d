/* SPDX-License-Identifier: MIT */
/* core/passwd.h - mosquitto's password file: parse, look up, verify $6$/$7$ hashes, make lines. */
#ifndef MQ_CORE_PASSWD_H
#define MQ_CORE_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/rc.h"

/* File format (mosquitto 2.0, written by mosquitto_passwd and starling-passwd), one user a line:
 *
 *   user:$7$ITERATIONS$SALT$HASH   PBKDF2-HMAC-SHA512(password, salt, iterations), 64 bytes
 *   user:$6$SALT$HASH              SHA-512(password || salt), 64 bytes (mosquitto 1.x)
 *
 * SALT is 12 bytes and HASH 64 bytes, both standard base64 with padding. The user name is the
 * text before the first ':' and the hash field the text up to the next ':' (anything after it is
 * ignored, as mosquitto does); both are trimmed of blanks. Lines starting with '#' (after blanks)
 * and blank lines are skipped silently. Every other line that does not parse is reported (file,
 * line number, reason) and skipped; the rest of the file still loads, as in mosquitto. When a
 * user name appears twice, the later line wins (also reported). */

typedef struct mq_passwd mq_passwd_t;             /* opaque; immutable once parsed */
typedef struct mq_passwd_entry mq_passwd_entry_t; /* one user; lives as long as its table */

enum mq_passwd_hash {
    MQ_PASSWD_SHA512 = 6,        /* "$6$": salted SHA-512, one round */
    MQ_PASSWD_SHA512_PBKDF2 = 7, /* "$7$": PBKDF2-HMAC-SHA512 */
};

#define MQ_PASSWD_SALT_LEN 12
#define MQ_PASSWD_HASH_LEN 64
#define MQ_PASSWD_DEFAULT_ITERATIONS 101 /* mosquitto_passwd's default for $7$ */
#define MQ_PASSWD_FIELD_MAX 65535        /* longest user name and password (MQTT string) */

/* Called once per skipped line: 'file' is the name given to the parser, 'line' counts from 1,
 * 'why' is a short reason (no password material). Strings are borrowed for the call only. */
typedef void mq_passwd_report_cb(void *arg, const char *file, unsigned line, const char *why);

/* Parses a whole password file from 'buf' ('len' bytes, need not be NUL-terminated; the caller
 * read the file). 'file' is only used in reports; 'report' may be NULL. Returns an owned table
 * (free with mq_passwd_free), possibly empty; never NULL (allocation failure aborts, core/mem.h).
 * Any thread; the table does not refer to 'buf' afterwards. */
mq_passwd_t *mq_passwd_parse(const char *file, const char *buf, size_t len,
                             mq_passwd_report_cb *report, void *arg);

/* Frees the table and its entries. NULL is a no-op. The owner decides when no thread can still
 * use an entry (the broker retires a replaced table through the epoch, core/epoch.h). */
void mq_passwd_free(mq_passwd_t *t);

/* Number of users in the table. */
size_t mq_passwd_count(const mq_passwd_t *t);

/* Returns the entry for 'user' ('len' bytes, compared bytewise), or NULL. Read-only: any number
 * of threads may look up in the same table at once. The entry is borrowed from the table. */
const mq_passwd_entry_t *mq_passwd_find(const mq_passwd_t *t, const char *user, size_t len);

/* True when 'pw' ('len' bytes) is the entry's password. Pure computation on immutable data, so
 * it may run on any thread (a verifier pool): a $7$ entry costs 'iterations' HMAC-SHA512 rounds
 * (about 0.1 ms at mosquitto's default 101, far more at higher counts), a $6$ entry one SHA-512.
 * The hash comparison is constant-time (CRYPTO_memcmp). A password longer than
 * MQ_PASSWD_FIELD_MAX or containing a NUL byte never matches (mosquitto would compare only up to
 * the NUL; no file line can hold such a password). pw == NULL and an empty password never
 * match (mosquitto reads a zero-length password as none). */
bool mq_passwd_verify(const mq_passwd_entry_t *e, const char *pw, size_t len);

/* What CONNECT needs from a user name and password. */
enum mq_passwd_result {
    MQ_PASSWD_OK = 0,           /* user known, password right */
    MQ_PASSWD_UNKNOWN_USER = 1, /* not in the file: refuse (0x86 v5 / 0x04 v3.1.1) */
    MQ_PASSWD_BAD_PASSWORD = 2, /* wrong or missing password (pw == NULL): refuse likewise */
};

/* mq_passwd_find + mq_passwd_verify. 'pw' NULL means the CONNECT had no password. Any thread.
 * A client without a user name is anonymous and not for this function (allow_anonymous). */
enum mq_passwd_result mq_passwd_check(const mq_passwd_t *t, const char *user, size_t ulen,
                                      const char *pw, size_t pwlen);

/* The entry's user name (borrowed from the table), hash kind and PBKDF2 iterations (1 for $6$),
 * so that a caller can decide whether verification is cheap enough to run inline. */
mq_str_t mq_passwd_entry_user(const mq_passwd_entry_t *e);
enum mq_passwd_hash mq_passwd_entry_hash(const mq_passwd_entry_t *e);
unsigned mq_passwd_entry_iterations(const mq_passwd_entry_t *e);

/* A credentials cache key: a keyed SHA-512/256 over the table's random secret, the entry's user
 * name and stored hash, and 'pw'. It costs one hash (microseconds) instead of PBKDF2, so a
 * caller may remember the keys of successful verifications and accept a later CONNECT whose key
 * equals a remembered one without verifying again. The secret is drawn per table, so the keys of
 * one table never equal those of another: a reload (a new table) clears such a cache implicitly.
 * Keys are not password hashes to store or log; compare them with mq_passwd_key_eq only. Any
 * thread. 'pw' NULL gives the key of "no password", which no verified login has. False when
 * libcrypto fails (out of memory): there is no key, the caller verifies in full and caches
 * nothing. */
typedef struct mq_passwd_key {
    uint8_t b[32];
} mq_passwd_key_t;
bool mq_passwd_cache_key(const mq_passwd_t *t, const mq_passwd_entry_t *e, const char *pw,
                         size_t len, mq_passwd_key_t *out);
bool mq_passwd_key_eq(const mq_passwd_key_t *a, const mq_passwd_key_t *b); /* constant-time */

/* Splits one line (without its '\n') as the parser and mosquitto_passwd do: *user is the text
 * before the first ':', *pass the text after it up to the next ':' or the end, both trimmed of
 * blanks (views into 'line'). Returns false for a line without ':' or with an empty user name or
 * password field. For tools that rewrite a file line by line (starling-passwd -D, -U). */
bool mq_passwd_split_line(const char *line, size_t len, mq_str_t *user, mq_str_t *pass);

/* Checks a user name as mosquitto_passwd does: at most MQ_PASSWD_FIELD_MAX bytes, no control
 * characters, no ':'. Returns NULL when valid, else the message mosquitto_passwd prints. */
const char *mq_passwd_user_problem(const char *user, size_t len);

/* Appends one file line "user:$7$ITER$SALT$HASH\n" (or "user:$6$SALT$HASH\n") for 'pw', with a
 * fresh random salt (RAND_bytes). 'iterations' is used for $7$ only. Returns 0, -EINVAL for a
 * user name mq_passwd_user_problem rejects, a password over MQ_PASSWD_FIELD_MAX bytes or
 * iterations < 1 ($7$), or -EIO when the random generator fails. Any thread. */
int mq_passwd_make_line(mq_buf_t *out, const char *user, size_t ulen, const char *pw, size_t pwlen,
                        enum mq_passwd_hash kind, int iterations) MQ_MUST_CHECK;

/* As mq_passwd_make_line with a given salt: the same inputs always give the same line (tests
 * compare it with lines mosquitto_passwd wrote). */
int mq_passwd_format_line(mq_buf_t *out, const char *user, size_t ulen, const char *pw,
                          size_t pwlen, enum mq_passwd_hash kind, int iterations,
                          const uint8_t salt[MQ_PASSWD_SALT_LEN]) MQ_MUST_CHECK;

#endif
