/*
 * The request pipeline: turns an h2o request into a pd_req_t, enforces the limits,
 * routes, runs the filters and the handler, and sends responses.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "edge/internal.h"
#include "payd/json.h"
#include "payd/log.h"
#include "payd/records.h"
#include "payd/schema.h"
#include "payd/time.h"

#define REQ_ARENA_MAX (4u * 1024 * 1024)
#define ERROR_BODY_MAX (16u * 1024)

typedef struct {
    h2o_handler_t super;
    pd_server_t *srv;
    pd_listener_kind_t kind;
} handler_t;

/* lives in the h2o pool next to the pd_req_t; disposed first when the h2o request
 * goes away, so a held pd_req_t learns that its client is gone */
typedef struct {
    pd_req_t *r;
} sentinel_t;

static void
req_dispose(void *p)
{
    pd_req_t *r = p;
    pd_server_t *s = r->loop->srv;
    pd_edge_metrics_request(r);
    for (size_t i = 0; i < s->nfinish; i++)
        s->finish[i].fn(r, s->finish[i].arg);
    pd_arena_free(&r->arena);
    r->loop->inflight--;
    atomic_store(&r->loop->inflight_shared, r->loop->inflight);
}

static void
sentinel_dispose(void *p)
{
    sentinel_t *st = p;
    st->r->h2o = NULL;
}

void
pd_req_hold(pd_req_t *r)
{
    r->holds++;
    h2o_mem_addref_shared(r);
}

bool
pd_req_alive(const pd_req_t *r)
{
    return r->h2o != NULL;
}

static void
req_release(pd_req_t *r)
{
    if (r->holds > 0) {
        r->holds--;
        h2o_mem_release_shared(r);
    }
}

pd_view_t
pd_req_header(pd_req_t *r, const char *lname)
{
    if (r->h2o == NULL)
        return PD_VIEW_NULL;
    ssize_t i = h2o_find_header_by_str(&r->h2o->headers, lname, strlen(lname), -1);
    if (i < 0)
        return PD_VIEW_NULL;
    h2o_iovec_t v = r->h2o->headers.entries[i].value;
    return pd_view(v.base, v.len);
}

size_t
pd_req_nheaders(const pd_req_t *r)
{
    return r->h2o != NULL ? r->h2o->headers.size : 0;
}

bool
pd_req_header_at(const pd_req_t *r, size_t i, pd_view_t *name, pd_view_t *value)
{
    if (r->h2o == NULL || i >= r->h2o->headers.size)
        return false;
    const h2o_header_t *h = &r->h2o->headers.entries[i];
    *name = pd_view(h->name->base, h->name->len);
    *value = pd_view(h->value.base, h->value.len);
    return true;
}

pd_view_t
pd_req_param(pd_req_t *r, const char *name)
{
    if (r->route == NULL)
        return PD_VIEW_NULL;
    const char *p = r->route->pattern;
    size_t idx = 0, nl = strlen(name);
    while ((p = strchr(p, ':')) != NULL) {
        const char *e = p + 1;
        while (*e != '\0' && *e != '/')
            e++;
        if ((size_t)(e - p - 1) == nl && memcmp(p + 1, name, nl) == 0)
            return idx < r->npath_params ? r->path_params[idx] : PD_VIEW_NULL;
        idx++;
        p = e;
    }
    return PD_VIEW_NULL;
}

void
pd_resp_header(pd_req_t *r, const char *name, const char *value)
{
    if (r->h2o == NULL || r->responded)
        return;
    h2o_mem_pool_t *pool = &r->h2o->pool;
    size_t nl = strlen(name);
    char *n = h2o_mem_alloc_pool(pool, nl);
    for (size_t i = 0; i < nl; i++)
        n[i] = (char)tolower((unsigned char)name[i]);
    h2o_iovec_t v = h2o_strdup(pool, value, strlen(value));
    h2o_add_header_by_str(pool, &r->h2o->res.headers, n, nl, 1, NULL, v.base, v.len);
}

static const char *
reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "OK";
    }
}

void
pd_resp_json(pd_req_t *r, int status, pd_view_t body)
{
    pd_resp_body(r, status, "application/json", body);
}

