/*
 * Point-in-time recovery of the SQLite store (docs/backup.md, "Point in time") against
 * the real binaries: payd --dev with [backup] wal_archive = true takes payments (A), a
 * backup is made, more payments (B), payd is killed with SIGKILL and started again on
 * its dir (the archive's chain goes on), more payments (B2), a time T is noted, more
 * payments (C). `payctl backup restore --until T` gives a store with A, B and B2 and
 * none of C, whose ledger verifies, on which payd --dev starts and pays, also with a
 * card saved after the backup (the vault's WAL is archived and rolled forward too); a clean stop
 * leaves the WAL and the chain goes on. The refusals: a time before the backup or before
 * the archive, a malformed time, a time in the future, a WAL directory without segments,
 * --wal-dir without --until; nothing is written into NEW.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api_helpers.h"
#include "harness.h"

#define PER_SET 6

static const char *const args[] = {"--set", "backup.wal_archive=true", NULL};

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
iso_ms(char *out, size_t cap, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03dZ", (int)(ms % 1000));
}

/* PER_SET payments of amount, their intent ids into ids */
static void
pay_set(const pd_h_payd_t *p, const char *pm, long amount, char ids[][64])
{
    for (int i = 0; i < PER_SET; i++) {
        json_t *o = NULL;
        assert_int_equal(api_charge(p, pm, amount, "usd", &o), 200);
        assert_string_equal(jstr(o, "status"), "succeeded");
        snprintf(ids[i], 64, "%s", jstr(o, "id"));
        json_decref(o);
    }
}

static void
expect_set(const pd_h_payd_t *p, char ids[][64], long want_status, long amount)
{
    char path[200];
    for (int i = 0; i < PER_SET; i++) {
        json_t *o = NULL;
        snprintf(path, sizeof(path), "/v1/payment_intents/%s", ids[i]);
        long st = api_call(p, "GET", path, NULL, &o);
        if (st != want_status)
            fail_msg("%s of amount %ld: %ld, expected %ld", ids[i], amount, st, want_status);
        if (st == 200)
            assert_int_equal(jint(o, "amount"), amount);
        json_decref(o);
    }
}

static int
payctl(const pd_h_payd_t *p, char **out, const char *const *cmd)
{
    const char *argv[24] = {"--set", "backup.wal_archive=true"};
    size_t n = 2;
    for (size_t i = 0; cmd[i] != NULL && n < 23; i++)
        argv[n++] = cmd[i];
    argv[n] = NULL;
    int rc = pd_h_payctl(p, argv, out);
    if (*out == NULL)
        *out = strdup("");
    return rc;
}

static void
expect_fail(const pd_h_payd_t *p, const char *const *cmd, const char *says)
{
    char *out = NULL;
    int rc = payctl(p, &out, cmd);
    if (rc != 1 || strstr(out, says) == NULL)
        fail_msg("payctl %s: exit %d, expected 1 saying \"%s\":\n%s", cmd[1], rc, says, out);
    free(out);
}

/* the log lines of the archiver of payd's store (what = its message) and of the vault's
 * (their "dir" or "after" is the vault's archive), counted apart: *vault gets the latter */
static int
count_in_log(const pd_h_payd_t *p, const char *what, int *vault)
{
    char *log = pd_h_log(p), vdir[400];
    int n = 0, v = 0;
    snprintf(vdir, sizeof(vdir), "%s/vault/wal-archive", p->dir);
    for (char *line = log; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (strstr(line, what) != NULL && strstr(line, vdir) != NULL)
            v++;
        else if (strstr(line, what) != NULL)
            n++;
        line = nl != NULL ? nl + 1 : NULL;
    }
    free(log);
    *vault = v;
    return n;
}

/* the checkpoint thread's next round (every 50 ms) archives the commits so far; a second
 * leaves room for a loaded machine */
static void
let_archive(void)
{
    usleep(1000 * 1000);
}

