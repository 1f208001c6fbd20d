/* SPDX-License-Identifier: MIT */
/* net/conn.h - a connection as a byte stream: receive path, output, flush, close, transports. */
#ifndef MQ_NET_CONN_H
#define MQ_NET_CONN_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/buf.h"

/* The transport seam (DESIGN.md rule 11). The protocol layer sees a connection as bytes in
 * (its handler's on_bytes) and bytes out (mq_conn_out(), then mq_conn_mark_dirty()); it never
 * touches the socket, the ring or the worker. A transport (TLS, WebSocket framing) sits
 * between the socket and the protocol: received bytes go up through its 'recv', which passes
 * what it decodes on with mq_conn_up(); queued protocol bytes go down through its 'send',
 * which turns them into wire bytes. A transport may hold bytes back (a handshake, a partial
 * frame) and keeps wire bytes of its own (a handshake reply, a pong) in its state, emitted
 * from its 'send' at the next flush (it calls mq_conn_mark_dirty() to get one). A plain TCP
 * connection has no transport, and bytes pass straight through.
 *
 * Everything here runs on the thread that owns the connection's loop; a connection moves to
 * another worker only as a whole (mq_conn_unlink(), a mailbox hand-off, mq_conn_link()), while
 * no operation of it is in flight. So before admission (MQ_CONN_PRE, when the protocol may move
 * it) received bytes go up only while no send is in flight: a transport that answers before
 * admission (a TLS handshake) has its reply's send complete first, the received buffer waiting
 * meanwhile with no receive armed. */

typedef struct mq_conn mq_conn_t;
typedef struct mq_conn_loop mq_conn_loop_t;

enum mq_conn_state {
    MQ_CONN_PRE = 0,     /* accepted, not yet admitted by the protocol: single-shot receives,
                            so that nothing stays armed if the connection moves */
    MQ_CONN_ACTIVE = 1,  /* admitted: multishot receive */
    MQ_CONN_CLOSING = 2, /* flushing what is left, then shut down and released */
};

/* What a handler's on_bytes returns. */
enum mq_conn_result {
    MQ_CONN_OK = 0,     /* keep receiving */
    MQ_CONN_CLOSED = 1, /* the connection is closing */
    MQ_CONN_GONE = 2,   /* handed to another worker: the caller must not touch it again */
};

#define MQ_CONN_MAX_HEAD 14 /* bytes of a head: the largest WebSocket frame header */

/* The client's address as accepted, or as a trusted proxy reported it (port 0): kept in its
 * binary form (a connection's log lines format it, mq_conn_peer()). */
typedef struct mq_conn_addr {
    uint8_t family; /* AF_INET, AF_INET6, or 0 when unknown */
    uint16_t port;  /* 0: not known */
    uint8_t ip[16]; /* 4 bytes for AF_INET */
} mq_conn_addr_t;

#define MQ_CONN_PEER_LEN 56 /* "[address]:port" as text, NUL included */

/* A transport's frame header, sent in front of the protocol bytes in the same send so that
 * those go without a copy (plain WebSockets). Part of the transport's state, lent to the
 * connection through its transport's head(): connections without one (most) carry neither
 * its bytes nor a pointer to it. */
typedef struct mq_conn_head {
    uint8_t len; /* bytes in 'bytes', sent before wbuf */
    uint8_t bytes[MQ_CONN_MAX_HEAD];
    struct iovec iov[2]; /* bytes + wbuf for sendmsg: kept until the send completes */
    struct msghdr msg;
} mq_conn_head_t;

