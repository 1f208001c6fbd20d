/* SPDX-License-Identifier: MIT */
/* broker/config.h - mosquitto.conf syntax: options, defaults, parsing with file:line errors. */
#ifndef MQ_BROKER_CONFIG_H
#define MQ_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQ_CONFIG_MAX_LISTENERS 16

typedef struct mq_listener_conf {
    uint16_t port;
    char *bind_address;       /* owned; NULL = all addresses (mosquitto's default) */
    uint32_t max_connections; /* per listener; 0 = unlimited (mosquitto's -1) */
} mq_listener_conf_t;

/* The broker's configuration; immutable once the broker starts (STYLE.md §6). Strings are
 * owned by the struct and released by mq_config_fini(). */
typedef struct mq_config {
    mq_listener_conf_t listeners[MQ_CONFIG_MAX_LISTENERS];
    unsigned n_listeners;
    bool has_explicit_listener;          /* a 'listener', 'port' or 'bind_address' line was seen */
    mq_listener_conf_t default_listener; /* from 'port' / 'bind_address' (mosquitto 1.x style) */
    bool has_default_listener;

    bool allow_anonymous;            /* default: true with no listener configured, else false */
    bool allow_anonymous_set;        /* the option was given */
    bool allow_zero_length_clientid; /* default true */
    char *auto_id_prefix;            /* default "auto-" */
    uint16_t max_inflight_messages;  /* default 20; 0 = unlimited (mosquitto), stored as 65535 */
    uint32_t max_queued_messages;    /* default 1000; 0 = unlimited */
    uint64_t max_queued_bytes;       /* default 0 = unlimited */
    uint32_t message_size_limit;     /* default 0 = the protocol maximum (268435455) */
    uint32_t max_packet_size;        /* default 0 = the protocol maximum */
    uint16_t max_keepalive;          /* default 65535 */
    uint8_t max_qos;                 /* default 2 */
    bool retain_available;           /* default true */
    bool upgrade_outgoing_qos;       /* default false */
    bool set_tcp_nodelay;            /* default true (Starling; mosquitto's default is false) */
    uint32_t max_connections;        /* whole broker, from a line before any 'listener' (and the
                                      * default listener's); 0 = unlimited */
    char *pid_file;                  /* NULL = none */
    char *user;                      /* default "mosquitto" (only used when started as root) */
    unsigned workers;                /* Starling's own; 0 = online CPUs */
    uint32_t sys_interval;           /* default 10 seconds; 0 = no $SYS */
    bool connection_messages;        /* default true */
    uint16_t metrics_port;           /* metrics_listener PORT [ADDRESS]; 0 = off (Starling's) */
    char *metrics_address;           /* NULL = all addresses */

    /* logging (broker/logging.h); each repeatable option's first line replaces the default */
    unsigned log_dest;          /* enum mq_log_dest bits; default stderr */
    bool log_dest_set;          /* a log_dest line was seen */
    char *log_file;             /* log_dest file PATH */
    unsigned log_types;         /* enum mq_log_type bits; default error|warning|notice|info */
    bool log_type_set;          /* a log_type line was seen */
    bool log_timestamp;         /* default true */
    char *log_timestamp_format; /* strftime(3) format; NULL = seconds since the epoch */
    int log_facility;           /* syslog facility LOG_LOCAL0..7; default LOG_DAEMON */
} mq_config_t;

/* Sets every option to its default. */
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
 * as mosquitto 2 does), applies the allow_anonymous default. Returns 0 or -1 with err set. */
int mq_config_finish(mq_config_t *cfg, uint16_t port_override, char *err, size_t errlen);

#endif
