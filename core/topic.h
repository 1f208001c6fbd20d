/* SPDX-License-Identifier: MIT */
/* core/topic.h - topic name and filter rules (MQTT v5 §4.7, v3.1.1 §4.7) and matching. */
#ifndef MQ_CORE_TOPIC_H
#define MQ_CORE_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/rc.h"

/* None of these functions check UTF-8: the codec has already done so for anything that came
 * off the wire (core/utf8.h for anything else). All are pure and callable from any thread. */

/* Checks a Topic Name as used in PUBLISH and in a will: at least one character
 * [MQTT-4.7.3-1], no '+' or '#' [MQTT-3.3.2-2]. Returns MQ_RC_SUCCESS or
 * MQ_RC_TOPIC_NAME_INVALID with a short reason in *why (if why is not NULL). */
enum mq_rc mq_topic_validate_name(const char *topic, size_t len, const char **why);

/* Checks a Topic Filter as used in SUBSCRIBE and UNSUBSCRIBE: at least one character; '+'
 * only as a whole level [MQTT-4.7.1-2]; '#' only as a whole level and the last one
 * [MQTT-4.7.1-1]. A shared subscription "$share/{ShareName}/{filter}" [MQTT-4.8.2] is valid
 * when ShareName is at least one character without '/', '+' or '#' [MQTT-4.8.2-1],
 * [MQTT-4.8.2-2] and the rest is a valid filter. Returns MQ_RC_SUCCESS or
 * MQ_RC_TOPIC_FILTER_INVALID with a short reason in *why (if why is not NULL). */
enum mq_rc mq_topic_validate_filter(const char *filter, size_t len, const char **why);

/* The same for a filter without "$share/" meaning (the part after it, an ACL file's topic):
 * at least one character, wildcards as whole levels, '#' last. */
enum mq_rc mq_topic_validate_plain_filter(const char *filter, size_t len, const char **why);

/* When 'filter' has the form "$share/{ShareName}/{rest}", sets *share to ShareName and
 * *rest to the filter proper (both views into 'filter') and returns true; otherwise returns
 * false and leaves them alone. Does not validate: call mq_topic_validate_filter first. */
bool mq_topic_split_shared(const char *filter, size_t len, mq_str_t *share, mq_str_t *rest);

/* True when the valid topic name 'topic' matches the valid, non-shared filter 'filter':
 * '+' matches exactly one level (possibly empty), '#' matches any number of levels including
 * the parent level ("a/#" matches "a"), and a topic starting with '$' is not matched by a
 * filter whose first level is '+' or '#' [MQTT-4.7.2-1]. */
bool mq_topic_matches(const char *filter, size_t flen, const char *topic, size_t tlen);

/* True when 'filter' contains a '+' or '#' level. */
bool mq_topic_has_wildcard(const char *filter, size_t len);

/* True for "$SYS" and the topics under it: the broker's own tree. */
bool mq_topic_is_sys(const char *topic, size_t len);

#endif
