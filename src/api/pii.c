/*
 * A customer's personal data (email, name, phone, address) out of the clear in payd.db.
 *
 * It is stored as one envelope under the vault's alias/pii (principal api may encrypt
 * and decrypt), bound to the merchant and the customer by the encryption context, and
 * opened only to answer a request: the vault calls are asynchronous, their answers
 * come back to the request's loop (pd_loop_post), so no loop thread waits on the vault.
 *
 * The list's email filter needs no decryption: email_index is HMAC-SHA256 of the
 * normalized email (trimmed, ASCII lower-cased), with the merchant and mode, under a
 * key derived from the vault's pepper (HMAC(pepper, label)), which payd reads from the
 * vault at start as it does for client secrets; without the vault's pepper the index of a
 * guessed address cannot be computed. The pepper is rotated on demand only (that
 * invalidates every API key): after a rotation and a restart, an index written before it
 * no longer matches (no re-indexing yet, docs/payments.md).
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "api/pii.h"
#include "payd/crypto.h"
#include "payd/log.h"

static uint8_t index_key[32];
static bool index_key_set;

int
pd_pii_set_index_key(const uint8_t *pepper, size_t len)
{
    static const char label[] = "payd customer email index v1";
    int r = pd_hmac_sha256(pepper, len, (const uint8_t *)label, sizeof(label) - 1, index_key);
    index_key_set = r == 0;
    return r;
}

int
pd_pii_email_index(const char *merchant, bool livemode, const char *email, char out[65])
{
    char buf[PD_ID_MAX + 4 + PD_PII_EMAIL_MAX + 1];
    size_t len = strlen(email);
    const char *p = email;
    int r = PD_ERR_INVALID;
    if (!index_key_set)
        return PD_ERR_STATE;
    while (len > 0 && isspace((unsigned char)p[0]))
        p++, len--;
    while (len > 0 && isspace((unsigned char)p[len - 1]))
        len--;
    int n = snprintf(buf, sizeof(buf), "%s|%d|", merchant, livemode ? 1 : 0);
    if (n < 0 || (size_t)n + len >= sizeof(buf))
        return PD_ERR_TOOBIG;
    for (size_t i = 0; i < len; i++)
        buf[n + (int)i] = (char)tolower((unsigned char)p[i]);
    uint8_t mac[32];
    if (pd_hmac_sha256(index_key, sizeof(index_key), (const uint8_t *)buf, (size_t)n + len, mac) == 0) {
        pd_hex(mac, sizeof(mac), out);
        r = 0;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    OPENSSL_cleanse(mac, sizeof(mac));
    return r;
}

void
pd_pii_customer_context(char *out, size_t cap, const char *merchant, const char *customer_id)
{
    snprintf(out, cap, "merchant=%s;purpose=customer;id=%s", merchant, customer_id);
}

bool
pd_pii_present(const pd_customer_rec_t *c)
{
    const pd_address_t *a = &c->address;
    return c->email != NULL || c->name != NULL || c->phone != NULL || a->line1 != NULL || a->line2 != NULL ||
           a->city != NULL || a->state != NULL || a->postal_code != NULL || a->country != NULL;
}

static void
set_opt(json_t *o, const char *k, const char *v)
{
    if (v != NULL)
        json_object_set_new(o, k, json_string(v));
}

char *
pd_pii_encode(pd_arena_t *a, const pd_customer_rec_t *c, size_t *len)
{
    json_t *o = json_object(), *ad = json_object();
    char *out = NULL;
    if (o == NULL || ad == NULL) {
        json_decref(o);
        json_decref(ad);
        return NULL;
    }
    set_opt(o, "email", c->email);
    set_opt(o, "name", c->name);
    set_opt(o, "phone", c->phone);
    set_opt(ad, "line1", c->address.line1);
    set_opt(ad, "line2", c->address.line2);
    set_opt(ad, "city", c->address.city);
    set_opt(ad, "state", c->address.state);
    set_opt(ad, "postal_code", c->address.postal_code);
    set_opt(ad, "country", c->address.country);
    if (json_object_size(ad) > 0)
        json_object_set(o, "address", ad);
    json_decref(ad);
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (text != NULL) {
        *len = strlen(text);
        out = pd_arena_strndup(a, text, *len);
        OPENSSL_cleanse(text, *len);
        free(text);
    }
    return out;
}

static const char *
get_opt(pd_arena_t *a, json_t *o, const char *k, int *rc)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL || !json_is_string(v))
        return NULL;
    const char *s = pd_arena_strndup(a, json_string_value(v), json_string_length(v));
    if (s == NULL)
        *rc = PD_ERR_NOMEM;
    return s;
}

int
pd_pii_decode(pd_arena_t *a, const char *text, size_t len, pd_customer_rec_t *c)
{
    json_error_t e;
    json_t *o = json_loadb(text, len, 0, &e);
    int rc = 0;
    if (o == NULL || !json_is_object(o)) {
        json_decref(o);
        return PD_ERR_INVALID;
    }
    c->email = get_opt(a, o, "email", &rc);
    c->name = get_opt(a, o, "name", &rc);
    c->phone = get_opt(a, o, "phone", &rc);
    json_t *ad = json_object_get(o, "address");
    memset(&c->address, 0, sizeof(c->address));
    if (json_is_object(ad)) {
        c->address.line1 = get_opt(a, ad, "line1", &rc);
        c->address.line2 = get_opt(a, ad, "line2", &rc);
        c->address.city = get_opt(a, ad, "city", &rc);
        c->address.state = get_opt(a, ad, "state", &rc);
        c->address.postal_code = get_opt(a, ad, "postal_code", &rc);
        c->address.country = get_opt(a, ad, "country", &rc);
    }
    json_decref(o); /* jansson does not wipe: the values lived in its heap only as long as here */
    return rc;
}

