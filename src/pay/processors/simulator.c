/*
 * The test-mode processor simulator.
 *
 * Outcomes follow Stripe's documented test cards; every other valid card approves.
 * Authorizations are recorded in the simulator's own SQLite file (WAL,
 * synchronous=NORMAL: it plays an external system that survives payd's crashes,
 * not power loss), keyed by our charge id, so authorize is idempotent and query
 * answers after a restart. The outcome is decided on the caller's thread (the PAN
 * never leaves it); the record is written by the simulator's thread, which commits
 * every authorization waiting at that moment in one transaction and answers each
 * only after its record is committed. The same thread applies the configured latency.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "payd/db.h"
#include "payd/id.h"
#include "payd/log.h"
#include "payd/processor.h"
#include "payd/time.h"

typedef struct delayed {
    struct delayed *next;
    uint64_t due_ns;
    pd_proc_cb cb;
    void *arg;
    pd_proc_result_t res;
} delayed_t;

enum { ST_LOAD_CHARGE, ST_LOAD_REF, ST_INSERT, ST_COUNT };

/* an authorization decided but not yet recorded (no card data in it) */
typedef struct pending {
    struct pending *next;
    char charge_id[64], merchant_id[64], currency[4];
    int64_t amount;
    bool capture;
    bool dispute; /* Stripe's dispute test card: disputed once captured */
    pd_proc_cb cb;
    void *arg;
    pd_proc_result_t res;
} pending_t;

#define DISPUTE_PAN "4000000000000259" /* submitted evidence is decided a second later */

typedef struct {
    pd_processor_t super;
    char *path;
    sqlite3 *db;
    pd_checkpointer_t *ckpt; /* checkpoints (and their fsyncs) off the simulator's thread */
    sqlite3_stmt *st[ST_COUNT];
    pthread_mutex_t db_mu;
    int64_t latency_ms;
    /* the simulator's thread: records authorizations, applies latency */
    pthread_t thread;
    bool thread_started, stopping;
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    pending_t *pending, *pending_tail; /* FIFO */
    delayed_t *queue; /* sorted by due_ns; equal latency keeps FIFO order */
    delayed_t *tail;
} sim_t;

/* Stripe test cards with a fixed outcome */
static const struct {
    const char *pan;
    const char *error_code, *decline_code, *message, *risk;
} special[] = {
    {"4000000000000002", "card_declined", "generic_decline", "Your card was declined.", "normal"},
    {"4000000000009995", "card_declined", "insufficient_funds", "Your card has insufficient funds.", "normal"},
    {"4000000000009987", "card_declined", "lost_card", "Your card was declined.", "normal"},
    {"4000000000009979", "card_declined", "stolen_card", "Your card was declined.", "normal"},
    {"4000000000000069", "expired_card", "expired_card", "Your card has expired.", "normal"},
    {"4000000000000127", "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.", "normal"},
    {"4000000000000119", "processing_error", "processing_error",
     "An error occurred while processing your card. Try again in a little bit.", "normal"},
    {"4000000000000341", "card_declined", "generic_decline", "Your card was declined.", "normal"},
    {"4100000000000019", "card_declined", "fraudulent", "Your card was declined.", "highest"},
    {"4000000000004954", "card_declined", "fraudulent", "Your card was declined.", "highest"},
};

