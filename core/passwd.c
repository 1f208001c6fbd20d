/* SPDX-License-Identifier: MIT */
/* core/passwd.c - mosquitto password files (see passwd.h).
 *
 * Layering exception: this module links OpenSSL's libcrypto (core/meson.build) for SHA-512,
 * PBKDF2, CRYPTO_memcmp and RAND_bytes. It is pure computation on buffers - no I/O, no threads,
 * no global state of ours - so it stays in core/ where the unit tests reach it with plain bytes. */
#include "core/passwd.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/map.h"
#include "core/mem.h"

struct mq_passwd_entry {
    char *user; /* owned, NUL-terminated for convenience; 'ulen' bytes */
    size_t ulen;
    enum mq_passwd_hash kind;
    unsigned iterations; /* >= 1; 1 for $6$ */
    uint8_t salt[MQ_PASSWD_SALT_LEN];
    uint8_t hash[MQ_PASSWD_HASH_LEN];
};

struct mq_passwd {
    mq_passwd_entry_t *entries; /* n_entries used, cap_entries allocated */
    uint32_t n_entries, cap_entries;
    mq_names_t names;   /* user -> entry number + 1 */
    uint8_t secret[32]; /* cache-key secret (mq_passwd_cache_key) */
};

/* --- base64 (standard alphabet, '=' padding), as OpenSSL's BIO_f_base64 writes it ----------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_encode(mq_buf_t *out, const uint8_t *in, size_t len)
{
    char q[4];
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        q[0] = B64[(v >> 18) & 63];
        q[1] = B64[(v >> 12) & 63];
        q[2] = i + 1 < len ? B64[(v >> 6) & 63] : '=';
        q[3] = i + 2 < len ? B64[v & 63] : '=';
        mq_buf_append(out, q, 4);
    }
}

static int b64_value(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

/* Decodes exactly 'want' bytes from 's' ('len' chars, padding optional); false otherwise. */
static bool b64_decode_exact(const char *s, size_t len, uint8_t *out, size_t want)
{
    while (len > 0 && s[len - 1] == '=')
        len--;
    if (len != (want * 4 + 2) / 3) /* unpadded length of 'want' bytes */
        return false;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(s[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    /* the unused low bits of the last character must be zero (canonical encoding) */
    return n == want && (acc & ((1u << bits) - 1)) == 0;
}

/* --- hashing -------------------------------------------------------------------------------- */

/* Computes the stored hash for 'pw' exactly as mosquitto's pw__hash/pw__digest do. */
static bool compute_hash(enum mq_passwd_hash kind, unsigned iterations, const uint8_t *salt,
                         const char *pw, size_t len, uint8_t out[MQ_PASSWD_HASH_LEN])
{
    if (kind == MQ_PASSWD_SHA512_PBKDF2) {
        return PKCS5_PBKDF2_HMAC(pw, (int)len, salt, MQ_PASSWD_SALT_LEN, (int)iterations,
                                 EVP_sha512(), MQ_PASSWD_HASH_LEN, out) == 1;
    }
    /* $6$: SHA-512 over the password, then the salt */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, pw, len) == 1 &&
              EVP_DigestUpdate(ctx, salt, MQ_PASSWD_SALT_LEN) == 1 &&
              EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == MQ_PASSWD_HASH_LEN;
    EVP_MD_CTX_free(ctx);
    return ok;
}

bool mq_passwd_verify(const mq_passwd_entry_t *e, const char *pw, size_t len)
{
    /* an empty password never matches: mosquitto reads it as no password at all (so a file
     * line hashing "" authenticates nobody; its CVE-2018 test suite checks this) */
    if (!e || !pw || len == 0 || len > MQ_PASSWD_FIELD_MAX || memchr(pw, '\0', len))
        return false;
    uint8_t got[MQ_PASSWD_HASH_LEN];
    if (!compute_hash(e->kind, e->iterations, e->salt, pw, len, got))
        return false;
    bool ok = CRYPTO_memcmp(got, e->hash, sizeof got) == 0;
    OPENSSL_cleanse(got, sizeof got);
    return ok;
}

/* --- the table ------------------------------------------------------------------------------ */

const mq_passwd_entry_t *mq_passwd_find(const mq_passwd_t *t, const char *user, size_t len)
{
    if (!t || (!user && len))
        return NULL;
    uint32_t k = mq_names_get(&t->names, user, len);
    return k ? &t->entries[k - 1] : NULL;
}

size_t mq_passwd_count(const mq_passwd_t *t)
{
    return t ? t->n_entries : 0;
}

void mq_passwd_free(mq_passwd_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_entries; i++) {
        mq_free(t->entries[i].user);
        OPENSSL_cleanse(t->entries[i].hash, MQ_PASSWD_HASH_LEN);
    }
    mq_free(t->entries);
    mq_names_fini(&t->names);
    OPENSSL_cleanse(t->secret, sizeof t->secret);
    mq_free(t);
}

