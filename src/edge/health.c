/* Liveness and readiness: GET /healthz and GET /readyz on both listeners. */
#include <stdio.h>

#include "payd/edge.h"
#include "payd/json.h"

static void
healthz(pd_req_t *r)
{
    pd_resp_json(r, 200, PD_VIEW_LIT("{\"status\":\"ok\"}"));
}

static void
readyz(pd_req_t *r)
{
    char why[256] = "";
    char body[512];
    bool ready = pd_server_ready(pd_loop_server(r->loop), why, sizeof(why));
    if (ready && why[0] == '\0') {
        pd_resp_json(r, 200, PD_VIEW_LIT("{\"status\":\"ready\"}"));
        return;
    }
    /* not ready: why; ready with a degraded dependency (the cache on its fallback): a note */
    pd_buf_t b;
    pd_jw_t w;
    pd_buf_init(&b, sizeof(body));
    pd_jw_init(&w, &b);
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "status", ready ? "ready" : "unavailable");
    pd_jw_kstr(&w, ready ? "degraded" : "reason", why);
    pd_jw_obj_end(&w);
    if (pd_jw_finish(&w) == 0)
        pd_resp_json(r, ready ? 200 : 503, pd_buf_view(&b));
    else if (ready)
        pd_resp_json(r, 200, PD_VIEW_LIT("{\"status\":\"ready\"}"));
    else
        pd_resp_json(r, 503, PD_VIEW_LIT("{\"status\":\"unavailable\"}"));
    pd_buf_free(&b);
}

const pd_route_t pd_health_routes[] = {
    {PD_M_GET | PD_M_HEAD, "/healthz", healthz, PD_L_API | PD_L_ADMIN, PD_ROUTE_PUBLIC, NULL, NULL},
    {PD_M_GET | PD_M_HEAD, "/readyz", readyz, PD_L_API | PD_L_ADMIN, PD_ROUTE_PUBLIC, NULL, NULL},
};
const size_t pd_health_routes_n = sizeof(pd_health_routes) / sizeof(pd_health_routes[0]);
