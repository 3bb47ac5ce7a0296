/*
 * An in-memory history of a fixed set of numeric series (src/obs/history.c): what the
 * dashboard draws (docs/dashboard.md). Two rings of fixed size, allocated once:
 *
 *   fine:   one point per pushed sample (payd pushes every [dashboard] sample_interval,
 *           10 s by default: 360 points = the last hour);
 *   coarse: one point per `coarse_every` samples (6: one a minute at 10 s; 1440 points
 *           = the last 24 h).
 *
 * A series has a kind that says what a pushed value is and how points are made:
 *   PD_HIST_GAUGE    the value as read; a coarse point is the time-weighted mean;
 *   PD_HIST_COUNTER  a cumulative counter; a point is its per-second rate since the
 *                    previous sample (NaN for the first sample). A value below the
 *                    previous one is a reset (the counter restarted from 0): the delta is
 *                    the new value, as Prometheus's rate() does. A coarse point is the
 *                    rate over all of its samples' time;
 *   PD_HIST_PEAK     the value as read (a latency quantile over the last interval); a
 *                    coarse point is the highest of its samples (a quantile of quantiles
 *                    would be meaningless; the peak is an upper bound that hides nothing).
 * NaN means "no data" (no requests in the interval: no latency) and is skipped by the
 * coarse aggregation; a coarse point whose samples are all NaN is NaN.
 *
 * Memory: (360 + 1440) x (1 + nseries) doubles, fixed at pd_history_new.
 * Thread safety: every function takes the history's mutex; push from one thread (the
 * sampler), read from any.
 */
#ifndef PAYD_HISTORY_H
#define PAYD_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/error.h"
#include "payd/metrics.h"

#define PD_HISTORY_FINE_POINTS 360
#define PD_HISTORY_COARSE_POINTS 1440
#define PD_HISTORY_COARSE_EVERY 6
#define PD_HISTORY_MAX_SERIES 32

typedef enum { PD_HIST_GAUGE, PD_HIST_COUNTER, PD_HIST_PEAK } pd_history_kind_t;

typedef struct {
    const char *name; /* JSON key: [a-z0-9_]+ (not copied: must outlive the history) */
    pd_history_kind_t kind;
} pd_history_series_t;

typedef struct pd_history pd_history_t;

/* Makes an empty history of n series (n <= PD_HISTORY_MAX_SERIES) with rings of
 * fine_cap and coarse_cap points, a coarse point every coarse_every samples (each >= 1).
 * PD_ERR_INVALID for a bad argument, PD_ERR_NOMEM. */
int pd_history_new(pd_history_t **out, const pd_history_series_t *defs, size_t n, size_t fine_cap, size_t coarse_cap,
                   size_t coarse_every) PD_WUR;
void pd_history_free(pd_history_t *h);

/* One sample: in[0..n) in the series' order, taken at wall_s (Unix time, shown) and
 * mono_s (a monotonic clock, for the rates; a sample whose mono_s is not after the
 * previous one's is dropped: PD_ERR_INVALID). */
int pd_history_push(pd_history_t *h, double wall_s, double mono_s, const double *in) PD_WUR;

/* Points held in a ring (coarse false: fine). */
size_t pd_history_count(pd_history_t *h, bool coarse);
/* Point i (0: the oldest held) into *wall_s and out[0..n). PD_ERR_RANGE past the count. */
int pd_history_get(pd_history_t *h, bool coarse, size_t i, double *wall_s, double *out) PD_WUR;

/* Appends a ring as JSON:
 *   {"range":"1h"|"24h","step_s":S,"points":N,"t":[unix seconds...],
 *    "series":{"name":[v|null...],...}}
 * oldest first; NaN and infinities are null. step_s is the nominal time between points
 * (sample_s for the fine ring, sample_s * coarse_every for the coarse one). */
int pd_history_json(pd_history_t *h, bool coarse, double sample_s, pd_buf_t *out) PD_WUR;

/* The observations between two readings of one histogram: out = cur - prev, bucket by
 * bucket, count and sum; when any bucket of cur is below prev's (a reset), out = cur.
 * prev and cur must have the same bounds (PD_ERR_INVALID otherwise). */
int pd_history_hist_delta(const pd_metric_hist_t *prev, const pd_metric_hist_t *cur, pd_metric_hist_t *out) PD_WUR;

#endif
