#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "payd/http.h"

static void h(pd_req_t *r) { (void)r; }

static const pd_route_t routes[] = {
    {PD_M_GET, "/v1/payment_intents", h, PD_L_API, 0, NULL, NULL},
    {PD_M_POST, "/v1/payment_intents", h, PD_L_API, PD_ROUTE_BODY, NULL, NULL},
    {PD_M_GET, "/v1/payment_intents/:id", h, PD_L_API, 0, NULL, NULL},
    {PD_M_POST, "/v1/payment_intents/:id/capture", h, PD_L_API, PD_ROUTE_BODY, NULL, NULL},
    {PD_M_GET, "/metrics", h, PD_L_ADMIN, 0, NULL, NULL},
};

static pd_router_t *
make(void)
{
    pd_router_t *rt;
    assert_int_equal(pd_router_new(&rt), 0);
    assert_int_equal(pd_router_add(rt, routes, sizeof(routes) / sizeof(routes[0])), 0);
    return rt;
}

static void
matches_literal_and_parameter_routes(void **state)
{
    (void)state;
    pd_router_t *rt = make();
    const pd_route_t *r;
    pd_view_t p[PD_ROUTE_MAX_PARAMS];
    size_t np;
    unsigned allowed;
    assert_int_equal(pd_router_match(rt, PD_L_API, PD_VIEW_LIT("POST"), PD_VIEW_LIT("/v1/payment_intents"), &r, p, &np,
                                     &allowed),
                     PD_MATCH_OK);
    assert_ptr_equal(r, &routes[1]);
    assert_int_equal(pd_router_match(rt, PD_L_API, PD_VIEW_LIT("POST"), PD_VIEW_LIT("/v1/payment_intents/pi_123/capture"),
                                     &r, p, &np, &allowed),
                     PD_MATCH_OK);
    assert_ptr_equal(r, &routes[3]);
    assert_int_equal(np, 1);
    assert_true(pd_view_eq_cstr(p[0], "pi_123"));
    /* trailing slash tolerated */
    assert_int_equal(pd_router_match(rt, PD_L_API, PD_VIEW_LIT("GET"), PD_VIEW_LIT("/v1/payment_intents/"), &r, p, &np,
                                     &allowed),
                     PD_MATCH_OK);
    pd_router_free(rt);
}

static void
distinguishes_not_found_from_method_not_allowed(void **state)
{
    (void)state;
    pd_router_t *rt = make();
    const pd_route_t *r;
    pd_view_t p[PD_ROUTE_MAX_PARAMS];
    size_t np;
    unsigned allowed = 0;
    assert_int_equal(pd_router_match(rt, PD_L_API, PD_VIEW_LIT("DELETE"), PD_VIEW_LIT("/v1/payment_intents"), &r, p, &np,
                                     &allowed),
                     PD_MATCH_METHOD);
    assert_int_equal(allowed, PD_M_GET | PD_M_POST);
    char list[64];
    pd_method_list(allowed, list, sizeof(list));
    assert_string_equal(list, "GET, POST");
    assert_int_equal(pd_router_match(rt, PD_L_API, PD_VIEW_LIT("GET"), PD_VIEW_LIT("/v1/nothing"), &r, p, &np, &allowed),
                     PD_MATCH_NOT_FOUND);
    /* empty parameter segment does not match */
    assert_int_equal(pd_router_match(rt, PD_L_API, PD_VIEW_LIT("POST"), PD_VIEW_LIT("/v1/payment_intents//capture"), &r, p,
                                     &np, &allowed),
                     PD_MATCH_NOT_FOUND);
    /* listener separation: /metrics is admin-only */
    assert_int_equal(pd_router_match(rt, PD_L_API, PD_VIEW_LIT("GET"), PD_VIEW_LIT("/metrics"), &r, p, &np, &allowed),
                     PD_MATCH_NOT_FOUND);
    assert_int_equal(pd_router_match(rt, PD_L_ADMIN, PD_VIEW_LIT("GET"), PD_VIEW_LIT("/metrics"), &r, p, &np, &allowed),
                     PD_MATCH_OK);
    assert_int_equal(pd_router_match(rt, PD_L_API, PD_VIEW_LIT("GET"), PD_VIEW_LIT("relative"), &r, p, &np, &allowed),
                     PD_MATCH_NOT_FOUND);
    pd_router_free(rt);
}

static void
rejects_bad_patterns_and_duplicates(void **state)
{
    (void)state;
    pd_router_t *rt = make();
    const pd_route_t dup[] = {{PD_M_GET, "/v1/payment_intents", h, PD_L_API, 0, NULL, NULL}};
    assert_int_equal(pd_router_add(rt, dup, 1), PD_ERR_EXISTS);
    const pd_route_t bad1[] = {{PD_M_GET, "no-slash", h, PD_L_API, 0, NULL, NULL}};
    assert_int_equal(pd_router_add(rt, bad1, 1), PD_ERR_INVALID);
    const pd_route_t bad2[] = {{PD_M_GET, "/a/:/b", h, PD_L_API, 0, NULL, NULL}};
    assert_int_equal(pd_router_add(rt, bad2, 1), PD_ERR_INVALID);
    const pd_route_t bad3[] = {{PD_M_GET, "/a//b", h, PD_L_API, 0, NULL, NULL}};
    assert_int_equal(pd_router_add(rt, bad3, 1), PD_ERR_INVALID);
    pd_router_free(rt);
}

static void
refuses_encoded_slash_and_nul_in_raw_paths(void **state)
{
    (void)state;
    assert_null(pd_path_check_raw(PD_VIEW_LIT("/v1/payment_intents/pi_1/cancel")));
    assert_null(pd_path_check_raw(PD_VIEW_LIT("/v1/customers/a%20b")));
    assert_null(pd_path_check_raw(PD_VIEW_LIT("/v1/x%252Fy"))); /* decodes to a literal "%2F" */
    assert_null(pd_path_check_raw(PD_VIEW_LIT("/%2")));         /* too short to be an escape */
    assert_non_null(pd_path_check_raw(PD_VIEW_LIT("/v1/payment_intents/pi_1%2Fcancel")));
    assert_non_null(pd_path_check_raw(PD_VIEW_LIT("/v1/payment_intents/pi_1%2fcancel")));
    assert_non_null(pd_path_check_raw(PD_VIEW_LIT("/v1/payment_intents/pi_1%00junk")));
    assert_non_null(pd_path_check_raw(PD_VIEW_LIT("%2F")));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_literal_and_parameter_routes),
        cmocka_unit_test(distinguishes_not_found_from_method_not_allowed),
        cmocka_unit_test(rejects_bad_patterns_and_duplicates),
        cmocka_unit_test(refuses_encoded_slash_and_nul_in_raw_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
