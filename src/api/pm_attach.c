/*
 * Saved cards: POST /v1/payment_methods/:id/attach (customer) and /detach, GET
 * /v1/payment_methods (customer, type) and GET /v1/customers/:id/payment_methods.
 *
 * A payment method is attached to at most one customer; detaching is for good, as in
 * Stripe (the method is never attached or used again). The stored state decides inside
 * the write (pd_pm_attach / pd_pm_detach are conditional updates), so two requests that
 * race cannot both win. The cardholder name is opened through the vault for responses
 * only (as GET /v1/payment_methods/:id does); events never carry it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "api/pii.h"
#include "api/pm_resolve.h"
#include "payd/log.h"

typedef struct {
    pd_op_t *op;
    char id[PD_ID_MAX];
    const char *customer; /* attach: the customer parameter */
    pd_customer_rec_t cus;
    int cus_rc;
    pd_pm_rec_t pm;
    int pm_rc;
    bool pm_new, detach, same; /* same: attached to this customer already */
    char prev_customer[PD_ID_MAX];
    pd_pii_slot_t slot;
    char ctx[200];
} att_ctx_t;

#define DETACHED_MSG                                                                                                   \
    "The provided PaymentMethod was previously used with a PaymentIntent without Customer attachment, shared with a "  \
    "connected account without Customer attachment, or was detached from a Customer. It may not be used again. To "  \
    "use a PaymentMethod multiple times, you must attach it to a Customer first."

const char *pd_pm_detached_message = DETACHED_MSG;

static int
write_att(pd_db_t *tx, pd_op_t *op)
{
    att_ctx_t *c = op->ctx;
    pd_pm_rec_t *p = &c->pm;
    pd_jw_t w;
    int r = 0;
    if (c->detach) {
        if ((r = pd_pm_detach(tx, p->id, c->prev_customer)) != 0 ||
            (r = pd_customer_clear_default_pm(tx, c->prev_customer, p->id)) != 0)
            return r; /* PD_ERR_CONFLICT: detached or attached elsewhere meanwhile (409) */
        p->customer[0] = '\0';
        p->detached = true;
    } else if (c->pm_new) {
        snprintf(p->customer, sizeof(p->customer), "%s", c->customer);
        if ((r = pd_pm_insert(tx, p)) != 0)
            return r;
    } else if (!c->same) {
        if ((r = pd_pm_attach(tx, p->id, c->customer)) != 0)
            return r;
        snprintf(p->customer, sizeof(p->customer), "%s", c->customer);
    }
    pd_jw_init(&w, &op->body);
    pd_render_pm(&w, p);
    if ((r = pd_op_respond_json(op, 200, &w)) != 0)
        return r;
    /* the event and the stored response: without the cardholder name */
    pd_pm_rec_t shown = *p;
    shown.billing_name = NULL;
    pd_buf_reset(&op->idem_body);
    pd_jw_init(&w, &op->idem_body);
    pd_render_pm(&w, &shown);
    if ((r = pd_jw_finish(&w)) != 0)
        return r;
    if (!c->same &&
        (r = pd_emit(tx, op, c->detach ? "payment_method.detached" : "payment_method.attached",
                     pd_buf_view(&op->idem_body))) != 0)
        return r;
    if (op->has_idem && p->billing_name != NULL) {
        char *red = pd_arena_alloc(&op->r->arena, PD_ID_MAX + 16);
        if (red == NULL)
            return PD_ERR_NOMEM;
        snprintf(red, PD_ID_MAX + 16, "pm_name:%s", p->id);
        op->idem_redacted = red;
    }
    return 0;
}

