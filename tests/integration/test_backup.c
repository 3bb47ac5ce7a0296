/*
 * payctl backup (docs/backup.md) against the real binaries: payd --dev takes payments
 * (usd, and a refund); a backup is made while another client keeps paying (in eur, so
 * the usd books at backup time are known exactly); the archive holds no readable card
 * number, API key or object id; verify passes, and fails precisely on a flipped byte,
 * a cut archive, a changed version, a foreign file and a wrong passphrase; create
 * refuses a missing --out, an existing file and an unwritable directory; restore
 * refuses a non-empty directory and leaves it as it was; the restored directory starts
 * with payd --dev, the old key works, the usd payments, the refund and the balance are
 * what they were, every eur payment acknowledged before the backup began is there, the
 * ledger verifies against the restored processor's record, and the restored card pays.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include <cmocka.h>
#include <jansson.h>

#include "api_helpers.h"
#include "harness.h"

#define CARD "4242424242424242"
#define USD_PAYMENTS 5
#define MAX_LOAD 2000

static pd_h_payd_t payd;

/* the eur payments of the load, in the order they were acknowledged */
static char load_ids[MAX_LOAD][64];
static atomic_int load_acked;
static atomic_bool load_stop;
static char load_pm[64];

static void *
load_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&load_stop) && atomic_load(&load_acked) < MAX_LOAD) {
        json_t *o = NULL;
        long st = api_charge(&payd, load_pm, 777, "eur", &o);
        const char *id = jstr(o, "id");
        if (st == 200 && id != NULL && strcmp(jstr(o, "status"), "succeeded") == 0) {
            int i = atomic_load(&load_acked);
            snprintf(load_ids[i], sizeof(load_ids[i]), "%s", id);
            atomic_store(&load_acked, i + 1); /* one writer: published after the id is written */
        }
        json_decref(o);
    }
    return NULL;
}

static int
setup(void **state)
{
    (void)state;
    /* the backup alarm evaluated every second, raised past 20 s without a success */
    static const char *const args[] = {"--set", "files.janitor_interval=1s", "--set", "alarms.backup_period=1s",
                                       "--set", "alarms.backup_threshold=0.0056", NULL};
    pd_h_opts_t o = {.args = args};
    if (pd_h_start(&payd, &o) != 0)
        return -1;
    api_load_credentials(&payd);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    int rc = pd_h_stop(&payd, SIGTERM, 15000);
    pd_h_cleanup(&payd);
    return rc == 0 ? 0 : -1;
}

static int
run_payctl(char **out, const char *const *args)
{
    int rc = pd_h_payctl(&payd, args, out);
    if (*out == NULL)
        *out = strdup("");
    return rc;
}

/* exit code 1 and the output says `says` */
static void
expect_fail(const char *const *args, const char *says)
{
    char *out = NULL;
    int rc = run_payctl(&out, args);
    if (rc != 1 || strstr(out, says) == NULL)
        fail_msg("payctl %s %s: exit %d, expected 1 saying \"%s\":\n%s", args[0], args[1], rc, says, out);
    free(out);
}