static void
set_str(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

void
pd_simulator_decide(const char *pan, size_t pan_len, const char *cvc, int exp_month, int exp_year,
                    pd_proc_result_t *res)
{
    memset(res, 0, sizeof(*res));
    set_str(res->risk_level, sizeof(res->risk_level), "normal");
    res->risk_score = 20;
    set_str(res->cvc_check, sizeof(res->cvc_check), cvc != NULL && cvc[0] != '\0' ? "pass" : "unchecked");

    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++) {
        if (strlen(special[i].pan) == pan_len && memcmp(special[i].pan, pan, pan_len) == 0) {
            res->outcome = PD_PROC_DECLINED;
            set_str(res->error_code, sizeof(res->error_code), special[i].error_code);
            set_str(res->decline_code, sizeof(res->decline_code), special[i].decline_code);
            set_str(res->message, sizeof(res->message), special[i].message);
            set_str(res->risk_level, sizeof(res->risk_level), special[i].risk);
            res->risk_score = strcmp(special[i].risk, "highest") == 0 ? 95 : 20;
            set_str(res->network_status, sizeof(res->network_status),
                    strcmp(special[i].risk, "highest") == 0 ? "not_sent_to_network" : "declined_by_network");
            if (strcmp(special[i].decline_code, "incorrect_cvc") == 0)
                set_str(res->cvc_check, sizeof(res->cvc_check), "fail");
            return;
        }
    }
    /* 4000 0000 0000 0101: the CVC check fails when a CVC is given */
    if (pan_len == 16 && memcmp(pan, "4000000000000101", 16) == 0 && cvc != NULL && cvc[0] != '\0') {
        res->outcome = PD_PROC_DECLINED;
        set_str(res->error_code, sizeof(res->error_code), "incorrect_cvc");
        set_str(res->decline_code, sizeof(res->decline_code), "incorrect_cvc");
        set_str(res->message, sizeof(res->message), "Your card's security code is incorrect.");
        set_str(res->cvc_check, sizeof(res->cvc_check), "fail");
        set_str(res->network_status, sizeof(res->network_status), "declined_by_network");
        return;
    }
    /* any card past its expiry month is declined as expired */
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (exp_year < tm.tm_year + 1900 || (exp_year == tm.tm_year + 1900 && exp_month < tm.tm_mon + 1)) {
        res->outcome = PD_PROC_DECLINED;
        set_str(res->error_code, sizeof(res->error_code), "expired_card");
        set_str(res->decline_code, sizeof(res->decline_code), "expired_card");
        set_str(res->message, sizeof(res->message), "Your card has expired.");
        set_str(res->network_status, sizeof(res->network_status), "declined_by_network");
        return;
    }
    res->outcome = PD_PROC_APPROVED;
    set_str(res->network_status, sizeof(res->network_status), "approved_by_network");
}

static void
fail_result(pd_proc_result_t *res, const char *msg)
{
    memset(res, 0, sizeof(*res));
    res->outcome = PD_PROC_UNKNOWN;
    set_str(res->error_code, sizeof(res->error_code), "processing_error");
    set_str(res->message, sizeof(res->message), msg);
}

/* answers now, or after the configured latency */
static void
reply(sim_t *s, pd_proc_cb cb, void *arg, const pd_proc_result_t *res)
{
    if (s->latency_ms <= 0) {
        cb(arg, res);
        return;
    }
    delayed_t *d = malloc(sizeof(*d));
    if (d == NULL) {
        cb(arg, res); /* better early than never */
        return;
    }
    d->next = NULL;
    d->due_ns = pd_mono_ns() + (uint64_t)s->latency_ms * 1000000u;
    d->cb = cb;
    d->arg = arg;
    d->res = *res;
    pthread_mutex_lock(&s->q_mu);
    /* constant latency: appending keeps the queue sorted */
    if (s->tail != NULL)
        s->tail->next = d;
    else
        s->queue = d;
    s->tail = d;
    pthread_cond_signal(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
}

/* --- records --- */

static int step_changes(sim_t *s, const char *sql, const char *text1, const char *text2, int64_t num);

/* statements used per authorization, prepared once at start (used under db_mu) */
static const char *const stmt_sql[ST_COUNT] = {
    "SELECT reference, status, error_code, decline_code, message, network_status, cvc_check, "
    "risk_level, amount, amount_captured, amount_refunded, updated FROM auths WHERE charge_id = ?",
    "SELECT reference, status, error_code, decline_code, message, network_status, cvc_check, "
    "risk_level, amount, amount_captured, amount_refunded, updated FROM auths WHERE reference = ?",
    "INSERT INTO auths (charge_id, reference, merchant_id, amount, currency, status, error_code, "
    "decline_code, message, network_status, cvc_check, risk_level, amount_captured, "
    "amount_refunded, created, updated, dispute) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,0,?14,?14,?15)",
};

static int
exec_sql(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        pd_log_error("simulator database error", PD_LS("error", err ? err : "?"));
        sqlite3_free(err);
        return PD_ERR_IO;
    }
    return 0;
}

