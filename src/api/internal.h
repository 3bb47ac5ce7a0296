/* Internals of the payments API shared by the handler files. Not a public interface. */
#ifndef PAYD_API_INTERNAL_H
#define PAYD_API_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "payd/api.h"
#include "payd/auth.h"
#include "payd/cache.h"
#include "payd/http.h"
#include "payd/json.h"
#include "payd/metrics_payd.h"
#include "payd/payments.h"
#include "payd/records.h"
#include "payd/schema.h"
#include "payd/relay.h"
#include "payd/webhook.h"

#define RESP_MAX PD_OBJECT_MAX

struct pd_api {
    const pd_api_config_t *cfg;
    pd_store_t *store;
    pd_vault_link_t *vault;
    pd_processor_t *proc;
    char data_dir[4096];
    pd_relay_t *relay; /* the outbox relay and webhook delivery (src/events) */
    pd_recovery_t *recovery; /* the recovery worker (src/pay) */
    bool workers_started;
    pd_cache_t *limits; /* usage plans, auth failures, lockouts */
    struct pd_key_epoch *key_epoch; /* with reads off the loops: the API key epoch (key_epoch.c); else NULL */
    struct pd_files *files;     /* the file store (report files) */
    struct pd_reports *reports; /* the report worker (src/pay/report_worker.c) */
};

/* --- the API key epoch off the loops (key_epoch.c) --- */
#define PD_KEY_EPOCH_REFRESH_MS 100 /* how often the thread reads api_key_epoch */
#define PD_KEY_EPOCH_STALE_MS 1000  /* cached keys are trusted only while the last read is this recent */
typedef struct pd_key_epoch pd_key_epoch_t;
/* Reads the epoch once, then starts the thread that rereads it. */
int pd_key_epoch_start(pd_key_epoch_t **out, pd_store_t *store);
/* The epoch last read, if that read is at most PD_KEY_EPOCH_STALE_MS old; else false. Any thread. */
bool pd_key_epoch_current(pd_key_epoch_t *k, int64_t *epoch);
/* Stops the thread and frees k (NULL: nothing). */
void pd_key_epoch_stop(pd_key_epoch_t *k);

pd_api_t *pd_api_of(pd_req_t *r);

/* limits.c: each returns 1 after answering 429, else 0 */
int pd_limits_locked(pd_api_t *api, pd_req_t *r);
void pd_limits_auth_failed(pd_api_t *api, pd_req_t *r);
int pd_limits_plan(pd_api_t *api, pd_req_t *r, const pd_auth_t *a);
/* Answers 429 rate_limit with Retry-After; returns 1 (the filter responded). */
int pd_limits_too_many(pd_req_t *r, size_t limit, int64_t retry_ms, const char *msg); /* limit: PD_MX_LIMIT_* */
/* Card-testing velocity limits (velocity.c): before a charge attempt (0: go on, 1:
 * refused and answered), and after a decline. */
int pd_velocity_check(pd_api_t *api, pd_req_t *r, const char *merchant_id, const char *fingerprint);
void pd_velocity_declined(pd_api_t *api, const char *merchant_id, const char *fingerprint);
/* wakes the outbox relay (new events committed) */
void pd_api_kick(pd_api_t *a);

/* --- asynchronous operations: store writes with idempotency, then a continuation on the loop --- */
typedef struct pd_op pd_op_t;
typedef struct pd_step pd_step_t;
typedef int (*pd_op_write_fn)(pd_db_t *tx, pd_op_t *op);
typedef void (*pd_op_next_fn)(pd_op_t *op);

struct pd_op {
    pd_task_t task;
    pd_req_t *r;
    pd_api_t *api;
    const pd_auth_t *auth;
    bool has_idem;
    char idem_key[256];
    char fingerprint[65];
    bool claimed;         /* our claim on the key is durable (later phases reuse it) */
    bool replay;          /* the key was seen before: existing holds what to do */
    pd_idem_rec_t existing;
    pd_op_write_fn write;
    pd_op_next_fn committed; /* on the writer thread, once the write is committed (may be NULL) */
    pd_op_next_fn next;
    int rc;               /* result of the last write */
    int status;           /* final response, once known (0: not yet) */
    pd_buf_t body;
    pd_buf_t idem_body;   /* with idem_redacted: what is stored with the key instead of body */
    const char *idem_redacted;
    int64_t now;
    void *ctx;            /* the handler's state */
    pd_step_t *step;      /* its processor step, if it has one */
    bool idem_checked;    /* the key's record was looked up before the request was (pd_op_load) */
    bool idem_replay;     /* ... and found: the request is answered from it */
    int (*load)(pd_db_t *db, pd_op_t *op);
    pd_op_next_fn loaded;
};

