/*
 * Rotation of the Redis password (issue 13's redis rotation handler), on a
 * redis-server started by the test with an ACL user payd:
 * - two payd nodes (B uses A's vault over its socket) read [cache] password_secret =
 *   payd/redis, a redis handler secret created with `payctl secrets create --handler
 *   redis`; `payctl secrets rotate payd/redis` runs every 2 s while clients call both
 *   nodes, and the nodes' Redis connections are killed after each rotation (they log
 *   in again): no request fails, both nodes stay on Redis (a lockout on one refuses on
 *   the other afterwards), the PREVIOUS password is refused once the grace period is
 *   over while CURRENT works, and no password is in a log;
 * - a cache whose credential missed the rotation (no notice) is refused with
 *   WRONGPASS, fetches the secret again and reconnects;
 * - bad input: an unknown secret at start, a handler secret whose url reaches no
 *   server, an ACL user that does not exist.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/crypto.h>

#include "api_helpers.h"
#include "payd/cache.h"
#include "payd/cred.h"
#include "payd/vault.h"
#include "redis_server.h"

#define GRACE_S 2
#define ADMIN_PW "adm1n-pw"

static pd_h_payd_t a, b;
static pd_h_redis_t rs;
static char target_url[100], cache_url_set[200], sock_set[400], api_cred_set[400], proc_cred_set[400], sim_set[400];

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

static void
secret_stage(const char *stage, char *out, size_t cap)
{
    pd_vault_client_t *admin = vault_client("admin");
    pd_vault_reply_t r;
    char args[200];
    snprintf(args, sizeof(args), "{\"name\":\"payd/redis\",\"stage\":\"%s\"}", stage);
    assert_int_equal(pd_vault_admin_sync(admin, "secrets.get", pd_view_cstr(args), &r), 0);
    assert_true(r.data2.len > 0 && r.data2.len < cap);
    memcpy(out, r.data2.p, r.data2.len);
    out[r.data2.len] = '\0';
    pd_vault_reply_free(&r);
    pd_vault_client_free(admin);
}

/* redis-cli as admin (the default user); its output, malloc'd */
static char *
cli(const char *const *args)
{
    const char *argv[16] = {"--user", "default", "--pass", ADMIN_PW, "--no-auth-warning"};
    int n = 5;
    for (int i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return pd_h_redis_cli(rs.port, argv);
}

/* AUTH payd <password of value> answers OK on the server at port */
static bool
can_auth_on(uint16_t port, const char *value)
{
    char user[128], pw[1100];
    assert_int_equal(pd_cred_parse(pd_view_cstr(value), user, sizeof(user), pw, sizeof(pw)), 0);
    const char *args[] = {"--user", user, "--pass", pw, "--no-auth-warning", "PING", NULL};
    char *out = pd_h_redis_cli(port, args);
    bool ok = out != NULL && strstr(out, "PONG") != NULL;
    free(out);
    OPENSSL_cleanse(pw, sizeof(pw));
    return ok;
}

static bool
can_auth(const char *value)
{
    return can_auth_on(rs.port, value);
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
    char first_failure[300];
} caller_t;

static void *
caller_main(void *arg)
{
    caller_t *c = arg;
    pd_h_client_t *cl = pd_h_client_new(c->node);
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    const char *hdrs[] = {auth, NULL};
    while (!atomic_load(c->stop)) {
        pd_h_req_t rq = {.headers = hdrs, .timeout_ms = 5000};
        pd_h_resp_t r;
        long st = pd_h_do(cl, "GET", "/v1/balance", &rq, &r) == 0 ? r.status : -1;
        if (st == 200)
            c->ok++;
        else if (c->failed++ == 0)
            snprintf(c->first_failure, sizeof(c->first_failure), "HTTP %ld %.200s", st, r.body ? r.body : "");
        pd_h_resp_free(&r);
    }
    pd_h_client_free(cl);
    return NULL;
}

static char *
readyz(const pd_h_payd_t *p)
{
    pd_h_req_t rq = {.admin = true};
    pd_h_resp_t r;
    if (pd_h_request(p, "GET", "/readyz", &rq, &r) != 0)
        return NULL;
    char *body = r.body != NULL ? strdup(r.body) : NULL;
    pd_h_resp_free(&r);
    return body;
}

static long
balance(const pd_h_payd_t *p, const char *key)
{
    json_t *o = NULL;
    long s = api_call_as(p, key, "GET", "/v1/balance", NULL, NULL, &o);
    json_decref(o);
    return s;
}

static void
rotation_under_load_fails_no_request(void **state)
{
    (void)state;
    char before[1100], prev[1100], cur[1100];
    secret_stage("CURRENT", before, sizeof(before));
    _Atomic bool stop = false;
    caller_t callers[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        callers[i] = (caller_t){.node = i % 2 == 0 ? &a : &b, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, caller_main, &callers[i]), 0);
    }
    const int rotations = 5;
    for (int i = 0; i < rotations; i++) {
        sleep(2);
        char *out = NULL;
        const char *args[] = {"secrets", "rotate", "payd/redis", NULL};
        int rc = payctl_quiet(args, &out);
        if (rc != 0)
            fail_msg("payctl secrets rotate exited %d: %s", rc, out);
        free(out);
        /* the nodes log in again now, with the password they hold */
        sleep(1);
        const char *kill[] = {"CLIENT", "KILL", "USER", "payd", NULL};
        free(cli(kill));
    }
    sleep(GRACE_S + 2);
    atomic_store(&stop, true);
    long ok = 0, failed = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok += callers[i].ok;
        failed += callers[i].failed;
        if (callers[i].failed > 0)
            print_message("caller %d: first failure %s\n", i, callers[i].first_failure);
    }
    print_message("requests during %d rotations: %ld succeeded, %ld failed\n", rotations, ok, failed);
    assert_int_equal(failed, 0);
    assert_true(ok > 50);
    secret_stage("PREVIOUS", prev, sizeof(prev));
    secret_stage("CURRENT", cur, sizeof(cur));
    assert_string_not_equal(cur, before);
    if (can_auth(prev))
        fail_msg("the PREVIOUS password still works after the rotation completed");
    if (can_auth(before))
        fail_msg("the password from before the rotations still works");
    if (!can_auth(cur))
        fail_msg("the CURRENT password is refused");
    /* both nodes are on Redis (no fallback note), and a lockout on A refuses on B */
    for (int i = 0; i < 2; i++) {
        const pd_h_payd_t *n = i == 0 ? &a : &b;
        char *body = NULL;
        for (int t = 0; t < 50; t++) {
            free(body);
            body = readyz(n);
            if (body != NULL && strstr(body, "degraded") == NULL)
                break;
            usleep(100000);
        }
        if (body == NULL || strstr(body, "degraded") != NULL)
            fail_msg("node %c is not on Redis after the rotations: %s", 'A' + i, body ? body : "(no answer)");
        free(body);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(balance(&a, "sk_test_wrong"), 401);
    usleep(300000);
    assert_int_equal(balance(&b, api_sk), 429);
    sleep(4); /* the lockout (3 s) ends */
    /* no password in a log */
    char u[128], p1[1100], p2[1100], p3[1100];
    assert_int_equal(pd_cred_parse(pd_view_cstr(before), u, sizeof(u), p1, sizeof(p1)), 0);
    assert_int_equal(pd_cred_parse(pd_view_cstr(prev), u, sizeof(u), p2, sizeof(p2)), 0);
    assert_int_equal(pd_cred_parse(pd_view_cstr(cur), u, sizeof(u), p3, sizeof(p3)), 0);
    const pd_h_payd_t *nodes[] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        char *log = pd_h_log(nodes[i]);
        assert_non_null(log);
        if (strstr(log, p1) != NULL || strstr(log, p2) != NULL || strstr(log, p3) != NULL)
            fail_msg("a Redis password is in node %c's log", 'A' + i);
        if (strstr(log, "\"rotated secret loaded\",\"secret\":\"payd/redis\"") == NULL)
            fail_msg("node %c did not load a rotated payd/redis", 'A' + i);
        free(log);
    }
}

