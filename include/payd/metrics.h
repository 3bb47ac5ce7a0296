/*
 * The metrics registry (src/obs/metrics*.c): counters, gauges and histograms with
 * labels from closed sets, recorded lock-free into per-thread shards and summed when
 * read (a scrape, the alarm evaluator, a dashboard history).
 *
 * Model. A registry is made from a table of families (pd_metric_def_t). Each label of a
 * family takes its value from a closed list, so a series is addressed by an index:
 * the mixed-radix number of its label values' indexes (pd_metric_series), and the
 * family's cardinality is the product of the lists' sizes, fixed once the family's
 * label values are known. A label's values may come from the table or be given at run
 * time (pd_metrics_set_values: the route templates, the supported currencies) before
 * the family records anything.
 *
 * Recording. Each thread that records gets its own shard (a pthread key; a shard left
 * by a thread that ended is reused by the next new one, so its sums carry on), and in
 * it one cache-line aligned block of relaxed atomics per family, allocated on the
 * thread's first record of that family. Only the owning thread writes a shard, so a
 * record is a relaxed load and store, never a lock or a read-modify-write; readers
 * sum every shard. A record on a NULL registry, an unknown family or an out-of-range
 * series is dropped (callers never check).
 *
 * Histograms keep one count per bucket (not cumulative) and the sum. A reader
 * derives the cumulative buckets and the count from the same reading of the bucket
 * counts, so count == the +Inf bucket and the buckets never decrease, whatever
 * records run meanwhile; the sum may lag the counts by the records in flight.
 *
 * Collected families have no shards: their values are read by a callback at read
 * time (gauges such as queue depths, or counters a component already keeps).
 *
 * Thread safety: pd_metrics_new, _set_values, _set_collector run before the
 * recording threads start; records from any thread; reads and rendering from any
 * thread (they take the registry's mutex, which no record takes).
 */
#ifndef PAYD_METRICS_H
#define PAYD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/error.h"

#define PD_METRIC_MAX_LABELS 3
#define PD_METRIC_MAX_BUCKETS 24
#define PD_METRIC_MAX_FAMILIES 96
#define PD_METRIC_MAX_SERIES 65536 /* per family: a guard against a label list that explodes */

typedef enum { PD_METRIC_COUNTER, PD_METRIC_GAUGE, PD_METRIC_HISTOGRAM } pd_metric_type_t;

enum {
    /* render only the series that have data (wide families such as {method,route,code});
     * others render every series, zeros included, so rate() starts from 0 */
    PD_METRIC_SPARSE = 1 << 0,
};

typedef struct {
    const char *name;
    const char *const *values; /* NULL-terminated closed list; NULL: given by pd_metrics_set_values */
} pd_metric_label_t;

typedef struct {
    const char *name; /* Prometheus name: [a-zA-Z_:][a-zA-Z0-9_:]* ; counters end in _total */
    const char *help;
    pd_metric_type_t type;
    unsigned flags; /* PD_METRIC_* */
    size_t nlabels;
    pd_metric_label_t labels[PD_METRIC_MAX_LABELS];
    const double *bounds; /* histograms: upper bounds, strictly increasing; +Inf is implied */
    size_t nbounds;
} pd_metric_def_t;

typedef struct pd_metrics pd_metrics_t;

/* Makes a registry from n family definitions (the table must outlive it; names and
 * help are not copied). PD_ERR_INVALID for a malformed table (bad name, counter not
 * ending in _total, unsorted bounds, too many labels or buckets). */
int pd_metrics_new(pd_metrics_t **out, const pd_metric_def_t *defs, size_t n) PD_WUR;
void pd_metrics_free(pd_metrics_t *m);

/* Sets the closed list of a label whose definition has values NULL (the array and
 * its strings must outlive the registry). Before the family records anything; once
 * only. PD_ERR_STATE after, PD_ERR_TOOBIG past PD_METRIC_MAX_SERIES. */
int pd_metrics_set_values(pd_metrics_t *m, unsigned fam, size_t label, const char *const *values, size_t n) PD_WUR;

/* A collected family: fn fills out[0..nseries) with the current values when the
 * family is read (on the reader's thread; it must be thread-safe and quick). */
typedef void (*pd_metric_collect_fn)(void *arg, double *out, size_t nseries);
int pd_metrics_set_collector(pd_metrics_t *m, unsigned fam, pd_metric_collect_fn fn, void *arg) PD_WUR;

