/* SPDX-License-Identifier: MIT */
#include "broker/persist.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/codec.h"
#include "core/journal.h"
#include "core/jrec.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/replay.h"
#include "core/sess.h"
#include "core/topic.h"
#include "net/jwriter.h"

struct mq_persist {
    char *path; /* persistence_location + persistence_file */
    char *tmp;  /* path + ".tmp": what a save writes before the rename */
    char *dir;  /* the directory to sync after the rename */
    uint32_t interval;
    bool on_changes;
    uint64_t generation;      /* of the last snapshot read or written */
    double next_save_s;       /* monotonic: no autosave before (a pause after a failure) */
    uint64_t changes_at_save; /* changes() at the last save */
    mq_replay_t kept;         /* what start-up read, until mq_persist_loaded() */
    bool has_kept;
    uint8_t fsync;          /* enum mq_fsync_mode */
    uint64_t seq_floor;     /* the highest retained-change number start-up read */
    double next_check_s;    /* monotonic: when the journals' size is looked at next */
    uint64_t journal_limit; /* persistence_journal_limit */
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t mono_ms(void) /* the workers' loop clock, which msg->expire_at counts in */
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static char *join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = mq_alloc(n);
    snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

mq_persist_t *mq_persist_new(const mq_config_t *cfg)
{
    if (!cfg->persistence)
        return NULL;
    mq_persist_t *p = mq_calloc(1, sizeof(*p));
    const char *loc = cfg->persistence_location ? cfg->persistence_location : "";
    size_t n = strlen(loc);
    /* mosquitto joins the two as written ("/var/lib/mosquitto/" + "mosquitto.db"); a
     * location without its slash is taken as the directory it names */
    p->path = join(loc, n && loc[n - 1] != '/' ? "/" : "", cfg->persistence_file);
    p->tmp = join(p->path, ".tmp", "");
    p->dir = mq_strndup(n ? loc : ".", n ? n : 1);
    p->interval = cfg->autosave_interval;
    p->on_changes = cfg->autosave_on_changes;
    p->fsync = cfg->persistence_fsync;
    p->journal_limit = cfg->persistence_journal_limit;
    p->next_save_s = p->on_changes ? 0 : mono_s() + p->interval;
    return p;
}

void mq_persist_check(const mq_persist_t *p)
{
    if (p && access(p->dir, W_OK | X_OK) < 0)
        MQ_LOG(MQ_LOG_WARN,
               "Warning: persistence_location %s: %s; saving the in-memory database will "
               "fail until it is writable.",
               p->dir, strerror(errno));
}

void mq_persist_free(mq_persist_t *p)
{
    if (p == NULL)
        return;
    if (p->has_kept)
        mq_replay_fini(&p->kept);
    mq_free(p->path);
    mq_free(p->tmp);
    mq_free(p->dir);
    mq_free(p);
}

/* ---- loading ------------------------------------------------------------------------------ */

static void note(void *arg, enum mq_journal_ev ev, uint64_t offset, uint64_t len, uint8_t type,
                 const char *why)
{
    const char *path = arg;
    if (ev == MQ_JOURNAL_TORN)
        MQ_LOG(MQ_LOG_WARN, "Warning: %s: torn end at offset %llu (%llu bytes) dropped.", path,
               (unsigned long long)offset, (unsigned long long)len);
    else if (ev == MQ_JOURNAL_CORRUPT)
        MQ_LOG(MQ_LOG_WARN, "Warning: %s: %llu corrupt bytes at offset %llu skipped.", path,
               (unsigned long long)len, (unsigned long long)offset);
    else
        MQ_LOG(MQ_LOG_WARN, "Warning: %s: record %s at offset %llu skipped: %s.", path,
               mq_jrec_type_str(type), (unsigned long long)offset, why ? why : "unknown type");
}

/* As note(), for a journal: a record about what is not there (a message acknowledged between
 * the rotation of its journal and the snapshot that followed, which therefore does not hold
 * it) is expected after a crash; those are counted per file, logged only with debug. */
static void note_journal(void *arg, enum mq_journal_ev ev, uint64_t offset, uint64_t len,
                         uint8_t type, const char *why)
{
    if (ev == MQ_JOURNAL_RECORD && why && strcmp(why, "refers to something not present") == 0)
        MQ_LOG(MQ_LOG_DEBUG, "%s: record %s at offset %llu skipped: %s.", (const char *)arg,
               mq_jrec_type_str(type), (unsigned long long)offset, why);
    else
        note(arg, ev, offset, len, type, why);
}

/* A file this build cannot read is kept for its owner under another name; start-up goes on. */
static void move_aside(const char *path, const char *what, const char *why)
{
    char aside[4096];
    snprintf(aside, sizeof(aside), "%s.unreadable-%lld", path, (long long)time(NULL));
    if (rename(path, aside) == 0)
        MQ_LOG(MQ_LOG_ERROR,
               "Error: %s is not a Starling %s this version can read (%s); moved to %s, "
               "starting without it.",
               path, what, why, aside);
    else
        MQ_LOG(MQ_LOG_ERROR,
               "Error: %s is not a Starling %s this version can read (%s) "
               "and could not be moved aside (%s); starting without it.",
               path, what, why, strerror(errno));
}

typedef struct collect {
    mq_msg_t **msgs;
    size_t n;
    uint32_t cap;
    int64_t wall;   /* now, seconds since the Unix epoch */
    uint64_t mono;  /* now, loop clock ms */
    size_t skipped; /* entries whose properties no longer decode */
    const mq_server_opts_t *opts;
} collect_t;

/* The security domain of the listener on 'port' (where a retained message's publisher came
 * in): a listener's own with per_listener_settings, else the broker's one (0); 0 also for a
 * port no longer configured. */
static uint8_t domain_of_port(const mq_server_opts_t *o, uint16_t port)
{
    for (unsigned i = 0; i < o->n_listeners; i++)
        if (o->listeners[i].port == port)
            return o->listeners[i].auth_domain;
    return 0;
}

static void collect_one(void *arg, mq_replay_retained_t *e)
{
    collect_t *c = arg;
    mq_msg_t *msg = mq_replay_msg_new(&e->msg, true, c->wall, c->mono);
    if (msg == NULL) {
        c->skipped++;
        return;
    }
    if (e->src.present) /* check_retain_source goes on across the restart */
        mq_msg_set_src(msg, domain_of_port(c->opts, e->src.port), e->src.port, e->src.client_id,
                       e->src.has_username ? &e->src.username : NULL);
    if (c->n == c->cap)
        c->msgs = mq_grow(c->msgs, &c->cap, sizeof(*c->msgs), 64);
    c->msgs[c->n++] = msg;
}

/* Replays the whole file 'path' held in 'b' into 'rp'; false when it is not a file of 'kind'
 * this build reads (it is then moved aside). */
static bool replay(const char *path, uint8_t kind, const mq_buf_t *b, mq_replay_t *rp,
                   mq_replay_file_t *f)
{
    mq_journal_reader_t r;
    mq_journal_reader_init(&r, 0);
    mq_journal_reader_feed(&r, b->data, b->len, true);
    f->note = kind == MQ_JREC_KIND_SNAPSHOT ? note : note_journal;
    f->note_arg = (void *)path;
    mq_replay_file_init(f);
    enum mq_rc rc = mq_replay_read(rp, &r, f); /* given whole, the file never asks for more */
    if (rc == MQ_RC_SUCCESS && f->header.kind == kind)
        return true;
    const char *what = kind == MQ_JREC_KIND_SNAPSHOT ? "snapshot" : "journal";
    move_aside(path, what,
               rc == MQ_RC_UNSUPPORTED_PROTOCOL_VERSION ? "another format version"
               : rc == MQ_RC_SUCCESS                    ? "another kind of file"
                                                        : "no Starling file header");
    return false;
}

/* Reads the file into 'b': 1, 0 when there is none, -1 when it cannot be read (logged). */
static int read_file(const char *path, mq_buf_t *b, bool quiet)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && !quiet)
            MQ_LOG(MQ_LOG_NOTICE, "No persistence file %s yet: starting empty.", path);
        else if (errno != ENOENT)
            MQ_LOG(MQ_LOG_ERROR, "Error: %s: %s; starting without it.", path, strerror(errno));
        return errno == ENOENT ? 0 : -1;
    }
    int rc = mq_buf_read_fd(b, fd);
    close(fd);
    if (rc < 0) {
        MQ_LOG(MQ_LOG_ERROR, "Error: %s: %s; starting without it.", path, strerror(-rc));
        return -1;
    }
    return 1;
}