/* the vault as a source that hears of no rotation */
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
stale_cache_refetches_after_wrongpass(void **state)
{
    (void)state;
    pd_vault_client_t *api = vault_client("api");
    pd_secret_source_t src = {.fetch = api_fetch, .arg = api};
    pd_cache_set_secrets(&src);
    char url[100], empty[1] = "", secret[] = "payd/redis", err[300];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", (unsigned)rs.port);
    pd_cache_config_t cfg = {.backend = 1, .url = url, .tls_ca = empty, .password_file = empty,
                             .password_secret = secret, .timeout_ms = 1000};
    pd_cache_t *c = NULL;
    if (pd_cache_new_redis(&c, &cfg, 1000, err, sizeof(err)) != 0)
        fail_msg("cache on payd/redis: %s", err);
    pd_cache_stats_t st;
    pd_cache_stats(c, &st);
    assert_true(st.connected);
    int64_t fallbacks = st.fallbacks;
    /* rotate, let the old password be retired, then cut the cache's connection */
    const char *args[] = {"secrets", "rotate", "payd/redis", NULL};
    assert_int_equal(payctl_quiet(args, NULL), 0);
    sleep(GRACE_S + 2);
    const char *kill[] = {"CLIENT", "KILL", "USER", "payd", NULL};
    free(cli(kill));
    bool back = false;
    for (int i = 0; i < 100 && !back; i++) {
        usleep(100000);
        pd_cache_stats(c, &st);
        back = st.connected && st.fallbacks > fallbacks;
    }
    if (!back)
        fail_msg("the cache did not log in again after WRONGPASS: %s", st.last_error);
    pd_cache_free(c);
    pd_cache_set_secrets(NULL);
    pd_vault_client_free(api);
}

