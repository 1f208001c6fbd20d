/* SPDX-License-Identifier: MIT */
/* broker/status.h - the status page (broker/status/index.html), bundled at build time. */
#ifndef MQ_BROKER_STATUS_H
#define MQ_BROKER_STATUS_H

#include <stddef.h>
#include <stdint.h>

/* The bytes of broker/status/index.html, written into the binary by broker/embed.py (a meson
 * custom_target): served at "/" of a WebSockets listener with 'status_page true'. Static
 * storage, read-only, any thread. */
extern const uint8_t mq_status_page[];
extern const size_t mq_status_page_len;

#endif
