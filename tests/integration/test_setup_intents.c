/*
 * SetupIntents against payd --dev (integration/setup_intents and /postgres): created and
 * confirmed (a zero-amount verification in the simulator's own record), the card saved
 * to the customer and then charged off-session; a declined card (last_setup_error, 402)
 * then another that succeeds; cancel; updates refused in a terminal state; the list's
 * filters and pagination; idempotent replays; the setup_intent.* events; Stripe's errors
 * with their param; other merchants' intents invisible; expand[]; N confirmations at once
 * verified once; and an intent whose node is killed between the phases finished by the
 * recovery worker after the restart.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/file.h>
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

/* fails with the body (and payd's log tail) unless the status is want */
static void
expect(long got, long want, json_t *o)
{
    if (got == want)
        return;
    char *log = pd_h_log(&payd);
    const char *tail = log != NULL && strlen(log) > 3000 ? log + strlen(log) - 3000 : log;
    fprintf(stderr, "payd's log ends:\n%s\n", tail != NULL ? tail : "");
    fail_msg("status %ld, want %ld: %s", got, want, json_dumps(o, 0));
}

/* the call's status as expect wants it (the body is read after the call) */
#define EXPECT(call, want, o)                                                                                          \
    do {                                                                                                               \
        long st_ = (call);                                                                                             \
        expect(st_, (want), (o));                                                                                      \
    } while (0)

static void
new_customer(char *id, size_t cap)
{
    json_t *o;
    long st = api_call(&payd, "POST", "/v1/customers", "name=Setup+Person", &o);
    expect(st, 200, o);
    snprintf(id, cap, "%s", jstr(o, "id"));
    json_decref(o);
}

static bool
is_null(json_t *o, const char *key)
{
    return json_is_null(json_object_get(o, key));
}

/* the number of events of this type about this object */
static long
events_about(const char *type, const char *id)
{
    char path[200];
    json_t *o;
    long n = 0;
    snprintf(path, sizeof(path), "/v1/events?type=%s&limit=100", type);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    json_t *data = json_object_get(o, "data"), *e;
    size_t i;
    json_array_foreach(data, i, e)
    {
        const char *oid = jstr(e, "data.object.id");
        if (oid != NULL && strcmp(oid, id) == 0)
            n++;
    }
    json_decref(o);
    return n;
}

