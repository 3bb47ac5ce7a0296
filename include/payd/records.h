/*
 * The stored records of the payments API and their repository functions. Reads
 * take a connection from pd_store_reader(); writes take the writer connection
 * handed to a pd_write_fn (include/payd/store.h). Variable-length text comes from
 * the caller's arena. A record never holds a PAN or CVC: cards are vault tokens.
 */
#ifndef PAYD_RECORDS_H
#define PAYD_RECORDS_H

#include <stdbool.h>
#include <stdint.h>

#include "payd/arena.h"
#include "payd/db.h"
#include "payd/id.h"
#include "payd/pay.h"

typedef struct {
    char id[PD_ID_MAX];
    char name[256];
    int64_t created;
} pd_merchant_rec_t;

typedef struct {
    char id[PD_ID_MAX];
    char merchant_id[PD_ID_MAX];
    char kind[16]; /* secret | publishable | restricted */
    bool livemode;
    char prefix[24]; /* the first PD_KEY_PREFIX_LEN characters of the key: the lookup handle */
    char hash[65];   /* hex HMAC-SHA256 of the whole key under the pepper */
    char last4[5];
    char scopes[512]; /* restricted keys: "payment_intents:write,refunds:read" */
    char name[128];
    int64_t created, expires_at, revoked_at; /* 0: never / not revoked */
    int64_t rate_per_s, burst, monthly_quota; /* 0: the configured default */
} pd_key_rec_t;

#define PD_KEY_PREFIX_LEN 16

typedef struct {
    char id[PD_ID_MAX];
    char object[16]; /* payment_method | token */
    char merchant_id[PD_ID_MAX];
    bool livemode;
    char vault_token[PD_ID_MAX];
    char brand[16], last4[5], funding[16], fingerprint[24], country[4], cvc_check[16];
    int exp_month, exp_year;
    const char *billing_name;     /* the clear name, in memory only: NULL if none or not decrypted (a row
                             * written before version 12 may still hold it in clear) */
    const char *billing_name_enc; /* what is stored: hex envelope of the name under alias/pii, context
                             * "merchant=M;purpose=billing_name;id=PM" (NULL if none) */
    const char *metadata;     /* JSON object text */
    bool used;          /* tokens are single-use */
    char customer[PD_ID_MAX]; /* the customer it is attached to, "" if none */
    bool detached;      /* was detached from a customer: never used or attached again (Stripe's rule) */
    int64_t created, seq;
} pd_pm_rec_t;

typedef struct {
    char id[PD_ID_MAX];
    char merchant_id[PD_ID_MAX];
    bool livemode;
    int64_t amount;
    char currency[4];
    int status; /* pd_pi_status_t */
    char capture_method[12];
    char payment_method[PD_ID_MAX]; /* "" if none */
    const char *description, *metadata, *statement_descriptor, *receipt_email; /* NULL = null; metadata is JSON */
    int64_t amount_capturable, amount_received;
    char latest_charge[PD_ID_MAX];
    const char *last_payment_error; /* JSON object text or NULL */
    char cancellation_reason[40];
    char customer[PD_ID_MAX];         /* "" if none */
    char setup_future_usage[16];      /* "", on_session or off_session */
    int64_t canceled_at, created, seq, version;
} pd_pi_rec_t;

/* a customer's address; NULL members are null (and all NULL: the address is null) */
typedef struct {
    const char *line1, *line2, *city, *state, *postal_code, *country;
} pd_address_t;

/* a customer (Stripe's customer object). The personal data (email, name, phone,
 * address) is held in clear in memory only: what is stored is pii_enc, one envelope
 * under alias/pii, and email_index, a keyed hash of the normalized email for the
 * list's email filter (src/api/customers.c). */
