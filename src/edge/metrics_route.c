/*
 * GET /metrics on the admin listener, and the edge's own recording: every finished
 * request by method, route template and status (payd/metrics_payd.h).
 *
 * The route label is the route's template with "{name}" for its parameters
 * (":id" in the route table), never the path as sent; a request that matched no route
 * is "unmatched". The templates are known once every route is added
 * (pd_edge_metrics_routes); a route pointer finds its label index through a table
 * built then and only read afterwards, so the loops look it up without a lock.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "edge/internal.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/time.h"

#define MAX_TEMPLATES 257 /* the router's 256 routes, and "unmatched" */
#define TEMPLATE_MAX 160
#define MAP_SLOTS 1024   /* > 2 x routes: short probes */
#define SCRAPE_MAX (16u * 1024 * 1024)

static char templates[MAX_TEMPLATES][TEMPLATE_MAX];
static const char *template_list[MAX_TEMPLATES + 1];
static size_t ntemplates;
static struct {
    const pd_route_t *route;
    size_t idx;
} route_map[MAP_SLOTS];

static size_t
slot_of(const pd_route_t *route)
{
    return (size_t)(((uintptr_t)route >> 4) * 2654435761u) % MAP_SLOTS;
}

/* ":id" segments become "{id}" */
static int
template_of(const char *pattern, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = pattern; *p != '\0'; p++) {
        bool param = *p == ':' && (p == pattern || p[-1] == '/');
        const char *end = p;
        if (param)
            while (end[1] != '\0' && end[1] != '/')
                end++;
        int n = param ? snprintf(out + o, cap - o, "{%.*s}", (int)(end - p), p + 1) : snprintf(out + o, cap - o, "%c", *p);
        if (n < 0 || (size_t)n >= cap - o)
            return PD_ERR_TOOBIG;
        o += (size_t)n;
        p = end;
    }
    return 0;
}

int
pd_edge_metrics_routes(const pd_router_t *rt)
{
    if (pd_mx == NULL)
        return 0;
    const pd_route_t *route;
    int r;
    ntemplates = 0;
    memset(route_map, 0, sizeof(route_map));
    for (size_t i = 0; (route = pd_router_at(rt, i)) != NULL; i++) {
        char t[TEMPLATE_MAX];
        if ((r = template_of(route->pattern, t, sizeof(t))) != 0)
            return r;
        size_t idx = 0;
        while (idx < ntemplates && strcmp(templates[idx], t) != 0)
            idx++;
        if (idx == ntemplates) {
            if (ntemplates == MAX_TEMPLATES - 1)
                return PD_ERR_TOOBIG;
            memcpy(templates[ntemplates], t, sizeof(t));
            template_list[ntemplates] = templates[ntemplates];
            ntemplates++;
        }
        size_t s = slot_of(route);
        while (route_map[s].route != NULL)
            s = (s + 1) % MAP_SLOTS;
        route_map[s].route = route;
        route_map[s].idx = idx;
    }
    snprintf(templates[ntemplates], TEMPLATE_MAX, "unmatched");
    template_list[ntemplates] = templates[ntemplates];
    ntemplates++;
    template_list[ntemplates] = NULL;
    if ((r = pd_metrics_set_values(pd_mx, PD_MX_HTTP_REQUESTS, 1, template_list, ntemplates)) != 0 ||
        (r = pd_metrics_set_values(pd_mx, PD_MX_HTTP_DURATION, 1, template_list, ntemplates)) != 0)
        return r;
    return 0;
}

static size_t
route_index(const pd_route_t *route)
{
    if (route == NULL || ntemplates == 0)
        return ntemplates - 1; /* "unmatched" (SIZE_MAX, dropped, before the templates exist) */
    for (size_t s = slot_of(route);; s = (s + 1) % MAP_SLOTS) {
        if (route_map[s].route == route)
            return route_map[s].idx;
        if (route_map[s].route == NULL)
            return ntemplates - 1;
    }
}

static size_t
method_index(pd_view_t method)
{
    unsigned m = pd_method_parse(method);
    if (m == 0)
        return PD_MX_METHOD_OTHER;
    return (size_t)__builtin_ctz(m); /* the PD_M_* bits are in the label list's order */
}

void
pd_edge_metrics_request(const pd_req_t *r)
{
    if (pd_mx == NULL)
        return;
    size_t idx[3] = {method_index(r->method), route_index(r->route), pd_mx_http_code(r->status)};
    pd_metric_add(pd_mx, PD_MX_HTTP_REQUESTS, pd_metric_series(pd_mx, PD_MX_HTTP_REQUESTS, idx), 1);
    pd_metric_observe(pd_mx, PD_MX_HTTP_DURATION, pd_metric_series(pd_mx, PD_MX_HTTP_DURATION, idx),
                      (double)(pd_mono_ns() - r->start_ns) / 1e9);
}

static void
metrics_get(pd_req_t *r)
{
    if (pd_mx == NULL) {
        pd_resp_error(r, 404, "invalid_request_error", "metrics_disabled",
                      "Metrics are disabled ([metrics] enabled = false).", NULL);
        return;
    }
    pd_buf_t b;
    pd_buf_init(&b, SCRAPE_MAX);
    int rc = pd_metrics_render(pd_mx, &b);
    if (rc != 0) {
        pd_log_error("metrics: cannot render", PD_LERR(rc));
        pd_buf_free(&b);
        pd_resp_error(r, 500, "api_error", NULL, "The metrics could not be rendered.", NULL);
        return;
    }
    pd_resp_body(r, 200, PD_METRICS_CONTENT_TYPE, pd_buf_view(&b));
    pd_buf_free(&b);
}

const pd_route_t pd_metrics_routes[] = {
    {PD_M_GET, "/metrics", metrics_get, PD_L_ADMIN, PD_ROUTE_PUBLIC, NULL, NULL},
};
const size_t pd_metrics_routes_n = sizeof(pd_metrics_routes) / sizeof(pd_metrics_routes[0]);

/* --- the edge's own counters --- */

static void
edge_refusals(void *arg, double *out, size_t n)
{
    pd_edge_stats_t st;
    pd_server_stats(arg, &st);
    if (n < 4)
        return;
    out[PD_MX_EDGE_OUT_OF_FDS] = (double)st.out_of_fds;
    out[PD_MX_EDGE_HTTP2_CALM] = (double)st.h2_calm;
    out[PD_MX_EDGE_HTTP2_REQUEST_TIMEOUT] = (double)st.h2_request_timeouts;
    out[PD_MX_EDGE_MALFORMED] = (double)st.malformed;
}

static void
max_connections(void *arg, double *out, size_t n)
{
    pd_edge_stats_t st;
    pd_server_stats(arg, &st);
    if (n >= 1)
        out[0] = (double)st.max_connections;
}

int
pd_edge_metrics_attach(pd_server_t *s)
{
    int r;
    if (pd_mx == NULL)
        return 0;
    if ((r = pd_metrics_set_collector(pd_mx, PD_MX_EDGE_REFUSALS, edge_refusals, s)) != 0 ||
        (r = pd_metrics_set_collector(pd_mx, PD_MX_HTTP_MAX_CONNECTIONS, max_connections, s)) != 0)
        return r;
    return 0;
}
