#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "payd/records.h"
#include "payd/store.h"
#include "pg_server.h"
#include "store_fixture.h"

/* PAYD_TEST_STORE=postgres: every test on a database of its own on the test's PostgreSQL */
static int
setup(void **state)
{
    (void)state;
    return pd_tf_setup("store");
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
    pd_store_config_t c = {.max_batch = 512, .max_queue = 100000};
    return pd_tf_open(&c, 4);
}

typedef struct {
    const char *id;
    int fail;
} merchant_w_t;

static int
insert_merchant(pd_db_t *tx, void *arg)
{
    merchant_w_t *m = arg;
    int r = pd_db_exec(tx, "INSERT INTO merchants (id, name, created) VALUES (?, ?, 1)",
                       PD_SQL_ARGS(PD_SQL_S(m->id), PD_SQL_S("n")), NULL);
    return r != 0 ? r : m->fail;
}

static int64_t
count_merchants(pd_store_t *s)
{
    int64_t n = -1;
    assert_int_equal(pd_db_query_int(pd_store_reader(s), "SELECT COUNT(*) FROM merchants", NULL, 0, &n), 0);
    return n;
}

static void
migrations_apply_once_and_reopen_cleanly(void **state)
{
    (void)state;
    pd_store_t *s = open_store();
    int v = pd_store_schema_version(s);
    assert_true(v >= 1);
    merchant_w_t m = {"acct_1", 0};
    assert_int_equal(pd_store_write_sync(s, insert_merchant, &m), 0);
    pd_store_close(s);
    s = open_store();
    assert_int_equal(pd_store_schema_version(s), v);
    assert_int_equal(count_merchants(s), 1);
    pd_store_close(s);
}

static void
a_failing_write_rolls_back_alone(void **state)
{
    (void)state;
    pd_store_t *s = open_store();
    merchant_w_t ok = {"acct_ok", 0}, bad = {"acct_bad", PD_ERR_CONFLICT}, dup = {"acct_ok", 0};
    assert_int_equal(pd_store_write_sync(s, insert_merchant, &ok), 0);
    assert_int_equal(pd_store_write_sync(s, insert_merchant, &bad), PD_ERR_CONFLICT);
    assert_int_equal(pd_store_write_sync(s, insert_merchant, &dup), PD_ERR_EXISTS);
    assert_int_equal(count_merchants(s), 1);
    pd_store_close(s);
}

/*
 * Deferred statements (pd_db_exec_deferred: queued in PostgreSQL's pipeline) answer for
 * the write that made them, inside one batch: a write whose deferred insert fails rolls
 * back alone, its later statements with it, while the writes before and after it in the
 * batch commit; a statement that needs a result sees the deferred rows before it, and a
 * deferred error before it is its answer.
 */
typedef struct {
    const char *ids[2]; /* inserted deferred, in order */
    bool read_back;     /* then counts its first id's rows with a query */
    int64_t seen;
    int rc;
    bool done;
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
} deferred_w_t;

static int
deferred_write(pd_db_t *tx, void *arg)
{
    deferred_w_t *w = arg;
    int r;
    for (int i = 0; i < 2 && w->ids[i] != NULL; i++)
        if ((r = pd_db_exec_deferred(tx, "INSERT INTO merchants (id, name, created) VALUES (?, ?, 1)",
                                     PD_SQL_ARGS(PD_SQL_S(w->ids[i]), PD_SQL_S("n")))) != 0)
            return r;
    if (!w->read_back)
        return 0;
    return pd_db_query_int(tx, "SELECT COUNT(*) FROM merchants WHERE id = ?", PD_SQL_ARGS(PD_SQL_S(w->ids[0])),
                           &w->seen);
}

static int
slow_write(pd_db_t *tx, void *arg)
{
    (void)tx;
    (void)arg;
    nanosleep(&(struct timespec){0, 300 * 1000 * 1000}, NULL); /* the others queue up behind it */
    return 0;
}

