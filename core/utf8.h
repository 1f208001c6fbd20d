/* SPDX-License-Identifier: MIT */
/* core/utf8.h - validation of MQTT UTF-8 Encoded Strings (MQTT v5 §1.5.4, v3.1.1 §1.5.3). */
#ifndef MQ_CORE_UTF8_H
#define MQ_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when 's' is well-formed UTF-8 as MQTT requires: no overlong forms, no surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF, and no U+0000 [MQTT-1.5.4-1], [MQTT-1.5.4-2].
 * Control characters and non-characters are allowed (the specification says SHOULD NOT, and
 * a receiver MAY close; mosquitto accepts them). Any thread. */
bool mq_utf8_is_valid(const uint8_t *s, size_t len);

#endif