/* Adds 'e' (taking its user string); a user already present is replaced (the later line wins,
 * as in mosquitto). Returns true when it replaced one. */
static bool add_entry(mq_passwd_t *t, mq_passwd_entry_t *e)
{
    uint32_t k = mq_names_get(&t->names, e->user, e->ulen);
    char *old_user = NULL;
    if (k != 0) {
        old_user = t->entries[k - 1].user;
        t->entries[k - 1] = *e;
    } else {
        if (t->n_entries == t->cap_entries)
            t->entries = mq_grow(t->entries, &t->cap_entries, sizeof *t->entries, 16);
        t->entries[t->n_entries] = *e;
        k = ++t->n_entries;
    }
    /* The index now points at the entry's own copy of the name; the replaced entry's copy is
     * freed only after, as the index compared against it while finding the slot. */
    mq_names_put(&t->names, e->user, e->ulen, k);
    mq_free(old_user);
    return old_user != NULL;
}

/* --- parsing -------------------------------------------------------------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static mq_str_t trim(const char *p, size_t len)
{
    while (len > 0 && is_blank(*p)) {
        p++;
        len--;
    }
    while (len > 0 && is_blank(p[len - 1]))
        len--;
    return (mq_str_t){p, len};
}

bool mq_passwd_split_line(const char *line, size_t len, mq_str_t *user, mq_str_t *pass)
{
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return false;
    *user = trim(line, (size_t)(colon - line));
    const char *rest = colon + 1;
    size_t rlen = len - (size_t)(rest - line);
    const char *end = memchr(rest, ':', rlen);
    *pass = trim(rest, end ? (size_t)(end - rest) : rlen);
    return user->len > 0 && pass->len > 0;
}

/* Splits 's' at '$' into non-empty tokens, as strtok does; returns how many were found (at most
 * 'max', later ones are ignored as mosquitto ignores them). */
static size_t split_dollar(mq_str_t s, mq_str_t *tok, size_t max)
{
    size_t n = 0, i = 0;
    while (n < max && i < s.len) {
        while (i < s.len && s.ptr[i] == '$')
            i++;
        size_t start = i;
        while (i < s.len && s.ptr[i] != '$')
            i++;
        if (i > start)
            tok[n++] = (mq_str_t){s.ptr + start, i - start};
    }
    return n;
}

static bool parse_iterations(mq_str_t s, unsigned *out)
{
    if (s.len == 0 || s.len > 10)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s.ptr[i] - '0');
    }
    if (v < 1 || v > INT_MAX) /* PKCS5_PBKDF2_HMAC takes an int */
        return false;
    *out = (unsigned)v;
    return true;
}

