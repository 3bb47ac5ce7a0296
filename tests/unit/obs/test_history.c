/* The dashboard's history rings (payd/history.h): wraparound, rates and counter
 * resets, the coarse (24 h) aggregation of each kind, the JSON, the histogram deltas. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "payd/history.h"

enum { G, C, P, N };
static const pd_history_series_t defs[N] = {{"gauge", PD_HIST_GAUGE}, {"count", PD_HIST_COUNTER}, {"peak", PD_HIST_PEAK}};

static pd_history_t *
make(size_t fine, size_t coarse, size_t every)
{
    pd_history_t *h = NULL;
    assert_int_equal(pd_history_new(&h, defs, N, fine, coarse, every), 0);
    return h;
}

static void
push(pd_history_t *h, double t, double g, double c, double p)
{
    double in[N] = {g, c, p};
    assert_int_equal(pd_history_push(h, 1000 + t, t, in), 0);
}

static void
get(pd_history_t *h, bool coarse, size_t i, double *t, double out[N])
{
    assert_int_equal(pd_history_get(h, coarse, i, t, out), 0);
}

static void
test_new_rejects(void **state)
{
    (void)state;
    pd_history_t *h = (pd_history_t *)1;
    static const pd_history_series_t bad_name[] = {{"Bad-Name", PD_HIST_GAUGE}};
    assert_int_equal(pd_history_new(&h, bad_name, 1, 4, 4, 1), PD_ERR_INVALID);
    assert_null(h);
    assert_int_equal(pd_history_new(&h, defs, 0, 4, 4, 1), PD_ERR_INVALID);
    assert_int_equal(pd_history_new(&h, defs, N, 0, 4, 1), PD_ERR_INVALID);
    assert_int_equal(pd_history_new(&h, defs, N, 4, 0, 1), PD_ERR_INVALID);
    assert_int_equal(pd_history_new(&h, defs, N, 4, 4, 0), PD_ERR_INVALID);
    assert_int_equal(pd_history_new(&h, defs, PD_HISTORY_MAX_SERIES + 1, 4, 4, 1), PD_ERR_INVALID);
    pd_history_free(NULL);
}

/* the fine ring keeps the last cap points, oldest first, across many wraps */
static void
test_wraparound(void **state)
{
    (void)state;
    pd_history_t *h = make(4, 3, 2);
    double t, v[N];
    assert_int_equal(pd_history_count(h, false), 0);
    assert_int_equal(pd_history_get(h, false, 0, &t, v), PD_ERR_RANGE);
    for (int i = 1; i <= 11; i++)
        push(h, i, i * 10, 0, NAN);
    assert_int_equal(pd_history_count(h, false), 4);
    for (size_t i = 0; i < 4; i++) {
        get(h, false, i, &t, v);
        assert_true(t == 1000 + 8 + (double)i); /* samples 8..11 */
        assert_true(v[G] == (8 + (double)i) * 10);
    }
    assert_int_equal(pd_history_get(h, false, 4, &t, v), PD_ERR_RANGE);
    /* 11 samples, a coarse point per 2: 5 made, the last 3 kept (samples 5-6, 7-8, 9-10) */
    assert_int_equal(pd_history_count(h, true), 3);
    get(h, true, 0, &t, v);
    assert_true(t == 1006);
    assert_true(v[G] == 55);
    get(h, true, 2, &t, v);
    assert_true(t == 1010);
    assert_true(v[G] == 95);
    pd_history_free(h);
}

/* counters become per-second rates over the monotonic time between samples; a value
 * below the previous one is a restart from 0 */
static void
test_rates_and_resets(void **state)
{
    (void)state;
    pd_history_t *h = make(16, 4, 100);
    double t, v[N];
    push(h, 0, 0, 100, NAN);
    push(h, 1, 0, 110, NAN);
    push(h, 3, 0, 130, NAN);
    push(h, 4, 0, 5, NAN); /* reset: 5 new since the restart */
    push(h, 6, 0, 5, NAN);
    get(h, false, 0, &t, v);
    assert_true(isnan(v[C])); /* no previous sample: no rate */
    get(h, false, 1, &t, v);
    assert_true(v[C] == 10);
    get(h, false, 2, &t, v);
    assert_true(v[C] == 10);
    get(h, false, 3, &t, v);
    assert_true(v[C] == 5);
    get(h, false, 4, &t, v);
    assert_true(v[C] == 0);
    /* time that does not advance is refused, and nothing is recorded */
    double in[N] = {1, 6, 1};
    assert_int_equal(pd_history_push(h, 2000, 6, in), PD_ERR_INVALID);
    assert_int_equal(pd_history_push(h, 2000, 5, in), PD_ERR_INVALID);
    assert_int_equal(pd_history_count(h, false), 5);
    pd_history_free(h);
}

