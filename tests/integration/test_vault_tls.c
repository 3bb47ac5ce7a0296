/*
 * payd-vault on another host: the mutual-TLS TCP listener. payd (vault.mode = tcp)
 * tokenizes and charges through it; a client certificate from another CA is refused at
 * the handshake; a valid certificate for one principal cannot authenticate as another;
 * a client that does not trust the vault's CA does not connect; a peer that never
 * authenticates is dropped.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"
#include "payd/time.h"
#include "payd/vault.h"

static char dir[64], vdir[128], addr[64];
static pid_t vault_pid;

/* CA NAME signs a certificate for each CN (server certs get SAN IP:127.0.0.1) */
static int
make_pki(const char *ca, const char *const *cns)
{
    char cmd[4096];
    int n = snprintf(cmd, sizeof(cmd),
                     "set -e; cd %s; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
                     "-subj /CN=%s -keyout %s-key.pem -out %s.pem 2>/dev/null;",
                     dir, ca, ca, ca);
    for (int i = 0; cns[i] != NULL; i++)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n,
                      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=%s "
                      "-addext subjectAltName=IP:127.0.0.1 -keyout %s-%s-key.pem -out %s-%s.csr 2>/dev/null;"
                      "openssl x509 -req -in %s-%s.csr -CA %s.pem -CAkey %s-key.pem -CAcreateserial -days 2 "
                      "-copy_extensions copy -out %s-%s.pem 2>/dev/null;",
                      cns[i], ca, cns[i], ca, cns[i], ca, cns[i], ca, ca, ca, cns[i]);
    return system(cmd);
}

static void
path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void
read_cred(const char *principal, char *out, size_t cap)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/credentials/%s", vdir, principal);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(out, (int)cap, f));
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
}

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-vtls-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(vdir, sizeof(vdir), "%s/vault", dir);
    const char *good[] = {"vault", "api", "processor", NULL}, *rogue[] = {"api", NULL};
    if (make_pki("ca", good) != 0 || make_pki("rogue", rogue) != 0)
        return -1;
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", pd_h_free_port());
    char cert[200], key[200], ca[200], log[200];
    path_of(cert, sizeof(cert), "ca-vault.pem");
    path_of(key, sizeof(key), "ca-vault-key.pem");
    path_of(ca, sizeof(ca), "ca.pem");
    path_of(log, sizeof(log), "vault.log");
    /* started as root, payd reads its client keys and credentials as [server] user (payd):
     * the operator gives it its keys, and the vault runs as its own user, whose group
     * (payd is a member) may read the api and processor credentials */
    bool root = geteuid() == 0;
    if (root) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "chmod 0711 %s && cd %s && chown payd:payd ca-api-key.pem ca-processor-key.pem", dir,
                 dir);
        if (system(cmd) != 0)
            return -1;
    }
    vault_pid = fork();
    if (vault_pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(PAYD_VAULT_BIN, PAYD_VAULT_BIN, "--data-dir", vdir, "--dev", "--listen", addr, "--tls-cert", cert,
              "--tls-key", key, "--tls-client-ca", ca, root ? "--user" : (char *)NULL, "payd-vault", (char *)NULL);
        _exit(127);
    }
    char cred[200];
    snprintf(cred, sizeof(cred), "%s/credentials/processor", vdir);
    for (int i = 0; i < 300 && access(cred, F_OK) != 0; i++)
        usleep(20000);
    usleep(100000);
    return access(cred, F_OK);
}

