/* SPDX-License-Identifier: MIT */
/* net/client.h - a client: a connection with the protocol state around it, and its output. */
#ifndef MQ_NET_CLIENT_H
#define MQ_NET_CLIENT_H

#include "core/codec.h"
#include "core/route.h"
#include "core/epoch.h"
#include "core/tindex.h"
#include "net/auth.h"
#include "net/conn.h"
#include "net/mailbox.h"
#include "net/opts.h"

/* The protocol layer's shared room: the client (a connection with the protocol's state around
 * it), one worker's protocol state, and what net/proto.c and net/connect.c both use to answer
 * a client. Everything here runs on the owning worker's thread (net/proto.h). */

/* A connection with the protocol's state around it (one allocation: net/conn.h allocates
 * mq_proto_conn_size() bytes and the protocol reaches its part from the mq_conn_t). */
/* One worker's protocol state (net/proto.h says what it does). */
typedef struct mq_proto_state mq_proto_t;

typedef struct mq_proto_env {
    const mq_server_opts_t *opts; /* complete and immutable (net/opts.h) */
    mq_auth_slot_t *auth;         /* the current security state (net/auth.h) */
    mq_auth_verifier_t *verifier; /* PBKDF2 runs off the loop (net/auth.h); NULL: inline */
    mq_tindex_t *ix;              /* the shared subscription index and retained store */
    mq_shared_t *shared;          /* shared subscription groups ($share/...) */
    mq_epoch_rec_t *ep;           /* this worker's epoch record */
    mq_outbox_t *outbox;          /* this worker's outgoing mail */
    mq_conn_loop_t *loop;         /* this worker's connections */
    unsigned self, n_workers;
    struct mq_jwriter *jw; /* this worker's journal (net/jwriter.h), NULL: persistence off */
} mq_proto_env_t;

typedef struct client {
    mq_conn_t conn;     /* first: a client is its connection */
    uint8_t proto;      /* protocol level once CONNECT is decoded */
    bool will_pending;  /* publish the will when the connection is released */
    bool closing_by_us; /* the protocol decided the close (and the will) itself */
    uint8_t handoff_to; /* owner worker, when the CONNECT names another worker's session */
    uint16_t keep_alive;
    bool has_will_expiry;
    bool problem_info; /* v5 Request Problem Information (default 1): reason strings */
    mq_decoder_t dec;
    mq_buf_t *pre; /* owned: bytes received before CONNECT was processed (handed off whole),
                    * or NULL; none once the client is admitted */
    mq_sess_t *sess;
    mq_msg_t *will;       /* reference, or NULL */
    uint32_t will_delay;  /* v5 Will Delay Interval, seconds */
    uint32_t will_expiry; /* v5 Message Expiry Interval of the will, seconds */
    uint16_t alias_max;   /* v5 inbound Topic Alias Maximum announced to this client */
    bool takeover_waited; /* its CONNECT waited a turn before taking over a connected session
                           * (net/connect.c: take_over_later), and does not wait again */
    /* net/overload.c: since when the session's queue has been full, the loop clock's low 32
     * bits (0: it was not at the last tick) */
    uint32_t full_since_ms;
    char **in_alias;                 /* [alias - 1]: topics the client set (owned), or NULL */
    mq_auth_pending_t *auth_pending; /* owned: a password with the verifier, or its answer */
} client_t;
/* one per connection (issue 13): a field more may move it into the next jemalloc class */
_Static_assert(sizeof(client_t) <= 256, "a client outgrew its jemalloc size class");

/* Counters written by this worker alone with plain increments (DESIGN.md rule 8). */
typedef struct counters {
    uint64_t msgs_received, msgs_sent; /* packets; sent: outside sessions (acks, CONNACK...) */
    uint64_t pub_received, pub_bytes_received;
    uint64_t pub_dropped;      /* dropped on receipt (message_size_limit, ACL, memory_limit) */
    uint64_t sockets;          /* connections this worker took from the acceptor */
    uint64_t connects;         /* CONNECTs accepted */
    uint64_t expired_sessions; /* sessions ended by their expiry */
} counters_t;

/* A will waiting for its Will Delay Interval (MQTT 5 §3.1.3.2.2), or for its session's end. */
typedef struct pending_will {
    uint64_t id_hash;
    char *client_id;  /* owned */
    mq_msg_t *will;   /* reference */
    uint64_t fire_at; /* loop clock, ms */
} pending_will_t;

/* Durability marks (net/marks.h): the connections gated per turn until other workers' journals
 * have what their acknowledgements promise. */
typedef struct mq_mark_batch mq_mark_batch_t;
typedef struct mq_marks {
    mq_mark_batch_t *q; /* ring of batches, oldest first */
    uint32_t head, n, cap;
    uint64_t turn;     /* this worker's current turn, as its marks number it */
    uint64_t mailed;   /* workers mailed QoS 1/2 copies this turn: a mark is due to each */
    uint64_t *durable; /* by worker: the last turn of ours it answered, + 1 (0: none) */
    bool *refused;     /* by worker: records of copies it mailed us were refused by our journal
                        * since its last mark (the answer to the next one says so) */
} mq_marks_t;

