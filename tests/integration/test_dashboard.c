/*
 * GET /dashboard on the admin listener (docs/dashboard.md): the page and its assets
 * come from payd with a strict Content-Security-Policy and load nothing from
 * elsewhere; /dashboard/data holds what the test sent (requests, payments by outcome,
 * WAF blocks, latency) in both rings after a few 1 s samples; its parameter and the
 * sample_interval setting are checked; and Debian's headless chromium renders the
 * page: every chart drawn with points, the alarm panel there, no script error and no
 * failed request.
 *
 * Without chromium the browser test is skipped and the program exits 77 (CTest's
 * SKIP_RETURN_CODE) once the rest passed.
 */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"

#define CHROMIUM "/usr/bin/chromium"

static pd_h_payd_t payd;
static bool sent; /* the traffic of test_data_after_traffic went out */

static int
setup(void **state)
{
    (void)state;
    const char *args[] = {"--set", "dashboard.sample_interval=1s", "--set", "waf.ip_rate_limit=1000000", "--set",
                          "payments.rate_per_s=100000", "--set", "payments.burst=100000", NULL};
    pd_h_opts_t o = {.args = args};
    if (pd_h_start(&payd, &o) != 0)
        return -1;
    api_load_credentials(&payd);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    pd_h_stop(&payd, SIGTERM, 20000);
    pd_h_cleanup(&payd);
    return 0;
}

static pd_h_resp_t
admin_get(const char *path)
{
    pd_h_req_t rq = {.admin = true};
    pd_h_resp_t r;
    assert_int_equal(pd_h_request(&payd, "GET", path, &rq, &r), 0);
    return r;
}

/* the page, script and style: from payd, typed, under a CSP that allows only this origin */
static void
test_page_and_assets(void **state)
{
    (void)state;
    static const struct {
        const char *path, *type, *must;
    } assets[] = {
        {"/dashboard", "text/html; charset=utf-8", "<script src=\"/dashboard/app.js\""},
        {"/dashboard/app.js", "text/javascript; charset=utf-8", "/dashboard/data?range="},
        {"/dashboard/app.css", "text/css; charset=utf-8", "#charts"},
    };
    for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++) {
        pd_h_resp_t r = admin_get(assets[i].path);
        char v[512];
        assert_int_equal(r.status, 200);
        assert_true(pd_h_resp_header(&r, "content-type", v, sizeof(v)));
        assert_string_equal(v, assets[i].type);
        assert_true(pd_h_resp_header(&r, "content-security-policy", v, sizeof(v)));
        assert_non_null(strstr(v, "default-src 'none'"));
        assert_non_null(strstr(v, "script-src 'self'"));
        assert_non_null(strstr(v, "connect-src 'self'"));
        assert_null(strstr(v, "unsafe")); /* no 'unsafe-inline' / 'unsafe-eval' */
        assert_true(pd_h_resp_header(&r, "x-content-type-options", v, sizeof(v)));
        assert_non_null(strstr(r.body, assets[i].must));
        /* nothing from another origin: no absolute URL (the SVG namespace is a name, not a load) */
        assert_null(strstr(r.body, "https:"));
        if (i != 1)
            assert_null(strstr(r.body, "http:"));
        pd_h_resp_free(&r);
    }
    /* the API listener does not serve it */
    pd_h_req_t rq = {0};
    pd_h_resp_t r;
    assert_int_equal(pd_h_request(&payd, "GET", "/dashboard", &rq, &r), 0);
    assert_int_equal(r.status, 404);
    pd_h_resp_free(&r);
}

/* range is 1h or 24h, nothing else is accepted */
static void
test_data_params(void **state)
{
    (void)state;
    pd_h_resp_t r = admin_get("/dashboard/data?range=2h");
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"param\":\"range\""));
    pd_h_resp_free(&r);
    r = admin_get("/dashboard/data?since=1");
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"param\":\"since\""));
    pd_h_resp_free(&r);
    r = admin_get("/dashboard/data?range=24h");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"range\":\"24h\""));
    assert_non_null(strstr(r.body, "\"step_s\":6,")); /* 6 samples of 1 s */
    pd_h_resp_free(&r);
}

/* the highest value of a series in /dashboard/data?range=R (-1 when none) */
static double
series_max(const char *range, const char *name, size_t *points)
{
    char path[64];
    snprintf(path, sizeof(path), "/dashboard/data?range=%s", range);
    pd_h_resp_t r = admin_get(path);
    assert_int_equal(r.status, 200);
    json_error_t e;
    json_t *o = json_loads(r.body, 0, &e);
    pd_h_resp_free(&r);
    assert_non_null(o);
    json_t *s = json_object_get(json_object_get(o, "series"), name);
    assert_true(json_is_array(s));
    assert_int_equal(json_array_size(s), json_array_size(json_object_get(o, "t")));
    double max = -1;
    size_t i;
    json_t *v;
    json_array_foreach(s, i, v)
    {
        if (json_is_number(v) && json_number_value(v) > max)
            max = json_number_value(v);
    }
    if (points != NULL)
        *points = json_array_size(s);
    json_decref(o);
    return max;
}

