/* State of a PaymentIntent request across its asynchronous steps. */
#ifndef PAYD_API_PI_H
#define PAYD_API_PI_H

#include "api/internal.h"
#include "payd/processor.h"
#include "payd/transitions.h"

typedef struct {
    pd_op_t *op;
    pd_step_t step; /* the processor call and phase 2 (step.res: the processor's answer) */
    pd_pi_rec_t pi;   /* the state to write */
    bool pi_new;      /* insert rather than update */
    pd_pm_rec_t pm;
    bool pm_new;
    pd_charge_rec_t ch;
    pd_view_t created_json; /* payment_intent.created of a new intent, rendered before phase 1 */
    pd_card_fetch_t card; /* read from the vault while phase 1's fsync runs */
    pd_outcome_t outcome;   /* phase 2, planned on the loop thread */
    int64_t amount_to_capture;
    bool confirm;
    /* pd_pi_load */
    char id[PD_ID_MAX];
    bool with_charge;
    int ch_rc; /* the latest charge's read into ch (PD_ERR_NOTFOUND: none) */
    pd_op_next_fn pi_loaded;
    const char *pm_param; /* create: the payment_method parameter */
    int pm_rc;            /* create: its read (pd_pm_resolve_read) */
    const char *cus_param; /* create, update: the customer parameter (NULL: absent, "": unset) ... */
    int cus_rc;            /* ... its read: 0 when it names a live customer of this merchant and mode */
    bool with_pm;         /* pd_pi_load also reads the payment method to confirm with (confirm.c) ... */
    const char *pm_read;  /* ... this one (pm_param, else the intent's), result in pm_rc; NULL: none */
} pi_ctx_t;

pi_ctx_t *pd_pi_ctx_new(pd_req_t *r);
/* Off the loop (pd_op_load, after the idempotency check): loads the intent named by
 * the path's :id into c->pi and, with with_charge, its latest charge into c->ch
 * (c->ch_rc); then next(c->op) on the loop. Answers 404 itself when there is no such
 * intent, 503 when the database cannot be read. */
void pd_pi_load(pi_ctx_t *c, bool with_charge, pd_op_next_fn next);
/* 400 payment_intent_unexpected_state with the intent in the error */
void pd_pi_refuse(pd_req_t *r, const pd_pi_rec_t *pi, pd_pi_action_t action);
/* On the loop: false after answering 400 when the customer parameter names no live
 * customer (c->cus_rc from the load); else sets c->pi.customer from it. */
bool pd_pi_customer_checked(pi_ctx_t *c);
/* reads the customer parameter's customer (on a reader thread): c->cus_rc */
int pd_pi_customer_read(pd_db_t *db, pi_ctx_t *c);
/* renders p into a fresh arena string (for error bodies and events) */
pd_view_t pd_pi_json(pd_arena_t *a, const pd_pi_rec_t *p);

#endif