static void
a_setup_intent_saves_the_card_for_off_session_payments(void **state)
{
    (void)state;
    char cus[64], body[300], path[200], seti[64], pm[64];
    json_t *o;
    new_customer(cus, sizeof(cus));
    snprintf(body, sizeof(body), "customer=%s&description=save+a+card&metadata[order]=7", cus);
    EXPECT(api_call(&payd, "POST", "/v1/setup_intents", body, &o), 200, o);
    assert_string_equal(jstr(o, "object"), "setup_intent");
    assert_true(strncmp(jstr(o, "id"), "seti_", 5) == 0);
    snprintf(seti, sizeof(seti), "%s", jstr(o, "id"));
    char prefix[100];
    snprintf(prefix, sizeof(prefix), "%s_secret_", seti);
    assert_true(strncmp(jstr(o, "client_secret"), prefix, strlen(prefix)) == 0);
    assert_string_equal(jstr(o, "status"), "requires_payment_method");
    assert_string_equal(jstr(o, "usage"), "off_session");
    assert_string_equal(jstr(o, "customer"), cus);
    assert_string_equal(jstr(o, "metadata.order"), "7");
    assert_true(is_null(o, "payment_method") && is_null(o, "last_setup_error") && is_null(o, "next_action"));
    json_decref(o);

    snprintf(path, sizeof(path), "/v1/setup_intents/%s/confirm", seti);
    EXPECT(api_call(&payd, "POST", path, "payment_method=pm_card_visa", &o), 200, o);
    assert_string_equal(jstr(o, "status"), "succeeded");
    snprintf(pm, sizeof(pm), "%s", jstr(o, "payment_method"));
    assert_true(strncmp(pm, "pm_", 3) == 0);
    json_decref(o);
    /* the processor's own record: one verification of nothing, under the intent's id */
    snprintf(body, sizeof(body), "SELECT count(*) FROM auths WHERE charge_id LIKE '%s-%%' AND amount = 0", seti);
    assert_int_equal(api_sql_long(&payd, "simulator.db", body), 1);

    /* durable: retrieved as it was answered, the card attached to the customer */
    snprintf(path, sizeof(path), "/v1/setup_intents/%s", seti);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "status"), "succeeded");
    assert_string_equal(jstr(o, "payment_method"), pm);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/payment_methods/%s", pm);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "customer"), cus);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/customers/%s/payment_methods", cus);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 1);
    json_decref(o);

    /* the events, once each */
    assert_int_equal(events_about("setup_intent.created", seti), 1);
    assert_int_equal(events_about("setup_intent.succeeded", seti), 1);
    assert_int_equal(events_about("payment_method.attached", pm), 1);

    /* a terminal intent: no second confirmation, no update, no cancel */
    snprintf(path, sizeof(path), "/v1/setup_intents/%s/confirm", seti);
    assert_int_equal(api_call(&payd, "POST", path, NULL, &o), 400);
    api_expect_error(o, "setup_intent_unexpected_state", NULL);
    assert_string_equal(jstr(o, "error.setup_intent.id"), seti);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/setup_intents/%s", seti);
    assert_int_equal(api_call(&payd, "POST", path, "description=again", &o), 400);
    api_expect_error(o, "setup_intent_unexpected_state", NULL);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/setup_intents/%s/cancel", seti);
    assert_int_equal(api_call(&payd, "POST", path, NULL, &o), 400);
    api_expect_error(o, "setup_intent_unexpected_state", NULL);
    json_decref(o);

    /* then an off-session payment with the saved card: money moves, the books agree */
    long before = api_sql_long(&payd, "simulator.db", "SELECT count(*) FROM auths WHERE amount = 4100");
    snprintf(body, sizeof(body), "amount=4100&currency=usd&confirm=true&off_session=true&payment_method=%s&customer=%s",
             pm, cus);
    EXPECT(api_call(&payd, "POST", "/v1/payment_intents", body, &o), 200, o);
    assert_string_equal(jstr(o, "status"), "succeeded");
    json_decref(o);
    assert_int_equal(api_sql_long(&payd, "simulator.db", "SELECT count(*) FROM auths WHERE amount = 4100"), before + 1);
    assert_true(api_ledger_verifies(&payd));
}

static void
create_with_confirm_and_expand(void **state)
{
    (void)state;
    char cus[64], body[300];
    json_t *o;
    new_customer(cus, sizeof(cus));
    snprintf(body, sizeof(body),
             "customer=%s&payment_method=pm_card_mastercard&confirm=true&usage=on_session&expand[]=payment_method"
             "&expand[]=customer",
             cus);
    EXPECT(api_call(&payd, "POST", "/v1/setup_intents", body, &o), 200, o);
    assert_string_equal(jstr(o, "status"), "succeeded");
    assert_string_equal(jstr(o, "usage"), "on_session");
    assert_string_equal(jstr(o, "payment_method.object"), "payment_method");
    assert_string_equal(jstr(o, "payment_method.customer"), cus);
    assert_string_equal(jstr(o, "customer.id"), cus);
    assert_string_equal(jstr(o, "customer.name"), "Setup Person");
    json_decref(o);
    /* without a customer: verified, saved to no one */
    EXPECT(api_call(&payd, "POST", "/v1/setup_intents", "payment_method=pm_card_visa&confirm=true", &o), 200, o);
    assert_string_equal(jstr(o, "status"), "succeeded");
    assert_true(is_null(o, "customer"));
    json_decref(o);
    assert_int_equal(api_call(&payd, "GET", "/v1/setup_intents?expand[]=bogus", NULL, &o), 400);
    api_expect_error(o, "parameter_invalid", "expand");
    json_decref(o);
}