/* the 1 h ring's rate series integrated over time: how many it counted */
static double
series_integral(const char *name)
{
    pd_h_resp_t r = admin_get("/dashboard/data?range=1h");
    assert_int_equal(r.status, 200);
    json_error_t e;
    json_t *o = json_loads(r.body, 0, &e);
    pd_h_resp_free(&r);
    assert_non_null(o);
    json_t *t = json_object_get(o, "t"), *s = json_object_get(json_object_get(o, "series"), name);
    double sum = 0;
    for (size_t i = 1; i < json_array_size(s); i++) {
        json_t *v = json_array_get(s, i);
        if (json_is_number(v))
            sum += json_number_value(v) *
                   (json_number_value(json_array_get(t, i)) - json_number_value(json_array_get(t, i - 1)));
    }
    json_decref(o);
    return sum;
}

/* waits up to 20 s for every series to show data in range */
static bool
wait_for(const char *range, const char *const *names)
{
    for (int i = 0; i < 200; i++) {
        bool all = true;
        for (const char *const *n = names; *n != NULL && all; n++)
            all = series_max(range, *n, NULL) > 0;
        if (all)
            return true;
        usleep(100000);
    }
    for (const char *const *n = names; *n != NULL; n++)
        print_error("%s %s: max %g\n", range, *n, series_max(range, *n, NULL));
    return false;
}

static void
send_traffic(void)
{
    char pm[64], declined[64];
    json_t *o;
    assert_int_equal(api_card_pm(&payd, "4242424242424242", pm, sizeof(pm)), 200);
    assert_int_equal(api_card_pm(&payd, "4000000000000002", declined, sizeof(declined)), 200);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(api_charge(&payd, pm, 1000 + i, "usd", &o), 200);
        json_decref(o);
    }
    assert_int_equal(api_charge(&payd, declined, 1000, "usd", &o), 402);
    json_decref(o);
    /* a signature the WAF blocks */
    assert_int_equal(api_call(&payd, "GET", "/v1/payment_intents?q=1%27%20OR%201%3D1--%20", NULL, &o), 403);
    json_decref(o);
    sent = true;
}

static void
test_data_after_traffic(void **state)
{
    (void)state;
    size_t before = 0;
    (void)series_max("1h", "api_requests_per_s", &before);
    send_traffic();
    static const char *const fine[] = {"api_requests_per_s", "api_seconds_per_s", "api_latency_p50_s",
                                       "api_latency_p99_s", "db_commit_p99_s", "payments_succeeded_per_s",
                                       "payments_failed_per_s", "waf_blocks_per_s", "memory_bytes", "cpu_cores",
                                       "db_connections", NULL};
    assert_true(wait_for("1h", fine));
    /* the 24 h ring aggregates them (a point per 6 samples): rates stay rates, peaks stay */
    static const char *const coarse[] = {"api_requests_per_s", "payments_succeeded_per_s", "api_latency_p99_s",
                                         "waf_blocks_per_s", NULL};
    assert_true(wait_for("24h", coarse));
    /* the rates add up to exactly what was sent: sum of rate x time between points */
    assert_int_equal(lround(series_integral("payments_succeeded_per_s")), 20);
    assert_int_equal(lround(series_integral("payments_failed_per_s")), 1);
    assert_int_equal(lround(series_integral("waf_blocks_per_s")), 1);
    assert_int_equal(lround(series_integral("payments_requires_capture_per_s")), 0);
    /* API requests are the /v1 ones only: 2 cards, 21 charges, the blocked one; not the
     * hundreds of admin requests this test made polling /dashboard/data */
    long api = lround(series_integral("api_requests_per_s"));
    if (api != 24)
        print_error("api requests counted: %ld\n", api);
    assert_int_equal(api, 24);
    size_t after = 0;
    (void)series_max("1h", "api_requests_per_s", &after);
    assert_true(after > before);
    /* nothing of the sort was sent: no record published (no stream configured) */
    assert_true(series_max("1h", "stream_published_per_s", NULL) == 0);
}

/* the attribute attr="N" of the element whose tag starts with start, or -1 */
static double
dom_attr(const char *dom, const char *start, const char *attr)
{
    const char *p = strstr(dom, start);
    if (p == NULL)
        return -1;
    const char *end = strchr(p, '>');
    char key[64];
    snprintf(key, sizeof(key), " %s=\"", attr);
    const char *a = strstr(p, key);
    if (a == NULL || end == NULL || a > end)
        return -1;
    return strtod(a + strlen(key), NULL);
}

