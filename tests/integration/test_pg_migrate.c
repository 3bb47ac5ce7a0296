/*
 * payctl store migrate: a dev install's SQLite store moves to PostgreSQL (this test
 * starts its own PostgreSQL 15 on loopback, see pg_server.h).
 *
 * payd --dev on SQLite takes payments and refunds; it is stopped; `payctl store
 * migrate --from sqlite:DIR/payd.db --to URL` copies the store and verifies the copy;
 * payd restarted on the same data dir with store.backend=postgres serves every object
 * as before, takes new payments (the identity sequences moved past the copied ids),
 * and its books verify and agree with the processor's record. A second migrate into
 * the now non-empty database is refused and changes nothing; bad arguments are refused
 * with a message naming them.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"
#include "pg_server.h"

static char url[300], set_url[340];

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

static int
migrate(const char *dir, const char *from, const char *to, char **out)
{
    const char *argv[] = {PAYCTL_BIN, "--data-dir", dir, "store", "migrate", "--from", from, "--to", to, NULL};
    return pd_h_run(argv, out);
}

#define NPAY 6

static void
a_dev_store_moves_to_postgres(void **state)
{
    (void)state;
    pd_h_payd_t p, q;
    assert_int_equal(pd_h_start(&p, NULL), 0);
    api_load_credentials(&p);
    char pm[64], ids[NPAY][64];
    long amounts[NPAY];
    assert_int_equal(api_card_pm(&p, "4242424242424242", pm, sizeof(pm)), 200);
    for (int i = 0; i < NPAY; i++) {
        json_t *o = NULL;
        amounts[i] = 1000 + 111 * i;
        char body[300], key[32];
        snprintf(body, sizeof(body), "amount=%ld&currency=usd&confirm=true&payment_method=%s", amounts[i], pm);
        snprintf(key, sizeof(key), "migrate-%d", i);
        assert_int_equal(api_call_as(&p, api_sk, "POST", "/v1/payment_intents", body, key, &o), 200);
        snprintf(ids[i], sizeof(ids[i]), "%s", jstr(o, "id"));
        if (i == 0) {
            char rb[200];
            json_t *r = NULL;
            snprintf(rb, sizeof(rb), "payment_intent=%s&amount=300", ids[0]);
            assert_int_equal(api_call(&p, "POST", "/v1/refunds", rb, &r), 200);
            json_decref(r);
        }
        json_decref(o);
    }
    /* an operator's action: a row in audit_log, whose ids come from a sequence on PostgreSQL */
    const char *mc[] = {PAYCTL_BIN, "--data-dir", p.dir, "merchant", "create", "--name", "Before", NULL};
    char *mout = NULL;
    assert_int_equal(pd_h_run(mc, &mout), 0);
    free(mout);
    long events = api_sql_long(&p, "payd.db", "SELECT COUNT(*) FROM events");
    long audits = api_sql_long(&p, "payd.db", "SELECT COUNT(*) FROM audit_log");
    assert_true(audits >= 1);
    assert_true(events >= NPAY);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);

    char from[400], *out = NULL;
    snprintf(from, sizeof(from), "sqlite:%s/payd.db", p.dir);
    int rc = migrate(p.dir, from, url, &out);
    if (rc != 0 || strstr(out, "migrated:") == NULL || strstr(out, "ledger verified on both sides") == NULL ||
        strstr(out, "verified payment_intents") == NULL)
        fail_msg("migrate: exit %d\n%s", rc, out);
    printf("%s", out);
    free(out);
    assert_int_equal(pg_long("SELECT COUNT(*) FROM payment_intents"), NPAY);
    assert_int_equal(pg_long("SELECT COUNT(*) FROM events"), events);
    assert_int_equal(pg_long("SELECT COUNT(*) FROM audit_log"), audits);

    /* a second copy into the same database is refused and changes nothing */
    rc = migrate(p.dir, from, url, &out);
    if (rc != 1 || strstr(out, "the destination is not empty") == NULL || strstr(out, "destination is unchanged") == NULL)
        fail_msg("second migrate: exit %d\n%s", rc, out);
    free(out);
    assert_int_equal(pg_long("SELECT COUNT(*) FROM payment_intents"), NPAY);

    /* payd on PostgreSQL with the same data dir (vault, processor, credentials) */
    const char *args[] = {"--set", "store.backend=postgres", "--set", set_url, NULL};
    pd_h_opts_t o = {.args = args, .reuse_dir = p.dir};
    assert_int_equal(pd_h_start(&q, &o), 0);
    for (int i = 0; i < NPAY; i++) {
        char path[120];
        json_t *g = NULL;
        snprintf(path, sizeof(path), "/v1/payment_intents/%.63s", ids[i]);
        assert_int_equal(api_call(&q, "GET", path, NULL, &g), 200);
        assert_string_equal(jstr(g, "status"), "succeeded");
        assert_int_equal(jint(g, "amount"), amounts[i]);
        json_decref(g);
    }
    json_t *r = NULL;
    assert_int_equal(api_call(&q, "GET", "/v1/refunds?limit=10", NULL, &r), 200);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 1);
    json_decref(r);
    /* an idempotency key used before the move gives the same payment after it */
    char body[300];
    json_t *again = NULL;
    snprintf(body, sizeof(body), "amount=%ld&currency=usd&confirm=true&payment_method=%s", amounts[2], pm);
    assert_int_equal(api_call_as(&q, api_sk, "POST", "/v1/payment_intents", body, "migrate-2", &again), 200);
    assert_string_equal(jstr(again, "id"), ids[2]);
    json_decref(again);
    /* new keys and payments: identity ids after the copied ones (the sequences moved) */
    for (int i = 0; i < 3; i++) {
        json_t *n = NULL;
        char key[32];
        snprintf(body, sizeof(body), "amount=%d&currency=usd&confirm=true&payment_method=%s", 4321 + i, pm);
        snprintf(key, sizeof(key), "after-%d", i);
        if (api_call_as(&q, api_sk, "POST", "/v1/payment_intents", body, key, &n) != 200)
            fail_msg("a new payment on PostgreSQL after the copy: %s", json_dumps(n, 0));
        json_decref(n);
    }
    assert_int_equal(pg_long("SELECT COUNT(*) FROM payment_intents"), NPAY + 3);
    assert_true(pg_long("SELECT COUNT(*) FROM events") > events);
    /* new audit rows after the copied ones (the sequence moved past them) */
    const char *mc2[] = {PAYCTL_BIN, "--data-dir", p.dir, "--set", "store.backend=postgres", "--set", set_url,
                         "merchant", "create", "--name", "After", NULL};
    rc = pd_h_run(mc2, &out);
    if (rc != 0)
        fail_msg("merchant create on PostgreSQL after the copy: exit %d\n%s", rc, out);
    free(out);
    assert_true(pg_long("SELECT COUNT(*) FROM audit_log") > audits);

    assert_int_equal(pd_h_stop(&q, SIGTERM, 20000), 0);

    /* the books on PostgreSQL verify and agree with the processor's own record */
    const char *verify[] = {PAYCTL_BIN, "--data-dir", p.dir, "--set", "store.backend=postgres", "--set", set_url,
                            "ledger", "verify", "--with-processor", NULL};
    rc = pd_h_run(verify, &out);
    if (rc != 0 || strstr(out, "every invariant holds") == NULL || strstr(out, "processor agrees") == NULL)
        fail_msg("ledger verify on PostgreSQL: exit %d\n%s", rc, out);
    free(out);
    pd_h_cleanup(&p);
}

