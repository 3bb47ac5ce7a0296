/*
 * The report runs' and files' repository (src/store/repo_files.c, repo_ledger.c's report
 * reads) on SQLite and PostgreSQL: a pending run goes to one claimer until its claim
 * lapses, a run is finished once, a run shows its result file while the file's row
 * exists, and the report sums split at the interval's bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "payd/records.h"
#include "payd/store.h"
#include "store_fixture.h"

static pd_store_t *store;

static int
setup(void **state)
{
    (void)state;
    if (pd_tf_setup("reports") != 0)
        return -1;
    pd_store_config_t cfg = {.max_batch = 64, .max_queue = 1000};
    store = pd_tf_open(&cfg, 1);
    return store != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    pd_store_close(store);
    return pd_tf_teardown();
}

static int
insert_runs(pd_db_t *tx, void *arg)
{
    (void)arg;
    for (int i = 0; i < 2; i++) {
        pd_report_run_rec_t r = {.livemode = false, .interval_start = 10, .interval_end = 20, .created = 100 + i,
                                 .seq = 1 + i};
        snprintf(r.id, sizeof(r.id), "frr_%d", i);
        snprintf(r.merchant_id, sizeof(r.merchant_id), "acct_r");
        snprintf(r.report_type, sizeof(r.report_type), "balance.summary.1");
        snprintf(r.status, sizeof(r.status), "pending");
        int rc = pd_report_run_insert(tx, &r);
        if (rc != 0)
            return rc;
    }
    return 0;
}

typedef struct {
    int64_t now;
    pd_report_run_rec_t run;
} claim_t;

static int
claim(pd_db_t *tx, void *arg)
{
    claim_t *c = arg;
    return pd_report_run_claim(tx, c->now, c->now + 300, &c->run);
}

static int
finish(pd_db_t *tx, void *arg)
{
    return pd_report_run_finish(tx, arg);
}

static int
insert_file(pd_db_t *tx, void *arg)
{
    return pd_file_insert(tx, arg);
}

static int
delete_file(pd_db_t *tx, void *arg)
{
    return pd_file_delete(tx, arg);
}

static void
a_run_goes_to_one_claimer_until_its_claim_lapses(void **state)
{
    (void)state;
    assert_int_equal(pd_store_write_sync(store, insert_runs, NULL), 0);
    claim_t a = {.now = 1000}, b = {.now = 1000}, c = {.now = 1000}, d = {.now = 1301};
    assert_int_equal(pd_store_write_sync(store, claim, &a), 0);
    assert_string_equal(a.run.id, "frr_0"); /* the oldest first */
    assert_int_equal(a.run.attempts, 1);
    assert_int_equal(pd_store_write_sync(store, claim, &b), 0);
    assert_string_equal(b.run.id, "frr_1");
    assert_int_equal(pd_store_write_sync(store, claim, &c), PD_ERR_NOTFOUND); /* both are claimed */
    assert_int_equal(pd_store_write_sync(store, claim, &d), 0);                /* a's claim lapsed */
    assert_string_equal(d.run.id, "frr_0");
    assert_int_equal(d.run.attempts, 2);

    /* finished once, with its file shown while the file's row exists */
    pd_file_rec_t f = {.size = 42, .created = 1301, .expires_at = 5000, .seq = 9};
    snprintf(f.id, sizeof(f.id), "file_r");
    snprintf(f.merchant_id, sizeof(f.merchant_id), "acct_r");
    snprintf(f.purpose, sizeof(f.purpose), "finance_report_run");
    snprintf(f.filename, sizeof(f.filename), "r.csv");
    snprintf(f.type, sizeof(f.type), "csv");
    snprintf(f.sha256, sizeof(f.sha256), "%064d", 0);
    assert_int_equal(pd_store_write_sync(store, insert_file, &f), 0);
    snprintf(d.run.status, sizeof(d.run.status), "succeeded");
    snprintf(d.run.result_file, sizeof(d.run.result_file), "file_r");
    d.run.succeeded_at = 1302;
    assert_int_equal(pd_store_write_sync(store, finish, &d.run), 0);
    assert_int_equal(pd_store_write_sync(store, finish, &d.run), PD_ERR_STATE);
    pd_report_run_rec_t got;
    assert_int_equal(pd_report_run_get(pd_store_reader(store), "acct_r", false, "frr_0", &got), 0);
    assert_string_equal(got.status, "succeeded");
    assert_true(got.has_result);
    assert_int_equal(got.result.size, 42);
    assert_int_equal(pd_report_run_get(pd_store_reader(store), "acct_other", false, "frr_0", &got), PD_ERR_NOTFOUND);
    assert_int_equal(pd_report_run_get(pd_store_reader(store), "acct_r", true, "frr_0", &got), PD_ERR_NOTFOUND);

    /* expired at 5000: listed then, not before; once deleted the run has no result */
    int64_t n = 0;
    assert_int_equal(pd_db_query_int(pd_store_reader(store), "SELECT COUNT(*) FROM files WHERE expires_at <= 4999 AND expires_at > 0",
                                     NULL, 0, &n),
                     0);
    assert_int_equal(n, 0);
    const char *id = "file_r";
    assert_int_equal(pd_store_write_sync(store, delete_file, (void *)(uintptr_t)id), 0);
    assert_int_equal(pd_store_write_sync(store, delete_file, (void *)(uintptr_t)id), PD_ERR_NOTFOUND);
    assert_int_equal(pd_report_run_get(pd_store_reader(store), "acct_r", false, "frr_0", &got), 0);
    assert_false(got.has_result);
}

