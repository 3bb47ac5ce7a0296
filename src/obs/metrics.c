/*
 * The metrics registry: families, per-thread shards, recording and reading
 * (contract in include/payd/metrics.h).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "payd/metrics.h"

#define CACHE_LINE 64

typedef _Atomic uint64_t slot_t;

typedef struct {
    const pd_metric_def_t *def;
    const char *const *values[PD_METRIC_MAX_LABELS];
    size_t nvalues[PD_METRIC_MAX_LABELS];
    bool have[PD_METRIC_MAX_LABELS];
    _Atomic size_t nseries; /* 0 until every label's list is known */
    size_t width;           /* slots per series: 1, or a histogram's buckets (+Inf included) and its sum */
    atomic_bool used;       /* a block exists: the lists are final */
    pd_metric_collect_fn collect;
    void *collect_arg;
} family_t;

typedef struct shard {
    struct shard *next;      /* every shard, for readers (guarded by the registry's mu) */
    struct shard *next_free; /* left by a thread that ended, for the next new one */
    pd_metrics_t *m;
    _Atomic(slot_t *) blocks[PD_METRIC_MAX_FAMILIES]; /* written by the owning thread only */
} shard_t;

struct pd_metrics {
    family_t fam[PD_METRIC_MAX_FAMILIES];
    size_t n;
    pthread_key_t key;
    pthread_mutex_t mu;
    shard_t *shards, *free;
};

static bool
valid_name(const char *s, bool label)
{
    if (s == NULL || s[0] == '\0' || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              (!label && c == ':')))
            return false;
    }
    return !(label && (strcmp(s, "le") == 0 || strncmp(s, "__", 2) == 0));
}

static bool
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* nseries once every label's list is known (0 before), SIZE_MAX past the maximum */
static size_t
cardinality(const family_t *f)
{
    size_t n = 1;
    for (size_t i = 0; i < f->def->nlabels; i++) {
        if (!f->have[i])
            return 0;
        if (f->nvalues[i] == 0 || n > PD_METRIC_MAX_SERIES / f->nvalues[i])
            return SIZE_MAX;
        n *= f->nvalues[i];
    }
    return n;
}

static void
shard_release(void *p)
{
    shard_t *s = p;
    pd_metrics_t *m = s->m;
    pthread_mutex_lock(&m->mu);
    s->next_free = m->free;
    m->free = s;
    pthread_mutex_unlock(&m->mu);
}

int
pd_metrics_new(pd_metrics_t **out, const pd_metric_def_t *defs, size_t n)
{
    pd_metrics_t *m;
    if (n > PD_METRIC_MAX_FAMILIES)
        return PD_ERR_TOOBIG;
    for (size_t i = 0; i < n; i++) {
        const pd_metric_def_t *d = &defs[i];
        if (!valid_name(d->name, false) || d->help == NULL || d->nlabels > PD_METRIC_MAX_LABELS ||
            (unsigned)d->type > PD_METRIC_HISTOGRAM)
            return PD_ERR_INVALID;
        if ((d->type == PD_METRIC_COUNTER) != ends_with(d->name, "_total"))
            return PD_ERR_INVALID; /* the Prometheus naming rule, so promtool's lint passes */
        if (d->type == PD_METRIC_HISTOGRAM) {
            if (d->bounds == NULL || d->nbounds == 0 || d->nbounds > PD_METRIC_MAX_BUCKETS)
                return PD_ERR_INVALID;
            for (size_t b = 0; b < d->nbounds; b++)
                if (!isfinite(d->bounds[b]) || (b > 0 && d->bounds[b] <= d->bounds[b - 1]))
                    return PD_ERR_INVALID;
        }
        for (size_t l = 0; l < d->nlabels; l++) {
            if (!valid_name(d->labels[l].name, true))
                return PD_ERR_INVALID;
            for (size_t k = 0; k < l; k++)
                if (strcmp(d->labels[k].name, d->labels[l].name) == 0)
                    return PD_ERR_INVALID;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(defs[k].name, d->name) == 0)
                return PD_ERR_EXISTS;
    }
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return PD_ERR_NOMEM;
    if (pthread_key_create(&m->key, shard_release) != 0) {
        free(m);
        return PD_ERR_NOMEM;
    }
    pthread_mutex_init(&m->mu, NULL);
    m->n = n;
    for (size_t i = 0; i < n; i++) {
        family_t *f = &m->fam[i];
        f->def = &defs[i];
        f->width = defs[i].type == PD_METRIC_HISTOGRAM ? defs[i].nbounds + 2 : 1;
        for (size_t l = 0; l < defs[i].nlabels; l++) {
            const char *const *v = defs[i].labels[l].values;
            if (v == NULL)
                continue;
            f->values[l] = v;
            while (v[f->nvalues[l]] != NULL)
                f->nvalues[l]++;
            f->have[l] = true;
        }
        size_t ns = cardinality(f);
        if (ns == SIZE_MAX) {
            pd_metrics_free(m);
            return PD_ERR_TOOBIG;
        }
        atomic_store(&f->nseries, ns);
    }
    *out = m;
    return 0;
}

