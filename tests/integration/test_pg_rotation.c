/*
 * Rotation of the database password (always on PostgreSQL: this test starts its own
 * PostgreSQL 15 on loopback), as issue 12's "Rotation" asks:
 * - two payd nodes (B uses A's vault over its socket) read [store] password_secret =
 *   payd/db, a postgres handler secret created with `payctl secrets create --handler
 *   postgres`; `payctl secrets rotate payd/db` runs every 2 s while clients pay on both
 *   nodes: no request fails; once the grace period is over the PREVIOUS login is
 *   refused by PostgreSQL and the CURRENT one works; a node restarted afterwards
 *   connects with CURRENT; no password appears in payd's log;
 * - a connection whose credential missed the rotation (no notice) is refused with
 *   28P01, fetches the secret again and gets in on its second try;
 * - bad input: an unknown secret at start, a handler secret with an unreachable url,
 *   an unknown master secret or handler, each refused with the reason.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "api_helpers.h"
#include "payd/cred.h"
#include "payd/db.h"
#include "payd/vault.h"
#include "payd/vault_spawn.h"
#include "pg_server.h"

#define GRACE_S 2

static pd_h_payd_t a, b;
static char url_pw[300], url_nopw[300], target_url[300];
static char sock_set[400], api_cred_set[400], proc_cred_set[400], sim_set[400], url_set[340];

static pd_vault_client_t *
vault_client(const char *principal)
{
    char path[400], cred[128] = "", sock[400];
    snprintf(path, sizeof(path), "%s/vault/credentials/%s", a.dir, principal);
    snprintf(sock, sizeof(sock), "%s/vault/vault.sock", a.dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(cred, sizeof(cred), f));
    fclose(f);
    cred[strcspn(cred, "\n")] = '\0';
    pd_vault_client_opts_t o = {.fd = -1, .socket_path = sock, .principal = principal, .credential = cred,
                                .timeout_ms = 10000};
    pd_vault_client_t *c;
    assert_int_equal(pd_vault_client_new(&c, &o), 0);
    return c;
}

/* a stage of payd/db ("USER\nPASSWORD") into out */
static void
secret_stage(const char *stage, char *out, size_t cap)
{
    pd_vault_client_t *admin = vault_client("admin");
    pd_vault_reply_t r;
    char args[200];
    snprintf(args, sizeof(args), "{\"name\":\"payd/db\",\"stage\":\"%s\"}", stage);
    assert_int_equal(pd_vault_admin_sync(admin, "secrets.get", pd_view_cstr(args), &r), 0);
    assert_true(r.data2.len > 0 && r.data2.len < cap);
    memcpy(out, r.data2.p, r.data2.len);
    out[r.data2.len] = '\0';
    pd_vault_reply_free(&r);
    pd_vault_client_free(admin);
}

