/*
 * POST/GET /v1/refunds, GET /v1/refunds/:id. Refunds never exceed what was captured.
 *
 * Creating a refund is two-phase toward the processor, like a confirmation:
 *   phase 1 (durable): the refund `pending`, its amount reserved on the charge
 *           (version-checked, so concurrent refunds cannot exceed the captured
 *           amount), the idempotency claim
 *   then:   the processor refunds, keyed by our refund id (a repeat does not move
 *           money twice)
 *   phase 2 (durable): succeeded (ledger posting, balance transaction, events) or
 *           failed (the reservation released)
 * A refund left pending by a crash or an unanswered processor is finished by the
 * recovery worker, which asks the processor again with the same refund id.
 */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "payd/transitions.h"
#include "payd/money.h"

typedef struct {
    pd_op_t *op;
    pd_step_t step;
    pd_charge_rec_t ch;
    pd_refund_rec_t rf;
    /* the loads (off the loop) */
    const char *pi_id, *ch_id;
    pd_pi_rec_t pi;
    int pi_rc, ch_rc;
} refund_ctx_t;

static void
render_refund_cb(pd_jw_t *w, const void *rec)
{
    pd_render_refund(w, rec);
}

static int
write_refund_requested(pd_db_t *tx, pd_op_t *op)
{
    refund_ctx_t *c = op->ctx;
    pd_charge_rec_t ch = c->ch;
    bool busy = false;
    /* one money-moving operation in flight per charge: PD_ERR_BUSY (another refund is
     * pending) and PD_ERR_CONFLICT (the charge changed since it was read) roll the
     * claim back too and answer 409; a retry reads the charge again */
    int r = pd_charge_busy(tx, &ch, &busy);
    if (r != 0 || busy)
        return r != 0 ? r : PD_ERR_BUSY;
    if ((r = pd_pay_refund_requested(&c->rf, &ch)) != 0 || (r = pd_charge_update(tx, &ch)) != 0)
        return r;
    return pd_refund_insert(tx, &c->rf);
}


static int
write_refund_outcome(pd_db_t *tx, pd_op_t *op)
{
    refund_ctx_t *c = op->ctx;
    int r = pd_refund_apply(tx, &op->r->arena, &c->rf, &c->step.res, op->now, &op->status, &op->body);
    if (r != PD_ERR_STATE)
        return r;
    /* no longer pending: recovery recorded the outcome first; answer the refund as it is */
    pd_refund_rec_t now;
    if ((r = pd_refund_get(tx, &op->r->arena, c->rf.merchant_id, c->rf.livemode, c->rf.id, &now)) != 0)
        return r;
    pd_view_t json = pd_render_to_arena(&op->r->arena, render_refund_cb, &now);
    pd_buf_reset(&op->body);
    op->status = strcmp(now.status, "succeeded") == 0 ? 200 : 402;
    if (op->status == 200)
        return pd_buf_put(&op->body, json.p, json.len);
    return pd_error_json(&op->body, "card_error", "processing_error", NULL, NULL, op->r->id,
                         "The processor refused the refund.");
}

static void
call_refund(pd_step_t *s)
{
    refund_ctx_t *c = s->op->ctx;
    s->op->api->proc->refund(s->op->api->proc, c->ch.processor_ref, c->rf.amount, c->rf.id, pd_step_answer, s);
}

static int load_refund(pd_db_t *db, pd_op_t *op);
static void refund_loaded(pd_op_t *op);

