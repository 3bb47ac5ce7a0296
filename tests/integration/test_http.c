/* HTTP behaviour of the edge: protocols, routing errors, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"

static pd_h_payd_t payd;

static int
setup(void **state)
{
    (void)state;
    return pd_h_start(&payd, NULL);
}

static int
teardown(void **state)
{
    (void)state;
    int rc = pd_h_stop(&payd, SIGTERM, 15000);
    pd_h_cleanup(&payd);
    return rc == 0 ? 0 : -1;
}

/* parses an error body and checks its Stripe shape; returns the error object (borrowed from *root) */
static json_t *
stripe_error(const pd_h_resp_t *r, json_t **root)
{
    json_error_t e;
    *root = json_loads(r->body, 0, &e);
    assert_non_null(*root);
    json_t *err = json_object_get(*root, "error");
    assert_non_null(err);
    assert_true(json_is_string(json_object_get(err, "type")));
    assert_true(json_is_string(json_object_get(err, "message")));
    return err;
}

static void
health_over_http1_and_http2(void **state)
{
    (void)state;
    pd_h_resp_t r;
    pd_h_req_t h2 = {.http2 = true};
    assert_int_equal(pd_h_request(&payd, "GET", "/healthz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.http_version, 11);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    pd_h_resp_free(&r);
    assert_int_equal(pd_h_request(&payd, "GET", "/healthz", &h2, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.http_version, 2);
    pd_h_resp_free(&r);
    pd_h_req_t admin = {.admin = true};
    assert_int_equal(pd_h_request(&payd, "GET", "/readyz", &admin, &r), 0);
    assert_int_equal(r.status, 200);
    pd_h_resp_free(&r);
}

static void
unknown_route_is_a_json_404_with_request_id(void **state)
{
    (void)state;
    pd_h_resp_t r;
    json_t *root;
    char rid[64], ct[64], hsts[128];
    assert_int_equal(pd_h_request(&payd, "GET", "/v1/does_not_exist", NULL, &r), 0);
    assert_int_equal(r.status, 404);
    assert_true(pd_h_resp_header(&r, "content-type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");
    assert_true(pd_h_resp_header(&r, "request-id", rid, sizeof(rid)));
    assert_true(pd_h_resp_header(&r, "strict-transport-security", hsts, sizeof(hsts)));
    assert_memory_equal(rid, "req_", 4);
    json_t *err = stripe_error(&r, &root);
    assert_string_equal(json_string_value(json_object_get(err, "type")), "invalid_request_error");
    assert_string_equal(json_string_value(json_object_get(err, "request_id")), rid);
    assert_non_null(strstr(json_string_value(json_object_get(err, "message")), "/v1/does_not_exist"));
    json_decref(root);
    pd_h_resp_free(&r);
}

static void
wrong_method_is_405_with_allow(void **state)
{
    (void)state;
    pd_h_resp_t r;
    json_t *root;
    char allow[64];
    assert_int_equal(pd_h_request(&payd, "DELETE", "/healthz", NULL, &r), 0);
    assert_int_equal(r.status, 405);
    assert_true(pd_h_resp_header(&r, "allow", allow, sizeof(allow)));
    assert_string_equal(allow, "GET, HEAD");
    json_t *err = stripe_error(&r, &root);
    assert_string_equal(json_string_value(json_object_get(err, "code")), "method_not_allowed");
    json_decref(root);
    pd_h_resp_free(&r);
}

static void
oversized_headers_get_431_and_the_connection_survives(void **state)
{
    (void)state;
    pd_h_client_t *c = pd_h_client_new(&payd);
    pd_h_resp_t r;
    json_t *root;
    size_t big = 20000;
    char *hdr = malloc(big + 16);
    memcpy(hdr, "X-Big: ", 7);
    memset(hdr + 7, 'a', big);
    hdr[7 + big] = '\0';
    const char *hdrs[] = {hdr, NULL};
    pd_h_req_t rq = {.headers = hdrs};
    assert_int_equal(pd_h_do(c, "GET", "/healthz", NULL, &r), 0);
    pd_h_resp_free(&r);
    assert_int_equal(pd_h_do(c, "GET", "/healthz", &rq, &r), 0);
    assert_int_equal(r.status, 431);
    json_t *err = stripe_error(&r, &root);
    assert_string_equal(json_string_value(json_object_get(err, "code")), "request_header_fields_too_large");
    json_decref(root);
    pd_h_resp_free(&r);
    /* same connection still serves */
    assert_int_equal(pd_h_do(c, "GET", "/healthz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.connects, 0);
    pd_h_resp_free(&r);
    free(hdr);

    /* too many headers */
    const char *many[80];
    char store[70][32];
    for (int i = 0; i < 70; i++) {
        snprintf(store[i], sizeof(store[i]), "X-H%d: v", i);
        many[i] = store[i];
    }
    many[70] = NULL;
    pd_h_req_t rq2 = {.headers = many};
    assert_int_equal(pd_h_do(c, "GET", "/healthz", &rq2, &r), 0);
    assert_int_equal(r.status, 431);
    pd_h_resp_free(&r);
    pd_h_client_free(c);
}

static void
oversized_body_gets_413_json_and_huge_bodies_are_cut_off(void **state)
{
    (void)state;
    pd_h_resp_t r;
    json_t *root;
    size_t n = 1024 * 1024 + 10; /* just past the 1m default */
    char *body = malloc(n + 1);
    memset(body, 'a', n);
    body[n] = '\0';
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    pd_h_req_t rq = {.body = body, .body_len = n, .headers = form};
    assert_int_equal(pd_h_request(&payd, "POST", "/v1/anything", &rq, &r), 0);
    assert_int_equal(r.status, 413);
    json_t *err = stripe_error(&r, &root);
    assert_string_equal(json_string_value(json_object_get(err, "code")), "request_too_large");
    json_decref(root);
    pd_h_resp_free(&r);
    free(body);

    /* far past the limit: refused by the HTTP layer before buffering, connection closed */
    n = 8 * 1024 * 1024;
    body = malloc(n + 1);
    memset(body, 'a', n);
    body[n] = '\0';
    rq.body = body;
    rq.body_len = n;
    int rc = pd_h_request(&payd, "POST", "/v1/anything", &rq, &r);
    assert_true(rc != 0 || r.status == 413);
    pd_h_resp_free(&r);
    free(body);
    /* and the server is fine */
    assert_int_equal(pd_h_request(&payd, "GET", "/healthz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    pd_h_resp_free(&r);
}

static void
unsupported_media_type_is_415(void **state)
{
    (void)state;
    pd_h_resp_t r;
    json_t *root;
    const char *hdrs[] = {"Content-Type: text/plain", NULL};
    pd_h_req_t rq = {.body = "hello", .headers = hdrs};
    assert_int_equal(pd_h_request(&payd, "POST", "/v1/payment_intents", &rq, &r), 0);
    assert_int_equal(r.status, 415);
    json_t *err = stripe_error(&r, &root);
    assert_string_equal(json_string_value(json_object_get(err, "code")), "unsupported_media_type");
    json_decref(root);
    pd_h_resp_free(&r);
}

static void
body_on_a_route_without_one_is_400(void **state)
{
    (void)state;
    pd_h_resp_t r;
    json_t *root;
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    pd_h_req_t rq = {.body = "{}", .headers = hdrs};
    assert_int_equal(pd_h_request(&payd, "GET", "/healthz", &rq, &r), 0);
    assert_int_equal(r.status, 400);
    json_t *err = stripe_error(&r, &root);
    assert_string_equal(json_string_value(json_object_get(err, "type")), "invalid_request_error");
    json_decref(root);
    pd_h_resp_free(&r);
}

static void
admin_listener_does_not_serve_tls_or_api_routes(void **state)
{
    (void)state;
    pd_h_resp_t r;
    pd_h_req_t admin = {.admin = true};
    assert_int_equal(pd_h_request(&payd, "GET", "/v1/payment_intents", &admin, &r), 0);
    assert_int_equal(r.status, 404);
    pd_h_resp_free(&r);
    /* debug routes are off by default */
    assert_int_equal(pd_h_request(&payd, "GET", "/debug/sleep?ms=1", &admin, &r), 0);
    assert_int_equal(r.status, 404);
    pd_h_resp_free(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(health_over_http1_and_http2),
        cmocka_unit_test(unknown_route_is_a_json_404_with_request_id),
        cmocka_unit_test(wrong_method_is_405_with_allow),
        cmocka_unit_test(oversized_headers_get_431_and_the_connection_survives),
        cmocka_unit_test(oversized_body_gets_413_json_and_huge_bodies_are_cut_off),
        cmocka_unit_test(unsupported_media_type_is_415),
        cmocka_unit_test(body_on_a_route_without_one_is_400),
        cmocka_unit_test(admin_listener_does_not_serve_tls_or_api_routes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