void
pd_metrics_free(pd_metrics_t *m)
{
    if (m == NULL)
        return;
    pthread_key_delete(m->key);
    for (shard_t *s = m->shards, *next; s != NULL; s = next) {
        next = s->next;
        for (size_t i = 0; i < m->n; i++)
            free(atomic_load(&s->blocks[i]));
        free(s);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

int
pd_metrics_set_values(pd_metrics_t *m, unsigned fam, size_t label, const char *const *values, size_t n)
{
    if (m == NULL || fam >= m->n || label >= m->fam[fam].def->nlabels || values == NULL || n == 0)
        return PD_ERR_INVALID;
    family_t *f = &m->fam[fam];
    if (f->have[label] || atomic_load(&f->used))
        return PD_ERR_STATE;
    f->values[label] = values;
    f->nvalues[label] = n;
    f->have[label] = true;
    size_t ns = cardinality(f);
    if (ns == SIZE_MAX) {
        f->have[label] = false;
        f->values[label] = NULL;
        f->nvalues[label] = 0;
        return PD_ERR_TOOBIG;
    }
    atomic_store(&f->nseries, ns);
    return 0;
}

int
pd_metrics_set_collector(pd_metrics_t *m, unsigned fam, pd_metric_collect_fn fn, void *arg)
{
    if (m == NULL || fam >= m->n || fn == NULL || m->fam[fam].def->type == PD_METRIC_HISTOGRAM)
        return PD_ERR_INVALID;
    m->fam[fam].collect = fn;
    m->fam[fam].collect_arg = arg;
    return 0;
}

/* --- recording --- */

static shard_t *
shard_of_thread(pd_metrics_t *m)
{
    shard_t *s = pthread_getspecific(m->key);
    if (s != NULL)
        return s;
    pthread_mutex_lock(&m->mu);
    if ((s = m->free) != NULL) {
        m->free = s->next_free; /* a shard whose thread ended: its sums carry on */
        s->next_free = NULL;
    } else if ((s = calloc(1, sizeof(*s))) != NULL) {
        s->m = m;
        s->next = m->shards;
        m->shards = s;
    }
    pthread_mutex_unlock(&m->mu);
    if (s != NULL && pthread_setspecific(m->key, s) != 0) {
        shard_release(s);
        s = NULL;
    }
    return s;
}

/* the calling thread's slots of series in fam, or NULL (dropped record) */
static slot_t *
slots(pd_metrics_t *m, unsigned fam, size_t series)
{
    if (m == NULL || fam >= m->n)
        return NULL;
    family_t *f = &m->fam[fam];
    size_t ns = atomic_load_explicit(&f->nseries, memory_order_acquire);
    if (series >= ns || f->collect != NULL)
        return NULL;
    shard_t *s = shard_of_thread(m);
    if (s == NULL)
        return NULL;
    slot_t *b = atomic_load_explicit(&s->blocks[fam], memory_order_relaxed);
    if (b == NULL) {
        size_t bytes = (ns * f->width * sizeof(slot_t) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
        void *p = NULL;
        if (posix_memalign(&p, CACHE_LINE, bytes) != 0)
            return NULL;
        b = p;
        for (size_t i = 0; i < ns * f->width; i++)
            atomic_init(&b[i], 0);
        atomic_store(&f->used, true);
        atomic_store_explicit(&s->blocks[fam], b, memory_order_release);
    }
    return b + series * f->width;
}

/* only the owning thread writes its shard: a relaxed load and store, no RMW */
static inline void
bump(slot_t *p, uint64_t v)
{
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v, memory_order_relaxed);
}

void
pd_metric_add(pd_metrics_t *m, unsigned fam, size_t series, uint64_t v)
{
    slot_t *p = slots(m, fam, series);
    if (p != NULL && m->fam[fam].def->type != PD_METRIC_HISTOGRAM)
        bump(p, v);
}

void
pd_metric_gauge_add(pd_metrics_t *m, unsigned fam, size_t series, int64_t delta)
{
    slot_t *p = slots(m, fam, series);
    if (p != NULL && m->fam[fam].def->type == PD_METRIC_GAUGE)
        bump(p, (uint64_t)delta); /* two's complement: the sum over shards is the signed total */
}

void
pd_metric_observe(pd_metrics_t *m, unsigned fam, size_t series, double v)
{
    if (isnan(v))
        return;
    slot_t *p = slots(m, fam, series);
    if (p == NULL || m->fam[fam].def->type != PD_METRIC_HISTOGRAM)
        return;
    const pd_metric_def_t *d = m->fam[fam].def;
    size_t k = 0;
    while (k < d->nbounds && v > d->bounds[k])
        k++;
    bump(&p[k], 1);
    slot_t *sum = &p[d->nbounds + 1];
    double cur;
    uint64_t bits = atomic_load_explicit(sum, memory_order_relaxed);
    memcpy(&cur, &bits, sizeof(cur));
    cur += v;
    memcpy(&bits, &cur, sizeof(bits));
    atomic_store_explicit(sum, bits, memory_order_relaxed);
}

size_t
pd_metric_series(const pd_metrics_t *m, unsigned fam, const size_t *idx)
{
    if (m == NULL || fam >= m->n)
        return SIZE_MAX;
    const family_t *f = &m->fam[fam];
    size_t s = 0;
    for (size_t l = 0; l < f->def->nlabels; l++) {
        if (!f->have[l] || idx[l] >= f->nvalues[l])
            return SIZE_MAX;
        s = s * f->nvalues[l] + idx[l];
    }
    return s;
}

size_t
pd_metric_value_index(const pd_metrics_t *m, unsigned fam, size_t label, const char *value)
{
    if (m == NULL || fam >= m->n || label >= m->fam[fam].def->nlabels || value == NULL)
        return SIZE_MAX;
    const family_t *f = &m->fam[fam];
    for (size_t i = 0; i < f->nvalues[label]; i++)
        if (strcmp(f->values[label][i], value) == 0)
            return i;
    return SIZE_MAX;
}

/* --- reading --- */

int
pd_metrics_find(const pd_metrics_t *m, const char *name)
{
    for (size_t i = 0; m != NULL && name != NULL && i < m->n; i++)
        if (strcmp(m->fam[i].def->name, name) == 0)
            return (int)i;
    return -1;
}

size_t
pd_metrics_nfamilies(const pd_metrics_t *m)
{
    return m != NULL ? m->n : 0;
}

const pd_metric_def_t *
pd_metrics_def(const pd_metrics_t *m, unsigned fam)
{
    return m != NULL && fam < m->n ? m->fam[fam].def : NULL;
}

size_t
pd_metrics_nseries(const pd_metrics_t *m, unsigned fam)
{
    return m != NULL && fam < m->n ? atomic_load(&((pd_metrics_t *)(uintptr_t)m)->fam[fam].nseries) : 0;
}

const char *
pd_metric_label_of(const pd_metrics_t *m, unsigned fam, size_t series, size_t label)
{
    if (m == NULL || fam >= m->n || label >= m->fam[fam].def->nlabels || series >= pd_metrics_nseries(m, fam))
        return NULL;
    const family_t *f = &m->fam[fam];
    size_t s = series;
    for (size_t l = f->def->nlabels; l-- > 0;) {
        size_t i = s % f->nvalues[l];
        if (l == label)
            return f->values[l][i];
        s /= f->nvalues[l];
    }
    return NULL;
}

/* Sums slot k of every series of fam over the shards into out[series] (uint64,
 * wrapping; gauges are read back as signed). Caller holds m->mu. */
static void
sum_slot(pd_metrics_t *m, unsigned fam, size_t ns, size_t k, uint64_t *out)
{
    const family_t *f = &m->fam[fam];
    memset(out, 0, ns * sizeof(*out));
    for (shard_t *s = m->shards; s != NULL; s = s->next) {
        slot_t *b = atomic_load_explicit(&s->blocks[fam], memory_order_acquire);
        if (b == NULL)
            continue;
        for (size_t i = 0; i < ns; i++)
            out[i] += atomic_load_explicit(&b[i * f->width + k], memory_order_relaxed);
    }
}

/* Current values of every series of a counter or gauge (a histogram: its counts),
 * into a new array of nseries doubles (NULL on no memory or no series). */
double *pd_metrics__values(pd_metrics_t *m, unsigned fam, size_t *ns_out);
double *
pd_metrics__values(pd_metrics_t *m, unsigned fam, size_t *ns_out)
{
    size_t ns = pd_metrics_nseries(m, fam);
    *ns_out = ns;
    if (ns == 0)
        return NULL;
    family_t *f = &m->fam[fam];
    double *v = calloc(ns, sizeof(*v));
    uint64_t *raw = calloc(ns, sizeof(*raw));
    if (v == NULL || raw == NULL) {
        free(v);
        free(raw);
        return NULL;
    }
    if (f->collect != NULL) {
        f->collect(f->collect_arg, v, ns);
    } else if (f->def->type == PD_METRIC_HISTOGRAM) {
        pthread_mutex_lock(&m->mu);
        for (size_t k = 0; k <= f->def->nbounds; k++) {
            sum_slot(m, fam, ns, k, raw);
            for (size_t i = 0; i < ns; i++)
                v[i] += (double)raw[i];
        }
        pthread_mutex_unlock(&m->mu);
    } else {
        pthread_mutex_lock(&m->mu);
        sum_slot(m, fam, ns, 0, raw);
        pthread_mutex_unlock(&m->mu);
        for (size_t i = 0; i < ns; i++)
            v[i] = f->def->type == PD_METRIC_GAUGE ? (double)(int64_t)raw[i] : (double)raw[i];
    }
    free(raw);
    return v;
}

double
pd_metric_read(pd_metrics_t *m, unsigned fam, size_t series)
{
    size_t ns;
    double *v = pd_metrics__values(m, fam, &ns), r = 0;
    if (v != NULL && series < ns)
        r = v[series];
    free(v);
    return r;
}

double
pd_metric_read_sum(pd_metrics_t *m, unsigned fam, size_t label, const char *prefix)
{
    size_t ns;
    double *v = pd_metrics__values(m, fam, &ns), r = 0;
    for (size_t i = 0; v != NULL && i < ns; i++) {
        const char *lv = label == SIZE_MAX || prefix == NULL ? NULL : pd_metric_label_of(m, fam, i, label);
        if (label == SIZE_MAX || prefix == NULL || (lv != NULL && strncmp(lv, prefix, strlen(prefix)) == 0))
            r += v[i];
    }
    free(v);
    return r;
}

/* Reads one histogram series (SIZE_MAX: all merged) from the shards: the bucket counts
 * first, then the cumulative counts and the count from that same reading. */
int pd_metrics__hist(pd_metrics_t *m, unsigned fam, size_t series, pd_metric_hist_t *out);
int
pd_metrics__hist(pd_metrics_t *m, unsigned fam, size_t series, pd_metric_hist_t *out)
{
    memset(out, 0, sizeof(*out));
    if (m == NULL || fam >= m->n || m->fam[fam].def->type != PD_METRIC_HISTOGRAM)
        return PD_ERR_INVALID;
    const family_t *f = &m->fam[fam];
    const pd_metric_def_t *d = f->def;
    size_t ns = pd_metrics_nseries(m, fam);
    if (series != SIZE_MAX && series >= ns)
        return PD_ERR_RANGE;
    uint64_t buckets[PD_METRIC_MAX_BUCKETS + 1] = {0};
    out->nbounds = d->nbounds;
    memcpy(out->bounds, d->bounds, d->nbounds * sizeof(double));
    pthread_mutex_lock(&m->mu);
    for (shard_t *s = m->shards; s != NULL; s = s->next) {
        slot_t *b = atomic_load_explicit(&s->blocks[fam], memory_order_acquire);
        if (b == NULL)
            continue;
        for (size_t i = series == SIZE_MAX ? 0 : series; i < (series == SIZE_MAX ? ns : series + 1); i++) {
            slot_t *p = b + i * f->width;
            for (size_t k = 0; k <= d->nbounds; k++)
                buckets[k] += atomic_load_explicit(&p[k], memory_order_relaxed);
            uint64_t bits = atomic_load_explicit(&p[d->nbounds + 1], memory_order_relaxed);
            double x;
            memcpy(&x, &bits, sizeof(x));
            out->sum += x;
        }
    }
    pthread_mutex_unlock(&m->mu);
    uint64_t c = 0;
    for (size_t k = 0; k <= d->nbounds; k++) {
        c += buckets[k];
        out->cumulative[k] = c;
    }
    out->count = c;
    return 0;
}

int
pd_metric_read_hist(pd_metrics_t *m, unsigned fam, size_t series, pd_metric_hist_t *out)
{
    return pd_metrics__hist(m, fam, series, out);
}

double
pd_metric_quantile(const pd_metric_hist_t *h, double q)
{
    if (h->count == 0 || isnan(q))
        return NAN;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    double rank = q * (double)h->count;
    size_t k = 0;
    while (k < h->nbounds && (double)h->cumulative[k] < rank)
        k++;
    if (k == h->nbounds) /* in +Inf: the highest finite bound, as Prometheus answers */
        return h->bounds[h->nbounds - 1];
    double lo = k == 0 ? 0 : h->bounds[k - 1], hi = h->bounds[k];
    if (k == 0 && hi <= 0)
        return hi;
    uint64_t below = k == 0 ? 0 : h->cumulative[k - 1];
    uint64_t in = h->cumulative[k] - below;
    if (in == 0)
        return hi;
    return lo + (hi - lo) * ((rank - (double)below) / (double)in);
}
