/* Process lifecycle: graceful drain on SIGTERM, certificate reload on SIGHUP, TLS
 * versions, and configuration errors that stop the start with a precise message. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "harness.h"
#include "expect_exit.h"

typedef struct {
    pd_h_payd_t *p;
    const char *path;
    pd_h_resp_t resp;
    int rc;
} bg_req_t;

static void *
bg_request(void *arg)
{
    bg_req_t *b = arg;
    pd_h_req_t rq = {.admin = true, .timeout_ms = 20000};
    b->rc = pd_h_request(b->p, "GET", b->path, &rq, &b->resp);
    return NULL;
}

static void
sleep_ms(long ms)
{
    usleep((useconds_t)ms * 1000);
}

static void
sigterm_drains_in_flight_requests_then_exits_0(void **state)
{
    (void)state;
    pd_h_payd_t p = {0};
    const char *args[] = {"--set", "admin.test_endpoints=true", NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);

    bg_req_t b = {.p = &p, .path = "/debug/sleep?ms=1500"};
    pthread_t t;
    pthread_create(&t, NULL, bg_request, &b);
    sleep_ms(300); /* the request is now in flight */
    kill(p.pid, SIGTERM);
    sleep_ms(200);
    /* no new connections while draining */
    pd_h_resp_t r;
    assert_int_not_equal(pd_h_request(&p, "GET", "/healthz", NULL, &r), 0);
    pd_h_resp_free(&r);
    pthread_join(t, NULL);
    assert_int_equal(b.rc, 0);
    assert_int_equal(b.resp.status, 200);
    assert_string_equal(b.resp.body, "{\"slept\":true}");
    pd_h_resp_free(&b.resp);
    assert_int_equal(pd_h_stop(&p, 0, 5000), 0); /* exit code 0 */
    pd_h_cleanup(&p);
}

/* With api.drain_delay_ms, SIGTERM fails /readyz first while the node still accepts and
 * serves new connections; the listeners close only after the delay (a load balancer's
 * check takes the node out before it refuses anything). Without the delay the second
 * check fails: the listeners close at SIGTERM. */
static void
readyz_fails_before_the_listeners_close(void **state)
{
    (void)state;
    pd_h_payd_t p = {0};
    const char *args[] = {"--set", "api.drain_delay_ms=1500", NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);
    kill(p.pid, SIGTERM);
    sleep_ms(300);
    pd_h_req_t admin = {.admin = true};
    pd_h_resp_t r;
    assert_int_equal(pd_h_request(&p, "GET", "/readyz", &admin, &r), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "draining"));
    pd_h_resp_free(&r);
    /* a new connection is still accepted and served, and told to close */
    assert_int_equal(pd_h_request(&p, "GET", "/healthz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "connection: close"));
    pd_h_resp_free(&r);
    sleep_ms(1600); /* past the delay: the listeners are closed */
    assert_int_not_equal(pd_h_request(&p, "GET", "/healthz", NULL, &r), 0);
    pd_h_resp_free(&r);
    assert_int_equal(pd_h_stop(&p, 0, 5000), 0); /* exit code 0 */
    pd_h_cleanup(&p);
}

static void
drain_is_bounded_by_its_timeout(void **state)
{
    (void)state;
    pd_h_payd_t p = {0};
    const char *args[] = {"--set", "admin.test_endpoints=true", "--set", "api.drain_timeout_ms=500", NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);
    bg_req_t b = {.p = &p, .path = "/debug/sleep?ms=20000"};
    pthread_t t;
    pthread_create(&t, NULL, bg_request, &b);
    sleep_ms(300);
    kill(p.pid, SIGTERM);
    assert_int_equal(pd_h_stop(&p, 0, 3000), 0); /* exits well before the request would finish */
    pthread_join(t, NULL);
    assert_int_not_equal(b.resp.status, 200);
    pd_h_resp_free(&b.resp);
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "drain deadline passed"));
    free(log);
    pd_h_cleanup(&p);
}

