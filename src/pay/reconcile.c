/*
 * Reconciliation: payd's charges and refunds against the processor's own record.
 *
 * Two passes over a window [since, now]:
 *   1. every authorization the processor changed in the window (its listing, with its
 *      refunds) is compared with payd's charge of that id;
 *   2. every charge payd changed in the window, or refunded in it, that the processor
 *      did not list is compared with the processor's answer to query().
 * A charge with an operation in flight (processing, capture or void requested, refund
 * pending) is the recovery worker's and is skipped. Every mismatch is logged, counted
 * and (with PD_RECON_AUDIT) written to payd's audit log. With PD_RECON_REPAIR the
 * mismatches where the processor's record is authoritative are repaired: a capture or
 * a void the processor made that payd did not record is recorded. Everything else
 * (payd records money the processor does not have, amounts that differ) is reported
 * for a person to resolve.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "payd/payments.h"
#include "payd/audit.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/time.h"

static atomic_llong mismatches_total;

static void
mismatches_collect(void *arg, double *out, size_t n)
{
    (void)arg;
    if (n >= 1)
        out[0] = (double)atomic_load(&mismatches_total);
}

int
pd_reconcile_metrics_attach(void)
{
    return pd_mx != NULL ? pd_metrics_set_collector(pd_mx, PD_MX_RECONCILE_MISMATCHES, mismatches_collect, NULL) : 0;
}

int64_t
pd_reconcile_mismatches_total(void)
{
    return atomic_load(&mismatches_total);
}

typedef struct {
    pd_store_t *store;
    pd_processor_t *proc;
    int flags;
    int64_t since, until;
    pd_reconcile_report_t *rep;
    pd_arena_t arena; /* reset per charge */
} recon_t;

/* payd's view of a charge, in the processor's terms */
static pd_proc_state_t
payd_state(const pd_charge_rec_t *ch, const pd_pi_rec_t *pi)
{
    if (strcmp(ch->status, "failed") == 0)
        return PD_PROC_STATE_DECLINED;
    if (ch->captured)
        return PD_PROC_STATE_CAPTURED;
    return pi->status == PD_PI_CANCELED ? PD_PROC_STATE_VOIDED : PD_PROC_STATE_AUTHORIZED;
}

static const char *
state_name(pd_proc_state_t s)
{
    static const char *const names[] = {"declined", "authorized", "captured", "voided"};
    return names[s];
}

typedef struct {
    const char *kind, *charge, *detail;
    bool repaired;
} mismatch_t;

static int
write_audit(pd_db_t *tx, void *arg)
{
    const mismatch_t *m = arg;
    pd_audit_chain_t chain;
    char origin[64], outcome[80];
    snprintf(origin, sizeof(origin), "reconciliation:pid=%d", (int)getpid());
    snprintf(outcome, sizeof(outcome), m->repaired ? "repaired:%s" : "failure:%s", m->kind);
    pd_audit_rec_t rec = {"reconciliation", "reconcile.mismatch", m->charge, outcome, origin, m->detail};
    int r = pd_audit_load(tx, &chain);
    return r != 0 ? r : pd_audit_append(tx, &chain, pd_unix_now(), &rec);
}