static int
insert_btxns(pd_db_t *tx, void *arg)
{
    (void)arg;
    /* created 9 (before), 10 (first second of the interval), 19 (last), 20 (after) */
    const int64_t created[] = {9, 10, 19, 20};
    for (int i = 0; i < 4; i++) {
        pd_btxn_rec_t b = {.amount = 1000 * (i + 1), .fee = 10, .net = 1000 * (i + 1) - 10, .created = created[i],
                           .seq = 100 + i, .available_on = 1000};
        snprintf(b.id, sizeof(b.id), "txn_%d", i);
        snprintf(b.merchant_id, sizeof(b.merchant_id), "acct_b");
        snprintf(b.currency, sizeof(b.currency), "usd");
        snprintf(b.type, sizeof(b.type), "charge");
        snprintf(b.source, sizeof(b.source), "ch_%d", i);
        snprintf(b.status, sizeof(b.status), "pending");
        int r = pd_btxn_insert(tx, &b);
        if (r != 0)
            return r;
    }
    return 0;
}

static int
count_row(void *rec, void *arg)
{
    (void)rec;
    (*(int *)arg)++;
    return 0;
}

static void
the_sums_split_at_the_interval_bounds(void **state)
{
    (void)state;
    assert_int_equal(pd_store_write_sync(store, insert_btxns, NULL), 0);
    pd_btxn_sums_t s[4];
    size_t n = 0;
    assert_int_equal(pd_btxn_sums(pd_store_reader(store), "acct_b", false, "", 10, 20, s, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(s[0].currency, "usd");
    assert_int_equal(s[0].before_net, 990);          /* created 9 */
    assert_int_equal(s[0].gross, 2000 + 3000);       /* created 10 and 19: start inclusive, end exclusive */
    assert_int_equal(s[0].fee, 20);
    assert_int_equal(s[0].net, 4980);
    int rows = 0;
    assert_int_equal(pd_btxn_each_created(pd_store_reader(store), "acct_b", false, "usd", 10, 20, count_row, &rows), 0);
    assert_int_equal(rows, 2);
    rows = 0;
    assert_int_equal(pd_btxn_each_created(pd_store_reader(store), "acct_b", false, "eur", 0, 100, count_row, &rows), 0);
    assert_int_equal(rows, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_run_goes_to_one_claimer_until_its_claim_lapses),
        cmocka_unit_test(the_sums_split_at_the_interval_bounds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
