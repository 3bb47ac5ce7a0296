/*
 * SetupIntents: POST/GET /v1/setup_intents, GET/POST /v1/setup_intents/:id, /confirm
 * and /cancel (Stripe's shapes; docs/payments.md, "Setup intents").
 *
 * Confirming verifies the card with the processor, a zero-amount authorization keyed by
 * the intent's id and version (pd_seti_proc_ref: each confirmation is its own), through the two-phase step (proc_step.c) as a payment's confirmation:
 *
 *   phase 1 (one durable write): the intent in `processing` with its payment method and
 *           the confirming request's idempotency key (and claim)
 *   then:   the card read from the vault (asked as soon as phase 1 is committed), the
 *           processor asked once phase 1 is durable, the PAN wiped
 *   phase 2 (one durable write, pd_seti_apply_outcome, shared with the recovery
 *           worker): succeeded and the method attached to the intent's customer, or
 *           requires_payment_method with last_setup_error; events; the response
 *
 * A crash between the phases leaves the intent processing: the recovery worker asks the
 * processor (query by that reference) and records that with the same phase-2 code.
 * 3-D Secure is not done: no card leads to requires_action yet.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api/pm_resolve.h"
#include "payd/log.h"

typedef struct {
    pd_op_t *op;
    pd_step_t step;
    char id[PD_ID_MAX];
    pd_seti_rec_t si; /* the state to write */
    bool si_new;      /* insert rather than update */
    pd_pm_rec_t pm;
    bool pm_new;
    int pm_rc;
    const char *pm_param;  /* the payment_method parameter (NULL: absent) */
    const char *pm_read;   /* the payment method read with the intent (pm_param, else the intent's) */
    const char *cus_param; /* the customer parameter (NULL: absent, "": unset) */
    int cus_rc;
    bool confirm;
    pd_view_t created_json; /* setup_intent.created of a new intent confirmed at once */
    pd_card_fetch_t card; /* read from the vault while phase 1's fsync runs */
} seti_ctx_t;

static void advance(pd_op_t *op);
static seti_ctx_t *
ctx_new(pd_req_t *r)
{
    seti_ctx_t *c = pd_arena_calloc(&r->arena, sizeof(*c));
    if (c == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return NULL;
    }
    if ((c->op = pd_op_new(r, c)) == NULL)
        return NULL;
    return c;
}

static void
render_seti_cb(pd_jw_t *w, const void *rec)
{
    pd_render_seti(w, rec);
}

static bool
is_status(const pd_seti_rec_t *s, const char *status)
{
    return strcmp(s->status, status) == 0;
}

/* 400 setup_intent_unexpected_state with the intent in the error */
static void
refuse_state(pd_req_t *r, const pd_seti_rec_t *s, const char *action)
{
    char msg[256];
    pd_view_t js = pd_render_to_arena(&r->arena, render_seti_cb, s);
    size_t cap = js.len + 32;
    char *extra = pd_arena_alloc(&r->arena, cap);
    snprintf(msg, sizeof(msg), "You cannot %s this SetupIntent because it has a status of %s.", action, s->status);
    if (extra != NULL)
        snprintf(extra, cap, "\"setup_intent\":%.*s", (int)js.len, (const char *)js.p);
    pd_resp_error_x(r, 400, "invalid_request_error", "setup_intent_unexpected_state", msg, NULL, extra);
}

/* --- reads --- */

/* on a reader thread: the customer parameter's customer (c->cus_rc: 0 when it is live) */
static int
read_customer(pd_db_t *db, seti_ctx_t *c)
{
    pd_op_t *op = c->op;
    pd_customer_rec_t cus;
    c->cus_rc = 0;
    if (c->cus_param == NULL || c->cus_param[0] == '\0')
        return 0;
    c->cus_rc = pd_customer_get(db, &op->r->arena, op->auth->merchant_id, op->auth->livemode, c->cus_param, &cus);
    if (c->cus_rc == 0 && cus.deleted)
        c->cus_rc = PD_ERR_NOTFOUND;
    return c->cus_rc == PD_ERR_NOTFOUND ? 0 : c->cus_rc;
}

