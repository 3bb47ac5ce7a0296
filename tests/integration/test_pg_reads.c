/*
 * payd's reads on PostgreSQL never run on an event loop (always: this test starts its
 * own PostgreSQL 15 on loopback). payd runs with one event-loop thread (api.threads=1).
 *
 *   - A read that the database holds up (a session keeps payment_intents locked
 *     ACCESS EXCLUSIVE, so the SELECT of GET /v1/payment_intents/ID waits) stalls
 *     only the reader thread running it: meanwhile /healthz, and a GET that reads
 *     another table, on the same loop thread answer promptly. Once the lock goes the
 *     stuck GET answers 200; /metrics shows the reader thread it holds
 *     (payd_store_reads_running 1). (With store.readers=0 the reads run on the loop, and
 *     this part fails: /healthz waits for the lock.)
 *   - A read held up past store.read_timeout_ms is given up: 503 at the bound, and the
 *     reader serves again on a new session afterwards.
 *   - A revoked key cached on the loop is refused within the key epoch's bound
 *     (docs/api-keys.md: 100 ms plus a round trip; asserted: 300 ms).
 *   - With the database gone, every read handler answers 503 with Retry-After and a
 *     Stripe-shaped api_error: a GET by id (never 404 resource_missing), a list
 *     (never 500), a POST whose object load fails (never 404), and authentication
 *     once the cached key epoch is stale; /healthz still answers 200. The database
 *     "goes away" by ending payd's sessions and refusing new ones to its database;
 *     once it lets them in again the reads answer 200.
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
#include <libpq-fe.h>

#include "api_helpers.h"
#include "pg_server.h"

#define LOCK_HOLD_MS 3000 /* how long the lock holds the GET up */
#define PROMPT_MS 1000    /* an answer that does not wait for the database comes sooner than this */
#define READ_TIMEOUT_MS 4000 /* store.read_timeout_ms: more than LOCK_HOLD_MS */
#define UNANSWERED_MS 7000   /* how long the read past the bound is held up */

static pd_h_payd_t p;
static char url[400], set_url[440], pi_id[64];

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

typedef struct {
    long status;
    uint64_t ms;
    volatile int done;
} stuck_t;

static void *
stuck_get(void *arg)
{
    stuck_t *s = arg;
    char path[128];
    snprintf(path, sizeof(path), "/v1/payment_intents/%s", pi_id);
    uint64_t t0 = now_ms();
    s->status = api_call(&p, "GET", path, NULL, NULL);
    s->ms = now_ms() - t0;
    s->done = 1;
    return NULL;
}

/* GET path answered with status, in *ms */
static long
timed(const char *method, const char *path, bool with_key, uint64_t *ms)
{
    uint64_t t0 = now_ms();
    long st = with_key ? api_call(&p, method, path, NULL, NULL) : -1;
    if (!with_key) {
        pd_h_resp_t r;
        pd_h_req_t rq = {.timeout_ms = 10000};
        st = pd_h_request(&p, method, path, &rq, &r) == 0 ? r.status : -1;
        pd_h_resp_free(&r);
    }
    *ms = now_ms() - t0;
    return st;
}

static void
test_stuck_read_leaves_the_loop_free(void **state)
{
    (void)state;
    json_t *j;
    char path[128];
    uint64_t ms;
    assert_int_equal(api_call(&p, "POST", "/v1/payment_intents", "amount=1234&currency=usd", &j), 200);
    snprintf(pi_id, sizeof(pi_id), "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s", pi_id);
    assert_int_equal(api_call(&p, "GET", path, NULL, NULL), 200); /* the key is cached now */

    PGconn *c = PQconnectdb(url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *res = PQexec(c, "BEGIN; LOCK TABLE payment_intents IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    uint64_t locked_at = now_ms();

    static stuck_t s; /* the GET's thread may outlive this frame when an assertion fails */
    memset(&s, 0, sizeof(s));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stuck_get, &s), 0);
    nap(300); /* the GET is waiting for the lock on a reader thread */
    assert_false(s.done);

    long st = timed("GET", "/healthz", false, &ms);
    print_message("/healthz while a read is stuck: %ld in %llu ms\n", st, (unsigned long long)ms);
    assert_int_equal(st, 200);
    assert_true(ms < PROMPT_MS);
    st = timed("GET", "/v1/balance", true, &ms);
    print_message("GET /v1/balance (another table) while a read is stuck: %ld in %llu ms\n", st,
                  (unsigned long long)ms);
    assert_int_equal(st, 200);
    assert_true(ms < PROMPT_MS);
    assert_false(s.done); /* the GET of the intent really is held up */
    /* and /metrics shows the reader thread it holds */
    pd_h_req_t mq = {.admin = true, .timeout_ms = 5000};
    pd_h_resp_t m;
    assert_int_equal(pd_h_request(&p, "GET", "/metrics", &mq, &m), 0);
    assert_int_equal(m.status, 200);
    /* at least the one it holds (another read may be running at the scrape's moment) */
    const char *running = strstr(m.body, "\npayd_store_reads_running ");
    assert_non_null(running);
    long nrunning = strtol(running + strlen("\npayd_store_reads_running "), NULL, 10);
    print_message("payd_store_reads_running %ld while the read is held up\n", nrunning);
    assert_true(nrunning >= 1);
    pd_h_resp_free(&m);

    int64_t left = LOCK_HOLD_MS - (int64_t)(now_ms() - locked_at);
    if (left > 0)
        nap((int)left);
    assert_false(s.done);
    res = PQexec(c, "ROLLBACK");
    PQclear(res);
    PQfinish(c);
    pthread_join(th, NULL);
    print_message("the held-up GET answered %ld after %llu ms\n", s.status, (unsigned long long)s.ms);
    assert_int_equal(s.status, 200);
    assert_true(s.ms >= LOCK_HOLD_MS - 500);
}

