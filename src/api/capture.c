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

static void
capture_loaded(pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    pd_req_t *r = op->r;
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
    if (c->ch_rc != 0 || c->ch.processor_ref[0] == '\0') {
        pd_resp_error(r, 500, "api_error", NULL, "The authorization of this PaymentIntent cannot be found.", NULL);
        return;
    }
    c->pi.version++;
    pd_step_init(&c->step, c->op, call_capture, NULL, write_captured, "capture", "PaymentIntent");
    c->step.charge_id = c->ch.id;
    pd_step_start(&c->step, write_capture_requested);
}

void
pd_h_pi_capture(pd_req_t *r)
{
    pi_ctx_t *c = pd_pi_ctx_new(r);
    if (c != NULL)
        pd_pi_load(c, true, capture_loaded);
}

/* --- cancel --- */

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

static int
write_canceled(pd_db_t *tx, pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    const char *idem = op->has_idem ? op->idem_key : NULL;
    if (c->ch.id[0] != '\0')
        return pd_cancel_record(tx, &op->r->arena, &c->ch, &c->step.res, op->now, op->r->id, idem, &op->status,
                                &op->body);
    /* nothing was authorized: nothing to void */
    int r = pd_cancel_unauthorized(tx, &c->pi, op->now, op->r->id, idem, &op->body);
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

static void
cancel_loaded(pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    pd_req_t *r = op->r;
    if (!pd_pi_allowed(c->pi.status, PD_PI_CANCEL)) {
        pd_pi_refuse(r, &c->pi, PD_PI_CANCEL);
        return;
    }
    const char *reason = pd_param_str(r, "cancellation_reason");
    snprintf(c->pi.cancellation_reason, sizeof(c->pi.cancellation_reason), "%s",
             reason != NULL ? reason : "requested_by_customer");
    if (c->pi.status != PD_PI_REQUIRES_CAPTURE) {
        memset(&c->ch, 0, sizeof(c->ch)); /* loaded with the intent, but nothing to void: not recorded on it */
        pd_op_commit(c->op, write_canceled, NULL); /* nothing was authorized: nothing to void */
        return;
    }
    if (c->ch_rc != 0 || c->ch.processor_ref[0] == '\0') {
        pd_resp_error(r, 500, "api_error", NULL, "The authorization of this PaymentIntent cannot be found.", NULL);
        return;
    }
    c->pi.version++;
    pd_step_init(&c->step, c->op, call_void, NULL, write_canceled, "cancellation", "PaymentIntent");
    c->step.charge_id = c->ch.id;
    pd_step_start(&c->step, write_void_requested);
}

void
pd_h_pi_cancel(pd_req_t *r)
{
    pi_ctx_t *c = pd_pi_ctx_new(r);
    if (c != NULL)
        pd_pi_load(c, true, cancel_loaded);
}
