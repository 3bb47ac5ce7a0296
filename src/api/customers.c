/*
 * Customers: POST/GET /v1/customers, GET/POST/DELETE /v1/customers/:id.
 *
 * The personal data (email, name, phone, address) is sealed under alias/pii before the
 * write and opened after the read, through the vault's asynchronous client (pii.c):
 * the loop never waits on the vault, and the store's writer only writes. What leaves
 * the request keeps no personal data: the customer.* events carry the customer without
 * it, and a response that has it is stored with its idempotency key without it
 * ("cus_pii:ID", re-derived on replay, redact.c).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api/pii.h"
#include "api/pm_resolve.h"
#include "payd/log.h"

typedef struct {
    pd_op_t *op;
    char id[PD_ID_MAX];
    pd_customer_rec_t cus; /* the state to write, its personal data in clear (memory only) */
    bool pii_changed;
    const char *dpm; /* invoice_settings[default_payment_method]: NULL absent, "" unset */
    pd_pm_rec_t pm;
    int pm_rc;
    const char *pm_param; /* create: payment_method, attached to the new customer */
    bool pm_new;          /* ... a test id made into a new method */
    pd_pii_slot_t slot;
    char ctx[200];
    char *pt; /* the personal data as JSON while it is sealed */
    size_t pt_len;
} cus_ctx_t;

static void
vault_unavailable(pd_req_t *r)
{
    pd_resp_error(r, 503, "api_error", "vault_unavailable", "The vault is unavailable. Retry later.", NULL);
}

/* a text parameter given: *out its value (NULL for "" or null: unset); false if absent */
static bool
text_param(pd_req_t *r, const char *key, const char **out)
{
    if (pd_params_get(&r->params, key) == NULL)
        return false;
    const char *v = pd_param_str(r, key);
    *out = v != NULL && v[0] != '\0' ? v : NULL;
    return true;
}

/* the request's parameters over c->cus; false after answering */
static bool
apply_params(pd_req_t *r, cus_ctx_t *c)
{
    pd_customer_rec_t *u = &c->cus;
    static const struct {
        const char *key;
        size_t off;
    } addr[] = {
        {"address[line1]", offsetof(pd_address_t, line1)},
        {"address[line2]", offsetof(pd_address_t, line2)},
        {"address[city]", offsetof(pd_address_t, city)},
        {"address[state]", offsetof(pd_address_t, state)},
        {"address[postal_code]", offsetof(pd_address_t, postal_code)},
        {"address[country]", offsetof(pd_address_t, country)},
    };
    c->pii_changed |= text_param(r, "email", &u->email);
    c->pii_changed |= text_param(r, "name", &u->name);
    c->pii_changed |= text_param(r, "phone", &u->phone);
    if (pd_params_get(&r->params, "address") != NULL) { /* address="" (or null) removes it */
        const char *v = pd_param_str(r, "address");
        if (v != NULL && v[0] != '\0') {
            pd_resp_invalid(r, "parameter_invalid", "address",
                            "Invalid object: address takes address[line1], address[city], ... or \"\" to remove it.");
            return false;
        }
        memset(&u->address, 0, sizeof(u->address));
        c->pii_changed = true;
    }
    for (size_t i = 0; i < sizeof(addr) / sizeof(addr[0]); i++)
        c->pii_changed |= text_param(r, addr[i].key, (const char **)((char *)&u->address + addr[i].off));
    (void)text_param(r, "description", &u->description);
    if ((u->metadata = pd_param_metadata(r, u->metadata)) == NULL) {
        pd_resp_invalid(r, "parameter_invalid", "metadata", "metadata can have at most 50 keys.");
        return false;
    }
    if (pd_params_get(&r->params, "invoice_settings[default_payment_method]") != NULL) {
        const char *v = pd_param_str(r, "invoice_settings[default_payment_method]");
        c->dpm = v != NULL ? v : "";
    }
    return true;
}

static void
render_pm_cb(pd_jw_t *w, const void *rec)
{
    pd_render_pm(w, rec);
}

/* the customer without its personal data (events, stored idempotent responses) */
static void
render_shown(pd_jw_t *w, const pd_customer_rec_t *cus)
{
    pd_customer_rec_t shown = *cus;
    shown.email = shown.name = shown.phone = NULL;
    memset(&shown.address, 0, sizeof(shown.address));
    pd_render_customer(w, &shown);
}

