/* SPDX-License-Identifier: MIT */
/* tools/passwd.c - starling-passwd: manages password files, flag-compatible with mosquitto_passwd.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/passwd.h"

#define PW_BUF_MAX 65536 /* as mosquitto_passwd: passwords up to 65535 bytes */

/* The one piece of global mutable state: the signal handler must restore the terminal. */
static struct termios g_saved_tty;
static volatile sig_atomic_t g_tty_saved;

typedef struct opts {
    enum mq_passwd_hash kind;
    int iterations;
    bool batch, create, delete_user, update_file;
    const char *file, *user, *password;
} opts_t;

static void print_usage(void)
{
    printf("starling-passwd is a tool for managing password files for Starling and mosquitto.\n\n");
    printf("Usage: starling-passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c | -D] "
           "passwordfile username\n");
    printf("       starling-passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c] -b "
           "passwordfile username password\n");
    printf("       starling-passwd -U passwordfile\n");
    printf(" -b : run in batch mode to allow passing passwords on the command line.\n");
    printf(" -c : create a new password file. This will overwrite existing files.\n");
    printf(" -D : delete the username rather than adding/updating its password.\n");
    printf(
        " -H : specify the hashing algorithm. Defaults to sha512-pbkdf2, which is recommended.\n");
    printf("      Mosquitto 1.6 and earlier defaulted to sha512.\n");
    printf(" -I : the number of PBKDF2 iterations (default %d).\n", MQ_PASSWD_DEFAULT_ITERATIONS);
    printf(" -U : update a plain text password file to use hashed passwords.\n\n");
}

static void restore_tty(void)
{
    if (g_tty_saved)
        tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_tty);
}

static void on_signal(int sig)
{
    (void)sig;
    restore_tty();
    _exit(0); /* mosquitto_passwd exits 0 on SIGINT/SIGTERM too */
}

/* Shows 'prompt' and reads one line from stdin with echo off: echo goes off before the
 * prompt appears, so that nothing typed at once is echoed. Returns 0, or 1 for end of input
 * or an empty line. */
