/*
 * Stripe features payd does not implement yet are refused, never ignored: a request
 * that names a connected account (Stripe-Account) or asks for an expansion (expand[])
 * would otherwise succeed with an answer other than the one it asked for, and ported
 * code would break at run time instead of at its first call.
 */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"

/* a PD_STAGE_PARSED filter on the /v1 routes: 1 after it refused the request */
int
pd_unsupported_filter(pd_req_t *r, void *arg)
{
    (void)arg;
    if (r->auth == NULL)
        return 0; /* not an authenticated /v1 request */
    if (pd_req_header(r, "stripe-account").p != NULL) {
        pd_resp_error(r, 400, "invalid_request_error", "account_invalid",
                      "Connected accounts (the Stripe-Account header) are not supported: a key acts on its own "
                      "merchant's account only.",
                      NULL);
        return 1;
    }
    for (size_t i = 0; i < r->params.n; i++) {
        pd_view_t k = r->params.v[i].key;
        if (k.len >= 6 && memcmp(k.p, "expand", 6) == 0 && (k.len == 6 || k.p[6] == '[')) {
            char msg[200];
            pd_view_t v = r->params.v[i].value;
            snprintf(msg, sizeof(msg), "This property cannot be expanded (%.*s).", (int)(v.len > 80 ? 80 : v.len),
                     (const char *)v.p);
            pd_resp_error(r, 400, "invalid_request_error", "parameter_invalid", msg, "expand");
            return 1;
        }
    }
    return 0;
}
