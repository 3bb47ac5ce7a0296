/*
 * Confirming a PaymentIntent: the two-phase commit around the processor call
 * (ARCHITECTURE.md §4 steps 6-8).
 *
 *   phase 1 (one durable write): the charge in `processing`, the intent in
 *           `processing`, the idempotency claim
 *   then:   the processor principal detokenizes the card in the vault (asked as
 *           soon as phase 1 is committed, while its fsync runs), the processor
 *           authorizes once phase 1 is durable, the PAN is wiped
 *   phase 2 (one durable write): the outcome, ledger postings, balance
 *           transaction, events, the idempotency response
 *
 * A crash between the phases leaves a `processing` charge: the recovery worker asks
 * the processor what happened and applies that outcome with the same phase-2 code.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api/pi.h"
#include "api/pm_resolve.h"
#include "payd/log.h"
#include "payd/money.h"

static void advance(pd_op_t *op);
static void on_phase1(pd_op_t *op);
static int write_phase2(pd_db_t *tx, pd_op_t *op);
static int plan_outcome(pd_step_t *s);
static void read_card(pd_op_t *op);

static int
write_phase1(pd_db_t *tx, pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    int r;
    if (c->pm_new && (r = pd_pm_insert(tx, &c->pm)) != 0)
        return r;
    if (strcmp(c->pm.object, "token") == 0 && (r = pd_pm_mark_used(tx, c->pm.id)) != 0)
        return r;
    if (c->pi_new) {
        if ((r = pd_emit(tx, op, "payment_intent.created", c->created_json)) != 0 || (r = pd_pi_insert(tx, &c->pi)) != 0)
            return r;
    } else if ((r = pd_pi_update(tx, &c->pi)) != 0) {
        return r;
    }
    return pd_charge_insert(tx, &c->ch);
}

void
pd_confirm_start(pd_op_t *op, pd_pi_rec_t *pi, const char *pm_id)
{
    pi_ctx_t *c = op->ctx;
    pd_charge_rec_t *ch = &c->ch;
    /* saved cards (Stripe's rules): a detached method is never used again, an attached
     * one only for its customer, and saving one needs a customer to save it to */
    if (c->pm.detached) {
        pd_resp_invalid(op->r, "payment_method_unexpected_state", "payment_method", "%s", pd_pm_detached_message);
        return;
    }
    if (c->pm.customer[0] != '\0' && strcmp(c->pm.customer, pi->customer) != 0) {
        if (pi->customer[0] == '\0')
            pd_resp_invalid(op->r, "parameter_missing", "customer",
                            "The provided PaymentMethod is attached to a Customer: pass that Customer's id in "
                            "customer to use it.");
        else
            pd_resp_invalid(op->r, "parameter_invalid", "payment_method",
                            "The provided PaymentMethod belongs to a different Customer than this PaymentIntent's.");
        return;
    }
    if (pi->setup_future_usage[0] != '\0' && pi->customer[0] == '\0') {
        pd_resp_invalid(op->r, "parameter_missing", "customer",
                        "setup_future_usage saves the payment method to the PaymentIntent's Customer: provide a "
                        "customer.");
        return;
    }
    if (pd_velocity_check(op->api, op->r, pi->merchant_id, c->pm.fingerprint) != 0)
        return; /* card testing: refused before anything is written or sent */
    memset(ch, 0, sizeof(*ch));
    if (pd_id_new("ch", ch->id, sizeof(ch->id)) != 0) {
        pd_resp_error(op->r, 500, "api_error", NULL, "Cannot create an id.", NULL);
        return;
    }
    snprintf(ch->merchant_id, sizeof(ch->merchant_id), "%s", pi->merchant_id);
    ch->livemode = pi->livemode;
    snprintf(ch->payment_intent, sizeof(ch->payment_intent), "%s", pi->id);
    snprintf(ch->payment_method, sizeof(ch->payment_method), "%s", pm_id);
    snprintf(ch->customer, sizeof(ch->customer), "%s", pi->customer);
    ch->amount = pi->amount;
    snprintf(ch->currency, sizeof(ch->currency), "%s", pi->currency);
    snprintf(ch->status, sizeof(ch->status), "pending");
    ch->processing = true;
    ch->description = pi->description;
    ch->idempotency_key = op->has_idem ? op->idem_key : NULL;
    snprintf(ch->request_id, sizeof(ch->request_id), "%s", op->r->id);
    ch->created = op->now;
    ch->seq = pd_next_seq();
    ch->version = 1;
    pi->status = PD_PI_PROCESSING;
    snprintf(pi->payment_method, sizeof(pi->payment_method), "%s", pm_id);
    snprintf(pi->latest_charge, sizeof(pi->latest_charge), "%s", ch->id);
    pi->last_payment_error = NULL;
    if (!c->pi_new)
        pi->version++;
    if (pi != &c->pi)
        c->pi = *pi;
    if (c->pi_new) {
        /* the created event shows the intent as it was before confirmation; rendered
         * here so the store's writer only writes */
        pd_pi_rec_t initial = c->pi;
        initial.status = PD_PI_REQUIRES_CONFIRMATION;
        initial.latest_charge[0] = '\0';
        c->created_json = pd_pi_json(&op->r->arena, &initial);
    }
    /* the processor is called by advance() once phase 1 is durable and the card is here */
    pd_step_init(&c->step, op, NULL, plan_outcome, write_phase2, "payment", "PaymentIntent");
    c->step.amount = ch->amount, c->step.currency = ch->currency; /* for the metrics */
    c->step.charge_id = ch->id;
    pd_card_fetch_init(&c->card, op, advance);
    pd_op_commit_early(op, write_phase1, op->auth->livemode ? NULL : read_card, on_phase1);
}