static void
a_declined_card_then_another_one(void **state)
{
    (void)state;
    char cus[64], body[300], path[200], seti[64], pm[64];
    json_t *o;
    new_customer(cus, sizeof(cus));
    snprintf(body, sizeof(body), "customer=%s", cus);
    EXPECT(api_call(&payd, "POST", "/v1/setup_intents", body, &o), 200, o);
    snprintf(seti, sizeof(seti), "%s", jstr(o, "id"));
    json_decref(o);
    api_card_pm(&payd, "4000000000000002", pm, sizeof(pm));
    snprintf(path, sizeof(path), "/v1/setup_intents/%s/confirm", seti);
    snprintf(body, sizeof(body), "payment_method=%s", pm);
    assert_int_equal(api_call(&payd, "POST", path, body, &o), 402);
    assert_string_equal(jstr(o, "error.type"), "card_error");
    assert_string_equal(jstr(o, "error.code"), "card_declined");
    assert_string_equal(jstr(o, "error.decline_code"), "generic_decline");
    assert_string_equal(jstr(o, "error.setup_intent.status"), "requires_payment_method");
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/setup_intents/%s", seti);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "status"), "requires_payment_method");
    assert_true(is_null(o, "payment_method"));
    assert_string_equal(jstr(o, "last_setup_error.code"), "card_declined");
    assert_string_equal(jstr(o, "last_setup_error.decline_code"), "generic_decline");
    assert_string_equal(jstr(o, "last_setup_error.payment_method.id"), pm);
    assert_non_null(jstr(o, "last_setup_error.message"));
    json_decref(o);
    assert_int_equal(events_about("setup_intent.setup_failed", seti), 1);
    /* nothing saved */
    snprintf(path, sizeof(path), "/v1/payment_methods/%s", pm);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_true(is_null(o, "customer"));
    json_decref(o);

    /* a new payment method given to the update, then confirmed */
    snprintf(path, sizeof(path), "/v1/setup_intents/%s", seti);
    EXPECT(api_call(&payd, "POST", path, "payment_method=pm_card_visa", &o), 200, o);
    assert_string_equal(jstr(o, "status"), "requires_confirmation");
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/setup_intents/%s/confirm", seti);
    EXPECT(api_call(&payd, "POST", path, NULL, &o), 200, o);
    assert_string_equal(jstr(o, "status"), "succeeded");
    assert_true(is_null(o, "last_setup_error"));
    json_decref(o);
    assert_int_equal(events_about("setup_intent.succeeded", seti), 1);
    /* two verifications at the processor, each its own: the decline, then the approval */
    snprintf(body, sizeof(body), "SELECT count(*) FROM auths WHERE charge_id LIKE '%s-%%' AND status = 'declined'", seti);
    assert_int_equal(api_sql_long(&payd, "simulator.db", body), 1);
    snprintf(body, sizeof(body), "SELECT count(*) FROM auths WHERE charge_id LIKE '%s-%%' AND status = 'authorized'",
             seti);
    assert_int_equal(api_sql_long(&payd, "simulator.db", body), 1);
}

static void
cancel_and_updates(void **state)
{
    (void)state;
    char seti[64], path[200];
    json_t *o;
    EXPECT(api_call(&payd, "POST", "/v1/setup_intents", "description=first", &o), 200, o);
    snprintf(seti, sizeof(seti), "%s", jstr(o, "id"));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/setup_intents/%s", seti);
    EXPECT(api_call(&payd, "POST", path, "description=second&metadata[k]=v", &o), 200, o);
    assert_string_equal(jstr(o, "description"), "second");
    assert_string_equal(jstr(o, "metadata.k"), "v");
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/setup_intents/%s/cancel", seti);
    assert_int_equal(api_call(&payd, "POST", path, "cancellation_reason=nope", &o), 400);
    api_expect_error(o, "parameter_invalid", "cancellation_reason");
    json_decref(o);
    EXPECT(api_call(&payd, "POST", path, "cancellation_reason=requested_by_customer", &o), 200, o);
    assert_string_equal(jstr(o, "status"), "canceled");
    assert_string_equal(jstr(o, "cancellation_reason"), "requested_by_customer");
    json_decref(o);
    assert_int_equal(events_about("setup_intent.canceled", seti), 1);
    /* canceled is terminal */
    snprintf(path, sizeof(path), "/v1/setup_intents/%s", seti);
    assert_int_equal(api_call(&payd, "POST", path, "description=third", &o), 400);
    api_expect_error(o, "setup_intent_unexpected_state", NULL);
    json_decref(o);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "description"), "second");
    assert_string_equal(jstr(o, "status"), "canceled");
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/setup_intents/%s/confirm", seti);
    assert_int_equal(api_call(&payd, "POST", path, "payment_method=pm_card_visa", &o), 400);
    api_expect_error(o, "setup_intent_unexpected_state", NULL);
    json_decref(o);
}