static void
rolls_forward_to_a_point_in_time(void **state)
{
    (void)state;
    static char a[PER_SET][64], b[PER_SET][64], b2[PER_SET][64], c[PER_SET][64];
    char pm[64], archive[400], newdir[400], t[64], wal[600], *out = NULL;
    pd_h_payd_t p;
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    assert_int_equal(api_card_pm(&p, "4242424242424242", pm, sizeof(pm)), 200);
    pay_set(&p, pm, 1001, a);
    let_archive();
    int64_t before_backup = now_ms();
    usleep(100 * 1000);

    snprintf(archive, sizeof(archive), "%s-pitr.pdbk", p.dir);
    const char *create[] = {"backup", "create", "--out", archive, NULL};
    int rc = payctl(&p, &out, create);
    if (rc != 0 || strstr(out, "a restore can roll it forward") == NULL)
        fail_msg("backup create: exit %d:\n%s", rc, out);
    free(out);
    pay_set(&p, pm, 1002, b);
    let_archive();

    /* a crash: the archive's chain goes on from the WAL payd finds at its next start */
    assert_int_equal(pd_h_stop(&p, SIGKILL, 5000), 128 + SIGKILL);
    pd_h_payd_t q;
    pd_h_opts_t qo = {.args = args, .reuse_dir = p.dir};
    assert_int_equal(pd_h_start(&q, &qo), 0);
    /* the log goes on from the first run's, which started the chain */
    int vault = 0;
    assert_int_equal(count_in_log(&q, "wal archive: the chain goes on", &vault), 1);
    assert_int_equal(vault, 1);
    assert_int_equal(count_in_log(&q, "a new chain starts", &vault), 1);
    assert_int_equal(vault, 1);
    pay_set(&q, pm, 1003, b2);
    /* a card saved after the backup: the vault rolls forward too */
    char late_pm[64];
    assert_int_equal(api_card_pm(&q, "5555555555554444", late_pm, sizeof(late_pm)), 200);
    let_archive();
    int64_t until = now_ms();
    iso_ms(t, sizeof(t), until);
    usleep(300 * 1000);
    pay_set(&q, pm, 1004, c);
    let_archive();
    assert_true(api_metric(&q, "payd_wal_archive_records_total") >= 1);
    assert_true(api_metric(&q, "payd_wal_archive_last_record_timestamp_seconds") >= (double)(until / 1000));
    assert_true(api_metric(&q, "payd_wal_archive_failures_total") == 0);

    /* the refusals: nothing is written into NEW */
    snprintf(newdir, sizeof(newdir), "%s-pitr-restored", p.dir);
    char early[64], future[64];
    iso_ms(early, sizeof(early), until - 3600 * 1000);
    iso_ms(future, sizeof(future), until + 3600 * 1000);
    expect_fail(&q, (const char *const[]){"backup", "restore", archive, "--data-dir", newdir, "--until", "yesterday", NULL},
                "give a UTC time as");
    expect_fail(&q, (const char *const[]){"backup", "restore", archive, "--data-dir", newdir, "--until", future, NULL},
                "is in the future");
    expect_fail(&q, (const char *const[]){"backup", "restore", archive, "--data-dir", newdir, "--wal-dir", "/tmp", NULL},
                "--wal-dir goes with --until");
    expect_fail(&q,
                (const char *const[]){"backup", "restore", archive, "--data-dir", newdir, "--until", t, "--wal-dir",
                                      "/nonexistent-payd-wal", NULL},
                "has no segment from before the time given");
    /* a time before the archive's first segment, and one before the backup */
    expect_fail(&q, (const char *const[]){"backup", "restore", archive, "--data-dir", newdir, "--until", early, NULL},
                "has no segment from before the time given");
    char before[64];
    iso_ms(before, sizeof(before), before_backup);
    expect_fail(&q, (const char *const[]){"backup", "restore", archive, "--data-dir", newdir, "--until", before, NULL},
                "is before this backup's copy of payd.db");
    struct stat st;
    assert_int_not_equal(stat(newdir, &st), 0);

    const char *restore[] = {"backup", "restore", archive, "--data-dir", newdir, "--until", t, NULL};
    rc = payctl(&q, &out, restore);
    if (rc != 0 || strstr(out, "payd.db rolled forward") == NULL || strstr(out, "payments store as of") == NULL ||
        strstr(out, "vault/vault.db rolled forward") == NULL)
        fail_msg("backup restore --until %s: exit %d:\n%s", t, rc, out);
    printf("%s", strstr(out, "payd.db rolled forward"));
    free(out);
    snprintf(wal, sizeof(wal), "%s/%s", newdir, "payd.db.walpos");
    assert_int_not_equal(stat(wal, &st), 0); /* the archive's, not a file of the data dir */

    /* payd --dev on the state as of T: A, B (after the backup) and B2 (after the crash), not C */
    pd_h_payd_t r;
    pd_h_opts_t ro = {.reuse_dir = newdir};
    assert_int_equal(pd_h_start(&r, &ro), 0);
    expect_set(&r, a, 200, 1001);
    expect_set(&r, b, 200, 1002);
    expect_set(&r, b2, 200, 1003);
    expect_set(&r, c, 404, 1004);
    printf("pitr: %d payments before the backup, %d after it, %d after a kill -9 and restart, all restored to %s; %d "
           "made after it are not there\n",
           PER_SET, PER_SET, PER_SET, t, PER_SET);
    const char *lv[] = {PAYCTL_BIN, "--data-dir", r.dir, "ledger", "verify", NULL};
    rc = pd_h_run(lv, &out);
    if (rc != 0 || strstr(out, "every invariant holds") == NULL)
        fail_msg("ledger verify on the restored dir: exit %d:\n%s", rc, out);
    free(out);
    json_t *j = NULL;
    assert_int_equal(api_charge(&r, pm, 4242, "usd", &j), 200); /* the restored card pays */
    json_decref(j);
    assert_int_equal(api_charge(&r, late_pm, 4243, "usd", &j), 200); /* and the one saved after the backup */
    assert_string_equal(jstr(j, "status"), "succeeded");
    json_decref(j);
    assert_int_equal(pd_h_stop(&r, SIGTERM, 15000), 0);
    pd_h_cleanup(&r);

    /* a clean stop leaves the WAL (no checkpoint as the store closes while archiving),
     * and the next start goes on with the chain */
    assert_int_equal(pd_h_stop(&q, SIGTERM, 15000), 0);
    unlink(archive);
    char walfile[400];
    snprintf(walfile, sizeof(walfile), "%s/payd.db-wal", p.dir);
    assert_int_equal(stat(walfile, &st), 0);
    pd_h_payd_t q2;
    assert_int_equal(pd_h_start(&q2, &qo), 0);
    assert_int_equal(count_in_log(&q2, "wal archive: the chain goes on", &vault), 2);
    assert_int_equal(vault, 2);
    assert_int_equal(count_in_log(&q2, "a new chain starts", &vault), 1);
    assert_int_equal(vault, 1);
    assert_int_equal(pd_h_stop(&q2, SIGTERM, 15000), 0);
    const char *rm[] = {"/bin/rm", "-rf", newdir, NULL};
    assert_int_equal(pd_h_run(rm, &out), 0);
    free(out);
    pd_h_cleanup(&q2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rolls_forward_to_a_point_in_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
