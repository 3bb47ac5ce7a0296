/* The domain's transitions over records (payd/transitions.h): statuses, postings and
 * balance transactions of each processor answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "payd/transitions.h"

static void
records(pd_charge_rec_t *ch, pd_pi_rec_t *pi, const char *capture_method, int64_t amount)
{
    memset(ch, 0, sizeof(*ch));
    memset(pi, 0, sizeof(*pi));
    snprintf(ch->id, sizeof(ch->id), "ch_1");
    snprintf(ch->merchant_id, sizeof(ch->merchant_id), "acct_1");
    snprintf(ch->currency, sizeof(ch->currency), "usd");
    snprintf(ch->status, sizeof(ch->status), "pending");
    ch->amount = pi->amount = amount;
    ch->processing = true;
    ch->version = pi->version = 1;
    pi->status = PD_PI_PROCESSING;
    snprintf(pi->capture_method, sizeof(pi->capture_method), "%s", capture_method);
}

static int64_t
entry(const pd_posting_t *p, const char *account)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->e[i].account, account) == 0)
            return p->e[i].amount;
    return 0;
}

static void
approved_automatic_capture_posts_hold_and_capture(void **state)
{
    (void)state;
    pd_charge_rec_t ch;
    pd_pi_rec_t pi;
    pd_proc_result_t res = {.outcome = PD_PROC_APPROVED};
    pd_authorization_t a;
    snprintf(res.reference, sizeof(res.reference), "auth_9");
    records(&ch, &pi, "automatic", 1000);
    assert_int_equal(pd_pay_authorized(&ch, &pi, &res, 1000000, &a), 0);
    assert_true(a.approved && a.automatic);
    assert_false(ch.processing);
    assert_true(ch.captured);
    assert_string_equal(ch.status, "succeeded");
    assert_string_equal(ch.processor_ref, "auth_9");
    assert_int_equal(ch.version, 2);
    assert_int_equal(pi.status, PD_PI_SUCCEEDED);
    assert_int_equal(pi.amount_received, 1000);
    assert_int_equal(entry(&a.authorization, "card_holds"), 1000);
    assert_int_equal(entry(&a.capture, "processor_receivable"), 1000);
    assert_int_equal(entry(&a.capture, "fees"), -59); /* 2.9 % + 30 */
    assert_int_equal(a.bt.amount, 1000);
    assert_int_equal(a.bt.net, 941);
    assert_string_equal(a.bt.status, "pending");
    assert_int_equal(a.bt.available_on, 1000000 + PD_AVAILABLE_AFTER_S);
    assert_string_equal(a.bt.source, "ch_1");
}

static void
approved_manual_capture_holds_only(void **state)
{
    (void)state;
    pd_charge_rec_t ch;
    pd_pi_rec_t pi;
    pd_proc_result_t res = {.outcome = PD_PROC_APPROVED};
    pd_authorization_t a;
    records(&ch, &pi, "manual", 500);
    assert_int_equal(pd_pay_authorized(&ch, &pi, &res, 1, &a), 0);
    assert_false(ch.captured);
    assert_int_equal(pi.status, PD_PI_REQUIRES_CAPTURE);
    assert_int_equal(pi.amount_capturable, 500);
    assert_int_equal(a.authorization.n, 2);
    assert_int_equal(a.capture.n, 0);
    assert_string_equal(a.bt.id, "");
}

static void
declined_fails_the_charge_with_reasons(void **state)
{
    (void)state;
    pd_charge_rec_t ch;
    pd_pi_rec_t pi;
    pd_proc_result_t res = {.outcome = PD_PROC_DECLINED};
    pd_authorization_t a;
    snprintf(res.error_code, sizeof(res.error_code), "card_declined");
    snprintf(res.decline_code, sizeof(res.decline_code), "insufficient_funds");
    records(&ch, &pi, "automatic", 500);
    assert_int_equal(pd_pay_authorized(&ch, &pi, &res, 1, &a), 0);
    assert_false(a.approved);
    assert_string_equal(ch.status, "failed");
    assert_string_equal(ch.decline_code, "insufficient_funds");
    assert_int_equal(pi.status, PD_PI_REQUIRES_PAYMENT_METHOD);
    assert_int_equal(a.authorization.n + a.capture.n, 0);
}

