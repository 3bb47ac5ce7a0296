/*
 * The dashboard's history rings (payd/history.h): points made from pushed samples,
 * a fine ring of every sample and a coarse ring of every coarse_every samples.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "payd/history.h"

typedef struct {
    double *t;    /* [cap] wall time of each point */
    double *v;    /* [cap * n] values, point-major */
    size_t cap;
    size_t head;  /* next slot to write */
    size_t count; /* points held (<= cap) */
} ring_t;

struct pd_history {
    pthread_mutex_t mu;
    const pd_history_series_t *defs;
    size_t n;
    ring_t fine, coarse;
    size_t coarse_every;
    /* the previous sample (counters' deltas) */
    bool have_prev;
    double prev_mono;
    double prev_in[PD_HISTORY_MAX_SERIES];
    /* the coarse point being built */
    size_t acc_samples;
    double acc_num[PD_HISTORY_MAX_SERIES]; /* gauge: sum v*dt; counter: sum of deltas; peak: max */
    double acc_den[PD_HISTORY_MAX_SERIES]; /* gauge and counter: sum of dt (of the samples with data) */
};

static int
ring_init(ring_t *r, size_t cap, size_t n)
{
    r->cap = cap;
    r->t = calloc(cap, sizeof(double));
    r->v = calloc(cap * n, sizeof(double));
    return r->t != NULL && r->v != NULL ? 0 : PD_ERR_NOMEM;
}

static void
ring_put(ring_t *r, size_t n, double t, const double *v)
{
    r->t[r->head] = t;
    memcpy(&r->v[r->head * n], v, n * sizeof(double));
    r->head = (r->head + 1) % r->cap;
    if (r->count < r->cap)
        r->count++;
}

