/*
 * payd on PostgreSQL across a failover (always: this test starts its own PostgreSQL 15
 * on loopback, a primary and a synchronous standby made with pg_basebackup).
 *
 * payd's store.url names both servers with target_session_attrs=read-write. Client
 * threads create payments, each with an idempotency key of its own, retrying a key
 * until it is acknowledged (200). Under that load the primary's postmaster is killed
 * with SIGKILL and the standby promoted. Asserted:
 *   - every answer is 200, a 503 with Retry-After and a Stripe-shaped api_error, or a
 *     409 for a key still in flight: never a 500, and never one slower than the
 *     request deadline;
 *   - /readyz answers 503 while no writable primary is reachable, 200 after;
 *   - afterwards every acknowledged payment reads back succeeded, no key gave two
 *     payments (each key's amount is unique, and appears once), and
 *     `payctl ledger verify --with-processor` passes.
 * The 503s are counted and printed. Load: CLIENTS threads for LOAD_MS, each key
 * retried for at most KEY_MS.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"
#include "pg_server.h"

#define CLIENTS 4
#define LOAD_MS 9000       /* new payments are started for this long */
#define KILL_AT_MS 2500    /* the primary dies here */
#define DOWN_MS 1500       /* and the standby is promoted this much later */
#define KEY_MS 30000       /* one key is retried for at most this long */
#define DEADLINE_MS 10000  /* no answer may take longer (the request deadline) */
#define MAX_KEYS 4000

static pd_h_payd_t p;
static char url[400], set_url[440];

typedef struct {
    int n;
    long amount[MAX_KEYS];
    char id[MAX_KEYS][40];
    int acked, recovered, s503, s503_unknown, s503_bad, s409, s500, other, slow;
    long max_ms;
} client_t;

static client_t clients[CLIENTS];
static volatile int g_stop;

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* a 503 that tells the client to come back: Retry-After, Stripe-Should-Retry (the SDKs'
 * signal) and error.type api_error */
static bool
good_503(const pd_h_resp_t *r)
{
    char ra[16], sr[16];
    json_error_t e;
    json_t *o = json_loads(r->body != NULL ? r->body : "", 0, &e);
    const char *type = jstr(o, "error.type");
    bool ok = pd_h_resp_header(r, "retry-after", ra, sizeof(ra)) && strtol(ra, NULL, 10) >= 1 && type != NULL &&
              pd_h_resp_header(r, "stripe-should-retry", sr, sizeof(sr)) && strcmp(sr, "true") == 0 &&
              strcmp(type, "api_error") == 0 && jstr(o, "error.message") != NULL;
    json_decref(o);
    return ok;
}

