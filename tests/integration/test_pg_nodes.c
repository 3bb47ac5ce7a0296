/*
 * payd on PostgreSQL (always: this test starts its own PostgreSQL 15 on loopback).
 *
 * Two payd nodes on one database, sharing one vault and one processor (node B uses
 * node A's vault socket and simulator database), race on the same intent: captures on
 * both nodes at once (exactly one wins, the amount is received once), refunds on both
 * at once (never more than the captured amount), the same idempotency key on both at
 * once (one payment). `payctl ledger verify --with-processor` passes on the books.
 *
 * Bad input: an unreachable URL, a wrong password (in the URL and from
 * store.password_file), a database that is not payd's, a schema newer than the
 * binary: each stops the start with exit code 1 and one log line naming the cause
 * and the setting, and the password appears nowhere in the output.
 */
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"
#include "pg_server.h"

static pd_h_payd_t a, b;
static char url[300], set_url[340];

/* the first column of the first row of query on the nodes' database */
static long
pg_long(const char *query)
{
    const char *argv[] = {"/usr/lib/postgresql/15/bin/psql", "-XAtq", "-d", url, "-c", query, NULL};
    char *out = NULL;
    long n = -1;
    if (pd_h_run(argv, &out) == 0 && out != NULL)
        n = strtol(out, NULL, 10);
    free(out);
    return n;
}

/* payd --dev on dir with the store at store_url; its exit code, *out its output */
static int
start_fails(const char *store_url, const char *extra, char **out)
{
    char dir[] = "/tmp/payd-it-XXXXXX", su[400];
    assert_non_null(mkdtemp(dir));
    snprintf(su, sizeof(su), "store.url=%s", store_url);
    const char *argv[] = {PAYD_BIN, "--dev", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-listen",
                          "127.0.0.1:0", "--set", "store.backend=postgres", "--set", su,
                          extra != NULL ? "--set" : NULL, extra, NULL};
    int rc = pd_h_run(argv, out);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    (void)!system(cmd);
    return rc;
}

/* one line of out holds every one of the words */
static bool
line_with(const char *out, const char *w1, const char *w2)
{
    for (const char *l = out; l != NULL && *l != '\0';) {
        const char *e = strchr(l, '\n');
        size_t n = e != NULL ? (size_t)(e - l) : strlen(l);
        char *line = strndup(l, n);
        bool ok = line != NULL && strstr(line, w1) != NULL && strstr(line, w2) != NULL;
        free(line);
        if (ok)
            return true;
        l = e != NULL ? e + 1 : NULL;
    }
    return false;
}

static void
expect_refused(const char *store_url, const char *extra, const char *cause, const char *setting, const char *secret)
{
    char *out = NULL;
    int rc = start_fails(store_url, extra, &out);
    if (rc != 1 || !line_with(out, cause, setting))
        fail_msg("expected exit 1 with \"%s\" and %s on one line; exit %d, output:\n%s", cause, setting, rc, out);
    if (secret != NULL && strstr(out, secret) != NULL)
        fail_msg("the password is in payd's output:\n%s", out);
    free(out);
}

static void
bad_settings_stop_the_start(void **state)
{
    (void)state;
    char u[300];
    /* nothing listens on port 1 */
    expect_refused("postgresql://payd@127.0.0.1:1/payd?connect_timeout=3", NULL, "unreachable", "store.url", NULL);
    /* a wrong password, in the URL and from the password file */
    snprintf(u, sizeof(u), "postgresql://payd:Wr0ngPassw0rd@127.0.0.1:%u/nodes", pd_pg_port());
    expect_refused(u, NULL, "refused the password", "store.url", "Wr0ngPassw0rd");
    char pwfile[] = "/tmp/payd-pw-XXXXXX";
    int fd = mkstemp(pwfile);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "Wr0ngFilePw\n", 12), 12);
    close(fd);
    /* payd reads it after dropping root: as an operator does, give it to [server] user */
    struct passwd *pw = geteuid() == 0 ? getpwnam("payd") : NULL;
    if (pw != NULL)
        assert_int_equal(chown(pwfile, pw->pw_uid, pw->pw_gid), 0);
    char extra[100];
    snprintf(extra, sizeof(extra), "store.password_file=%s", pwfile);
    snprintf(u, sizeof(u), "postgresql://payd@127.0.0.1:%u/nodes", pd_pg_port());
    expect_refused(u, extra, "refused the password", "store.password_file", "Wr0ngFilePw");
    unlink(pwfile);
    /* a database with tables of its own */
    assert_int_equal(pd_pg_database("foreign", true, u, sizeof(u)), 0);
    assert_int_equal(pd_pg_sql("foreign", "CREATE TABLE customers (id int); ALTER TABLE customers OWNER TO payd"), 0);
    expect_refused(u, NULL, "not payd's", "store.url", PD_PG_PASSWORD);
    /* a schema from a newer payd */
    assert_int_equal(pd_pg_database("newer", true, u, sizeof(u)), 0);
    assert_int_equal(pd_pg_sql("newer", "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                                        "INSERT INTO schema_version VALUES (9999);"
                                        "ALTER TABLE schema_version OWNER TO payd"),
                     0);
    expect_refused(u, NULL, "newer than this payd", "store.url", PD_PG_PASSWORD);
}

