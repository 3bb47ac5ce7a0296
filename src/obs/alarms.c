/*
 * The evaluator thread: wakes at the end of each enabled alarm's period, reads its
 * source, steps its state machine, and on a change audits it, logs it and hands an
 * Alertmanager-format notification to the notifier (which never blocks this thread
 * or the API). GET /alarms reads the states under the mutex.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "obs/alarms_internal.h"
#include "payd/audit.h"
#include "payd/json.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/store.h"
#include "payd/time.h"

pd_alarms_t *pd_alarms;

typedef struct {
    const pd_alarm_t *alarm;
    pd_alarm_state_t prev;
} transition_t;

static int
write_audit(pd_db_t *tx, void *arg)
{
    const transition_t *t = arg;
    pd_audit_chain_t chain;
    char origin[64], outcome[64];
    snprintf(origin, sizeof(origin), "alarms:pid=%d", (int)getpid());
    snprintf(outcome, sizeof(outcome), "success:%s", pd_alarm_state_name(t->alarm->state));
    char detail[400];
    snprintf(detail, sizeof(detail), "%s -> %s: %s", pd_alarm_state_name(t->prev), pd_alarm_state_name(t->alarm->state),
             t->alarm->reason);
    pd_audit_rec_t rec = {"alarms", "alarm.state_change", t->alarm->def->name, outcome, origin, detail};
    int r = pd_audit_load(tx, &chain);
    return r != 0 ? r : pd_audit_append(tx, &chain, pd_unix_now(), &rec);
}

/* a transition: log, audit, notify (evaluator thread; a snapshot, not under the mutex) */
static void
on_change(pd_alarms_t *a, size_t i, const pd_alarm_t *snap, pd_alarm_state_t prev, int64_t now)
{
    pd_log_warn("alarm state changed", PD_LS("alarm", snap->def->name), PD_LS("from", pd_alarm_state_name(prev)),
                PD_LS("to", pd_alarm_state_name(snap->state)), PD_LS("reason", snap->reason));
    /* Alertmanager knows firing and resolved: ALARM fires; leaving ALARM resolves.
     * INSUFFICIENT_DATA -> OK at start is not news. Queued before the audit: when the
     * database is what fails, its write may take a while and the page must not wait. */
    bool firing = snap->state == PD_ALARM_ALARM;
    if (firing || prev == PD_ALARM_ALARM) {
        if (firing)
            a->fired_at[i] = now;
        pd_alarm_event_t e = {snap, a->instance, a->external_url, a->fired_at[i], firing ? 0 : now};
        pd_buf_t body;
        pd_buf_init(&body, 64 * 1024);
        if (pd_alarm_payload(&e, &body) == 0)
            pd_alarm_notify(a->notifier, pd_buf_view(&body));
        else
            pd_log_error("alarms: cannot build a notification", PD_LS("alarm", snap->def->name));
        pd_buf_free(&body);
    }
    transition_t t = {snap, prev};
    if (a->deps.store != NULL) {
        int r = pd_store_write_sync(a->deps.store, write_audit, &t);
        if (r != 0)
            pd_log_error("alarms: cannot audit a state change", PD_LS("alarm", snap->def->name), PD_LERR(r));
    }
}

static void
evaluate_due(pd_alarms_t *a, int64_t mono)
{
    for (size_t i = 0; i < PD_ALARM_N; i++) {
        if (!a->enabled[i] || a->due_ms[i] > mono)
            continue;
        pd_alarm_t *al = &a->alarm[i];
        double v = 0;
        char note[256];
        bool have = pd_alarms_sample(a, i, (double)al->period_ms / 1000.0, &v, note, sizeof(note));
        int64_t now = pd_unix_now();
        pd_alarm_state_t prev;
        pthread_mutex_lock(&a->mu);
        bool changed = pd_alarm_step(al, have, v, note[0] ? note : NULL, now, &prev);
        pd_alarm_t snap = *al;
        pthread_mutex_unlock(&a->mu);
        /* the next period starts where this one ended, not when it was read */
        a->due_ms[i] += al->period_ms;
        if (a->due_ms[i] <= mono)
            a->due_ms[i] = mono + al->period_ms;
        if (changed)
            on_change(a, i, &snap, prev, now);
    }
}