typedef struct {
    char id[PD_ID_MAX];           /* cus_… */
    char merchant_id[PD_ID_MAX];
    bool livemode;
    const char *email, *name, *phone; /* clear, memory only; NULL = null */
    pd_address_t address;             /* clear, memory only */
    const char *pii_enc;   /* stored: hex envelope of the personal data as JSON, context
                            * "merchant=M;purpose=customer;id=CUS" (NULL: none) */
    char email_index[65];  /* stored: hex HMAC of the normalized email, "" if no email */
    const char *description, *metadata; /* metadata: JSON object text */
    char default_payment_method[PD_ID_MAX]; /* invoice_settings.default_payment_method, "" if none */
    bool deleted;          /* a deleted customer keeps its id only: its personal data is erased */
    int64_t created, updated, seq, version;
} pd_customer_rec_t;

/* a SetupIntent (Stripe's setup_intent): a card verified with the processor (a
 * zero-amount authorization whose processor reference is the intent's id) and saved to
 * its customer. status is one of pd_seti_status_names' */
typedef struct {
    char id[PD_ID_MAX];           /* seti_… */
    char merchant_id[PD_ID_MAX];
    bool livemode;
    char status[24];              /* requires_payment_method, requires_confirmation, requires_action,
                                   * processing, canceled, succeeded */
    char customer[PD_ID_MAX];     /* "" if none */
    char payment_method[PD_ID_MAX]; /* "" if none */
    char usage[16];               /* on_session | off_session */
    const char *description, *metadata; /* NULL = null; metadata is JSON object text */
    const char *last_setup_error; /* JSON object text or NULL */
    char cancellation_reason[32]; /* "" if none */
    const char *idempotency_key;  /* of the confirming request in flight, so recovery can complete it */
    int64_t created, updated, seq, version;
} pd_seti_rec_t;

typedef struct {
    char id[PD_ID_MAX];
    char merchant_id[PD_ID_MAX];
    bool livemode;
    char payment_intent[PD_ID_MAX];
    char payment_method[PD_ID_MAX];
    int64_t amount;
    char currency[4];
    char status[16]; /* pending | succeeded | failed */
    bool captured, processing, capture_requested, void_requested;
    int64_t amount_captured, amount_refunded;
    char processor_ref[64];
    char failure_code[40], failure_message[160], decline_code[40];
    const char *outcome;     /* JSON object text or NULL */
    const char *description; /* NULL = null */
    const char *idempotency_key; /* of the confirming request, so recovery can complete it */
    const char *pending_idempotency_key; /* of the capture or cancel request in flight, likewise */
    int64_t capture_amount;        /* what the capture in flight asked for */
    char request_id[PD_ID_MAX];
    int64_t created, seq, version;
    int64_t updated; /* Unix seconds of the last insert or update (set by the repository) */
    int disputed;    /* read: 0 none, 1 disputed (not refundable), 2 its dispute was won */
    char customer[PD_ID_MAX]; /* its intent's customer when it was made, "" if none */
} pd_charge_rec_t;

/* a dispute (chargeback), Stripe's dispute object */
typedef struct {
    char id[PD_ID_MAX];            /* dp_… */
    char merchant_id[PD_ID_MAX];
    bool livemode;
    char charge[PD_ID_MAX], payment_intent[PD_ID_MAX];
    char processor_ref[64];        /* the processor's dispute id */
    int64_t amount;
    char currency[4];
    char reason[40];
    char status[32];               /* warning_needs_response | needs_response | under_review | won | lost */
    const char *evidence;          /* JSON object text of evidence[...] */
    bool evidence_submitted;
    const char *metadata;          /* JSON object text */
    int64_t created, updated, seq, version;
} pd_dispute_rec_t;

typedef struct {
    char id[PD_ID_MAX];
    char merchant_id[PD_ID_MAX];
    bool livemode;
    char charge[PD_ID_MAX], payment_intent[PD_ID_MAX];
    int64_t amount;
    char currency[4];
    char status[16]; /* pending (the processor not yet answered) | succeeded | failed */
    char reason[40];
    const char *metadata;
    char failure_reason[40];
    const char *idempotency_key; /* of the creating request, so recovery can complete it */
    char request_id[PD_ID_MAX];
    int64_t created, seq;
} pd_refund_rec_t;