/* ---- journal files ------------------------------------------------------------------------ */

typedef struct jfile {
    uint64_t gen;
    unsigned worker;
    char *path;
} jfile_t;

static int jfile_cmp(const void *a, const void *b)
{
    const jfile_t *x = a, *y = b;
    if (x->gen != y->gen)
        return x->gen < y->gen ? -1 : 1;
    return x->worker < y->worker ? -1 : x->worker > y->worker;
}

/* Whether 'name' is "BASE.G.wI" for the snapshot's file name BASE; sets *gen and *worker. */
static bool journal_name(const char *name, const char *base, uint64_t *gen, unsigned *worker)
{
    size_t n = strlen(base);
    if (strncmp(name, base, n) != 0 || name[n] != '.' || !isdigit((unsigned char)name[n + 1]))
        return false;
    char *end;
    errno = 0;
    unsigned long long g = strtoull(name + n + 1, &end, 10);
    if (errno || end[0] != '.' || end[1] != 'w' || !isdigit((unsigned char)end[2]))
        return false;
    unsigned long w = strtoul(end + 2, &end, 10);
    if (*end != '\0' || w > 65535)
        return false;
    *gen = g;
    *worker = (unsigned)w;
    return true;
}

/* The journals beside the snapshot, in generation order; '*out' is the caller's to free
 * (free_journals). */