static void *
run(void *arg)
{
    pd_alarms_t *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stopping) {
        int64_t mono = (int64_t)pd_mono_ms(), next = mono + 60000;
        for (size_t i = 0; i < PD_ALARM_N; i++)
            if (a->enabled[i] && a->due_ms[i] < next)
                next = a->due_ms[i];
        if (next > mono) {
            /* the condition variable waits on CLOCK_MONOTONIC (set in pd_alarms_start) */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t ns = (int64_t)ts.tv_nsec + (next - mono) * 1000000;
            ts.tv_sec += (time_t)(ns / 1000000000);
            ts.tv_nsec = (long)(ns % 1000000000);
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&a->mu);
        evaluate_due(a, mono);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* payd_alarm_state{alarm,state}: one-hot per alarm (a disabled alarm: all 0) */
static void
collect_states(void *arg, double *out, size_t n)
{
    pd_alarms_t *a = arg;
    if (n < PD_ALARM_N * 3)
        return;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < PD_ALARM_N; i++) {
        pd_alarm_state_t s = a->alarm[i].state;
        size_t idx = s == PD_ALARM_OK ? PD_MX_ALARM_OK : s == PD_ALARM_ALARM ? PD_MX_ALARM_ALARM
                                                                                : PD_MX_ALARM_INSUFFICIENT_DATA;
        for (size_t k = 0; k < 3; k++)
            out[i * 3 + k] = a->enabled[i] && k == idx ? 1 : 0; /* series = alarm * 3 + state */
    }
    pthread_mutex_unlock(&a->mu);
}

int
pd_alarms_start(pd_alarms_t **out, const pd_alarms_config_t *cfg, const pd_alarms_deps_t *deps)
{
    int r = PD_ERR_NOMEM;
    pd_alarms_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return PD_ERR_NOMEM;
    a->cfg = cfg;
    a->deps = *deps;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);

    if (cfg->instance[0] != '\0')
        snprintf(a->instance, sizeof(a->instance), "%s", cfg->instance);
    else if (gethostname(a->instance, sizeof(a->instance) - 1) != 0)
        snprintf(a->instance, sizeof(a->instance), "payd");
    if (cfg->external_url[0] != '\0')
        snprintf(a->external_url, sizeof(a->external_url), "%s", cfg->external_url);
    else
        snprintf(a->external_url, sizeof(a->external_url), "http://%s", deps->admin_listen ? deps->admin_listen : "");

    int64_t now = pd_unix_now(), mono = (int64_t)pd_mono_ms();
    for (size_t i = 0; i < PD_ALARM_N; i++) {
        const pd_alarm_config_t *c = &cfg->alarm[i];
        double th = 0;
        if ((r = pd_alarms_parse_threshold(c->threshold, &th)) != 0)
            goto fail; /* pd_alarms_config_check ran: not reached */
        pd_alarm_init(&a->alarm[i], &pd_alarm_defs[i], th, c->period_ms, (int)c->evaluation_periods, now);
        a->enabled[i] = c->enabled;
        a->due_ms[i] = mono + c->period_ms;
    }
    pd_alarms_sources_prime(a);
    for (size_t i = 0; i < PD_ALARM_N; i++)
        if (pd_mx_alarm_names[i] == NULL || strcmp(pd_mx_alarm_names[i], pd_alarm_defs[i].name) != 0) {
            r = PD_ERR_INTERNAL; /* the metric's label list lags the table */
            goto fail;
        }
    /* before the server starts: nothing scrapes yet */
    if (deps->mx != NULL && (r = pd_metrics_set_collector(deps->mx, PD_MX_ALARM_STATE, collect_states, a)) != 0)
        goto fail;
    if ((r = pd_alarm_notifier_new(&a->notifier, cfg, deps->secrets)) != 0)
        goto fail;
    if (pthread_create(&a->thread, NULL, run, a) != 0) {
        r = PD_ERR_INTERNAL;
        goto fail;
    }
    a->thread_started = true;
    pd_alarms = a;
    *out = a;
    return 0;
fail:
    pd_alarms_stop(a);
    return r;
}

void
pd_alarms_stop(pd_alarms_t *a)
{
    if (a == NULL)
        return;
    if (pd_alarms == a)
        pd_alarms = NULL;
    if (a->thread_started) {
        pthread_mutex_lock(&a->mu);
        a->stopping = true;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
    }
    pd_alarm_notifier_free(a->notifier);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static void
put_number(pd_jw_t *w, const char *k, bool have, double v)
{
    pd_jw_key(w, k);
    if (!have || !isfinite(v)) {
        pd_jw_null(w);
        return;
    }
    char n[48];
    snprintf(n, sizeof(n), "%.6g", v);
    pd_jw_raw(w, pd_view_cstr(n));
}

int
pd_alarms_render(pd_alarms_t *a, pd_buf_t *out)
{
    pd_jw_t w;
    pd_jw_init(&w, out);
    pd_jw_arr_begin(&w);
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < PD_ALARM_N; i++) {
        if (!a->enabled[i])
            continue;
        const pd_alarm_t *al = &a->alarm[i];
        char since[32];
        pd_time_rfc3339(al->since * 1000, since, sizeof(since));
        pd_jw_obj_begin(&w);
        pd_jw_kstr(&w, "name", al->def->name);
        pd_jw_kstr(&w, "state", pd_alarm_state_name(al->state));
        pd_jw_kstr(&w, "reason", al->reason);
        put_number(&w, "value", al->have_value, al->value);
        put_number(&w, "threshold", true, al->threshold);
        pd_jw_kstr(&w, "since", since);
        pd_jw_obj_end(&w);
    }
    pthread_mutex_unlock(&a->mu);
    pd_jw_arr_end(&w);
    return pd_jw_finish(&w);
}
