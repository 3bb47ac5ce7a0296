/*
 * Abuse limits over HTTPS: the per-address rate rule and address lists (WAF), the
 * usage plan per API key (token bucket and monthly quota), and the lockout after
 * failed authentications. Limits are set small so the windows pass quickly; the
 * defaults (2000 per 5 minutes, 1000/s burst 2000, 1,000,000 a month, 10 failures
 * in 5 minutes -> 30 minutes) are the same code with other numbers.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"

static long
get(pd_h_client_t *c, const char *key, const char *xff, pd_h_resp_t *r)
{
    char auth[200], x[120];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    snprintf(x, sizeof(x), "X-Forwarded-For: %s", xff != NULL ? xff : "");
    const char *hdrs[] = {auth, xff != NULL ? x : NULL, NULL};
    pd_h_req_t rq = {.headers = hdrs};
    return pd_h_do(c, "GET", "/v1/balance", &rq, r) == 0 ? r->status : -1;
}

static long
get_status(pd_h_client_t *c, const char *key, const char *xff)
{
    pd_h_resp_t r;
    long s = get(c, key, xff, &r);
    pd_h_resp_free(&r);
    return s;
}

static void
rate_rule_per_address(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *args[] = {"--set", "waf.ip_rate_limit=200", "--set", "waf.ip_rate_window_ms=2s", NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    pd_h_client_t *c = pd_h_client_new(&p);
    /* wait for the start of a fresh window so all 201 requests share it */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    usleep((useconds_t)((2000 - ms % 2000) * 1000));
    int ok = 0;
    for (int i = 0; i < 200; i++)
        ok += get_status(c, api_sk, NULL) == 200;
    assert_int_equal(ok, 200);
    pd_h_resp_t r;
    assert_int_equal(get(c, api_sk, NULL, &r), 403); /* the 201st */
    json_error_t e;
    json_t *j = json_loads(r.body, 0, &e);
    assert_string_equal(jstr(j, "error.code"), "request_blocked");
    json_decref(j);
    pd_h_resp_free(&r);
    /* health checks are not rate-limited */
    pd_h_req_t hq = {0};
    assert_int_equal(pd_h_do(c, "GET", "/healthz", &hq, &r), 0);
    assert_int_equal(r.status, 200);
    pd_h_resp_free(&r);
    /* allowed again once the window (and the weighted previous one) has passed */
    sleep(4);
    assert_int_equal(get_status(c, api_sk, NULL), 200);
    pd_h_client_free(c);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
}

static void
address_lists_and_trusted_proxies(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *args[] = {"--set", "waf.trusted_proxies=127.0.0.1/32", "--set", "waf.deny=203.0.113.0/24, 2001:db8::/32",
                          NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    pd_h_client_t *c = pd_h_client_new(&p);
    assert_int_equal(get_status(c, api_sk, "203.0.113.9"), 403);
    assert_int_equal(get_status(c, api_sk, "198.51.100.1, 203.0.113.77"), 403); /* right-most untrusted hop */
    assert_int_equal(get_status(c, api_sk, "203.0.113.9, 198.51.100.1"), 200);  /* the client is 198.51.100.1 */
    assert_int_equal(get_status(c, api_sk, "2001:db8::1"), 403);
    assert_int_equal(get_status(c, api_sk, NULL), 200);
    pd_h_client_free(c);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
}

static void
usage_plan_rate_and_quota(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *args[] = {"--set", "payments.rate_per_s=5", "--set", "payments.burst=10", "--set",
                          "payments.monthly_quota=15", NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    pd_h_client_t *c = pd_h_client_new(&p);
    pd_h_resp_t r;
    char v[64];
    for (int i = 0; i < 10; i++) {
        assert_int_equal(get(c, api_sk, NULL, &r), 200);
        assert_true(pd_h_resp_header(&r, "x-ratelimit-limit", v, sizeof(v)));
        assert_string_equal(v, "10"); /* the bucket's size */
        assert_true(pd_h_resp_header(&r, "x-ratelimit-remaining", v, sizeof(v)));
        assert_true(strtoll(v, NULL, 10) < 10); /* what is left after this one: below the limit */
        pd_h_resp_free(&r);
    }
    assert_int_equal(get(c, api_sk, NULL, &r), 429); /* the burst is spent */
    assert_true(pd_h_resp_header(&r, "retry-after", v, sizeof(v)));
    assert_string_equal(v, "1");
    assert_true(pd_h_resp_header(&r, "x-ratelimit-remaining", v, sizeof(v)));
    assert_string_equal(v, "0");
    assert_true(pd_h_resp_header(&r, "x-ratelimit-reset", v, sizeof(v)));
    assert_true(strtoll(v, NULL, 10) >= (long long)time(NULL));
    json_error_t e;
    json_t *j = json_loads(r.body, 0, &e);
    assert_string_equal(jstr(j, "error.code"), "rate_limit");
    assert_string_equal(jstr(j, "error.type"), "invalid_request_error");
    json_decref(j);
    pd_h_resp_free(&r);
    usleep(1300000); /* 6 tokens back */
    for (int i = 0; i < 5; i++)
        assert_int_equal(get_status(c, api_sk, NULL), 200); /* 15 requests used: the whole quota */
    assert_int_equal(get(c, api_sk, NULL, &r), 429);
    j = json_loads(r.body, 0, &e);
    assert_non_null(strstr(jstr(j, "error.message"), "monthly request quota"));
    assert_true(pd_h_resp_header(&r, "retry-after", v, sizeof(v)));
    assert_true(strtoll(v, NULL, 10) > 0 && strtoll(v, NULL, 10) <= 31 * 86400);
    json_decref(j);
    pd_h_resp_free(&r);
    pd_h_client_free(c);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
}

static void
failed_authentications_lock_the_address_out(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *args[] = {"--set", "payments.auth_fail_limit=10", "--set", "payments.auth_lockout_ms=2s", NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    pd_h_client_t *c = pd_h_client_new(&p);
    for (int i = 0; i < 10; i++)
        assert_int_equal(get_status(c, "sk_test_wrongwrongwrongwrongwrongwrong", NULL), 401);
    /* now even the right key is refused from this address */
    pd_h_resp_t r;
    assert_int_equal(get(c, api_sk, NULL, &r), 429);
    char v[32];
    assert_true(pd_h_resp_header(&r, "retry-after", v, sizeof(v)));
    pd_h_resp_free(&r);
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "\"event\":\"auth.lockout\""));
    assert_null(strstr(log, "sk_test_wrongwrong")); /* keys are never logged */
    free(log);
    sleep(3);
    assert_int_equal(get_status(c, api_sk, NULL), 200);
    pd_h_client_free(c);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
}

static void
bad_address_lists_stop_the_start(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *args[] = {"--set", "waf.deny=10.0.0.0/33", NULL};
    pd_h_opts_t o = {.args = args, .no_wait = true};
    assert_int_equal(pd_h_start(&p, &o), 0);
    /* payd refuses once it reaches the address rules, after compiling the WAF's rules: on a
     * loaded machine under ASan that takes tens of seconds, so wait for its own exit */
    int rc = pd_h_stop(&p, 0, 90000);
    char *log = pd_h_log(&p);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(log, "[waf] deny: \\\"10.0.0.0/33\\\" is not an IPv4/IPv6 address or CIDR block"));
    free(log);
    pd_h_cleanup(&p);
}