static void
bad_input_is_refused_with_the_reason(void **state)
{
    (void)state;
    char *out = NULL;
    /* an unknown secret at start: exit 1 naming the secret and the setting */
    char dir[] = "/tmp/payd-it-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *argv[] = {PAYD_BIN, "--dev", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-listen",
                          "127.0.0.1:0", "--set", "cache.backend=redis", "--set", cache_url_set, "--set",
                          "cache.password_secret=payd/nope", "--set", "vault.mode=socket", "--set", sock_set,
                          "--set", api_cred_set, "--set", proc_cred_set, "--set", sim_set, NULL};
    int rc = pd_h_run(argv, &out);
    if (rc == 0 || strstr(out, "payd/nope") == NULL || strstr(out, "password_secret") == NULL ||
        strstr(out, "no such secret") == NULL)
        fail_msg("an unknown secret: exit %d, output:\n%s", rc, out);
    free(out);
    char rm[64];
    snprintf(rm, sizeof(rm), "rm -rf %s", dir);
    (void)!system(rm);
    /* a url that reaches no server; an ACL user that does not exist */
    const char *bad_url[] = {"secrets", "create", "payd/bad", "--handler", "redis", "--url", "redis://127.0.0.1:1",
                             "--master-secret", "redis/master", "--username", "payd", NULL};
    rc = payctl_quiet(bad_url, &out);
    if (rc == 0 || strstr(out, "cannot log in to Redis") == NULL)
        fail_msg("a bad url: exit %d, output:\n%s", rc, out);
    free(out);
    const char *no_user[] = {"secrets", "create", "payd/bad", "--handler", "redis", "--url", target_url,
                             "--master-secret", "redis/master", "--username", "nobody", NULL};
    rc = payctl_quiet(no_user, &out);
    if (rc == 0 || strstr(out, "ACL user nobody does not exist") == NULL)
        fail_msg("an unknown ACL user: exit %d, output:\n%s", rc, out);
    free(out);
    const char *getu[] = {"ACL", "GETUSER", "nobody", NULL};
    out = cli(getu);
    assert_true(out == NULL || strstr(out, "flags") == NULL); /* SETUSER did not create it */
    free(out);
}

/* ACLs are not replicated: the handler changes every replica the master's ROLE lists, so
 * a failover to one finds the same passwords (added, and the old one removed after the
 * grace period) */
static void
a_rotation_reaches_the_replicas(void **state)
{
    (void)state;
    pd_h_redis_t rep;
    pd_h_redis_opts_t ro = {.requirepass = ADMIN_PW, .acl_user = "payd other-pw", .replicaof = rs.port};
    assert_int_equal(pd_h_redis_start(&rep, &ro), 0);
    char port[16];
    snprintf(port, sizeof(port), "%u", (unsigned)rep.port);
    bool linked = false;
    for (int i = 0; i < 100 && !linked; i++) {
        const char *role[] = {"ROLE", NULL};
        char *out = cli(role);
        linked = out != NULL && strstr(out, port) != NULL;
        free(out);
        if (!linked)
            usleep(100000);
    }
    assert_true(linked);
    const char *rot[] = {"secrets", "rotate", "payd/redis", NULL};
    char first[1200], second[1200];
    assert_int_equal(payctl_quiet(rot, NULL), 0);
    secret_stage("CURRENT", first, sizeof(first));
    assert_true(can_auth_on(rep.port, first));
    sleep(GRACE_S + 2);
    assert_int_equal(payctl_quiet(rot, NULL), 0);
    secret_stage("CURRENT", second, sizeof(second));
    assert_true(can_auth_on(rep.port, second));
    bool retired = false;
    for (int i = 0; i < 100 && !retired; i++) {
        retired = !can_auth_on(rep.port, first);
        if (!retired)
            usleep(100000);
    }
    assert_true(retired); /* the previous password left the replica too */
    assert_true(can_auth_on(rep.port, second) && can_auth(second));
    assert_false(can_auth(first));
    OPENSSL_cleanse(first, sizeof(first));
    OPENSSL_cleanse(second, sizeof(second));
    pd_h_redis_stop(&rep, SIGTERM);
    pd_h_redis_cleanup(&rep);
}

