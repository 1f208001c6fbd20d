/* SPDX-License-Identifier: MIT */
/* tests/unit/net/test_auth.c - the security state: CONNECT decisions, ACL checks and classes,
 * re-classification after a reload, publication and retirement through the epoch. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "core/epoch.h"
#include "core/mem.h"
#include "core/route.h"
#include "core/tindex.h"
#include "net/auth.h"

static const uint8_t salt[MQ_PASSWD_SALT_LEN] = "twelve-bytes";

static mq_epoch_t *ep;
static mq_epoch_rec_t *rec;
static mq_tindex_t *ix;
static mq_route_t *route;
static mq_auth_t *auth;
static mq_auth_cache_t *cache;
static mq_sess_limits_t lim = {.max_inflight = 10};
static mq_sess_home_t home = {.limits = &lim};

static void setup(void)
{
    ep = mq_epoch_new(1);
    rec = mq_epoch_register(ep, 0);
    ix = mq_tindex_new(ep);
    route = mq_route_new(ix, 0, 1, rec, NULL);
    cache = mq_calloc(1, sizeof(*cache));
    auth = NULL;
}

static void teardown(void)
{
    mq_route_free(route);
    mq_tindex_free(ix);
    mq_auth_free(auth);
    mq_epoch_free(ep);
    mq_free(cache);
}

TestSuite(auth, .init = setup, .fini = teardown);

/* A password table with alice ($7$, 101 iterations) and bob ($6$). */
static mq_passwd_t *passwords(void)
{
    mq_buf_t b;
    mq_buf_init(&b);
    cr_assert(eq(
        int, mq_passwd_format_line(&b, "alice", 5, "secret", 6, MQ_PASSWD_SHA512_PBKDF2, 101, salt),
        0));
    cr_assert(
        eq(int, mq_passwd_format_line(&b, "bob", 3, "hunter2", 7, MQ_PASSWD_SHA512, 1, salt), 0));
    mq_passwd_t *t = mq_passwd_parse("pw", (const char *)b.data, b.len, NULL, NULL);
    mq_buf_fini(&b);
    return t;
}

static mq_acl_t *acl(const char *text)
{
    mq_acl_t *a = NULL;
    cr_assert(eq(int, mq_acl_parse("acl", text, strlen(text), NULL, NULL, &a), 0));
    return a;
}

static mq_connect_t cp(const char *user, const char *pw)
{
    mq_connect_t c = {.level = MQ_PROTO_311, .clean_start = true};
    if (user) {
        c.has_username = true;
        c.username = mq_str(user);
    }
    if (pw) {
        c.has_password = true;
        c.password = mq_str(pw);
    }
    return c;
}

static enum mq_rc connect_as(bool anon, const char *user, const char *pw)
{
    mq_connect_t c = cp(user, pw);
    return mq_auth_connect(auth, 0, anon, &c, cache, false);
}

Test(auth, connect_decides_as_mosquitto_2)
{
    auth = mq_auth_new(1); /* no password file */
    cr_expect(eq(int, connect_as(true, NULL, NULL), MQ_RC_SUCCESS));
    cr_expect(eq(int, connect_as(false, NULL, NULL), MQ_RC_NOT_AUTHORIZED));
    cr_expect(eq(int, connect_as(true, "alice", "x"), MQ_RC_SUCCESS), "no file: anonymous rule");
    cr_expect(eq(int, connect_as(false, "alice", "x"), MQ_RC_NOT_AUTHORIZED));
    mq_auth_set_domain(auth, 0, passwords(), NULL);
    for (int anon = 0; anon < 2; anon++) {
        cr_expect(eq(int, connect_as(anon, "alice", "secret"), MQ_RC_SUCCESS));
        cr_expect(eq(int, connect_as(anon, "bob", "hunter2"), MQ_RC_SUCCESS));
        cr_expect(eq(int, connect_as(anon, "alice", "Secret"), MQ_RC_NOT_AUTHORIZED));
        cr_expect(eq(int, connect_as(anon, "alice", NULL), MQ_RC_NOT_AUTHORIZED));
        cr_expect(eq(int, connect_as(anon, "carol", "secret"), MQ_RC_NOT_AUTHORIZED));
        cr_expect(
            eq(int, connect_as(anon, NULL, NULL), anon ? MQ_RC_SUCCESS : MQ_RC_NOT_AUTHORIZED));
    }
}