static void
lists_filter_and_paginate(void **state)
{
    (void)state;
    char cus[64], body[300], path[300], ids[5][64], pm[64];
    json_t *o;
    new_customer(cus, sizeof(cus));
    api_card_pm(&payd, "4242424242424242", pm, sizeof(pm));
    for (int i = 0; i < 5; i++) {
        snprintf(body, sizeof(body), "customer=%s%s%s", cus, i == 2 ? "&payment_method=" : "", i == 2 ? pm : "");
        EXPECT(api_call(&payd, "POST", "/v1/setup_intents", body, &o), 200, o);
        snprintf(ids[i], sizeof(ids[i]), "%s", jstr(o, "id"));
        json_decref(o);
    }
    snprintf(path, sizeof(path), "/v1/setup_intents?customer=%s&limit=2", cus);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_string_equal(jstr(o, "object"), "list");
    assert_string_equal(jstr(o, "url"), "/v1/setup_intents");
    assert_true(json_is_true(json_object_get(o, "has_more")));
    json_t *d = json_object_get(o, "data");
    assert_int_equal(json_array_size(d), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "id")), ids[4]);
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 1), "id")), ids[3]);
    json_decref(o);
    /* every one once, newest first, across pages */
    char after[64] = "";
    int seen = 0;
    for (int page = 0; page < 5; page++) {
        snprintf(path, sizeof(path), "/v1/setup_intents?customer=%s&limit=2%s%s", cus, after[0] ? "&starting_after=" : "",
                 after);
        assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
        d = json_object_get(o, "data");
        for (size_t i = 0; i < json_array_size(d); i++, seen++)
            assert_string_equal(json_string_value(json_object_get(json_array_get(d, i), "id")), ids[4 - seen]);
        bool more = json_is_true(json_object_get(o, "has_more"));
        if (json_array_size(d) > 0)
            snprintf(after, sizeof(after), "%s", json_string_value(json_object_get(json_array_get(d, json_array_size(d) - 1), "id")));
        json_decref(o);
        if (!more)
            break;
    }
    assert_int_equal(seen, 5);
    snprintf(path, sizeof(path), "/v1/setup_intents?customer=%s&ending_before=%s", cus, ids[1]);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    d = json_object_get(o, "data");
    assert_int_equal(json_array_size(d), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 2), "id")), ids[2]);
    json_decref(o);
    /* the payment_method filter, alone and with the customer */
    snprintf(path, sizeof(path), "/v1/setup_intents?payment_method=%s", pm);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    d = json_object_get(o, "data");
    assert_int_equal(json_array_size(d), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "id")), ids[2]);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/setup_intents?payment_method=%s&customer=cus_nobody", pm);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 0);
    json_decref(o);
    assert_int_equal(api_call(&payd, "GET", "/v1/setup_intents?starting_after=seti_missing", NULL, &o), 404);
    api_expect_error(o, "resource_missing", "starting_after");
    json_decref(o);
}

