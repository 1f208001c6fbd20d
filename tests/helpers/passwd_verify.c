/* SPDX-License-Identifier: MIT */
/* tests/helpers/passwd_verify.c - checks a user's password against a file with core/passwd.
 *
 * Usage: passwd_verify FILE USER PASSWORD. Exit 0: right password; 1: unknown user; 2: wrong
 * password; 3: the file cannot be read. Skipped lines are printed to stderr as "FILE:LINE: why",
 * and the user count to stdout, so the integration tests can check both. */
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/passwd.h"

static void report(void *arg, const char *file, unsigned line, const char *why)
{
    (void)arg;
    fprintf(stderr, "%s:%u: %s\n", file, line, why);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: passwd_verify FILE USER PASSWORD\n");
        return 3;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 3;
    }
    mq_buf_t buf;
    mq_buf_init(&buf);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        mq_buf_append(&buf, chunk, n);
    fclose(f);
    mq_passwd_t *t = mq_passwd_parse(argv[1], (const char *)buf.data, buf.len, report, NULL);
    printf("users=%zu\n", mq_passwd_count(t));
    enum mq_passwd_result r =
        mq_passwd_check(t, argv[2], strlen(argv[2]), argv[3], strlen(argv[3]));
    mq_passwd_free(t);
    mq_buf_fini(&buf);
    return (int)r;
}
