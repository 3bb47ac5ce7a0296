/* Stripe's reporting API: POST/GET /v1/reporting/report_runs, GET
 * /v1/reporting/report_types. A run is recorded pending; the report worker
 * (src/pay/report_worker.c) generates its file, so the API never waits for one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "payd/money.h"
#include "payd/reports.h"
#include "payd/time.h"

typedef struct {
    pd_op_t *op;
    pd_report_run_rec_t run;
} run_ctx_t;

static int
write_run(pd_db_t *tx, pd_op_t *op)
{
    run_ctx_t *c = op->ctx;
    pd_jw_t w;
    int r = pd_report_run_insert(tx, &c->run);
    if (r != 0)
        return r;
    pd_jw_init(&w, &op->body);
    pd_render_report_run(&w, &c->run, NULL);
    return pd_op_respond_json(op, 200, &w);
}

static void
after_run(pd_op_t *op)
{
    pd_reports_kick(op->api->reports);
    pd_op_finish(op);
}

/* an integer parameter that the schema checked (present: true) */
static bool
int_param(pd_req_t *r, const char *name, int64_t *out)
{
    const char *s = pd_param_str(r, name);
    if (s == NULL)
        return false;
    *out = strtoll(s, NULL, 10);
    return true;
}

/* the run's columns from parameters[columns][N], each one of t's; false after answering 400 */
static bool
read_columns(pd_req_t *r, const pd_report_type_t *t, char *out, size_t cap)
{
    size_t len = 0, n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->params.n; i++) {
        if (!pd_view_starts_with(r->params.v[i].key, "parameters[columns]["))
            continue;
        char col[64];
        if (pd_view_to_cstr(r->params.v[i].value, col, sizeof(col)) != 0 || !pd_report_has_column(t, col)) {
            pd_resp_invalid(r, "parameter_invalid", "parameters[columns]",
                            "Invalid column for report type %s: %.*s.", t->id, (int)r->params.v[i].value.len,
                            (const char *)r->params.v[i].value.p);
            return false;
        }
        if (++n > PD_REPORT_COLUMNS_MAX || len + strlen(col) + 2 > cap) {
            pd_resp_invalid(r, "parameter_invalid", "parameters[columns]", "At most %d columns may be asked for.",
                            PD_REPORT_COLUMNS_MAX);
            return false;
        }
        len += (size_t)snprintf(out + len, cap - len, "%s%s", len > 0 ? "," : "", col);
    }
    return true;
}

