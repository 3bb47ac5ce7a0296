/*
 * Disputes: GET /v1/disputes/:id, GET /v1/disputes (charge or payment_intent),
 * POST /v1/disputes/:id (evidence[...], metadata, submit) and /close.
 *
 * Disputes come from the processor (src/pay/dispute.c imports them). An answer goes to
 * the processor first, which is the record of the dispute, then into payd's copy: a
 * crash in between leaves payd behind the processor, and the import catches up (the
 * processor's change arrives as a status payd does not have yet). The money moves when
 * the network decides, in the import, never here.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "api/internal.h"
#include "payd/log.h"

typedef struct {
    pd_task_t task;
    pd_op_t *op;
    char id[PD_ID_MAX];
    pd_dispute_rec_t d;
    bool close, submit;
    char *evidence; /* the merged evidence (JSON text, in the request's arena) */
    pd_proc_result_t res;
} dp_ctx_t;

static void
render_dispute_cb(pd_jw_t *w, const void *rec)
{
    pd_render_dispute(w, rec);
}

static int
get_dispute(pd_db_t *db, pd_req_t *r, const char *id, pd_view_t *json)
{
    const pd_auth_t *au = r->auth;
    pd_dispute_rec_t d;
    int rc = pd_dispute_get(db, &r->arena, au->merchant_id, au->livemode, id, &d);
    if (rc == 0)
        *json = pd_render_to_arena(&r->arena, render_dispute_cb, &d);
    return rc;
}

void
pd_h_dispute_get(pd_req_t *r)
{
    pd_get_respond(r, "dispute", get_dispute);
}

static int
each_dispute(void *rec, void *arg)
{
    pd_render_dispute(arg, rec);
    return 0;
}

void
pd_h_dispute_list(pd_req_t *r)
{
    bool by_pi = pd_param_str(r, "payment_intent") != NULL;
    if (by_pi && pd_param_str(r, "charge") != NULL) {
        pd_resp_invalid(r, "parameter_invalid", "payment_intent",
                        "You may only filter disputes by one of charge and payment_intent.");
        return;
    }
    pd_list_respond(r, "/v1/disputes", "dispute", by_pi ? "payment_intent" : "charge",
                    by_pi ? pd_dispute_list_by_pi : pd_dispute_list, each_dispute);
}

/* --- answers --- */

static int
write_answer(pd_db_t *tx, pd_op_t *op)
{
    dp_ctx_t *c = op->ctx;
    pd_dispute_rec_t *d = &c->d;
    if (c->close) {
        snprintf(d->status, sizeof(d->status), "lost");
    } else {
        d->evidence = c->evidence;
        if (c->submit) {
            snprintf(d->status, sizeof(d->status), "under_review");
            d->evidence_submitted = true;
        }
    }
    const char *md = pd_param_metadata(op->r, d->metadata);
    if (md == NULL)
        return PD_ERR_TOOBIG;
    if (md[0] != '\0')
        d->metadata = md;
    d->updated = op->now;
    d->version++;
    int r = pd_dispute_update(tx, d); /* version-checked: the import may have moved it */
    pd_jw_t w;
    pd_buf_t ev;
    if (r != 0)
        return r;
    pd_buf_init(&ev, 16 * 1024);
    pd_jw_init(&w, &ev);
    pd_render_dispute(&w, d);
    if ((r = pd_jw_finish(&w)) == 0)
        r = pd_emit(tx, op, c->close ? "charge.dispute.closed" : "charge.dispute.updated", pd_buf_view(&ev));
    pd_buf_free(&ev);
    if (r != 0)
        return r;
    pd_jw_init(&w, &op->body);
    pd_render_dispute(&w, d);
    return pd_op_respond_json(op, 200, &w);
}

