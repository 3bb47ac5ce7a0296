/*
 * kill -9 of payd in the middle of a load of payments, then a restart on the same
 * data directory: every acknowledged payment is there, no payment was charged twice,
 * money the processor holds always has a succeeded charge, and the ledger verifies.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"
#include "pg_server.h"

enum { THREADS = 8, PER_THREAD = 400 };

typedef struct {
    pd_h_payd_t *p;
    int t;
    int acked;                  /* answered 200 */
    bool cut;                   /* its last request was sent and never answered: in flight at the kill */
    char ids[PER_THREAD][40];   /* acknowledged intent ids, by request index */
    volatile int *stop;
    volatile int *killing; /* set just before the kill -9 */
} loader_t;

static void
idem_key(char *out, size_t cap, int t, int i)
{
    snprintf(out, cap, "crash-%d-%d", t, i);
}

static void *
loader_main(void *arg)
{
    loader_t *l = arg;
    pd_h_client_t *c = pd_h_client_new(l->p);
    char auth[200], idem[80], idh[120];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    for (int i = 0; i < PER_THREAD && !*l->stop; i++) {
        idem_key(idem, sizeof(idem), l->t, i);
        snprintf(idh, sizeof(idh), "Idempotency-Key: %s", idem);
        const char *hdrs[] = {auth, idh, "Content-Type: application/x-www-form-urlencoded", NULL};
        pd_h_req_t rq = {.headers = hdrs,
                         .body = "amount=1999&currency=usd&payment_method=pm_card_visa&confirm=true",
                         .timeout_ms = 5000};
        pd_h_resp_t r;
        bool before_kill = __atomic_load_n(l->killing, __ATOMIC_SEQ_CST) == 0;
        if (pd_h_do(c, "POST", "/v1/payment_intents", &rq, &r) != 0 || r.status == 0) {
            pd_h_resp_free(&r);
            l->cut = before_kill; /* sent before the kill, never answered: payd died with it in flight */
            break;
        }
        if (r.status == 200) {
            json_error_t e;
            json_t *j = json_loads(r.body, 0, &e);
            const char *id = j != NULL ? jstr(j, "id") : NULL;
            if (id != NULL) {
                snprintf(l->ids[i], sizeof(l->ids[i]), "%s", id);
                l->acked++;
            }
            json_decref(j);
        }
        pd_h_resp_free(&r);
    }
    pd_h_client_free(c);
    return NULL;
}

