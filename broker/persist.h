/* SPDX-License-Identifier: MIT */
/* broker/persist.h - what persistence keeps across restarts: snapshots, and start-up from the
 * snapshot and the workers' journals (mosquitto's persistence options). */
#ifndef MQ_BROKER_PERSIST_H
#define MQ_BROKER_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/config.h"
#include "core/msg.h"
#include "net/server.h"

/* With 'persistence true' the retained store and the persistent sessions are written to
 * persistence_location/persistence_file (docs/PERSISTENCE.md has the format) every
 * autosave_interval seconds (or after that many changes with autosave_on_changes), on SIGUSR1
 * and at a clean exit, and read back at start-up, as mosquitto does. Sessions are kept with
 * their subscriptions, messages in flight and queued (QoS 1/2), inbound QoS 2 state and a will
 * waiting for its delay.
 *
 * Between snapshots each worker journals the changes it makes (net/jwriter.h: NAME.G.wI), so
 * a crash loses nothing that was acknowledged (persistence_fsync always). A save first moves
 * every worker to the next generation's journals, then writes NAME.tmp, syncs it, renames it
 * over NAME, syncs the directory and removes the older journals: a crash during a save leaves
 * the previous snapshot and its journals whole. Start-up reads the snapshot and the journals
 * that follow it and folds them into a new snapshot. It never fails because of the files: a
 * torn or corrupt part is skipped and logged, a file this build cannot read is moved aside and
 * logged. Main thread only; the workers go on serving while a snapshot is taken (the store is
 * read lock-free, each worker encodes its own sessions). */

typedef struct mq_persist mq_persist_t;

/* NULL when persistence is off. */
mq_persist_t *mq_persist_new(const mq_config_t *cfg);

/* Logs a warning when the directory is not writable (a save would fail; serving goes on, as
 * with mosquitto). Called once privileges are dropped; 'p' may be NULL. */
void mq_persist_check(const mq_persist_t *p);

void mq_persist_free(mq_persist_t *p);

/* Reads the snapshot, if any, into 'opts' (the server's start-up options): the retained
 * messages (opts->retained: one reference each, the server's) with their remaining expiry
 * counted from now, so that the time the broker was down counts; the persistent sessions
 * (opts->kept), which the workers restore. Logs what was read and anything skipped. */
void mq_persist_load(mq_persist_t *p, mq_server_opts_t *opts);

/* After mq_server_start() (whatever it returned): frees what mq_persist_load() lent 'opts'.
 * 'p' may be NULL. */
void mq_persist_loaded(mq_persist_t *p, mq_server_opts_t *opts);

/* Writes a snapshot of the server's retained store ('$SYS' left out, as mosquitto does) and
 * persistent sessions now; the workers encode their own sessions within a loop turn each.
 * Returns 0, or -1 with the reason logged (the previous snapshot is kept). */
int mq_persist_save(mq_persist_t *p, mq_server_t *srv);

/* Seconds from 'now_s' (monotonic) until the next autosave check (at most 5: the journals'
 * size is looked at that often); the control loop waits at most this long. */
double mq_persist_wait(const mq_persist_t *p, double now_s);

/* Saves when autosave is due at 'now_s' (monotonic) and something changed since the last
 * save, or when the journals hold more than persistence_journal_limit bytes (whatever
 * autosave_interval says); true when it saved. A failed save (logged) is tried again after a
 * pause. */
bool mq_persist_tick(mq_persist_t *p, mq_server_t *srv, double now_s);

#endif
