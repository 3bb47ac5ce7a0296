/*
 * Reports (Stripe's reporting API, docs/reports.md): the report types, their CSV made
 * from the ledger's balance transactions, the JSON of report runs and files, and the
 * worker that generates runs off the API's path (src/pay/report.c, report_worker.c).
 */
#ifndef PAYD_REPORTS_H
#define PAYD_REPORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/db.h"
#include "payd/file_store.h"
#include "payd/json.h"
#include "payd/records.h"

#define PD_REPORT_COLUMNS_MAX 16

typedef struct {
    const char *id;              /* balance.summary.1 */
    const char *name;
    const char *const *columns;  /* every column it has, NULL-terminated */
    const char *default_columns; /* comma-separated, when the run names none */
    bool available;              /* false: known to Stripe, not made by payd (payouts.itemized.1) */
    const char *unavailable_why;
} pd_report_type_t;

extern const pd_report_type_t pd_report_types[];
extern const size_t pd_report_types_n;
/* NULL when id is no report type at all */
const pd_report_type_t *pd_report_type(const char *id);
/* Whether column is one of t's. */
bool pd_report_has_column(const pd_report_type_t *t, const char *column);

/* Writes the run's CSV (a header line with the run's columns, then its rows, CRLF
 * line ends as RFC 4180) through put. Amounts are in major units ("19.99", Stripe's
 * CSV form); text that a spreadsheet would take for a formula is prefixed with '. */
typedef int (*pd_report_put_fn)(void *arg, const void *p, size_t n);
int pd_report_generate(pd_db_t *db, const pd_report_run_rec_t *run, pd_report_put_fn put, void *arg) PD_WUR;

/* The Stripe objects. A file's url is its contents' path on the API listener
 * (/v1/files/ID/contents), relative: payd does not know the name clients reach it by.
 * A run's result is run->result when has_result, else result (may be NULL). */
void pd_render_file(pd_jw_t *w, const pd_file_rec_t *f);
void pd_render_report_run(pd_jw_t *w, const pd_report_run_rec_t *run, const pd_file_rec_t *result);
void pd_render_report_type(pd_jw_t *w, const pd_report_type_t *t, bool livemode, int64_t now);

/* --- the worker (one thread per node; runs are claimed, so several nodes share them) --- */
typedef struct pd_reports pd_reports_t;
struct pd_relay;
typedef struct {
    pd_store_t *store;
    pd_files_t *files;
    struct pd_relay *relay;     /* woken after a run's event is written (NULL: none) */
    int64_t report_expiry_ms;   /* a run's file expires this long after it is made */
    int64_t janitor_interval_ms; /* the file store's sweep */
} pd_reports_opts_t;
int pd_reports_start(pd_reports_t **out, const pd_reports_opts_t *o) PD_WUR;
/* A run was created: look now rather than at the next tick. Any thread. */
void pd_reports_kick(pd_reports_t *r);
void pd_reports_stop(pd_reports_t *r);

#endif
