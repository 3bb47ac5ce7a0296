/*
 * The dashboard's sampler (payd/dashboard.h): one thread that reads pd_mx every
 * [dashboard] sample_interval into the history the dashboard draws.
 *
 * What a sample holds (docs/dashboard.md names the chart of each):
 *   - counters as read (the history turns them into per-second rates);
 *   - gauges as read;
 *   - latency quantiles of the observations since the previous sample: the sampler
 *     keeps the last reading of each histogram and takes the quantile of the delta,
 *     so a p99 is the p99 of the last interval, not of the process's whole life.
 * "API" is the routes under /v1 (the payments API): the admin listener's own
 * requests (the dashboard's polling, scrapes) are left out.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "payd/config.h"
#include "payd/dashboard.h"
#include "payd/history.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"

/* series indexes into defs (the JSON keys the page reads) */
enum {
    S_CPU,
    S_MEMORY,
    S_CONNECTIONS,
    S_HTTP_REQUESTS,
    S_HTTP_SECONDS,
    S_HTTP_P50,
    S_HTTP_P99,
    S_DB_COMMIT_P99,
    S_DB_CONNECTIONS,
    S_STREAM,
    S_PAY_FIRST, /* one per payd_payments_total outcome, in PD_MX_PAY_* order */
    S_WAF_BLOCKS = S_PAY_FIRST + 5,
    S_N
};

static const pd_history_series_t defs[S_N] = {
    [S_CPU] = {"cpu_cores", PD_HIST_COUNTER},
    [S_MEMORY] = {"memory_bytes", PD_HIST_GAUGE},
    [S_CONNECTIONS] = {"connections", PD_HIST_GAUGE},
    [S_HTTP_REQUESTS] = {"api_requests_per_s", PD_HIST_COUNTER},
    [S_HTTP_SECONDS] = {"api_seconds_per_s", PD_HIST_COUNTER},
    [S_HTTP_P50] = {"api_latency_p50_s", PD_HIST_PEAK},
    [S_HTTP_P99] = {"api_latency_p99_s", PD_HIST_PEAK},
    [S_DB_COMMIT_P99] = {"db_commit_p99_s", PD_HIST_PEAK},
    [S_DB_CONNECTIONS] = {"db_connections", PD_HIST_GAUGE},
    [S_STREAM] = {"stream_published_per_s", PD_HIST_COUNTER},
    [S_PAY_FIRST + PD_MX_PAY_SUCCEEDED] = {"payments_succeeded_per_s", PD_HIST_COUNTER},
    [S_PAY_FIRST + PD_MX_PAY_REQUIRES_CAPTURE] = {"payments_requires_capture_per_s", PD_HIST_COUNTER},
    [S_PAY_FIRST + PD_MX_PAY_FAILED] = {"payments_failed_per_s", PD_HIST_COUNTER},
    [S_PAY_FIRST + PD_MX_PAY_UNKNOWN] = {"payments_unknown_per_s", PD_HIST_COUNTER},
    [S_PAY_FIRST + PD_MX_PAY_ERROR] = {"payments_error_per_s", PD_HIST_COUNTER},
    [S_WAF_BLOCKS] = {"waf_blocks_per_s", PD_HIST_COUNTER},
};

static const pd_config_key_t config_keys[] = {
    {"sample_interval", PD_CT_MS, offsetof(pd_dash_config_t, sample_interval_ms), "10s", 1000, 600000,
     .help = "time between two samples of the dashboard's history (1s to 10m); the hour ring holds 360 samples, "
             "the day ring one point per 6 samples (docs/dashboard.md)"},
};

int
pd_dash_config_register(struct pd_config *cfg, pd_dash_config_t *c)
{
    return pd_config_add(cfg, "dashboard", config_keys, sizeof(config_keys) / sizeof(config_keys[0]), c);
}

/* the sampler's state: one instance, started and stopped by payd's main thread */
static struct {
    pthread_mutex_t mu; /* guards stop and running, with cv */
    pthread_cond_t cv;
    pthread_t tid;
    bool running, stop;
    int64_t interval_ms;
    pd_history_t *hist;
    /* the previous histogram readings (sampler thread only) */
    bool have_prev;
    pd_metric_hist_t http_prev, commit_prev;
} st = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* the API's request-duration histogram: every /v1 route's series merged */
static int
read_api_hist(pd_metrics_t *m, pd_metric_hist_t *out)
{
    size_t n = pd_metrics_nseries(m, PD_MX_HTTP_DURATION);
    bool first = true;
    memset(out, 0, sizeof(*out));
    for (size_t s = 0; s < n; s++) {
        const char *route = pd_metric_label_of(m, PD_MX_HTTP_DURATION, s, 1);
        if (route == NULL || strncmp(route, "/v1", 3) != 0)
            continue;
        pd_metric_hist_t h;
        int r = pd_metric_read_hist(m, PD_MX_HTTP_DURATION, s, &h);
        if (r != 0)
            return r;
        if (first) {
            *out = h;
            first = false;
            continue;
        }
        for (size_t i = 0; i <= h.nbounds; i++)
            out->cumulative[i] += h.cumulative[i];
        out->count += h.count;
        out->sum += h.sum;
    }
    if (first) { /* no /v1 route (the route labels are not set yet): the bounds, no counts */
        int r = pd_metric_read_hist(m, PD_MX_HTTP_DURATION, SIZE_MAX, out);
        if (r != 0)
            return r;
        memset(out->cumulative, 0, sizeof(out->cumulative));
        out->count = 0;
        out->sum = 0;
    }
    return 0;
}

