/* Request and response helpers shared by the handlers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "api/pii.h"

pd_api_t *
pd_api_of(pd_req_t *r)
{
    return pd_server_user(pd_loop_server(r->loop));
}

pd_db_t *
pd_reader(pd_req_t *r)
{
    return pd_store_reader(pd_api_of(r)->store);
}

const char *
pd_param_str(pd_req_t *r, const char *key)
{
    pd_param_t *p = pd_params_get(&r->params, key);
    return p != NULL && p->type != PD_P_NULL ? (const char *)p->value.p : NULL;
}

bool
pd_param_bool(pd_req_t *r, const char *key, bool dflt)
{
    const char *v = pd_param_str(r, key);
    return v == NULL ? dflt : strcmp(v, "true") == 0;
}

const char *
pd_param_metadata(pd_req_t *r, const char *existing)
{
    if (!pd_params_has_prefix(&r->params, "metadata"))
        return existing != NULL ? existing : "{}";
    /* metadata="" (or {} / null in JSON) empties it; metadata[k]="" removes k */
    bool clear = pd_params_get(&r->params, "metadata") != NULL;
    json_t *obj = !clear && existing != NULL && existing[0] ? json_loads(existing, 0, NULL) : NULL;
    if (obj == NULL)
        obj = json_object();
    for (size_t i = 0; i < r->params.n; i++) {
        pd_param_t *p = &r->params.v[i];
        if (!pd_view_starts_with(p->key, "metadata[") || p->key.len < 11)
            continue;
        char k[64];
        if (pd_view_to_cstr(pd_view(p->key.p + 9, p->key.len - 10), k, sizeof(k)) != 0)
            continue;
        if (p->value.len == 0 || p->type == PD_P_NULL)
            json_object_del(obj, k);
        else
            json_object_set_new(obj, k, json_stringn((const char *)p->value.p, p->value.len));
    }
    if (json_object_size(obj) > 50) {
        json_decref(obj);
        return NULL; /* Stripe's limit applies to the merged object */
    }
    char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(obj);
    const char *out = text != NULL ? pd_arena_strndup(&r->arena, text, strlen(text)) : NULL;
    free(text);
    return out;
}

bool
pd_list_query(pd_req_t *r, pd_list_q_t *q)
{
    memset(q, 0, sizeof(*q));
    q->limit = 10;
    q->created_gte = INT64_MIN;
    q->created_lte = INT64_MAX;
    /* created (exact) and created[gt|gte|lt|lte], Stripe's range filter, as inclusive bounds */
    static const struct {
        const char *param;
        int bound;   /* 0: both, 1: lower, 2: upper */
        int64_t adj; /* gt: the next second, lt: the one before */
    } ranges[] = {{"created", 0, 0}, {"created[gte]", 1, 0}, {"created[gt]", 1, 1}, {"created[lte]", 2, 0},
                  {"created[lt]", 2, -1}};
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        const char *s = pd_param_str(r, ranges[i].param);
        int64_t v;
        if (s == NULL)
            continue;
        if (pd_view_to_i64(pd_view_cstr(s), &v) != 0 || v < 0 || v > INT64_MAX / 2) {
            pd_resp_invalid(r, "parameter_invalid_integer", ranges[i].param, "%s must be a Unix timestamp.",
                            ranges[i].param);
            return false;
        }
        v += ranges[i].adj;
        q->created_range = true;
        if (ranges[i].bound != 2 && v > q->created_gte)
            q->created_gte = v;
        if (ranges[i].bound != 1 && v < q->created_lte)
            q->created_lte = v;
    }
    const char *limit = pd_param_str(r, "limit");
    if (limit != NULL) {
        int64_t v;
        if (pd_view_to_i64(pd_view_cstr(limit), &v) != 0 || v < 1 || v > 100) {
            pd_resp_invalid(r, "parameter_invalid_integer", "limit", "limit must be an integer from 1 to 100.");
            return false;
        }
        q->limit = v;
    }
    q->starting_after = pd_param_str(r, "starting_after");
    q->ending_before = pd_param_str(r, "ending_before");
    if (q->starting_after != NULL && q->ending_before != NULL) {
        pd_resp_invalid(r, "parameter_invalid", "ending_before",
                        "You may only specify one of starting_after and ending_before.");
        return false;
    }
    return true;
}