static void *
client_main(void *arg)
{
    client_t *c = arg;
    int ci = (int)(c - clients);
    char auth[200], idh[128], body[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    pd_h_client_t *hc = pd_h_client_new(&p);
    while (!g_stop && c->n < MAX_KEYS) {
        int k = c->n;
        long amount = 100000L * (ci + 1) + k; /* unique per key: a duplicate execution shows */
        snprintf(idh, sizeof(idh), "Idempotency-Key: fo-%d-%d-%d", (int)getpid(), ci, k);
        snprintf(body, sizeof(body), "amount=%ld&currency=usd&confirm=true&payment_method=pm_card_visa", amount);
        const char *hdrs[] = {auth, "Content-Type: application/x-www-form-urlencoded", idh, NULL};
        pd_h_req_t rq = {.headers = hdrs, .body = body, .timeout_ms = DEADLINE_MS + 5000};
        uint64_t first = now_ms();
        for (;;) {
            pd_h_resp_t r;
            uint64_t t0 = now_ms();
            int rc = pd_h_do(hc, "POST", "/v1/payment_intents", &rq, &r);
            long ms = (long)(now_ms() - t0);
            if (ms > c->max_ms)
                c->max_ms = ms;
            if (ms > DEADLINE_MS)
                c->slow++;
            long st = rc == 0 ? r.status : -1;
            if (st == 402 && strstr(r.body != NULL ? r.body : "", "processing_error") != NULL) {
                /* the first attempt committed its first phase as the primary died, and the
                 * recovery worker settled it before the processor was asked: the key replays
                 * that failure, no charge was made */
                c->recovered++;
                c->amount[k] = -amount;
                pd_h_resp_free(&r);
                break;
            }
            if (st == 200) {
                json_error_t e;
                json_t *o = json_loads(r.body, 0, &e);
                snprintf(c->id[k], sizeof(c->id[k]), "%s", jstr(o, "id") != NULL ? jstr(o, "id") : "");
                json_decref(o);
                c->amount[k] = amount;
                c->acked++;
                pd_h_resp_free(&r);
                break;
            }
            if (st == 503) {
                c->s503++;
                if (strstr(r.body != NULL ? r.body : "", "storage_outcome_unknown") != NULL)
                    c->s503_unknown++;
                if (!good_503(&r)) {
                    c->s503_bad++;
                    fprintf(stderr, "a 503 without Retry-After or api_error: %s\n", r.body);
                }
            } else if (st == 409) {
                c->s409++; /* the key is in flight (its first attempt's outcome is being settled) */
            } else if (st >= 500) {
                c->s500++;
                fprintf(stderr, "answered %ld: %s\n", st, r.body != NULL ? r.body : "");
            } else {
                c->other++;
                fprintf(stderr, "answered %ld (curl %d): %s\n", st, r.curl_code, r.body != NULL ? r.body : "");
            }
            pd_h_resp_free(&r);
            if (now_ms() - first > KEY_MS) {
                fprintf(stderr, "key %s was never acknowledged\n", idh);
                break;
            }
            nap(100);
        }
        c->n++;
    }
    pd_h_client_free(hc);
    return NULL;
}

static long
readyz_status(void)
{
    pd_h_req_t rq = {.admin = true, .timeout_ms = 5000};
    pd_h_resp_t r;
    long st = pd_h_request(&p, "GET", "/readyz", &rq, &r) == 0 ? r.status : -1;
    pd_h_resp_free(&r);
    return st;
}

static long
pg_long(const char *query)
{
    const char *argv[] = {"/usr/lib/postgresql/15/bin/psql", "-XAtq", "-d", url, "-c", query, NULL};
    char *out = NULL;
    long n = -1;
    if (pd_h_run(argv, &out) == 0 && out != NULL)
        n = strtol(out, NULL, 10);
    free(out);
    return n;
}

/* psql as the superuser on the server; the first line of its output into out */
static int
pg_super(const char *sql, char *out, size_t cap)
{
    char su[200];
    snprintf(su, sizeof(su), "postgresql://postgres:%s@127.0.0.1:%u/postgres", PD_PG_PASSWORD, pd_pg_port());
    const char *argv[] = {"/usr/lib/postgresql/15/bin/psql", "-XAtq", "-d", su, "-c", sql, NULL};
    char *o = NULL;
    int rc = pd_h_run(argv, &o);
    snprintf(out, cap, "%s", o != NULL ? o : "");
    free(o);
    return rc;
}

/*
 * With no traffic at all, readiness still follows the primary: the store probes it every
 * second. The primary turned read-only (default_transaction_read_only, as a demoted
 * primary: writes fail with 25006, payd reconnects through the host list and finds no
 * writable server) makes /readyz 503; writable again, 200.
 */
static void
readiness_follows_the_primary_while_idle(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(readyz_status(), 200);
    assert_int_equal(pg_super("ALTER SYSTEM SET default_transaction_read_only = on", out, sizeof(out)), 0);
    assert_int_equal(pg_super("SELECT pg_reload_conf()", out, sizeof(out)), 0);
    uint64_t t0 = now_ms();
    long st = 0;
    while (now_ms() - t0 < 5000 && (st = readyz_status()) != 503)
        nap(100);
    long down_ms = (long)(now_ms() - t0);
    assert_int_equal(pg_super("ALTER SYSTEM RESET default_transaction_read_only", out, sizeof(out)), 0);
    assert_int_equal(pg_super("SELECT pg_reload_conf()", out, sizeof(out)), 0);
    uint64_t t1 = now_ms();
    long up = 0;
    while (now_ms() - t1 < 5000 && (up = readyz_status()) != 200)
        nap(100);
    printf("idle: readyz %ld %ld ms after the primary turned read-only, %ld %ld ms after it took writes again\n", st,
           down_ms, up, (long)(now_ms() - t1));
    fflush(stdout);
    assert_int_equal(st, 503);
    assert_int_equal(up, 200);
}

typedef struct {
    long status;
    char body[2048], retry_after[16];
    volatile int done;
} post_t;

static void *
post_main(void *arg)
{
    post_t *pt = arg;
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    const char *hdrs[] = {auth, "Content-Type: application/x-www-form-urlencoded", "Idempotency-Key: indoubt-1", NULL};
    pd_h_req_t rq = {.headers = hdrs, .body = "amount=4242&currency=usd", .timeout_ms = 30000};
    pd_h_resp_t r;
    pt->status = pd_h_request(&p, "POST", "/v1/payment_intents", &rq, &r) == 0 ? r.status : -1;
    snprintf(pt->body, sizeof(pt->body), "%s", r.body != NULL ? r.body : "");
    if (!pd_h_resp_header(&r, "retry-after", pt->retry_after, sizeof(pt->retry_after)))
        pt->retry_after[0] = '\0';
    pd_h_resp_free(&r);
    __atomic_store_n(&pt->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/*
 * A COMMIT whose connection drops while it waits: the synchronous standby is named
 * away (commits wait for a standby that never answers), payd's session waiting in
 * SyncRep is terminated. The transaction is committed on the primary, the client was
 * never told so: the answer must be neither a failure nor a success, but a 503 saying
 * the outcome is unknown; the same key retried replays the one payment.
 */
static void
a_commit_cut_off_is_neither_failed_nor_done(void **state)
{
    (void)state;
    char out[256];
    pthread_t th;
    post_t pt = {0};
    assert_int_equal(pg_super("ALTER SYSTEM SET synchronous_standby_names = 'nobody'", out, sizeof(out)), 0);
    assert_int_equal(pg_super("SELECT pg_reload_conf()", out, sizeof(out)), 0);
    nap(300);
    assert_int_equal(pthread_create(&th, NULL, post_main, &pt), 0);
    int killed = 0;
    /* payd's COMMITs wait for the standby: cut them off until the request is answered (the
     * store's idle probe may be among them) */
    for (int i = 0; i < 100 && !__atomic_load_n(&pt.done, __ATOMIC_ACQUIRE); i++) {
        nap(100);
        if (pg_super("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE wait_event = 'SyncRep' "
                     "AND application_name = 'payd' AND query = 'COMMIT'",
                     out, sizeof(out)) == 0)
            killed += (int)strtol(out, NULL, 10);
    }
    assert_int_equal(pg_super("ALTER SYSTEM SET synchronous_standby_names = '*'", out, sizeof(out)), 0);
    assert_int_equal(pg_super("SELECT pg_reload_conf()", out, sizeof(out)), 0);
    pthread_join(th, NULL);
    printf("in doubt: %d session(s) cut off in COMMIT; the client got %ld (Retry-After %s): %.200s\n", killed, pt.status,
           pt.retry_after, pt.body);
    fflush(stdout);
    assert_true(killed >= 1);
    assert_int_equal(pt.status, 503);
    assert_true(strtol(pt.retry_after, NULL, 10) >= 1);
    assert_non_null(strstr(pt.body, "\"type\":\"api_error\""));
    assert_non_null(strstr(pt.body, "storage_outcome_unknown"));
    /* it had committed: the key's retry replays it, and there is one payment */
    json_t *o = NULL;
    long st = 0;
    for (int i = 0; i < 50 && (st = api_call_as(&p, api_sk, "POST", "/v1/payment_intents", "amount=4242&currency=usd",
                                                "indoubt-1", &o)) != 200;
         i++) {
        json_decref(o);
        o = NULL;
        nap(200);
    }
    assert_int_equal(st, 200);
    assert_int_equal(jint(o, "amount"), 4242);
    json_decref(o);
    assert_int_equal(pg_long("SELECT count(*) FROM payment_intents WHERE amount = 4242"), 1);
}

typedef struct {
    pd_h_payd_t *q;
    char key[128];
    const char *idem; /* Idempotency-Key (NULL: none) */
    long status;
    json_t *body;
} confirm_t;

static void *
confirm_main(void *arg)
{
    confirm_t *c = arg;
    c->status = api_call_as(c->q, c->key, "POST", "/v1/payment_intents",
                            "amount=4343&currency=usd&payment_method=pm_card_visa&confirm=true", c->idem, &c->body);
    return NULL;
}

/*
 * A payment whose first phase's COMMIT was cut off (committed, the client told 503
 * storage_outcome_unknown) left its key in flight and its charge processing, and the
 * processor was never asked. Nothing continues that request, so the recovery worker
 * settles it at its next pass instead of after payments.recovery_after_ms (60 s by
 * default: this node keeps it): the key's retry gets the settled answer (402, never
 * sent to the network) within seconds rather than 409 for a minute. (Without
 * pd_recovery_expedite the retries get 409 until the 20 s budget ends: fails.)
 */
static void
an_in_doubt_payment_is_settled_without_waiting(void **state)
{
    (void)state;
    char one[300], url2[400], set_url2[440], out[256];
    assert_int_equal(pd_pg_database("indoubt", true, one, sizeof(one)), 0);
    snprintf(url2, sizeof(url2), "postgresql://payd:%s@127.0.0.1:%u/indoubt?connect_timeout=2", PD_PG_PASSWORD,
             pd_pg_port());
    snprintf(set_url2, sizeof(set_url2), "store.url=%s", url2);
    pd_h_payd_t q; /* its own database, processor and leases: p's 2 s recovery cannot settle it */
    const char *args[] = {"--set", "store.backend=postgres", "--set", set_url2, NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&q, &o), 0);
    api_load_credentials(&q);
    confirm_t c = {.q = &q, .idem = "indoubt-confirm"};
    snprintf(c.key, sizeof(c.key), "%s", api_sk);
    assert_int_equal(pg_super("ALTER SYSTEM SET synchronous_standby_names = 'nobody'", out, sizeof(out)), 0);
    assert_int_equal(pg_super("SELECT pg_reload_conf()", out, sizeof(out)), 0);
    nap(300);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, confirm_main, &c), 0);
    int killed = 0;
    for (int i = 0; i < 100 && killed == 0; i++) {
        nap(100);
        if (pg_super("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE wait_event = 'SyncRep' "
                     "AND application_name = 'payd' AND query = 'COMMIT' AND datname = 'indoubt'",
                     out, sizeof(out)) == 0)
            killed += (int)strtol(out, NULL, 10);
    }
    assert_int_equal(pg_super("ALTER SYSTEM SET synchronous_standby_names = '*'", out, sizeof(out)), 0);
    assert_int_equal(pg_super("SELECT pg_reload_conf()", out, sizeof(out)), 0);
    pthread_join(th, NULL);
    uint64_t t0 = now_ms();
    print_message("in doubt: %d COMMIT(s) cut off; the confirmation got %ld (%s)\n", killed, c.status,
                  jstr(c.body, "error.code") != NULL ? jstr(c.body, "error.code") : "-");
    assert_int_equal(c.status, 503);
    assert_string_equal(jstr(c.body, "error.code"), "storage_outcome_unknown");
    json_decref(c.body);
    /* the key's retries: 409 while the first attempt is unsettled, then its answer */
    long st = 409;
    json_t *b = NULL;
    int n409 = 0;
    while (now_ms() - t0 < 20000 && st == 409) {
        json_decref(b);
        st = api_call_as(&q, api_sk, "POST", "/v1/payment_intents",
                         "amount=4343&currency=usd&payment_method=pm_card_visa&confirm=true", "indoubt-confirm", &b);
        if (st == 409) {
            n409++;
            nap(250);
        }
    }
    uint64_t took = now_ms() - t0;
    print_message("the retry got %ld (%s) %llu ms after the 503, %d x 409 before\n", st,
                  jstr(b, "error.code") != NULL ? jstr(b, "error.code") : "-", (unsigned long long)took, n409);
    assert_int_equal(st, 402); /* settled: never sent to the network */
    assert_string_equal(jstr(b, "error.code"), "processing_error");
    json_decref(b);
    assert_true(took < 15000);
    char *log = pd_h_log(&q);
    assert_non_null(strstr(log, "a charge whose write ended in doubt is due now"));
    free(log);
    assert_true(api_ledger_verifies(&q)); /* the failed charge holds nothing; the processor never saw it */
    assert_int_equal(pd_h_stop(&q, SIGTERM, 20000), 0);
    pd_h_cleanup(&q);
}