/* --- phase 2 --- */

static int
write_phase2(pd_db_t *tx, pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    int r = pd_outcome_write(tx, &c->outcome, op->now);
    if (r == 0) {
        op->status = c->outcome.status;
        return 0;
    }
    if (r != PD_ERR_CONFLICT)
        return r;
    /* the charge changed after phase 1 (the recovery worker resolved it?): decide
     * again from what is stored now, inside this transaction */
    r = pd_confirm_apply_outcome(tx, &op->r->arena, c->ch.merchant_id, c->ch.livemode, c->ch.id, &c->step.res, op->now,
                                 &op->status, &op->body);
    if (r != PD_ERR_STATE)
        return r;
    /* resolved already (recovery recorded the outcome first, e.g. while this write waited
     * out a failover): answer the intent as it is now */
    pd_pi_rec_t now;
    if ((r = pd_pi_get(tx, &op->r->arena, c->pi.merchant_id, c->pi.livemode, c->pi.id, &now)) != 0)
        return r;
    op->status = now.status == PD_PI_SUCCEEDED || now.status == PD_PI_REQUIRES_CAPTURE ? 200 : 402;
    if (op->status == 402)
        return pd_error_json(&op->body, "card_error", "processing_error", NULL, NULL, op->r->id,
                             "An error occurred while processing your card. Try again in a little bit.");
    pd_jw_t w;
    pd_buf_reset(&op->body);
    pd_jw_init(&w, &op->body);
    pd_render_pi(&w, &now);
    return pd_jw_finish(&w);
}

/* on the loop, with the processor's answer: the records are as phase 1 wrote them, so
 * the outcome is planned here and the store's writer only writes */
static int
plan_outcome(pd_step_t *s)
{
    pi_ctx_t *c = s->op->ctx;
    if (s->res.outcome == PD_PROC_DECLINED && strcmp(s->res.network_status, "not_sent_to_network") != 0)
        pd_velocity_declined(s->op->api, c->ch.merchant_id, c->pm.fingerprint);
    if (pd_outcome_plan(&s->op->r->arena, &c->ch, &c->pi, &c->pm, &s->res, s->op->now, &c->outcome, &s->op->body) != 0) {
        pd_log_error("cannot plan the outcome; leaving the charge to recovery", PD_LS("charge", c->ch.id));
        pd_resp_error(s->op->r, 500, "api_error", NULL, "An error occurred while processing the request.", NULL);
        return 1;
    }
    return 0;
}

static void
decline_unsent(pi_ctx_t *c, const char *message)
{
    pd_proc_result_t res;
    memset(&res, 0, sizeof(res));
    res.outcome = PD_PROC_DECLINED;
    snprintf(res.error_code, sizeof(res.error_code), "processing_error");
    snprintf(res.decline_code, sizeof(res.decline_code), "processing_error");
    snprintf(res.message, sizeof(res.message), "%s", message);
    snprintf(res.network_status, sizeof(res.network_status), "not_sent_to_network");
    pd_step_answer(&c->step, &res);
}