Test(auth, verified_pbkdf2_credentials_are_cached_and_a_new_table_forgets_them)
{
    auth = mq_auth_new(1);
    mq_auth_set_domain(auth, 0, passwords(), NULL);
    cr_assert(eq(int, connect_as(false, "alice", "secret"), MQ_RC_SUCCESS));
    cr_assert(eq(u64, cache->misses, 1));
    cr_assert(eq(int, connect_as(false, "alice", "secret"), MQ_RC_SUCCESS));
    cr_assert(eq(u64, cache->hits, 1));
    cr_assert(eq(int, connect_as(false, "alice", "wrong"), MQ_RC_NOT_AUTHORIZED),
              "a cached success does not open the door to another password");
    cr_assert(eq(int, connect_as(false, "bob", "hunter2"), MQ_RC_SUCCESS));
    cr_assert(eq(u64, cache->hits, 1), "$6$ is verified directly");
    mq_auth_set_domain(auth, 0, passwords(), NULL); /* a reload: a new table, a new secret */
    cr_assert(eq(int, connect_as(false, "alice", "secret"), MQ_RC_SUCCESS));
    cr_assert(eq(u64, cache->hits, 1));
    cr_assert(eq(u64, cache->misses, 3));
}

Test(auth, a_pbkdf2_run_can_be_deferred_to_the_verifier_and_its_answer_is_used_once)
{
    auth = mq_auth_new(1);
    mq_auth_set_domain(auth, 0, passwords(), NULL);
    mq_auth_slot_t slot = {.last_gen = 0};
    (void)mq_auth_publish(&slot, auth);
    mq_connect_t c = cp("alice", "secret"), b = cp("bob", "hunter2"), x = cp("alice", "nope");
    cr_expect(eq(int, mq_auth_connect(auth, 0, false, &c, cache, true), MQ_RC_AGAIN));
    cr_expect(eq(int, mq_auth_connect(auth, 0, false, &x, cache, true), MQ_RC_AGAIN));
    cr_expect(eq(int, mq_auth_connect(auth, 0, false, &b, cache, true), MQ_RC_SUCCESS),
              "$6$ is cheap: never deferred");
    mq_server_listener_t lo = {0};
    const char *why = NULL;
    cr_expect(
        eq(int, mq_auth_admit(auth, &lo, &c, false, NULL, cache, NULL, true, &why), MQ_RC_AGAIN));
    /* the verifier's answer, for this state: used, and remembered in the cache */
    mq_auth_pending_t *pd = mq_auth_pending_new(&c, 0);
    cr_expect(eq(int, pd->user.len, 5));
    cr_expect(eq(int, memcmp(pd->pw.ptr, "secret", 6), 0));
    pd->gen = mq_auth_generation(auth);
    pd->ok = true;
    mq_passwd_t *t = passwords(); /* a key made with another table never matches */
    pd->has_key = mq_passwd_cache_key(t, mq_passwd_find(t, "alice", 5), "secret", 6, &pd->key);
    cr_assert(pd->has_key);
    mq_passwd_free(t);
    cr_expect(
        eq(int, mq_auth_admit(auth, &lo, &c, false, NULL, cache, pd, true, &why), MQ_RC_SUCCESS));
    cr_expect(eq(int, mq_auth_connect(auth, 0, false, &c, cache, true), MQ_RC_AGAIN),
              "that key was not this table's");
    pd->ok = false;
    cr_expect(eq(int, mq_auth_admit(auth, &lo, &c, false, NULL, cache, pd, true, &why),
                 MQ_RC_NOT_AUTHORIZED));
    pd->gen++; /* an answer for another state is not used: verified here */
    cr_expect(
        eq(int, mq_auth_admit(auth, &lo, &c, false, NULL, cache, pd, false, &why), MQ_RC_SUCCESS));
    cr_expect(eq(int, mq_auth_connect(auth, 0, false, &c, cache, true), MQ_RC_SUCCESS),
              "verified inline: cached");
    mq_free(pd);
}

