/* SPDX-License-Identifier: MIT */
/* net/jwriter.c - a worker's journal: group commit through the worker's io_uring. */
#include "net/jwriter.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/codec.h"
#include "core/jrec.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/sess.h"
#include "net/op.h"

struct mq_jwriter {
    struct io_uring *ring;
    mq_conn_loop_t *loop;
    int fd;
    char *path;
    uint64_t gen;
    uint64_t salt; /* the same in every file this writer begins: buffered records stay valid
                      across a rotation */
    unsigned worker, n_workers;
    enum mq_fsync_mode mode;
    uint64_t off;        /* file offset of the next write */
    mq_buf_t cur;        /* records of this turn, not yet submitted */
    mq_buf_t fly;        /* the write in flight (or failed, to be tried again) */
    size_t fly_done;     /* bytes of 'fly' written so far */
    uint64_t fly_off;    /* file offset of the write in flight (its file may have been rotated
                          * away since: 'off' is then the new file's) */
    int fly_fd;          /* the file the write in flight goes to */
    bool busy;           /* an operation is in flight */
    bool broken;         /* a write failed; no success since */
    bool unsynced;       /* interval: written since the last fdatasync */
    int old_fd;          /* a rotated-away file, closed once its write in flight is done */
    uint64_t sync_tag;   /* its address tags the fdatasync's completion (8-byte aligned) */
    uint64_t n_failures; /* failed writes or syncs, for the log */
    uint64_t appended;   /* records appended since the start */
    uint64_t refused;    /* records not appended (the journal was broken) since the start */
    /* answers to durability marks (net/marks.h): those of the records buffered, then those of
     * the write in flight, as {worker, turn} pairs */
    uint64_t *ans_open, *ans_sealed;
    uint32_t n_open, cap_open, n_sealed, cap_sealed;
    void (*answer)(void *arg, unsigned to, uint64_t t);
    void *answer_arg;
};

void mq_jwriter_on_durable(mq_jwriter_t *jw, void (*answer)(void *arg, unsigned to, uint64_t t),
                           void *arg)
{
    jw->answer = answer;
    jw->answer_arg = arg;
}

void mq_jwriter_after_durable(mq_jwriter_t *jw, unsigned to, uint64_t t)
{
    if (jw->n_open + 2 > jw->cap_open)
        jw->ans_open = mq_grow(jw->ans_open, &jw->cap_open, sizeof(*jw->ans_open), 16);
    jw->ans_open[jw->n_open++] = to;
    jw->ans_open[jw->n_open++] = t;
}

/* The answers waiting for the write just submitted. */
static void seal_answers(mq_jwriter_t *jw)
{
    for (uint32_t i = 0; i < jw->n_open; i++) {
        if (jw->n_sealed == jw->cap_sealed)
            jw->ans_sealed = mq_grow(jw->ans_sealed, &jw->cap_sealed, sizeof(*jw->ans_sealed), 16);
        jw->ans_sealed[jw->n_sealed++] = jw->ans_open[i];
    }
    jw->n_open = 0;
}

static void send_answers(mq_jwriter_t *jw, uint64_t *a, uint32_t *n)
{
    for (uint32_t i = 0; i + 1 < *n; i += 2)
        if (jw->answer)
            jw->answer(jw->answer_arg, (unsigned)a[i], a[i + 1]);
    *n = 0;
}

static void put_header(mq_jwriter_t *jw, mq_buf_t *out)
{
    mq_jrec_t h = {.type = MQ_JREC_FILE_HEADER};
    h.header = (mq_jrec_header_t){.version = MQ_JREC_VERSION,
                                  .kind = MQ_JREC_KIND_WORKER,
                                  .worker = (uint16_t)jw->worker,
                                  .n_workers = (uint16_t)jw->n_workers,
                                  .generation = jw->gen,
                                  .wall_time = time(NULL),
                                  .salt = jw->salt};
    (void)mq_jrec_encode(out, &h, 0);
}