/* No writable database while the processor has a payment (phase 1 durable, phase 2 not
 * yet written), as in a failover: phase 2 is tried again on a new connection until one is
 * back, and the request succeeds, rather than a 503 whose key waits for the recovery
 * worker (fails with PD_STEP_RETRY_MS 1). */
static void
an_outcome_cut_off_from_the_database_is_written_on_a_new_connection(void **state)
{
    (void)state;
    pd_h_payd_t q; /* a node of its own (with its own dev vault) whose processor answers slowly */
    char sim[600];
    snprintf(sim, sizeof(sim), "processor.simulator_db=%s/simulator.db", p.dir); /* one processor for both */
    const char *args[] = {"--set", "store.backend=postgres", "--set", set_url, "--set",
                          "processor.simulator_latency_ms=3000", "--set", sim, NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&q, &o), 0);
    confirm_t c = {.q = &q};
    api_load_credentials(&q); /* q's key is hashed under q's own vault's pepper: p's stays the global one */
    snprintf(c.key, sizeof(c.key), "%s", api_sk);
    api_load_credentials(&p);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, confirm_main, &c), 0);
    /* phase 1 durable (the charge is processing); the simulator answers 3 s after it was called */
    for (int i = 0; i < 100 && pg_long("SELECT count(*) FROM charges WHERE amount = 4343 AND processing = 1") != 1; i++)
        nap(20);
    assert_int_equal(pg_long("SELECT count(*) FROM charges WHERE amount = 4343 AND processing = 1"), 1);
    /* the database takes no writes for a while: every session payd has ends, and the new
     * ones are read-only (libpq's target_session_attrs=read-write refuses them: no host) */
    assert_int_equal(pd_pg_sql("postgres", "ALTER DATABASE failover SET default_transaction_read_only = on"), 0);
    assert_int_equal(pd_pg_sql("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                           "WHERE usename = 'payd' AND datname = 'failover'"),
                     0);
    nap(4500); /* past the processor's answer: phase 2 meets no writable database */
    assert_int_equal(pd_pg_sql("postgres", "ALTER DATABASE failover RESET default_transaction_read_only"), 0);
    pthread_join(th, NULL);
    if (c.status != 200) {
        char *log = pd_h_log(&q);
        fail_msg("answered %ld: %s\n%s", c.status, c.body != NULL ? json_dumps(c.body, 0) : "", log);
    }
    assert_string_equal(jstr(c.body, "status"), "succeeded");
    json_decref(c.body);
    char *log = pd_h_log(&q);
    assert_non_null(strstr(log, "the database is unavailable for a recorded outcome; trying again"));
    free(log);
    assert_int_equal(pd_h_stop(&q, SIGTERM, 20000), 0);
    pd_h_cleanup(&q);
}

