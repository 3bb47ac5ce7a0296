/*
 * The payment domain, pure logic without I/O: the PaymentIntent state machine, the
 * double-entry postings of each money movement, fees, and the request fingerprint
 * behind idempotency.
 */
#ifndef PAYD_PAY_H
#define PAYD_PAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/params.h"

/* --- PaymentIntent statuses and actions (Stripe's) --- */
typedef enum {
    PD_PI_REQUIRES_PAYMENT_METHOD,
    PD_PI_REQUIRES_CONFIRMATION,
    PD_PI_REQUIRES_ACTION,
    PD_PI_PROCESSING,
    PD_PI_REQUIRES_CAPTURE,
    PD_PI_CANCELED,
    PD_PI_SUCCEEDED,
    PD_PI_STATUS_COUNT
} pd_pi_status_t;

typedef enum { PD_PI_UPDATE, PD_PI_CONFIRM, PD_PI_CAPTURE, PD_PI_CANCEL, PD_PI_ACTION_COUNT } pd_pi_action_t;

const char *pd_pi_status_name(pd_pi_status_t s);
/* -1 if unknown */
int pd_pi_status_parse(pd_view_t s);
/* Whether action may run in status s. */
bool pd_pi_allowed(pd_pi_status_t s, pd_pi_action_t a);
/* Stripe's message for an action refused in a status. */
void pd_pi_refusal(pd_pi_status_t s, pd_pi_action_t a, char *msg, size_t cap);
/* The status an authorization outcome leads to. */
pd_pi_status_t pd_pi_after_authorization(bool approved, bool capture_automatic);

/* --- Charge lifecycle ---
 * payd's states of a charge (Stripe shows them as status, captured and refunded). The
 * transitions say which event may happen in which state; the records' transitions
 * (payd/transitions.h) refuse the others with PD_ERR_STATE. */
typedef enum {
    PD_CH_PROCESSING, /* the authorization was sent; its outcome is not recorded */
    PD_CH_FAILED,     /* declined */
    PD_CH_AUTHORIZED, /* held and capturable */
    PD_CH_CAPTURING,  /* a capture requested, its outcome not recorded */
    PD_CH_VOIDING,    /* a void requested, likewise */
    PD_CH_CAPTURED,
    PD_CH_VOIDED,
    PD_CH_STATE_COUNT
} pd_charge_state_t;

typedef enum {
    PD_CH_APPROVE,         /* the authorization approved (manual capture) */
    PD_CH_DECLINE,         /* ... declined */
    PD_CH_REQUEST_CAPTURE, /* phase 1 of a capture */
    PD_CH_REQUEST_VOID,    /* phase 1 of a void */
    PD_CH_CAPTURE,         /* the processor captured: automatic capture, a request, or found by reconciliation */
    PD_CH_VOID,            /* the processor voided: a request, or found by reconciliation */
    PD_CH_REFUSE,          /* the processor refused the requested capture or void */
    PD_CH_REFUND,          /* a refund of captured money */
    PD_CH_EVENT_COUNT
} pd_charge_event_t;

const char *pd_charge_state_name(pd_charge_state_t s);
/* The state event e leads to from s, or -1 when e is not allowed in s. */
int pd_charge_next(pd_charge_state_t s, pd_charge_event_t e);

/* --- Refund lifecycle (Stripe's statuses) --- */
typedef enum { PD_RF_PENDING, PD_RF_SUCCEEDED, PD_RF_FAILED, PD_RF_CANCELED, PD_RF_STATUS_COUNT } pd_refund_status_t;
typedef enum { PD_RF_APPROVE, PD_RF_DECLINE, PD_RF_EVENT_COUNT } pd_refund_event_t;

const char *pd_refund_status_name(pd_refund_status_t s);
/* -1 if unknown */
int pd_refund_status_parse(const char *s);
/* The status event e leads to from s, or -1 when e is not allowed in s. */
int pd_refund_next(pd_refund_status_t s, pd_refund_event_t e);

/* --- ledger --- */
#define PD_LEDGER_MAX_ENTRIES 8

/* Named accounts (per merchant, mode and currency):
 *   card_holds          an authorization's hold on the cardholder's funds (debit while held)
 *   merchant_holds      the merchant's claim on held funds (credit while held)
 *   processor_receivable money captured and owed to us by the processor
 *   merchant_balance    the merchant's balance (net of fees)
 *   fees                our fee revenue
 */
typedef struct {
    const char *account;
    int64_t amount; /* debit positive, credit negative */
} pd_entry_t;

typedef struct {
    const char *kind; /* authorization, capture, release, void, refund */
    pd_entry_t e[PD_LEDGER_MAX_ENTRIES];
    size_t n;
} pd_posting_t;

/* The fee for capturing amount in a currency with this exponent: 2.9 % plus a fixed
 * 30 minor units (0 for zero-decimal currencies, 300 for three-decimal ones), never
 * more than the amount. */
int64_t pd_fee(int64_t amount, int exponent);

void pd_post_authorization(pd_posting_t *p, int64_t authorized);
/* capture `captured` of `authorized` (the rest is released), with the fee */
void pd_post_capture(pd_posting_t *p, int64_t authorized, int64_t captured, int64_t fee);
void pd_post_void(pd_posting_t *p, int64_t authorized);
void pd_post_refund(pd_posting_t *p, int64_t refunded);
/* A dispute: the network takes `amount` back from the processor and the merchant pays it
 * and the dispute fee (withdrawal); a won dispute gives both back (reinstatement). */
void pd_post_dispute_withdrawal(pd_posting_t *p, int64_t amount, int64_t fee);
void pd_post_dispute_reinstatement(pd_posting_t *p, int64_t amount, int64_t fee);
/* The dispute fee in a currency with this exponent: 15.00 (1500 minor units; 15 whole
 * units for zero-decimal currencies, 15.000 for three-decimal ones). */
int64_t pd_dispute_fee(int exponent);
/* true when the entries sum to zero (they are all in one currency) */
bool pd_posting_balanced(const pd_posting_t *p);

/* --- idempotency --- */
/* SHA-256 (hex, 65 bytes) over method, path and the parameters sorted by key, so
 * the same request in any parameter order has the same fingerprint. */
int pd_request_fingerprint(pd_view_t method, pd_view_t path, const pd_params_t *params, char out[65]) PD_WUR;

#endif
