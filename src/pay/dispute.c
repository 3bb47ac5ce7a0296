/*
 * Disputes (chargebacks) imported from the processor (payd/payments.h,
 * pd_disputes_sync). The card network opens a dispute on a captured charge and decides
 * it; payd follows the processor's record, one change at a time, in the processor's
 * order (its seq), and moves the cursor in the write that applies the change, so each
 * change is applied once whatever crashes in between.
 *
 * Money: a dispute that needs a response has its amount and the dispute fee withdrawn
 * from the merchant (pd_post_dispute_withdrawal, a balance transaction of -amount with
 * the fee); a won dispute gives both back (Stripe's rule for won disputes); a lost one
 * keeps them. An inquiry (warning_needs_response) moves no money until it becomes a
 * dispute. A dispute first seen already decided gets every step it missed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payd/log.h"
#include "payd/money.h"
#include "payd/payments.h"
#include "payd/time.h"
#include "payd/transitions.h"

#define SYNC_BATCH 100
#define CURSOR "processor_disputes"

typedef struct {
    char reference[64], charge_id[PD_ID_MAX], currency[4], reason[40], status[32];
    int64_t amount, seq;
} change_t;

typedef struct {
    change_t *c;
    size_t n;
} batch_t;

static int
collect(const pd_proc_dispute_t *d, void *arg)
{
    batch_t *b = arg;
    change_t *c = &b->c[b->n];
    if (snprintf(c->reference, sizeof(c->reference), "%s", d->reference) >= (int)sizeof(c->reference) ||
        snprintf(c->charge_id, sizeof(c->charge_id), "%s", d->charge_id) >= (int)sizeof(c->charge_id) ||
        snprintf(c->currency, sizeof(c->currency), "%s", d->currency) >= (int)sizeof(c->currency) ||
        snprintf(c->reason, sizeof(c->reason), "%s", d->reason) >= (int)sizeof(c->reason) ||
        snprintf(c->status, sizeof(c->status), "%s", d->status) >= (int)sizeof(c->status))
        return PD_ERR_PROTOCOL;
    c->amount = d->amount;
    c->seq = d->seq;
    return ++b->n == SYNC_BATCH ? 1 : 0;
}

/* the funds are out of the merchant's balance in this status */
static bool
withdrawn(const char *status)
{
    return status != NULL && strcmp(status, "warning_needs_response") != 0;
}

static bool
known_status(const char *s)
{
    static const char *const all[] = {"warning_needs_response", "needs_response", "under_review", "won", "lost"};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(s, all[i]) == 0)
            return true;
    return false;
}

static int
emit(pd_db_t *tx, const pd_dispute_rec_t *d, const char *type, int64_t now)
{
    pd_buf_t b;
    pd_jw_t w;
    pd_buf_init(&b, 16 * 1024);
    pd_jw_init(&w, &b);
    pd_render_dispute(&w, d);
    int r = pd_jw_finish(&w);
    if (r == 0)
        r = pd_emit_raw(tx, d->merchant_id, d->livemode, type, pd_buf_view(&b), NULL, NULL, now);
    pd_buf_free(&b);
    return r;
}

/* the posting and balance transaction of funds moving for dispute d of charge ch */
static int
move_funds(pd_db_t *tx, const pd_dispute_rec_t *d, const pd_charge_rec_t *ch, bool reinstate, int64_t now)
{
    int64_t fee = pd_dispute_fee(pd_currency_exponent(pd_view_cstr(d->currency)));
    pd_posting_t p;
    pd_btxn_rec_t bt;
    if (reinstate)
        pd_post_dispute_reinstatement(&p, d->amount, fee);
    else
        pd_post_dispute_withdrawal(&p, d->amount, fee);
    int r = pd_ledger_insert(tx, d->merchant_id, d->livemode, d->currency, d->id, &p, now);
    if (r == 0)
        r = pd_btxn_for_dispute(&bt, ch, d->id, d->amount, fee, reinstate, now);
    if (r == 0)
        r = pd_btxn_insert(tx, &bt);
    if (r == 0)
        r = pd_charge_set_disputed(tx, ch->id, reinstate ? 2 : 1);
    if (r == 0)
        r = emit(tx, d, reinstate ? "charge.dispute.funds_reinstated" : "charge.dispute.funds_withdrawn", now);
    return r;
}

