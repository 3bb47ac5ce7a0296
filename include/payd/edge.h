/*
 * The network edge: TLS listeners, event-loop threads, request pipeline, graceful
 * drain and reload.
 *
 * Pipeline per request:
 *   limits (431/413/415) -> route match (404/405)
 *   -> PD_STAGE_EARLY filters (WAF protocol + rate rules, authentication, usage plans)
 *   -> parameter decoding (400)
 *   -> PD_STAGE_PARSED filters (WAF signatures over decoded values: an attack is
 *      answered 403 with its rule ids even when the schema would also refuse it)
 *   -> the route's schema, i.e. the positive model (400)
 *   -> the route's handler.
 * Filters run in the order added within a stage; a filter that responds stops the chain.
 */
#ifndef PAYD_EDGE_H
#define PAYD_EDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "payd/config.h"
#include "payd/http.h"

typedef struct {
    int64_t threads;           /* 0: one per core */
    char *listen;              /* API listener host:port (HTTPS) */
    char *tls_cert;            /* PEM: certificate + chain */
    char *tls_key;             /* PEM: private key */
    char *tls_client_ca;       /* if set, clients must present a certificate signed by it (mTLS) */
    int64_t max_header_bytes;  /* sum of header names + values -> 431 */
    int64_t max_headers;       /* header count -> 431 */
    int64_t max_body_bytes;    /* -> 413 */
    int64_t request_timeout_ms;/* time to receive a whole request (slowloris) */
    int64_t idle_timeout_ms;   /* HTTP/2 idle connection timeout */
    int64_t handshake_timeout_ms;
    int64_t drain_timeout_ms;  /* SIGTERM: time allowed for in-flight requests */
    int64_t drain_grace_ms;    /* SIGTERM: idle HTTP/1 connections stay open this long (capped by drain_timeout_ms) */
    int64_t drain_delay_ms;    /* SIGTERM: /readyz fails this long before the listeners close (capped likewise) */
    bool hsts;
    int64_t max_connections;        /* API connections open at once, all loops; 0: the open-file limit less 256 */
    int64_t max_connections_per_ip; /* API connections open at once from one address; 0: no limit */
    int64_t http2_max_streams_per_s;/* streams a client opens per HTTP/2 connection and second; more -> GOAWAY */
    int64_t http2_max_resets_per_s; /* RST_STREAM frames per HTTP/2 connection and second; more -> GOAWAY */
} pd_edge_api_config_t;

typedef struct {
    char *listen;      /* admin listener (plain HTTP, loopback) */
    bool allow_public; /* permit a non-loopback admin address */
    bool test_endpoints; /* GET /debug/sleep?ms=N on the admin listener (tests of draining) */
} pd_edge_admin_config_t;

/* The private-subnet rule, checked from the configuration alone (--check-config and
 * before start): a non-loopback [admin] listen needs allow_public. PD_ERR_CONFIG with
 * the reason in err otherwise. */
int pd_edge_admin_check(const pd_edge_admin_config_t *admin, char *err, size_t cap) PD_WUR;
/* Registers [api] and [admin] in cfg (defaults applied). */
int pd_edge_config_register(pd_config_t *cfg, pd_edge_api_config_t *api, pd_edge_admin_config_t *admin) PD_WUR;

typedef struct pd_server pd_server_t;

/* A filter returns 0 to pass the request on, 1 after it responded, or
 * PD_FILTER_PENDING after pd_req_hold(r): it answers later, on r's loop, by
 * responding (which releases the hold) or by pd_req_resume(r) (which passes the
 * request on to the next filter and releases the hold; nothing runs when the client
 * is gone). For work that must not run on the loop (a store read). */
#define PD_FILTER_PENDING 2
typedef int (*pd_filter_fn)(pd_req_t *r, void *arg);
typedef struct {
    pd_filter_fn fn;
    void *arg;
} pd_filter_t;
void pd_req_resume(pd_req_t *r);
typedef enum { PD_STAGE_EARLY, PD_STAGE_PARSED } pd_stage_t;
/* A readiness probe: true when ready (a note in why marks a degraded dependency:
 * /readyz shows it as "degraded"); else writes a short reason into why. */
typedef bool (*pd_ready_fn)(void *arg, char *why, size_t cap);

