/*
 * Mutating requests: an operation claims its idempotency key and does its work in
 * one store write (group commit); its continuation runs on the request's loop once
 * that write is durable. The final response of a request that started executing is
 * stored with its idempotency key in the same transaction as its effects.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "api/pii.h"
#include "payd/log.h"
#include "payd/pay.h"
#include "payd/time.h"

static void replay(pd_op_t *op);

pd_op_t *
pd_op_new(pd_req_t *r, void *ctx)
{
    pd_op_t *op = pd_arena_calloc(&r->arena, sizeof(*op));
    if (op == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return NULL;
    }
    op->r = r;
    op->api = pd_api_of(r);
    op->auth = r->auth;
    op->ctx = ctx;
    op->now = pd_unix_now();
    pd_buf_init(&op->body, RESP_MAX);
    pd_buf_init(&op->idem_body, RESP_MAX);
    pd_view_t key = pd_req_header(r, "idempotency-key");
    if (key.p != NULL) {
        if (key.len == 0 || key.len > 255) {
            pd_resp_invalid(r, "idempotency_key_invalid", NULL,
                            "Idempotency-Key must be 1 to 255 characters long (got %zu).", key.len);
            return NULL;
        }
        for (size_t i = 0; i < key.len; i++) {
            if (key.p[i] < 0x20 || key.p[i] == 0x7f) {
                pd_resp_invalid(r, "idempotency_key_invalid", NULL, "Idempotency-Key contains a control character.");
                return NULL;
            }
        }
        memcpy(op->idem_key, key.p, key.len);
        op->idem_key[key.len] = '\0';
        op->has_idem = true;
        if (pd_request_fingerprint(r->method, r->path, &r->params, op->fingerprint) != 0) {
            pd_resp_error(r, 500, "api_error", NULL, "Cannot fingerprint the request.", NULL);
            return NULL;
        }
    }
    return op;
}

/* on a reader thread (or inline): the key's record, then the handler's loads */
static int
load_read(pd_db_t *db, pd_req_t *r, void *ctx)
{
    pd_op_t *op = ctx;
    if (op->has_idem && !op->idem_checked) {
        int rc = pd_idem_get(db, &r->arena, op->auth->merchant_id, op->auth->livemode, op->idem_key, &op->existing);
        if (rc == 0 && op->existing.created >= op->now - op->api->cfg->idempotency_ttl_ms / 1000) {
            op->idem_replay = true;
            return 0;
        }
        if (rc != 0 && rc != PD_ERR_NOTFOUND)
            return rc;
    }
    return op->load != NULL ? op->load(db, op) : 0;
}

static void
load_then(pd_req_t *r, void *ctx, int rc)
{
    pd_op_t *op = ctx;
    op->idem_checked = true;
    if (rc != 0 && rc != PD_ERR_NOTFOUND) {
        pd_resp_read_failed(r, rc);
        return;
    }
    if (op->idem_replay) {
        replay(op);
        return;
    }
    op->rc = rc;
    op->loaded(op);
}

void
pd_op_load(pd_op_t *op, pd_op_load_fn load, pd_op_next_fn next)
{
    op->load = load;
    op->loaded = next;
    if (load == NULL && (!op->has_idem || op->idem_checked)) {
        op->rc = 0;
        next(op); /* nothing to read */
        return;
    }
    pd_api_read(op->r, load_read, load_then, op);
}

int
pd_op_respond_json(pd_op_t *op, int status, pd_jw_t *w)
{
    int r = pd_jw_finish(w);
    if (r != 0)
        return r;
    op->status = status;
    return 0;
}

int
pd_op_store_redacted(pd_op_t *op, pd_jw_t *stored, const char *redacted)
{
    int r = pd_jw_finish(stored);
    if (r == 0)
        op->idem_redacted = redacted;
    return r;
}

int
pd_op_error(pd_op_t *op, int status, const char *type, const char *code, const char *param, const char *extra_json,
            const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int r = pd_error_json(&op->body, type, code, param, extra_json, op->r->id, msg);
    if (r == 0)
        op->status = status;
    return r;
}

