/*
 * The recovery worker: charges left `processing` (a crash between the two commits
 * of a confirmation) or with a capture or void requested but not recorded are
 * resolved by asking the processor what happened. An authorization the processor
 * has is applied (no lost authorization); one it does not have fails the charge
 * (nothing moved: no silent double charge, since the processor keys on our charge
 * id). A void the processor did not make is made now (it was requested durably).
 * Refunds left pending are sent again with the same refund id (the processor
 * refunds once per id) and their outcome recorded.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "payd/cluster.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/payments.h"
#include "payd/time.h"

/* what one pass works with */
typedef struct {
    pd_store_t *store;
    pd_processor_t *proc;
    pd_relay_t *relay;
} pass_t;

#define EXPEDITE_GIVE_UP_S 600 /* a charge the store could not mark in this long waits as before */

typedef struct {
    char charge_id[PD_ID_MAX];
    int64_t since; /* Unix seconds it was listed */
} expedite_t;

struct pd_recovery {
    pd_recovery_opts_t o;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu; /* the charges to mark due (pd_recovery_expedite) */
    expedite_t expedite[PD_RECOVERY_EXPEDITE_MAX];
    size_t nexpedite;
};

static void
expedite_add(pd_recovery_t *w, const char *charge_id, int64_t since)
{
    pthread_mutex_lock(&w->mu);
    if (w->nexpedite < PD_RECOVERY_EXPEDITE_MAX) {
        expedite_t *e = &w->expedite[w->nexpedite++];
        snprintf(e->charge_id, sizeof(e->charge_id), "%s", charge_id);
        e->since = since;
    }
    pthread_mutex_unlock(&w->mu);
}

void
pd_recovery_expedite(pd_recovery_t *w, const char *charge_id)
{
    if (w != NULL && charge_id != NULL && charge_id[0] != '\0')
        expedite_add(w, charge_id, pd_unix_now());
}

static int
write_expedite(pd_db_t *tx, void *arg)
{
    return pd_charge_expedite(tx, ((const expedite_t *)arg)->charge_id);
}

/* marks the listed charges due; what the store refuses now (a failover) stays listed */
static void
expedite_listed(pd_recovery_t *w)
{
    expedite_t todo[PD_RECOVERY_EXPEDITE_MAX];
    pthread_mutex_lock(&w->mu);
    size_t n = w->nexpedite;
    memcpy(todo, w->expedite, n * sizeof(todo[0]));
    w->nexpedite = 0;
    pthread_mutex_unlock(&w->mu);
    int64_t now = pd_unix_now();
    for (size_t i = 0; i < n; i++) {
        int r = pd_store_write_sync(w->o.store, write_expedite, &todo[i]);
        if (r == 0) {
            pd_log_info("recovery: a charge whose write ended in doubt is due now", PD_LS("charge", todo[i].charge_id));
        } else if (now - todo[i].since < EXPEDITE_GIVE_UP_S && !atomic_load(&w->stop)) {
            expedite_add(w, todo[i].charge_id, todo[i].since); /* again at the next pass */
        }
    }
}

typedef struct {
    pd_charge_rec_t ch;
    pd_proc_result_t res;
    pd_arena_t arena;
    int status;
    pd_buf_t body;
} fix_t;

static int
write_outcome(pd_db_t *tx, void *arg)
{
    fix_t *f = arg;
    int r = pd_confirm_apply_outcome(tx, &f->arena, f->ch.merchant_id, f->ch.livemode, f->ch.id, &f->res,
                                     pd_unix_now(), &f->status, &f->body);
    if (r == 0 && f->ch.idempotency_key != NULL)
        r = pd_idem_complete(tx, f->ch.merchant_id, f->ch.livemode, f->ch.idempotency_key, f->status,
                             pd_buf_view(&f->body));
    return r;
}

/* completes the idempotency key of the capture or cancel request recovery finished
 * with the response recorded for it (200 and the intent, or the processor's refusal) */
