/* SPDX-License-Identifier: MIT */
/* core/replay.c - applies persistence records to plain structures; encodes them back. */
#include "core/replay.h"

#include <string.h>
#include <xxhash.h>

#include "core/codec.h"
#include "core/mem.h"
#include "core/msg.h"
#include "core/rc.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static uint64_t map_key(uint64_t hash)
{
    return hash ? hash : 1; /* 0 marks an empty slot in mq_map */
}

/* Makes room for one more element in an array of 'size'-byte elements. */
static void *grow(void *p, uint32_t n, uint32_t *cap, size_t size)
{
    return n < *cap ? p : mq_grow(p, cap, size, 4);
}

/* Copies the views of 'n' strings into one allocation; returns it (NULL when all are empty). */
static void *copy_strs(mq_str_t **s, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += s[i]->len;
    if (total == 0)
        return NULL;
    char *mem = mq_alloc(total), *p = mem;
    for (size_t i = 0; i < n; i++) {
        if (s[i]->len)
            memcpy(p, s[i]->ptr, s[i]->len);
        s[i]->ptr = p;
        p += s[i]->len;
    }
    return mem;
}

static void *copy_msg(mq_jrec_msg_t *m)
{
    mq_str_t *s[] = {&m->topic, &m->payload, &m->props};
    return copy_strs(s, MQ_ARRAY_LEN(s));
}

/* ---- retained ---------------------------------------------------------------------------- */

mq_replay_retained_t *mq_replay_find_retained(const mq_replay_t *rp, mq_str_t topic)
{
    uint64_t h = XXH3_64bits(topic.ptr, topic.len);
    mq_replay_retained_t *m = mq_map_get(&rp->_retained, map_key(h));
    while (m && !mq_str_eq(m->msg.topic, topic))
        m = m->_next;
    return m;
}

static enum mq_replay_res apply_retain(mq_replay_t *rp, const mq_jrec_t *r)
{
    const mq_jrec_retain_t *in = &r->retain;
    mq_replay_retained_t *m = mq_replay_find_retained(rp, in->msg.topic);
    if (m && in->seq && m->seq > in->seq)
        return MQ_REPLAY_STALE;
    if (in->seq > rp->max_retain_seq)
        rp->max_retain_seq = in->seq;
    if (!m) {
        m = mq_calloc(1, sizeof(*m));
        m->_hash = XXH3_64bits(in->msg.topic.ptr, in->msg.topic.len);
        m->_next = mq_map_get(&rp->_retained, map_key(m->_hash));
        mq_map_put(&rp->_retained, map_key(m->_hash), m);
        rp->n_retained++;
    }
    mq_free(m->_mem);
    m->seq = in->seq;
    m->is_clear = r->type == MQ_JREC_RETAIN_CLEAR;
    m->msg = m->is_clear ? (mq_jrec_msg_t){.topic = in->msg.topic} : in->msg;
    m->src = m->is_clear ? (mq_jrec_src_t){0} : in->src;
    mq_str_t *s[] = {&m->msg.topic, &m->msg.payload, &m->msg.props, &m->src.client_id,
                     &m->src.username};
    m->_mem = copy_strs(s, MQ_ARRAY_LEN(s));
    return MQ_REPLAY_APPLIED;
}

static void unlink_retained(mq_replay_t *rp, mq_replay_retained_t *m)
{
    uint64_t k = map_key(m->_hash);
    mq_replay_retained_t *head = mq_map_get(&rp->_retained, k);
    if (head == m) {
        if (m->_next)
            mq_map_put(&rp->_retained, k, m->_next);
        else
            (void)mq_map_del(&rp->_retained, k); /* returns m, freed below */
    } else {
        while (head->_next != m)
            head = head->_next;
        head->_next = m->_next;
    }
    mq_free(m->_mem);
    mq_free(m);
    rp->n_retained--;
}

/* ---- sessions ---------------------------------------------------------------------------- */

mq_replay_sess_t *mq_replay_find_sess(const mq_replay_t *rp, mq_str_t client_id)
{
    uint64_t h = XXH3_64bits(client_id.ptr, client_id.len);
    mq_replay_sess_t *s = mq_map_get(&rp->_sessions, map_key(h));
    while (s && !mq_str_eq(s->info.client_id, client_id))
        s = s->_next;
    return s;
}

static void free_out(mq_replay_out_t *o)
{
    mq_free(o->_mem);
}