/* op->body expanded (expand[]) with the writer's transaction, which sees this write */
static int
expand_body(pd_db_t *tx, pd_op_t *op)
{
    pd_view_t json = pd_buf_view(&op->body);
    int r = pd_expand(tx, op->r, &op->r->arena, &json);
    if (r == 0) {
        pd_buf_reset(&op->body);
        r = pd_buf_put(&op->body, json.p, json.len);
    }
    return r;
}

static int
write_wrapper(pd_db_t *tx, void *arg)
{
    pd_op_t *op = arg;
    bool claimed_now = false;
    int r;
    if (op->has_idem && !op->claimed) {
        r = pd_idem_claim(tx, &op->r->arena, op->auth->merchant_id, op->auth->livemode, op->idem_key, op->fingerprint,
                          op->now, op->now - op->api->cfg->idempotency_ttl_ms / 1000, &op->existing);
        if (r == PD_ERR_EXISTS) {
            op->replay = true;
            return PD_ERR_EXISTS; /* nothing was written; the continuation replays or refuses */
        }
        if (r != 0)
            return r;
        op->claimed = claimed_now = true;
    }
    op->status = 0;
    op->idem_redacted = NULL;
    pd_emit_set_version(op->r->stripe_version); /* the events this write makes, phase 2's included */
    r = op->write(tx, op);
    pd_emit_set_version(NULL);
    if (r == 0 && op->status == 200 && op->idem_redacted == NULL && pd_expand_wanted(op->r))
        r = expand_body(tx, op); /* before the key stores it: a replay is the expanded response */
    if (r == 0 && op->status != 0 && op->has_idem)
        r = op->idem_redacted != NULL
                ? pd_idem_complete_redacted(tx, op->auth->merchant_id, op->auth->livemode, op->idem_key, op->status,
                                            pd_buf_view(&op->idem_body), op->idem_redacted)
                : pd_idem_complete(tx, op->auth->merchant_id, op->auth->livemode, op->idem_key, op->status,
                                   pd_buf_view(&op->body));
    if (r != 0 && claimed_now)
        op->claimed = false; /* the savepoint rolls the claim back too */
    return r;
}

static void
on_loop(pd_task_t *t)
{
    pd_op_t *op = (pd_op_t *)t;
    op->next(op);
}

static void
on_durable(void *arg, int rc)
{
    pd_op_t *op = arg;
    op->rc = rc;
    if (rc == 0 && op->status != 0)
        pd_api_kick(op->api); /* new events may wait in the outbox */
    pd_loop_post(op->r->loop, &op->task);
}

static void
on_committed(void *arg)
{
    pd_op_t *op = arg;
    if (op->status == 0)
        op->committed(op);
}

void
pd_op_commit(pd_op_t *op, pd_op_write_fn write, pd_op_next_fn next)
{
    pd_op_commit_early(op, write, NULL, next);
}

void
pd_op_commit_early(pd_op_t *op, pd_op_write_fn write, pd_op_next_fn committed, pd_op_next_fn next)
{
    op->write = write;
    op->committed = committed;
    op->next = next != NULL ? next : pd_op_finish;
    op->task.fn = on_loop;
    if (op->r->holds == 0)
        pd_req_hold(op->r);
    int r = pd_store_submit_ex(op->api->store, write_wrapper, committed != NULL ? on_committed : NULL, on_durable, op);
    if (r != 0) {
        op->rc = r;
        pd_op_finish(op);
    }
}

