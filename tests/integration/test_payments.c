/* The payments API over HTTPS against payd --dev: the behaviour merchants rely on. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"
#include "payd/webhook.h"

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

static void
authentication(void **state)
{
    (void)state;
    json_t *j;
    assert_int_equal(api_call_as(&payd, NULL, "GET", "/v1/balance", NULL, NULL, &j), 401);
    assert_string_equal(jstr(j, "error.type"), "invalid_request_error");
    json_decref(j);
    assert_int_equal(api_call_as(&payd, "sk_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "GET", "/v1/balance", NULL, NULL, &j),
                     401);
    assert_non_null(strstr(jstr(j, "error.message"), "Invalid API Key provided: sk_test_****AAAA"));
    json_decref(j);
    /* Basic auth with the key as the user */
    char user[160];
    snprintf(user, sizeof(user), "%s:", api_sk);
    pd_h_req_t rq = {.user = user};
    pd_h_resp_t r;
    assert_int_equal(pd_h_request(&payd, "GET", "/v1/balance", &rq, &r), 0);
    assert_int_equal(r.status, 200);
    pd_h_resp_free(&r);
    /* a publishable key may only create payment methods and tokens */
    assert_int_equal(api_call_as(&payd, api_pk, "POST", "/v1/payment_intents", "amount=100&currency=usd", NULL, &j), 403);
    json_decref(j);
    assert_int_equal(api_call_as(&payd, api_pk, "POST", "/v1/payment_methods",
                                 "type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2034", NULL,
                                 &j),
                     200);
    json_decref(j);
}

static void
payment_methods_store_cards_in_the_vault(void **state)
{
    (void)state;
    json_t *j;
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_methods",
                              "type=card&card[number]=5555555555554444&card[exp_month]=8&card[exp_year]=33&card[cvc]=314"
                              "&billing_details[name]=Jenny%20Rosen&metadata[order]=42",
                              &j),
                     200);
    assert_string_equal(jstr(j, "object"), "payment_method");
    assert_string_equal(jstr(j, "card.brand"), "mastercard");
    assert_string_equal(jstr(j, "card.last4"), "4444");
    assert_int_equal(jint(j, "card.exp_year"), 2033);
    assert_string_equal(jstr(j, "card.funding"), "credit");
    assert_non_null(jstr(j, "card.fingerprint"));
    assert_string_equal(jstr(j, "billing_details.name"), "Jenny Rosen");
    assert_string_equal(jstr(j, "metadata.order"), "42");
    char path[128];
    snprintf(path, sizeof(path), "/v1/payment_methods/%s", jstr(j, "id"));
    json_decref(j);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
    assert_string_equal(jstr(j, "card.last4"), "4444");
    json_decref(j);
    /* bad cards are card errors with the param */
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_methods",
                              "type=card&card[number]=4242424242424241&card[exp_month]=12&card[exp_year]=2034", &j),
                     402);
    api_expect_error(j, "incorrect_number", "card[number]");
    assert_string_equal(jstr(j, "error.type"), "card_error");
    json_decref(j);
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_methods",
                              "type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2019", &j),
                     402);
    api_expect_error(j, "invalid_expiry_year", "card[exp_year]");
    json_decref(j);
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_methods", "type=card&card[exp_month]=12&card[exp_year]=2030", &j),
                     400);
    api_expect_error(j, "parameter_missing", "card[number]");
    json_decref(j);
    assert_int_equal(api_call(&payd, "GET", "/v1/payment_methods/pm_doesnotexist", NULL, &j), 404);
    api_expect_error(j, "resource_missing", NULL);
    json_decref(j);
}

