/* SPDX-License-Identifier: MIT */
/* broker/config.h - mosquitto.conf syntax: options, defaults, parsing with file:line errors. */
#ifndef MQ_BROKER_CONFIG_H
#define MQ_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/opts.h"

#define MQ_CONFIG_MAX_LISTENERS 16

/* Defaults live in one place, the option table in broker/config.c; the comments below give
 * units and meanings only. */

typedef struct mq_listener_conf {
    uint16_t port;
    char *bind_address;       /* owned; NULL = all addresses (mosquitto's default) */
    char *bind_interface;     /* owned; NULL = none (net/opts.h says what it binds) */
    bool loopback;            /* mosquitto 2's local-only mode: 127.0.0.1 and ::1 */
    char *mount_point;        /* owned; NULL = none (net/opts.h) */
    uint8_t socket_domain;    /* enum mq_server_domain (net/opts.h) */
    uint32_t max_connections; /* per listener; 0 = unlimited (mosquitto's -1) */
    uint16_t max_topic_alias; /* MQTT 5 Topic Alias Maximum announced; default 10 */
    /* WebSockets (net/ws.h) */
    uint8_t protocol;                 /* enum mq_server_protocol (net/opts.h) */
    char *http_dir;                   /* owned; NULL = no files served */
    uint32_t websockets_headers_size; /* bytes of an HTTP request head */
    bool status_page;                 /* serve the bundled status page at "/" (Starling's) */
    char *websockets_trusted_proxy;   /* owned; IP address whose X-Forwarded-For names the
                                         client in the logs (Starling's); NULL = none */
    /* TLS (net/opts.h mq_server_tls_t says what each means); strings owned, NULL = unset;
     * certfile and keyfile make the listener TLS */
    char *cafile, *capath, *certfile, *keyfile, *crlfile;
    char *ciphers, *ciphers_tls13;
    uint8_t tls_version; /* enum mq_tls_version */
    bool require_certificate;
    bool use_identity_as_username;
    bool use_subject_as_username;
    bool use_username_as_clientid; /* the user name (or the certificate's) is the client id */
    char *psk_hint;                /* owned; NULL = no TLS-PSK */
    char *psk_file;                /* owned: SECURITY scope (per_listener_settings) */
    /* security options as given after this 'listener' line (before any: the default
     * listener's); in force with per_listener_settings true, else the broker's fields are */
    bool allow_anonymous;     /* once finished: as the broker's default unless given */
    bool allow_anonymous_set; /* given for this listener */
    bool allow_zero_length_clientid;
    char *auto_id_prefix; /* owned */
    char *password_file;  /* owned; NULL = none */
    char *acl_file;       /* owned; NULL = none */
} mq_listener_conf_t;

/* The broker's configuration; immutable once the broker starts (STYLE.md §6). Strings are
 * owned by the struct and released by mq_config_fini(). */
