/*
 * Request smuggling defences over raw TLS: every framing two HTTP parsers could
 * read differently is answered 400 and the connection closed (whether libh2o or
 * payd's own head check refuses it); well-framed requests keep their connection.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static pd_h_payd_t payd;

#define POST "POST /v1/payment_intents HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
#define BODY "amount=100&currency=usd"
#define CHUNKED "17\r\n" BODY "\r\n0\r\n\r\n"
#define NUL_RAW "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-A: a\0b\r\n\r\n"

typedef struct {
    const char *name;
    const char *raw;
    size_t len; /* 0: strlen */
    const char *status; /* expected status line prefix */
    bool closed;        /* the server must close the connection */
} smuggle_case_t;

static const smuggle_case_t cases[] = {
    {"Content-Length and Transfer-Encoding", POST "Content-Length: 23\r\nTransfer-Encoding: chunked\r\n\r\n" CHUNKED, 0,
     "HTTP/1.1 400", true},
    {"Transfer-Encoding then Content-Length", POST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" CHUNKED, 0,
     "HTTP/1.1 400", true},
    {"two different Content-Lengths", POST "Content-Length: 23\r\nContent-Length: 5\r\n\r\n" BODY, 0, "HTTP/1.1 400",
     true},
    {"two equal Content-Lengths", POST "Content-Length: 23\r\nContent-Length: 23\r\n\r\n" BODY, 0, "HTTP/1.1 400", true},
    {"Content-Length with a sign", POST "Content-Length: +23\r\n\r\n" BODY, 0, "HTTP/1.1 400", true},
    {"obfuscated Transfer-Encoding value", POST "Transfer-Encoding: xchunked\r\n\r\n" CHUNKED, 0, "HTTP/1.1 400", true},
    {"Transfer-Encoding list", POST "Transfer-Encoding: chunked, identity\r\n\r\n" CHUNKED, 0, "HTTP/1.1 400", true},
    {"space before the colon", POST "Transfer-Encoding : chunked\r\n\r\n" CHUNKED, 0, "HTTP/1.1 400", true},
    {"two Transfer-Encodings", POST "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" CHUNKED, 0,
     "HTTP/1.1 400", true},
    {"Transfer-Encoding on HTTP/1.0",
     "POST /v1/payment_intents HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n"
     "Transfer-Encoding: chunked\r\n\r\n" CHUNKED,
     0, "HTTP/1.1 400", true},
    {"bad chunk size", POST "Transfer-Encoding: chunked\r\n\r\nzz\r\n" BODY "\r\n0\r\n\r\n", 0, "HTTP/1.1 400", true},
    {"overflowing chunk size", POST "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n" BODY "\r\n0\r\n\r\n", 0,
     "HTTP/1.1 400", true},
    {"bare LF line ends", "GET /healthz HTTP/1.1\nHost: localhost\n\n", 0, "HTTP/1.1 400", true},
    {"one bare LF", "GET /healthz HTTP/1.1\r\nHost: localhost\nX-A: b\r\n\r\n", 0, "HTTP/1.1 400", true},
    {"obsolete line folding", "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n b\r\n\r\n", 0, "HTTP/1.1 400",
     true},
    {"NUL in a header", NUL_RAW, sizeof(NUL_RAW) - 1, "HTTP/1.1 400", true},
    {"no Host on HTTP/1.1", "GET /healthz HTTP/1.1\r\n\r\n", 0, "HTTP/1.1 400", true},
    {"two Hosts", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, "HTTP/1.1 400", true},
    /* well framed: answered, and the connection stays open */
    {"chunked body", POST "Transfer-Encoding: chunked\r\n\r\n" CHUNKED, 0, "HTTP/1.1 401", false},
    {"Content-Length body", POST "Content-Length: 23\r\n\r\n" BODY, 0, "HTTP/1.1 401", false},
    {"plain GET", "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", 0, "HTTP/1.1 200", false},
};

static void
each_case(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const smuggle_case_t *c = &cases[i];
        char *out = NULL;
        bool closed = false;
        size_t len = c->len ? c->len : strlen(c->raw);
        assert_int_equal(pd_h_raw_http1(payd.api_port, c->raw, len, &out, &closed), 0);
        bool ok = strncmp(out, c->status, strlen(c->status)) == 0 && closed == c->closed;
        if (!ok) {
            print_error("%s: expected \"%s\" %s, got \"%.40s\" %s\n", c->name, c->status,
                        c->closed ? "and close" : "and keep-alive", out, closed ? "closed" : "open");
            failures++;
        }
        free(out);
    }
    assert_int_equal(failures, 0);
}

/* pipelined requests: the raw head of the second is checked where the first left off */
static void
pipelined_requests_are_each_answered(void **state)
{
    (void)state;
    char *out = NULL;
    bool closed = true;
    const char *raw = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
                      POST "Content-Length: 23\r\n\r\n" BODY
                      "GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_int_equal(pd_h_raw_http1(payd.api_port, raw, strlen(raw), &out, &closed), 0);
    const char *second = strstr(out + 1, "HTTP/1.1 401");
    assert_non_null(second);
    assert_non_null(strstr(second, "HTTP/1.1 200"));
    assert_memory_equal(out, "HTTP/1.1 200", 12);
    assert_false(closed);
    free(out);
}

static void
refusals_are_logged(void **state)
{
    (void)state;
    char *out = NULL;
    bool closed;
    const char *raw = POST "Content-Length: 23\r\nTransfer-Encoding: chunked\r\n\r\n" CHUNKED;
    assert_int_equal(pd_h_raw_http1(payd.api_port, raw, strlen(raw), &out, &closed), 0);
    /* Stripe-shaped and specific */
    assert_non_null(strstr(out, "\"code\":\"invalid_http_request\""));
    assert_non_null(strstr(out, "both Content-Length and Transfer-Encoding"));
    free(out);
    char *log = pd_h_log(&payd);
    /* one warning per 10 s with a count, however many refusals (test_parsing checks the limit) */
    assert_non_null(strstr(log, "refused malformed requests"));
    free(log);
}

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
    int rc = pd_h_stop(&payd, SIGTERM, 10000);
    pd_h_cleanup(&payd);
    return rc;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_case),
        cmocka_unit_test(pipelined_requests_are_each_answered),
        cmocka_unit_test(refusals_are_logged),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