/* inside a write: the response (with the personal data), the event (without) */
static int
respond_with(pd_db_t *tx, pd_op_t *op, const pd_customer_rec_t *cus, const char *event)
{
    pd_jw_t w;
    int r;
    pd_jw_init(&w, &op->body);
    pd_render_customer(&w, cus);
    if ((r = pd_op_respond_json(op, 200, &w)) != 0)
        return r;
    pd_buf_reset(&op->idem_body);
    pd_jw_init(&w, &op->idem_body);
    render_shown(&w, cus);
    if ((r = pd_jw_finish(&w)) != 0 || (r = pd_emit(tx, op, event, pd_buf_view(&op->idem_body))) != 0)
        return r;
    if (!op->has_idem || !pd_pii_present(cus))
        return 0;
    char *red = pd_arena_alloc(&op->r->arena, PD_ID_MAX + 16);
    if (red == NULL)
        return PD_ERR_NOMEM;
    snprintf(red, PD_ID_MAX + 16, "cus_pii:%s", cus->id);
    op->idem_redacted = red; /* idem_body holds the response without the personal data */
    return 0;
}

/* inside the creation's write, after the customer's insert: its payment_method attached */
static int
attach_created(pd_db_t *tx, pd_op_t *op)
{
    cus_ctx_t *c = op->ctx;
    pd_pm_rec_t *p = &c->pm;
    int r;
    if (c->pm_new) {
        snprintf(p->customer, sizeof(p->customer), "%s", c->cus.id);
        r = pd_pm_insert(tx, p);
    } else {
        r = pd_pm_attach(tx, p->id, c->cus.id); /* PD_ERR_CONFLICT: attached or detached meanwhile (409) */
        snprintf(p->customer, sizeof(p->customer), "%s", c->cus.id);
    }
    if (r != 0)
        return r;
    pd_pm_rec_t shown = *p;
    shown.billing_name = NULL; /* events never carry it */
    pd_view_t js = pd_render_to_arena(&op->r->arena, render_pm_cb, &shown);
    return js.p == NULL ? PD_ERR_NOMEM : pd_emit(tx, op, "payment_method.attached", js);
}

static int
write_create(pd_db_t *tx, pd_op_t *op)
{
    cus_ctx_t *c = op->ctx;
    int r = pd_customer_insert(tx, &c->cus);
    if (r == 0 && c->pm_param != NULL)
        r = attach_created(tx, op);
    return r != 0 ? r : respond_with(tx, op, &c->cus, "customer.created");
}

static int
write_update(pd_db_t *tx, pd_op_t *op)
{
    cus_ctx_t *c = op->ctx;
    int r = pd_customer_update(tx, &c->cus);
    return r != 0 ? r : respond_with(tx, op, &c->cus, "customer.updated");
}

static void
sealed(pd_req_t *r, void *arg, int rc, const char *env_hex)
{
    cus_ctx_t *c = arg;
    OPENSSL_cleanse(c->pt, c->pt_len);
    if (rc != 0) {
        pd_log_error("cannot seal a customer's personal data", PD_LS("customer", c->cus.id), PD_LERR(rc));
        vault_unavailable(r);
        return;
    }
    c->cus.pii_enc = env_hex;
    pd_op_commit(c->op, c->cus.version == 1 ? write_create : write_update, NULL);
}