static char *
read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void
write_all(const char *path, const char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static bool
contains(const char *hay, size_t n, const char *needle)
{
    return memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* the usd amounts of a balance answer: "available/pending" */
static void
usd_balance(const pd_h_payd_t *p, char *out, size_t cap)
{
    json_t *o = NULL;
    assert_int_equal(api_call(p, "GET", "/v1/balance", NULL, &o), 200);
    long long avail = -1, pending = -1;
    for (int k = 0; k < 2; k++) {
        json_t *arr = json_object_get(o, k == 0 ? "available" : "pending");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            json_t *e = json_array_get(arr, i);
            if (strcmp(json_string_value(json_object_get(e, "currency")), "usd") == 0)
                *(k == 0 ? &avail : &pending) = json_integer_value(json_object_get(e, "amount"));
        }
    }
    snprintf(out, cap, "%lld/%lld", avail, pending);
    json_decref(o);
}

/* GET path on p with the dev key: the status, the body (malloc'd) and its length */
static long
get_raw(const pd_h_payd_t *p, const char *path, char **body, size_t *len)
{
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    const char *hdrs[] = {auth, NULL};
    pd_h_req_t rq = {.headers = hdrs};
    pd_h_resp_t r;
    long st = pd_h_request(p, "GET", path, &rq, &r) == 0 ? r.status : -1;
    *len = r.body_len;
    *body = malloc(r.body_len + 1);
    memcpy(*body, r.body != NULL ? r.body : "", r.body_len);
    (*body)[r.body_len] = '\0';
    pd_h_resp_free(&r);
    return st;
}

/* a balance report over the last hour, waited for; its file's id into file_id */
static void
make_report(char *file_id, size_t cap)
{
    char body[200], path[200];
    json_t *j;
    time_t t0 = time(NULL);
    while (time(NULL) == t0)
        usleep(20000);
    snprintf(body, sizeof(body),
             "report_type=balance.summary.1&parameters[interval_start]=%ld&parameters[interval_end]=%ld",
             (long)t0 - 3600, (long)t0);
    assert_int_equal(api_call(&payd, "POST", "/v1/reporting/report_runs", body, &j), 200);
    snprintf(path, sizeof(path), "/v1/reporting/report_runs/%s", jstr(j, "id"));
    json_decref(j);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
        if (strcmp(jstr(j, "status"), "pending") != 0) {
            assert_string_equal(jstr(j, "status"), "succeeded");
            snprintf(file_id, cap, "%s", jstr(j, "result.id"));
            json_decref(j);
            return;
        }
        json_decref(j);
        usleep(50000);
    }
    fail_msg("the report run stayed pending");
}

