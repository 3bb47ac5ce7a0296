/*
 * GET /v1/payment_intents/search, /v1/charges/search, /v1/customers/search: Stripe's
 * Search API over the store's list index.
 *
 * The query is parsed first (search_query.c; a syntax error or an unknown field is a
 * 400 with param "query"). On a reader thread the rows are then read newest first along
 * (merchant_id, livemode, seq), SCAN_WINDOW at a time from the page's position (the
 * `seq,id` keyset cursor that next_page carries), each row checked by the database's
 * pre-filter (the exact and range clauses of an AND query that SQL can check, so a row
 * that fails them is never decoded) and then by the whole query in C (substring,
 * metadata, negation, OR). Matches are rendered as they come; the scan stops at limit+1
 * matches, at the end of the rows, or after [payments] search_scan_limit rows (or
 * SCAN_TIME_MS): then the answer has what matched so far, has_more=true and a next_page
 * that resumes after the last row read. Nothing but one window's rows and the page
 * being rendered is in memory at a time.
 *
 * next_page is hex of {version, seq, id, tag}: the tag is an HMAC over the resource, the
 * merchant, the mode, the query and the position, so a token of another query,
 * resource or merchant, or an edited one, is refused (400, param "page").
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "api/internal.h"
#include "api/pii.h"
#include "api/search_query.h"
#include "payd/crypto.h"
#include "payd/pay.h"
#include "payd/time.h"

#define SCAN_WINDOW 500   /* rows per statement: PostgreSQL returns a statement's rows at once */
#define SCAN_TIME_MS 1000 /* a request's scan stops after this long, as after search_scan_limit rows */
#define PAGE_TAG 12
#define PAGE_MAX (1 + 8 + 1 + PD_ID_MAX + PAGE_TAG)

typedef struct {
    pd_sq_resource_t res;
    const char *url;
    const char *query;
    pd_sq_t q;
    char email_index[PD_SQ_MAX_CLAUSES][65]; /* per email clause: the value's blind index */
    char pre_status[PD_SQ_VALUE_MAX + 1], pre_currency[PD_SQ_VALUE_MAX + 1], pre_customer[PD_SQ_VALUE_MAX + 1];
    pd_search_q_t sq;
    int64_t limit, scan_limit;
    const char *merchant_id;
    bool livemode;
    /* the scan */
    pd_jw_t *w;
    int64_t matches, scanned;
    int64_t pos_seq, page_seq;
    char pos_id[PD_ID_MAX], page_id[PD_ID_MAX];
    bool stopped;
    pd_view_t json;
} search_t;

/* --- the page token --- */

static int
page_tag(const search_t *s, int64_t seq, const char *id, uint8_t out[32])
{
    static const char key[] = "payd search page v1";
    pd_buf_t b;
    char head[128];
    pd_buf_init(&b, PD_SQ_QUERY_MAX + 512);
    int n = snprintf(head, sizeof(head), "%d|%s|%d|%lld|%s|", (int)s->res, s->merchant_id, s->livemode ? 1 : 0,
                     (long long)seq, id);
    int r = n > 0 && (size_t)n < sizeof(head) ? pd_buf_put(&b, head, (size_t)n) : PD_ERR_TOOBIG;
    if (r == 0)
        r = pd_buf_put(&b, s->query, strlen(s->query));
    if (r == 0)
        r = pd_hmac_sha256((const uint8_t *)key, sizeof(key) - 1, b.p, b.len, out);
    pd_buf_free(&b);
    return r;
}

/* the token of position (seq, id) in out (2 * PAGE_MAX + 1 bytes) */
static int
page_encode(const search_t *s, int64_t seq, const char *id, char *out)
{
    uint8_t raw[PAGE_MAX], tag[32];
    size_t idl = strlen(id), n = 0;
    if (idl >= PD_ID_MAX || page_tag(s, seq, id, tag) != 0)
        return PD_ERR_INTERNAL;
    raw[n++] = 1;
    for (int i = 7; i >= 0; i--)
        raw[n++] = (uint8_t)((uint64_t)seq >> (i * 8));
    raw[n++] = (uint8_t)idl;
    memcpy(raw + n, id, idl);
    n += idl;
    memcpy(raw + n, tag, PAGE_TAG);
    n += PAGE_TAG;
    pd_hex(raw, n, out);
    return 0;
}