mq_jwriter_t *mq_jwriter_new(struct io_uring *ring, mq_conn_loop_t *loop, int fd, const char *path,
                             uint64_t gen, unsigned worker, unsigned n_workers,
                             enum mq_fsync_mode mode)
{
    mq_jwriter_t *jw = mq_calloc(1, sizeof(*jw));
    jw->ring = ring;
    jw->loop = loop;
    jw->fd = fd;
    jw->fly_fd = -1;
    jw->old_fd = -1;
    jw->path = mq_strndup(path, strlen(path));
    jw->gen = gen;
    jw->worker = worker;
    jw->n_workers = n_workers;
    jw->mode = mode;
    if (getrandom(&jw->salt, sizeof(jw->salt), GRND_NONBLOCK) != sizeof(jw->salt))
        jw->salt = mq_jrec_wall_us() * 0x9E3779B97F4A7C15ull ^ (uint64_t)worker;
    mq_buf_init(&jw->cur);
    mq_buf_init(&jw->fly);
    put_header(jw, &jw->cur);
    return jw;
}

static void write_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            MQ_LOG(MQ_LOG_ERROR, "Error: persistence journal: %s at exit; the snapshot holds it.",
                   w < 0 ? strerror(errno) : "short write");
            return;
        }
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
}

void mq_jwriter_free(mq_jwriter_t *jw)
{
    if (jw == NULL)
        return;
    if (jw->busy) { /* the kernel may still read 'fly' and use the fds: left to it */
        MQ_LOG(MQ_LOG_ERROR,
               "Error: persistence journal %s: an operation still in flight at exit; what the "
               "last turns wrote is in the snapshot taken at exit.",
               jw->path);
        return;
    }
    if (jw->fd >= 0) { /* what the last turns left: a crash at exit still finds it */
        uint64_t off = jw->off;
        if (jw->fly.len > 0 && jw->fly_fd == jw->fd) {
            write_all(jw->fd, jw->fly.data, jw->fly.len, off);
            off += jw->fly.len;
        }
        write_all(jw->fd, jw->cur.data, jw->cur.len, off);
        if (jw->mode != MQ_FSYNC_NEVER)
            (void)fdatasync(jw->fd);
        close(jw->fd);
    }
    if (jw->old_fd >= 0)
        close(jw->old_fd);
    mq_buf_fini(&jw->cur);
    mq_buf_fini(&jw->fly);
    mq_free(jw->ans_open);
    mq_free(jw->ans_sealed);
    mq_free(jw->path);
    mq_free(jw);
}

uint64_t mq_jwriter_appended(const mq_jwriter_t *jw)
{
    return jw ? jw->appended : 0;
}

uint64_t mq_jwriter_refused(const mq_jwriter_t *jw)
{
    return jw ? jw->refused : 0;
}

void mq_jwriter_hold(mq_jwriter_t *jw, mq_conn_t *c, bool need, uint64_t since)
{
    if (jw && jw->mode == MQ_FSYNC_ALWAYS && (need || jw->appended != since))
        mq_conn_gate(c);
}

int mq_jwriter_create(const char *base, uint64_t gen, unsigned worker, char *path, size_t cap)
{
    snprintf(path, cap, "%s.%llu.w%u", base, (unsigned long long)gen, worker);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    return fd < 0 ? -errno : fd;
}

void mq_jwriter_sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir =
        slash ? mq_strndup(path, slash == path ? 1 : (size_t)(slash - path)) : mq_strndup(".", 1);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    mq_free(dir);
}

bool mq_jwriter_gates(const mq_jwriter_t *jw)
{
    return jw->mode == MQ_FSYNC_ALWAYS;
}

bool mq_jwriter_busy(const mq_jwriter_t *jw)
{
    return jw->busy;
}

bool mq_jwriter_broken(const mq_jwriter_t *jw)
{
    return jw->broken;
}

/* Wall-clock seconds at which a message due at loop-clock 'expire_at' expires; 0 = never. */
static int64_t wall_expiry(const mq_jwriter_t *jw, uint64_t expire_at)
{
    if (expire_at == 0)
        return 0;
    uint64_t now = jw->loop->now_ms;
    uint64_t left = expire_at > now ? expire_at - now : 0;
    return time(NULL) + (int64_t)((left + 999) / 1000); /* rounded up: never earlier */
}

/* Appends record 'r' to this turn's buffer; false (nothing appended) while the journal is
 * broken: the change is then only in memory until the next snapshot. */
static bool append(mq_jwriter_t *jw, const mq_jrec_t *r)
{
    if (jw->broken) {
        jw->refused++;
        return false;
    }
    (void)mq_jrec_encode(&jw->cur, r, jw->salt);
    jw->appended++;
    return true;
}