static int
complete_pending_key(pd_db_t *tx, const pd_charge_rec_t *ch, const char *key, int status, pd_buf_t *body)
{
    if (key == NULL || key[0] == '\0')
        return 0;
    return pd_idem_complete(tx, ch->merchant_id, ch->livemode, key, status, pd_buf_view(body));
}

static int
write_capture(pd_db_t *tx, void *arg)
{
    fix_t *f = arg;
    int r = pd_capture_record(tx, &f->arena, &f->ch, &f->res, pd_unix_now(), NULL, &f->status, &f->body);
    return r != 0 ? r : complete_pending_key(tx, &f->ch, f->ch.pending_idempotency_key, f->status, &f->body);
}

static int
write_void(pd_db_t *tx, void *arg)
{
    fix_t *f = arg;
    const char *key = f->ch.pending_idempotency_key;
    int r = pd_cancel_record(tx, &f->arena, &f->ch, &f->res, pd_unix_now(), NULL, key, &f->status, &f->body);
    return r != 0 ? r : complete_pending_key(tx, &f->ch, key, f->status, &f->body);
}

/* a requested capture: made at the processor now if it never got there (it was
 * requested durably, and the client was told it will be completed) */
static void
resolve_capture(pass_t *a, fix_t *f)
{
    bool open = f->res.outcome == PD_PROC_APPROVED && f->res.amount_authorized > 0 && !f->res.captured;
    if (open && f->ch.capture_amount > 0)
        pd_proc_capture_sync(a->proc, f->ch.processor_ref, f->ch.capture_amount, &f->res);
    else if (f->res.outcome == PD_PROC_NOT_FOUND || open)
        f->res.outcome = PD_PROC_DECLINED; /* nothing to capture (or a request from before migration 9) */
}

/* a requested void: made at the processor if it is not yet, then recorded */
static void
resolve_void(pass_t *a, fix_t *f)
{
    bool voided = f->res.outcome == PD_PROC_APPROVED && f->res.amount_authorized == 0 && !f->res.captured;
    bool open = f->res.outcome == PD_PROC_APPROVED && f->res.amount_authorized > 0 && !f->res.captured;
    if (open)
        pd_proc_cancel_sync(a->proc, f->ch.processor_ref, &f->res);
    else if (!voided && f->res.outcome != PD_PROC_UNKNOWN)
        f->res.outcome = PD_PROC_DECLINED; /* captured, or unknown to the processor: nothing to void */
}