static mq_sess_t *sess(const char *id, const char *user)
{
    mq_sess_t *s =
        mq_sess_new(id, strlen(id), (uint64_t)strlen(id) * 7919 + (uint8_t)id[0], false, &home);
    mq_sess_set_username(s, user, user ? strlen(user) : 0);
    mq_route_add(route, s);
    return s;
}

Test(auth, admit_checks_the_owner_and_the_will_is_checked_as_a_write)
{
    auth = mq_auth_new(1);
    mq_auth_set_domain(auth, 0, passwords(), acl("user alice\ntopic write a/#\n"));
    mq_server_listener_t lo = {.allow_anonymous = true};
    mq_connect_t c = cp("alice", "secret");
    const char *why = NULL;
    cr_expect(eq(int, mq_auth_admit(auth, &lo, &c, false, NULL, cache, NULL, false, &why),
                 MQ_RC_SUCCESS));
    mq_connect_t bad = cp("alice", "wrong");
    cr_expect(eq(int, mq_auth_admit(auth, &lo, &bad, false, NULL, cache, NULL, false, &why),
                 MQ_RC_NOT_AUTHORIZED));
    cr_expect(strstr(why, "password") != NULL);
    mq_str_t alice = mq_str("alice");
    cr_expect(mq_auth_may_write_as(auth, 0, &alice, mq_str("d1"), "a/will", 6));
    cr_expect(not(mq_auth_may_write_as(auth, 0, &alice, mq_str("d1"), "b/will", 6)));
    cr_expect(not(mq_auth_may_write_as(auth, 0, NULL, mq_str("d1"), "a/will", 6)));
    mq_sess_t *mine = sess("d1", "alice"), *bobs = sess("d2", "bob"), *anons = sess("d3", NULL);
    cr_expect(eq(int, mq_auth_admit(auth, &lo, &c, false, mine, cache, NULL, false, &why),
                 MQ_RC_SUCCESS));
    cr_expect(eq(int, mq_auth_admit(auth, &lo, &c, false, bobs, cache, NULL, false, &why),
                 MQ_RC_CLIENT_ID_NOT_VALID));
    cr_expect(eq(int, mq_auth_admit(auth, &lo, &c, false, anons, cache, NULL, false, &why),
                 MQ_RC_CLIENT_ID_NOT_VALID));
    mq_connect_t anon = cp(NULL, NULL);
    cr_expect(eq(int, mq_auth_admit(auth, &lo, &anon, false, anons, cache, NULL, false, &why),
                 MQ_RC_SUCCESS),
              "an anonymous session is any anonymous client's");
    cr_expect(eq(int, mq_auth_admit(auth, &lo, &anon, false, mine, cache, NULL, false, &why),
                 MQ_RC_CLIENT_ID_NOT_VALID));
    cr_expect(mq_auth_same_owner(anons, NULL));
    cr_expect(not(mq_auth_same_owner(mine, NULL)));
}

Test(auth, without_an_acl_everything_is_allowed_and_fully_granted)
{
    auth = mq_auth_new(1);
    mq_sess_t *s = sess("c", "u");
    cr_expect(mq_auth_may_write(auth, s, "a", 1));
    cr_expect(mq_auth_may_read(auth, s, "$SYS/x", 6));
    cr_expect(eq(int, mq_auth_classify(auth, s, "#", 1), MQ_ACL_GRANT_FULL));
}

