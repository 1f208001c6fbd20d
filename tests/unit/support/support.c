/* SPDX-License-Identifier: MIT */
/* tests/unit/support/support.c - helpers shared by the unit tests. */
#include "support/support.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

size_t mqt_hex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (*hex) {
        if (isspace((unsigned char)*hex)) {
            hex++;
            continue;
        }
        int hi = nibble(hex[0]), lo = hex[1] ? nibble(hex[1]) : -1;
        if (hi < 0 || lo < 0 || n >= cap) {
            fprintf(stderr, "mqt_hex: bad input near '%s'\n", hex);
            abort();
        }
        out[n++] = (uint8_t)(hi << 4 | lo);
        hex += 2;
    }
    return n;
}