typedef struct mq_transport {
    const char *name;
    /* Wire bytes received; passes decoded bytes up with mq_conn_up(). Returns an enum
     * mq_conn_result (the first non-OK result of mq_conn_up, or CLOSED on its own error).
     * 'p' is the loop's receive buffer, lent until recv returns: a transport may rewrite it
     * in place (WebSocket unmasking) but keeps nothing pointing into it. */
    int (*recv)(mq_conn_t *c, const uint8_t *p, size_t len);
    /* At a flush with no send in flight: moves the protocol bytes of 'plain' (emptied), and
     * any wire bytes of its own, into 'wire' (empty on entry). A transport that lent the
     * connection a head (its head()) may also put up to MQ_CONN_MAX_HEAD bytes in it, which go
     * out in front of 'wire' in the same send: a frame header before protocol bytes swapped
     * in without a copy. */
    void (*send)(mq_conn_t *c, mq_buf_t *plain, mq_buf_t *wire);
    /* Frees the transport's state (c->xport_state). */
    void (*free)(mq_conn_t *c);
    /* Optional (NULL: no TLS under this transport): the connection's TLS state, for what the
     * protocol asks of it (net/tls.h: mq_tls_username()). MQTT over TLS and wss:// set it. */
    struct mq_tls *(*tls)(const mq_conn_t *c);
    /* Optional (NULL: none): the frame header this transport lends the connection, in its own
     * state, or NULL. Plain WebSockets sets it; connections without one (most) do not carry
     * its bytes, nor a pointer to it. */
    mq_conn_head_t *(*head)(const mq_conn_t *c);
} mq_transport_t;

/* The layer above (the protocol), called by the loop; 'arg' is the handler's context. */
typedef struct mq_conn_handler {
    void *arg;
    /* Bytes from the client, in order. Returns an enum mq_conn_result. */
    int (*on_bytes)(void *arg, mq_conn_t *c, const uint8_t *p, size_t len);
    /* The connection starts closing ('why' may be NULL): from mq_conn_close(), whoever
     * called it. Called once per connection. */
    void (*on_closing)(void *arg, mq_conn_t *c, const char *why);
    /* A send completed and the output is empty: what waited for the socket may go now. */
    void (*on_writable)(void *arg, mq_conn_t *c);
    /* The connection is done for the protocol: called once, when its socket is closed (every
     * operation completed, just before its memory is freed) or, for a lingering close, when
     * the lingering starts (mq_conn_close: the socket then only drains). */
    void (*on_release)(void *arg, mq_conn_t *c);
} mq_conn_handler_t;

/* Owned by its loop's thread (no field is shared), so the flags can be bits. Ordered so that
 * no padding is left: 152 bytes, the protocol's client adding 104 to fill jemalloc's 256-byte
 * class (issue 13). */
struct mq_conn {
    mq_conn_loop_t *loop;
    int fd;
    uint32_t held_len; /* the held buffer's length (has_held) */
    size_t wsent;      /* bytes of the head + wbuf already sent */
    uint64_t since_ms; /* the loop clock when it was accepted (state PRE: the connect timeout),
                        * when its last bytes arrived (ACTIVE: keep-alive), when its writing
                        * was shut (lingering: mq_conn_linger_check) */
    mq_buf_t out;      /* protocol bytes waiting to be sent */
    mq_buf_t wbuf;     /* wire bytes of the send in flight */
    const mq_transport_t *xport; /* NULL: plain TCP */
    void *xport_state;
    mq_conn_t *next_dirty;
    mq_conn_t *prev, *next; /* the loop's connection list */
    mq_conn_addr_t peer;    /* for the log: mq_conn_peer() */
    uint16_t held_bid;      /* the held buffer's id (has_held) */
    uint8_t state;          /* enum mq_conn_state */
    uint8_t listener;       /* index, for the per-listener connection count */
    bool recv_armed : 1;    /* a receive is submitted */
    bool send_busy : 1;     /* a send is submitted */
    bool need_rearm : 1;    /* the multishot receive ended for lack of buffers */
    bool in_dirty : 1;      /* queued on the loop's dirty list */
    bool is_counted : 1;    /* counted in the server's connection totals */
    bool has_held : 1;      /* a received buffer waits for the send in flight (state PRE only) */
    bool read_done : 1;     /* the client's input has ended (end of stream or an error) */
    bool lingering : 1;     /* closing: writing is shut, what the client still sends is dropped;
                             * the handler's on_release has run */
    bool gated : 1;         /* output held until the journal records it answers are durable
                             * (mq_conn_gate) */
    bool gate_open : 1;     /* on the loop's open gate list (it may be on the sealed one too:
                             * gated again while an earlier write was in flight) */
    bool gate_remote : 1;   /* output held for other workers' journals too (net/marks.h) */
    bool mark_open : 1;     /* in the batch of marks of this turn (net/marks.h) */
    uint16_t n_marks;       /* batches of marks it waits in (gate_remote while > 0) */
    unsigned n_ops;         /* submitted operations (and held buffers) not yet completed */
};
/* one per connection, inside the protocol's client (issue 13): see net/client.h */
_Static_assert(sizeof(struct mq_conn) <= 152, "a connection outgrew its share of the client");