static int read_quiet(const char *prompt, char *buf, size_t cap)
{
    struct termios quiet;
    bool tty = tcgetattr(STDIN_FILENO, &g_saved_tty) == 0;
    if (tty) {
        g_tty_saved = 1;
        quiet = g_saved_tty;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ICANON;
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    printf("%s", prompt);
    fflush(stdout);
    char *got = fgets(buf, (int)cap, stdin);
    if (tty) {
        restore_tty();
        g_tty_saved = 0;
    }
    if (!got)
        return 1;
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return n == 0;
}

/* Prompts twice; returns 0 with the password in 'out', 1 (empty) or 2 (mismatch), having
 * printed mosquitto_passwd's message. */
static int get_password(char *out, size_t cap)
{
    if (read_quiet("Password: ", out, cap)) {
        fprintf(stderr, "Error: Empty password.\n");
        return 1;
    }
    char *again = mq_alloc(cap);
    int rc = read_quiet("\nReenter password: ", again, cap);
    if (rc) {
        fprintf(stderr, "Error: Empty password.\n");
    } else {
        printf("\n");
        if (strcmp(out, again) != 0) {
            fprintf(stderr, "Error: Passwords do not match.\n");
            rc = 2;
        }
    }
    memset(again, 0, cap);
    mq_free(again);
    return rc;
}

static int add_line(mq_buf_t *out, const opts_t *o, const char *user, size_t ulen, const char *pw,
                    size_t pwlen)
{
    if (mq_passwd_make_line(out, user, ulen, pw, pwlen, o->kind, o->iterations) != 0) {
        fprintf(stderr, "Error: Unable to hash password.\n");
        return 1;
    }
    return 0;
}

/* Rewrites 'in' into 'out' line by line: -D drops the user, -U hashes every plain password,
 * otherwise the user's line is replaced (or appended). Comments and blank lines are kept. */
static int rewrite(const opts_t *o, const char *in, size_t len, mq_buf_t *out)
{
    bool found = false;
    unsigned line = 0;
    for (size_t pos = 0; pos < len;) {
        const char *p = in + pos, *nl = memchr(p, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - p) : len - pos;
        pos += llen + (nl ? 1 : 0);
        line++;
        size_t i = 0;
        while (i < llen && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'))
            i++;
        mq_str_t user, pass;
        if (i == llen || p[i] == '#') {
            mq_buf_append(out, p, llen);
            mq_buf_append(out, "\n", 1);
            continue;
        }
        if (!mq_passwd_split_line(p, llen, &user, &pass)) {
            fprintf(stderr, "Error: Corrupt password file at line %u.\n", line);
            return 1;
        }
        bool mine = o->user && mq_str_eq(user, mq_str(o->user));
        found |= mine;
        int rc = 0;
        if (o->update_file)
            rc = add_line(out, o, user.ptr, user.len, pass.ptr, pass.len);
        else if (mine && !o->delete_user)
            rc = add_line(out, o, user.ptr, user.len, o->password, strlen(o->password));
        else if (!mine) {
            mq_buf_append(out, p, llen);
            mq_buf_append(out, "\n", 1);
        }
        if (rc)
            return rc;
    }
    if (o->delete_user && !found) {
        fprintf(stderr, "Warning: User %s not found in password file.\n", o->user);
        return 1;
    }
    if (!o->delete_user && !o->update_file && !found)
        return add_line(out, o, o->user, strlen(o->user), o->password, strlen(o->password));
    return 0;
}

static int read_file(const char *path, mq_buf_t *out, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, st) != 0) {
        fprintf(stderr, "Error: Unable to open password file %s. %s.\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    int rc = mq_buf_read_fd(out, fd);
    close(fd);
    if (rc < 0) {
        fprintf(stderr, "Error: Unable to read password file %s.\n", path);
        return 1;
    }
    return 0;
}

static bool write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

/* Writes 'data' to 'path' through a temporary file in the same directory and rename(2), so a
 * broker reloading the file never sees half of it. 'old' NULL: a new file, mode 0600 (as
 * mosquitto_passwd); else the old file's mode and owner are kept where possible. */
static int write_file(const char *path, const mq_buf_t *data, const struct stat *old)
{
    char *dup = mq_strndup(path, strlen(path));
    size_t tlen = strlen(path) + 32;
    char *tmp = mq_alloc(tlen);
    snprintf(tmp, tlen, "%s/.starling-passwd.XXXXXX", dirname(dup));
    int rc = 1, fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "Error: Unable to open temporary file. %s.\n", strerror(errno));
    } else {
        if (old) {
            (void)fchmod(fd, old->st_mode & 07777); /* best effort, as documented */
            (void)!fchown(fd, old->st_uid, old->st_gid);
        }
        bool ok = write_all(fd, data->data, data->len) && fsync(fd) == 0;
        ok = close(fd) == 0 && ok && rename(tmp, path) == 0;
        if (ok) {
            rc = 0;
        } else {
            fprintf(stderr, "Error: Unable to write password file %s. %s.\n", path,
                    strerror(errno));
            unlink(tmp);
        }
    }
    mq_free(tmp);
    mq_free(dup);
    return rc;
}

/* Parses the flags as mosquitto_passwd does; returns -1 to go on, else the exit code. */
static int parse_flags(int argc, char **argv, opts_t *o, int *idx)
{
    int i;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-H")) {
            if (i + 1 == argc) {
                fprintf(stderr, "Error: -H argument given but not enough other arguments.\n");
                return 1;
            }
            if (!strcmp(argv[i + 1], "sha512")) {
                o->kind = MQ_PASSWD_SHA512;
            } else if (!strcmp(argv[i + 1], "sha512-pbkdf2")) {
                o->kind = MQ_PASSWD_SHA512_PBKDF2;
            } else {
                fprintf(stderr, "Error: Unknown hash type '%s'\n", argv[i + 1]);
                return 1;
            }
            i++;
        } else if (!strcmp(argv[i], "-I")) {
            if (i + 1 == argc) {
                fprintf(stderr, "Error: -I argument given but not enough other arguments.\n");
                return 1;
            }
            o->iterations = atoi(argv[++i]);
            if (o->iterations < 1) {
                fprintf(stderr, "Error: Number of iterations must be > 0.\n");
                return 1;
            }
        } else if (!strcmp(argv[i], "-b")) {
            o->batch = true;
        } else if (!strcmp(argv[i], "-c")) {
            o->create = true;
        } else if (!strcmp(argv[i], "-D")) {
            o->delete_user = true;
        } else if (!strcmp(argv[i], "-U")) {
            o->update_file = true;
        } else {
            break;
        }
    }
    *idx = i;
    return -1;
}