static void
acknowledged_payments_survive_kill_9(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *args[] = {"--set", "payments.recovery_after_ms=1s", "--set", "waf.ip_rate_limit=1000000", NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);

    static loader_t ls[THREADS];
    pthread_t th[THREADS];
    volatile int stop = 0, killing = 0;
    for (int t = 0; t < THREADS; t++) {
        ls[t] = (loader_t){.p = &p, .t = t, .stop = &stop, .killing = &killing};
        pthread_create(&th[t], NULL, loader_main, &ls[t]);
    }
    /* let some payments complete, then kill payd with requests in flight */
    for (int i = 0; i < 200; i++) {
        int acked = 0;
        for (int t = 0; t < THREADS; t++)
            acked += __atomic_load_n(&ls[t].acked, __ATOMIC_RELAXED);
        if (acked >= 300)
            break;
        usleep(20000);
    }
    __atomic_store_n(&killing, 1, __ATOMIC_SEQ_CST);
    assert_int_equal(pd_h_stop(&p, SIGKILL, 5000), 128 + SIGKILL);
    stop = 1;
    int acked = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        acked += ls[t].acked;
    }
    int cut = 0;
    for (int t = 0; t < THREADS; t++)
        cut += ls[t].cut;
    assert_true(acked > 0);
    /* recovery is only tested if the kill caught requests in flight */
    assert_true(cut > 0);
    print_message("acknowledged before kill -9: %d, in flight at the kill: %d\n", acked, cut);

    /* restart on the same directory; the recovery worker resolves what was in flight */
    pd_h_opts_t again = {.args = args, .reuse_dir = p.dir};
    usleep(200000); /* the vault child follows its parent (PDEATHSIG) */
    assert_int_equal(pd_h_start(&p, &again), 0);
    long processing = -1;
    for (int i = 0; i < 100; i++) {
        processing = api_sql_long(&p, "payd.db", "SELECT count(*) FROM charges WHERE processing != 0 OR capture_requested != 0");
        if (processing == 0)
            break;
        usleep(100000);
    }
    assert_int_equal(processing, 0);

    /* every acknowledged payment is present and succeeded, with its one charge */
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < PER_THREAD; i++) {
            if (ls[t].ids[i][0] == '\0')
                continue;
            json_t *j;
            char path[120];
            snprintf(path, sizeof(path), "/v1/payment_intents/%s", ls[t].ids[i]);
            assert_int_equal(api_call(&p, "GET", path, NULL, &j), 200);
            assert_string_equal(jstr(j, "status"), "succeeded");
            json_decref(j);
            /* a client retrying with the same key gets the same payment back */
            char idem[80];
            idem_key(idem, sizeof(idem), t, i);
            assert_int_equal(api_call_as(&p, api_sk, "POST", "/v1/payment_intents",
                                         "amount=1999&currency=usd&payment_method=pm_card_visa&confirm=true", idem, &j),
                             200);
            assert_string_equal(jstr(j, "id"), ls[t].ids[i]);
            json_decref(j);
        }
    }
    /* no intent has two succeeded charges */
    assert_int_equal(api_sql_long(&p, "payd.db",
                               "SELECT count(*) FROM (SELECT payment_intent FROM charges WHERE status = 'succeeded'"
                               " GROUP BY payment_intent HAVING count(*) > 1) twice"),
                     0);
    /* the processor holds money only for succeeded charges, and the reverse */
    long held = api_sql_long(&p, "simulator.db", "SELECT count(*) FROM auths WHERE status IN ('authorized', 'captured')");
    long succeeded = api_sql_long(&p, "payd.db", "SELECT count(*) FROM charges WHERE status = 'succeeded'");
    assert_true(held >= acked);
    assert_int_equal(held, succeeded);
    char q[600];
    snprintf(q, sizeof(q),
             "ATTACH '%s/payd.db' AS p; SELECT count(*) FROM auths a LEFT JOIN p.charges c ON c.id = a.charge_id"
             " WHERE a.status IN ('authorized', 'captured') AND (c.id IS NULL OR c.status != 'succeeded')",
             p.dir);
    if (!pd_pg_wanted()) {
        assert_int_equal(api_sql_long(&p, "simulator.db", q), 0);
    } else {
        /* the two databases cannot be joined: the processor's held charges, as a list,
         * must all be succeeded charges of payd's */
        char sim[400];
        snprintf(sim, sizeof(sim), "%s/simulator.db", p.dir);
        const char *argv[] = {"/usr/bin/sqlite3", "-readonly", sim,
                              "SELECT group_concat(quote(charge_id), ',') FROM auths WHERE status IN ('authorized', 'captured')",
                              NULL};
        char *list = NULL;
        assert_int_equal(pd_h_run(argv, &list), 0);
        assert_non_null(list);
        list[strcspn(list, "\n")] = '\0';
        size_t qn = strlen(list) + 200;
        char *q2 = malloc(qn);
        assert_non_null(q2);
        snprintf(q2, qn, "SELECT count(*) FROM charges WHERE status = 'succeeded' AND id IN (%s)", list);
        assert_int_equal(api_sql_long(&p, "payd.db", q2), held);
        free(q2);
        free(list);
    }

    assert_true(api_ledger_verifies(&p));
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
}

typedef struct {
    const pd_h_payd_t *p;
    const char *path, *body, *idem;
    long status;
} call_t;

static void *
call_main(void *arg)
{
    call_t *c = arg;
    json_t *j = NULL;
    c->status = api_call_as(c->p, api_sk, "POST", c->path, c->body, c->idem, &j);
    json_decref(j);
    return NULL;
}

/* a refund and a cancellation whose processor calls were made but whose outcome was
 * never recorded (kill -9 while the answers were on their way) are finished by the
 * recovery worker: the refund succeeds once, the void is recorded, the ledger verifies */
