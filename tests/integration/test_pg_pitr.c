/*
 * Point-in-time recovery of payd's PostgreSQL database, done as an operator would
 * (docs/postgres.md, "Point-in-time recovery"). This test starts its own PostgreSQL 15
 * on loopback with WAL archiving into a directory (archive_mode, archive_command).
 *
 * While payd runs: payments A; a base backup (pg_basebackup -X none: its WAL comes from
 * the archive); payments B; the recovery target T, the server's clock_timestamp() once
 * every payment of B is acknowledged; a second later payments C; the WAL of B and of C
 * archived (pg_switch_wal, and the segment waited for in the archive). payd and the
 * server stop. The base backup is copied into a new data dir with restore_command,
 * recovery_target_time = T and recovery_target_action = promote, and recovery.signal;
 * a server started on it replays the archive up to T and is promoted.
 *
 * payd is started on the restored database with the same data dir (its vault, processor
 * and credentials). Asserted: every payment of A and B reads back succeeded with its
 * amount, none of C exists (404), the last commit replayed is not after T, a new
 * payment succeeds, and so does a retry of C's first idempotency key, as a new payment
 * (the key is forgotten with the rest of C); `payctl ledger verify` passes on the
 * restored books, and with --with-processor it reports exactly C's charges, as
 * unknown_to_payd: the processor made them, the restored books do not have them (what a
 * restore to an earlier time leaves for a person to resolve). The figures are printed.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"
#include "pg_server.h"

#define NPAY 5 /* payments in each of the sets A, B and C */

typedef struct {
    char id[64], charge[64];
    long amount;
} pay_t;

static char dir[] = "/tmp/payd-pitr-XXXXXX"; /* archive/, base/, restored/ and the tools' log */
static char archive[64], base[64], restored[64], tool_log[64];
static char url[300], set_url[340];

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* psql as the superuser on the server (pd_pg_port); its output, trailing newline
 * removed, into out; psql's exit status */
static int
pg_super(const char *sql, char *out, size_t cap)
{
    char psql[300], su[200];
    snprintf(psql, sizeof(psql), "%s/psql", pd_pg_bindir());
    snprintf(su, sizeof(su), "postgresql://postgres:%s@127.0.0.1:%u/postgres", PD_PG_PASSWORD, pd_pg_port());
    const char *argv[] = {psql, "-XAtq", "-d", su, "-c", sql, NULL};
    char *o = NULL;
    int rc = pd_h_run(argv, &o);
    snprintf(out, cap, "%s", o != NULL ? o : "");
    free(o);
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    return rc;
}

/* closes the current WAL segment and waits (30 s at most) until the archive has it:
 * everything committed so far can then be replayed from the archive. 0 when it has. */
static int
archive_now(void)
{
    char seg[64], path[160];
    if (pg_super("SELECT pg_walfile_name(pg_switch_wal())", seg, sizeof(seg)) != 0 || strlen(seg) != 24)
        return -1;
    snprintf(path, sizeof(path), "%s/%s", archive, seg);
    for (int i = 0; i < 300; i++) {
        if (access(path, F_OK) == 0)
            return 0;
        nap(100);
    }
    fprintf(stderr, "segment %s was not archived\n", seg);
    return -1;
}

/* WAL segments in the archive (names of 24 hex digits) */
static int
archived_segments(void)
{
    DIR *d = opendir(archive);
    struct dirent *e;
    int n = 0;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (strlen(e->d_name) == 24 && strspn(e->d_name, "0123456789ABCDEF") == 24)
            n++;
    closedir(d);
    return n;
}

/* NPAY confirmed payments of set (A, B, C, D: amounts 1000, 2000, ... + i, unique), each
 * with an idempotency key of its own, acknowledged succeeded */
static void
pay_set(const pd_h_payd_t *p, char set, pay_t *out, int n)
{
    for (int i = 0; i < n; i++) {
        char body[200], key[32];
        json_t *o = NULL;
        out[i].amount = 1000L * (set - 'A' + 1) + i;
        snprintf(body, sizeof(body), "amount=%ld&currency=usd&confirm=true&payment_method=pm_card_visa", out[i].amount);
        snprintf(key, sizeof(key), "pitr-%c-%d", set, i);
        long st = api_call_as(p, api_sk, "POST", "/v1/payment_intents", body, key, &o);
        if (st != 200 || jstr(o, "status") == NULL || strcmp(jstr(o, "status"), "succeeded") != 0 ||
            jstr(o, "latest_charge") == NULL) {
            char *text = json_dumps(o, 0);
            fail_msg("payment %c%d: %ld %s", set, i, st, text != NULL ? text : "");
        }
        snprintf(out[i].id, sizeof(out[i].id), "%s", jstr(o, "id"));
        snprintf(out[i].charge, sizeof(out[i].charge), "%s", jstr(o, "latest_charge"));
        json_decref(o);
    }
}

