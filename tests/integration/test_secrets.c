/*
 * Secrets at rest and in replay bodies, and the webhook URL rules, against payd --dev:
 * - no whsec_, no API key and no cardholder name is in payd.db or its WAL after every
 *   endpoint that returns one (with and without an Idempotency-Key), while the API
 *   still shows them where it should: a replay returns the same secret and name;
 * - webhook URLs are read as libcurl reads them: user info is refused, and in live mode
 *   every IPv6 form of a private IPv4 address; payments.webhook_live_rules_in_test
 *   applies the live rules to test mode.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "api_helpers.h"
#include "harness.h"

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
    int rc = pd_h_stop(&payd, SIGTERM, 15000);
    pd_h_cleanup(&payd);
    return rc == 0 ? 0 : -1;
}

/* a POST as the dev secret key with an Idempotency-Key (NULL: none); *replayed gets the
 * Idempotent-Replayed header ("" when absent) */
static long
post_idem(const char *key, const char *path, const char *body, const char *idem, json_t **out, char *replayed,
          size_t cap)
{
    char auth[200], idh[300];
    const char *hdrs[4] = {auth, "Content-Type: application/x-www-form-urlencoded", NULL, NULL};
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    if (idem != NULL) {
        snprintf(idh, sizeof(idh), "Idempotency-Key: %s", idem);
        hdrs[2] = idh;
    }
    pd_h_req_t rq = {.headers = hdrs, .body = body};
    pd_h_resp_t r;
    long status = pd_h_request(&payd, "POST", path, &rq, &r) == 0 ? r.status : -1;
    json_error_t e;
    *out = r.body != NULL ? json_loads(r.body, 0, &e) : NULL;
    if (*out == NULL)
        *out = json_object();
    if (!pd_h_resp_header(&r, "idempotent-replayed", replayed, cap))
        replayed[0] = '\0';
    pd_h_resp_free(&r);
    return status;
}

/* the whole file (malloc'd, *len its size); NULL if it does not exist */
static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    *len = fread(p, 1, (size_t)n, f);
    fclose(f);
    return p;
}

/* fails when needle is anywhere in payd.db, payd.db-wal or payd.db-shm */
static void
not_on_disk(const char *what, const char *needle)
{
    static const char *files[] = {"payd.db", "payd.db-wal", "payd.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        char path[400];
        size_t len = 0;
        snprintf(path, sizeof(path), "%s/%s", payd.dir, files[i]);
        char *p = slurp(path, &len);
        if (p == NULL)
            continue;
        bool found = memmem(p, len, needle, strlen(needle)) != NULL;
        free(p);
        if (found)
            fail_msg("%s (%s) is in %s", what, needle, files[i]);
    }
}