/* A read the database does not answer within store.read_timeout_ms (READ_TIMEOUT_MS
 * here) is given up: the request gets 503 storage_unavailable with Retry-After at the
 * bound, not when the database answers; the reader logs in anew and the next read is
 * served (without the bound the GET waits out the whole lock: this test fails). */
static void
test_a_read_unanswered_past_its_bound_is_given_up(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "/v1/payment_intents/%s", pi_id);
    assert_int_equal(api_call(&p, "GET", path, NULL, NULL), 200);
    PGconn *c = PQconnectdb(url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *res = PQexec(c, "BEGIN; LOCK TABLE payment_intents IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    const char *hdrs[] = {auth, NULL};
    pd_h_req_t rq = {.headers = hdrs, .timeout_ms = 20000};
    pd_h_resp_t r;
    uint64_t t0 = now_ms();
    int rc = pd_h_request(&p, "GET", path, &rq, &r);
    uint64_t took = now_ms() - t0;
    if (rc != 0)
        print_message("curl %d after %llu ms\n", r.curl_code, (unsigned long long)took);
    assert_int_equal(rc, 0);
    char ra[16] = "";
    bool has_ra = pd_h_resp_header(&r, "retry-after", ra, sizeof(ra));
    print_message("a read held %d ms past its %d ms bound: %ld after %llu ms: %s\n", UNANSWERED_MS - READ_TIMEOUT_MS,
                  READ_TIMEOUT_MS, r.status, (unsigned long long)took, r.body);
    assert_int_equal(r.status, 503);
    assert_true(has_ra);
    assert_non_null(strstr(r.body, "storage_unavailable"));
    pd_h_resp_free(&r);
    assert_true(took >= READ_TIMEOUT_MS - 100 && took < READ_TIMEOUT_MS + 1500);
    int64_t left = UNANSWERED_MS - (int64_t)(now_ms() - t0);
    if (left > 0)
        nap((int)left);
    res = PQexec(c, "ROLLBACK");
    PQclear(res);
    PQfinish(c);
    /* the readers serve again: the one that gave up its session logs in anew */
    for (int i = 0; i < 4; i++)
        assert_int_equal(api_call(&p, "GET", path, NULL, NULL), 200);
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "the database did not answer a read in time"));
    free(log);
}

/* payctl --json ARGS... against the test's database; exit code, *out its output (malloc'd) */
static int
payctl(char **out, const char *const *args)
{
    const char *argv[20] = {"--json"};
    int n = 1;
    for (int i = 0; args[i] != NULL && n < 19; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    setenv("PAYD_STORE_BACKEND", "postgres", 1);
    setenv("PAYD_STORE_URL", url, 1);
    int r = pd_h_payctl(&p, argv, out);
    unsetenv("PAYD_STORE_BACKEND");
    unsetenv("PAYD_STORE_URL");
    return r;
}

/* With reads off the loop the key epoch is reread every 100 ms (docs/api-keys.md): a
 * key cached on the loop is refused by every request that starts a little later
 * than that after `payctl keys revoke` returned. */
#define REVOKE_BOUND_MS 300

static void
test_revocation_within_its_bound(void **state)
{
    (void)state;
    const char *a[] = {"keys", "create", "--merchant", api_merchant, "--type", "secret", NULL};
    char *out = NULL, key[128], id[64];
    assert_int_equal(payctl(&out, a), 0);
    json_error_t e;
    json_t *o = json_loads(strchr(out, '{'), JSON_DISABLE_EOF_CHECK, &e);
    assert_non_null(o);
    snprintf(key, sizeof(key), "%s", json_string_value(json_object_get(o, "key")));
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(o, "id")));
    json_decref(o);
    free(out);
    pd_h_client_t *c = pd_h_client_new(&p);
    assert_int_equal(api_balance_as(c, key), 200);
    assert_int_equal(api_balance_as(c, key), 200); /* cached now */
    const char *rv[] = {"keys", "revoke", id, NULL};
    assert_int_equal(payctl(&out, rv), 0);
    free(out);
    uint64_t t0 = now_ms();
    long st = 200;
    while (now_ms() - t0 < 3000 && (st = api_balance_as(c, key)) == 200)
        nap(10);
    uint64_t took = now_ms() - t0;
    print_message("the revoked key was refused (%ld) %llu ms after payctl keys revoke returned\n", st,
                  (unsigned long long)took);
    assert_int_equal(st, 401);
    assert_true(took <= REVOKE_BOUND_MS);
    for (int i = 0; i < 5; i++)
        assert_int_equal(api_balance_as(c, key), 401); /* and stays refused */
    pd_h_client_free(c);
}

