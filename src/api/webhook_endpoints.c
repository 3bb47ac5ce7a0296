/*
 * POST/GET /v1/webhook_endpoints, GET/POST/DELETE /v1/webhook_endpoints/:id.
 * The whsec_ signing secret is generated here, encrypted in the vault under
 * alias/webhooks (context: merchant, endpoint) and shown once.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "api/internal.h"
#include "payd/crypto.h"

typedef struct {
    pd_op_t *op;
    pd_task_t task;
    pd_we_rec_t we;
    char secret[48];
    int vault_rc;
    char *env_hex;
} we_ctx_t;

/*
 * The URL is read by libcurl's own parser (curl_url), the one the delivery engine
 * hands it to, so registration checks the host that will be connected to: a URL
 * that two parsers would read differently (https://8.8.8.8:1@127.0.0.1/) cannot pass
 * one and reach another. User info (user:password@) is refused in every mode.
 * Live mode (and test mode with payments.webhook_live_rules_in_test): https only, and
 * no address the host resolves to may be private, loopback or link-local
 * (pd_addr_is_private, which the engine applies again at connect time).
 */
static bool
url_allowed(pd_req_t *r, const char *url, bool livemode)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *part = NULL;
    struct addrinfo *ai = NULL;
    bool ok = false;
    if (u == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return false;
    }
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK) {
        pd_resp_invalid(r, "url_invalid", "url", "Invalid URL: %s.", curl_url_strerror(uc));
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)) {
        pd_resp_invalid(r, "url_invalid", "url", "Invalid URL: must start with https:// or http://.");
        goto out;
    }
    static const CURLUPart userinfo[] = {CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_OPTIONS};
    for (size_t i = 0; i < sizeof(userinfo) / sizeof(userinfo[0]); i++) {
        if (curl_url_get(u, userinfo[i], &part, 0) == CURLUE_OK) {
            pd_resp_invalid(r, "url_invalid", "url",
                            "Invalid URL: a webhook URL may not contain a user name or password (user:password@).");
            goto out;
        }
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
        pd_resp_invalid(r, "url_invalid", "url", "Invalid URL host.");
        goto out;
    }
    const pd_api_t *api = pd_api_of(r);
    if (!livemode && !api->cfg->webhook_live_rules_in_test) {
        ok = true;
        goto out;
    }
    if (strcmp(scheme, "https") != 0) {
        pd_resp_invalid(r, "url_invalid", "url", "%s webhook endpoints must use https://.",
                        livemode ? "Live mode" : "On this server,");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_ZONEID, &part, 0) == CURLUE_OK) {
        pd_resp_invalid(r, "url_invalid", "url", "Invalid URL: an IPv6 zone id names a link-local address.");
        goto out;
    }
    /* curl keeps an IPv6 literal in its brackets */
    size_t hl = strlen(host);
    char *h = host;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        h = host + 1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    if (getaddrinfo(h, "443", &hints, &ai) != 0) {
        pd_resp_invalid(r, "url_invalid", "url", "The webhook host %.100s does not resolve.", h);
        goto out;
    }
    ok = true;
    for (struct addrinfo *p = ai; p != NULL; p = p->ai_next)
        if (pd_addr_is_private(p->ai_addr))
            ok = false;
    if (!ok)
        pd_resp_invalid(r, "url_invalid", "url",
                        "%s webhook endpoints may not point at private, loopback or link-local addresses.",
                        livemode ? "Live mode" : "On this server,");
out:
    if (ai != NULL)
        freeaddrinfo(ai);
    curl_free(part);
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    return ok;
}

static int
write_we(pd_db_t *tx, pd_op_t *op)
{
    we_ctx_t *c = op->ctx;
    pd_jw_t w;
    int r = pd_we_insert(tx, &c->we);
    if (r != 0)
        return r;
    pd_jw_init(&w, &op->body);
    pd_render_we(&w, &c->we, c->secret);
    if ((r = pd_op_respond_json(op, 200, &w)) != 0 || !op->has_idem)
        return r;
    /* the idempotency record keeps the response without the secret: a replay decrypts
     * it from the endpoint's record */
    char *red = pd_arena_alloc(&op->r->arena, PD_ID_MAX + 16);
    if (red == NULL)
        return PD_ERR_NOMEM;
    snprintf(red, PD_ID_MAX + 16, "we_secret:%s", c->we.id);
    pd_buf_reset(&op->idem_body);
    pd_jw_init(&w, &op->idem_body);
    pd_render_we(&w, &c->we, NULL);
    return pd_op_store_redacted(op, &w, red);
}