static void
partial_capture_releases_the_rest(void **state)
{
    (void)state;
    pd_charge_rec_t ch;
    pd_pi_rec_t pi;
    pd_posting_t post;
    pd_btxn_rec_t bt;
    records(&ch, &pi, "manual", 1000);
    ch.processing = false;
    snprintf(ch.status, sizeof(ch.status), "succeeded");
    pi.status = PD_PI_REQUIRES_CAPTURE;
    ch.capture_requested = true;
    ch.capture_amount = 400;
    assert_int_equal(pd_pay_captured(&ch, &pi, 400, 7, &post, &bt), 0);
    assert_true(ch.captured);
    assert_false(ch.capture_requested);
    assert_int_equal(ch.capture_amount, 0);
    assert_int_equal(pi.status, PD_PI_SUCCEEDED);
    assert_int_equal(entry(&post, "merchant_holds"), 1000);
    assert_int_equal(entry(&post, "card_holds"), -1000);
    assert_int_equal(entry(&post, "processor_receivable"), 400);
    assert_true(pd_posting_balanced(&post));
    assert_int_equal(bt.amount, 400);
    assert_int_equal(bt.available_on, 7 + PD_AVAILABLE_AFTER_S);
    /* captured once: a second capture is refused */
    assert_int_equal(pd_pay_captured(&ch, &pi, 400, 7, &post, &bt), PD_ERR_STATE);
}

static void
void_releases_the_hold_and_cancels(void **state)
{
    (void)state;
    pd_charge_rec_t ch;
    pd_pi_rec_t pi;
    pd_posting_t post;
    records(&ch, &pi, "manual", 300);
    pi.status = PD_PI_REQUIRES_CAPTURE;
    ch.processing = false;
    snprintf(ch.status, sizeof(ch.status), "succeeded");
    ch.void_requested = true;
    assert_int_equal(pd_pay_voided(&ch, &pi, 9, &post), 0);
    assert_false(ch.void_requested);
    assert_int_equal(pi.status, PD_PI_CANCELED);
    assert_string_equal(pi.cancellation_reason, "requested_by_customer");
    assert_int_equal(entry(&post, "merchant_holds"), 300);
    assert_int_equal(entry(&post, "card_holds"), -300);
    assert_int_equal(pd_charge_state_of(&ch, pi.status), PD_CH_VOIDED);
    /* voided is final: no second void, no capture */
    pd_pi_rec_t pi2 = pi;
    assert_int_equal(pd_pay_voided(&ch, &pi2, 9, &post), PD_ERR_STATE);
    pd_btxn_rec_t bt;
    assert_int_equal(pd_pay_captured(&ch, &pi2, 100, 9, &post, &bt), PD_ERR_STATE);
    assert_int_equal(pd_pay_voided(NULL, &pi, 9, &post), 0); /* nothing authorized: nothing posted */
    assert_int_equal(post.n, 0);
}

static void
refund_outcomes(void **state)
{
    (void)state;
    pd_charge_rec_t ch;
    pd_pi_rec_t pi;
    pd_refund_rec_t f;
    pd_posting_t post;
    pd_btxn_rec_t bt;
    records(&ch, &pi, "automatic", 1000);
    memset(&f, 0, sizeof(f));
    snprintf(f.id, sizeof(f.id), "re_1");
    snprintf(f.status, sizeof(f.status), "pending");
    /* an uncaptured charge has nothing to refund */
    ch.processing = false;
    assert_int_equal(pd_pay_refunded(&f, &ch, 5, &post, &bt), PD_ERR_STATE);
    ch.captured = true;
    f.amount = 250;
    ch.amount_refunded = 250;
    assert_int_equal(pd_pay_refunded(&f, &ch, 5, &post, &bt), 0);
    assert_string_equal(f.status, "succeeded");
    assert_int_equal(entry(&post, "merchant_balance"), 250);
    assert_int_equal(entry(&post, "processor_receivable"), -250);
    assert_int_equal(bt.amount, -250);
    assert_string_equal(bt.status, "available");
    assert_int_equal(bt.available_on, 5);
    assert_string_equal(bt.source, "re_1");
    /* decided once: a refund that succeeded cannot fail after */
    assert_int_equal(pd_pay_refund_failed(&f, &ch), PD_ERR_STATE);
    snprintf(f.status, sizeof(f.status), "pending");
    assert_int_equal(pd_pay_refund_failed(&f, &ch), 0);
    assert_string_equal(f.status, "failed");
    assert_int_equal(ch.amount_refunded, 0);
}