/* Prepares an operation for a mutating request: reads Idempotency-Key (≤ 255) and
 * fingerprints the request. NULL after it responded (bad key, out of memory). */
pd_op_t *pd_op_new(pd_req_t *r, void *ctx);
/* The reads of an operation before it decides what to write, off the loop (as
 * pd_api_read): first, once per op, the record of its Idempotency-Key (a key seen
 * before is answered from its record: a retried capture replays its 200 rather than
 * meet the state it left behind; the claim in the write stays the authority for keys
 * that race); then load(db, op) (may be NULL), whose result is op->rc when next runs
 * on the loop. A failed read (not PD_ERR_NOTFOUND) is answered by
 * pd_resp_read_failed and next is not called. */
typedef int (*pd_op_load_fn)(pd_db_t *db, pd_op_t *op);
void pd_op_load(pd_op_t *op, pd_op_load_fn load, pd_op_next_fn next);
/* Runs write on the store writer (claiming the idempotency key first when the request
 * has one); once durable, next runs on the request's loop (pd_op_finish by default). */
void pd_op_commit(pd_op_t *op, pd_op_write_fn write, pd_op_next_fn next);
/* pd_op_commit that also runs `committed` on the store's writer thread as soon as
 * the write is committed without an error response, before it is durable (see
 * pd_store_submit_ex); next still runs once it is durable. */
void pd_op_commit_early(pd_op_t *op, pd_op_write_fn write, pd_op_next_fn committed, pd_op_next_fn next);

/* The card of a two-phase processor step (card_fetch.c), read from the vault while phase
 * 1's fsync runs: pd_card_fetch_read on the writer thread once phase 1 is committed (the
 * `committed` of pd_op_commit_early), pd_card_fetch_phase1 on the loop when phase 1 is
 * answered; ready(op) runs on the loop once both have happened, or phase 1 alone when no
 * card was asked for. The caller wipes the card after the processor call or when the
 * request ends without one (pd_card_fetch_wipe). */
typedef struct {
    char pan[20], cvc[5];
    int exp_month, exp_year;
    int rc;                                /* 0, or why the vault could not give it */
    bool asked, arrived, phase1_answered; /* detokenize sent (writer thread); its answer on the loop */
    pd_op_t *op;
    pd_task_t task;
    void (*ready)(pd_op_t *op);
} pd_card_fetch_t;
void pd_card_fetch_init(pd_card_fetch_t *f, pd_op_t *op, void (*ready)(pd_op_t *op));
void pd_card_fetch_read(pd_card_fetch_t *f, const char *merchant, const char *vault_token);
void pd_card_fetch_phase1(pd_card_fetch_t *f);
void pd_card_fetch_wipe(pd_card_fetch_t *f);
/* Sends op's outcome: a replay, the stored status/body, or the error of op->rc. */
void pd_op_finish(pd_op_t *op);
/* Inside a write: sets the final response (rendered JSON) to store with the idempotency key. */
int pd_op_respond_json(pd_op_t *op, int status, pd_jw_t *w);
/* Inside a write, after pd_op_respond_json: the response holds a secret, so the
 * idempotency key stores `stored` (rendered into op->idem_body: the response without
 * it) and `redacted` ("we_secret:ID", "pm_name:ID", see redact.c), from which a replay
 * re-derives it through the vault. No secret, key or card data is stored in a replay body. */
int pd_op_store_redacted(pd_op_t *op, pd_jw_t *stored, const char *redacted);
/* Replays a complete record whose body had a secret taken out (redact.c): answers later. */
void pd_redact_replay(pd_op_t *op);
/* The encryption context of a payment method's cardholder name under alias/pii. */
void pd_pii_context(char *out, size_t cap, const char *merchant, const char *pm_id);
/* Decrypts a hex envelope through the vault (api principal) and calls fn on r's loop
 * with the clear value (wiped after fn returns; NULL when rc != 0). Holds r. 0 when the
 * call is under way; else nothing was sent and fn is not called. */