static void
after_encrypt(pd_task_t *t)
{
    we_ctx_t *c = (we_ctx_t *)((char *)t - offsetof(we_ctx_t, task));
    if (c->vault_rc != 0) {
        OPENSSL_cleanse(c->secret, sizeof(c->secret));
        pd_resp_error(c->op->r, 503, "api_error", "vault_unavailable", "The vault is unavailable. Retry later.", NULL);
        return;
    }
    c->we.secret = c->env_hex;
    pd_op_commit(c->op, write_we, NULL);
}

static void
on_encrypted(void *arg, int rc, const pd_vault_reply_t *reply)
{
    we_ctx_t *c = arg;
    c->vault_rc = rc;
    if (rc == 0) {
        c->env_hex = pd_arena_alloc(&c->op->r->arena, reply->data.len * 2 + 1);
        if (c->env_hex == NULL)
            c->vault_rc = PD_ERR_NOMEM;
        else
            pd_hex(reply->data.p, reply->data.len, c->env_hex);
    }
    c->task.fn = after_encrypt;
    pd_loop_post(c->op->r->loop, &c->task);
}

/* the request's enabled_events[] as a JSON array text; NULL after answering 500 */
static char *
enabled_events_json(pd_req_t *r)
{
    pd_buf_t ev;
    pd_jw_t w;
    char *out = NULL;
    pd_buf_init(&ev, 4096);
    pd_jw_init(&w, &ev);
    pd_jw_arr_begin(&w);
    for (size_t i = 0; i < r->params.n; i++)
        if (pd_view_starts_with(r->params.v[i].key, "enabled_events["))
            pd_jw_strv(&w, r->params.v[i].value);
    pd_jw_arr_end(&w);
    if (pd_jw_finish(&w) != 0 || (out = pd_arena_strndup(&r->arena, ev.p, ev.len)) == NULL)
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
    pd_buf_free(&ev);
    return out;
}

void
pd_h_we_create(pd_req_t *r)
{
    we_ctx_t *c = pd_arena_calloc(&r->arena, sizeof(*c));
    const pd_auth_t *au = r->auth;
    if (c == NULL || (c->op = pd_op_new(r, c)) == NULL) {
        if (c == NULL)
            pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    pd_we_rec_t *we = &c->we;
    we->url = pd_param_str(r, "url");
    if (!url_allowed(r, we->url, au->livemode))
        return;
    if ((we->enabled_events = enabled_events_json(r)) == NULL)
        return;
    if (pd_id_new("we", we->id, sizeof(we->id)) != 0) {
        pd_resp_error(r, 500, "api_error", NULL, "Cannot create an id.", NULL);
        return;
    }
    snprintf(we->merchant_id, sizeof(we->merchant_id), "%s", au->merchant_id);
    we->livemode = au->livemode;
    snprintf(we->status, sizeof(we->status), "enabled");
    we->description = pd_param_str(r, "description");
    if ((we->metadata = pd_param_metadata(r, NULL)) == NULL) {
        pd_resp_invalid(r, "parameter_invalid", "metadata", "metadata can have at most 50 keys.");
        return;
    }
    we->created = c->op->now;
    we->seq = pd_next_seq();
    memcpy(c->secret, "whsec_", 6);
    if (pd_secret_base62(c->secret + 6, 32) != 0) {
        pd_resp_error(r, 500, "api_error", NULL, "Cannot create a secret.", NULL);
        return;
    }
    c->secret[38] = '\0';
    char ctx[160];
    snprintf(ctx, sizeof(ctx), "merchant=%s;purpose=webhook_endpoint;id=%s", we->merchant_id, we->id);
    pd_req_hold(r);
    if (pd_vault_encrypt(c->op->api->vault->api, "alias/webhooks", pd_view_cstr(ctx), pd_view_cstr(c->secret),
                         on_encrypted, c) != 0) {
        OPENSSL_cleanse(c->secret, sizeof(c->secret));
        pd_resp_error(r, 503, "api_error", "vault_unavailable", "The vault is unavailable. Retry later.", NULL);
    }
}

static void
render_we_cb(pd_jw_t *w, const void *rec)
{
    pd_render_we(w, rec, NULL);
}

static int
get_we(pd_db_t *db, pd_req_t *r, const char *id, pd_view_t *json)
{
    const pd_auth_t *au = r->auth;
    pd_we_rec_t we;
    int rc = pd_we_get(db, &r->arena, au->merchant_id, au->livemode, id, &we);
    if (rc == 0)
        *json = pd_render_to_arena(&r->arena, render_we_cb, &we);
    return rc;
}

void
pd_h_we_get(pd_req_t *r)
{
    pd_get_respond(r, "webhook_endpoint", get_we);
}

static int
each_we(void *rec, void *arg)
{
    pd_render_we(arg, rec, NULL);
    return 0;
}

void
pd_h_we_list(pd_req_t *r)
{
    pd_list_respond(r, "/v1/webhook_endpoints", "webhook_endpoint", NULL, pd_we_list, each_we);
}

typedef struct {
    char id[PD_ID_MAX];
} del_ctx_t;

static int
write_delete(pd_db_t *tx, pd_op_t *op)
{
    del_ctx_t *c = op->ctx;
    int r = pd_we_delete(tx, op->auth->merchant_id, op->auth->livemode, c->id, op->now);
    if (r == PD_ERR_NOTFOUND) {
        char msg[160];
        snprintf(msg, sizeof(msg), "No such webhook_endpoint: '%.80s'", c->id);
        return pd_op_error(op, 404, "invalid_request_error", "resource_missing", "id", NULL, "%s", msg);
    }
    if (r != 0)
        return r;
    pd_jw_t w;
    pd_jw_init(&w, &op->body);
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "id", c->id);
    pd_jw_kstr(&w, "object", "webhook_endpoint");
    pd_jw_kbool(&w, "deleted", true);
    pd_jw_obj_end(&w);
    return pd_op_respond_json(op, 200, &w);
}