static void
refund_and_cancel_interrupted_by_kill_9_are_finished(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *slow[] = {"--set", "payments.recovery_after_ms=1s", "--set", "processor.simulator_latency_ms=3s", NULL};
    pd_h_opts_t o = {.args = slow};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    json_t *j;
    char captured[64], authorized[64], body[200];
    assert_int_equal(api_charge(&p, "pm_card_visa", 5000, "usd", &j), 200);
    snprintf(captured, sizeof(captured), "%s", jstr(j, "id"));
    json_decref(j);
    assert_int_equal(api_call(&p, "POST", "/v1/payment_intents",
                              "amount=3000&currency=usd&confirm=true&payment_method=pm_card_visa&capture_method=manual", &j),
                     200);
    snprintf(authorized, sizeof(authorized), "%s", jstr(j, "id"));
    json_decref(j);

    char cancel_path[120];
    snprintf(body, sizeof(body), "payment_intent=%s&amount=1200", captured);
    snprintf(cancel_path, sizeof(cancel_path), "/v1/payment_intents/%s/cancel", authorized);
    call_t calls[2] = {{&p, "/v1/refunds", body, "refund-1", 0}, {&p, cancel_path, "", "cancel-1", 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, call_main, &calls[i]);
    /* the processor has refunded and voided; its answers are 3 s away */
    long voided = 0, refunded = 0;
    for (int i = 0; i < 100 && (voided != 1 || refunded != 1); i++) {
        usleep(20000);
        voided = api_sql_long(&p, "simulator.db", "SELECT count(*) FROM auths WHERE status = 'voided'");
        refunded = api_sql_long(&p, "simulator.db", "SELECT count(*) FROM refunds");
    }
    assert_int_equal(voided, 1);
    assert_int_equal(refunded, 1);
    assert_int_equal(api_sql_long(&p, "payd.db", "SELECT count(*) FROM refunds WHERE status = 'pending'"), 1);
    assert_int_equal(api_sql_long(&p, "payd.db", "SELECT count(*) FROM charges WHERE void_requested = 1"), 1);
    assert_int_equal(pd_h_stop(&p, SIGKILL, 5000), 128 + SIGKILL);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_true(calls[i].status <= 0); /* no answer: payd died */
    }

    const char *args[] = {"--set", "payments.recovery_after_ms=1s", NULL};
    pd_h_opts_t again = {.args = args, .reuse_dir = p.dir};
    usleep(200000);
    assert_int_equal(pd_h_start(&p, &again), 0);
    long left = -1;
    for (int i = 0; i < 100 && left != 0; i++) {
        usleep(100000);
        left = api_sql_long(&p, "payd.db",
                         "SELECT (SELECT count(*) FROM refunds WHERE status = 'pending') + "
                         "(SELECT count(*) FROM charges WHERE void_requested = 1)");
    }
    assert_int_equal(left, 0);
    /* the refund succeeded once; its key replays the recorded answer */
    assert_int_equal(api_call_as(&p, api_sk, "POST", "/v1/refunds", body, "refund-1", &j), 200);
    assert_string_equal(jstr(j, "status"), "succeeded");
    assert_int_equal(jint(j, "amount"), 1200);
    json_decref(j);
    assert_int_equal(api_sql_long(&p, "simulator.db", "SELECT amount_refunded FROM auths WHERE amount_refunded > 0"), 1200);
    char path[120];
    snprintf(path, sizeof(path), "/v1/charges?payment_intent=%s", captured);
    assert_int_equal(api_call(&p, "GET", path, NULL, &j), 200);
    assert_int_equal(jint(json_array_get(json_object_get(j, "data"), 0), "amount_refunded"), 1200);
    json_decref(j);
    /* the void is recorded: the intent is canceled, nothing is capturable */
    snprintf(path, sizeof(path), "/v1/payment_intents/%s", authorized);
    assert_int_equal(api_call(&p, "GET", path, NULL, &j), 200);
    assert_string_equal(jstr(j, "status"), "canceled");
    assert_int_equal(jint(j, "amount_capturable"), 0);
    json_decref(j);
    /* and the cancel request's key replays it */
    assert_int_equal(api_call_as(&p, api_sk, "POST", cancel_path, "", "cancel-1", &j), 200);
    assert_string_equal(jstr(j, "status"), "canceled");
    assert_string_equal(jstr(j, "id"), authorized);
    json_decref(j);

    assert_true(api_ledger_verifies(&p));
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
}

/* A payment in flight when its node is killed (the processor has authorized it, the
 * answer is on its way) leaves its key in flight. When the node starts again nothing of
 * its previous run is in flight any more: recovery settles the charge at its next pass
 * rather than recovery_after_ms (60 s by default, kept here) later, and the key's retry
 * gets the payment. Without the start-up expedite the retry gets 409 for the whole 20 s. */
