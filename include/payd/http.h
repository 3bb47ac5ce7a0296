/*
 * The request as handlers see it, the response helpers, and the router.
 *
 * Threading: every request belongs to one event-loop thread. Handlers run on it and
 * every pd_resp_* / pd_req_* call must happen on it. Work done on other threads
 * (storage, vault) comes back with pd_loop_post().
 *
 * Lifetime: a handler responds exactly once, either before it returns or later.
 * To respond later it calls pd_req_hold() first; the request then stays valid until
 * the response call, even if the client disconnects in between (pd_req_alive()
 * tells; the response is then dropped).
 */
#ifndef PAYD_HTTP_H
#define PAYD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/arena.h"
#include "payd/buf.h"
#include "payd/id.h"
#include "payd/params.h"

#define PD_ROUTE_MAX_PARAMS 4

struct st_h2o_req_t;
typedef struct pd_loop pd_loop_t;
typedef struct pd_req pd_req_t;
typedef struct pd_route pd_route_t;

typedef void (*pd_handler_fn)(pd_req_t *r);

typedef enum {
    PD_M_GET = 1 << 0,
    PD_M_POST = 1 << 1,
    PD_M_DELETE = 1 << 2,
    PD_M_PUT = 1 << 3,
    PD_M_PATCH = 1 << 4,
    PD_M_HEAD = 1 << 5,
    PD_M_OPTIONS = 1 << 6,
} pd_method_t;

/* Which listener a route is served on. */
typedef enum { PD_L_API = 1 << 0, PD_L_ADMIN = 1 << 1 } pd_listener_kind_t;

enum {
    PD_ROUTE_PUBLIC = 1 << 0, /* no API key needed (health checks) */
    PD_ROUTE_BODY = 1 << 1,   /* takes a form or JSON body (content type enforced: 415) */
};

struct pd_route {
    pd_method_t method;
    const char *pattern; /* "/v1/payment_intents/:id/capture"; also the template in access logs */
    pd_handler_fn handler;
    unsigned listeners; /* PD_L_* */
    unsigned flags;     /* PD_ROUTE_* */
    const struct pd_schema_s *schema; /* parameter model (payd/schema.h): WAF positive model and API
                                       * validation; NULL: the route takes no parameters */
    const char *resource; /* for scopes of restricted keys, e.g. "payment_intents"; NULL if none */
};

struct pd_req {
    struct st_h2o_req_t *h2o; /* NULL once the client is gone */
    pd_loop_t *loop;
    pd_arena_t arena; /* request-scoped memory; freed with the request */
    pd_listener_kind_t listener;
    pd_view_t method;
    pd_view_t path;  /* normalized, without the query */
    pd_view_t query; /* after '?', without it; empty if none */
    pd_view_t body;
    pd_view_t content_type; /* media type only, lower-cased, parameters stripped */
    pd_params_t params;     /* query + body parameters, decoded (filled before PD_STAGE_PARSED filters) */
    const pd_route_t *route;
    pd_view_t path_params[PD_ROUTE_MAX_PARAMS]; /* values of the pattern's :names, in order */
    size_t npath_params;
    char id[PD_ID_MAX]; /* request id, also sent as Request-Id */
    char peer[64];      /* client address (text): the TCP peer, or the X-Forwarded-For hop the WAF
                         * resolved through trusted proxies */
    uint64_t start_ns;
    int http_version;   /* 0x0101, 0x0200 */
    void *auth;         /* set by the authentication filter */
    const char *caller; /* who is calling, safe to log (an API key's id); set by authentication */
    char trace_id[33];  /* W3C trace id: the client's (traceparent) or a new one */
    char stripe_version[48]; /* API listener: the request's Stripe-Version, else payd's (sent back as Stripe-Version) */
    char span_id[17];   /* this request's span, sent back in traceparent */
    uint8_t trace_flags;
    const char *waf_action; /* set by the WAF for the access log: "pass", "log", "block"; NULL: not inspected */
    char waf_rules[96];     /* what the WAF matched: rule ids "942100,942190", or "denylist", "rate-rule" */
    /* response bookkeeping */
    int status;
    size_t resp_bytes;
    bool responded;
    bool close;         /* close the connection after the response (HTTP/1) */
    int holds;
    size_t resume_at;   /* where pd_req_resume goes on (the pipeline position after a pending filter) */
    const char *error_code; /* set by pd_resp_error, for logs */
};

/* --- request accessors --- */
/* The value of the first header with this (lower-case) name, or an empty view with p == NULL. */
pd_view_t pd_req_header(pd_req_t *r, const char *lname);
/* The path parameter with this name (":id" -> "id"), or PD_VIEW_NULL. */
pd_view_t pd_req_param(pd_req_t *r, const char *name);
void pd_req_hold(pd_req_t *r);
bool pd_req_alive(const pd_req_t *r);
/* On r's loop, for work that held r and comes back: ends that hold and runs fn(r,
 * arg) unless the client is gone or r was answered already; r stays valid until fn
 * returns (fn may respond, or hold r again for more work). */
void pd_req_continue(pd_req_t *r, void (*fn)(pd_req_t *r, void *arg), void *arg);

/* --- responses (each releases a hold) --- */
/* Adds a response header; name and value are copied. */
void pd_resp_header(pd_req_t *r, const char *name, const char *value);
/* Sends a JSON body (copied). */
void pd_resp_json(pd_req_t *r, int status, pd_view_t body);
/* Sends a body (copied) of another media type (content_type: a static string, e.g.
 * "text/plain; version=0.0.4; charset=utf-8"). */