static int
payctl_json(json_t **out, const char *const *args)
{
    const char *argv[20] = {"--json"};
    int n = 1;
    for (int i = 0; args[i] != NULL && n < 19; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char *text = NULL;
    int rc = pd_h_payctl(&payd, argv, &text);
    json_error_t e;
    const char *brace = text != NULL ? strchr(text, '{') : NULL;
    *out = brace != NULL ? json_loads(brace, JSON_DISABLE_EOF_CHECK, &e) : NULL;
    if (rc != 0)
        print_message("payctl: %s\n", text != NULL ? text : "");
    free(text);
    return rc;
}

static void
secrets_are_not_stored_in_clear(void **state)
{
    (void)state;
    json_t *j, *j2;
    char rep[16], secret[80], secret2[80], path[128];
    static const char *name = "Zebediah Quuxfield";
    static const char *token_name = "Ottoline Varnworth";

    /* a webhook endpoint created with an Idempotency-Key (as Stripe's SDKs send) */
    const char *we_body = "url=http://127.0.0.1:9/hook&enabled_events[]=*";
    assert_int_equal(post_idem(api_sk, "/v1/webhook_endpoints", we_body, "we-secret-1", &j, rep, sizeof(rep)), 200);
    assert_string_equal(rep, "false");
    assert_non_null(jstr(j, "secret"));
    snprintf(secret, sizeof(secret), "%s", jstr(j, "secret"));
    assert_true(strncmp(secret, "whsec_", 6) == 0);
    char we_id[64];
    snprintf(we_id, sizeof(we_id), "%s", jstr(j, "id"));
    json_decref(j);
    /* the replay gives the same secret back, re-derived through the vault */
    assert_int_equal(post_idem(api_sk, "/v1/webhook_endpoints", we_body, "we-secret-1", &j, rep, sizeof(rep)), 200);
    assert_string_equal(rep, "true");
    assert_string_equal(jstr(j, "id"), we_id);
    assert_string_equal(jstr(j, "secret"), secret);
    assert_string_equal(jstr(j, "url"), "http://127.0.0.1:9/hook");
    json_decref(j);
    /* ... also once the endpoint is deleted (Stripe replays the original response) */
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%s", we_id);
    assert_int_equal(api_call(&payd, "DELETE", path, NULL, &j), 200);
    json_decref(j);
    assert_int_equal(post_idem(api_sk, "/v1/webhook_endpoints", we_body, "we-secret-1", &j, rep, sizeof(rep)), 200);
    assert_string_equal(rep, "true");
    assert_string_equal(jstr(j, "secret"), secret);
    json_decref(j);
    /* and one without a key */
    assert_int_equal(post_idem(api_sk, "/v1/webhook_endpoints", we_body, NULL, &j, rep, sizeof(rep)), 200);
    snprintf(secret2, sizeof(secret2), "%s", jstr(j, "secret"));
    json_decref(j);

    /* a payment method with a cardholder name, with a key: the replay and GET show it */
    const char *pm_body = "type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2031"
                          "&card[cvc]=123&billing_details[name]=Zebediah%20Quuxfield";
    assert_int_equal(post_idem(api_sk, "/v1/payment_methods", pm_body, "pm-name-1", &j, rep, sizeof(rep)), 200);
    assert_string_equal(jstr(j, "billing_details.name"), name);
    char pm[64];
    snprintf(pm, sizeof(pm), "%s", jstr(j, "id"));
    assert_int_equal(post_idem(api_sk, "/v1/payment_methods", pm_body, "pm-name-1", &j2, rep, sizeof(rep)), 200);
    assert_string_equal(rep, "true");
    assert_string_equal(jstr(j2, "id"), pm);
    assert_string_equal(jstr(j2, "billing_details.name"), name);
    assert_true(json_equal(j, j2));
    json_decref(j);
    json_decref(j2);
    snprintf(path, sizeof(path), "/v1/payment_methods/%s", pm);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
    assert_string_equal(jstr(j, "billing_details.name"), name);
    json_decref(j);
    /* a token with card[name]; a payment with that payment method (its charge and events) */
    assert_int_equal(post_idem(api_sk, "/v1/tokens",
                               "card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2031&card[cvc]=123"
                               "&card[name]=Ottoline%20Varnworth",
                               "tok-name-1", &j, rep, sizeof(rep)),
                     200);
    json_decref(j);
    assert_int_equal(api_charge(&payd, pm, 1234, "usd", &j), 200);
    json_decref(j);
    /* a declined payment embeds the payment method in its error (and its event) */
    char declined[64];
    const char *dbody = "type=card&card[number]=4000000000000002&card[exp_month]=12&card[exp_year]=2031"
                        "&card[cvc]=123&billing_details[name]=Zebediah%20Quuxfield";
    assert_int_equal(post_idem(api_sk, "/v1/payment_methods", dbody, NULL, &j, rep, sizeof(rep)), 200);
    snprintf(declined, sizeof(declined), "%s", jstr(j, "id"));
    json_decref(j);
    api_charge(&payd, declined, 500, "usd", &j);
    json_decref(j);

    /* API keys: a secret and a restricted key, and a roll (payctl shows each once) */
    char keys[3][128];
    const char *a1[] = {"keys", "create", "--merchant", api_merchant, "--type", "secret", NULL};
    const char *a2[] = {"keys",   "create",  "--merchant", api_merchant, "--type", "restricted",
                        "--scopes", "refunds:read", NULL};
    assert_int_equal(payctl_json(&j, a1), 0);
    snprintf(keys[0], sizeof(keys[0]), "%s", jstr(j, "key"));
    char kid[64];
    snprintf(kid, sizeof(kid), "%s", jstr(j, "id"));
    json_decref(j);
    assert_int_equal(payctl_json(&j, a2), 0);
    snprintf(keys[1], sizeof(keys[1]), "%s", jstr(j, "key"));
    json_decref(j);
    const char *a3[] = {"keys", "roll", kid, "--expires-in", "60", NULL};
    assert_int_equal(payctl_json(&j, a3), 0);
    snprintf(keys[2], sizeof(keys[2]), "%s", jstr(j, "key"));
    json_decref(j);
    assert_true(strncmp(keys[1], "rk_test_", 8) == 0 && strncmp(keys[2], "sk_test_", 8) == 0);
    /* every key works */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(api_call_as(&payd, keys[i], "GET", "/v1/refunds", NULL, NULL, &j), 200);
        json_decref(j);
    }

    /* let the checkpointer copy the WAL into the database: both are scanned */
    usleep(300 * 1000);
    not_on_disk("a webhook secret", "whsec_");
    not_on_disk("the replayed webhook secret", secret + 6);
    not_on_disk("a webhook secret", secret2 + 6);
    not_on_disk("the cardholder name", name);
    not_on_disk("the cardholder name", "Quuxfield");
    not_on_disk("the token's cardholder name", token_name);
    not_on_disk("the dev secret key", api_sk);
    for (int i = 0; i < 3; i++)
        not_on_disk("an API key", keys[i] + 8); /* the random part; the 16-character prefix is the lookup handle */
    /* what the database does hold: an envelope and a redacted replay */
    assert_int_equal(api_sql_long(&payd, "payd.db",
                                  "SELECT COUNT(*) FROM payment_methods WHERE billing_name IS NULL AND "
                                  "billing_name_enc IS NOT NULL"),
                     3);
    assert_int_equal(api_sql_long(&payd, "payd.db",
                                  "SELECT COUNT(*) FROM idempotency_keys WHERE redacted IS NOT NULL"),
                     2);
}

