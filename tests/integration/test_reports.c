/*
 * Reports and the file store against payd --dev (both backends: integration/reports and
 * integration/reports/postgres): a report run's CSV adds up to what GET /v1/balance moved
 * over the same interval, its file is encrypted at rest and fails its check when altered,
 * bad runs are refused with the parameter named, and the janitor removes expired files
 * and the leftovers of interrupted writes, nothing else.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include <cmocka.h>

#include "api_helpers.h"

static pd_h_payd_t payd;

static int
setup(void **state)
{
    (void)state;
    static const char *const args[] = {"--set", "files.janitor_interval=1s", NULL};
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
    int rc = pd_h_stop(&payd, SIGTERM, 20000);
    pd_h_cleanup(&payd);
    return rc == 0 ? 0 : -1;
}


/* returns once the clock's second has changed: the time of the new second */
static long
next_second(void)
{
    time_t t0 = time(NULL);
    while (time(NULL) == t0)
        usleep(20000);
    return (long)time(NULL);
}

/* creates a run and waits (up to 15 s) until it is no longer pending; the run's JSON */
static json_t *
run_report(const char *body)
{
    json_t *j;
    assert_int_equal(api_call(&payd, "POST", "/v1/reporting/report_runs", body, &j), 200);
    assert_string_equal(jstr(j, "status"), "pending");
    assert_true(json_is_null(json_object_get(j, "result")));
    char path[200];
    snprintf(path, sizeof(path), "/v1/reporting/report_runs/%s", jstr(j, "id"));
    json_decref(j);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
        if (strcmp(jstr(j, "status"), "pending") != 0)
            return j;
        json_decref(j);
        usleep(50000);
    }
    fail_msg("the run stayed pending");
    return NULL;
}