static void
name_opened(pd_req_t *r, void *arg, int rc)
{
    att_ctx_t *c = arg;
    if (rc != 0) {
        pd_log_error("cannot decrypt a cardholder name", PD_LS("payment_method", c->pm.id), PD_LERR(rc));
        pd_resp_error(r, 503, "api_error", "vault_unavailable", "The vault is unavailable. Retry later.", NULL);
        return;
    }
    /* the name stays in the arena until the request ends (the response is built in the write) */
    c->pm.billing_name = pd_arena_strndup(&r->arena, c->slot.out, c->slot.len);
    pd_op_commit(c->op, write_att, NULL);
}

/* opens the cardholder name (the response shows it), then commits */
static void
commit_with_name(att_ctx_t *c)
{
    if (c->pm.billing_name_enc == NULL) {
        pd_op_commit(c->op, write_att, NULL);
        return;
    }
    pd_pii_context(c->ctx, sizeof(c->ctx), c->pm.merchant_id, c->pm.id);
    c->slot.context = c->ctx;
    c->slot.env_hex = c->pm.billing_name_enc;
    pd_pii_open_many(c->op->r, &c->slot, 1, name_opened, c);
}

static void
attach_resolved(pd_op_t *op)
{
    att_ctx_t *c = op->ctx;
    pd_req_t *r = op->r;
    pd_pm_rec_t *p = &c->pm;
    if (strcmp(p->object, "payment_method") != 0) {
        pd_resp_missing(r, "PaymentMethod", "payment_method", c->id);
        return;
    }
    if (p->detached) {
        pd_resp_invalid(r, "payment_method_unexpected_state", "payment_method", "%s", DETACHED_MSG);
        return;
    }
    if (p->customer[0] != '\0' && strcmp(p->customer, c->customer) != 0) {
        pd_resp_invalid(r, "payment_method_unexpected_state", "payment_method",
                        "The payment method you provided has already been attached to a customer.");
        return;
    }
    c->same = p->customer[0] != '\0';
    commit_with_name(c);
}

static void
detach_ready(att_ctx_t *c)
{
    pd_req_t *r = c->op->r;
    pd_pm_rec_t *p = &c->pm;
    if (c->pm_rc == PD_ERR_NOTFOUND || strcmp(p->object, "payment_method") != 0) {
        pd_resp_missing(r, "PaymentMethod", "payment_method", c->id);
        return;
    }
    if (p->customer[0] == '\0') {
        pd_resp_invalid(r, "payment_method_unexpected_state", "payment_method",
                        "The payment method you provided is not attached to a customer so detachment is impossible.");
        return;
    }
    snprintf(c->prev_customer, sizeof(c->prev_customer), "%s", p->customer);
    commit_with_name(c);
}

static int
load_att(pd_db_t *db, pd_op_t *op)
{
    att_ctx_t *c = op->ctx;
    c->cus_rc = PD_ERR_NOTFOUND;
    if (c->customer != NULL) {
        c->cus_rc = pd_customer_get(db, &op->r->arena, op->auth->merchant_id, op->auth->livemode, c->customer, &c->cus);
        if (c->cus_rc != 0 && c->cus_rc != PD_ERR_NOTFOUND)
            return c->cus_rc;
    }
    c->pm_rc = pd_pm_resolve_read(db, op, c->id, &c->pm);
    return c->pm_rc == PD_ERR_NOTFOUND ? 0 : c->pm_rc;
}

static void
att_loaded(pd_op_t *op)
{
    att_ctx_t *c = op->ctx;
    pd_req_t *r = op->r;
    if (c->detach) {
        detach_ready(c);
        return;
    }
    if (c->cus_rc != 0 || c->cus.deleted) {
        pd_resp_invalid(r, "resource_missing", "customer", "No such customer: '%.80s'", c->customer);
        return;
    }
    if (c->pm_rc == PD_ERR_NOTFOUND && (op->auth->livemode || pd_test_pm_pan(c->id) == NULL)) {
        pd_resp_missing(r, "PaymentMethod", "payment_method", c->id);
        return;
    }
    /* a stored method, or (test mode) one of Stripe's test ids made into a new method */
    pd_pm_resolve_with(op, c->pm_rc, c->id, &c->pm, &c->pm_new, attach_resolved);
}