static void
replay(pd_op_t *op)
{
    pd_req_t *r = op->r;
    pd_idem_rec_t *e = &op->existing;
    if (strcmp(e->fingerprint, op->fingerprint) != 0) {
        pd_resp_error(r, 400, "idempotency_error", "idempotency_key_reused",
                      "Keys for idempotent requests can only be used with the same parameters they were first used "
                      "with. Try using a key other than the one used in the original request.",
                      NULL);
        return;
    }
    if (!e->complete || e->body == NULL) {
        pd_resp_header(r, "Stripe-Should-Retry", "true"); /* the SDKs retry it once the other is done */
        pd_resp_error(r, 409, "idempotency_error", "idempotency_key_in_use",
                      "There is currently another in-progress request using this Idempotent Key (that probably means "
                      "you submitted twice, and the other request is still going through). Please try again later.",
                      NULL);
        return;
    }
    if (e->redacted != NULL) {
        pd_redact_replay(op); /* the stored body lacks a secret: re-derived through the vault */
        return;
    }
    pd_resp_header(r, "Idempotent-Replayed", "true");
    r->status = e->status;
    pd_pii_respond(r, e->status, pd_view_cstr(e->body)); /* expanded customers opened */
}

void
pd_op_finish(pd_op_t *op)
{
    pd_req_t *r = op->r;
    if (op->replay && op->rc == PD_ERR_EXISTS) {
        replay(op);
    } else if (op->rc == 0 && op->status != 0) {
        if (op->has_idem)
            pd_resp_header(r, "Idempotent-Replayed", "false");
        pd_pii_respond(r, op->status, pd_buf_view(&op->body)); /* parsed before the body is freed */
    } else if (op->rc == PD_ERR_CONFLICT || op->rc == PD_ERR_BUSY) {
        /* nothing of the request was written, its idempotency claim included: the
         * same key retried later runs anew */
        pd_resp_header(r, "Stripe-Should-Retry", "true");
        pd_resp_error(r, 409, "invalid_request_error", "lock_timeout",
                      op->rc == PD_ERR_BUSY
                          ? "Another capture, cancellation or refund of this payment is in progress. Retry the "
                            "request once it has finished."
                          : "This object was modified by a concurrent request. Retry the request.",
                      NULL);
    } else if (op->rc == PD_ERR_AGAIN) {
        pd_resp_header(r, "Retry-After", "1");
        pd_resp_error(r, 503, "api_error", "server_busy", "The server is busy. Retry the request shortly.", NULL);
    } else if (op->rc == PD_ERR_INDOUBT) {
        /* the database connection dropped during the commit (a failover): whether the
         * request took effect is not known, so it is reported neither failed nor done.
         * Its idempotency record committed with its effects or not at all: a retry with
         * the same key replays it or runs it anew; the recovery worker finishes a payment
         * left between its phases */
        pd_log_error("operation outcome unknown: the store's commit was interrupted", PD_LS("request_id", r->id));
        /* this request ends here and nothing else continues it: if its write did commit,
         * the charge it left requested need not wait recovery_after_ms for recovery */
        if (op->step != NULL && op->step->charge_id != NULL)
            pd_recovery_expedite(op->api->recovery, op->step->charge_id);
        pd_resp_header(r, "Retry-After", "1");
        pd_resp_header(r, "Stripe-Should-Retry", "true");
        pd_resp_error(r, 503, "api_error", "storage_outcome_unknown",
                      "The database connection was lost while this request was being recorded, so whether it took "
                      "effect is not known yet. Retry the request with the same Idempotency-Key.",
                      NULL);
    } else if (op->rc == -ENOSPC || op->rc == PD_ERR_UNAVAILABLE ||
               (op->rc != 0 && !pd_store_writable(op->api->store, NULL, 0))) {
        /* the write did not take (a full disk, no writable database, e.g. during a
         * failover; after a failed sync: it may not be durable); /readyz says why */
        pd_log_error("operation failed: the store refuses writes", PD_LS("request_id", r->id), PD_LERR(op->rc));
        pd_resp_header(r, "Retry-After", "1");
        pd_resp_error(r, 503, "api_error", "storage_unavailable",
                      "The server cannot record requests right now. Retry the request later.", NULL);
    } else {
        pd_log_error("operation failed", PD_LS("request_id", r->id), PD_LERR(op->rc));
        pd_resp_error(r, 500, "api_error", NULL, "An error occurred while processing the request.", NULL);
    }
    pd_buf_free(&op->body);
    pd_buf_free(&op->idem_body);
}
