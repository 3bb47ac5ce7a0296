/*
 * Phase 2 of a confirmation: applies a processor outcome to a charge that is still
 * `processing`, in the caller's write transaction. Used by the request that made
 * the authorization and by the recovery worker after a crash.
 */
#include <stdio.h>
#include <string.h>

#include "payd/payments.h"
#include "payd/transitions.h"

static void
render_charge_json(pd_arena_t *a, const pd_charge_rec_t *ch, const pd_pm_rec_t *pm, pd_view_t *out)
{
    pd_buf_t b;
    pd_jw_t w;
    pd_buf_init(&b, PD_OBJECT_MAX);
    pd_jw_init(&w, &b);
    pd_render_charge(&w, ch, pm);
    *out = PD_VIEW_NULL;
    if (pd_jw_finish(&w) == 0) {
        char *copy = pd_arena_strndup(a, b.p, b.len);
        if (copy != NULL)
            *out = pd_view(copy, b.len);
    }
    pd_buf_free(&b);
}

static char *
outcome_json(pd_arena_t *a, const pd_proc_result_t *res, bool approved)
{
    pd_buf_t b;
    pd_jw_t w;
    pd_buf_init(&b, 1024);
    pd_jw_init(&w, &b);
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "network_status", res->network_status[0] ? res->network_status : "approved_by_network");
    if (approved)
        pd_jw_knull(&w, "reason");
    else
        pd_jw_kstr(&w, "reason", res->decline_code);
    pd_jw_kstr(&w, "risk_level", res->risk_level[0] ? res->risk_level : "normal");
    pd_jw_kint(&w, "risk_score", res->risk_score);
    pd_jw_kstr(&w, "seller_message", approved ? "Payment complete." : "The bank did not return any further details.");
    pd_jw_kstr(&w, "type", approved ? "authorized" : strcmp(res->network_status, "not_sent_to_network") == 0 ? "blocked"
                                                                                                           : "issuer_declined");
    pd_jw_obj_end(&w);
    char *out = pd_jw_finish(&w) == 0 ? pd_arena_strndup(a, b.p, b.len) : NULL;
    pd_buf_free(&b);
    return out;
}

/* the last_payment_error of a declined intent (Stripe's shape) */
static char *
payment_error_json(pd_arena_t *a, const pd_proc_result_t *res, const pd_charge_rec_t *ch, pd_view_t pm_json)
{
    pd_buf_t b;
    pd_jw_t w;
    pd_buf_init(&b, PD_OBJECT_MAX);
    pd_jw_init(&w, &b);
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "charge", ch->id);
    pd_jw_kstr(&w, "code", res->error_code);
    pd_jw_kstr(&w, "decline_code", res->decline_code);
    pd_jw_kstr(&w, "message", res->message);
    pd_jw_key(&w, "payment_method");
    if (pm_json.len > 0)
        pd_jw_raw(&w, pm_json);
    else
        pd_jw_null(&w);
    pd_jw_kstr(&w, "type", "card_error");
    pd_jw_obj_end(&w);
    char *out = pd_jw_finish(&w) == 0 ? pd_arena_strndup(a, b.p, b.len) : NULL;
    pd_buf_free(&b);
    return out;
}

static void
render_pm_cb(pd_jw_t *w, const void *rec)
{
    pd_render_pm(w, rec);
}

/* what a declined confirmation's card_error carries besides the usual members */
static char *
decline_members(pd_arena_t *a, const pd_proc_result_t *res, const pd_charge_rec_t *ch, pd_view_t pi_json,
                pd_view_t pm_json)
{
    pd_buf_t b;
    pd_jw_t w;
    pd_buf_init(&b, PD_OBJECT_MAX);
    pd_jw_init(&w, &b);
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "decline_code", res->decline_code);
    pd_jw_kstr(&w, "charge", ch->id);
    pd_jw_key(&w, "payment_intent");
    pd_jw_raw(&w, pi_json);
    pd_jw_key(&w, "payment_method");
    pd_jw_raw(&w, pm_json);
    pd_jw_obj_end(&w);
    /* the members without the braces around them */
    char *out = pd_jw_finish(&w) == 0 && b.len >= 2 ? pd_arena_strndup(a, (const char *)b.p + 1, b.len - 2) : NULL;
    pd_buf_free(&b);
    return out;
}

static int
emit(pd_db_t *tx, const pd_charge_rec_t *ch, const char *type, pd_view_t obj, int64_t now)
{
    return pd_emit_raw(tx, ch->merchant_id, ch->livemode, type, obj, ch->request_id, ch->idempotency_key, now);
}

/*
 * Computes everything phase 2 writes from the records as phase 1 left them: no
 * I/O, so the confirming request runs it on its own loop thread and the store's
 * writer only writes. The response body goes to body_out.
 */