/* GET /v1/files/ID/contents: the status; *body the bytes (caller frees) */
static long
contents(const char *file_id, char **body, size_t *len, int *curl_code)
{
    char auth[200], path[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    snprintf(path, sizeof(path), "/v1/files/%s/contents", file_id);
    const char *hdrs[] = {auth, NULL};
    pd_h_req_t rq = {.headers = hdrs};
    pd_h_resp_t r;
    *body = NULL;
    *len = 0;
    if (pd_h_request(&payd, "GET", path, &rq, &r) != 0) {
        if (curl_code != NULL)
            *curl_code = r.curl_code;
        pd_h_resp_free(&r);
        return -1;
    }
    *body = r.body;
    *len = r.body_len;
    if (curl_code != NULL)
        *curl_code = r.curl_code;
    r.body = NULL;
    long st = r.status;
    pd_h_resp_free(&r);
    return st;
}

/* "19.11" / "-3.00" in minor units */
static long long
minor(const char *s)
{
    long long whole = 0, frac = 0;
    bool neg = *s == '-';
    if (neg)
        s++;
    assert_int_equal(sscanf(s, "%lld.%2lld", &whole, &frac), 2);
    return (neg ? -1 : 1) * (whole * 100 + frac);
}

/* the CSV field `col` (0-based) of a line, unquoted, into out */
static void
field(const char *line, int col, char *out, size_t cap)
{
    size_t o = 0;
    int c = 0;
    bool q = false;
    for (const char *p = line; *p != '\0' && *p != '\r' && *p != '\n'; p++) {
        if (q) {
            if (*p == '"' && p[1] == '"')
                p++;
            else if (*p == '"') {
                q = false;
                continue;
            }
        } else if (*p == '"') {
            q = true;
            continue;
        } else if (*p == ',') {
            c++;
            continue;
        }
        if (c == col && o + 1 < cap)
            out[o++] = *p;
    }
    out[o] = '\0';
}

/* the lines of a CSV body (CRLF ends), into lines[]; returns their number */
static int
split_lines(char *body, char **lines, int cap)
{
    int n = 0;
    for (char *save = NULL, *l = strtok_r(body, "\n", &save); l != NULL && n < cap; l = strtok_r(NULL, "\n", &save)) {
        assert_true(strlen(l) > 0 && l[strlen(l) - 1] == '\r'); /* RFC 4180 line ends */
        l[strlen(l) - 1] = '\0';
        lines[n++] = l;
    }
    return n;
}

static char last_file[64];

static void
the_csv_adds_up_to_the_balance_movements(void **state)
{
    (void)state;
    char pm[64];
    json_t *j;
    assert_int_equal(api_card_pm(&payd, "4242424242424242", pm, sizeof(pm)), 200);
    long t0 = next_second();
    long long b0 = api_balance_total(&payd, "usd");
    long amounts[] = {1999, 500, 1234};
    char pi0[64] = "";
    for (int i = 0; i < 3; i++) {
        char body[400];
        snprintf(body, sizeof(body),
                 "amount=%ld&currency=usd&confirm=true&payment_method=%s&description=%s", amounts[i], pm,
                 i == 0 ? "order%2C+%22gift%22" : i == 1 ? "%3DHYPERLINK(1)" : "plain");
        assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents", body, &j), 200);
        assert_string_equal(jstr(j, "status"), "succeeded");
        if (i == 0)
            snprintf(pi0, sizeof(pi0), "%s", jstr(j, "id"));
        json_decref(j);
    }
    char body[300];
    snprintf(body, sizeof(body), "payment_intent=%s&amount=300", pi0);
    assert_int_equal(api_call(&payd, "POST", "/v1/refunds", body, &j), 200);
    json_decref(j);
    /* a declined card moves nothing */
    char declined[64];
    assert_int_equal(api_card_pm(&payd, "4000000000000002", declined, sizeof(declined)), 200);
    assert_int_equal(api_charge(&payd, declined, 700, "usd", &j), 402);
    json_decref(j);
    long t1 = next_second();
    long long b1 = api_balance_total(&payd, "usd");

    /* itemized: one row per balance transaction of the interval, nets summing to the movement */
    snprintf(body, sizeof(body),
             "report_type=balance_change_from_activity.itemized.1&parameters[interval_start]=%ld"
             "&parameters[interval_end]=%ld",
             t0, t1);
    json_t *run = run_report(body);
    assert_string_equal(jstr(run, "status"), "succeeded");
    assert_true(jint(run, "succeeded_at") >= t1);
    assert_string_equal(jstr(run, "result.object"), "file");
    assert_string_equal(jstr(run, "result.purpose"), "finance_report_run");
    assert_string_equal(jstr(run, "result.type"), "csv");
    snprintf(last_file, sizeof(last_file), "%s", jstr(run, "result.id"));
    long long size = jint(run, "result.size");
    char path[200];
    snprintf(path, sizeof(path), "/v1/files/%s", last_file);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 200);
    assert_int_equal(jint(j, "size"), size);
    json_decref(j);
    char *csv;
    size_t len;
    assert_int_equal(contents(last_file, &csv, &len, NULL), 200);
    assert_int_equal((long long)len, size);
    char *copy = strndup(csv, len), *lines[64];
    int n = split_lines(copy, lines, 64);
    assert_string_equal(lines[0],
                        "balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,reporting_category,"
                        "description");
    assert_int_equal(n, 1 + 4); /* three charges and a refund */
    long long sum = 0;
    int refunds = 0;
    bool quoted = false, formula = false;
    for (int i = 1; i < n; i++) {
        char v[128];
        field(lines[i], 6, v, sizeof(v));
        sum += minor(v);
        field(lines[i], 7, v, sizeof(v));
        refunds += strcmp(v, "refund") == 0;
        field(lines[i], 8, v, sizeof(v));
        quoted |= strcmp(v, "order, \"gift\"") == 0;
        formula |= strcmp(v, "'=HYPERLINK(1)") == 0; /* a spreadsheet does not run it */
    }
    assert_int_equal(sum, b1 - b0);
    assert_int_equal(refunds, 1);
    assert_true(quoted);
    assert_true(formula);
    free(copy);
    json_decref(run);

    /* payctl gets the same bytes, verified */
    char out[400], *pout = NULL;
    snprintf(out, sizeof(out), "%s/report.csv", payd.dir);
    const char *args[] = {"files", "get", last_file, "--out", out, NULL};
    assert_int_equal(pd_h_payctl(&payd, args, &pout), 0);
    free(pout);
    FILE *f = fopen(out, "rb");
    assert_non_null(f);
    char *got = calloc(1, len + 1);
    assert_int_equal(fread(got, 1, len + 1, f), len);
    fclose(f);
    assert_memory_equal(got, csv, len);
    free(got);
    /* and the bytes at rest are not the CSV */
    char blob[400];
    snprintf(blob, sizeof(blob), "%s/files/%s", payd.dir, last_file);
    f = fopen(blob, "rb");
    assert_non_null(f);
    char raw[8192];
    size_t rn = fread(raw, 1, sizeof(raw) - 1, f);
    fclose(f);
    raw[rn] = '\0';
    assert_null(memmem(raw, rn, "balance_transaction_id", 22));
    assert_null(memmem(raw, rn, "gift", 4));
    free(csv);

    /* the summary: start, activity, end, in the same interval */
    snprintf(body, sizeof(body),
             "report_type=balance.summary.1&parameters[interval_start]=%ld&parameters[interval_end]=%ld"
             "&parameters[currency]=usd",
             t0, t1);
    run = run_report(body);
    assert_string_equal(jstr(run, "status"), "succeeded");
    assert_int_equal(contents(jstr(run, "result.id"), &csv, &len, NULL), 200);
    n = split_lines(csv, lines, 64);
    assert_int_equal(n, 6);
    assert_string_equal(lines[0], "category,description,net_amount,currency");
    long long start = 0, gross = 0, fee = 0, activity = 0, end = 0;
    for (int i = 1; i < n; i++) {
        char cat[64], v[64];
        field(lines[i], 0, cat, sizeof(cat));
        field(lines[i], 2, v, sizeof(v));
        long long m = minor(v);
        if (strcmp(cat, "starting_balance") == 0)
            start = m;
        else if (strcmp(cat, "activity_gross") == 0)
            gross = m;
        else if (strcmp(cat, "activity_fee") == 0)
            fee = m;
        else if (strcmp(cat, "activity") == 0)
            activity = m;
        else if (strcmp(cat, "ending_balance") == 0)
            end = m;
    }
    assert_int_equal(start, b0);
    assert_int_equal(end, b1);
    assert_int_equal(activity, b1 - b0);
    assert_int_equal(gross + fee, activity);
    assert_int_equal(gross, 1999 + 500 + 1234 - 300);
    free(csv);
    json_decref(run);

    /* another merchant sees neither the runs nor the files */
    char *mout = NULL;
    const char *mk[] = {"--json", "merchant", "create", "--name", "Other", NULL};
    assert_int_equal(pd_h_payctl(&payd, mk, &mout), 0);
    json_error_t je;
    json_t *other = json_loads(mout, 0, &je);
    free(mout);
    assert_non_null(other);
    const char *osk = jstr(other, "secret_key");
    assert_non_null(osk);
    snprintf(path, sizeof(path), "/v1/files/%s", last_file);
    assert_int_equal(api_call_as(&payd, osk, "GET", path, NULL, NULL, &j), 404);
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/files/%s/contents", last_file);
    assert_int_equal(api_call_as(&payd, osk, "GET", path, NULL, NULL, &j), 404);
    json_decref(j);
    assert_int_equal(api_call_as(&payd, osk, "GET", "/v1/reporting/report_runs", NULL, NULL, &j), 200);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);
    json_decref(other);

    /* the run's event, and the books */
    assert_int_equal(api_call(&payd, "GET", "/v1/events?type=reporting.report_run.succeeded", NULL, &j), 200);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
    json_decref(j);
    assert_true(api_ledger_verifies(&payd));
}

