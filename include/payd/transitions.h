/*
 * The payment domain's transitions over the stored records (src/pay/transitions.c,
 * balance.c): what an authorization, a capture, a void and a refund do to a charge,
 * its intent and the merchant's balance. Pure: each sets the records' fields (bumping
 * their versions) and fills the postings and balance transactions; the caller writes
 * them in one store transaction, version-checked, with the events it renders.
 */
#ifndef PAYD_TRANSITIONS_H
#define PAYD_TRANSITIONS_H

#include "payd/pay.h"
#include "payd/processor.h"
#include "payd/records.h"

/* captured funds become available to the merchant this long after the capture */
#define PD_AVAILABLE_AFTER_S (2 * 86400)

/* The balance transaction of a capture (pending until PD_AVAILABLE_AFTER_S) and of a
 * refund (available at once, negative). */
int pd_btxn_for_capture(pd_btxn_rec_t *bt, const pd_charge_rec_t *ch, int64_t captured, int64_t fee,
                        int64_t now) PD_WUR;
/* a dispute's balance transaction (type adjustment, source the dispute): the withdrawal
 * (-amount, fee) or, reinstated, its reversal (+amount, -fee); available at once */
int pd_btxn_for_dispute(pd_btxn_rec_t *bt, const pd_charge_rec_t *ch, const char *dispute_id, int64_t amount,
                        int64_t fee, bool reinstated, int64_t now) PD_WUR;
int pd_btxn_for_refund(pd_btxn_rec_t *bt, const pd_charge_rec_t *ch, const char *refund_id, int64_t amount,
                       int64_t now) PD_WUR;

/* The lifecycle state (payd/pay.h) of a charge as stored; pi_status is its intent's
 * status (pd_pi_status_t), or -1 when unknown (a voided charge then reads as authorized). */
pd_charge_state_t pd_charge_state_of(const pd_charge_rec_t *ch, int pi_status);

/* Each transition below is refused with PD_ERR_STATE, nothing changed, where the
 * charge's or refund's state does not allow it. */

/* An authorization's outcome on a charge still processing and its intent: approved →
 * the hold posted, and with automatic capture the capture too (posting + balance
 * transaction); declined → the charge failed with the processor's reasons and the
 * intent back to requires_payment_method (pd_pi_after_authorization decides). The
 * caller renders the JSON fields (charge outcome, last_payment_error). */
typedef struct {
    bool approved, automatic;
    pd_posting_t authorization, capture; /* capture: automatic only */
    pd_btxn_rec_t bt;                    /* automatic only */
} pd_authorization_t;
int pd_pay_authorized(pd_charge_rec_t *ch, pd_pi_rec_t *pi, const pd_proc_result_t *res, int64_t now,
                      pd_authorization_t *out) PD_WUR;

/* The processor captured `captured` of the charge's authorization: the capture posting
 * (the rest of the hold released), its balance transaction, the intent succeeded. */
int pd_pay_captured(pd_charge_rec_t *ch, pd_pi_rec_t *pi, int64_t captured, int64_t now, pd_posting_t *post,
                    pd_btxn_rec_t *bt) PD_WUR;
/* The processor voided the authorization (ch NULL when nothing was authorized): the hold
 * released, the intent canceled (reason requested_by_customer unless one is set). */
int pd_pay_voided(pd_charge_rec_t *ch, pd_pi_rec_t *pi, int64_t now, pd_posting_t *post) PD_WUR;
/* A refund of f->amount is requested on a captured charge: the amount reserved on the
 * charge (amount_refunded) before the processor is asked. PD_ERR_STATE when the charge
 * cannot be refunded, PD_ERR_RANGE when the amount is not positive or the refunds would
 * exceed what was captured (the refund cap, checked here on the charge as stored, in the
 * write that reserves it). */
int pd_pay_refund_requested(const pd_refund_rec_t *f, pd_charge_rec_t *ch) PD_WUR;
/* The processor made a pending refund: succeeded, its posting and balance transaction. */
int pd_pay_refunded(pd_refund_rec_t *f, const pd_charge_rec_t *ch, int64_t now, pd_posting_t *post,
                    pd_btxn_rec_t *bt) PD_WUR;
/* The processor refused a pending refund: failed, its amount given back to the charge. */
int pd_pay_refund_failed(pd_refund_rec_t *f, pd_charge_rec_t *ch) PD_WUR;

#endif
