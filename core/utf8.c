/* SPDX-License-Identifier: MIT */
/* core/utf8.c - MQTT UTF-8 validation, with an ASCII fast path for topic-like strings. */
#include "core/utf8.h"

#include <string.h>

bool mq_utf8_is_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* Fast path: 8 ASCII bytes at a time (the common case for topics and client ids). */
        if (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            /* no high bit set and no zero byte among the 8 */
            if ((w & 0x8080808080808080ull) == 0 &&
                ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0) /* [MQTT-1.5.4-2] U+0000 is not allowed */
                return false;
            i++;
            continue;
        }
        uint32_t cp;
        size_t n;
        if (c >= 0xC2 && c <= 0xDF) { /* 0xC0, 0xC1 would be overlong */
            cp = c & 0x1F;
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            cp = c & 0x0F;
            n = 2;
        } else if (c >= 0xF0 && c <= 0xF4) {
            cp = c & 0x07;
            n = 3;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            uint8_t cc = s[i + k];
            if ((cc & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;                 /* overlong or out of range */
        if (cp >= 0xD800 && cp <= 0xDFFF) /* [MQTT-1.5.4-1] surrogates are ill-formed */
            return false;
        i += n + 1;
    }
    return true;
}