typedef struct {
    const pd_h_payd_t *node;
    const char *path, *body, *idem;
    pthread_barrier_t *go;
    long status;
    char id[64];
} call_t;

static void *
call_main(void *arg)
{
    call_t *c = arg;
    json_t *o = NULL;
    pthread_barrier_wait(c->go);
    c->status = api_call_as(c->node, api_sk, "POST", c->path, c->body, c->idem, &o);
    const char *id = jstr(o, "id");
    snprintf(c->id, sizeof(c->id), "%s", id != NULL ? id : "");
    json_decref(o);
    return NULL;
}

/* runs the n calls at once, alternating nodes a and b */
static void
race(call_t *calls, int n)
{
    pthread_t th[16];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        calls[i].node = i % 2 == 0 ? &a : &b;
        calls[i].go = &go;
        pthread_create(&th[i], NULL, call_main, &calls[i]);
    }
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
}

static void
manual_intent(char *id, size_t cap, long amount)
{
    json_t *o;
    char body[200];
    snprintf(body, sizeof(body), "amount=%ld&currency=usd&capture_method=manual&confirm=true&payment_method=pm_card_visa",
             amount);
    assert_int_equal(api_call(&a, "POST", "/v1/payment_intents", body, &o), 200);
    assert_string_equal(jstr(o, "status"), "requires_capture");
    snprintf(id, cap, "%s", jstr(o, "id"));
    json_decref(o);
}