static size_t list_journals(const mq_persist_t *p, jfile_t **out)
{
    *out = NULL;
    const char *slash = strrchr(p->path, '/');
    const char *base = slash ? slash + 1 : p->path;
    char *dir = slash ? mq_strndup(p->path, (size_t)(slash - p->path) + (slash == p->path))
                      : mq_strndup(".", 1);
    DIR *d = opendir(dir);
    if (d == NULL && errno != ENOENT)
        MQ_LOG(MQ_LOG_ERROR, "Error: %s: %s; its journals cannot be listed.", dir, strerror(errno));
    size_t n = 0;
    uint32_t cap = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        uint64_t gen;
        unsigned worker;
        if (!journal_name(e->d_name, base, &gen, &worker))
            continue;
        if (n == cap)
            *out = mq_grow(*out, &cap, sizeof(**out), 8);
        (*out)[n++] = (jfile_t){gen, worker, join(dir, "/", e->d_name)};
    }
    if (d)
        closedir(d);
    mq_free(dir);
    if (n)
        qsort(*out, n, sizeof(**out), jfile_cmp);
    return n;
}

static void free_journals(jfile_t *js, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mq_free(js[i].path);
    mq_free(js);
}

/* Removes the journals of generations below 'gen': a snapshot of 'gen' holds all they say. */
static void drop_journals(const mq_persist_t *p, uint64_t gen)
{
    jfile_t *js;
    size_t n = list_journals(p, &js);
    for (size_t i = 0; i < n; i++)
        if (js[i].gen < gen && unlink(js[i].path) < 0 && errno != ENOENT)
            MQ_LOG(MQ_LOG_WARN, "Warning: could not remove %s: %s.", js[i].path, strerror(errno));
    free_journals(js, n);
}

static void sync_dir(const mq_persist_t *p)
{
    mq_jwriter_sync_dir(p->path);
}

/* Replays the journals of generation >= 'from' into p->kept (and removes older ones, left by a
 * crash between a snapshot and their removal). Returns the highest generation read, or 'from'
 * when none; *n_read counts the files. */