typedef struct {
    char id[PD_ID_MAX];
    char merchant_id[PD_ID_MAX];
    bool livemode;
    int64_t amount, fee, net;
    char currency[4];
    char type[16];   /* charge | refund */
    char source[PD_ID_MAX];
    char status[16]; /* pending | available */
    int64_t available_on, created, seq;
    const char *description;
} pd_btxn_rec_t;

/* The Stripe API version payd's objects follow (sent as Stripe-Version when a request names none) */
#define PD_STRIPE_API_VERSION "2024-06-20"
#define PD_STRIPE_VERSION_MAX 48

typedef struct {
    char id[PD_ID_MAX];
    char merchant_id[PD_ID_MAX];
    bool livemode;
    char type[64];
    char api_version[PD_STRIPE_VERSION_MAX]; /* the Stripe-Version of the request that made it ("": payd's) */
    const char *data; /* the object snapshot (JSON) */
    char request_id[PD_ID_MAX];
    const char *idempotency_key;
    int64_t created, seq;
    int64_t pending_webhooks; /* read: deliveries not yet made and still being tried */
} pd_event_rec_t;

typedef struct {
    char id[PD_ID_MAX];
    char merchant_id[PD_ID_MAX];
    bool livemode;
    const char *url;
    const char *enabled_events; /* JSON array text */
    const char *secret;         /* hex of the whsec_ value's envelope under alias/webhooks */
    char status[16];
    const char *description;
    const char *metadata;
    int64_t created, seq;
} pd_we_rec_t;

/* a file of the file store (src/files/store.c); merchant_id "" for payd's own files (backups) */
typedef struct {
    char id[PD_ID_MAX];      /* file_… */
    char merchant_id[PD_ID_MAX];
    bool livemode;
    char purpose[40];        /* finance_report_run | backup */
    char filename[128];
    char type[16];           /* csv | pdbackup */
    int64_t size;
    char sha256[65];         /* hex SHA-256 of the plaintext */
    int64_t created, expires_at, seq; /* expires_at 0: never */
} pd_file_rec_t;

/* a report run (Stripe's reporting.report_run) */
typedef struct {
    char id[PD_ID_MAX];      /* frr_… */
    char merchant_id[PD_ID_MAX];
    bool livemode;
    char report_type[64];
    int64_t interval_start, interval_end; /* [start, end), unix seconds */
    char currency[4];        /* "" = every currency */
    char columns[1024];      /* comma-separated: the CSV's columns, in order */
    char status[16];         /* pending | succeeded | failed */
    char error[256];         /* failed: why */
    char result_file[PD_ID_MAX]; /* succeeded: the file's id */
    int64_t created, succeeded_at, claimed_until, attempts, seq;
    bool has_result;         /* read: the result file's row exists (it is gone once it expired) */
    pd_file_rec_t result;    /* read: that row */
} pd_report_run_rec_t;

/* --- list queries: newest first, cursor by object id --- */
typedef struct {
    int64_t limit;              /* 1..100 */
    const char *starting_after; /* NULL or an id */
    const char *ending_before;
    const char *filter;         /* per list: events type, charge payment_intent, refunds charge, ... */
    const char *filter2;        /* a second filter, for the lists that have two (setup intents) */
    bool created_range;               /* created[gt|gte|lt|lte] given: only creation times in ... */
    int64_t created_gte, created_lte; /* ... [created_gte, created_lte] are listed */
} pd_list_q_t;

typedef int (*pd_rec_fn)(void *rec, void *arg);