/* phase 1 is durable and the card is here: the processor authorizes, the card is wiped */
static void
authorize(pi_ctx_t *c)
{
    pd_api_t *api = c->op->api;
    if (c->card.rc != 0 || !c->card.asked) {
        /* the card cannot be read (deleted, vault trouble): nothing reached the processor */
        decline_unsent(c, "An error occurred while processing your card. Try again in a little bit.");
        return;
    }
    pd_proc_auth_t req = {
        .merchant_id = c->ch.merchant_id,
        .charge_id = c->ch.id,
        .pan = c->card.pan,
        .pan_len = strlen(c->card.pan),
        .exp_month = c->card.exp_month,
        .exp_year = c->card.exp_year,
        .cvc = c->card.cvc[0] ? c->card.cvc : NULL,
        .amount = c->ch.amount,
        .currency = c->ch.currency,
        .capture = strcmp(c->pi.capture_method, "manual") != 0,
    };
    api->proc->authorize(api->proc, &req, pd_step_answer, &c->step);
    /* the processor copied what it needs */
    OPENSSL_cleanse(&req, sizeof(req));
    pd_card_fetch_wipe(&c->card);
}

/* on the loop once phase 1 is answered and the card, if asked for, is here (pd_card_fetch_t) */
static void
advance(pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    if (op->rc != 0 || op->status != 0) {
        pd_card_fetch_wipe(&c->card);
        pd_op_finish(op); /* replay, conflict, an error response, or a failed sync */
        return;
    }
    if (op->auth->livemode) {
        /* there is no live processor connector yet: the charge fails, nothing moves */
        decline_unsent(c, "No live payment processor is configured.");
        return;
    }
    authorize(c);
}

/* on the store's writer thread: phase 1 is committed (its fsync still runs), so the
 * card is read now and the processor is asked as soon as phase 1 is durable */
static void
read_card(pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    pd_card_fetch_read(&c->card, c->ch.merchant_id, c->pm.vault_token);
}

static void
on_phase1(pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    pd_card_fetch_phase1(&c->card);
}

static void
confirm_resolved(pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    pd_confirm_start(op, &c->pi, c->pm.id);
}

static void
confirm_loaded(pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    pd_req_t *r = op->r;
    if (!pd_pi_allowed(c->pi.status, PD_PI_CONFIRM)) {
        pd_pi_refuse(r, &c->pi, PD_PI_CONFIRM);
        return;
    }
    const char *pm = c->pm_param;
    if (pm == NULL && c->pi.payment_method[0] != '\0')
        pm = c->pi.payment_method;
    if (pm == NULL) {
        pd_resp_invalid(r, "parameter_missing", "payment_method",
                        "You cannot confirm this PaymentIntent because it's missing a payment method.");
        return;
    }
    const char *capture = pd_param_str(r, "capture_method");
    if (capture != NULL)
        snprintf(c->pi.capture_method, sizeof(c->pi.capture_method), "%s",
                 strcmp(capture, "manual") == 0 ? "manual" : "automatic");
    if (pd_params_get(&r->params, "receipt_email") != NULL)
        c->pi.receipt_email = pd_param_str(r, "receipt_email");
    if (pd_params_get(&r->params, "setup_future_usage") != NULL) {
        const char *sfu = pd_param_str(r, "setup_future_usage");
        snprintf(c->pi.setup_future_usage, sizeof(c->pi.setup_future_usage), "%s", sfu != NULL ? sfu : "");
    }
    if (pm == c->pm_read) /* read with the intent (the same choice, made on the reader thread) */
        pd_pm_resolve_with(c->op, c->pm_rc, pm, &c->pm, &c->pm_new, confirm_resolved);
    else
        pd_pm_resolve(c->op, pm, &c->pm, &c->pm_new, confirm_resolved);
}

void
pd_h_pi_confirm(pd_req_t *r)
{
    pi_ctx_t *c = pd_pi_ctx_new(r);
    if (c == NULL)
        return;
    c->pm_param = pd_param_str(r, "payment_method");
    c->with_pm = true; /* one hop to a reader thread for the intent and its payment method */
    pd_pi_load(c, false, confirm_loaded);
}