static void
idempotent_replays(void **state)
{
    (void)state;
    char seti[64], path[200];
    json_t *o, *again;
    long st = api_call_as(&payd, api_sk, "POST", "/v1/setup_intents", "payment_method=pm_card_visa", "seti-idem-1", &o);
    expect(st, 200, o);
    snprintf(seti, sizeof(seti), "%s", jstr(o, "id"));
    assert_int_equal(api_call_as(&payd, api_sk, "POST", "/v1/setup_intents", "payment_method=pm_card_visa",
                                 "seti-idem-1", &again),
                     200);
    assert_string_equal(jstr(again, "id"), seti); /* the same intent, not a second */
    json_decref(o);
    json_decref(again);
    /* another body with the key: Stripe's refusal */
    assert_int_equal(api_call_as(&payd, api_sk, "POST", "/v1/setup_intents", "description=other", "seti-idem-1", &o),
                     400);
    api_expect_error(o, "idempotency_key_reused", NULL);
    json_decref(o);
    assert_int_equal(events_about("setup_intent.created", seti), 1);

    snprintf(path, sizeof(path), "/v1/setup_intents/%s/confirm", seti);
    EXPECT(api_call_as(&payd, api_sk, "POST", path, NULL, "seti-idem-2", &o), 200, o);
    assert_int_equal(api_call_as(&payd, api_sk, "POST", path, NULL, "seti-idem-2", &again), 200);
    assert_string_equal(jstr(again, "status"), "succeeded");
    assert_string_equal(jstr(again, "payment_method"), jstr(o, "payment_method"));
    json_decref(o);
    json_decref(again);
    char q[200];
    snprintf(q, sizeof(q), "SELECT count(*) FROM auths WHERE charge_id LIKE '%s-%%'", seti);
    assert_int_equal(api_sql_long(&payd, "simulator.db", q), 1); /* verified once */
    assert_int_equal(events_about("setup_intent.succeeded", seti), 1);
}

