/*
 * SetupIntents in the domain: their Stripe shape, and phase 2 of their confirmation
 * (the verification's outcome recorded), which the confirming request and the recovery
 * worker share. The verification is a zero-amount authorization at the processor whose
 * reference (pd_proc_auth_t.charge_id) is pd_seti_proc_ref's: nothing moves, so there are
 * no postings nor balance transactions.
 */
#include <stdio.h>
#include <string.h>

#include "payd/payments.h"

void
pd_seti_proc_ref(const pd_seti_rec_t *s, char *out, size_t cap)
{
    snprintf(out, cap, "%s-%lld", s->id, (long long)s->version);
}

static void
kopt(pd_jw_t *w, const char *k, const char *v)
{
    if (v != NULL && v[0] != '\0')
        pd_jw_kstr(w, k, v);
    else
        pd_jw_knull(w, k);
}

static void
kraw(pd_jw_t *w, const char *k, const char *json, const char *dflt)
{
    pd_jw_key(w, k);
    if (json != NULL && json[0] != '\0')
        pd_jw_raw(w, pd_view_cstr(json));
    else if (dflt != NULL)
        pd_jw_raw(w, pd_view_cstr(dflt));
    else
        pd_jw_null(w);
}

void
pd_render_seti(pd_jw_t *w, const pd_seti_rec_t *s)
{
    char secret[PD_ID_MAX + 40];
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "id", s->id);
    pd_jw_kstr(w, "object", "setup_intent");
    pd_jw_knull(w, "application");
    kopt(w, "cancellation_reason", strcmp(s->status, "canceled") == 0 ? s->cancellation_reason : "");
    pd_render_client_secret(s->id, secret, sizeof(secret));
    pd_jw_kstr(w, "client_secret", secret);
    pd_jw_kint(w, "created", s->created);
    kopt(w, "customer", s->customer);
    kopt(w, "description", s->description);
    pd_jw_knull(w, "flow_directions");
    kraw(w, "last_setup_error", s->last_setup_error, NULL);
    pd_jw_knull(w, "latest_attempt"); /* no SetupAttempt objects (yet) */
    pd_jw_kbool(w, "livemode", s->livemode);
    pd_jw_knull(w, "mandate");
    kraw(w, "metadata", s->metadata, "{}");
    pd_jw_knull(w, "next_action");
    pd_jw_knull(w, "on_behalf_of");
    kopt(w, "payment_method", s->payment_method);
    pd_jw_key(w, "payment_method_types");
    pd_jw_arr_begin(w);
    pd_jw_str(w, "card");
    pd_jw_arr_end(w);
    pd_jw_knull(w, "single_use_mandate");
    pd_jw_kstr(w, "status", s->status);
    pd_jw_kstr(w, "usage", s->usage);
    pd_jw_obj_end(w);
}

static void
render_seti_cb(pd_jw_t *w, const void *rec)
{
    pd_render_seti(w, rec);
}

static void
render_pm_cb(pd_jw_t *w, const void *rec)
{
    pd_render_pm(w, rec);
}

/* last_setup_error: Stripe's error object with the payment method that failed */
static const char *
setup_error(pd_arena_t *a, const pd_proc_result_t *res, pd_view_t pm_json)
{
    pd_buf_t b;
    pd_jw_t w;
    pd_buf_init(&b, PD_OBJECT_MAX);
    pd_jw_init(&w, &b);
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "code", res->error_code[0] ? res->error_code : "card_declined");
    kopt(&w, "decline_code", res->decline_code);
    pd_jw_kstr(&w, "message", res->message[0] ? res->message : "Your card was declined.");
    pd_jw_key(&w, "payment_method");
    if (pm_json.len > 0)
        pd_jw_raw(&w, pm_json);
    else
        pd_jw_null(&w);
    pd_jw_kstr(&w, "type", "card_error");
    pd_jw_obj_end(&w);
    const char *out = pd_jw_finish(&w) == 0 ? pd_arena_strndup(a, (const char *)b.p, b.len) : NULL;
    pd_buf_free(&b);
    return out;
}

int
pd_seti_apply_outcome(pd_db_t *tx, pd_arena_t *a, const char *merchant, bool livemode, const char *id,
                      const pd_proc_result_t *res, int64_t now, const char *request_id, int *status_out,
                      pd_buf_t *body_out)
{
    pd_seti_rec_t s;
    pd_pm_rec_t pm;
    int r;
    if ((r = pd_seti_get(tx, a, merchant, livemode, id, &s)) != 0)
        return r;
    if (strcmp(s.status, "processing") != 0)
        return PD_ERR_STATE; /* resolved already (by the request or by recovery) */
    if ((r = pd_pm_get(tx, a, merchant, livemode, s.payment_method, &pm)) != 0)
        return r;
    const char *idem = s.idempotency_key;
    bool approved = res->outcome == PD_PROC_APPROVED;
    s.idempotency_key = NULL;
    s.version++;
    if (approved) {
        snprintf(s.status, sizeof(s.status), "succeeded");
        s.last_setup_error = NULL;
    } else {
        pd_view_t pm_json = pd_render_to_arena(a, render_pm_cb, &pm);
        snprintf(s.status, sizeof(s.status), "requires_payment_method");
        if ((s.last_setup_error = setup_error(a, res, pm_json)) == NULL)
            return PD_ERR_NOMEM;
        s.payment_method[0] = '\0';
    }
    if ((r = pd_seti_update(tx, &s)) != 0)
        return r;
    if (approved && s.customer[0] != '\0') {
        /* a method attached meanwhile (to anyone) is left as it is, as a payment's saving does */
        r = pd_pm_attach(tx, pm.id, s.customer);
        if (r == 0) {
            snprintf(pm.customer, sizeof(pm.customer), "%s", s.customer);
            pd_view_t pm_json = pd_render_to_arena(a, render_pm_cb, &pm);
            if (pm_json.p == NULL)
                return PD_ERR_NOMEM;
            r = pd_emit_raw(tx, merchant, livemode, "payment_method.attached", pm_json, request_id, idem, now);
        } else if (r == PD_ERR_CONFLICT) {
            r = 0;
        }
        if (r != 0)
            return r;
    }
    pd_view_t js = pd_render_to_arena(a, render_seti_cb, &s);
    if (js.p == NULL)
        return PD_ERR_NOMEM;
    if ((r = pd_emit_raw(tx, merchant, livemode, approved ? "setup_intent.succeeded" : "setup_intent.setup_failed", js,
                         request_id, idem, now)) != 0)
        return r;
    pd_buf_reset(body_out);
    if (approved) {
        *status_out = 200;
        return pd_buf_put(body_out, js.p, js.len);
    }
    /* Stripe's 402: the error with decline_code and the intent */
    size_t cap = js.len + 128;
    char *members = pd_arena_alloc(a, cap);
    if (members == NULL)
        return PD_ERR_NOMEM;
    snprintf(members, cap, "\"decline_code\":\"%s\",\"setup_intent\":%.*s",
             res->decline_code[0] ? res->decline_code : "generic_decline", (int)js.len, (const char *)js.p);
    *status_out = 402;
    return pd_error_json(body_out, "card_error", res->error_code[0] ? res->error_code : "card_declined", NULL, members,
                         request_id, res->message[0] ? res->message : "Your card was declined.");
}