static void
automatic_payment_succeeds_with_a_charge(void **state)
{
    (void)state;
    json_t *j, *c;
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents",
                              "amount=2000&currency=usd&payment_method=pm_card_visa&confirm=true&description=Order%201",
                              &j),
                     200);
    assert_string_equal(jstr(j, "status"), "succeeded");
    assert_int_equal(jint(j, "amount_received"), 2000);
    assert_false(json_is_true(json_object_get(j, "livemode")));
    /* the client secret extends the id with a part that cannot be derived from it */
    const char *id = jstr(j, "id"), *cs = jstr(j, "client_secret");
    char prefix[96];
    snprintf(prefix, sizeof(prefix), "%s_secret_", id);
    assert_int_equal(strncmp(cs, prefix, strlen(prefix)), 0);
    assert_int_equal(strlen(cs + strlen(prefix)), 24);
    assert_null(strstr(id, cs + strlen(prefix) + 12));
    char path[128];
    snprintf(path, sizeof(path), "/v1/charges/%s", jstr(j, "latest_charge"));
    assert_int_equal(api_call(&payd, "GET", path, NULL, &c), 200);
    assert_true(json_is_true(json_object_get(c, "captured")));
    assert_true(json_is_true(json_object_get(c, "paid")));
    assert_string_equal(jstr(c, "payment_intent"), jstr(j, "id"));
    assert_string_equal(jstr(c, "payment_method_details.card.brand"), "visa");
    assert_string_equal(jstr(c, "outcome.network_status"), "approved_by_network");
    json_decref(c);
    json_decref(j);
}

static void
manual_capture_partial_then_refund(void **state)
{
    (void)state;
    json_t *j;
    char path[160], pi[64];
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents",
                              "amount=5000&currency=eur&payment_method=pm_card_amex&capture_method=manual&confirm=true",
                              &j),
                     200);
    assert_string_equal(jstr(j, "status"), "requires_capture");
    assert_int_equal(jint(j, "amount_capturable"), 5000);
    snprintf(pi, sizeof(pi), "%s", jstr(j, "id"));
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s/capture", pi);
    assert_int_equal(api_call(&payd, "POST", path, "amount_to_capture=6000", &j), 400);
    api_expect_error(j, "amount_too_large", "amount_to_capture");
    json_decref(j);
    assert_int_equal(api_call_as(&payd, api_sk, "POST", path, "amount_to_capture=3000", "capture-once", &j), 200);
    assert_string_equal(jstr(j, "status"), "succeeded");
    assert_int_equal(jint(j, "amount_received"), 3000);
    assert_int_equal(jint(j, "amount_capturable"), 0);
    json_decref(j);
    /* a retry with its key replays the capture rather than meeting the state it left */
    assert_int_equal(api_call_as(&payd, api_sk, "POST", path, "amount_to_capture=3000", "capture-once", &j), 200);
    assert_int_equal(jint(j, "amount_received"), 3000);
    json_decref(j);
    /* a second capture is an illegal transition */
    assert_int_equal(api_call(&payd, "POST", path, "", &j), 400);
    api_expect_error(j, "payment_intent_unexpected_state", NULL);
    assert_string_equal(jstr(j, "error.payment_intent.status"), "succeeded");
    json_decref(j);
    /* refunds never exceed what was captured */
    char body[200];
    snprintf(body, sizeof(body), "payment_intent=%s&amount=1000&reason=requested_by_customer", pi);
    assert_int_equal(api_call(&payd, "POST", "/v1/refunds", body, &j), 200);
    assert_string_equal(jstr(j, "status"), "succeeded");
    assert_int_equal(jint(j, "amount"), 1000);
    json_decref(j);
    snprintf(body, sizeof(body), "payment_intent=%s&amount=2001", pi);
    assert_int_equal(api_call(&payd, "POST", "/v1/refunds", body, &j), 400);
    api_expect_error(j, "amount_too_large", "amount");
    json_decref(j);
    snprintf(body, sizeof(body), "payment_intent=%s", pi); /* the rest */
    assert_int_equal(api_call(&payd, "POST", "/v1/refunds", body, &j), 200);
    assert_int_equal(jint(j, "amount"), 2000);
    char charge[64];
    snprintf(charge, sizeof(charge), "%s", jstr(j, "charge"));
    json_decref(j);
    assert_int_equal(api_call(&payd, "POST", "/v1/refunds", body, &j), 400);
    api_expect_error(j, "charge_already_refunded", NULL);
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/charges/%s", charge);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
    assert_int_equal(jint(j, "amount_refunded"), 3000);
    assert_true(json_is_true(json_object_get(j, "refunded")));
    json_decref(j);
}

