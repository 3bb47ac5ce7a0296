/* JSON renderings of the API objects, in Stripe's shapes. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "payd/payments.h"
#include "payd/pay.h"
#include "payd/crypto.h"

/* key for client secrets: HMAC(pepper, label), set once at start before any request */
static uint8_t client_secret_key[32];

int
pd_render_set_client_secret_key(const uint8_t *pepper, size_t len)
{
    static const char label[] = "payd payment_intent client_secret v1";
    return pd_hmac_sha256(pepper, len, (const uint8_t *)label, sizeof(label) - 1, client_secret_key);
}

/* "<id>_secret_<24 base62 chars of HMAC(key, id)>": stable for an intent, not derivable from its id */
void
pd_render_client_secret(const char *id, char *out, size_t cap)
{
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    uint8_t mac[32];
    char tail[25];
    if (pd_hmac_sha256(client_secret_key, sizeof(client_secret_key), (const uint8_t *)id, strlen(id), mac) != 0)
        memset(mac, 0, sizeof(mac));
    for (size_t i = 0; i < 24; i++)
        tail[i] = b62[mac[i] % 62];
    tail[24] = '\0';
    snprintf(out, cap, "%s_secret_%s", id, tail);
    OPENSSL_cleanse(mac, sizeof(mac));
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
kraw_or(pd_jw_t *w, const char *k, const char *json, const char *dflt)
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
pd_render_pi(pd_jw_t *w, const pd_pi_rec_t *p)
{
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "id", p->id);
    pd_jw_kstr(w, "object", "payment_intent");
    pd_jw_kint(w, "amount", p->amount);
    pd_jw_kint(w, "amount_capturable", p->amount_capturable);
    pd_jw_kint(w, "amount_received", p->amount_received);
    if (p->canceled_at)
        pd_jw_kint(w, "canceled_at", p->canceled_at);
    else
        pd_jw_knull(w, "canceled_at");
    /* set when a cancellation is requested, shown once it happened */
    kopt(w, "cancellation_reason", p->status == PD_PI_CANCELED ? p->cancellation_reason : "");
    pd_jw_kstr(w, "capture_method", p->capture_method);
    char secret[PD_ID_MAX + 40];
    pd_render_client_secret(p->id, secret, sizeof(secret));
    pd_jw_kstr(w, "client_secret", secret);
    pd_jw_kstr(w, "confirmation_method", "automatic");
    pd_jw_kint(w, "created", p->created);
    pd_jw_kstr(w, "currency", p->currency);
    kopt(w, "customer", p->customer);
    kopt(w, "description", p->description);
    kraw_or(w, "last_payment_error", p->last_payment_error, NULL);
    kopt(w, "latest_charge", p->latest_charge);
    pd_jw_kbool(w, "livemode", p->livemode);
    kraw_or(w, "metadata", p->metadata, "{}");
    pd_jw_knull(w, "next_action");
    kopt(w, "payment_method", p->payment_method);
    pd_jw_key(w, "payment_method_types");
    pd_jw_arr_begin(w);
    pd_jw_str(w, "card");
    pd_jw_arr_end(w);
    kopt(w, "receipt_email", p->receipt_email);
    kopt(w, "setup_future_usage", p->setup_future_usage);
    kopt(w, "statement_descriptor", p->statement_descriptor);
    pd_jw_kstr(w, "status", pd_pi_status_name(p->status));
    pd_jw_obj_end(w);
}

static void
card_details(pd_jw_t *w, const pd_pm_rec_t *pm)
{
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "brand", pm->brand);
    pd_jw_key(w, "checks");
    pd_jw_obj_begin(w);
    pd_jw_knull(w, "address_line1_check");
    pd_jw_knull(w, "address_postal_code_check");
    kopt(w, "cvc_check", pm->cvc_check);
    pd_jw_obj_end(w);
    kopt(w, "country", pm->country);
    pd_jw_kint(w, "exp_month", pm->exp_month);
    pd_jw_kint(w, "exp_year", pm->exp_year);
    pd_jw_kstr(w, "fingerprint", pm->fingerprint);
    pd_jw_kstr(w, "funding", pm->funding);
    pd_jw_kstr(w, "last4", pm->last4);
    pd_jw_obj_end(w);
}

