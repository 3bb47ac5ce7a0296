/*
 * Money-moving requests racing on one payment, at 0 and 300 ms of processor latency:
 * 2, 10 and 50 parallel captures of one intent, a capture racing a cancel, a capture
 * racing a refund, and parallel partial refunds. Every request gets a definite answer
 * (200, 400 for a state that no longer allows it, 409 lock_timeout while another
 * operation is in flight, never saved under its idempotency key), a 409 retried with
 * its key is executed anew, and afterwards payd's books equal the processor's own
 * record (the simulator's database) exactly, charge by charge and in total.
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

enum { MAX_RACERS = 50 };

static pd_h_payd_t payd;
static char pm[64];

typedef struct {
    const char *path, *body;
    char key[64];
    long delay_ms; /* after the barrier */
    pthread_barrier_t *go;
    pd_h_client_t *client;
    long status;          /* first answer */
    long final_status;    /* after retrying 409s with the same key */
    char code[64];        /* error code of the first answer */
    bool should_retry;    /* Stripe-Should-Retry: true on the 409 */
} racer_t;

static long
post(pd_h_client_t *c, const char *path, const char *body, const char *key, char *code, size_t code_cap,
     bool *should_retry)
{
    char auth[200], idh[120], sr[16] = "";
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    snprintf(idh, sizeof(idh), "Idempotency-Key: %s", key);
    const char *hdrs[] = {auth, "Content-Type: application/x-www-form-urlencoded", idh, NULL};
    pd_h_req_t rq = {.headers = hdrs, .body = body, .timeout_ms = 20000};
    pd_h_resp_t r;
    long status = pd_h_do(c, "POST", path, &rq, &r) == 0 ? r.status : -1;
    if (code != NULL) {
        json_error_t e;
        json_t *o = r.body != NULL ? json_loads(r.body, 0, &e) : NULL;
        const char *v = o != NULL ? jstr(o, "error.code") : NULL;
        snprintf(code, code_cap, "%s", v != NULL ? v : "");
        json_decref(o);
    }
    if (should_retry != NULL)
        *should_retry = pd_h_resp_header(&r, "stripe-should-retry", sr, sizeof(sr)) && strcmp(sr, "true") == 0;
    pd_h_resp_free(&r);
    return status;
}

static void *
racer_main(void *arg)
{
    racer_t *x = arg;
    pthread_barrier_wait(x->go);
    if (x->delay_ms > 0)
        usleep((useconds_t)x->delay_ms * 1000);
    x->status = post(x->client, x->path, x->body, x->key, x->code, sizeof(x->code), &x->should_retry);
    x->final_status = x->status;
    /* a conflict is not saved under the key: the same key runs anew once the other is done */
    for (int i = 0; i < 100 && x->final_status == 409; i++) {
        usleep(50000);
        x->final_status = post(x->client, x->path, x->body, x->key, NULL, 0, NULL);
    }
    return NULL;
}

/* n requests (path_i, body_i chosen by who(i)) released at once; waits for all */
static void
race(racer_t *xs, int n)
{
    pthread_barrier_t go;
    pthread_t th[MAX_RACERS];
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        xs[i].go = &go;
        xs[i].client = pd_h_client_new(&payd);
        pd_h_resp_t r;
        pd_h_req_t rq = {0};
        assert_int_equal(pd_h_do(xs[i].client, "GET", "/healthz", &rq, &r), 0); /* connected before the race */
        pd_h_resp_free(&r);
        snprintf(xs[i].key, sizeof(xs[i].key), "race-%d-%ld-%d", getpid(), (long)random(), i);
    }
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, racer_main, &xs[i]);
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        pd_h_client_free(xs[i].client);
    }
    pthread_barrier_destroy(&go);
}

/* every first answer is definite: 200, a state refusal, or a retryable 409 */
static void
assert_definite(const racer_t *x)
{
    if (x->status == 409) {
        assert_string_equal(x->code, "lock_timeout");
        assert_true(x->should_retry);
    } else if (x->status != 200) {
        assert_int_equal(x->status, 400);
    }
    assert_true(x->final_status == 200 || x->final_status == 400);
}

/* a new manual-capture intent, authorized: requires_capture; its id into id */
static void
authorized_intent(long amount, char *id, size_t cap)
{
    char body[200];
    json_t *o;
    snprintf(body, sizeof(body), "amount=%ld&currency=usd&confirm=true&capture_method=manual&payment_method=%s", amount,
             pm);
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", body, &o), 200);
    assert_string_equal(jstr(o, "status"), "requires_capture");
    snprintf(id, cap, "%s", jstr(o, "id"));
    json_decref(o);
}