static uint64_t replay_journals(mq_persist_t *p, uint64_t from, size_t *n_read, uint64_t *n_rec)
{
    jfile_t *js;
    size_t n = list_journals(p, &js);
    uint64_t top = from;
    *n_read = 0;
    *n_rec = 0;
    for (size_t i = 0; i < n; i++) {
        if (js[i].gen < from) {
            (void)unlink(js[i].path);
            continue;
        }
        mq_buf_t b;
        mq_buf_init(&b);
        mq_replay_file_t f = {0};
        int got = read_file(js[i].path, &b, true);
        if (got < 0) /* kept for its owner under another name: never removed unread */
            move_aside(js[i].path, "journal", "it could not be read");
        if (got > 0 && b.len > 0 && replay(js[i].path, MQ_JREC_KIND_WORKER, &b, &p->kept, &f)) {
            *n_rec += f.n_applied;
            if (f.n_stale || f.n_orphans || f.n_malformed)
                MQ_LOG(MQ_LOG_INFO,
                       "%s: %llu records applied, %llu older than the snapshot, %llu about "
                       "what it no longer held.",
                       js[i].path, (unsigned long long)f.n_applied, (unsigned long long)f.n_stale,
                       (unsigned long long)f.n_orphans);
        }
        mq_buf_fini(&b);
        (*n_read)++;
        if (js[i].gen > top)
            top = js[i].gen;
    }
    free_journals(js, n);
    return top;
}

/* What start-up read, written back as one snapshot of generation 'gen', so that the journals
 * it came from need not be read again. 0 or -errno. */
static int write_snapshot(const mq_persist_t *p, const mq_buf_t *b);

static int compact(mq_persist_t *p, uint64_t gen)
{
    mq_buf_t b;
    mq_buf_init(&b);
    uint64_t salt;
    if (getrandom(&salt, sizeof(salt), GRND_NONBLOCK) != sizeof(salt))
        salt = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ mono_ms();
    mq_jrec_header_t h = {.version = MQ_JREC_VERSION,
                          .kind = MQ_JREC_KIND_SNAPSHOT,
                          .n_workers = 1,
                          .generation = gen,
                          .wall_time = time(NULL),
                          .salt = salt};
    mq_replay_encode(&p->kept, &b, &h);
    int rc = write_snapshot(p, &b);
    mq_buf_fini(&b);
    return rc;
}

void mq_persist_load(mq_persist_t *p, mq_server_opts_t *opts)
{
    double t0 = mono_s();
    mq_replay_init(&p->kept, 1);
    p->has_kept = true;
    uint64_t snap_gen = 0;
    mq_buf_t b;
    mq_buf_init(&b);
    mq_replay_file_t f = {0};
    if (read_file(p->path, &b, false) > 0 &&
        replay(p->path, MQ_JREC_KIND_SNAPSHOT, &b, &p->kept, &f)) {
        snap_gen = f.header.generation;
        if (!f.complete)
            MQ_LOG(MQ_LOG_WARN, "Warning: %s has no end record: restoring what it holds.", p->path);
    }
    mq_buf_fini(&b);
    size_t n_journals;
    uint64_t n_jrec;
    p->generation = replay_journals(p, snap_gen, &n_journals, &n_jrec);
    collect_t c = {.wall = time(NULL), .mono = mono_ms(), .opts = opts};
    size_t expired = mq_replay_finish(&p->kept, c.wall);
    p->seq_floor = p->kept.max_retain_seq;
    if (n_journals > 0) {
        /* a crash left journals: fold them into a snapshot of the next generation */
        int rc = compact(p, p->generation + 1);
        p->generation++; /* new journals begin a generation of their own either way */
        if (rc == 0)
            drop_journals(p, p->generation);
        else
            MQ_LOG(MQ_LOG_ERROR,
                   "Error: could not write %s after reading the journals (%s); they are kept "
                   "and read again at the next start.",
                   p->path, strerror(-rc));
        MQ_LOG(MQ_LOG_NOTICE, "Read %llu journal records from %zu files.",
               (unsigned long long)n_jrec, n_journals);
    }
    mq_replay_each_retained(&p->kept, collect_one, &c);
    opts->retained = c.msgs;
    opts->n_retained = c.n;
    opts->kept = p->kept.n_sessions ? &p->kept : NULL; /* the workers take their own */
    opts->kept_wall = c.wall;
    opts->journal_base = p->path;
    opts->journal_gen = p->generation;
    opts->persistence_fsync = p->fsync;
    opts->retain_seq_floor = p->seq_floor;
    MQ_LOG(MQ_LOG_NOTICE,
           "Restored %zu retained messages from %s in %.3f s (%zu expired while the "
           "broker was down, %zu skipped); %zu sessions kept.",
           c.n, p->path, mono_s() - t0, expired, c.skipped + (size_t)f.n_malformed,
           p->kept.n_sessions);
}

