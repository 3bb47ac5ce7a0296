/*
 * expand[]: Stripe's expansion of object ids into the objects, on every retrieve,
 * create, update and list of the objects that have expandable fields.
 *
 * A path is the fields to follow, dot-separated, at most PD_EXPAND_DEPTH of them, each
 * an expandable field of the object it is on (the table below); a list's paths start
 * with "data.". They are checked before the request does anything (pd_expand_check, an
 * unknown one is Stripe's 400), and applied to the rendered JSON wherever a database
 * connection is at hand: on the reader thread for a retrieve or a list, in the writer's
 * transaction for a write (so the response the idempotency key replays is the expanded
 * one, as Stripe's is). An id that no longer resolves stays an id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/internal.h"
#include "api/pii.h"

#define PD_EXPAND_DEPTH 4
#define PATH_MAX_LEN 200

/* T_INVSET is a customer's invoice_settings: an object of its own, not an id, which a path
 * goes through to its default_payment_method */
typedef enum { T_NONE, T_PI, T_CHARGE, T_PM, T_REFUND, T_DISPUTE, T_CUSTOMER, T_INVSET, T_SETI } otype_t;

static const struct {
    otype_t on;
    const char *field;
    otype_t to;
} expandable[] = {
    {T_PI, "latest_charge", T_CHARGE},     {T_PI, "payment_method", T_PM},
    {T_CHARGE, "payment_intent", T_PI},    {T_CHARGE, "payment_method", T_PM},
    {T_REFUND, "charge", T_CHARGE},        {T_REFUND, "payment_intent", T_PI},
    {T_DISPUTE, "charge", T_CHARGE},       {T_DISPUTE, "payment_intent", T_PI},
    {T_PI, "customer", T_CUSTOMER},        {T_PM, "customer", T_CUSTOMER},
    {T_CHARGE, "customer", T_CUSTOMER},    {T_CUSTOMER, "invoice_settings", T_INVSET},
    {T_INVSET, "default_payment_method", T_PM},
    {T_SETI, "payment_method", T_PM},      {T_SETI, "customer", T_CUSTOMER},
};

static otype_t
field_type(otype_t on, const char *field, size_t len)
{
    for (size_t i = 0; i < sizeof(expandable) / sizeof(expandable[0]); i++)
        if (expandable[i].on == on && strlen(expandable[i].field) == len && memcmp(expandable[i].field, field, len) == 0)
            return expandable[i].to;
    return T_NONE;
}

/* the object a route's resource answers with */
static otype_t
resource_type(const char *resource)
{
    static const struct {
        const char *resource;
        otype_t t;
    } roots[] = {{"payment_intents", T_PI}, {"charges", T_CHARGE}, {"payment_methods", T_PM},
                 {"refunds", T_REFUND},     {"disputes", T_DISPUTE}, {"customers", T_CUSTOMER},
                 {"setup_intents", T_SETI}};
    for (size_t i = 0; resource != NULL && i < sizeof(roots) / sizeof(roots[0]); i++)
        if (strcmp(roots[i].resource, resource) == 0)
            return roots[i].t;
    return T_NONE;
}

/* the route's object, and whether it answers a list */
static otype_t
root_type(const pd_req_t *r, bool *list)
{
    static const char pms[] = "/payment_methods";
    const char *pat = r->route->pattern;
    size_t n = strlen(pat);
    *list = r->route->method == PD_M_GET && strchr(pat, ':') == NULL;
    if (r->route->method == PD_M_GET && n > sizeof(pms) && strcmp(pat + n - (sizeof(pms) - 1), pms) == 0) {
        *list = true; /* GET /v1/customers/:id/payment_methods: a list of payment methods */
        return T_PM;
    }
    return resource_type(r->route->resource);
}

static bool
is_expand(pd_view_t k)
{
    return k.len >= 6 && memcmp(k.p, "expand", 6) == 0 && (k.len == 6 || k.p[6] == '[');
}

bool
pd_expand_wanted(const pd_req_t *r)
{
    for (size_t i = 0; i < r->params.n; i++)
        if (is_expand(r->params.v[i].key))
            return true;
    return false;
}

/* whether path names expandable fields from `t` on (a list's with "data." first) */
static bool
path_valid(otype_t t, bool list, pd_view_t path)
{
    const char *p = (const char *)path.p, *end = p + path.len;
    if (path.len == 0 || path.len > PATH_MAX_LEN)
        return false;
    if (list) {
        if (path.len < 6 || memcmp(p, "data.", 5) != 0)
            return false;
        p += 5;
    }
    for (int depth = 0; p < end; depth++) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        size_t n = dot != NULL ? (size_t)(dot - p) : (size_t)(end - p);
        if (depth == PD_EXPAND_DEPTH || n == 0 || (t = field_type(t, p, n)) == T_NONE)
            return false;
        p += n + (dot != NULL);
        if (dot != NULL && p == end)
            return false; /* a trailing dot */
    }
    return t != T_INVSET; /* an object, not an id: only what is inside it expands */
}

bool
pd_expand_path_ok(const char *resource, bool list, pd_view_t path)
{
    return path_valid(resource_type(resource), list, path);
}

