/*
 * Stripe features payd does not implement are refused, never ignored: a request that
 * names a connected account (Stripe-Account) or asks for an expansion payd cannot make
 * (expand.c) would otherwise succeed with an answer other than the one it asked for,
 * and ported code would break at run time instead of at its first call.
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
    return pd_expand_check(r); /* an expansion payd cannot make is refused, never ignored */
}