/* loads the record of a charge into res; returns PD_ERR_NOTFOUND if none (caller holds db_mu) */
static int
load(sim_t *s, const char *charge_id, const char *reference, pd_proc_result_t *res)
{
    sqlite3_stmt *st = s->st[charge_id != NULL ? ST_LOAD_CHARGE : ST_LOAD_REF];
    int r = PD_ERR_NOTFOUND, rc;
    sqlite3_bind_text(st, 1, charge_id != NULL ? charge_id : reference, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(res, 0, sizeof(*res));
        set_str(res->reference, sizeof(res->reference), (const char *)sqlite3_column_text(st, 0));
        const char *status = (const char *)sqlite3_column_text(st, 1);
        res->outcome = strcmp(status, "declined") == 0 ? PD_PROC_DECLINED : PD_PROC_APPROVED;
        res->captured = strcmp(status, "captured") == 0;
        set_str(res->error_code, sizeof(res->error_code), (const char *)sqlite3_column_text(st, 2));
        set_str(res->decline_code, sizeof(res->decline_code), (const char *)sqlite3_column_text(st, 3));
        set_str(res->message, sizeof(res->message), (const char *)sqlite3_column_text(st, 4));
        set_str(res->network_status, sizeof(res->network_status), (const char *)sqlite3_column_text(st, 5));
        set_str(res->cvc_check, sizeof(res->cvc_check), (const char *)sqlite3_column_text(st, 6));
        set_str(res->risk_level, sizeof(res->risk_level), (const char *)sqlite3_column_text(st, 7));
        res->amount_authorized = sqlite3_column_int64(st, 8);
        res->amount_captured = sqlite3_column_int64(st, 9);
        res->amount_refunded = sqlite3_column_int64(st, 10);
        res->updated = sqlite3_column_int64(st, 11);
        if (strcmp(status, "voided") == 0)
            res->amount_authorized = 0;
        r = 0;
    } else if (rc != SQLITE_DONE) {
        r = PD_ERR_IO;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

/* the network disputes the captured authorization `reference` (Stripe's dispute test
 * card): a dispute of its captured amount, needs_response (caller holds db_mu inside a
 * transaction) */
static int
open_dispute(sim_t *s, const char *reference)
{
    char id[PD_ID_MAX];
    if (pd_id_new("sdp", id, sizeof(id)) != 0)
        return PD_ERR_INTERNAL;
    return step_changes(s,
                        "INSERT INTO disputes (reference, charge_id, auth_reference, merchant_id, amount, currency, "
                        "reason, status, evidence, decide_at, created, updated, seq) "
                        "SELECT ?1, charge_id, reference, merchant_id, amount_captured, currency, 'fraudulent', "
                        "'needs_response', '', 0, unixepoch(), unixepoch(), "
                        "(SELECT COALESCE(MAX(seq), 0) + 1 FROM disputes) FROM auths "
                        "WHERE reference = ?2 AND status = 'captured' AND dispute = 1 "
                        "AND NOT EXISTS (SELECT 1 FROM disputes WHERE auth_reference = ?2)",
                        id, reference, 0) >= 0
               ? 0
               : PD_ERR_IO;
}

/* records one decided authorization, or takes the record made earlier for the same
 * charge (authorize is idempotent); caller holds db_mu inside a transaction */
static int
record(sim_t *s, pending_t *p)
{
    int r = load(s, p->charge_id, NULL, &p->res);
    if (r != PD_ERR_NOTFOUND)
        return r;
    pd_proc_result_t *res = &p->res;
    if (pd_id_new("sim", res->reference, sizeof(res->reference)) != 0)
        return PD_ERR_INTERNAL;
    bool approved = res->outcome == PD_PROC_APPROVED;
    res->amount_authorized = approved ? p->amount : 0;
    res->captured = approved && p->capture;
    res->amount_captured = res->captured ? p->amount : 0;
    sqlite3_stmt *st = s->st[ST_INSERT];
    sqlite3_bind_text(st, 1, p->charge_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, res->reference, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->merchant_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, p->amount);
    sqlite3_bind_text(st, 5, p->currency, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, !approved ? "declined" : res->captured ? "captured" : "authorized", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, res->error_code, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, res->decline_code, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, res->message, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 10, res->network_status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, res->cvc_check, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 12, res->risk_level, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 13, res->amount_captured);
    sqlite3_bind_int64(st, 14, pd_unix_now());
    sqlite3_bind_int(st, 15, p->dispute && approved);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE)
        return PD_ERR_IO;
    return res->captured && p->dispute ? open_dispute(s, res->reference) : 0;
}

/* records a batch of authorizations in one transaction, then answers each */
static void
record_batch(sim_t *s, pending_t *batch)
{
    pthread_mutex_lock(&s->db_mu);
    bool ok = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
    for (pending_t *p = batch; ok && p != NULL; p = p->next)
        ok = record(s, p) == 0;
    if (ok)
        ok = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) {
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        pd_log_error("simulator database write failed", PD_LS("error", sqlite3_errmsg(s->db)));
    }
    pthread_mutex_unlock(&s->db_mu);
    while (batch != NULL) {
        pending_t *next = batch->next;
        /* nothing recorded: no answer (payd's recovery asks again later) */
        if (!ok)
            fail_result(&batch->res, "simulator database write failed");
        reply(s, batch->cb, batch->arg, &batch->res);
        free(batch);
        batch = next;
    }
}