void mq_persist_loaded(mq_persist_t *p, mq_server_opts_t *opts)
{
    if (p) /* the workers have made their journals: their names durable in the directory */
        sync_dir(p);
    mq_free(opts->retained);
    opts->retained = NULL;
    opts->n_retained = 0;
    opts->kept = NULL;
    if (p && p->has_kept)
        mq_replay_fini(&p->kept);
    if (p)
        p->has_kept = false;
}

/* What autosave counts as changes: retained messages stored or removed, PUBLISH packets
 * received (what sessions queue comes from them) and CONNECTs (sessions made or resumed). The
 * workers refresh the last two once a second. */
static uint64_t changes(const mq_server_t *srv)
{
    mq_server_stats_t t;
    mq_server_stats(srv, &t, NULL);
    return mq_server_retained_changes(srv) + t.pub_received + t.connects;
}

/* ---- saving ------------------------------------------------------------------------------- */

typedef struct snap {
    mq_buf_t out;
    uint64_t salt;
    uint64_t n_records; /* after the FILE_HEADER */
    int64_t wall;
    uint64_t mono;
    uint64_t seq; /* of every retained message it writes (mq_persist_save) */
} snap_t;

/* The record form of a routed message delivered at 'qos', its expiry as wall-clock seconds. */
static mq_jrec_msg_t jmsg(const mq_msg_t *m, uint8_t qos, int64_t wall, uint64_t mono)
{
    mq_jrec_msg_t j = {.topic = mq_msg_topic(m),
                       .payload = mq_msg_payload(m),
                       .props = {(const char *)m->wire + m->wire_len, m->props_len},
                       .qos = qos};
    if (m->expire_at) /* whole seconds left, rounded up: never earlier than due */
        j.expiry_at = wall + (int64_t)((m->expire_at - mono + 999) / 1000);
    return j;
}

/* Runs in the server's read section: encodes, never blocks. */
static void snap_one(void *arg, mq_msg_t *msg)
{
    snap_t *s = arg;
    mq_str_t topic = mq_msg_topic(msg);
    if (mq_topic_is_sys(topic.ptr, topic.len) || (msg->expire_at && msg->expire_at <= s->mono))
        return;
    mq_jrec_t r = {.type = MQ_JREC_RETAIN_SET};
    r.retain.seq = msg->rseq ? msg->rseq : s->seq; /* its own number: a journal record of a
                                                      later change to the topic wins */
    r.retain.msg = jmsg(msg, msg->qos, s->wall, s->mono);
    r.retain.src = mq_jrec_src_of(msg);
    (void)mq_jrec_encode(&s->out, &r, s->salt);
    s->n_records++;
}

/* One worker's share of the sessions: encoded on its own thread (mq_server_each_session). */
typedef struct part {
    mq_buf_t out;
    uint64_t n_records;
    size_t n_sessions;
} part_t;

typedef struct sess_snap {
    part_t *parts; /* by worker */
    uint64_t salt;
    int64_t wall;
} sess_snap_t;

static void put(part_t *pt, const mq_jrec_t *r, uint64_t salt)
{
    (void)mq_jrec_encode(&pt->out, r, salt);
    pt->n_records++;
}