static void
test_browser(void **state)
{
    (void)state;
    if (access(CHROMIUM, X_OK) != 0) {
        print_message("chromium is not installed (scripts/deps.sh): the browser test is skipped\n");
        skip();
    }
    if (!sent)
        send_traffic();
    static const char *const need[] = {"api_requests_per_s", "api_latency_p99_s", NULL};
    assert_true(wait_for("1h", need));
    char url[128], profile[400], budget[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/dashboard", payd.admin_port);
    snprintf(profile, sizeof(profile), "--user-data-dir=%s/chromium", payd.dir);
    snprintf(budget, sizeof(budget), "--virtual-time-budget=%d", 5000);
    const char *argv[] = {"/usr/bin/timeout", "90", CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          "--no-first-run", "--disable-extensions", "--enable-logging=stderr", "--v=0", profile,
                          budget, "--dump-dom", url, NULL};
    char *out = NULL;
    int st = pd_h_run(argv, &out);
    if (st != 0 || strstr(out, "<svg id=\"chart-api_requests\"") == NULL)
        print_error("chromium: exit %d:\n%s\n", st, out != NULL ? out : "");
    assert_int_equal(st, 0);
    /* every chart is its own <svg>, drawn from the history */
    static const char *const charts[] = {"cpu", "memory", "connections", "response_time", "db_cpu", "db_connections",
                                         "api_requests", "api_latency", "stream", "payments", "waf_blocks"};
    for (size_t i = 0; i < sizeof(charts) / sizeof(charts[0]); i++) {
        char tag[64];
        snprintf(tag, sizeof(tag), "<svg id=\"chart-%s\"", charts[i]);
        double n = dom_attr(out, tag, "data-points");
        if (n < 1)
            print_error("%s: data-points %g\n", charts[i], n);
        assert_true(n >= 1);
    }
    /* the traffic is on the charts, not only zeros */
    assert_true(dom_attr(out, "<svg id=\"chart-api_requests\"", "data-max") > 0);
    assert_true(dom_attr(out, "<svg id=\"chart-payments\"", "data-max") > 0);
    assert_true(dom_attr(out, "<svg id=\"chart-waf_blocks\"", "data-max") > 0);
    assert_true(dom_attr(out, "<svg id=\"chart-api_latency\"", "data-max") > 0);
    assert_non_null(strstr(out, "<path class=\"line s0\""));
    /* the alarm panel: this payd has no /alarms (404), and the page says so */
    assert_non_null(strstr(out, "<section id=\"alarms\""));
    assert_null(strstr(out, "<section id=\"alarms\" data-state=\"loading\""));
    assert_null(strstr(out, "<section id=\"alarms\" data-state=\"error\""));
    if (strstr(out, "<section id=\"alarms\" data-state=\"unavailable\"") != NULL)
        assert_non_null(strstr(out, "alarms: not available"));
    /* no script error, no failed fetch, nothing the CSP refused */
    assert_non_null(strstr(out, "<pre id=\"errors\" data-count=\"0\">"));
    assert_null(strstr(out, "Refused to"));
    assert_null(strstr(out, "Uncaught"));
    assert_non_null(strstr(out, "<p id=\"status\" data-state=\"ok\">"));
    free(out);
}

/* the setting: at least 1 s, named in the error */
static void
test_config(void **state)
{
    (void)state;
    const char *argv[] = {PAYD_BIN, "--dev", "--data-dir", payd.dir, "--set", "dashboard.sample_interval=500ms",
                          "--check-config", NULL};
    char *out = NULL;
    int st = pd_h_run(argv, &out);
    if (st != 2 || strstr(out, "sample_interval") == NULL)
        print_error("exit %d: %s\n", st, out);
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, "[dashboard] sample_interval"));
    free(out);
}

/* without metrics nothing is sampled: the page loads, the data route says why it has none */
static void
test_metrics_disabled(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *args[] = {"--set", "metrics.enabled=false", NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);
    pd_h_req_t rq = {.admin = true};
    pd_h_resp_t r;
    assert_int_equal(pd_h_request(&p, "GET", "/dashboard", &rq, &r), 0);
    assert_int_equal(r.status, 200);
    pd_h_resp_free(&r);
    assert_int_equal(pd_h_request(&p, "GET", "/dashboard/data", &rq, &r), 0);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"code\":\"dashboard_disabled\""));
    assert_non_null(strstr(r.body, "[metrics] enabled = false"));
    pd_h_resp_free(&r);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_and_assets), cmocka_unit_test(test_data_params),
        cmocka_unit_test(test_data_after_traffic), cmocka_unit_test(test_browser),
        cmocka_unit_test(test_config),          cmocka_unit_test(test_metrics_disabled),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    if (rc == 0 && access(CHROMIUM, X_OK) != 0)
        return 77; /* CTest: skipped (the browser part could not run) */
    return rc;
}
