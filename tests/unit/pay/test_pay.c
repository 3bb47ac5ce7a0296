#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "payd/money.h"
#include "payd/pay.h"

static void
amounts_are_positive_integers_up_to_99999999(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(pd_amount_parse(PD_VIEW_LIT("1099"), &v), PD_AMOUNT_OK);
    assert_int_equal(v, 1099);
    assert_int_equal(pd_amount_parse(PD_VIEW_LIT("99999999"), &v), PD_AMOUNT_OK);
    assert_int_equal(pd_amount_parse(PD_VIEW_LIT("100000000"), &v), PD_AMOUNT_TOO_LARGE);
    assert_int_equal(pd_amount_parse(PD_VIEW_LIT("99999999999999999999999"), &v), PD_AMOUNT_TOO_LARGE);
    assert_int_equal(pd_amount_parse(PD_VIEW_LIT("0"), &v), PD_AMOUNT_TOO_SMALL);
    assert_int_equal(pd_amount_parse(PD_VIEW_LIT("-5"), &v), PD_AMOUNT_TOO_SMALL);
    static const char *bad[] = {"10.99", "1e3", "+5", " 5", "5 ", "", "-", "0x10", "١٢"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pd_amount_parse(pd_view_cstr(bad[i]), &v), PD_AMOUNT_NOT_INTEGER);
    assert_string_equal(pd_amount_error_code(PD_AMOUNT_TOO_SMALL), "amount_too_small");
    assert_string_equal(pd_amount_error_code(PD_AMOUNT_NOT_INTEGER), "parameter_invalid_integer");
}

static void
currency_exponents(void **state)
{
    (void)state;
    char c[4];
    assert_int_equal(pd_currency_exponent(PD_VIEW_LIT("usd")), 2);
    assert_int_equal(pd_currency_exponent(PD_VIEW_LIT("JPY")), 0);
    assert_int_equal(pd_currency_exponent(PD_VIEW_LIT("kwd")), 3);
    assert_int_equal(pd_currency_exponent(PD_VIEW_LIT("bhd")), 3);
    assert_int_equal(pd_currency_exponent(PD_VIEW_LIT("omr")), 3);
    assert_int_equal(pd_currency_exponent(PD_VIEW_LIT("tnd")), 3);
    assert_int_equal(pd_currency_exponent(PD_VIEW_LIT("xyz")), -1);
    assert_int_equal(pd_currency_normalize(PD_VIEW_LIT("EUR"), c), 0);
    assert_string_equal(c, "eur");
    assert_int_equal(pd_currency_normalize(PD_VIEW_LIT("eu"), c), PD_ERR_INVALID);
}

static void
state_machine_follows_stripe(void **state)
{
    (void)state;
    assert_true(pd_pi_allowed(PD_PI_REQUIRES_PAYMENT_METHOD, PD_PI_CONFIRM));
    assert_true(pd_pi_allowed(PD_PI_REQUIRES_CONFIRMATION, PD_PI_CONFIRM));
    assert_true(pd_pi_allowed(PD_PI_REQUIRES_CAPTURE, PD_PI_CAPTURE));
    assert_true(pd_pi_allowed(PD_PI_REQUIRES_CAPTURE, PD_PI_CANCEL));
    assert_false(pd_pi_allowed(PD_PI_REQUIRES_CAPTURE, PD_PI_CONFIRM));
    assert_false(pd_pi_allowed(PD_PI_SUCCEEDED, PD_PI_CANCEL));
    assert_false(pd_pi_allowed(PD_PI_SUCCEEDED, PD_PI_CAPTURE));
    assert_false(pd_pi_allowed(PD_PI_CANCELED, PD_PI_CONFIRM));
    assert_false(pd_pi_allowed(PD_PI_PROCESSING, PD_PI_UPDATE));
    assert_false(pd_pi_allowed(PD_PI_REQUIRES_CONFIRMATION, PD_PI_CAPTURE));
    assert_int_equal(pd_pi_after_authorization(true, true), PD_PI_SUCCEEDED);
    assert_int_equal(pd_pi_after_authorization(true, false), PD_PI_REQUIRES_CAPTURE);
    assert_int_equal(pd_pi_after_authorization(false, true), PD_PI_REQUIRES_PAYMENT_METHOD);
    char msg[200];
    pd_pi_refusal(PD_PI_SUCCEEDED, PD_PI_CANCEL, msg, sizeof(msg));
    assert_string_equal(msg, "You cannot cancel this PaymentIntent because it has a status of succeeded.");
    assert_int_equal(pd_pi_status_parse(PD_VIEW_LIT("requires_capture")), PD_PI_REQUIRES_CAPTURE);
    assert_int_equal(pd_pi_status_parse(PD_VIEW_LIT("nope")), -1);
}

