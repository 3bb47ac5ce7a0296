/*
 * The lease and heartbeat SQL (payd/cluster_store.h) on SQLite and, as
 * unit/store/test_lease/postgres, on a real PostgreSQL: the same statements on both.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "payd/cluster_store.h"
#include "payd/store.h"
#include "payd/time.h"
#include "pg_server.h"
#include "store_fixture.h"

static int
setup(void **state)
{
    (void)state;
    return pd_tf_setup("lease");
}

static int
teardown(void **state)
{
    (void)state;
    return pd_tf_teardown();
}

static pd_store_t *
open_store(void)
{
    pd_store_config_t c = {.max_batch = 512, .max_queue = 1000};
    return pd_tf_open(&c, 2);
}

typedef struct {
    const char *name, *holder;
    int64_t now, ttl, token, expires_at, check_token;
    bool held;
    int op; /* 0 acquire, 1 release, 2 check, 3 release all */
} lw_t;

static int
lease_write(pd_db_t *tx, void *arg)
{
    lw_t *w = arg;
    switch (w->op) {
    case 0: return pd_lease_acquire(tx, w->name, w->holder, w->now, w->ttl, &w->held, &w->token, &w->expires_at);
    case 1: return pd_lease_release(tx, w->name, w->holder);
    case 2: return pd_lease_check(tx, w->name, w->holder, w->check_token, w->now);
    default: return pd_lease_release_all(tx, w->holder);
    }
}

static lw_t
acquire(pd_store_t *s, const char *name, const char *holder, int64_t now)
{
    lw_t w = {.name = name, .holder = holder, .now = now, .ttl = 15000, .op = 0};
    assert_int_equal(pd_store_write_sync(s, lease_write, &w), 0);
    return w;
}

static int
check(pd_store_t *s, const char *name, const char *holder, int64_t token, int64_t now)
{
    lw_t w = {.name = name, .holder = holder, .now = now, .check_token = token, .op = 2};
    return pd_store_write_sync(s, lease_write, &w);
}

static void
release(pd_store_t *s, const char *name, const char *holder, int op)
{
    lw_t w = {.name = name, .holder = holder, .op = op};
    assert_int_equal(pd_store_write_sync(s, lease_write, &w), 0);
}

/* free -> taken; held by another -> refused; renewed -> same token; expired or
 * released -> taken over with the token bumped, by anyone, its old holder included */
static void
acquire_renew_takeover(void **state)
{
    (void)state;
    pd_store_t *s = open_store();
    int64_t t0 = 1000000;
    lw_t a = acquire(s, "relay", "node-a", t0);
    assert_true(a.held);
    assert_int_equal(a.token, 1);
    assert_int_equal(a.expires_at, t0 + 15000);

    lw_t b = acquire(s, "relay", "node-b", t0 + 1000);
    assert_false(b.held); /* live and not b's */
    b = acquire(s, "relay", "node-b", t0 + 14999);
    assert_false(b.held); /* a's until expires_at, free from then on */

    a = acquire(s, "relay", "node-a", t0 + 5000); /* renewal */
    assert_true(a.held);
    assert_int_equal(a.token, 1);
    assert_int_equal(a.expires_at, t0 + 20000);

    b = acquire(s, "relay", "node-b", t0 + 20001); /* a did not renew in time */
    assert_true(b.held);
    assert_int_equal(b.token, 2);
    a = acquire(s, "relay", "node-a", t0 + 20002);
    assert_false(a.held);

    /* the fencing check: a's token is stale, b's holds until its expiry */
    assert_int_equal(check(s, "relay", "node-a", 1, t0 + 20003), PD_ERR_CONFLICT);
    assert_int_equal(check(s, "relay", "node-b", 2, t0 + 20003), 0);
    assert_int_equal(check(s, "relay", "node-b", 1, t0 + 20003), PD_ERR_CONFLICT);
    assert_int_equal(check(s, "relay", "node-b", 2, t0 + 20001 + 15000), PD_ERR_CONFLICT);

    /* release: free at once; a takes it with a new token */
    release(s, "relay", "node-a", 1); /* not a's: no effect */
    assert_false(acquire(s, "relay", "node-a", t0 + 21000).held);
    release(s, "relay", "node-b", 1);
    a = acquire(s, "relay", "node-a", t0 + 21000);
    assert_true(a.held);
    assert_int_equal(a.token, 3);

    /* the same holder after its own lease lapsed (a restarted process): a takeover */
    a = acquire(s, "relay", "node-a", t0 + 40000);
    assert_true(a.held);
    assert_int_equal(a.token, 4);
    /* release_all: every lease of the holder, others untouched */
    assert_true(acquire(s, "stream", "node-a", t0 + 40000).held);
    assert_true(acquire(s, "recovery", "node-b", t0 + 40000).held);
    release(s, NULL, "node-a", 3);
    assert_true(acquire(s, "relay", "node-b", t0 + 40001).held);
    assert_true(acquire(s, "stream", "node-b", t0 + 40001).held);
    assert_false(acquire(s, "recovery", "node-a", t0 + 40001).held);
    pd_store_close(s);
}

typedef struct {
    pd_store_t *s;
    const char *holder;
    pthread_barrier_t *bar;
    int rounds;
    int64_t *base;
    int wins;
} racer_t;