static void
declines_are_card_errors_and_the_intent_can_be_retried(void **state)
{
    (void)state;
    json_t *j;
    char path[160], pi[64];
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents",
                              "amount=700&currency=usd&payment_method=pm_card_chargeDeclinedInsufficientFunds&confirm=true",
                              &j),
                     402);
    assert_string_equal(jstr(j, "error.type"), "card_error");
    assert_string_equal(jstr(j, "error.code"), "card_declined");
    assert_string_equal(jstr(j, "error.decline_code"), "insufficient_funds");
    assert_string_equal(jstr(j, "error.payment_intent.status"), "requires_payment_method");
    assert_string_equal(jstr(j, "error.payment_intent.last_payment_error.decline_code"), "insufficient_funds");
    snprintf(pi, sizeof(pi), "%s", jstr(j, "error.payment_intent.id"));
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s/confirm", pi);
    assert_int_equal(api_call(&payd, "POST", path, "payment_method=pm_card_visa", &j), 200);
    assert_string_equal(jstr(j, "status"), "succeeded");
    json_decref(j);
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents",
                              "amount=700&currency=usd&payment_method=pm_card_chargeDeclinedExpiredCard&confirm=true", &j),
                     402);
    assert_string_equal(jstr(j, "error.code"), "expired_card");
    json_decref(j);
    /* a declined charge is recorded as failed */
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents",
                              "amount=700&currency=usd&payment_method=pm_card_chargeDeclined&confirm=true", &j),
                     402);
    snprintf(path, sizeof(path), "/v1/charges/%s", jstr(j, "error.charge"));
    json_decref(j);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
    assert_string_equal(jstr(j, "status"), "failed");
    assert_string_equal(jstr(j, "failure_code"), "card_declined");
    json_decref(j);
}

static void
state_machine_cancel_and_update(void **state)
{
    (void)state;
    json_t *j;
    char path[160], pi[64];
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", "amount=1500&currency=usd", &j), 200);
    assert_string_equal(jstr(j, "status"), "requires_payment_method");
    snprintf(pi, sizeof(pi), "%s", jstr(j, "id"));
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s", pi);
    assert_int_equal(api_call(&payd, "POST", path, "amount=1600&payment_method=pm_card_visa&metadata[k]=v", &j), 200);
    assert_string_equal(jstr(j, "status"), "requires_confirmation");
    assert_int_equal(jint(j, "amount"), 1600);
    assert_string_equal(jstr(j, "metadata.k"), "v");
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s/capture", pi);
    assert_int_equal(api_call(&payd, "POST", path, "", &j), 400);
    api_expect_error(j, "payment_intent_unexpected_state", NULL);
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s/cancel", pi);
    assert_int_equal(api_call(&payd, "POST", path, "cancellation_reason=abandoned", &j), 200);
    assert_string_equal(jstr(j, "status"), "canceled");
    assert_string_equal(jstr(j, "cancellation_reason"), "abandoned");
    json_decref(j);
    assert_int_equal(api_call(&payd, "POST", path, "", &j), 400);
    api_expect_error(j, "payment_intent_unexpected_state", NULL);
    json_decref(j);
    /* cancel voids an authorization */
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents",
                              "amount=900&currency=usd&payment_method=pm_card_visa&capture_method=manual&confirm=true", &j),
                     200);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s/cancel", jstr(j, "id"));
    json_decref(j);
    assert_int_equal(api_call(&payd, "POST", path, "", &j), 200);
    assert_string_equal(jstr(j, "status"), "canceled");
    assert_int_equal(jint(j, "amount_capturable"), 0);
    json_decref(j);
}