/* false when the token is malformed or not this query's */
static bool
page_decode(const search_t *s, const char *tok, int64_t *seq, char id[PD_ID_MAX])
{
    uint8_t raw[PAGE_MAX], tag[32];
    size_t hl = strlen(tok);
    if (hl % 2 != 0 || hl / 2 > PAGE_MAX || hl / 2 < 1 + 8 + 1 + 1 + PAGE_TAG || pd_unhex(tok, hl, raw) != 0)
        return false;
    size_t n = hl / 2, idl = raw[9];
    if (raw[0] != 1 || idl == 0 || idl >= PD_ID_MAX || 10 + idl + PAGE_TAG != n)
        return false;
    uint64_t v = 0;
    for (int i = 1; i <= 8; i++)
        v = (v << 8) | raw[i];
    for (size_t i = 0; i < idl; i++) {
        char c = (char)raw[10 + i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    memcpy(id, raw + 10, idl);
    id[idl] = '\0';
    *seq = (int64_t)v;
    if (page_tag(s, *seq, id, tag) != 0)
        return false;
    return CRYPTO_memcmp(tag, raw + 10 + idl, PAGE_TAG) == 0;
}

/* --- evaluation of the query on a record --- */

static bool
text_holds(const pd_sq_clause_t *c, const char *v)
{
    size_t n = v != NULL ? strlen(v) : 0;
    if (v == NULL || n == 0)
        return false; /* a field without a value matches no value */
    return c->op == PD_SQ_EQ ? pd_sq_str_eq(v, n, c->str, c->str_len) : pd_sq_str_contains(v, n, c->str, c->str_len);
}

typedef struct {
    const char *status, *currency, *customer, *metadata, *email_index;
    int64_t amount, created;
    json_t *meta; /* parsed on first use */
    bool meta_parsed;
} fields_t;

static bool
clause_holds(const search_t *s, size_t i, fields_t *f)
{
    const pd_sq_clause_t *c = &s->q.c[i];
    switch (c->field) {
    case PD_SQF_STATUS: return text_holds(c, f->status);
    case PD_SQF_CURRENCY: return text_holds(c, f->currency);
    case PD_SQF_CUSTOMER: return text_holds(c, f->customer);
    case PD_SQF_AMOUNT: return pd_sq_num_holds(c, f->amount);
    case PD_SQF_CREATED: return pd_sq_num_holds(c, f->created);
    case PD_SQF_EMAIL: return f->email_index != NULL && f->email_index[0] != '\0' &&
                              CRYPTO_memcmp(f->email_index, s->email_index[i], 64) == 0;
    case PD_SQF_METADATA: {
        if (!f->meta_parsed) {
            f->meta_parsed = true;
            f->meta = f->metadata != NULL ? json_loads(f->metadata, 0, NULL) : NULL;
        }
        json_t *v = json_object_get(f->meta, c->key);
        return json_is_string(v) && text_holds(c, json_string_value(v));
    }
    }
    return false;
}

static bool
query_holds(const search_t *s, fields_t *f)
{
    bool any = s->q.any;
    for (size_t i = 0; i < s->q.n; i++) {
        bool h = clause_holds(s, i, f) != s->q.c[i].negated;
        if (any && h)
            return true;
        if (!any && !h)
            return false;
    }
    return !any;
}

/* --- the scan --- */

static int
each_row(const void *rec, int64_t seq, const char *id, void *arg)
{
    search_t *s = arg;
    s->scanned++;
    s->pos_seq = seq;
    snprintf(s->pos_id, sizeof(s->pos_id), "%s", id);
    if (rec == NULL)
        return 0;
    fields_t f = {0};
    switch (s->res) {
    case PD_SQ_PAYMENT_INTENTS: {
        const pd_pi_rec_t *p = rec;
        f = (fields_t){pd_pi_status_name(p->status), p->currency, p->customer, p->metadata, NULL, p->amount, p->created,
                       NULL, false};
        break;
    }
    case PD_SQ_CHARGES: {
        const pd_charge_rec_t *c = rec;
        /* a charge's metadata is its own, and payd's charges have none ({}) */
        f = (fields_t){c->status, c->currency, c->customer, "{}", NULL, c->amount, c->created, NULL, false};
        break;
    }
    case PD_SQ_CUSTOMERS: {
        const pd_customer_rec_t *c = rec;
        f = (fields_t){NULL, NULL, NULL, c->metadata, c->email_index, 0, c->created, NULL, false};
        break;
    }
    }
    bool match = query_holds(s, &f);
    json_decref(f.meta);
    if (!match)
        return 0;
    if (++s->matches > s->limit) {
        s->stopped = true; /* one more than the page: has_more */
        return 1;
    }
    switch (s->res) {
    case PD_SQ_PAYMENT_INTENTS: pd_render_pi(s->w, rec); break;
    case PD_SQ_CHARGES: pd_render_charge(s->w, rec, NULL); break;
    case PD_SQ_CUSTOMERS: pd_pii_render_sealed(s->w, rec); break;
    }
    s->page_seq = seq;
    snprintf(s->page_id, sizeof(s->page_id), "%s", id);
    return 0;
}

static int
scan(pd_db_t *db, search_t *s, bool *has_more, bool *at_scan)
{
    uint64_t t0 = pd_mono_ms();
    for (;;) {
        int64_t want = s->scan_limit - s->scanned, rows = 0;
        if (want > SCAN_WINDOW)
            want = SCAN_WINDOW;
        s->sq.after_seq = s->pos_seq;
        s->sq.after_id = s->pos_id;
        s->sq.limit = want;
        int rc = s->res == PD_SQ_PAYMENT_INTENTS ? pd_pi_search(db, &s->sq, each_row, s, &rows)
                 : s->res == PD_SQ_CHARGES       ? pd_charge_search(db, &s->sq, each_row, s, &rows)
                                                 : pd_customer_search(db, &s->sq, each_row, s, &rows);
        if (rc != 0)
            return rc;
        if (s->stopped) {
            *has_more = true;
            return 0;
        }
        if (rows < want) {
            *has_more = false; /* the merchant's oldest row was read */
            return 0;
        }
        if (s->scanned >= s->scan_limit || pd_mono_ms() - t0 >= SCAN_TIME_MS) {
            *has_more = true; /* the scan's bound: the next page resumes after the last row read */
            *at_scan = true;
            return 0;
        }
    }
}

/* on a reader thread: the page rendered into r's arena */
static int
search_read(pd_db_t *db, pd_req_t *r, void *ctx)
{
    search_t *s = ctx;
    pd_buf_t b;
    pd_jw_t w;
    bool more = false, at_scan = false;
    char tok[2 * PAGE_MAX + 1];
    pd_buf_init(&b, RESP_MAX * 4);
    pd_jw_init(&w, &b);
    s->w = &w;
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "object", "search_result");
    pd_jw_key(&w, "data");
    pd_jw_arr_begin(&w);
    int rc = scan(db, s, &more, &at_scan);
    pd_jw_arr_end(&w);
    pd_jw_kbool(&w, "has_more", more);
    if (rc == 0 && more) {
        rc = at_scan ? page_encode(s, s->pos_seq, s->pos_id, tok) : page_encode(s, s->page_seq, s->page_id, tok);
        pd_jw_kstr(&w, "next_page", tok);
    } else {
        pd_jw_key(&w, "next_page");
        pd_jw_raw(&w, PD_VIEW_LIT("null"));
    }
    pd_jw_kstr(&w, "url", s->url);
    pd_jw_obj_end(&w);
    if (rc == 0 && pd_jw_finish(&w) != 0)
        rc = PD_ERR_TOOBIG;
    if (rc == 0) {
        char *p = pd_arena_strndup(&r->arena, (const char *)b.p, b.len);
        if (p == NULL)
            rc = PD_ERR_NOMEM;
        else
            s->json = pd_view(p, b.len);
    }
    pd_buf_free(&b);
    if (rc == 0 && pd_expand_wanted(r))
        rc = pd_expand(db, r, &r->arena, &s->json);
    return rc;
}

static void
search_then(pd_req_t *r, void *ctx, int rc)
{
    search_t *s = ctx;
    if (rc == 0)
        pd_pii_respond(r, 200, s->json); /* customers (found or expanded) opened */
    else if (rc == PD_ERR_TOOBIG)
        pd_resp_error(r, 500, "api_error", NULL, "The response is too large.", NULL);
    else
        pd_resp_read_failed(r, rc);
}

static void
lower_copy(char *dst, const pd_sq_clause_t *c)
{
    for (size_t i = 0; i <= c->str_len; i++)
        dst[i] = c->str[i] >= 'A' && c->str[i] <= 'Z' ? (char)(c->str[i] - 'A' + 'a') : c->str[i];
}

/* what the database can check before decoding: the exact and range clauses of an AND
 * query (the whole query is still checked in C: this only skips rows that cannot match) */
static void
prefilter(search_t *s)
{
    pd_search_q_t *q = &s->sq;
    q->amount_gte = q->created_gte = INT64_MIN;
    q->amount_lte = q->created_lte = INT64_MAX;
    if (s->q.any)
        return;
    for (size_t i = 0; i < s->q.n; i++) {
        const pd_sq_clause_t *c = &s->q.c[i];
        if (c->negated)
            continue;
        if (c->is_num) {
            int64_t *lo = c->field == PD_SQF_AMOUNT ? &q->amount_gte : &q->created_gte;
            int64_t *hi = c->field == PD_SQF_AMOUNT ? &q->amount_lte : &q->created_lte;
            int64_t v = c->num;
            if ((c->op == PD_SQ_EQ || c->op == PD_SQ_GE) && v > *lo)
                *lo = v;
            if (c->op == PD_SQ_GT && v != INT64_MAX && v + 1 > *lo)
                *lo = v + 1;
            if ((c->op == PD_SQ_EQ || c->op == PD_SQ_LE) && v < *hi)
                *hi = v;
            if (c->op == PD_SQ_LT && v != INT64_MIN && v - 1 < *hi)
                *hi = v - 1;
            continue;
        }
        if (c->op != PD_SQ_EQ || memchr(c->str, '\0', c->str_len) != NULL)
            continue;
        char *dst = c->field == PD_SQF_STATUS     ? s->pre_status
                    : c->field == PD_SQF_CURRENCY ? s->pre_currency
                    : c->field == PD_SQF_CUSTOMER ? s->pre_customer
                                                  : NULL;
        if (dst != NULL && dst[0] == '\0') { /* the first of a field's exact clauses */
            lower_copy(dst, c);
            if (c->field == PD_SQF_STATUS)
                q->status = dst;
            else if (c->field == PD_SQF_CURRENCY)
                q->currency = dst;
            else
                q->customer = dst;
        }
        if (c->field == PD_SQF_EMAIL && q->email_index == NULL)
            q->email_index = s->email_index[i];
    }
}

static void
search_respond(pd_req_t *r, pd_sq_resource_t res, const char *url)
{
    const pd_auth_t *au = r->auth;
    search_t *s = pd_arena_calloc(&r->arena, sizeof(*s));
    char err[512];
    if (s == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    s->res = res;
    s->url = url;
    s->merchant_id = au->merchant_id;
    s->livemode = au->livemode;
    s->limit = 10;
    s->scan_limit = pd_api_of(r)->cfg->search_scan_limit;
    s->pos_seq = INT64_MAX;
    pd_param_t *qp = pd_params_get(&r->params, "query");
    s->query = pd_param_str(r, "query");
    if (qp == NULL || s->query == NULL) {
        pd_resp_invalid(r, "parameter_missing", "query", "Missing required param: query.");
        return;
    }
    if (memchr(qp->value.p, '\0', qp->value.len) != NULL) {
        pd_resp_invalid(r, "parameter_invalid", "query", "The query holds a NUL byte.");
        return;
    }
    if (pd_sq_parse((const char *)qp->value.p, qp->value.len, res, &s->q, err, sizeof(err)) != 0) {
        pd_resp_invalid(r, "parameter_invalid", "query", "%s", err);
        return;
    }
    for (size_t i = 0; i < s->q.n; i++) {
        const pd_sq_clause_t *c = &s->q.c[i];
        if (c->field == PD_SQF_EMAIL &&
            (memchr(c->str, '\0', c->str_len) != NULL ||
             pd_pii_email_index(au->merchant_id, au->livemode, c->str, s->email_index[i]) != 0)) {
            pd_resp_invalid(r, "parameter_invalid", "query", "Invalid email in the query: '%.80s'.", c->str);
            return;
        }
    }
    const char *limit = pd_param_str(r, "limit");
    if (limit != NULL && (pd_view_to_i64(pd_view_cstr(limit), &s->limit) != 0 || s->limit < 1 || s->limit > 100)) {
        pd_resp_invalid(r, "parameter_invalid_integer", "limit", "limit must be an integer from 1 to 100.");
        return;
    }
    const char *page = pd_param_str(r, "page");
    if (page != NULL && !page_decode(s, page, &s->pos_seq, s->pos_id)) {
        pd_resp_invalid(r, "parameter_invalid", "page",
                        "Invalid page: pass the next_page of the previous answer to the same query.");
        return;
    }
    s->sq.merchant = au->merchant_id;
    s->sq.livemode = au->livemode;
    prefilter(s);
    pd_api_read(r, search_read, search_then, s);
}

void
pd_h_pi_search(pd_req_t *r)
{
    search_respond(r, PD_SQ_PAYMENT_INTENTS, "/v1/payment_intents/search");
}

void
pd_h_charge_search(pd_req_t *r)
{
    search_respond(r, PD_SQ_CHARGES, "/v1/charges/search");
}

void
pd_h_customer_search(pd_req_t *r)
{
    search_respond(r, PD_SQ_CUSTOMERS, "/v1/customers/search");
}