static void
acknowledged_payments_survive_a_failover(void **state)
{
    (void)state;
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, client_main, &clients[i]), 0);
    uint64_t t0 = now_ms();
    nap(KILL_AT_MS);
    int before = 0;
    for (int i = 0; i < CLIENTS; i++)
        before += clients[i].acked;
    pd_pg_kill_primary();
    uint64_t killed = now_ms();
    /* no writable primary: readiness says so within the probe interval */
    long ready_down = 0;
    while (now_ms() - killed < DOWN_MS && ready_down != 503) {
        ready_down = readyz_status();
        nap(100);
    }
    while (now_ms() - killed < DOWN_MS)
        nap(50);
    assert_int_equal(pd_pg_promote(), 0);
    uint64_t promoted = now_ms();
    long ready_up = 0;
    while (now_ms() - promoted < 10000 && (ready_up = readyz_status()) != 200)
        nap(100);
    long ready_ms = (long)(now_ms() - promoted);
    while (now_ms() - t0 < LOAD_MS)
        nap(50);
    g_stop = 1;
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);

    client_t sum = {0};
    int keys = 0;
    for (int i = 0; i < CLIENTS; i++) {
        keys += clients[i].n;
        sum.acked += clients[i].acked;
        sum.recovered += clients[i].recovered;
        sum.s503 += clients[i].s503;
        sum.s503_unknown += clients[i].s503_unknown;
        sum.s503_bad += clients[i].s503_bad;
        sum.s409 += clients[i].s409;
        sum.s500 += clients[i].s500;
        sum.other += clients[i].other;
        sum.slow += clients[i].slow;
        if (clients[i].max_ms > sum.max_ms)
            sum.max_ms = clients[i].max_ms;
    }
    printf("failover: %d keys, %d acknowledged (%d before the kill), %d answers 503 (%d outcome unknown, %d without "
           "Retry-After/api_error), "
           "%d 409 in flight, %d 5xx other than 503, %d other, slowest answer %ld ms; %d keys settled as failed by "
           "recovery; readyz %ld while down, %ld %ld ms after the promotion\n",
           keys, sum.acked, before, sum.s503, sum.s503_unknown, sum.s503_bad, sum.s409, sum.s500, sum.other, sum.max_ms, sum.recovered,
           ready_down, ready_up, ready_ms);
    fflush(stdout);
    assert_true(before > 0);
    assert_int_equal(ready_down, 503);
    assert_int_equal(ready_up, 200);
    assert_int_equal(sum.s500, 0);
    assert_int_equal(sum.s503_bad, 0);
    assert_int_equal(sum.other, 0);
    assert_int_equal(sum.slow, 0);
    assert_int_equal(sum.acked + sum.recovered, keys); /* every key was answered for good in the end */

    /* every acknowledged payment is there, on the promoted standby */
    const char *argv[] = {"/usr/lib/postgresql/15/bin/psql", "-XAtq", "-F", " ", "-d", url, "-c",
                          "SELECT id, status, amount FROM payment_intents WHERE amount >= 100000", NULL};
    char *rows = NULL;
    assert_int_equal(pd_h_run(argv, &rows), 0);
    assert_non_null(rows);
    int seen = 0;
    for (int i = 0; i < CLIENTS; i++)
        for (int k = 0; k < clients[i].n; k++) {
            char want[128];
            if (clients[i].amount[k] < 0)
                continue; /* settled as failed */
            snprintf(want, sizeof(want), "%s succeeded %ld\n", clients[i].id[k], clients[i].amount[k]);
            if (strstr(rows, want) == NULL) {
                free(rows);
                fail_msg("acknowledged payment %s (amount %ld) is not there as succeeded", clients[i].id[k],
                         clients[i].amount[k]);
            }
            seen++;
        }
    free(rows);
    printf("failover: %d acknowledged payments read back succeeded\n", seen);
    /* one through the API too */
    json_t *o;
    char path[96];
    snprintf(path, sizeof(path), "/v1/payment_intents/%s", clients[0].id[0]);
    assert_int_equal(api_call(&p, "GET", path, NULL, &o), 200);
    json_decref(o);
    /* no key charged twice: each key's amount is unique */
    assert_int_equal(pg_long("SELECT count(*) FROM (SELECT amount FROM payment_intents WHERE amount >= 100000 "
                             "GROUP BY amount HAVING count(*) > 1) AS d"),
                     0);
    assert_int_equal(pg_long("SELECT count(*) FROM payment_intents WHERE amount >= 100000"), keys);
    setenv("PAYD_STORE_BACKEND", "postgres", 1);
    setenv("PAYD_STORE_URL", url, 1);
    assert_true(api_ledger_verifies(&p));
    unsetenv("PAYD_STORE_BACKEND");
    unsetenv("PAYD_STORE_URL");
}

