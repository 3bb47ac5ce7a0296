/*
 * GET /metrics of payd (admin listener) and of payd-vault ([vault] metrics_listen):
 * the counts are exactly what the test sent, the route label is the template, the
 * output passes promtool, every exported family is documented in docs/metrics.md
 * and every documented one exported, and a scrape during concurrent payments never
 * shows a torn histogram.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"

static pd_h_payd_t payd;
static uint16_t vault_port;

static int
setup(void **state)
{
    (void)state;
    static char vault_arg[64];
    vault_port = pd_h_free_port();
    snprintf(vault_arg, sizeof(vault_arg), "vault.metrics_listen=127.0.0.1:%u", vault_port);
    const char *args[] = {"--set", "api.threads=2", "--set", "waf.ip_rate_limit=1000000", "--set",
                          "payments.rate_per_s=100000", "--set", "payments.burst=100000", "--set", vault_arg, NULL};
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
    pd_h_stop(&payd, SIGTERM, 20000);
    pd_h_cleanup(&payd);
    return 0;
}

static char *
scrape(void)
{
    pd_h_req_t rq = {.admin = true};
    pd_h_resp_t r;
    assert_int_equal(pd_h_request(&payd, "GET", "/metrics", &rq, &r), 0);
    assert_int_equal(r.status, 200);
    char ct[128];
    assert_true(pd_h_resp_header(&r, "content-type", ct, sizeof(ct)));
    assert_string_equal(ct, "text/plain; version=0.0.4; charset=utf-8");
    char *body = strdup(r.body);
    pd_h_resp_free(&r);
    return body;
}

/* payd-vault's /metrics over a plain socket (HTTP/1.0, as Prometheus would) */
static char *
scrape_vault(void)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", vault_port);
    const char *argv[] = {"/usr/bin/curl", "-sS", "--http1.0", "--max-time", "5", url, NULL};
    char *out = NULL;
    for (int i = 0; i < 50; i++) { /* the vault is started with payd; its listener may come a moment later */
        free(out);
        out = NULL;
        if (pd_h_run(argv, &out) == 0 && strstr(out, "# TYPE") != NULL)
            return out;
        usleep(100000);
    }
    print_error("payd-vault's /metrics did not answer: %s\n", out != NULL ? out : "");
    free(out);
    fail();
    return NULL;
}

/* the value of one exact series ("name{labels}" or "name"); 0 when absent */
static double
value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)) != NULL; p += n) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return 0;
}

static void
payments(int n, const char *pm)
{
    for (int i = 0; i < n; i++) {
        json_t *o;
        assert_int_equal(api_charge(&payd, pm, 1234, "eur", &o), 200);
        assert_string_equal(jstr(o, "status"), "succeeded");
        json_decref(o);
    }
}

