/*
 * Secrets kept out of the clear in payd.db, and given back where the API shows them.
 *
 * A secret payd must show again is stored once, encrypted under a vault key in its own
 * record: a webhook endpoint's whsec_ under alias/webhooks, a cardholder name under
 * alias/pii. Nothing else stores it: a response that holds one is stored with its
 * idempotency key without it (pd_op_store_redacted), naming the record ("we_secret:ID",
 * "pm_name:ID"), and a replay reads that record, has the vault decrypt it and puts the
 * value back into the stored body. GET /v1/payment_methods/:id decrypts the name the
 * same way (pd_secret_open).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "api/internal.h"
#include "api/pii.h"
#include "payd/crypto.h"
#include "payd/log.h"

#define SECRET_MAX 4096 /* a whsec_ value, a cardholder name (≤ 256 bytes), a customer's personal data (PD_PII_MAX) */

void
pd_pii_context(char *out, size_t cap, const char *merchant, const char *pm_id)
{
    snprintf(out, cap, "merchant=%s;purpose=billing_name;id=%s", merchant, pm_id);
}

typedef struct {
    pd_task_t task;
    pd_req_t *r;
    pd_secret_fn fn;
    void *arg;
    int rc;
    size_t len;
    char value[SECRET_MAX + 1];
} open_t;

static void
after_open(pd_task_t *t)
{
    open_t *x = (open_t *)t;
    x->fn(x->r, x->arg, x->rc, x->rc == 0 ? x->value : NULL);
    OPENSSL_cleanse(x->value, sizeof(x->value));
}

static void
on_decrypted(void *arg, int rc, const pd_vault_reply_t *reply)
{
    open_t *x = arg;
    x->rc = rc;
    if (rc == 0 && (reply->data.len > SECRET_MAX || memchr(reply->data.p, '\0', reply->data.len) != NULL))
        x->rc = PD_ERR_TOOBIG;
    if (x->rc == 0) {
        memcpy(x->value, reply->data.p, reply->data.len);
        x->value[reply->data.len] = '\0';
    }
    pd_loop_post(x->r->loop, &x->task);
}

int
pd_secret_open(pd_req_t *r, const char *context, const char *env_hex, pd_secret_fn fn, void *arg)
{
    size_t hl = env_hex != NULL ? strlen(env_hex) : 0;
    open_t *x = pd_arena_calloc(&r->arena, sizeof(*x));
    uint8_t *env = hl > 0 && hl % 2 == 0 ? pd_arena_alloc(&r->arena, hl / 2) : NULL;
    if (x == NULL || env == NULL)
        return x == NULL ? PD_ERR_NOMEM : PD_ERR_INVALID;
    if (pd_unhex(env_hex, hl, env) != 0)
        return PD_ERR_INVALID;
    x->task.fn = after_open;
    x->r = r;
    x->fn = fn;
    x->arg = arg;
    if (r->holds == 0)
        pd_req_hold(r);
    return pd_vault_decrypt(pd_api_of(r)->vault->api, pd_view_cstr(context), pd_view(env, hl / 2), on_decrypted, x);
}

/* --- replays --- */

typedef struct {
    pd_op_t *op;
    bool pm;  /* the cardholder name (else a webhook endpoint's secret) */
    bool cus; /* a customer's personal data */
    bool erased; /* ... erased since (the customer was deleted or its data removed): the body as stored */
    char ctx[200];   /* its encryption context */
    const char *env; /* its envelope (hex, in the request's arena) */
} replay_t;

static void
replay_fail(pd_req_t *r, int rc)
{
    pd_log_error("cannot replay a stored response: its secret cannot be read back", PD_LS("request_id", r->id),
                 PD_LERR(rc));
    if (rc == PD_ERR_NOTFOUND || rc == PD_ERR_INVALID || rc == PD_ERR_AUTH)
        pd_resp_error(r, 500, "api_error", NULL, "The stored response of this idempotency key cannot be replayed.",
                      NULL);
    else
        pd_resp_error(r, 503, "api_error", "vault_unavailable", "The vault is unavailable. Retry later.", NULL);
}