void
pd_h_report_run_create(pd_req_t *r)
{
    run_ctx_t *c = pd_arena_calloc(&r->arena, sizeof(*c));
    const pd_auth_t *au = r->auth;
    if (c == NULL || (c->op = pd_op_new(r, c)) == NULL) {
        if (c == NULL)
            pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    pd_report_run_rec_t *run = &c->run;
    const char *type = pd_param_str(r, "report_type");
    const pd_report_type_t *t = pd_report_type(type);
    if (t == NULL) {
        pd_resp_invalid(r, "parameter_invalid", "report_type",
                        "Invalid report_type: %s. payd makes balance.summary.1 and "
                        "balance_change_from_activity.itemized.1 (see GET /v1/reporting/report_types).",
                        type);
        return;
    }
    if (!t->available) {
        pd_resp_invalid(r, "parameter_invalid", "report_type", "The report type %s is not available: %s", t->id,
                        t->unavailable_why);
        return;
    }
    int64_t now = c->op->now;
    if (!int_param(r, "parameters[interval_start]", &run->interval_start)) {
        pd_resp_invalid(r, "parameter_missing", "parameters[interval_start]",
                        "Missing required param: parameters[interval_start].");
        return;
    }
    if (!int_param(r, "parameters[interval_end]", &run->interval_end)) {
        pd_resp_invalid(r, "parameter_missing", "parameters[interval_end]",
                        "Missing required param: parameters[interval_end].");
        return;
    }
    if (run->interval_end <= run->interval_start) {
        pd_resp_invalid(r, "parameter_invalid", "parameters[interval_end]",
                        "parameters[interval_end] must be after parameters[interval_start].");
        return;
    }
    if (run->interval_end > now) {
        pd_resp_invalid(r, "parameter_invalid", "parameters[interval_end]",
                        "parameters[interval_end] (%ld) is after the report type's data_available_end (%ld).",
                        (long)run->interval_end, (long)now);
        return;
    }
    const char *tz = pd_param_str(r, "parameters[timezone]");
    if (tz != NULL && strcmp(tz, "Etc/UTC") != 0 && strcmp(tz, "UTC") != 0) {
        pd_resp_invalid(r, "parameter_invalid", "parameters[timezone]",
                        "payd makes reports in UTC only (Etc/UTC), not %s.", tz);
        return;
    }
    const char *cur = pd_param_str(r, "parameters[currency]");
    if (cur != NULL && (pd_currency_exponent(pd_view_cstr(cur)) < 0 ||
                        pd_currency_normalize(pd_view_cstr(cur), run->currency) != 0)) {
        pd_resp_invalid(r, "parameter_invalid", "parameters[currency]", "Invalid currency: %s.", cur);
        return;
    }
    if (!read_columns(r, t, run->columns, sizeof(run->columns)))
        return;
    if (pd_id_new("frr", run->id, sizeof(run->id)) != 0) {
        pd_resp_error(r, 500, "api_error", NULL, "Cannot create an id.", NULL);
        return;
    }
    snprintf(run->merchant_id, sizeof(run->merchant_id), "%s", au->merchant_id);
    run->livemode = au->livemode;
    snprintf(run->report_type, sizeof(run->report_type), "%s", t->id);
    snprintf(run->status, sizeof(run->status), "pending");
    run->created = now;
    run->seq = pd_next_seq();
    pd_op_commit(c->op, write_run, after_run);
}

static void
render_run_cb(pd_jw_t *w, const void *rec)
{
    pd_render_report_run(w, rec, NULL);
}

static int
get_run(pd_db_t *db, pd_req_t *r, const char *id, pd_view_t *json)
{
    const pd_auth_t *au = r->auth;
    pd_report_run_rec_t *run = pd_arena_alloc(&r->arena, sizeof(*run));
    if (run == NULL)
        return PD_ERR_NOMEM;
    int rc = pd_report_run_get(db, au->merchant_id, au->livemode, id, run);
    if (rc == 0)
        *json = pd_render_to_arena(&r->arena, render_run_cb, run);
    return rc;
}

void
pd_h_report_run_get(pd_req_t *r)
{
    pd_get_respond(r, "reporting.report_run", get_run);
}

static int
each_run(void *rec, void *arg)
{
    pd_render_report_run(arg, rec, NULL);
    return 0;
}

void
pd_h_report_run_list(pd_req_t *r)
{
    pd_list_respond(r, "/v1/reporting/report_runs", "reporting.report_run", "report_type", pd_report_run_list,
                    each_run);
}

/* --- report types: the table in src/pay/report.c, no store --- */

static void
respond_types(pd_req_t *r, const pd_report_type_t *one)
{
    const pd_auth_t *au = r->auth;
    pd_buf_t b;
    pd_jw_t w;
    pd_buf_init(&b, 64 * 1024);
    pd_jw_init(&w, &b);
    if (one != NULL) {
        pd_render_report_type(&w, one, au->livemode, pd_unix_now());
    } else {
        pd_list_begin(&w, "/v1/reporting/report_types");
        for (size_t i = 0; i < pd_report_types_n; i++)
            if (pd_report_types[i].available)
                pd_render_report_type(&w, &pd_report_types[i], au->livemode, pd_unix_now());
        pd_list_end(&w, false);
    }
    pd_resp_jw(r, 200, &w);
    pd_buf_free(&b);
}

void
pd_h_report_type_list(pd_req_t *r)
{
    respond_types(r, NULL);
}

void
pd_h_report_type_get(pd_req_t *r)
{
    char id[80];
    const pd_report_type_t *t = NULL;
    if (pd_view_to_cstr(pd_req_param(r, "id"), id, sizeof(id)) == 0)
        t = pd_report_type(id);
    if (t == NULL || !t->available) {
        pd_resp_missing(r, "reporting.report_type", "id", t == NULL ? id : t->id);
        return;
    }
    respond_types(r, t);
}