/* the simulator's thread: records waiting authorizations, answers delayed replies when due */
static void *
sim_main(void *arg)
{
    sim_t *s = arg;
    pthread_setname_np(pthread_self(), "payd-simulator");
    pthread_mutex_lock(&s->q_mu);
    for (;;) {
        if (s->pending != NULL) {
            pending_t *batch = s->pending;
            s->pending = s->pending_tail = NULL;
            pthread_mutex_unlock(&s->q_mu);
            record_batch(s, batch);
            pthread_mutex_lock(&s->q_mu);
            continue;
        }
        uint64_t now = pd_mono_ns();
        delayed_t *d = s->queue;
        if (d != NULL && d->due_ns <= now) {
            s->queue = d->next;
            if (s->queue == NULL)
                s->tail = NULL;
            pthread_mutex_unlock(&s->q_mu);
            d->cb(d->arg, &d->res);
            free(d);
            pthread_mutex_lock(&s->q_mu);
            continue;
        }
        if (s->stopping && d == NULL)
            break;
        if (d == NULL) {
            pthread_cond_wait(&s->q_cv, &s->q_mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t wait = d->due_ns - now;
        ts.tv_sec += (time_t)(wait / 1000000000u);
        ts.tv_nsec += (long)(wait % 1000000000u);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->q_cv, &s->q_mu, &ts);
    }
    pthread_mutex_unlock(&s->q_mu);
    return NULL;
}

static void
sim_authorize(pd_processor_t *p, const pd_proc_auth_t *req, pd_proc_cb cb, void *arg)
{
    sim_t *s = (sim_t *)p;
    pending_t *pd = calloc(1, sizeof(*pd));
    if (pd == NULL || strlen(req->charge_id) >= sizeof(pd->charge_id) ||
        strlen(req->merchant_id) >= sizeof(pd->merchant_id) || strlen(req->currency) >= sizeof(pd->currency)) {
        pd_proc_result_t res;
        free(pd);
        fail_result(&res, pd == NULL ? "out of memory" : "malformed request");
        reply(s, cb, arg, &res);
        return;
    }
    pd_simulator_decide(req->pan, req->pan_len, req->cvc, req->exp_month, req->exp_year, &pd->res);
    set_str(pd->charge_id, sizeof(pd->charge_id), req->charge_id);
    set_str(pd->merchant_id, sizeof(pd->merchant_id), req->merchant_id);
    set_str(pd->currency, sizeof(pd->currency), req->currency);
    pd->amount = req->amount;
    pd->capture = req->capture;
    pd->dispute = req->pan_len == strlen(DISPUTE_PAN) && memcmp(req->pan, DISPUTE_PAN, req->pan_len) == 0;
    pd->cb = cb;
    pd->arg = arg;
    pthread_mutex_lock(&s->q_mu);
    if (s->pending_tail != NULL)
        s->pending_tail->next = pd;
    else
        s->pending = pd;
    s->pending_tail = pd;
    pthread_cond_signal(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
}

/* runs one statement under db_mu with ?1 ?2 ?3 bound (a statement that has fewer
 * ignores the rest); returns the rows changed (1 for a SELECT that found a row) or -1 */
static int
step_changes(sim_t *s, const char *sql, const char *text1, const char *text2, int64_t num)
{
    sqlite3_stmt *st = NULL;
    int changed = -1;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, text1, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, text2, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, num);
        int rc = sqlite3_step(st);
        if (sqlite3_stmt_readonly(st))
            changed = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
        else
            changed = rc == SQLITE_DONE ? sqlite3_changes(s->db) : -1;
    }
    sqlite3_finalize(st);
    return changed;
}

/* answers an operation on the authorization `reference` with its state afterwards:
 * approved when the operation took effect, declined when its state did not allow it
 * (caller holds db_mu; it is released here) */