/* the quantile of what was observed since prev (NaN when nothing was) */
static double
interval_quantile(const pd_metric_hist_t *prev, const pd_metric_hist_t *cur, double q)
{
    pd_metric_hist_t d;
    if (pd_history_hist_delta(prev, cur, &d) != 0)
        return NAN;
    return pd_metric_quantile(&d, q);
}

static void
sample(void)
{
    pd_metrics_t *m = pd_mx;
    double in[S_N];
    pd_metric_hist_t http, commit;
    struct timespec wall, mono;
    for (size_t i = 0; i < S_N; i++)
        in[i] = NAN;
    in[S_CPU] = pd_metric_read(m, PD_MX_PROCESS, 0);
    in[S_MEMORY] = pd_metric_read(m, PD_MX_PROCESS + 1, 0);
    in[S_CONNECTIONS] = pd_metric_read(m, PD_MX_HTTP_CONNECTIONS, PD_MX_LISTENER_API);
    in[S_HTTP_REQUESTS] = pd_metric_read_sum(m, PD_MX_HTTP_REQUESTS, 1, "/v1");
    in[S_DB_CONNECTIONS] = pd_metric_read_sum(m, PD_MX_DB_CONNECTIONS, SIZE_MAX, NULL);
    in[S_STREAM] = pd_metric_read(m, PD_MX_STREAM_PUBLISHED, 0);
    for (size_t o = 0; o < 5; o++)
        in[S_PAY_FIRST + o] = pd_metric_read(m, PD_MX_PAYMENTS, o);
    in[S_WAF_BLOCKS] = pd_metric_read_sum(m, PD_MX_WAF_DECISIONS, 0, "block");
    bool hists = read_api_hist(m, &http) == 0 && pd_metric_read_hist(m, PD_MX_STORE_COMMIT, 0, &commit) == 0;
    if (hists) {
        in[S_HTTP_SECONDS] = http.sum;
        if (st.have_prev) {
            in[S_HTTP_P50] = interval_quantile(&st.http_prev, &http, 0.5);
            in[S_HTTP_P99] = interval_quantile(&st.http_prev, &http, 0.99);
            in[S_DB_COMMIT_P99] = interval_quantile(&st.commit_prev, &commit, 0.99);
        }
        st.http_prev = http;
        st.commit_prev = commit;
    }
    st.have_prev = hists;
    clock_gettime(CLOCK_REALTIME, &wall);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    int r = pd_history_push(st.hist, (double)wall.tv_sec + (double)wall.tv_nsec / 1e9,
                            (double)mono.tv_sec + (double)mono.tv_nsec / 1e9, in);
    if (r != 0)
        pd_log_warn("dashboard: sample dropped", PD_LERR(r));
}

static void *
sampler_main(void *arg)
{
    (void)arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&st.mu);
    while (!st.stop) {
        pthread_mutex_unlock(&st.mu);
        sample();
        pthread_mutex_lock(&st.mu);
        /* a fixed cadence: the next deadline from the previous one, not from now */
        next.tv_sec += st.interval_ms / 1000;
        next.tv_nsec += (st.interval_ms % 1000) * 1000000L;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        while (!st.stop && pthread_cond_timedwait(&st.cv, &st.mu, &next) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&st.mu);
    return NULL;
}

int
pd_dash_start(const pd_dash_config_t *c)
{
    int r = PD_ERR_STATE;
    pthread_condattr_t ca;
    if (pd_mx == NULL)
        return 0;
    pthread_mutex_lock(&st.mu);
    if (st.running)
        goto out;
    if ((r = pd_history_new(&st.hist, defs, S_N, PD_HISTORY_FINE_POINTS, PD_HISTORY_COARSE_POINTS,
                            PD_HISTORY_COARSE_EVERY)) != 0)
        goto out;
    st.interval_ms = c->sample_interval_ms;
    st.stop = false;
    st.have_prev = false;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st.cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&st.tid, NULL, sampler_main, NULL) != 0) {
        pthread_cond_destroy(&st.cv);
        pd_history_free(st.hist);
        st.hist = NULL;
        r = PD_ERR_INTERNAL;
        goto out;
    }
    st.running = true;
    r = 0;
out:
    pthread_mutex_unlock(&st.mu);
    return r;
}

void
pd_dash_stop(void)
{
    pthread_mutex_lock(&st.mu);
    if (!st.running) {
        pthread_mutex_unlock(&st.mu);
        return;
    }
    st.stop = true;
    pthread_cond_signal(&st.cv);
    pthread_mutex_unlock(&st.mu);
    pthread_join(st.tid, NULL);
    pthread_mutex_lock(&st.mu);
    st.running = false;
    pthread_cond_destroy(&st.cv);
    pd_history_t *h = st.hist;
    st.hist = NULL;
    pthread_mutex_unlock(&st.mu);
    pd_history_free(h);
}

int
pd_dash_json(bool coarse, pd_buf_t *out)
{
    int r = PD_ERR_UNAVAILABLE;
    /* held while rendering: pd_dash_stop cannot free the history under a reader */
    pthread_mutex_lock(&st.mu);
    if (st.running && st.hist != NULL)
        r = pd_history_json(st.hist, coarse, (double)st.interval_ms / 1000.0, out);
    pthread_mutex_unlock(&st.mu);
    return r;
}