static void
counts_exactly_what_was_sent(void **state)
{
    (void)state;
    enum { N = 7 };
    char pm[64];
    assert_int_equal(api_card_pm(&payd, "4242424242424242", pm, sizeof(pm)), 200);
    char *before = scrape();
    payments(N, pm);
    /* one read by id: its label is the template, never the id */
    json_t *o;
    assert_int_equal(api_charge(&payd, pm, 500, "usd", &o), 200);
    char path[128];
    snprintf(path, sizeof(path), "/v1/payment_intents/%s", jstr(o, "id"));
    char id[64];
    snprintf(id, sizeof(id), "%s", jstr(o, "id"));
    json_decref(o);
    assert_int_equal(api_call(&payd, "GET", path, NULL, NULL), 200);
    assert_int_equal(api_call(&payd, "GET", "/v1/no/such/thing", NULL, NULL), 404);
    /* an attack the WAF blocks */
    assert_int_equal(api_call(&payd, "POST", "/v1/payment_intents",
                              "amount=100&currency=usd&description=-1839%27+or+%271%27%3D%271", NULL),
                     403);
    char *after = scrape();

    static const char *const series[] = {
        "payd_payments_total{outcome=\"succeeded\"}",
        "payd_http_requests_total{method=\"POST\",route=\"/v1/payment_intents\",code=\"200\"}",
        "payd_processor_requests_total{op=\"authorize\",result=\"approved\"}",
        "payd_payment_amount_minor_total{currency=\"eur\"}",
        "payd_payment_amount_minor_total{currency=\"usd\"}",
        "payd_http_requests_total{method=\"GET\",route=\"/v1/payment_intents/{id}\",code=\"200\"}",
        "payd_http_requests_total{method=\"GET\",route=\"unmatched\",code=\"404\"}",
        "payd_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/payment_intents/{id}\"}",
        "payd_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/payment_intents/{id}\",le=\"+Inf\"}",
        "payd_waf_decisions_total{action=\"block\",family=\"sqli\"}",
        "payd_waf_decisions_total{action=\"pass\",family=\"none\"}", /* the payments and the read */
        "payd_http_requests_total{method=\"POST\",route=\"/v1/payment_intents\",code=\"403\"}",
    };
    static const double want[] = {N + 1, N + 1, N + 1, N * 1234.0, 500, 1, 1, 1, 1, 1, N + 2, 1};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        double d = value_of(after, series[i]) - value_of(before, series[i]);
        if (d != want[i])
            print_error("%s: +%g, expected +%g\n", series[i], d, want[i]);
        assert_true(d == want[i]);
    }
    assert_null(strstr(after, id));           /* no raw path in a label */
    assert_null(strstr(after, "/no/such"));
    assert_true(value_of(after, "payd_tls_handshakes_total{result=\"success\"}") >= N);
    assert_true(value_of(after, "payd_store_batches_total") > value_of(before, "payd_store_batches_total"));
    assert_true(value_of(after, "payd_vault_requests_total{op=\"detokenize\",result=\"ok\"}") >= N);
    assert_true(value_of(after, "payd_db_connections{role=\"writer\"}") >= 1);
    assert_true(value_of(after, "payd_build_info{version=\"" PAYD_TEST_VERSION "\"}") == 1);
    assert_true(value_of(after, "process_resident_memory_bytes") > 1e6);
    assert_true(value_of(after, "process_open_fds") > 5);
    assert_true(value_of(after, "process_start_time_seconds") > 1.6e9);
    free(before);
    free(after);
}

/* promtool check metrics: exit 0 and not one lint line */
static void
promtool_check(const char *text, const char *what)
{
    if (access("/usr/bin/promtool", X_OK) != 0) {
        print_message("SKIP: promtool not found (scripts/deps.sh installs the Debian package prometheus)\n");
        return;
    }
    char path[] = "/tmp/payd-metrics-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[4096];
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    unlink(path);
    if (st != 0 || n != 0)
        print_error("promtool on %s (status %d): %s\n", what, st, out);
    assert_int_equal(st, 0);
    assert_int_equal(n, 0);
}

static void
passes_promtool(void **state)
{
    (void)state;
    char *t = scrape();
    promtool_check(t, "payd");
    free(t);
    t = scrape_vault();
    promtool_check(t, "payd-vault");
    free(t);
}

/* the metric names of a docs/metrics.md section: table rows "| `name` | ..." after
 * the heading until the next "## " */
static int
doc_names(const char *heading, char names[][96], int max)
{
    FILE *f = fopen(PAYD_SOURCE_DIR "/docs/metrics.md", "r");
    assert_non_null(f);
    char line[4096];
    int n = 0;
    bool in = false;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "## ", 3) == 0)
            in = strncmp(line, heading, strlen(heading)) == 0 && line[strlen(heading)] == '\n';
        else if (in && strncmp(line, "| `", 3) == 0 && n < max) {
            size_t len = strcspn(line + 3, "`");
            snprintf(names[n++], 96, "%.*s", (int)len, line + 3);
        }
    }
    fclose(f);
    return n;
}

static int
exported_names(const char *text, char names[][96], int max)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, "# TYPE ")) != NULL && n < max; p += 7) {
        size_t len = strcspn(p + 7, " ");
        snprintf(names[n++], 96, "%.*s", (int)len, p + 7);
    }
    return n;
}

