/* SPDX-License-Identifier: MIT */
/* net/opts.h - what the engine takes from the configuration (broker/ fills it, net/ reads it). */
#ifndef MQ_NET_OPTS_H
#define MQ_NET_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/sess.h"

#define MQ_SERVER_MAX_LISTENERS 16

/* socket_domain: the address families a listener opens (mosquitto's option) */
enum mq_server_domain {
    MQ_SERVER_ANY_DOMAIN = 0, /* IPv6 taking IPv4 too where the host has IPv6, else IPv4 */
    MQ_SERVER_IPV4 = 1,
    MQ_SERVER_IPV6 = 2, /* IPv6 only */
};

enum mq_server_protocol {
    MQ_SERVER_MQTT = 0,       /* MQTT on TCP */
    MQ_SERVER_WEBSOCKETS = 1, /* MQTT on WebSockets (net/ws.h), plain HTTP GETs served */
};

/* The minimum TLS version a listener accepts (mosquitto's tls_version). */
enum mq_tls_version {
    MQ_TLS_VERSION_DEFAULT = 0, /* unset: TLS 1.2 and 1.3, as mosquitto 2 */
    MQ_TLS_VERSION_1_1 = 1,
    MQ_TLS_VERSION_1_2 = 2,
    MQ_TLS_VERSION_1_3 = 3,
};

/* A listener's TLS settings, mosquitto's listener options of the same names. 'certfile' NULL:
 * the listener is plain TCP and the rest is unused. Paths are re-read on reload (SIGHUP). */
typedef struct mq_server_tls {
    const char *cafile;            /* trusted CAs for client certificates; NULL = none */
    const char *capath;            /* directory of hashed CA certificates; NULL = none */
    const char *certfile;          /* PEM server certificate (chain); NULL = no TLS */
    const char *keyfile;           /* PEM private key of certfile */
    const char *crlfile;           /* PEM revocation list checked against client certificates */
    const char *ciphers;           /* TLS 1.2 and below, OpenSSL cipher list; NULL = default */
    const char *ciphers_tls13;     /* TLS 1.3 ciphersuites ("ciphers_tls1.3"); NULL = default */
    uint8_t tls_version;           /* enum mq_tls_version: the minimum */
    bool require_certificate;      /* a client must present a certificate from cafile/capath */
    bool use_identity_as_username; /* the certificate's CN is the client's username */
    bool use_subject_as_username;  /* its whole subject (RFC 2253) is (identity wins) */
    const char *psk_hint;          /* TLS-PSK on this listener (with or without a certificate):
                                      the hint sent to clients; NULL = no PSK */
    const char *psk_file;          /* "identity:hexkey" lines, read with the context */
} mq_server_tls_t;
struct mq_auth; /* net/auth.h */

/* The longest auto_id_prefix: an assigned client id, the prefix and 16 hex digits, is an MQTT
 * string. */
#define MQ_AUTO_ID_PREFIX_MAX (65535u - 16u)

typedef struct mq_server_listener {
    const char *bind_address;   /* NULL: all addresses; a name: every address it resolves to */
    const char *bind_interface; /* NULL, or the network interface whose addresses are bound
                                   (mosquitto's bind_interface: the first of each family, or
                                   bind_address if the interface has it) */
    bool loopback;              /* 127.0.0.1 and ::1 (mosquitto 2's local-only mode) */
    const char *mount_point;    /* NULL, or what its clients' topics and filters are behind
                                   (mosquitto's mount_point: "site1/" makes a PUBLISH to "t"
                                   one to "site1/t", sent back to them as "t") */
    uint8_t domain;             /* enum mq_server_domain */
    uint16_t port;
    uint32_t max_connections; /* 0 = unlimited */
    uint16_t max_topic_alias; /* MQTT 5 inbound Topic Alias Maximum */
    /* WebSockets (protocol websockets only) */
    uint8_t protocol;             /* enum mq_server_protocol */
    const char *http_dir;         /* files served to plain GETs; NULL = none */
    uint32_t ws_headers_size;     /* bytes of an HTTP request head; 0 = the default (1024) */
    uint32_t ws_max_frame;        /* payload bytes of one received frame, else closed with
                                     1009; 0 = the largest MQTT packet */
    const uint8_t *status_page;   /* the page served at "/" (static storage); NULL = off */
    size_t status_page_len;       /* bytes */
    const char *ws_trusted_proxy; /* IP address whose X-Forwarded-For is believed; NULL =
                                     nobody's */
    mq_server_tls_t tls;
    /* security: the listener's own with per_listener_settings, else the broker's values */
    bool allow_anonymous;
    bool allow_zero_length_clientid;
    const char *auto_id_prefix;    /* at most MQ_AUTO_ID_PREFIX_MAX bytes */
    bool use_username_as_clientid; /* a CONNECT's user name replaces its client id; one
                                      without a user name is refused (mosquitto's option) */
    uint8_t auth_domain; /* the domain of the security state (net/auth.h) it checks against */
} mq_server_listener_t;

