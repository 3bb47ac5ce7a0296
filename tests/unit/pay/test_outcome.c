/* pd_outcome_plan: phase 2 of a confirmation computed from the records phase 1 left,
 * for an approval with automatic capture, an approval for manual capture, and a decline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "payd/payments.h"
#include "payd/money.h"

static const int64_t NOW = 1800000000;

/* bodies and views are not NUL-terminated */
static bool
contains(const void *p, size_t len, const char *needle)
{
    return memmem(p, len, needle, strlen(needle)) != NULL;
}

static int64_t
entry(const pd_posting_t *p, const char *account)
{
    int64_t sum = 0;
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->e[i].account, account) == 0)
            sum += p->e[i].amount;
    return sum;
}

static void
records(pd_charge_rec_t *ch, pd_pi_rec_t *pi, pd_pm_rec_t *pm, const char *capture_method)
{
    memset(ch, 0, sizeof(*ch));
    memset(pi, 0, sizeof(*pi));
    memset(pm, 0, sizeof(*pm));
    snprintf(ch->id, sizeof(ch->id), "ch_test1");
    snprintf(ch->merchant_id, sizeof(ch->merchant_id), "acct_test");
    snprintf(ch->payment_intent, sizeof(ch->payment_intent), "pi_test1");
    snprintf(ch->currency, sizeof(ch->currency), "usd");
    snprintf(ch->status, sizeof(ch->status), "pending");
    ch->amount = 2000;
    ch->processing = true;
    ch->version = 1;
    snprintf(pi->id, sizeof(pi->id), "pi_test1");
    snprintf(pi->merchant_id, sizeof(pi->merchant_id), "acct_test");
    snprintf(pi->currency, sizeof(pi->currency), "usd");
    snprintf(pi->capture_method, sizeof(pi->capture_method), "%s", capture_method);
    snprintf(pi->latest_charge, sizeof(pi->latest_charge), "ch_test1");
    pi->amount = 2000;
    pi->status = PD_PI_PROCESSING;
    pi->version = 3;
    snprintf(pm->id, sizeof(pm->id), "pm_test1");
    snprintf(pm->object, sizeof(pm->object), "payment_method");
    snprintf(pm->brand, sizeof(pm->brand), "visa");
    snprintf(pm->last4, sizeof(pm->last4), "4242");
    pm->exp_month = 12;
    pm->exp_year = 2034;
}

static void
approved(pd_proc_result_t *res)
{
    memset(res, 0, sizeof(*res));
    res->outcome = PD_PROC_APPROVED;
    snprintf(res->reference, sizeof(res->reference), "sim_ref1");
    snprintf(res->network_status, sizeof(res->network_status), "approved_by_network");
    snprintf(res->cvc_check, sizeof(res->cvc_check), "pass");
}

static void
approval_with_automatic_capture(void **state)
{
    (void)state;
    pd_charge_rec_t ch;
    pd_pi_rec_t pi;
    pd_pm_rec_t pm;
    pd_proc_result_t res;
    pd_outcome_t o;
    pd_arena_t a;
    pd_buf_t body;
    records(&ch, &pi, &pm, "automatic");
    approved(&res);
    pd_arena_init(&a, 1u << 20);
    pd_buf_init(&body, PD_OBJECT_MAX);
    assert_int_equal(pd_outcome_plan(&a, &ch, &pi, &pm, &res, NOW, &o, &body), 0);
    assert_true(o.approved && o.automatic);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.ch.status, "succeeded");
    assert_false(o.ch.processing);
    assert_true(o.ch.captured);
    assert_int_equal(o.ch.amount_captured, 2000);
    assert_string_equal(o.ch.processor_ref, "sim_ref1");
    assert_int_equal(o.ch.version, 2); /* version-checked against phase 1's */
    assert_int_equal(o.pi.version, 4);
    assert_int_equal(o.pi.status, PD_PI_SUCCEEDED);
    assert_int_equal(o.pi.amount_received, 2000);
    assert_int_equal(o.pi.amount_capturable, 0);
    /* the hold made and released, the money receivable, the fee taken */
    int64_t fee = pd_fee(2000, 2);
    assert_int_equal(entry(&o.authorization, "card_holds"), 2000);
    assert_int_equal(entry(&o.capture, "card_holds"), -2000);
    assert_int_equal(entry(&o.capture, "processor_receivable"), 2000);
    assert_int_equal(entry(&o.capture, "merchant_balance"), -(2000 - fee));
    assert_int_equal(o.bt.amount, 2000);
    assert_int_equal(o.bt.fee, fee);
    assert_int_equal(o.bt.net, 2000 - fee);
    assert_string_equal(o.bt.source, "ch_test1");
    assert_int_equal(o.bt.available_on, NOW + 2 * 86400);
    assert_true(contains(body.p, body.len, "\"status\":\"succeeded\""));
    assert_true(contains(o.ch_json.p, o.ch_json.len, "\"cvc_check\":\"pass\""));
    pd_buf_free(&body);
    pd_arena_free(&a);
}

