/* SPDX-License-Identifier: MIT */
/* core/log.c - the stderr log sink, one write(2) per line so that threads do not interleave. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

atomic_int mq_log_max = MQ_LOG_NOTICE;

void mq_log_write(enum mq_log_level level, const char *fmt, ...)
{
    (void)level;
    char line[1024];
    int n = snprintf(line, sizeof(line), "%ld: ", (long)time(NULL));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nothing useful to do when stderr is gone */
}