/* --- search scans (repo_search.c): newest first along the list index, a window at a time ---
 * Reads at most `limit` rows of the merchant and mode strictly older than (after_seq,
 * after_id) in (seq, id) order, newest first, and calls fn for each: rec is the decoded
 * record (pd_pi_rec_t, pd_charge_rec_t, pd_customer_rec_t; valid during the call only,
 * its strings in an arena freed after it) when the row passes the pre-filter, which the
 * database checks, else NULL (the row only moves the scan's position). fn returns as a
 * pd_row_fn (1 stops). *rows gets the number of rows read. */
typedef struct {
    const char *merchant;
    bool livemode;
    int64_t after_seq;
    const char *after_id;
    int64_t limit;
    /* the pre-filter: NULL / the full range checks nothing; text compared lower-cased */
    const char *status, *currency, *customer;
    int64_t amount_gte, amount_lte, created_gte, created_lte;
    const char *email_index; /* customers: only this index, read through customers_email */
} pd_search_q_t;
typedef int (*pd_search_fn)(const void *rec, int64_t seq, const char *id, void *arg);
int pd_pi_search(pd_db_t *db, const pd_search_q_t *q, pd_search_fn fn, void *arg, int64_t *rows) PD_WUR;
int pd_charge_search(pd_db_t *db, const pd_search_q_t *q, pd_search_fn fn, void *arg, int64_t *rows) PD_WUR;
/* live customers only (a deleted one is not searched, as it is not listed) */
int pd_customer_search(pd_db_t *db, const pd_search_q_t *q, pd_search_fn fn, void *arg, int64_t *rows) PD_WUR;

/* --- merchants and keys --- */
int pd_merchant_insert(pd_db_t *tx, const pd_merchant_rec_t *m) PD_WUR;
int pd_merchant_get(pd_db_t *db, const char *id, pd_merchant_rec_t *out) PD_WUR;
/* every merchant, oldest first */
int pd_merchant_list(pd_db_t *db, pd_rec_fn fn, void *arg) PD_WUR;
int pd_key_insert(pd_db_t *tx, const pd_key_rec_t *k) PD_WUR;
int pd_key_by_prefix(pd_db_t *db, const char *prefix, pd_key_rec_t *out) PD_WUR;
int pd_key_get(pd_db_t *db, const char *id, pd_key_rec_t *out) PD_WUR;
/* Revokes a key not revoked yet (PD_ERR_NOTFOUND otherwise) and moves the key epoch. */
int pd_key_revoke(pd_db_t *tx, const char *id, int64_t when) PD_WUR;
/* Makes a live key (not revoked, not expired at `now`) expire at `when`, or keeps its
 * earlier expiry; moves the key epoch. PD_ERR_STATE when the key is not live (or absent). */
int pd_key_set_expiry(pd_db_t *tx, const char *id, int64_t when, int64_t now) PD_WUR;
/* The store-wide key epoch: it changes whenever a key is revoked or gets an expiry, in
 * the transaction that does it, so a cache that compares it on every use never serves
 * a key past its revocation (on any thread or node that reads this database). */
int pd_key_epoch(pd_db_t *db, int64_t *out) PD_WUR;
int pd_key_list(pd_db_t *db, const char *merchant_id, pd_rec_fn fn, void *arg) PD_WUR;

/* --- payment methods --- */
int pd_pm_insert(pd_db_t *tx, const pd_pm_rec_t *p) PD_WUR;
int pd_pm_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id, pd_pm_rec_t *out) PD_WUR;
int pd_pm_mark_used(pd_db_t *tx, const char *id) PD_WUR;

/* Attaches a payment method to a customer: PD_ERR_CONFLICT unless it is attached to no
 * one, was never detached and the customer is not deleted (read inside the write that
 * decides). */
int pd_pm_attach(pd_db_t *tx, const char *id, const char *customer) PD_WUR;
/* Detaches it from `customer` (for good: detached is set); PD_ERR_CONFLICT if it is not attached to it. */
int pd_pm_detach(pd_db_t *tx, const char *id, const char *customer) PD_WUR;
/* Every payment method attached to a customer detached (the customer's deletion). */
int pd_pm_detach_all(pd_db_t *tx, const char *customer) PD_WUR;
/* payment methods (not tokens), newest first; the list filter is the customer (NULL: all) */
int pd_pm_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
               void *arg, bool *has_more) PD_WUR;