/* logs in to the test database with value ("USER\nPASSWORD"); libpq's message into why */
static bool
can_login(const char *value, char *why, size_t cap)
{
    char user[128], pw[1100];
    assert_int_equal(pd_cred_parse(pd_view_cstr(value), user, sizeof(user), pw, sizeof(pw)), 0);
    const char *keys[] = {"dbname", "user", "password", NULL};
    const char *vals[] = {target_url, user, pw, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    bool ok = PQstatus(c) == CONNECTION_OK;
    snprintf(why, cap, "%s", PQerrorMessage(c));
    PQfinish(c);
    return ok;
}

static int
payctl_quiet(const char *const *args, char **out)
{
    char *o = NULL;
    int rc = pd_h_payctl(&a, args, &o);
    if (out != NULL)
        *out = o;
    else
        free(o);
    return rc;
}

typedef struct {
    const pd_h_payd_t *node;
    _Atomic bool *stop;
    long ok, failed;
    char first_failure[400];
} payer_t;

static void *
payer_main(void *arg)
{
    payer_t *p = arg;
    while (!atomic_load(p->stop)) {
        json_t *o = NULL;
        long st = api_call(p->node, "POST", "/v1/payment_intents",
                           "amount=1234&currency=usd&payment_method=pm_card_visa&confirm=true", &o);
        if (st == 200) {
            p->ok++;
        } else {
            if (p->failed++ == 0) {
                char *s = json_dumps(o, JSON_COMPACT);
                snprintf(p->first_failure, sizeof(p->first_failure), "HTTP %ld %s", st, s != NULL ? s : "");
                free(s);
            }
        }
        json_decref(o);
    }
    return NULL;
}

static void
rotation_under_load_fails_no_request(void **state)
{
    (void)state;
    char before[1100], prev[1100], cur[1100], why[512];
    secret_stage("CURRENT", before, sizeof(before));
    _Atomic bool stop = false;
    payer_t payers[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        payers[i] = (payer_t){.node = i % 2 == 0 ? &a : &b, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, payer_main, &payers[i]), 0);
    }
    /* rotations every 2 s: each one alternates the user and, GRACE_S later, retires the old one */
    const int rotations = 5;
    for (int i = 0; i < rotations; i++) {
        sleep(2);
        char *out = NULL;
        const char *args[] = {"secrets", "rotate", "payd/db", NULL};
        int rc = payctl_quiet(args, &out);
        if (rc != 0)
            fail_msg("payctl secrets rotate exited %d: %s", rc, out);
        free(out);
    }
    sleep(GRACE_S + 2); /* load goes on past the last retirement */
    atomic_store(&stop, true);
    long ok = 0, failed = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok += payers[i].ok;
        failed += payers[i].failed;
        if (payers[i].failed > 0)
            print_message("payer %d: first failure %s\n", i, payers[i].first_failure);
    }
    print_message("payments during %d rotations: %ld succeeded, %ld failed\n", rotations, ok, failed);
    assert_int_equal(failed, 0);
    assert_true(ok > 50);
    /* the login of the last rotation's PREVIOUS is refused; CURRENT gets in */
    secret_stage("PREVIOUS", prev, sizeof(prev));
    secret_stage("CURRENT", cur, sizeof(cur));
    assert_string_not_equal(cur, before);
    if (can_login(prev, why, sizeof(why)))
        fail_msg("the PREVIOUS login still works after the rotation completed");
    assert_non_null(strstr(why, "password authentication failed"));
    if (!can_login(cur, why, sizeof(why)))
        fail_msg("the CURRENT login is refused: %s", why);
    if (can_login(before, why, sizeof(why)))
        fail_msg("the login from before the rotations still works");
    /* a node restarted now opens every connection with CURRENT */
    assert_int_equal(pd_h_stop(&b, SIGTERM, 20000), 0);
    const char *args_b[] = {"--set", "store.backend=postgres", "--set", url_set, "--set",
                            "store.password_secret=payd/db", "--set", "vault.mode=socket", "--set", sock_set,
                            "--set", api_cred_set, "--set", proc_cred_set, "--set", sim_set, NULL};
    pd_h_opts_t ob = {.args = args_b, .reuse_dir = b.dir};
    assert_int_equal(pd_h_start(&b, &ob), 0);
    json_t *o = NULL;
    assert_int_equal(api_call(&b, "POST", "/v1/payment_intents",
                              "amount=500&currency=usd&payment_method=pm_card_visa&confirm=true", &o),
                     200);
    json_decref(o);
    /* no password in either node's log */
    char p1[1100], p2[1100], p3[1100], u[128];
    assert_int_equal(pd_cred_parse(pd_view_cstr(before), u, sizeof(u), p1, sizeof(p1)), 0);
    assert_int_equal(pd_cred_parse(pd_view_cstr(prev), u, sizeof(u), p2, sizeof(p2)), 0);
    assert_int_equal(pd_cred_parse(pd_view_cstr(cur), u, sizeof(u), p3, sizeof(p3)), 0);
    const pd_h_payd_t *nodes[] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        char *log = pd_h_log(nodes[i]);
        assert_non_null(log);
        if (strstr(log, p1) != NULL || strstr(log, p2) != NULL || strstr(log, p3) != NULL)
            fail_msg("a database password is in node %c's log", 'A' + i);
        /* each node heard of the rotations and loaded the new CURRENT */
        if (strstr(log, "\"rotated secret loaded\",\"secret\":\"payd/db\"") == NULL)
            fail_msg("node %c did not load a rotated payd/db", 'A' + i);
        free(log);
    }
    /* the books balance and agree with the processor (payctl logs in with CURRENT) */
    char info[1400];
    snprintf(info, sizeof(info), "host=127.0.0.1 port=%u dbname=rot user=%s password='%s'", pd_pg_port(), u, p3);
    setenv("PAYD_STORE_BACKEND", "postgres", 1);
    setenv("PAYD_STORE_URL", info, 1);
    assert_true(api_ledger_verifies(&a));
    unsetenv("PAYD_STORE_URL");
    unsetenv("PAYD_STORE_BACKEND");
    OPENSSL_cleanse(info, sizeof(info));
}