void
pd_h_we_delete(pd_req_t *r)
{
    del_ctx_t *c = pd_arena_calloc(&r->arena, sizeof(*c));
    pd_op_t *op;
    if (c == NULL || pd_view_to_cstr(pd_req_param(r, "id"), c->id, sizeof(c->id)) != 0) {
        pd_resp_missing(r, "webhook_endpoint", "id", "");
        return;
    }
    if ((op = pd_op_new(r, c)) == NULL)
        return;
    pd_op_commit(op, write_delete, NULL);
}

/* --- update: url, enabled_events, disabled, description, metadata (Stripe's) --- */

typedef struct {
    char id[PD_ID_MAX];
    const char *url, *description, *enabled_events;
    int disabled; /* -1: not given */
} upd_ctx_t;

static int
write_update(pd_db_t *tx, pd_op_t *op)
{
    upd_ctx_t *c = op->ctx;
    pd_we_rec_t we;
    int r = pd_we_get(tx, &op->r->arena, op->auth->merchant_id, op->auth->livemode, c->id, &we);
    if (r == PD_ERR_NOTFOUND)
        return pd_op_error(op, 404, "invalid_request_error", "resource_missing", "id", NULL,
                           "No such webhook_endpoint: '%.80s'", c->id);
    if (r != 0)
        return r;
    if (c->url != NULL)
        we.url = c->url;
    if (c->enabled_events != NULL)
        we.enabled_events = c->enabled_events;
    if (c->description != NULL)
        we.description = c->description[0] != '\0' ? c->description : NULL;
    /* Stripe's rules: given keys are set, empty values remove a key, metadata="" clears */
    if ((we.metadata = pd_param_metadata(op->r, we.metadata)) == NULL)
        return pd_op_error(op, 400, "invalid_request_error", "parameter_invalid", "metadata", NULL,
                           "metadata can have at most 50 keys.");
    if (c->disabled >= 0)
        snprintf(we.status, sizeof(we.status), "%s", c->disabled ? "disabled" : "enabled");
    if ((r = pd_we_update(tx, &we)) != 0)
        return r;
    pd_jw_t w;
    pd_jw_init(&w, &op->body);
    pd_render_we(&w, &we, NULL);
    return pd_op_respond_json(op, 200, &w);
}

void
pd_h_we_update(pd_req_t *r)
{
    upd_ctx_t *c = pd_arena_calloc(&r->arena, sizeof(*c));
    pd_op_t *op;
    if (c == NULL || pd_view_to_cstr(pd_req_param(r, "id"), c->id, sizeof(c->id)) != 0) {
        pd_resp_missing(r, "webhook_endpoint", "id", "");
        return;
    }
    if ((op = pd_op_new(r, c)) == NULL)
        return;
    c->url = pd_param_str(r, "url");
    if (c->url != NULL && !url_allowed(r, c->url, ((const pd_auth_t *)r->auth)->livemode))
        return;
    bool any_events = false;
    for (size_t i = 0; i < r->params.n; i++)
        any_events |= pd_view_starts_with(r->params.v[i].key, "enabled_events[");
    if (any_events && (c->enabled_events = enabled_events_json(r)) == NULL)
        return;
    c->description = pd_param_str(r, "description");
    c->disabled = pd_param_str(r, "disabled") == NULL ? -1 : pd_param_bool(r, "disabled", false);
    pd_op_commit(op, write_update, NULL);
}
