/*
 * The report worker: one thread per node that generates pending report runs into the
 * file store, and runs the file store's janitor.
 *
 * A run is claimed for CLAIM_S (pd_report_run_claim), so nodes sharing a store share
 * the runs and a node that dies while generating one leaves it to the next worker once
 * its claim lapses. The CSV goes to a new file (its expiry [files] report_expiry); then
 * one write marks the run succeeded with that file and emits
 * reporting.report_run.succeeded. A run that could not be generated (the vault, the
 * disk, the store) is tried again after its claim lapses, and fails for good after
 * MAX_ATTEMPTS (reporting.report_run.failed, with the reason).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "payd/backup_config.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/payments.h"
#include "payd/relay.h"
#include "payd/reports.h"
#include "payd/time.h"

#define CLAIM_S 300
#define MAX_ATTEMPTS 3
#define IDLE_WAIT_MS 1000

struct pd_reports {
    pd_reports_opts_t o;
    int64_t backup_read_ms, backup_last; /* payd_backup_last_success_timestamp_seconds, read every 5 s */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool kicked, stop;
    int64_t last_sweep_ms;
};

typedef struct {
    pd_report_run_rec_t run;
    int64_t now;
} claim_t;

static int
claim_write(pd_db_t *tx, void *arg)
{
    claim_t *c = arg;
    return pd_report_run_claim(tx, c->now, c->now + CLAIM_S, &c->run);
}

static int
put_file(void *arg, const void *p, size_t n)
{
    return pd_files_write(arg, p, n);
}

/* the run's CSV into a new file: 0 and *out, or the error */
static int
generate(pd_reports_t *w, const pd_report_run_rec_t *run, pd_file_rec_t *out)
{
    pd_db_t *db = pd_store_reader(w->o.store);
    if (db == NULL)
        return PD_ERR_UNAVAILABLE;
    pd_file_rec_t rec = {0};
    snprintf(rec.merchant_id, sizeof(rec.merchant_id), "%s", run->merchant_id);
    rec.livemode = run->livemode;
    snprintf(rec.purpose, sizeof(rec.purpose), "finance_report_run");
    snprintf(rec.type, sizeof(rec.type), "csv");
    snprintf(rec.filename, sizeof(rec.filename), "%s.%s.csv", run->id, run->report_type);
    rec.expires_at = pd_unix_now() + w->o.report_expiry_ms / 1000;
    pd_files_put_t *put;
    int r = pd_files_begin(w->o.files, &rec, &put);
    if (r != 0)
        return r;
    if ((r = pd_report_generate(db, run, put_file, put)) != 0) {
        pd_files_abort(put);
        return r;
    }
    return pd_files_commit(put, out);
}

typedef struct {
    pd_report_run_rec_t *run;
    const pd_file_rec_t *file; /* NULL when it failed */
} finish_t;

static int
finish_write(pd_db_t *tx, void *arg)
{
    finish_t *f = arg;
    int r = pd_report_run_finish(tx, f->run);
    if (r != 0)
        return r;
    pd_buf_t b;
    pd_jw_t jw;
    pd_buf_init(&b, 16 * 1024);
    pd_jw_init(&jw, &b);
    pd_render_report_run(&jw, f->run, f->file);
    if ((r = pd_jw_finish(&jw)) == 0)
        r = pd_emit_raw(tx, f->run->merchant_id, f->run->livemode,
                        f->file != NULL ? "reporting.report_run.succeeded" : "reporting.report_run.failed",
                        pd_buf_view(&b), NULL, NULL, pd_unix_now());
    pd_buf_free(&b);
    return r;
}

