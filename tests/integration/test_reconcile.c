/*
 * Reconciliation with the processor's own record. The processor's record (the
 * simulator's database) is made to disagree with payd's books the ways the capture
 * race did and worse: a capture and a void the processor made that payd never
 * recorded, and a refund payd recorded that the processor does not have. Then:
 * `ledger verify --with-processor` fails naming each, `payctl reconcile --report-only`
 * reports without writing, `payctl reconcile` records the capture and the void (the
 * processor is authoritative there) and still reports the refund, every mismatch is
 * in payd's audit log, and the periodic pass inside payd repairs on its own.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"

static pd_h_payd_t payd;
static char pm[64];

/* runs statements on DIR/simulator.db, each %s replaced by the charge id: the
 * processor's side, changed behind payd's back */
static void
processor_sql(const char *fmt, const char *charge)
{
    char path[400], q[1200] = "";
    snprintf(path, sizeof(path), "%s/simulator.db", payd.dir);
    for (const char *f = fmt; *f != '\0'; f++) {
        size_t n = strlen(q);
        if (f[0] == '%' && f[1] == 's') {
            snprintf(q + n, sizeof(q) - n, "%s", charge);
            f++;
        } else if (n + 1 < sizeof(q)) {
            q[n] = *f;
            q[n + 1] = '\0';
        }
    }
    const char *argv[] = {"/usr/bin/sqlite3", path, q, NULL};
    char *out = NULL;
    assert_int_equal(pd_h_run(argv, &out), 0);
    free(out);
}

/* an authorized manual-capture intent; its id and its charge's id */
static void
authorized(long amount, char *id, char *charge)
{
    char body[200];
    json_t *o;
    snprintf(body, sizeof(body), "amount=%ld&currency=usd&confirm=true&capture_method=manual&payment_method=%s", amount,
             pm);
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", body, &o), 200);
    snprintf(id, 64, "%s", jstr(o, "id"));
    snprintf(charge, 64, "%s", jstr(o, "latest_charge"));
    json_decref(o);
}

static const char *
status_of(const char *id)
{
    static char st[40];
    char path[120];
    json_t *o;
    snprintf(path, sizeof(path), "/v1/payment_intents/%s", id);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &o), 200);
    snprintf(st, sizeof(st), "%s", jstr(o, "status") ? jstr(o, "status") : "");
    json_decref(o);
    return st;
}

static int
payctl(char **out, const char *a1, const char *a2, const char *a3)
{
    const char *a[] = {a1, a2, a3, NULL};
    return pd_h_payctl(&payd, a, out);
}

static void
start(const char *interval)
{
    char iv[80];
    snprintf(iv, sizeof(iv), "payments.reconcile_interval_ms=%s", interval);
    const char *args[] = {"--set", iv, "--set", "waf.ip_rate_limit=1000000", NULL};
    pd_h_opts_t o = {.args = args, .reuse_dir = payd.dir[0] ? payd.dir : NULL};
    assert_int_equal(pd_h_start(&payd, &o), 0);
    api_load_credentials(&payd);
}

