/* Fuzzes the router/path matcher: the first byte picks the method and listener,
 * the rest is the path. */
#include <stdint.h>
#include <stdlib.h>

#include "payd/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void h(pd_req_t *r) { (void)r; }

static const pd_route_t routes[] = {
    {PD_M_GET | PD_M_HEAD, "/healthz", h, PD_L_API | PD_L_ADMIN, 0, NULL, NULL},
    {PD_M_GET, "/v1/payment_intents", h, PD_L_API, 0, NULL, NULL},
    {PD_M_POST, "/v1/payment_intents", h, PD_L_API, PD_ROUTE_BODY, NULL, NULL},
    {PD_M_GET | PD_M_POST, "/v1/payment_intents/:id", h, PD_L_API, PD_ROUTE_BODY, NULL, NULL},
    {PD_M_POST, "/v1/payment_intents/:id/capture", h, PD_L_API, PD_ROUTE_BODY, NULL, NULL},
    {PD_M_DELETE, "/v1/webhook_endpoints/:id", h, PD_L_API, 0, NULL, NULL},
    {PD_M_GET, "/a/:b/c/:d/e/:f/g/:h", h, PD_L_API, 0, NULL, NULL},
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pd_router_t *rt;
    static const char *methods[] = {"GET", "POST", "DELETE", "HEAD", "PUT", "PATCH", "OPTIONS", "BREW"};
    if (rt == NULL && (pd_router_new(&rt) != 0 || pd_router_add(rt, routes, sizeof(routes) / sizeof(routes[0])) != 0))
        abort();
    if (size == 0)
        return 0;
    const pd_route_t *route;
    pd_view_t params[PD_ROUTE_MAX_PARAMS];
    size_t np = 0;
    unsigned allowed = 0;
    unsigned listener = (data[0] & 8) ? PD_L_ADMIN : PD_L_API;
    pd_match_result_t m = pd_router_match(rt, listener, pd_view_cstr(methods[data[0] & 7]), pd_view(data + 1, size - 1),
                                          &route, params, &np, &allowed);
    if (m == PD_MATCH_OK) {
        if (np > PD_ROUTE_MAX_PARAMS)
            abort();
        for (size_t i = 0; i < np; i++)
            if (params[i].len == 0 || params[i].p < data || params[i].p + params[i].len > data + size)
                abort(); /* parameters must be non-empty views into the input */
    } else if (m == PD_MATCH_METHOD && allowed == 0) {
        abort();
    }
    return 0;
}
