/*
 * The store's collected metrics (payd/metrics_payd.h): queue depth, connections and the
 * counters of pd_store_stats, read when /metrics is scraped. Nothing here queries the
 * database: a scrape runs on an event loop (the webhook backlog is counted by the
 * webhook engine, src/events/queue.c).
 */
#include "payd/metrics_payd.h"
#include "payd/store.h"

static void
queue_depth(void *arg, double *out, size_t n)
{
    pd_store_stats_t st;
    pd_store_stats(arg, &st);
    if (n >= 1)
        out[0] = (double)st.queued;
}

static void
connections(void *arg, double *out, size_t n)
{
    pd_store_stats_t st;
    pd_store_stats(arg, &st);
    if (n >= 2) {
        out[0] = (double)st.writers;
        out[1] = (double)st.readers;
    }
}

static void
writes(void *arg, double *out, size_t n)
{
    pd_store_stats_t st;
    pd_store_stats(arg, &st);
    if (n >= 1)
        out[0] = (double)st.writes;
}

static void
queue_full(void *arg, double *out, size_t n)
{
    pd_store_stats_t st;
    pd_store_stats(arg, &st);
    if (n >= 1)
        out[0] = (double)st.queue_full;
}

static void
syncs(void *arg, double *out, size_t n)
{
    pd_store_stats_t st;
    pd_store_stats(arg, &st);
    if (n >= 1)
        out[0] = (double)st.syncs;
}

static void
sync_seconds(void *arg, double *out, size_t n)
{
    pd_store_stats_t st;
    pd_store_stats(arg, &st);
    if (n >= 1)
        out[0] = (double)st.sync_ns / 1e9;
}

static void
read_queue(void *arg, double *out, size_t n)
{
    pd_store_stats_t st;
    pd_store_stats(arg, &st);
    if (n >= 1)
        out[0] = (double)st.reads_queued;
}

static void
reads_busy(void *arg, double *out, size_t n)
{
    pd_store_stats_t st;
    pd_store_stats(arg, &st);
    if (n >= 1)
        out[0] = (double)st.reads_busy;
}

static void
read_queue_full(void *arg, double *out, size_t n)
{
    pd_store_stats_t st;
    pd_store_stats(arg, &st);
    if (n >= 1)
        out[0] = (double)st.read_queue_full;
}

int
pd_store_metrics_attach(pd_store_t *s)
{
    static const struct {
        unsigned fam;
        pd_metric_collect_fn fn;
    } c[] = {
        {PD_MX_STORE_QUEUE_DEPTH, queue_depth}, {PD_MX_DB_CONNECTIONS, connections},
        {PD_MX_STORE_WRITES, writes},           {PD_MX_STORE_QUEUE_FULL, queue_full},
        {PD_MX_STORE_SYNCS, syncs},             {PD_MX_STORE_SYNC_SECONDS, sync_seconds},
        {PD_MX_STORE_READ_QUEUE, read_queue},   {PD_MX_STORE_READS_BUSY, reads_busy},
        {PD_MX_STORE_READ_QUEUE_FULL, read_queue_full},
    };
    if (pd_mx == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        int r = pd_metrics_set_collector(pd_mx, c[i].fam, c[i].fn, s);
        if (r != 0)
            return r;
    }
    return 0;
}