static void
bad_parameters_get_stripe_errors_with_param(void **state)
{
    (void)state;
    json_t *j;
    static const struct {
        const char *body, *code, *param;
    } cases[] = {
        {"amount=10.99&currency=usd", "parameter_invalid_integer", "amount"},
        {"amount=0&currency=usd", "amount_too_small", "amount"},
        {"amount=-5&currency=usd", "amount_too_small", "amount"},
        {"amount=100000000&currency=usd", "amount_too_large", "amount"},
        {"amount=1e3&currency=usd", "parameter_invalid_integer", "amount"},
        {"amount=100&currency=xyz", "parameter_invalid", "currency"},
        {"amount=100&currency=usd&colour=red", "parameter_unknown", "colour"},
        {"currency=usd", "parameter_missing", "amount"},
        {"amount=100&currency=usd&capture_method=later", "parameter_invalid", "capture_method"},
        {"{\"amount\":10.5,\"currency\":\"usd\"}", "parameter_invalid_integer", "amount"},
        {"{\"amount\":100,\"amount\":200,\"currency\":\"usd\"}", "parameter_invalid", NULL},
        /* an expansion payd cannot make: refused, never ignored */
        {"amount=100&currency=usd&expand[]=review", "parameter_invalid", "expand"},
        {"{\"amount\":100,\"currency\":\"usd\",\"expand\":[\"latest_charge.nope\"]}", "parameter_invalid", "expand"},
        {"{\"amount\":100,\"currency\":\"usd\",\"metadata\":{\"k\":\"" /* 501 chars follow */, NULL, NULL},
    };
    for (size_t i = 0; i + 1 < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", cases[i].body, &j), 400);
        api_expect_error(j, cases[i].code, cases[i].param);
        assert_non_null(jstr(j, "error.message"));
        json_decref(j);
    }
    /* a connected account is refused, not ignored */
    {
        char auth[200];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
        const char *hdrs[] = {auth, "Stripe-Account: acct_1Other", NULL};
        pd_h_req_t rq = {.headers = hdrs};
        pd_h_resp_t r;
        assert_int_equal(pd_h_request(&payd, "GET", "/v1/payment_intents", &rq, &r), 0);
        assert_int_equal(r.status, 400);
        json_error_t e;
        json_t *o = json_loads(r.body, 0, &e);
        assert_string_equal(jstr(o, "error.code"), "account_invalid");
        json_decref(o);
        pd_h_resp_free(&r);
    }
    assert_int_equal(api_call(&payd, "GET", "/v1/payment_intents?expand[]=latest_charge", NULL, &j), 400);
    api_expect_error(j, "parameter_invalid", "expand"); /* a list's paths start with data. */
    json_decref(j);
    /* JSON bodies work like forms */
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents",
                              "{\"amount\":1234,\"currency\":\"jpy\",\"metadata\":{\"order\":\"A-1\"}}", &j),
                     200);
    assert_string_equal(jstr(j, "currency"), "jpy");
    assert_string_equal(jstr(j, "metadata.order"), "A-1");
    json_decref(j);
    /* metadata limits: 50 keys, 40-char keys, 500-char values */
    char body[8192];
    size_t n = (size_t)snprintf(body, sizeof(body), "amount=100&currency=usd");
    for (int i = 0; i < 51; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "&metadata[k%d]=v", i);
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", body, &j), 400);
    json_decref(j);
    n = (size_t)snprintf(body, sizeof(body), "amount=100&currency=usd&metadata[k]=");
    memset(body + n, 'x', 501);
    body[n + 501] = '\0';
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", body, &j), 400);
    json_decref(j);
}

static void
lists_paginate_newest_first(void **state)
{
    (void)state;
    json_t *j;
    char ids[5][64];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", "amount=111&currency=usd&description=page", &j),
                         200);
        snprintf(ids[i], sizeof(ids[i]), "%s", jstr(j, "id"));
        json_decref(j);
    }
    assert_int_equal(api_call(&payd, "GET", "/v1/payment_intents?limit=2", NULL, &j), 200);
    assert_string_equal(jstr(j, "object"), "list");
    assert_string_equal(jstr(j, "url"), "/v1/payment_intents");
    assert_true(json_is_true(json_object_get(j, "has_more")));
    json_t *data = json_object_get(j, "data");
    assert_int_equal(json_array_size(data), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 0), "id")), ids[4]);
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 1), "id")), ids[3]);
    json_decref(j);
    char path[200];
    snprintf(path, sizeof(path), "/v1/payment_intents?limit=2&starting_after=%s", ids[3]);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
    data = json_object_get(j, "data");
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 0), "id")), ids[2]);
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 1), "id")), ids[1]);
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/payment_intents?limit=2&ending_before=%s", ids[1]);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
    data = json_object_get(j, "data");
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 0), "id")), ids[3]);
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 1), "id")), ids[2]);
    json_decref(j);
    assert_int_equal(api_call(&payd, "GET", "/v1/payment_intents?limit=101", NULL, &j), 400);
    json_decref(j);
    assert_int_equal(api_call(&payd, "GET", "/v1/payment_intents?starting_after=pi_nope", NULL, &j), 404);
    json_decref(j);
    /* events filter by type */
    assert_int_equal(api_call(&payd, "GET", "/v1/events?type=payment_intent.created&limit=3", NULL, &j), 200);
    data = json_object_get(j, "data");
    assert_int_equal(json_array_size(data), 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(data, i), "type")), "payment_intent.created");
    json_decref(j);
}

typedef struct {
    const char *key;
    long status;
    char replayed[8];
    char id[64];
} idem_call_t;

