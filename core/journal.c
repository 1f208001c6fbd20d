/* SPDX-License-Identifier: MIT */
/* core/journal.c - persistence record framing: writer and resynchronising reader. */
#include "core/journal.h"

#include <string.h>
#include <xxhash.h>

#include "core/rc.h"

static const uint8_t magic[4] = {0xF5, 'S', 'J', 'R'};

bool mq_journal_type_known(uint8_t type)
{
    switch (type) {
    case MQ_JREC_FILE_HEADER:
    case MQ_JREC_SNAP_END:
    case MQ_JREC_RETAIN_SET:
    case MQ_JREC_RETAIN_CLEAR:
    case MQ_JREC_SESS_PUT:
    case MQ_JREC_SESS_DEL:
    case MQ_JREC_SUB_ADD:
    case MQ_JREC_SUB_DEL:
    case MQ_JREC_MSG_PUT:
    case MQ_JREC_MSG_UPDATE:
    case MQ_JREC_MSG_DEL:
    case MQ_JREC_QOS2_IN_ADD:
    case MQ_JREC_QOS2_IN_DEL:
        return true;
    default:
        return false;
    }
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t checksum(const uint8_t *hdr, const uint8_t *payload, uint32_t len, uint64_t salt)
{
    return XXH3_64bits_withSeed(payload, len, get_u64(hdr + 4) ^ salt);
}

/* ---- writing ----------------------------------------------------------------------------- */

size_t mq_journal_begin(mq_buf_t *out, uint8_t type)
{
    uint8_t hdr[MQ_JOURNAL_HDR] = {0};
    memcpy(hdr, magic, sizeof(magic));
    hdr[4] = type;
    size_t start = out->len;
    mq_buf_append(out, hdr, sizeof(hdr));
    return start;
}

void mq_journal_end(mq_buf_t *out, size_t start, uint64_t salt)
{
    MQ_ASSERT(start + MQ_JOURNAL_HDR <= out->len);
    size_t len = out->len - start - MQ_JOURNAL_HDR;
    MQ_ASSERT(len <= MQ_JOURNAL_MAX_LEN);
    uint8_t *hdr = out->data + start;
    put_u32(hdr + 8, (uint32_t)len);
    put_u64(hdr + 12, checksum(hdr, hdr + MQ_JOURNAL_HDR, (uint32_t)len, salt));
}

void mq_journal_append(mq_buf_t *out, uint8_t type, const void *payload, size_t len, uint64_t salt)
{
    size_t start = mq_journal_begin(out, type);
    mq_buf_append(out, payload, len);
    mq_journal_end(out, start, salt);
}

/* ---- reading ----------------------------------------------------------------------------- */

void mq_journal_reader_init(mq_journal_reader_t *r, uint64_t salt)
{
    memset(r, 0, sizeof(*r));
    r->salt = salt;
}

void mq_journal_reader_feed(mq_journal_reader_t *r, const uint8_t *buf, size_t len, bool at_eof)
{
    r->_base += r->_pos;
    r->_buf = buf;
    r->_len = len;
    r->_pos = 0;
    r->_at_eof = at_eof;
}

enum frame { FRAME_BAD, FRAME_SHORT, FRAME_OK };

/* Checks for a record at 'p' with 'avail' bytes available. FRAME_SHORT: what is there could
 * begin a record but its end lies beyond 'avail'. Sets *size to the whole record's bytes. */
static enum frame frame_at(const mq_journal_reader_t *r, const uint8_t *p, size_t avail,
                           size_t *size)
{
    size_t n = avail < sizeof(magic) ? avail : sizeof(magic);
    if (memcmp(p, magic, n) != 0)
        return FRAME_BAD;
    if (avail < MQ_JOURNAL_HDR) {
        /* reserved bytes already seen must be zero, so short garbage is rejected early */
        for (size_t i = 5; i < avail && i < 8; i++)
            if (p[i] != 0)
                return FRAME_BAD;
        return FRAME_SHORT;
    }
    uint32_t len = get_u32(p + 8);
    if (p[5] != 0 || p[6] != 0 || p[7] != 0 || len > MQ_JOURNAL_MAX_LEN)
        return FRAME_BAD;
    if (avail - MQ_JOURNAL_HDR < len)
        return FRAME_SHORT;
    if (checksum(p, p + MQ_JOURNAL_HDR, len, r->salt) != get_u64(p + 12))
        return FRAME_BAD;
    *size = MQ_JOURNAL_HDR + (size_t)len;
    return FRAME_OK;
}

static enum mq_journal_ev skip(mq_journal_reader_t *r, mq_journal_item_t *it, size_t to,
                               enum mq_journal_ev ev)
{
    it->offset = r->_base + r->_pos;
    it->len = to - r->_pos;
    r->skipped += it->len;
    if (ev == MQ_JOURNAL_CORRUPT)
        r->n_corrupt++;
    r->_pos = to;
    return ev;
}

/* The record at _pos did not verify: find the next offset where one does. A candidate that
 * may verify once more bytes come (not at the end of the file) ends the skipped stretch, so
 * the next window starts there. */
static enum mq_journal_ev resync(mq_journal_reader_t *r, mq_journal_item_t *it)
{
    const uint8_t *b = r->_buf;
    size_t q = r->_pos + 1, size;
    while (q < r->_len) {
        const uint8_t *m = memchr(b + q, magic[0], r->_len - q);
        if (!m)
            break;
        q = (size_t)(m - b);
        enum frame f = frame_at(r, m, r->_len - q, &size);
        if (f == FRAME_OK || (f == FRAME_SHORT && !r->_at_eof))
            return skip(r, it, q, MQ_JOURNAL_CORRUPT);
        q++;
    }
    return skip(r, it, r->_len, r->_at_eof ? MQ_JOURNAL_TORN : MQ_JOURNAL_CORRUPT);
}

enum mq_journal_ev mq_journal_next(mq_journal_reader_t *r, mq_journal_item_t *it)
{
    memset(it, 0, sizeof(*it));
    if (r->_pos >= r->_len)
        return r->_at_eof ? MQ_JOURNAL_END : MQ_JOURNAL_AGAIN;
    const uint8_t *p = r->_buf + r->_pos;
    size_t size = 0;
    enum frame f = frame_at(r, p, r->_len - r->_pos, &size);
    if (f == FRAME_SHORT && !r->_at_eof)
        return MQ_JOURNAL_AGAIN;
    if (f != FRAME_OK)
        return resync(r, it);
    it->type = p[4];
    it->offset = r->_base + r->_pos;
    it->len = size;
    it->payload = (mq_str_t){(const char *)p + MQ_JOURNAL_HDR, size - MQ_JOURNAL_HDR};
    r->_pos += size;
    r->valid_end = it->offset + size;
    r->n_records++;
    if (mq_journal_type_known(it->type))
        return MQ_JOURNAL_RECORD;
    r->n_unknown++;
    return MQ_JOURNAL_UNKNOWN;
}