bool mq_jwriter_retain(mq_jwriter_t *jw, const mq_msg_t *msg)
{
    mq_jrec_t r = {.type = msg->payload_len ? MQ_JREC_RETAIN_SET : MQ_JREC_RETAIN_CLEAR};
    r.retain.seq = msg->rseq; /* the store's number: the order of its changes to this topic */
    r.retain.msg =
        (mq_jrec_msg_t){.topic = mq_msg_topic(msg),
                        .payload = mq_msg_payload(msg),
                        .props = {(const char *)msg->wire + msg->wire_len, msg->props_len},
                        .qos = msg->qos,
                        .expiry_at = wall_expiry(jw, msg->expire_at)};
    if (r.type == MQ_JREC_RETAIN_SET)
        r.retain.src = mq_jrec_src_of(msg);
    return append(jw, &r);
}

mq_jrec_t mq_jwriter_sess_record(const mq_sess_t *s, int64_t disconnected_at)
{
    mq_jrec_t r = {.type = MQ_JREC_SESS_PUT};
    r.sess = (mq_jrec_sess_t){
        .client_id = {s->client_id, s->id_len},
        .username = {s->username, s->user_len},
        .has_username = s->username != NULL,
        .level = s->peer.proto ? s->peer.proto : MQ_PROTO_311,
        .expiry_interval = s->expiry_s,
        .disconnected_at = disconnected_at,
    };
    return r;
}

bool mq_jwriter_sess_put(mq_jwriter_t *jw, const mq_sess_t *s, bool connected)
{
    /* 0: connected when written; replay counts the expiry from the restart */
    mq_jrec_t r = mq_jwriter_sess_record(s, connected ? 0 : time(NULL));
    return append(jw, &r);
}

int64_t mq_jwriter_disconnected_at(const mq_sess_t *s, int64_t wall, uint64_t mono)
{
    if (s->out || s->expire_at == 0 || s->expiry_s == 0xFFFFFFFFu)
        return wall; /* connected until now, or an expiry that never comes */
    uint64_t left_ms = s->expire_at > mono ? s->expire_at - mono : 0;
    return wall + (int64_t)((left_ms + 999) / 1000) - (int64_t)s->expiry_s;
}

bool mq_jwriter_will(mq_jwriter_t *jw, const mq_sess_t *s, const mq_msg_t *will, uint32_t delay_s)
{
    int64_t wall = time(NULL);
    mq_jrec_t r = mq_jwriter_sess_record(
        s, will ? wall : mq_jwriter_disconnected_at(s, wall, jw->loop->now_ms));
    if (will) { /* its own expiry counts from its publication: not kept */
        r.sess.has_will = true;
        r.sess.will_retain = will->retain;
        r.sess.will_delay = delay_s + 1; /* 'disconnected_at' is rounded down: never early */
        r.sess.will =
            (mq_jrec_msg_t){.topic = mq_msg_topic(will),
                            .payload = mq_msg_payload(will),
                            .props = {(const char *)will->wire + will->wire_len, will->props_len},
                            .qos = will->qos};
    }
    return append(jw, &r);
}

bool mq_jwriter_sess_del(mq_jwriter_t *jw, const mq_sess_t *s)
{
    mq_jrec_t r = {.type = MQ_JREC_SESS_DEL};
    r.sess.client_id = (mq_str_t){s->client_id, s->id_len};
    return append(jw, &r);
}

bool mq_jwriter_sub(mq_jwriter_t *jw, const mq_sess_t *s, const mq_sub_t *sub, mq_str_t filter)
{
    mq_jrec_t r = {.type = sub ? MQ_JREC_SUB_ADD : MQ_JREC_SUB_DEL};
    r.sub = (mq_jrec_sub_t){.client_id = {s->client_id, s->id_len}, .filter = filter};
    if (sub) {
        r.sub.filter = (mq_str_t){mq_sub_filter(sub), sub->len};
        r.sub.options =
            (uint8_t)(sub->qos | (sub->opts & MQ_SUB_NO_LOCAL ? MQ_JREC_SUBOPT_NO_LOCAL : 0) |
                      (sub->opts & MQ_SUB_RAP ? MQ_JREC_SUBOPT_RAP : 0));
        r.sub.sub_id = sub->sub_id;
    }
    return append(jw, &r);
}

