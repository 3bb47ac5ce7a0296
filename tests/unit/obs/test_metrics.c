/* The metrics registry and its text format (payd/metrics.h). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "payd/metrics.h"
#include "payd/metrics_payd.h"

static const char *const outcomes[] = {"ok", "failed", NULL};
static const char *const colors[] = {"red", "green", "blue", NULL};
static const double bounds[] = {0.1, 0.5, 1};

enum { F_REQ, F_LAT, F_GAUGE, F_SPARSE, F_DYN, F_COLLECTED, NF };
static const pd_metric_def_t defs[NF] = {
    [F_REQ] = {"t_requests_total", "Requests.", PD_METRIC_COUNTER, 0, 2, {{"outcome", outcomes}, {"color", colors}}, NULL,
               0},
    [F_LAT] = {"t_latency_seconds", "Latency.", PD_METRIC_HISTOGRAM, 0, 1, {{"outcome", outcomes}}, bounds, 3},
    [F_GAUGE] = {"t_open", "Open things.", PD_METRIC_GAUGE, 0, 0, {{0}}, NULL, 0},
    [F_SPARSE] = {"t_sparse_total", "Only what happened.", PD_METRIC_COUNTER, PD_METRIC_SPARSE, 1,
                  {{"color", colors}}, NULL, 0},
    [F_DYN] = {"t_dyn_total", "Values at run time.", PD_METRIC_COUNTER, 0, 1, {{"name", NULL}}, NULL, 0},
    [F_COLLECTED] = {"t_collected", "Read when scraped.", PD_METRIC_GAUGE, 0, 0, {{0}}, NULL, 0},
};

static char *
render(pd_metrics_t *m)
{
    pd_buf_t b;
    const char *s;
    pd_buf_init(&b, 1 << 20);
    assert_int_equal(pd_metrics_render(m, &b), 0);
    assert_int_equal(pd_buf_cstr(&b, &s), 0);
    char *copy = strdup(s);
    pd_buf_free(&b);
    return copy;
}

static void
counters_by_label_series(void **state)
{
    (void)state;
    pd_metrics_t *m;
    assert_int_equal(pd_metrics_new(&m, defs, NF), 0);
    size_t ok_green[2] = {0, 1}, failed_blue[2] = {1, 2}, bad[2] = {2, 0};
    size_t s1 = pd_metric_series(m, F_REQ, ok_green), s2 = pd_metric_series(m, F_REQ, failed_blue);
    assert_int_equal(s1, 1);
    assert_int_equal(s2, 5);
    assert_int_equal(pd_metric_series(m, F_REQ, bad), SIZE_MAX);
    pd_metric_add(m, F_REQ, s1, 3);
    pd_metric_add(m, F_REQ, s2, 1);
    pd_metric_add(m, F_REQ, SIZE_MAX, 1); /* dropped */
    pd_metric_add(m, 99, 0, 1);           /* dropped */
    pd_metric_add(NULL, F_REQ, 0, 1);     /* dropped */
    assert_true(pd_metric_read(m, F_REQ, s1) == 3);
    assert_true(pd_metric_read(m, F_REQ, s2) == 1);
    assert_true(pd_metric_read_sum(m, F_REQ, SIZE_MAX, NULL) == 4);
    assert_true(pd_metric_read_sum(m, F_REQ, 0, "fail") == 1);
    assert_string_equal(pd_metric_label_of(m, F_REQ, s2, 0), "failed");
    assert_string_equal(pd_metric_label_of(m, F_REQ, s2, 1), "blue");
    assert_int_equal(pd_metrics_find(m, "t_open"), F_GAUGE);
    assert_int_equal(pd_metrics_find(m, "nope"), -1);
    pd_metric_gauge_add(m, F_GAUGE, 0, 5);
    pd_metric_gauge_add(m, F_GAUGE, 0, -7);
    assert_true(pd_metric_read(m, F_GAUGE, 0) == -2);
    char *text = render(m);
    assert_non_null(strstr(text, "# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n"));
    assert_non_null(strstr(text, "t_requests_total{outcome=\"ok\",color=\"red\"} 0\n")); /* zeros: rate() from 0 */
    assert_non_null(strstr(text, "t_requests_total{outcome=\"ok\",color=\"green\"} 3\n"));
    assert_non_null(strstr(text, "t_requests_total{outcome=\"failed\",color=\"blue\"} 1\n"));
    assert_non_null(strstr(text, "t_open -2\n"));
    free(text);
    pd_metrics_free(m);
}