static int
resolve(void *rec, void *arg)
{
    pass_t *a = arg;
    fix_t f;
    if (!pd_lease_held(PD_LEASE_RECOVERY))
        return 1; /* the lease lapsed mid-pass: its next holder finishes */
    memset(&f, 0, sizeof(f));
    f.ch = *(pd_charge_rec_t *)rec;
    pd_arena_init(&f.arena, 4u << 20);
    pd_buf_init(&f.body, PD_OBJECT_MAX);
    if (f.ch.idempotency_key != NULL)
        f.ch.idempotency_key = pd_arena_strndup(&f.arena, f.ch.idempotency_key, strlen(f.ch.idempotency_key));
    if (f.ch.pending_idempotency_key != NULL)
        f.ch.pending_idempotency_key =
            pd_arena_strndup(&f.arena, f.ch.pending_idempotency_key, strlen(f.ch.pending_idempotency_key));
    pd_proc_query_sync(a->proc, f.ch.id, &f.res);
    int r = 0;
    if (f.ch.processing) {
        if (f.res.outcome == PD_PROC_NOT_FOUND) {
            /* the authorization never reached the processor */
            f.res.outcome = PD_PROC_DECLINED;
            snprintf(f.res.error_code, sizeof(f.res.error_code), "processing_error");
            snprintf(f.res.decline_code, sizeof(f.res.decline_code), "processing_error");
            snprintf(f.res.message, sizeof(f.res.message),
                     "An error occurred while processing your card. Try again in a little bit.");
            snprintf(f.res.network_status, sizeof(f.res.network_status), "not_sent_to_network");
        }
        if (f.res.outcome != PD_PROC_UNKNOWN && (r = pd_store_write_sync(a->store, write_outcome, &f)) == 0)
            pd_mx_inc(PD_MX_RECOVERY_RESOLVED, PD_MX_RECOVERY_AUTHORIZATION);
    } else if (f.ch.capture_requested && f.res.outcome != PD_PROC_UNKNOWN) {
        resolve_capture(a, &f);
        if (f.res.outcome != PD_PROC_UNKNOWN && (r = pd_store_write_sync(a->store, write_capture, &f)) == 0)
            pd_mx_inc(PD_MX_RECOVERY_RESOLVED, PD_MX_RECOVERY_CAPTURE);
    } else if (f.ch.void_requested && f.res.outcome != PD_PROC_UNKNOWN) {
        resolve_void(a, &f);
        if (f.res.outcome != PD_PROC_UNKNOWN && (r = pd_store_write_sync(a->store, write_void, &f)) == 0)
            pd_mx_inc(PD_MX_RECOVERY_RESOLVED, PD_MX_RECOVERY_VOID);
    }
    if (r == 0 && f.res.outcome != PD_PROC_UNKNOWN)
        pd_log_warn("recovered an interrupted payment", PD_LS("charge", f.ch.id),
                    PD_LS("outcome", f.res.outcome == PD_PROC_APPROVED ? "authorized" : "failed"));
    else if (r != 0 && r != PD_ERR_STATE)
        pd_log_error("recovery of a charge failed", PD_LS("charge", f.ch.id), PD_LERR(r));
    pd_buf_free(&f.body);
    pd_arena_free(&f.arena);
    pd_relay_kick(a->relay);
    return 0;
}

typedef struct {
    pd_refund_rec_t rf;
    pd_proc_result_t res;
    pd_arena_t arena;
    int status;
    pd_buf_t body;
} refund_fix_t;

static int
write_refund(pd_db_t *tx, void *arg)
{
    refund_fix_t *f = arg;
    int r = pd_refund_apply(tx, &f->arena, &f->rf, &f->res, pd_unix_now(), &f->status, &f->body);
    if (r == 0 && f->rf.idempotency_key != NULL && f->rf.idempotency_key[0])
        r = pd_idem_complete(tx, f->rf.merchant_id, f->rf.livemode, f->rf.idempotency_key, f->status,
                             pd_buf_view(&f->body));
    return r;
}

static int
resolve_refund(void *rec, void *arg)
{
    pass_t *a = arg;
    refund_fix_t f;
    pd_charge_rec_t ch;
    if (!pd_lease_held(PD_LEASE_RECOVERY))
        return 1;
    memset(&f, 0, sizeof(f));
    f.rf = *(pd_refund_rec_t *)rec;
    pd_arena_init(&f.arena, 4u << 20);
    pd_buf_init(&f.body, PD_OBJECT_MAX);
    if (f.rf.idempotency_key != NULL)
        f.rf.idempotency_key = pd_arena_strndup(&f.arena, f.rf.idempotency_key, strlen(f.rf.idempotency_key));
    int r = pd_charge_get(pd_store_reader(a->store), &f.arena, f.rf.merchant_id, f.rf.livemode, f.rf.charge, &ch);
    if (r == 0) {
        pd_proc_refund_sync(a->proc, ch.processor_ref, f.rf.amount, f.rf.id, &f.res);
        if (f.res.outcome != PD_PROC_UNKNOWN && (r = pd_store_write_sync(a->store, write_refund, &f)) == 0) {
            pd_mx_inc(PD_MX_RECOVERY_RESOLVED, PD_MX_RECOVERY_REFUND);
            pd_log_warn("recovered an interrupted refund", PD_LS("refund", f.rf.id),
                        PD_LS("outcome", f.res.outcome == PD_PROC_APPROVED ? "succeeded" : "failed"));
        }
    }
    if (r != 0 && r != PD_ERR_STATE)
        pd_log_error("recovery of a refund failed", PD_LS("refund", f.rf.id), PD_LERR(r));
    pd_buf_free(&f.body);
    pd_arena_free(&f.arena);
    pd_relay_kick(a->relay);
    return 0;
}

