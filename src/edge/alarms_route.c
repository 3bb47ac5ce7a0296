/*
 * GET /alarms on the admin listener: the alarm evaluator's states as JSON
 * (docs/alarms.md). The edge does not link the evaluator; payd hands it a render
 * function before the server starts (pd_edge_alarms_set), read-only afterwards.
 */
#include "edge/internal.h"
#include "payd/log.h"

#define ALARMS_MAX (256u * 1024)

static pd_alarms_render_fn render_fn;
static void *render_arg;

void
pd_edge_alarms_set(pd_alarms_render_fn fn, void *arg)
{
    render_fn = fn;
    render_arg = arg;
}

static void
alarms_get(pd_req_t *r)
{
    if (render_fn == NULL) {
        pd_resp_error(r, 404, "invalid_request_error", "alarms_disabled", "The alarm evaluator is not running.", NULL);
        return;
    }
    pd_buf_t b;
    pd_buf_init(&b, ALARMS_MAX);
    int rc = render_fn(render_arg, &b);
    if (rc != 0) {
        pd_log_error("alarms: cannot render", PD_LERR(rc));
        pd_buf_free(&b);
        pd_resp_error(r, 500, "api_error", NULL, "The alarms could not be rendered.", NULL);
        return;
    }
    pd_resp_json(r, 200, pd_buf_view(&b));
    pd_buf_free(&b);
}

const pd_route_t pd_alarms_routes[] = {
    {PD_M_GET, "/alarms", alarms_get, PD_L_ADMIN, PD_ROUTE_PUBLIC, NULL, NULL},
};
const size_t pd_alarms_routes_n = sizeof(pd_alarms_routes) / sizeof(pd_alarms_routes[0]);