/* --- opening many envelopes at once --- */

typedef struct {
    pd_task_t task;
    pd_req_t *r;
    pd_pii_slot_t *slots;
    size_t n;
    atomic_int pending;
    pd_pii_done_fn done;
    void *arg;
} group_t;

typedef struct {
    group_t *g;
    pd_pii_slot_t *s;
} one_t;

static void
group_done(pd_task_t *t)
{
    group_t *g = (group_t *)t;
    int rc = 0;
    for (size_t i = 0; i < g->n && rc == 0; i++)
        rc = g->slots[i].rc;
    g->done(g->r, g->arg, rc);
    for (size_t i = 0; i < g->n; i++)
        if (g->slots[i].out != NULL)
            OPENSSL_cleanse(g->slots[i].out, PD_PII_MAX + 1);
}

static void
one_finished(group_t *g)
{
    if (atomic_fetch_sub(&g->pending, 1) == 1)
        pd_loop_post(g->r->loop, &g->task);
}

/* on the vault client's thread: only this slot's memory is touched */
static void
on_opened(void *arg, int rc, const pd_vault_reply_t *reply)
{
    one_t *x = arg;
    pd_pii_slot_t *s = x->s;
    s->rc = rc;
    if (rc == 0 && reply->data.len > PD_PII_MAX)
        s->rc = PD_ERR_TOOBIG;
    if (s->rc == 0) {
        memcpy(s->out, reply->data.p, reply->data.len);
        s->out[reply->data.len] = '\0';
        s->len = reply->data.len;
    }
    one_finished(x->g);
}

void
pd_pii_open_many(pd_req_t *r, pd_pii_slot_t *slots, size_t n, pd_pii_done_fn done, void *arg)
{
    group_t *g = pd_arena_calloc(&r->arena, sizeof(*g));
    one_t *xs = n > 0 ? pd_arena_calloc(&r->arena, sizeof(*xs) * n) : NULL;
    if (g == NULL || (n > 0 && xs == NULL)) {
        done(r, arg, PD_ERR_NOMEM);
        return;
    }
    g->task.fn = group_done;
    g->r = r;
    g->slots = slots;
    g->n = n;
    g->done = done;
    g->arg = arg;
    /* one more than the calls: the last decrement, below or on the vault's thread, finishes */
    atomic_init(&g->pending, (int)n + 1);
    if (r->holds == 0)
        pd_req_hold(r);
    pd_vault_client_t *vc = pd_api_of(r)->vault->api;
    for (size_t i = 0; i < n; i++) {
        pd_pii_slot_t *s = &slots[i];
        size_t hl = s->env_hex != NULL ? strlen(s->env_hex) : 0;
        uint8_t *env = hl > 0 && hl % 2 == 0 ? pd_arena_alloc(&r->arena, hl / 2) : NULL;
        s->out = pd_arena_alloc(&r->arena, PD_PII_MAX + 1);
        s->len = 0;
        xs[i].g = g;
        xs[i].s = s;
        if (env == NULL || s->out == NULL || pd_unhex(s->env_hex, hl, env) != 0) {
            s->rc = s->out == NULL ? PD_ERR_NOMEM : PD_ERR_INVALID;
            one_finished(g);
            continue;
        }
        s->rc = 0;
        if (pd_vault_decrypt(vc, pd_view_cstr(s->context), pd_view(env, hl / 2), on_opened, &xs[i]) != 0) {
            s->rc = PD_ERR_CLOSED;
            one_finished(g);
        }
    }
    one_finished(g);
}

