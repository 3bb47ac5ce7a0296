/* Report types and their CSV from the balance transactions (include/payd/reports.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "payd/error.h"
#include "payd/money.h"
#include "payd/reports.h"

#define REPORT_TYPES_UPDATED 1796083200 /* 2026-12-01: when these types' definitions last changed */

static const char *const summary_columns[] = {"category", "description", "net_amount", "currency", NULL};
static const char *const itemized_columns[] = {
    "balance_transaction_id", "created_utc", "created", "available_on_utc", "available_on", "currency", "gross",
    "fee", "net", "reporting_category", "source_id", "description", NULL,
};
static const char *const payout_columns[] = {"payout_id", "effective_at_utc", "currency", "gross", "fee", "net",
                                             NULL};

const pd_report_type_t pd_report_types[] = {
    {"balance.summary.1", "Balance summary", summary_columns, "category,description,net_amount,currency", true,
     NULL},
    {"balance_change_from_activity.itemized.1", "Balance change from activity (itemized)", itemized_columns,
     "balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,reporting_category,description",
     true, NULL},
    {"payouts.itemized.1", "Payouts (itemized)", payout_columns, "payout_id,effective_at_utc,currency,gross,fee,net",
     false, "payd makes no payouts, so it has no payouts report."},
};
const size_t pd_report_types_n = sizeof(pd_report_types) / sizeof(pd_report_types[0]);

const pd_report_type_t *
pd_report_type(const char *id)
{
    for (size_t i = 0; id != NULL && i < pd_report_types_n; i++)
        if (strcmp(pd_report_types[i].id, id) == 0)
            return &pd_report_types[i];
    return NULL;
}

bool
pd_report_has_column(const pd_report_type_t *t, const char *column)
{
    for (const char *const *c = t->columns; *c != NULL; c++)
        if (strcmp(*c, column) == 0)
            return true;
    return false;
}

/* --- CSV --- */

typedef struct {
    pd_report_put_fn put;
    void *arg;
    const pd_report_run_rec_t *run;
    char cols[PD_REPORT_COLUMNS_MAX][40];
    size_t ncols;
    char line[8192];
    size_t len;
    bool overflow;
} csv_t;

static void
csv_raw(csv_t *c, const char *s, size_t n)
{
    if (c->len + n >= sizeof(c->line)) {
        c->overflow = true;
        return;
    }
    memcpy(c->line + c->len, s, n);
    c->len += n;
}

/* one field: quoted when it holds a comma, a quote or a line break (quotes doubled);
 * text that a spreadsheet would run as a formula gets a leading ' */
static void
csv_text(csv_t *c, const char *s)
{
    if (s == NULL)
        s = "";
    bool formula = s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r';
    bool quote = strpbrk(s, ",\"\r\n") != NULL;
    if (quote)
        csv_raw(c, "\"", 1);
    if (formula)
        csv_raw(c, "'", 1);
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"')
            csv_raw(c, "\"", 1);
        csv_raw(c, p, 1);
    }
    if (quote)
        csv_raw(c, "\"", 1);
}

/* minor units in major units: 1999 usd -> 19.99, -5 usd -> -0.05, 500 jpy -> 500 */
static void
csv_amount(csv_t *c, int64_t minor, const char *currency)
{
    char buf[48];
    int exp = pd_currency_exponent(pd_view_cstr(currency));
    uint64_t m = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
    if (exp <= 0) {
        snprintf(buf, sizeof(buf), "%s%" PRIu64, minor < 0 ? "-" : "", m);
    } else {
        uint64_t scale = 1;
        for (int i = 0; i < exp; i++)
            scale *= 10;
        snprintf(buf, sizeof(buf), "%s%" PRIu64 ".%0*" PRIu64, minor < 0 ? "-" : "", m / scale, exp, m % scale);
    }
    csv_raw(c, buf, strlen(buf));
}

static void
csv_time(csv_t *c, int64_t t)
{
    char buf[32];
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
    csv_raw(c, buf, n);
}

static int
csv_end_line(csv_t *c)
{
    csv_raw(c, "\r\n", 2);
    if (c->overflow)
        return PD_ERR_TOOBIG;
    int r = c->put(c->arg, c->line, c->len);
    c->len = 0;
    return r;
}

