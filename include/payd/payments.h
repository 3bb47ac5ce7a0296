/*
 * The payment domain's work over the store and the processor (src/pay, library
 * pd_payments; the pure rules are pd_pay: payd/pay.h, payd/transitions.h):
 *   - the Stripe shapes of its objects, for responses and event data (render.c);
 *   - events, inserted with the change they describe (emit.c);
 *   - phase 2 of every money movement: the confirmation's outcome planner
 *     (outcome.c) and the capture, void and refund recorders (record.c), which the
 *     requests, the recovery worker and reconciliation share;
 *   - the processor calls waited for, for the workers (proc_sync.c);
 *   - the recovery worker (recovery.c) and reconciliation (reconcile.c).
 * Every function that takes a pd_db_t *tx runs inside a store write.
 */
#ifndef PAYD_PAYMENTS_H
#define PAYD_PAYMENTS_H

#include "payd/json.h"
#include "payd/processor.h"
#include "payd/records.h"
#include "payd/relay.h"
#include "payd/store.h"

/* the largest rendered object (responses, event data) */
#define PD_OBJECT_MAX (256u * 1024)

/* --- Stripe shapes (render.c) --- */
void pd_render_pi(pd_jw_t *w, const pd_pi_rec_t *p);
/* derives the key that makes client_secret values unguessable; called at start */
int pd_render_set_client_secret_key(const uint8_t *pepper, size_t len) PD_WUR;
/* "<id>_secret_<24 base62 chars of HMAC(key, id)>": an intent's client_secret (payment
 * and setup intents) */
void pd_render_client_secret(const char *id, char *out, size_t cap);
void pd_render_charge(pd_jw_t *w, const pd_charge_rec_t *c, const pd_pm_rec_t *pm);
void pd_render_refund(pd_jw_t *w, const pd_refund_rec_t *f);
void pd_render_dispute(pd_jw_t *w, const pd_dispute_rec_t *d);
void pd_render_pm(pd_jw_t *w, const pd_pm_rec_t *p);
/* Stripe's customer; the personal data as c holds it (NULL: null); a deleted customer
 * is {id, object, deleted: true} */
void pd_render_customer(pd_jw_t *w, const pd_customer_rec_t *c);
/* pd_render_customer with one more string member last (extra_key NULL: none) */
void pd_render_customer_x(pd_jw_t *w, const pd_customer_rec_t *c, const char *extra_key, const char *extra_value);
void pd_render_we(pd_jw_t *w, const pd_we_rec_t *we, const char *secret_once);
void pd_render_btxn(pd_jw_t *w, const pd_btxn_rec_t *b);
/* renders into a fresh buffer: returns its view (arena-owned) or an empty view */
pd_view_t pd_render_to_arena(pd_arena_t *a, void (*fn)(pd_jw_t *, const void *), const void *rec);

/* an intent rendered into a fresh arena string (error bodies, events) */
pd_view_t pd_pi_json(pd_arena_t *a, const pd_pi_rec_t *p);

/* --- events (emit.c) --- */
/* Inserts an event whose data.object is the JSON text obj, with its outbox row. */
int pd_emit_raw(pd_db_t *tx, const char *merchant, bool livemode, const char *type, pd_view_t obj,
                const char *request_id, const char *idem_key, int64_t now);
/* The Stripe-Version of the request whose write runs on this thread (NULL or "": none):
 * the events pd_emit_raw inserts meanwhile record it as their api_version. The API sets
 * it around each request's write (src/api/op.c); workers leave it unset (payd's). */
void pd_emit_set_version(const char *api_version);

/* --- phase 2 (outcome.c, record.c) --- */
/* Phase 2 of a confirmation as data: the charge and intent after the processor's
 * outcome, the ledger postings, the balance transaction, the event objects and the
 * response status (pd_outcome_plan, no I/O), then written by pd_outcome_write inside
 * a write; the writes are version-checked, and a charge that changed since the plan
 * was made is PD_ERR_CONFLICT before anything is written. */