/* logs, counts, audits and reports one mismatch */
static void
report(recon_t *rc, const char *kind, const char *charge, bool repaired, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
report(recon_t *rc, const char *kind, const char *charge, bool repaired, const char *fmt, ...)
{
    char detail[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    pd_reconcile_report_t *rep = rc->rep;
    rep->mismatches++;
    rep->repaired += repaired;
    atomic_fetch_add(&mismatches_total, 1);
    pd_log_warn("reconciliation mismatch", PD_LS("kind", kind), PD_LS("charge", charge),
                PD_LS("action", repaired ? "repaired" : "reported"), PD_LS("detail", detail));
    if (rep->nlines < PD_RECON_MAX_LINES)
        snprintf(rep->lines[rep->nlines++], sizeof(rep->lines[0]), "%s %s%s: %s", kind, charge,
                 repaired ? " (repaired)" : "", detail);
    mismatch_t m = {kind, charge, detail, repaired};
    if ((rc->flags & PD_RECON_AUDIT) && pd_store_write_sync(rc->store, write_audit, &m) != 0)
        pd_log_error("cannot write a reconciliation mismatch to the audit log", PD_LS("charge", charge));
}

/* --- repairs: the processor's record is authoritative --- */

typedef struct {
    recon_t *rc;
    const pd_charge_rec_t *ch;
    pd_proc_result_t res;
    int status;
    pd_buf_t body;
} repair_t;

static int
write_capture(pd_db_t *tx, void *arg)
{
    repair_t *x = arg;
    return pd_capture_record(tx, &x->rc->arena, x->ch, &x->res, pd_unix_now(), NULL, &x->status, &x->body);
}

static int
write_void(pd_db_t *tx, void *arg)
{
    repair_t *x = arg;
    return pd_cancel_record(tx, &x->rc->arena, x->ch, &x->res, pd_unix_now(), NULL, NULL, &x->status, &x->body);
}

/* records what the processor did; true when the write went through */
static bool
repair(recon_t *rc, const pd_charge_rec_t *ch, pd_proc_state_t done, int64_t amount_captured)
{
    if (!(rc->flags & PD_RECON_REPAIR))
        return false;
    repair_t x = {rc, ch, {.outcome = PD_PROC_APPROVED}, 0, {0}};
    x.res.captured = done == PD_PROC_STATE_CAPTURED;
    x.res.amount_captured = amount_captured;
    pd_buf_init(&x.body, PD_OBJECT_MAX);
    int r = pd_store_write_sync(rc->store, done == PD_PROC_STATE_CAPTURED ? write_capture : write_void, &x);
    pd_buf_free(&x.body);
    if (r != 0)
        pd_log_error("reconciliation could not record the processor's outcome", PD_LS("charge", ch->id), PD_LERR(r));
    return r == 0 && x.status == 200;
}

/* --- comparison --- */

typedef struct {
    int64_t succeeded; /* sum of succeeded refunds */
    bool pending;
    const pd_proc_record_t *proc; /* when the processor listed its refunds */
    recon_t *rc;
    const char *charge;
} refunds_t;

static bool
proc_has_refund(const pd_proc_record_t *p, const char *id, int64_t *amount)
{
    for (size_t i = 0; i < p->nrefunds; i++) {
        if (strcmp(p->refunds[i].refund_id, id) == 0) {
            *amount = p->refunds[i].amount;
            return true;
        }
    }
    return false;
}

static int
each_payd_refund(void *rec, void *arg)
{
    const pd_refund_rec_t *f = rec;
    refunds_t *t = arg;
    if (strcmp(f->status, "pending") == 0)
        t->pending = true;
    else if (strcmp(f->status, "succeeded") == 0)
        t->succeeded += f->amount;
    return 0;
}

/* refund by refund: the processor's list against payd's refunds of the charge */
static void
compare_refunds(recon_t *rc, const pd_charge_rec_t *ch, const pd_proc_record_t *p)
{
    for (size_t i = 0; i < p->nrefunds; i++) {
        pd_refund_rec_t f;
        const pd_proc_refund_t *pr = &p->refunds[i];
        if (pd_refund_get(pd_store_reader(rc->store), &rc->arena, ch->merchant_id, ch->livemode, pr->refund_id, &f) !=
            0)
            report(rc, "refund_unknown_to_payd", ch->id, false, "the processor refunded %lld as %s",
                   (long long)pr->amount, pr->refund_id);
        else if (strcmp(f.status, "succeeded") != 0)
            report(rc, "refund_not_recorded", ch->id, false, "refund %s is %s in payd; the processor refunded %lld",
                   f.id, f.status, (long long)pr->amount);
        else if (f.amount != pr->amount)
            report(rc, "refund_amount", ch->id, false, "refund %s: payd %lld, processor %lld", f.id, (long long)f.amount,
                   (long long)pr->amount);
    }
}

typedef struct {
    recon_t *rc;
    const pd_charge_rec_t *ch;
    const pd_proc_record_t *p;
} missing_t;

static int
each_refund_missing(void *rec, void *arg)
{
    const pd_refund_rec_t *f = rec;
    missing_t *m = arg;
    int64_t amount;
    if (strcmp(f->status, "succeeded") == 0 && !proc_has_refund(m->p, f->id, &amount))
        report(m->rc, "refund_not_at_processor", m->ch->id, false, "payd recorded refund %s of %lld", f->id,
               (long long)f->amount);
    return 0;
}

/* compares one charge (ch NULL: payd has none) with the processor's state of it */
static int
compare(recon_t *rc, const char *charge_id, const pd_charge_rec_t *ch, pd_proc_state_t ps, int64_t amount,
        int64_t captured, int64_t refunded, const pd_proc_record_t *p)
{
    pd_reconcile_report_t *rep = rc->rep;
    /* a setup intent's verification: a zero-amount authorization that moves nothing */
    if (ch == NULL && strncmp(charge_id, "seti_", 5) == 0)
        return 0;
    rep->compared++;
    if (ch == NULL) {
        if (ps != PD_PROC_STATE_DECLINED)
            report(rc, "unknown_to_payd", charge_id, false, "the processor has it %s for %lld", state_name(ps),
                   (long long)amount);
        return 0;
    }
    pd_db_t *db = pd_store_reader(rc->store);
    pd_pi_rec_t pi;
    refunds_t t = {0, false, p, rc, ch->id};
    int r = pd_pi_get(db, &rc->arena, ch->merchant_id, ch->livemode, ch->payment_intent, &pi);
    if (r == 0)
        r = pd_refund_list_of_charge(db, &rc->arena, ch->id, each_payd_refund, &t);
    if (r != 0)
        return r;
    if (ch->processing || ch->capture_requested || ch->void_requested || t.pending) {
        rep->in_flight++; /* the recovery worker's */
        return 0;
    }
    pd_proc_state_t ds = payd_state(ch, &pi);
    bool missing_capture = ps == PD_PROC_STATE_CAPTURED && ds == PD_PROC_STATE_AUTHORIZED;
    bool missing_void = ps == PD_PROC_STATE_VOIDED && ds == PD_PROC_STATE_AUTHORIZED;
    if (missing_capture || missing_void) {
        bool fixed = repair(rc, ch, ps, captured);
        if (missing_capture)
            report(rc, "capture_not_recorded", ch->id, fixed, "the processor captured %lld; payd had it authorized",
                   (long long)captured);
        else
            report(rc, "void_not_recorded", ch->id, fixed, "the processor voided it; payd had it authorized");
        return 0;
    }
    if (ps != ds) {
        report(rc, "state", ch->id, false, "payd has it %s, the processor %s", state_name(ds), state_name(ps));
        return 0;
    }
    if (ds == PD_PROC_STATE_DECLINED) {
        rep->matched++;
        return 0;
    }
    bool ok = true;
    if (amount != ch->amount) {
        report(rc, "amount", ch->id, false, "authorized: payd %lld, processor %lld", (long long)ch->amount,
               (long long)amount);
        ok = false;
    }
    if (ds == PD_PROC_STATE_CAPTURED && captured != ch->amount_captured) {
        report(rc, "capture_amount", ch->id, false, "captured: payd %lld, processor %lld",
               (long long)ch->amount_captured, (long long)captured);
        ok = false;
    }
    /* with the processor's refunds listed they are compared one by one below */
    if ((p == NULL && refunded != t.succeeded) || ch->amount_refunded != t.succeeded) {
        report(rc, "refunded", ch->id, false, "refunded: payd %lld (charge %lld), processor %lld",
               (long long)t.succeeded, (long long)ch->amount_refunded, (long long)refunded);
        ok = false;
    }
    if (p != NULL) {
        int64_t before = rep->mismatches;
        compare_refunds(rc, ch, p);
        missing_t m = {rc, ch, p};
        if ((r = pd_refund_list_of_charge(db, &rc->arena, ch->id, each_refund_missing, &m)) != 0)
            return r;
        ok = ok && rep->mismatches == before;
    }
    rep->matched += ok;
    return 0;
}

/* pass 1: one authorization the processor listed */
static int
each_listed(const pd_proc_record_t *p, void *arg)
{
    recon_t *rc = arg;
    pd_charge_rec_t ch;
    pd_arena_free(&rc->arena);
    int r = pd_charge_get_any(pd_store_reader(rc->store), &rc->arena, p->charge_id, &ch);
    if (r != 0 && r != PD_ERR_NOTFOUND)
        return r;
    return compare(rc, p->charge_id, r == 0 ? &ch : NULL, p->state, p->amount, p->amount_captured, p->amount_refunded,
                   p);
}

/* pass 2: one charge payd changed that the processor did not list */
static int
check_unlisted(recon_t *rc, const pd_charge_rec_t *ch)
{
    if (ch->processor_ref[0] == '\0' && strcmp(ch->status, "failed") == 0)
        return 0; /* never reached the processor */
    pd_proc_result_t answer;
    pd_proc_query_sync(rc->proc, ch->id, &answer);
    const pd_proc_result_t *q = &answer;
    if (q->outcome == PD_PROC_UNKNOWN)
        return PD_ERR_UNAVAILABLE;
    if (q->outcome != PD_PROC_NOT_FOUND && q->updated >= rc->since && q->updated < rc->until)
        return 0; /* listed: compared in pass 1 */
    if (q->outcome == PD_PROC_NOT_FOUND) {
        if (strcmp(ch->status, "failed") != 0)
            report(rc, "unknown_to_processor", ch->id, false, "payd has it %s for %lld; the processor has no record",
                   ch->captured ? "captured" : "authorized", (long long)ch->amount);
        else
            rc->rep->matched++;
        rc->rep->compared++;
        return 0;
    }
    pd_proc_state_t ps = q->outcome == PD_PROC_DECLINED ? PD_PROC_STATE_DECLINED
                         : q->captured                  ? PD_PROC_STATE_CAPTURED
                         : q->amount_authorized == 0    ? PD_PROC_STATE_VOIDED
                                                        : PD_PROC_STATE_AUTHORIZED;
    int64_t amount = ps == PD_PROC_STATE_VOIDED ? ch->amount : q->amount_authorized;
    return compare(rc, ch->id, ch, ps, amount, q->amount_captured, q->amount_refunded, NULL);
}

enum { PAGE = 200 }; /* charges read per query; each is then checked with no query open */

typedef struct {
    pd_charge_rec_t *recs;
    size_t n;
} page_t;

static int
collect(void *rec, void *arg)
{
    page_t *pg = arg;
    pg->recs[pg->n++] = *(pd_charge_rec_t *)rec;
    return 0;
}

/* pass 2a: the charges payd changed in the window, a page at a time */
static int
check_changed(recon_t *rc, pd_db_t *db)
{
    pd_arena_t pa;
    pd_arena_init(&pa, 16u << 20);
    int64_t updated = rc->since;
    char after[PD_ID_MAX] = "";
    int r = 0;
    for (;;) {
        pd_arena_free(&pa);
        page_t pg = {pd_arena_calloc(&pa, PAGE * sizeof(pd_charge_rec_t)), 0};
        if (pg.recs == NULL) {
            r = PD_ERR_NOMEM;
            break;
        }
        if ((r = pd_charge_list_updated(db, &pa, updated, after, PAGE, collect, &pg)) != 0 || pg.n == 0)
            break;
        for (size_t i = 0; r == 0 && i < pg.n; i++) {
            pd_arena_free(&rc->arena);
            r = check_unlisted(rc, &pg.recs[i]);
        }
        if (r != 0 || pg.n < PAGE)
            break;
        updated = pg.recs[pg.n - 1].updated;
        snprintf(after, sizeof(after), "%s", pg.recs[pg.n - 1].id);
    }
    pd_arena_free(&pa);
    return r;
}

typedef struct {
    pd_arena_t *a;
    char **ids;
    size_t n, cap;
} ids_t;

static int
collect_id(void *rec, void *arg)
{
    ids_t *t = arg;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        char **ids = pd_arena_calloc(t->a, cap * sizeof(*ids));
        if (ids == NULL)
            return PD_ERR_NOMEM;
        if (t->n > 0)
            memcpy(ids, t->ids, t->n * sizeof(*ids));
        t->ids = ids;
        t->cap = cap;
    }
    const char *id = rec;
    if ((t->ids[t->n] = pd_arena_strndup(t->a, id, strlen(id))) == NULL)
        return PD_ERR_NOMEM;
    t->n++;
    return 0;
}

/* pass 2b: charges refunded in the window that did not change in it */
static int
check_refunded(recon_t *rc, pd_db_t *db)
{
    pd_arena_t ia;
    pd_arena_init(&ia, 64u << 20);
    ids_t t = {&ia, NULL, 0, 0};
    int r = pd_refund_list_charges_since(db, &ia, rc->since, collect_id, &t);
    for (size_t i = 0; r == 0 && i < t.n; i++) {
        pd_charge_rec_t ch;
        pd_arena_free(&rc->arena);
        r = pd_charge_get_any(db, &rc->arena, t.ids[i], &ch);
        if (r == PD_ERR_NOTFOUND)
            r = 0;
        else if (r == 0 && ch.updated < rc->since)
            r = check_unlisted(rc, &ch);
    }
    pd_arena_free(&ia);
    return r;
}

/* each of the processor's disputes against payd's copy: present, same amount, same
 * status, unless the processor changed it in the last DISPUTE_SETTLE_S (the import runs
 * every two seconds and has not caught up yet) */
#define DISPUTE_SETTLE_S 10

static int
check_dispute(const pd_proc_dispute_t *pd, void *arg)
{
    recon_t *rc = arg;
    pd_dispute_rec_t d;
    pd_arena_t a;
    pd_arena_init(&a, 256 * 1024);
    int r = pd_dispute_by_ref(pd_store_reader(rc->store), &a, pd->reference, &d);
    bool recent = pd_unix_now() - pd->updated < DISPUTE_SETTLE_S;
    if (r == PD_ERR_NOTFOUND && !recent)
        report(rc, "dispute_missing", pd->charge_id, false, "the processor's dispute %s (%s, %lld) is not in payd",
               pd->reference, pd->status, (long long)pd->amount);
    else if (r == 0 && !recent && (strcmp(d.status, pd->status) != 0 || d.amount != pd->amount))
        report(rc, "dispute_differs", pd->charge_id, false,
               "dispute %s: payd has %s of %lld, the processor %s of %lld", d.id, d.status, (long long)d.amount,
               pd->status, (long long)pd->amount);
    pd_arena_free(&a);
    return r == PD_ERR_NOTFOUND ? 0 : r;
}

int
pd_reconcile(pd_store_t *store, pd_processor_t *proc, int64_t since, int flags, pd_reconcile_report_t *rep)
{
    memset(rep, 0, sizeof(*rep));
    if (proc->list == NULL)
        return PD_ERR_UNAVAILABLE;
    recon_t rc = {store, proc, flags, since, pd_unix_now() + 1, rep, {0}};
    pd_arena_init(&rc.arena, 1u << 20);
    pd_db_t *db = pd_store_reader(store);
    int r = db == NULL ? PD_ERR_UNAVAILABLE : proc->list(proc, rc.since, rc.until, each_listed, &rc);
    if (r == 0)
        r = check_changed(&rc, db);
    if (r == 0)
        r = check_refunded(&rc, db);
    if (r == 0 && proc->disputes != NULL)
        r = proc->disputes(proc, 0, check_dispute, &rc);
    pd_arena_free(&rc.arena);
    if (r != 0)
        pd_log_error("reconciliation failed", PD_LERR(r));
    else if (rep->mismatches > 0)
        pd_log_warn("reconciliation found mismatches", PD_LI("compared", rep->compared),
                    PD_LI("mismatches", rep->mismatches), PD_LI("repaired", rep->repaired));
    return r;
}
