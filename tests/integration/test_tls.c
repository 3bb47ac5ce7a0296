/*
 * TLS policy beyond versions (test_lifecycle.c has those): suites without forward
 * secrecy are refused even when they are AEAD, the server's preference wins, and a
 * listener with [api] tls_client_ca requires a client certificate from that CA
 * (mTLS), whose subject shows in the flow log.
 */
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

static void
suites_without_forward_secrecy_are_refused(void **state)
{
    (void)state;
    pd_h_payd_t p;
    pd_h_tls_info_t info;
    assert_int_equal(pd_h_start(&p, NULL), 0);
    /* RSA key exchange, AEAD or not */
    assert_int_not_equal(pd_h_tls_probe(p.api_port, TLS1_2_VERSION, TLS1_2_VERSION, "AES128-GCM-SHA256:AES256-GCM-SHA384", &info), 0);
    /* NULL, RC4, 3DES and export-grade offers */
    assert_int_not_equal(pd_h_tls_probe(p.api_port, TLS1_2_VERSION, TLS1_2_VERSION, "NULL-SHA256:DES-CBC3-SHA:EXP-RC4-MD5:RC4-SHA", &info), 0);
    /* offered last, chosen anyway: the server's order wins */
    assert_int_equal(pd_h_tls_probe(p.api_port, TLS1_2_VERSION, TLS1_2_VERSION,
                                    "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-CHACHA20-POLY1305:"
                                    "ECDHE-ECDSA-AES128-GCM-SHA256",
                                    &info),
                     0);
    assert_string_equal(info.cipher, "ECDHE-ECDSA-AES128-GCM-SHA256");
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

/* a CA and a client certificate signed by it, with the openssl tool, in dir */
static void
make_client_pki(const char *dir, const char *name, const char *cn)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=%s-ca -keyout %s-ca-key.pem -out %s-ca.pem 2>/dev/null && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=%s "
             "-keyout %s-key.pem -out %s.csr 2>/dev/null && "
             "openssl x509 -req -in %s.csr -CA %s-ca.pem -CAkey %s-ca-key.pem -CAcreateserial -days 2 "
             "-out %s.pem 2>/dev/null",
             dir, name, name, name, cn, name, name, name, name, name, name);
    assert_int_equal(system(cmd), 0);
}

static void
mutual_tls_listener(void **state)
{
    (void)state;
    char dir[] = "/tmp/payd-mtls-XXXXXX", ca[300], set[400], cert[300], key[300], other[300], other_key[300];
    pd_h_payd_t p;
    pd_h_tls_info_t info;
    assert_non_null(mkdtemp(dir));
    make_client_pki(dir, "merchant", "merchant-42");
    make_client_pki(dir, "stranger", "stranger");
    snprintf(ca, sizeof(ca), "%s/merchant-ca.pem", dir);
    snprintf(set, sizeof(set), "api.tls_client_ca=%s", ca);
    const char *args[] = {"--set", set, NULL};
    pd_h_opts_t opts = {.args = args};
    assert_int_equal(pd_h_start(&p, &opts), 0);
    snprintf(cert, sizeof(cert), "%s/merchant.pem", dir);
    snprintf(key, sizeof(key), "%s/merchant-key.pem", dir);
    snprintf(other, sizeof(other), "%s/stranger.pem", dir);
    snprintf(other_key, sizeof(other_key), "%s/stranger-key.pem", dir);
    assert_int_equal(pd_h_tls_probe_client(p.api_port, cert, key, &info), 0);
    assert_int_not_equal(pd_h_tls_probe_client(p.api_port, NULL, NULL, &info), 0);  /* no certificate */
    assert_int_not_equal(pd_h_tls_probe_client(p.api_port, other, other_key, &info), 0); /* another CA's */
    /* the flow log names the client */
    char path[400];
    snprintf(path, sizeof(path), "%s/flow.log", p.dir);
    bool seen = false;
    for (int i = 0; i < 40 && !seen; i++) {
        FILE *f = fopen(path, "r");
        char line[2048];
        while (f != NULL && fgets(line, sizeof(line), f) != NULL)
            if (strstr(line, "\"clientCertCN\":\"merchant-42\"") != NULL && strstr(line, "\"action\":\"accept\"") != NULL)
                seen = true;
        if (f != NULL)
            fclose(f);
        if (!seen)
            usleep(50000);
    }
    assert_true(seen);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(suites_without_forward_secrecy_are_refused),
        cmocka_unit_test(mutual_tls_listener),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