static void
tls_versions_below_1_2_are_refused(void **state)
{
    (void)state;
    pd_h_payd_t p = {0};
    pd_h_tls_info_t info;
    assert_int_equal(pd_h_start(&p, NULL), 0);
    assert_int_not_equal(pd_h_tls_probe(p.api_port, TLS1_VERSION, TLS1_VERSION, NULL, &info), 0);
    assert_int_not_equal(pd_h_tls_probe(p.api_port, TLS1_1_VERSION, TLS1_1_VERSION, NULL, &info), 0);
    assert_int_equal(pd_h_tls_probe(p.api_port, TLS1_2_VERSION, TLS1_2_VERSION, NULL, &info), 0);
    assert_string_equal(info.version, "TLSv1.2");
    assert_non_null(strstr(info.cipher, "GCM") ? info.cipher : strstr(info.cipher, "CHACHA20"));
    assert_int_equal(pd_h_tls_probe(p.api_port, TLS1_3_VERSION, TLS1_3_VERSION, NULL, &info), 0);
    assert_string_equal(info.version, "TLSv1.3");
    assert_string_equal(info.alpn, "h2");
    /* TLS 1.2 with only CBC/SHA1 suites offered: no shared cipher */
    assert_int_not_equal(pd_h_tls_probe(p.api_port, TLS1_2_VERSION, TLS1_2_VERSION,
                                        "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:AES128-SHA:AES256-SHA256", &info),
                         0);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

static void
sighup_reloads_the_certificate_without_dropping_connections(void **state)
{
    (void)state;
    pd_h_payd_t p = {0};
    pd_h_tls_info_t info;
    char cmd[1024];
    assert_int_equal(pd_h_start(&p, NULL), 0);
    assert_int_equal(pd_h_tls_probe(p.api_port, TLS1_2_VERSION, TLS1_3_VERSION, NULL, &info), 0);
    assert_string_equal(info.subject_cn, "localhost");

    pd_h_client_t *c = pd_h_client_new(&p);
    pd_h_resp_t r;
    assert_int_equal(pd_h_do(c, "GET", "/healthz", NULL, &r), 0);
    pd_h_resp_free(&r);

    /* a new certificate signed by the same CA, written over the old files */
    snprintf(cmd, sizeof(cmd),
             "cd %s/tls && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout new-key.pem "
             "-subj /CN=reloaded.local -out new.csr 2>/dev/null && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf && "
             "openssl x509 -req -in new.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 "
             "-extfile ext.cnf -out new.pem 2>/dev/null && "
             /* payd reloads as its own user: the operator gives it the new files */
             "{ [ $(id -u) -ne 0 ] || chown payd:payd new-key.pem new.pem; } && "
             "mv new-key.pem server-key.pem && mv new.pem server.pem",
             p.dir);
    assert_int_equal(system(cmd), 0);
    kill(p.pid, SIGHUP);
    int seen = 0;
    for (int i = 0; i < 50 && !seen; i++) {
        sleep_ms(100);
        if (pd_h_tls_probe(p.api_port, TLS1_2_VERSION, TLS1_3_VERSION, NULL, &info) == 0 &&
            strcmp(info.subject_cn, "reloaded.local") == 0)
            seen = 1;
    }
    assert_true(seen);
    /* the connection opened before the reload still works */
    assert_int_equal(pd_h_do(c, "GET", "/healthz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.connects, 0);
    pd_h_resp_free(&r);
    pd_h_client_free(c);

    /* a broken certificate on reload keeps the current one */
    char path[400];
    snprintf(path, sizeof(path), "%s/tls/server.pem", p.dir);
    assert_int_equal(pd_h_write_file(path, "not a certificate\n"), 0);
    kill(p.pid, SIGHUP);
    sleep_ms(300);
    assert_int_equal(pd_h_tls_probe(p.api_port, TLS1_2_VERSION, TLS1_3_VERSION, NULL, &info), 0);
    assert_string_equal(info.subject_cn, "reloaded.local");
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "TLS reload failed; keeping the current certificate"));
    free(log);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

static void
bad_configuration_stops_the_start_with_a_precise_message(void **state)
{
    (void)state;
    char dir[] = "/tmp/payd-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[300], tls[300], cert[400], key[400], datadir[350];
    snprintf(path, sizeof(path), "%s/payd.ini", dir);
    snprintf(tls, sizeof(tls), "%s/tls", dir);
    snprintf(datadir, sizeof(datadir), "--data-dir=%s", dir);

    assert_int_equal(pd_h_write_file(path, "[api]\nlisten = 127.0.0.1:0\nmax_headers = lots\n"), 0);
    const char *a1[] = {"--config", path, "--check-config", NULL};
    char want[512];
    snprintf(want, sizeof(want), "%s:3: [api] max_headers = \"lots\": invalid value; accepted: an integer from 8 to 96",
             path);
    expect_exit(a1, 2, want);

    assert_int_equal(pd_h_write_file(path, "[api]\nlistne = 127.0.0.1:0\n"), 0);
    snprintf(want, sizeof(want), "%s:2: unknown key \"listne\" in [api]; accepted: listen,", path);
    expect_exit(a1, 2, want);

    assert_int_equal(pd_h_write_file(path, "[apis]\nlisten = 1\n"), 0);
    expect_exit(a1, 2, "unknown section [apis]; accepted: [server], [api], [admin]");

    const char *a2[] = {"--config", "/nonexistent/payd.ini", "--check-config", NULL};
    expect_exit(a2, 2, "/nonexistent/payd.ini: cannot open");

    const char *a3[] = {"--frobnicate", NULL};
    expect_exit(a3, 2, "unknown or incomplete option \"--frobnicate\"");

    const char *a4[] = {"--set", "api.threads=-1", "--check-config", "--dev", datadir, NULL};
    expect_exit(a4, 2, "--set: [api] threads = \"-1\": invalid value; accepted: an integer from 0 to 256");

    /* production mode needs certificates */
    const char *a5[] = {"--check-config", NULL};
    expect_exit(a5, 2, "tls_cert and tls_key are required");

    /* valid file: exits 0 */
    snprintf(cert, sizeof(cert), "%s/server.pem", tls);
    snprintf(key, sizeof(key), "%s/server-key.pem", tls);
    const char *a6[] = {"--dev", datadir, "--check-config", NULL};
    expect_exit(a6, 0, "configuration ok");
    char ini[1200];
    snprintf(ini, sizeof(ini), "[server]\ndata_dir = %s\n[api]\ntls_cert = %s\ntls_key = %s\nthreads = 2\n", dir, cert,
             key);
    assert_int_equal(pd_h_write_file(path, ini), 0);
    expect_exit(a1, 0, "configuration ok");

    /* unreadable key */
    snprintf(ini, sizeof(ini), "[api]\ntls_cert = %s\ntls_key = %s/missing.pem\n", cert, dir);
    assert_int_equal(pd_h_write_file(path, ini), 0);
    expect_exit(a1, 2, "cannot load private key");

    char cleanup[400];
    snprintf(cleanup, sizeof(cleanup), "rm -rf %s", dir);
    assert_int_equal(system(cleanup), 0);
}

static void
environment_overrides_are_validated(void **state)
{
    (void)state;
    pd_h_payd_t p = {0};
    const char *env[] = {"PAYD_API_MAX_HEADERS=lots", NULL};
    pd_h_opts_t o = {.env = env, .no_wait = true};
    assert_int_equal(pd_h_start(&p, &o), 0);
    assert_int_equal(pd_h_stop(&p, 0, 10000), 2);
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "PAYD_API_MAX_HEADERS: [api] max_headers = \"lots\": invalid value"));
    free(log);
    pd_h_cleanup(&p);

    const char *env2[] = {"PAYD_API_LISTN=1", NULL};
    pd_h_opts_t o2 = {.env = env2, .no_wait = true};
    assert_int_equal(pd_h_start(&p, &o2), 0);
    assert_int_equal(pd_h_stop(&p, 0, 10000), 2);
    log = pd_h_log(&p);
    assert_non_null(strstr(log, "PAYD_API_LISTN: no such setting"));
    free(log);
    pd_h_cleanup(&p);
}