static void
histogram_buckets_cumulative_in_order(void **state)
{
    (void)state;
    pd_metrics_t *m;
    assert_int_equal(pd_metrics_new(&m, defs, NF), 0);
    double v[] = {0.05, 0.1, 0.3, 0.7, 2, 5};
    for (size_t i = 0; i < 6; i++)
        pd_metric_observe(m, F_LAT, 0, v[i]);
    pd_metric_observe(m, F_LAT, 0, NAN); /* dropped */
    pd_metric_hist_t h;
    assert_int_equal(pd_metric_read_hist(m, F_LAT, 0, &h), 0);
    assert_int_equal(h.count, 6);
    assert_int_equal(h.cumulative[0], 2); /* le 0.1: 0.05 and 0.1 (upper bound inclusive) */
    assert_int_equal(h.cumulative[1], 3);
    assert_int_equal(h.cumulative[2], 4);
    assert_int_equal(h.cumulative[3], 6);
    assert_true(fabs(h.sum - 8.15) < 1e-9);
    assert_int_equal(pd_metric_read_hist(m, F_REQ, 0, &h), PD_ERR_INVALID);
    char *text = render(m);
    const char *b1 = strstr(text, "t_latency_seconds_bucket{outcome=\"ok\",le=\"0.1\"} 2\n");
    const char *b2 = strstr(text, "t_latency_seconds_bucket{outcome=\"ok\",le=\"0.5\"} 3\n");
    const char *b3 = strstr(text, "t_latency_seconds_bucket{outcome=\"ok\",le=\"1\"} 4\n");
    const char *b4 = strstr(text, "t_latency_seconds_bucket{outcome=\"ok\",le=\"+Inf\"} 6\n");
    const char *sum = strstr(text, "t_latency_seconds_sum{outcome=\"ok\"} 8.15\n");
    const char *cnt = strstr(text, "t_latency_seconds_count{outcome=\"ok\"} 6\n");
    assert_non_null(b1);
    assert_true(b1 < b2 && b2 < b3 && b3 < b4 && b4 < sum && sum < cnt);
    assert_non_null(strstr(text, "t_latency_seconds_bucket{outcome=\"failed\",le=\"+Inf\"} 0\n"));
    free(text);
    pd_metrics_free(m);
}

static void
quantile_like_prometheus(void **state)
{
    (void)state;
    pd_metric_hist_t h = {.nbounds = 3, .bounds = {0.1, 0.5, 1}, .cumulative = {50, 90, 100, 100}, .count = 100};
    assert_true(fabs(pd_metric_quantile(&h, 0.5) - 0.1) < 1e-12);  /* rank 50: top of bucket 1 */
    assert_true(fabs(pd_metric_quantile(&h, 0.7) - 0.3) < 1e-12);  /* halfway through (0.1, 0.5] */
    assert_true(fabs(pd_metric_quantile(&h, 0.99) - 0.95) < 1e-12);
    h.cumulative[3] = 200, h.count = 200;
    assert_true(pd_metric_quantile(&h, 0.99) == 1); /* in +Inf: the highest finite bound */
    pd_metric_hist_t empty = {.nbounds = 1, .bounds = {1}};
    assert_true(isnan(pd_metric_quantile(&empty, 0.5)));
}

static void
label_values_escaped_and_sparse_series_omitted(void **state)
{
    (void)state;
    pd_metrics_t *m;
    static const char *const names[] = {"a\"b", "back\\slash", "new\nline", NULL};
    assert_int_equal(pd_metrics_new(&m, defs, NF), 0);
    assert_int_equal(pd_metrics_set_values(m, F_DYN, 0, names, 3), 0);
    assert_int_equal(pd_metrics_set_values(m, F_DYN, 0, names, 3), PD_ERR_STATE); /* once */
    pd_metric_add(m, F_DYN, 0, 1);
    pd_metric_add(m, F_DYN, 1, 2);
    pd_metric_add(m, F_DYN, 2, 3);
    pd_metric_add(m, F_SPARSE, 1, 1);
    char *text = render(m);
    assert_non_null(strstr(text, "t_dyn_total{name=\"a\\\"b\"} 1\n"));
    assert_non_null(strstr(text, "t_dyn_total{name=\"back\\\\slash\"} 2\n"));
    assert_non_null(strstr(text, "t_dyn_total{name=\"new\\nline\"} 3\n"));
    assert_non_null(strstr(text, "t_sparse_total{color=\"green\"} 1\n"));
    assert_null(strstr(text, "t_sparse_total{color=\"red\"}"));
    assert_non_null(strstr(text, "# TYPE t_sparse_total counter\n")); /* the family is always declared */
    free(text);
    pd_metrics_free(m);
}