static void free_sess(mq_replay_sess_t *s)
{
    for (uint32_t i = 0; i < s->n_subs; i++)
        mq_free((void *)s->subs[i].filter.ptr);
    for (uint32_t i = 0; i < s->n_out; i++)
        free_out(&s->out[i]);
    mq_free(s->subs);
    mq_free(s->out);
    mq_free(s->qos2_in);
    mq_free(s->_mem);
    mq_free(s);
}

static void put_sess(mq_replay_t *rp, const mq_jrec_sess_t *in)
{
    mq_replay_sess_t *s = mq_replay_find_sess(rp, in->client_id);
    if (!s) {
        s = mq_calloc(1, sizeof(*s));
        s->id_hash = XXH3_64bits(in->client_id.ptr, in->client_id.len);
        s->owner = (uint32_t)(s->id_hash % rp->n_workers);
        s->_next = mq_map_get(&rp->_sessions, map_key(s->id_hash));
        mq_map_put(&rp->_sessions, map_key(s->id_hash), s);
        rp->n_sessions++;
    }
    void *old = s->_mem;
    s->info = *in;
    mq_str_t *strs[] = {&s->info.client_id, &s->info.username, &s->info.will.topic,
                        &s->info.will.payload, &s->info.will.props};
    s->_mem = copy_strs(strs, MQ_ARRAY_LEN(strs));
    mq_free(old); /* after the copy: 'in' may be the session's own info */
}

static enum mq_replay_res del_sess(mq_replay_t *rp, mq_str_t client_id)
{
    mq_replay_sess_t *s = mq_replay_find_sess(rp, client_id);
    if (!s)
        return MQ_REPLAY_ORPHAN;
    uint64_t k = map_key(s->id_hash);
    mq_replay_sess_t *head = mq_map_get(&rp->_sessions, k);
    if (head == s) {
        if (s->_next)
            mq_map_put(&rp->_sessions, k, s->_next);
        else
            (void)mq_map_del(&rp->_sessions, k); /* returns s, freed below */
    } else {
        while (head->_next != s)
            head = head->_next;
        head->_next = s->_next;
    }
    free_sess(s);
    rp->n_sessions--;
    return MQ_REPLAY_APPLIED;
}

static mq_replay_sub_t *find_sub(mq_replay_sess_t *s, mq_str_t filter)
{
    for (uint32_t i = 0; i < s->n_subs; i++)
        if (mq_str_eq(s->subs[i].filter, filter))
            return &s->subs[i];
    return NULL;
}

static enum mq_replay_res apply_sub(mq_replay_sess_t *s, const mq_jrec_t *r)
{
    mq_replay_sub_t *sub = find_sub(s, r->sub.filter);
    if (r->type == MQ_JREC_SUB_DEL) {
        if (!sub)
            return MQ_REPLAY_ORPHAN;
        mq_free((void *)sub->filter.ptr);
        *sub = s->subs[--s->n_subs]; /* subscription order carries no meaning */
        return MQ_REPLAY_APPLIED;
    }
    if (!sub) {
        s->subs = grow(s->subs, s->n_subs, &s->cap_subs, sizeof(*s->subs));
        sub = &s->subs[s->n_subs++];
        sub->filter = r->sub.filter;
        mq_str_t *strs[] = {&sub->filter};
        (void)copy_strs(strs, 1); /* the filter's pointer is the allocation */
    }
    sub->options = r->sub.options;
    sub->sub_id = r->sub.sub_id;
    return MQ_REPLAY_APPLIED;
}

/* Index of the first message with mid >= 'mid' (messages are kept in ascending mid). */
static uint32_t out_lower_bound(const mq_replay_sess_t *s, uint64_t mid)
{
    uint32_t lo = 0, hi = s->n_out;
    while (lo < hi) {
        uint32_t m = lo + (hi - lo) / 2;
        if (s->out[m].mid < mid)
            lo = m + 1;
        else
            hi = m;
    }
    return lo;
}

static enum mq_replay_res apply_out(mq_replay_sess_t *s, const mq_jrec_t *r)
{
    const mq_jrec_out_t *in = &r->out;
    uint32_t i = out_lower_bound(s, in->mid);
    bool found = i < s->n_out && s->out[i].mid == in->mid;
    if (r->type != MQ_JREC_MSG_PUT && !found)
        return MQ_REPLAY_ORPHAN;
    if (r->type == MQ_JREC_MSG_DEL) {
        free_out(&s->out[i]);
        memmove(&s->out[i], &s->out[i + 1], (s->n_out - i - 1) * sizeof(*s->out));
        s->n_out--;
        return MQ_REPLAY_APPLIED;
    }
    if (r->type == MQ_JREC_MSG_PUT) {
        if (found) {
            free_out(&s->out[i]);
        } else {
            s->out = grow(s->out, s->n_out, &s->cap_out, sizeof(*s->out));
            memmove(&s->out[i + 1], &s->out[i], (s->n_out - i) * sizeof(*s->out));
            s->n_out++;
        }
        s->out[i].mid = in->mid;
        s->out[i].msg = in->msg;
        s->out[i]._mem = copy_msg(&s->out[i].msg);
        if (in->mid >= s->next_mid)
            s->next_mid = in->mid + 1;
    }
    s->out[i].packet_id = in->packet_id;
    s->out[i].state = in->state;
    s->out[i].flags = in->flags;
    return MQ_REPLAY_APPLIED;
}