static void
answer_locked(sim_t *s, const char *reference, bool ok, bool took_effect, pd_proc_cb cb, void *arg)
{
    pd_proc_result_t res;
    int lr = load(s, NULL, reference, &res);
    pthread_mutex_unlock(&s->db_mu);
    if (!ok || lr != 0) {
        fail_result(&res, "simulator database error");
        if (lr == PD_ERR_NOTFOUND)
            res.outcome = PD_PROC_NOT_FOUND;
    } else if (took_effect) {
        res.outcome = PD_PROC_APPROVED;
    } else {
        /* already captured, voided, over the captured amount */
        res.outcome = PD_PROC_DECLINED;
        set_str(res.error_code, sizeof(res.error_code), "processing_error");
        set_str(res.message, sizeof(res.message), "The processor refused the operation in the current state.");
    }
    reply(s, cb, arg, &res);
}

/* runs an UPDATE of the authorization `reference` (?2; the amount is ?3) and answers */
static void
update_and_reply(sim_t *s, const char *reference, const char *sql, int64_t amount, pd_proc_cb cb, void *arg)
{
    pthread_mutex_lock(&s->db_mu);
    int changed = step_changes(s, sql, NULL, reference, amount);
    answer_locked(s, reference, changed >= 0, changed > 0, cb, arg);
}

static void
sim_capture(pd_processor_t *p, const char *reference, int64_t amount, pd_proc_cb cb, void *arg)
{
    sim_t *s = (sim_t *)p;
    pthread_mutex_lock(&s->db_mu);
    bool ok = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
    int changed = ok ? step_changes(s,
                                    "UPDATE auths SET status = 'captured', amount_captured = ?3, updated = unixepoch() "
                                    "WHERE reference = ?2 AND status = 'authorized' AND ?3 > 0 AND ?3 <= amount",
                                    NULL, reference, amount)
                     : -1;
    ok = changed >= 0 && (changed == 0 || open_dispute(s, reference) == 0) &&
         sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok)
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    answer_locked(s, reference, ok, changed > 0, cb, arg);
}

static void
sim_cancel(pd_processor_t *p, const char *reference, pd_proc_cb cb, void *arg)
{
    /* voiding a voided authorization succeeds again: a retried cancel must not read as refused */
    update_and_reply((sim_t *)p, reference,
                     "UPDATE auths SET status = 'voided', updated = unixepoch() "
                     "WHERE reference = ?2 AND status IN ('authorized', 'voided')",
                     0, cb, arg);
}


/* idempotent by refund id: a refund id the processor accepted before is acknowledged
 * again without moving money; one it refused is decided anew */
static void
sim_refund(pd_processor_t *p, const char *reference, int64_t amount, const char *refund_id, pd_proc_cb cb, void *arg)
{
    sim_t *s = (sim_t *)p;
    int seen = -1, changed = -1;
    pthread_mutex_lock(&s->db_mu);
    bool ok = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
    if (ok)
        seen = step_changes(s, "SELECT 1 FROM refunds WHERE refund_id = ?1",
                            refund_id, reference, 0);
    if (ok && seen == 0)
        changed = step_changes(s,
                               "UPDATE auths SET amount_refunded = amount_refunded + ?3, updated = unixepoch() "
                               "WHERE reference = ?2 "
                               "AND status = 'captured' AND ?3 > 0 AND amount_refunded + ?3 <= amount_captured",
                               refund_id, reference, amount);
    if (ok && changed == 1)
        ok = step_changes(s, "INSERT INTO refunds (refund_id, reference, amount, created) VALUES (?1, ?2, ?3, unixepoch())", refund_id,
                          reference, amount) == 1;
    ok = ok && seen >= 0 && (seen == 1 || changed >= 0) && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok)
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    answer_locked(s, reference, ok, seen == 1 || changed == 1, cb, arg);
}

static void
sim_query(pd_processor_t *p, const char *charge_id, pd_proc_cb cb, void *arg)
{
    sim_t *s = (sim_t *)p;
    pd_proc_result_t res;
    pthread_mutex_lock(&s->db_mu);
    int r = load(s, charge_id, NULL, &res);
    pthread_mutex_unlock(&s->db_mu);
    if (r == PD_ERR_NOTFOUND) {
        memset(&res, 0, sizeof(res));
        res.outcome = PD_PROC_NOT_FOUND;
    } else if (r != 0) {
        fail_result(&res, "simulator database error");
    }
    reply(s, cb, arg, &res);
}