/* on a reader thread: the intent (unless new), the customer and the payment method named */
static int
load_seti(pd_db_t *db, pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    int rc = 0;
    if (!c->si_new && (rc = pd_seti_get(db, &op->r->arena, op->auth->merchant_id, op->auth->livemode, c->id, &c->si)) != 0)
        return rc;
    if ((rc = read_customer(db, c)) != 0)
        return rc;
    c->pm_read = c->pm_param != NULL ? c->pm_param : c->confirm && c->si.payment_method[0] ? c->si.payment_method : NULL;
    if (c->pm_read != NULL) {
        c->pm_rc = pd_pm_resolve_read(db, op, c->pm_read, &c->pm);
        if (c->pm_rc != 0 && c->pm_rc != PD_ERR_NOTFOUND)
            return c->pm_rc;
    }
    return 0;
}

/* on the loop after load_seti: false after answering (no such intent or customer) */
static bool
loaded_ok(seti_ctx_t *c)
{
    pd_op_t *op = c->op;
    if (op->rc != 0) {
        pd_resp_missing(op->r, "setup_intent", "intent", c->id);
        return false;
    }
    if (c->cus_param != NULL && c->cus_param[0] != '\0' && c->cus_rc != 0) {
        pd_resp_invalid(op->r, "resource_missing", "customer", "No such customer: '%.80s'", c->cus_param);
        return false;
    }
    if (c->cus_param != NULL)
        snprintf(c->si.customer, sizeof(c->si.customer), "%s", c->cus_param);
    return true;
}

/* Stripe's rules for the method a setup intent saves; false after answering */
static bool
pm_usable(seti_ctx_t *c)
{
    pd_req_t *r = c->op->r;
    if (strcmp(c->pm.object, "payment_method") != 0) {
        pd_resp_invalid(r, "parameter_invalid", "payment_method",
                        "A SetupIntent takes a PaymentMethod (pm_...), not a token.");
        return false;
    }
    if (c->pm.detached) {
        pd_resp_invalid(r, "payment_method_unexpected_state", "payment_method", "%s", pd_pm_detached_message);
        return false;
    }
    if (c->pm.customer[0] != '\0' && strcmp(c->pm.customer, c->si.customer) != 0) {
        if (c->si.customer[0] == '\0')
            pd_resp_invalid(r, "parameter_missing", "customer",
                            "The provided PaymentMethod is attached to a Customer: pass that Customer's id in "
                            "customer to use it.");
        else
            pd_resp_invalid(r, "parameter_invalid", "payment_method",
                            "The provided PaymentMethod belongs to a different Customer than this SetupIntent's.");
        return false;
    }
    return true;
}

/* --- confirmation --- */

static int
write_phase1(pd_db_t *tx, pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    int r;
    if (c->pm_new && (r = pd_pm_insert(tx, &c->pm)) != 0)
        return r;
    if (!c->si_new)
        return pd_seti_update(tx, &c->si);
    if ((r = pd_seti_insert(tx, &c->si)) != 0)
        return r;
    return pd_emit(tx, op, "setup_intent.created", c->created_json);
}

static int
write_phase2(pd_db_t *tx, pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    int r = pd_seti_apply_outcome(tx, &op->r->arena, c->si.merchant_id, c->si.livemode, c->si.id, &c->step.res,
                                  op->now, op->r->id, &op->status, &op->body);
    if (r != PD_ERR_STATE)
        return r;
    /* recorded already (the recovery worker was first): answer the intent as it is now */
    pd_seti_rec_t now;
    pd_jw_t w;
    if ((r = pd_seti_get(tx, &op->r->arena, c->si.merchant_id, c->si.livemode, c->si.id, &now)) != 0)
        return r;
    if (!is_status(&now, "succeeded"))
        return pd_op_error(op, 402, "card_error", "processing_error", NULL, NULL,
                           "An error occurred while processing your card. Try again in a little bit.");
    pd_buf_reset(&op->body);
    pd_jw_init(&w, &op->body);
    pd_render_seti(&w, &now);
    return pd_op_respond_json(op, 200, &w);
}