/* an interval in which nothing happened: a valid CSV, the header alone (itemized), or the
 * balance unchanged (summary) */
static void
an_empty_interval_gives_a_valid_report(void **state)
{
    (void)state;
    long t0 = next_second();
    long t1 = next_second();
    long long b = api_balance_total(&payd, "usd");
    char body[300], *csv, *lines[16];
    size_t len;
    snprintf(body, sizeof(body),
             "report_type=balance_change_from_activity.itemized.1&parameters[interval_start]=%ld"
             "&parameters[interval_end]=%ld",
             t0, t1);
    json_t *run = run_report(body);
    assert_string_equal(jstr(run, "status"), "succeeded");
    assert_int_equal(contents(jstr(run, "result.id"), &csv, &len, NULL), 200);
    assert_int_equal(split_lines(csv, lines, 16), 1); /* the header */
    free(csv);
    json_decref(run);
    snprintf(body, sizeof(body),
             "report_type=balance.summary.1&parameters[interval_start]=%ld&parameters[interval_end]=%ld", t0, t1);
    run = run_report(body);
    assert_int_equal(contents(jstr(run, "result.id"), &csv, &len, NULL), 200);
    int n = split_lines(csv, lines, 16);
    assert_true(n == 1 || n == 6); /* no activity ever (header only), or a usd balance that did not move */
    for (int i = 1; i < n; i++) {
        char cat[64], v[64];
        field(lines[i], 0, cat, sizeof(cat));
        field(lines[i], 2, v, sizeof(v));
        if (strcmp(cat, "starting_balance") == 0 || strcmp(cat, "ending_balance") == 0)
            assert_int_equal(minor(v), b);
        else
            assert_int_equal(minor(v), 0);
    }
    free(csv);
    json_decref(run);
}