static void
att_start(pd_req_t *r, bool detach)
{
    att_ctx_t *c = pd_arena_calloc(&r->arena, sizeof(*c));
    if (c == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    if (pd_view_to_cstr(pd_req_param(r, "id"), c->id, sizeof(c->id)) != 0) {
        pd_resp_missing(r, "PaymentMethod", "payment_method", "");
        return;
    }
    c->detach = detach;
    if (!detach) {
        c->customer = pd_param_str(r, "customer");
        if (c->customer == NULL || c->customer[0] == '\0') {
            pd_resp_invalid(r, "parameter_missing", "customer", "Missing required param: customer.");
            return;
        }
    }
    if ((c->op = pd_op_new(r, c)) == NULL)
        return;
    pd_op_load(c->op, load_att, att_loaded);
}

void
pd_h_pm_attach(pd_req_t *r)
{
    att_start(r, false);
}

void
pd_h_pm_detach(pd_req_t *r)
{
    att_start(r, true);
}

/* --- lists ---
 * Rendered on the reader thread without the cardholder names (and expanded there:
 * data.customer), then each name opened through the vault at once and put into its item
 * on the loop, and an expanded customer's personal data with it (pd_pii_respond). */

typedef struct {
    pd_list_q_t q;
    const char *customer;  /* NULL: every payment method */
    const char *cus_param; /* the parameter naming it, for the 404 */
    const char *url;
    pd_view_t json;
    int cus_rc;
    /* the page's names to open: item index and envelope */
    size_t n, nslots;
    size_t item[100];
    const char *env[100];
    pd_pii_slot_t *slots;
    char (*ctx)[200];
    char ids[100][PD_ID_MAX];
    const char *merchant;
} pm_list_t;

typedef struct {
    pm_list_t *l;
    pd_jw_t *w;
} each_t;

static int
each_pm(void *rec, void *arg)
{
    each_t *e = arg;
    pm_list_t *l = e->l;
    pd_pm_rec_t *p = rec;
    if (p->billing_name_enc != NULL && l->nslots < sizeof(l->item) / sizeof(l->item[0])) {
        l->item[l->nslots] = l->n;
        l->env[l->nslots] = p->billing_name_enc;
        snprintf(l->ids[l->nslots], sizeof(l->ids[0]), "%s", p->id);
        l->nslots++;
    }
    l->n++;
    p->billing_name = NULL; /* a row from before version 12 may hold it in clear: shown from its envelope only */
    pd_render_pm(e->w, p);
    return 0;
}

static int
list_read(pd_db_t *db, pd_req_t *r, void *arg)
{
    pm_list_t *l = arg;
    const pd_auth_t *au = r->auth;
    l->cus_rc = 0;
    if (l->customer != NULL) {
        pd_customer_rec_t cus;
        l->cus_rc = pd_customer_get(db, &r->arena, au->merchant_id, au->livemode, l->customer, &cus);
        if (l->cus_rc == 0 && cus.deleted)
            l->cus_rc = PD_ERR_NOTFOUND;
        if (l->cus_rc != 0)
            return l->cus_rc;
    }
    l->q.filter = l->customer;
    pd_buf_t b;
    pd_jw_t w;
    bool more = false;
    pd_buf_init(&b, RESP_MAX * 4);
    pd_jw_init(&w, &b);
    pd_list_begin(&w, l->url);
    each_t e = {l, &w};
    int rc = pd_pm_list(db, &r->arena, au->merchant_id, au->livemode, &l->q, each_pm, &e, &more);
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
list_opened(pd_req_t *r, void *arg, int rc)
{
    pm_list_t *l = arg;
    json_error_t e;
    json_t *o = rc == 0 ? json_loadb((const char *)l->json.p, l->json.len, 0, &e) : NULL;
    json_t *data = json_object_get(o, "data");
    for (size_t i = 0; o != NULL && i < l->nslots; i++) {
        json_t *bd = json_object_get(json_array_get(data, l->item[i]), "billing_details");
        if (json_is_object(bd))
            json_object_set_new(bd, "name", json_stringn(l->slots[i].out, l->slots[i].len));
    }
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o); /* jansson does not wipe: the names lived in its heap only as long as here */
    if (text == NULL) {
        pd_log_error("cannot decrypt cardholder names", PD_LERR(rc != 0 ? rc : PD_ERR_NOMEM));
        pd_resp_error(r, 503, "api_error", "vault_unavailable", "The vault is unavailable. Retry later.", NULL);
        return;
    }
    pd_pii_respond(r, 200, pd_view_cstr(text)); /* parsed before it returns */
    OPENSSL_cleanse(text, strlen(text));
    free(text);
}

static void
list_then(pd_req_t *r, void *arg, int rc)
{
    pm_list_t *l = arg;
    if (rc == PD_ERR_NOTFOUND && l->cus_rc == PD_ERR_NOTFOUND) {
        if (strcmp(l->cus_param, "id") == 0)
            pd_resp_missing(r, "customer", "id", l->customer);
        else
            pd_resp_invalid(r, "resource_missing", "customer", "No such customer: '%.80s'", l->customer);
        return;
    }
    if (rc == PD_ERR_NOTFOUND) {
        pd_resp_missing(r, "PaymentMethod", l->q.starting_after ? "starting_after" : "ending_before",
                        l->q.starting_after ? l->q.starting_after : l->q.ending_before);
        return;
    }
    if (rc == PD_ERR_TOOBIG) {
        pd_resp_error(r, 500, "api_error", NULL, "The response is too large.", NULL);
        return;
    }
    if (rc != 0) {
        pd_resp_read_failed(r, rc);
        return;
    }
    if (l->nslots == 0) {
        pd_pii_respond(r, 200, l->json);
        return;
    }
    l->slots = pd_arena_calloc(&r->arena, sizeof(*l->slots) * l->nslots);
    l->ctx = pd_arena_calloc(&r->arena, sizeof(*l->ctx) * l->nslots);
    if (l->slots == NULL || l->ctx == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    for (size_t i = 0; i < l->nslots; i++) {
        pd_pii_context(l->ctx[i], sizeof(l->ctx[0]), l->merchant, l->ids[i]);
        l->slots[i].context = l->ctx[i];
        l->slots[i].env_hex = l->env[i];
    }
    pd_pii_open_many(r, l->slots, l->nslots, list_opened, l);
}

static void
list_start(pd_req_t *r, const char *customer, const char *param)
{
    pm_list_t *l = pd_arena_calloc(&r->arena, sizeof(*l));
    if (l == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    if (!pd_list_query(r, &l->q))
        return;
    l->customer = customer;
    l->cus_param = param;
    l->merchant = ((const pd_auth_t *)r->auth)->merchant_id;
    char *url = pd_arena_alloc(&r->arena, PD_ID_MAX + 40);
    if (url == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    if (strcmp(param, "id") == 0)
        snprintf(url, PD_ID_MAX + 40, "/v1/customers/%.*s/payment_methods", PD_ID_MAX - 1, customer);
    else
        snprintf(url, PD_ID_MAX + 40, "/v1/payment_methods");
    l->url = url;
    pd_api_read(r, list_read, list_then, l);
}

void
pd_h_pm_list(pd_req_t *r)
{
    list_start(r, pd_param_str(r, "customer"), "customer");
}

void
pd_h_customer_pm_list(pd_req_t *r)
{
    pd_view_t id = pd_req_param(r, "id");
    char *s = pd_arena_strndup(&r->arena, (const char *)id.p, id.len);
    if (s == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    list_start(r, s, "id");
}