/* the intent's status and amount_received as payd answers them; its charge id into ch */
static const char *
intent_state(const char *id, long long *received, char *ch, size_t cap)
{
    static char status[40];
    char path[120];
    json_t *o;
    snprintf(path, sizeof(path), "/v1/payment_intents/%s", id);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    snprintf(status, sizeof(status), "%s", jstr(o, "status"));
    *received = jint(o, "amount_received");
    snprintf(ch, cap, "%s", jstr(o, "latest_charge") ? jstr(o, "latest_charge") : "");
    json_decref(o);
    return status;
}

/* the simulator's own record of a charge: one of its columns */
static long
processor(const char *charge, const char *column)
{
    char q[300];
    snprintf(q, sizeof(q), "SELECT %s FROM auths WHERE charge_id = '%s'", column, charge);
    return api_sql_long(&payd, "simulator.db", q);
}

static long
processor_status_is(const char *charge, const char *status)
{
    char q[300];
    snprintf(q, sizeof(q), "SELECT count(*) FROM auths WHERE charge_id = '%s' AND status = '%s'", charge, status);
    return api_sql_long(&payd, "simulator.db", q);
}

/* n parallel captures of one authorized intent: exactly one captures */
static void
parallel_captures(int n, long stagger_ms)
{
    char id[64], path[120], ch[64];
    long long received;
    authorized_intent(1000 + n, id, sizeof(id));
    snprintf(path, sizeof(path), "/v1/payment_intents/%s/capture", id);
    racer_t xs[MAX_RACERS];
    memset(xs, 0, sizeof(xs));
    for (int i = 0; i < n; i++) {
        xs[i].path = path;
        xs[i].body = "";
        xs[i].delay_ms = i * stagger_ms;
    }
    race(xs, n);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        assert_definite(&xs[i]);
        ok += xs[i].status == 200;
    }
    assert_int_equal(ok, 1);
    assert_string_equal(intent_state(id, &received, ch, sizeof(ch)), "succeeded");
    assert_int_equal(received, 1000 + n);
    assert_int_equal(processor_status_is(ch, "captured"), 1);
    assert_int_equal(processor(ch, "amount_captured"), 1000 + n);
    /* the winner's key replays its 200; a 409's key ran anew and met the captured intent */
    pd_h_client_t *c = pd_h_client_new(&payd);
    for (int i = 0; i < n; i++) {
        if (xs[i].status == 200)
            assert_int_equal(post(c, path, "", xs[i].key, NULL, 0, NULL), 200);
        else if (xs[i].status == 409)
            assert_int_equal(xs[i].final_status, 400);
    }
    pd_h_client_free(c);
}

static void
capture_races_cancel(long stagger_ms)
{
    char id[64], cap_path[120], can_path[120], ch[64];
    long long received;
    authorized_intent(2000, id, sizeof(id));
    snprintf(cap_path, sizeof(cap_path), "/v1/payment_intents/%s/capture", id);
    snprintf(can_path, sizeof(can_path), "/v1/payment_intents/%s/cancel", id);
    racer_t xs[2];
    memset(xs, 0, sizeof(xs));
    xs[0] = (racer_t){.path = cap_path, .body = ""};
    xs[1] = (racer_t){.path = can_path, .body = "", .delay_ms = stagger_ms};
    race(xs, 2);
    assert_definite(&xs[0]);
    assert_definite(&xs[1]);
    /* exactly one of the two moved the money, and the processor did the same */
    assert_int_equal((xs[0].final_status == 200) + (xs[1].final_status == 200), 1);
    const char *st = intent_state(id, &received, ch, sizeof(ch));
    if (xs[0].final_status == 200) {
        assert_string_equal(st, "succeeded");
        assert_int_equal(processor_status_is(ch, "captured"), 1);
        assert_int_equal(processor(ch, "amount_captured"), 2000);
    } else {
        assert_string_equal(st, "canceled");
        assert_int_equal(processor_status_is(ch, "voided"), 1);
    }
}

static void
capture_races_refund(long stagger_ms)
{
    char id[64], cap_path[120], ch[64], refund_body[120];
    long long received;
    authorized_intent(3000, id, sizeof(id));
    snprintf(cap_path, sizeof(cap_path), "/v1/payment_intents/%s/capture", id);
    snprintf(refund_body, sizeof(refund_body), "payment_intent=%s&amount=1000", id);
    racer_t xs[2];
    memset(xs, 0, sizeof(xs));
    xs[0] = (racer_t){.path = cap_path, .body = ""};
    xs[1] = (racer_t){.path = "/v1/refunds", .body = refund_body, .delay_ms = stagger_ms};
    race(xs, 2);
    assert_definite(&xs[0]);
    assert_definite(&xs[1]);
    assert_int_equal(xs[0].final_status, 200); /* the capture always goes through */
    assert_string_equal(intent_state(id, &received, ch, sizeof(ch)), "succeeded");
    assert_int_equal(processor(ch, "amount_captured"), 3000);
    /* the refund either found the intent captured (and refunded) or not yet (400) */
    assert_int_equal(processor(ch, "amount_refunded"), xs[1].final_status == 200 ? 1000 : 0);
}

