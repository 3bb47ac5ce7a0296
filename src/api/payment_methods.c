/*
 * POST /v1/payment_methods, GET /v1/payment_methods/:id, POST /v1/tokens.
 * The card goes to the vault (api principal); payd keeps the token and display
 * fields only. The PAN and CVC are wiped from the request's memory after use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "api/internal.h"
#include "api/pii.h"
#include "payd/crypto.h"
#include "payd/log.h"
#include "payd/time.h"

typedef struct {
    pd_op_t *op;
    pd_task_t task;
    pd_vault_card_in_t in;
    pd_vault_card_t card;
    int vault_rc;
    bool token;
    const char *metadata;
    const char *name;
    pd_pm_rec_t pm;
} pm_ctx_t;

static void
wipe_card_params(pd_req_t *r)
{
    for (size_t i = 0; i < r->params.n; i++) {
        pd_param_t *p = &r->params.v[i];
        if (pd_view_eq_cstr(p->key, "card[number]") || pd_view_eq_cstr(p->key, "card[cvc]"))
            OPENSSL_cleanse(p->bytes, p->value.len);
    }
}

/* Stripe's card errors for what the card data itself gets wrong (402 card_error) */
static void
card_error(pd_req_t *r, const char *code, const char *param, const char *msg)
{
    pd_resp_error(r, 402, "card_error", code, msg, param);
}