int pd_server_new(pd_server_t **out, const pd_edge_api_config_t *api, const pd_edge_admin_config_t *admin,
                  pd_router_t *router) PD_WUR;
/* Filters and probes must be added before pd_server_start. */
int pd_server_add_filter(pd_server_t *s, pd_stage_t stage, pd_filter_fn fn, void *arg) PD_WUR;
int pd_server_add_probe(pd_server_t *s, const char *name, pd_ready_fn fn, void *arg) PD_WUR;
/* Called when a request is finished (response written or client gone), on its loop
 * thread, before its memory is released: for access logs and metrics. */
typedef void (*pd_finish_fn)(pd_req_t *r, void *arg);
int pd_server_on_finish(pd_server_t *s, pd_finish_fn fn, void *arg) PD_WUR;

/* Called on every loop thread at least every 100 ms, and once more with final = true
 * when the loop ends (for flushing per-thread buffers). One callback; set before start. */
typedef void (*pd_tick_fn)(bool final, void *arg);
void pd_server_on_tick(pd_server_t *s, pd_tick_fn fn, void *arg);

/* A connection as the flow log sees it, when it closes. Strings live until the callback returns. */
typedef struct {
    pd_listener_kind_t listener;
    const char *peer;          /* client address */
    uint16_t peer_port, local_port;
    const char *tls_version;   /* "TLSv1.3"; NULL when no TLS session was established */
    const char *tls_cipher;
    const char *client_cn;     /* subject CN of a verified client certificate (mTLS), else NULL */
    uint64_t bytes_in, bytes_out; /* TLS: bytes on the wire (records); plain HTTP (admin): TCP payload */
    bool bytes_in_known;
    uint64_t duration_ms;
    const char *reject_reason; /* NULL when the connection was accepted */
} pd_conn_info_t;
typedef void (*pd_conn_fn)(const pd_conn_info_t *c, void *arg);
/* Called on the loop thread when a connection closes. One callback; set before start. */
void pd_server_on_conn_close(pd_server_t *s, pd_conn_fn fn, void *arg);

/* Called on the loop thread when the edge itself refuses a request as malformed (its
 * HTTP/1 framing, an encoded '/' or NUL in its path), before the 400 goes out: the
 * WAF counts it toward the client address's rate rule. One callback; set before start. */
typedef void (*pd_refused_fn)(pd_req_t *r, void *arg);
void pd_server_on_refused(pd_server_t *s, pd_refused_fn fn, void *arg);

/* The edge's own counters, since start (for /metrics). */
typedef struct {
    uint64_t refused_max_connections; /* connections refused at accept: max_connections reached */
    uint64_t refused_per_ip;          /* ... max_connections_per_ip reached */
    uint64_t out_of_fds;              /* accept failed with EMFILE/ENFILE (the listener then rests 100 ms) */
    uint64_t h2_calm;                 /* HTTP/2 connections closed with GOAWAY ENHANCE_YOUR_CALM */
    uint64_t h2_request_timeouts;     /* HTTP/2 streams reset: request not received within request_timeout_ms */
    uint64_t malformed;               /* requests refused as malformed (framing, encoded path) */
    uint64_t open_connections;        /* API connections open now */
    uint64_t max_connections;         /* the limit in effect */
} pd_edge_stats_t;
void pd_server_stats(pd_server_t *s, pd_edge_stats_t *out);

/* Loads TLS and binds the listeners (refusing a public admin address unless allowed),
 * starting nothing: payd does it as root, before it drops root. Errors are logged with
 * the reason. */
int pd_server_bind(pd_server_t *s) PD_WUR;
/* Binds (unless pd_server_bind ran) and starts the loops. */
int pd_server_start(pd_server_t *s) PD_WUR;
/* Bound ports (useful with port 0). */
uint16_t pd_server_api_port(const pd_server_t *s);
uint16_t pd_server_admin_port(const pd_server_t *s);
/* Reloads the certificate and key; new connections use them, open ones keep theirs.
 * On failure the old certificate stays in use. */