/* --- the listing for reconciliation, on a connection of its own (WAL: it never
 * waits for the simulator's writes, nor they for it) --- */

static const char *
col_text(sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    return t != NULL ? t : "";
}

static pd_proc_state_t
state_of(const char *status)
{
    return strcmp(status, "captured") == 0   ? PD_PROC_STATE_CAPTURED
           : strcmp(status, "voided") == 0   ? PD_PROC_STATE_VOIDED
           : strcmp(status, "declined") == 0 ? PD_PROC_STATE_DECLINED
                                             : PD_PROC_STATE_AUTHORIZED;
}

enum { LIST_MAX_REFUNDS = 256 }; /* refunds of one authorization reported (more: PD_ERR_TOOBIG) */

/* the refunds of the authorization `reference` into out (ids copied into names) */
static int
list_refunds(sqlite3_stmt *st, const char *reference, pd_proc_refund_t *out, char (*names)[64], size_t *n)
{
    int rc, r = 0;
    *n = 0;
    sqlite3_bind_text(st, 1, reference, -1, SQLITE_TRANSIENT);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == LIST_MAX_REFUNDS) {
            r = PD_ERR_TOOBIG;
            break;
        }
        set_str(names[*n], sizeof(names[*n]), col_text(st, 0));
        out[*n] = (pd_proc_refund_t){names[*n], sqlite3_column_int64(st, 1)};
        (*n)++;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = PD_ERR_IO;
    sqlite3_reset(st);
    return r;
}