/* fills in from card[...] params; false after it responded */
static bool
read_card(pd_req_t *r, pd_vault_card_in_t *in, const char *name)
{
    const char *number = pd_param_str(r, "card[number]"), *m = pd_param_str(r, "card[exp_month]"),
               *y = pd_param_str(r, "card[exp_year]"), *cvc = pd_param_str(r, "card[cvc]");
    if (number == NULL) {
        pd_resp_invalid(r, "parameter_missing", "card[number]", "Missing required param: card[number].");
        return false;
    }
    if (m == NULL || y == NULL) {
        pd_resp_invalid(r, "parameter_missing", m == NULL ? "card[exp_month]" : "card[exp_year]",
                        "Missing required param: %s.", m == NULL ? "card[exp_month]" : "card[exp_year]");
        return false;
    }
    memset(in, 0, sizeof(*in));
    snprintf(in->merchant_id, sizeof(in->merchant_id), "%s", ((const pd_auth_t *)r->auth)->merchant_id);
    snprintf(in->pan, sizeof(in->pan), "%s", number);
    snprintf(in->cvc, sizeof(in->cvc), "%s", cvc ? cvc : "");
    snprintf(in->name, sizeof(in->name), "%s", name ? name : "");
    int64_t mm = 0, yy = 0;
    if (pd_view_to_i64(pd_view_cstr(m), &mm) != 0 || pd_view_to_i64(pd_view_cstr(y), &yy) != 0)
        return false;
    if (yy < 100)
        yy += 2000; /* two-digit years, as card forms send them */
    in->exp_month = (int)mm;
    in->exp_year = (int)yy;
    if (!pd_card_luhn(in->pan, strlen(in->pan))) {
        OPENSSL_cleanse(in, sizeof(*in));
        card_error(r, "incorrect_number", "card[number]", "Your card number is incorrect.");
        return false;
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (yy < tm.tm_year + 1900 || yy > tm.tm_year + 1900 + 50) {
        OPENSSL_cleanse(in, sizeof(*in));
        card_error(r, "invalid_expiry_year", "card[exp_year]", "Your card's expiration year is invalid.");
        return false;
    }
    if (yy == tm.tm_year + 1900 && mm < tm.tm_mon + 1) {
        OPENSSL_cleanse(in, sizeof(*in));
        card_error(r, "invalid_expiry_month", "card[exp_month]", "Your card's expiration month is invalid.");
        return false;
    }
    return true;
}

static int
write_pm(pd_db_t *tx, pd_op_t *op)
{
    pm_ctx_t *c = op->ctx;
    pd_jw_t w;
    int r = pd_pm_insert(tx, &c->pm);
    if (r != 0)
        return r;
    pd_jw_init(&w, &op->body);
    pd_render_pm(&w, &c->pm);
    if ((r = pd_op_respond_json(op, 200, &w)) != 0 || !op->has_idem || c->pm.billing_name == NULL ||
        strcmp(c->pm.object, "token") == 0)
        return r;
    /* the idempotency record keeps the response without the name: a replay decrypts it
     * from the payment method's record */
    char *red = pd_arena_alloc(&op->r->arena, PD_ID_MAX + 16);
    if (red == NULL)
        return PD_ERR_NOMEM;
    snprintf(red, PD_ID_MAX + 16, "pm_name:%s", c->pm.id);
    pd_pm_rec_t shown = c->pm;
    shown.billing_name = NULL;
    pd_buf_reset(&op->idem_body);
    pd_jw_init(&w, &op->idem_body);
    pd_render_pm(&w, &shown);
    return pd_op_store_redacted(op, &w, red);
}

static void
after_name_encrypted(pd_task_t *t)
{
    pm_ctx_t *c = (pm_ctx_t *)((char *)t - offsetof(pm_ctx_t, task));
    if (c->vault_rc != 0) {
        pd_resp_error(c->op->r, 503, "api_error", "vault_unavailable", "The vault is unavailable. Retry later.", NULL);
        return;
    }
    pd_op_commit(c->op, write_pm, NULL);
}

static void
on_name_encrypted(void *arg, int rc, const pd_vault_reply_t *reply)
{
    pm_ctx_t *c = arg;
    c->vault_rc = rc;
    if (rc == 0) {
        char *hex = pd_arena_alloc(&c->op->r->arena, reply->data.len * 2 + 1);
        if (hex == NULL)
            c->vault_rc = PD_ERR_NOMEM;
        else
            pd_hex(reply->data.p, reply->data.len, hex);
        c->pm.billing_name_enc = hex;
    }
    c->task.fn = after_name_encrypted;
    pd_loop_post(c->op->r->loop, &c->task);
}

static void
after_tokenize(pd_task_t *t)
{
    pm_ctx_t *c = (pm_ctx_t *)((char *)t - offsetof(pm_ctx_t, task));
    pd_op_t *op = c->op;
    if (c->vault_rc != 0) {
        op->rc = 0;
        if (c->vault_rc == PD_ERR_INVALID)
            card_error(op->r, "incorrect_number", "card[number]", "Your card number is incorrect.");
        else
            pd_resp_error(op->r, 503, "api_error", "vault_unavailable", "The card vault is unavailable. Retry later.",
                          NULL);
        return;
    }
    pd_pm_rec_t *p = &c->pm;
    memset(p, 0, sizeof(*p));
    if (pd_id_new(c->token ? "tok" : "pm", p->id, sizeof(p->id)) != 0) {
        pd_resp_error(op->r, 500, "api_error", NULL, "Cannot create an id.", NULL);
        return;
    }
    snprintf(p->object, sizeof(p->object), "%s", c->token ? "token" : "payment_method");
    snprintf(p->merchant_id, sizeof(p->merchant_id), "%s", op->auth->merchant_id);
    p->livemode = op->auth->livemode;
    snprintf(p->vault_token, sizeof(p->vault_token), "%s", c->card.token);
    snprintf(p->brand, sizeof(p->brand), "%s", c->card.brand);
    snprintf(p->last4, sizeof(p->last4), "%s", c->card.last4);
    snprintf(p->funding, sizeof(p->funding), "%s", c->card.funding);
    snprintf(p->fingerprint, sizeof(p->fingerprint), "%s", c->card.fingerprint);
    snprintf(p->country, sizeof(p->country), "US");
    snprintf(p->cvc_check, sizeof(p->cvc_check), "%s", c->card.cvc_held ? "unchecked" : "");
    p->exp_month = c->card.exp_month;
    p->exp_year = c->card.exp_year;
    p->billing_name = c->name;
    p->metadata = c->metadata;
    p->created = op->now;
    p->seq = pd_next_seq();
    if (p->billing_name == NULL || p->billing_name[0] == '\0') {
        p->billing_name = NULL;
        pd_op_commit(op, write_pm, NULL);
        return;
    }
    /* the cardholder name is stored encrypted under alias/pii, bound to this merchant and payment method */
    char ctx[200];
    pd_pii_context(ctx, sizeof(ctx), p->merchant_id, p->id);
    if (pd_vault_encrypt(op->api->vault->api, "alias/pii", pd_view_cstr(ctx), pd_view_cstr(p->billing_name),
                         on_name_encrypted, c) != 0)
        pd_resp_error(op->r, 503, "api_error", "vault_unavailable", "The vault is unavailable. Retry later.", NULL);
}

static void
on_tokenized(void *arg, int rc, const pd_vault_card_t *card)
{
    pm_ctx_t *c = arg;
    c->vault_rc = rc;
    if (rc == 0)
        c->card = *card;
    OPENSSL_cleanse(&c->in, sizeof(c->in));
    c->task.fn = after_tokenize;
    pd_loop_post(c->op->r->loop, &c->task);
}

static void
create(pd_req_t *r, bool token)
{
    pm_ctx_t *c = pd_arena_calloc(&r->arena, sizeof(*c));
    if (c == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    c->token = token;
    c->name = pd_param_str(r, token ? "card[name]" : "billing_details[name]");
    c->metadata = pd_param_metadata(r, NULL);
    if (c->metadata == NULL) {
        pd_resp_invalid(r, "parameter_invalid", "metadata", "metadata can have at most 50 keys.");
        return;
    }
    if (!token && pd_param_str(r, "card[token]") != NULL) {
        pd_resp_invalid(r, "parameter_invalid", "card[token]", "Creating a PaymentMethod from a token is not supported; "
                                                               "pass the token as payment_method to a PaymentIntent.");
        return;
    }
    bool ok = read_card(r, &c->in, c->name);
    wipe_card_params(r);
    if (!ok)
        return;
    if ((c->op = pd_op_new(r, c)) == NULL) {
        OPENSSL_cleanse(&c->in, sizeof(c->in));
        return;
    }
    pd_req_hold(r);
    if (pd_vault_tokenize(pd_api_of(r)->vault->api, &c->in, on_tokenized, c) != 0) {
        OPENSSL_cleanse(&c->in, sizeof(c->in));
        pd_resp_error(r, 503, "api_error", "vault_unavailable", "The card vault is unavailable. Retry later.", NULL);
    }
}

void
pd_h_pm_create(pd_req_t *r)
{
    create(r, false);
}

void
pd_h_token_create(pd_req_t *r)
{
    create(r, true);
}

static void
render_pm_cb(pd_jw_t *w, const void *rec)
{
    pd_render_pm(w, rec);
}

typedef struct {
    char id[PD_ID_MAX];
    pd_pm_rec_t pm;
    pd_view_t json; /* rendered (and expanded) on the reader thread, without the name */
} pm_get_t;

static void
name_opened(pd_req_t *r, void *arg, int rc, const char *name)
{
    pm_get_t *g = arg;
    if (rc != 0) {
        pd_log_error("cannot decrypt a cardholder name", PD_LS("payment_method", g->pm.id), PD_LERR(rc));
        pd_resp_error(r, 503, "api_error", "vault_unavailable", "The vault is unavailable. Retry later.", NULL);
        return;
    }
    json_error_t e;
    json_t *o = json_loadb((const char *)g->json.p, g->json.len, 0, &e), *bd = json_object_get(o, "billing_details");
    char *text = NULL;
    if (json_is_object(bd) && json_object_set_new(bd, "name", json_string(name)) == 0)
        text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o); /* jansson does not wipe: the name lived in its heap only as long as here */
    if (text == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    pd_pii_respond(r, 200, pd_view_cstr(text)); /* parsed before it returns */
    OPENSSL_cleanse(text, strlen(text));
    free(text);
}

/* on a reader thread: the method, rendered and expanded */
static int
pm_get_read(pd_db_t *db, pd_req_t *r, void *ctx)
{
    pm_get_t *g = ctx;
    const pd_auth_t *au = r->auth;
    int rc = pd_pm_get(db, &r->arena, au->merchant_id, au->livemode, g->id, &g->pm);
    if (rc == 0 && strcmp(g->pm.object, "payment_method") != 0)
        rc = PD_ERR_NOTFOUND;
    if (rc != 0)
        return rc;
    g->pm.billing_name = NULL; /* shown from its envelope only */
    g->json = pd_render_to_arena(&r->arena, render_pm_cb, &g->pm);
    if (g->json.p == NULL)
        return PD_ERR_NOMEM;
    return pd_expand_wanted(r) ? pd_expand(db, r, &r->arena, &g->json) : 0;
}

static void
pm_get_then(pd_req_t *r, void *arg, int rc)
{
    pm_get_t *g = arg;
    pd_pm_rec_t *p = &g->pm;
    const pd_auth_t *au = r->auth;
    char ctx[200];
    if (rc != 0) {
        pd_resp_read_error(r, rc, "payment_method", "id", g->id);
        return;
    }
    if (p->billing_name_enc == NULL) {
        pd_pii_respond(r, 200, g->json); /* an expanded customer opened */
        return;
    }
    pd_pii_context(ctx, sizeof(ctx), au->merchant_id, p->id);
    if (pd_secret_open(r, ctx, p->billing_name_enc, name_opened, g) != 0)
        pd_resp_error(r, 503, "api_error", "vault_unavailable", "The vault is unavailable. Retry later.", NULL);
}

void
pd_h_pm_get(pd_req_t *r)
{
    pm_get_t *g = pd_arena_calloc(&r->arena, sizeof(*g));
    if (g == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    if (pd_view_to_cstr(pd_req_param(r, "id"), g->id, sizeof(g->id)) != 0) {
        pd_resp_missing(r, "payment_method", "id", "");
        return;
    }
    pd_api_read(r, pm_get_read, pm_get_then, g);
}
