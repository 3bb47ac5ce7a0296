/* The raw HTTP/1 head check and the W3C traceparent parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "payd/http.h"

static const char *
check(const char *head, bool http11)
{
    return pd_http1_check_head((const uint8_t *)head, strlen(head), http11);
}

static void
accepts_well_framed_heads(void **state)
{
    (void)state;
    assert_null(check("GET / HTTP/1.1\r\nHost: a\r\n\r\n", true));
    assert_null(check("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", true)); /* one leading empty line */
    assert_null(check("POST / HTTP/1.1\r\nhost: a\r\nContent-Length: 5\r\n\r\nhello", true));
    assert_null(check("POST / HTTP/1.1\r\nHOST: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", true));
    assert_null(check("GET / HTTP/1.0\r\n\r\n", false)); /* Host is optional on 1.0 */
    assert_null(check("GET / HTTP/1.1\r\nHost: a\r\nX-Tab:\tv\r\n\r\n", true));
}

static void
refuses_ambiguous_framing(void **state)
{
    (void)state;
    assert_string_equal(check("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", true),
                        "both Content-Length and Transfer-Encoding");
    assert_string_equal(check("POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\nContent-Length: 5\r\n\r\n", true),
                        "more than one Content-Length");
    assert_string_equal(check("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
                              true),
                        "more than one Transfer-Encoding");
    assert_string_equal(check("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", false),
                        "Transfer-Encoding on HTTP/1.0");
    assert_string_equal(check("GET / HTTP/1.1\nHost: a\n\n", true), "a line ends with a bare LF");
    assert_string_equal(check("GET / HTTP/1.1\r\nHost: a\n\r\n", true), "a line ends with a bare LF");
    assert_string_equal(check("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", true), "obsolete line folding");
    assert_string_equal(check("GET / HTTP/1.1\r\n Host: a\r\n\r\n", true), "obsolete line folding");
    assert_string_equal(check("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", true),
                        "a control character in the request head");
    assert_string_equal(check("GET / HTTP/1.1\r\nHost a\r\n\r\n", true), "a header line without a colon");
    assert_string_equal(check("GET / HTTP/1.1\r\n\r\n", true), "no Host header");
    assert_string_equal(check("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", true), "more than one Host header");
    assert_string_equal(check("GET / HTTP/1.1\r\nHost: a\r\n", true), "the request head is incomplete");
    assert_string_equal(check("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", true), "no Host header");
}

static void
parses_traceparent(void **state)
{
    (void)state;
    char id[33];
    uint8_t flags = 0;
    assert_true(pd_trace_parse(PD_VIEW_LIT("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), id, &flags));
    assert_string_equal(id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_int_equal(flags, 1);
    /* a later version may append fields */
    assert_true(pd_trace_parse(PD_VIEW_LIT("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what"), id, &flags));
    assert_int_equal(flags, 0);
    static const char *bad[] = {
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* version 00 is exactly 55 chars */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff is invalid */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* all-zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* all-zero parent id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* upper case */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",    /* short */
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(pd_trace_parse(pd_view_cstr(bad[i]), id, &flags));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_well_framed_heads),
        cmocka_unit_test(refuses_ambiguous_framing),
        cmocka_unit_test(parses_traceparent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