static void
deferred_done(void *arg, int rc)
{
    deferred_w_t *w = arg;
    pthread_mutex_lock(w->mu);
    w->rc = rc;
    w->done = true;
    pthread_cond_broadcast(w->cv);
    pthread_mutex_unlock(w->mu);
}

static void
a_deferred_statement_fails_only_its_own_write(void **state)
{
    (void)state;
    pd_store_config_t c = {.max_batch = 512, .max_queue = 1000};
    pd_store_t *s = pd_tf_open(&c, 1); /* one writer: the four writes below are one batch */
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    deferred_w_t w[] = {
        {.ids = {"acct_a", "acct_a2"}},
        {.ids = {"acct_a", "acct_b2"}},              /* acct_a exists: the write fails at its end */
        {.ids = {"acct_a2", "acct_c2"}, .read_back = true}, /* fails at its query */
        {.ids = {"acct_d", "acct_d2"}, .read_back = true},
    };
    assert_int_equal(pd_store_submit(s, slow_write, NULL, NULL), 0);
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        w[i].mu = &mu;
        w[i].cv = &cv;
        w[i].seen = -1;
        assert_int_equal(pd_store_submit(s, deferred_write, deferred_done, &w[i]), 0);
    }
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
        while (!w[i].done)
            pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    assert_int_equal(w[0].rc, 0);
    assert_int_equal(w[1].rc, PD_ERR_EXISTS);
    assert_int_equal(w[2].rc, PD_ERR_EXISTS);
    assert_int_equal(w[2].seen, -1); /* the query was not answered with a count */
    assert_int_equal(w[3].rc, 0);
    assert_int_equal(w[3].seen, 1); /* its own deferred insert, seen by its query */
    const char *present[] = {"acct_a", "acct_a2", "acct_d", "acct_d2"};
    for (size_t i = 0; i < 4; i++) {
        int64_t n = -1;
        assert_int_equal(pd_db_query_int(pd_store_reader(s), "SELECT COUNT(*) FROM merchants WHERE id = ?",
                                         PD_SQL_ARGS(PD_SQL_S(present[i])), &n),
                         0);
        assert_int_equal(n, 1);
    }
    assert_int_equal(count_merchants(s), 4); /* nothing of the failed writes: acct_b2, acct_c2 */
    pd_store_close(s);
}

/* the committed hook runs for a write that committed, before its done, and never
 * for a write that failed */
typedef struct {
    merchant_w_t m;
    int committed, done, rc;
    bool committed_before_done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} hooked_t;

static int
hooked_write(pd_db_t *tx, void *arg)
{
    return insert_merchant(tx, &((hooked_t *)arg)->m);
}

static void
hooked_committed(void *arg)
{
    hooked_t *h = arg;
    pthread_mutex_lock(&h->mu);
    h->committed++;
    pthread_mutex_unlock(&h->mu);
}