static void
bad_arguments_are_refused(void **state)
{
    (void)state;
    char *out = NULL, dir[] = "/tmp/payd-it-XXXXXX";
    assert_non_null(mkdtemp(dir));
    static const struct {
        const char *from, *to, *why;
    } bad[] = {
        {"sqlite:/nonexistent/payd.db", NULL, "--from: /nonexistent/payd.db: No such file"},
        {"/tmp/payd.db", NULL, "usage: payctl store migrate --from sqlite:PATH --to URL"},
        {"sqlite:", NULL, "usage: payctl store migrate"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = migrate(dir, bad[i].from, bad[i].to != NULL ? bad[i].to : url, &out);
        if (rc != 1 || strstr(out, bad[i].why) == NULL)
            fail_msg("--from %s: exit %d, wanted \"%s\":\n%s", bad[i].from, rc, bad[i].why, out);
        free(out);
    }
    /* a source that is not payd's, and an unreachable destination */
    char notpayd[400], from[420], cmd[600];
    snprintf(notpayd, sizeof(notpayd), "%s/other.db", dir);
    snprintf(cmd, sizeof(cmd), "/usr/bin/sqlite3 %s 'CREATE TABLE t (x INTEGER)'", notpayd);
    assert_int_equal(system(cmd), 0);
    snprintf(from, sizeof(from), "sqlite:%s", notpayd);
    int rc = migrate(dir, from, url, &out);
    if (rc != 1 || strstr(out, "cannot open the source") == NULL || strstr(out, "not payd's") == NULL)
        fail_msg("foreign source: exit %d\n%s", rc, out);
    free(out);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    (void)!system(cmd);
}

static int
setup(void **state)
{
    (void)state;
    unsetenv("PAYD_TEST_STORE");
    if (pd_pg_start() != 0 || pd_pg_database("migrated", true, url, sizeof(url)) != 0)
        return -1;
    snprintf(set_url, sizeof(set_url), "store.url=%s", url);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_dev_store_moves_to_postgres),
        cmocka_unit_test(bad_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