bool mq_jwriter_qos2(mq_jwriter_t *jw, const mq_sess_t *s, uint16_t packet_id, bool add)
{
    mq_jrec_t r = {.type = add ? MQ_JREC_QOS2_IN_ADD : MQ_JREC_QOS2_IN_DEL};
    r.qos2 = (mq_jrec_qos2_t){{s->client_id, s->id_len}, packet_id};
    return append(jw, &r);
}

static mq_jrec_t out_record(uint8_t type, const mq_sess_t *s, const mq_outmsg_t *o)
{
    mq_jrec_t r = {.type = type};
    r.out = (mq_jrec_out_t){
        .client_id = {s->client_id, s->id_len},
        .mid = o->mid,
        .packet_id = o->packet_id,
        .state = o->state,
        .flags = (uint8_t)(o->retain ? MQ_JREC_MSG_RETAIN : 0),
    };
    return r;
}

bool mq_jwriter_msg_put(mq_jwriter_t *jw, const mq_sess_t *s, const mq_outmsg_t *o)
{
    mq_jrec_t r = out_record(MQ_JREC_MSG_PUT, s, o);
    const mq_msg_t *m = o->msg;
    r.out.msg = (mq_jrec_msg_t){.topic = mq_msg_topic(m),
                                .payload = mq_msg_payload(m),
                                .props = {(const char *)m->wire + m->wire_len, m->props_len},
                                .qos = o->qos,
                                .expiry_at = wall_expiry(jw, m->expire_at)};
    return append(jw, &r);
}

bool mq_jwriter_msg_update(mq_jwriter_t *jw, const mq_sess_t *s, const mq_outmsg_t *o)
{
    mq_jrec_t r = out_record(MQ_JREC_MSG_UPDATE, s, o);
    return append(jw, &r);
}

bool mq_jwriter_msg_del(mq_jwriter_t *jw, const mq_sess_t *s, uint64_t mid)
{
    mq_jrec_t r = {.type = MQ_JREC_MSG_DEL};
    r.out = (mq_jrec_out_t){.client_id = {s->client_id, s->id_len}, .mid = mid};
    return append(jw, &r);
}

static void submit_write(mq_jwriter_t *jw)
{
    struct io_uring_sqe *sqe = mq_op_sqe(jw->ring);
    if (sqe == NULL) { /* the ring is unusable: the loop is ending anyway */
        jw->broken = true;
        return;
    }
    io_uring_prep_write(sqe, jw->fly_fd, jw->fly.data + jw->fly_done,
                        (unsigned)(jw->fly.len - jw->fly_done), jw->fly_off + jw->fly_done);
    io_uring_sqe_set_data64(sqe, mq_op_pack(jw, MQ_OP_JOURNAL));
    jw->busy = true;
}

static void submit_sync(mq_jwriter_t *jw, int fd)
{
    struct io_uring_sqe *sqe = mq_op_sqe(jw->ring);
    if (sqe == NULL) {
        jw->broken = true;
        return;
    }
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sqe, mq_op_pack(&jw->sync_tag, MQ_OP_JOURNAL));
    jw->busy = true;
}

void mq_jwriter_flush(mq_jwriter_t *jw)
{
    if (jw->busy || jw->broken)
        return;
    if (jw->cur.len == 0) {
        /* gates with no record behind them (a QoS 2 re-send's PUBREC): everything appended
         * before them is durable already */
        if (jw->loop->n_gate_open > 0) {
            mq_conn_gates_seal(jw->loop);
            mq_conn_gates_release(jw->loop, true);
        }
        send_answers(jw, jw->ans_open, &jw->n_open);
        return;
    }
    mq_buf_t t = jw->fly; /* swap: the write owns 'fly', new records go to 'cur' */
    jw->fly = jw->cur;
    jw->cur = t;
    jw->cur.len = 0;
    jw->fly_done = 0;
    jw->fly_fd = jw->fd;
    jw->fly_off = jw->off;
    submit_write(jw);
    mq_conn_gates_seal(jw->loop); /* the acknowledgements gated so far wait for this write */
    seal_answers(jw);
}