typedef void (*pd_secret_fn)(pd_req_t *r, void *arg, int rc, const char *value);
int pd_secret_open(pd_req_t *r, const char *context, const char *env_hex, pd_secret_fn fn, void *arg) PD_WUR;
/* Inside a write: a Stripe error as the final response. */
int pd_op_error(pd_op_t *op, int status, const char *type, const char *code, const char *param, const char *extra_json,
                const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* --- the two-phase processor step (proc_step.c) ---
 * Shared by confirm, capture, cancel and refund. Phase 1, the write that records the
 * request (and claims its idempotency key), is durable; then `call` starts the processor
 * operation, which answers pd_step_answer(step, result) on any thread; the answer comes
 * back to the request's loop. No answer (PD_PROC_UNKNOWN) is a 502, and the recorded
 * request is left to the recovery worker. Otherwise `prepare` (may be NULL) runs on the
 * loop (non-zero: it responded), then phase 2 commits the outcome, read from step->res,
 * and the op sends its response. A phase 2 that the database refused as unavailable
 * (a lost connection, a standby: nothing was written) is tried again every
 * PD_LOOP_LATER_MS for up to PD_STEP_RETRY_MS, on a new connection to the host list:
 * a failover does not leave the request to the recovery worker. Phase-2 writes are
 * re-runnable (they read the plan and the processor's answer, and render afresh). */
#define PD_STEP_RETRY_MS 10000
struct pd_step {
    pd_op_t *op;
    pd_task_t task;
    pd_proc_result_t res;
    void (*call)(pd_step_t *s);
    int (*prepare)(pd_step_t *s);
    pd_op_write_fn phase2;
    const char *operation, *object; /* the 502's words: "capture", "PaymentIntent" */
    int64_t amount;       /* a payment's amount and currency, for payd_payment_amount_minor_total */
    const char *currency; /* (set by confirm; 0 / NULL for the other operations) */
    const char *charge_id; /* the charge it moves (not a refund's): an in-doubt commit expedites its recovery */
    pd_later_t again;     /* phase 2 tried again after the database was unavailable */
    uint64_t unavailable_since_ms; /* pd_mono_ms of phase 2's first PD_ERR_UNAVAILABLE, 0 if none */
};
void pd_step_init(pd_step_t *s, pd_op_t *op, void (*call)(pd_step_t *), int (*prepare)(pd_step_t *), pd_op_write_fn phase2,
                  const char *operation, const char *object);
/* Commits phase 1, then calls the processor unless phase 1 answered already (a replay,
 * a conflict, an error response). */
void pd_step_start(pd_step_t *s, pd_op_write_fn phase1);
/* The processor's answer (a pd_proc_cb whose arg is the step). */
void pd_step_answer(void *arg, const pd_proc_result_t *res);

/* --- events (inside a write) --- */
/* Inserts an event whose data.object is the JSON text obj. */
int pd_emit(pd_db_t *tx, pd_op_t *op, const char *type, pd_view_t obj);

/* --- request helpers --- */
const char *pd_param_str(pd_req_t *r, const char *key); /* NULL if absent */
bool pd_param_bool(pd_req_t *r, const char *key, bool dflt);
/* metadata[...] params as a JSON object text; "" when absent, "{}" when explicitly emptied */
const char *pd_param_metadata(pd_req_t *r, const char *existing);
/* lists: limit/starting_after/ending_before; responds 400 and returns false on bad input */
bool pd_list_query(pd_req_t *r, pd_list_q_t *q);
/* a whole list endpoint: query parameters, the list envelope, each item rendered
 * by `each(rec, pd_jw_t *)`, errors for unknown cursors; filter_param (or NULL)
 * becomes the list's filter */
typedef int (*pd_list_fn)(pd_db_t *, pd_arena_t *, const char *, bool, const pd_list_q_t *, pd_rec_fn, void *, bool *);
void pd_list_respond(pd_req_t *r, const char *url, const char *what, const char *filter_param, pd_list_fn fn,
                     pd_rec_fn each);
/* pd_list_respond with a second filter (q->filter2) */
void pd_list_respond2(pd_req_t *r, const char *url, const char *what, const char *filter_param,
                      const char *filter2_param, pd_list_fn fn, pd_rec_fn each);
/* writes the list envelope around items rendered by the callback */
void pd_list_begin(pd_jw_t *w, const char *url);
void pd_list_end(pd_jw_t *w, bool has_more);
/* 404 resource_missing for an id param */
void pd_resp_missing(pd_req_t *r, const char *what, const char *param, const char *id);
/* 502: the processor did not answer; the recorded request is finished by recovery */
void pd_resp_no_answer(pd_req_t *r, const char *operation, const char *object);
/* responds with w's JSON (status 200) */
void pd_resp_jw(pd_req_t *r, int status, pd_jw_t *w);
/* The calling thread's store reader: only for code that runs on a reader thread or
 * with reads inline (pd_store_reads_offloaded false); never on a loop otherwise. */
pd_db_t *pd_reader(pd_req_t *r);

/* --- reads off the loop (read.c) ---
 * pd_api_read runs read(db, r, ctx) on a store reader thread (inline on SQLite
 * without reader threads, see store.readers), then then(r, ctx, rc) on r's loop with
 * read's result; r is held in between, and then is not called when the client went
 * away. read may use r's arena, its params and path params, and ctx, nothing else
 * of r (no pd_req_* / pd_resp_* call): the loop does not touch them meanwhile.
 * then must respond or start more work. A read that could not be queued is answered
 * by pd_resp_read_failed and then is not called. */
typedef int (*pd_api_read_fn)(pd_db_t *db, pd_req_t *r, void *ctx);
typedef void (*pd_api_then_fn)(pd_req_t *r, void *ctx, int rc);
void pd_api_read(pd_req_t *r, pd_api_read_fn read, pd_api_then_fn then, void *ctx);
/* The one answer to a read that failed for another reason than "not found": 503
 * api_error with Retry-After for no database (PD_ERR_UNAVAILABLE: connection lost,
 * read-only standby; PD_ERR_AGAIN: readers saturated), else 500. */
void pd_resp_read_failed(pd_req_t *r, int rc);
/* pd_resp_read_failed with the 503's message (what could not be done; NULL: the default). */
void pd_resp_read_failed_msg(pd_req_t *r, int rc, const char *msg);
/* A read's not-found or failure: 404 resource_missing for PD_ERR_NOTFOUND (what,
 * param, id as pd_resp_missing), else pd_resp_read_failed. */
void pd_resp_read_error(pd_req_t *r, int rc, const char *what, const char *param, const char *id);
/* A whole "GET /v1/things/:id": fn(db, r, id, &json) loads the object of r->auth's
 * merchant and renders it into r's arena, on a reader thread (as pd_api_read); 200
 * with it, 404 resource_missing (param "id") for PD_ERR_NOTFOUND, else
 * pd_resp_read_failed. */
typedef int (*pd_get_fn)(pd_db_t *db, pd_req_t *r, const char *id, pd_view_t *json);
void pd_get_respond(pd_req_t *r, const char *what, pd_get_fn fn);

/* --- expand[] (expand.c) --- */
/* Checks the request's expand[] paths against its route's object: 0, or 1 after
 * answering 400 (param expand). */
int pd_expand_check(pd_req_t *r);
bool pd_expand_wanted(const pd_req_t *r);
/* Replaces *json (the route's object, or its list) with its expansion, made in a with
 * db (a reader connection or the writer's transaction); r's params, route and auth only. */
int pd_expand(pd_db_t *db, pd_req_t *r, pd_arena_t *a, pd_view_t *json);

/* --- test payment methods (pm_card_visa, tok_visa, ...) --- */
/* the PAN behind a Stripe test payment method or token id; NULL if not one */
const char *pd_test_pm_pan(const char *id);

/* --- handlers --- */
void pd_h_pm_create(pd_req_t *r);
void pd_h_pm_get(pd_req_t *r);
void pd_h_token_create(pd_req_t *r);
void pd_h_pi_create(pd_req_t *r);
void pd_h_pi_update(pd_req_t *r);
void pd_h_pi_get(pd_req_t *r);
void pd_h_pi_list(pd_req_t *r);
void pd_h_pi_confirm(pd_req_t *r);
void pd_h_pi_capture(pd_req_t *r);
void pd_h_pi_cancel(pd_req_t *r);
void pd_h_charge_get(pd_req_t *r);
void pd_h_charge_list(pd_req_t *r);
void pd_h_refund_create(pd_req_t *r);
void pd_h_refund_get(pd_req_t *r);
void pd_h_refund_list(pd_req_t *r);
void pd_h_balance_get(pd_req_t *r);
void pd_h_btxn_list(pd_req_t *r);
void pd_h_event_get(pd_req_t *r);
void pd_h_event_list(pd_req_t *r);
void pd_h_we_create(pd_req_t *r);
void pd_h_we_get(pd_req_t *r);
void pd_h_we_list(pd_req_t *r);
void pd_h_we_delete(pd_req_t *r);
void pd_h_we_update(pd_req_t *r);
void pd_h_report_run_create(pd_req_t *r);
void pd_h_report_run_get(pd_req_t *r);
void pd_h_report_run_list(pd_req_t *r);
void pd_h_report_type_list(pd_req_t *r);
void pd_h_report_type_get(pd_req_t *r);
void pd_h_file_get(pd_req_t *r);
void pd_h_file_list(pd_req_t *r);
void pd_h_file_contents(pd_req_t *r);
void pd_h_dispute_get(pd_req_t *r);
void pd_h_dispute_list(pd_req_t *r);
void pd_h_dispute_update(pd_req_t *r);
void pd_h_dispute_close(pd_req_t *r);
void pd_h_customer_create(pd_req_t *r);
void pd_h_customer_get(pd_req_t *r);
void pd_h_customer_update(pd_req_t *r);
void pd_h_customer_delete(pd_req_t *r);
void pd_h_customer_list(pd_req_t *r);
void pd_h_customer_pm_list(pd_req_t *r);
void pd_h_pm_attach(pd_req_t *r);
void pd_h_pm_detach(pd_req_t *r);
void pd_h_pm_list(pd_req_t *r);
/* search (search.c) */
void pd_h_pi_search(pd_req_t *r);
void pd_h_charge_search(pd_req_t *r);
void pd_h_customer_search(pd_req_t *r);
/* setup intents (setup_intents.c) */
void pd_h_seti_create(pd_req_t *r);
void pd_h_seti_get(pd_req_t *r);
void pd_h_seti_update(pd_req_t *r);
void pd_h_seti_confirm(pd_req_t *r);
void pd_h_seti_cancel(pd_req_t *r);
void pd_h_seti_list(pd_req_t *r);
/* Stripe's refusal of a payment method detached from its customer (pm_attach.c) */
extern const char *pd_pm_detached_message;

/* confirmation (shared by create with confirm=true, /confirm, and the recovery worker) */
void pd_confirm_start(pd_op_t *op, pd_pi_rec_t *pi, const char *pm_id);
/* schemas of the routes */
extern const pd_schema_t pd_schema_pm_create, pd_schema_token_create, pd_schema_pi_create, pd_schema_pi_update,
    pd_schema_pi_confirm, pd_schema_pi_capture, pd_schema_pi_cancel, pd_schema_list, pd_schema_list_charges,
    pd_schema_list_events, pd_schema_refund_create, pd_schema_we_create, pd_schema_we_update, pd_schema_retrieve,
    pd_schema_report_run_create, pd_schema_list_report_runs, pd_schema_list_files, pd_schema_list_disputes,
    pd_schema_dispute_update, pd_schema_customer_create, pd_schema_customer_update, pd_schema_list_customers,
    pd_schema_pm_attach, pd_schema_list_pms, pd_schema_list_customer_pms, pd_schema_list_pis, pd_schema_search;
extern const pd_schema_t pd_schema_seti_create, pd_schema_seti_update, pd_schema_seti_confirm, pd_schema_seti_cancel,
    pd_schema_list_setis;

/* workers */
/* authentication filter */
int pd_auth_filter(pd_req_t *r, void *arg);
/* refuses Stripe-Account and expand[] (unsupported.c); a PD_STAGE_PARSED filter */
int pd_unsupported_filter(pd_req_t *r, void *arg);
/* A PD_STAGE_PARSED filter (free_text.c): refuses a card number in free text (arg: the api). */
int pd_free_text_filter(pd_req_t *r, void *arg);
/* true when v holds a Luhn-valid run of 13 to 19 digits (single spaces or dashes between them allowed) */
bool pd_text_has_card_number(pd_view_t v);

#endif