/* tmpl with {P} replaced by payd's API port */
static void
with_port(const char *tmpl, char *out, size_t cap)
{
    const char *p = strstr(tmpl, "{P}");
    if (p == NULL)
        snprintf(out, cap, "%s", tmpl);
    else
        snprintf(out, cap, "%.*s%u%s", (int)(p - tmpl), tmpl, (unsigned)payd.api_port, p + 3);
}

/* live mode: the URL is read as libcurl reads it; user info and private IPv6 forms are refused */
static void
webhook_urls_are_read_as_curl_reads_them(void **state)
{
    (void)state;
    const char *argv[] = {PAYCTL_BIN, "--data-dir", payd.dir, "--json", "merchant", "create", "--name", "Live Hooks",
                          "--live", NULL};
    char *out = NULL, live[128], body[300];
    assert_int_equal(pd_h_run(argv, &out), 0);
    json_error_t e;
    json_t *m = json_loads(strstr(out, "{"), 0, &e), *j;
    snprintf(live, sizeof(live), "%s", jstr(m, "live_secret_key"));
    json_decref(m);
    free(out);
    static const char *refused[] = {
        /* read as host 8.8.8.8 by a hand parser, as 127.0.0.1 by libcurl */
        "https://8.8.8.8:1@127.0.0.1:{P}/hook",
        "https://user@example.com/hook",
        "https://user:pw@example.com/hook",
        "https://[::127.0.0.1]:{P}/hook",
        "https://[::ffff:127.0.0.1]:{P}/hook",
        "https://[::ffff:0:7f00:1]:{P}/hook",
        "https://[64:ff9b::7f00:1]:{P}/hook",
        "https://[64:ff9b::a00:1]/hook",
        "https://[2002:7f00:1::1]:{P}/hook",
        "https://[2002:c0a8:101::1]/hook",
        "https://[100::1]/hook",
        "https://[fe80::1%25lo]/hook",
        "https://0x7f.1:{P}/hook",
        "https://2130706433:{P}/hook",
        "https:///hook",
        "https://exa mple.com/hook",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char url[200];
        with_port(refused[i], url, sizeof(url));
        snprintf(body, sizeof(body), "url=%s&enabled_events[]=*", url);
        long st = api_call_as(&payd, live, "POST", "/v1/webhook_endpoints", body, NULL, &j);
        if (st != 400)
            fail_msg("%s: %ld %s", url, st, json_dumps(j, 0));
        api_expect_error(j, "url_invalid", "url");
        if (strchr(url, '@') != NULL && strstr(jstr(j, "error.message"), "user name or password") == NULL)
            fail_msg("%s: %s", url, json_dumps(j, 0));
        json_decref(j);
    }
    /* a NAT64 or 6to4 address of a public IPv4 address is public */
    static const char *allowed[] = {"https://[64:ff9b::808:808]/hook", "https://[2002:808:808::1]/hook",
                                    "https://8.8.8.8/hook"};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        snprintf(body, sizeof(body), "url=%s&enabled_events[]=*", allowed[i]);
        long st = api_call_as(&payd, live, "POST", "/v1/webhook_endpoints", body, NULL, &j);
        if (st != 200)
            fail_msg("%s: %ld %s", allowed[i], st, json_dumps(j, 0));
        json_decref(j);
    }
    /* an update is checked the same way */
    assert_int_equal(api_call_as(&payd, live, "POST", "/v1/webhook_endpoints",
                                 "url=https://8.8.8.8/hook&enabled_events[]=*", NULL, &j),
                     200);
    char path[128];
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%s", jstr(j, "id"));
    json_decref(j);
    assert_int_equal(api_call_as(&payd, live, "POST", path, "url=https://[64:ff9b::7f00:1]/hook", NULL, &j), 400);
    api_expect_error(j, "url_invalid", "url");
    json_decref(j);
    /* test mode: loopback and http are allowed by default, user info never */
    assert_int_equal(api_call(&payd, "POST", "/v1/webhook_endpoints",
                              "url=http://127.0.0.1:9/hook&enabled_events[]=*", &j),
                     200);
    json_decref(j);
    snprintf(body, sizeof(body), "url=http://8.8.8.8:1@127.0.0.1:%u/hook&enabled_events[]=*",
             (unsigned)payd.api_port);
    assert_int_equal(api_call(&payd, "POST", "/v1/webhook_endpoints", body, &j), 400);
    api_expect_error(j, "url_invalid", "url");
    json_decref(j);
}

