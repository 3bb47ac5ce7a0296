/*
 * Disputes against payd --dev and its processor simulator (integration/disputes and
 * integration/disputes/postgres): Stripe's dispute test card is disputed once captured,
 * the funds and the fee leave the balance, a won dispute gives them back, a lost or
 * closed one keeps them, a charged-back charge cannot be refunded, and after each the
 * books verify and agree with the processor's own record.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"

static pd_h_payd_t payd;

static int
setup(void **state)
{
    (void)state;
    if (pd_h_start(&payd, NULL) != 0)
        return -1;
    api_load_credentials(&payd);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    int rc = pd_h_stop(&payd, SIGTERM, 20000);
    pd_h_cleanup(&payd);
    return rc == 0 ? 0 : -1;
}


/* waits (up to 6 s) for the intent's dispute to reach status; its JSON */
static json_t *
dispute_of(const char *pi, const char *status)
{
    char path[200];
    snprintf(path, sizeof(path), "/v1/disputes?payment_intent=%s", pi);
    json_t *last = NULL;
    for (int i = 0; i < 120; i++) {
        json_t *j;
        assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
        json_t *d = json_array_get(json_object_get(j, "data"), 0);
        if (d != NULL && strcmp(jstr(d, "status"), status) == 0) {
            json_incref(d);
            json_decref(j);
            json_decref(last);
            return d;
        }
        json_decref(last);
        last = j;
        usleep(50000);
    }
    fail_msg("no dispute of %s in status %s: %s", pi, status, json_dumps(last, 0));
    return NULL;
}

/* a confirmed payment of amount with the dispute test card; its id into pi */
static void
disputed_payment(long amount, char *pi, size_t cap)
{
    json_t *o;
    char body[200];
    snprintf(body, sizeof(body), "amount=%ld&currency=usd&confirm=true&payment_method=pm_card_createDispute", amount);
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", body, &o), 200);
    assert_string_equal(jstr(o, "status"), "succeeded");
    snprintf(pi, cap, "%s", jstr(o, "id"));
    json_decref(o);
}

static long
post_dispute(const char *id, const char *what, const char *body, json_t **out)
{
    char path[200];
    snprintf(path, sizeof(path), "/v1/disputes/%s%s", id, what);
    return api_call(&payd, "POST", path, body, out);
}

static void
count_event(const char *type, size_t want)
{
    char path[200];
    json_t *j;
    snprintf(path, sizeof(path), "/v1/events?type=%s&limit=100", type);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
    if (json_array_size(json_object_get(j, "data")) != want)
        fail_msg("%s: %zu events, %zu expected", type, json_array_size(json_object_get(j, "data")), want);
    json_decref(j);
}

static void
a_won_dispute_gives_the_funds_and_the_fee_back(void **state)
{
    (void)state;
    char pi[64], id[64], ch[64], path[200];
    long long b0 = api_balance_total(&payd, "usd");
    disputed_payment(5000, pi, sizeof(pi));
    json_t *d = dispute_of(pi, "needs_response");
    snprintf(id, sizeof(id), "%s", jstr(d, "id"));
    snprintf(ch, sizeof(ch), "%s", jstr(d, "charge"));
    assert_int_equal(jint(d, "amount"), 5000);
    assert_string_equal(jstr(d, "reason"), "fraudulent");
    json_decref(d);
    long long net = 5000 - (5000 * 29 + 500) / 1000 - 30; /* the capture's net */
    assert_int_equal(api_balance_total(&payd, "usd") - b0, net - 5000 - 1500);

    /* the charge is disputed, not refundable; the balance transaction carries the fee */
    json_t *j;
    snprintf(path, sizeof(path), "/v1/charges/%s", ch);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
    assert_true(json_is_true(json_object_get(j, "disputed")));
    json_decref(j);
    char body[200];
    snprintf(body, sizeof(body), "charge=%s&amount=100", ch);
    assert_int_equal(api_call(&payd, "POST", "/v1/refunds", body, &j), 400);
    api_expect_error(j, "charge_disputed", NULL);
    json_decref(j);
    assert_int_equal(api_call(&payd, "GET", "/v1/balance_transactions?type=adjustment", NULL, &j), 200);
    json_t *bt = json_array_get(json_object_get(j, "data"), 0);
    assert_int_equal(jint(bt, "amount"), -5000);
    assert_int_equal(jint(bt, "fee"), 1500);
    assert_int_equal(jint(bt, "net"), -6500);
    assert_string_equal(jstr(bt, "source"), id);
    json_decref(j);
    count_event("charge.dispute.created", 1);
    count_event("charge.dispute.funds_withdrawn", 1);
    assert_true(api_ledger_verifies(&payd));

    /* winning evidence, submitted (Stripe's default): under review, then won */
    assert_int_equal(post_dispute(id, "", "evidence[uncategorized_text]=winning_evidence&metadata[case]=7", &j), 200);
    assert_string_equal(jstr(j, "status"), "under_review");
    assert_string_equal(jstr(j, "evidence.uncategorized_text"), "winning_evidence");
    assert_string_equal(jstr(j, "metadata.case"), "7");
    json_decref(j);
    d = dispute_of(pi, "won");
    json_decref(d);
    assert_int_equal(api_balance_total(&payd, "usd") - b0, net);
    count_event("charge.dispute.funds_reinstated", 1);
    count_event("charge.dispute.closed", 1);
    /* decided: no more answers */
    assert_int_equal(post_dispute(id, "", "evidence[uncategorized_text]=more", &j), 400);
    api_expect_error(j, "dispute_already_closed", NULL);
    json_decref(j);
    assert_true(api_ledger_verifies(&payd));
}