/* the vault as a secret source for a credential that hears of no rotation */
static int
api_fetch(void *arg, const char *name, pd_buf_t *value, char *why, size_t whycap)
{
    pd_vault_reply_t r;
    int rc = pd_vault_secret_get_sync(arg, name, &r);
    if (rc == 0 && pd_buf_put(value, r.data.p, r.data.len) != 0)
        rc = PD_ERR_TOOBIG;
    if (rc != 0)
        snprintf(why, whycap, "%s", r.text);
    pd_vault_reply_free(&r);
    return rc;
}

static void
stale_credential_refetches_after_28P01(void **state)
{
    (void)state;
    pd_vault_client_t *api = vault_client("api");
    pd_secret_source_t src = {.fetch = api_fetch, .arg = api};
    pd_cred_t *cred = NULL, *stale = NULL;
    char why[512], old[1100], user[128], pw[1100];
    assert_int_equal(pd_cred_new_secret(&cred, &src, "payd/db", why, sizeof(why)), 0);
    secret_stage("CURRENT", old, sizeof(old));
    assert_int_equal(pd_cred_parse(pd_view_cstr(old), user, sizeof(user), pw, sizeof(pw)), 0);
    /* a second credential that keeps the old value for good (nothing to fetch) */
    assert_int_equal(pd_cred_new_static(&stale, pw), 0);
    const char *args[] = {"secrets", "rotate", "payd/db", NULL};
    assert_int_equal(payctl_quiet(args, NULL), 0);
    sleep(GRACE_S + 2); /* the old login is retired */
    pd_db_t *db = NULL;
    /* the stale static credential: refused (28P01), nothing to fetch, no retry */
    char su[400];
    snprintf(su, sizeof(su), "postgresql://%s@127.0.0.1:%u/rot", user, pd_pg_port());
    assert_int_equal(pd_db_open_postgres_cred(&db, su, stale, why, sizeof(why)), PD_ERR_AUTH);
    assert_non_null(strstr(why, "password authentication failed"));
    assert_null(strstr(why, pw));
    /* the secret credential holds the old value too; its refusal fetches CURRENT and retries */
    uint64_t gen0 = 0, gen1 = 0;
    bool has = false;
    char cu[128], cp[1100];
    assert_int_equal(pd_cred_get(cred, cu, sizeof(cu), cp, sizeof(cp), &has, &gen0), 0);
    assert_string_equal(cu, user);
    if (pd_db_open_postgres_cred(&db, target_url, cred, why, sizeof(why)) != 0)
        fail_msg("the refused login was not retried with the fetched secret: %s", why);
    assert_int_equal(pd_cred_get(cred, cu, sizeof(cu), cp, sizeof(cp), &has, &gen1), 0);
    assert_true(gen1 > gen0);
    assert_string_not_equal(cu, user); /* alternating users: the other one now */
    pd_db_close(db);
    OPENSSL_cleanse(pw, sizeof(pw));
    OPENSSL_cleanse(cp, sizeof(cp));
    pd_cred_free(stale);
    pd_cred_free(cred);
    pd_vault_client_free(api);
}

/* payd's own path: the vault link hears the rotation's notice and hands the new
 * CURRENT to the credential, before the old login is retired */