static int
setup(void **state)
{
    (void)state;
    char one[300];
    if (pd_pg_start() != 0 || pd_pg_standby_start() == 0 || pd_pg_database("failover", true, one, sizeof(one)) != 0)
        return -1;
    /* both servers, the writable one wins; a dead host fails fast */
    snprintf(url, sizeof(url),
             "postgresql://payd:%s@127.0.0.1:%u,127.0.0.1:%u/failover?target_session_attrs=read-write&connect_timeout=2",
             PD_PG_PASSWORD, pd_pg_port(), pd_pg_standby_port());
    snprintf(set_url, sizeof(set_url), "store.url=%s", url);
    /* a payment left between its phases by the failover is settled soon; the load
     * (bounded by LOAD_MS) is not what the address and usage limits are for */
    const char *args[] = {"--set", "store.backend=postgres", "--set", set_url, "--set",
                          "payments.recovery_after_ms=2s", "--set", "waf.ip_rate_limit=100000000", "--set",
                          "payments.rate_per_s=1000000", "--set", "payments.burst=10000000", NULL};
    pd_h_opts_t o = {.args = args};
    if (pd_h_start(&p, &o) != 0)
        return -1;
    api_load_credentials(&p);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    int r = pd_h_stop(&p, SIGTERM, 20000);
    pd_h_cleanup(&p);
    pd_pg_stop();
    return r == 0 ? 0 : -1;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(readiness_follows_the_primary_while_idle),
        cmocka_unit_test(a_commit_cut_off_is_neither_failed_nor_done),
        cmocka_unit_test(an_in_doubt_payment_is_settled_without_waiting),
        cmocka_unit_test(an_outcome_cut_off_from_the_database_is_written_on_a_new_connection),
        cmocka_unit_test(acknowledged_payments_survive_a_failover),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