static void
hooked_done(void *arg, int rc)
{
    hooked_t *h = arg;
    pthread_mutex_lock(&h->mu);
    h->committed_before_done = h->committed == 1;
    h->rc = rc;
    h->done++;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static void
committed_hook_runs_before_done_and_only_on_success(void **state)
{
    (void)state;
    pd_store_t *s = open_store();
    hooked_t ok = {.m = {"acct_hook", 0}}, bad = {.m = {"acct_hook_bad", PD_ERR_CONFLICT}};
    hooked_t *all[] = {&ok, &bad};
    for (int i = 0; i < 2; i++) {
        pthread_mutex_init(&all[i]->mu, NULL);
        pthread_cond_init(&all[i]->cv, NULL);
        assert_int_equal(pd_store_submit_ex(s, hooked_write, hooked_committed, hooked_done, all[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_mutex_lock(&all[i]->mu);
        while (all[i]->done == 0)
            pthread_cond_wait(&all[i]->cv, &all[i]->mu);
        pthread_mutex_unlock(&all[i]->mu);
    }
    assert_int_equal(ok.rc, 0);
    assert_int_equal(ok.committed, 1);
    assert_true(ok.committed_before_done);
    assert_int_equal(bad.rc, PD_ERR_CONFLICT);
    assert_int_equal(bad.committed, 0);
    pd_store_close(s);
    for (int i = 0; i < 2; i++) {
        pthread_mutex_destroy(&all[i]->mu);
        pthread_cond_destroy(&all[i]->cv);
    }
}

typedef struct {
    int64_t now, expired_before;
    pd_idem_rec_t existing;
    int status; /* 0: complete the claim with this status */
} idem_w_t;

static int
claim_key(pd_db_t *tx, void *arg)
{
    idem_w_t *w = arg;
    pd_arena_t a;
    pd_arena_init(&a, 1u << 20);
    int r = pd_idem_claim(tx, &a, "acct_1", false, "key-1", "fp", w->now, w->expired_before, &w->existing);
    pd_arena_free(&a);
    if (r == 0 && w->status != 0)
        r = pd_idem_complete(tx, "acct_1", false, "key-1", w->status, PD_VIEW_LIT("{}"));
    return r;
}

static int
purge_keys(pd_db_t *tx, void *arg)
{
    return pd_idem_purge(tx, *(int64_t *)arg, 1000);
}

/* PostgreSQL: the server ends every session of the writers while they are idle (a
 * terminated backend, as in a failover or restart): the next writes start on fresh
 * sessions and succeed, none fails on a dead one (without the idle check before each
 * transaction the first writes fail with PD_ERR_UNAVAILABLE). SQLite: nothing to end. */
static void
writes_after_the_server_ended_idle_sessions_succeed(void **state)
{
    (void)state;
    if (!pd_pg_wanted())
        skip();
    pd_store_t *s = open_store();
    merchant_w_t m = {"acct_idle0", 0};
    assert_int_equal(pd_store_write_sync(s, insert_merchant, &m), 0);
    assert_int_equal(pd_pg_sql("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = "
                                           "'payd' AND pid <> pg_backend_pid()"),
                     0);
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    static const char *const ids[] = {"acct_idle1", "acct_idle2", "acct_idle3", "acct_idle4", "acct_idle5"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        merchant_w_t w = {ids[i], 0};
        assert_int_equal(pd_store_write_sync(s, insert_merchant, &w), 0);
    }
    assert_int_equal(count_merchants(s), 6);
    pd_store_close(s);
}

static void
idempotency_keys_expire(void **state)
{
    (void)state;
    pd_store_t *s = open_store();
    idem_w_t first = {.now = 1000, .expired_before = 0, .status = 200};
    assert_int_equal(pd_store_write_sync(s, claim_key, &first), 0);
    /* within the TTL: the key replays */
    idem_w_t again = {.now = 2000, .expired_before = 999};
    assert_int_equal(pd_store_write_sync(s, claim_key, &again), PD_ERR_EXISTS);
    assert_true(again.existing.complete);
    assert_int_equal(again.existing.status, 200);
    /* after it: the same key is a new request */
    idem_w_t later = {.now = 90000, .expired_before = 1001};
    assert_int_equal(pd_store_write_sync(s, claim_key, &later), 0);
    bool any = true;
    assert_int_equal(pd_idem_expired(pd_store_reader(s), 50000, &any), 0);
    assert_false(any);
    assert_int_equal(pd_idem_expired(pd_store_reader(s), 90001, &any), 0);
    assert_true(any);
    int64_t before = 90001, n = -1;
    assert_int_equal(pd_store_write_sync(s, purge_keys, &before), 0);
    assert_int_equal(pd_db_query_int(pd_store_reader(s), "SELECT COUNT(*) FROM idempotency_keys", NULL, 0, &n), 0);
    assert_int_equal(n, 0);
    pd_store_close(s);
}

#define THREADS 8
#define PER_THREAD 500

typedef struct {
    pd_store_t *s;
    int t;
    int failures;
} worker_t;

static void *
worker(void *arg)
{
    worker_t *w = arg;
    char id[32];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(id, sizeof(id), "acct_%d_%d", w->t, i);
        merchant_w_t m = {id, (i % 50 == 7) ? PD_ERR_CONFLICT : 0};
        int r = pd_store_write_sync(w->s, insert_merchant, &m);
        if (r != m.fail)
            w->failures++;
    }
    return NULL;
}

static void
concurrent_writers_are_batched_and_all_committed(void **state)
{
    (void)state;
    pd_store_t *s = open_store();
    pthread_t th[THREADS];
    worker_t w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){s, i, 0};
        pthread_create(&th[i], NULL, worker, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    int64_t expect = THREADS * (PER_THREAD - PER_THREAD / 50);
    assert_int_equal(count_merchants(s), expect);
    pd_store_stats_t st;
    pd_store_stats(s, &st);
    assert_int_equal(st.writes, THREADS * PER_THREAD);
    /* group commit: fewer transactions than writes */
    assert_true(st.batches < st.writes);
    assert_true(st.max_batch > 1);
    /* SQLite defers its sync to the sync thread: one fsync may cover several batches,
     * and every write was answered (above) only after one covered it; PostgreSQL's
     * COMMIT is durable when it returns */
    if (!pd_pg_wanted())
        assert_true(st.syncs > 0 && st.syncs <= st.batches);
    pd_store_close(s);
}

/* a write that found the disk full makes the store unwritable, with the reason; the
 * next write that commits makes it writable again */
static int
enospc_write(pd_db_t *tx, void *arg)
{
    (void)tx;
    (void)arg;
    return -ENOSPC;
}

static void
writability_follows_the_last_writes(void **state)
{
    (void)state;
    pd_store_t *s = open_store();
    char why[200];
    assert_true(pd_store_writable(s, why, sizeof(why)));
    assert_string_equal(why, "");
    assert_int_equal(pd_store_write_sync(s, enospc_write, NULL), -ENOSPC);
    assert_false(pd_store_writable(s, why, sizeof(why)));
    assert_string_equal(why, "writes failing (No space left on device)");
    merchant_w_t dup = {"acct_w", 0};
    assert_int_equal(pd_store_write_sync(s, insert_merchant, &dup), 0);
    assert_true(pd_store_writable(s, NULL, 0));
    /* a batch that commits no write proves nothing */
    assert_int_equal(pd_store_write_sync(s, enospc_write, NULL), -ENOSPC);
    assert_int_equal(pd_store_write_sync(s, insert_merchant, &dup), PD_ERR_EXISTS);
    assert_false(pd_store_writable(s, NULL, 0));
    pd_store_close(s);
}

/* with no writes coming (readiness fails, so callers stop), the store probes by itself */
static void
an_idle_failing_store_finds_out_that_writes_pass_again(void **state)
{
    (void)state;
    pd_store_t *s = open_store();
    assert_int_equal(pd_store_write_sync(s, enospc_write, NULL), -ENOSPC);
    assert_false(pd_store_writable(s, NULL, 0));
    int waited = 0;
    while (!pd_store_writable(s, NULL, 0) && waited < 5000) {
        usleep(50 * 1000);
        waited += 50;
    }
    assert_true(pd_store_writable(s, NULL, 0));
    assert_true(waited >= 500); /* a probe, not the failed write itself */
    pd_store_close(s);
}

/* a write of `rows` merchants with 3000-byte names: about a WAL page each */
typedef struct {
    int first, rows;
} bulk_t;

static int
bulk_write(pd_db_t *tx, void *arg)
{
    bulk_t *b = arg;
    static char name[3001];
    memset(name, 'x', sizeof(name) - 1);
    for (int i = 0; i < b->rows; i++) {
        char id[32];
        snprintf(id, sizeof(id), "acct_b%d", b->first + i);
        int r = pd_db_exec(tx, "INSERT INTO merchants (id, name, created) VALUES (?, ?, 1)",
                           PD_SQL_ARGS(PD_SQL_S(id), PD_SQL_S(name)), NULL);
        if (r != 0)
            return r;
    }
    return 0;
}

static off_t
wal_size(void)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof(path), "%s/payd.db-wal", pd_tf_dir);
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static uint64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * A reader that holds its snapshot keeps the WAL from being rewound, and the WAL
 * grows; once it lets go, a WAL far past the restart point (16 MiB) is truncated,
 * not only rewound. Prints the slowest write around the truncation.
 */
static void
a_wal_grown_far_past_the_limit_is_truncated(void **state)
{
    (void)state;
    if (pd_pg_wanted())
        skip(); /* SQLite's WAL file: PostgreSQL manages its own */
    pd_store_t *s = open_store();
    char path[128];
    pd_db_t *rd;
    snprintf(path, sizeof(path), "%s/payd.db", pd_tf_dir);
    assert_int_equal(pd_db_open_sqlite(&rd, path, false), 0);
    assert_int_equal(pd_db_script(rd, "BEGIN; SELECT count(*) FROM merchants;"), 0); /* holds a snapshot */
    int n = 0;
    uint64_t slowest_before = 0;
    while (wal_size() < 48 << 20) {
        bulk_t b = {n, 100};
        uint64_t t0 = now_us();
        assert_int_equal(pd_store_write_sync(s, bulk_write, &b), 0);
        if (now_us() - t0 > slowest_before)
            slowest_before = now_us() - t0;
        n += b.rows;
        assert_true(n < 100000);
    }
    off_t grown = wal_size();
    assert_int_equal(pd_db_script(rd, "COMMIT;"), 0);
    pd_db_close(rd);
    /* small writes go on meanwhile: the truncation holds the writer lock */
    uint64_t slowest = 0, t_end = now_us() + 10 * 1000000;
    while (wal_size() > 16 << 20 && now_us() < t_end) {
        bulk_t b = {n++, 1};
        uint64_t t0 = now_us();
        assert_int_equal(pd_store_write_sync(s, bulk_write, &b), 0);
        if (now_us() - t0 > slowest)
            slowest = now_us() - t0;
    }
    off_t after = wal_size();
    print_message("WAL %lld MiB -> %lld KiB; slowest write: %.1f ms while growing, %.1f ms around the truncation\n",
                  (long long)(grown >> 20), (long long)(after >> 10), (double)slowest_before / 1000.0,
                  (double)slowest / 1000.0);
    assert_true(after <= 16 << 20);
    assert_int_equal(count_merchants(s), n + 0);
    pd_store_close(s);
    s = open_store(); /* and what was written is all there */
    assert_int_equal(count_merchants(s), n);
    pd_store_close(s);
}

/* the child writes merchants one by one and reports each acknowledged id on a pipe */
static void
child_writer(int fd)
{
    pd_store_t *s = open_store();
    char id[32];
    for (int i = 0;; i++) {
        snprintf(id, sizeof(id), "acct_k%d", i);
        merchant_w_t m = {id, 0};
        if (pd_store_write_sync(s, insert_merchant, &m) != 0)
            _exit(3);
        if (write(fd, &i, sizeof(i)) != sizeof(i))
            _exit(4);
    }
}

static int
check_present(const pd_row_t *r, void *arg)
{
    (void)r;
    (*(int *)arg)++;
    return 0;
}

static void
acknowledged_writes_survive_kill_9(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        child_writer(p[1]);
    }
    close(p[1]);
    int last = -1, v;
    while (last < 300 && read(p[0], &v, sizeof(v)) == sizeof(v))
        last = v;
    kill(pid, SIGKILL);
    while (read(p[0], &v, sizeof(v)) == sizeof(v))
        last = v; /* acknowledgments already in the pipe count too */
    waitpid(pid, NULL, 0);
    close(p[0]);
    assert_true(last >= 300);

    pd_store_t *s = open_store();
    for (int i = 0; i <= last; i++) {
        char id[32];
        int found = 0;
        snprintf(id, sizeof(id), "acct_k%d", i);
        assert_int_equal(pd_db_query(pd_store_reader(s), "SELECT id FROM merchants WHERE id = ?",
                                     PD_SQL_ARGS(PD_SQL_S(id)), check_present, &found),
                         0);
        if (found != 1)
            fail_msg("acknowledged write %s is missing after kill -9", id);
    }
    pd_store_close(s);
}

static int
seed_webhooks(pd_db_t *tx, void *arg)
{
    (void)arg;
    static const char *const we[] = {"we_a", "we_b"};
    for (int i = 0; i < 2; i++) {
        pd_we_rec_t w = {.url = "https://example.com/hook", .enabled_events = "[\"*\"]", .secret = "00",
                         .status = "enabled", .description = "", .metadata = "{}", .created = 1, .seq = i + 1};
        snprintf(w.id, sizeof(w.id), "%s", we[i]);
        snprintf(w.merchant_id, sizeof(w.merchant_id), "acct_1");
        int r = pd_we_insert(tx, &w);
        if (r != 0)
            return r;
    }
    /* we_a: a first attempt and a retry pending, one delivered; we_b: one pending */
    static const struct {
        const char *id, *endpoint, *state;
        int attempts;
    } d[] = {{"whd_1", "we_a", "pending", 0}, {"whd_2", "we_a", "pending", 2}, {"whd_3", "we_a", "succeeded", 1},
             {"whd_4", "we_b", "pending", 0}};
    for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
        int r = pd_db_exec(tx,
                           "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, merchant_id, state, attempts, "
                           "first_at, next_at, updated) VALUES (?, 'evt_1', ?, 'acct_1', ?, ?, 1, 1, 1)",
                           PD_SQL_ARGS(PD_SQL_S(d[i].id), PD_SQL_S(d[i].endpoint), PD_SQL_S(d[i].state),
                                       PD_SQL_I(d[i].attempts)),
                           NULL);
        if (r != 0)
            return r;
    }
    return 0;
}