void
pd_render_charge(pd_jw_t *w, const pd_charge_rec_t *c, const pd_pm_rec_t *pm)
{
    bool succeeded = strcmp(c->status, "succeeded") == 0;
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "id", c->id);
    pd_jw_kstr(w, "object", "charge");
    pd_jw_kint(w, "amount", c->amount);
    pd_jw_kint(w, "amount_captured", c->amount_captured);
    pd_jw_kint(w, "amount_refunded", c->amount_refunded);
    pd_jw_kbool(w, "captured", c->captured);
    pd_jw_kint(w, "created", c->created);
    pd_jw_kstr(w, "currency", c->currency);
    kopt(w, "customer", c->customer);
    kopt(w, "description", c->description);
    pd_jw_kbool(w, "disputed", c->disputed != 0);
    kopt(w, "failure_code", c->failure_code);
    kopt(w, "failure_message", c->failure_message);
    pd_jw_kbool(w, "livemode", c->livemode);
    pd_jw_key(w, "metadata");
    pd_jw_raw(w, PD_VIEW_LIT("{}"));
    kraw_or(w, "outcome", c->outcome, NULL);
    pd_jw_kbool(w, "paid", succeeded);
    pd_jw_kstr(w, "payment_intent", c->payment_intent);
    pd_jw_kstr(w, "payment_method", c->payment_method);
    pd_jw_key(w, "payment_method_details");
    if (pm != NULL) {
        pd_jw_obj_begin(w);
        pd_jw_key(w, "card");
        card_details(w, pm);
        pd_jw_kstr(w, "type", "card");
        pd_jw_obj_end(w);
    } else {
        pd_jw_null(w);
    }
    pd_jw_kbool(w, "refunded", c->amount_refunded > 0 && c->amount_refunded == c->amount_captured);
    pd_jw_kstr(w, "status", c->status);
    pd_jw_obj_end(w);
}

void
pd_render_dispute(pd_jw_t *w, const pd_dispute_rec_t *d)
{
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "id", d->id);
    pd_jw_kstr(w, "object", "dispute");
    pd_jw_kint(w, "amount", d->amount);
    pd_jw_key(w, "balance_transactions"); /* see GET /v1/balance_transactions (source: the dispute) */
    pd_jw_raw(w, PD_VIEW_LIT("[]"));
    pd_jw_kstr(w, "charge", d->charge);
    pd_jw_kint(w, "created", d->created);
    pd_jw_kstr(w, "currency", d->currency);
    kraw_or(w, "evidence", d->evidence, "{}");
    pd_jw_key(w, "evidence_details");
    pd_jw_obj_begin(w);
    pd_jw_kint(w, "due_by", d->created + 7 * 86400); /* the network's deadline: a week in test mode */
    pd_jw_kbool(w, "has_evidence", d->evidence != NULL && strcmp(d->evidence, "{}") != 0);
    pd_jw_kbool(w, "past_due", false);
    pd_jw_kint(w, "submission_count", d->evidence_submitted ? 1 : 0);
    pd_jw_obj_end(w);
    pd_jw_kbool(w, "is_charge_refundable", false);
    pd_jw_kbool(w, "livemode", d->livemode);
    kraw_or(w, "metadata", d->metadata, "{}");
    pd_jw_kstr(w, "payment_intent", d->payment_intent);
    pd_jw_kstr(w, "reason", d->reason);
    pd_jw_kstr(w, "status", d->status);
    pd_jw_obj_end(w);
}

void
pd_render_refund(pd_jw_t *w, const pd_refund_rec_t *f)
{
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "id", f->id);
    pd_jw_kstr(w, "object", "refund");
    pd_jw_kint(w, "amount", f->amount);
    pd_jw_kstr(w, "charge", f->charge);
    pd_jw_kint(w, "created", f->created);
    pd_jw_kstr(w, "currency", f->currency);
    kopt(w, "failure_reason", f->failure_reason);
    kraw_or(w, "metadata", f->metadata, "{}");
    pd_jw_kstr(w, "payment_intent", f->payment_intent);
    kopt(w, "reason", f->reason);
    pd_jw_kstr(w, "status", f->status);
    pd_jw_obj_end(w);
}

void
pd_render_pm(pd_jw_t *w, const pd_pm_rec_t *p)
{
    bool token = strcmp(p->object, "token") == 0;
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "id", p->id);
    pd_jw_kstr(w, "object", p->object);
    if (!token) {
        pd_jw_key(w, "billing_details");
        pd_jw_obj_begin(w);
        pd_jw_knull(w, "address");
        pd_jw_knull(w, "email");
        kopt(w, "name", p->billing_name);
        pd_jw_knull(w, "phone");
        pd_jw_obj_end(w);
    }
    pd_jw_key(w, "card");
    card_details(w, p);
    pd_jw_kint(w, "created", p->created);
    if (!token)
        kopt(w, "customer", p->customer);
    pd_jw_kbool(w, "livemode", p->livemode);
    if (token) {
        pd_jw_kstr(w, "type", "card");
        pd_jw_kbool(w, "used", p->used);
    } else {
        kraw_or(w, "metadata", p->metadata, "{}");
        pd_jw_kstr(w, "type", "card");
    }
    pd_jw_obj_end(w);
}