Test(auth, classes_follow_the_sessions_user_and_domain)
{
    auth = mq_auth_new(2);
    mq_auth_set_domain(auth, 1, NULL, acl("user u\ntopic read a/#\ntopic deny a/x\n"));
    mq_sess_t *s = sess("c", "u");
    cr_expect(eq(int, mq_auth_classify(auth, s, "#", 1), MQ_ACL_GRANT_FULL), "domain 0: no ACL");
    s->auth_domain = 1;
    cr_expect(eq(int, mq_auth_classify(auth, s, "#", 1), MQ_ACL_GRANT_PARTIAL));
    cr_expect(eq(int, mq_auth_classify(auth, s, "a/b/#", 5), MQ_ACL_GRANT_FULL));
    cr_expect(eq(int, mq_auth_classify(auth, s, "b/#", 3), MQ_ACL_GRANT_NONE));
    cr_expect(mq_auth_may_read(auth, s, "a/b", 3));
    cr_expect(not(mq_auth_may_read(auth, s, "a/x", 3)));
    cr_expect(not(mq_auth_may_write(auth, s, "a/b", 3)));
}

static bool always(void *arg, const mq_sess_t *s, const mq_msg_t *m)
{
    (void)arg, (void)s, (void)m;
    return true;
}

Test(auth, a_reload_reclassifies_subscriptions_and_drops_denied_queued_messages)
{
    auth = mq_auth_new(1);
    mq_auth_set_domain(auth, 0, NULL, acl("user u\ntopic read a/#\ntopic read b/#\n"));
    mq_auth_slot_t slot = {.last_gen = 0};
    (void)mq_auth_publish(&slot, auth);
    uint64_t gen = 0;
    mq_auth_refresh(mq_auth_get(&slot), route, &gen);
    cr_assert(eq(u64, gen, 1));
    mq_sess_t *s = sess("c", "u");
    mq_sub_t *sa = mq_route_subscribe(route, s, "a/#", 3, 1, NULL, NULL);
    mq_route_set_grant(route, s, sa, (uint8_t)mq_auth_classify(auth, s, "a/#", 3));
    mq_sub_t *sb = mq_route_subscribe(route, s, "b/#", 3, 1, NULL, NULL);
    mq_route_set_grant(route, s, sb, (uint8_t)mq_auth_classify(auth, s, "b/#", 3));
    cr_assert(eq(u8, s->subs[0].grant, MQ_ACL_GRANT_FULL));
    cr_assert(eq(u8, s->subs[1].grant, MQ_ACL_GRANT_FULL));
    mq_msg_t *ma = mq_msg_new("a/1", 3, "x", 1, 1, false),
             *mb = mq_msg_new("b/1", 3, "y", 1, 1, false);
    cr_assert(mq_sess_deliver(s, ma, 1, false)); /* detached: both queue */
    cr_assert(mq_sess_deliver(s, mb, 1, false));

    mq_auth_t *next = mq_auth_new(1);
    mq_auth_set_domain(next, 0, NULL, acl("user u\ntopic read a/#\n"));
    mq_auth_retire(rec, mq_auth_publish(&slot, next));
    auth = NULL; /* the epoch frees it */
    mq_auth_refresh(mq_auth_get(&slot), route, &gen);
    cr_assert(eq(u64, gen, 2));
    cr_expect(eq(u8, s->subs[0].grant, MQ_ACL_GRANT_FULL));
    cr_expect(eq(u8, s->subs[1].grant, MQ_ACL_GRANT_NONE), "b/# revoked");
    cr_expect(eq(u32, mq_sess_queued(s), 1), "the queued b/1 is dropped");
    cr_expect(eq(u32, mq_sess_filter_queue(s, always, NULL), 0));
    cr_expect(eq(u64, home.stats.dropped, 1));
    mq_auth_refresh(mq_auth_get(&slot), route, &gen); /* nothing new: nothing done */
    mq_epoch_quiescent(rec);
    cr_expect(eq(u64, mq_epoch_pending(rec), 0), "the old state is freed at a quiescent point");
    auth = atomic_load(&slot.cur); /* teardown frees the one in force */
    mq_msg_unref(ma);
    mq_msg_unref(mb);
}