static int
after_answer(pd_step_t *s)
{
    seti_ctx_t *c = s->op->ctx;
    if (s->res.outcome == PD_PROC_DECLINED && strcmp(s->res.network_status, "not_sent_to_network") != 0)
        pd_velocity_declined(s->op->api, c->si.merchant_id, c->pm.fingerprint);
    return 0;
}

static void
decline_unsent(seti_ctx_t *c, const char *message)
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

/* phase 1 is durable and the card is here: the zero-amount authorization, the card wiped */
static void
verify(seti_ctx_t *c)
{
    pd_api_t *api = c->op->api;
    if (c->card.rc != 0 || !c->card.asked) {
        decline_unsent(c, "An error occurred while processing your card. Try again in a little bit.");
        return;
    }
    char ref[PD_SETI_REF_MAX];
    pd_seti_proc_ref(&c->si, ref, sizeof(ref));
    pd_proc_auth_t req = {
        .merchant_id = c->si.merchant_id,
        .charge_id = ref,
        .pan = c->card.pan,
        .pan_len = strlen(c->card.pan),
        .exp_month = c->card.exp_month,
        .exp_year = c->card.exp_year,
        .cvc = c->card.cvc[0] ? c->card.cvc : NULL,
        .amount = 0,
        .currency = "usd",
        .capture = false,
    };
    api->proc->authorize(api->proc, &req, pd_step_answer, &c->step);
    OPENSSL_cleanse(&req, sizeof(req));
    pd_card_fetch_wipe(&c->card);
}

/* on the loop once phase 1 is answered and the card, if asked for, is here (pd_card_fetch_t) */
static void
advance(pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    if (op->rc != 0 || op->status != 0) {
        pd_card_fetch_wipe(&c->card);
        pd_op_finish(op); /* replay, conflict, an error response, or a failed sync */
        return;
    }
    if (op->auth->livemode) {
        decline_unsent(c, "No live payment processor is configured.");
        return;
    }
    verify(c);
}

/* on the store's writer thread once phase 1 is committed (its fsync still runs) */
static void
read_card(pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    pd_card_fetch_read(&c->card, c->si.merchant_id, c->pm.vault_token);
}

static void
on_phase1(pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    pd_card_fetch_phase1(&c->card);
}

static void
confirm_start(pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    pd_seti_rec_t *s = &c->si;
    if (!pm_usable(c))
        return;
    if (pd_velocity_check(op->api, op->r, s->merchant_id, c->pm.fingerprint) != 0)
        return; /* card testing: refused before anything is written or sent */
    if (c->si_new) {
        /* the created event shows the intent before its confirmation */
        pd_seti_rec_t initial = *s;
        snprintf(initial.payment_method, sizeof(initial.payment_method), "%s", c->pm.id);
        snprintf(initial.status, sizeof(initial.status), "requires_confirmation");
        c->created_json = pd_render_to_arena(&op->r->arena, render_seti_cb, &initial);
    } else {
        s->version++;
    }
    snprintf(s->payment_method, sizeof(s->payment_method), "%s", c->pm.id);
    snprintf(s->status, sizeof(s->status), "processing");
    s->last_setup_error = NULL;
    s->idempotency_key = op->has_idem ? op->idem_key : NULL;
    pd_step_init(&c->step, op, NULL, after_answer, write_phase2, "setup", "SetupIntent");
    pd_card_fetch_init(&c->card, op, advance);
    pd_op_commit_early(op, write_phase1, op->auth->livemode ? NULL : read_card, on_phase1);
}

static void
confirm_loaded(pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    if (!loaded_ok(c))
        return;
    if (!is_status(&c->si, "requires_payment_method") && !is_status(&c->si, "requires_confirmation") &&
        !is_status(&c->si, "requires_action")) {
        refuse_state(op->r, &c->si, "confirm");
        return;
    }
    if (c->pm_read == NULL) {
        pd_resp_invalid(op->r, "parameter_missing", "payment_method",
                        "You cannot confirm this SetupIntent because it's missing a payment method.");
        return;
    }
    pd_pm_resolve_with(op, c->pm_rc, c->pm_read, &c->pm, &c->pm_new, confirm_start);
}

