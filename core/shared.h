/* SPDX-License-Identifier: MIT */
/* core/shared.h - shared subscription groups ($share/GROUP/FILTER) across workers. */
#ifndef MQ_CORE_SHARED_H
#define MQ_CORE_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Each message matching a group's filter goes to one member of the group (MQTT 5 §4.8.2),
 * the members in turn in the order they joined (skipping those without a connection while
 * any member has one), wherever they live: the publishing worker
 * picks the member here and sends the message to the worker that owns it (core/route.h
 * finds the member there by its token). The registry is shared by
 * every worker: members join and leave under a write lock (subscribe-time work), publishers
 * read under a read lock, and only while some group exists (mq_shared_any). It does no I/O. */
typedef struct mq_shared mq_shared_t;

mq_shared_t *mq_shared_new(void);
void mq_shared_free(mq_shared_t *sh);

/* The group id of 'group' (a stable hash of the name, never 0). Any thread. */
uint64_t mq_shared_gid(const char *group, size_t len);

/* Member 'token' (its session's client id hash) of group 'gid' on filter 'fid' (the filter's
 * id in the index), living on 'worker', joins / leaves. Any thread. */
void mq_shared_join(mq_shared_t *sh, uint64_t fid, uint64_t gid, unsigned worker, uint64_t token);
void mq_shared_leave(mq_shared_t *sh, uint64_t fid, uint64_t gid, unsigned worker, uint64_t token);

/* Member 'token' of group 'gid' on 'fid', on 'worker', has a connection ('online') or not:
 * picks prefer the members with one, and take an offline member only when no member is
 * online (its session then queues the message). Members join online. Any thread. */
void mq_shared_set_online(mq_shared_t *sh, uint64_t fid, uint64_t gid, unsigned worker,
                          uint64_t token, bool online);

/* True while any group exists (a relaxed read: publishers skip the registry otherwise). */
bool mq_shared_any(const mq_shared_t *sh);

/* Called once per group of 'fid' that has members, with the member chosen for this message:
 * its worker and its token. */
typedef void mq_shared_pick_cb(void *arg, uint64_t fid, uint64_t gid, unsigned worker,
                               uint64_t token);

/* Picks, for each group of filter 'fid', the member that gets this message (in turn, in the
 * order they joined). Any worker. */
void mq_shared_pick(mq_shared_t *sh, uint64_t fid, mq_shared_pick_cb *cb, void *arg);

/* Picks the member of group 'gid' on filter 'fid' that gets a message now (in turn, as
 * mq_shared_pick), other than member 'exclude' (a token; 0: none), and only a member with a
 * connection if 'online_only': false when the group has no such member. Any worker. */
bool mq_shared_pick_one(mq_shared_t *sh, uint64_t fid, uint64_t gid, uint64_t exclude,
                        bool online_only, unsigned *worker, uint64_t *token);

/* Groups with at least one member ($SYS). Any thread. */
uint64_t mq_shared_count(const mq_shared_t *sh);

#endif