static void
card_pm(pd_h_payd_t *p, const char *number, char *out, size_t cap)
{
    assert_int_equal(api_card_pm(p, number, out, cap), 200);
}

static long
charge(pd_h_payd_t *p, const char *pm, json_t **o)
{
    return api_charge(p, pm, 500, "usd", o);
}

static void
card_testing_declines_per_card(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *args[] = {"--set", "payments.card_decline_limit=3", NULL};
    pd_h_opts_t opts = {.args = args};
    char bad[64], good[64];
    json_t *o;
    assert_int_equal(pd_h_start(&p, &opts), 0);
    api_load_credentials(&p);
    card_pm(&p, "4000000000000002", bad, sizeof(bad));
    card_pm(&p, "4242424242424242", good, sizeof(good));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(charge(&p, bad, &o), 402);
        assert_string_equal(jstr(o, "error.decline_code"), "generic_decline");
        json_decref(o);
    }
    /* the 4th attempt with the same card is declined without reaching the processor */
    assert_int_equal(charge(&p, bad, &o), 402);
    assert_string_equal(jstr(o, "error.type"), "card_error");
    assert_string_equal(jstr(o, "error.code"), "card_declined");
    assert_string_equal(jstr(o, "error.decline_code"), "card_velocity_exceeded");
    json_decref(o);
    assert_int_equal(api_call(&p, "GET", "/v1/charges?limit=100", NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 3);
    json_decref(o);
    /* another card is unaffected */
    assert_int_equal(charge(&p, good, &o), 200);
    json_decref(o);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

static void
card_testing_distinct_cards_per_address(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *args[] = {"--set", "payments.ip_card_limit=3", NULL};
    pd_h_opts_t opts = {.args = args};
    static const char *cards[] = {"4242424242424242", "5555555555554444", "378282246310005", "6011111111111117"};
    char pm[4][64];
    json_t *o;
    assert_int_equal(pd_h_start(&p, &opts), 0);
    api_load_credentials(&p);
    for (int i = 0; i < 4; i++)
        card_pm(&p, cards[i], pm[i], sizeof(pm[i]));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(charge(&p, pm[i], &o), 200);
        json_decref(o);
        assert_int_equal(charge(&p, pm[i], &o), 200); /* the same card again does not count */
        json_decref(o);
    }
    assert_int_equal(charge(&p, pm[3], &o), 429); /* the 4th distinct card */
    assert_string_equal(jstr(o, "error.code"), "rate_limit");
    json_decref(o);
    assert_int_equal(charge(&p, pm[0], &o), 429); /* the address stays blocked for the window */
    json_decref(o);
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "\"event\":\"velocity.ip\""));
    free(log);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

static void
card_testing_declines_per_merchant(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *args[] = {"--set", "payments.merchant_decline_limit=4", NULL};
    pd_h_opts_t opts = {.args = args};
    static const char *declined[] = {"4000000000000002", "4000000000009995", "4000000000000069", "4000000000000119"};
    char pm[64], good[64];
    json_t *o;
    assert_int_equal(pd_h_start(&p, &opts), 0);
    api_load_credentials(&p);
    for (int i = 0; i < 4; i++) {
        card_pm(&p, declined[i], pm, sizeof(pm));
        assert_int_equal(charge(&p, pm, &o), 402);
        json_decref(o);
    }
    card_pm(&p, "4242424242424242", good, sizeof(good));
    assert_int_equal(charge(&p, good, &o), 429); /* charges are paused for the account */
    assert_string_equal(jstr(o, "error.code"), "rate_limit");
    json_decref(o);
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "\"event\":\"velocity.merchant\""));
    free(log);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_address_lists_stop_the_start),
        cmocka_unit_test(address_lists_and_trusted_proxies),
        cmocka_unit_test(usage_plan_rate_and_quota),
        cmocka_unit_test(failed_authentications_lock_the_address_out),
        cmocka_unit_test(rate_rule_per_address),
        cmocka_unit_test(card_testing_declines_per_card),
        cmocka_unit_test(card_testing_distinct_cards_per_address),
        cmocka_unit_test(card_testing_declines_per_merchant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