/* Checks flag combinations and takes the positional arguments; -1 to go on, else exit code. */
static int parse_args(int argc, char **argv, opts_t *o)
{
    int idx, rc = parse_flags(argc, argv, o, &idx);
    if (rc >= 0)
        return rc;
    if (o->create && o->delete_user)
        return fprintf(stderr, "Error: -c and -D cannot be used together.\n"), 1;
    if (o->create && o->update_file)
        return fprintf(stderr, "Error: -c and -U cannot be used together.\n"), 1;
    if (o->delete_user && o->update_file)
        return fprintf(stderr, "Error: -D and -U cannot be used together.\n"), 1;
    if (o->delete_user && o->batch)
        return fprintf(stderr, "Error: -b and -D cannot be used together.\n"), 1;
    int left = argc - idx, want;
    if (o->create) {
        want = o->batch ? 3 : 2;
        if (left < want) {
            fprintf(stderr, o->batch ? "Error: -c argument given but password file, username, or "
                                       "password missing.\n"
                                     : "Error: -c argument given but password file or username "
                                       "missing.\n");
            return 1;
        }
    } else if (o->delete_user) {
        want = 2;
        if (left < 2)
            return fprintf(stderr, "Error: -D argument given but password file or username "
                                   "missing.\n"),
                   1;
    } else if (o->update_file) {
        want = 1;
        if (left != 1)
            return fprintf(stderr, "Error: -U argument given but password file missing.\n"), 1;
    } else if ((o->batch && left == 3) || (!o->batch && left == 2)) {
        want = left;
    } else {
        print_usage();
        return 1;
    }
    o->file = argv[idx];
    o->user = want >= 2 ? argv[idx + 1] : NULL;
    o->password = want == 3 ? argv[idx + 2] : NULL;
    return -1;
}

static int run(opts_t *o, char *pwbuf)
{
    if (o->user) {
        const char *why = mq_passwd_user_problem(o->user, strlen(o->user));
        if (why)
            return fprintf(stderr, "%s\n", why), 1;
    }
    if (o->password && strlen(o->password) > MQ_PASSWD_FIELD_MAX)
        return fprintf(stderr, "Error: Password must be less than 65536 characters long.\n"), 1;
    if (o->user && !o->delete_user && !o->password) {
        int rc = get_password(pwbuf, PW_BUF_MAX);
        if (rc)
            return rc;
        o->password = pwbuf;
    }
    mq_buf_t in, out;
    mq_buf_init(&in);
    mq_buf_init(&out);
    struct stat st;
    int rc;
    if (o->create) {
        rc = add_line(&out, o, o->user, strlen(o->user), o->password, strlen(o->password));
        if (!rc)
            rc = write_file(o->file, &out, NULL);
    } else {
        rc = read_file(o->file, &in, &st);
        if (!rc)
            rc = rewrite(o, (const char *)in.data, in.len, &out);
        if (!rc)
            rc = write_file(o->file, &out, &st);
    }
    if (out.data)
        memset(out.data, 0, out.cap); /* plain passwords pass through here with -U */
    if (in.data)
        memset(in.data, 0, in.cap);
    mq_buf_fini(&in);
    mq_buf_fini(&out);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (argc == 1) {
        print_usage();
        return 1;
    }
    opts_t o = {.kind = MQ_PASSWD_SHA512_PBKDF2, .iterations = MQ_PASSWD_DEFAULT_ITERATIONS};
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    char *pwbuf = mq_calloc(1, PW_BUF_MAX);
    rc = run(&o, pwbuf);
    memset(pwbuf, 0, PW_BUF_MAX);
    mq_free(pwbuf);
    return rc;
}