/* one run, claimed: generated and finished, or left for another attempt */
static void
run_one(pd_reports_t *w, pd_report_run_rec_t *run)
{
    pd_file_rec_t file;
    int rc = generate(w, run, &file);
    finish_t f = {run, NULL};
    if (rc == 0) {
        snprintf(run->status, sizeof(run->status), "succeeded");
        snprintf(run->result_file, sizeof(run->result_file), "%s", file.id);
        run->succeeded_at = pd_unix_now();
        f.file = &file;
    } else if (run->attempts >= MAX_ATTEMPTS || rc == PD_ERR_INVALID || rc == PD_ERR_TOOBIG) {
        snprintf(run->status, sizeof(run->status), "failed");
        snprintf(run->error, sizeof(run->error), "The report could not be generated (%s).", pd_strerror(rc));
    } else {
        pd_log_warn("reports: a run could not be generated; it is tried again", PD_LS("run", run->id),
                    PD_LI("attempt", run->attempts), PD_LERR(rc));
        return;
    }
    int r = pd_store_write_sync(w->o.store, finish_write, &f);
    if (r == 0) {
        pd_log_info("reports: run finished", PD_LS("run", run->id), PD_LS("status", run->status),
                    PD_LS("file", run->result_file));
        if (w->o.relay != NULL)
            pd_relay_kick(w->o.relay);
    } else if (rc == 0) {
        /* the run stays pending and is generated again after its claim: this file goes */
        pd_log_warn("reports: a run's file was made but the run could not be marked; it is tried again",
                    PD_LS("run", run->id), PD_LERR(r));
        if (pd_files_remove(w->o.files, file.id) != 0)
            pd_log_warn("reports: the unused file stays until it expires", PD_LS("file", file.id));
    }
}

static void
sweep(pd_reports_t *w)
{
    uint64_t now = pd_mono_ms();
    if (w->last_sweep_ms != 0 && (int64_t)(now - (uint64_t)w->last_sweep_ms) < w->o.janitor_interval_ms)
        return;
    w->last_sweep_ms = (int64_t)now;
    int64_t removed = 0;
    int r = pd_files_sweep(w->o.files, pd_unix_now(), &removed);
    if (r != 0)
        pd_log_warn("files: the janitor's pass failed; it runs again later", PD_LERR(r));
    else if (removed > 0)
        pd_log_info("files: the janitor removed files", PD_LI("removed", removed));
}

/* the scheduled backup's last success (payctl backup run writes it) into its gauge */
static void
read_backup_time(pd_reports_t *w)
{
    uint64_t now = pd_mono_ms();
    if (w->backup_read_ms != 0 && (int64_t)(now - (uint64_t)w->backup_read_ms) < 5000)
        return;
    w->backup_read_ms = (int64_t)now;
    pd_db_t *db = pd_store_reader(w->o.store);
    int64_t last = 0;
    if (db == NULL || pd_cursor_get(db, PD_BACKUP_LAST_SUCCESS, &last) != 0)
        return;
    if (pd_mx != NULL && last != w->backup_last)
        pd_metric_gauge_add(pd_mx, PD_MX_BACKUP_LAST_SUCCESS, 0, last - w->backup_last);
    w->backup_last = last;
}

static void *
worker_main(void *arg)
{
    pd_reports_t *w = arg;
    pthread_setname_np(pthread_self(), "payd-reports");
    for (;;) {
        pthread_mutex_lock(&w->mu);
        bool stop = w->stop;
        w->kicked = false;
        pthread_mutex_unlock(&w->mu);
        if (stop)
            break;
        claim_t c = {.now = pd_unix_now()};
        int r;
        while ((r = pd_store_write_sync(w->o.store, claim_write, &c)) == 0) {
            run_one(w, &c.run);
            c.now = pd_unix_now();
            pthread_mutex_lock(&w->mu);
            stop = w->stop;
            pthread_mutex_unlock(&w->mu);
            if (stop)
                break;
        }
        if (r != 0 && r != PD_ERR_NOTFOUND)
            pd_log_warn("reports: cannot look for pending runs", PD_LERR(r));
        sweep(w);
        read_backup_time(w);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += IDLE_WAIT_MS / 1000;
        pthread_mutex_lock(&w->mu);
        while (!w->kicked && !w->stop)
            if (pthread_cond_timedwait(&w->cond, &w->mu, &ts) != 0)
                break;
        pthread_mutex_unlock(&w->mu);
    }
    return NULL;
}

int
pd_reports_start(pd_reports_t **out, const pd_reports_opts_t *o)
{
    *out = NULL;
    pd_reports_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return PD_ERR_NOMEM;
    w->o = *o;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cond);
        free(w);
        return PD_ERR_NOMEM;
    }
    *out = w;
    return 0;
}

void
pd_reports_kick(pd_reports_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->kicked = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

void
pd_reports_stop(pd_reports_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    free(w);
}