/* the response's status and the headers every response of payd carries */
static void
start_head(pd_req_t *r, h2o_req_t *req, int status, const char *content_type)
{
    h2o_mem_pool_t *pool = &req->pool;
    req->res.status = status;
    req->res.reason = reason_of(status);
    h2o_add_header(pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_add_header_by_str(pool, &req->res.headers, H2O_STRLIT("request-id"), 0, NULL, r->id, strlen(r->id));
    /* "00-<trace id>-<span id>-<flags>" */
    static const char hex[] = "0123456789abcdef";
    char *tp = h2o_mem_alloc_pool(pool, 55);
    memcpy(tp, "00-", 3);
    memcpy(tp + 3, r->trace_id, 32);
    tp[35] = '-';
    memcpy(tp + 36, r->span_id, 16);
    tp[52] = '-';
    tp[53] = hex[r->trace_flags >> 4];
    tp[54] = hex[r->trace_flags & 15];
    h2o_add_header_by_str(pool, &req->res.headers, H2O_STRLIT("traceparent"), 0, NULL, tp, 55);
    if (r->listener == PD_L_API && r->loop->srv->api->hsts)
        h2o_add_header(pool, &req->res.headers, H2O_TOKEN_STRICT_TRANSPORT_SECURITY, NULL,
                       H2O_STRLIT("max-age=63072000; includeSubDomains"));
    h2o_add_header(pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache, no-store"));
    if (r->close || atomic_load(&r->loop->srv->draining))
        req->http1_is_persistent = 0;
    if (r->listener == PD_L_ADMIN)
        pd_conn_note_received(req);
    if (r->listener == PD_L_API) {
        const char *v = r->stripe_version[0] != '\0' ? r->stripe_version : PD_STRIPE_API_VERSION;
        h2o_add_header_by_str(pool, &req->res.headers, H2O_STRLIT("stripe-version"), 0, NULL, v, strlen(v));
        /* 502 (the processor did not answer: recovery finishes the operation, the same key
         * replays it) and 503 (busy, storage unavailable) are worth retrying with the same
         * Idempotency-Key: say so where the handler did not */
        if ((status == 502 || status == 503) &&
            h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("stripe-should-retry"), -1) < 0)
            h2o_add_header_by_str(pool, &req->res.headers, H2O_STRLIT("stripe-should-retry"), 0, NULL,
                                  H2O_STRLIT("true"));
    }
}

void
pd_resp_body(pd_req_t *r, int status, const char *content_type, pd_view_t body)
{
    if (r->responded) {
        pd_log_error("BUG: second response to a request", PD_LS("request_id", r->id));
        return;
    }
    r->responded = true;
    r->status = status;
    r->resp_bytes = body.len;
    if (r->h2o != NULL) {
        h2o_req_t *req = r->h2o;
        req->res.content_length = body.len;
        start_head(r, req, status, content_type);
        h2o_send_inline(req, (const char *)body.p, body.len);
    }
    req_release(r);
}

/* --- streamed responses --- */

typedef struct {
    h2o_generator_t super;
    pd_req_t *r;
    pd_resp_pull_fn pull;
    void (*dispose)(void *arg);
    void *arg;
    uint8_t *buf;
    size_t cap;
} stream_t;

static void
stream_dispose(void *p)
{
    stream_t *s = p;
    if (s->dispose != NULL)
        s->dispose(s->arg);
    free(s->buf);
}

/* the next piece from pull; an error cuts the response short (the client sees a
 * truncated body: the length or the chunked framing tells it) */
static void
stream_send(stream_t *s, h2o_req_t *req)
{
    size_t n = 0;
    bool done = false;
    int rc = s->pull(s->arg, s->buf, s->cap, &n, &done);
    if (rc != 0) {
        pd_log_warn("a streamed response was cut short", PD_LS("request_id", s->r->id), PD_LERR(rc));
        n = 0;
    }
    s->r->resp_bytes += n;
    h2o_iovec_t v = h2o_iovec_init(s->buf, n);
    h2o_send(req, &v, 1, rc != 0 ? H2O_SEND_STATE_ERROR : done ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void
stream_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    stream_send((stream_t *)g, req);
}

static void
stream_stop(h2o_generator_t *g, h2o_req_t *req)
{
    (void)g;
    (void)req; /* the client went away: dispose (with the request's pool) closes the source */
}

void
pd_resp_stream(pd_req_t *r, int status, const char *content_type, int64_t length, pd_resp_pull_fn pull,
               void (*dispose)(void *arg), void *arg)
{
    if (r->responded) {
        pd_log_error("BUG: second response to a request", PD_LS("request_id", r->id));
        if (dispose != NULL)
            dispose(arg);
        return;
    }
    if (r->h2o == NULL) {
        if (dispose != NULL)
            dispose(arg);
        r->responded = true;
        req_release(r);
        return;
    }
    h2o_req_t *req = r->h2o;
    stream_t *s = h2o_mem_alloc_shared(&req->pool, sizeof(*s), stream_dispose);
    memset(s, 0, sizeof(*s));
    s->r = r;
    s->pull = pull;
    s->dispose = dispose;
    s->arg = arg;
    s->cap = PD_RESP_STREAM_PIECE;
    if ((s->buf = malloc(s->cap)) == NULL) {
        s->dispose = NULL;
        if (dispose != NULL)
            dispose(arg);
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    r->responded = true;
    r->status = status;
    s->super.proceed = stream_proceed;
    s->super.stop = stream_stop;
    if (length >= 0)
        req->res.content_length = (size_t)length;
    start_head(r, req, status, content_type);
    h2o_start_response(req, &s->super);
    stream_send(s, req);
    req_release(r);
}

void
pd_resp_error_x(pd_req_t *r, int status, const char *type, const char *code, const char *message, const char *param,
                const char *extra_json)
{
    pd_buf_t b;

    pd_buf_init(&b, ERROR_BODY_MAX);
    r->error_code = code != NULL ? code : type;
    if (pd_error_json(&b, type, code, param, extra_json, r->id, message) != 0) {
        pd_buf_reset(&b);
        if (pd_buf_put_cstr(&b, "{\"error\":{\"type\":\"api_error\",\"message\":\"error too large\"}}") != 0)
            b.len = 0;
    }
    pd_resp_json(r, status, pd_buf_view(&b));
    pd_buf_free(&b);
}

void
pd_resp_invalid(pd_req_t *r, const char *code, const char *param, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pd_resp_error(r, 400, "invalid_request_error", code, msg, param);
}

static void
peer_text(h2o_req_t *req, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    uint16_t port;
    out[0] = '\0';
    if (req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) != 0)
        pd_edge_addr_text((struct sockaddr *)&ss, out, cap, &port);
}

/* media type, lower-cased, without parameters ("application/json; charset=utf-8" -> "application/json") */
static pd_view_t
media_type(pd_req_t *r)
{
    pd_view_t v = pd_req_header(r, "content-type");
    size_t n = 0;
    while (n < v.len && v.p[n] != ';' && v.p[n] != ' ' && v.p[n] != '\t')
        n++;
    if (n == 0)
        return PD_VIEW_NULL;
    char *lc = pd_arena_alloc(&r->arena, n + 1);
    if (lc == NULL)
        return PD_VIEW_NULL;
    for (size_t i = 0; i < n; i++)
        lc[i] = (char)tolower(v.p[i]);
    lc[n] = '\0';
    return pd_view(lc, n);
}

/* 431 when the header block is larger than allowed */
static bool
headers_too_large(pd_req_t *r, h2o_req_t *req)
{
    const pd_edge_api_config_t *c = r->loop->srv->api;
    size_t total = 0;
    if (req->headers.size > (size_t)c->max_headers)
        return true;
    for (size_t i = 0; i < req->headers.size; i++)
        total += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    return total > (size_t)c->max_header_bytes;
}

/* decodes query + body into r->params and checks them against the route's schema */
static int
parse_params(pd_req_t *r)
{
    pd_params_t q = {0}, b = {0};
    pd_params_error_t pe;

    if (r->query.len > 0 && pd_params_parse_form(&r->arena, r->query, &q, &pe) != 0)
        goto bad;
    if (r->body.len > 0) {
        int rc = pd_view_eq_cstr(r->content_type, "application/json")
                     ? pd_params_parse_json(&r->arena, r->body, &b, &pe)
                     : pd_params_parse_form(&r->arena, r->body, &b, &pe);
        if (rc != 0)
            goto bad;
    }
    /* one list: query first, then body; a key given in both places is a duplicate */
    r->params.n = q.n + b.n;
    r->params.v = r->params.n ? pd_arena_alloc(&r->arena, r->params.n * sizeof(pd_param_t)) : NULL;
    if (r->params.n > 0 && r->params.v == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return -1;
    }
    for (size_t i = 0; i < q.n; i++) {
        for (size_t j = 0; j < b.n; j++) {
            if (pd_view_eq(q.v[i].key, b.v[j].key)) {
                pd_resp_invalid(r, "parameter_duplicate", (const char *)q.v[i].key.p,
                                "Parameter %s was given in both the query string and the body.",
                                (const char *)q.v[i].key.p);
                return -1;
            }
        }
    }
    if (q.n)
        memcpy(r->params.v, q.v, q.n * sizeof(pd_param_t));
    if (b.n)
        memcpy(r->params.v + q.n, b.v, b.n * sizeof(pd_param_t));
    return 0;
bad:
    pd_resp_error(r, 400, "invalid_request_error", "parameter_invalid", pe.message, pe.param[0] ? pe.param : NULL);
    return -1;
}

/* the positive model: every parameter must be one the route declares, in its form */
static int
check_schema(pd_req_t *r)
{
    pd_schema_error_t se;
    if (r->route->schema != NULL) {
        if (pd_schema_check(r->route->schema, &r->params, &se) != 0) {
            pd_resp_error(r, 400, "invalid_request_error", se.code, se.message, se.param[0] ? se.param : NULL);
            return -1;
        }
    } else if (r->params.n > 0) {
        pd_resp_invalid(r, "parameter_unknown", (const char *)r->params.v[0].key.p, "Received unknown parameter: %s",
                        (const char *)r->params.v[0].key.p);
        return -1;
    }
    return 0;
}

/*
 * HTTP/1: the raw head is still at the start of the connection's input buffer when
 * the request reaches us (libh2o 2.2 parses in place and consumes a request's bytes
 * only after its response), so the framing is checked on the bytes as received.
 * A refused request is answered 400 and the connection closed.
 */
bool
pd_warn_limit(pd_warn_limit_t *w, uint64_t *count)
{
    uint64_t now = pd_mono_ms();
    bool say = false;
    pthread_mutex_lock(&w->mu);
    w->count++;
    if (w->last_ms == 0 || now - w->last_ms >= 10000) {
        say = true;
        *count = w->count;
        w->count = 0;
        w->last_ms = now;
    }
    pthread_mutex_unlock(&w->mu);
    return say;
}

static pd_warn_limit_t malformed_warn = PD_WARN_LIMIT_INIT;

/*
 * A request the edge refuses as malformed: 400, the connection closed (HTTP/1), the
 * refusal counted toward the client's address rule (the WAF's refused hook), and one
 * warning line per 10 s with the number of refusals, so that a client sending
 * garbage cannot flood the log.
 */
static void
refuse_malformed(pd_req_t *r, const char *code, const char *why, const char *msg)
{
    pd_server_t *s = r->loop->srv;
    uint64_t n;
    r->close = true;
    r->waf_action = "block";
    snprintf(r->waf_rules, sizeof(r->waf_rules), "protocol");
    atomic_fetch_add(&s->stats.malformed, 1);
    if (s->refused_fn != NULL)
        s->refused_fn(r, s->refused_arg);
    if (pd_warn_limit(&malformed_warn, &n))
        pd_log_warn("refused malformed requests", PD_LS("request_id", r->id), PD_LS("reason", why),
                    PD_LS("peer", r->peer), PD_LI("count", (int64_t)n), PD_LI("per_s", 10));
    pd_resp_error(r, 400, "invalid_request_error", code, msg, NULL);
}

static bool
framing_refused(pd_req_t *r, h2o_req_t *req)
{
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return false;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->input == NULL)
        return false;
    const char *why = pd_http1_check_head((const uint8_t *)sock->input->bytes, sock->input->size, req->version >= 0x101);
    if (why == NULL)
        return false;
    char msg[160];
    snprintf(msg, sizeof(msg), "Malformed HTTP request: %s.", why);
    refuse_malformed(r, "invalid_http_request", why, msg);
    return true;
}

/* the path as sent (before libh2o decodes it) with an encoded '/' or NUL: refused, so
 * that payd's routes and a front proxy's path rules cannot read it differently */
static bool
path_refused(pd_req_t *r, h2o_req_t *req)
{
    size_t n = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    const char *why = pd_path_check_raw(pd_view(req->path.base, n));
    if (why == NULL)
        return false;
    char msg[200];
    snprintf(msg, sizeof(msg), "The request path is invalid: %s.", why);
    refuse_malformed(r, "invalid_request_path", why, msg);
    return true;
}

/*
 * The pipeline from position pos on: the PD_STAGE_EARLY filters (0 .. nearly-1), the
 * parameters (parsed on reaching nearly), the PD_STAGE_PARSED filters, the schema,
 * the handler. A filter that answers PD_FILTER_PENDING holds r and calls
 * pd_req_resume later, which comes back here at the filter after it.
 */
static void
run_from(pd_req_t *r, size_t pos)
{
    pd_server_t *s = r->loop->srv;
    size_t ne = s->nfilters[PD_STAGE_EARLY], np = s->nfilters[PD_STAGE_PARSED];
    for (; pos <= ne + np; pos++) {
        if (pos == ne && parse_params(r) != 0)
            return;
        if (pos == ne + np)
            break;
        const pd_filter_t *f = pos < ne ? &s->filters[PD_STAGE_EARLY][pos] : &s->filters[PD_STAGE_PARSED][pos - ne];
        int v = f->fn(r, f->arg);
        if (v == PD_FILTER_PENDING) {
            r->resume_at = pos + 1;
            return;
        }
        if (v != 0)
            return;
    }
    if (check_schema(r) != 0)
        return;
    r->route->handler(r);
    if (!r->responded && r->holds == 0) {
        pd_log_error("BUG: handler returned without responding", PD_LS("route", r->route->pattern));
        pd_resp_error(r, 500, "api_error", NULL, "An internal error occurred.", NULL);
    }
}

/* A Stripe-Version of YYYY-MM-DD, optionally followed by .name (2024-06-20.basil): kept for
 * the request log, the events the request makes and the response's Stripe-Version. payd
 * has one shape of its objects (PD_STRIPE_API_VERSION) whatever the version asked. False
 * after answering 400 for a malformed one. */
static bool
stripe_version(pd_req_t *r)
{
    pd_view_t v = pd_req_header(r, "stripe-version");
    if (v.p == NULL)
        return true;
    const uint8_t *p = v.p;
    bool ok = v.len >= 10 && v.len < sizeof(r->stripe_version) && p[4] == '-' && p[7] == '-';
    for (size_t i = 0; ok && i < 10; i++)
        ok = i == 4 || i == 7 || (p[i] >= '0' && p[i] <= '9');
    ok = ok && (v.len == 10 || (p[10] == '.' && v.len > 11));
    for (size_t i = 11; ok && i < v.len; i++)
        ok = (p[i] >= 'a' && p[i] <= 'z') || p[i] == '_';
    if (ok) {
        int month = (p[5] - '0') * 10 + (p[6] - '0'), day = (p[8] - '0') * 10 + (p[9] - '0');
        ok = month >= 1 && month <= 12 && day >= 1 && day <= 31;
    }
    if (!ok) {
        char msg[160];
        snprintf(msg, sizeof(msg), "Invalid Stripe API version: %.*s", (int)(v.len > 64 ? 64 : v.len),
                 (const char *)v.p);
        pd_resp_error(r, 400, "invalid_request_error", "api_version_invalid", msg, NULL);
        return false;
    }
    memcpy(r->stripe_version, v.p, v.len);
    r->stripe_version[v.len] = '\0';
    return true;
}

static void
route_request(pd_req_t *r)
{
    pd_server_t *s = r->loop->srv;
    const pd_route_t *route = NULL;
    unsigned allowed = 0;
    char msg[600];

    if (framing_refused(r, r->h2o) || path_refused(r, r->h2o))
        return;
    if (r->listener == PD_L_API && !stripe_version(r))
        return;
    if (headers_too_large(r, r->h2o)) {
        pd_resp_error(r, 431, "invalid_request_error", "request_header_fields_too_large",
                      "The request headers are too large.", NULL);
        return;
    }
    if (r->body.len > (size_t)s->api->max_body_bytes) {
        snprintf(msg, sizeof(msg), "The request body is larger than %lld bytes.", (long long)s->api->max_body_bytes);
        pd_resp_error(r, 413, "invalid_request_error", "request_too_large", msg, NULL);
        return;
    }
    if (r->body.len > 0 && !pd_view_eq_cstr(r->content_type, "application/x-www-form-urlencoded") &&
        !pd_view_eq_cstr(r->content_type, "application/json")) {
        pd_resp_error(r, 415, "invalid_request_error", "unsupported_media_type",
                      "Content-Type must be application/x-www-form-urlencoded or application/json.", NULL);
        return;
    }
    switch (pd_router_match(s->router, r->listener, r->method, r->path, &route, r->path_params, &r->npath_params, &allowed)) {
    case PD_MATCH_NOT_FOUND:
        snprintf(msg, sizeof(msg), "Unrecognized request URL (%.*s: %.*s).", (int)r->method.len,
                 (const char *)r->method.p, (int)(r->path.len > 200 ? 200 : r->path.len), (const char *)r->path.p);
        pd_resp_error(r, 404, "invalid_request_error", "resource_missing", msg, NULL);
        return;
    case PD_MATCH_METHOD: {
        char list[128];
        pd_method_list(allowed, list, sizeof(list));
        pd_resp_header(r, "Allow", list);
        snprintf(msg, sizeof(msg), "Method %.*s is not allowed for %.*s (allowed: %s).", (int)r->method.len,
                 (const char *)r->method.p, (int)(r->path.len > 200 ? 200 : r->path.len), (const char *)r->path.p,
                 list);
        pd_resp_error(r, 405, "invalid_request_error", "method_not_allowed", msg, NULL);
        return;
    }
    case PD_MATCH_OK:
        break;
    }
    r->route = route;
    if (r->body.len > 0 && (route->flags & PD_ROUTE_BODY) == 0) {
        pd_resp_error(r, 400, "invalid_request_error", "body_not_allowed", "This endpoint does not take a body.", NULL);
        return;
    }
    run_from(r, 0);
}

void
pd_req_continue(pd_req_t *r, void (*fn)(pd_req_t *r, void *arg), void *arg)
{
    /* the hold ends here; its reference keeps r valid while fn runs */
    bool held = r->holds > 0;
    if (held)
        r->holds--;
    if (r->h2o != NULL && !r->responded)
        fn(r, arg);
    if (held)
        h2o_mem_release_shared(r);
}

static void
resume_run(pd_req_t *r, void *arg)
{
    (void)arg;
    run_from(r, r->resume_at);
}

void
pd_req_resume(pd_req_t *r)
{
    pd_req_continue(r, resume_run, NULL);
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
    handler_t *h = (handler_t *)self;
    /* every context is embedded in its loop */
    pd_loop_t *loop = (pd_loop_t *)(void *)((char *)req->conn->ctx - offsetof(pd_loop_t, ctx));

    pd_req_t *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), req_dispose);
    memset(r, 0, sizeof(*r));
    r->h2o = req;
    r->loop = loop;
    r->listener = h->kind;
    r->start_ns = pd_mono_ns();
    r->http_version = req->version;
    pd_arena_init(&r->arena, REQ_ARENA_MAX);
    loop->inflight++;
    atomic_store(&loop->inflight_shared, loop->inflight);
    sentinel_t *st = h2o_mem_alloc_shared(&req->pool, sizeof(*st), sentinel_dispose);
    st->r = r;

    if (pd_id_new("req", r->id, sizeof(r->id)) != 0)
        snprintf(r->id, sizeof(r->id), "req_unavailable");
    r->method = pd_view(req->method.base, req->method.len);
    r->path = pd_view(req->path_normalized.base, req->path_normalized.len);
    if (req->query_at != SIZE_MAX && req->query_at + 1 <= req->path.len)
        r->query = pd_view(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
    if (req->entity.base != NULL)
        r->body = pd_view(req->entity.base, req->entity.len);
    peer_text(req, r->peer, sizeof(r->peer));
    r->content_type = media_type(r);
    if (pd_trace_start(r, pd_req_header(r, "traceparent")) != 0) {
        pd_resp_error(r, 500, "api_error", NULL, "An internal error occurred.", NULL);
        return 0;
    }
    route_request(r);
    return 0;
}

void
pd_edge_register_handler(pd_server_t *s, h2o_hostconf_t *host, pd_listener_kind_t kind)
{
    h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
    handler_t *h = (handler_t *)h2o_create_handler(pc, sizeof(*h));
    h->super.on_req = on_req;
    h->srv = s;
    h->kind = kind;
}