static void
backup_drill(void **state)
{
    (void)state;
    char pm[64], pis[USD_PAYMENTS][64], refund[64], path[700], body[200], before[64], after[64];
    char archive[300], bad[400], newdir[400], *out = NULL;
    json_t *o = NULL;

    /* usd payments and a refund, all acknowledged before the backup */
    assert_int_equal(api_card_pm(&payd, CARD, pm, sizeof(pm)), 200);
    assert_int_equal(api_card_pm(&payd, CARD, load_pm, sizeof(load_pm)), 200);
    for (int i = 0; i < USD_PAYMENTS; i++) {
        assert_int_equal(api_charge(&payd, pm, 1000 + i, "usd", &o), 200);
        assert_string_equal(jstr(o, "status"), "succeeded");
        snprintf(pis[i], sizeof(pis[i]), "%s", jstr(o, "id"));
        json_decref(o);
    }
    snprintf(body, sizeof(body), "payment_intent=%s&amount=300", pis[0]);
    assert_int_equal(api_call(&payd, "POST", "/v1/refunds", body, &o), 200);
    snprintf(refund, sizeof(refund), "%s", jstr(o, "id"));
    json_decref(o);
    usd_balance(&payd, before, sizeof(before));
    /* a file in the file store: a report's CSV */
    char file_id[64], fpath[200], *csv = NULL, *csv2 = NULL;
    size_t csv_len, csv2_len;
    make_report(file_id, sizeof(file_id));
    snprintf(fpath, sizeof(fpath), "/v1/files/%s/contents", file_id);
    assert_int_equal(get_raw(&payd, fpath, &csv, &csv_len), 200);
    assert_true(csv_len > 0);

    /* the backup, while another client keeps paying */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, load_main, NULL), 0);
    while (atomic_load(&load_acked) < 5)
        usleep(10000);
    int acked_before = atomic_load(&load_acked);
    snprintf(archive, sizeof(archive), "%s.pdbk", payd.dir);
    const char *create[] = {"backup", "create", "--out", archive, NULL};
    int rc = run_payctl(&out, create);
    int acked_after = atomic_load(&load_acked);
    usleep(200000);
    atomic_store(&load_stop, true);
    pthread_join(th, NULL);
    if (rc != 0 || strstr(out, "backup written") == NULL || strstr(out, "WARNING") == NULL)
        fail_msg("backup create: exit %d:\n%s", rc, out);
    print_message("backup made with %d eur payments acknowledged before it began, %d by its end\n", acked_before,
                  acked_after);
    free(out);
    struct stat st;
    assert_int_equal(stat(archive, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* nothing readable: no card number, no secret key, no object id */
    size_t n;
    char *bytes = read_all(archive, &n);
    assert_false(contains(bytes, n, CARD));
    assert_false(contains(bytes, n, api_sk));
    assert_false(contains(bytes, n, pis[1]));
    assert_false(contains(bytes, n, pm));
    assert_false(contains(bytes, n, api_merchant));

    const char *verify[] = {"backup", "verify", archive, NULL};
    rc = run_payctl(&out, verify);
    if (rc != 0 || strstr(out, "backup verified") == NULL || strstr(out, "ledger verified") == NULL ||
        strstr(out, "audit chain verified") == NULL)
        fail_msg("backup verify: exit %d:\n%s", rc, out);
    free(out);

    /* tampered copies */
    snprintf(bad, sizeof(bad), "%s.bad", archive);
    const char *verify_bad[] = {"backup", "verify", bad, NULL};
    bytes[n / 2] ^= 0x01;
    write_all(bad, bytes, n);
    expect_fail(verify_bad, "altered or is damaged");
    bytes[n / 2] ^= 0x01;
    write_all(bad, bytes, n / 2);
    expect_fail(verify_bad, "truncated");
    write_all(bad, bytes, n - 1);
    expect_fail(verify_bad, "truncated");
    char *hdr = memmem(bytes, 200, "PDBK", 4);
    assert_non_null(hdr);
    hdr[4] = 2; /* the archive's version */
    write_all(bad, bytes, n);
    expect_fail(verify_bad, "archive version 2");
    hdr[4] = 1;
    hdr[40] ^= 0x01; /* inside the wrapped key: the vault refuses it */
    write_all(bad, bytes, n);
    expect_fail(verify_bad, "another vault");
    hdr[40] ^= 0x01;
    hdr[72 + 200] ^= 0x01; /* inside the sealed root key file (its last line, the sealed key) */
    write_all(bad, bytes, n);
    expect_fail(verify_bad, "verify failed");
    hdr[72 + 200] ^= 0x01;
    write_all(bad, "hello, not an archive\n", 22);
    expect_fail(verify_bad, "not a payd backup archive");
    snprintf(path, sizeof(path), "%s.wrongpass", archive);
    write_all(path, "not the passphrase\n", 19);
    const char *wrongpass[] = {"backup", "verify", archive, "--passphrase-file", path, NULL};
    expect_fail(wrongpass, "wrong passphrase");
    unlink(path);
    unlink(bad);
    free(bytes);

    /* create's refusals */
    const char *empty_out[] = {"backup", "create", "--out", "", NULL};
    expect_fail(empty_out, "--out needs a file name");
    const char *exists[] = {"backup", "create", "--out", archive, NULL};
    expect_fail(exists, "refusing to overwrite");
    const char *nodir[] = {"backup", "create", "--out", "/nonexistent-payd-dir/x.pdbk", NULL};
    expect_fail(nodir, "cannot write in /nonexistent-payd-dir");
    const char *pg[] = {"--set", "store.backend=postgres", "backup", "create", "--out", "/tmp/payd-pg.pdbk", NULL};
    expect_fail(pg, "[store] backend = postgres: payctl backup copies the SQLite store only");
    const char *list[] = {"backup", "list", "extra", NULL};
    expect_fail(list, "unexpected argument");
    const char *restore_nodir[] = {"backup", "restore", archive, NULL};
    expect_fail(restore_nodir, "--data-dir NEW is required");

    /* restore: a non-empty directory is refused and left as it was */
    snprintf(newdir, sizeof(newdir), "%s-restored", payd.dir);
    assert_int_equal(mkdir(newdir, 0700), 0);
    snprintf(path, sizeof(path), "%s/keep", newdir);
    write_all(path, "x", 1);
    const char *restore[] = {"backup", "restore", archive, "--data-dir", newdir, NULL};
    expect_fail(restore, "exists and is not empty: restore into a new or empty directory");
    assert_int_equal(stat(path, &st), 0);
    unlink(path);
    rc = run_payctl(&out, restore);
    if (rc != 0 || strstr(out, "restored") == NULL)
        fail_msg("backup restore: exit %d:\n%s", rc, out);
    free(out);
    unlink(archive);

    /* payd --dev on the restored state */
    pd_h_payd_t r;
    pd_h_opts_t opts = {.reuse_dir = newdir};
    assert_int_equal(pd_h_start(&r, &opts), 0);
    /* nothing was made anew: the same vault credentials, no new vault, no new merchant */
    static const char *const creds[] = {"admin", "api", "processor", "rotation"};
    for (size_t i = 0; i < 4; i++) {
        char a[500], b[500];
        size_t na, nb;
        snprintf(a, sizeof(a), "%s/vault/credentials/%s", payd.dir, creds[i]);
        snprintf(b, sizeof(b), "%s/vault/credentials/%s", r.dir, creds[i]);
        char *ca = read_all(a, &na), *cb = read_all(b, &nb);
        if (na != nb || memcmp(ca, cb, na) != 0)
            fail_msg("the restored vault's %s credential is not the original's", creds[i]);
        free(ca);
        free(cb);
    }
    char *log = pd_h_log(&r);
    assert_non_null(log);
    if (strstr(log, "\"new_vault\":true") != NULL || strstr(log, "demo merchant created") != NULL) {
        printf("%s\n", log); /* the whole log: fail_msg cuts it, and longjmps past a free */
        free(log);
        fail_msg("payd --dev initialized something anew on the restored dir (the log is above)");
    }
    free(log);
    for (int i = 0; i < USD_PAYMENTS; i++) {
        snprintf(path, sizeof(path), "/v1/payment_intents/%s", pis[i]);
        assert_int_equal(api_call(&r, "GET", path, NULL, &o), 200);
        assert_string_equal(jstr(o, "status"), "succeeded");
        assert_int_equal(jint(o, "amount"), 1000 + i);
        json_decref(o);
    }
    /* the report's file is there, with the same bytes */
    assert_int_equal(get_raw(&r, fpath, &csv2, &csv2_len), 200);
    assert_int_equal(csv2_len, csv_len);
    assert_memory_equal(csv2, csv, csv_len);
    free(csv);
    free(csv2);
    snprintf(path, sizeof(path), "/v1/refunds/%s", refund);
    assert_int_equal(api_call(&r, "GET", path, NULL, &o), 200);
    assert_int_equal(jint(o, "amount"), 300);
    json_decref(o);
    usd_balance(&r, after, sizeof(after));
    assert_string_equal(after, before);
    for (int i = 0; i < acked_before; i++) {
        snprintf(path, sizeof(path), "/v1/payment_intents/%.63s", load_ids[i]);
        assert_int_equal(api_call(&r, "GET", path, NULL, &o), 200);
        assert_string_equal(jstr(o, "status"), "succeeded");
        json_decref(o);
    }
    /* the restored books hold together, and agree with the restored processor's record
     * but for eur payments the processor took after payd's snapshot (the simulator's is
     * taken after payd's: what the processor has beyond the backup point is reported) */
    const char *lv[] = {PAYCTL_BIN, "--data-dir", r.dir, "ledger", "verify", NULL};
    rc = pd_h_run(lv, &out);
    if (rc != 0 || strstr(out, "every invariant holds") == NULL)
        fail_msg("ledger verify on the restored dir: exit %d:\n%s", rc, out);
    free(out);
    const char *lvp[] = {PAYCTL_BIN, "--data-dir", r.dir, "ledger", "verify", "--with-processor", NULL};
    pd_h_run(lvp, &out);
    assert_non_null(strstr(out, "every invariant holds"));
    for (char *line = out; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (strncmp(line, "  ", 2) == 0 && (strstr(line, "unknown_to_payd") == NULL || strstr(line, "for 777") == NULL))
            fail_msg("the restored books and the processor disagree on more than the later eur load: %s", line);
        line = nl != NULL ? nl + 1 : NULL;
    }
    free(out);
    /* the restored card pays */
    assert_int_equal(api_charge(&r, pm, 4242, "usd", &o), 200);
    assert_string_equal(jstr(o, "status"), "succeeded");
    json_decref(o);
    /* the restored vault's audit chain verifies through the vault itself too */
    const char *av[] = {"--json", "audit", "verify", NULL};
    rc = pd_h_payctl(&r, av, &out);
    if (rc != 0 || strstr(out, "\"intact\":true") == NULL)
        fail_msg("payctl audit verify on the restored vault: exit %d:\n%s", rc, out);
    free(out);
    assert_int_equal(pd_h_stop(&r, SIGTERM, 15000), 0);
    /* the data key's issue is in the vault's copy of its audit log (the snapshot's own
     * record comes after the copy) */
    assert_int_equal(api_sql_long(&r, "vault/vault.db",
                                  "SELECT count(*) FROM audit_log WHERE action = 'backup.key' AND outcome = 'success'"),
                     1);
    pd_h_cleanup(&r);
}

/* A vault sealed under an operator's passphrase (no dev passphrase): the archive needs it,
 * a wrong one is refused, and the restored vault unseals with it. */
/* create without --out: the archive is a `backup` file of the file store, listed, verified
 * and restored by its id, copied out as is, and gone when it expires */
static void
a_backup_kept_in_the_file_store(void **state)
{
    (void)state;
    char *out = NULL;
    const char *create[] = {"--json", "backup", "create", NULL};
    assert_int_equal(run_payctl(&out, create), 0);
    json_error_t e;
    json_t *j = json_loads(strstr(out, "{\""), 0, &e);
    assert_non_null(j);
    char id[64];
    snprintf(id, sizeof(id), "%s", jstr(j, "archive"));
    assert_memory_equal(id, "file_", 5);
    assert_true(jint(j, "expires_at") > (long long)time(NULL) + 29 * 86400);
    json_decref(j);
    free(out);
    const char *list[] = {"backup", "list", NULL};
    assert_int_equal(run_payctl(&out, list), 0);
    assert_non_null(strstr(out, id));
    free(out);
    /* the file store holds it under its id, and no leftover of the write */
    char path[600];
    snprintf(path, sizeof(path), "%s/files/%s", payd.dir, id);
    assert_int_equal(access(path, F_OK), 0);
    const char *verify[] = {"backup", "verify", id, NULL};
    assert_int_equal(run_payctl(&out, verify), 0);
    assert_non_null(strstr(out, "backup verified"));
    free(out);
    /* files get copies the archive as it is stored (it opens with the vault's root key, not alias/files) */
    char copy[600];
    snprintf(copy, sizeof(copy), "%s/copy.pdbk", payd.dir);
    const char *get[] = {"files", "get", id, "--out", copy, NULL};
    assert_int_equal(run_payctl(&out, get), 0);
    free(out);
    size_t a = 0, b = 0;
    char *x = read_all(path, &a), *y = read_all(copy, &b);
    assert_int_equal(a, b);
    assert_memory_equal(x, y, a);
    free(x);
    free(y);
    char target[600];
    snprintf(target, sizeof(target), "%s-restored-from-store", payd.dir);
    const char *restore[] = {"backup", "restore", id, "--data-dir", target, NULL};
    assert_int_equal(run_payctl(&out, restore), 0);
    free(out);
    char db[700];
    snprintf(db, sizeof(db), "%s/payd.db", target);
    assert_int_equal(access(db, F_OK), 0);
    const char *rm[] = {"/bin/rm", "-rf", target, NULL};
    assert_int_equal(pd_h_run(rm, &out), 0);
    free(out);
    /* another file's id is not a backup; an unknown one is refused */
    expect_fail((const char *const[]){"backup", "verify", "file_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL}, "no such file");
    /* expired, the janitor removes it (row and bytes) */
    char sql[300], live[700];
    snprintf(sql, sizeof(sql), "UPDATE files SET expires_at = 1 WHERE id = '%s'", id);
    snprintf(live, sizeof(live), "%s/payd.db", payd.dir);
    const char *upd[] = {"/usr/bin/sqlite3", live, sql, NULL};
    assert_int_equal(pd_h_run(upd, &out), 0);
    free(out);
    for (int i = 0; i < 150 && access(path, F_OK) == 0; i++)
        usleep(100000);
    assert_int_not_equal(access(path, F_OK), 0);
}

/* payctl with --set overrides (up to 3) before the command words */
static int
payctl_set(char **out, const char *s1, const char *s2, const char *const *cmd)
{
    const char *args[16];
    int n = 0;
    const char *sets[] = {s1, s2};
    for (int i = 0; i < 2; i++)
        if (sets[i] != NULL) {
            args[n++] = "--set";
            args[n++] = sets[i];
        }
    for (int i = 0; cmd[i] != NULL && n < 15; i++)
        args[n++] = cmd[i];
    args[n] = NULL;
    return run_payctl(out, args);
}

static long
sql_count(const char *query)
{
    char db[600];
    snprintf(db, sizeof(db), "%s/payd.db", payd.dir);
    const char *argv[] = {"/usr/bin/sqlite3", db, query, NULL};
    char *out = NULL;
    long n = pd_h_run(argv, &out) == 0 && out != NULL ? strtol(out, NULL, 10) : -1;
    free(out);
    return n;
}

/* the state of the backup alarm in GET /alarms */
static void
backup_alarm(char *state, size_t cap, char *reason, size_t rcap)
{
    pd_h_req_t rq = {.admin = true};
    pd_h_resp_t r;
    assert_int_equal(pd_h_request(&payd, "GET", "/alarms", &rq, &r), 0);
    json_error_t e;
    json_t *arr = json_loads(r.body, 0, &e), *a;
    pd_h_resp_free(&r);
    size_t i;
    state[0] = '\0';
    json_array_foreach(arr, i, a) {
        if (strcmp(json_string_value(json_object_get(a, "name")), "backup") == 0) {
            snprintf(state, cap, "%s", json_string_value(json_object_get(a, "state")));
            snprintf(reason, rcap, "%s", json_string_value(json_object_get(a, "reason")));
        }
    }
    json_decref(arr);
}

static bool
backup_alarm_becomes(const char *want, int seconds, char *reason, size_t rcap)
{
    char st[32];
    for (int i = 0; i < seconds * 10; i++) {
        backup_alarm(st, sizeof(st), reason, rcap);
        if (strcmp(st, want) == 0)
            return true;
        usleep(100000);
    }
    print_error("the backup alarm stayed %s (wanted %s): %s\n", st, want, reason);
    return false;
}

/* the backup alarm: raised while no scheduled backup has succeeded for longer than its
 * threshold (20 s here), cleared once one has; the metric carries the last success */
static void
the_backup_alarm_follows_the_last_success(void **state)
{
    (void)state;
    char reason[300], *out = NULL;
    assert_true(backup_alarm_becomes("ALARM", 40, reason, sizeof(reason)));
    assert_non_null(strstr(reason, "no scheduled backup has succeeded since this node started"));
    time_t t = time(NULL);
    const char *now[] = {"backup", "run", "--now", NULL};
    assert_int_equal(run_payctl(&out, now), 0);
    free(out);
    assert_true(backup_alarm_becomes("OK", 15, reason, sizeof(reason)));
    assert_true(api_metric(&payd, "payd_backup_last_success_timestamp_seconds") >= (double)t);
}

/* payctl backup run, as the timer starts it: the day's backup when due, once, into
 * [backup] dir, on the host that takes the lease; old archives pruned; recorded */
static void
the_scheduled_backup_runs_once_a_day(void **state)
{
    (void)state;
    char dir[600], dirset[700], sched[64], *out = NULL;
    assert_int_equal(sql_count("DELETE FROM worker_cursors WHERE name = 'backup.last_success'; SELECT 0"), 0);
    long audited = sql_count("SELECT COUNT(*) FROM audit_log WHERE action = 'backup.scheduled' AND outcome = 'success'");
    snprintf(dir, sizeof(dir), "%s-scheduled", payd.dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(dirset, sizeof(dirset), "backup.dir=%s", dir);
    /* a slot a minute ago: today's backup is due */
    time_t t = time(NULL) - 60;
    struct tm tm;
    localtime_r(&t, &tm);
    snprintf(sched, sizeof(sched), "backup.schedule=%02d:%02d", tm.tm_hour, tm.tm_min);
    /* an archive older than keep_days (7) is pruned after a run */
    char old[700];
    snprintf(old, sizeof(old), "%s/payd-backup-20000101-000000.pdbk", dir);
    assert_int_equal(pd_h_write_file(old, "x"), 0);
    struct utimbuf ages = {time(NULL) - 40 * 86400, time(NULL) - 40 * 86400};
    assert_int_equal(utime(old, &ages), 0);
    const char *run[] = {"backup", "run", NULL}, *now[] = {"backup", "run", "--now", NULL};
    assert_int_equal(payctl_set(&out, dirset, sched, run), 0);
    assert_non_null(strstr(out, "backup written: "));
    assert_non_null(strstr(out, dir));
    assert_non_null(strstr(out, "removed 1 scheduled backup(s) older than 7 days"));
    free(out);
    assert_int_not_equal(access(old, F_OK), 0);
    assert_true(sql_count("SELECT value FROM worker_cursors WHERE name = 'backup.last_success'") >= (long)t);
    assert_int_equal(sql_count("SELECT COUNT(*) FROM audit_log WHERE action = 'backup.scheduled' AND outcome = 'success'"),
                     audited + 1);
    /* done for today */
    assert_int_equal(payctl_set(&out, dirset, sched, run), 0);
    assert_non_null(strstr(out, "not due"));
    free(out);
    /* another host holds the lease: this one leaves it */
    assert_int_equal(sql_count("INSERT OR REPLACE INTO leases (name, holder, expires_at, token, acquired_at) VALUES "
                               "('backup', 'payctl@other:1', 99999999999999, 1, 0); SELECT 0"),
                     0);
    if (payctl_set(&out, dirset, sched, now) != 0 || strstr(out, "another node is making the scheduled backup") == NULL)
        fail_msg("a held lease: %s", out);
    free(out);
    assert_int_equal(sql_count("DELETE FROM leases WHERE name = 'backup'; SELECT 0"), 0);
    /* forced: a second archive; both listed */
    sleep(1);
    assert_int_equal(payctl_set(&out, dirset, sched, now), 0);
    free(out);
    const char *list[] = {"backup", "list", NULL};
    assert_int_equal(payctl_set(&out, dirset, NULL, list), 0);
    int found = 0;
    for (const char *p = out; (p = strstr(p, "payd-backup-")) != NULL; p++)
        found++;
    assert_int_equal(found, 2);
    free(out);
    /* off, and a schedule that is not a time */
    assert_int_equal(payctl_set(&out, dirset, "backup.schedule=off", run), 0);
    assert_non_null(strstr(out, "scheduled backups are off"));
    free(out);
    expect_fail((const char *const[]){"--set", "backup.schedule=25:00", "backup", "run", NULL},
                "[backup] schedule = \"25:00\": a daily time HH:MM (local) or off");
    const char *rm[] = {"/bin/rm", "-rf", dir, NULL};
    assert_int_equal(pd_h_run(rm, &out), 0);
    free(out);
}

static void
a_passphrase_vault_needs_its_passphrase(void **state)
{
    (void)state;
    char pass[300], wrong[300], set[400], archive[300], newdir[300], path[400], *out = NULL;
    snprintf(pass, sizeof(pass), "%s.pass", payd.dir);
    snprintf(wrong, sizeof(wrong), "%s.wrong", payd.dir);
    write_all(pass, "an operator's long passphrase\n", 30);
    write_all(wrong, "not it\n", 7);
    snprintf(set, sizeof(set), "vault.passphrase_file=%s", pass);
    const char *args[] = {"--set", set, NULL};
    pd_h_payd_t p;
    pd_h_opts_t opts = {.args = args};
    assert_int_equal(pd_h_start(&p, &opts), 0);
    /* payd --dev writes a dev passphrase even when given a file; this vault's root key is
     * sealed under the file's: without the dev file the archive is a production one */
    snprintf(path, sizeof(path), "%s/vault/dev-passphrase", p.dir);
    assert_int_equal(unlink(path), 0);
    api_load_credentials(&p);
    char pm[64];
    assert_int_equal(api_card_pm(&p, CARD, pm, sizeof(pm)), 200);
    json_t *o = NULL;
    assert_int_equal(api_charge(&p, pm, 2500, "usd", &o), 200);
    json_decref(o);
    snprintf(archive, sizeof(archive), "%s.pdbk", p.dir);
    const char *create[] = {PAYCTL_BIN, "--data-dir", p.dir, "backup", "create", "--out", archive, NULL};
    int rc = pd_h_run(create, &out);
    if (rc != 0 || strstr(out, "WARNING") != NULL)
        fail_msg("backup create (no dev passphrase): exit %d:\n%s", rc, out);
    free(out);
    size_t n;
    char *bytes = read_all(archive, &n);
    assert_false(contains(bytes, n, "an operator's long passphrase"));
    free(bytes);
    const char *none[] = {"backup", "verify", archive, NULL};
    expect_fail(none, "sealed under the vault's passphrase: give --passphrase-file F");
    const char *bad[] = {"backup", "verify", archive, "--passphrase-file", wrong, NULL};
    expect_fail(bad, "a wrong passphrase");
    snprintf(newdir, sizeof(newdir), "%s-restored", p.dir);
    const char *restore[] = {"backup", "restore", archive, "--data-dir", newdir, "--passphrase-file", pass, NULL};
    rc = run_payctl(&out, restore);
    if (rc != 0 || strstr(out, "restored") == NULL)
        fail_msg("backup restore --passphrase-file: exit %d:\n%s", rc, out);
    free(out);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 15000), 0);
    pd_h_cleanup(&p);
    unlink(archive);
    /* the restored vault unseals with the passphrase, the card pays */
    pd_h_payd_t r;
    pd_h_opts_t ropts = {.args = args, .reuse_dir = newdir};
    assert_int_equal(pd_h_start(&r, &ropts), 0);
    assert_int_equal(api_charge(&r, pm, 2600, "usd", &o), 200);
    assert_string_equal(jstr(o, "status"), "succeeded");
    json_decref(o);
    assert_int_equal(pd_h_stop(&r, SIGTERM, 15000), 0);
    pd_h_cleanup(&r);
    unlink(pass);
    unlink(wrong);
    api_load_credentials(&payd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backup_drill),
        cmocka_unit_test(a_backup_kept_in_the_file_store),
        cmocka_unit_test(the_backup_alarm_follows_the_last_success),
        cmocka_unit_test(the_scheduled_backup_runs_once_a_day),
        cmocka_unit_test(a_passphrase_vault_needs_its_passphrase),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