Test(auth, a_certificate_user_name_needs_no_password_but_still_owns_its_session)
{
    auth = mq_auth_new(1);
    mq_auth_set_domain(auth, 0, passwords(), NULL);
    mq_server_listener_t lo = {.allow_anonymous = false};
    mq_connect_t c = cp("alice", NULL); /* the certificate's name, no password */
    const char *why = NULL;
    cr_expect(eq(int, mq_auth_admit(auth, &lo, &c, false, NULL, cache, NULL, false, &why),
                 MQ_RC_NOT_AUTHORIZED),
              "without the certificate, a user name alone does not pass the password file");
    cr_expect(
        eq(int, mq_auth_admit(auth, &lo, &c, true, NULL, cache, NULL, false, &why), MQ_RC_SUCCESS));
    mq_connect_t stranger = cp("not-in-the-file", NULL);
    cr_expect(eq(int, mq_auth_admit(auth, &lo, &stranger, true, NULL, cache, NULL, false, &why),
                 MQ_RC_SUCCESS),
              "the certificate is the credential (mosquitto: authentication assumed cleared)");
    mq_sess_t *bobs = sess("c2", "bob");
    cr_expect(eq(int, mq_auth_admit(auth, &lo, &c, true, bobs, cache, NULL, false, &why),
                 MQ_RC_CLIENT_ID_NOT_VALID));
}

/* A reload is due from the moment its signal is pending until the main thread ends it, as long
 * as MQ_AUTH_RELOAD_WAIT_MS from the first time a worker found it due; never without a reload
 * signal. (SIGUSR2 stands for SIGHUP: blocked, and raised at this thread, it stays pending.) */
Test(auth, a_reload_is_due_from_its_signal_until_its_end_for_a_bounded_time)
{
    sigset_t usr2, old;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    cr_assert(eq(int, pthread_sigmask(SIG_BLOCK, &usr2, &old), 0));
    const struct timespec now = {0};
    const uint64_t w = MQ_AUTH_RELOAD_WAIT_MS;
    mq_auth_slot_t slot = {0};
    cr_expect(not(mq_auth_reload_due(&slot, 1000)));
    raise(SIGUSR2);
    cr_expect(not(mq_auth_reload_due(&slot, 1000)), "no reload signal: nothing waits");
    slot.reload_signal = SIGUSR2;
    cr_expect(mq_auth_reload_due(&slot, 1000), "sent, not taken yet: due");
    cr_expect(mq_auth_reload_due(&slot, 1000 + w - 1));
    mq_auth_reload_begin(&slot); /* as the broker does: announced, then taken */
    cr_assert(eq(int, sigtimedwait(&usr2, NULL, &now), SIGUSR2));
    cr_expect(mq_auth_reload_due(&slot, 1000 + w - 1), "taken, being reloaded: due");
    cr_expect(not(mq_auth_reload_due(&slot, 1000 + w)),
              "a main thread slow to reload holds CONNECTs no longer than the bound, counted "
              "from when the signal was first seen");
    mq_auth_reload_end(&slot);
    cr_expect(not(mq_auth_reload_due(&slot, 1000 + w)), "published: nothing waits");

    mq_auth_reload_begin(&slot);
    cr_expect(mq_auth_reload_due(&slot, 9000), "the next reload waits again, its own bound");
    cr_expect(mq_auth_reload_due(&slot, 9000 + w - 1));
    cr_expect(not(mq_auth_reload_due(&slot, 9000 + w)));
    mq_auth_reload_end(&slot);
    cr_expect(not(mq_auth_reload_due(&slot, 9000 + w)));

    /* a wait start written as a reload ended (a worker that saw the flag just before) does
     * not count against the next one, seconds later */
    mq_auth_reload_begin(&slot);
    uint64_t stale = atomic_load(&slot.reloads);
    mq_auth_reload_end(&slot);
    atomic_store(&slot.due_since, (stale << 41) | (1ull << 40) | 20000); /* its late write */
    raise(SIGUSR2);
    cr_expect(mq_auth_reload_due(&slot, 25000), "a new signal, before the main thread saw it");
    cr_expect(mq_auth_reload_due(&slot, 25000 + w - 1));
    cr_assert(eq(int, sigtimedwait(&usr2, NULL, &now), SIGUSR2));
    cr_expect(not(mq_auth_reload_due(&slot, 25000)));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