typedef struct {
    pd_charge_rec_t ch;
    pd_pi_rec_t pi;
    bool approved, automatic;
    /* setup_future_usage with a customer: the approved payment's method is attached to
     * the intent's customer (when it is attached to no one), pm_json its rendering then */
    bool attach;
    pd_view_t pm_json;
    pd_posting_t authorization, capture;
    pd_btxn_rec_t bt;
    pd_view_t ch_json, pi_json;
    int status;
} pd_outcome_t;
int pd_outcome_plan(pd_arena_t *a, const pd_charge_rec_t *ch, const pd_pi_rec_t *pi, const pd_pm_rec_t *pm,
                    const pd_proc_result_t *res, int64_t now, pd_outcome_t *o, pd_buf_t *body_out) PD_WUR;
int pd_outcome_write(pd_db_t *tx, const pd_outcome_t *o, int64_t now) PD_WUR;
/* Records the processor's answer to the capture requested on `charge` (its id, merchant
 * and mode are read), on the charge and intent as stored now, inside a write: the
 * capture when the processor captured (its amount_captured, else the amount
 * requested), else the request cleared and the intent left capturable. A capture
 * recorded already (recovery, reconciliation) is answered as it is. *status and body
 * get the response: 200 with the intent, or 402 capture_failed. */
int pd_capture_record(pd_db_t *tx, pd_arena_t *a, const pd_charge_rec_t *charge, const pd_proc_result_t *res,
                      int64_t now, const char *request_id, int *status, pd_buf_t *body) PD_WUR;
/* The same for a requested void: APPROVED cancels the intent (ledger: the hold
 * released), anything else puts it back to capturable with 402. */
int pd_cancel_record(pd_db_t *tx, pd_arena_t *a, const pd_charge_rec_t *charge, const pd_proc_result_t *res,
                     int64_t now, const char *request_id, const char *idem_key, int *status, pd_buf_t *body) PD_WUR;
/* applies the processor's answer to a pending refund (the request's phase 2, and
 * recovery); the response (refund or card_error) goes to status_out/body_out */
int pd_refund_apply(pd_db_t *tx, pd_arena_t *a, const pd_refund_rec_t *pending, const pd_proc_result_t *res,
                    int64_t now, int *status_out, pd_buf_t *body_out) PD_WUR;
/* loads a charge left in processing and applies a processor outcome to it (recovery,
 * and a confirmation whose plan met a conflict); inside a write */
int pd_confirm_apply_outcome(pd_db_t *tx, pd_arena_t *a, const char *merchant, bool livemode, const char *charge_id,
                             const pd_proc_result_t *res, int64_t now, int *status_out, pd_buf_t *body_out);

/* The intent canceled when nothing was authorized (nothing to void). */
int pd_cancel_unauthorized(pd_db_t *tx, pd_pi_rec_t *pi, int64_t now, const char *request_id, const char *idem_key,
                           pd_buf_t *body) PD_WUR;

/* --- setup intents (setup.c) --- */
/* Stripe's setup_intent */
void pd_render_seti(pd_jw_t *w, const pd_seti_rec_t *s);
/* The processor reference of a setup intent's verification: "<id>-<version>", the version
 * its confirmation's phase 1 wrote (each confirmation is its own authorization, and the
 * recovery worker finds it from the stored intent). out holds PD_SETI_REF_MAX. */
#define PD_SETI_REF_MAX (PD_ID_MAX + 24)
void pd_seti_proc_ref(const pd_seti_rec_t *s, char *out, size_t cap);
/* Phase 2 of a setup intent's confirmation, shared by the request and the recovery
 * worker, inside a write: loads the intent, which must be processing (else
 * PD_ERR_STATE: resolved already), and records the verification's outcome res. Approved:
 * succeeded, its payment method attached to its customer (when it has one and the method
 * is attached to no one), events payment_method.attached and setup_intent.succeeded,
 * 200 and the intent. Declined: requires_payment_method with last_setup_error and no
 * payment method, setup_intent.setup_failed, 402 card_error with the intent. The
 * response goes to status_out/body_out; events carry request_id and the intent's
 * confirming idempotency key. */
int pd_seti_apply_outcome(pd_db_t *tx, pd_arena_t *a, const char *merchant, bool livemode, const char *id,
                          const pd_proc_result_t *res, int64_t now, const char *request_id, int *status_out,
                          pd_buf_t *body_out) PD_WUR;