static void
a_lost_dispute_keeps_the_funds(void **state)
{
    (void)state;
    char pi[64], id[64];
    long long b0 = api_balance_total(&payd, "usd");
    disputed_payment(2000, pi, sizeof(pi));
    json_t *d = dispute_of(pi, "needs_response");
    snprintf(id, sizeof(id), "%s", jstr(d, "id"));
    json_decref(d);
    json_t *j;
    /* evidence kept without submitting, then submitted */
    assert_int_equal(post_dispute(id, "", "evidence[uncategorized_text]=losing_evidence&submit=false", &j), 200);
    assert_string_equal(jstr(j, "status"), "needs_response");
    json_decref(j);
    assert_int_equal(post_dispute(id, "", "evidence[customer_name]=Jane", &j), 200);
    assert_string_equal(jstr(j, "status"), "under_review");
    assert_string_equal(jstr(j, "evidence.uncategorized_text"), "losing_evidence"); /* merged */
    assert_string_equal(jstr(j, "evidence.customer_name"), "Jane");
    json_decref(j);
    d = dispute_of(pi, "lost");
    json_decref(d);
    long long net = 2000 - (2000 * 29 + 500) / 1000 - 30;
    assert_int_equal(api_balance_total(&payd, "usd") - b0, net - 2000 - 1500);
    assert_true(api_ledger_verifies(&payd));
}

static void
closing_a_dispute_accepts_the_loss(void **state)
{
    (void)state;
    char pi[64], id[64];
    /* a manual capture is disputed only once captured */
    json_t *o;
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents",
                              "amount=3000&currency=usd&confirm=true&capture_method=manual"
                              "&payment_method=pm_card_createDispute",
                              &o),
                     200);
    snprintf(pi, sizeof(pi), "%s", jstr(o, "id"));
    json_decref(o);
    sleep(3); /* two import passes */
    char path[200];
    snprintf(path, sizeof(path), "/v1/disputes?payment_intent=%s", pi);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 0);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s/capture", pi);
    assert_int_equal(api_call(&payd, "POST", path, "", &o), 200);
    json_decref(o);
    json_t *d = dispute_of(pi, "needs_response");
    snprintf(id, sizeof(id), "%s", jstr(d, "id"));
    json_decref(d);
    assert_int_equal(post_dispute(id, "/close", "", &o), 200);
    assert_string_equal(jstr(o, "status"), "lost");
    json_decref(o);
    assert_int_equal(post_dispute(id, "/close", "", &o), 400);
    api_expect_error(o, "dispute_already_closed", NULL);
    json_decref(o);
    sleep(3); /* the import sees the processor's lost: nothing more happens */
    d = dispute_of(pi, "lost");
    json_decref(d);
    assert_true(api_ledger_verifies(&payd));
}

static void
bad_requests_are_refused(void **state)
{
    (void)state;
    json_t *j;
    assert_int_equal(api_call(&payd, "GET", "/v1/disputes/dp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, &j), 404);
    api_expect_error(j, "resource_missing", "id");
    json_decref(j);
    assert_int_equal(post_dispute("dp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", "evidence[uncategorized_text]=x", &j), 404);
    json_decref(j);
    assert_int_equal(api_call(&payd, "GET", "/v1/disputes?charge=ch_x1234567&payment_intent=pi_x1234567", NULL, &j),
                     400);
    api_expect_error(j, "parameter_invalid", "payment_intent");
    json_decref(j);
    assert_int_equal(post_dispute("dp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", "submit=maybe", &j), 400);
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_won_dispute_gives_the_funds_and_the_fee_back),
        cmocka_unit_test(a_lost_dispute_keeps_the_funds),
        cmocka_unit_test(closing_a_dispute_accepts_the_loss),
        cmocka_unit_test(bad_requests_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