/* GET /v1/payment_intents/:id: its status; when 200, the intent must be succeeded with
 * its amount */
static long
read_back(const pd_h_payd_t *p, const pay_t *pay)
{
    char path[120];
    json_t *g = NULL;
    snprintf(path, sizeof(path), "/v1/payment_intents/%.63s", pay->id);
    long st = api_call(p, "GET", path, NULL, &g);
    if (st == 200 && (jstr(g, "status") == NULL || strcmp(jstr(g, "status"), "succeeded") != 0 ||
                      jint(g, "amount") != pay->amount)) {
        char *text = json_dumps(g, 0);
        fail_msg("%s read back as %s", pay->id, text != NULL ? text : "");
    }
    json_decref(g);
    return st;
}

static void
a_restore_to_a_time_has_what_was_committed_before_it(void **state)
{
    (void)state;
    pd_h_payd_t p, q;
    pay_t a[NPAY], b[NPAY], c[NPAY], d[1];
    char target[64], out[256];
    const char *args[] = {"--set", "store.backend=postgres", "--set", set_url, NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    pay_set(&p, 'A', a, NPAY);

    /* the base backup, payd running; -X none: pg_basebackup returns once the WAL the
     * backup needs is archived, and the restore reads every segment from the archive */
    char bb[300], conn[200];
    snprintf(bb, sizeof(bb), "%s/pg_basebackup", pd_pg_bindir());
    snprintf(conn, sizeof(conn), "host=127.0.0.1 port=%u user=postgres password=%s", pd_pg_port(), PD_PG_PASSWORD);
    const char *bargv[] = {bb, "-d", conn, "-D", base, "-X", "none", "--checkpoint=fast", NULL};
    uint64_t t0 = now_ms();
    assert_int_equal(pd_pg_run(bargv, tool_log), 0);
    long backup_ms = (long)(now_ms() - t0);

    pay_set(&p, 'B', b, NPAY);
    /* the target: the server's own clock once B is acknowledged (the commits' timestamps
     * come from that clock) */
    assert_int_equal(pg_super("SELECT clock_timestamp()", target, sizeof(target)), 0);
    assert_true(strlen(target) > 0);
    nap(1000);
    assert_int_equal(archive_now(), 0);
    pay_set(&p, 'C', c, NPAY);
    assert_int_equal(archive_now(), 0); /* C is in the archive too: the recovery must stop before it */
    int segments = archived_segments();
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_pg_shutdown();

    /* the restore: the base backup into a new data dir, told to replay the archive up to
     * the target and then to take writes */
    const char *cp[] = {"/bin/cp", "-a", base, restored, NULL};
    assert_int_equal(pd_pg_run(cp, tool_log), 0);
    char conf[160], sig[160];
    snprintf(conf, sizeof(conf), "%s/postgresql.auto.conf", restored);
    FILE *f = fopen(conf, "a");
    assert_non_null(f);
    fprintf(f, "restore_command = 'cp %s/%%f %%p'\nrecovery_target_time = '%s'\nrecovery_target_action = 'promote'\n",
            archive, target);
    assert_int_equal(fclose(f), 0);
    snprintf(sig, sizeof(sig), "%s/recovery.signal", restored);
    assert_int_equal(pd_h_write_file(sig, ""), 0);
    assert_int_equal(pd_pg_chown(sig), 0);
    t0 = now_ms();
    assert_int_equal(pd_pg_start_on(restored), 0);
    char rec[16] = "";
    for (int i = 0; i < 600 && (pg_super("SELECT pg_is_in_recovery()", rec, sizeof(rec)) != 0 || strcmp(rec, "f") != 0);
         i++)
        nap(100);
    long recovery_ms = (long)(now_ms() - t0);
    assert_string_equal(rec, "f");
    char last[64], sql[200];
    assert_int_equal(pg_super("SELECT pg_last_xact_replay_timestamp()", last, sizeof(last)), 0);
    snprintf(sql, sizeof(sql), "SELECT pg_last_xact_replay_timestamp() <= '%s'::timestamptz", target);
    assert_int_equal(pg_super(sql, out, sizeof(out)), 0);
    assert_string_equal(out, "t");

    /* payd on the restored database: the same data dir, the server's new address */
    char url2[300], set_url2[340];
    snprintf(url2, sizeof(url2), "postgresql://payd:%s@127.0.0.1:%u/pitr", PD_PG_PASSWORD, pd_pg_port());
    snprintf(set_url2, sizeof(set_url2), "store.url=%s", url2);
    const char *args2[] = {"--set", "store.backend=postgres", "--set", set_url2, NULL};
    pd_h_opts_t o2 = {.args = args2, .reuse_dir = p.dir};
    assert_int_equal(pd_h_start(&q, &o2), 0);
    int kept = 0, gone = 0;
    for (int i = 0; i < NPAY; i++) {
        assert_int_equal(read_back(&q, &a[i]), 200);
        assert_int_equal(read_back(&q, &b[i]), 200);
        kept += 2;
    }
    for (int i = 0; i < NPAY; i++) {
        long st = read_back(&q, &c[i]);
        if (st != 404)
            fail_msg("payment %s of C, after the target, answered %ld on the restored database", c[i].id, st);
        gone++;
    }
    /* the restored database has forgotten C's idempotency keys too: a client's retry of
     * one is a new payment (a second charge at the processor) */
    char body[200];
    json_t *again = NULL;
    snprintf(body, sizeof(body), "amount=%ld&currency=usd&confirm=true&payment_method=pm_card_visa", c[0].amount);
    assert_int_equal(api_call_as(&q, api_sk, "POST", "/v1/payment_intents", body, "pitr-C-0", &again), 200);
    assert_non_null(jstr(again, "id"));
    assert_string_not_equal(jstr(again, "id"), c[0].id);
    json_decref(again);
    pay_set(&q, 'D', d, 1); /* the promoted server takes writes; new ids after the restored ones */
    assert_int_equal(pd_h_stop(&q, SIGTERM, 20000), 0);

    /* the restored books verify... */
    char *vout = NULL;
    const char *verify[] = {PAYCTL_BIN, "--data-dir", p.dir, "--set", "store.backend=postgres", "--set", set_url2,
                            "ledger", "verify", NULL};
    int rc = pd_h_run(verify, &vout);
    if (rc != 0 || vout == NULL || strstr(vout, "every invariant holds") == NULL)
        fail_msg("ledger verify on the restored database: exit %d\n%s", rc, vout != NULL ? vout : "");
    free(vout);
    /* ...and the processor's record has exactly C more: its charges, unknown to them */
    const char *vproc[] = {PAYCTL_BIN, "--data-dir", p.dir, "--set", "store.backend=postgres", "--set", set_url2,
                           "ledger", "verify", "--with-processor", NULL};
    rc = pd_h_run(vproc, &vout);
    char want[80];
    snprintf(want, sizeof(want), ", %d mismatch(es)", NPAY);
    if (rc != 3 || vout == NULL || strstr(vout, want) == NULL)
        fail_msg("ledger verify --with-processor on the restored database: exit %d (wanted 3, %d mismatches)\n%s", rc,
                 NPAY, vout != NULL ? vout : "");
    int unknown = 0;
    for (const char *s = vout; (s = strstr(s, "unknown_to_payd ")) != NULL; s++)
        unknown++;
    for (int i = 0; i < NPAY; i++) {
        char line[120];
        snprintf(line, sizeof(line), "unknown_to_payd %s:", c[i].charge);
        if (strstr(vout, line) == NULL)
            fail_msg("C's charge %s is not reported unknown to payd:\n%s", c[i].charge, vout);
    }
    assert_int_equal(unknown, NPAY);
    free(vout);

    printf("pitr: base backup (-X none) %ld ms, %d WAL segments archived; target %s; restored and promoted in %ld ms, "
           "last replayed commit %s; %d payments of A and B read back succeeded, %d of C answered 404; ledger "
           "verified; the processor has %d charges the restored books do not (C's)\n",
           backup_ms, segments, target, recovery_ms, last, kept, gone, unknown);
    fflush(stdout);
    pd_h_cleanup(&p);
}

static int
setup(void **state)
{
    (void)state;
    char conf[600];
    unsetenv("PAYD_TEST_STORE");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(archive, sizeof(archive), "%s/archive", dir);
    snprintf(base, sizeof(base), "%s/base", dir);
    snprintf(restored, sizeof(restored), "%s/restored", dir);
    snprintf(tool_log, sizeof(tool_log), "%s/tools.log", dir);
    /* the server writes the archive, pg_basebackup and cp write as its user */
    if (mkdir(archive, 0700) != 0 || pd_pg_chown(dir) != 0 || pd_pg_chown(archive) != 0)
        return -1;
    snprintf(conf, sizeof(conf),
             "wal_level = replica\n"
             "archive_mode = on\n"
             "archive_command = 'test ! -f %s/%%f && cp %%p %s/%%f'\n",
             archive, archive);
    pd_pg_set_conf(conf);
    if (pd_pg_start() != 0 || pd_pg_database("pitr", true, url, sizeof(url)) != 0)
        return -1;
    snprintf(set_url, sizeof(set_url), "store.url=%s", url);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    pd_pg_stop();
    if (getenv("PAYD_TEST_KEEP") == NULL) {
        const char *rm[] = {"/bin/rm", "-rf", dir, NULL};
        char *out = NULL;
        (void)pd_h_run(rm, &out);
        free(out);
    }
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_restore_to_a_time_has_what_was_committed_before_it),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