/* Decodes the hash field into 'e'; returns NULL or the reason it does not parse. */
static const char *parse_hash_field(mq_str_t field, mq_passwd_entry_t *e)
{
    mq_str_t tok[4], salt, hash;
    size_t n = split_dollar(field, tok, 4);
    if (n == 0)
        return "empty password hash";
    if (tok[0].len == 1 && tok[0].ptr[0] == '6') {
        e->kind = MQ_PASSWD_SHA512;
        e->iterations = 1;
        if (n < 3)
            return "incomplete $6$ password hash";
        salt = tok[1];
        hash = tok[2];
    } else if (tok[0].len == 1 && tok[0].ptr[0] == '7') {
        e->kind = MQ_PASSWD_SHA512_PBKDF2;
        if (n < 4)
            return "incomplete $7$ password hash";
        if (!parse_iterations(tok[1], &e->iterations))
            return "invalid hash iterations";
        salt = tok[2];
        hash = tok[3];
    } else {
        return "unknown password hash type (not $6$ or $7$)";
    }
    if (!b64_decode_exact(salt.ptr, salt.len, e->salt, MQ_PASSWD_SALT_LEN))
        return "cannot decode password salt (12 bytes of base64 expected)";
    if (!b64_decode_exact(hash.ptr, hash.len, e->hash, MQ_PASSWD_HASH_LEN))
        return "cannot decode password hash (64 bytes of base64 expected)";
    return NULL;
}

/* Parses one line (without '\n'); returns NULL when it was added or is to be skipped silently,
 * else the reason to report. */
static const char *parse_line(mq_passwd_t *t, const char *line, size_t len)
{
    mq_str_t all = trim(line, len);
    if (all.len == 0 || all.ptr[0] == '#')
        return NULL;
    if (memchr(line, '\0', len))
        return "NUL byte in line";
    mq_str_t user, field;
    if (!memchr(line, ':', len))
        return "no ':' between user name and password hash";
    if (!mq_passwd_split_line(line, len, &user, &field))
        return user.len == 0 ? "empty user name" : "empty password hash";
    if (user.len > MQ_PASSWD_FIELD_MAX)
        return "user name too long";
    if (field.len > MQ_PASSWD_FIELD_MAX)
        return "password hash too long";
    mq_passwd_entry_t e = {0};
    const char *why = parse_hash_field(field, &e);
    if (why)
        return why;
    e.user = mq_strndup(user.ptr, user.len);
    e.ulen = user.len;
    if (add_entry(t, &e))
        return "duplicate user name: this line replaces the earlier one";
    return NULL;
}

mq_passwd_t *mq_passwd_parse(const char *file, const char *buf, size_t len,
                             mq_passwd_report_cb *report, void *arg)
{
    mq_passwd_t *t = mq_calloc(1, sizeof *t);
    /* the secret only has to be unpredictable; if the generator fails, keys still work as
     * equality tokens (they merely lose protection against offline guessing from a dump) */
    if (RAND_bytes(t->secret, sizeof t->secret) != 1)
        memset(t->secret, 0, sizeof t->secret);
    unsigned line = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *p = buf + pos;
        const char *nl = memchr(p, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - p) : len - pos;
        pos += llen + (nl ? 1 : 0);
        line++;
        const char *why = parse_line(t, p, llen);
        if (why && report)
            report(arg, file ? file : "(password file)", line, why);
    }
    return t;
}

/* --- entries, checks and keys --------------------------------------------------------------- */

mq_str_t mq_passwd_entry_user(const mq_passwd_entry_t *e)
{
    return (mq_str_t){e->user, e->ulen};
}

enum mq_passwd_hash mq_passwd_entry_hash(const mq_passwd_entry_t *e)
{
    return e->kind;
}

unsigned mq_passwd_entry_iterations(const mq_passwd_entry_t *e)
{
    return e->iterations;
}

enum mq_passwd_result mq_passwd_check(const mq_passwd_t *t, const char *user, size_t ulen,
                                      const char *pw, size_t pwlen)
{
    const mq_passwd_entry_t *e = mq_passwd_find(t, user, ulen);
    if (!e)
        return MQ_PASSWD_UNKNOWN_USER;
    return mq_passwd_verify(e, pw, pwlen) ? MQ_PASSWD_OK : MQ_PASSWD_BAD_PASSWORD;
}