void pd_resp_body(pd_req_t *r, int status, const char *content_type, pd_view_t body);
/* A response whose body is made piece by piece, on r's loop: pull(arg, buf, cap, &n,
 * &done) fills up to cap (PD_RESP_STREAM_PIECE) bytes each time the previous piece was
 * sent, and sets done with the last one; an error cuts the body short. length is the
 * body's size (-1: unknown, chunked). dispose(arg) (may be NULL) runs once, when the
 * request ends, whether the body was finished or the client went away. Memory is one
 * piece whatever the size. */
#define PD_RESP_STREAM_PIECE (64 * 1024)
typedef int (*pd_resp_pull_fn)(void *arg, uint8_t *buf, size_t cap, size_t *n, bool *done);
void pd_resp_stream(pd_req_t *r, int status, const char *content_type, int64_t length, pd_resp_pull_fn pull,
                    void (*dispose)(void *arg), void *arg);
/*
 * Sends a Stripe-shaped error: {"error":{"type","code","message","param","request_log_url"?}}.
 * code and param may be NULL (omitted). extra_json, if not NULL, is a string of
 * additional members appended inside "error" (e.g. "\"decline_code\":\"...\"").
 */
/* Request headers in arrival order; names are lower-case. */
size_t pd_req_nheaders(const pd_req_t *r);
bool pd_req_header_at(const pd_req_t *r, size_t i, pd_view_t *name, pd_view_t *value);
void pd_resp_error_x(pd_req_t *r, int status, const char *type, const char *code, const char *message,
                     const char *param, const char *extra_json);
static inline void
pd_resp_error(pd_req_t *r, int status, const char *type, const char *code, const char *message, const char *param)
{
    pd_resp_error_x(r, status, type, code, message, param, NULL);
}
/* 400 invalid_request_error with a parameter. */
void pd_resp_invalid(pd_req_t *r, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* --- HTTP/1 framing --- */
/* Checks a raw HTTP/1.x request head (request line to the empty line) for what could
 * make two parsers disagree on its end: NULL when acceptable, else the reason. */
const char *pd_http1_check_head(const uint8_t *p, size_t n, bool http11);
/* Strict chunked body decoding (RFC 9112 7.1; src/edge/chunked.c), with
 * picohttpparser's contract: decodes buf in place as its bytes arrive (d zeroed
 * before the first call, consume_trailer set to read the trailer section too);
 * *bufsz becomes the number of decoded body bytes; returns -2 while incomplete, -1
 * for a framing error (bare LF, a size not followed by ";" or CRLF, a control
 * character in an extension or trailer, more than 16 hex digits), else the number of
 * bytes after the body, moved to follow the decoded ones. */
typedef struct {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
} pd_chunked_decoder_t;
long pd_chunked_decode(pd_chunked_decoder_t *d, char *buf, size_t *bufsz);

/* Checks a request path as sent, before percent-decoding (without the query): NULL
 * when acceptable, else the reason. Refused: an encoded '/' (%2F) or NUL (%00), which
 * decoding would turn into a segment boundary or a string end. */
const char *pd_path_check_raw(pd_view_t raw);

/* --- trace context (W3C traceparent) --- */
/* Parses a traceparent value; on success writes the 32 hex digit trace id and the flags. */
bool pd_trace_parse(pd_view_t v, char trace_id[33], uint8_t *flags);
/* Continues the trace of a valid traceparent (or starts one) and picks r's span id. */
int pd_trace_start(pd_req_t *r, pd_view_t traceparent) PD_WUR;

/* --- cross-thread completion --- */
typedef struct pd_task pd_task_t;
struct pd_task {
    void *_link[2]; /* h2o_linklist_t */
    void (*fn)(pd_task_t *t);
};
/* Runs t->fn(t) on the loop's thread. Thread-safe; t must stay valid until it runs. */
void pd_loop_post(pd_loop_t *loop, pd_task_t *t);
/* A task run on the loop's own thread after PD_LOOP_LATER_MS (a short back-off, e.g.
 * before a write is tried again). Loop thread only; t must stay valid until it runs. */
#define PD_LOOP_LATER_MS 250
typedef struct pd_later pd_later_t;
struct pd_later {
    void *_entry[4]; /* h2o_timeout_entry_t */
    void (*fn)(pd_later_t *t);
};
void pd_loop_later(pd_loop_t *loop, pd_later_t *t);
/* Index of the loop (0..threads-1). */
int pd_loop_index(const pd_loop_t *loop);

/* --- router --- */
typedef struct pd_router pd_router_t;

int pd_router_new(pd_router_t **out) PD_WUR;
void pd_router_free(pd_router_t *rt);
/* Adds routes (the array must outlive the router). Rejects malformed patterns and
 * duplicate method+pattern pairs. */
int pd_router_add(pd_router_t *rt, const pd_route_t *routes, size_t n) PD_WUR;
typedef enum { PD_MATCH_OK, PD_MATCH_NOT_FOUND, PD_MATCH_METHOD } pd_match_result_t;
/*
 * Matches method+path for a listener. On OK fills *route, params and *nparams. On
 * METHOD (the path exists with other methods) *allowed gets the PD_M_* mask.
 */
pd_match_result_t pd_router_match(const pd_router_t *rt, unsigned listener, pd_view_t method, pd_view_t path,
                                  const pd_route_t **route, pd_view_t *params, size_t *nparams, unsigned *allowed);
/* Parses a method name; 0 if unknown. */
pd_method_t pd_method_parse(pd_view_t m);
/* Writes "GET, POST" for a mask. */
void pd_method_list(unsigned mask, char *out, size_t cap);
/* Iterates routes: returns the i-th route or NULL past the end. */
const pd_route_t *pd_router_at(const pd_router_t *rt, size_t i);

#endif