/* one change of the processor's record, applied with the cursor's move */
static int
apply(pd_db_t *tx, void *arg)
{
    const change_t *c = arg;
    int64_t now = pd_unix_now();
    pd_arena_t a;
    pd_arena_init(&a, 256 * 1024);
    pd_dispute_rec_t d;
    pd_charge_rec_t ch;
    const char *before = NULL;
    char was[32] = "";
    int r = pd_dispute_by_ref(tx, &a, c->reference, &d);
    if (r == 0) {
        snprintf(was, sizeof(was), "%s", d.status);
        before = was;
    } else if (r != PD_ERR_NOTFOUND) {
        goto out;
    }
    if ((r = pd_charge_get_any(tx, &a, c->charge_id, &ch)) == PD_ERR_NOTFOUND || !known_status(c->status)) {
        /* not payd's charge, or a status payd does not know: reported, skipped */
        pd_log_error("disputes: the processor reports a dispute payd cannot apply; skipped",
                     PD_LS("dispute", c->reference), PD_LS("charge", c->charge_id), PD_LS("status", c->status));
        r = pd_cursor_set(tx, CURSOR, c->seq);
        goto out;
    }
    if (r != 0)
        goto out;
    if (before == NULL) {
        memset(&d, 0, sizeof(d));
        if ((r = pd_id_new("dp", d.id, sizeof(d.id))) != 0)
            goto out;
        snprintf(d.merchant_id, sizeof(d.merchant_id), "%s", ch.merchant_id);
        d.livemode = ch.livemode;
        snprintf(d.charge, sizeof(d.charge), "%s", ch.id);
        snprintf(d.payment_intent, sizeof(d.payment_intent), "%s", ch.payment_intent);
        snprintf(d.processor_ref, sizeof(d.processor_ref), "%s", c->reference);
        d.amount = c->amount;
        snprintf(d.currency, sizeof(d.currency), "%s", ch.currency);
        snprintf(d.reason, sizeof(d.reason), "%s", c->reason);
        snprintf(d.status, sizeof(d.status), "%s", c->status);
        d.evidence = "{}";
        d.metadata = "{}";
        d.created = d.updated = now;
        d.seq = pd_next_seq();
        d.version = 1;
        if ((r = pd_dispute_insert(tx, &d)) != 0 || (r = emit(tx, &d, "charge.dispute.created", now)) != 0)
            goto out;
        if (!withdrawn(c->status) && (r = pd_charge_set_disputed(tx, ch.id, 1)) != 0)
            goto out;
    } else if (strcmp(before, c->status) != 0) {
        snprintf(d.status, sizeof(d.status), "%s", c->status);
        if (strcmp(c->status, "under_review") == 0)
            d.evidence_submitted = true;
        d.updated = now;
        d.version++;
        if ((r = pd_dispute_update(tx, &d)) != 0)
            goto out;
    } else {
        r = pd_cursor_set(tx, CURSOR, c->seq); /* a change payd made itself (evidence, acceptance) */
        goto out;
    }
    /* the steps of money the new status calls for and the old one had not taken */
    if (r == 0 && !withdrawn(before) && withdrawn(c->status))
        r = move_funds(tx, &d, &ch, false, now);
    if (r == 0 && strcmp(c->status, "won") == 0 && (before == NULL || strcmp(before, "won") != 0))
        r = move_funds(tx, &d, &ch, true, now);
    if (r == 0 && before != NULL)
        r = emit(tx, &d,
                 strcmp(c->status, "won") == 0 || strcmp(c->status, "lost") == 0 ? "charge.dispute.closed"
                                                                                 : "charge.dispute.updated",
                 now);
    if (r == 0)
        r = pd_cursor_set(tx, CURSOR, c->seq);
out:
    pd_arena_free(&a);
    return r;
}

int
pd_disputes_sync(pd_store_t *store, pd_processor_t *proc, int64_t *applied)
{
    if (applied != NULL)
        *applied = 0;
    if (proc->disputes == NULL)
        return 0;
    pd_db_t *db = pd_store_reader(store);
    if (db == NULL)
        return PD_ERR_UNAVAILABLE;
    int64_t cursor = 0;
    int r = pd_cursor_get(db, CURSOR, &cursor);
    batch_t b = {calloc(SYNC_BATCH, sizeof(change_t)), 0};
    if (r != 0 || b.c == NULL) {
        free(b.c);
        return r != 0 ? r : PD_ERR_NOMEM;
    }
    r = proc->disputes(proc, cursor, collect, &b);
    if (r == 1)
        r = 0; /* a full batch: the rest next pass */
    for (size_t i = 0; r == 0 && i < b.n; i++) {
        if ((r = pd_store_write_sync(store, apply, &b.c[i])) == 0 && applied != NULL)
            (*applied)++;
    }
    free(b.c);
    return r;
}