static void
postings_balance_and_partial_capture_releases_the_rest(void **state)
{
    (void)state;
    pd_posting_t p;
    pd_post_authorization(&p, 1000);
    assert_true(pd_posting_balanced(&p));
    int64_t fee = pd_fee(600, 2);
    assert_int_equal(fee, 47); /* 17.4 -> 17, + 30 */
    pd_post_capture(&p, 1000, 600, fee);
    assert_true(pd_posting_balanced(&p));
    assert_string_equal(p.kind, "capture_partial");
    /* holds go back to zero, 600 is receivable, 553 is the merchant's, 47 fees */
    int64_t holds = 0, receivable = 0, merchant = 0;
    for (size_t i = 0; i < p.n; i++) {
        if (strcmp(p.e[i].account, "card_holds") == 0 || strcmp(p.e[i].account, "merchant_holds") == 0)
            holds += p.e[i].amount;
        if (strcmp(p.e[i].account, "processor_receivable") == 0)
            receivable += p.e[i].amount;
        if (strcmp(p.e[i].account, "merchant_balance") == 0)
            merchant += p.e[i].amount;
    }
    assert_int_equal(holds, 0);
    assert_int_equal(receivable, 600);
    assert_int_equal(merchant, -553);
    pd_post_refund(&p, 200);
    assert_true(pd_posting_balanced(&p));
    pd_post_void(&p, 1000);
    assert_true(pd_posting_balanced(&p));
    assert_int_equal(pd_fee(20, 2), 20); /* never more than the amount */
    assert_int_equal(pd_fee(1000, 0), 29);
}

/* the amount posting p makes to account (0 if none), and that p has exactly n entries */
static int64_t
entry(const pd_posting_t *p, const char *account)
{
    int64_t sum = 0;
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->e[i].account, account) == 0)
            sum += p->e[i].amount;
    return sum;
}

/* each posting moves exactly the accounts it must, in the direction it must (an empty
 * or reversed posting also balances: balance alone proves nothing) */
static void
each_posting_has_its_entries(void **state)
{
    (void)state;
    pd_posting_t p;
    pd_post_authorization(&p, 1000);
    assert_string_equal(p.kind, "authorization");
    assert_int_equal(p.n, 2);
    assert_int_equal(entry(&p, "card_holds"), 1000);
    assert_int_equal(entry(&p, "merchant_holds"), -1000);

    pd_post_capture(&p, 1000, 1000, 59);
    assert_string_equal(p.kind, "capture");
    assert_int_equal(p.n, 5);
    assert_int_equal(entry(&p, "merchant_holds"), 1000);
    assert_int_equal(entry(&p, "card_holds"), -1000);
    assert_int_equal(entry(&p, "processor_receivable"), 1000);
    assert_int_equal(entry(&p, "merchant_balance"), -941);
    assert_int_equal(entry(&p, "fees"), -59);

    pd_post_void(&p, 700);
    assert_string_equal(p.kind, "void");
    assert_int_equal(p.n, 2);
    assert_int_equal(entry(&p, "merchant_holds"), 700);
    assert_int_equal(entry(&p, "card_holds"), -700);

    pd_post_refund(&p, 250);
    assert_string_equal(p.kind, "refund");
    assert_int_equal(p.n, 2);
    assert_int_equal(entry(&p, "merchant_balance"), 250);
    assert_int_equal(entry(&p, "processor_receivable"), -250);

    /* an authorization then its void leaves no hold; then a capture leaves the hold released too */
    pd_posting_t a, v;
    pd_post_authorization(&a, 1234);
    pd_post_void(&v, 1234);
    assert_int_equal(entry(&a, "card_holds") + entry(&v, "card_holds"), 0);
    assert_int_equal(entry(&a, "merchant_holds") + entry(&v, "merchant_holds"), 0);
}

static void
fingerprints_ignore_parameter_order(void **state)
{
    (void)state;
    pd_param_t a[] = {{PD_VIEW_LIT("amount"), PD_VIEW_LIT("100"), PD_P_STR, false},
                      {PD_VIEW_LIT("currency"), PD_VIEW_LIT("usd"), PD_P_STR, false}};
    pd_param_t b[] = {{PD_VIEW_LIT("currency"), PD_VIEW_LIT("usd"), PD_P_STR, false},
                      {PD_VIEW_LIT("amount"), PD_VIEW_LIT("100"), PD_P_INT, false}};
    pd_param_t c[] = {{PD_VIEW_LIT("currency"), PD_VIEW_LIT("usd"), PD_P_STR, false},
                      {PD_VIEW_LIT("amount"), PD_VIEW_LIT("101"), PD_P_STR, false}};
    pd_params_t pa = {a, 2}, pb = {b, 2}, pc = {c, 2};
    char fa[65], fb[65], fc[65], fd[65];
    assert_int_equal(pd_request_fingerprint(PD_VIEW_LIT("POST"), PD_VIEW_LIT("/v1/payment_intents"), &pa, fa), 0);
    assert_int_equal(pd_request_fingerprint(PD_VIEW_LIT("POST"), PD_VIEW_LIT("/v1/payment_intents"), &pb, fb), 0);
    assert_int_equal(pd_request_fingerprint(PD_VIEW_LIT("POST"), PD_VIEW_LIT("/v1/payment_intents"), &pc, fc), 0);
    assert_int_equal(pd_request_fingerprint(PD_VIEW_LIT("POST"), PD_VIEW_LIT("/v1/refunds"), &pa, fd), 0);
    assert_string_equal(fa, fb);
    assert_string_not_equal(fa, fc);
    assert_string_not_equal(fa, fd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(amounts_are_positive_integers_up_to_99999999),
        cmocka_unit_test(currency_exponents),
        cmocka_unit_test(state_machine_follows_stripe),
        cmocka_unit_test(postings_balance_and_partial_capture_releases_the_rest),
        cmocka_unit_test(each_posting_has_its_entries),
        cmocka_unit_test(fingerprints_ignore_parameter_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
