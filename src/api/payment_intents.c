/* POST/GET /v1/payment_intents, POST/GET /v1/payment_intents/:id. */
#include <stdio.h>
#include <string.h>

#include "api/pi.h"
#include "api/pm_resolve.h"
#include "payd/money.h"

pi_ctx_t *
pd_pi_ctx_new(pd_req_t *r)
{
    pi_ctx_t *c = pd_arena_calloc(&r->arena, sizeof(*c));
    if (c == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return NULL;
    }
    if ((c->op = pd_op_new(r, c)) == NULL)
        return NULL;
    return c;
}

int
pd_pi_customer_read(pd_db_t *db, pi_ctx_t *c)
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

bool
pd_pi_customer_checked(pi_ctx_t *c)
{
    if (c->cus_param == NULL)
        return true;
    if (c->cus_rc != 0) {
        pd_resp_invalid(c->op->r, "resource_missing", "customer", "No such customer: '%.80s'", c->cus_param);
        return false;
    }
    snprintf(c->pi.customer, sizeof(c->pi.customer), "%s", c->cus_param);
    return true;
}

/* on a reader thread */
static int
load_pi(pd_db_t *db, pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    int rc = pd_pi_get(db, &op->r->arena, op->auth->merchant_id, op->auth->livemode, c->id, &c->pi);
    if (rc == 0 && (rc = pd_pi_customer_read(db, c)) != 0)
        return rc;
    c->ch_rc = PD_ERR_NOTFOUND;
    if (rc == 0 && c->with_pm) {
        /* the payment method a confirmation will use, in the same hop */
        c->pm_read = c->pm_param != NULL ? c->pm_param : c->pi.payment_method[0] != '\0' ? c->pi.payment_method : NULL;
        if (c->pm_read != NULL) {
            c->pm_rc = pd_pm_resolve_read(db, op, c->pm_read, &c->pm);
            if (c->pm_rc != 0 && c->pm_rc != PD_ERR_NOTFOUND)
                return c->pm_rc;
        }
    }
    if (rc == 0 && c->with_charge && c->pi.latest_charge[0] != '\0') {
        c->ch_rc = pd_charge_get(db, &op->r->arena, c->pi.merchant_id, c->pi.livemode, c->pi.latest_charge, &c->ch);
        if (c->ch_rc != 0 && c->ch_rc != PD_ERR_NOTFOUND)
            rc = c->ch_rc; /* a failed read, not a missing charge */
    }
    return rc;
}

static void
pi_loaded(pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    if (op->rc != 0) {
        pd_resp_missing(op->r, "payment_intent", "intent", c->id);
        return;
    }
    c->pi_loaded(op);
}

void
pd_pi_load(pi_ctx_t *c, bool with_charge, pd_op_next_fn next)
{
    pd_req_t *r = c->op->r;
    if (pd_view_to_cstr(pd_req_param(r, "id"), c->id, sizeof(c->id)) != 0) {
        pd_resp_missing(r, "payment_intent", "intent", "");
        return;
    }
    c->with_charge = with_charge;
    c->pi_loaded = next;
    pd_op_load(c->op, load_pi, pi_loaded);
}

void
pd_pi_refuse(pd_req_t *r, const pd_pi_rec_t *pi, pd_pi_action_t action)
{
    char msg[256], extra[RESP_MAX / 4];
    pd_pi_refusal(pi->status, action, msg, sizeof(msg));
    pd_view_t js = pd_pi_json(&r->arena, pi);
    snprintf(extra, sizeof(extra), "\"payment_intent\":%.*s", (int)js.len, (const char *)js.p);
    pd_resp_error_x(r, 400, "invalid_request_error", "payment_intent_unexpected_state", msg, NULL, extra);
}

/* amount and currency with Stripe's error codes; false after responding */
static bool
read_amount(pd_req_t *r, const char *name, int64_t *out)
{
    const char *v = pd_param_str(r, name);
    if (v == NULL)
        return true;
    pd_amount_error_t e = pd_amount_parse(pd_view_cstr(v), out);
    if (e == PD_AMOUNT_OK)
        return true;
    const char *what = e == PD_AMOUNT_TOO_SMALL ? "Amount must be at least 1 (in the smallest currency unit)."
                       : e == PD_AMOUNT_TOO_LARGE ? "Amount must be no more than 99999999 (in the smallest currency unit)."
                                                  : "Invalid integer: amounts are whole numbers in the smallest currency "
                                                    "unit (e.g. 1099 for $10.99).";
    pd_resp_invalid(r, pd_amount_error_code(e), name, "%s", what);
    return false;
}