static void *
idem_thread(void *arg)
{
    idem_call_t *c = arg;
    char auth[200], idh[120];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    snprintf(idh, sizeof(idh), "Idempotency-Key: %s", c->key);
    const char *hdrs[] = {auth, idh, "Content-Type: application/x-www-form-urlencoded", NULL};
    pd_h_req_t rq = {.headers = hdrs, .body = "amount=4242&currency=usd&payment_method=pm_card_visa&confirm=true"};
    pd_h_resp_t r;
    if (pd_h_request(&payd, "POST", "/v1/payment_intents", &rq, &r) == 0) {
        c->status = r.status;
        pd_h_resp_header(&r, "idempotent-replayed", c->replayed, sizeof(c->replayed));
        json_error_t e;
        json_t *j = json_loads(r.body, 0, &e);
        if (j != NULL && jstr(j, "id") != NULL)
            snprintf(c->id, sizeof(c->id), "%s", jstr(j, "id"));
        json_decref(j);
    }
    pd_h_resp_free(&r);
    return NULL;
}

static void
idempotency_under_100_concurrent_identical_requests(void **state)
{
    (void)state;
    enum { N = 100 };
    pthread_t th[N];
    idem_call_t calls[N];
    for (int i = 0; i < N; i++) {
        memset(&calls[i], 0, sizeof(calls[i]));
        calls[i].key = "idem-concurrent-1";
        pthread_create(&th[i], NULL, idem_thread, &calls[i]);
    }
    int ok = 0, conflict = 0, first = 0;
    const char *id = NULL;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (calls[i].status == 200) {
            ok++;
            if (strcmp(calls[i].replayed, "false") == 0)
                first++;
            if (id == NULL)
                id = calls[i].id;
            else if (strcmp(id, calls[i].id) != 0)
                fail_msg("two different payment intents for one idempotency key: %s %s", id, calls[i].id);
        } else if (calls[i].status == 409) {
            conflict++;
        } else {
            fail_msg("unexpected status %ld", calls[i].status);
        }
    }
    assert_int_equal(first, 1);
    assert_int_equal(ok + conflict, N);
    /* exactly one charge exists for that intent */
    json_t *j;
    char path[160];
    snprintf(path, sizeof(path), "/v1/charges?payment_intent=%s", id);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 1);
    json_decref(j);
    /* a later retry replays the same response; other parameters are an idempotency error */
    assert_int_equal(api_call_as(&payd, api_sk, "POST", "/v1/payment_intents",
                                 "amount=4242&currency=usd&payment_method=pm_card_visa&confirm=true", "idem-concurrent-1",
                                 &j),
                     200);
    assert_string_equal(jstr(j, "id"), id);
    json_decref(j);
    assert_int_equal(api_call_as(&payd, api_sk, "POST", "/v1/payment_intents", "amount=1&currency=usd",
                                 "idem-concurrent-1", &j),
                     400);
    assert_string_equal(jstr(j, "error.type"), "idempotency_error");
    json_decref(j);
}

/* a tiny webhook receiver */
typedef struct {
    int fd;
    uint16_t port;
    int received;
    char sig[256];
    char body[65536];
} receiver_t;

static void *
receiver_main(void *arg)
{
    receiver_t *rv = arg;
    for (;;) {
        int c = accept(rv->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        static char buf[70000];
        size_t got = 0;
        ssize_t n;
        while ((n = read(c, buf + got, sizeof(buf) - 1 - got)) > 0) {
            got += (size_t)n;
            buf[got] = '\0';
            char *h = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "content-length:");
            if (h && cl && got >= (size_t)(h + 4 - buf) + (size_t)atoi(cl + 15))
                break;
        }
        char *s = strcasestr(buf, "stripe-signature: "), *h = strstr(buf, "\r\n\r\n");
        if (s != NULL && h != NULL && strstr(buf, "charge.succeeded") != NULL) {
            snprintf(rv->sig, sizeof(rv->sig), "%.*s", (int)strcspn(s + 18, "\r\n"), s + 18);
            snprintf(rv->body, sizeof(rv->body), "%s", h + 4);
            __atomic_add_fetch(&rv->received, 1, __ATOMIC_SEQ_CST);
        }
        const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        if (write(c, ok, sizeof(ok) - 1) < 0) {
            /* the sender went away */
        }
        close(c);
    }
}