static bool
name_ok(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

int
pd_history_new(pd_history_t **out, const pd_history_series_t *defs, size_t n, size_t fine_cap, size_t coarse_cap,
               size_t coarse_every)
{
    *out = NULL;
    if (defs == NULL || n == 0 || n > PD_HISTORY_MAX_SERIES || fine_cap == 0 || coarse_cap == 0 || coarse_every == 0 ||
        fine_cap > SIZE_MAX / PD_HISTORY_MAX_SERIES || coarse_cap > SIZE_MAX / PD_HISTORY_MAX_SERIES)
        return PD_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        if (!name_ok(defs[i].name) || defs[i].kind > PD_HIST_PEAK)
            return PD_ERR_INVALID;
    pd_history_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return PD_ERR_NOMEM;
    h->defs = defs;
    h->n = n;
    h->coarse_every = coarse_every;
    if (ring_init(&h->fine, fine_cap, n) != 0 || ring_init(&h->coarse, coarse_cap, n) != 0) {
        free(h->fine.t);
        free(h->fine.v);
        free(h->coarse.t);
        free(h->coarse.v);
        free(h);
        return PD_ERR_NOMEM;
    }
    pthread_mutex_init(&h->mu, NULL);
    *out = h;
    return 0;
}

void
pd_history_free(pd_history_t *h)
{
    if (h == NULL)
        return;
    pthread_mutex_destroy(&h->mu);
    free(h->fine.t);
    free(h->fine.v);
    free(h->coarse.t);
    free(h->coarse.v);
    free(h);
}

static void
acc_reset(pd_history_t *h)
{
    h->acc_samples = 0;
    for (size_t i = 0; i < h->n; i++) {
        h->acc_num[i] = h->defs[i].kind == PD_HIST_PEAK ? NAN : 0;
        h->acc_den[i] = 0;
    }
}

int
pd_history_push(pd_history_t *h, double wall_s, double mono_s, const double *in)
{
    double pt[PD_HISTORY_MAX_SERIES];
    int r = PD_ERR_INVALID;
    pthread_mutex_lock(&h->mu);
    if (h->have_prev && !(mono_s > h->prev_mono))
        goto out;
    double dt = h->have_prev ? mono_s - h->prev_mono : 0;
    if (h->acc_samples == 0)
        acc_reset(h);
    for (size_t i = 0; i < h->n; i++) {
        double v = in[i];
        switch (h->defs[i].kind) {
        case PD_HIST_COUNTER: {
            if (!h->have_prev || !isfinite(v) || !isfinite(h->prev_in[i])) {
                pt[i] = NAN;
                break;
            }
            double delta = v >= h->prev_in[i] ? v - h->prev_in[i] : v; /* below: a reset from 0 */
            pt[i] = delta / dt;
            h->acc_num[i] += delta;
            h->acc_den[i] += dt;
            break;
        }
        case PD_HIST_GAUGE:
            pt[i] = v;
            if (isfinite(v)) {
                /* the first sample has no interval yet: it weighs as much as the sampler's step will */
                double w = dt > 0 ? dt : 1;
                h->acc_num[i] += v * w;
                h->acc_den[i] += w;
            }
            break;
        case PD_HIST_PEAK:
            pt[i] = v;
            if (isfinite(v) && (isnan(h->acc_num[i]) || v > h->acc_num[i]))
                h->acc_num[i] = v;
            break;
        }
        h->prev_in[i] = v;
    }
    h->prev_mono = mono_s;
    h->have_prev = true;
    ring_put(&h->fine, h->n, wall_s, pt);
    if (++h->acc_samples == h->coarse_every) {
        for (size_t i = 0; i < h->n; i++)
            pt[i] = h->defs[i].kind == PD_HIST_PEAK ? h->acc_num[i]
                    : h->acc_den[i] > 0             ? h->acc_num[i] / h->acc_den[i]
                                                    : NAN;
        ring_put(&h->coarse, h->n, wall_s, pt);
        h->acc_samples = 0;
    }
    r = 0;
out:
    pthread_mutex_unlock(&h->mu);
    return r;
}

size_t
pd_history_count(pd_history_t *h, bool coarse)
{
    pthread_mutex_lock(&h->mu);
    size_t n = coarse ? h->coarse.count : h->fine.count;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* the slot of point i (0: oldest) */
static size_t
slot(const ring_t *r, size_t i)
{
    return (r->head + r->cap - r->count + i) % r->cap;
}

int
pd_history_get(pd_history_t *h, bool coarse, size_t i, double *wall_s, double *out)
{
    int r = PD_ERR_RANGE;
    pthread_mutex_lock(&h->mu);
    const ring_t *rg = coarse ? &h->coarse : &h->fine;
    if (i < rg->count) {
        size_t s = slot(rg, i);
        *wall_s = rg->t[s];
        memcpy(out, &rg->v[s * h->n], h->n * sizeof(double));
        r = 0;
    }
    pthread_mutex_unlock(&h->mu);
    return r;
}

static int
put_num(pd_buf_t *b, double v)
{
    if (!isfinite(v))
        return pd_buf_put_cstr(b, "null");
    return pd_buf_printf(b, "%.6g", v);
}

int
pd_history_json(pd_history_t *h, bool coarse, double sample_s, pd_buf_t *b)
{
    int r;
    pthread_mutex_lock(&h->mu);
    const ring_t *rg = coarse ? &h->coarse : &h->fine;
    double step = coarse ? sample_s * (double)h->coarse_every : sample_s;
    if ((r = pd_buf_printf(b, "{\"range\":\"%s\",\"step_s\":%.6g,\"points\":%zu,\"t\":[", coarse ? "24h" : "1h", step,
                           rg->count)) != 0)
        goto out;
    for (size_t i = 0; i < rg->count; i++)
        if ((i > 0 && (r = pd_buf_put_byte(b, ',')) != 0) || (r = pd_buf_printf(b, "%.3f", rg->t[slot(rg, i)])) != 0)
            goto out;
    if ((r = pd_buf_put_cstr(b, "],\"series\":{")) != 0)
        goto out;
    for (size_t k = 0; k < h->n; k++) {
        if ((r = pd_buf_printf(b, "%s\"%s\":[", k > 0 ? "," : "", h->defs[k].name)) != 0)
            goto out;
        for (size_t i = 0; i < rg->count; i++)
            if ((i > 0 && (r = pd_buf_put_byte(b, ',')) != 0) || (r = put_num(b, rg->v[slot(rg, i) * h->n + k])) != 0)
                goto out;
        if ((r = pd_buf_put_byte(b, ']')) != 0)
            goto out;
    }
    r = pd_buf_put_cstr(b, "}}");
out:
    pthread_mutex_unlock(&h->mu);
    return r;
}

int
pd_history_hist_delta(const pd_metric_hist_t *prev, const pd_metric_hist_t *cur, pd_metric_hist_t *out)
{
    if (prev->nbounds != cur->nbounds || cur->nbounds > PD_METRIC_MAX_BUCKETS)
        return PD_ERR_INVALID;
    for (size_t i = 0; i < cur->nbounds; i++)
        if (prev->bounds[i] != cur->bounds[i])
            return PD_ERR_INVALID;
    /* a reset when any bucket's own count went down (the cumulative counts could still grow) */
    bool reset = cur->count < prev->count;
    for (size_t i = 0; i <= cur->nbounds && !reset; i++) {
        uint64_t c = cur->cumulative[i] - (i > 0 ? cur->cumulative[i - 1] : 0);
        uint64_t p = prev->cumulative[i] - (i > 0 ? prev->cumulative[i - 1] : 0);
        reset = c < p;
    }
    *out = *cur;
    if (reset)
        return 0;
    for (size_t i = 0; i <= cur->nbounds; i++)
        out->cumulative[i] = cur->cumulative[i] - prev->cumulative[i];
    out->count = cur->count - prev->count;
    out->sum = cur->sum - prev->sum;
    return 0;
}