/* When the client went away, such that the expiry left is what the broker clock says. */
static void put_out(part_t *pt, const sess_snap_t *ss, const mq_sess_t *s, const mq_outmsg_t *o,
                    uint64_t mid, bool in_flight, uint64_t mono)
{
    mq_jrec_t r = {.type = MQ_JREC_MSG_PUT};
    r.out = (mq_jrec_out_t){
        .client_id = {s->client_id, s->id_len},
        .mid = mid,
        .packet_id = in_flight ? o->packet_id : 0,
        .state = in_flight ? o->state : MQ_OUT_PUBLISH,
        .flags =
            (uint8_t)((o->retain ? MQ_JREC_MSG_RETAIN : 0) | (in_flight ? MQ_JREC_MSG_DUP : 0)),
    };
    if (o->msg)
        r.out.msg = jmsg(o->msg, o->qos, ss->wall, mono);
    else /* past PUBREC the message is gone; only its packet id matters, but the record wants a
            topic name */
        r.out.msg = (mq_jrec_msg_t){.topic = {"-", 1}, .qos = 2};
    put(pt, &r, ss->salt);
}

static void put_messages(part_t *pt, const sess_snap_t *ss, const mq_sess_t *s)
{
    /* each with the number the journal knows it by; 1, 2, 3... for one it never numbered (no
     * journal), below every journal number (wall-clock µs), so the order stays */
    uint64_t mono = mono_ms(), mid = 1;
    for (uint32_t i = 0; i < s->n_inflight; i++, mid++) {
        const mq_outmsg_t *o = &s->inflight[i];
        put_out(pt, ss, s, o, o->mid ? o->mid : mid, true, mono);
    }
    for (uint32_t i = 0; i < mq_sess_queued(s); i++, mid++) {
        const mq_outmsg_t *o = mq_sess_queued_at(s, i);
        bool keep = o->qos > 0 || s->home->limits->queue_qos0; /* QoS 0 with queue_qos0_messages */
        if (keep && !(o->msg->expire_at && o->msg->expire_at <= mono))
            put_out(pt, ss, s, o, o->mid ? o->mid : mid, false, mono);
    }
    for (uint32_t i = 0; i < mq_sess_qos2_in_count(s); i++) {
        mq_jrec_t r = {.type = MQ_JREC_QOS2_IN_ADD};
        r.qos2 = (mq_jrec_qos2_t){{s->client_id, s->id_len}, mq_sess_qos2_in_at(s, i)};
        put(pt, &r, ss->salt);
    }
}

/* The SESS_PUT of 's' (no will). */
static mq_jrec_t sess_record(const sess_snap_t *ss, const mq_sess_t *s)
{
    return mq_jwriter_sess_record(s, mq_jwriter_disconnected_at(s, ss->wall, mono_ms()));
}

/* A will waiting for its delay: the session's SESS_PUT again, with the will (replay keeps the
 * session's subscriptions and messages when a SESS_PUT replaces its fields). */
static void put_will(part_t *pt, const sess_snap_t *ss, const mq_sess_t *s, const mq_msg_t *w,
                     uint64_t fire_at)
{
    uint64_t mono = mono_ms();
    mq_jrec_t r = sess_record(ss, s);
    int64_t fire_wall = ss->wall + (int64_t)((fire_at > mono ? fire_at - mono : 0) + 999) / 1000;
    r.sess.has_will = true;
    r.sess.will_retain = w->retain;
    r.sess.will = jmsg(w, w->qos, ss->wall, mono);
    r.sess.will.expiry_at = 0; /* not kept for a will */
    r.sess.will_delay =
        fire_wall > r.sess.disconnected_at ? (uint32_t)(fire_wall - r.sess.disconnected_at) : 0;
    put(pt, &r, ss->salt);
}

/* On the session's worker: SESS_PUT, its subscriptions, messages and QoS 2 ids; or, for a
 * waiting will, the SESS_PUT that carries it. */