static bool
read_id(seti_ctx_t *c)
{
    if (pd_view_to_cstr(pd_req_param(c->op->r, "id"), c->id, sizeof(c->id)) != 0) {
        pd_resp_missing(c->op->r, "setup_intent", "intent", "");
        return false;
    }
    return true;
}

void
pd_h_seti_confirm(pd_req_t *r)
{
    seti_ctx_t *c = ctx_new(r);
    if (c == NULL || !read_id(c))
        return;
    c->confirm = true;
    c->pm_param = pd_param_str(r, "payment_method");
    pd_op_load(c->op, load_seti, confirm_loaded);
}

/* --- create --- */

static int
write_create(pd_db_t *tx, pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    pd_jw_t w;
    int r;
    if (c->pm_new && (r = pd_pm_insert(tx, &c->pm)) != 0)
        return r;
    if ((r = pd_seti_insert(tx, &c->si)) != 0)
        return r;
    pd_jw_init(&w, &op->body);
    pd_render_seti(&w, &c->si);
    if ((r = pd_op_respond_json(op, 200, &w)) != 0)
        return r;
    return pd_emit(tx, op, "setup_intent.created", pd_buf_view(&op->body));
}

static void
create_resolved(pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    if (c->confirm) {
        confirm_start(op);
        return;
    }
    if (c->pm_param != NULL) {
        if (!pm_usable(c))
            return;
        snprintf(c->si.payment_method, sizeof(c->si.payment_method), "%s", c->pm.id);
    }
    snprintf(c->si.status, sizeof(c->si.status), "%s",
             c->si.payment_method[0] ? "requires_confirmation" : "requires_payment_method");
    pd_op_commit(op, write_create, NULL);
}

static void
create_loaded(pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    if (!loaded_ok(c))
        return;
    if (c->pm_param != NULL)
        pd_pm_resolve_with(op, c->pm_rc, c->pm_param, &c->pm, &c->pm_new, create_resolved);
    else
        create_resolved(op);
}

void
pd_h_seti_create(pd_req_t *r)
{
    seti_ctx_t *c = ctx_new(r);
    if (c == NULL)
        return;
    pd_seti_rec_t *s = &c->si;
    c->si_new = true;
    if ((s->metadata = pd_param_metadata(r, NULL)) == NULL) {
        pd_resp_invalid(r, "parameter_invalid", "metadata", "metadata can have at most 50 keys.");
        return;
    }
    if (s->metadata[0] == '\0')
        s->metadata = "{}";
    s->description = pd_param_str(r, "description");
    const char *usage = pd_param_str(r, "usage");
    snprintf(s->usage, sizeof(s->usage), "%s", usage != NULL ? usage : "off_session");
    if (pd_id_new("seti", s->id, sizeof(s->id)) != 0) {
        pd_resp_error(r, 500, "api_error", NULL, "Cannot create an id.", NULL);
        return;
    }
    snprintf(c->id, sizeof(c->id), "%s", s->id);
    snprintf(s->merchant_id, sizeof(s->merchant_id), "%s", c->op->auth->merchant_id);
    s->livemode = c->op->auth->livemode;
    s->created = c->op->now;
    s->seq = pd_next_seq();
    s->version = 1;
    c->confirm = pd_param_bool(r, "confirm", false);
    c->pm_param = pd_param_str(r, "payment_method");
    if (c->pm_param == NULL && c->confirm) {
        pd_resp_invalid(r, "parameter_missing", "payment_method",
                        "You cannot confirm this SetupIntent because it's missing a payment method.");
        return;
    }
    c->cus_param = pd_param_str(r, "customer");
    pd_op_load(c->op, c->pm_param != NULL || c->cus_param != NULL ? load_seti : NULL, create_loaded);
}

/* --- update and cancel --- */

