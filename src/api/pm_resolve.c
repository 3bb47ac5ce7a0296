/*
 * Resolving the payment_method a PaymentIntent names: a stored payment method or
 * token of this merchant and mode, or (test mode) one of Stripe's test ids such as
 * pm_card_visa, which is tokenized in the vault on first use like a real card.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api/internal.h"
#include "api/pm_resolve.h"

typedef struct {
    pd_task_t task;
    pd_op_t *op;
    pd_pm_rec_t *pm;
    bool *pm_new;
    pd_pm_done_fn done;
    const char *id;
    int rc;
    pd_vault_card_t card;
} resolve_t;

static void
after_tokenize(pd_task_t *t)
{
    resolve_t *x = (resolve_t *)t;
    pd_op_t *op = x->op;
    if (x->rc != 0) {
        pd_resp_error(op->r, 503, "api_error", "vault_unavailable", "The card vault is unavailable. Retry later.", NULL);
        return;
    }
    pd_pm_rec_t *p = x->pm;
    memset(p, 0, sizeof(*p));
    if (pd_id_new("pm", p->id, sizeof(p->id)) != 0) {
        pd_resp_error(op->r, 500, "api_error", NULL, "Cannot create an id.", NULL);
        return;
    }
    snprintf(p->object, sizeof(p->object), "payment_method");
    snprintf(p->merchant_id, sizeof(p->merchant_id), "%s", op->auth->merchant_id);
    p->livemode = false;
    snprintf(p->vault_token, sizeof(p->vault_token), "%s", x->card.token);
    snprintf(p->brand, sizeof(p->brand), "%s", x->card.brand);
    snprintf(p->last4, sizeof(p->last4), "%s", x->card.last4);
    snprintf(p->funding, sizeof(p->funding), "%s", x->card.funding);
    snprintf(p->fingerprint, sizeof(p->fingerprint), "%s", x->card.fingerprint);
    snprintf(p->country, sizeof(p->country), "US");
    p->exp_month = x->card.exp_month;
    p->exp_year = x->card.exp_year;
    p->metadata = "{}";
    p->created = op->now;
    p->seq = pd_next_seq();
    *x->pm_new = true;
    x->done(op);
}

static void
on_tokenized(void *arg, int rc, const pd_vault_card_t *card)
{
    resolve_t *x = arg;
    x->rc = rc;
    if (rc == 0)
        x->card = *card;
    x->task.fn = after_tokenize;
    pd_loop_post(x->op->r->loop, &x->task);
}

int
pd_pm_resolve_read(pd_db_t *db, pd_op_t *op, const char *id, pd_pm_rec_t *pm)
{
    return pd_pm_get(db, &op->r->arena, op->auth->merchant_id, op->auth->livemode, id, pm);
}

/* on a reader thread */
static int
resolve_read(pd_db_t *db, pd_req_t *r, void *ctx)
{
    (void)r;
    resolve_t *x = ctx;
    return pd_pm_resolve_read(db, x->op, x->id, x->pm);
}

static void
resolve_then(pd_req_t *r, void *ctx, int rc)
{
    resolve_t *x = ctx;
    pd_op_t *op = x->op;
    pd_pm_rec_t *pm = x->pm;
    const char *id = x->id;
    if (rc == 0) {
        if (strcmp(pm->object, "token") == 0 && pm->used) {
            pd_resp_invalid(r, "token_already_used", "payment_method",
                            "You cannot use a Stripe token more than once: %s.", id);
            return;
        }
        x->done(op);
        return;
    }
    if (rc != PD_ERR_NOTFOUND) {
        pd_resp_read_failed(r, rc);
        return;
    }
    const char *pan = op->auth->livemode ? NULL : pd_test_pm_pan(id);
    if (pan == NULL) {
        char msg[200];
        snprintf(msg, sizeof(msg), "No such PaymentMethod: '%.80s'", id);
        pd_resp_error(r, 400, "invalid_request_error", "resource_missing", msg, "payment_method");
        return;
    }
    pd_vault_card_in_t in;
    memset(&in, 0, sizeof(in));
    snprintf(in.merchant_id, sizeof(in.merchant_id), "%s", op->auth->merchant_id);
    snprintf(in.pan, sizeof(in.pan), "%s", pan);
    in.exp_month = 12;
    in.exp_year = 2034;
    if (r->holds == 0)
        pd_req_hold(r);
    int tr = pd_vault_tokenize(op->api->vault->api, &in, on_tokenized, x);
    OPENSSL_cleanse(&in, sizeof(in));
    if (tr != 0)
        pd_resp_error(r, 503, "api_error", "vault_unavailable", "The card vault is unavailable. Retry later.", NULL);
}

static resolve_t *
resolve_new(pd_op_t *op, const char *id, pd_pm_rec_t *pm, bool *pm_new, pd_pm_done_fn done)
{
    resolve_t *x = pd_arena_calloc(&op->r->arena, sizeof(*x));
    if (x == NULL) {
        pd_resp_error(op->r, 500, "api_error", NULL, "Out of memory.", NULL);
        return NULL;
    }
    *pm_new = false;
    x->op = op;
    x->id = id;
    x->pm = pm;
    x->pm_new = pm_new;
    x->done = done;
    return x;
}

void
pd_pm_resolve_with(pd_op_t *op, int rc, const char *id, pd_pm_rec_t *pm, bool *pm_new, pd_pm_done_fn done)
{
    resolve_t *x = resolve_new(op, id, pm, pm_new, done);
    if (x != NULL)
        resolve_then(op->r, x, rc);
}

void
pd_pm_resolve(pd_op_t *op, const char *id, pd_pm_rec_t *pm, bool *pm_new, pd_pm_done_fn done)
{
    resolve_t *x = resolve_new(op, id, pm, pm_new, done);
    if (x != NULL)
        pd_api_read(op->r, resolve_read, resolve_then, x);
}
