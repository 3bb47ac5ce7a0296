/*
 * HTTP/2 abuse over raw frames: the rapid reset (CVE-2023-44487: HEADERS then
 * RST_STREAM, again and again, on one connection) ends in GOAWAY ENHANCE_YOUR_CALM
 * and a closed connection, with payd's CPU back to idle; a request body trickled on
 * an HTTP/2 stream is cut at request_timeout_ms, as on HTTP/1, while the connection's
 * other streams are served.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static pd_h_payd_t payd;

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
setup(void **state)
{
    (void)state;
    const char *args[] = {"--set", "api.request_timeout_ms=1s", NULL};
    pd_h_opts_t o = {.args = args};
    return pd_h_start(&payd, &o);
}

static int
teardown(void **state)
{
    (void)state;
    int rc = pd_h_stop(&payd, SIGTERM, 15000);
    pd_h_cleanup(&payd);
    return rc == 0 ? 0 : -1;
}

/* payd's CPU use over ms milliseconds, in percent of one core */
static double
cpu_percent(int ms)
{
    long hz = sysconf(_SC_CLK_TCK), t0 = pd_h_cpu_ticks(payd.pid);
    double w0 = now_s();
    usleep((useconds_t)ms * 1000);
    long t1 = pd_h_cpu_ticks(payd.pid);
    double w1 = now_s();
    assert_true(t0 >= 0 && t1 >= t0);
    return 100.0 * (double)(t1 - t0) / (double)hz / (w1 - w0);
}

static void
rapid_reset_gets_goaway_enhance_your_calm(void **state)
{
    (void)state;
    pd_h_h2_t *h = calloc(1, sizeof(*h));
    static uint8_t batch[64 * 1024];
    uint8_t payload[256];
    uint8_t type, flags;
    uint32_t stream, id = 1, goaway_code = 0;
    size_t len;
    bool goaway = false, closed = false;
    long sent = 0;

    assert_int_equal(pd_h_h2_open(h, payd.api_port, 2000), 0);
    double t0 = now_s();
    /* at most 5 s of flood; without the mitigation payd processes every stream and never says GOAWAY */
    while (!closed && now_s() - t0 < 5.0) {
        size_t n = 0;
        for (int i = 0; i < 200; i++, id += 2) {
            static const uint8_t cancel[4] = {0, 0, 0, 8};
            n += pd_h_h2_headers(batch + n, sizeof(batch) - n, id, 0x5, "GET", "/healthz", NULL);
            n += pd_h_h2_frame(batch + n, sizeof(batch) - n, 3, 0, id, cancel, 4);
            sent++;
        }
        if (pd_h_h2_write(h, batch, n) != 0)
            closed = true;
        /* what the server said meanwhile */
        for (;;) {
            int r = pd_h_h2_read(h, 0, &type, &flags, &stream, payload, sizeof(payload), &len);
            if (r == 1)
                break;
            if (r < 0) {
                closed = true;
                break;
            }
            if (type == 7 && len >= 8) {
                goaway = true;
                goaway_code = (uint32_t)payload[4] << 24 | (uint32_t)payload[5] << 16 | (uint32_t)payload[6] << 8 |
                              payload[7];
            }
        }
    }
    /* after GOAWAY the server closes: drain what is left */
    for (double t1 = now_s(); !closed && now_s() - t1 < 3.0;) {
        int r = pd_h_h2_read(h, 200, &type, &flags, &stream, payload, sizeof(payload), &len);
        if (r < 0)
            closed = true;
        else if (r == 0 && type == 7 && len >= 8) {
            goaway = true;
            goaway_code = (uint32_t)payload[4] << 24 | (uint32_t)payload[5] << 16 | (uint32_t)payload[6] << 8 |
                          payload[7];
        }
    }
    double took = now_s() - t0;
    print_message("rapid reset: %ld streams sent in %.2f s before the close; GOAWAY %s, code %u\n", sent, took,
                  goaway ? "received" : "not received", goaway_code);
    pd_h_h2_close(h);
    free(h);
    assert_true(goaway);
    assert_int_equal(goaway_code, 0xb); /* ENHANCE_YOUR_CALM */
    assert_true(closed);
    /* payd is idle again */
    double cpu = cpu_percent(1000);
    print_message("payd CPU after the close: %.1f %% of a core\n", cpu);
    assert_true(cpu < 15.0);
    /* and serves new connections */
    pd_h_resp_t r;
    pd_h_req_t rq = {.http2 = true};
    assert_int_equal(pd_h_request(&payd, "GET", "/healthz", &rq, &r), 0);
    assert_int_equal(r.status, 200);
    pd_h_resp_free(&r);
    char *log = pd_h_log(&payd);
    assert_non_null(strstr(log, "GOAWAY ENHANCE_YOUR_CALM"));
    free(log);
}

static void
a_trickled_http2_body_is_cut_at_the_deadline(void **state)
{
    (void)state;
    pd_h_h2_t *h = calloc(1, sizeof(*h));
    uint8_t buf[4096], payload[4096];
    uint8_t type, flags;
    uint32_t stream;
    size_t len, n;
    const char *hdrs[] = {"content-type: application/x-www-form-urlencoded", "content-length: 100", NULL};

    assert_int_equal(pd_h_h2_open(h, payd.api_port, 2000), 0);
    n = pd_h_h2_headers(buf, sizeof(buf), 1, 0x4, "POST", "/v1/payment_intents", hdrs);
    assert_true(n > 0);
    assert_int_equal(pd_h_h2_write(h, buf, n), 0);
    double t0 = now_s(), reset_at = -1;
    uint32_t reset_code = 0;
    /* one byte every 250 ms: 100 bytes would take 25 s */
    while (reset_at < 0 && now_s() - t0 < 4.0) {
        n = pd_h_h2_frame(buf, sizeof(buf), 0, 0, 1, "a", 1);
        if (pd_h_h2_write(h, buf, n) != 0)
            break;
        double until = now_s() + 0.25;
        while (reset_at < 0 && now_s() < until) {
            int r = pd_h_h2_read(h, 50, &type, &flags, &stream, payload, sizeof(payload), &len);
            assert_true(r >= 0);
            if (r == 0 && type == 3 && stream == 1) {
                reset_at = now_s() - t0;
                reset_code = (uint32_t)payload[3];
            }
            /* a response on stream 1 would mean the request was taken before its body arrived */
            assert_false(r == 0 && type == 1 && stream == 1);
        }
    }
    print_message("slow HTTP/2 body: stream reset after %.2f s (code %u); request_timeout_ms = 1000\n", reset_at,
                  reset_code);
    assert_true(reset_at >= 0.9 && reset_at < 2.0);
    assert_int_equal(reset_code, 8); /* CANCEL */
    /* the connection itself goes on: another stream on it is served */
    n = pd_h_h2_headers(buf, sizeof(buf), 3, 0x5, "GET", "/healthz", NULL);
    assert_int_equal(pd_h_h2_write(h, buf, n), 0);
    bool answered = false;
    for (double t1 = now_s(); !answered && now_s() - t1 < 3.0;) {
        int r = pd_h_h2_read(h, 200, &type, &flags, &stream, payload, sizeof(payload), &len);
        assert_true(r >= 0);
        /* ":status: 200" is static table entry 8: the indexed byte 0x88 */
        if (r == 0 && type == 1 && stream == 3)
            answered = len > 0 && payload[0] == 0x88;
    }
    assert_true(answered);
    pd_h_h2_close(h);
    free(h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rapid_reset_gets_goaway_enhance_your_calm),
        cmocka_unit_test(a_trickled_http2_body_is_cut_at_the_deadline),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