static void
a_public_admin_listener_is_refused_unless_allowed(void **state)
{
    (void)state;
    pd_h_payd_t p = {0};
    /* a configuration error (exit 2), found before anything is bound, and by --check-config too */
    const char *args[] = {"--admin-listen", "0.0.0.0:0", NULL};
    pd_h_opts_t o = {.args = args, .no_wait = true};
    assert_int_equal(pd_h_start(&p, &o), 0);
    assert_int_equal(pd_h_stop(&p, 0, 10000), 2);
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "private-subnet rule"));
    free(log);
    pd_h_cleanup(&p);
    char dir[] = "/tmp/payd-check-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *check[] = {PAYD_BIN, "--dev", "--data-dir", dir, "--admin-listen", "0.0.0.0:9", "--check-config", NULL};
    char *out = NULL;
    assert_int_equal(pd_h_run(check, &out), 2);
    assert_non_null(strstr(out, "private-subnet rule"));
    assert_null(strstr(out, "configuration ok"));
    free(out);
    const char *rm[] = {"/bin/rm", "-rf", dir, NULL};
    assert_int_equal(pd_h_run(rm, &out), 0);
    free(out);
}

/* a second payd on a data dir in use stops with exit 1 and names the directory; the
 * first one goes on serving */
static void
a_second_payd_on_one_data_dir_is_refused(void **state)
{
    (void)state;
    pd_h_payd_t a = {0}, b = {0};
    assert_int_equal(pd_h_start(&a, NULL), 0);
    pd_h_opts_t o = {.reuse_dir = a.dir, .no_wait = true};
    assert_int_equal(pd_h_start(&b, &o), 0);
    assert_int_equal(pd_h_stop(&b, 0, 15000), 1);
    char *log = pd_h_log(&a);
    assert_non_null(strstr(log, "the data dir is taken"));
    assert_non_null(strstr(log, a.dir));
    free(log);
    pd_h_resp_t r;
    pd_h_req_t rq = {.admin = true};
    assert_int_equal(pd_h_request(&a, "GET", "/readyz", &rq, &r), 0);
    assert_int_equal(r.status, 200);
    pd_h_resp_free(&r);
    assert_int_equal(pd_h_stop(&a, SIGTERM, 20000), 0);
    /* once it is gone the directory is free again */
    pd_h_opts_t again = {.reuse_dir = a.dir};
    assert_int_equal(pd_h_start(&a, &again), 0);
    assert_int_equal(pd_h_stop(&a, SIGTERM, 20000), 0);
    pd_h_cleanup(&a);
}

