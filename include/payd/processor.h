/*
 * Payment processor connectors. A connector authorizes, captures, voids and refunds
 * card payments at an acquirer/processor and can be asked after a crash what became
 * of an authorization (recovery worker).
 *
 * Calls are asynchronous: the callback runs exactly once, either before the call
 * returns or later on a connector thread; callers must handle both (payd's handlers
 * hop back to their event loop with pd_loop_post). Request fields are borrowed for
 * the duration of the call only: the connector copies what it keeps and never
 * stores or logs the PAN or CVC.
 */
#ifndef PAYD_PROCESSOR_H
#define PAYD_PROCESSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/config.h"
#include "payd/error.h"

typedef struct {
    const char *merchant_id;
    const char *charge_id;  /* our id, the idempotency reference at the processor */
    const char *pan;        /* digits only; secret */
    size_t pan_len;
    int exp_month, exp_year;
    const char *cvc;        /* NULL when none was collected; secret */
    int64_t amount;         /* minor units */
    const char *currency;   /* ISO 4217, lower case */
    bool capture;           /* authorize and capture in one step */
} pd_proc_auth_t;

typedef enum {
    PD_PROC_APPROVED = 0,
    PD_PROC_DECLINED,  /* a definite decline: error_code/decline_code say why */
    PD_PROC_UNKNOWN,   /* no answer (timeout, connection lost): resolve with query() */
    PD_PROC_NOT_FOUND, /* query: the processor has no such authorization */
} pd_proc_outcome_t;

typedef struct {
    pd_proc_outcome_t outcome;
    char reference[64];      /* processor's authorization id */
    char error_code[40];     /* Stripe error code: card_declined, expired_card, incorrect_cvc, processing_error */
    char decline_code[40];   /* Stripe decline_code: generic_decline, insufficient_funds, lost_card, ... */
    char message[160];
    char network_status[32]; /* approved_by_network, declined_by_network, not_sent_to_network */
    char cvc_check[16];      /* pass, fail, unavailable, unchecked */
    char risk_level[16];     /* normal, elevated, highest */
    int risk_score;
    int64_t amount_authorized, amount_captured, amount_refunded; /* query results */
    bool captured;
    int64_t updated; /* query: Unix seconds of the authorization's last change */
} pd_proc_result_t;

typedef void (*pd_proc_cb)(void *arg, const pd_proc_result_t *res);

/* The processor's own record of one authorization, for reconciliation: its state now
 * and every refund made on it. Strings are borrowed for the callback only. */
typedef enum {
    PD_PROC_STATE_DECLINED,
    PD_PROC_STATE_AUTHORIZED, /* held, not captured */
    PD_PROC_STATE_CAPTURED,
    PD_PROC_STATE_VOIDED,
} pd_proc_state_t;

typedef struct {
    const char *refund_id; /* payd's refund id (the refund's idempotency reference) */
    int64_t amount;
} pd_proc_refund_t;

typedef struct {
    const char *charge_id, *reference, *merchant_id, *currency;
    pd_proc_state_t state;
    int64_t amount;          /* asked for at authorization */
    int64_t amount_captured; /* 0 unless captured */
    int64_t amount_refunded; /* sum of refunds */
    int64_t created, updated; /* Unix seconds: authorization, last change */
    const pd_proc_refund_t *refunds;
    size_t nrefunds;
} pd_proc_record_t;

/* returns 0 to go on, anything else stops the listing with that value */
typedef int (*pd_proc_record_fn)(const pd_proc_record_t *rec, void *arg);

/* A dispute (chargeback) as the processor records it: the card network opens it on a
 * captured charge and decides it. Strings are borrowed for the callback only. */
typedef struct {
    const char *reference;  /* the processor's dispute id */
    const char *charge_id;  /* payd's charge it disputes */
    const char *currency;
    const char *reason;     /* Stripe's reasons: fraudulent, ... */
    const char *status;     /* warning_needs_response, needs_response, under_review, won, lost */
    int64_t amount;         /* disputed, minor units */
    int64_t created, updated;
    int64_t seq;            /* grows with every change of any dispute: the listing's cursor */
} pd_proc_dispute_t;
typedef int (*pd_proc_dispute_fn)(const pd_proc_dispute_t *d, void *arg);