static enum mq_replay_res apply_qos2(mq_replay_sess_t *s, const mq_jrec_t *r)
{
    uint32_t i = 0;
    while (i < s->n_qos2_in && s->qos2_in[i] != r->qos2.packet_id)
        i++;
    if (r->type == MQ_JREC_QOS2_IN_DEL) {
        if (i == s->n_qos2_in)
            return MQ_REPLAY_ORPHAN;
        s->qos2_in[i] = s->qos2_in[--s->n_qos2_in];
    } else if (i == s->n_qos2_in) {
        s->qos2_in = grow(s->qos2_in, s->n_qos2_in, &s->cap_qos2_in, sizeof(*s->qos2_in));
        s->qos2_in[s->n_qos2_in++] = r->qos2.packet_id;
    }
    return MQ_REPLAY_APPLIED;
}

enum mq_replay_res mq_replay_apply(mq_replay_t *rp, const mq_jrec_t *r)
{
    switch (r->type) {
    case MQ_JREC_RETAIN_SET:
    case MQ_JREC_RETAIN_CLEAR:
        return apply_retain(rp, r);
    case MQ_JREC_SESS_PUT:
        put_sess(rp, &r->sess);
        return MQ_REPLAY_APPLIED;
    case MQ_JREC_SESS_DEL:
        return del_sess(rp, r->sess.client_id);
    default:
        break;
    }
    mq_str_t id = mq_jrec_client_id(r);
    if (id.len == 0)
        return MQ_REPLAY_IGNORED; /* FILE_HEADER, SNAP_END */
    mq_replay_sess_t *s = mq_replay_find_sess(rp, id);
    if (!s)
        return MQ_REPLAY_ORPHAN;
    switch (r->type) {
    case MQ_JREC_SUB_ADD:
    case MQ_JREC_SUB_DEL:
        return apply_sub(s, r);
    case MQ_JREC_QOS2_IN_ADD:
    case MQ_JREC_QOS2_IN_DEL:
        return apply_qos2(s, r);
    default:
        return apply_out(s, r);
    }
}

/* ---- lifecycle --------------------------------------------------------------------------- */

void mq_replay_init(mq_replay_t *rp, uint32_t n_workers)
{
    MQ_ASSERT(n_workers >= 1);
    memset(rp, 0, sizeof(*rp));
    rp->n_workers = n_workers;
    mq_map_init(&rp->_retained);
    mq_map_init(&rp->_sessions);
}

void mq_replay_fini(mq_replay_t *rp)
{
    for (size_t i = 0; i < rp->_retained.cap; i++) {
        mq_replay_retained_t *m = rp->_retained.slots[i].key ? rp->_retained.slots[i].val : NULL;
        while (m) {
            mq_replay_retained_t *next = m->_next;
            mq_free(m->_mem);
            mq_free(m);
            m = next;
        }
    }
    for (size_t i = 0; i < rp->_sessions.cap; i++) {
        mq_replay_sess_t *s = rp->_sessions.slots[i].key ? rp->_sessions.slots[i].val : NULL;
        while (s) {
            mq_replay_sess_t *next = s->_next;
            free_sess(s);
            s = next;
        }
    }
    mq_map_fini(&rp->_retained);
    mq_map_fini(&rp->_sessions);
    rp->n_retained = rp->n_sessions = 0;
}

void mq_replay_each_sess(const mq_replay_t *rp, mq_replay_sess_cb *cb, void *arg)
{
    for (size_t i = 0; i < rp->_sessions.cap; i++)
        if (rp->_sessions.slots[i].key)
            for (mq_replay_sess_t *s = rp->_sessions.slots[i].val; s; s = s->_next)
                cb(arg, s);
}

void mq_replay_each_retained(const mq_replay_t *rp, mq_replay_retained_cb *cb, void *arg)
{
    for (size_t i = 0; i < rp->_retained.cap; i++)
        if (rp->_retained.slots[i].key)
            for (mq_replay_retained_t *m = rp->_retained.slots[i].val; m; m = m->_next)
                cb(arg, m);
}