/* --- customers (repo_customers.c) --- */
int pd_customer_insert(pd_db_t *tx, const pd_customer_rec_t *c) PD_WUR;
/* every stored column when the stored version equals c->version - 1 and the customer is
 * not deleted; PD_ERR_CONFLICT otherwise */
int pd_customer_update(pd_db_t *tx, const pd_customer_rec_t *c) PD_WUR;
/* a deleted customer is found too (deleted set, its personal data gone) */
int pd_customer_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id,
                    pd_customer_rec_t *out) PD_WUR;
/* live customers, newest first; the list filter is the email index (NULL: all) */
int pd_customer_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q,
                     pd_rec_fn fn, void *arg, bool *has_more) PD_WUR;
/* Marks a live customer deleted and erases its personal data, its email index and
 * default payment method; PD_ERR_NOTFOUND if it is absent or deleted already. */
int pd_customer_delete(pd_db_t *tx, const char *merchant, bool livemode, const char *id, int64_t now) PD_WUR;
/* Clears invoice_settings.default_payment_method where it is pm (a detach). */
int pd_customer_clear_default_pm(pd_db_t *tx, const char *customer, const char *pm) PD_WUR;

/* --- setup intents (repo_setup_intents.c) --- */
int pd_seti_insert(pd_db_t *tx, const pd_seti_rec_t *s) PD_WUR;
/* every mutable column when the stored version equals s->version - 1; PD_ERR_CONFLICT otherwise */
int pd_seti_update(pd_db_t *tx, const pd_seti_rec_t *s) PD_WUR;
int pd_seti_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id,
                pd_seti_rec_t *out) PD_WUR;
/* newest first; q->filter is the customer, q->filter2 the payment method (NULL: any) */
int pd_seti_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
                 void *arg, bool *has_more) PD_WUR;
/* setup intents left processing (a verification asked and not recorded) whose last change
 * is at or before older_than (recovery); any merchant, oldest first, at most 500 */
int pd_seti_list_processing(pd_db_t *db, pd_arena_t *a, int64_t older_than, pd_rec_fn fn, void *arg) PD_WUR;

/* --- payment intents --- */
int pd_pi_insert(pd_db_t *tx, const pd_pi_rec_t *p) PD_WUR;
/* updates every mutable column when the stored version equals p->version - 1;
 * PD_ERR_CONFLICT otherwise (a concurrent change won) */
int pd_pi_update(pd_db_t *tx, const pd_pi_rec_t *p) PD_WUR;
int pd_pi_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id, pd_pi_rec_t *out) PD_WUR;
int pd_pi_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
               void *arg, bool *has_more) PD_WUR;

/* --- charges --- */
int pd_charge_insert(pd_db_t *tx, const pd_charge_rec_t *c) PD_WUR;
int pd_charge_update(pd_db_t *tx, const pd_charge_rec_t *c) PD_WUR; /* version check like pd_pi_update */
int pd_charge_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id,
                  pd_charge_rec_t *out) PD_WUR;
int pd_charge_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
                   void *arg, bool *has_more) PD_WUR;
/* charges left in processing, or with a capture or void requested, whose last change
 * is at or before `older_than` (recovery); any merchant */
/* Makes a charge with an operation requested (processing, capture or void requested)
 * due for recovery at once (its updated time to 0); none such: nothing, 0. */
int pd_charge_expedite(pd_db_t *tx, const char *id) PD_WUR;
/* This node's id, stamped on every charge and setup intent it inserts or updates
 * (charges.node_id, setup_intents.node_id). Set once at start, before the first write. */