static int
setup(void **state)
{
    (void)state;
    pd_h_redis_opts_t ro = {.requirepass = ADMIN_PW, .acl_user = "payd b00t-pw"};
    if (pd_h_redis_start(&rs, &ro) != 0)
        return -1;
    snprintf(target_url, sizeof(target_url), "redis://127.0.0.1:%u", (unsigned)rs.port);
    /* node A first on the password of the URL (an operator's bootstrap) */
    char boot_url[200];
    snprintf(boot_url, sizeof(boot_url), "cache.url=redis://payd:b00t-pw@127.0.0.1:%u", (unsigned)rs.port);
    const char *boot[] = {"--set", "cache.backend=redis", "--set", boot_url, NULL};
    pd_h_opts_t oa = {.args = boot};
    if (pd_h_start(&a, &oa) != 0)
        return -1;
    api_load_credentials(&a);
    pd_vault_client_t *admin = vault_client("admin");
    pd_vault_reply_t r;
    int rc = pd_vault_admin_sync(admin, "secrets.put",
                                 PD_VIEW_LIT("{\"name\":\"redis/master\",\"value\":\"default\\n" ADMIN_PW "\"}"), &r);
    pd_vault_reply_free(&r);
    pd_vault_client_free(admin);
    if (rc != 0)
        return -1;
    char grace[16], *out = NULL;
    snprintf(grace, sizeof(grace), "%d", GRACE_S);
    const char *create[] = {"secrets", "create", "payd/redis", "--handler", "redis", "--url", target_url,
                            "--master-secret", "redis/master", "--username", "payd", "--grace", grace, NULL};
    if (payctl_quiet(create, &out) != 0) {
        print_message("payctl secrets create: %s\n", out);
        free(out);
        return -1;
    }
    free(out);
    /* the bootstrap password goes: from now on only the secret's passwords log in */
    const char *drop[] = {"ACL", "SETUSER", "payd", "<b00t-pw", NULL};
    free(cli(drop));
    if (pd_h_stop(&a, SIGTERM, 20000) != 0)
        return -1;
    /* B: a copy of A's data dir (same merchant and key), on A's vault */
    snprintf(b.dir, sizeof(b.dir), "/tmp/payd-it-XXXXXX");
    if (mkdtemp(b.dir) == NULL)
        return -1;
    char cmd[1000];
    snprintf(cmd, sizeof(cmd), "cp -a %s/. %s/ && rm -f %s/payd.log", a.dir, b.dir, b.dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(cache_url_set, sizeof(cache_url_set), "cache.url=redis://payd@127.0.0.1:%u", (unsigned)rs.port);
    const char *args_a[] = {"--set", "cache.backend=redis", "--set", cache_url_set, "--set",
                            "cache.password_secret=payd/redis", "--set", "payments.auth_fail_limit=3", "--set",
                            "payments.auth_lockout_ms=3s", "--set", "waf.ip_rate_limit=100000000", "--set",
                            "payments.rate_per_s=1000000", "--set", "payments.burst=1000000", NULL};
    pd_h_opts_t oa2 = {.args = args_a, .reuse_dir = a.dir};
    if (pd_h_start(&a, &oa2) != 0)
        return -1;
    snprintf(sock_set, sizeof(sock_set), "vault.socket=%s/vault/vault.sock", a.dir);
    snprintf(api_cred_set, sizeof(api_cred_set), "vault.api_credential=%s/vault/credentials/api", a.dir);
    snprintf(proc_cred_set, sizeof(proc_cred_set), "vault.processor_credential=%s/vault/credentials/processor", a.dir);
    snprintf(sim_set, sizeof(sim_set), "processor.simulator_db=%s/simulator.db", a.dir);
    const char *args_b[] = {"--set", "cache.backend=redis", "--set", cache_url_set, "--set",
                            "cache.password_secret=payd/redis", "--set", "payments.auth_fail_limit=3", "--set",
                            "payments.auth_lockout_ms=3s", "--set", "waf.ip_rate_limit=100000000", "--set",
                            "payments.rate_per_s=1000000", "--set", "payments.burst=1000000", "--set", "vault.mode=socket", "--set", sock_set,
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
    pd_h_redis_stop(&rs, SIGTERM);
    pd_h_redis_cleanup(&rs);
    return ra == 0 && rb == 0 ? 0 : -1;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rotation_under_load_fails_no_request),
        cmocka_unit_test(stale_cache_refetches_after_wrongpass),
        cmocka_unit_test(a_rotation_reaches_the_replicas),
        cmocka_unit_test(bad_input_is_refused_with_the_reason),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
