/* What the processor's answers do to the records (payd/transitions.h). */
#include <stdio.h>
#include <string.h>

#include "payd/money.h"
#include "payd/transitions.h"

static int64_t
fee_of(const pd_charge_rec_t *ch, int64_t captured)
{
    return pd_fee(captured, pd_currency_exponent(pd_view_cstr(ch->currency)));
}

pd_charge_state_t
pd_charge_state_of(const pd_charge_rec_t *ch, int pi_status)
{
    if (ch->processing)
        return PD_CH_PROCESSING;
    if (strcmp(ch->status, "failed") == 0)
        return PD_CH_FAILED;
    if (ch->captured)
        return PD_CH_CAPTURED;
    if (ch->capture_requested)
        return PD_CH_CAPTURING;
    if (ch->void_requested)
        return PD_CH_VOIDING;
    return pi_status == PD_PI_CANCELED ? PD_CH_VOIDED : PD_CH_AUTHORIZED;
}

static bool
charge_may(const pd_charge_rec_t *ch, int pi_status, pd_charge_event_t e)
{
    return pd_charge_next(pd_charge_state_of(ch, pi_status), e) >= 0;
}

static bool
refund_may(const pd_refund_rec_t *f, pd_refund_event_t e)
{
    int s = pd_refund_status_parse(f->status);
    return s >= 0 && pd_refund_next((pd_refund_status_t)s, e) >= 0;
}

int
pd_pay_authorized(pd_charge_rec_t *ch, pd_pi_rec_t *pi, const pd_proc_result_t *res, int64_t now,
                  pd_authorization_t *out)
{
    memset(out, 0, sizeof(*out));
    out->approved = res->outcome == PD_PROC_APPROVED;
    out->automatic = strcmp(pi->capture_method, "manual") != 0;
    pd_charge_event_t e = !out->approved ? PD_CH_DECLINE : out->automatic ? PD_CH_CAPTURE : PD_CH_APPROVE;
    if (!charge_may(ch, pi->status, e))
        return PD_ERR_STATE;
    ch->processing = false;
    ch->version++;
    snprintf(ch->processor_ref, sizeof(ch->processor_ref), "%s", res->reference);
    pi->version++;
    pi->last_payment_error = NULL;
    pi->status = pd_pi_after_authorization(out->approved, out->automatic);
    if (!out->approved) {
        snprintf(ch->status, sizeof(ch->status), "failed");
        snprintf(ch->failure_code, sizeof(ch->failure_code), "%s", res->error_code);
        snprintf(ch->failure_message, sizeof(ch->failure_message), "%s", res->message);
        snprintf(ch->decline_code, sizeof(ch->decline_code), "%s", res->decline_code);
        return 0;
    }
    snprintf(ch->status, sizeof(ch->status), "succeeded");
    pd_post_authorization(&out->authorization, ch->amount);
    if (!out->automatic) {
        pi->amount_capturable = ch->amount;
        return 0;
    }
    int64_t fee = fee_of(ch, ch->amount);
    ch->captured = true;
    ch->amount_captured = ch->amount;
    pd_post_capture(&out->capture, ch->amount, ch->amount, fee);
    pi->amount_received = ch->amount;
    pi->amount_capturable = 0;
    return pd_btxn_for_capture(&out->bt, ch, ch->amount, fee, now);
}

int
pd_pay_captured(pd_charge_rec_t *ch, pd_pi_rec_t *pi, int64_t captured, int64_t now, pd_posting_t *post,
                pd_btxn_rec_t *bt)
{
    if (!charge_may(ch, pi->status, PD_CH_CAPTURE))
        return PD_ERR_STATE;
    int64_t fee = fee_of(ch, captured);
    ch->captured = true;
    ch->capture_requested = false;
    ch->capture_amount = 0;
    ch->pending_idempotency_key = NULL;
    ch->amount_captured = captured;
    ch->version++;
    pd_post_capture(post, ch->amount, captured, fee);
    pi->status = PD_PI_SUCCEEDED;
    pi->amount_received = captured;
    pi->amount_capturable = 0;
    pi->version++;
    return pd_btxn_for_capture(bt, ch, captured, fee, now);
}

int
pd_pay_voided(pd_charge_rec_t *ch, pd_pi_rec_t *pi, int64_t now, pd_posting_t *post)
{
    memset(post, 0, sizeof(*post));
    if (ch != NULL && !charge_may(ch, pi->status, PD_CH_VOID))
        return PD_ERR_STATE;
    if (ch != NULL) {
        pd_post_void(post, ch->amount);
        ch->void_requested = false;
        ch->capture_amount = 0;
        ch->pending_idempotency_key = NULL;
        ch->version++;
    }
    pi->status = PD_PI_CANCELED;
    pi->amount_capturable = 0;
    pi->canceled_at = now;
    if (pi->cancellation_reason[0] == '\0')
        snprintf(pi->cancellation_reason, sizeof(pi->cancellation_reason), "requested_by_customer");
    pi->version++;
    return 0;
}

int
pd_pay_refund_requested(const pd_refund_rec_t *f, pd_charge_rec_t *ch)
{
    if (!charge_may(ch, -1, PD_CH_REFUND) || ch->disputed == 1) /* a charged-back charge is not refundable */
        return PD_ERR_STATE;
    if (f->amount <= 0 || f->amount > ch->amount_captured - ch->amount_refunded)
        return PD_ERR_RANGE;
    ch->amount_refunded += f->amount;
    ch->version++;
    return 0;
}

int
pd_pay_refunded(pd_refund_rec_t *f, const pd_charge_rec_t *ch, int64_t now, pd_posting_t *post, pd_btxn_rec_t *bt)
{
    if (!refund_may(f, PD_RF_APPROVE) || !charge_may(ch, -1, PD_CH_REFUND))
        return PD_ERR_STATE;
    snprintf(f->status, sizeof(f->status), "%s", pd_refund_status_name(PD_RF_SUCCEEDED));
    pd_post_refund(post, f->amount);
    return pd_btxn_for_refund(bt, ch, f->id, f->amount, now);
}

int
pd_pay_refund_failed(pd_refund_rec_t *f, pd_charge_rec_t *ch)
{
    if (!refund_may(f, PD_RF_DECLINE))
        return PD_ERR_STATE;
    snprintf(f->status, sizeof(f->status), "%s", pd_refund_status_name(PD_RF_FAILED));
    snprintf(f->failure_reason, sizeof(f->failure_reason), "declined");
    ch->amount_refunded -= f->amount;
    ch->version++;
    return 0;
}