static void
a_label_without_values_drops_records(void **state)
{
    (void)state;
    pd_metrics_t *m;
    assert_int_equal(pd_metrics_new(&m, defs, NF), 0);
    pd_metric_add(m, F_DYN, 0, 1);
    assert_int_equal(pd_metrics_nseries(m, F_DYN), 0);
    char *text = render(m);
    assert_null(strstr(text, "t_dyn_total{"));
    free(text);
    pd_metrics_free(m);
}

static void
collect_half(void *arg, double *out, size_t n)
{
    assert_int_equal(n, 1);
    out[0] = *(double *)arg;
}

static void
collected_family_read_at_scrape(void **state)
{
    (void)state;
    pd_metrics_t *m;
    double v = 0.5;
    assert_int_equal(pd_metrics_new(&m, defs, NF), 0);
    assert_int_equal(pd_metrics_set_collector(m, F_COLLECTED, collect_half, &v), 0);
    assert_int_equal(pd_metrics_set_collector(m, F_LAT, collect_half, &v), PD_ERR_INVALID);
    pd_metric_gauge_add(m, F_COLLECTED, 0, 9); /* a collected family has no shards */
    char *text = render(m);
    assert_non_null(strstr(text, "t_collected 0.5\n"));
    free(text);
    v = 12;
    assert_true(pd_metric_read(m, F_COLLECTED, 0) == 12);
    pd_metrics_free(m);
}

static void
malformed_tables_refused(void **state)
{
    (void)state;
    pd_metrics_t *m = NULL;
    pd_metric_def_t d[2] = {{"ok_total", "x", PD_METRIC_COUNTER, 0, 0, {{0}}, NULL, 0}};
    d[0].name = "no_suffix";
    assert_int_equal(pd_metrics_new(&m, d, 1), PD_ERR_INVALID); /* counters end in _total */
    d[0].name = "9starts_with_digit_total";
    assert_int_equal(pd_metrics_new(&m, d, 1), PD_ERR_INVALID);
    d[0] = (pd_metric_def_t){"g_total", "x", PD_METRIC_GAUGE, 0, 0, {{0}}, NULL, 0};
    assert_int_equal(pd_metrics_new(&m, d, 1), PD_ERR_INVALID); /* only counters end in _total */
    static const double unsorted[] = {1, 0.5};
    d[0] = (pd_metric_def_t){"h_seconds", "x", PD_METRIC_HISTOGRAM, 0, 0, {{0}}, unsorted, 2};
    assert_int_equal(pd_metrics_new(&m, d, 1), PD_ERR_INVALID);
    d[0] = (pd_metric_def_t){"l_total", "x", PD_METRIC_COUNTER, 0, 1, {{"le", outcomes}}, NULL, 0};
    assert_int_equal(pd_metrics_new(&m, d, 1), PD_ERR_INVALID); /* le is the histograms' */
    d[0] = (pd_metric_def_t){"same_total", "x", PD_METRIC_COUNTER, 0, 0, {{0}}, NULL, 0};
    d[1] = d[0];
    assert_int_equal(pd_metrics_new(&m, d, 2), PD_ERR_EXISTS);
    assert_null(m);
}

/* --- concurrency: per-thread shards sum exactly; a scrape never sees a torn histogram --- */

enum { THREADS = 8, PER_THREAD = 20000 };
static pd_metrics_t *shared;
static atomic_bool stop_scraping;

static void *
recorder(void *arg)
{
    (void)arg;
    size_t idx[2] = {0, 2};
    size_t s = pd_metric_series(shared, F_REQ, idx);
    for (int i = 0; i < PER_THREAD; i++) {
        pd_metric_add(shared, F_REQ, s, 1);
        pd_metric_observe(shared, F_LAT, (size_t)(i & 1), (double)(i % 7) * 0.2);
    }
    return NULL;
}