typedef struct pd_processor pd_processor_t;
struct pd_processor {
    const char *name;
    void (*authorize)(pd_processor_t *p, const pd_proc_auth_t *req, pd_proc_cb cb, void *arg);
    /* capture amount (<= authorized) of an authorization; the rest is released */
    void (*capture)(pd_processor_t *p, const char *reference, int64_t amount, pd_proc_cb cb, void *arg);
    /* void an uncaptured authorization */
    void (*cancel)(pd_processor_t *p, const char *reference, pd_proc_cb cb, void *arg);
    /* refund part or all of a captured amount; refund_id makes it idempotent */
    void (*refund)(pd_processor_t *p, const char *reference, int64_t amount, const char *refund_id, pd_proc_cb cb,
                   void *arg);
    /* what happened to the authorization made for this charge id */
    void (*query)(pd_processor_t *p, const char *charge_id, pd_proc_cb cb, void *arg);
    /* What the processor did: every authorization whose last change (authorization,
     * capture, void or refund) is in [since, until) in Unix seconds, oldest change
     * first, with its state now. Synchronous and possibly slow (reconciliation runs it
     * on a worker or in payctl, never on an event loop). Returns 0, fn's non-zero
     * value, or a PD_ERR_* when the processor cannot be read. */
    int (*list)(pd_processor_t *p, int64_t since, int64_t until, pd_proc_record_fn fn, void *arg);
    void (*free)(pd_processor_t *p);
    /* Disputes (NULL: the processor reports none). Every dispute whose seq is after
     * `after`, in seq order, with its state now; synchronous (the recovery worker and
     * payctl, never an event loop). Returns 0, fn's non-zero value or a PD_ERR_*. */
    int (*disputes)(pd_processor_t *p, int64_t after, pd_proc_dispute_fn fn, void *arg);
    /* The merchant's answer to a dispute: its evidence text (stored; NULL keeps what was
     * given), submit (sends it for review) or accept (closes it as lost). APPROVED when
     * done, DECLINED (message) when the dispute's state no longer takes it, NOT_FOUND. */
    void (*dispute_respond)(pd_processor_t *p, const char *reference, const char *evidence, bool submit, bool accept,
                            pd_proc_cb cb, void *arg);
};

/* A connector that forwards every call to inner and counts it in
 * payd_processor_requests_total{op,result} (payd/metrics_payd.h). It owns inner: its
 * free frees both. */
int pd_processor_metered(pd_processor_t **out, pd_processor_t *inner) PD_WUR;

/* [processor] configuration */
typedef struct {
    int64_t simulator_latency_ms; /* added to every simulator call */
    char *simulator_db;           /* the simulator's own record of authorizations ("" = DATA_DIR/simulator.db) */
} pd_processor_config_t;

int pd_processor_config_register(pd_config_t *cfg, pd_processor_config_t *c) PD_WUR;

/*
 * The test-mode simulator: implements Stripe's documented test card numbers and
 * their outcomes (4242 4242 4242 4242 approves, 4000 0000 0000 0002 declines, ...).
 * It keeps its authorizations in its own SQLite file, like a real processor that
 * outlives payd, so query() answers after a payd crash. That file is the processor's
 * truth for tests and outside checks: table `auths` (charge_id, reference, merchant_id,
 * amount, currency, status = declined | authorized | captured | voided,
 * amount_captured, amount_refunded, created, updated) and table `refunds` (refund_id,
 * reference, amount, created). Disputes: the test card 4000 0000 0000 0259 is disputed
 * (reason fraudulent, needs_response) when it is captured, in table `disputes`; evidence
 * whose text holds "winning_evidence" wins and "losing_evidence" loses, a second after it
 * is submitted (any other evidence stays under review), as Stripe's test mode does.
 */
int pd_simulator_new(pd_processor_t **out, const char *db_path, int64_t latency_ms) PD_WUR;

/* The outcome the simulator gives a card (exposed for tests and docs). */
void pd_simulator_decide(const char *pan, size_t pan_len, const char *cvc, int exp_month, int exp_year,
                         pd_proc_result_t *res);

#endif