static void
payctl_finds_and_repairs(void **state)
{
    (void)state;
    char a[64], a_ch[64], c[64], c_ch[64], b[64], b_ch[64], path[120], body[160], *out = NULL;
    json_t *o;
    memset(&payd, 0, sizeof(payd));
    start("0");
    assert_int_equal(api_card_pm(&payd, "4242424242424242", pm, sizeof(pm)), 200);
    authorized(1500, a, a_ch);
    authorized(2500, c, c_ch);
    authorized(4000, b, b_ch);
    snprintf(path, sizeof(path), "/v1/payment_intents/%s/capture", b);
    assert_int_equal(api_call(&payd, "POST", path, "", &o), 200);
    json_decref(o);
    snprintf(body, sizeof(body), "payment_intent=%s&amount=700", b);
    assert_int_equal(api_call(&payd, "POST", "/v1/refunds", body, &o), 200);
    json_decref(o);
    assert_true(api_ledger_verifies(&payd)); /* agree before anything is changed */
    assert_int_equal(pd_h_stop(&payd, SIGTERM, 20000), 0);

    /* the processor captured A and voided C without payd knowing; it never made B's refund */
    processor_sql("UPDATE auths SET status = 'captured', amount_captured = amount, updated = unixepoch() "
                  "WHERE charge_id = '%s'",
                  a_ch);
    processor_sql("UPDATE auths SET status = 'voided', updated = unixepoch() WHERE charge_id = '%s'", c_ch);
    processor_sql("CREATE TABLE saved AS SELECT * FROM refunds WHERE reference = "
                  "(SELECT reference FROM auths WHERE charge_id = '%s');"
                  "DELETE FROM refunds WHERE refund_id IN (SELECT refund_id FROM saved);"
                  "UPDATE auths SET amount_refunded = 0 WHERE charge_id = '%s'",
                  b_ch);

    assert_int_equal(payctl(&out, "ledger", "verify", "--with-processor"), 3);
    assert_non_null(strstr(out, "capture_not_recorded"));
    assert_non_null(strstr(out, a_ch));
    assert_non_null(strstr(out, "void_not_recorded"));
    assert_non_null(strstr(out, c_ch));
    assert_non_null(strstr(out, "refund_not_at_processor"));
    free(out);

    /* a window it cannot read is refused, naming the flag */
    assert_int_equal(payctl(&out, "reconcile", "--since", "10days"), 1);
    assert_non_null(strstr(out, "--since takes a duration"));
    free(out);
    assert_int_equal(payctl(&out, "reconcile", "--report-only", NULL), 3);
    assert_non_null(strstr(out, "3 mismatch(es), 0 repaired"));
    free(out);

    assert_int_equal(payctl(&out, "reconcile", NULL, NULL), 3); /* the refund stays for a person */
    assert_non_null(strstr(out, "2 repaired"));
    free(out);
    assert_true(api_sql_long(&payd, "payd.db",
                             "SELECT count(*) FROM audit_log WHERE action = 'reconcile.mismatch' AND "
                             "outcome LIKE 'repaired:%'") >= 2);
    assert_true(api_sql_long(&payd, "payd.db",
                             "SELECT count(*) FROM audit_log WHERE action = 'reconcile.mismatch' AND "
                             "outcome = 'failure:refund_not_at_processor'") >= 2);

    start("0");
    assert_string_equal(status_of(a), "succeeded");
    assert_string_equal(status_of(c), "canceled");
    /* with the processor's refund back the books agree again */
    assert_int_equal(pd_h_stop(&payd, SIGTERM, 20000), 0);
    processor_sql("INSERT INTO refunds SELECT * FROM saved; DROP TABLE saved;"
                  "UPDATE auths SET amount_refunded = 700 WHERE charge_id = '%s'",
                  b_ch);
    assert_true(api_ledger_verifies(&payd));
    pd_h_cleanup(&payd);
}

static void
payd_repairs_on_its_own(void **state)
{
    (void)state;
    char a[64], a_ch[64];
    memset(&payd, 0, sizeof(payd));
    start("1s");
    assert_int_equal(api_card_pm(&payd, "4242424242424242", pm, sizeof(pm)), 200);
    authorized(1200, a, a_ch);
    processor_sql("UPDATE auths SET status = 'captured', amount_captured = amount, updated = unixepoch() "
                  "WHERE charge_id = '%s'",
                  a_ch);
    int waited = 0;
    while (strcmp(status_of(a), "succeeded") != 0 && waited++ < 100)
        usleep(100000);
    assert_string_equal(status_of(a), "succeeded");
    char *log = pd_h_log(&payd);
    assert_non_null(strstr(log, "reconciliation mismatch"));
    assert_non_null(strstr(log, "capture_not_recorded"));
    free(log);
    assert_true(api_ledger_verifies(&payd));
    assert_int_equal(pd_h_stop(&payd, SIGTERM, 20000), 0);
    pd_h_cleanup(&payd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(payctl_finds_and_repairs),
        cmocka_unit_test(payd_repairs_on_its_own),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
