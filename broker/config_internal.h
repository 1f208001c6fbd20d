/* SPDX-License-Identifier: MIT */
/* broker/config_internal.h - the option table behind broker/config.c, for its unit tests.
 *
 * Every option is one row (nginx's ngx_command_t): its name, the kind of value it takes, its
 * range, its default, where it applies, whose option it is, whether Starling implements it,
 * and where the value goes (an offset into mq_config_t and/or mq_listener_conf_t, or a
 * handler for the few that do more than store a value). mq_config_init() applies the
 * defaults from the rows; the parser finds a line's option in the rows; mq_config_fini()
 * frees the string fields the rows name. Adding an option is one row, plus its effect. */
#ifndef MQ_BROKER_CONFIG_INTERNAL_H
#define MQ_BROKER_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "broker/config.h"

/* The value an option takes. Kinds that parse alike are kept apart for what they mean. */
enum mq_config_kind {
    MQ_CONFIG_BOOL,    /* true | false */
    MQ_CONFIG_UINT,    /* a decimal number in [min, max] */
    MQ_CONFIG_SIZE,    /* a number of bytes in [min, max]; parsed as MQ_CONFIG_UINT */
    MQ_CONFIG_STRING,  /* one token (or the rest of the line: MQ_CONFIG_REST_OF_LINE) */
    MQ_CONFIG_PATH,    /* a file or directory name, kept as given (as mosquitto does) */
    MQ_CONFIG_KEYWORD, /* one of 'keywords'; the field takes the keyword's value */
    MQ_CONFIG_SPECIAL, /* a value of its own shape, parsed by 'set' */
};

/* Where an option applies. */
enum mq_config_scope {
    MQ_CONFIG_GLOBAL,   /* the whole broker: field at 'off' in mq_config_t */
    MQ_CONFIG_LISTENER, /* the listener of the latest 'listener' line (before any, the default
                         * listener): field at 'loff' in mq_listener_conf_t */
    MQ_CONFIG_BOTH,     /* before any 'listener' line the whole broker's ('off'), after one
                         * that listener's ('loff') */
    MQ_CONFIG_SECURITY, /* mosquitto: global, or per listener with per_listener_settings
                         * true. A line sets the broker's field ('off') and, when the row has
                         * one ('loff'), the current listener's (the default listener's before
                         * any 'listener' line); mq_config_server_opts() picks which is used */
    MQ_CONFIG_BRIDGE,   /* the bridge of the latest 'connection' line (no bridges yet) */
};

enum mq_config_origin {
    MQ_CONFIG_MOSQUITTO, /* mosquitto 2.0 has it, with the same meaning */
    MQ_CONFIG_STARLING,  /* Starling's own */
};

enum mq_config_status {
    MQ_CONFIG_IMPLEMENTED, /* parsed and in force */
    MQ_CONFIG_REFUSED,     /* a mosquitto option Starling does not implement yet: an error
                            * naming it, so that nobody believes it is in force */
    MQ_CONFIG_FIXED,       /* no line sets it (the parser does not know the name): a Starling
                            * setting with only its default, kept here so that every default
                            * is written once */
};

enum mq_config_flag {
    MQ_CONFIG_MINUS_ONE = 1u << 0,        /* "-1" means no limit, stored as 0 (mosquitto) */
    MQ_CONFIG_PREFIX = 1u << 1,           /* 'name' matches every option it starts (auth_opt_) */
    MQ_CONFIG_ACCUMULATE = 1u << 2,       /* KEYWORD: values OR together over repeated lines;
                                           * the first line replaces the default */
    MQ_CONFIG_REST_OF_LINE = 1u << 3,     /* STRING: the value is the rest of the line, its
                                           * tokens joined by one space */
    MQ_CONFIG_VALUES = 1u << 4,           /* 'set' takes one or more values, checks the rest */
    MQ_CONFIG_OWN_ARGS = 1u << 5,         /* 'set' checks its values itself, even their absence */
    MQ_CONFIG_DEFAULT_LISTENER = 1u << 6, /* a line makes the mosquitto 1.x default listener */
};

typedef struct mq_config_keyword {
    const char *name; /* NULL ends a list */
    unsigned value;
} mq_config_keyword_t;

typedef struct mq_config_parse mq_config_parse_t; /* opaque: the parser's state, config.c */
typedef struct mq_config_option mq_config_option_t;

/* A handler for an option whose effect is more than storing one value: tok[0] is the option,
 * tok[1..ntok) its values. Returns 0, or -1 with the FILE:LINE message set. Parsing thread. */
typedef int mq_config_set_cb(mq_config_parse_t *p, const mq_config_option_t *o, char **tok,
                             int ntok);

struct mq_config_option {
    const char *name;
    uint8_t kind;        /* enum mq_config_kind */
    uint8_t scope;       /* enum mq_config_scope */
    uint8_t origin;      /* enum mq_config_origin */
    uint8_t status;      /* enum mq_config_status */
    uint16_t flags;      /* enum mq_config_flag bits */
    uint16_t off;        /* field in mq_config_t (GLOBAL, BOTH, SECURITY scopes) */
    uint16_t loff;       /* field in mq_listener_conf_t (LISTENER, BOTH scopes) */
    uint8_t size;        /* bytes of the field(s); 0 = the option has no field of its own */
    uint16_t seen;       /* a bool in mq_config_t set once a line gives the option; 0 = none
                          * (offset 0 holds the listener array, never a flag) */
    uint16_t lseen;      /* SECURITY: the same in mq_listener_conf_t; 0 = none */
    uint64_t min, max;   /* UINT, SIZE, and handlers that parse a number */
    uint64_t at_least;   /* UINT, SIZE: a value other than 0 must be >= this */
    uint64_t def;        /* BOOL, UINT, SIZE, KEYWORD, SPECIAL: the default */
    const char *def_str; /* STRING, PATH: the default (copied); NULL = none */
    size_t max_len;      /* STRING: the longest value, in bytes; 0 = no limit */
    const mq_config_keyword_t *keywords; /* KEYWORD, and handlers that take keywords */
    mq_config_set_cb *set;               /* NULL = store the value by kind */
};

/* The table, in no particular order; names are unique. */
extern const mq_config_option_t mq_config__options[];
extern const size_t mq_config__n_options;

/* The unsigned value of 'size' (1, 2, 4 or 8) bytes at 'src', as an option of kind BOOL, UINT,
 * SIZE or KEYWORD holds it in mq_config_t. */
uint64_t mq_config__load_uint(const void *src, size_t size);

#endif
