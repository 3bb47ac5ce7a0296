/*
 * The Prometheus text exposition format 0.0.4 for a registry (include/payd/metrics.h):
 *   # HELP name text            (text: \ and newline escaped)
 *   # TYPE name counter|gauge|histogram
 *   name{label="value",...} 12  (values: \, " and newline escaped)
 * histograms as name_bucket{...,le="0.005"} (cumulative, ascending, +Inf last),
 * name_sum and name_count, with name_count equal to the +Inf bucket.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payd/metrics.h"

double *pd_metrics__values(pd_metrics_t *m, unsigned fam, size_t *ns_out);
int pd_metrics__hist(pd_metrics_t *m, unsigned fam, size_t series, pd_metric_hist_t *out);

/* shortest of %.15g / %.17g that reads back exactly; integers without exponent */
static int
put_num(pd_buf_t *out, double v)
{
    char s[40];
    if (isnan(v))
        return pd_buf_put_cstr(out, "NaN");
    if (isinf(v))
        return pd_buf_put_cstr(out, v > 0 ? "+Inf" : "-Inf");
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(s, sizeof(s), "%.0f", v);
        return pd_buf_put_cstr(out, s);
    }
    snprintf(s, sizeof(s), "%.15g", v);
    if (strtod(s, NULL) != v)
        snprintf(s, sizeof(s), "%.17g", v);
    return pd_buf_put_cstr(out, s);
}

int
pd_metrics_escape_value(pd_buf_t *out, const char *v)
{
    int r = 0;
    for (const char *p = v; r == 0 && *p != '\0'; p++) {
        if (*p == '\\')
            r = pd_buf_put(out, "\\\\", 2);
        else if (*p == '"')
            r = pd_buf_put(out, "\\\"", 2);
        else if (*p == '\n')
            r = pd_buf_put(out, "\\n", 2);
        else
            r = pd_buf_put_byte(out, (uint8_t)*p);
    }
    return r;
}

static int
put_help(pd_buf_t *out, const char *v)
{
    int r = 0;
    for (const char *p = v; r == 0 && *p != '\0'; p++) {
        if (*p == '\\')
            r = pd_buf_put(out, "\\\\", 2);
        else if (*p == '\n')
            r = pd_buf_put(out, "\\n", 2);
        else
            r = pd_buf_put_byte(out, (uint8_t)*p);
    }
    return r;
}

/* name[suffix]{labels of series[,le="bound"]} */
static int
put_series(pd_buf_t *out, pd_metrics_t *m, unsigned fam, size_t series, const char *suffix, const char *le)
{
    const pd_metric_def_t *d = pd_metrics_def(m, fam);
    int r = pd_buf_put_cstr(out, d->name);
    if (r == 0 && suffix != NULL)
        r = pd_buf_put_cstr(out, suffix);
    if (r != 0 || (d->nlabels == 0 && le == NULL))
        return r;
    r = pd_buf_put_byte(out, '{');
    for (size_t l = 0; r == 0 && l < d->nlabels; l++) {
        const char *v = pd_metric_label_of(m, fam, series, l);
        if ((r = pd_buf_printf(out, "%s%s=\"", l > 0 ? "," : "", d->labels[l].name)) == 0 &&
            (r = pd_metrics_escape_value(out, v != NULL ? v : "")) == 0)
            r = pd_buf_put_byte(out, '"');
    }
    if (r == 0 && le != NULL)
        r = pd_buf_printf(out, "%sle=\"%s\"", d->nlabels > 0 ? "," : "", le);
    if (r == 0)
        r = pd_buf_put_byte(out, '}');
    return r;
}

static int
render_hist(pd_buf_t *out, pd_metrics_t *m, unsigned fam, size_t ns, unsigned flags)
{
    int r = 0;
    for (size_t i = 0; r == 0 && i < ns; i++) {
        pd_metric_hist_t h;
        if ((r = pd_metrics__hist(m, fam, i, &h)) != 0)
            break;
        if ((flags & PD_METRIC_SPARSE) && h.count == 0)
            continue;
        for (size_t k = 0; r == 0 && k <= h.nbounds; k++) {
            pd_buf_t le;
            const char *les = "+Inf";
            pd_buf_init(&le, 64);
            if (k < h.nbounds && (put_num(&le, h.bounds[k]) != 0 || pd_buf_cstr(&le, &les) != 0))
                r = PD_ERR_TOOBIG;
            if (r == 0 && (r = put_series(out, m, fam, i, "_bucket", les)) == 0)
                r = pd_buf_printf(out, " %llu\n", (unsigned long long)h.cumulative[k]);
            pd_buf_free(&le);
        }
        if (r == 0 && (r = put_series(out, m, fam, i, "_sum", NULL)) == 0 && (r = pd_buf_put_byte(out, ' ')) == 0 &&
            (r = put_num(out, h.sum)) == 0 && (r = pd_buf_put_byte(out, '\n')) == 0 &&
            (r = put_series(out, m, fam, i, "_count", NULL)) == 0)
            r = pd_buf_printf(out, " %llu\n", (unsigned long long)h.count);
    }
    return r;
}

int
pd_metrics_render(pd_metrics_t *m, pd_buf_t *out)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    int r = 0;
    for (unsigned f = 0; r == 0 && f < pd_metrics_nfamilies(m); f++) {
        const pd_metric_def_t *d = pd_metrics_def(m, f);
        size_t ns = pd_metrics_nseries(m, f);
        if ((r = pd_buf_printf(out, "# HELP %s ", d->name)) != 0 || (r = put_help(out, d->help)) != 0 ||
            (r = pd_buf_printf(out, "\n# TYPE %s %s\n", d->name, types[d->type])) != 0)
            break;
        if (d->type == PD_METRIC_HISTOGRAM) {
            r = render_hist(out, m, f, ns, d->flags);
            continue;
        }
        size_t n;
        double *v = pd_metrics__values(m, f, &n);
        if (v == NULL && n > 0)
            return PD_ERR_NOMEM;
        for (size_t i = 0; r == 0 && i < n; i++) {
            if ((d->flags & PD_METRIC_SPARSE) && v[i] == 0)
                continue;
            if ((r = put_series(out, m, f, i, NULL, NULL)) == 0 && (r = pd_buf_put_byte(out, ' ')) == 0 &&
                (r = put_num(out, v[i])) == 0)
                r = pd_buf_put_byte(out, '\n');
        }
        free(v);
    }
    return r;
}