/* a coarse point per `every` samples: gauges time-weighted means, counters the rate
 * over the whole span, peaks the highest; NaN skipped, all-NaN stays NaN */
static void
test_coarse_aggregation(void **state)
{
    (void)state;
    pd_history_t *h = make(PD_HISTORY_FINE_POINTS, PD_HISTORY_COARSE_POINTS, 6);
    double t, v[N];
    /* 12 samples 10 s apart: the first coarse point covers samples 0-5, the second 6-11 */
    static const double gauge[12] = {1, 2, 3, 4, 5, 6, 10, 10, 10, 10, 10, 40};
    static const double count[12] = {0, 10, 20, 30, 40, 50, 60, 60, 3, 3, 3, 3}; /* a reset at 8 */
    double peak[12] = {NAN, 0.1, 0.5, NAN, 0.2, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    for (int i = 0; i < 12; i++)
        push(h, i * 10.0, gauge[i], count[i], peak[i]);
    assert_int_equal(pd_history_count(h, true), 2);
    get(h, true, 0, &t, v);
    assert_true(t == 1050); /* the last sample's time */
    /* the first sample weighs 1 s (no interval yet), the others 10 s each */
    assert_true(fabs(v[G] - (1 * 1 + (2 + 3 + 4 + 5 + 6) * 10.0) / 51.0) < 1e-12);
    assert_true(fabs(v[C] - 50.0 / 50.0) < 1e-12); /* 50 counted over the 50 s with a rate */
    assert_true(v[P] == 0.5);
    get(h, true, 1, &t, v);
    assert_true(t == 1110);
    assert_true(fabs(v[G] - 15.0) < 1e-12); /* (5 x 10 + 40) x 10 s / 60 s: no first-sample weight here */
    assert_true(fabs(v[C] - 13.0 / 60.0) < 1e-12); /* 10 + 0 + 3 (reset) + 0 + 0 + 0 over 60 s */
    assert_true(isnan(v[P]));
    /* the fine ring still has every sample */
    assert_int_equal(pd_history_count(h, false), 12);
    pd_history_free(h);
}

/* 24 h at the default cadence: 8640 samples fill the day ring exactly */
static void
test_day_ring_fills(void **state)
{
    (void)state;
    pd_history_t *h = make(PD_HISTORY_FINE_POINTS, PD_HISTORY_COARSE_POINTS, PD_HISTORY_COARSE_EVERY);
    double t, v[N];
    for (int i = 0; i < 8640 + 12; i++)
        push(h, i * 10.0, i, i * 2.0, NAN);
    assert_int_equal(pd_history_count(h, false), PD_HISTORY_FINE_POINTS);
    assert_int_equal(pd_history_count(h, true), PD_HISTORY_COARSE_POINTS);
    get(h, true, PD_HISTORY_COARSE_POINTS - 1, &t, v);
    assert_true(t == 1000 + (8640 + 11) * 10.0);
    assert_true(fabs(v[C] - 0.2) < 1e-12); /* 2 per 10 s */
    get(h, true, 0, &t, v);
    assert_true(t == 1000 + (12 + 5) * 10.0); /* two coarse points fell off */
    pd_history_free(h);
}

static void
test_json(void **state)
{
    (void)state;
    pd_history_t *h = make(8, 8, 2);
    pd_buf_t b;
    const char *s;
    pd_buf_init(&b, 1 << 16);
    assert_int_equal(pd_history_json(h, false, 10, &b), 0);
    assert_int_equal(pd_buf_cstr(&b, &s), 0);
    assert_string_equal(s, "{\"range\":\"1h\",\"step_s\":10,\"points\":0,\"t\":[],\"series\":{\"gauge\":[],\"count\":[],"
                           "\"peak\":[]}}");
    push(h, 0, 1.5, 0, NAN);
    push(h, 2, INFINITY, 4, 0.25);
    pd_buf_reset(&b);
    assert_int_equal(pd_history_json(h, false, 2, &b), 0);
    assert_int_equal(pd_buf_cstr(&b, &s), 0);
    assert_string_equal(s, "{\"range\":\"1h\",\"step_s\":2,\"points\":2,\"t\":[1000.000,1002.000],\"series\":{\"gauge\":"
                           "[1.5,null],\"count\":[null,2],\"peak\":[null,0.25]}}");
    pd_buf_reset(&b);
    assert_int_equal(pd_history_json(h, true, 2, &b), 0);
    assert_int_equal(pd_buf_cstr(&b, &s), 0);
    assert_string_equal(s, "{\"range\":\"24h\",\"step_s\":4,\"points\":1,\"t\":[1002.000],\"series\":{\"gauge\":"
                           "[1.5],\"count\":[2],\"peak\":[0.25]}}");
    pd_buf_free(&b);
    /* a buffer past its maximum fails closed */
    pd_buf_init(&b, 32);
    assert_int_equal(pd_history_json(h, false, 2, &b), PD_ERR_TOOBIG);
    pd_buf_free(&b);
    pd_history_free(h);
}

static pd_metric_hist_t
hist(const uint64_t per_bucket[4], double sum)
{
    pd_metric_hist_t x = {.nbounds = 3, .bounds = {0.1, 0.5, 1}, .sum = sum};
    uint64_t c = 0;
    for (size_t i = 0; i < 4; i++)
        x.cumulative[i] = c += per_bucket[i];
    x.count = c;
    return x;
}

static void
test_hist_delta(void **state)
{
    (void)state;
    pd_metric_hist_t d;
    pd_metric_hist_t a = hist((const uint64_t[]){100, 0, 0, 0}, 5);
    pd_metric_hist_t b = hist((const uint64_t[]){100, 0, 10, 0}, 12);
    assert_int_equal(pd_history_hist_delta(&a, &b, &d), 0);
    assert_int_equal(d.count, 10);
    assert_true(d.sum == 7);
    /* over the whole life the p99 is in the first bucket; over the interval, in the third */
    assert_true(pd_metric_quantile(&b, 0.5) <= 0.1);
    assert_true(pd_metric_quantile(&d, 0.99) > 0.5);
    /* nothing new: no quantile */
    assert_int_equal(pd_history_hist_delta(&b, &b, &d), 0);
    assert_int_equal(d.count, 0);
    assert_true(isnan(pd_metric_quantile(&d, 0.99)));
    /* a bucket that went down is a reset even when the cumulative counts still grew */
    pd_metric_hist_t c = hist((const uint64_t[]){150, 0, 5, 0}, 1);
    for (size_t i = 0; i < 4; i++)
        assert_true(c.cumulative[i] >= b.cumulative[i]);
    assert_int_equal(pd_history_hist_delta(&b, &c, &d), 0);
    assert_int_equal(d.count, c.count);
    assert_true(d.cumulative[0] == 150);
    /* different bounds: not the same histogram */
    pd_metric_hist_t e = b;
    e.bounds[1] = 0.6;
    assert_int_equal(pd_history_hist_delta(&b, &e, &d), PD_ERR_INVALID);
}

/* pushes and reads from two threads (run under TSan too) */
static void *
reader(void *arg)
{
    pd_history_t *h = arg;
    pd_buf_t b;
    pd_buf_init(&b, 1 << 20);
    for (int i = 0; i < 200; i++) {
        pd_buf_reset(&b);
        if (pd_history_json(h, i % 2 == 0, 1, &b) != 0)
            break;
    }
    pd_buf_free(&b);
    return NULL;
}

static void
test_concurrent(void **state)
{
    (void)state;
    pd_history_t *h = make(64, 16, 6);
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, reader, h), 0);
    for (int i = 0; i < 2000; i++)
        push(h, i, i, i, i);
    pthread_join(tid, NULL);
    assert_int_equal(pd_history_count(h, false), 64);
    pd_history_free(h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects),     cmocka_unit_test(test_wraparound),
        cmocka_unit_test(test_rates_and_resets), cmocka_unit_test(test_coarse_aggregation),
        cmocka_unit_test(test_day_ring_fills),  cmocka_unit_test(test_json),
        cmocka_unit_test(test_hist_delta),      cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