/* Everything the engine needs from the configuration, complete (broker/ applies every
 * default): copied by mq_server_start(), immutable after, read by every thread. */
typedef struct mq_server_opts {
    mq_server_listener_t listeners[MQ_SERVER_MAX_LISTENERS];
    unsigned n_listeners;
    unsigned workers;         /* 0 = online CPUs */
    uint32_t max_connections; /* whole broker; 0 = unlimited */
    bool session_owner_check; /* a session is taken only by its own user name (net/auth.h) */
    struct mq_auth *auth;     /* the initial security state: mq_server_start() takes it
                               * (NULL = no password file, no ACL, one domain) */
    int reload_signal;        /* the signal that has it read again (SIGHUP): a CONNECT
                               * received once it is sent waits for the reload (net/auth.h);
                               * 0: none */
    uint16_t max_keepalive;   /* 0 = no limit */
    uint32_t persistent_client_expiration; /* seconds a detached persistent session lives
                                              without a v5 Session Expiry; 0 = forever */
    uint8_t max_qos;
    bool retain_available;
    bool check_retain_source; /* a retained message is checked against its publisher's ACL
                                 rules again before it goes to a new subscriber */
    bool upgrade_outgoing_qos;
    bool set_tcp_nodelay;
    uint32_t message_size_limit; /* payload bytes; 0 = unlimited */
    uint32_t max_packet_size;    /* 0 = protocol maximum */
    uint32_t connect_timeout_s;  /* a connection must send CONNECT within this */
    mq_sess_limits_t limits;
    bool connection_messages;         /* log connects and disconnects */
    const char *response_information; /* MQTT 5 Response Information prefix, or NULL */
    const char *clientid_prefixes;    /* a client id must start with it (after one is
                                         assigned to an empty one), else the CONNECT is
                                         refused as not authorised; NULL = any */
    uint64_t memory_limit;            /* heap bytes (mq_mem_in_use) above which received
                                       * publishes are refused (net/publish.c); 0 = none */
    uint32_t queue_full_timeout_s;    /* a client whose queue stays full this long is
                                       * disconnected (net/overload.h); 0 = never */
    struct mq_msg **retained;         /* retained messages to store before the first client
                                       * (what persistence kept), n_retained of them:
                                       * mq_server_start() takes their references */
    size_t n_retained;
    const struct mq_replay *kept; /* persistent sessions to restore (core/replay.h), or NULL:
                                   * each worker creates those it owns before the first
                                   * client; the caller frees it after mq_server_start() */
    int64_t kept_wall;            /* when it was read, seconds since the epoch */
    const char *journal_base;     /* persistence on: worker I journals to
                                   * "journal_base.journal_gen.wI" (net/jwriter.h); NULL: no
                                   * journals */
    uint64_t journal_gen;
    uint8_t persistence_fsync; /* enum mq_fsync_mode */
    uint64_t retain_seq_floor; /* retained changes are numbered above it */
} mq_server_opts_t;

#endif