static void
approval_for_manual_capture_holds_only(void **state)
{
    (void)state;
    pd_charge_rec_t ch;
    pd_pi_rec_t pi;
    pd_pm_rec_t pm;
    pd_proc_result_t res;
    pd_outcome_t o;
    pd_arena_t a;
    pd_buf_t body;
    records(&ch, &pi, &pm, "manual");
    approved(&res);
    pd_arena_init(&a, 1u << 20);
    pd_buf_init(&body, PD_OBJECT_MAX);
    assert_int_equal(pd_outcome_plan(&a, &ch, &pi, &pm, &res, NOW, &o, &body), 0);
    assert_true(o.approved);
    assert_false(o.automatic);
    assert_int_equal(o.pi.status, PD_PI_REQUIRES_CAPTURE);
    assert_int_equal(o.pi.amount_capturable, 2000);
    assert_false(o.ch.captured);
    assert_int_equal(o.ch.amount_captured, 0);
    assert_int_equal(entry(&o.authorization, "card_holds"), 2000);
    assert_int_equal(o.capture.n, 0); /* nothing captured, no balance transaction */
    assert_string_equal(o.bt.id, "");
    assert_true(contains(body.p, body.len, "\"status\":\"requires_capture\""));
    pd_buf_free(&body);
    pd_arena_free(&a);
}

static void
decline_is_a_card_error_and_moves_nothing(void **state)
{
    (void)state;
    pd_charge_rec_t ch;
    pd_pi_rec_t pi;
    pd_pm_rec_t pm;
    pd_proc_result_t res;
    pd_outcome_t o;
    pd_arena_t a;
    pd_buf_t body;
    records(&ch, &pi, &pm, "automatic");
    pd_simulator_decide("4000000000009995", 16, "123", 12, 2034, &res); /* insufficient funds */
    snprintf(ch.request_id, sizeof(ch.request_id), "req_1");
    pd_arena_init(&a, 1u << 20);
    pd_buf_init(&body, PD_OBJECT_MAX);
    assert_int_equal(pd_outcome_plan(&a, &ch, &pi, &pm, &res, NOW, &o, &body), 0);
    assert_false(o.approved);
    assert_int_equal(o.status, 402);
    assert_string_equal(o.ch.status, "failed");
    assert_string_equal(o.ch.failure_code, "card_declined");
    assert_string_equal(o.ch.decline_code, "insufficient_funds");
    assert_false(o.ch.captured);
    assert_int_equal(o.pi.status, PD_PI_REQUIRES_PAYMENT_METHOD);
    assert_non_null(o.pi.last_payment_error);
    assert_non_null(strstr(o.pi.last_payment_error, "\"decline_code\":\"insufficient_funds\""));
    assert_int_equal(o.authorization.n, 0);
    assert_int_equal(o.capture.n, 0);
    assert_true(contains(body.p, body.len, "\"type\":\"card_error\""));
    assert_true(contains(body.p, body.len, "\"charge\":\"ch_test1\""));
    assert_true(contains(body.p, body.len, "\"request_id\":\"req_1\""));
    pd_buf_free(&body);
    pd_arena_free(&a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(approval_with_automatic_capture),
        cmocka_unit_test(approval_for_manual_capture_holds_only),
        cmocka_unit_test(decline_is_a_card_error_and_moves_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
