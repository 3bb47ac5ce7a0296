/*
 * POST /v1/payment_intents/:id/capture and /cancel.
 *
 * Both are two-phase toward the processor like confirmation: the charge is marked
 * capture_requested or void_requested (durable) before the processor is asked, and
 * the outcome is recorded after; a crash in between is resolved by the recovery
 * worker from the processor's answer.
 *
 * One money-moving operation is in flight per charge: phase 1 refuses with
 * PD_ERR_BUSY (409, nothing written, the idempotency claim rolled back) while a
 * capture, void or refund of the charge is requested and not yet recorded, and the
 * charge's version check turns a stale read into PD_ERR_CONFLICT the same way. The
 * outcome is recorded on the charge and intent as stored when it arrives (recovery
 * or reconciliation may have recorded it first), never on the copy phase 1 read.
 */
#include <stdio.h>
#include <string.h>

#include "api/pi.h"
#include "payd/log.h"
#include "payd/money.h"


static int
load_charge(pd_db_t *db, pd_op_t *op, pi_ctx_t *c)
{
    return pd_charge_get(db, &op->r->arena, c->pi.merchant_id, c->pi.livemode, c->pi.latest_charge, &c->ch);
}

/* PD_ERR_BUSY while another capture, void or refund of ch is in flight (inside the write) */
static int
charge_free(pd_db_t *tx, const pd_charge_rec_t *ch)
{
    bool busy = false;
    int r = pd_charge_busy(tx, ch, &busy);
    return r != 0 ? r : busy ? PD_ERR_BUSY : 0;
}

static int
write_capture_requested(pd_db_t *tx, pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    int r;
    if ((r = charge_free(tx, &c->ch)) != 0 || (r = pd_pi_update(tx, &c->pi)) != 0)
        return r;
    c->ch.capture_requested = true;
    c->ch.capture_amount = c->amount_to_capture;
    c->ch.pending_idempotency_key = op->has_idem ? op->idem_key : NULL;
    c->ch.version++;
    return pd_charge_update(tx, &c->ch); /* version-checked: a concurrent request won */
}

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
    pd_buf_init(&chb, RESP_MAX);
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

static int
write_captured(pd_db_t *tx, pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    return pd_capture_record(tx, &op->r->arena, &c->ch, &c->step.res, op->now, op->r->id, &op->status, &op->body);
}

static void
call_capture(pd_step_t *s)
{
    pi_ctx_t *c = s->op->ctx;
    s->op->api->proc->capture(s->op->api->proc, c->ch.processor_ref, c->amount_to_capture, pd_step_answer, s);
}

void
pd_h_pi_capture(pd_req_t *r)
{
    pi_ctx_t *c = pd_pi_ctx_new(r);
    if (c == NULL || !pd_pi_load(r, c))
        return;
    if (!pd_pi_allowed(c->pi.status, PD_PI_CAPTURE)) {
        pd_pi_refuse(r, &c->pi, PD_PI_CAPTURE);
        return;
    }
    c->amount_to_capture = c->pi.amount_capturable;
    const char *v = pd_param_str(r, "amount_to_capture");
    if (v != NULL) {
        pd_amount_error_t e = pd_amount_parse(pd_view_cstr(v), &c->amount_to_capture);
        if (e != PD_AMOUNT_OK) {
            pd_resp_invalid(r, pd_amount_error_code(e), "amount_to_capture", "Invalid amount_to_capture: %.20s", v);
            return;
        }
        if (c->amount_to_capture > c->pi.amount_capturable) {
            pd_resp_invalid(r, "amount_too_large", "amount_to_capture",
                            "The amount to capture (%lld) is greater than the capturable amount (%lld).",
                            (long long)c->amount_to_capture, (long long)c->pi.amount_capturable);
            return;
        }
    }
    if (load_charge(pd_reader(r), c->op, c) != 0 || c->ch.processor_ref[0] == '\0') {
        pd_resp_error(r, 500, "api_error", NULL, "The authorization of this PaymentIntent cannot be found.", NULL);
        return;
    }
    c->pi.version++;
    pd_step_init(&c->step, c->op, call_capture, NULL, write_captured, "capture", "PaymentIntent");
    pd_step_start(&c->step, write_capture_requested);
}

/* --- cancel --- */

/* records a void the processor made (ch NULL when nothing was authorized) and the
 * intent canceled, rendering it into body */
static int
cancel_apply(pd_db_t *tx, pd_charge_rec_t *ch, pd_pi_rec_t *pi, int64_t now, const char *request_id,
                const char *idem_key, pd_buf_t *body)
{
    pd_jw_t w;
    int r;
    pd_posting_t post;
    pd_pay_voided(ch, pi, now, &post);
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

static int
write_void_requested(pd_db_t *tx, pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    int r;
    if ((r = charge_free(tx, &c->ch)) != 0 || (r = pd_pi_update(tx, &c->pi)) != 0)
        return r;
    c->ch.void_requested = true;
    c->ch.pending_idempotency_key = op->has_idem ? op->idem_key : NULL;
    c->ch.version++;
    return pd_charge_update(tx, &c->ch); /* version-checked: a concurrent request won */
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

static int
write_canceled(pd_db_t *tx, pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    const char *idem = op->has_idem ? op->idem_key : NULL;
    if (c->ch.id[0] != '\0')
        return pd_cancel_record(tx, &op->r->arena, &c->ch, &c->step.res, op->now, op->r->id, idem, &op->status,
                                &op->body);
    /* nothing was authorized: nothing to void */
    int r = cancel_apply(tx, NULL, &c->pi, op->now, op->r->id, idem, &op->body);
    if (r == 0)
        op->status = 200;
    return r;
}

static void
call_void(pd_step_t *s)
{
    pi_ctx_t *c = s->op->ctx;
    s->op->api->proc->cancel(s->op->api->proc, c->ch.processor_ref, pd_step_answer, s);
}

void
pd_h_pi_cancel(pd_req_t *r)
{
    pi_ctx_t *c = pd_pi_ctx_new(r);
    if (c == NULL || !pd_pi_load(r, c))
        return;
    if (!pd_pi_allowed(c->pi.status, PD_PI_CANCEL)) {
        pd_pi_refuse(r, &c->pi, PD_PI_CANCEL);
        return;
    }
    const char *reason = pd_param_str(r, "cancellation_reason");
    snprintf(c->pi.cancellation_reason, sizeof(c->pi.cancellation_reason), "%s",
             reason != NULL ? reason : "requested_by_customer");
    if (c->pi.status != PD_PI_REQUIRES_CAPTURE) {
        pd_op_commit(c->op, write_canceled, NULL); /* nothing was authorized: nothing to void */
        return;
    }
    if (load_charge(pd_reader(r), c->op, c) != 0 || c->ch.processor_ref[0] == '\0') {
        pd_resp_error(r, 500, "api_error", NULL, "The authorization of this PaymentIntent cannot be found.", NULL);
        return;
    }
    c->pi.version++;
    pd_step_init(&c->step, c->op, call_void, NULL, write_canceled, "cancellation", "PaymentIntent");
    pd_step_start(&c->step, write_void_requested);
}