int
pd_outcome_plan(pd_arena_t *a, const pd_charge_rec_t *ch_in, const pd_pi_rec_t *pi_in, const pd_pm_rec_t *pm_in,
                const pd_proc_result_t *res, int64_t now, pd_outcome_t *o, pd_buf_t *body_out)
{
    pd_charge_rec_t *ch = &o->ch;
    pd_pi_rec_t *pi = &o->pi;
    pd_pm_rec_t pm = *pm_in;
    int r;

    memset(o, 0, sizeof(*o));
    *ch = *ch_in;
    *pi = *pi_in;
    pd_authorization_t plan;
    if ((r = pd_pay_authorized(ch, pi, res, now, &plan)) != 0)
        return r;
    o->approved = plan.approved;
    o->automatic = plan.automatic;
    o->authorization = plan.authorization;
    o->capture = plan.capture;
    o->bt = plan.bt;
    ch->outcome = outcome_json(a, res, o->approved);
    if (res->cvc_check[0] != '\0')
        snprintf(pm.cvc_check, sizeof(pm.cvc_check), "%s", res->cvc_check);
    if (!o->approved)
        pi->last_payment_error = payment_error_json(a, res, ch, pd_render_to_arena(a, render_pm_cb, &pm));
    o->pi_json = pd_pi_json(a, pi);
    render_charge_json(a, ch, &pm, &o->ch_json);
    if (o->approved && pi->customer[0] != '\0' && pi->setup_future_usage[0] != '\0' && pm.customer[0] == '\0' &&
        !pm.detached && strcmp(pm.object, "payment_method") == 0) {
        o->attach = true;
        snprintf(pm.customer, sizeof(pm.customer), "%s", pi->customer);
        pm.billing_name = NULL; /* events never hold personal data */
        if ((o->pm_json = pd_render_to_arena(a, render_pm_cb, &pm)).p == NULL)
            return PD_ERR_NOMEM;
    }
    /* the response the confirming request gets (and that its idempotency key replays) */
    pd_buf_reset(body_out);
    if (o->approved) {
        o->status = 200;
        return pd_buf_put(body_out, o->pi_json.p, o->pi_json.len);
    }
    const char *members = decline_members(a, res, ch, o->pi_json, pd_render_to_arena(a, render_pm_cb, &pm));
    if (members == NULL)
        return PD_ERR_NOMEM;
    o->status = 402;
    return pd_error_json(body_out, "card_error", res->error_code, NULL, members, ch->request_id, res->message);
}

int
pd_outcome_write(pd_db_t *tx, const pd_outcome_t *o, int64_t now)
{
    const pd_charge_rec_t *ch = &o->ch;
    int r;
    /* first: a charge that moved on since the plan was made is a conflict with nothing written */
    if ((r = pd_charge_update(tx, ch)) != 0 || (r = pd_pi_update(tx, &o->pi)) != 0)
        return r;
    if (o->approved &&
        (r = pd_ledger_insert(tx, ch->merchant_id, ch->livemode, ch->currency, ch->id, &o->authorization, now)) != 0)
        return r;
    if (o->approved && o->automatic &&
        ((r = pd_ledger_insert(tx, ch->merchant_id, ch->livemode, ch->currency, ch->id, &o->capture, now)) != 0 ||
         (r = pd_btxn_insert(tx, &o->bt)) != 0))
        return r;
    const char *ch_event = o->approved ? "charge.succeeded" : "charge.failed";
    const char *pi_event = !o->approved   ? "payment_intent.payment_failed"
                           : o->automatic ? "payment_intent.succeeded"
                                          : "payment_intent.amount_capturable_updated";
    if ((r = emit(tx, ch, ch_event, o->ch_json, now)) != 0 || (r = emit(tx, ch, pi_event, o->pi_json, now)) != 0)
        return r;
    if (o->attach) {
        /* the money moved: a method attached meanwhile (to anyone) is left as it is */
        r = pd_pm_attach(tx, ch->payment_method, o->pi.customer);
        if (r == 0)
            r = emit(tx, ch, "payment_method.attached", o->pm_json, now);
        else if (r == PD_ERR_CONFLICT)
            r = 0;
    }
    return r;
}

int
pd_confirm_apply_outcome(pd_db_t *tx, pd_arena_t *a, const char *merchant, bool livemode, const char *charge_id,
                         const pd_proc_result_t *res, int64_t now, int *status_out, pd_buf_t *body_out)
{
    pd_charge_rec_t ch;
    pd_pi_rec_t pi;
    pd_pm_rec_t pm;
    pd_outcome_t *o = pd_arena_calloc(a, sizeof(*o));
    int r;

    if (o == NULL)
        return PD_ERR_NOMEM;
    if ((r = pd_charge_get(tx, a, merchant, livemode, charge_id, &ch)) != 0)
        return r;
    if (!ch.processing)
        return PD_ERR_STATE; /* resolved already (by the request or by recovery) */
    if ((r = pd_pi_get(tx, a, merchant, livemode, ch.payment_intent, &pi)) != 0 ||
        (r = pd_pm_get(tx, a, merchant, livemode, ch.payment_method, &pm)) != 0 ||
        (r = pd_outcome_plan(a, &ch, &pi, &pm, res, now, o, body_out)) != 0 || (r = pd_outcome_write(tx, o, now)) != 0)
        return r;
    *status_out = o->status;
    return 0;
}