static void
replay_done(pd_req_t *r, void *arg, int rc, const char *value)
{
    replay_t *x = arg;
    pd_idem_rec_t *e = &x->op->existing;
    json_error_t je;
    json_t *o = rc == 0 ? json_loads(e->body, 0, &je) : NULL, *bd;
    char *text = NULL;
    if (rc != 0 || o == NULL || !json_is_object(o)) {
        json_decref(o);
        replay_fail(r, rc != 0 ? rc : PD_ERR_INVALID);
        return;
    }
    if (x->cus)
        rc = pd_pii_put_json(o, value, strlen(value));
    else if (x->pm)
        rc = (bd = json_object_get(o, "billing_details")) != NULL && json_is_object(bd)
                 ? json_object_set_new(bd, "name", json_string(value))
                 : -1;
    else
        rc = json_object_set_new(o, "secret", json_string(value));
    if (rc == 0)
        text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o); /* jansson does not wipe: the value lived in its heap only as long as here */
    if (text == NULL) {
        replay_fail(r, PD_ERR_NOMEM);
        return;
    }
    pd_resp_header(r, "Idempotent-Replayed", "true");
    pd_pii_respond(r, e->status, pd_view_cstr(text));
    OPENSSL_cleanse(text, strlen(text));
    free(text);
}

/* on a reader thread: the envelope the stored response's secret is re-derived from */
static int
replay_read(pd_db_t *db, pd_req_t *r, void *arg)
{
    replay_t *x = arg;
    pd_op_t *op = x->op;
    const char *red = op->existing.redacted, *id = NULL;
    int rc = PD_ERR_INVALID;
    x->env = NULL;
    if (strncmp(red, "we_secret:", 10) == 0) {
        pd_we_rec_t we;
        id = red + 10;
        rc = pd_we_get_any(db, &r->arena, op->auth->merchant_id, op->auth->livemode, id, &we);
        x->env = rc == 0 ? we.secret : NULL;
        snprintf(x->ctx, sizeof(x->ctx), "merchant=%s;purpose=webhook_endpoint;id=%s", op->auth->merchant_id, id);
    } else if (strncmp(red, "pm_name:", 8) == 0) {
        pd_pm_rec_t pm;
        id = red + 8;
        x->pm = true;
        rc = pd_pm_get(db, &r->arena, op->auth->merchant_id, op->auth->livemode, id, &pm);
        x->env = rc == 0 ? pm.billing_name_enc : NULL;
        pd_pii_context(x->ctx, sizeof(x->ctx), op->auth->merchant_id, id);
    } else if (strncmp(red, "cus_pii:", 8) == 0) {
        pd_customer_rec_t cus;
        id = red + 8;
        x->cus = true;
        rc = pd_customer_get(db, &r->arena, op->auth->merchant_id, op->auth->livemode, id, &cus);
        x->env = rc == 0 ? cus.pii_enc : NULL;
        x->erased = rc == 0 && x->env == NULL; /* deleted since, or its data removed */
        if (x->erased)
            return 0;
        pd_pii_customer_context(x->ctx, sizeof(x->ctx), op->auth->merchant_id, id);
    }
    return rc == 0 && x->env == NULL ? PD_ERR_NOTFOUND : rc;
}

static void
replay_then(pd_req_t *r, void *arg, int rc)
{
    replay_t *x = arg;
    if (rc == PD_ERR_UNAVAILABLE || rc == PD_ERR_AGAIN) {
        pd_resp_read_failed(r, rc);
        return;
    }
    if (rc == 0 && x->erased) {
        /* nothing to put back: the stored response, without the personal data */
        pd_resp_header(r, "Idempotent-Replayed", "true");
        pd_pii_respond(r, x->op->existing.status, pd_view_cstr(x->op->existing.body));
        return;
    }
    if (rc == 0)
        rc = pd_secret_open(r, x->ctx, x->env, replay_done, x);
    if (rc != 0)
        replay_fail(r, rc);
}

void
pd_redact_replay(pd_op_t *op)
{
    pd_req_t *r = op->r;
    replay_t *x = pd_arena_calloc(&r->arena, sizeof(*x));
    if (x == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    x->op = op;
    pd_api_read(r, replay_read, replay_then, x);
}