/* A write or sync failed: said loudly once per episode, tried again at the next tick. */
static void failed(mq_jwriter_t *jw, int err, const char *what)
{
    jw->busy = false;
    jw->n_failures++;
    if (!jw->broken)
        MQ_LOG(MQ_LOG_ERROR,
               "Error: persistence journal %s: %s failed: %s. What needs it is refused (retained "
               "QoS 1/2 and persistent QoS 2 publishes) or held (persistent sessions' SUBACKs) "
               "until it can be written again (tried every second).",
               jw->path, what, strerror(err));
    jw->broken = true;
    if (jw->fly_fd != jw->fd) { /* the file was rotated away: the snapshot holds the records */
        jw->fly.len = 0;
        if (jw->old_fd >= 0) {
            close(jw->old_fd);
            jw->old_fd = -1;
        }
    }
    mq_conn_gates_release(jw->loop, false);
}

/* The write in flight is durable (or, without 'always', written). */
static void done(mq_jwriter_t *jw)
{
    jw->busy = false;
    if (jw->fly_fd == jw->fd)
        jw->off += jw->fly.len;
    jw->fly.len = 0;
    jw->fly_fd = -1;
    if (jw->old_fd >= 0) { /* a rotation waited for this write */
        close(jw->old_fd);
        jw->old_fd = -1;
    }
    if (jw->broken) {
        jw->broken = false;
        MQ_LOG(MQ_LOG_NOTICE, "Persistence journal %s is written again (%llu failures).", jw->path,
               (unsigned long long)jw->n_failures);
    }
    mq_conn_gates_release(jw->loop, true);
    send_answers(jw, jw->ans_sealed, &jw->n_sealed);
}

void mq_jwriter_on_cqe(mq_jwriter_t *jw, void *tag, const struct io_uring_cqe *cqe)
{
    if (tag == &jw->sync_tag) {
        if (cqe->res < 0) {
            failed(jw, -cqe->res, "fdatasync");
            return;
        }
        if (jw->fly.len == 0) { /* the once-a-second sync (interval) */
            jw->busy = false;
            if (jw->old_fd >= 0) {
                close(jw->old_fd);
                jw->old_fd = -1;
            }
            return;
        }
        done(jw);
        return;
    }
    if (cqe->res <= 0) { /* 0: nothing more fits ('ulimit -f' reached, a full disk) */
        failed(jw, cqe->res < 0 ? -cqe->res : ENOSPC, "write");
        return;
    }
    jw->fly_done += (size_t)cqe->res;
    if (jw->fly_done < jw->fly.len) { /* a short write: the rest (STYLE.md §7) */
        submit_write(jw);
        return;
    }
    if (jw->mode == MQ_FSYNC_ALWAYS) {
        submit_sync(jw, jw->fly_fd);
        return;
    }
    jw->unsynced = true;
    done(jw);
}

void mq_jwriter_tick(mq_jwriter_t *jw)
{
    if (jw->busy)
        return;
    if (jw->broken) { /* the same bytes at the same offset: a partial write is overwritten */
        if (jw->fly.len == 0) { /* what failed was dropped (a rotation): try what came since */
            if (jw->cur.len == 0) {
                jw->broken = false;
                return;
            }
            mq_buf_t t = jw->fly;
            jw->fly = jw->cur;
            jw->cur = t;
            jw->cur.len = 0;
        }
        jw->fly_fd = jw->fd;
        jw->fly_off = jw->off;
        jw->fly_done = 0;
        submit_write(jw);
        return;
    }
    if (jw->mode == MQ_FSYNC_INTERVAL && jw->unsynced) {
        jw->unsynced = false;
        submit_sync(jw, jw->fd);
    }
}

void mq_jwriter_rotate(mq_jwriter_t *jw, int fd, const char *path, uint64_t gen)
{
    if (jw->busy && jw->old_fd < 0) {
        jw->old_fd = jw->fd; /* its operation in flight finishes there */
    } else {
        /* nothing in flight uses it (a second rotation during one operation: that one is on
         * 'old_fd'); it holds nothing that is not in the snapshot that follows */
        close(jw->fd);
    }
    if (jw->broken && !jw->busy) {
        /* what could not be written is in the snapshot that follows: start afresh there */
        jw->fly.len = 0;
        jw->fly_fd = -1;
    }
    jw->fd = fd;
    jw->off = 0;
    jw->gen = gen;
    mq_free(jw->path);
    jw->path = mq_strndup(path, strlen(path));
    mq_buf_t b; /* the new file begins with its header, then the records not yet written */
    mq_buf_init(&b);
    put_header(jw, &b);
    mq_buf_append(&b, jw->cur.data, jw->cur.len);
    mq_buf_fini(&jw->cur);
    jw->cur = b;
}