/* The per-worker state the connections share: the worker's ring, its provided receive
 * buffers, the list of connections to flush at the end of the turn, held buffers while the
 * worker is congested. Embedded in the worker; owned by the worker thread. */
typedef struct mq_conn_deferred mq_conn_deferred_t;
struct mq_conn_loop {
    struct io_uring *ring;
    const mq_conn_handler_t *h;
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    unsigned n_bufs, buf_size;
    uint64_t now_ms;  /* the loop's clock, read once per turn */
    bool congested;   /* the worker's outbox is congested: hold received buffers */
    size_t conn_size; /* bytes to allocate per connection (the protocol embeds mq_conn_t) */
    mq_conn_t *conns; /* every connection of this loop */
    mq_conn_t *dirty; /* connections with output to flush this turn */
    mq_conn_deferred_t *deferred; /* buffers held while congested, in arrival order */
    uint32_t n_deferred, cap_deferred;
    mq_conn_t **rearm; /* connections whose receive waits for free buffers */
    uint32_t n_rearm, cap_rearm;
    /* gated connections (mq_conn_gate): those of the records still buffered, then those of
     * the write in flight */
    mq_conn_t **gate_open, **gate_sealed;
    uint32_t n_gate_open, cap_gate_open, n_gate_sealed, cap_gate_sealed;
    uint64_t bytes_received, bytes_sent; /* counters, this loop's alone */
    mq_buf_t scratch; /* for transports: the plain bytes decoded from one receive, passed up
                       * with mq_conn_up() before the next (emptied by its user) */
    /* After close(fd) of a connection with is_counted set: the owner of the connection
     * totals (net/server.c, through the worker) lowers them. */
    void (*on_uncount)(void *arg, mq_conn_t *c);
    void *uncount_arg;
    /* Optional: called at a flush with the protocol bytes about to go (whole packets), only
     * while debug logging is on (net/trace.h logs one line per packet). */
    void (*trace_out)(mq_conn_t *c, const uint8_t *p, size_t len);
};

/* Sets up the provided-buffer ring on 'ring' (owned by the calling thread). 0 or -errno,
 * with what failed in err. 'conn_size' >= sizeof(mq_conn_t). */
int mq_conn_loop_init(mq_conn_loop_t *l, struct io_uring *ring, const mq_conn_handler_t *h,
                      size_t conn_size, char *err, size_t errlen);

/* Closes and frees every connection without calling the handler (shutdown), then the
 * buffers. 'release' is called for each connection first so the layer above can let go. */
void mq_conn_loop_fini(mq_conn_loop_t *l, void (*release)(void *arg, mq_conn_t *c), void *arg);

/* A new connection on 'fd' (accepted on listener 'listener'), zeroed to conn_size bytes,
 * linked to the loop, first receive armed. */
mq_conn_t *mq_conn_new(mq_conn_loop_t *l, int fd, unsigned listener);

/* Frees a connection that is on no loop (shutdown of a hand-off in flight). */
void mq_conn_free(mq_conn_t *c);

/* Moves a connection between loops (a hand-off): unlink on the old worker, link on the new. */
void mq_conn_unlink(mq_conn_t *c);
void mq_conn_link(mq_conn_loop_t *l, mq_conn_t *c);

/* Admits 'c' (multishot receives from now on). */
void mq_conn_activate(mq_conn_t *c);

/* Arms a receive if none is (after a hand-off was processed). */
void mq_conn_arm(mq_conn_t *c);

