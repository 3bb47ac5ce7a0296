/*
 * The dashboard's sampler (src/obs/dashboard_sampler.c): a thread that reads payd's
 * metrics registry (pd_mx) every [dashboard] sample_interval and pushes one sample of
 * the dashboard's series into a history (payd/history.h), which GET /dashboard/data
 * serves (src/edge/dashboard_route.c). docs/dashboard.md describes every series.
 */
#ifndef PAYD_DASHBOARD_H
#define PAYD_DASHBOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/error.h"

/* [dashboard] */
typedef struct {
    int64_t sample_interval_ms; /* time between samples; the coarse ring takes one point per 6 */
} pd_dash_config_t;
struct pd_config;
int pd_dash_config_register(struct pd_config *cfg, pd_dash_config_t *c) PD_WUR;

/* Makes the history and starts the sampler (one sample right away). Needs pd_mx: when
 * metrics are disabled it does nothing and the data route answers 404. PD_ERR_STATE
 * when already started. */
int pd_dash_start(const pd_dash_config_t *c) PD_WUR;
/* Stops the sampler and frees the history (before pd_mx_close). Safe when not started. */
void pd_dash_stop(void);

/* Appends the history as JSON (payd/history.h's pd_history_json; coarse: the 24 h ring).
 * PD_ERR_UNAVAILABLE when the sampler is not running. Any thread. */
int pd_dash_json(bool coarse, pd_buf_t *out) PD_WUR;

/* The page, its script and its style (src/obs/dashboard/, embedded at build time by
 * src/obs/embed.cmake): NUL-terminated, the _len without the NUL. */
extern const unsigned char pd_dash_html[], pd_dash_js[], pd_dash_css[];
extern const size_t pd_dash_html_len, pd_dash_js_len, pd_dash_css_len;

#endif
