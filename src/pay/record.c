/*
 * Phase 2 of a capture, a void and a refund: the processor's answer recorded on the
 * records as stored when it arrives (the request, recovery and reconciliation share
 * these), with the ledger, the balance transaction, the events and the response.
 */
#include <stdio.h>
#include <string.h>

#include "payd/payments.h"
#include "payd/transitions.h"

/* records a capture the processor made: charge, ledger (capture + release), balance
 * transaction, intent, events; renders the intent into body */
static int
capture_apply(pd_db_t *tx, pd_charge_rec_t *ch, pd_pi_rec_t *pi, int64_t captured, int64_t now,
                 const char *request_id, pd_buf_t *body)
{
    pd_posting_t post;
    pd_btxn_rec_t bt;
    pd_jw_t w;
    int r;
    if ((r = pd_pay_captured(ch, pi, captured, now, &post, &bt)) != 0 ||
        (r = pd_ledger_insert(tx, ch->merchant_id, ch->livemode, ch->currency, ch->id, &post, now)) != 0)
        return r;
    if ((r = pd_btxn_insert(tx, &bt)) != 0 || (r = pd_charge_update(tx, ch)) != 0 || (r = pd_pi_update(tx, pi)) != 0)
        return r;
    pd_buf_t chb;
    pd_jw_t cw;
    pd_buf_init(&chb, PD_OBJECT_MAX);
    pd_jw_init(&cw, &chb);
    pd_render_charge(&cw, ch, NULL);
    r = pd_jw_finish(&cw);
    if (r == 0)
        r = pd_emit_raw(tx, ch->merchant_id, ch->livemode, "charge.captured", pd_buf_view(&chb), request_id, NULL, now);
    pd_buf_free(&chb);
    if (r != 0)
        return r;
    pd_buf_reset(body);
    pd_jw_init(&w, body);
    pd_render_pi(&w, pi);
    if ((r = pd_jw_finish(&w)) != 0)
        return r;
    return pd_emit_raw(tx, ch->merchant_id, ch->livemode, "payment_intent.succeeded", pd_buf_view(body), request_id,
                       NULL, now);
}

/* the charge and its intent as stored now (inside the write) */
static int
reload(pd_db_t *tx, pd_arena_t *a, const char *merchant, bool livemode, const char *charge_id, pd_charge_rec_t *ch,
       pd_pi_rec_t *pi)
{
    int r = pd_charge_get(tx, a, merchant, livemode, charge_id, ch);
    return r != 0 ? r : pd_pi_get(tx, a, merchant, livemode, ch->payment_intent, pi);
}

static int
render_pi(const pd_pi_rec_t *pi, pd_buf_t *body)
{
    pd_jw_t w;
    pd_buf_reset(body);
    pd_jw_init(&w, body);
    pd_render_pi(&w, pi);
    return pd_jw_finish(&w);
}

/* 402 card_error with the processor's reason */
static int
refused(const pd_proc_result_t *res, const char *code, const char *what, const char *request_id, int *status,
        pd_buf_t *body)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "%s: %s", what, res->message[0] != '\0' ? res->message : "no reason given");
    *status = 402;
    return pd_error_json(body, "card_error", code, NULL, NULL, request_id, msg);
}

int
pd_capture_record(pd_db_t *tx, pd_arena_t *a, const pd_charge_rec_t *charge, const pd_proc_result_t *res,
                  int64_t now, const char *request_id, int *status, pd_buf_t *body)
{
    pd_charge_rec_t ch;
    pd_pi_rec_t pi;
    int r;
    if ((r = reload(tx, a, charge->merchant_id, charge->livemode, charge->id, &ch, &pi)) != 0)
        return r;
    /* the processor's state after the call is the truth: a refused repeat of a capture
     * it already made still reports the authorization captured */
    bool captured = res->outcome == PD_PROC_APPROVED || res->captured;
    if (ch.captured || (captured && pi.status != PD_PI_REQUIRES_CAPTURE)) {
        /* recorded already (recovery or reconciliation came first), or the intent left
         * requires_capture some other way (reconciliation reports that): answer it as it is */
        *status = 200;
        return render_pi(&pi, body);
    }
    if (captured) {
        int64_t amount = res->amount_captured > 0 ? res->amount_captured : ch.capture_amount;
        if (amount <= 0 || amount > ch.amount)
            return PD_ERR_STATE;
        *status = 200;
        return capture_apply(tx, &ch, &pi, amount, now, request_id, body);
    }
    if (ch.capture_requested) {
        ch.capture_requested = false;
        ch.capture_amount = 0;
        ch.pending_idempotency_key = NULL;
        ch.version++;
        if ((r = pd_charge_update(tx, &ch)) != 0)
            return r;
    }
    return refused(res, "capture_failed", "The processor refused the capture", request_id, status, body);
}

/* records a void the processor made (ch NULL when nothing was authorized) and the
 * intent canceled, rendering it into body */