/* --- sealing one --- */

typedef struct {
    pd_task_t task;
    pd_req_t *r;
    char *hex;
    size_t cap;
    int rc;
    pd_pii_sealed_fn fn;
    void *arg;
} seal_t;

static void
after_seal(pd_task_t *t)
{
    seal_t *x = (seal_t *)t;
    x->fn(x->r, x->arg, x->rc, x->rc == 0 ? x->hex : NULL);
}

static void
on_sealed(void *arg, int rc, const pd_vault_reply_t *reply)
{
    seal_t *x = arg;
    x->rc = rc;
    if (rc == 0 && reply->data.len * 2 + 1 > x->cap)
        x->rc = PD_ERR_TOOBIG;
    if (x->rc == 0)
        pd_hex(reply->data.p, reply->data.len, x->hex);
    pd_loop_post(x->r->loop, &x->task);
}

int
pd_pii_seal(pd_req_t *r, const char *context, const char *pt, size_t len, pd_pii_sealed_fn fn, void *arg)
{
    if (len > PD_PII_MAX)
        return PD_ERR_TOOBIG;
    seal_t *x = pd_arena_calloc(&r->arena, sizeof(*x));
    /* the envelope: the plaintext, a header, key id, nonce and tag (well under 1 KiB) */
    size_t cap = (len + 1024) * 2 + 1;
    if (x == NULL || (x->hex = pd_arena_alloc(&r->arena, cap)) == NULL)
        return PD_ERR_NOMEM;
    x->task.fn = after_seal;
    x->r = r;
    x->cap = cap;
    x->fn = fn;
    x->arg = arg;
    if (r->holds == 0)
        pd_req_hold(r);
    return pd_vault_encrypt(pd_api_of(r)->vault->api, "alias/pii", pd_view_cstr(context), pd_view(pt, len), on_sealed,
                            x);
}

/* --- expanded customers --- */

int
pd_pii_put_json(json_t *o, const char *text, size_t len)
{
    static const char *const addr[] = {"city", "country", "line1", "line2", "postal_code", "state"};
    static const char *const keys[] = {"email", "name", "phone"};
    json_error_t je;
    json_t *p = json_loadb(text, len, 0, &je);
    if (p == NULL || !json_is_object(p)) {
        json_decref(p);
        return PD_ERR_INVALID;
    }
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(p, keys[i]);
        json_object_set(o, keys[i], v != NULL ? v : json_null());
    }
    json_t *pa = json_object_get(p, "address");
    if (json_is_object(pa)) {
        json_t *a = json_object();
        for (size_t i = 0; i < sizeof(addr) / sizeof(addr[0]); i++) {
            json_t *v = json_object_get(pa, addr[i]);
            json_object_set(a, addr[i], v != NULL ? v : json_null());
        }
        json_object_set_new(o, "address", a);
    }
    json_decref(p);
    return 0;
}

#define EXPANDED_MAX 1024 /* sealed customers in one response (100 items, each with a few expanded) */

typedef struct {
    json_t *root;
    json_t **objs; /* counted first, then collected */
    pd_pii_slot_t *slots;
    char (*ctx)[160];
    size_t n, cap;
    int status;
} expanded_t;

/* the customers with their envelope in PD_PII_MARK (expand.c's, customers.c's): payd
 * renders every object of a response (metadata and evidence hold strings only), so an
 * object with the mark is a customer payd rendered */