static void
bad_runs_are_refused_with_the_parameter(void **state)
{
    (void)state;
    long now = (long)time(NULL);
    char future[200], order[200], ok_prefix[200];
    snprintf(ok_prefix, sizeof(ok_prefix), "parameters[interval_start]=%ld&parameters[interval_end]=%ld", now - 60,
             now - 1);
    snprintf(future, sizeof(future),
             "report_type=balance.summary.1&parameters[interval_start]=1&parameters[interval_end]=%ld", now + 3600);
    snprintf(order, sizeof(order),
             "report_type=balance.summary.1&parameters[interval_start]=%ld&parameters[interval_end]=%ld", now - 1,
             now - 60);
    struct {
        const char *body, *code, *param;
        bool prefix;
    } cases[] = {
        {"report_type=no.such.1", "parameter_invalid", "report_type", true},
        {"report_type=payouts.itemized.1", "parameter_invalid", "report_type", true},
        {"report_type=balance.summary.1&parameters[interval_start]=5", "parameter_missing",
         "parameters[interval_end]", false},
        {"report_type=balance.summary.1&parameters[interval_end]=5", "parameter_missing",
         "parameters[interval_start]", false},
        {future, "parameter_invalid", "parameters[interval_end]", false},
        {order, "parameter_invalid", "parameters[interval_end]", false},
        {"report_type=balance.summary.1&parameters[columns][0]=gross", "parameter_invalid", "parameters[columns]",
         true},
        {"report_type=balance.summary.1&parameters[timezone]=Europe/Paris", "parameter_invalid",
         "parameters[timezone]", true},
        {"report_type=balance.summary.1&parameters[currency]=zzz", "parameter_invalid", "parameters[currency]", true},
        {"report_type=balance.summary.1&parameters[interval_start]=abc", "parameter_invalid_integer",
         "parameters[interval_start]", false},
        {"parameters[interval_start]=1", "parameter_missing", "report_type", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[600];
        snprintf(body, sizeof(body), "%s%s%s", cases[i].body, cases[i].prefix ? "&" : "",
                 cases[i].prefix ? ok_prefix : "");
        json_t *j;
        long st = api_call(&payd, "POST", "/v1/reporting/report_runs", body, &j);
        if (st != 400)
            fail_msg("%s: %ld %s", body, st, json_dumps(j, 0));
        api_expect_error(j, cases[i].code, cases[i].param);
        json_decref(j);
    }
    /* the types payd makes, and a missing run or file */
    json_t *j;
    assert_int_equal(api_call(&payd, "GET", "/v1/reporting/report_types", NULL, &j), 200);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
    json_decref(j);
    assert_int_equal(api_call(&payd, "GET", "/v1/reporting/report_types/payouts.itemized.1", NULL, &j), 404);
    json_decref(j);
    assert_int_equal(api_call(&payd, "GET", "/v1/reporting/report_runs/frr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, &j),
                     404);
    json_decref(j);
    assert_int_equal(api_call(&payd, "GET", "/v1/files/file_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/contents", NULL, &j),
                     404);
    api_expect_error(j, "resource_missing", "id");
    json_decref(j);
}

/* runs SQL on the payments store (SQLite file or the test's PostgreSQL database) */
static void
store_sql(const char *sql)
{
    char path[400], url[400];
    snprintf(path, sizeof(path), "%s/payd.db", payd.dir);
    const char *lite[] = {"/usr/bin/sqlite3", path, sql, NULL};
    const char *pg[] = {"/usr/lib/postgresql/15/bin/psql", "-XAtq", "-d", url + strlen("store.url="), "-c", sql, NULL};
    bool on_pg = pd_h_store_args(payd.dir, NULL, url, sizeof(url));
    char *out = NULL;
    assert_int_equal(pd_h_run(on_pg ? pg : lite, &out), 0);
    free(out);
}

static void
an_altered_file_fails_its_check(void **state)
{
    (void)state;
    char blob[400], saved[420];
    snprintf(blob, sizeof(blob), "%s/files/%s", payd.dir, last_file);
    snprintf(saved, sizeof(saved), "%s.saved", blob);
    char *cp = NULL;
    const char *cpv[] = {"/bin/cp", "-p", blob, saved, NULL};
    assert_int_equal(pd_h_run(cpv, &cp), 0);
    free(cp);
    FILE *f = fopen(blob, "r+b");
    assert_non_null(f);
    fseek(f, -20, SEEK_END); /* inside the last chunk's ciphertext */
    int c = fgetc(f);
    fseek(f, -20, SEEK_END);
    fputc(c ^ 1, f);
    fclose(f);
    char *body;
    size_t len;
    int cc = 0;
    long st = contents(last_file, &body, &len, &cc);
    /* the head was sent before the damage was found: the body is cut short, never whole */
    assert_true(st == 200 || st == -1);
    assert_true(cc != 0 || body == NULL || strstr(body, "txn_") == NULL);
    free(body);
    char out[400], *pout = NULL;
    snprintf(out, sizeof(out), "%s/altered.csv", payd.dir);
    const char *args[] = {"files", "get", last_file, "--out", out, NULL};
    assert_int_equal(pd_h_payctl(&payd, args, &pout), 1);
    assert_non_null(strstr(pout, "failed its check"));
    free(pout);
    assert_int_not_equal(access(out, F_OK), 0); /* nothing written under the name */
    assert_int_equal(rename(saved, blob), 0);
}

static void
the_janitor_removes_expired_files_and_leftovers_only(void **state)
{
    (void)state;
    char dir[400], p[600];
    snprintf(dir, sizeof(dir), "%s/files", payd.dir);
    /* leftovers an hour and more old: a temporary file and bytes without a row; and a
     * file that is not the store's */
    const char *names[] = {".file_Vcnv80h57kFn0CvASZZ6dz4NYc9oM0T.tmp-abcdef", "file_Vcnv80h57kFn0CvASZZ6dz4NYc9oM0X",
                           "keep.txt", "file_Vcnv80h57kFn0CvASZZ6dz4NYc9oM0Y"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        assert_int_equal(pd_h_write_file(p, "x"), 0);
        struct utimbuf old = {time(NULL) - (i == 3 ? 60 : 7200), time(NULL) - (i == 3 ? 60 : 7200)};
        assert_int_equal(utime(p, &old), 0);
    }
    char sql[300];
    snprintf(sql, sizeof(sql), "UPDATE files SET expires_at = 1 WHERE id = '%s'", last_file);
    store_sql(sql);
    char blob[600];
    snprintf(blob, sizeof(blob), "%s/%s", dir, last_file);
    for (int i = 0; i < 100 && access(blob, F_OK) == 0; i++)
        usleep(100000);
    assert_int_not_equal(access(blob, F_OK), 0);
    snprintf(p, sizeof(p), "%s/%s", dir, names[0]);
    for (int i = 0; i < 50 && access(p, F_OK) == 0; i++)
        usleep(100000);
    assert_int_not_equal(access(p, F_OK), 0);
    snprintf(p, sizeof(p), "%s/%s", dir, names[1]);
    assert_int_not_equal(access(p, F_OK), 0);
    snprintf(p, sizeof(p), "%s/%s", dir, names[2]);
    assert_int_equal(access(p, F_OK), 0); /* not the store's: kept */
    snprintf(p, sizeof(p), "%s/%s", dir, names[3]);
    assert_int_equal(access(p, F_OK), 0); /* too young: may be a write in progress */
    json_t *j;
    snprintf(p, sizeof(p), "/v1/files/%s", last_file);
    assert_int_equal(api_call(&payd, "GET", p, NULL, &j), 404);
    json_decref(j);
    char q[300];
    snprintf(q, sizeof(q), "SELECT COUNT(*) FROM files WHERE id = '%s'", last_file);
    assert_int_equal(api_sql_long(&payd, "payd.db", q), 0);
}

static void
payctl_lists_and_removes_files(void **state)
{
    (void)state;
    long t1 = next_second();
    char body[300];
    snprintf(body, sizeof(body),
             "report_type=balance.summary.1&parameters[interval_start]=%ld&parameters[interval_end]=%ld", t1 - 600, t1);
    json_t *run = run_report(body);
    char id[64];
    snprintf(id, sizeof(id), "%s", jstr(run, "result.id"));
    json_decref(run);
    char *out = NULL;
    const char *list[] = {"files", "list", "--purpose", "finance_report_run", NULL};
    assert_int_equal(pd_h_payctl(&payd, list, &out), 0);
    assert_non_null(strstr(out, id));
    free(out);
    const char *rm[] = {"files", "rm", id, NULL};
    assert_int_equal(pd_h_payctl(&payd, rm, &out), 0);
    free(out);
    assert_int_equal(pd_h_payctl(&payd, rm, &out), 1);
    assert_non_null(strstr(out, "no such file"));
    free(out);
    const char *bad[] = {"files", "get", "../etc/passwd", NULL};
    assert_int_equal(pd_h_payctl(&payd, bad, &out), 1);
    assert_non_null(strstr(out, "not a file id"));
    free(out);
    json_t *j;
    char path[200];
    snprintf(path, sizeof(path), "/v1/files/%s", id);
    assert_int_equal(api_call(&payd, "GET", path, NULL, &j), 404);
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_csv_adds_up_to_the_balance_movements),
        cmocka_unit_test(an_empty_interval_gives_a_valid_report),
        cmocka_unit_test(bad_runs_are_refused_with_the_parameter),
        cmocka_unit_test(an_altered_file_fails_its_check),
        cmocka_unit_test(the_janitor_removes_expired_files_and_leftovers_only),
        cmocka_unit_test(payctl_lists_and_removes_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