static int
sim_list(pd_processor_t *p, int64_t since, int64_t until, pd_proc_record_fn fn, void *arg)
{
    sim_t *s = (sim_t *)p;
    sqlite3 *db = NULL;
    sqlite3_stmt *auths = NULL, *refunds = NULL;
    pd_proc_refund_t *rf = calloc(LIST_MAX_REFUNDS, sizeof(*rf));
    char(*names)[64] = calloc(LIST_MAX_REFUNDS, sizeof(*names));
    int r = PD_ERR_IO, rc = SQLITE_ERROR;
    if (rf == NULL || names == NULL) {
        r = PD_ERR_NOMEM;
        goto out;
    }
    if (sqlite3_open_v2(s->path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA busy_timeout=5000; BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT charge_id, reference, merchant_id, currency, status, amount, amount_captured, "
                           "amount_refunded, created, updated FROM auths WHERE updated >= ?1 AND updated < ?2 "
                           "ORDER BY updated, charge_id",
                           -1, &auths, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT refund_id, amount FROM refunds WHERE reference = ?1 ORDER BY created, refund_id",
                           -1, &refunds, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(auths, 1, since);
    sqlite3_bind_int64(auths, 2, until);
    r = 0;
    while (r == 0 && (rc = sqlite3_step(auths)) == SQLITE_ROW) {
        pd_proc_record_t rec = {
            .charge_id = col_text(auths, 0),
            .reference = col_text(auths, 1),
            .merchant_id = col_text(auths, 2),
            .currency = col_text(auths, 3),
            .state = state_of(col_text(auths, 4)),
            .amount = sqlite3_column_int64(auths, 5),
            .amount_captured = sqlite3_column_int64(auths, 6),
            .amount_refunded = sqlite3_column_int64(auths, 7),
            .created = sqlite3_column_int64(auths, 8),
            .updated = sqlite3_column_int64(auths, 9),
            .refunds = rf,
        };
        if ((r = list_refunds(refunds, rec.reference, rf, names, &rec.nrefunds)) == 0)
            r = fn(&rec, arg);
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = PD_ERR_IO;
out:
    if (r == PD_ERR_IO)
        pd_log_error("cannot list the simulator's record", PD_LS("error", db != NULL ? sqlite3_errmsg(db) : "open"));
    sqlite3_finalize(auths);
    sqlite3_finalize(refunds);
    sqlite3_close(db); /* ends the read transaction */
    free(rf);
    free(names);
    return r;
}

/* --- disputes --- */

/* decides the submitted disputes whose review time has come (caller holds db_mu) */
static int
decide_reviews(sim_t *s)
{
    /* one at a time, each taking the next seq */
    for (int i = 0; i < 1000; i++) {
        int changed = step_changes(s,
                                   "UPDATE disputes SET status = CASE WHEN instr(evidence, 'winning_evidence') > 0 "
                                   "THEN 'won' ELSE 'lost' END, updated = unixepoch(), "
                                   "seq = (SELECT MAX(seq) FROM disputes) + 1 WHERE reference = (SELECT reference "
                                   "FROM disputes WHERE status = 'under_review' AND decide_at > 0 AND decide_at <= ?3 "
                                   "ORDER BY decide_at, reference LIMIT 1)",
                                   NULL, NULL, pd_unix_now());
        if (changed <= 0)
            return changed < 0 ? PD_ERR_IO : 0;
    }
    return 0;
}

static int
sim_disputes(pd_processor_t *p, int64_t after, pd_proc_dispute_fn fn, void *arg)
{
    sim_t *s = (sim_t *)p;
    sqlite3_stmt *st = NULL;
    int r = 0, rc = SQLITE_ERROR;
    pthread_mutex_lock(&s->db_mu);
    if ((r = decide_reviews(s)) == 0 &&
        sqlite3_prepare_v2(s->db,
                           "SELECT reference, charge_id, currency, reason, status, amount, created, updated, seq "
                           "FROM disputes WHERE seq > ?1 ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK)
        r = PD_ERR_IO;
    if (r == 0)
        sqlite3_bind_int64(st, 1, after);
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        pd_proc_dispute_t d = {col_text(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3), col_text(st, 4),
                               sqlite3_column_int64(st, 5), sqlite3_column_int64(st, 6), sqlite3_column_int64(st, 7),
                               sqlite3_column_int64(st, 8)};
        r = fn(&d, arg);
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = PD_ERR_IO;
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->db_mu);
    return r;
}

static void
sim_dispute_respond(pd_processor_t *p, const char *reference, const char *evidence, bool submit, bool accept,
                    pd_proc_cb cb, void *arg)
{
    sim_t *s = (sim_t *)p;
    pd_proc_result_t res;
    memset(&res, 0, sizeof(res));
    set_str(res.reference, sizeof(res.reference), reference);
    pthread_mutex_lock(&s->db_mu);
    /* the network takes evidence and an acceptance only while the dispute awaits them */
    int open = step_changes(s, "SELECT 1 FROM disputes WHERE reference = ?2 AND status IN "
                               "('needs_response', 'warning_needs_response')",
                            NULL, reference, 0);
    int exists = step_changes(s, "SELECT 1 FROM disputes WHERE reference = ?2", NULL, reference, 0);
    int changed = open == 1 ? step_changes(s,
                                           "UPDATE disputes SET evidence = COALESCE(?1, evidence), "
                                           "status = CASE WHEN ?3 = 2 THEN 'lost' WHEN ?3 = 1 THEN 'under_review' "
                                           "ELSE status END, "
                                           "decide_at = CASE WHEN ?3 = 1 AND (instr(COALESCE(?1, evidence), "
                                           "'winning_evidence') > 0 OR instr(COALESCE(?1, evidence), "
                                           "'losing_evidence') > 0) THEN unixepoch() + 1 "
                                           "ELSE 0 END, updated = unixepoch(), "
                                           "seq = (SELECT MAX(seq) FROM disputes) + 1 WHERE reference = ?2",
                                           evidence, reference, accept ? 2 : submit ? 1 : 0)
                                : 0;
    pthread_mutex_unlock(&s->db_mu);
    if (open < 0 || exists < 0 || changed < 0) {
        fail_result(&res, "simulator database error");
    } else if (exists == 0) {
        res.outcome = PD_PROC_NOT_FOUND;
    } else if (open == 0) {
        res.outcome = PD_PROC_DECLINED;
        set_str(res.message, sizeof(res.message), "The dispute no longer takes evidence or an acceptance.");
    } else {
        res.outcome = PD_PROC_APPROVED;
    }
    reply(s, cb, arg, &res);
}

static void
sim_free(pd_processor_t *p)
{
    sim_t *s = (sim_t *)p;
    if (s == NULL)
        return;
    if (s->thread_started) {
        /* the thread records and answers what is queued before it ends */
        pthread_mutex_lock(&s->q_mu);
        s->stopping = true;
        pthread_cond_signal(&s->q_cv);
        pthread_mutex_unlock(&s->q_mu);
        pthread_join(s->thread, NULL);
    }
    pd_checkpointer_stop(s->ckpt);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->db_mu);
    pthread_mutex_destroy(&s->q_mu);
    pthread_cond_destroy(&s->q_cv);
    free(s->path);
    free(s);
}

/* adds a column that a simulator file made by an older payd lacks */
static int
add_column(sqlite3 *db, const char *table, const char *column, const char *alter)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT %s FROM %s LIMIT 0", column, table);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : exec_sql(db, alter);
}

int
pd_simulator_new(pd_processor_t **out, const char *db_path, int64_t latency_ms)
{
    sim_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return PD_ERR_NOMEM;
    s->super = (pd_processor_t){"simulator", sim_authorize, sim_capture,  sim_cancel,         sim_refund,
                                sim_query,   sim_list,      sim_free,     sim_disputes,       sim_dispute_respond};
    s->latency_ms = latency_ms;
    if ((s->path = strdup(db_path)) == NULL) {
        free(s);
        return PD_ERR_NOMEM;
    }
    pthread_mutex_init(&s->db_mu, NULL);
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cv, NULL);
    pd_sqlite_setup();
    if (sqlite3_open_v2(db_path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
            SQLITE_OK ||
        exec_sql(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;"
                        "PRAGMA wal_autocheckpoint=0;"
                        "CREATE TABLE IF NOT EXISTS auths (charge_id TEXT PRIMARY KEY, reference TEXT UNIQUE NOT NULL,"
                        " merchant_id TEXT NOT NULL, amount INTEGER NOT NULL, currency TEXT NOT NULL,"
                        " status TEXT NOT NULL, error_code TEXT NOT NULL, decline_code TEXT NOT NULL,"
                        " message TEXT NOT NULL, network_status TEXT NOT NULL, cvc_check TEXT NOT NULL,"
                        " risk_level TEXT NOT NULL, amount_captured INTEGER NOT NULL,"
                        " amount_refunded INTEGER NOT NULL, created INTEGER NOT NULL);"
                        "CREATE TABLE IF NOT EXISTS refunds (refund_id TEXT PRIMARY KEY, reference TEXT NOT NULL,"
                        " amount INTEGER NOT NULL);") != 0 ||
        add_column(s->db, "auths", "updated", "ALTER TABLE auths ADD COLUMN updated INTEGER NOT NULL DEFAULT 0;"
                                              "UPDATE auths SET updated = created;") != 0 ||
        add_column(s->db, "refunds", "created", "ALTER TABLE refunds ADD COLUMN created INTEGER NOT NULL DEFAULT 0;") !=
            0 ||
        add_column(s->db, "auths", "dispute", "ALTER TABLE auths ADD COLUMN dispute INTEGER NOT NULL DEFAULT 0;") != 0 ||
        exec_sql(s->db, "CREATE TABLE IF NOT EXISTS disputes (reference TEXT PRIMARY KEY, charge_id TEXT NOT NULL,"
                        " auth_reference TEXT NOT NULL, merchant_id TEXT NOT NULL, amount INTEGER NOT NULL,"
                        " currency TEXT NOT NULL, reason TEXT NOT NULL, status TEXT NOT NULL, evidence TEXT NOT NULL,"
                        " decide_at INTEGER NOT NULL, created INTEGER NOT NULL, updated INTEGER NOT NULL,"
                        " seq INTEGER NOT NULL);"
                        "CREATE INDEX IF NOT EXISTS disputes_seq ON disputes(seq);") != 0 ||
        exec_sql(s->db, "CREATE INDEX IF NOT EXISTS auths_updated ON auths(updated);"
                        "CREATE INDEX IF NOT EXISTS refunds_reference ON refunds(reference);") != 0) {
        pd_log_error("cannot open the simulator database", PD_LS("path", db_path));
        sim_free(&s->super);
        return PD_ERR_IO;
    }
    if (pd_checkpointer_start(&s->ckpt, db_path) != 0) {
        sim_free(&s->super);
        return PD_ERR_NOMEM;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK) {
            pd_log_error("cannot prepare the simulator's statements", PD_LS("error", sqlite3_errmsg(s->db)));
            sim_free(&s->super);
            return PD_ERR_IO;
        }
    }
    if (pthread_create(&s->thread, NULL, sim_main, s) != 0) {
        sim_free(&s->super);
        return PD_ERR_INTERNAL;
    }
    s->thread_started = true;
    *out = &s->super;
    return 0;
}
