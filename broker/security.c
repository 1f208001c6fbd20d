/* SPDX-License-Identifier: MIT */
/* broker/security.c - reads password_file and acl_file into the security state (net/auth.h). */
#include "broker/security.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

/* Reads the whole of 'path' into 'out'. Returns 0 or -errno. */
static int read_file(const char *path, mq_buf_t *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = mq_buf_read_fd(out, fd);
    close(fd);
    return rc;
}

static void on_passwd_line(void *arg, const char *file, unsigned line, const char *why)
{
    (void)arg;
    MQ_LOG(MQ_LOG_WARN, "Warning: %s:%u: %s; line skipped.", file, line, why);
}

typedef struct acl_report {
    char *err;
    size_t errlen;
    bool has_error;
} acl_report_t;

static void on_acl_problem(void *arg, const char *file, unsigned line, bool is_error,
                           const char *msg)
{
    acl_report_t *r = arg;
    MQ_LOG(is_error ? MQ_LOG_ERROR : MQ_LOG_WARN, "%s: %s:%u: %s.", is_error ? "Error" : "Warning",
           file, line, msg);
    if (is_error && !r->has_error) { /* the first error is the one the caller reports */
        snprintf(r->err, r->errlen, "%s:%u: %s", file, line, msg);
        r->has_error = true;
    }
}

/* Loads one domain's files into 'a'. Returns 0, or -1 with err set. */
static int load_domain(mq_auth_t *a, unsigned d, const char *pw_path, const char *acl_path,
                       char *err, size_t errlen)
{
    mq_buf_t buf = {0};
    int rc;
    mq_passwd_t *pw = NULL;
    mq_acl_t *acl = NULL;
    if (pw_path) {
        if ((rc = read_file(pw_path, &buf)) < 0) {
            snprintf(err, errlen, "password_file %s: %s", pw_path, strerror(-rc));
            mq_buf_fini(&buf);
            return -1;
        }
        pw = mq_passwd_parse(pw_path, (const char *)buf.data, buf.len, on_passwd_line, NULL);
        buf.len = 0;
    }
    if (acl_path) {
        if ((rc = read_file(acl_path, &buf)) < 0) {
            snprintf(err, errlen, "acl_file %s: %s", acl_path, strerror(-rc));
            mq_buf_fini(&buf);
            mq_passwd_free(pw);
            return -1;
        }
        acl_report_t rep = {err, errlen, false};
        rc = mq_acl_parse(acl_path, (const char *)buf.data, buf.len, on_acl_problem, &rep, &acl);
        if (rc < 0) {
            if (!rep.has_error)
                snprintf(err, errlen, "acl_file %s: %s", acl_path, strerror(-rc));
            mq_buf_fini(&buf);
            mq_passwd_free(pw);
            return -1;
        }
    }
    mq_buf_fini(&buf);
    mq_auth_set_domain(a, d, pw, acl);
    return 0;
}

mq_auth_t *mq_security_load(const mq_config_t *cfg, char *err, size_t errlen)
{
    unsigned n = mq_config_security_domains(cfg);
    mq_auth_t *a = mq_auth_new(n);
    for (unsigned d = 0; d < n; d++) {
        const char *pw, *acl;
        mq_config_security_files(cfg, d, &pw, &acl);
        if (load_domain(a, d, pw, acl, err, errlen) < 0) {
            mq_auth_free(a);
            return NULL;
        }
    }
    return a;
}
