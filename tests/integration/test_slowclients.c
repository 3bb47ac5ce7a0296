/* Slow clients cannot pin the server: stalled TLS handshakes and trickled requests
 * are cut off by their timeouts, and other clients keep being served meanwhile. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "harness.h"

static pd_h_payd_t payd;

static int
setup(void **state)
{
    (void)state;
    const char *args[] = {"--set", "api.request_timeout_ms=1s", "--set", "api.handshake_timeout_ms=1s", NULL};
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

static int
connect_api(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(payd.api_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
a_stalled_handshake_is_closed(void **state)
{
    (void)state;
    int fd = connect_api();
    double t0 = now_s();
    char b;
    /* we never send a ClientHello; the server must close within its 1 s timeout */
    ssize_t n = read(fd, &b, 1);
    double waited = now_s() - t0;
    assert_true(n <= 0);
    assert_true(waited < 4.0);
    close(fd);
}

static void
a_trickled_request_is_cut_off_while_others_are_served(void **state)
{
    (void)state;
    int fd = connect_api();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    assert_int_equal(SSL_connect(ssl), 1);
    const char *part = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
    assert_int_equal(SSL_write(ssl, part, (int)strlen(part)), (int)strlen(part));
    /* meanwhile a normal client is served */
    pd_h_resp_t r;
    assert_int_equal(pd_h_request(&payd, "GET", "/healthz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    pd_h_resp_free(&r);
    double t0 = now_s();
    char buf[256];
    int n = SSL_read(ssl, buf, sizeof(buf));
    /* either closed outright or answered with an error, never a 200 */
    if (n > 0) {
        buf[n < (int)sizeof(buf) ? n : (int)sizeof(buf) - 1] = '\0';
        assert_null(strstr(buf, " 200 "));
    }
    assert_true(now_s() - t0 < 4.0);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_stalled_handshake_is_closed),
        cmocka_unit_test(a_trickled_request_is_cut_off_while_others_are_served),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