static void
notice_delivers_current_before_retirement(void **state)
{
    (void)state;
    char sock[400], apic[400], procc[400], empty[1] = "", cur[1100], user[128], pw[1100];
    snprintf(sock, sizeof(sock), "%s/vault/vault.sock", a.dir);
    snprintf(apic, sizeof(apic), "%s/vault/credentials/api", a.dir);
    snprintf(procc, sizeof(procc), "%s/vault/credentials/processor", a.dir);
    pd_vault_config_t vc = {.mode = PD_VAULT_SOCKET, .dir = empty, .binary = empty, .user = empty,
                            .passphrase_file = empty, .socket = sock, .api_credential = apic,
                            .processor_credential = procc, .address = empty, .tls_ca = empty,
                            .api_tls_cert = empty, .api_tls_key = empty, .processor_tls_cert = empty,
                            .processor_tls_key = empty, .timeout_ms = 10000};
    pd_vault_link_t link;
    assert_int_equal(pd_vault_link_prepare(&link, &vc, a.dir, false), 0);
    assert_int_equal(pd_vault_link_open(&link, &vc, a.dir, false), 0);
    pd_secret_source_t src;
    pd_vault_link_secrets(&link, &src);
    pd_cred_t *cred = NULL;
    char why[512], cu[128], cp[1100];
    bool has = false;
    uint64_t gen0 = 0, gen = 0;
    assert_int_equal(pd_cred_new_secret(&cred, &src, "payd/db", why, sizeof(why)), 0);
    assert_int_equal(pd_cred_get(cred, cu, sizeof(cu), cp, sizeof(cp), &has, &gen0), 0);
    const char *args[] = {"secrets", "rotate", "payd/db", NULL};
    assert_int_equal(payctl_quiet(args, NULL), 0);
    uint64_t t0 = (uint64_t)time(NULL);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(pd_cred_get(cred, cu, sizeof(cu), cp, sizeof(cp), &has, &gen), 0);
        if (gen != gen0)
            break;
        usleep(20000);
    }
    assert_true(gen > gen0);
    assert_true((uint64_t)time(NULL) - t0 < GRACE_S); /* within the grace period */
    secret_stage("CURRENT", cur, sizeof(cur));
    assert_int_equal(pd_cred_parse(pd_view_cstr(cur), user, sizeof(user), pw, sizeof(pw)), 0);
    assert_string_equal(cu, user);
    assert_string_equal(cp, pw);
    OPENSSL_cleanse(pw, sizeof(pw));
    OPENSSL_cleanse(cp, sizeof(cp));
    pd_cred_free(cred);
    pd_vault_link_close(&link);
    sleep(GRACE_S + 1);
}

static void
bad_input_is_refused_with_the_reason(void **state)
{
    (void)state;
    char *out = NULL;
    /* an unknown secret at start: exit 1, one line naming the secret and the setting */
    char dir[] = "/tmp/payd-it-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *argv[] = {PAYD_BIN, "--dev", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-listen",
                          "127.0.0.1:0", "--set", "store.backend=postgres", "--set", url_set, "--set",
                          "store.password_secret=payd/nope", "--set", "vault.mode=socket", "--set", sock_set,
                          "--set", api_cred_set, "--set", proc_cred_set, "--set", sim_set, NULL};
    int rc = pd_h_run(argv, &out);
    if (rc != 1 || strstr(out, "payd/nope") == NULL || strstr(out, "store.password_secret") == NULL ||
        strstr(out, "no such secret") == NULL)
        fail_msg("an unknown secret: exit %d, output:\n%s", rc, out);
    free(out);
    char rm[64];
    snprintf(rm, sizeof(rm), "rm -rf %s", dir);
    (void)!system(rm);
    /* a handler secret whose url reaches no server: refused, nothing created */
    const char *bad_url[] = {"secrets", "create", "payd/bad", "--handler", "postgres", "--url",
                             "postgresql://127.0.0.1:1/rot?connect_timeout=2", "--master-secret", "pg/master",
                             "--username", "payd", NULL};
    rc = payctl_quiet(bad_url, &out);
    if (rc == 0 || strstr(out, "cannot log in") == NULL || strstr(out, "127.0.0.1") == NULL)
        fail_msg("a bad url: exit %d, output:\n%s", rc, out);
    free(out);
    const char *hist[] = {"secrets", "history", "payd/bad", NULL};
    assert_int_not_equal(payctl_quiet(hist, &out), 0);
    assert_non_null(strstr(out, "no such secret"));
    free(out);
    /* a master secret that does not exist; a handler that does not */
    const char *no_master[] = {"secrets", "create", "payd/bad", "--handler", "postgres", "--url", target_url,
                               "--master-secret", "pg/none", "--username", "payd", NULL};
    rc = payctl_quiet(no_master, &out);
    if (rc == 0 || strstr(out, "master secret pg/none") == NULL)
        fail_msg("an unknown master: exit %d, output:\n%s", rc, out);
    free(out);
    const char *readable_master[] = {"secrets", "create", "payd/bad", "--handler", "postgres", "--url", target_url,
                                     "--master-secret", "payd/db", "--username", "payd", NULL};
    rc = payctl_quiet(readable_master, &out);
    if (rc == 0 || strstr(out, "must not be named payd/") == NULL)
        fail_msg("a master payd can read: exit %d, output:\n%s", rc, out);
    free(out);
    const char *no_handler[] = {"secrets", "create", "payd/bad", "--handler", "mysql", "--url", target_url,
                                "--master-secret", "pg/master", "--username", "payd", NULL};
    rc = payctl_quiet(no_handler, &out);
    if (rc == 0 || strstr(out, "unknown handler mysql") == NULL)
        fail_msg("an unknown handler: exit %d, output:\n%s", rc, out);
    free(out);
    /* the running nodes were not disturbed */
    json_t *o = NULL;
    assert_int_equal(api_call(&a, "POST", "/v1/payment_intents",
                              "amount=501&currency=usd&payment_method=pm_card_visa&confirm=true", &o),
                     200);
    json_decref(o);
}