static void snap_sess(void *arg, unsigned worker, const mq_sess_t *s, const mq_msg_t *will,
                      uint64_t fire_at)
{
    const sess_snap_t *ss = arg;
    if (s->clean || s->expiry_s == 0)
        return; /* ends with its connection */
    part_t *pt = &ss->parts[worker];
    if (will) {
        put_will(pt, ss, s, will, fire_at);
        return;
    }
    mq_jrec_t r = sess_record(ss, s);
    put(pt, &r, ss->salt);
    for (uint32_t i = 0; i < s->n_subs; i++) {
        const mq_sub_t *sub = &s->subs[i];
        mq_jrec_t a = {.type = MQ_JREC_SUB_ADD};
        a.sub = (mq_jrec_sub_t){
            .client_id = {s->client_id, s->id_len},
            .filter = {mq_sub_filter(sub), sub->len},
            .options =
                (uint8_t)(sub->qos | (sub->opts & MQ_SUB_NO_LOCAL ? MQ_JREC_SUBOPT_NO_LOCAL : 0) |
                          (sub->opts & MQ_SUB_RAP ? MQ_JREC_SUBOPT_RAP : 0)),
            .sub_id = sub->sub_id,
        };
        put(pt, &a, ss->salt);
    }
    put_messages(pt, ss, s);
    pt->n_sessions++;
}

/* Appends every worker's sessions to 's'; returns how many. */
static size_t snap_sessions(snap_t *s, mq_server_t *srv)
{
    unsigned nw = mq_server_workers(srv);
    sess_snap_t ss = {mq_calloc(nw, sizeof(part_t)), s->salt, s->wall};
    mq_server_each_session(srv, snap_sess, &ss);
    size_t n = 0;
    for (unsigned i = 0; i < nw; i++) {
        mq_buf_append(&s->out, ss.parts[i].out.data, ss.parts[i].out.len);
        s->n_records += ss.parts[i].n_records;
        n += ss.parts[i].n_sessions;
        mq_buf_fini(&ss.parts[i].out);
    }
    mq_free(ss.parts);
    return n;
}