static void
webhooks_are_signed_and_delivered(void **state)
{
    (void)state;
    receiver_t rv = {0};
    rv.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(rv.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    listen(rv.fd, 16);
    getsockname(rv.fd, (struct sockaddr *)&sa, &sl);
    rv.port = ntohs(sa.sin_port);
    pthread_t th;
    pthread_create(&th, NULL, receiver_main, &rv);

    json_t *j;
    char body[300];
    snprintf(body, sizeof(body), "url=http://127.0.0.1:%u/hook&enabled_events[]=charge.succeeded&enabled_events[]=refund.created",
             rv.port);
    assert_int_equal(api_call(&payd, "POST", "/v1/webhook_endpoints", body, &j), 200);
    char secret[64], we[64];
    snprintf(secret, sizeof(secret), "%s", jstr(j, "secret"));
    snprintf(we, sizeof(we), "%s", jstr(j, "id"));
    assert_memory_equal(secret, "whsec_", 6);
    json_decref(j);
    /* the secret is shown once */
    char path[128];
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%s", we);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
    assert_null(jstr(j, "secret"));
    json_decref(j);
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents",
                              "amount=3100&currency=usd&payment_method=pm_card_visa&confirm=true", &j),
                     200);
    json_decref(j);
    for (int i = 0; i < 100 && __atomic_load_n(&rv.received, __ATOMIC_SEQ_CST) == 0; i++)
        usleep(100000);
    assert_true(rv.received >= 1);
    assert_int_equal(pd_webhook_verify(secret, strlen(secret), rv.sig, pd_view_cstr(rv.body), time(NULL), 300), 0);
    json_error_t e;
    json_t *ev = json_loads(rv.body, 0, &e);
    assert_non_null(ev);
    assert_string_equal(jstr(ev, "object"), "event");
    assert_string_equal(jstr(ev, "type"), "charge.succeeded");
    assert_string_equal(jstr(ev, "data.object.object"), "charge");
    json_decref(ev);
    assert_int_equal(api_call(&payd, "DELETE", path, NULL, &j), 200);
    assert_true(json_is_true(json_object_get(j, "deleted")));
    json_decref(j);
    /* live mode needs https (SSRF rules are unit-tested in tests/unit/events) */
    shutdown(rv.fd, SHUT_RDWR);
    close(rv.fd);
    pthread_join(th, NULL);
}

static void
balance_and_ledger_verify(void **state)
{
    (void)state;
    json_t *j;
    assert_int_equal(api_call(&payd, "GET", "/v1/balance", NULL, &j), 200);
    assert_string_equal(jstr(j, "object"), "balance");
    assert_true(json_array_size(json_object_get(j, "pending")) >= 1);
    json_decref(j);
    assert_int_equal(api_call(&payd, "GET", "/v1/balance_transactions?limit=5", NULL, &j), 200);
    assert_true(json_array_size(json_object_get(j, "data")) >= 1);
    json_decref(j);
    assert_true(api_ledger_verifies(&payd));
}

static void
test_and_live_objects_are_separate(void **state)
{
    (void)state;
    const char *argv[] = {PAYCTL_BIN, "--data-dir", payd.dir, "--json", "merchant", "create", "--name", "Live Co",
                          "--live", NULL};
    char *out = NULL;
    assert_int_equal(pd_h_run(argv, &out), 0);
    json_error_t e;
    json_t *m = json_loads(strstr(out, "{"), 0, &e);
    assert_non_null(m);
    char live[128], test[128];
    snprintf(live, sizeof(live), "%s", jstr(m, "live_secret_key"));
    snprintf(test, sizeof(test), "%s", jstr(m, "secret_key"));
    json_decref(m);
    free(out);
    json_t *j;
    assert_int_equal(api_call_as(&payd, test, "POST", "/v1/payment_intents", "amount=100&currency=usd", NULL, &j), 200);
    char path[128];
    snprintf(path, sizeof(path), "/v1/payment_intents/%s", jstr(j, "id"));
    json_decref(j);
    assert_int_equal(api_call_as(&payd, live, "GET", path, NULL, NULL, &j), 404);
    json_decref(j);
    assert_int_equal(api_call_as(&payd, test, "GET", path, NULL, NULL, &j), 200);
    json_decref(j);
    /* live mode refuses test payment methods and http webhook urls */
    assert_int_equal(api_call_as(&payd, live, "POST", "/v1/payment_intents",
                                 "amount=100&currency=usd&payment_method=pm_card_visa", NULL, &j),
                     400);
    json_decref(j);
    assert_int_equal(api_call_as(&payd, live, "POST", "/v1/webhook_endpoints",
                                 "url=http://example.com/hook&enabled_events[]=*", NULL, &j),
                     400);
    api_expect_error(j, "url_invalid", "url");
    json_decref(j);
    assert_int_equal(api_call_as(&payd, live, "POST", "/v1/webhook_endpoints",
                                 "url=https://127.0.0.1/hook&enabled_events[]=*", NULL, &j),
                     400);
    json_decref(j);
}