static int
csv_header(csv_t *c)
{
    for (size_t i = 0; i < c->ncols; i++) {
        if (i > 0)
            csv_raw(c, ",", 1);
        csv_text(c, c->cols[i]);
    }
    return csv_end_line(c);
}

static const char *
reporting_category(const char *type)
{
    /* Stripe's reporting categories of the balance transactions payd makes */
    if (strcmp(type, "charge") == 0)
        return "charge";
    if (strcmp(type, "refund") == 0)
        return "refund";
    return type;
}

static int
itemized_row(void *rec, void *arg)
{
    const pd_btxn_rec_t *b = rec;
    csv_t *c = arg;
    for (size_t i = 0; i < c->ncols; i++) {
        const char *col = c->cols[i];
        if (i > 0)
            csv_raw(c, ",", 1);
        if (strcmp(col, "balance_transaction_id") == 0)
            csv_text(c, b->id);
        else if (strcmp(col, "created_utc") == 0 || strcmp(col, "created") == 0) /* the run's time zone is UTC */
            csv_time(c, b->created);
        else if (strcmp(col, "available_on_utc") == 0 || strcmp(col, "available_on") == 0)
            csv_time(c, b->available_on);
        else if (strcmp(col, "currency") == 0)
            csv_text(c, b->currency);
        else if (strcmp(col, "gross") == 0)
            csv_amount(c, b->amount, b->currency);
        else if (strcmp(col, "fee") == 0)
            csv_amount(c, b->fee, b->currency);
        else if (strcmp(col, "net") == 0)
            csv_amount(c, b->net, b->currency);
        else if (strcmp(col, "reporting_category") == 0)
            csv_text(c, reporting_category(b->type));
        else if (strcmp(col, "source_id") == 0)
            csv_text(c, b->source);
        else if (strcmp(col, "description") == 0)
            csv_text(c, b->description);
    }
    return csv_end_line(c);
}

static int
summary_line(csv_t *c, const char *category, const char *description, int64_t amount, const char *currency)
{
    for (size_t i = 0; i < c->ncols; i++) {
        const char *col = c->cols[i];
        if (i > 0)
            csv_raw(c, ",", 1);
        if (strcmp(col, "category") == 0)
            csv_text(c, category);
        else if (strcmp(col, "description") == 0)
            csv_text(c, description);
        else if (strcmp(col, "net_amount") == 0)
            csv_amount(c, amount, currency);
        else if (strcmp(col, "currency") == 0)
            csv_text(c, currency);
    }
    return csv_end_line(c);
}

static int
summary(pd_db_t *db, csv_t *c)
{
    const pd_report_run_rec_t *run = c->run;
    pd_btxn_sums_t rows[64];
    size_t n = 0;
    int r = pd_btxn_sums(db, run->merchant_id, run->livemode, run->currency, run->interval_start, run->interval_end,
                         rows, sizeof(rows) / sizeof(rows[0]), &n);
    for (size_t i = 0; r == 0 && i < n; i++) {
        const pd_btxn_sums_t *s = &rows[i];
        if ((r = summary_line(c, "starting_balance", "Starting balance", s->before_net, s->currency)) != 0 ||
            (r = summary_line(c, "activity_gross", "Activity before fees", s->gross, s->currency)) != 0 ||
            (r = summary_line(c, "activity_fee", "Less fees", -s->fee, s->currency)) != 0 ||
            (r = summary_line(c, "activity", "Net balance change from activity", s->net, s->currency)) != 0 ||
            (r = summary_line(c, "ending_balance", "Ending balance", s->before_net + s->net, s->currency)) != 0)
            break;
    }
    return r;
}

int
pd_report_generate(pd_db_t *db, const pd_report_run_rec_t *run, pd_report_put_fn put, void *arg)
{
    const pd_report_type_t *t = pd_report_type(run->report_type);
    if (t == NULL || !t->available)
        return PD_ERR_INVALID;
    csv_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return PD_ERR_NOMEM;
    c->put = put;
    c->arg = arg;
    c->run = run;
    /* the columns, each one of the type's (checked when the run was created; checked again) */
    const char *p = run->columns[0] != '\0' ? run->columns : t->default_columns;
    int r = 0;
    while (*p != '\0' && r == 0) {
        size_t n = strcspn(p, ",");
        if (c->ncols == PD_REPORT_COLUMNS_MAX || n == 0 || n >= sizeof(c->cols[0])) {
            r = PD_ERR_INVALID;
            break;
        }
        memcpy(c->cols[c->ncols], p, n);
        c->cols[c->ncols][n] = '\0';
        if (!pd_report_has_column(t, c->cols[c->ncols]))
            r = PD_ERR_INVALID;
        c->ncols++;
        p += n + (p[n] == ',');
    }
    if (r == 0)
        r = csv_header(c);
    if (r == 0)
        r = strcmp(t->id, "balance.summary.1") == 0
                ? summary(db, c)
                : pd_btxn_each_created(db, run->merchant_id, run->livemode, run->currency, run->interval_start,
                                       run->interval_end, itemized_row, c);
    free(c);
    return r;
}