/* a second payd on a port another process listens on stops with exit 1 naming the
 * address, instead of splitting that port's connections with it (SO_REUSEPORT) */
static void
a_port_in_use_is_refused(void **state)
{
    (void)state;
    pd_h_payd_t a = {0}, b = {0};
    assert_int_equal(pd_h_start(&a, NULL), 0);
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", a.api_port);
    const char *args[] = {"--listen", listen, NULL};
    pd_h_opts_t o = {.args = args, .no_wait = true};
    assert_int_equal(pd_h_start(&b, &o), 0);
    assert_int_equal(pd_h_stop(&b, 0, 20000), 1);
    char *log = pd_h_log(&b);
    assert_non_null(strstr(log, "another process already listens on this address"));
    assert_non_null(strstr(log, listen));
    free(log);
    pd_h_cleanup(&b);
    pd_h_resp_t r;
    pd_h_req_t rq = {.admin = true};
    assert_int_equal(pd_h_request(&a, "GET", "/readyz", &rq, &r), 0);
    assert_int_equal(r.status, 200);
    pd_h_resp_free(&r);
    assert_int_equal(pd_h_stop(&a, SIGTERM, 20000), 0);
    pd_h_cleanup(&a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sigterm_drains_in_flight_requests_then_exits_0),
        cmocka_unit_test(readyz_fails_before_the_listeners_close),
        cmocka_unit_test(drain_is_bounded_by_its_timeout),
        cmocka_unit_test(tls_versions_below_1_2_are_refused),
        cmocka_unit_test(sighup_reloads_the_certificate_without_dropping_connections),
        cmocka_unit_test(bad_configuration_stops_the_start_with_a_precise_message),
        cmocka_unit_test(environment_overrides_are_validated),
        cmocka_unit_test(a_public_admin_listener_is_refused_unless_allowed),
        cmocka_unit_test(a_second_payd_on_one_data_dir_is_refused),
        cmocka_unit_test(a_port_in_use_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