static void *
scraper(void *arg)
{
    int *bad = arg;
    while (!atomic_load(&stop_scraping)) {
        for (size_t s = 0; s < 2; s++) {
            pd_metric_hist_t h;
            if (pd_metric_read_hist(shared, F_LAT, s, &h) != 0 || h.count != h.cumulative[h.nbounds])
                (*bad)++;
            for (size_t k = 1; k <= h.nbounds; k++)
                if (h.cumulative[k] < h.cumulative[k - 1])
                    (*bad)++;
        }
    }
    return NULL;
}

static void
threads_sum_exactly_and_scrapes_are_consistent(void **state)
{
    (void)state;
    assert_int_equal(pd_metrics_new(&shared, defs, NF), 0);
    pthread_t th[THREADS], sc;
    int bad = 0;
    atomic_store(&stop_scraping, false);
    pthread_create(&sc, NULL, scraper, &bad);
    for (int round = 0; round < 2; round++) { /* the second round reuses the shards the first left */
        for (int i = 0; i < THREADS; i++)
            pthread_create(&th[i], NULL, recorder, NULL);
        for (int i = 0; i < THREADS; i++)
            pthread_join(th[i], NULL);
    }
    atomic_store(&stop_scraping, true);
    pthread_join(sc, NULL);
    assert_int_equal(bad, 0);
    size_t idx[2] = {0, 2};
    assert_true(pd_metric_read(shared, F_REQ, pd_metric_series(shared, F_REQ, idx)) == 2.0 * THREADS * PER_THREAD);
    pd_metric_hist_t h;
    assert_int_equal(pd_metric_read_hist(shared, F_LAT, SIZE_MAX, &h), 0);
    assert_int_equal(h.count, 2 * THREADS * PER_THREAD);
    pd_metrics_free(shared);
    shared = NULL;
}

static void
payd_table_is_valid_and_names_its_families(void **state)
{
    (void)state;
    static const char *const cur[] = {"eur", "usd", NULL};
    assert_int_equal(pd_mx_open("9.9.9", cur, 2), 0);
    assert_non_null(pd_mx);
    assert_int_equal(pd_metrics_find(pd_mx, "payd_payments_total"), PD_MX_PAYMENTS);
    assert_int_equal(pd_metrics_find(pd_mx, "process_open_fds"), PD_MX_PROCESS + 2);
    assert_string_equal(pd_mx_waf_families[PD_MX_WAF_FAMILY_NONE], "none");
    assert_int_equal(pd_mx_waf_family("sqli"), pd_metric_value_index(pd_mx, PD_MX_WAF_DECISIONS, 1, "sqli"));
    assert_int_equal(pd_mx_waf_family("made-up"), pd_metric_value_index(pd_mx, PD_MX_WAF_DECISIONS, 1, "other"));
    pd_mx_inc(PD_MX_PAYMENTS, PD_MX_PAY_SUCCEEDED);
    pd_metric_add(pd_mx, PD_MX_PAYMENT_AMOUNT, 1, 1500);
    char *text = render(pd_mx);
    assert_non_null(strstr(text, "payd_payments_total{outcome=\"succeeded\"} 1\n"));
    assert_non_null(strstr(text, "payd_payment_amount_minor_total{currency=\"usd\"} 1500\n"));
    assert_non_null(strstr(text, "payd_build_info{version=\"9.9.9\"} 1\n"));
    assert_non_null(strstr(text, "process_open_fds "));
    assert_non_null(strstr(text, "process_start_time_seconds 1"));
    free(text);
    pd_mx_close();
    assert_null(pd_mx);
    pd_mx_inc(PD_MX_PAYMENTS, 0); /* no registry: nothing happens */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counters_by_label_series),
        cmocka_unit_test(histogram_buckets_cumulative_in_order),
        cmocka_unit_test(quantile_like_prometheus),
        cmocka_unit_test(label_values_escaped_and_sparse_series_omitted),
        cmocka_unit_test(a_label_without_values_drops_records),
        cmocka_unit_test(collected_family_read_at_scrape),
        cmocka_unit_test(malformed_tables_refused),
        cmocka_unit_test(threads_sum_exactly_and_scrapes_are_consistent),
        cmocka_unit_test(payd_table_is_valid_and_names_its_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