static void
no_pan_or_cvc_in_payd_files(void **state)
{
    (void)state;
    char cmd[512];
    /* payd's own files (its database, logs): the vault's directory is checked by the vault's tests */
    snprintf(cmd, sizeof(cmd),
             "find %s -maxdepth 1 -type f -print0 | xargs -0 cat | grep -c -a -e 4242424242424242 -e 5555555555554444 "
             "-e 378282246310005",
             payd.dir);
    FILE *p = popen(cmd, "r");
    int hits = -1;
    assert_int_equal(fscanf(p, "%d", &hits), 1);
    pclose(p);
    assert_int_equal(hits, 0);
}

/* expand[]: ids become the objects, nested, on retrieve, list and write (the replay too) */
static void
expand_turns_ids_into_objects(void **state)
{
    (void)state;
    json_t *j;
    assert_int_equal(api_call_as(&payd, api_sk, "POST", "/v1/payment_intents",
                                 "amount=1500&currency=usd&confirm=true&payment_method=pm_card_visa"
                                 "&expand[]=latest_charge&expand[]=latest_charge.payment_intent",
                                 "expand-key-1", &j),
                     200);
    assert_string_equal(jstr(j, "latest_charge.object"), "charge");
    assert_int_equal(jint(j, "latest_charge.amount_captured"), 1500);
    assert_string_equal(jstr(j, "latest_charge.payment_intent.object"), "payment_intent");
    assert_string_equal(jstr(j, "latest_charge.payment_intent.id"), jstr(j, "id"));
    assert_string_equal(jstr(j, "payment_method"), jstr(j, "latest_charge.payment_method")); /* not asked: an id */
    char pi[64], path[300];
    snprintf(pi, sizeof(pi), "%s", jstr(j, "id"));
    json_decref(j);
    /* the key's replay is the same expanded response */
    assert_int_equal(api_call_as(&payd, api_sk, "POST", "/v1/payment_intents",
                                 "amount=1500&currency=usd&confirm=true&payment_method=pm_card_visa"
                                 "&expand[]=latest_charge&expand[]=latest_charge.payment_intent",
                                 "expand-key-1", &j),
                     200);
    assert_string_equal(jstr(j, "latest_charge.object"), "charge");
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s?expand[]=payment_method&expand[]=latest_charge", pi);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
    assert_string_equal(jstr(j, "payment_method.object"), "payment_method");
    assert_string_equal(jstr(j, "payment_method.card.last4"), "4242");
    assert_string_equal(jstr(j, "latest_charge.object"), "charge");
    json_decref(j);
    assert_int_equal(api_call(&payd, "GET", "/v1/payment_intents?limit=2&expand[]=data.latest_charge", NULL, &j), 200);
    json_t *first = json_array_get(json_object_get(j, "data"), 0);
    assert_string_equal(jstr(first, "id"), pi);
    assert_string_equal(jstr(first, "latest_charge.object"), "charge");
    json_decref(j);
    /* a refund's charge, its intent, its payment method: depth 3 */
    snprintf(path, sizeof(path), "payment_intent=%s&amount=100&expand[]=charge.payment_intent.payment_method", pi);
    assert_int_equal(api_call(&payd, "POST", "/v1/refunds", path, &j), 200);
    assert_string_equal(jstr(j, "charge.payment_intent.payment_method.object"), "payment_method");
    /* the refunds list by charge */
    char ch[64];
    assert_non_null(jstr(j, "charge.id"));
    snprintf(ch, sizeof(ch), "%s", jstr(j, "charge.id"));
    json_decref(j);
    json_t *l;
    snprintf(path, sizeof(path), "/v1/refunds?charge=%s", ch);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &l), 200);
    assert_int_equal(json_array_size(json_object_get(l, "data")), 1);
    json_decref(l);
    assert_int_equal(api_call(&payd, "GET", "/v1/refunds?charge=ch_nothing00000000", NULL, &l), 200);
    assert_int_equal(json_array_size(json_object_get(l, "data")), 0);
    json_decref(l);
    /* deeper than 4, or through a field that is not expandable */
    assert_int_equal(api_call(&payd, "GET",
                              "/v1/refunds?expand[]=data.charge.payment_intent.latest_charge.payment_intent.latest_charge",
                              NULL, &j),
                     400);
    api_expect_error(j, "parameter_invalid", "expand");
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s?expand[]=amount", pi);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 400);
    assert_non_null(strstr(jstr(j, "error.message"), "This property cannot be expanded (amount)."));
    json_decref(j);
}