void
pd_list_begin(pd_jw_t *w, const char *url)
{
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "object", "list");
    pd_jw_kstr(w, "url", url);
    pd_jw_key(w, "data");
    pd_jw_arr_begin(w);
}

void
pd_list_end(pd_jw_t *w, bool has_more)
{
    pd_jw_arr_end(w);
    pd_jw_kbool(w, "has_more", has_more);
    pd_jw_obj_end(w);
}

void
pd_resp_missing(pd_req_t *r, const char *what, const char *param, const char *id)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "No such %s: '%.80s'", what, id != NULL ? id : "");
    pd_resp_error(r, 404, "invalid_request_error", "resource_missing", msg, param);
}

void
pd_resp_no_answer(pd_req_t *r, const char *operation, const char *object)
{
    char msg[256];
    snprintf(msg, sizeof(msg),
             "The payment processor did not answer. The %s will be completed automatically; retrieve the %s to see "
             "the outcome.",
             operation, object);
    pd_resp_error(r, 502, "api_error", "processing_error", msg, NULL);
}

void
pd_resp_jw(pd_req_t *r, int status, pd_jw_t *w)
{
    if (pd_jw_finish(w) != 0) {
        pd_resp_error(r, 500, "api_error", NULL, "The response is too large.", NULL);
        return;
    }
    pd_resp_json(r, status, pd_buf_view(w->b));
}

typedef struct {
    pd_list_q_t q;
    const char *url;
    const char *what;
    pd_list_fn fn;
    pd_rec_fn each;
    const char *merchant_id;
    bool livemode;
    pd_view_t json;
} list_t;

/* on a reader thread: the list rendered into r's arena */
static int
list_read(pd_db_t *db, pd_req_t *r, void *ctx)
{
    list_t *l = ctx;
    pd_buf_t b;
    pd_jw_t w;
    bool more = false;
    pd_buf_init(&b, RESP_MAX * 4);
    pd_jw_init(&w, &b);
    pd_list_begin(&w, l->url);
    int rc = l->fn(db, &r->arena, l->merchant_id, l->livemode, &l->q, l->each, &w, &more);
    pd_list_end(&w, more);
    if (rc == 0 && pd_jw_finish(&w) != 0)
        rc = PD_ERR_TOOBIG;
    if (rc == 0) {
        pd_view_t v = pd_buf_view(&b);
        char *p = pd_arena_alloc(&r->arena, v.len + 1);
        if (p == NULL)
            rc = PD_ERR_NOMEM;
        else {
            memcpy(p, v.p, v.len);
            l->json = pd_view(p, v.len);
        }
    }
    pd_buf_free(&b);
    if (rc == 0 && pd_expand_wanted(r))
        rc = pd_expand(db, r, &r->arena, &l->json);
    return rc;
}

static void
list_then(pd_req_t *r, void *ctx, int rc)
{
    list_t *l = ctx;
    if (rc == 0)
        pd_pii_respond(r, 200, l->json); /* expanded customers opened */
    else if (rc == PD_ERR_NOTFOUND)
        pd_resp_missing(r, l->what, l->q.starting_after ? "starting_after" : "ending_before",
                        l->q.starting_after ? l->q.starting_after : l->q.ending_before);
    else if (rc == PD_ERR_TOOBIG)
        pd_resp_error(r, 500, "api_error", NULL, "The response is too large.", NULL);
    else
        pd_resp_read_failed(r, rc);
}

void
pd_list_respond(pd_req_t *r, const char *url, const char *what, const char *filter_param, pd_list_fn fn, pd_rec_fn each)
{
    pd_list_respond2(r, url, what, filter_param, NULL, fn, each);
}

void
pd_list_respond2(pd_req_t *r, const char *url, const char *what, const char *filter_param, const char *filter2_param,
                 pd_list_fn fn, pd_rec_fn each)
{
    const pd_auth_t *au = r->auth;
    list_t *l = pd_arena_calloc(&r->arena, sizeof(*l));
    if (l == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    if (!pd_list_query(r, &l->q))
        return;
    if (filter_param != NULL)
        l->q.filter = pd_param_str(r, filter_param);
    if (filter2_param != NULL)
        l->q.filter2 = pd_param_str(r, filter2_param);
    l->url = url;
    l->what = what;
    l->fn = fn;
    l->each = each;
    l->merchant_id = au->merchant_id;
    l->livemode = au->livemode;
    pd_api_read(r, list_read, list_then, l);
}