static void *
racer(void *arg)
{
    racer_t *r = arg;
    for (int i = 0; i < r->rounds; i++) {
        pthread_barrier_wait(r->bar);
        /* every round starts with the lease expired at this `now` */
        lw_t w = {.name = "relay", .holder = r->holder, .now = *r->base + (int64_t)i * 100000, .ttl = 15000};
        if (pd_store_write_sync(r->s, lease_write, &w) == 0 && w.held)
            r->wins++;
        pthread_barrier_wait(r->bar);
    }
    return NULL;
}

/* two stores on one database (two nodes) race for an expired lease: one wins each round */
static void
two_nodes_race_one_wins(void **state)
{
    (void)state;
    pd_store_t *s1 = open_store(), *s2 = open_store();
    int64_t base = 5000000;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    enum { ROUNDS = 30 };
    racer_t a = {s1, "node-a", &bar, ROUNDS, &base, 0}, b = {s2, "node-b", &bar, ROUNDS, &base, 0};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, racer, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, racer, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&bar);
    assert_int_equal(a.wins + b.wins, ROUNDS);
    /* a takeover every round: the token counts them */
    lw_t w = acquire(s1, "relay", "node-c", base + ROUNDS * 100000);
    assert_true(w.held);
    assert_int_equal(w.token, ROUNDS + 1);
    pd_store_close(s1);
    pd_store_close(s2);
}

typedef struct {
    pd_node_rec_t n;
    int64_t now;
    int op; /* 0 beat, 1 stopped, 2 forget, 3 prune */
    bool gone;
} nw_t;

static int
node_write(pd_db_t *tx, void *arg)
{
    nw_t *w = arg;
    switch (w->op) {
    case 0: return pd_node_beat(tx, &w->n, w->now);
    case 1: return pd_node_stopped(tx, w->n.id, w->now);
    case 2: return pd_node_forget(tx, w->n.id, &w->gone);
    default: return pd_node_prune(tx, w->now);
    }
}

static void
node_op(pd_store_t *s, const char *id, int64_t now, int op)
{
    nw_t w = {.now = now, .op = op};
    snprintf(w.n.id, sizeof(w.n.id), "%s", id);
    snprintf(w.n.hostname, sizeof(w.n.hostname), "host-%s", id);
    snprintf(w.n.version, sizeof(w.n.version), "0.1.0");
    snprintf(w.n.admin, sizeof(w.n.admin), "127.0.0.1:9");
    w.n.pid = 42;
    w.n.started_at = 7;
    w.n.interval_ms = 2000;
    assert_int_equal(pd_store_write_sync(s, node_write, &w), 0);
}

typedef struct {
    pd_node_rec_t v[8];
    int n;
} list_t;

static int
collect(const pd_node_rec_t *n, void *arg)
{
    list_t *l = arg;
    l->v[l->n++] = *n;
    return l->n == 8 ? 1 : 0;
}

/* beats, the dead rule (3 intervals), a clean stop, forget and prune; the clock */
static void
heartbeats(void **state)
{
    (void)state;
    pd_store_t *s = open_store();
    int64_t t = 2000000, dead = -1, alive = -1;
    node_op(s, "node-a", t, 0);
    node_op(s, "node-b", t, 0);
    node_op(s, "node-a", t + 5000, 0); /* a beats on, b does not */
    pd_db_t *db = pd_store_reader(s);
    list_t l = {.n = 0};
    assert_int_equal(pd_node_list(db, collect, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0].id, "node-a");
    assert_string_equal(l.v[0].hostname, "host-node-a");
    assert_int_equal(l.v[0].beat_at, t + 5000);
    assert_int_equal(l.v[0].interval_ms, 2000);
    assert_false(pd_node_dead(&l.v[1], t + 6000)); /* 6 s = 3 intervals: not yet */
    assert_true(pd_node_dead(&l.v[1], t + 6001));
    assert_int_equal(pd_node_count_dead(db, t + 6001, &dead, &alive), 0);
    assert_int_equal(dead, 1);
    assert_int_equal(alive, 1);
    node_op(s, "node-b", t + 7000, 1); /* b said goodbye: neither alive nor dead */
    assert_int_equal(pd_node_count_dead(db, t + 60000, &dead, &alive), 0);
    assert_int_equal(dead, 1); /* a, silent since t + 5000 */
    assert_int_equal(alive, 0);
    node_op(s, "node-b", t + 8000, 0); /* b is back: alive again */
    assert_int_equal(pd_node_count_dead(db, t + 8000, &dead, &alive), 0);
    assert_int_equal(dead, 0);
    assert_int_equal(alive, 2);

    /* forget: the row and its leases */
    assert_true(acquire(s, "relay", "node-b", t + 8000).held);
    nw_t f = {.op = 2};
    snprintf(f.n.id, sizeof(f.n.id), "node-b");
    assert_int_equal(pd_store_write_sync(s, node_write, &f), 0);
    assert_true(f.gone);
    assert_int_equal(pd_store_write_sync(s, node_write, &f), 0);
    assert_false(f.gone);
    assert_true(acquire(s, "relay", "node-a", t + 8001).held);
    node_op(s, "x", t + 5001, 3); /* prune what has not beaten since before t + 5001: a */
    l.n = 0;
    assert_int_equal(pd_node_list(db, collect, &l), 0);
    assert_int_equal(l.n, 0);

    /* the database's clock: this machine's, in milliseconds */
    int64_t ms = 0;
    assert_int_equal(pd_db_clock_ms(db, &ms), 0);
    int64_t mine = pd_real_ms();
    assert_true(ms > mine - 2000 && ms < mine + 2000);
    pd_store_close(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(acquire_renew_takeover, setup, teardown),
        cmocka_unit_test_setup_teardown(two_nodes_race_one_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(heartbeats, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
