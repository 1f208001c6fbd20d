/* SPDX-License-Identifier: MIT */
/* net/marks.h - durability marks: an acknowledgement waits for other workers' journals. */
#ifndef MQ_NET_MARKS_H
#define MQ_NET_MARKS_H

#include <stdint.h>

#include "net/client.h"

/* A QoS 1/2 PUBLISH received on worker A may leave copies for the persistent sessions of
 * worker B, which B journals; with persistence_fsync always, A's PUBACK / PUBREC must wait
 * for B's disk, and no worker ever waits for another. Mail between two workers is FIFO, so at
 * the end of a turn in which A mailed B such copies, A mails B a mark (MQ_MAIL_MARK: A, T);
 * when B reaches it every copy A sent before is journaled (or needed no record), and B
 * answers (MQ_MAIL_DURABLE: B, T) once what its journal holds at that moment is durable. The
 * connections A gated in turn T are released, in turn order, when every worker it mailed in
 * T has answered T or later (and A's own journal write has released them too: net/conn.h).
 * One mark and one answer per worker pair per turn with such traffic. Worker thread. */

/* Holds the output of 'c' until the workers of 'mailed' (a bit per worker, this one's left
 * out) have answered this turn's marks. */
void mq_marks_gate(mq_proto_t *p, mq_conn_t *c, uint64_t mailed);

/* End of a turn: mails this turn's marks (after every delivery of the turn). */
void mq_marks_send(mq_proto_t *p);

/* A QoS 1/2 copy of 'msg' was mailed to worker 'w' this turn: a mark goes to it at the end of
 * the turn (persistence_fsync always), whether or not a connection waits for it, so that
 * what the answer says is about this turn's copies. */
void mq_marks_mailed(mq_proto_t *p, unsigned w, const mq_msg_t *msg);

/* After delivering copies of 'msg' mailed by worker 'from': if they made this worker's journal
 * refuse records (mq_jwriter_refused was 'before'), the answer to that worker's mark for the
 * turn says so, and what it gated for them is not acknowledged but closed. */
void mq_marks_check_refused(mq_proto_t *p, const mq_msg_t *msg, unsigned from, uint64_t before);

/* A mark from worker 'from' for its turn 't': answered when this worker's journal has made
 * durable what it holds now (at once when it holds nothing). */
void mq_marks_on_mark(mq_proto_t *p, unsigned from, uint64_t t);

/* Worker 'from' answered this worker's turn 't' (and every turn before it). */
void mq_marks_on_durable(mq_proto_t *p, unsigned from, uint64_t t);

/* Sends the answer to worker 'to' for its turn 't' (the journal calls it once durable). */
void mq_marks_answer(void *arg, unsigned to, uint64_t t);

/* Frees the batches (shutdown; the connections are freed by their loop). */
void mq_marks_fini(mq_proto_t *p);

#endif
