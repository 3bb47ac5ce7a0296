#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "payd/processor.h"

static char db_path[64];

static int
setup(void **state)
{
    (void)state;
    snprintf(db_path, sizeof(db_path), "/tmp/payd-sim-%d.db", (int)getpid());
    unlink(db_path);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char p[96];
    unlink(db_path);
    snprintf(p, sizeof(p), "%s-wal", db_path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", db_path);
    unlink(p);
    return 0;
}

static void
decide(const char *pan, const char *cvc, pd_proc_result_t *r)
{
    pd_simulator_decide(pan, strlen(pan), cvc, 12, 2040, r);
}

static void
stripe_test_cards_have_their_documented_outcomes(void **state)
{
    (void)state;
    static const struct {
        const char *pan, *cvc;
        pd_proc_outcome_t outcome;
        const char *error, *decline;
    } cases[] = {
        {"4242424242424242", "123", PD_PROC_APPROVED, "", ""},
        {"5555555555554444", NULL, PD_PROC_APPROVED, "", ""},
        {"378282246310005", "1234", PD_PROC_APPROVED, "", ""},
        {"4000000000000002", NULL, PD_PROC_DECLINED, "card_declined", "generic_decline"},
        {"4000000000009995", NULL, PD_PROC_DECLINED, "card_declined", "insufficient_funds"},
        {"4000000000000069", NULL, PD_PROC_DECLINED, "expired_card", "expired_card"},
        {"4000000000000127", "123", PD_PROC_DECLINED, "incorrect_cvc", "incorrect_cvc"},
        {"4000000000000119", NULL, PD_PROC_DECLINED, "processing_error", "processing_error"},
        {"4000000000000341", NULL, PD_PROC_DECLINED, "card_declined", "generic_decline"},
        {"4100000000000019", NULL, PD_PROC_DECLINED, "card_declined", "fraudulent"},
        {"4000000000000101", "123", PD_PROC_DECLINED, "incorrect_cvc", "incorrect_cvc"},
        {"4000000000000101", NULL, PD_PROC_APPROVED, "", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pd_proc_result_t r;
        decide(cases[i].pan, cases[i].cvc, &r);
        if (r.outcome != cases[i].outcome || strcmp(r.error_code, cases[i].error) != 0 ||
            strcmp(r.decline_code, cases[i].decline) != 0)
            fail_msg("%s: outcome %d %s/%s", cases[i].pan, r.outcome, r.error_code, r.decline_code);
    }
    pd_proc_result_t r;
    pd_simulator_decide("4242424242424242", 16, NULL, 1, 2020, &r);
    assert_int_equal(r.outcome, PD_PROC_DECLINED);
    assert_string_equal(r.error_code, "expired_card");
}

typedef struct {
    int calls;
    pd_proc_result_t res;
} got_t;

/* callbacks may run on the simulator's thread: the result is published by the count */
static void
got(void *arg, const pd_proc_result_t *res)
{
    got_t *g = arg;
    g->res = *res;
    __atomic_add_fetch(&g->calls, 1, __ATOMIC_RELEASE);
}

/* waits (up to 5 s) until the callback has run n times in all */
static void
wait_calls(got_t *g, int n)
{
    for (int i = 0; i < 1000 && __atomic_load_n(&g->calls, __ATOMIC_ACQUIRE) < n; i++)
        usleep(5000);
    assert_int_equal(__atomic_load_n(&g->calls, __ATOMIC_ACQUIRE), n);
}

static void
authorize_capture_refund_and_query_survive_reopening(void **state)
{
    (void)state;
    pd_processor_t *p;
    got_t g = {0};
    assert_int_equal(pd_simulator_new(&p, db_path, 0), 0);
    pd_proc_auth_t a = {.merchant_id = "acct_1", .charge_id = "ch_1", .pan = "4242424242424242", .pan_len = 16,
                        .exp_month = 12, .exp_year = 2040, .cvc = "123", .amount = 1000, .currency = "usd"};
    p->authorize(p, &a, got, &g);
    wait_calls(&g, 1);
    assert_int_equal(g.res.outcome, PD_PROC_APPROVED);
    char ref[64];
    snprintf(ref, sizeof(ref), "%s", g.res.reference);
    /* idempotent: same charge id, same reference */
    p->authorize(p, &a, got, &g);
    wait_calls(&g, 2);
    assert_string_equal(g.res.reference, ref);
    /* capture more than authorized is refused, then a partial capture works */
    p->capture(p, ref, 1001, got, &g);
    assert_int_equal(g.res.outcome, PD_PROC_DECLINED);
    p->capture(p, ref, 600, got, &g);
    assert_int_equal(g.res.outcome, PD_PROC_APPROVED);
    assert_int_equal(g.res.amount_captured, 600);
    p->refund(p, ref, 400, "re_1", got, &g);
    assert_int_equal(g.res.outcome, PD_PROC_APPROVED);
    p->refund(p, ref, 400, "re_1", got, &g); /* same refund id: no double refund */
    assert_int_equal(g.res.amount_refunded, 400);
    p->refund(p, ref, 201, "re_2", got, &g); /* over the captured amount */
    assert_int_equal(g.res.outcome, PD_PROC_DECLINED);
    p->refund(p, ref, 200, "re_2", got, &g); /* a refused refund id is decided anew */
    assert_int_equal(g.res.outcome, PD_PROC_APPROVED);
    assert_int_equal(g.res.amount_refunded, 600);
    p->refund(p, ref, 200, "re_2", got, &g); /* and then acknowledged once */
    assert_int_equal(g.res.outcome, PD_PROC_APPROVED);
    assert_int_equal(g.res.amount_refunded, 600);
    /* a void is idempotent (a retried cancel), and a voided authorization cannot be captured */
    pd_proc_auth_t v = a;
    v.charge_id = "ch_v";
    int calls = __atomic_load_n(&g.calls, __ATOMIC_ACQUIRE);
    p->authorize(p, &v, got, &g);
    wait_calls(&g, calls + 1);
    char vref[64];
    snprintf(vref, sizeof(vref), "%s", g.res.reference);
    p->cancel(p, vref, got, &g);
    assert_int_equal(g.res.outcome, PD_PROC_APPROVED);
    assert_int_equal(g.res.amount_authorized, 0);
    p->cancel(p, vref, got, &g);
    assert_int_equal(g.res.outcome, PD_PROC_APPROVED);
    p->capture(p, vref, 100, got, &g);
    assert_int_equal(g.res.outcome, PD_PROC_DECLINED);
    p->free(p);

    assert_int_equal(pd_simulator_new(&p, db_path, 0), 0);
    p->query(p, "ch_1", got, &g);
    assert_int_equal(g.res.outcome, PD_PROC_APPROVED);
    assert_true(g.res.captured);
    assert_int_equal(g.res.amount_captured, 600);
    assert_int_equal(g.res.amount_refunded, 600);
    p->query(p, "ch_unknown", got, &g);
    assert_int_equal(g.res.outcome, PD_PROC_NOT_FOUND);
    p->free(p);
}

/* a burst is recorded (in the simulator's batches) and every call answered, even
 * when the simulator is freed right after; each record survives reopening */
static void
burst_is_answered_before_free_and_recorded(void **state)
{
    (void)state;
    enum { N = 300 };
    static got_t g[N];
    static char ids[N][32];
    pd_processor_t *p;
    memset(g, 0, sizeof(g));
    assert_int_equal(pd_simulator_new(&p, db_path, 0), 0);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "ch_burst_%d", i);
        pd_proc_auth_t a = {.merchant_id = "acct_1", .charge_id = ids[i], .pan = i % 3 ? "4242424242424242" : "4000000000000002",
                            .pan_len = 16, .exp_month = 12, .exp_year = 2040, .amount = 100 + i, .currency = "usd"};
        p->authorize(p, &a, got, &g[i]);
    }
    p->free(p);
    for (int i = 0; i < N; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].res.outcome, i % 3 ? PD_PROC_APPROVED : PD_PROC_DECLINED);
        assert_int_equal(g[i].res.amount_authorized, i % 3 ? 100 + i : 0);
        for (int j = 0; j < i; j += 37)
            assert_string_not_equal(g[i].res.reference, g[j].res.reference);
    }
    assert_int_equal(pd_simulator_new(&p, db_path, 0), 0);
    got_t q = {0};
    for (int i = 0; i < N; i += 29) {
        p->query(p, ids[i], got, &q);
        assert_string_equal(q.res.reference, g[i].res.reference);
    }
    p->free(p);
}

static void
latency_delivers_later_on_another_thread(void **state)
{
    (void)state;
    pd_processor_t *p;
    got_t g = {0};
    assert_int_equal(pd_simulator_new(&p, db_path, 50), 0);
    pd_proc_auth_t a = {.merchant_id = "acct_1", .charge_id = "ch_2", .pan = "4000000000000002", .pan_len = 16,
                        .exp_month = 12, .exp_year = 2040, .amount = 1000, .currency = "usd"};
    p->authorize(p, &a, got, &g);
    assert_int_equal(__atomic_load_n(&g.calls, __ATOMIC_ACQUIRE), 0); /* not yet */
    wait_calls(&g, 1);
    assert_int_equal(g.res.outcome, PD_PROC_DECLINED);
    p->free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stripe_test_cards_have_their_documented_outcomes),
        cmocka_unit_test_setup_teardown(authorize_capture_refund_and_query_survive_reopening, setup, teardown),
        cmocka_unit_test_setup_teardown(burst_is_answered_before_free_and_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(latency_delivers_later_on_another_thread, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
