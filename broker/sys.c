/* SPDX-License-Identifier: MIT */
/* broker/sys.c - computes and publishes $SYS/broker/... every sys_interval, as mosquitto does. */
#include "broker/sys.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "mq_config.h"

/* The last value published per topic, so that only changes go out (as in mosquitto). */
typedef struct sys_topic {
    char *topic;
    char *value;
} sys_topic_t;

/* An exponentially weighted per-minute rate over 1, 5 and 15 minutes, like mosquitto's
 * $SYS/broker/load/...: load = load * e + rate_per_minute * (1 - e), e = exp(-dt / window). */
typedef struct load3 {
    double v[3];
    uint64_t last;
    bool primed;
} load3_t;

enum {
    L_MSG_RX,
    L_MSG_TX,
    L_PUB_RX,
    L_PUB_TX,
    L_PUB_DROP,
    L_BYTES_RX,
    L_BYTES_TX,
    L_SOCKETS,
    L_CONNECTIONS,
    N_LOADS
};

static const char *const load_names[N_LOADS] = {
    "messages/received", "messages/sent", "publish/received", "publish/sent", "publish/dropped",
    "bytes/received",    "bytes/sent",    "sockets",          "connections",
};

struct mq_sys {
    mq_server_t *srv;
    double start_s, last_s;
    sys_topic_t *topics;
    uint32_t n_topics, cap_topics;
    load3_t loads[N_LOADS];
    uint64_t clients_max;
    uint64_t heap_max;
    mq_server_stats_t *per_worker;
};

mq_sys_t *mq_sys_new(mq_server_t *srv, double start_s)
{
    mq_sys_t *sys = mq_calloc(1, sizeof(*sys));
    sys->srv = srv;
    sys->start_s = sys->last_s = start_s;
    sys->per_worker = mq_calloc(mq_server_workers(srv), sizeof(*sys->per_worker));
    return sys;
}

void mq_sys_free(mq_sys_t *sys)
{
    if (sys == NULL)
        return;
    for (size_t i = 0; i < sys->n_topics; i++) {
        mq_free(sys->topics[i].topic);
        mq_free(sys->topics[i].value);
    }
    mq_free(sys->topics);
    mq_free(sys->per_worker);
    mq_free(sys);
}

/* Publishes 'value' on 'topic' when it differs from what was last published there. */
static void put(mq_sys_t *sys, const char *topic, const char *value)
{
    sys_topic_t *t = NULL;
    for (size_t i = 0; i < sys->n_topics; i++) {
        if (strcmp(sys->topics[i].topic, topic) == 0) {
            t = &sys->topics[i];
            break;
        }
    }
    if (t && strcmp(t->value, value) == 0)
        return;
    if (t == NULL) {
        if (sys->n_topics == sys->cap_topics) {
            sys->topics = mq_grow(sys->topics, &sys->cap_topics, sizeof(*sys->topics), 64);
        }
        t = &sys->topics[sys->n_topics++];
        t->topic = mq_strndup(topic, strlen(topic));
        t->value = NULL;
    }
    mq_free(t->value);
    t->value = mq_strndup(value, strlen(value));
    mq_server_publish(sys->srv, topic, value, strlen(value), true);
}

static void put_u64(mq_sys_t *sys, const char *topic, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    put(sys, topic, buf);
}

static void update_load(mq_sys_t *sys, int i, uint64_t counter, double dt)
{
    static const double windows[3] = {60.0, 300.0, 900.0};
    static const char *const suffix[3] = {"1min", "5min", "15min"};
    load3_t *l = &sys->loads[i];
    if (!l->primed) { /* the first interval only sets the baseline */
        l->primed = true;
        l->last = counter;
    }
    double per_minute = dt > 0 ? (double)(counter - l->last) * 60.0 / dt : 0.0;
    l->last = counter;
    for (int k = 0; k < 3; k++) {
        double e = exp(-dt / windows[k]);
        l->v[k] = l->v[k] * e + per_minute * (1.0 - e);
        char topic[96], value[32];
        snprintf(topic, sizeof(topic), "$SYS/broker/load/%s/%s", load_names[i], suffix[k]);
        /* "%.2f": a move under 0.01 does not change the text, so it is not re-published */
        snprintf(value, sizeof(value), "%.2f", l->v[k]);
        put(sys, topic, value);
    }
}