/* --- recording (any thread, lock-free) --- */
/* Counter: adds v. Gauge: adds v (a delta; pd_metric_gauge_add for negative ones). */
void pd_metric_add(pd_metrics_t *m, unsigned fam, size_t series, uint64_t v);
void pd_metric_gauge_add(pd_metrics_t *m, unsigned fam, size_t series, int64_t delta);
/* Histogram: one observation of v (seconds, writes, ... as the family says). */
void pd_metric_observe(pd_metrics_t *m, unsigned fam, size_t series, double v);

/* The series index of label value indexes idx[0..nlabels) (each below its list's
 * size), or SIZE_MAX when one is out of range. */
size_t pd_metric_series(const pd_metrics_t *m, unsigned fam, const size_t *idx);
/* The index of value in a label's list, or SIZE_MAX. */
size_t pd_metric_value_index(const pd_metrics_t *m, unsigned fam, size_t label, const char *value);

/* --- reading (any thread) --- */
/* The family with this name, or -1. */
int pd_metrics_find(const pd_metrics_t *m, const char *name);
size_t pd_metrics_nfamilies(const pd_metrics_t *m);
const pd_metric_def_t *pd_metrics_def(const pd_metrics_t *m, unsigned fam);
size_t pd_metrics_nseries(const pd_metrics_t *m, unsigned fam);
/* A label's value for a series (NULL when out of range). */
const char *pd_metric_label_of(const pd_metrics_t *m, unsigned fam, size_t series, size_t label);

/* Counter or gauge: the current value of a series (for a histogram: its count). */
double pd_metric_read(pd_metrics_t *m, unsigned fam, size_t series);
/* Sum over the series whose label `label` starts with prefix (label SIZE_MAX or
 * prefix NULL: every series): e.g. the 5xx responses ("code", "5"). */
double pd_metric_read_sum(pd_metrics_t *m, unsigned fam, size_t label, const char *prefix);

typedef struct {
    size_t nbounds;
    double bounds[PD_METRIC_MAX_BUCKETS];
    uint64_t cumulative[PD_METRIC_MAX_BUCKETS + 1]; /* the last one is +Inf */
    uint64_t count;                                 /* == cumulative[nbounds] */
    double sum;
} pd_metric_hist_t;
/* A histogram series (series SIZE_MAX: every series merged). PD_ERR_INVALID when the
 * family is not a histogram. */
int pd_metric_read_hist(pd_metrics_t *m, unsigned fam, size_t series, pd_metric_hist_t *out) PD_WUR;
/* The q-quantile (0 <= q <= 1) estimated as Prometheus's histogram_quantile does
 * (linear within the bucket; the highest finite bound when it falls in +Inf); NaN
 * when the histogram is empty. */
double pd_metric_quantile(const pd_metric_hist_t *h, double q);

/* --- Prometheus text format 0.0.4 --- */
#define PD_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* Appends every family of m (HELP, TYPE, samples) to out. PD_ERR_TOOBIG when out's
 * maximum is reached. */
int pd_metrics_render(pd_metrics_t *m, pd_buf_t *out) PD_WUR;
/* Appends a label value escaped as the format requires (\\, \", \n). */
int pd_metrics_escape_value(pd_buf_t *out, const char *v) PD_WUR;

/* --- the standard process_* metrics, read from /proc/self --- */
/* Definitions to include in a registry's table (4 families, in this order):
 * process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds,
 * process_start_time_seconds. */
#define PD_METRICS_PROCESS_DEFS                                                                                   \
    {.name = "process_cpu_seconds_total", .help = "Total user and system CPU time spent in seconds.",               \
     .type = PD_METRIC_COUNTER},                                                                                   \
        {.name = "process_resident_memory_bytes", .help = "Resident memory size in bytes.", .type = PD_METRIC_GAUGE}, \
        {.name = "process_open_fds", .help = "Number of open file descriptors.", .type = PD_METRIC_GAUGE},           \
    {                                                                                                              \
        .name = "process_start_time_seconds", .help = "Start time of the process since unix epoch in seconds.",    \
        .type = PD_METRIC_GAUGE                                                                                    \
    }
extern const pd_metric_def_t pd_metrics_process_defs[4];
/* Installs their collectors; first is the index of process_cpu_seconds_total. */
int pd_metrics_process_attach(pd_metrics_t *m, unsigned first) PD_WUR;

#endif
