/* payd-vault's metrics and its HTTP/1.0 listener (vault/metrics.h), driven the way the
 * server's poll loop drives it, on a real vault state. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "payd/time.h"
#include "payd/vault_ipc.h"
#include "vault/internal.h"
#include "vault/metrics.h"

static char dir[64], db_path[128];
static const uint8_t root[PD_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6,
                                         7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2};
static pd_vault_state_t *v;
static pd_vmx_http_t *h;

static int
three(void *arg)
{
    (void)arg;
    return 3;
}

static int
setup(void **state)
{
    (void)state;
    char err[256];
    snprintf(dir, sizeof(dir), "/tmp/payd-vmx-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(db_path, sizeof(db_path), "%s/vault.db", dir);
    assert_int_equal(pd_vault_state_open(&v, db_path, root), 0);
    assert_int_equal(pd_vmx_open(v, three, NULL), 0);
    assert_int_equal(pd_vmx_listen(&h, "127.0.0.1:0", err, sizeof(err)), 0);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    pd_vmx_free(h);
    pd_vmx_close();
    pd_vault_state_close(v);
    char p[200];
    snprintf(p, sizeof(p), "%s/vault.db-wal", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/vault.db-shm", dir);
    unlink(p);
    unlink(db_path);
    rmdir(dir);
    return 0;
}

static int
connect_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* sends req (NULL: nothing) and runs the loop until the server closes; the response into out */
static size_t
exchange(const char *req, char *out, size_t cap, int max_rounds)
{
    int fd = connect_to(pd_vmx_port(h));
    if (req != NULL)
        assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    size_t n = 0;
    for (int round = 0; round < max_rounds; round++) {
        struct pollfd pfd[1 + PD_VMX_MAX_CONNS];
        int np = pd_vmx_pollfds(h, pfd);
        assert_true(poll(pfd, (nfds_t)np, 50) >= 0);
        pd_vmx_handle(h, pfd, np);
        ssize_t r;
        while ((r = recv(fd, out + n, cap - 1 - n, MSG_DONTWAIT)) > 0)
            n += (size_t)r;
        if (r == 0)
            break;
    }
    close(fd);
    out[n] = '\0';
    return n;
}

static void
serves_get_metrics(void **state)
{
    (void)state;
    static char out[1 << 20];
    pd_vmx_operation(PD_MSG_TOKENIZE, 0, 120000);
    pd_vmx_operation(PD_MSG_TOKENIZE, PD_ERR_INVALID, 1000);
    pd_vmx_operation(PD_MSG_SECRETS_GET_STAGE, 0, 1000); /* shares secrets.get with SECRET_GET */
    pd_vmx_operation(PD_MSG_SECRET_GET, 0, 1000);
    pd_vmx_operation(0x1234, 0, 1000);
    pd_vmx_violation();
    exchange("GET /metrics HTTP/1.0\r\n\r\n", out, sizeof(out), 100);
    assert_true(strncmp(out, "HTTP/1.0 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(out, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(strstr(out, "payd_vault_operations_total{op=\"card.tokenize\",result=\"ok\"} 1\n"));
    assert_non_null(strstr(out, "payd_vault_operations_total{op=\"card.tokenize\",result=\"error\"} 1\n"));
    assert_non_null(strstr(out, "payd_vault_operations_total{op=\"secrets.get\",result=\"ok\"} 2\n"));
    assert_non_null(strstr(out, "payd_vault_operations_total{op=\"unknown\",result=\"ok\"} 1\n"));
    assert_non_null(strstr(out, "payd_vault_operation_duration_seconds_bucket{op=\"card.tokenize\",le=\"0.00025\"} 2\n"));
    assert_non_null(strstr(out, "payd_vault_violations_total 1\n"));
    assert_non_null(strstr(out, "payd_vault_peers 3\n"));
    assert_non_null(strstr(out, "payd_vault_cvc_held 0\n"));
    assert_non_null(strstr(out, "payd_vault_cvc_slots 65536\n"));
    /* the body is exactly Content-Length bytes */
    const char *cl = strstr(out, "Content-Length: "), *body = strstr(out, "\r\n\r\n");
    assert_non_null(cl);
    assert_int_equal(strtoul(cl + 16, NULL, 10), strlen(body + 4));
}

static void
refuses_anything_else(void **state)
{
    (void)state;
    static char out[8192];
    exchange("GET /other HTTP/1.1\r\nHost: x\r\n\r\n", out, sizeof(out), 100);
    assert_true(strncmp(out, "HTTP/1.0 404 Not Found\r\n", 24) == 0);
    exchange("POST /metrics HTTP/1.0\r\n\r\n", out, sizeof(out), 100);
    assert_true(strncmp(out, "HTTP/1.0 405 Method Not Allowed\r\n", 33) == 0);
    exchange("hello\r\n\r\n", out, sizeof(out), 100);
    assert_true(strncmp(out, "HTTP/1.0 400 Bad Request\r\n", 26) == 0);
    static char big[4096]; /* 4095 bytes without the end of the head: the buffer is full, nothing unread */
    memset(big, 'a', sizeof(big) - 1);
    memcpy(big, "GET /metrics HTTP/1.0\r\nX: ", 26);
    exchange(big, out, sizeof(out), 100);
    assert_true(strncmp(out, "HTTP/1.0 431 ", 13) == 0);
}

static void
a_silent_client_is_dropped_after_its_deadline(void **state)
{
    (void)state;
    static char out[64];
    uint64_t t0 = pd_mono_ms();
    assert_int_equal(exchange(NULL, out, sizeof(out), 200), 0); /* 200 rounds of 50 ms: 10 s at most */
    uint64_t took = pd_mono_ms() - t0;
    assert_true(took >= 1900 && took < 5000);
}

static void
listen_address_checked(void **state)
{
    (void)state;
    pd_vmx_http_t *x = NULL;
    char err[256];
    assert_int_equal(pd_vmx_listen(&x, "0.0.0.0:0", err, sizeof(err)), PD_ERR_CONFIG);
    assert_non_null(strstr(err, "not a loopback address"));
    assert_int_equal(pd_vmx_listen(&x, "192.168.1.1:0", err, sizeof(err)), PD_ERR_CONFIG);
    assert_int_equal(pd_vmx_listen(&x, "nonsense", err, sizeof(err)), PD_ERR_CONFIG);
    assert_int_equal(pd_vmx_listen(&x, "[::1]:0", err, sizeof(err)) == 0 || x == NULL, 1); /* IPv6 loopback, if any */
    pd_vmx_free(x);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(serves_get_metrics),
        cmocka_unit_test(refuses_anything_else),
        cmocka_unit_test(a_silent_client_is_dropped_after_its_deadline),
        cmocka_unit_test(listen_address_checked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