bool mq_passwd_cache_key(const mq_passwd_t *t, const mq_passwd_entry_t *e, const char *pw,
                         size_t len, mq_passwd_key_t *out)
{
    /* SHA-512/256 over length-prefixed fields, so no two inputs share an encoding */
    uint64_t lens[3] = {e->ulen, pw ? len : UINT64_MAX, sizeof e->hash};
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha512_256(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, t->secret, sizeof t->secret) == 1 &&
              EVP_DigestUpdate(ctx, lens, sizeof lens) == 1 &&
              EVP_DigestUpdate(ctx, e->user, e->ulen) == 1 &&
              EVP_DigestUpdate(ctx, e->hash, sizeof e->hash) == 1 &&
              (!pw || EVP_DigestUpdate(ctx, pw, len) == 1) &&
              EVP_DigestFinal_ex(ctx, out->b, &n) == 1 && n == sizeof out->b;
    EVP_MD_CTX_free(ctx);
    return ok;
}

bool mq_passwd_key_eq(const mq_passwd_key_t *a, const mq_passwd_key_t *b)
{
    return CRYPTO_memcmp(a->b, b->b, sizeof a->b) == 0;
}

/* --- making lines --------------------------------------------------------------------------- */

const char *mq_passwd_user_problem(const char *user, size_t len)
{
    if (len > MQ_PASSWD_FIELD_MAX)
        return "Error: Username must be less than 65536 characters long.";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)user[i];
        if (c < 0x20 || c == 0x7f)
            return "Error: Username must not contain control characters.";
    }
    if (memchr(user, ':', len))
        return "Error: Username must not contain the ':' character.";
    return NULL;
}

int mq_passwd_format_line(mq_buf_t *out, const char *user, size_t ulen, const char *pw,
                          size_t pwlen, enum mq_passwd_hash kind, int iterations,
                          const uint8_t salt[MQ_PASSWD_SALT_LEN])
{
    if (mq_passwd_user_problem(user, ulen) || ulen == 0 || pwlen > MQ_PASSWD_FIELD_MAX ||
        (!pw && pwlen))
        return -EINVAL;
    if (kind != MQ_PASSWD_SHA512 && kind != MQ_PASSWD_SHA512_PBKDF2)
        return -EINVAL;
    if (kind == MQ_PASSWD_SHA512_PBKDF2 && iterations < 1)
        return -EINVAL;
    unsigned iter = kind == MQ_PASSWD_SHA512 ? 1 : (unsigned)iterations;
    uint8_t hash[MQ_PASSWD_HASH_LEN];
    if (!compute_hash(kind, iter, salt, pw ? pw : "", pwlen, hash))
        return -EIO;
    char head[32];
    int n = kind == MQ_PASSWD_SHA512 ? snprintf(head, sizeof head, ":$6$")
                                     : snprintf(head, sizeof head, ":$7$%u$", iter);
    mq_buf_append(out, user, ulen);
    mq_buf_append(out, head, (size_t)n);
    b64_encode(out, salt, MQ_PASSWD_SALT_LEN);
    mq_buf_append(out, "$", 1);
    b64_encode(out, hash, MQ_PASSWD_HASH_LEN);
    mq_buf_append(out, "\n", 1);
    OPENSSL_cleanse(hash, sizeof hash);
    return 0;
}

int mq_passwd_make_line(mq_buf_t *out, const char *user, size_t ulen, const char *pw, size_t pwlen,
                        enum mq_passwd_hash kind, int iterations)
{
    uint8_t salt[MQ_PASSWD_SALT_LEN];
    if (RAND_bytes(salt, sizeof salt) != 1)
        return -EIO;
    return mq_passwd_format_line(out, user, ulen, pw, pwlen, kind, iterations, salt);
}