static int
teardown(void **state)
{
    (void)state;
    int st = 0;
    kill(vault_pid, SIGTERM);
    waitpid(vault_pid, &st, 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (getenv("PAYD_TEST_KEEP") == NULL && system(cmd) != 0)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void
payd_charges_through_the_remote_vault(void **state)
{
    (void)state;
    char s_addr[128], s_ca[256], s_api[256], s_apik[256], s_proc[256], s_prock[256], s_apic[256], s_procc[256];
    snprintf(s_addr, sizeof(s_addr), "vault.address=%s", addr);
    snprintf(s_ca, sizeof(s_ca), "vault.tls_ca=%s/ca.pem", dir);
    snprintf(s_api, sizeof(s_api), "vault.api_tls_cert=%s/ca-api.pem", dir);
    snprintf(s_apik, sizeof(s_apik), "vault.api_tls_key=%s/ca-api-key.pem", dir);
    snprintf(s_proc, sizeof(s_proc), "vault.processor_tls_cert=%s/ca-processor.pem", dir);
    snprintf(s_prock, sizeof(s_prock), "vault.processor_tls_key=%s/ca-processor-key.pem", dir);
    snprintf(s_apic, sizeof(s_apic), "vault.api_credential=%s/credentials/api", vdir);
    snprintf(s_procc, sizeof(s_procc), "vault.processor_credential=%s/credentials/processor", vdir);
    const char *args[] = {"--set", "vault.mode=tcp", "--set", s_addr,  "--set", s_ca,    "--set", s_api,
                          "--set", s_apik,           "--set", s_proc,  "--set", s_prock, "--set", s_apic,
                          "--set", s_procc,          NULL};
    pd_h_opts_t opts = {.args = args};
    pd_h_payd_t p;
    json_t *o;
    assert_int_equal(pd_h_start(&p, &opts), 0);
    api_load_credentials(&p);
    char pm[64];
    assert_int_equal(api_card_pm(&p, "5555555555554444", pm, sizeof(pm)), 200);
    assert_int_equal(api_charge(&p, pm, 1250, "eur", &o), 200);
    assert_string_equal(jstr(o, "status"), "succeeded");
    json_decref(o);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

/* a client of principal `as`, presenting cert/key of ca_file's CA files in dir */
static int
client(const char *as, const char *cert, const char *key, const char *ca, pd_vault_client_t **out)
{
    char c[200], k[200], a[200], cred[200];
    path_of(c, sizeof(c), cert);
    path_of(k, sizeof(k), key);
    path_of(a, sizeof(a), ca);
    read_cred(as, cred, sizeof(cred));
    pd_vault_client_opts_t o = {.fd = -1, .tcp_address = addr, .tls_cert = c, .tls_key = k, .tls_ca = a,
                                .principal = as, .credential = cred, .timeout_ms = 3000};
    return pd_vault_client_new(out, &o);
}

static int
tokenize(pd_vault_client_t *c)
{
    pd_vault_card_in_t in;
    pd_vault_card_t card;
    memset(&in, 0, sizeof(in));
    snprintf(in.merchant_id, sizeof(in.merchant_id), "acct_tls");
    snprintf(in.pan, sizeof(in.pan), "4242424242424242");
    in.exp_month = 1;
    in.exp_year = 2033;
    return pd_vault_tokenize_sync(c, &in, &card);
}

/* true when a client with these files can connect and tokenize */
static bool
works(const char *as, const char *cert, const char *key, const char *ca)
{
    pd_vault_client_t *c = NULL;
    if (client(as, cert, key, ca, &c) != 0)
        return false;
    bool ok = tokenize(c) == 0;
    pd_vault_client_free(c);
    return ok;
}

static void
certificates_bind_principals(void **state)
{
    (void)state;
    pd_vault_client_t *c = NULL;
    /* the right certificate for the principal: works */
    assert_int_equal(client("api", "ca-api.pem", "ca-api-key.pem", "ca.pem", &c), 0);
    assert_int_equal(tokenize(c), 0);
    pd_vault_client_free(c);
    /* a certificate from another CA (TLS 1.3: the vault refuses it after the client's
     * side of the handshake, so the first request fails), and api's certificate with
     * processor's credential (the vault refuses the AUTH): no request gets through */
    assert_false(works("api", "rogue-api.pem", "rogue-api-key.pem", "ca.pem"));
    assert_false(works("processor", "ca-api.pem", "ca-api-key.pem", "ca.pem"));
    /* a client that does not trust the vault's CA does not talk to it */
    assert_int_not_equal(client("api", "ca-api.pem", "ca-api-key.pem", "rogue.pem", &c), 0);
    char path[200], log[65536] = "";
    path_of(path, sizeof(path), "vault.log");
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_true(read(fd, log, sizeof(log) - 1) > 0);
    close(fd);
    assert_non_null(strstr(log, "\"listen\":\"127.0.0.1:"));
}

/* a peer that connects and never authenticates gives its slot back after 10 s */
static void
silent_peers_are_dropped(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char host[32];
    unsigned port = 0;
    assert_int_equal(sscanf(addr, "%31[^:]:%u", host, &port), 2);
    sa.sin_port = htons((uint16_t)port);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    uint64_t t0 = pd_mono_ms();
    assert_int_equal(poll(&p, 1, 15000), 1);
    char b[16];
    assert_true(recv(fd, b, sizeof(b), 0) <= 0); /* closed by the vault */
    uint64_t waited = pd_mono_ms() - t0;
    assert_true(waited >= 9000 && waited < 15000);
    close(fd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(payd_charges_through_the_remote_vault),
        cmocka_unit_test(certificates_bind_principals),
        cmocka_unit_test(silent_peers_are_dropped),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
