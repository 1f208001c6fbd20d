/* SPDX-License-Identifier: MIT */
/* net/jwriter.h - a worker's journal: records appended in a loop turn, written and synced
 * through the worker's io_uring once per turn (group commit). */
#ifndef MQ_NET_JWRITER_H
#define MQ_NET_JWRITER_H

#include <liburing.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/msg.h"
#include "net/conn.h"

/* With persistence on, each worker appends the retained changes it makes to its own journal
 * file NAME.G.wI (docs/PERSISTENCE.md): no lock, no other thread. Records of a turn collect in
 * a buffer; at the end of the turn one write (and, with persistence_fsync always, one
 * fdatasync after it) takes them all. A connection whose acknowledgement depends on them is
 * gated (mq_conn_gate): its output waits until they are durable, so every PUBACK / PUBREC a
 * client sees for a retained QoS 1/2 PUBLISH follows the disk. A write or sync that fails (a
 * full disk, a write over 'ulimit -f', an I/O error) is logged loudly; the connections gated
 * on it are closed with their output dropped (nothing was acknowledged: the client sends
 * again), the journal stops taking records that need it (mq_jwriter_broken: the protocol then
 * refuses retained QoS 1/2 publishes, as for memory_limit) and the write is tried again every
 * second until it succeeds. Worker thread only. */

enum mq_fsync_mode {
    MQ_FSYNC_ALWAYS = 0,   /* fdatasync each turn's records; acknowledgements wait for it */
    MQ_FSYNC_INTERVAL = 1, /* write each turn, fdatasync once a second; nothing waits */
    MQ_FSYNC_NEVER = 2,    /* write each turn, leave syncing to the kernel; nothing waits */
};

typedef struct mq_jwriter mq_jwriter_t;

/* A journal writing to 'fd' (a new, empty file of generation 'gen', taken over) for worker
 * 'worker' of 'n_workers', on 'ring'; gating the connections of 'loop'. 'path' names the file
 * in log lines. */
mq_jwriter_t *mq_jwriter_new(struct io_uring *ring, mq_conn_loop_t *loop, int fd, const char *path,
                             uint64_t gen, unsigned worker, unsigned n_workers,
                             enum mq_fsync_mode mode);

/* Writes what is still buffered with plain blocking calls, syncs, closes the file and frees
 * the writer (shutdown, after the loop has stopped: no operation is in flight any more, the
 * ring having been torn down or drained). NULL is a no-op. */
void mq_jwriter_free(mq_jwriter_t *jw);

/* Appends the retained change 'msg' made to the store (an empty payload clears the topic),
 * numbered as the store numbered it (msg->rseq, core/tindex.h).
 * Returns true when the record was appended; false while the journal is broken (the change
 * is then only in memory until the next snapshot). '$SYS' topics are the caller's to leave
 * out. */
bool mq_jwriter_retain(mq_jwriter_t *jw, const mq_msg_t *msg);

/* The persistent session 's' (not clean) as it is now: created or resumed ('connected': the
 * time it went away is not known yet), or just detached (its expiry counts from now). Its
 * subscriptions are kept at replay. */
struct mq_sess;
struct mq_sub;
bool mq_jwriter_sess_put(mq_jwriter_t *jw, const struct mq_sess *s, bool connected);

/* The SESS_PUT record of 's' (no will) with 'disconnected_at' (wall-clock seconds; 0 =
 * connected): what the journal appends and the snapshot writes. Views into 's'. */
struct mq_jrec;
struct mq_jrec mq_jwriter_sess_record(const struct mq_sess *s, int64_t disconnected_at);

/* When the persistent session 's' went away (wall-clock seconds), from its expiry deadline
 * (loop clock 'mono'); 'wall' (now) while it is connected or never expires. */
int64_t mq_jwriter_disconnected_at(const struct mq_sess *s, int64_t wall, uint64_t mono);

/* The will of the persistent session 's' waits 'delay_s' seconds from now (its Will Delay
 * Interval): the session's SESS_PUT again, gone since now, carrying the will; or, 'will' NULL,
 * the waiting will was published: the SESS_PUT without it, gone since it went (a restart must
 * not publish it twice, nor count the session's expiry anew). A reconnect's SESS_PUT drops it
 * too. */
bool mq_jwriter_will(mq_jwriter_t *jw, const struct mq_sess *s, const mq_msg_t *will,
                     uint32_t delay_s);

/* The session 's' ended (expired, discarded by a clean start, or made to end with its
 * connection): everything of it goes at replay. */
bool mq_jwriter_sess_del(mq_jwriter_t *jw, const struct mq_sess *s);

/* A subscription of the persistent session 's' made or replaced ('sub'), or removed ('sub'
 * NULL, 'filter' as the client gave it). */