/* the refund cap: what is reserved never exceeds what was captured */
static void
refund_requests_are_capped_at_the_captured_amount(void **state)
{
    (void)state;
    pd_charge_rec_t ch;
    pd_pi_rec_t pi;
    pd_refund_rec_t f;
    records(&ch, &pi, "automatic", 1000);
    memset(&f, 0, sizeof(f));
    ch.processing = false;
    f.amount = 100;
    assert_int_equal(pd_pay_refund_requested(&f, &ch), PD_ERR_STATE); /* not captured */
    ch.captured = true;
    ch.amount_captured = 1000;
    int64_t v = ch.version;
    f.amount = 600;
    assert_int_equal(pd_pay_refund_requested(&f, &ch), 0);
    assert_int_equal(ch.amount_refunded, 600);
    assert_int_equal(ch.version, v + 1);
    f.amount = 401; /* one more than is left */
    assert_int_equal(pd_pay_refund_requested(&f, &ch), PD_ERR_RANGE);
    f.amount = 0;
    assert_int_equal(pd_pay_refund_requested(&f, &ch), PD_ERR_RANGE);
    f.amount = -5;
    assert_int_equal(pd_pay_refund_requested(&f, &ch), PD_ERR_RANGE);
    assert_int_equal(ch.amount_refunded, 600); /* refused: nothing changed */
    assert_int_equal(ch.version, v + 1);
    f.amount = 400;
    assert_int_equal(pd_pay_refund_requested(&f, &ch), 0);
    assert_int_equal(ch.amount_refunded, 1000);
}

static void
lifecycle_tables(void **state)
{
    (void)state;
    assert_int_equal(pd_charge_next(PD_CH_PROCESSING, PD_CH_APPROVE), PD_CH_AUTHORIZED);
    assert_int_equal(pd_charge_next(PD_CH_PROCESSING, PD_CH_CAPTURE), PD_CH_CAPTURED);
    assert_int_equal(pd_charge_next(PD_CH_PROCESSING, PD_CH_REQUEST_CAPTURE), -1);
    assert_int_equal(pd_charge_next(PD_CH_AUTHORIZED, PD_CH_REQUEST_VOID), PD_CH_VOIDING);
    assert_int_equal(pd_charge_next(PD_CH_CAPTURING, PD_CH_REFUSE), PD_CH_AUTHORIZED);
    assert_int_equal(pd_charge_next(PD_CH_CAPTURED, PD_CH_REFUND), PD_CH_CAPTURED);
    assert_int_equal(pd_charge_next(PD_CH_AUTHORIZED, PD_CH_REFUND), -1);
    for (int e = 0; e < PD_CH_EVENT_COUNT; e++) {
        assert_int_equal(pd_charge_next(PD_CH_FAILED, e), -1);
        assert_int_equal(pd_charge_next(PD_CH_VOIDED, e), -1);
    }
    assert_int_equal(pd_charge_next(PD_CH_STATE_COUNT, PD_CH_APPROVE), -1);
    assert_int_equal(pd_refund_next(PD_RF_PENDING, PD_RF_APPROVE), PD_RF_SUCCEEDED);
    assert_int_equal(pd_refund_next(PD_RF_PENDING, PD_RF_DECLINE), PD_RF_FAILED);
    assert_int_equal(pd_refund_next(PD_RF_SUCCEEDED, PD_RF_DECLINE), -1);
    assert_int_equal(pd_refund_status_parse("canceled"), PD_RF_CANCELED);
    assert_int_equal(pd_refund_status_parse("x"), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(approved_automatic_capture_posts_hold_and_capture),
        cmocka_unit_test(approved_manual_capture_holds_only),
        cmocka_unit_test(declined_fails_the_charge_with_reasons),
        cmocka_unit_test(partial_capture_releases_the_rest),
        cmocka_unit_test(void_releases_the_hold_and_cancels),
        cmocka_unit_test(refund_outcomes),
        cmocka_unit_test(refund_requests_are_capped_at_the_captured_amount),
        cmocka_unit_test(lifecycle_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