typedef struct {
    pd_seti_rec_t si;
    pd_proc_result_t res;
    pd_arena_t arena;
    int status;
    pd_buf_t body;
} seti_fix_t;

static int
write_seti(pd_db_t *tx, void *arg)
{
    seti_fix_t *f = arg;
    int r = pd_seti_apply_outcome(tx, &f->arena, f->si.merchant_id, f->si.livemode, f->si.id, &f->res, pd_unix_now(),
                                  NULL, &f->status, &f->body);
    if (r == 0 && f->si.idempotency_key != NULL && f->si.idempotency_key[0])
        r = pd_idem_complete(tx, f->si.merchant_id, f->si.livemode, f->si.idempotency_key, f->status,
                             pd_buf_view(&f->body));
    return r;
}

/* a setup intent left processing: its verification (keyed by the intent's id at the
 * processor) applied as the processor has it, or failed when it never got there */
static int
resolve_seti(void *rec, void *arg)
{
    pass_t *a = arg;
    seti_fix_t f;
    if (!pd_lease_held(PD_LEASE_RECOVERY))
        return 1;
    memset(&f, 0, sizeof(f));
    f.si = *(pd_seti_rec_t *)rec;
    pd_arena_init(&f.arena, 4u << 20);
    pd_buf_init(&f.body, PD_OBJECT_MAX);
    if (f.si.idempotency_key != NULL)
        f.si.idempotency_key = pd_arena_strndup(&f.arena, f.si.idempotency_key, strlen(f.si.idempotency_key));
    char ref[PD_SETI_REF_MAX];
    pd_seti_proc_ref(&f.si, ref, sizeof(ref));
    pd_proc_query_sync(a->proc, ref, &f.res);
    if (f.res.outcome == PD_PROC_NOT_FOUND) {
        f.res.outcome = PD_PROC_DECLINED;
        snprintf(f.res.error_code, sizeof(f.res.error_code), "processing_error");
        snprintf(f.res.decline_code, sizeof(f.res.decline_code), "processing_error");
        snprintf(f.res.message, sizeof(f.res.message),
                 "An error occurred while processing your card. Try again in a little bit.");
    }
    int r = 0;
    if (f.res.outcome != PD_PROC_UNKNOWN && (r = pd_store_write_sync(a->store, write_seti, &f)) == 0) {
        pd_mx_inc(PD_MX_RECOVERY_RESOLVED, PD_MX_RECOVERY_AUTHORIZATION);
        pd_log_warn("recovered an interrupted setup intent", PD_LS("setup_intent", f.si.id),
                    PD_LS("outcome", f.res.outcome == PD_PROC_APPROVED ? "succeeded" : "failed"));
    } else if (r != 0 && r != PD_ERR_STATE) {
        pd_log_error("recovery of a setup intent failed", PD_LS("setup_intent", f.si.id), PD_LERR(r));
    }
    pd_buf_free(&f.body);
    pd_arena_free(&f.arena);
    pd_relay_kick(a->relay);
    return 0;
}

/* one pass over stuck charges, refunds and setup intents */
int
pd_recovery_once(pd_store_t *store, pd_processor_t *proc, pd_relay_t *relay, int64_t older_than)
{
    pass_t a = {store, proc, relay};
    pd_arena_t arena;
    pd_arena_init(&arena, 64u << 20);
    pd_db_t *db = pd_store_reader(store);
    int r = db != NULL ? pd_charge_list_processing(db, &arena, older_than, resolve, &a) : PD_ERR_UNAVAILABLE;
    if (r == 0)
        r = pd_refund_list_pending(db, &arena, older_than, resolve_refund, &a);
    if (r == 0)
        r = pd_seti_list_processing(db, &arena, older_than, resolve_seti, &a);
    pd_arena_free(&arena);
    return r;
}