/* The figures of core/stats.h that have a $SYS topic, broker-wide and per worker. */
typedef struct sys_row {
    const char *topic;
    size_t off;
} sys_row_t;

#define SYS_ROW(f, how, topic, ...) {topic, offsetof(mq_server_stats_t, f)},
#define WSYS_ROW(f, how, sys, metric, help, wtopic, ...) {wtopic, offsetof(mq_server_stats_t, f)},
/* a NULL topic: a figure without that form (skipped) */
static const sys_row_t sys_rows[] = {MQ_STATS(SYS_ROW)};
static const sys_row_t worker_rows[] = {MQ_STATS(WSYS_ROW)};
#undef SYS_ROW
#undef WSYS_ROW

void mq_sys_update(mq_sys_t *sys, double now_s)
{
    mq_server_stats_t st;
    mq_server_stats(sys->srv, &st, sys->per_worker);
    double dt = now_s - sys->last_s;
    sys->last_s = now_s;
    char buf[96];

    put(sys, "$SYS/broker/version", "starling version " MQ_VERSION);
    snprintf(buf, sizeof(buf), "%llu seconds", (unsigned long long)(now_s - sys->start_s));
    put(sys, "$SYS/broker/uptime", buf);

    if (st.sessions > sys->clients_max)
        sys->clients_max = st.sessions;
    put_u64(sys, "$SYS/broker/clients/maximum", sys->clients_max);
    put_u64(sys, "$SYS/broker/clients/active", st.connections); /* mosquitto's older names */
    put_u64(sys, "$SYS/broker/clients/disconnected", st.disconnected);
    put_u64(sys, "$SYS/broker/clients/inactive", st.disconnected);

    /* every figure of the one list (core/stats.h) that has a $SYS topic */
    for (size_t k = 0; k < MQ_ARRAY_LEN(sys_rows); k++) {
        if (sys_rows[k].topic == NULL)
            continue;
        snprintf(buf, sizeof(buf), "$SYS/broker/%s", sys_rows[k].topic);
        put_u64(sys, buf, mq_stats_at(&st, sys_rows[k].off));
    }

    /* the store: retained messages plus those held for sessions (queued or in flight) */
    uint64_t stored = st.retained + st.queued + st.inflight;
    put_u64(sys, "$SYS/broker/store/messages/count", stored);
    put_u64(sys, "$SYS/broker/messages/stored", stored);
    put_u64(sys, "$SYS/broker/store/messages/bytes", st.retained_bytes + st.queued_bytes);
    put_u64(sys, "$SYS/broker/shared_subscriptions/count", st.shared_groups);
    put_u64(sys, "$SYS/broker/retained messages/count", st.retained);

    uint64_t heap = mq_mem_allocated();
    if (heap) { /* only jemalloc keeps the figure; mosquitto likewise omits it without it */
        if (heap > sys->heap_max)
            sys->heap_max = heap;
        put_u64(sys, "$SYS/broker/heap/current", heap);
        put_u64(sys, "$SYS/broker/heap/maximum", sys->heap_max);
    }

    update_load(sys, L_MSG_RX, st.msgs_received, dt);
    update_load(sys, L_MSG_TX, st.msgs_sent, dt);
    update_load(sys, L_PUB_RX, st.pub_received, dt);
    update_load(sys, L_PUB_TX, st.pub_sent, dt);
    update_load(sys, L_PUB_DROP, st.pub_dropped, dt);
    update_load(sys, L_BYTES_RX, st.bytes_received, dt);
    update_load(sys, L_BYTES_TX, st.bytes_sent, dt);
    update_load(sys, L_SOCKETS, st.sockets, dt);
    update_load(sys, L_CONNECTIONS, st.connects, dt);

    for (unsigned i = 0; i < mq_server_workers(sys->srv); i++) {
        for (size_t k = 0; k < MQ_ARRAY_LEN(worker_rows); k++) {
            if (worker_rows[k].topic == NULL)
                continue;
            char topic[96];
            snprintf(topic, sizeof(topic), "$SYS/broker/workers/%u/%s", i, worker_rows[k].topic);
            put_u64(sys, topic, mq_stats_at(&sys->per_worker[i], worker_rows[k].off));
        }
    }
}