static bool
read_currency(pd_req_t *r, char out[4])
{
    const char *v = pd_param_str(r, "currency");
    if (v == NULL)
        return true;
    if (pd_currency_normalize(pd_view_cstr(v), out) != 0) {
        pd_resp_invalid(r, "parameter_invalid", "currency", "Invalid currency: %.16s. Stripe currently supports these "
                                                             "ISO 4217 currencies in lower case (e.g. usd, eur, jpy).",
                        v);
        return false;
    }
    return true;
}

static int
write_create(pd_db_t *tx, pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    pd_jw_t w;
    int r;
    if (c->pm_new && (r = pd_pm_insert(tx, &c->pm)) != 0)
        return r;
    if ((r = pd_pi_insert(tx, &c->pi)) != 0)
        return r;
    pd_jw_init(&w, &op->body);
    pd_render_pi(&w, &c->pi);
    if ((r = pd_op_respond_json(op, 200, &w)) != 0)
        return r;
    return pd_emit(tx, op, "payment_intent.created", pd_buf_view(&op->body));
}

static void
create_resolved(pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    if (c->pm.id[0] != '\0')
        snprintf(c->pi.payment_method, sizeof(c->pi.payment_method), "%s", c->pm.id);
    if (c->confirm) {
        c->pi_new = true;
        pd_confirm_start(op, &c->pi, c->pm.id);
        return;
    }
    c->pi.status = c->pm.id[0] ? PD_PI_REQUIRES_CONFIRMATION : PD_PI_REQUIRES_PAYMENT_METHOD;
    pd_op_commit(op, write_create, NULL);
}

/* on a reader thread, after the idempotency check: the payment method it names */
static int
load_create(pd_db_t *db, pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    int rc = pd_pi_customer_read(db, c);
    if (rc != 0)
        return rc;
    c->pm_rc = c->pm_param != NULL ? pd_pm_resolve_read(db, op, c->pm_param, &c->pm) : 0;
    return c->pm_rc == PD_ERR_NOTFOUND ? 0 : c->pm_rc;
}

static void
create_checked(pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    if (!pd_pi_customer_checked(c))
        return;
    if (c->pm_param != NULL)
        pd_pm_resolve_with(op, c->pm_rc, c->pm_param, &c->pm, &c->pm_new, create_resolved);
    else
        create_resolved(op);
}

void
pd_h_pi_create(pd_req_t *r)
{
    pi_ctx_t *c = pd_pi_ctx_new(r);
    if (c == NULL)
        return;
    pd_pi_rec_t *p = &c->pi;
    if (!read_amount(r, "amount", &p->amount) || !read_currency(r, p->currency))
        return;
    const char *capture = pd_param_str(r, "capture_method");
    snprintf(p->capture_method, sizeof(p->capture_method), "%s",
             capture != NULL && strcmp(capture, "manual") == 0 ? "manual" : "automatic");
    if ((p->metadata = pd_param_metadata(r, NULL)) == NULL) {
        pd_resp_invalid(r, "parameter_invalid", "metadata", "metadata can have at most 50 keys.");
        return;
    }
    p->description = pd_param_str(r, "description");
    p->statement_descriptor = pd_param_str(r, "statement_descriptor");
    p->receipt_email = pd_param_str(r, "receipt_email");
    if (pd_id_new("pi", p->id, sizeof(p->id)) != 0) {
        pd_resp_error(r, 500, "api_error", NULL, "Cannot create an id.", NULL);
        return;
    }
    snprintf(p->merchant_id, sizeof(p->merchant_id), "%s", c->op->auth->merchant_id);
    p->livemode = c->op->auth->livemode;
    p->created = c->op->now;
    p->seq = pd_next_seq();
    p->version = 1;
    c->confirm = pd_param_bool(r, "confirm", false);
    const char *pm = pd_param_str(r, "payment_method");
    if (pm == NULL && c->confirm) {
        pd_resp_invalid(r, "parameter_missing", "payment_method",
                        "You cannot confirm this PaymentIntent because it's missing a payment method.");
        return;
    }
    c->pm_param = pm;
    c->cus_param = pd_param_str(r, "customer");
    const char *sfu = pd_param_str(r, "setup_future_usage");
    snprintf(p->setup_future_usage, sizeof(p->setup_future_usage), "%s", sfu != NULL ? sfu : "");
    pd_op_load(c->op, pm != NULL || c->cus_param != NULL ? load_create : NULL, create_checked);
}