/* processor calls waited for (proc_sync.c): for the workers, never on an event loop */
void pd_proc_query_sync(pd_processor_t *p, const char *charge_id, pd_proc_result_t *out);
void pd_proc_capture_sync(pd_processor_t *p, const char *reference, int64_t amount, pd_proc_result_t *out);
void pd_proc_cancel_sync(pd_processor_t *p, const char *reference, pd_proc_result_t *out);
void pd_proc_refund_sync(pd_processor_t *p, const char *reference, int64_t amount, const char *refund_id,
                         pd_proc_result_t *out);

/* --- the recovery worker (recovery.c) --- */
typedef struct pd_recovery pd_recovery_t;
typedef struct {
    pd_store_t *store;
    pd_processor_t *proc;
    pd_relay_t *relay;               /* kicked when a pass queued events (may be NULL) */
    int64_t recovery_after_ms;       /* a payment still processing after this long is resolved */
    int64_t idempotency_ttl_ms;      /* keys older than this are purged */
    int64_t reconcile_interval_ms;   /* a reconciliation pass this often (0: never) */
    int64_t reconcile_window_ms;     /* over the charges of this window */
} pd_recovery_opts_t;
/* Starts the worker thread: recovery passes, the idempotency purge, reconciliation. */
int pd_recovery_start(pd_recovery_t **out, const pd_recovery_opts_t *o) PD_WUR;
/* Stops and frees it. Accepts NULL. */
void pd_recovery_stop(pd_recovery_t *r);
/* A request whose write on charge_id ended in doubt (its COMMIT cut off, answered 503
 * storage_outcome_unknown) and that has ended: nothing continues it, so its charge, if
 * the write committed, need not wait recovery_after_ms. The worker marks the charge due
 * (pd_charge_expedite) as soon as the store takes the write, trying at every pass for
 * up to 10 minutes; the node holding the recovery lease settles it at its next pass.
 * Any thread; r NULL or a full list (PD_RECOVERY_EXPEDITE_MAX): nothing (the charge
 * waits as before). */
#define PD_RECOVERY_EXPEDITE_MAX 256
void pd_recovery_expedite(pd_recovery_t *r, const char *charge_id);
/* One recovery pass over charges and refunds created before older_than (the worker's
 * loop; tests call it directly). */
int pd_recovery_once(pd_store_t *store, pd_processor_t *proc, pd_relay_t *relay, int64_t older_than) PD_WUR;

/* Disputes (src/pay/dispute.c): imports what the processor's disputes did since the last
 * pass (their cursor in worker_cursors), one write per change: the dispute, its ledger
 * posting and balance transaction when funds move (withdrawn when it opens, given back
 * when it is won), the charge's disputed flag, and the events (charge.dispute.created,
 * .funds_withdrawn, .updated, .funds_reinstated, .closed). *applied (may be NULL) counts
 * the changes. A processor without disputes: nothing. Run by the recovery worker. */
int pd_disputes_sync(pd_store_t *store, pd_processor_t *proc, int64_t *applied) PD_WUR;

/* --- reconciliation with the processor (reconcile.c) --- */
#define PD_RECON_MAX_LINES 50
enum {
    PD_RECON_REPAIR = 1, /* record captures and voids the processor made that payd did not */
    PD_RECON_AUDIT = 2,  /* write every mismatch to payd's audit log */
};
typedef struct {
    int64_t compared, matched, in_flight; /* charges */
    int64_t mismatches, repaired;
    int nlines; /* the first mismatches, one line each: "KIND CHARGE: detail" */
    char lines[PD_RECON_MAX_LINES][240];
} pd_reconcile_report_t;

/* Compares payd's charges and refunds with the processor's record over the window from
 * `since` (Unix seconds) to now (see reconcile.c); each mismatch is logged and counted,
 * and flags add repairs and audit records. Returns 0 when the comparison ran (whatever
 * it found), a PD_ERR_* when the store or the processor could not be read. */
int pd_reconcile(pd_store_t *store, pd_processor_t *proc, int64_t since, int flags, pd_reconcile_report_t *rep) PD_WUR;
/* mismatches found since start (the metric reconciliation_mismatches_total) */
int64_t pd_reconcile_mismatches_total(void);
/* Its collector in pd_mx (payd_reconciliation_mismatches_total). */
int pd_reconcile_metrics_attach(void) PD_WUR;

#endif
