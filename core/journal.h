/* SPDX-License-Identifier: MIT */
/* core/journal.h - persistence record framing: writer into a buffer, resynchronising reader. */
#ifndef MQ_CORE_JOURNAL_H
#define MQ_CORE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Every persistence file (worker journal, retained journal, snapshot) is a sequence of
 * records. A record is a 20-byte header followed by its payload; integers are little-endian:
 *
 *   0  4  magic "\xF5SJR" (sync marker: a reader looks for it to resynchronise)
 *   4  1  type (enum mq_journal_type)
 *   5  3  reserved, zero
 *   8  4  payload length, at most MQ_JOURNAL_MAX_LEN
 *  12  8  XXH3-64 of the payload, seeded with (header bytes 4..11 as a u64) ^ salt
 *  20     payload
 *
 * The seed covers type and length, so a flipped length or type fails the checksum like a
 * flipped payload byte. 'salt' is a per-file random value stored in the file's first record
 * (MQ_JREC_FILE_HEADER, itself written with salt 0): records that a client smuggled in as
 * message payload cannot verify, so a torn or corrupt record never exposes them as records.
 *
 * Everything here is pure: bytes in, bytes out, callable from any thread on its own data. */

#define MQ_JOURNAL_HDR 20u
#define MQ_JOURNAL_MAX_LEN (1u << 29) /* above any PUBLISH (268435455) plus topic and props */

/* Record types, named after core/jrec.h which defines the payload of each. Values are part
 * of the file format: never renumber; add new ones at unused values. */
enum mq_journal_type {
    MQ_JREC_FILE_HEADER = 0x01, /* first record of every file: version, kind, salt */
    MQ_JREC_SNAP_END = 0x02,    /* last record of a complete snapshot */
    MQ_JREC_RETAIN_SET = 0x10,
    MQ_JREC_RETAIN_CLEAR = 0x11,
    MQ_JREC_SESS_PUT = 0x20, /* session created or updated */
    MQ_JREC_SESS_DEL = 0x21,
    MQ_JREC_SUB_ADD = 0x22,
    MQ_JREC_SUB_DEL = 0x23,
    MQ_JREC_MSG_PUT = 0x30,    /* outbound message queued or in flight */
    MQ_JREC_MSG_UPDATE = 0x31, /* packet id assigned, DUP set, PUBREC -> PUBREL */
    MQ_JREC_MSG_DEL = 0x32,    /* acknowledged, expired or dropped */
    MQ_JREC_QOS2_IN_ADD = 0x40,
    MQ_JREC_QOS2_IN_DEL = 0x41,
};

/* True for the values of enum mq_journal_type. */
bool mq_journal_type_known(uint8_t type);

/* ---- writing ----------------------------------------------------------------------------- */

/* Appends a record header for 'type' to 'out' and returns the offset of the record; the
 * caller then appends the payload to 'out' and calls mq_journal_end(). */
size_t mq_journal_begin(mq_buf_t *out, uint8_t type);

/* Completes the record begun at 'start': fills in the length of everything appended since
 * and the checksum with 'salt'. The payload must not exceed MQ_JOURNAL_MAX_LEN (asserted:
 * the callers' limits keep messages far below it). */
void mq_journal_end(mq_buf_t *out, size_t start, uint64_t salt);

/* Appends one whole record: mq_journal_begin, the payload, mq_journal_end. */
void mq_journal_append(mq_buf_t *out, uint8_t type, const void *payload, size_t len, uint64_t salt);

/* ---- reading ----------------------------------------------------------------------------- */

enum mq_journal_ev {
    MQ_JOURNAL_END = 0,     /* every byte of the file has been seen */
    MQ_JOURNAL_AGAIN = 1,   /* the window is used up: feed the bytes from
                               mq_journal_reader_offset() on */
    MQ_JOURNAL_RECORD = 2,  /* a verified record of a known type */
    MQ_JOURNAL_UNKNOWN = 3, /* a verified record of a type this build does not know; skip it */
    MQ_JOURNAL_CORRUPT = 4, /* bytes that form no verified record, followed by more data: they
                               were skipped and the reader resynchronised */
    MQ_JOURNAL_TORN = 5,    /* bytes at the end of the file that form no verified record (a
                               write cut short by a crash): dropped */
};

/* What mq_journal_next() found. */
typedef struct mq_journal_item {
    uint8_t type;     /* RECORD, UNKNOWN: the record type */
    uint64_t offset;  /* file offset of the record, or of the first byte skipped */
    uint64_t len;     /* bytes of the record (header included), or bytes skipped */
    mq_str_t payload; /* RECORD, UNKNOWN: view into the caller's window */
} mq_journal_item_t;

/* A reader over one file, given as one buffer or as successive windows (so a large file can
 * be read in pieces). Never trusts a length before bounds checks; never reads outside the
 * window; any input at all yields a finite sequence of items ending in MQ_JOURNAL_END. */
typedef struct mq_journal_reader {
    uint64_t salt;      /* checksum salt: 0 for a file's first record, then the file's salt
                           (set it from the MQ_JREC_FILE_HEADER record) */
    uint64_t valid_end; /* file offset just past the last verified record: where a writer
                           continuing this file must truncate it before appending */
    uint64_t n_records; /* verified records (known and unknown types) */
    uint64_t n_unknown; /* of which of unknown types */
    uint64_t n_corrupt; /* CORRUPT items */
    uint64_t skipped;   /* bytes in CORRUPT and TORN items */
    /* private */
    const uint8_t *_buf; /* current window */
    size_t _len;
    size_t _pos;    /* next byte of the window to look at */
    uint64_t _base; /* file offset of _buf[0] */
    bool _at_eof;   /* the window ends where the file ends */
} mq_journal_reader_t;

/* Starts reading a file at offset 0 with checksum salt 'salt' (0 for a file's beginning). */
void mq_journal_reader_init(mq_journal_reader_t *r, uint64_t salt);

/* Gives the reader its next window: 'buf' holds the file's bytes from offset
 * mq_journal_reader_offset(r) on ('len' of them), and 'at_eof' says whether the file ends
 * there. Borrowed until the next call; items' payloads point into it. */
void mq_journal_reader_feed(mq_journal_reader_t *r, const uint8_t *buf, size_t len, bool at_eof);

/* File offset of the first byte the reader still needs: after MQ_JOURNAL_AGAIN, the next
 * window must start there (a record cut by the window end is read again whole). It may take
 * up to MQ_JOURNAL_HDR + MQ_JOURNAL_MAX_LEN bytes for the reader to decide. */
static inline uint64_t mq_journal_reader_offset(const mq_journal_reader_t *r)
{
    return r->_base + r->_pos;
}

/* Returns the next item of the file. A corrupt stretch is skipped up to the next offset where
 * a record verifies (magic, reserved bytes, length within bounds and the window, checksum);
 * when none follows, the rest is the torn tail. Read in windows, a stretch may be reported
 * in several CORRUPT items and a torn tail partly as CORRUPT; the records, valid_end and the
 * bytes skipped are the same as when the file is given whole. */
enum mq_journal_ev mq_journal_next(mq_journal_reader_t *r, mq_journal_item_t *it);

#endif