static bool
is_sealed_customer(json_t *m)
{
    json_t *obj = json_object_get(m, "object");
    return json_is_string(json_object_get(m, PD_PII_MARK)) && json_is_string(json_object_get(m, "id")) &&
           json_is_string(obj) && strcmp(json_string_value(obj), "customer") == 0;
}

static void
collect_expanded(expanded_t *x, json_t *v)
{
    const char *k;
    json_t *m;
    size_t i;
    if (json_is_array(v)) {
        json_array_foreach(v, i, m) collect_expanded(x, m);
        return;
    }
    if (!json_is_object(v))
        return;
    if (is_sealed_customer(v)) {
        if (x->objs == NULL)
            x->n++; /* counting */
        else if (x->n < x->cap)
            x->objs[x->n++] = v;
        else
            json_object_del(v, PD_PII_MARK); /* past the bound: shown without its personal data */
    }
    json_object_foreach(v, k, m) collect_expanded(x, m);
}

static void
expanded_opened(pd_req_t *r, void *arg, int rc)
{
    expanded_t *x = arg;
    for (size_t i = 0; rc == 0 && i < x->n; i++) {
        rc = pd_pii_put_json(x->objs[i], x->slots[i].out, x->slots[i].len);
        json_object_del(x->objs[i], PD_PII_MARK);
    }
    char *text = rc == 0 ? json_dumps(x->root, JSON_COMPACT) : NULL;
    json_decref(x->root); /* jansson does not wipe: the values lived in its heap only as long as here */
    if (rc != 0 || text == NULL) {
        pd_log_error("cannot open expanded customers' personal data", PD_LERR(rc != 0 ? rc : PD_ERR_NOMEM));
        pd_resp_error(r, 503, "api_error", "vault_unavailable", "The vault is unavailable. Retry later.", NULL);
        return;
    }
    pd_resp_json(r, x->status, pd_view_cstr(text));
    OPENSSL_cleanse(text, strlen(text));
    free(text);
}

void
pd_pii_respond(pd_req_t *r, int status, pd_view_t json)
{
    static const char mark[] = "\"" PD_PII_MARK "\":";
    if (json.len < sizeof(mark) || memmem(json.p, json.len, mark, sizeof(mark) - 1) == NULL) {
        pd_resp_json(r, status, json);
        return;
    }
    expanded_t *x = pd_arena_calloc(&r->arena, sizeof(*x));
    json_error_t e;
    if (x == NULL || (x->root = json_loadb((const char *)json.p, json.len, 0, &e)) == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    x->status = status;
    collect_expanded(x, x->root); /* counts */
    x->cap = x->n < EXPANDED_MAX ? x->n : EXPANDED_MAX;
    x->n = 0;
    if (x->cap > 0 && ((x->objs = pd_arena_calloc(&r->arena, sizeof(*x->objs) * x->cap)) == NULL ||
                       (x->slots = pd_arena_calloc(&r->arena, sizeof(*x->slots) * x->cap)) == NULL ||
                       (x->ctx = pd_arena_calloc(&r->arena, sizeof(*x->ctx) * x->cap)) == NULL)) {
        json_decref(x->root);
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    if (x->cap > 0)
        collect_expanded(x, x->root);
    const pd_auth_t *au = r->auth;
    for (size_t i = 0; i < x->n; i++) {
        pd_pii_customer_context(x->ctx[i], sizeof(x->ctx[i]), au->merchant_id,
                                json_string_value(json_object_get(x->objs[i], "id")));
        x->slots[i].context = x->ctx[i];
        x->slots[i].env_hex = json_string_value(json_object_get(x->objs[i], PD_PII_MARK));
    }
    pd_pii_open_many(r, x->slots, x->n, expanded_opened, x);
}

void
pd_pii_render_sealed(pd_jw_t *w, const pd_customer_rec_t *c)
{
    pd_customer_rec_t shown = *c;
    shown.email = shown.name = shown.phone = NULL;
    memset(&shown.address, 0, sizeof(shown.address));
    pd_render_customer_x(w, &shown, PD_PII_MARK, c->deleted ? NULL : c->pii_enc);
}