void pd_charge_set_node(const char *node_id);
/* that id ("" before it is set) */
const char *pd_charge_node(void);
/* A node starting again: the charges its previous run left with an operation requested,
 * and its setup intents left processing (no request of that run can still be in flight),
 * are made due for recovery at once; *n (may be NULL) gets their number. */
int pd_charge_expedite_node(pd_db_t *tx, const char *node_id, int64_t *n) PD_WUR;
int pd_charge_list_processing(pd_db_t *db, pd_arena_t *a, int64_t older_than, pd_rec_fn fn, void *arg) PD_WUR;
/* a charge by id alone, any merchant (reconciliation: the processor names charges by id) */
int pd_charge_get_any(pd_db_t *db, pd_arena_t *a, const char *id, pd_charge_rec_t *out) PD_WUR;
/* up to `limit` charges after the cursor (updated, after_id) in (updated, id) order, any
 * merchant: updated = since and after_id = "" start at the charges changed at `since` */
int pd_charge_list_updated(pd_db_t *db, pd_arena_t *a, int64_t updated, const char *after_id, int64_t limit,
                           pd_rec_fn fn, void *arg) PD_WUR;
/* *busy: a capture, void or refund of the charge is in flight (requested, not yet
 * recorded); read inside the write that would start another one */
int pd_charge_busy(pd_db_t *db, const pd_charge_rec_t *c, bool *busy) PD_WUR;

/* --- refunds --- */
int pd_refund_insert(pd_db_t *tx, const pd_refund_rec_t *r) PD_WUR;
/* a pending refund's outcome: status and failure_reason; PD_ERR_STATE if it is no longer pending */
int pd_refund_finish(pd_db_t *tx, const pd_refund_rec_t *r) PD_WUR;
/* refunds still pending since before `older_than` (recovery); any merchant */
int pd_refund_list_pending(pd_db_t *db, pd_arena_t *a, int64_t older_than, pd_rec_fn fn, void *arg) PD_WUR;
/* every refund of a charge, oldest first */
int pd_refund_list_of_charge(pd_db_t *db, pd_arena_t *a, const char *charge, pd_rec_fn fn, void *arg) PD_WUR;
/* charges with a refund created at or after `since`: fn gets each charge id (const char *) once */
int pd_refund_list_charges_since(pd_db_t *db, pd_arena_t *a, int64_t since, pd_rec_fn fn, void *arg) PD_WUR;
int pd_refund_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id,
                  pd_refund_rec_t *out) PD_WUR;
int pd_refund_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
                   void *arg, bool *has_more) PD_WUR;
/* pd_refund_list whose filter is the charge (pd_refund_list's is the payment intent) */
int pd_refund_list_by_charge(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q,
                             pd_rec_fn fn, void *arg, bool *has_more) PD_WUR;

/* --- ledger and balance --- */
/* Inserts a balanced posting under a new transaction id (PD_ERR_INVALID if it does not sum to zero). */
int pd_ledger_insert(pd_db_t *tx, const char *merchant, bool livemode, const char *currency, const char *source,
                     const pd_posting_t *posting, int64_t now) PD_WUR;
int pd_btxn_insert(pd_db_t *tx, const pd_btxn_rec_t *b) PD_WUR;
int pd_btxn_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
                 void *arg, bool *has_more) PD_WUR;
/* per currency: available and pending sums of balance transactions at `now` */
typedef struct {
    char currency[4];
    int64_t available, pending;
} pd_balance_row_t;
int pd_balance(pd_db_t *db, const char *merchant, bool livemode, int64_t now, pd_balance_row_t *rows, size_t cap,
               size_t *n) PD_WUR;

/* Reports: each balance transaction created in [start, end), oldest first (currency
 * NULL or "": every currency); the record's description is valid during fn only. */
int pd_btxn_each_created(pd_db_t *db, const char *merchant, bool livemode, const char *currency, int64_t start,
                         int64_t end, pd_rec_fn fn, void *arg) PD_WUR;