int pd_server_reload_tls(pd_server_t *s) PD_WUR;
/*
 * Graceful stop. First /readyz answers 503 "draining" and responses say Connection:
 * close, while the listeners stay open for drain_delay_ms (so a load balancer's health
 * check takes the node out before it refuses connections). Then every loop at once:
 * accepts what is already queued on its listeners and closes them (new connections
 * are refused), and asks HTTP/2 clients to go away (GOAWAY). Open connections stay served: a request that arrives on
 * one is answered normally. Idle HTTP/1 connections (no request in progress, nothing
 * received) are closed once drain_grace_ms has passed; h2o closes HTTP/2 connections
 * about a second after its GOAWAY when they have no stream open. A loop ends when it
 * has no request in flight and no connection open; the drain ends when every loop
 * has, or at drain_timeout_ms, whichever comes first. Returns the number of requests
 * still in flight at the deadline (0 for a clean drain). Called once, from the
 * thread that started the server.
 */
int pd_server_drain(pd_server_t *s);
void pd_server_free(pd_server_t *s);

/* An application object the handlers reach through their request's loop. */
void pd_server_set_user(pd_server_t *s, void *user);
void *pd_server_user(pd_server_t *s);

int pd_server_nloops(const pd_server_t *s);
pd_loop_t *pd_server_loop(pd_server_t *s, int i);
pd_server_t *pd_loop_server(pd_loop_t *loop);
/* True until draining starts and every probe passes; why explains a false, or
 * holds the first ready probe's note ("" when none). */
bool pd_server_ready(pd_server_t *s, char *why, size_t cap);
bool pd_server_draining(const pd_server_t *s);
/* True when every started loop has turned (finished an iteration of its event loop)
 * within the last max_age_ms; false with why naming the first loop that has not, or
 * has exited. Any thread; for the systemd watchdog (payd/sdnotify.h). */
bool pd_server_loops_alive(pd_server_t *s, uint64_t max_age_ms, char *why, size_t cap);

/* The routes of the edge itself (/healthz, /readyz on both listeners). */
extern const pd_route_t pd_health_routes[];
extern const size_t pd_health_routes_n;
/* GET /metrics on the admin listener: pd_mx in the Prometheus text format (404 while
 * metrics are disabled). */
extern const pd_route_t pd_metrics_routes[];
extern const size_t pd_metrics_routes_n;
/* GET /alarms on the admin listener: the JSON array render(arg, out) appends (the
 * alarm evaluator's pd_alarms_render); 404 until set. Set once, before the server starts. */
typedef int (*pd_alarms_render_fn)(void *arg, pd_buf_t *out);
extern const pd_route_t pd_alarms_routes[];
extern const size_t pd_alarms_routes_n;
void pd_edge_alarms_set(pd_alarms_render_fn fn, void *arg);
/* Gives the route label of payd_http_requests_total and its histogram its values: the
 * template of every route of rt ("/v1/payment_intents/{id}") and "unmatched". Once,
 * after every route is added and before the server starts. A no-op without pd_mx. */
int pd_edge_metrics_routes(const pd_router_t *rt) PD_WUR;
/* The dashboard on the admin listener (docs/dashboard.md): GET /dashboard (the page),
 * /dashboard/app.js, /dashboard/app.css, and /dashboard/data?range=1h|24h (the history
 * of payd/dashboard.h as JSON; 404 while metrics are disabled). */
extern const pd_route_t pd_dashboard_routes[];
extern const size_t pd_dashboard_routes_n;
/* Collectors of the edge's own counters (pd_server_stats) in pd_mx. */
int pd_edge_metrics_attach(pd_server_t *s) PD_WUR;
/* Admin-only test routes, added only when [admin] test_endpoints is on. */
extern const pd_route_t pd_debug_routes[];
extern const size_t pd_debug_routes_n;

/* TLS: a server context with the policy (TLS 1.2+, AEAD + forward secrecy suites,
 * server preference, ALPN h2 + http/1.1). err receives the reason on failure. */
struct ssl_ctx_st;
int pd_tls_server_ctx(struct ssl_ctx_st **out, const char *cert, const char *key, const char *client_ca, char *err,
                      size_t errcap) PD_WUR;

/*
 * Dev mode certificates: ensures dir/ca.pem + ca-key.pem (a local CA) and
 * dir/server.pem + server-key.pem (signed by it, SANs localhost, 127.0.0.1, ::1)
 * exist, creating what is missing. Keys are written 0600.
 */
int pd_devcert_ensure(const char *dir, char *err, size_t errcap) PD_WUR;

#endif