static bool
in(char names[][96], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static void
compare(const char *heading, const char *text)
{
    static char doc[128][96], exp[128][96];
    int nd = doc_names(heading, doc, 128), ne = exported_names(text, exp, 128), bad = 0;
    assert_true(nd >= 10);
    for (int i = 0; i < ne; i++)
        if (!in(doc, nd, exp[i])) {
            print_error("%s exports %s, which docs/metrics.md (%s) does not document\n", heading + 3, exp[i], heading);
            bad++;
        }
    for (int i = 0; i < nd; i++)
        if (!in(exp, ne, doc[i])) {
            print_error("docs/metrics.md (%s) documents %s, which is not exported\n", heading, doc[i]);
            bad++;
        }
    assert_int_equal(bad, 0);
}

static void
every_metric_documented_and_every_documented_one_exported(void **state)
{
    (void)state;
    char *t = scrape();
    compare("## payd", t);
    free(t);
    t = scrape_vault();
    compare("## payd-vault", t);
    free(t);
}

static void
vault_metrics_count_operations_and_hold_no_card_data(void **state)
{
    (void)state;
    char *before = scrape_vault();
    char pm[64];
    assert_int_equal(api_card_pm(&payd, "4242424242424242", pm, sizeof(pm)), 200);
    char *mid = scrape_vault();
    /* the new card's CVC waits in the vault for its first payment, which takes it */
    assert_true(value_of(mid, "payd_vault_cvc_held") == value_of(before, "payd_vault_cvc_held") + 1);
    payments(3, pm);
    char *after = scrape_vault();
    assert_true(value_of(after, "payd_vault_cvc_held") == value_of(mid, "payd_vault_cvc_held") - 1);
    free(mid);
    assert_true(value_of(after, "payd_vault_operations_total{op=\"card.tokenize\",result=\"ok\"}") -
                    value_of(before, "payd_vault_operations_total{op=\"card.tokenize\",result=\"ok\"}") ==
                1);
    assert_true(value_of(after, "payd_vault_operations_total{op=\"card.detokenize\",result=\"ok\"}") -
                    value_of(before, "payd_vault_operations_total{op=\"card.detokenize\",result=\"ok\"}") ==
                3);
    assert_true(value_of(after, "payd_vault_audit_records_total") >= value_of(before, "payd_vault_audit_records_total") + 4);
    assert_true(value_of(after, "payd_vault_cvc_slots") > 0);
    assert_true(value_of(after, "payd_vault_peers") >= 2);
    /* no token, card number, fingerprint or key id anywhere */
    assert_null(strstr(after, "tok_"));
    assert_null(strstr(after, "4242"));
    assert_null(strstr(after, "key_"));
    assert_null(strstr(after, "pm_"));
    free(before);
    free(after);
    /* anything but GET /metrics is refused */
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/other", vault_port);
    const char *argv[] = {"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url, NULL};
    char *out = NULL;
    assert_int_equal(pd_h_run(argv, &out), 0);
    assert_string_equal(out, "404");
    free(out);
}

/* --- a scrape loop during concurrent payments: every histogram series is whole --- */

static atomic_bool done;
static char shared_pm[64];

static void *
payer(void *arg)
{
    int *ok = arg;
    pd_h_client_t *c = pd_h_client_new(&payd);
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    const char *hdrs[] = {auth, "Content-Type: application/x-www-form-urlencoded", NULL};
    char body[200];
    snprintf(body, sizeof(body), "amount=100&currency=usd&confirm=true&payment_method=%s", shared_pm);
    for (int i = 0; i < 60; i++) {
        pd_h_req_t rq = {.headers = hdrs, .body = body};
        pd_h_resp_t r;
        if (pd_h_do(c, "POST", "/v1/payment_intents", &rq, &r) == 0 && r.status == 200)
            (*ok)++;
        pd_h_resp_free(&r);
    }
    pd_h_client_free(c);
    return NULL;
}

/* checks every histogram series of a scrape, line by line (each series is its
 * buckets in order, then _sum, then _count): buckets never decrease and _count is the
 * +Inf bucket. Returns the number of series checked; adds problems to *bad. */
static int
check_histograms(const char *text, int *bad)
{
    int checked = 0;
    double prev = -1, inf = -1;
    for (const char *line = text; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
        const char *sp = memchr(line, ' ', len);
        if (line[0] != '#' && sp != NULL) {
            double v = strtod(sp + 1, NULL);
            const char *b = strstr(line, "_bucket{");
            const char *c = strstr(line, "_count");
            if (b != NULL && b < sp) {
                if (v < prev) {
                    print_error("histogram buckets decrease: %.*s\n", (int)len, line);
                    (*bad)++;
                }
                prev = v;
                if (strstr(line, "le=\"+Inf\"") != NULL && strstr(line, "le=\"+Inf\"") < sp)
                    inf = v;
            } else if (c != NULL && c < sp && inf >= 0) {
                if (v != inf) {
                    print_error("torn histogram: %.*s but the +Inf bucket is %g\n", (int)len, line, inf);
                    (*bad)++;
                }
                checked++;
                prev = inf = -1;
            }
        }
        line += len + (nl != NULL);
    }
    return checked;
}

static void *
scraper(void *arg)
{
    int *bad = arg;
    while (!atomic_load(&done)) {
        char *t = scrape();
        int n = check_histograms(t, bad);
        if (n < 3)
            (*bad)++;
        free(t);
    }
    return NULL;
}

static void
scrapes_during_concurrent_payments_show_no_torn_histogram(void **state)
{
    (void)state;
    enum { PAYERS = 8 };
    assert_int_equal(api_card_pm(&payd, "4242424242424242", shared_pm, sizeof(shared_pm)), 200);
    char *before = scrape();
    pthread_t th[PAYERS], sc;
    int ok[PAYERS] = {0}, bad = 0;
    atomic_store(&done, false);
    pthread_create(&sc, NULL, scraper, &bad);
    for (int i = 0; i < PAYERS; i++)
        pthread_create(&th[i], NULL, payer, &ok[i]);
    for (int i = 0; i < PAYERS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&done, true);
    pthread_join(sc, NULL);
    assert_int_equal(bad, 0);
    int total = 0;
    for (int i = 0; i < PAYERS; i++)
        total += ok[i];
    char *after = scrape();
    const char *s = "payd_payments_total{outcome=\"succeeded\"}";
    assert_true(value_of(after, s) - value_of(before, s) == total);
    free(before);
    free(after);
}

/* payd-vault serves its metrics on loopback only: anything else stops the start (exit 2) */
static void
vault_metrics_address_must_be_loopback(void **state)
{
    (void)state;
    static const struct {
        const char *addr, *says;
    } cases[] = {
        {"0.0.0.0:9191", "0.0.0.0:9191 is not a loopback address; the vault's metrics are served on loopback only"},
        {"10.1.2.3:9191", "is not a loopback address"},
        {"localhost", "metrics_listen = \"localhost\": invalid value; accepted: host:port"},
        {"example.com:9191", "is not a numeric address"},
    };
    char dir[] = "/tmp/payd-vmx-XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *argv[] = {PAYD_VAULT_BIN, "--data-dir", dir, "--socket", "/tmp/payd-vmx-unused.sock", "--metrics",
                              cases[i].addr, NULL};
        char *out = NULL;
        int st = pd_h_run(argv, &out);
        if (st != 2 || strstr(out, cases[i].says) == NULL)
            print_error("%s: exit %d: %s\n", cases[i].addr, st, out);
        assert_int_equal(st, 2);
        assert_non_null(strstr(out, cases[i].says));
        free(out);
    }
    /* payd refuses it for the vault it would start, before starting anything */
    const char *check[] = {PAYD_BIN, "--dev", "--data-dir", dir, "--set", "vault.metrics_listen=0.0.0.0:9191",
                           "--check-config", NULL};
    char *co = NULL;
    assert_int_equal(pd_h_run(check, &co), 2);
    assert_non_null(strstr(co, "[vault] metrics_listen = 0.0.0.0:9191: the vault's metrics are served on a numeric "
                               "loopback address only"));
    free(co);
    const char *rm[] = {"/bin/rm", "-rf", dir, NULL};
    char *out = NULL;
    assert_int_equal(pd_h_run(rm, &out), 0);
    free(out);
}

static void
disabled_records_nothing_and_answers_404(void **state)
{
    (void)state;
    pd_h_payd_t p2;
    const char *args[] = {"--set", "metrics.enabled=false", NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p2, &o), 0);
    pd_h_req_t rq = {.admin = true};
    pd_h_resp_t r;
    assert_int_equal(pd_h_request(&p2, "GET", "/metrics", &rq, &r), 0);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "metrics_disabled"));
    pd_h_resp_free(&r);
    pd_h_stop(&p2, SIGTERM, 20000);
    pd_h_cleanup(&p2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_exactly_what_was_sent),
        cmocka_unit_test(passes_promtool),
        cmocka_unit_test(every_metric_documented_and_every_documented_one_exported),
        cmocka_unit_test(vault_metrics_count_operations_and_hold_no_card_data),
        cmocka_unit_test(scrapes_during_concurrent_payments_show_no_torn_histogram),
        cmocka_unit_test(vault_metrics_address_must_be_loopback),
        cmocka_unit_test(disabled_records_nothing_and_answers_404),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