/* per currency: the net of what was created before start, and gross, fee and net of what was created in [start, end) */
typedef struct {
    char currency[4];
    int64_t before_net, gross, fee, net;
} pd_btxn_sums_t;
int pd_btxn_sums(pd_db_t *db, const char *merchant, bool livemode, const char *currency, int64_t start, int64_t end,
                 pd_btxn_sums_t *rows, size_t cap, size_t *n) PD_WUR;

/* --- events --- */
int pd_event_insert(pd_db_t *tx, const pd_event_rec_t *e) PD_WUR;
int pd_event_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id,
                 pd_event_rec_t *out) PD_WUR;
int pd_event_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
                  void *arg, bool *has_more) PD_WUR;

/* --- files and report runs (repo_files.c) --- */
int pd_file_insert(pd_db_t *tx, const pd_file_rec_t *f) PD_WUR;
int pd_file_get(pd_db_t *db, const char *merchant, bool livemode, const char *id, pd_file_rec_t *out) PD_WUR;
/* a file by id alone, any merchant (payctl, the janitor) */
int pd_file_get_any(pd_db_t *db, const char *id, pd_file_rec_t *out) PD_WUR;
/* the list filter is the purpose */
int pd_file_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
                 void *arg, bool *has_more) PD_WUR;
/* every file, newest first, of one purpose (NULL: all), any merchant (payctl) */
int pd_file_list_all(pd_db_t *db, const char *purpose, pd_rec_fn fn, void *arg) PD_WUR;
/* up to `limit` files expired at `now` (expires_at in (0, now]), oldest expiry first */
int pd_file_list_expired(pd_db_t *db, int64_t now, int64_t limit, pd_rec_fn fn, void *arg) PD_WUR;
/* deletes the row; PD_ERR_NOTFOUND if there is none */
int pd_file_delete(pd_db_t *tx, const char *id) PD_WUR;

int pd_report_run_insert(pd_db_t *tx, const pd_report_run_rec_t *r) PD_WUR;
int pd_report_run_get(pd_db_t *db, const char *merchant, bool livemode, const char *id,
                      pd_report_run_rec_t *out) PD_WUR;
int pd_report_run_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q,
                       pd_rec_fn fn, void *arg, bool *has_more) PD_WUR;
/* Claims the oldest pending run not claimed at `now` (claimed_until < now) until
 * `until`, counting an attempt: 0 and *out, PD_ERR_NOTFOUND when none is due. Several
 * workers (nodes) may call it at once: each run goes to one of them. */
int pd_report_run_claim(pd_db_t *tx, int64_t now, int64_t until, pd_report_run_rec_t *out) PD_WUR;
/* A pending run's outcome (status succeeded with result_file and succeeded_at, or failed
 * with error); PD_ERR_STATE if it is no longer pending */
int pd_report_run_finish(pd_db_t *tx, const pd_report_run_rec_t *r) PD_WUR;

/* --- disputes (repo_disputes.c) --- */
int pd_dispute_insert(pd_db_t *tx, const pd_dispute_rec_t *d) PD_WUR;
/* every mutable column when the stored version equals d->version - 1; PD_ERR_CONFLICT otherwise */
int pd_dispute_update(pd_db_t *tx, const pd_dispute_rec_t *d) PD_WUR;
int pd_dispute_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id,
                   pd_dispute_rec_t *out) PD_WUR;
/* by the processor's dispute id, any merchant; PD_ERR_NOTFOUND if it was never imported */
int pd_dispute_by_ref(pd_db_t *db, pd_arena_t *a, const char *ref, pd_dispute_rec_t *out) PD_WUR;
/* the list filter is the charge */
int pd_dispute_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q,
                    pd_rec_fn fn, void *arg, bool *has_more) PD_WUR;
/* the list filter is the payment intent */
int pd_dispute_list_by_pi(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q,
                          pd_rec_fn fn, void *arg, bool *has_more) PD_WUR;