/* ten partial refunds of one captured charge at once: each succeeds once, the total is exact */
static void
parallel_refunds(void)
{
    char id[64], cap_path[120], ch[64], body[120];
    long long received;
    authorized_intent(5000, id, sizeof(id));
    snprintf(cap_path, sizeof(cap_path), "/v1/payment_intents/%s/capture", id);
    json_t *o;
    assert_int_equal(api_call(&payd, "POST", cap_path, "", &o), 200);
    json_decref(o);
    snprintf(body, sizeof(body), "payment_intent=%s&amount=500", id);
    racer_t xs[10];
    memset(xs, 0, sizeof(xs));
    for (int i = 0; i < 10; i++)
        xs[i] = (racer_t){.path = "/v1/refunds", .body = body};
    race(xs, 10);
    for (int i = 0; i < 10; i++) {
        assert_definite(&xs[i]);
        assert_int_equal(xs[i].final_status, 200); /* 409s retried: every refund is made once */
    }
    (void)intent_state(id, &received, ch, sizeof(ch));
    assert_int_equal(processor(ch, "amount_refunded"), 5000);
    char q[200];
    snprintf(q, sizeof(q), "SELECT sum(amount) FROM refunds WHERE charge = '%s' AND status = 'succeeded'", ch);
    assert_int_equal(api_sql_long(&payd, "payd.db", q), 5000);
}

/* payd's totals equal the processor's, and `payctl ledger verify --with-processor` passes */
static void
books_equal_processor(void)
{
    long payd_captured = api_sql_long(&payd, "payd.db", "SELECT coalesce(sum(amount_captured), 0) FROM charges");
    long proc_captured = api_sql_long(&payd, "simulator.db",
                                      "SELECT coalesce(sum(amount_captured), 0) FROM auths WHERE status = 'captured'");
    long payd_refunded =
        api_sql_long(&payd, "payd.db", "SELECT coalesce(sum(amount), 0) FROM refunds WHERE status = 'succeeded'");
    long proc_refunded = api_sql_long(&payd, "simulator.db", "SELECT coalesce(sum(amount), 0) FROM refunds");
    long payd_voided = api_sql_long(&payd, "payd.db", "SELECT count(*) FROM payment_intents WHERE status = 'canceled'");
    long proc_voided = api_sql_long(&payd, "simulator.db", "SELECT count(*) FROM auths WHERE status = 'voided'");
    assert_true(payd_captured > 0);
    assert_int_equal(payd_captured, proc_captured);
    assert_int_equal(payd_refunded, proc_refunded);
    assert_int_equal(payd_voided, proc_voided);
    assert_int_equal(api_sql_long(&payd, "payd.db",
                                  "SELECT count(*) FROM charges WHERE capture_requested = 1 OR void_requested = 1"),
                     0);
    assert_true(api_ledger_verifies(&payd));
}

static void
start(const char *latency)
{
    char lat[64];
    snprintf(lat, sizeof(lat), "processor.simulator_latency_ms=%s", latency);
    const char *args[] = {"--set", "api.threads=2", "--set", "waf.ip_rate_limit=1000000", "--set", lat, NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&payd, &o), 0);
    api_load_credentials(&payd);
    assert_int_equal(api_card_pm(&payd, "4242424242424242", pm, sizeof(pm)), 200);
}

static void
stop(void)
{
    books_equal_processor();
    assert_int_equal(pd_h_stop(&payd, SIGTERM, 20000), 0);
    pd_h_cleanup(&payd);
}

static void
races_without_latency(void **state)
{
    (void)state;
    start("0");
    for (int round = 0; round < 8; round++) {
        parallel_captures(2, 0);
        parallel_captures(10, 0);
        capture_races_cancel(0);
        capture_races_refund(0);
    }
    for (int round = 0; round < 3; round++)
        parallel_captures(50, 0);
    parallel_refunds();
    stop();
}

static void
races_with_300ms_latency(void **state)
{
    (void)state;
    start("300ms");
    for (int round = 0; round < 3; round++) {
        parallel_captures(2, 100); /* two captures 100 ms apart: the outside test's reproduction */
        parallel_captures(10, 0);
        capture_races_cancel(100);
        capture_races_refund(0);
        capture_races_refund(400);
    }
    parallel_captures(50, 0);
    parallel_refunds();
    stop();
}

int
main(void)
{
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(races_without_latency),
        cmocka_unit_test(races_with_300ms_latency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