static void
two_nodes_race_on_one_intent(void **state)
{
    (void)state;
    for (int round = 0; round < 5; round++) {
        char id[64], path[128];
        manual_intent(id, sizeof(id), 10000);
        /* the intent written through A is read through B */
        json_t *o;
        snprintf(path, sizeof(path), "/v1/payment_intents/%s", id);
        assert_int_equal(api_call(&b, "GET", path, NULL, &o), 200);
        json_decref(o);
        /* captures on both nodes at once: one wins */
        call_t cap[4] = {0};
        snprintf(path, sizeof(path), "/v1/payment_intents/%s/capture", id);
        for (int i = 0; i < 4; i++)
            cap[i] = (call_t){.path = path, .body = "amount_to_capture=10000"};
        race(cap, 4);
        int won = 0;
        for (int i = 0; i < 4; i++) {
            if (cap[i].status == 200)
                won++;
            else if (cap[i].status != 400 && cap[i].status != 409)
                fail_msg("capture answered %ld", cap[i].status);
        }
        assert_true(won >= 1); /* a capture that found the intent captured already answers 400 */
        snprintf(path, sizeof(path), "/v1/payment_intents/%s", id);
        assert_int_equal(api_call(&a, "GET", path, NULL, &o), 200);
        assert_string_equal(jstr(o, "status"), "succeeded");
        assert_int_equal(jint(o, "amount_received"), 10000);
        char ch[64];
        snprintf(ch, sizeof(ch), "%s", jstr(o, "latest_charge"));
        json_decref(o);
        /* four refunds of 4000 on both nodes at once: at most two fit in 10000 */
        call_t rf[4] = {0};
        char body[160];
        snprintf(body, sizeof(body), "payment_intent=%s&amount=4000", id);
        for (int i = 0; i < 4; i++)
            rf[i] = (call_t){.path = "/v1/refunds", .body = body};
        race(rf, 4);
        int refunded = 0;
        for (int i = 0; i < 4; i++) {
            if (rf[i].status == 200)
                refunded++;
            else if (rf[i].status != 400 && rf[i].status != 409)
                fail_msg("refund answered %ld", rf[i].status);
        }
        assert_true(refunded >= 1 && refunded <= 2);
        char q[200];
        snprintf(q, sizeof(q), "SELECT COALESCE(sum(amount), 0) FROM refunds WHERE charge = '%s' AND status = 'succeeded'",
                 ch);
        assert_int_equal(pg_long(q), 4000L * refunded);
        snprintf(q, sizeof(q), "SELECT amount_refunded FROM charges WHERE id = '%s'", ch);
        assert_int_equal(pg_long(q), 4000L * refunded);
        /* one idempotency key on both nodes at once: one payment */
        call_t same[6] = {0};
        char key[64];
        snprintf(key, sizeof(key), "pg-nodes-%d-%d", (int)getpid(), round);
        for (int i = 0; i < 6; i++)
            same[i] = (call_t){.path = "/v1/payment_intents",
                               .body = "amount=777&currency=usd&confirm=true&payment_method=pm_card_visa",
                               .idem = key};
        race(same, 6);
        const char *first = NULL;
        for (int i = 0; i < 6; i++) {
            if (same[i].status == 409)
                continue; /* the key is in flight on the other request: retried, it replays */
            assert_int_equal(same[i].status, 200);
            if (first == NULL)
                first = same[i].id;
            else if (strcmp(first, same[i].id) != 0)
                fail_msg("two payments for one idempotency key: %s %s", first, same[i].id);
        }
        snprintf(q, sizeof(q), "SELECT count(*) FROM idempotency_keys WHERE key = '%s'", key);
        assert_int_equal(pg_long(q), 1);
        snprintf(q, sizeof(q),
                 "SELECT count(*) FROM payment_intents WHERE amount = 777 AND id IN (SELECT payment_intent FROM charges "
                 "WHERE idempotency_key = '%s')",
                 key);
        assert_true(pg_long(q) <= 1);
    }
    /* payctl reads the store payd uses from payd's variables */
    setenv("PAYD_STORE_BACKEND", "postgres", 1);
    setenv("PAYD_STORE_URL", url, 1);
    assert_true(api_ledger_verifies(&a));
    unsetenv("PAYD_STORE_BACKEND");
    unsetenv("PAYD_STORE_URL");
}

static int
setup(void **state)
{
    (void)state;
    if (pd_pg_start() != 0 || pd_pg_database("nodes", true, url, sizeof(url)) != 0)
        return -1;
    snprintf(set_url, sizeof(set_url), "store.url=%s", url);
    const char *args_a[] = {"--set", "store.backend=postgres", "--set", set_url, NULL};
    pd_h_opts_t oa = {.args = args_a};
    if (pd_h_start(&a, &oa) != 0)
        return -1;
    api_load_credentials(&a);
    /* node B: its own data dir and TLS, node A's vault, processor and dev credentials */
    snprintf(b.dir, sizeof(b.dir), "/tmp/payd-it-XXXXXX");
    if (mkdtemp(b.dir) == NULL)
        return -1;
    char cmd[700], sock[400], api_cred[400], proc_cred[400], sim[400];
    snprintf(cmd, sizeof(cmd), "cp %s/credentials.json %s/", a.dir, b.dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(sock, sizeof(sock), "vault.socket=%s/vault/vault.sock", a.dir);
    snprintf(api_cred, sizeof(api_cred), "vault.api_credential=%s/vault/credentials/api", a.dir);
    snprintf(proc_cred, sizeof(proc_cred), "vault.processor_credential=%s/vault/credentials/processor", a.dir);
    snprintf(sim, sizeof(sim), "processor.simulator_db=%s/simulator.db", a.dir);
    const char *args_b[] = {"--set", "store.backend=postgres", "--set", set_url, "--set", "vault.mode=socket",
                            "--set", sock, "--set", api_cred, "--set", proc_cred, "--set", sim, NULL};
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
        cmocka_unit_test(two_nodes_race_on_one_intent),
        cmocka_unit_test(bad_settings_stop_the_start),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
