/*
 * The cache's collected metrics (payd/metrics_payd.h): whether the limits are shared
 * through Redis now, and the fallback's counters of pd_cache_stats, read when /metrics
 * is scraped (no Redis command runs for a scrape).
 */
#include "payd/cache.h"
#include "payd/metrics_payd.h"

static void
shared(void *arg, double *out, size_t n)
{
    pd_cache_stats_t st;
    pd_cache_stats(arg, &st);
    if (n >= 1)
        out[0] = st.redis && st.connected ? 1 : 0;
}

static void
fallbacks(void *arg, double *out, size_t n)
{
    pd_cache_stats_t st;
    pd_cache_stats(arg, &st);
    if (n >= 1)
        out[0] = (double)st.fallbacks;
}

static void
fallback_ops(void *arg, double *out, size_t n)
{
    pd_cache_stats_t st;
    pd_cache_stats(arg, &st);
    if (n >= 1)
        out[0] = (double)st.fallback_ops;
}

int
pd_cache_metrics_attach(pd_cache_t *c)
{
    int r = 0;
    if (pd_mx != NULL && ((r = pd_metrics_set_collector(pd_mx, PD_MX_CACHE_SHARED, shared, c)) != 0 ||
                          (r = pd_metrics_set_collector(pd_mx, PD_MX_CACHE_FALLBACKS, fallbacks, c)) != 0 ||
                          (r = pd_metrics_set_collector(pd_mx, PD_MX_CACHE_FALLBACK_OPS, fallback_ops, c)) != 0))
        return r;
    return 0;
}