/* --- JSON --- */

void
pd_render_file(pd_jw_t *w, const pd_file_rec_t *f)
{
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "id", f->id);
    pd_jw_kstr(w, "object", "file");
    pd_jw_kint(w, "created", f->created);
    if (f->expires_at > 0)
        pd_jw_kint(w, "expires_at", f->expires_at);
    else
        pd_jw_knull(w, "expires_at");
    pd_jw_kstr(w, "filename", f->filename);
    pd_jw_knull(w, "links");
    pd_jw_kstr(w, "purpose", f->purpose);
    pd_jw_kint(w, "size", f->size);
    pd_jw_knull(w, "title");
    pd_jw_kstr(w, "type", f->type);
    char url[128];
    snprintf(url, sizeof(url), "/v1/files/%s/contents", f->id);
    pd_jw_kstr(w, "url", url);
    pd_jw_obj_end(w);
}

void
pd_render_report_run(pd_jw_t *w, const pd_report_run_rec_t *run, const pd_file_rec_t *result)
{
    if (run->has_result)
        result = &run->result;
    const pd_report_type_t *t = pd_report_type(run->report_type);
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "id", run->id);
    pd_jw_kstr(w, "object", "reporting.report_run");
    pd_jw_kint(w, "created", run->created);
    if (run->error[0] != '\0')
        pd_jw_kstr(w, "error", run->error);
    else
        pd_jw_knull(w, "error");
    pd_jw_kbool(w, "livemode", run->livemode);
    pd_jw_key(w, "parameters");
    pd_jw_obj_begin(w);
    pd_jw_key(w, "columns");
    pd_jw_arr_begin(w);
    const char *p = run->columns[0] != '\0' || t == NULL ? run->columns : t->default_columns;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        pd_jw_strv(w, pd_view(p, n));
        p += n + (p[n] == ',');
    }
    pd_jw_arr_end(w);
    if (run->currency[0] != '\0')
        pd_jw_kstr(w, "currency", run->currency);
    pd_jw_kint(w, "interval_end", run->interval_end);
    pd_jw_kint(w, "interval_start", run->interval_start);
    pd_jw_kstr(w, "timezone", "Etc/UTC");
    pd_jw_obj_end(w);
    pd_jw_kstr(w, "report_type", run->report_type);
    pd_jw_key(w, "result");
    if (result != NULL)
        pd_render_file(w, result);
    else
        pd_jw_null(w);
    pd_jw_kstr(w, "status", run->status);
    if (run->succeeded_at > 0)
        pd_jw_kint(w, "succeeded_at", run->succeeded_at);
    else
        pd_jw_knull(w, "succeeded_at");
    pd_jw_obj_end(w);
}

void
pd_render_report_type(pd_jw_t *w, const pd_report_type_t *t, bool livemode, int64_t now)
{
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "id", t->id);
    pd_jw_kstr(w, "object", "reporting.report_type");
    pd_jw_kint(w, "data_available_end", now);
    pd_jw_kint(w, "data_available_start", 0);
    pd_jw_key(w, "default_columns");
    pd_jw_arr_begin(w);
    for (const char *p = t->default_columns; *p != '\0';) {
        size_t n = strcspn(p, ",");
        pd_jw_strv(w, pd_view(p, n));
        p += n + (p[n] == ',');
    }
    pd_jw_arr_end(w);
    pd_jw_kbool(w, "livemode", livemode);
    pd_jw_kstr(w, "name", t->name);
    pd_jw_kint(w, "updated", REPORT_TYPES_UPDATED);
    pd_jw_kint(w, "version", 1);
    pd_jw_obj_end(w);
}