/* seals the personal data when it changed (and the email's index), then commits */
static void
seal_and_commit(cus_ctx_t *c)
{
    pd_op_t *op = c->op;
    pd_req_t *r = op->r;
    pd_op_write_fn write = c->cus.version == 1 ? write_create : write_update;
    if (!c->pii_changed) {
        pd_op_commit(op, write, NULL);
        return;
    }
    c->cus.email_index[0] = '\0';
    if (c->cus.email != NULL &&
        pd_pii_email_index(op->auth->merchant_id, op->auth->livemode, c->cus.email, c->cus.email_index) != 0) {
        pd_resp_error(r, 500, "api_error", NULL, "Cannot index the email.", NULL);
        return;
    }
    if (!pd_pii_present(&c->cus)) {
        c->cus.pii_enc = NULL;
        pd_op_commit(op, write, NULL);
        return;
    }
    if ((c->pt = pd_pii_encode(&r->arena, &c->cus, &c->pt_len)) == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    if (c->pt_len > PD_PII_MAX) {
        OPENSSL_cleanse(c->pt, c->pt_len);
        pd_resp_invalid(r, "parameter_invalid_string_too_long", "address",
                        "The customer's email, name, phone and address are too long together (at most %d bytes).",
                        PD_PII_MAX);
        return;
    }
    pd_pii_customer_context(c->ctx, sizeof(c->ctx), op->auth->merchant_id, c->cus.id);
    if (pd_pii_seal(r, c->ctx, c->pt, c->pt_len, sealed, c) != 0) {
        OPENSSL_cleanse(c->pt, c->pt_len);
        vault_unavailable(r);
    }
}

static cus_ctx_t *
ctx_new(pd_req_t *r, bool with_id)
{
    cus_ctx_t *c = pd_arena_calloc(&r->arena, sizeof(*c));
    if (c == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return NULL;
    }
    if (with_id && pd_view_to_cstr(pd_req_param(r, "id"), c->id, sizeof(c->id)) != 0) {
        pd_resp_missing(r, "customer", "id", "");
        return NULL;
    }
    if ((c->op = pd_op_new(r, c)) == NULL)
        return NULL;
    return c;
}

static void
create_pm_resolved(pd_op_t *op)
{
    cus_ctx_t *c = op->ctx;
    pd_req_t *r = op->r;
    pd_pm_rec_t *p = &c->pm;
    if (strcmp(p->object, "payment_method") != 0) {
        pd_resp_invalid(r, "resource_missing", "payment_method", "No such PaymentMethod: '%.80s'", c->pm_param);
        return;
    }
    if (p->detached) {
        pd_resp_invalid(r, "payment_method_unexpected_state", "payment_method", "%s", pd_pm_detached_message);
        return;
    }
    if (p->customer[0] != '\0') {
        pd_resp_invalid(r, "payment_method_unexpected_state", "payment_method",
                        "The payment method you provided has already been attached to a customer.");
        return;
    }
    if (c->dpm != NULL && c->dpm[0] != '\0') /* it names this method (checked before): its id */
        snprintf(c->cus.default_payment_method, sizeof(c->cus.default_payment_method), "%s", p->id);
    seal_and_commit(c);
}

static int
load_create(pd_db_t *db, pd_op_t *op)
{
    cus_ctx_t *c = op->ctx;
    c->pm_rc = pd_pm_resolve_read(db, op, c->pm_param, &c->pm);
    return c->pm_rc == PD_ERR_NOTFOUND ? 0 : c->pm_rc;
}

static void
create_checked(pd_op_t *op)
{
    cus_ctx_t *c = op->ctx;
    if (c->pm_param == NULL) {
        seal_and_commit(c);
        return;
    }
    /* a stored method, or (test mode) one of Stripe's test ids made into a new one */
    pd_pm_resolve_with(op, c->pm_rc, c->pm_param, &c->pm, &c->pm_new, create_pm_resolved);
}

void
pd_h_customer_create(pd_req_t *r)
{
    cus_ctx_t *c = ctx_new(r, false);
    if (c == NULL)
        return;
    pd_customer_rec_t *u = &c->cus;
    if (!apply_params(r, c))
        return;
    c->pm_param = pd_param_str(r, "payment_method");
    if (c->dpm != NULL && c->dpm[0] != '\0' && (c->pm_param == NULL || strcmp(c->dpm, c->pm_param) != 0)) {
        /* a new customer has no payment method attached but the one it is created with */
        pd_resp_invalid(r, "resource_missing", "invoice_settings[default_payment_method]",
                        "The customer does not have a payment method with the ID %.80s. The payment method must be "
                        "attached to the customer.",
                        c->dpm);
        return;
    }
    if (pd_id_new("cus", u->id, sizeof(u->id)) != 0) {
        pd_resp_error(r, 500, "api_error", NULL, "Cannot create an id.", NULL);
        return;
    }
    snprintf(u->merchant_id, sizeof(u->merchant_id), "%s", c->op->auth->merchant_id);
    u->livemode = c->op->auth->livemode;
    u->created = u->updated = c->op->now;
    u->seq = pd_next_seq();
    u->version = 1;
    c->pii_changed = true; /* a new customer's index is computed even without personal data */
    /* the idempotency key's record first, and the payment method to attach */
    pd_op_load(c->op, c->pm_param != NULL ? load_create : NULL, create_checked);
}

/* --- update --- */

static int
load_update(pd_db_t *db, pd_op_t *op)
{
    cus_ctx_t *c = op->ctx;
    int rc = pd_customer_get(db, &op->r->arena, op->auth->merchant_id, op->auth->livemode, c->id, &c->cus);
    c->pm_rc = PD_ERR_NOTFOUND;
    if (rc == 0 && c->dpm != NULL && c->dpm[0] != '\0') {
        c->pm_rc = pd_pm_get(db, &op->r->arena, op->auth->merchant_id, op->auth->livemode, c->dpm, &c->pm);
        if (c->pm_rc != 0 && c->pm_rc != PD_ERR_NOTFOUND)
            return c->pm_rc;
    }
    return rc;
}

static void
update_apply(cus_ctx_t *c)
{
    pd_op_t *op = c->op;
    pd_customer_rec_t *u = &c->cus;
    if (!apply_params(op->r, c))
        return;
    if (c->dpm != NULL)
        snprintf(u->default_payment_method, sizeof(u->default_payment_method), "%s", c->dpm);
    u->updated = op->now;
    u->version++;
    seal_and_commit(c);
}

static void
update_opened(pd_req_t *r, void *arg, int rc)
{
    cus_ctx_t *c = arg;
    if (rc == 0)
        rc = pd_pii_decode(&r->arena, c->slot.out, c->slot.len, &c->cus);
    if (rc != 0) {
        pd_log_error("cannot open a customer's personal data", PD_LS("customer", c->cus.id), PD_LERR(rc));
        vault_unavailable(r);
        return;
    }
    update_apply(c);
}

static void
update_loaded(pd_op_t *op)
{
    cus_ctx_t *c = op->ctx;
    pd_req_t *r = op->r;
    if (op->rc == PD_ERR_NOTFOUND || c->cus.deleted) {
        pd_resp_missing(r, "customer", "id", c->id);
        return;
    }
    /* apply_params sets c->dpm again; it was read (and its payment method loaded) before */
    if (c->dpm != NULL && c->dpm[0] != '\0') {
        if (c->pm_rc != 0 || strcmp(c->pm.object, "payment_method") != 0) {
            pd_resp_invalid(r, "resource_missing", "invoice_settings[default_payment_method]",
                            "No such PaymentMethod: '%.80s'", c->dpm);
            return;
        }
        if (strcmp(c->pm.customer, c->id) != 0) {
            pd_resp_invalid(r, "resource_missing", "invoice_settings[default_payment_method]",
                            "The customer does not have a payment method with the ID %.80s. The payment method must "
                            "be attached to the customer.",
                            c->dpm);
            return;
        }
    }
    if (c->cus.pii_enc == NULL) {
        update_apply(c);
        return;
    }
    /* the stored personal data, which the parameters change in part and the response shows */
    pd_pii_customer_context(c->ctx, sizeof(c->ctx), op->auth->merchant_id, c->id);
    c->slot.context = c->ctx;
    c->slot.env_hex = c->cus.pii_enc;
    pd_pii_open_many(r, &c->slot, 1, update_opened, c);
}

void
pd_h_customer_update(pd_req_t *r)
{
    cus_ctx_t *c = ctx_new(r, true);
    if (c == NULL)
        return;
    const char *v;
    if (text_param(r, "invoice_settings[default_payment_method]", &v))
        c->dpm = v != NULL ? v : "";
    pd_op_load(c->op, load_update, update_loaded);
}

/* --- delete --- */

static int
load_customer(pd_db_t *db, pd_op_t *op)
{
    cus_ctx_t *c = op->ctx;
    return pd_customer_get(db, &op->r->arena, op->auth->merchant_id, op->auth->livemode, c->id, &c->cus);
}

static int
write_delete(pd_db_t *tx, pd_op_t *op)
{
    cus_ctx_t *c = op->ctx;
    pd_jw_t w;
    int r = pd_customer_delete(tx, op->auth->merchant_id, op->auth->livemode, c->id, op->now);
    if (r == PD_ERR_NOTFOUND) /* deleted by a request that ran meanwhile */
        return pd_op_error(op, 404, "invalid_request_error", "resource_missing", "id", NULL,
                           "No such customer: '%.80s'", c->id);
    if (r != 0 || (r = pd_pm_detach_all(tx, c->id)) != 0)
        return r;
    pd_buf_t ev;
    pd_buf_init(&ev, RESP_MAX);
    pd_jw_init(&w, &ev);
    render_shown(&w, &c->cus); /* the customer as it was, without its personal data */
    if ((r = pd_jw_finish(&w)) == 0)
        r = pd_emit(tx, op, "customer.deleted", pd_buf_view(&ev));
    pd_buf_free(&ev);
    if (r != 0)
        return r;
    pd_customer_rec_t gone = c->cus;
    gone.deleted = true;
    pd_jw_init(&w, &op->body);
    pd_render_customer(&w, &gone);
    return pd_op_respond_json(op, 200, &w);
}

static void
delete_loaded(pd_op_t *op)
{
    cus_ctx_t *c = op->ctx;
    if (op->rc == PD_ERR_NOTFOUND || c->cus.deleted) {
        pd_resp_missing(op->r, "customer", "id", c->id);
        return;
    }
    pd_op_commit(op, write_delete, NULL);
}

void
pd_h_customer_delete(pd_req_t *r)
{
    cus_ctx_t *c = ctx_new(r, true);
    if (c != NULL)
        pd_op_load(c->op, load_customer, delete_loaded);
}

/* --- retrieve and list ---
 * Rendered on the reader thread with each customer's envelope in PD_PII_MARK (and
 * expanded there, expand[]=invoice_settings.default_payment_method), then opened through
 * the vault on the loop, the page's envelopes at once (pd_pii_respond). */

typedef struct {
    char id[PD_ID_MAX];
    pd_view_t json;
} cus_get_t;

static void
render_sealed_cb(pd_jw_t *w, const void *rec)
{
    pd_pii_render_sealed(w, rec);
}

static int
get_read(pd_db_t *db, pd_req_t *r, void *arg)
{
    cus_get_t *g = arg;
    const pd_auth_t *au = r->auth;
    pd_customer_rec_t cus;
    int rc = pd_customer_get(db, &r->arena, au->merchant_id, au->livemode, g->id, &cus);
    if (rc != 0)
        return rc;
    if ((g->json = pd_render_to_arena(&r->arena, render_sealed_cb, &cus)).p == NULL)
        return PD_ERR_NOMEM;
    return pd_expand_wanted(r) && !cus.deleted ? pd_expand(db, r, &r->arena, &g->json) : 0;
}

static void
get_then(pd_req_t *r, void *arg, int rc)
{
    cus_get_t *g = arg;
    if (rc != 0)
        pd_resp_read_error(r, rc, "customer", "id", g->id);
    else
        pd_pii_respond(r, 200, g->json);
}

void
pd_h_customer_get(pd_req_t *r)
{
    cus_get_t *g = pd_arena_calloc(&r->arena, sizeof(*g));
    if (g == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    if (pd_view_to_cstr(pd_req_param(r, "id"), g->id, sizeof(g->id)) != 0) {
        pd_resp_missing(r, "customer", "id", "");
        return;
    }
    pd_api_read(r, get_read, get_then, g);
}

typedef struct {
    pd_list_q_t q;
    char email_index[65];
    pd_view_t json;
} cus_list_t;

static int
each_sealed(void *rec, void *arg)
{
    pd_pii_render_sealed(arg, rec);
    return 0;
}

static int
list_read(pd_db_t *db, pd_req_t *r, void *arg)
{
    cus_list_t *l = arg;
    const pd_auth_t *au = r->auth;
    pd_buf_t b;
    pd_jw_t w;
    bool more = false;
    pd_buf_init(&b, RESP_MAX * 4);
    pd_jw_init(&w, &b);
    pd_list_begin(&w, "/v1/customers");
    int rc = pd_customer_list(db, &r->arena, au->merchant_id, au->livemode, &l->q, each_sealed, &w, &more);
    pd_list_end(&w, more);
    if (rc == 0 && pd_jw_finish(&w) != 0)
        rc = PD_ERR_TOOBIG;
    if (rc == 0) {
        char *p = pd_arena_strndup(&r->arena, (const char *)b.p, b.len);
        if (p == NULL)
            rc = PD_ERR_NOMEM;
        else
            l->json = pd_view(p, b.len);
    }
    pd_buf_free(&b);
    if (rc == 0 && pd_expand_wanted(r))
        rc = pd_expand(db, r, &r->arena, &l->json);
    return rc;
}

static void
list_then(pd_req_t *r, void *arg, int rc)
{
    cus_list_t *l = arg;
    if (rc == 0)
        pd_pii_respond(r, 200, l->json);
    else if (rc == PD_ERR_NOTFOUND)
        pd_resp_missing(r, "customer", l->q.starting_after ? "starting_after" : "ending_before",
                        l->q.starting_after ? l->q.starting_after : l->q.ending_before);
    else if (rc == PD_ERR_TOOBIG)
        pd_resp_error(r, 500, "api_error", NULL, "The response is too large.", NULL);
    else
        pd_resp_read_failed(r, rc);
}

void
pd_h_customer_list(pd_req_t *r)
{
    const pd_auth_t *au = r->auth;
    cus_list_t *l = pd_arena_calloc(&r->arena, sizeof(*l));
    if (l == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    if (!pd_list_query(r, &l->q))
        return;
    const char *email = pd_param_str(r, "email");
    if (email != NULL) {
        /* the index is looked up: nothing is decrypted to filter */
        if (pd_pii_email_index(au->merchant_id, au->livemode, email, l->email_index) != 0) {
            pd_resp_invalid(r, "parameter_invalid", "email", "Invalid email.");
            return;
        }
        l->q.filter = l->email_index;
    }
    pd_api_read(r, list_read, list_then, l);
}