typedef struct mq_config {
    mq_listener_conf_t listeners[MQ_CONFIG_MAX_LISTENERS];
    unsigned n_listeners;
    bool has_explicit_listener;          /* a 'listener', 'port' or 'bind_address' line was seen */
    mq_listener_conf_t default_listener; /* from 'port' / 'bind_address' (mosquitto 1.x style),
                                          * and the options of any scope 'listener' given before
                                          * the first 'listener' line */
    bool has_default_listener;

    bool allow_anonymous;                  /* once finished: true with no listener configured, else
                                            * false, unless the option was given */
    bool allow_anonymous_set;              /* the option was given */
    bool allow_zero_length_clientid;       /* accept an empty client id (and assign one) */
    char *auto_id_prefix;                  /* prefix of the ids assigned to empty client ids */
    char *password_file;                   /* mosquitto's format (core/passwd.h); NULL = none */
    char *psk_file;                        /* TLS-PSK keys (net/tls.c); NULL = none */
    char *acl_file;                        /* mosquitto's format (core/acl.h); NULL = none */
    bool per_listener_settings;            /* the five security options above apply per listener */
    uint8_t session_owner_check;           /* Starling's: 0 off, 1 on, 2 (default) on when some
                                            * password_file is configured */
    uint16_t max_inflight_messages;        /* per session; 0 = unlimited (mosquitto) */
    uint32_t max_queued_messages;          /* per session; 0 = unlimited */
    uint64_t max_queued_bytes;             /* per session, payload bytes; 0 = unlimited */
    uint64_t max_inflight_bytes;           /* per session, payload bytes; 0 = unlimited */
    uint32_t message_size_limit;           /* payload bytes; 0 = the protocol maximum (268435455) */
    uint32_t max_packet_size;              /* bytes; 0 = the protocol maximum */
    uint16_t max_keepalive;                /* seconds; clients asking for more are refused */
    uint32_t persistent_client_expiration; /* seconds; 0 = never (mosquitto's default) */
    uint8_t max_qos;                       /* 0..2 */
    bool retain_available;
    bool check_retain_source;
    bool upgrade_outgoing_qos;
    bool set_tcp_nodelay;        /* Starling's default differs from mosquitto's (false) */
    uint32_t max_connections;    /* whole broker, from a line before any 'listener' (and the
                                  * default listener's); 0 = unlimited */
    char *pid_file;              /* NULL = none */
    char *user;                  /* only used when started as root */
    unsigned workers;            /* Starling's own; 0 = online CPUs */
    uint32_t sys_interval;       /* seconds; 0 = no $SYS */
    bool connection_messages;    /* log connects and disconnects */
    uint16_t metrics_port;       /* metrics_listener PORT [ADDRESS]; 0 = off (Starling's) */
    char *metrics_address;       /* NULL = all addresses */
    char *clientid_prefixes;     /* only client ids that start so may connect; NULL = any */
    char *response_information;  /* MQTT 5 Response Information prefix (Starling's); NULL = off */
    uint32_t connect_timeout_s;  /* seconds a connection has to send CONNECT; no option
                                  * sets it (mosquitto has none): a Starling constant */
    size_t out_high_water;       /* output bytes waiting for a socket above which messages
                                  * are queued instead; a Starling constant, no option */
    uint64_t memory_limit;       /* heap bytes above which publishes are refused; 0 = none */
    uint32_t queue_full_timeout; /* seconds a client's queue may stay full before the client is
                                  * disconnected; 0 = never (Starling's, issue 12) */

    /* persistence (broker/persist.h) */
    bool persistence;           /* keep retained messages across restarts */
    char *persistence_file;     /* file name, "mosquitto.db" */
    char *persistence_location; /* directory; NULL = the working directory */
    uint32_t autosave_interval; /* seconds between snapshots (changes with
                                 * autosave_on_changes); 0 = only at exit and on SIGUSR1 */
    bool autosave_on_changes;
    bool queue_qos0_messages;           /* QoS 0 is queued for offline persistent sessions too */
    uint8_t persistence_fsync;          /* enum mq_fsync_mode (net/jwriter.h); default always */
    uint64_t persistence_journal_limit; /* journal bytes that make a snapshot due at once */

    /* logging (broker/logging.h); each repeatable option's first line replaces the default */
    unsigned log_dest;          /* enum mq_log_dest bits */
    bool log_dest_set;          /* a log_dest line was seen */
    char *log_file;             /* log_dest file PATH */
    unsigned log_types;         /* enum mq_log_type bits */
    bool log_type_set;          /* a log_type line was seen */
    bool retry_interval_set;    /* mosquitto 1.x's retry_interval was given: a warning, as 2.0 */
    bool log_timestamp;         /* prefix log lines with the time */
    char *log_timestamp_format; /* strftime(3) format; NULL = seconds since the epoch */
    int log_facility;           /* syslog facility: LOG_LOCAL0..7 or LOG_DAEMON */
} mq_config_t;

/* Sets every option to its default (from the option table). Aborts when out of memory
 * (core/mem.h). */
void mq_config_init(mq_config_t *cfg);

/* Releases the strings owned by 'cfg'. */
void mq_config_fini(mq_config_t *cfg);

/* Parses 'path' (mosquitto.conf syntax: '#' comments, blank lines, "option value" lines,
 * include_dir) into 'cfg', on top of what 'cfg' already holds. Returns 0, or -1 with a
 * one-line message "FILE:LINE: what is wrong" in err[0..errlen) (for an unreadable file:
 * "FILE: strerror"). Unknown options, bad values and mosquitto options that Starling does not
 * implement are errors; the message names the option. */
int mq_config_parse_file(mq_config_t *cfg, const char *path, char *err, size_t errlen);

/* As mq_config_parse_file(), from a string; 'name' stands for the file in messages. */
int mq_config_parse_string(mq_config_t *cfg, const char *name, const char *text, char *err,
                           size_t errlen);

/* Completes the configuration after parsing and the command line: adds the default listener
 * (port 1883, or 'port_override' when non-zero, on 127.0.0.1 when no listener was configured,
 * as mosquitto 2 does), applies the allow_anonymous default, checks each listener's TLS
 * options (certfile with keyfile; require_certificate with a CA). Returns 0 or -1 with err
 * set. */
int mq_config_finish(mq_config_t *cfg, uint16_t port_override, char *err, size_t errlen);

/* The security domains of a finished 'cfg': one per listener with per_listener_settings,
 * else one. mq_config_server_opts() gives listener i domain (per listener ? i : 0). */
unsigned mq_config_security_domains(const mq_config_t *cfg);

/* The password_file and acl_file (NULL = none) of security domain 'd'. */
void mq_config_security_files(const mq_config_t *cfg, unsigned d, const char **password_file,
                              const char **acl_file);

/* Fills *opts, the engine's options, from a finished 'cfg'; the only place where the
 * configuration maps onto mq_server_opts_t. Every field is set (nothing is left for
 * net/server.c to default). The strings in *opts are borrowed from 'cfg': keep 'cfg' while
 * *opts is in use (the broker keeps it until mq_server_stop()). Main thread. */
void mq_config_server_opts(const mq_config_t *cfg, mq_server_opts_t *opts);

#endif