static void
render_address(pd_jw_t *w, const pd_address_t *a)
{
    if (a->line1 == NULL && a->line2 == NULL && a->city == NULL && a->state == NULL && a->postal_code == NULL &&
        a->country == NULL) {
        pd_jw_null(w);
        return;
    }
    pd_jw_obj_begin(w);
    kopt(w, "city", a->city);
    kopt(w, "country", a->country);
    kopt(w, "line1", a->line1);
    kopt(w, "line2", a->line2);
    kopt(w, "postal_code", a->postal_code);
    kopt(w, "state", a->state);
    pd_jw_obj_end(w);
}

void
pd_render_customer(pd_jw_t *w, const pd_customer_rec_t *c)
{
    pd_render_customer_x(w, c, NULL, NULL);
}

void
pd_render_customer_x(pd_jw_t *w, const pd_customer_rec_t *c, const char *extra_key, const char *extra_value)
{
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "id", c->id);
    pd_jw_kstr(w, "object", "customer");
    if (c->deleted) {
        pd_jw_kbool(w, "deleted", true);
        pd_jw_obj_end(w);
        return;
    }
    pd_jw_key(w, "address");
    render_address(w, &c->address);
    pd_jw_kint(w, "balance", 0);
    pd_jw_kint(w, "created", c->created);
    pd_jw_knull(w, "currency");
    pd_jw_knull(w, "default_source");
    pd_jw_kbool(w, "delinquent", false);
    kopt(w, "description", c->description);
    pd_jw_knull(w, "discount");
    kopt(w, "email", c->email);
    pd_jw_key(w, "invoice_settings");
    pd_jw_obj_begin(w);
    pd_jw_knull(w, "custom_fields");
    kopt(w, "default_payment_method", c->default_payment_method);
    pd_jw_knull(w, "footer");
    pd_jw_knull(w, "rendering_options");
    pd_jw_obj_end(w);
    pd_jw_kbool(w, "livemode", c->livemode);
    kraw_or(w, "metadata", c->metadata, "{}");
    kopt(w, "name", c->name);
    kopt(w, "phone", c->phone);
    pd_jw_key(w, "preferred_locales");
    pd_jw_raw(w, PD_VIEW_LIT("[]"));
    pd_jw_knull(w, "shipping");
    pd_jw_kstr(w, "tax_exempt", "none");
    pd_jw_knull(w, "test_clock");
    if (extra_key != NULL && extra_value != NULL)
        pd_jw_kstr(w, extra_key, extra_value);
    pd_jw_obj_end(w);
}

void
pd_render_we(pd_jw_t *w, const pd_we_rec_t *we, const char *secret_once)
{
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "id", we->id);
    pd_jw_kstr(w, "object", "webhook_endpoint");
    pd_jw_kstr(w, "api_version", PD_STRIPE_API_VERSION);
    pd_jw_kint(w, "created", we->created);
    kopt(w, "description", we->description);
    kraw_or(w, "enabled_events", we->enabled_events, "[]");
    pd_jw_kbool(w, "livemode", we->livemode);
    kraw_or(w, "metadata", we->metadata, "{}");
    if (secret_once != NULL)
        pd_jw_kstr(w, "secret", secret_once); /* shown at creation only, like Stripe */
    pd_jw_kstr(w, "status", we->status);
    pd_jw_kstr(w, "url", we->url);
    pd_jw_obj_end(w);
}

void
pd_render_btxn(pd_jw_t *w, const pd_btxn_rec_t *b)
{
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "id", b->id);
    pd_jw_kstr(w, "object", "balance_transaction");
    pd_jw_kint(w, "amount", b->amount);
    pd_jw_kint(w, "available_on", b->available_on);
    pd_jw_kint(w, "created", b->created);
    pd_jw_kstr(w, "currency", b->currency);
    kopt(w, "description", b->description);
    pd_jw_kint(w, "fee", b->fee);
    pd_jw_kint(w, "net", b->net);
    pd_jw_kstr(w, "reporting_category", strcmp(b->type, "refund") == 0 ? "refund" : "charge");
    pd_jw_kstr(w, "source", b->source);
    pd_jw_kstr(w, "status", b->status);
    pd_jw_kstr(w, "type", b->type);
    pd_jw_obj_end(w);
}

pd_view_t
pd_render_to_arena(pd_arena_t *a, void (*fn)(pd_jw_t *, const void *), const void *rec)
{
    pd_buf_t b;
    pd_jw_t w;
    pd_buf_init(&b, PD_OBJECT_MAX);
    pd_jw_init(&w, &b);
    fn(&w, rec);
    pd_view_t out = PD_VIEW_NULL;
    if (pd_jw_finish(&w) == 0) {
        char *copy = pd_arena_strndup(a, b.p, b.len);
        if (copy != NULL)
            out = pd_view(copy, b.len);
    }
    pd_buf_free(&b);
    return out;
}

static void
render_pi_cb(pd_jw_t *w, const void *rec)
{
    pd_render_pi(w, rec);
}

pd_view_t
pd_pi_json(pd_arena_t *a, const pd_pi_rec_t *p)
{
    return pd_render_to_arena(a, render_pi_cb, p);
}