/* payments.webhook_live_rules_in_test: test mode gets the live rules (a multi-tenant host) */
static void
live_rules_apply_to_test_mode_when_set(void **state)
{
    (void)state;
    pd_h_payd_t p2;
    const char *env[] = {"PAYD_PAYMENTS_WEBHOOK_LIVE_RULES_IN_TEST=true", "PAYD_PAYMENTS_REFUSE_CARD_NUMBERS_IN_TEXT=false",
                         NULL};
    pd_h_opts_t o = {.env = env};
    assert_int_equal(pd_h_start(&p2, &o), 0);
    char path[400], sk[128] = "";
    snprintf(path, sizeof(path), "%s/credentials.json", p2.dir);
    json_error_t e;
    json_t *c = json_load_file(path, 0, &e), *j;
    assert_non_null(c);
    snprintf(sk, sizeof(sk), "%s", json_string_value(json_object_get(c, "secret_key")));
    json_decref(c);
    static const char *refused[] = {"http://127.0.0.1:9/hook", "https://127.0.0.1:9/hook",
                                    "https://[::ffff:0:7f00:1]/hook", "http://8.8.8.8/hook"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char body[200];
        snprintf(body, sizeof(body), "url=%s&enabled_events[]=*", refused[i]);
        long st = api_call_as(&p2, sk, "POST", "/v1/webhook_endpoints", body, NULL, &j);
        if (st != 400)
            fail_msg("%s: %ld %s", refused[i], st, json_dumps(j, 0));
        api_expect_error(j, "url_invalid", "url");
        json_decref(j);
    }
    assert_int_equal(api_call_as(&p2, sk, "POST", "/v1/webhook_endpoints",
                                 "url=https://8.8.8.8/hook&enabled_events[]=*", NULL, &j),
                     200);
    json_decref(j);
    /* this instance also turned the free-text card number check off */
    assert_int_equal(api_call_as(&p2, sk, "POST", "/v1/payment_intents",
                                 "amount=100&currency=usd&metadata[note]=4000056655665556", NULL, &j),
                     200);
    json_decref(j);
    assert_int_equal(pd_h_stop(&p2, SIGTERM, 15000), 0);
    pd_h_cleanup(&p2);
}

/* The live rules in test mode hold at delivery too: an endpoint on loopback registered
 * while the setting was off gets no delivery once payd runs with it on (the connect-time
 * guard refuses the address before a socket is opened). */