/* A CONNECT waiting a turn before its take-over or for a reload, with its client id's hash. */
typedef struct mq_waiting {
    client_t *cl;
    uint64_t h;
    bool reload; /* for a reload (net/auth.h: mq_auth_reload_due), not a take-over */
} mq_waiting_t;

struct mq_proto_state {
    mq_proto_env_t env;
    const mq_server_opts_t *o;
    mq_route_t *route;
    mq_conn_handler_t handler;
    uint64_t next_auto_id;
    uint64_t n_online; /* sessions with a connection */
    uint8_t *codes;    /* scratch: SUBACK / UNSUBACK codes */
    uint8_t *fresh;    /* scratch per SUBSCRIBE entry: 1 a new subscription, 2 a shared one */
    uint32_t cap_codes;
    mq_sess_t **ending; /* scratch: the sessions an expiry pass ends */
    uint32_t cap_ending;
    pending_will_t *wills; /* delayed wills */
    uint32_t n_wills, cap_wills;
    counters_t cnt;
    mq_sess_home_t home;        /* this worker's sessions' clock and counters */
    mq_sess_journal_t journal;  /* home.journal's callbacks (persistence on) */
    mq_marks_t marks;           /* acknowledgements waiting for other workers' journals */
    uint64_t last_routed;       /* the workers the last routed message reached, a bit each */
    uint64_t auth_gen;          /* the security state this worker's subscriptions were
                                 * classified with (net/auth.h: a reload classifies again) */
    mq_auth_cache_t auth_cache; /* credentials this worker verified lately */
    bool stopping;              /* a graceful stop began (mq_proto_goodbye) */
    uint64_t mem_checked_ms;    /* memory_limit: when the heap was last measured */
    bool mem_over;              /* ... and whether it was above the limit then */
    mq_str_t mounts[MQ_SERVER_MAX_LISTENERS]; /* by listener: its mount_point (home.mounts) */
    char *mount_buf;                          /* scratch: a topic behind its mount point */
    /* CONNECTs that take a connected session over, or that wait for a reload, out of the
     * loop until the next turn (net/connect.c: wait_turn); the first n_due were there before
     * the last wait */
    mq_waiting_t *waiting;
    uint32_t n_waiting, n_due, cap_waiting;
    uint64_t wait_hash; /* the client id hash of the CONNECT wait_turn() just parked */
    bool wait_reload;   /* ... and whether it waits for a reload */
    size_t mount_cap;
};

static inline client_t *client_of(mq_conn_t *c)
{
    return (client_t *)c;
}

/* 3.1.1 CONNACK return codes (§3.2.2.3). */
enum {
    CONNACK_ACCEPTED = 0,
    CONNACK_BAD_PROTOCOL = 1,
    CONNACK_ID_REJECTED = 2,
    CONNACK_UNAVAILABLE = 3,
    CONNACK_BAD_CREDENTIALS = 4,
    CONNACK_NOT_AUTHORIZED = 5,
};

/* ---- output, ending a connection, the session link ---------------------------------------- */

/* Append a packet for 'cl' through the codec, count it and schedule the flush. */
void mq_client_send_ack_rc(mq_proto_t *p, client_t *cl, uint8_t type, uint16_t packet_id,
                           enum mq_rc rc);
void mq_client_send_connack(mq_proto_t *p, client_t *cl, bool session_present, uint8_t rc,
                            const mq_props_t *props);

/* Ends 'cl' on the protocol's decision: its will is published when 'with_will'. */
void mq_client_end(client_t *cl, bool with_will, const char *why);

/* Ends 'cl' with reason 'rc': an MQTT 5 client that has its CONNACK gets a DISCONNECT with
 * 'rc' (and 'why' as Reason String unless it asked for none) first [MQTT-4.13]. */
void mq_client_end_rc(mq_proto_t *p, client_t *cl, enum mq_rc rc, bool with_will, const char *why);

/* CONNACK with 'code' (a 3.1.1 code, mapped to its MQTT 5 reason for v5 clients), then the
 * end of the connection (no will). */
void mq_client_refuse(mq_proto_t *p, client_t *cl, uint8_t code, const char *why);

/* Ends the link between 'cl' and its session: the one place the online count goes down (it
 * went up when the session was attached). */
void mq_client_detach(mq_proto_t *p, client_t *cl);

/* Frees the client's protocol state (decoder, pre-CONNECT bytes, will, aliases). */
void mq_client_free_state(client_t *cl);

/* Frees the bytes kept before the client was admitted (cl->pre), if any. */
void mq_client_drop_pre(client_t *cl);

/* Ends session 's': the routing tables drop it (its counters are the worker's already). */
void mq_client_destroy_sess(mq_proto_t *p, mq_sess_t *s);

/* The topic (or, with 'filter', the topic filter) 't' of client 'cl' as the broker's tree
 * names it: behind its listener's mount_point (mosquitto's option), a shared subscription's
 * filter behind its "$share/NAME/". Without a mount point 't' is left as it is; with one it
 * is made to point into a scratch buffer, valid until the next call. False when the result
 * is longer than an MQTT string. */
bool mq_client_mount(mq_proto_t *p, const client_t *cl, mq_str_t *t, bool filter);

#endif