static void
a_payment_left_by_a_killed_node_is_settled_when_it_starts_again(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *slow[] = {"--set", "processor.simulator_latency_ms=10s", NULL};
    pd_h_opts_t o = {.args = slow};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    static const char body[] = "amount=2500&currency=usd&confirm=true&payment_method=pm_card_visa";
    call_t c = {&p, "/v1/payment_intents", body, "killed-1", 0};
    pthread_t th;
    pthread_create(&th, NULL, call_main, &c);
    long authorized = 0;
    for (int i = 0; i < 400 && authorized != 1; i++) {
        usleep(20000);
        authorized = api_sql_long(&p, "simulator.db", "SELECT count(*) FROM auths WHERE amount = 2500");
    }
    assert_int_equal(authorized, 1);
    assert_int_equal(pd_h_stop(&p, SIGKILL, 5000), 128 + SIGKILL);
    pthread_join(th, NULL);
    assert_true(c.status <= 0); /* no answer: payd died */
    assert_int_equal(api_sql_long(&p, "payd.db", "SELECT count(*) FROM charges WHERE processing = 1"), 1);

    pd_h_opts_t again = {.reuse_dir = p.dir};
    assert_int_equal(pd_h_start(&p, &again), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    json_t *j = NULL;
    long st = 409;
    int n409 = 0;
    for (int i = 0; i < 80 && st == 409; i++) {
        json_decref(j);
        if ((st = api_call_as(&p, api_sk, "POST", "/v1/payment_intents", body, "killed-1", &j)) == 409) {
            n409++;
            usleep(250000);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("after the restart the key answered %ld (%s) in %.1f s, %d x 409 before\n", st,
                  jstr(j, "status") != NULL ? jstr(j, "status") : "-", took, n409);
    assert_int_equal(st, 200);
    assert_string_equal(jstr(j, "status"), "succeeded");
    assert_int_equal(jint(j, "amount_received"), 2500);
    json_decref(j);
    assert_true(took < 15.0);
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "charges a previous run of this node left requested are due for recovery now"));
    free(log);
    assert_int_equal(api_sql_long(&p, "simulator.db", "SELECT count(*) FROM auths WHERE amount = 2500"), 1);
    assert_true(api_ledger_verifies(&p));
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
}

/* a capture recorded as requested whose processor call never arrived (payd killed,
 * the processor's record without it) is made by the recovery worker with the amount
 * requested, and its key replays the answer */
static void
capture_the_processor_never_got_is_made_by_recovery(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *slow[] = {"--set", "payments.recovery_after_ms=1s", "--set", "processor.simulator_latency_ms=3s", NULL};
    pd_h_opts_t o = {.args = slow};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    json_t *j;
    char id[64], path[120];
    assert_int_equal(api_call(&p, "POST", "/v1/payment_intents",
                              "amount=3000&currency=usd&confirm=true&payment_method=pm_card_visa&capture_method=manual", &j),
                     200);
    snprintf(id, sizeof(id), "%s", jstr(j, "id"));
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s/capture", id);
    call_t call = {&p, path, "amount_to_capture=2000", "capture-1", 0};
    pthread_t th;
    pthread_create(&th, NULL, call_main, &call);
    long requested = 0;
    for (int i = 0; i < 100 && requested != 1; i++) {
        usleep(20000);
        requested = api_sql_long(&p, "payd.db", "SELECT count(*) FROM charges WHERE capture_requested = 1");
    }
    assert_int_equal(requested, 1);
    assert_int_equal(pd_h_stop(&p, SIGKILL, 5000), 128 + SIGKILL);
    pthread_join(th, NULL);
    assert_true(call.status <= 0);
    /* as if the capture never reached the processor */
    char sim[400];
    snprintf(sim, sizeof(sim), "%s/simulator.db", p.dir);
    const char *revert[] = {"/usr/bin/sqlite3", sim, "UPDATE auths SET status = 'authorized', amount_captured = 0", NULL};
    char *out = NULL;
    assert_int_equal(pd_h_run(revert, &out), 0);
    free(out);

    const char *args[] = {"--set", "payments.recovery_after_ms=1s", NULL};
    pd_h_opts_t again = {.args = args, .reuse_dir = p.dir};
    assert_int_equal(pd_h_start(&p, &again), 0);
    for (int i = 0; i < 100 && requested != 0; i++) {
        usleep(100000);
        requested = api_sql_long(&p, "payd.db", "SELECT count(*) FROM charges WHERE capture_requested = 1");
    }
    assert_int_equal(requested, 0);
    assert_int_equal(api_sql_long(&p, "simulator.db", "SELECT amount_captured FROM auths WHERE status = 'captured'"),
                     2000);
    assert_int_equal(api_call_as(&p, api_sk, "POST", path, "amount_to_capture=2000", "capture-1", &j), 200);
    assert_string_equal(jstr(j, "status"), "succeeded");
    assert_int_equal(jint(j, "amount_received"), 2000);
    json_decref(j);
    assert_true(api_ledger_verifies(&p));
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(acknowledged_payments_survive_kill_9),
        cmocka_unit_test(refund_and_cancel_interrupted_by_kill_9_are_finished),
        cmocka_unit_test(capture_the_processor_never_got_is_made_by_recovery),
        cmocka_unit_test(a_payment_left_by_a_killed_node_is_settled_when_it_starts_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