typedef struct {
    int64_t before;
} purge_t;

static int
write_purge(pd_db_t *tx, void *arg)
{
    return pd_idem_purge(tx, ((purge_t *)arg)->before, 1000);
}

/* idempotency keys older than the TTL are deleted, 1000 per pass */
static void
purge_idempotency_keys(pd_recovery_t *w)
{
    purge_t p = {pd_unix_now() - w->o.idempotency_ttl_ms / 1000};
    bool any = false;
    pd_db_t *db = pd_store_reader(w->o.store);
    if (db != NULL && pd_idem_expired(db, p.before, &any) == 0 && any) {
        int r = pd_store_write_sync(w->o.store, write_purge, &p);
        if (r != 0)
            pd_log_warn("cannot delete expired idempotency keys", PD_LERR(r));
    }
}

/* a reconciliation pass when one is due (repairs what the processor's record decides) */
static void
reconcile_if_due(pd_recovery_t *w, uint64_t *next_ns)
{
    uint64_t now = pd_mono_ns();
    if (w->o.reconcile_interval_ms <= 0 || now < *next_ns)
        return;
    *next_ns = now + (uint64_t)w->o.reconcile_interval_ms * 1000000u;
    pd_reconcile_report_t rep;
    int64_t since = pd_unix_now() - w->o.reconcile_window_ms / 1000;
    if (pd_reconcile(w->o.store, w->o.proc, since, PD_RECON_REPAIR | PD_RECON_AUDIT, &rep) == 0 && rep.repaired > 0)
        pd_relay_kick(w->o.relay); /* the repairs queued events */
}

static void *
recovery_main(void *arg)
{
    pd_recovery_t *w = arg;
    uint64_t next_reconcile = 0;
    pthread_setname_np(pthread_self(), "payd-recovery");
    while (!atomic_load(&w->stop)) {
        /* on every node, lease or not: the charge is marked in the store for the holder */
        expedite_listed(w);
        /* one recovery worker per cluster (docs/cluster.md): the node holding the
         * recovery lease; the others wait (a pass on two nodes would only query the
         * processor twice: every outcome is recorded version-checked) */
        if (pd_lease_held(PD_LEASE_RECOVERY)) {
            int r =
                pd_recovery_once(w->o.store, w->o.proc, w->o.relay, pd_unix_now() - w->o.recovery_after_ms / 1000);
            if (r != 0)
                pd_log_warn("a recovery pass did not finish; the next one retries", PD_LERR(r));
        }
        if (pd_lease_held(PD_LEASE_RECOVERY)) {
            int64_t applied = 0;
            int r = pd_disputes_sync(w->o.store, w->o.proc, &applied);
            if (r != 0)
                pd_log_warn("disputes: a pass did not finish; the next one retries", PD_LERR(r));
            if (applied > 0)
                pd_relay_kick(w->o.relay);
        }
        if (pd_lease_held(PD_LEASE_RECOVERY))
            purge_idempotency_keys(w);
        if (pd_lease_held(PD_LEASE_RECOVERY))
            reconcile_if_due(w, &next_reconcile);
        for (int i = 0; i < 20 && !atomic_load(&w->stop); i++) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

int
pd_recovery_start(pd_recovery_t **out, const pd_recovery_opts_t *o)
{
    pd_recovery_t *w = calloc(1, sizeof(*w));
    *out = NULL;
    if (w == NULL)
        return PD_ERR_NOMEM;
    w->o = *o;
    pthread_mutex_init(&w->mu, NULL);
    if (pthread_create(&w->thread, NULL, recovery_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        free(w);
        return PD_ERR_INTERNAL;
    }
    *out = w;
    return 0;
}

void
pd_recovery_stop(pd_recovery_t *w)
{
    if (w == NULL)
        return;
    atomic_store(&w->stop, true);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