static int
delete_we_a(pd_db_t *tx, void *arg)
{
    (void)arg;
    return pd_we_delete(tx, "acct_1", false, "we_a", 100);
}

static int
state_row(const pd_row_t *r, void *arg)
{
    return pd_row_copy(r, 0, arg, 16) != 0 ? PD_ERR_TOOBIG : 1;
}

static void
expect_delivery_state(pd_store_t *s, const char *id, const char *want)
{
    char got[16] = "";
    assert_int_equal(pd_db_query(pd_store_reader(s), "SELECT state FROM webhook_deliveries WHERE id = ?",
                                 PD_SQL_ARGS(PD_SQL_S(id)), state_row, got),
                     0);
    assert_string_equal(got, want);
}

static void
deleting_a_webhook_endpoint_cancels_its_pending_deliveries(void **state)
{
    (void)state;
    pd_store_t *s = open_store();
    assert_int_equal(pd_store_write_sync(s, seed_webhooks, NULL), 0);
    assert_int_equal(pd_store_write_sync(s, delete_we_a, NULL), 0);
    expect_delivery_state(s, "whd_1", "canceled");
    expect_delivery_state(s, "whd_2", "canceled");
    expect_delivery_state(s, "whd_3", "succeeded");
    expect_delivery_state(s, "whd_4", "pending");
    /* a second delete finds nothing */
    assert_int_equal(pd_store_write_sync(s, delete_we_a, NULL), PD_ERR_NOTFOUND);
    pd_store_close(s);
}