static void
bad_requests_get_stripe_errors(void **state)
{
    (void)state;
    json_t *o;
    char seti[64], path[200], other_sk[160];
    assert_int_equal(api_call(&payd, "POST", "/v1/setup_intents", "usage=sometimes", &o), 400);
    api_expect_error(o, "parameter_invalid", "usage");
    json_decref(o);
    assert_int_equal(api_call(&payd, "POST", "/v1/setup_intents", "payment_method_types[]=sepa_debit", &o), 400);
    api_expect_error(o, "parameter_invalid", "payment_method_types[0]");
    json_decref(o);
    assert_int_equal(api_call(&payd, "POST", "/v1/setup_intents", "confirm=true", &o), 400);
    api_expect_error(o, "parameter_missing", "payment_method");
    json_decref(o);
    assert_int_equal(api_call(&payd, "POST", "/v1/setup_intents", "customer=cus_nobody", &o), 400);
    api_expect_error(o, "resource_missing", "customer");
    json_decref(o);
    assert_int_equal(api_call(&payd, "POST", "/v1/setup_intents", "payment_method=pm_nothing", &o), 400);
    api_expect_error(o, "resource_missing", "payment_method");
    json_decref(o);
    assert_int_equal(api_call(&payd, "POST", "/v1/setup_intents", "amount=100", &o), 400);
    api_expect_error(o, "parameter_unknown", "amount");
    json_decref(o);
    assert_int_equal(api_call(&payd, "GET", "/v1/setup_intents/seti_nothing", NULL, &o), 404);
    api_expect_error(o, "resource_missing", "id");
    json_decref(o);
    assert_int_equal(api_call(&payd, "POST", "/v1/setup_intents/seti_nothing/confirm", NULL, &o), 404);
    api_expect_error(o, "resource_missing", "intent");
    json_decref(o);
    /* confirming without a payment method */
    EXPECT(api_call(&payd, "POST", "/v1/setup_intents", NULL, &o), 200, o);
    snprintf(seti, sizeof(seti), "%s", jstr(o, "id"));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/setup_intents/%s/confirm", seti);
    assert_int_equal(api_call(&payd, "POST", path, NULL, &o), 400);
    api_expect_error(o, "parameter_missing", "payment_method");
    json_decref(o);

    /* another merchant sees none of it */
    const char *ma[] = {"merchant", "create", "--name", "Setup other shop", NULL};
    char *out = NULL;
    assert_int_equal(pd_h_payctl(&payd, ma, &out), 0);
    assert_non_null(out);
    json_error_t e;
    json_t *m = json_loads(strchr(out, '{'), JSON_DISABLE_EOF_CHECK, &e);
    free(out);
    assert_non_null(m);
    snprintf(other_sk, sizeof(other_sk), "%s", jstr(m, "secret_key"));
    json_decref(m);
    snprintf(path, sizeof(path), "/v1/setup_intents/%s", seti);
    assert_int_equal(api_call_as(&payd, other_sk, "GET", path, NULL, NULL, &o), 404);
    json_decref(o);
    assert_int_equal(api_call_as(&payd, other_sk, "POST", path, "description=mine", NULL, &o), 404);
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/setup_intents/%s/cancel", seti);
    assert_int_equal(api_call_as(&payd, other_sk, "POST", path, NULL, NULL, &o), 404);
    json_decref(o);
    assert_int_equal(api_call_as(&payd, other_sk, "GET", "/v1/setup_intents", NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 0);
    json_decref(o);
}

typedef struct {
    pd_h_payd_t *p;
    const char *path;
    long status;
} call_t;

/* waits (up to 10 s) until the killed payd's vault, which ends with its parent but not at
 * the same instant, has let go of its directory's lock: a restart before that is refused */
static void
wait_vault_released(const char *dir)
{
    char lock[600];
    snprintf(lock, sizeof(lock), "%s/vault/vault.lock", dir);
    for (int i = 0; i < 200; i++) {
        int fd = open(lock, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return;
        bool free_now = flock(fd, LOCK_EX | LOCK_NB) == 0;
        close(fd); /* releases the lock taken */
        if (free_now)
            return;
        usleep(50000);
    }
}

static void *
confirm_main(void *arg)
{
    call_t *c = arg;
    json_t *j = NULL;
    c->status = api_call_as(c->p, api_sk, "POST", c->path, NULL, NULL, &j);
    json_decref(j);
    return NULL;
}

/* N confirmations of one intent at once (N = 2, 10): one verification at the processor,
 * one answered 200, the others refused (400 unexpected state or 409 concurrent change) */
static void
concurrent_confirmations_verify_once(void **state)
{
    (void)state;
    const int ns[] = {2, 10};
    for (int round = 0; round < 2; round++) {
        int n = ns[round];
        char cus[64], body[200], path[200], q[200];
        json_t *o;
        new_customer(cus, sizeof(cus));
        snprintf(body, sizeof(body), "customer=%s&payment_method=pm_card_visa", cus);
        EXPECT(api_call(&payd, "POST", "/v1/setup_intents", body, &o), 200, o);
        snprintf(path, sizeof(path), "/v1/setup_intents/%s/confirm", jstr(o, "id"));
        snprintf(q, sizeof(q), "SELECT count(*) FROM auths WHERE charge_id LIKE '%s-%%'", jstr(o, "id"));
        json_decref(o);
        call_t c[10];
        pthread_t th[10];
        for (int i = 0; i < n; i++) {
            c[i] = (call_t){&payd, path, 0};
            pthread_create(&th[i], NULL, confirm_main, &c[i]);
        }
        int ok = 0, refused = 0;
        for (int i = 0; i < n; i++) {
            pthread_join(th[i], NULL);
            ok += c[i].status == 200;
            refused += c[i].status == 400 || c[i].status == 409;
        }
        assert_int_equal(ok, 1);
        assert_int_equal(refused, n - 1);
        assert_int_equal(api_sql_long(&payd, "simulator.db", q), 1);
        snprintf(path, sizeof(path), "/v1/customers/%s/payment_methods", cus);
        assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
        assert_int_equal(json_array_size(json_object_get(o, "data")), 1);
        json_decref(o);
    }
}

static void *
call_main(void *arg)
{
    call_t *c = arg;
    json_t *j = NULL;
    c->status = api_call_as(c->p, api_sk, "POST", c->path, "payment_method=pm_card_visa", "killed-seti-1", &j);
    json_decref(j);
    return NULL;
}

/* a confirmation whose node is killed after the processor verified the card: the
 * recovery worker's phase 2 records it after the restart, card saved, key completed */
static void
recovery_finishes_a_killed_confirmation(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *slow[] = {"--set", "processor.simulator_latency_ms=10s", NULL};
    pd_h_opts_t o = {.args = slow};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    json_t *j;
    assert_int_equal(api_call(&p, "POST", "/v1/customers", "name=Killed+Setup", &j), 200);
    char cus[64], body[200], path[200], seti[64], q[200];
    snprintf(cus, sizeof(cus), "%s", jstr(j, "id"));
    json_decref(j);
    snprintf(body, sizeof(body), "customer=%s", cus);
    assert_int_equal(api_call(&p, "POST", "/v1/setup_intents", body, &j), 200);
    snprintf(seti, sizeof(seti), "%s", jstr(j, "id"));
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/setup_intents/%s/confirm", seti);
    call_t c = {&p, path, 0};
    pthread_t th;
    pthread_create(&th, NULL, call_main, &c);
    snprintf(q, sizeof(q), "SELECT count(*) FROM auths WHERE charge_id LIKE '%s-%%'", seti);
    long verified = 0;
    for (int i = 0; i < 400 && verified != 1; i++) {
        usleep(20000);
        verified = api_sql_long(&p, "simulator.db", q);
    }
    assert_int_equal(verified, 1);
    assert_int_equal(pd_h_stop(&p, SIGKILL, 5000), 128 + SIGKILL);
    pthread_join(th, NULL);
    assert_true(c.status <= 0); /* no answer: payd died between the phases */
    wait_vault_released(p.dir);

    /* with the default recovery_after_ms (60 s): the node's restart makes what its previous
     * run left processing due at once (setup_intents.node_id) */
    pd_h_opts_t again = {.reuse_dir = p.dir};
    assert_int_equal(pd_h_start(&p, &again), 0);
    long st = 0;
    char get[200];
    snprintf(get, sizeof(get), "/v1/setup_intents/%s", seti);
    for (int i = 0; i < 120; i++) {
        assert_int_equal(api_call(&p, "GET", get, NULL, &j), 200);
        bool done = strcmp(jstr(j, "status"), "processing") != 0;
        if (done)
            break;
        json_decref(j);
        j = NULL;
        usleep(250000);
    }
    assert_non_null(j);
    assert_string_equal(jstr(j, "status"), "succeeded");
    char pm[64];
    snprintf(pm, sizeof(pm), "%s", jstr(j, "payment_method"));
    json_decref(j);
    /* the key's retry replays the recorded answer */
    st = api_call_as(&p, api_sk, "POST", path, "payment_method=pm_card_visa", "killed-seti-1", &j);
    assert_int_equal(st, 200);
    assert_string_equal(jstr(j, "status"), "succeeded");
    json_decref(j);
    snprintf(get, sizeof(get), "/v1/payment_methods/%s", pm);
    assert_int_equal(api_call(&p, "GET", get, NULL, &j), 200);
    assert_string_equal(jstr(j, "customer"), cus);
    json_decref(j);
    assert_int_equal(api_sql_long(&p, "simulator.db", q), 1); /* verified once */
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
    api_load_credentials(&payd); /* the suite's payd again */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_setup_intent_saves_the_card_for_off_session_payments),
        cmocka_unit_test(create_with_confirm_and_expand),
        cmocka_unit_test(a_declined_card_then_another_one),
        cmocka_unit_test(cancel_and_updates),
        cmocka_unit_test(lists_filter_and_paginate),
        cmocka_unit_test(idempotent_replays),
        cmocka_unit_test(bad_requests_get_stripe_errors),
        cmocka_unit_test(concurrent_confirmations_verify_once),
        cmocka_unit_test(recovery_finishes_a_killed_confirmation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
