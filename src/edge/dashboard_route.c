/*
 * The dashboard's routes on the admin listener (payd/edge.h): the page and its two
 * assets from payd's own binary (payd/dashboard.h), and the history as JSON.
 *
 * The page loads nothing from elsewhere, and the Content-Security-Policy says so:
 * scripts, styles and fetches from this origin only, no inline script or style, no
 * framing, no plugins, no forms. The script and the style are files of their own
 * (/dashboard/app.js, /dashboard/app.css) rather than inline, so the policy needs no
 * nonce or hash and stays the same for every response.
 */
#include <string.h>

#include "payd/dashboard.h"
#include "payd/edge.h"
#include "payd/log.h"
#include "payd/schema.h"

#define DATA_MAX (4u * 1024 * 1024) /* the 24 h ring: 1440 points x 17 columns, ~12 bytes each */

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                          "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static void
asset(pd_req_t *r, const char *type, const unsigned char *p, size_t len)
{
    pd_resp_header(r, "content-security-policy", csp);
    pd_resp_header(r, "x-content-type-options", "nosniff");
    pd_resp_header(r, "x-frame-options", "DENY");
    pd_resp_header(r, "referrer-policy", "no-referrer");
    pd_resp_body(r, 200, type, pd_view(p, len));
}

static void
page_get(pd_req_t *r)
{
    asset(r, "text/html; charset=utf-8", pd_dash_html, pd_dash_html_len);
}

static void
js_get(pd_req_t *r)
{
    asset(r, "text/javascript; charset=utf-8", pd_dash_js, pd_dash_js_len);
}

static void
css_get(pd_req_t *r)
{
    asset(r, "text/css; charset=utf-8", pd_dash_css, pd_dash_css_len);
}

static void
data_get(pd_req_t *r)
{
    /* the schema allows only range=1h|24h */
    const pd_param_t *p = pd_params_get(&r->params, "range");
    bool coarse = p != NULL && pd_view_eq_cstr(p->value, "24h");
    pd_buf_t b;
    pd_buf_init(&b, DATA_MAX);
    int rc = pd_dash_json(coarse, &b);
    if (rc == PD_ERR_UNAVAILABLE) {
        pd_buf_free(&b);
        pd_resp_error(r, 404, "invalid_request_error", "dashboard_disabled",
                      "The dashboard's history needs metrics ([metrics] enabled = false).", NULL);
        return;
    }
    if (rc != 0) {
        pd_log_error("dashboard: cannot render the history", PD_LERR(rc));
        pd_buf_free(&b);
        pd_resp_error(r, 500, "api_error", NULL, "The dashboard's history could not be rendered.", NULL);
        return;
    }
    pd_resp_header(r, "x-content-type-options", "nosniff");
    pd_resp_json(r, 200, pd_buf_view(&b));
    pd_buf_free(&b);
}

static const char *const ranges[] = {"1h", "24h", NULL};
static const pd_field_t data_fields[] = {{"range", PD_FT_ENUM, 0, 0, 0, ranges, 0}};
static const pd_schema_t data_schema = PD_SCHEMA(data_fields);

const pd_route_t pd_dashboard_routes[] = {
    {PD_M_GET, "/dashboard", page_get, PD_L_ADMIN, PD_ROUTE_PUBLIC, NULL, NULL},
    {PD_M_GET, "/dashboard/app.js", js_get, PD_L_ADMIN, PD_ROUTE_PUBLIC, NULL, NULL},
    {PD_M_GET, "/dashboard/app.css", css_get, PD_L_ADMIN, PD_ROUTE_PUBLIC, NULL, NULL},
    {PD_M_GET, "/dashboard/data", data_get, PD_L_ADMIN, PD_ROUTE_PUBLIC, &data_schema, NULL},
};
const size_t pd_dashboard_routes_n = sizeof(pd_dashboard_routes) / sizeof(pd_dashboard_routes[0]);
