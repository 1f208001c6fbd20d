/* SPDX-License-Identifier: MIT */
/* broker/security.h - reads password_file and acl_file into the security state (net/auth.h). */
#ifndef MQ_BROKER_SECURITY_H
#define MQ_BROKER_SECURITY_H

#include <stddef.h>

#include "broker/config.h"
#include "net/auth.h"

/* Builds the security state of the finished configuration 'cfg': for each security domain
 * (mq_config_security_domains) reads and parses its password_file and acl_file, if any.
 * Password lines that do not parse are logged (WARN, "FILE:LINE: why") and skipped, as
 * mosquitto does; an ACL with any bad line is refused, as mosquitto 2.0 refuses it (every
 * problem logged, "FILE:LINE: why"). Returns an owned state, or NULL with the first reason
 * ("FILE: strerror" for a file that cannot be read, "FILE:LINE: why" for an ACL error) in
 * err[0..errlen): the caller refuses to start, or keeps the state in force on a reload.
 * Main thread (reads files: never on a worker). */
mq_auth_t *mq_security_load(const mq_config_t *cfg, char *err, size_t errlen);

#endif