static int
cancel_apply(pd_db_t *tx, pd_charge_rec_t *ch, pd_pi_rec_t *pi, int64_t now, const char *request_id,
                const char *idem_key, pd_buf_t *body)
{
    pd_jw_t w;
    int r;
    pd_posting_t post;
    if ((r = pd_pay_voided(ch, pi, now, &post)) != 0)
        return r;
    if (ch != NULL && ((r = pd_charge_update(tx, ch)) != 0 ||
                       (r = pd_ledger_insert(tx, ch->merchant_id, ch->livemode, ch->currency, ch->id, &post, now)) != 0))
        return r;
    if ((r = pd_pi_update(tx, pi)) != 0)
        return r;
    pd_buf_reset(body);
    pd_jw_init(&w, body);
    pd_render_pi(&w, pi);
    if ((r = pd_jw_finish(&w)) != 0)
        return r;
    return pd_emit_raw(tx, pi->merchant_id, pi->livemode, "payment_intent.canceled", pd_buf_view(body), request_id,
                       idem_key, now);
}

/* the processor refused the void: the charge and intent go back to capturable */
static int
cancel_refused(pd_db_t *tx, pd_charge_rec_t *ch, pd_pi_rec_t *pi)
{
    ch->void_requested = false;
    ch->pending_idempotency_key = NULL;
    ch->version++;
    pi->cancellation_reason[0] = '\0';
    pi->version++;
    int r = pd_charge_update(tx, ch);
    return r != 0 ? r : pd_pi_update(tx, pi);
}

int
pd_cancel_unauthorized(pd_db_t *tx, pd_pi_rec_t *pi, int64_t now, const char *request_id, const char *idem_key,
                       pd_buf_t *body)
{
    return cancel_apply(tx, NULL, pi, now, request_id, idem_key, body);
}

int
pd_cancel_record(pd_db_t *tx, pd_arena_t *a, const pd_charge_rec_t *charge, const pd_proc_result_t *res,
                 int64_t now, const char *request_id, const char *idem_key, int *status, pd_buf_t *body)
{
    pd_charge_rec_t ch;
    pd_pi_rec_t pi;
    int r;
    if ((r = reload(tx, a, charge->merchant_id, charge->livemode, charge->id, &ch, &pi)) != 0)
        return r;
    if (pi.status == PD_PI_CANCELED || ch.captured) {
        /* recorded already, or captured (a capture the processor made wins; reconciliation
         * records it if nothing did): answer the intent as it is */
        *status = pi.status == PD_PI_CANCELED ? 200 : 402;
        if (*status == 200)
            return render_pi(&pi, body);
        return pd_error_json(body, "card_error", "processing_error", NULL, NULL, request_id,
                             "The processor refused to void the authorization: it was captured.");
    }
    if (res->outcome == PD_PROC_APPROVED) {
        *status = 200;
        return cancel_apply(tx, &ch, &pi, now, request_id, idem_key, body);
    }
    if (ch.void_requested && (r = cancel_refused(tx, &ch, &pi)) != 0)
        return r;
    return refused(res, "processing_error", "The processor refused to void the authorization", request_id, status,
                   body);
}

static void
render_refund_cb(pd_jw_t *w, const void *rec)
{
    pd_render_refund(w, rec);
}

int
pd_refund_apply(pd_db_t *tx, pd_arena_t *a, const pd_refund_rec_t *pending, const pd_proc_result_t *res, int64_t now,
                int *status_out, pd_buf_t *body_out)
{
    pd_refund_rec_t f = *pending;
    pd_charge_rec_t ch;
    int r;
    /* the charge as it is now: other refunds may have changed it since phase 1 */
    if ((r = pd_charge_get(tx, a, f.merchant_id, f.livemode, f.charge, &ch)) != 0)
        return r;
    const char *idem = f.idempotency_key != NULL && f.idempotency_key[0] ? f.idempotency_key : NULL;
    if (res->outcome != PD_PROC_APPROVED) {
        if ((r = pd_pay_refund_failed(&f, &ch)) != 0)
            return r;
        if ((r = pd_refund_finish(tx, &f)) != 0 || (r = pd_charge_update(tx, &ch)) != 0)
            return r;
        char msg[256], extra[PD_ID_MAX + 16];
        snprintf(msg, sizeof(msg), "The processor refused the refund: %s", res->message);
        snprintf(extra, sizeof(extra), "\"refund\":\"%s\"", f.id);
        *status_out = 402;
        return pd_error_json(body_out, "card_error", "processing_error", NULL, extra, f.request_id, msg);
    }
    pd_posting_t post;
    pd_btxn_rec_t bt;
    if ((r = pd_pay_refunded(&f, &ch, now, &post, &bt)) != 0)
        return r;
    if ((r = pd_refund_finish(tx, &f)) != 0 ||
        (r = pd_ledger_insert(tx, ch.merchant_id, ch.livemode, ch.currency, f.id, &post, now)) != 0 ||
        (r = pd_btxn_insert(tx, &bt)) != 0)
        return r;
    pd_buf_t chb;
    pd_jw_t cw;
    pd_buf_init(&chb, PD_OBJECT_MAX);
    pd_jw_init(&cw, &chb);
    pd_render_charge(&cw, &ch, NULL);
    r = pd_jw_finish(&cw);
    if (r == 0)
        r = pd_emit_raw(tx, ch.merchant_id, ch.livemode, "charge.refunded", pd_buf_view(&chb), f.request_id, idem, now);
    pd_buf_free(&chb);
    if (r != 0)
        return r;
    pd_view_t json = pd_render_to_arena(a, render_refund_cb, &f);
    pd_buf_reset(body_out);
    if ((r = pd_buf_put(body_out, json.p, json.len)) != 0)
        return r;
    *status_out = 200;
    return pd_emit_raw(tx, ch.merchant_id, ch.livemode, "refund.created", json, f.request_id, idem, now);
}