void
pd_h_refund_create(pd_req_t *r)
{
    refund_ctx_t *c = pd_arena_calloc(&r->arena, sizeof(*c));
    if (c == NULL || (c->op = pd_op_new(r, c)) == NULL) {
        if (c == NULL)
            pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    c->pi_id = pd_param_str(r, "payment_intent");
    c->ch_id = pd_param_str(r, "charge");
    if (c->pi_id == NULL && c->ch_id == NULL) {
        pd_resp_invalid(r, "parameter_missing", "payment_intent", "One of payment_intent or charge is required.");
        return;
    }
    pd_op_load(c->op, load_refund, refund_loaded);
}

/* on a reader thread: the intent (when only it is named) and the charge; a failed
 * read is the result, a missing object is left to refund_loaded */
static int
load_refund(pd_db_t *db, pd_op_t *op)
{
    refund_ctx_t *c = op->ctx;
    const pd_auth_t *au = op->auth;
    const char *ch_id = c->ch_id;
    c->pi_rc = c->ch_rc = PD_ERR_NOTFOUND;
    if (ch_id == NULL) {
        c->pi_rc = pd_pi_get(db, &op->r->arena, au->merchant_id, au->livemode, c->pi_id, &c->pi);
        if (c->pi_rc != 0)
            return c->pi_rc == PD_ERR_NOTFOUND ? 0 : c->pi_rc;
        if (c->pi.latest_charge[0] == '\0' || c->pi.status != PD_PI_SUCCEEDED)
            return 0;
        ch_id = c->pi.latest_charge;
    }
    c->ch_rc = pd_charge_get(db, &op->r->arena, au->merchant_id, au->livemode, ch_id, &c->ch);
    return c->ch_rc == PD_ERR_NOTFOUND ? 0 : c->ch_rc;
}

static void
refund_loaded(pd_op_t *op)
{
    refund_ctx_t *c = op->ctx;
    pd_req_t *r = op->r;
    const pd_auth_t *au = op->auth;
    const char *pi_id = c->pi_id, *ch_id = c->ch_id;
    pd_pi_rec_t *pi = &c->pi;
    if (ch_id == NULL) {
        if (c->pi_rc != 0) {
            char msg[160];
            snprintf(msg, sizeof(msg), "No such payment_intent: '%.80s'", pi_id);
            pd_resp_error(r, 400, "invalid_request_error", "resource_missing", msg, "payment_intent");
            return;
        }
        if (pi->latest_charge[0] == '\0' || pi->status != PD_PI_SUCCEEDED) {
            pd_resp_invalid(r, "charge_not_refundable", "payment_intent",
                            "This PaymentIntent does not have a successful charge to refund.");
            return;
        }
        ch_id = pi->latest_charge;
    }
    if (c->ch_rc != 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "No such charge: '%.80s'", ch_id);
        pd_resp_error(r, 400, "invalid_request_error", "resource_missing", msg, "charge");
        return;
    }
    if (pi_id != NULL && strcmp(pi_id, c->ch.payment_intent) != 0) {
        pd_resp_invalid(r, "parameter_invalid", "charge", "The charge does not belong to payment_intent %.40s.", pi_id);
        return;
    }
    if (pd_charge_next(pd_charge_state_of(&c->ch, -1), PD_CH_REFUND) < 0) {
        pd_resp_invalid(r, "charge_not_refundable", "charge", "This charge has not been captured.");
        return;
    }
    if (c->ch.disputed == 1) {
        char msg[160];
        snprintf(msg, sizeof(msg), "Charge %.40s has been charged back; it cannot be refunded.", c->ch.id);
        pd_resp_error(r, 400, "invalid_request_error", "charge_disputed", msg, NULL);
        return;
    }
    int64_t remaining = c->ch.amount_captured - c->ch.amount_refunded;
    if (remaining <= 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "Charge %.40s has already been refunded.", c->ch.id);
        pd_resp_error(r, 400, "invalid_request_error", "charge_already_refunded", msg, NULL);
        return;
    }
    pd_refund_rec_t *f = &c->rf;
    f->amount = remaining;
    const char *amount = pd_param_str(r, "amount");
    if (amount != NULL) {
        pd_amount_error_t e = pd_amount_parse(pd_view_cstr(amount), &f->amount);
        if (e != PD_AMOUNT_OK) {
            pd_resp_invalid(r, pd_amount_error_code(e), "amount", "Invalid refund amount: %.20s", amount);
            return;
        }
        if (f->amount > remaining) {
            pd_resp_invalid(r, "amount_too_large", "amount",
                            "Refund amount (%lld) is greater than unrefunded amount on charge (%lld).",
                            (long long)f->amount, (long long)remaining);
            return;
        }
    }
    if (pd_id_new("re", f->id, sizeof(f->id)) != 0) {
        pd_resp_error(r, 500, "api_error", NULL, "Cannot create an id.", NULL);
        return;
    }
    snprintf(f->merchant_id, sizeof(f->merchant_id), "%s", au->merchant_id);
    f->livemode = au->livemode;
    snprintf(f->charge, sizeof(f->charge), "%s", c->ch.id);
    snprintf(f->payment_intent, sizeof(f->payment_intent), "%s", c->ch.payment_intent);
    snprintf(f->currency, sizeof(f->currency), "%s", c->ch.currency);
    snprintf(f->status, sizeof(f->status), "pending");
    f->idempotency_key = c->op->has_idem ? c->op->idem_key : NULL;
    snprintf(f->request_id, sizeof(f->request_id), "%s", r->id);
    const char *reason = pd_param_str(r, "reason");
    snprintf(f->reason, sizeof(f->reason), "%s", reason ? reason : "");
    if ((f->metadata = pd_param_metadata(r, NULL)) == NULL) {
        pd_resp_invalid(r, "parameter_invalid", "metadata", "metadata can have at most 50 keys.");
        return;
    }
    f->created = c->op->now;
    f->seq = pd_next_seq();
    pd_step_init(&c->step, c->op, call_refund, NULL, write_refund_outcome, "refund", "refund");
    pd_step_start(&c->step, write_refund_requested);
}

static int
get_refund(pd_db_t *db, pd_req_t *r, const char *id, pd_view_t *json)
{
    const pd_auth_t *au = r->auth;
    pd_refund_rec_t f;
    int rc = pd_refund_get(db, &r->arena, au->merchant_id, au->livemode, id, &f);
    if (rc == 0)
        *json = pd_render_to_arena(&r->arena, render_refund_cb, &f);
    return rc;
}

void
pd_h_refund_get(pd_req_t *r)
{
    pd_get_respond(r, "refund", get_refund);
}

static int
each_refund(void *rec, void *arg)
{
    pd_render_refund(arg, rec);
    return 0;
}

void
pd_h_refund_list(pd_req_t *r)
{
    bool by_charge = pd_param_str(r, "charge") != NULL;
    if (by_charge && pd_param_str(r, "payment_intent") != NULL) {
        pd_resp_invalid(r, "parameter_invalid", "charge", "You may only filter refunds by one of charge and payment_intent.");
        return;
    }
    pd_list_respond(r, "/v1/refunds", "refund", by_charge ? "charge" : "payment_intent",
                    by_charge ? pd_refund_list_by_charge : pd_refund_list, each_refund);
}