/* a 503 that tells the client to come back: Retry-After and error.type api_error */
/* the handler's own 503, not authentication's */
#define HANDLER_503 "The server cannot read its database right now."
#define AUTH_503 "The server cannot check the API key right now."

static void
assert_503(const char *method, const char *path, const char *body, const char *message)
{
    char auth[200], ra[16];
    const char *hdrs[3] = {auth, body != NULL ? "Content-Type: application/x-www-form-urlencoded" : NULL, NULL};
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    pd_h_req_t rq = {.headers = hdrs, .body = body, .timeout_ms = 15000};
    pd_h_resp_t r;
    assert_int_equal(pd_h_request(&p, method, path, &rq, &r), 0);
    print_message("%s %s with the database down: %ld %s\n", method, path, r.status, r.body);
    assert_int_equal(r.status, 503);
    assert_true(pd_h_resp_header(&r, "retry-after", ra, sizeof(ra)));
    json_error_t e;
    json_t *o = json_loads(r.body, 0, &e);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "type")), "api_error");
    const char *m = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
    assert_non_null(m);
    assert_memory_equal(m, message, strlen(message));
    json_decref(o);
    pd_h_resp_free(&r);
}

static void
test_reads_answer_503_while_the_database_is_down(void **state)
{
    (void)state;
    char path[128];
    uint64_t ms;
    snprintf(path, sizeof(path), "/v1/payment_intents/%s", pi_id);
    /* the key's row is cached afresh (its cache lives 2 s) */
    assert_int_equal(api_call(&p, "GET", "/v1/balance", NULL, NULL), 200);
    uint64_t t0 = now_ms();
    /* the database goes away at once for payd: its sessions are ended and no new one
     * is let in (as while no primary is reachable) */
    assert_int_equal(pd_pg_sql("postgres", "ALTER DATABASE reads ALLOW_CONNECTIONS false"), 0);
    assert_int_equal(pd_pg_sql("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                                           "'reads'"),
                     0);
    print_message("the database closed to payd in %llu ms\n", (unsigned long long)(now_ms() - t0));
    /* within the key epoch's freshness (1 s) the cached key passes: the handlers answer */
    assert_503("GET", path, NULL, HANDLER_503);                  /* was 404 resource_missing */
    assert_503("GET", "/v1/payment_intents", NULL, HANDLER_503); /* was 500 */
    assert_503("POST", path, "description=down", HANDLER_503);  /* the intent's load: was 404 */
    print_message("the handlers' 503s within %llu ms\n", (unsigned long long)(now_ms() - t0));
    nap(1500); /* the key epoch is stale now: authentication itself needs the database */
    assert_503("GET", "/v1/balance", NULL, AUTH_503);
    long st = timed("GET", "/healthz", false, &ms);
    assert_int_equal(st, 200);
    assert_true(ms < PROMPT_MS);
    /* the database back: reads answer again (the readers reconnect) */
    assert_int_equal(pd_pg_sql("postgres", "ALTER DATABASE reads ALLOW_CONNECTIONS true"), 0);
    for (int i = 0; i < 50 && api_call(&p, "GET", path, NULL, NULL) != 200; i++)
        nap(100);
    assert_int_equal(api_call(&p, "GET", path, NULL, NULL), 200);
}

static int
setup(void **state)
{
    (void)state;
    char one[300];
    if (pd_pg_start() != 0 || pd_pg_database("reads", true, one, sizeof(one)) != 0)
        return -1;
    snprintf(url, sizeof(url), "postgresql://payd:%s@127.0.0.1:%u/reads?connect_timeout=2", PD_PG_PASSWORD,
             pd_pg_port());
    snprintf(set_url, sizeof(set_url), "store.url=%s", url);
    const char *readers = getenv("PD_TEST_PG_READERS"); /* the mutation check: 0 puts the reads on the loop */
    char set_readers[64];
    snprintf(set_readers, sizeof(set_readers), "store.readers=%s", readers != NULL ? readers : "4");
    char set_timeout[64];
    snprintf(set_timeout, sizeof(set_timeout), "store.read_timeout_ms=%d", READ_TIMEOUT_MS);
    const char *args[] = {"--set", "store.backend=postgres", "--set", set_url, "--set", "api.threads=1",
                          "--set", set_readers, "--set", set_timeout, NULL};
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
    int r = pd_h_stop(&p, SIGTERM, 30000);
    pd_h_cleanup(&p);
    pd_pg_stop();
    return r == 0 ? 0 : -1;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stuck_read_leaves_the_loop_free),
        cmocka_unit_test(test_a_read_unanswered_past_its_bound_is_given_up),
        cmocka_unit_test(test_revocation_within_its_bound),
        cmocka_unit_test(test_reads_answer_503_while_the_database_is_down),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