/* every dispute, any merchant (reconciliation) */
int pd_dispute_list_all(pd_db_t *db, pd_arena_t *a, pd_rec_fn fn, void *arg) PD_WUR;
/* charges.disputed (and version + 1, so a change racing it is decided again) */
int pd_charge_set_disputed(pd_db_t *tx, const char *charge_id, int disputed) PD_WUR;
/* a worker's cursor (0 when never set), and its move */
int pd_cursor_get(pd_db_t *db, const char *name, int64_t *out) PD_WUR;
int pd_cursor_set(pd_db_t *tx, const char *name, int64_t value) PD_WUR;

/* --- webhook endpoints --- */
int pd_we_insert(pd_db_t *tx, const pd_we_rec_t *w) PD_WUR;
int pd_we_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id, pd_we_rec_t *out) PD_WUR;
/* pd_we_get that also finds a deleted endpoint (a replay of its creation) */
int pd_we_get_any(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id,
                  pd_we_rec_t *out) PD_WUR;
/* Marks the endpoint deleted (PD_ERR_NOTFOUND if it is not there) and cancels its
 * pending deliveries in the same write: once it commits, none of them is sent (the
 * webhook queue leases only deliveries of live endpoints). */
/* url, enabled_events, status, description, metadata of a live endpoint; PD_ERR_NOTFOUND if none */
int pd_we_update(pd_db_t *tx, const pd_we_rec_t *w) PD_WUR;
int pd_we_delete(pd_db_t *tx, const char *merchant, bool livemode, const char *id, int64_t now) PD_WUR;
int pd_we_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
               void *arg, bool *has_more) PD_WUR;

/* --- idempotency --- */
typedef struct {
    char fingerprint[65];
    bool complete;
    int status;
    const char *body; /* stored response */
    int64_t created;
    const char *redacted; /* NULL, or what was left out of body and how to get it back ("we_secret:ID",
                     * "pm_name:ID"): a replay re-derives it from that record through the vault */
} pd_idem_rec_t;
/* The record of key for (merchant, mode); PD_ERR_NOTFOUND if none. */
int pd_idem_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *key,
                pd_idem_rec_t *out) PD_WUR;
/* Claims key for (merchant, mode). Returns 0 when claimed now, PD_ERR_EXISTS with *existing filled
 * when the key was seen since expired_before (complete or in flight); an older key is expired and
 * claimed anew. */
int pd_idem_claim(pd_db_t *tx, pd_arena_t *a, const char *merchant, bool livemode, const char *key,
                  const char *fingerprint, int64_t now, int64_t expired_before, pd_idem_rec_t *existing) PD_WUR;
/* *any: some key was created before `before` (Unix seconds). */
int pd_idem_expired(pd_db_t *db, int64_t before, bool *any) PD_WUR;
/* Deletes up to limit keys created before `before`. */
int pd_idem_purge(pd_db_t *tx, int64_t before, int64_t limit) PD_WUR;
int pd_idem_complete(pd_db_t *tx, const char *merchant, bool livemode, const char *key, int status,
                     pd_view_t body) PD_WUR;
/* pd_idem_complete for a body that had a secret taken out (redacted names it) */
int pd_idem_complete_redacted(pd_db_t *tx, const char *merchant, bool livemode, const char *key, int status,
                              pd_view_t body, const char *redacted) PD_WUR;
/* drops an in-flight claim whose request produced no stored response */
int pd_idem_release(pd_db_t *tx, const char *merchant, bool livemode, const char *key) PD_WUR;

/* --- the ledger verifier --- */
#define PD_LEDGER_MAX_PROBLEMS 20
typedef struct {
    int64_t entries, charges;
    int nproblems;
    char problems[PD_LEDGER_MAX_PROBLEMS][200];
} pd_ledger_report_t;
/* Checks the invariants (see ledger_verify.c); 0 when they hold, PD_ERR_STATE otherwise. */
int pd_ledger_verify(pd_db_t *db, pd_ledger_report_t *rep) PD_WUR;


#endif