/* returns once the clock's second has changed: the new second */
static long
next_second(void)
{
    time_t t0 = time(NULL);
    while (time(NULL) == t0)
        usleep(20000);
    return (long)time(NULL);
}

/* the ids of GET path, newest first, into ids (at most 8); their number */
static size_t
list_ids(const char *path, char ids[][64])
{
    json_t *j;
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
    json_t *data = json_object_get(j, "data");
    size_t n = json_array_size(data);
    for (size_t i = 0; i < n && i < 8; i++)
        snprintf(ids[i], 64, "%s", jstr(json_array_get(data, i), "id"));
    json_decref(j);
    return n;
}

/* Stripe's created[gt|gte|lt|lte] (and created=) on the lists, bounds included or not as named */
static void
lists_filter_by_creation_time(void **state)
{
    (void)state;
    char pis[3][64], got[8][64], path[200];
    long t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = next_second();
        json_t *o;
        assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", "amount=700&currency=usd", &o), 200);
        snprintf(pis[i], sizeof(pis[i]), "%s", jstr(o, "id"));
        assert_int_equal(jint(o, "created"), t[i]);
        json_decref(o);
    }
    snprintf(path, sizeof(path), "/v1/payment_intents?created[gte]=%ld&created[lte]=%ld", t[1], t[2]);
    assert_int_equal(list_ids(path, got), 2);
    assert_string_equal(got[0], pis[2]);
    assert_string_equal(got[1], pis[1]);
    snprintf(path, sizeof(path), "/v1/payment_intents?created[gt]=%ld&created[lt]=%ld", t[0], t[2]);
    assert_int_equal(list_ids(path, got), 1);
    assert_string_equal(got[0], pis[1]);
    snprintf(path, sizeof(path), "/v1/payment_intents?created=%ld", t[0]);
    assert_int_equal(list_ids(path, got), 1);
    assert_string_equal(got[0], pis[0]);
    /* with a cursor: the page after the newest, in the range */
    snprintf(path, sizeof(path), "/v1/payment_intents?created[gte]=%ld&limit=1&starting_after=%s", t[0], pis[2]);
    assert_int_equal(list_ids(path, got), 1);
    assert_string_equal(got[0], pis[1]);
    snprintf(path, sizeof(path), "/v1/events?created[gt]=%ld&type=payment_intent.created", t[2]);
    assert_int_equal(list_ids(path, got), 0);
    json_t *j;
    assert_int_equal(api_call(&payd, "GET", "/v1/charges?created[gt]=yesterday", NULL, &j), 400);
    api_expect_error(j, "parameter_invalid_integer", "created[gt]");
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(authentication),
        cmocka_unit_test(payment_methods_store_cards_in_the_vault),
        cmocka_unit_test(automatic_payment_succeeds_with_a_charge),
        cmocka_unit_test(manual_capture_partial_then_refund),
        cmocka_unit_test(declines_are_card_errors_and_the_intent_can_be_retried),
        cmocka_unit_test(state_machine_cancel_and_update),
        cmocka_unit_test(bad_parameters_get_stripe_errors_with_param),
        cmocka_unit_test(lists_paginate_newest_first),
        cmocka_unit_test(idempotency_under_100_concurrent_identical_requests),
        cmocka_unit_test(webhooks_are_signed_and_delivered),
        cmocka_unit_test(balance_and_ledger_verify),
        cmocka_unit_test(test_and_live_objects_are_separate),
        cmocka_unit_test(lists_filter_by_creation_time),
        cmocka_unit_test(expand_turns_ids_into_objects),
        cmocka_unit_test(no_pan_or_cvc_in_payd_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