/* five intents with one seq (two nodes can give the same one: it is per process) */
static int
insert_tied_intents(pd_db_t *tx, void *arg)
{
    (void)arg;
    merchant_w_t m = {"acct_tie", 0};
    int r = insert_merchant(tx, &m);
    for (int i = 0; r == 0 && i < 5; i++) {
        pd_pi_rec_t p = {.livemode = false, .amount = 100 + i, .currency = "usd", .capture_method = "automatic",
                         .created = 1, .seq = 42, .version = 1};
        snprintf(p.id, sizeof(p.id), "pi_tie%d", i);
        snprintf(p.merchant_id, sizeof(p.merchant_id), "acct_tie");
        r = pd_pi_insert(tx, &p);
    }
    return r;
}

typedef struct {
    char ids[8][PD_ID_MAX];
    int n;
} page_t;

static int
on_pi(void *rec, void *arg)
{
    page_t *pg = arg;
    if (pg->n < 8)
        snprintf(pg->ids[pg->n++], PD_ID_MAX, "%s", ((pd_pi_rec_t *)rec)->id);
    return 0;
}

/* pages of 2, forwards then backwards: every object once, in one order, ties and all */
static void
list_pages_see_every_object_when_seqs_tie(void **state)
{
    (void)state;
    pd_store_t *s = open_store();
    assert_int_equal(pd_store_write_sync(s, insert_tied_intents, NULL), 0);
    pd_arena_t a;
    pd_arena_init(&a, 1u << 20);
    char seen[5][PD_ID_MAX];
    int n = 0;
    bool more = true;
    while (more && n < 5) {
        page_t pg = {.n = 0};
        pd_list_q_t q = {.limit = 2, .starting_after = n > 0 ? seen[n - 1] : NULL};
        assert_int_equal(pd_pi_list(pd_store_reader(s), &a, "acct_tie", false, &q, on_pi, &pg, &more), 0);
        for (int i = 0; i < pg.n && n < 5; i++)
            snprintf(seen[n++], PD_ID_MAX, "%s", pg.ids[i]);
    }
    assert_int_equal(n, 5);
    assert_false(more);
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            assert_string_not_equal(seen[i], seen[j]);
    /* ending_before the last one: the two before it, in list order */
    page_t back = {.n = 0};
    pd_list_q_t q = {.limit = 2, .ending_before = seen[4]};
    assert_int_equal(pd_pi_list(pd_store_reader(s), &a, "acct_tie", false, &q, on_pi, &back, &more), 0);
    assert_int_equal(back.n, 2);
    assert_string_equal(back.ids[0], seen[2]);
    assert_string_equal(back.ids[1], seen[3]);
    pd_arena_free(&a);
    pd_store_close(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(migrations_apply_once_and_reopen_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(list_pages_see_every_object_when_seqs_tie, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failing_write_rolls_back_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(a_deferred_statement_fails_only_its_own_write, setup, teardown),
        cmocka_unit_test_setup_teardown(committed_hook_runs_before_done_and_only_on_success, setup, teardown),
        cmocka_unit_test_setup_teardown(writes_after_the_server_ended_idle_sessions_succeed, setup, teardown),
        cmocka_unit_test_setup_teardown(idempotency_keys_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_writers_are_batched_and_all_committed, setup, teardown),
        cmocka_unit_test_setup_teardown(acknowledged_writes_survive_kill_9, setup, teardown),
        cmocka_unit_test_setup_teardown(deleting_a_webhook_endpoint_cancels_its_pending_deliveries, setup, teardown),
        cmocka_unit_test_setup_teardown(writability_follows_the_last_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(an_idle_failing_store_finds_out_that_writes_pass_again, setup, teardown),
        cmocka_unit_test_setup_teardown(a_wal_grown_far_past_the_limit_is_truncated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
