/* SPDX-License-Identifier: MIT */
/* tests/unit/support/support.h - helpers shared by the unit tests. */
#ifndef MQ_TEST_SUPPORT_H
#define MQ_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/* Parses hex digits (spaces ignored) from 'hex' into 'out' (cap bytes); returns the byte count.
 * Aborts the test on a bad digit or overflow. */
size_t mqt_hex(const char *hex, uint8_t *out, size_t cap);

#endif