/* on the loop: the processor's answer */
static void
after_processor(pd_task_t *t)
{
    dp_ctx_t *c = (dp_ctx_t *)t;
    pd_req_t *r = c->op->r;
    switch (c->res.outcome) {
    case PD_PROC_APPROVED:
        pd_op_commit(c->op, write_answer, NULL);
        return;
    case PD_PROC_DECLINED:
        pd_resp_invalid(r, "dispute_already_closed", NULL, "This dispute no longer takes %s: %s",
                        c->close ? "an acceptance" : "evidence", c->res.message);
        return;
    case PD_PROC_NOT_FOUND:
        pd_log_error("disputes: the processor does not know a dispute payd has", PD_LS("dispute", c->d.id),
                     PD_LS("processor_ref", c->d.processor_ref));
        pd_resp_error(r, 500, "api_error", NULL, "The processor does not know this dispute.", NULL);
        return;
    default:
        pd_resp_error(r, 502, "api_error", "processing_error",
                      "The payment processor did not answer. Retry the request with the same Idempotency-Key.",
                      NULL);
        return;
    }
}

static void
on_processor(void *arg, const pd_proc_result_t *res)
{
    dp_ctx_t *c = arg;
    c->res = *res;
    c->task.fn = after_processor;
    pd_loop_post(c->op->r->loop, &c->task);
}

/* the dispute's evidence with the request's evidence[...] over it; NULL after answering */
static char *
merged_evidence(pd_req_t *r, const char *stored)
{
    json_error_t e;
    json_t *o = json_loads(stored != NULL ? stored : "{}", 0, &e);
    if (o == NULL)
        o = json_object();
    for (size_t i = 0; i < r->params.n; i++) {
        pd_view_t k = r->params.v[i].key;
        if (!pd_view_starts_with(k, "evidence[") || k.len < 11 || k.p[k.len - 1] != ']')
            continue;
        char name[64];
        if (k.len - 10 >= sizeof(name)) {
            json_decref(o);
            pd_resp_invalid(r, "parameter_unknown", "evidence", "Unknown evidence field.");
            return NULL;
        }
        memcpy(name, k.p + 9, k.len - 10);
        name[k.len - 10] = '\0';
        json_object_set_new(o, name, json_stringn((const char *)r->params.v[i].value.p, r->params.v[i].value.len));
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    char *out = text != NULL ? pd_arena_strndup(&r->arena, text, strlen(text)) : NULL;
    free(text);
    if (out == NULL)
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
    return out;
}

static int
load_dispute(pd_db_t *db, pd_op_t *op)
{
    dp_ctx_t *c = op->ctx;
    return pd_dispute_get(db, &op->r->arena, op->auth->merchant_id, op->auth->livemode, c->id, &c->d);
}

static void
dispute_loaded(pd_op_t *op)
{
    dp_ctx_t *c = op->ctx;
    pd_req_t *r = op->r;
    pd_api_t *api = op->api;
    if (op->rc == PD_ERR_NOTFOUND) {
        pd_resp_missing(r, "dispute", "id", c->id);
        return;
    }
    if (strcmp(c->d.status, "needs_response") != 0 && strcmp(c->d.status, "warning_needs_response") != 0) {
        pd_resp_invalid(r, "dispute_already_closed", NULL,
                        "This dispute is %s: it no longer takes evidence or an acceptance.", c->d.status);
        return;
    }
    if (!c->close && (c->evidence = merged_evidence(r, c->d.evidence)) == NULL)
        return;
    if (api->proc->dispute_respond == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "The processor takes no answers to disputes.", NULL);
        return;
    }
    if (r->holds == 0)
        pd_req_hold(r); /* until the processor answers */
    api->proc->dispute_respond(api->proc, c->d.processor_ref, c->close ? NULL : c->evidence, c->submit, c->close,
                               on_processor, c);
}

static void
answer(pd_req_t *r, bool close)
{
    dp_ctx_t *c = pd_arena_calloc(&r->arena, sizeof(*c));
    if (c == NULL || (c->op = pd_op_new(r, c)) == NULL) {
        if (c == NULL)
            pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    if (pd_view_to_cstr(pd_req_param(r, "id"), c->id, sizeof(c->id)) != 0) {
        pd_resp_missing(r, "dispute", "id", "");
        return;
    }
    c->close = close;
    c->submit = !close && pd_param_bool(r, "submit", true); /* Stripe submits unless told not to */
    pd_op_load(c->op, load_dispute, dispute_loaded);
}

void
pd_h_dispute_update(pd_req_t *r)
{
    answer(r, false);
}

void
pd_h_dispute_close(pd_req_t *r)
{
    answer(r, true);
}