/* NAME.tmp written and synced, renamed over NAME, the directory synced. */
static int write_snapshot(const mq_persist_t *p, const mq_buf_t *b)
{
    int fd = open(p->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    for (size_t off = 0; off < b->len;) {
        ssize_t w = write(fd, b->data + off, b->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            unlink(p->tmp);
            return -e;
        }
        off += (size_t)w;
    }
    if (fdatasync(fd) < 0 || close(fd) < 0) {
        int e = errno;
        unlink(p->tmp);
        return -e;
    }
    if (rename(p->tmp, p->path) < 0) {
        int e = errno;
        unlink(p->tmp);
        return -e;
    }
    sync_dir(p); /* the rename itself durable */
    return 0;
}

int mq_persist_save(mq_persist_t *p, mq_server_t *srv)
{
    MQ_LOG(MQ_LOG_NOTICE, "Saving in-memory database to %s.", p->path);
    double t0 = mono_s();
    uint64_t gen = p->generation + 1;
    /* the workers' journals move to the new generation first: what the old ones hold is in the
     * store and the sessions read below, so they can go once this snapshot is durable */
    int rc = mq_server_rotate_journals(srv, p->path, gen);
    if (rc < 0) {
        MQ_LOG(MQ_LOG_ERROR,
               "Error saving in-memory database: new journal files in %s: %s; nothing saved.",
               p->dir, strerror(-rc));
        return -1;
    }
    sync_dir(p);
    p->generation = gen; /* the journals of 'gen' are being written, saved or not */
    snap_t s = {.wall = time(NULL)};
    mq_buf_init(&s.out);
    if (getrandom(&s.salt, sizeof(s.salt), GRND_NONBLOCK) != sizeof(s.salt))
        s.salt = (uint64_t)s.wall * 0x9E3779B97F4A7C15ull ^ mono_ms();
    /* each retained message is written with the number the store gave its change, so a
     * journal record of a later change to its topic wins at replay and an earlier one loses;
     * this is only for a message without one */
    s.seq = mq_jrec_wall_us();
    if (s.seq <= p->seq_floor)
        s.seq = p->seq_floor + 1;
    uint64_t changed = changes(srv); /* read first: a change during the walk makes the next
                                        save due */
    mq_jrec_t h = {.type = MQ_JREC_FILE_HEADER};
    h.header = (mq_jrec_header_t){.version = MQ_JREC_VERSION,
                                  .kind = MQ_JREC_KIND_SNAPSHOT,
                                  .n_workers = (uint16_t)mq_server_workers(srv),
                                  .generation = gen,
                                  .wall_time = s.wall,
                                  .salt = s.salt};
    (void)mq_jrec_encode(&s.out, &h, 0);
    s.mono = mono_ms();
    (void)mq_server_each_retained(srv, snap_one, &s);
    uint64_t n_retained = s.n_records;
    size_t n_sessions = snap_sessions(&s, srv);
    mq_jrec_t end = {.type = MQ_JREC_SNAP_END};
    end.snap_end = (mq_jrec_snap_end_t){.generation = gen, .n_records = s.n_records};
    (void)mq_jrec_encode(&s.out, &end, s.salt);
    rc = write_snapshot(p, &s.out);
    if (rc < 0) {
        MQ_LOG(MQ_LOG_ERROR,
               "Error saving in-memory database to %s: %s; the previous snapshot is kept.", p->tmp,
               strerror(-rc));
    } else {
        drop_journals(p, gen);
        p->changes_at_save = changed;
        MQ_LOG(MQ_LOG_NOTICE,
               "Saved %llu retained messages and %zu sessions (%zu bytes) in %.3f s.",
               (unsigned long long)n_retained, n_sessions, s.out.len, mono_s() - t0);
    }
    mq_buf_fini(&s.out);
    return rc < 0 ? -1 : 0;
}

/* ---- autosave ----------------------------------------------------------------------------- */

/* Journals above persistence_journal_limit bytes in all are folded into a snapshot at once,
 * whatever autosave_interval says: replaying them at start-up, and the disk they take, stay
 * bounded. Their size is looked at this often: */
#define JOURNAL_CHECK_S 5.0

/* Bytes the journals of the current generation take. */
static uint64_t journal_bytes(const mq_persist_t *p)
{
    jfile_t *js;
    size_t n = list_journals(p, &js);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (js[i].gen == p->generation && stat(js[i].path, &st) == 0)
            total += (uint64_t)st.st_size;
    }
    free_journals(js, n);
    return total;
}

double mq_persist_wait(const mq_persist_t *p, double now_s)
{
    if (p == NULL)
        return 3600;
    double w = 3600;
    if (p->interval != 0)
        w = p->on_changes ? 1 : p->next_save_s > now_s ? p->next_save_s - now_s : 0;
    return w < JOURNAL_CHECK_S ? w : JOURNAL_CHECK_S; /* the journals' size is looked at too */
}

bool mq_persist_tick(mq_persist_t *p, mq_server_t *srv, double now_s)
{
    if (p == NULL)
        return false;
    if (now_s >= p->next_check_s) {
        p->next_check_s = now_s + JOURNAL_CHECK_S;
        uint64_t bytes = journal_bytes(p);
        if (bytes > p->journal_limit) {
            MQ_LOG(MQ_LOG_NOTICE, "Journals hold %llu bytes: folding them into a snapshot.",
                   (unsigned long long)bytes);
            bool ok = mq_persist_save(p, srv) == 0;
            if (p->interval && !p->on_changes)
                p->next_save_s = now_s + p->interval;
            if (!ok) /* a failing save is not tried again every check */
                p->next_check_s = now_s + 60;
            return ok;
        }
    }
    if (p->interval == 0)
        return false;
    if (now_s < p->next_save_s)
        return false;
    uint64_t changed = changes(srv) - p->changes_at_save;
    if (p->on_changes ? changed < p->interval : changed == 0) {
        if (!p->on_changes)
            p->next_save_s = now_s + p->interval; /* nothing changed since the last save */
        return false;
    }
    bool ok = mq_persist_save(p, srv) == 0;
    /* a failed save is tried again after a pause, not on every check */
    p->next_save_s = now_s + (p->on_changes ? (ok ? 0 : 10) : p->interval);
    return ok;
}