/* Collects the retained entries to drop: the table must not change while it is walked. */
typedef struct doomed {
    mq_replay_retained_t **v;
    uint32_t n, cap;
    int64_t now;
} doomed_t;

static void collect_retained(void *arg, mq_replay_retained_t *m)
{
    doomed_t *d = arg;
    if (m->is_clear || (m->msg.expiry_at != 0 && m->msg.expiry_at <= d->now)) {
        d->v = grow(d->v, d->n, &d->cap, sizeof(*d->v));
        d->v[d->n++] = m;
    }
}

static void expire_out(void *arg, mq_replay_sess_t *s)
{
    doomed_t *d = arg;
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->n_out; i++) {
        if (s->out[i].msg.expiry_at != 0 && s->out[i].msg.expiry_at <= d->now) {
            free_out(&s->out[i]);
            d->n++;
        } else {
            s->out[k++] = s->out[i];
        }
    }
    s->n_out = k;
}

size_t mq_replay_finish(mq_replay_t *rp, int64_t now)
{
    doomed_t d = {NULL, 0, 0, now};
    mq_replay_each_retained(rp, collect_retained, &d);
    size_t dropped = 0;
    for (uint32_t i = 0; i < d.n; i++) {
        dropped += !d.v[i]->is_clear;
        unlink_retained(rp, d.v[i]);
    }
    mq_free(d.v);
    d = (doomed_t){NULL, 0, 0, now};
    mq_replay_each_sess(rp, expire_out, &d);
    return dropped + d.n;
}

/* ---- reading one file -------------------------------------------------------------------- */

void mq_replay_file_init(mq_replay_file_t *f)
{
    mq_replay_note_cb *note = f->note;
    void *arg = f->note_arg;
    memset(f, 0, sizeof(*f));
    f->note = note;
    f->note_arg = arg;
    f->torn_at = UINT64_MAX;
}

static void note(mq_replay_file_t *f, enum mq_journal_ev ev, const mq_journal_item_t *it,
                 const char *why)
{
    if (f->note)
        f->note(f->note_arg, ev, it->offset, it->len, it->type, why);
}

/* The first record of a file: it must be a FILE_HEADER; it gives the salt of the others. */
static enum mq_rc read_header(mq_journal_reader_t *r, mq_replay_file_t *f,
                              const mq_journal_item_t *it)
{
    mq_jrec_t h;
    const char *why = "first record is not a file header";
    enum mq_rc rc = MQ_RC_MALFORMED_PACKET;
    if (it->type == MQ_JREC_FILE_HEADER)
        rc = mq_jrec_decode(it->type, it->payload, &h, &why);
    if (rc != MQ_RC_SUCCESS) {
        note(f, MQ_JOURNAL_RECORD, it, why);
        return rc;
    }
    f->header = h.header;
    f->has_header = true;
    r->salt = h.header.salt;
    return MQ_RC_SUCCESS;
}

static void read_record(mq_replay_t *rp, mq_journal_reader_t *r, mq_replay_file_t *f,
                        const mq_journal_item_t *it)
{
    mq_jrec_t rec;
    const char *why = NULL;
    if (mq_jrec_decode(it->type, it->payload, &rec, &why) != MQ_RC_SUCCESS) {
        f->n_malformed++;
        note(f, MQ_JOURNAL_RECORD, it, why);
        return;
    }
    if (rec.type == MQ_JREC_SNAP_END) {
        /* records counted: every verified one between the header and this one */
        f->complete = f->header.kind == MQ_JREC_KIND_SNAPSHOT &&
                      rec.snap_end.generation == f->header.generation &&
                      rec.snap_end.n_records == r->n_records - 2;
    }
    switch (mq_replay_apply(rp, &rec)) {
    case MQ_REPLAY_APPLIED:
        f->n_applied++;
        break;
    case MQ_REPLAY_IGNORED:
        f->n_ignored++;
        break;
    case MQ_REPLAY_STALE:
        f->n_stale++;
        break;
    case MQ_REPLAY_ORPHAN:
        f->n_orphans++;
        note(f, MQ_JOURNAL_RECORD, it, "refers to something not present");
        break;
    }
}