int
pd_expand_check(pd_req_t *r)
{
    bool list;
    otype_t t = root_type(r, &list);
    for (size_t i = 0; i < r->params.n; i++) {
        if (!is_expand(r->params.v[i].key) || path_valid(t, list, r->params.v[i].value))
            continue;
        pd_view_t v = r->params.v[i].value;
        char msg[300];
        snprintf(msg, sizeof(msg), "This property cannot be expanded (%.*s).", (int)(v.len > 200 ? 200 : v.len),
                 (const char *)v.p);
        pd_resp_error(r, 400, "invalid_request_error", "parameter_invalid", msg, "expand");
        return 1;
    }
    return 0;
}

/* --- applying --- */

typedef struct {
    pd_db_t *db;
    pd_arena_t *a;
    const pd_auth_t *au;
} ctx_t;

/* the object of type t with this id, rendered and parsed; NULL when there is none */
static json_t *
load(ctx_t *c, otype_t t, const char *id, int *rc)
{
    pd_buf_t b;
    pd_jw_t w;
    pd_pi_rec_t pi;
    pd_charge_rec_t ch;
    pd_pm_rec_t pm;
    pd_customer_rec_t cus;
    int r = PD_ERR_NOTFOUND;
    pd_buf_init(&b, RESP_MAX);
    pd_jw_init(&w, &b);
    switch (t) {
    case T_PI:
        if ((r = pd_pi_get(c->db, c->a, c->au->merchant_id, c->au->livemode, id, &pi)) == 0)
            pd_render_pi(&w, &pi);
        break;
    case T_CHARGE:
        if ((r = pd_charge_get(c->db, c->a, c->au->merchant_id, c->au->livemode, id, &ch)) == 0) {
            int pr = pd_pm_get(c->db, c->a, c->au->merchant_id, c->au->livemode, ch.payment_method, &pm);
            if (pr != 0 && pr != PD_ERR_NOTFOUND)
                r = pr;
            else
                pd_render_charge(&w, &ch, pr == 0 ? &pm : NULL);
        }
        break;
    case T_PM:
        /* the cardholder name is decrypted by the vault, which an expansion does not ask:
         * billing_details.name reads null here (GET /v1/payment_methods/:id has it) */
        if ((r = pd_pm_get(c->db, c->a, c->au->merchant_id, c->au->livemode, id, &pm)) == 0)
            pd_render_pm(&w, &pm);
        break;
    case T_CUSTOMER:
        /* the personal data is sealed under alias/pii: the expansion carries the envelope
         * (PD_PII_MARK), and the response is opened on the loop before it is sent
         * (pd_pii_respond); a stored response keeps the envelope, never the clear data */
        if ((r = pd_customer_get(c->db, c->a, c->au->merchant_id, c->au->livemode, id, &cus)) == 0)
            pd_pii_render_sealed(&w, &cus);
        break;
    default:
        break;
    }
    json_t *o = NULL;
    if (r == 0 && (r = pd_jw_finish(&w)) == 0) {
        json_error_t e;
        if ((o = json_loadb((const char *)b.p, b.len, 0, &e)) == NULL)
            r = PD_ERR_NOMEM;
    }
    pd_buf_free(&b);
    *rc = r == PD_ERR_NOTFOUND ? 0 : r;
    return o;
}

/* expands the path's first field on obj (of type t), then the rest inside it */
static int
expand_on(ctx_t *c, json_t *obj, otype_t t, const char *p, const char *end)
{
    const char *dot = memchr(p, '.', (size_t)(end - p));
    size_t n = dot != NULL ? (size_t)(dot - p) : (size_t)(end - p);
    char field[64];
    otype_t to = field_type(t, p, n);
    if (to == T_NONE || n >= sizeof(field) || !json_is_object(obj))
        return 0;
    memcpy(field, p, n);
    field[n] = '\0';
    json_t *v = json_object_get(obj, field);
    int r = 0;
    if (json_is_string(v)) {
        json_t *o = load(c, to, json_string_value(v), &r);
        if (o != NULL) {
            json_object_set_new(obj, field, o);
            v = o;
        }
    }
    if (r == 0 && dot != NULL && json_is_object(v))
        r = expand_on(c, v, to, dot + 1, end);
    return r;
}

int
pd_expand(pd_db_t *db, pd_req_t *r, pd_arena_t *a, pd_view_t *json)
{
    bool list;
    otype_t t = root_type(r, &list);
    json_error_t e;
    json_t *root = json_loadb((const char *)json->p, json->len, 0, &e);
    if (root == NULL)
        return PD_ERR_INVALID;
    ctx_t c = {db, a, r->auth};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < r->params.n; i++) {
        if (!is_expand(r->params.v[i].key))
            continue;
        pd_view_t v = r->params.v[i].value;
        const char *p = (const char *)v.p, *end = p + v.len;
        if (!list) {
            rc = expand_on(&c, root, t, p, end);
            continue;
        }
        json_t *data = json_object_get(root, "data"), *item;
        size_t k;
        json_array_foreach(data, k, item)
        {
            if ((rc = expand_on(&c, item, t, p + 5, end)) != 0)
                break;
        }
    }
    char *text = rc == 0 ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (rc != 0)
        return rc;
    if (text == NULL)
        return PD_ERR_NOMEM;
    char *copy = pd_arena_strndup(a, text, strlen(text));
    free(text);
    if (copy == NULL)
        return PD_ERR_NOMEM;
    *json = pd_view(copy, strlen(copy));
    return 0;
}