static int
write_update(pd_db_t *tx, pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    pd_jw_t w;
    int r;
    if (c->pm_new && (r = pd_pm_insert(tx, &c->pm)) != 0)
        return r;
    if ((r = pd_seti_update(tx, &c->si)) != 0)
        return r;
    pd_jw_init(&w, &op->body);
    pd_render_seti(&w, &c->si);
    if ((r = pd_op_respond_json(op, 200, &w)) != 0)
        return r;
    if (is_status(&c->si, "canceled"))
        return pd_emit(tx, op, "setup_intent.canceled", pd_buf_view(&op->body));
    return 0;
}

static void
update_resolved(pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    if (c->pm_param != NULL) {
        if (!pm_usable(c))
            return;
        snprintf(c->si.payment_method, sizeof(c->si.payment_method), "%s", c->pm.id);
        if (is_status(&c->si, "requires_payment_method"))
            snprintf(c->si.status, sizeof(c->si.status), "requires_confirmation");
    }
    pd_op_commit(op, write_update, NULL);
}

static void
update_loaded(pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    pd_req_t *r = op->r;
    if (!loaded_ok(c))
        return;
    if (is_status(&c->si, "succeeded") || is_status(&c->si, "canceled") || is_status(&c->si, "processing")) {
        refuse_state(r, &c->si, "update");
        return;
    }
    if (pd_params_get(&r->params, "description") != NULL)
        c->si.description = pd_param_str(r, "description");
    if ((c->si.metadata = pd_param_metadata(r, c->si.metadata)) == NULL) {
        pd_resp_invalid(r, "parameter_invalid", "metadata", "metadata can have at most 50 keys.");
        return;
    }
    c->si.version++;
    if (c->pm_param != NULL)
        pd_pm_resolve_with(op, c->pm_rc, c->pm_param, &c->pm, &c->pm_new, update_resolved);
    else
        update_resolved(op);
}

void
pd_h_seti_update(pd_req_t *r)
{
    seti_ctx_t *c = ctx_new(r);
    if (c == NULL || !read_id(c))
        return;
    c->pm_param = pd_param_str(r, "payment_method");
    if (pd_params_get(&r->params, "customer") != NULL) {
        const char *v = pd_param_str(r, "customer");
        c->cus_param = v != NULL ? v : "";
    }
    pd_op_load(c->op, load_seti, update_loaded);
}

static void
cancel_loaded(pd_op_t *op)
{
    seti_ctx_t *c = op->ctx;
    if (!loaded_ok(c))
        return;
    if (!is_status(&c->si, "requires_payment_method") && !is_status(&c->si, "requires_confirmation") &&
        !is_status(&c->si, "requires_action")) {
        refuse_state(op->r, &c->si, "cancel");
        return;
    }
    const char *reason = pd_param_str(op->r, "cancellation_reason");
    snprintf(c->si.status, sizeof(c->si.status), "canceled");
    snprintf(c->si.cancellation_reason, sizeof(c->si.cancellation_reason), "%s", reason != NULL ? reason : "");
    c->si.version++;
    pd_op_commit(op, write_update, NULL);
}

void
pd_h_seti_cancel(pd_req_t *r)
{
    seti_ctx_t *c = ctx_new(r);
    if (c == NULL || !read_id(c))
        return;
    pd_op_load(c->op, load_seti, cancel_loaded);
}

/* --- retrieve and list --- */

static int
get_seti(pd_db_t *db, pd_req_t *r, const char *id, pd_view_t *json)
{
    const pd_auth_t *au = r->auth;
    pd_seti_rec_t s;
    int rc = pd_seti_get(db, &r->arena, au->merchant_id, au->livemode, id, &s);
    if (rc == 0 && (*json = pd_render_to_arena(&r->arena, render_seti_cb, &s)).p == NULL)
        rc = PD_ERR_NOMEM;
    return rc;
}

void
pd_h_seti_get(pd_req_t *r)
{
    pd_get_respond(r, "setup_intent", get_seti);
}

static int
each_seti(void *rec, void *arg)
{
    pd_render_seti(arg, rec);
    return 0;
}

void
pd_h_seti_list(pd_req_t *r)
{
    pd_list_respond2(r, "/v1/setup_intents", "setup_intent", "customer", "payment_method", pd_seti_list, each_seti);
}