enum mq_rc mq_replay_read(mq_replay_t *rp, mq_journal_reader_t *r, mq_replay_file_t *f)
{
    mq_journal_item_t it;
    for (;;) {
        enum mq_journal_ev ev = mq_journal_next(r, &it);
        switch (ev) {
        case MQ_JOURNAL_END:
            if (!f->has_header) {
                note(f, ev, &it, "no file header");
                return MQ_RC_MALFORMED_PACKET;
            }
            return MQ_RC_SUCCESS;
        case MQ_JOURNAL_AGAIN:
            return MQ_RC_AGAIN;
        case MQ_JOURNAL_RECORD:
        case MQ_JOURNAL_UNKNOWN:
            if (!f->has_header) {
                enum mq_rc rc = read_header(r, f, &it);
                if (rc != MQ_RC_SUCCESS)
                    return rc;
            } else if (ev == MQ_JOURNAL_UNKNOWN) {
                note(f, ev, &it, "unknown record type");
            } else {
                read_record(rp, r, f, &it);
            }
            break;
        case MQ_JOURNAL_CORRUPT:
        case MQ_JOURNAL_TORN:
            if (ev == MQ_JOURNAL_TORN)
                f->torn_at = it.offset;
            note(f, ev, &it, ev == MQ_JOURNAL_TORN ? "torn tail" : "corrupt bytes");
            break;
        }
    }
}

/* ---- snapshot ---------------------------------------------------------------------------- */

typedef struct snap {
    mq_buf_t *out;
    uint64_t salt;
    uint64_t n;
} snap_t;

static void put(snap_t *sn, const mq_jrec_t *r)
{
    (void)mq_jrec_encode(sn->out, r, sn->salt);
    sn->n++;
}

static void snap_retained(void *arg, mq_replay_retained_t *m)
{
    mq_jrec_t r = {.type = m->is_clear ? MQ_JREC_RETAIN_CLEAR : MQ_JREC_RETAIN_SET};
    r.retain.seq = m->seq;
    r.retain.msg = m->msg;
    r.retain.src = m->src;
    put(arg, &r);
}

static void snap_sess(void *arg, mq_replay_sess_t *s)
{
    mq_jrec_t r = {.type = MQ_JREC_SESS_PUT};
    r.sess = s->info;
    put(arg, &r);
    for (uint32_t i = 0; i < s->n_subs; i++) {
        r = (mq_jrec_t){.type = MQ_JREC_SUB_ADD};
        r.sub = (mq_jrec_sub_t){s->info.client_id, s->subs[i].filter, s->subs[i].options,
                                s->subs[i].sub_id};
        put(arg, &r);
    }
    for (uint32_t i = 0; i < s->n_out; i++) {
        const mq_replay_out_t *o = &s->out[i];
        r = (mq_jrec_t){.type = MQ_JREC_MSG_PUT};
        r.out =
            (mq_jrec_out_t){s->info.client_id, o->mid, o->packet_id, o->state, o->flags, o->msg};
        put(arg, &r);
    }
    for (uint32_t i = 0; i < s->n_qos2_in; i++) {
        r = (mq_jrec_t){.type = MQ_JREC_QOS2_IN_ADD};
        r.qos2 = (mq_jrec_qos2_t){s->info.client_id, s->qos2_in[i]};
        put(arg, &r);
    }
}

void mq_replay_encode(const mq_replay_t *rp, mq_buf_t *out, const mq_jrec_header_t *hdr)
{
    mq_jrec_t r = {.type = MQ_JREC_FILE_HEADER, .header = *hdr};
    (void)mq_jrec_encode(out, &r, 0);
    snap_t sn = {out, hdr->salt, 0};
    mq_replay_each_retained(rp, snap_retained, &sn);
    mq_replay_each_sess(rp, snap_sess, &sn);
    r = (mq_jrec_t){.type = MQ_JREC_SNAP_END};
    r.snap_end = (mq_jrec_snap_end_t){hdr->generation, sn.n};
    (void)mq_jrec_encode(out, &r, hdr->salt);
}

struct mq_msg *mq_replay_msg_new(const mq_jrec_msg_t *m, bool retain, int64_t wall,
                                 uint64_t mono_ms)
{
    mq_props_t props;
    const char *why = NULL;
    if (m->props.len > 0 &&
        mq_props_decode(MQ_PCTX_PUBLISH, MQ_ROLE_SERVER, (const uint8_t *)m->props.ptr,
                        m->props.len, &props, &why) != MQ_RC_SUCCESS)
        return NULL;
    mq_msg_t *msg = mq_msg_new_props(m->topic.ptr, m->topic.len, m->payload.ptr, m->payload.len,
                                     m->qos, retain, m->props.len ? &props : NULL);
    if (msg && m->expiry_at) /* at least a second left: mq_replay_finish dropped the others */
        msg->expire_at =
            mono_ms + (uint64_t)(m->expiry_at > wall ? m->expiry_at - wall : 1) * 1000u;
    return msg;
}
