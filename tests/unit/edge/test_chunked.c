/* The strict chunked body decoder (src/edge/chunked.c) that libh2o's calls bind to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "payd/http.h"

/* decodes in, fed whole or in pieces of step bytes, the way libh2o feeds its socket
 * buffer: the decoded body stays at the start, new bytes are appended after it.
 * Returns the decoder's last answer; out gets the body, rest what followed it. */
static long
decode(const char *in, size_t step, char *out, size_t cap, char *rest, size_t restcap)
{
    pd_chunked_decoder_t d = {.consume_trailer = 1};
    char buf[512];
    size_t n = strlen(in), fed = 0, total = 0, prev = 0;
    long r = -2;
    rest[0] = '\0';
    assert_true(n < sizeof(buf));
    while (fed < n && r == -2) {
        size_t take = step == 0 || n - fed < step ? n - fed : step;
        memcpy(buf + total, in + fed, take);
        fed += take;
        total += take;
        size_t sz = total - prev;
        r = pd_chunked_decode(&d, buf + prev, &sz);
        if (r >= 0)
            snprintf(rest, restcap, "%.*s%.*s", (int)r, buf + prev + sz, (int)(n - fed), in + fed);
        total = prev + sz;
        prev = total;
    }
    snprintf(out, cap, "%.*s", (int)total, buf);
    return r;
}

static void
decodes_well_framed_bodies_whole_and_byte_by_byte(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "5\r\nhello\r\n0\r\n\r\n",
        "5;name=value\r\nhello\r\n0\r\n\r\n",
        "5 ;ext\r\nhello\r\n0\r\n\r\n",
        "2\r\nhe\r\n3\r\nllo\r\n0\r\nTrailer: x\r\n\r\n",
        "A\r\nhellohello\r\n0\r\n\r\n",
    };
    static const char *const body[] = {"hello", "hello", "hello", "hello", "hellohello"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        for (size_t step = 0; step <= 3; step++) {
            char out[64], rest[64] = "";
            char in[128];
            snprintf(in, sizeof(in), "%sGET /next", ok[i]);
            long r = decode(in, step, out, sizeof(out), rest, sizeof(rest));
            assert_true(r >= 0 && r <= 9); /* the bytes of the last piece that follow the body */
            assert_string_equal(out, body[i]);
            assert_string_equal(rest, "GET /next");
        }
    }
}

static void
refuses_loose_framing(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "0x17\r\n\r\n",                      /* the audit's case: read as 0 + extension "x17" */
        "5\nhello\r\n0\r\n\r\n",             /* bare LF after the size */
        "5\r\nhello\n0\r\n\r\n",             /* bare LF after the data */
        "5\r\nhello\r\r\n0\r\n\r\n",         /* CR CR LF */
        "5\r\nhello\r\n0\r\n\n",             /* bare LF ending the body */
        "5\r\nhello\r\n0\r\nX: y\n\r\n",      /* bare LF in the trailers */
        "5\r\nhello\r\n0\r\n folded\r\n\r\n", /* a folded trailer line */
        "5 junk\r\nhello\r\n0\r\n\r\n",      /* something other than ";" after the size */
        "5;a\x01\r\nhello\r\n0\r\n\r\n",     /* a control character in an extension */
        "zz\r\n",                            /* no hex digit */
        "\r\n",                              /* no size at all */
        "5\r\nhelloX\r\n0\r\n\r\n",          /* data longer than its size */
        "11111111111111111\r\n",             /* 17 hex digits */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (size_t step = 0; step <= 1; step++) {
            char out[64], rest[64];
            long r = decode(bad[i], step, out, sizeof(out), rest, sizeof(rest));
            if (r != -1)
                print_error("case %zu (step %zu): got %ld\n", i, step, r);
            assert_int_equal(r, -1);
        }
    }
}

static void
waits_for_more_input(void **state)
{
    (void)state;
    char out[64], rest[64];
    assert_int_equal(decode("5\r\nhel", 0, out, sizeof(out), rest, sizeof(rest)), -2);
    assert_string_equal(out, "hel");
    assert_int_equal(decode("5\r\nhello\r\n0\r\n", 0, out, sizeof(out), rest, sizeof(rest)), -2);
    assert_int_equal(decode("5\r", 0, out, sizeof(out), rest, sizeof(rest)), -2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decodes_well_framed_bodies_whole_and_byte_by_byte),
        cmocka_unit_test(refuses_loose_framing),
        cmocka_unit_test(waits_for_more_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