static int
write_update(pd_db_t *tx, pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    pd_jw_t w;
    int r;
    if (c->pm_new && (r = pd_pm_insert(tx, &c->pm)) != 0)
        return r;
    if ((r = pd_pi_update(tx, &c->pi)) != 0)
        return r;
    pd_jw_init(&w, &op->body);
    pd_render_pi(&w, &c->pi);
    return pd_op_respond_json(op, 200, &w);
}

static void
update_resolved(pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    if (c->pm.id[0] != '\0') {
        snprintf(c->pi.payment_method, sizeof(c->pi.payment_method), "%s", c->pm.id);
        if (c->pi.status == PD_PI_REQUIRES_PAYMENT_METHOD)
            c->pi.status = PD_PI_REQUIRES_CONFIRMATION;
    }
    pd_op_commit(op, write_update, NULL);
}

static void
update_loaded(pd_op_t *op)
{
    pi_ctx_t *c = op->ctx;
    pd_req_t *r = op->r;
    pd_pi_rec_t *p = &c->pi;
    if (!pd_pi_allowed(p->status, PD_PI_UPDATE)) {
        pd_pi_refuse(r, p, PD_PI_UPDATE);
        return;
    }
    if (!read_amount(r, "amount", &p->amount) || !read_currency(r, p->currency))
        return;
    if (c->cus_param != NULL && c->cus_param[0] == '\0')
        p->customer[0] = '\0'; /* customer="" removes it */
    else if (!pd_pi_customer_checked(c))
        return;
    if (pd_params_get(&r->params, "setup_future_usage") != NULL) {
        const char *sfu = pd_param_str(r, "setup_future_usage");
        snprintf(p->setup_future_usage, sizeof(p->setup_future_usage), "%s", sfu != NULL ? sfu : "");
    }
    const char *capture = pd_param_str(r, "capture_method");
    if (capture != NULL)
        snprintf(p->capture_method, sizeof(p->capture_method), "%s", strcmp(capture, "manual") == 0 ? "manual" : "automatic");
    if ((p->metadata = pd_param_metadata(r, p->metadata)) == NULL) {
        pd_resp_invalid(r, "parameter_invalid", "metadata", "metadata can have at most 50 keys.");
        return;
    }
    /* a parameter given as "" unsets it */
    if (pd_params_get(&r->params, "description") != NULL)
        p->description = pd_param_str(r, "description");
    if (pd_params_get(&r->params, "statement_descriptor") != NULL)
        p->statement_descriptor = pd_param_str(r, "statement_descriptor");
    if (pd_params_get(&r->params, "receipt_email") != NULL)
        p->receipt_email = pd_param_str(r, "receipt_email");
    p->version++;
    const char *pm = pd_param_str(r, "payment_method");
    if (pm != NULL)
        pd_pm_resolve(c->op, pm, &c->pm, &c->pm_new, update_resolved);
    else
        update_resolved(c->op);
}

void
pd_h_pi_update(pd_req_t *r)
{
    pi_ctx_t *c = pd_pi_ctx_new(r);
    if (c == NULL)
        return;
    if (pd_params_get(&r->params, "customer") != NULL) {
        const char *v = pd_param_str(r, "customer");
        c->cus_param = v != NULL ? v : "";
    }
    pd_pi_load(c, false, update_loaded);
}

static int
get_pi(pd_db_t *db, pd_req_t *r, const char *id, pd_view_t *json)
{
    const pd_auth_t *au = r->auth;
    pd_pi_rec_t pi;
    int rc = pd_pi_get(db, &r->arena, au->merchant_id, au->livemode, id, &pi);
    if (rc == 0)
        *json = pd_pi_json(&r->arena, &pi);
    return rc;
}

void
pd_h_pi_get(pd_req_t *r)
{
    pd_get_respond(r, "payment_intent", get_pi);
}

static int
each_pi(void *rec, void *arg)
{
    pd_render_pi(arg, rec);
    return 0;
}

void
pd_h_pi_list(pd_req_t *r)
{
    pd_list_respond(r, "/v1/payment_intents", "payment_intent", "customer", pd_pi_list, each_pi);
}
