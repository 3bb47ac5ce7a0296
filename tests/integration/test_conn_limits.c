/*
 * Descriptor exhaustion (the audit: ~1,100 idle TCP connections from one client
 * against a soft limit of 1024 made the accept loop spin on EMFILE and new clients
 * time out). payd runs with RLIMIT_NOFILE 1024 soft and hard, so it cannot raise it.
 *
 * - Defaults: one address floods, its connections past max_connections_per_ip are
 *   refused at accept (flow log), and a client from 127.0.0.2 is served within 100 ms.
 * - No per-address limit and max_connections above the descriptors: accept fails with
 *   EMFILE; payd does not spin (CPU measured) and serves again once the flood ends.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "harness.h"

#define FLOOD 1100

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* opens n idle TCP connections from 127.0.0.1 (connects complete in the kernel's
 * backlog whether or not payd accepts them); fds into out */
static void
flood(uint16_t port, int *out, int n)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < n; i++) {
        out[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(out[i] >= 0);
        int r = connect(out[i], (struct sockaddr *)&sa, sizeof(sa));
        assert_true(r == 0 || errno == EINPROGRESS);
        if (i % 100 == 99)
            usleep(20000); /* let the backlog drain a little, as a real flood's round trips would */
    }
    usleep(300000);
}

static void
unflood(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* a TLS handshake and GET /healthz from src; returns the status (0 on failure), *took the seconds it took */
static int
healthz_from(uint16_t port, const char *src, double *took)
{
    pd_h_tls_t t;
    char resp[64] = "";
    static const char get[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    double t0 = now_s();
    int status = 0;
    if (pd_h_tls_open(&t, port, src, "http/1.1", 2000) != 0) {
        *took = now_s() - t0;
        return 0;
    }
    if (SSL_write(t.ssl, get, (int)sizeof(get) - 1) == (int)sizeof(get) - 1 &&
        SSL_read(t.ssl, resp, (int)sizeof(resp) - 1) > 12 && strncmp(resp, "HTTP/1.1 ", 9) == 0)
        status = (int)strtol(resp + 9, NULL, 10);
    *took = now_s() - t0;
    ERR_clear_error();
    pd_h_tls_close(&t);
    return status;
}

static double
cpu_percent(pid_t pid, int ms)
{
    long hz = sysconf(_SC_CLK_TCK), t0 = pd_h_cpu_ticks(pid);
    double w0 = now_s();
    usleep((useconds_t)ms * 1000);
    long t1 = pd_h_cpu_ticks(pid);
    assert_true(t0 >= 0 && t1 >= t0);
    return 100.0 * (double)(t1 - t0) / (double)hz / (now_s() - w0);
}

static int
count_fds(pid_t pid)
{
    char cmd[64], *out = NULL;
    snprintf(cmd, sizeof(cmd), "/proc/%d/fd", (int)pid);
    const char *argv[] = {"/bin/ls", cmd, NULL};
    int n = 0;
    if (pd_h_run(argv, &out) == 0)
        for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
            n++;
    free(out);
    return n;
}

/* the value of a metric line "NAME VALUE" (labels included in name) on the admin listener, -1 if absent */
static double
metric(const pd_h_payd_t *p, const char *name)
{
    pd_h_req_t q = {.admin = true};
    pd_h_resp_t resp;
    double v = -1;
    if (pd_h_request(p, "GET", "/metrics", &q, &resp) == 0 && resp.status == 200) {
        size_t n = strlen(name);
        for (const char *l = resp.body; l != NULL && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
            if (strncmp(l, name, n) == 0 && l[n] == ' ')
                v = strtod(l + n + 1, NULL);
    }
    pd_h_resp_free(&resp);
    return v;
}

/* "Max open files" soft limit of a process, -1 if unreadable */
static long
soft_nofile(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    FILE *f = fopen(path, "r");
    long soft = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "Max open files", 14) == 0)
            soft = strtol(line + 14, NULL, 10);
    if (f != NULL)
        fclose(f);
    return soft;
}

static void
raise_own_limit(void)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_true(rl.rlim_max >= 2 * FLOOD + 256);
    rl.rlim_cur = rl.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static void
a_flood_from_one_address_does_not_deny_another(void **state)
{
    (void)state;
    pd_h_payd_t payd;
    static int fds[FLOOD];
    double took;

    raise_own_limit();
    pd_h_opts_t o = {.nofile = 1024};
    assert_int_equal(pd_h_start(&payd, &o), 0);
    double refused_before = metric(&payd, "payd_limit_refusals_total{limit=\"max_connections_per_ip\"}");
    flood(payd.api_port, fds, FLOOD);
    int open_fds = count_fds(payd.pid);
    double cpu = cpu_percent(payd.pid, 1000);
    /* the first try also warms up this process's TLS; the one that counts is the second */
    int st = healthz_from(payd.api_port, "127.0.0.2", &took);
    int st2 = healthz_from(payd.api_port, "127.0.0.2", &took);
    print_message("flood of %d from 127.0.0.1: payd holds %d fds, CPU %.1f %%; 127.0.0.2 served %d then %d in %.1f ms\n",
                  FLOOD, open_fds, cpu, st, st2, took * 1000);
    /* the flooding address itself is refused further connections */
    double t1;
    int st3 = healthz_from(payd.api_port, "127.0.0.1", &t1);
    unflood(fds, FLOOD);
    assert_int_equal(st, 200);
    assert_int_equal(st2, 200);
    assert_true(took < 0.100);
    assert_int_equal(st3, 0);
    assert_true(open_fds < 1024);
    assert_true(cpu < 50.0);
    char path[400], *flow = NULL;
    snprintf(path, sizeof(path), "%s/flow.log", payd.dir);
    const char *cat[] = {"/bin/cat", path, NULL};
    assert_int_equal(pd_h_run(cat, &flow), 0);
    assert_non_null(strstr(flow, "\"reason\":\"max_connections_per_ip\""));
    free(flow);
    /* the refusals are counted: 1,100 from one address past its 256, and the one above */
    double refused = metric(&payd, "payd_limit_refusals_total{limit=\"max_connections_per_ip\"}");
    print_message("payd_limit_refusals_total{limit=max_connections_per_ip}: %.0f before, %.0f after\n", refused_before,
                  refused);
    assert_true(refused_before == 0);
    assert_true(refused >= FLOOD - 256);
    char *log = pd_h_log(&payd);
    assert_non_null(strstr(log, "\"msg\":\"connection limits\""));
    free(log);
    assert_int_equal(pd_h_stop(&payd, SIGTERM, 15000), 0);
    pd_h_cleanup(&payd);
}

/* systemd's default is soft 1024 with a higher hard limit: payd raises its soft limit */
static void
the_soft_open_file_limit_is_raised_to_the_hard_one(void **state)
{
    (void)state;
    pd_h_payd_t payd;
    raise_own_limit();
    pd_h_opts_t o = {.nofile = 1024, .nofile_hard = 8192};
    assert_int_equal(pd_h_start(&payd, &o), 0);
    long soft = soft_nofile(payd.pid);
    print_message("started with 1024/8192: payd's soft limit %ld\n", soft);
    assert_int_equal(soft, 8192);
    assert_int_equal(pd_h_stop(&payd, SIGTERM, 15000), 0);
    pd_h_cleanup(&payd);
}

static void
out_of_descriptors_does_not_spin(void **state)
{
    (void)state;
    pd_h_payd_t payd;
    static int fds[FLOOD];
    double took;

    raise_own_limit();
    const char *args[] = {"--set", "api.max_connections=5000", "--set", "api.max_connections_per_ip=0", NULL};
    pd_h_opts_t o = {.args = args, .nofile = 1024};
    assert_int_equal(pd_h_start(&payd, &o), 0);
    flood(payd.api_port, fds, FLOOD);
    double cpu = cpu_percent(payd.pid, 1500);
    print_message("EMFILE flood of %d: payd CPU %.1f %% of a core over 1.5 s\n", FLOOD, cpu);
    unflood(fds, FLOOD);
    /* the flood's connections close; payd serves again (a paused listener resumes within 100 ms) */
    int st = 0;
    double t0 = now_s();
    for (int i = 0; i < 50 && st != 200; i++) {
        st = healthz_from(payd.api_port, "127.0.0.2", &took);
        if (st != 200)
            usleep(100000);
    }
    print_message("served again %.2f s after the flood ended\n", now_s() - t0);
    assert_true(cpu < 50.0);
    assert_int_equal(st, 200);
    char *log = pd_h_log(&payd);
    assert_non_null(strstr(log, "out of file descriptors"));
    free(log);
    assert_int_equal(pd_h_stop(&payd, SIGTERM, 15000), 0);
    pd_h_cleanup(&payd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_flood_from_one_address_does_not_deny_another),
        cmocka_unit_test(the_soft_open_file_limit_is_raised_to_the_hard_one),
        cmocka_unit_test(out_of_descriptors_does_not_spin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
