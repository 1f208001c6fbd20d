/* SPDX-License-Identifier: MIT */
/* tests/fuzz/fake_conn.h - the connection layer of net/conn.h without sockets or io_uring. */
#ifndef MQ_TESTS_FAKE_CONN_H
#define MQ_TESTS_FAKE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/conn.h"

/* fake_conn.c defines the functions of net/conn.h that the protocol layer calls
 * (mq_conn_mark_dirty, mq_conn_close, mq_conn_activate, mq_conn_arm, mq_conn_link,
 * mq_conn_unlink, mq_conn_up, mq_conn_free) with the same contract, over in-memory "sockets":
 * what a fake client writes is kept as receive segments until the owning loop's turn, and
 * what the protocol queues is handed to a callback at the flush. It is linked instead of
 * net/conn.c, so net/proto.c, net/connect.c and net/client.c run unchanged. One thread. */

/* Receives every byte the broker sends to 'c' (flush order), and learns when 'c' is freed. */
typedef struct fake_conn_cb {
    void *arg;
    void (*on_output)(void *arg, mq_conn_t *c, const uint8_t *p, size_t len);
    void (*on_freed)(void *arg, mq_conn_t *c);
    /* After each receive segment went up: on_bytes returned 'r' (enum mq_conn_result). */
    void (*on_delivered)(void *arg, mq_conn_t *c, int r);
} fake_conn_cb_t;

/* A loop with handler 'h' (the protocol's) and connections of 'conn_size' bytes. */
void fake_loop_init(mq_conn_loop_t *l, const mq_conn_handler_t *h, size_t conn_size,
                    const fake_conn_cb_t *cb);

/* Frees every connection of the loop, calling 'release' first (as mq_conn_loop_fini). */
void fake_loop_fini(mq_conn_loop_t *l, void (*release)(void *arg, mq_conn_t *c), void *arg);

/* A new connection on 'l' (as the acceptor's mail would make): zeroed, linked, armed. */
mq_conn_t *fake_conn_new(mq_conn_loop_t *l);

/* The client side: 'len' (> 0) bytes written as one receive segment (false, nothing
 * written, when FAKE_CONN_MAX_SEGS wait already or the peer closed); the peer closing. */
#define FAKE_CONN_MAX_SEGS 64
bool fake_conn_write(mq_conn_t *c, const uint8_t *p, size_t len);
void fake_conn_peer_close(mq_conn_t *c);

/* One turn of the loop's connections: receive segments go up to armed connections (each
 * segment one on_bytes call, as one receive completion), then every dirty connection is
 * flushed in the order they became dirty (its output to on_output; on_writable when something went
 * out), and closing ones are released (on_release, unlinked, on_freed, freed). Returns true when
 * anything happened. */
bool fake_loop_turn(mq_conn_loop_t *l);

/* Whether 'c' has receive segments not yet delivered. */
bool fake_conn_has_input(const mq_conn_t *c);

#endif
