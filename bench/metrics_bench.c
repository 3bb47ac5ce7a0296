/*
 * The cost of one metrics record on the hot path (payd/metrics.h): a counter add, a
 * histogram observation and the edge's per-request pair (counter + histogram of
 * {method,route,code}), each on T threads at once into payd's own registry, in ns per
 * record. With about a dozen records per payment this bounds what metrics add to a
 * payment, independent of the noise of a whole-system benchmark.
 *   metrics_bench [threads] [records per thread]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "payd/metrics_payd.h"

static long per_thread = 10000000;
static const char *const routes[] = {"/v1/payment_intents", "/v1/payment_intents/{id}", "unmatched", NULL};

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *
counter(void *arg)
{
    (void)arg;
    for (long i = 0; i < per_thread; i++)
        pd_mx_inc(PD_MX_PAYMENTS, PD_MX_PAY_SUCCEEDED);
    return NULL;
}

static void *
histogram(void *arg)
{
    (void)arg;
    for (long i = 0; i < per_thread; i++)
        pd_metric_observe(pd_mx, PD_MX_STORE_COMMIT, 0, (double)(i & 1023) * 1e-5);
    return NULL;
}

static void *
request(void *arg)
{
    (void)arg;
    for (long i = 0; i < per_thread; i++) {
        size_t idx[3] = {PD_MX_METHOD_POST, 0, pd_mx_http_code(200)};
        pd_metric_add(pd_mx, PD_MX_HTTP_REQUESTS, pd_metric_series(pd_mx, PD_MX_HTTP_REQUESTS, idx), 1);
        pd_metric_observe(pd_mx, PD_MX_HTTP_DURATION, pd_metric_series(pd_mx, PD_MX_HTTP_DURATION, idx),
                          (double)(i & 1023) * 1e-5);
    }
    return NULL;
}

static double
run(void *(*fn)(void *), int threads)
{
    pthread_t th[64];
    uint64_t t0 = now_ns();
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, fn, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    return (double)(now_ns() - t0) / (double)per_thread; /* wall ns per record of one thread */
}

int
main(int argc, char **argv)
{
    int threads = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 2;
    if (argc > 2)
        per_thread = strtol(argv[2], NULL, 10);
    if (threads < 1 || threads > 64 || per_thread < 1) {
        fprintf(stderr, "usage: metrics_bench [threads 1-64] [records per thread]\n");
        return 2;
    }
    static const char *const cur[] = {"usd", NULL};
    if (pd_mx_open("bench", cur, 1) != 0 || pd_metrics_set_values(pd_mx, PD_MX_HTTP_REQUESTS, 1, routes, 3) != 0 ||
        pd_metrics_set_values(pd_mx, PD_MX_HTTP_DURATION, 1, routes, 3) != 0)
        return 1;
    printf("metrics record cost, %d threads x %ld records (ns per record, wall, per thread)\n", threads, per_thread);
    printf("  counter add                      %6.1f ns\n", run(counter, threads));
    printf("  histogram observe                %6.1f ns\n", run(histogram, threads));
    printf("  request (counter + histogram)    %6.1f ns\n", run(request, threads));
    pd_metric_hist_t h;
    if (pd_metric_read_hist(pd_mx, PD_MX_STORE_COMMIT, 0, &h) != 0 || h.count != (uint64_t)threads * (uint64_t)per_thread)
        return 1; /* every record was counted */
    pd_mx_close();
    return 0;
}