static int
setup(void **state)
{
    (void)state;
    if (pd_pg_start() != 0 || pd_pg_database("rot", true, url_pw, sizeof(url_pw)) != 0 ||
        pd_pg_database("rot", false, url_nopw, sizeof(url_nopw)) != 0)
        return -1;
    snprintf(target_url, sizeof(target_url), "postgresql://127.0.0.1:%u/rot", pd_pg_port());
    /* node A first on the password of the URL (an operator's bootstrap) */
    char set_pw[340];
    snprintf(set_pw, sizeof(set_pw), "store.url=%s", url_pw);
    const char *boot[] = {"--set", "store.backend=postgres", "--set", set_pw, NULL};
    pd_h_opts_t oa = {.args = boot};
    if (pd_h_start(&a, &oa) != 0)
        return -1;
    api_load_credentials(&a);
    /* the master login (the superuser here; CREATEROLE is enough, docs/postgres.md) */
    pd_vault_client_t *admin = vault_client("admin");
    pd_vault_reply_t r;
    int rc = pd_vault_admin_sync(admin, "secrets.put",
                                 PD_VIEW_LIT("{\"name\":\"pg/master\",\"value\":\"postgres\\n" PD_PG_PASSWORD "\"}"), &r);
    pd_vault_reply_free(&r);
    pd_vault_client_free(admin);
    if (rc != 0)
        return -1;
    char grace[16], *out = NULL;
    snprintf(grace, sizeof(grace), "%d", GRACE_S);
    const char *create[] = {"secrets", "create", "payd/db", "--handler", "postgres", "--url", target_url,
                            "--master-secret", "pg/master", "--username", "payd", "--grace", grace, NULL};
    if ((rc = payctl_quiet(create, &out)) != 0) {
        print_message("payctl secrets create: %s\n", out);
        free(out);
        return -1;
    }
    free(out);
    /* then both nodes on the secret (B with A's vault, processor and dev credentials) */
    if (pd_h_stop(&a, SIGTERM, 20000) != 0)
        return -1;
    snprintf(url_set, sizeof(url_set), "store.url=%s", url_nopw);
    const char *args_a[] = {"--set", "store.backend=postgres", "--set", url_set, "--set",
                            "store.password_secret=payd/db", NULL};
    pd_h_opts_t oa2 = {.args = args_a, .reuse_dir = a.dir};
    if (pd_h_start(&a, &oa2) != 0)
        return -1;
    snprintf(b.dir, sizeof(b.dir), "/tmp/payd-it-XXXXXX");
    if (mkdtemp(b.dir) == NULL)
        return -1;
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "cp %s/credentials.json %s/", a.dir, b.dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(sock_set, sizeof(sock_set), "vault.socket=%s/vault/vault.sock", a.dir);
    snprintf(api_cred_set, sizeof(api_cred_set), "vault.api_credential=%s/vault/credentials/api", a.dir);
    snprintf(proc_cred_set, sizeof(proc_cred_set), "vault.processor_credential=%s/vault/credentials/processor", a.dir);
    snprintf(sim_set, sizeof(sim_set), "processor.simulator_db=%s/simulator.db", a.dir);
    const char *args_b[] = {"--set", "store.backend=postgres", "--set", url_set, "--set",
                            "store.password_secret=payd/db", "--set", "vault.mode=socket", "--set", sock_set,
                            "--set", api_cred_set, "--set", proc_cred_set, "--set", sim_set, NULL};
    pd_h_opts_t ob = {.args = args_b, .reuse_dir = b.dir};
    return pd_h_start(&b, &ob);
}

static int
teardown(void **state)
{
    (void)state;
    int rb = pd_h_stop(&b, SIGTERM, 20000), ra = pd_h_stop(&a, SIGTERM, 20000);
    pd_h_cleanup(&b);
    pd_h_cleanup(&a);
    return ra == 0 && rb == 0 ? 0 : -1;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rotation_under_load_fails_no_request),
        cmocka_unit_test(stale_credential_refetches_after_28P01),
        cmocka_unit_test(notice_delivers_current_before_retirement),
        cmocka_unit_test(bad_input_is_refused_with_the_reason),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