static void
live_rules_in_test_hold_at_delivery(void **state)
{
    (void)state;
    pd_h_payd_t p2;
    pd_h_opts_t o = {0};
    assert_int_equal(pd_h_start(&p2, &o), 0);
    api_load_credentials(&p2);
    json_t *j;
    /* https on loopback, allowed in test mode without the setting; nothing listens on port 9 */
    assert_int_equal(api_call(&p2, "POST", "/v1/webhook_endpoints", "url=https://127.0.0.1:9/hook&enabled_events[]=*", &j),
                     200);
    json_decref(j);
    assert_int_equal(pd_h_stop(&p2, SIGTERM, 15000), 0);
    const char *env[] = {"PAYD_PAYMENTS_WEBHOOK_LIVE_RULES_IN_TEST=true", NULL};
    pd_h_opts_t again = {.env = env, .reuse_dir = p2.dir};
    assert_int_equal(pd_h_start(&p2, &again), 0);
    assert_int_equal(api_call(&p2, "POST", "/v1/payment_intents", "amount=100&currency=usd", &j), 200);
    json_decref(j);
    long refused = 0;
    for (int i = 0; i < 100 && refused == 0; i++) {
        usleep(100000);
        refused = api_sql_long(&p2, "payd.db",
                               "SELECT count(*) FROM webhook_deliveries WHERE last_error LIKE '%private or loopback%'");
    }
    print_message("deliveries refused at connect time with the live rules in test mode: %ld (of %ld)\n", refused,
                  api_sql_long(&p2, "payd.db", "SELECT count(*) FROM webhook_deliveries"));
    assert_true(refused >= 1);
    assert_int_equal(api_sql_long(&p2, "payd.db", "SELECT count(*) FROM webhook_deliveries WHERE state = 'succeeded'"),
                     0);
    assert_int_equal(pd_h_stop(&p2, SIGTERM, 15000), 0);
    pd_h_cleanup(&p2);
    api_load_credentials(&payd); /* the other tests' key again */
}

/* a card number pasted into free text is refused, the parameter named; nothing is stored */
static void
card_numbers_in_free_text_are_refused(void **state)
{
    (void)state;
    static const struct {
        const char *path, *body, *param;
    } cases[] = {
        {"/v1/payment_intents", "amount=100&currency=usd&description=card%204242%204242%204242%204242",
         "description"},
        {"/v1/payment_intents", "amount=100&currency=usd&metadata[note]=4000056655665556", "metadata[note]"},
        {"/v1/payment_intents", "amount=100&currency=usd&metadata[4242424242424242]=x", "metadata"},
        {"/v1/payment_intents", "{\"amount\":100,\"currency\":\"usd\",\"metadata\":{\"n\":\"5555-5555-5555-4444\"}}",
         "metadata[n]"},
        {"/v1/payment_methods",
         "type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2031&metadata[c]=378282246310005",
         "metadata[c]"},
        {"/v1/webhook_endpoints", "url=http://127.0.0.1:9/hook&enabled_events[]=*&description=6011111111111117",
         "description"},
    };
    long before = api_sql_long(&payd, "payd.db", "SELECT COUNT(*) FROM payment_intents");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j;
        long st = api_call(&payd, "POST", cases[i].path, cases[i].body, &j);
        if (st != 400)
            fail_msg("%s %s: %ld %s", cases[i].path, cases[i].body, st, json_dumps(j, 0));
        api_expect_error(j, "parameter_invalid", cases[i].param);
        assert_non_null(strstr(jstr(j, "error.message"), "card number"));
        json_decref(j);
    }
    assert_int_equal(api_sql_long(&payd, "payd.db", "SELECT COUNT(*) FROM payment_intents"), before);
    /* digits that are not a card number pass */
    json_t *j;
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents",
                              "amount=100&currency=usd&description=order%2012345&metadata[ref]=4242424242424241", &j),
                     200);
    json_decref(j);
    not_on_disk("a card number in free text", "4000056655665556");
    not_on_disk("a card number in free text", "5555-5555-5555-4444");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(secrets_are_not_stored_in_clear),
        cmocka_unit_test(webhook_urls_are_read_as_curl_reads_them),
        cmocka_unit_test(live_rules_apply_to_test_mode_when_set),
        cmocka_unit_test(live_rules_in_test_hold_at_delivery),
        cmocka_unit_test(card_numbers_in_free_text_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