/* The protocol's output buffer: append, then mq_conn_mark_dirty(). */
/* The connection whose output 'out' is (mq_conn_out() the other way), or NULL for NULL: an
 * attached session knows its connection this way (core/sess.h). */
static inline mq_conn_t *mq_conn_of_out(mq_buf_t *out)
{
    return out ? (mq_conn_t *)(void *)((char *)out - offsetof(mq_conn_t, out)) : NULL;
}

static inline mq_buf_t *mq_conn_out(mq_conn_t *c)
{
    return &c->out;
}

/* Queues 'c' for the flush at the end of this loop turn. */
void mq_conn_mark_dirty(mq_conn_t *c);

/* Durability gates (net/jwriter.h): 'c' sends nothing more until the records the journal holds
 * now are durable; it stays alive meanwhile. Called after an acknowledgement that depends on
 * them has been queued: everything queued after it waits too, so the order of the output
 * never changes. */
void mq_conn_gate(mq_conn_t *c);

/* The journal has submitted what it held: the gates so far wait for that write. */
void mq_conn_gates_seal(mq_conn_loop_t *l);

/* Closes 'c' at once, dropping the output it has not sent: what it held acknowledged what a
 * crash would lose. */
void mq_conn_abort_unsent(mq_conn_t *c, const char *why);

/* The write the sealed gates wait for is durable ('ok': their output goes at the end of this
 * turn) or has failed (their output is dropped and they are closed: what they acknowledged is
 * not durable, so the client must send it again). With 'ok' false the gates not yet sealed
 * fail too. */
void mq_conn_gates_release(mq_conn_loop_t *l, bool ok);

/* Starts closing 'c': the handler's on_closing runs (it logs 'why'), what is queued still
 * goes out, then the socket is shut and, once its operations have completed, the handler's
 * on_release runs and 'c' is freed. Never frees on the caller's stack.
 * A close the server decides lingers: once the output is sent only writing is shut, and what
 * the client still sends is read and dropped until it closes its side or MQ_CONN_LINGER_MS
 * pass (mq_conn_linger_check); the handler's on_release runs when the lingering starts.
 * Closing a socket with unread input sends a reset, which can reach the client before it has
 * read the last packets (a DISCONNECT with its reason). */
void mq_conn_close(mq_conn_t *c, const char *why);

#define MQ_CONN_LINGER_MS 2000

/* Frees the output buffers of 'c' if nothing waits in them and no send is in flight: an idle
 * connection holds none (the next packet allocates again). Called once a second. */
void mq_conn_trim(mq_conn_t *c);

/* Ends the lingering of a closing 'c' whose time is up at 'now_ms' (called once a second). */
void mq_conn_linger_check(mq_conn_t *c, uint64_t now_ms);

/* The peer of 'c' as text ("address:port", "address" when the port is not known, "?" when
 * nothing is) in 'buf' of MQ_CONN_PEER_LEN bytes; returns buf. */
const char *mq_conn_peer(const mq_conn_t *c, char *buf);

/* Sets the peer of 'c' from the text of an IPv4 or IPv6 address (port unknown): false, and
 * nothing changed, when 'text' is not one. */
bool mq_conn_set_peer(mq_conn_t *c, const char *text);

/* For a transport: passes decoded bytes up to the protocol. */
int mq_conn_up(mq_conn_t *c, const uint8_t *p, size_t len);

/* Completions, from the worker's loop. */
void mq_conn_on_recv(mq_conn_loop_t *l, mq_conn_t *c, const struct io_uring_cqe *cqe);
void mq_conn_on_send(mq_conn_loop_t *l, mq_conn_t *c, const struct io_uring_cqe *cqe);

/* True when no connection of 'l' has output waiting or a send in flight (a graceful stop
 * waits for this). Owning thread. */
bool mq_conn_loop_idle(const mq_conn_loop_t *l);

/* End of a turn: resumes held input when no longer congested, flushes dirty connections. */
void mq_conn_loop_turn(mq_conn_loop_t *l);

#endif