bool mq_jwriter_sub(mq_jwriter_t *jw, const struct mq_sess *s, const struct mq_sub *sub,
                    mq_str_t filter);

/* An inbound QoS 2 packet id of the persistent session 's' received ('add': its PUBREC goes
 * after this is durable) or released (PUBREL: its PUBCOMP goes after this is durable, or a
 * stale id could make a later PUBLISH with it look like a re-send). */
bool mq_jwriter_qos2(mq_jwriter_t *jw, const struct mq_sess *s, uint16_t packet_id, bool add);

/* A persistent session's outbound message (core/sess.h, mq_sess_journal_t): queued or put in
 * flight (MSG_PUT), given a packet id or turned to PUBREL (MSG_UPDATE), gone (MSG_DEL). */
struct mq_outmsg;
bool mq_jwriter_msg_put(mq_jwriter_t *jw, const struct mq_sess *s, const struct mq_outmsg *o);
bool mq_jwriter_msg_update(mq_jwriter_t *jw, const struct mq_sess *s, const struct mq_outmsg *o);
bool mq_jwriter_msg_del(mq_jwriter_t *jw, const struct mq_sess *s, uint64_t mid);

/* Calls answer(arg, to, t) once what the journal holds now is durable (after the write in
 * flight and the records buffered; at the end of this turn when it holds nothing): the
 * answer to a durability mark (net/marks.h). Set the callback with mq_jwriter_on_durable. */
void mq_jwriter_after_durable(mq_jwriter_t *jw, unsigned to, uint64_t t);
void mq_jwriter_on_durable(mq_jwriter_t *jw, void (*answer)(void *arg, unsigned to, uint64_t t),
                           void *arg);

/* Records appended so far (a caller compares two readings: did this packet journal
 * anything?); 0 for a NULL 'jw'. */
uint64_t mq_jwriter_appended(const mq_jwriter_t *jw);

/* Records not appended because the journal was broken, so far (compared the same way: what a
 * packet produced that a crash would lose, so its acknowledgement must not go); 0 for NULL. */
uint64_t mq_jwriter_refused(const mq_jwriter_t *jw);

/* Whether acknowledgements must wait for the records (persistence_fsync always). */
bool mq_jwriter_gates(const mq_jwriter_t *jw);

/* The one rule for acknowledgements: with persistence_fsync always, holds the output of 'c'
 * (mq_conn_gate) until what the journal holds now is durable — when 'need', or when records
 * were appended since 'since' (a reading of mq_jwriter_appended). Call right after queueing
 * the packet that promises them. A NULL 'jw' (persistence off) holds nothing. */
void mq_jwriter_hold(mq_jwriter_t *jw, mq_conn_t *c, bool need, uint64_t since);

/* Creates the journal file "base.gen.wI" for writing, never over an existing one (O_EXCL: a
 * file of that name is one start-up did not read); its name in 'path' ('cap' bytes). The fd,
 * or -errno. */
int mq_jwriter_create(const char *base, uint64_t gen, unsigned worker, char *path, size_t cap);

/* Syncs the directory that holds 'path': the names made there are durable once it returns. */
void mq_jwriter_sync_dir(const char *path);

/* True after a failed write until a retry succeeds: records that need the journal must be
 * refused rather than acknowledged. */
bool mq_jwriter_broken(const mq_jwriter_t *jw);

/* Whether an operation of the journal is in flight. */
bool mq_jwriter_busy(const mq_jwriter_t *jw);

/* End of a loop turn: submits the turn's records when no write is in flight. */
void mq_jwriter_flush(mq_jwriter_t *jw);

/* A completion of one of the journal's operations (MQ_OP_JOURNAL). */
void mq_jwriter_on_cqe(mq_jwriter_t *jw, void *tag, const struct io_uring_cqe *cqe);

/* Once a second: retries a failed write, syncs under persistence_fsync interval. */
void mq_jwriter_tick(mq_jwriter_t *jw);

/* Switches to 'fd', a new file of generation 'gen' (a snapshot is being taken): records from
 * now on go there, after a FILE_HEADER. The old file is closed once its write in flight is
 * done. Everything written to the old one is in the snapshot that follows. */
void mq_jwriter_rotate(mq_jwriter_t *jw, int fd, const char *path, uint64_t gen);

/* What the control thread mails every worker (MQ_MAIL_JOURNAL) to rotate: worker I takes
 * fds[I] (opened for it, its to close) named paths[I]; then posts 'done'. */
typedef struct mq_jwriter_rotation {
    const int *fds;
    char *const *paths;
    uint64_t gen;
    sem_t *done;
} mq_jwriter_rotation_t;

#endif
