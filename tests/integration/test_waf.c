/*
 * The WAF over HTTPS against payd --dev, measured with tests/waf-corpus: each `arg`
 * payload as a form `description` and as JSON `metadata[note]` on POST
 * /v1/payment_intents, each `header:` payload in that header. The regression gate:
 * at least 90 % of attack requests answered 403 request_blocked, no benign request
 * blocked. Also: detect mode, per-route off, and that no log line holds a card number.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "api_helpers.h"

typedef struct {
    int blocked, total, other; /* other: neither 200 nor 403 */
} tally_t;

static long
send_one(pd_h_client_t *c, const char *body, bool json, const char *hname, const char *hvalue, char *code,
         size_t codecap)
{
    char auth[200], hdr[70000];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    const char *hdrs[4] = {auth, json ? "Content-Type: application/json" : "Content-Type: application/x-www-form-urlencoded",
                           NULL, NULL};
    if (hname != NULL) {
        snprintf(hdr, sizeof(hdr), "%s: %s", hname, hvalue);
        hdrs[2] = hdr;
    }
    pd_h_req_t rq = {.headers = hdrs, .body = body};
    pd_h_resp_t r;
    long status = pd_h_do(c, "POST", "/v1/payment_intents", &rq, &r) == 0 ? r.status : -1;
    code[0] = '\0';
    json_error_t e;
    json_t *j = r.body != NULL ? json_loads(r.body, 0, &e) : NULL;
    if (j != NULL && jstr(j, "error.code") != NULL)
        snprintf(code, codecap, "%s", jstr(j, "error.code"));
    json_decref(j);
    pd_h_resp_free(&r);
    return status;
}

static void
count(tally_t *t, long status, const char *code, bool attack, const char *id, const char *how)
{
    t->total++;
    if (status == 403 && strcmp(code, "request_blocked") == 0)
        t->blocked++;
    else if (status != 200)
        t->other++;
    if (getenv("WAF_CORPUS_VERBOSE") != NULL && (status == 403) != attack)
        printf("%s %s (%s): %ld %s\n", attack ? "MISS" : "FALSE-POSITIVE", id, how, status, code);
}

static void
run_corpus(const pd_h_payd_t *p, const char *file, bool attack, tally_t *t)
{
    char path[512], line[70000], code[64];
    snprintf(path, sizeof(path), "%s/tests/waf-corpus/%s", PAYD_SOURCE_DIR, file);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    pd_h_client_t *c = pd_h_client_new(p);
    while (fgets(line, sizeof(line), f) != NULL) {
        json_error_t e;
        json_t *o = json_loads(line, JSON_ALLOW_NUL, &e);
        assert_non_null(o);
        const char *id = jstr(o, "id"), *loc = jstr(o, "location");
        json_t *pl = json_object_get(o, "payload");
        const char *payload = json_string_value(pl);
        size_t plen = json_string_length(pl);
        if (strcmp(loc, "arg") == 0) {
            char *enc = curl_easy_escape(NULL, payload, (int)plen);
            size_t cap = strlen(enc) + 64;
            char *form = malloc(cap);
            snprintf(form, cap, "amount=100&currency=usd&description=%s", enc);
            count(t, send_one(c, form, false, NULL, NULL, code, sizeof(code)), code, attack, id, "form description");
            free(form);
            curl_free(enc);
            json_t *body = json_pack("{s:i, s:s, s:{s:O}}", "amount", 100, "currency", "usd", "metadata", "note", pl);
            char *js = json_dumps(body, JSON_COMPACT);
            count(t, send_one(c, js, true, NULL, NULL, code, sizeof(code)), code, attack, id, "json metadata[note]");
            free(js);
            json_decref(body);
        } else {
            count(t, send_one(c, "amount=100&currency=usd", false, loc + strlen("header:"), payload, code, sizeof(code)),
                  code, attack, id, loc);
        }
        json_decref(o);
    }
    pd_h_client_free(c);
    fclose(f);
}

static void
corpus_gate(void **state)
{
    (void)state;
    pd_h_payd_t p;
    assert_int_equal(pd_h_start(&p, NULL), 0);
    api_load_credentials(&p);
    tally_t attacks = {0}, benign = {0};
    run_corpus(&p, "crs-3.3.4-attacks.jsonl", true, &attacks);
    run_corpus(&p, "legit-dev.jsonl", false, &benign);
    print_message("waf corpus over HTTPS: attacks blocked (403) %d of %d (%.1f %%), refused otherwise (400) %d; "
                  "benign blocked %d of %d (answered neither 200 nor 403: %d)\n",
                  attacks.blocked, attacks.total, 100.0 * attacks.blocked / attacks.total, attacks.other, benign.blocked,
                  benign.total, benign.other);
    assert_int_equal(benign.blocked, 0);
    assert_int_equal(benign.other, 0);
    assert_true(attacks.blocked * 100 >= attacks.total * 90);
    /* blocks are logged with rule ids and location, never the matched value */
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "\"msg\":\"waf: request blocked\""));
    assert_non_null(strstr(log, "\"location\":\"param:description\""));
    assert_null(strstr(log, "etc/passwd"));
    free(log);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
}

static void
detect_mode_and_route_overrides(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *args[] = {"--set", "waf.mode=detect", "--set", "waf.route_modes=POST /v1/tokens=block", NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    json_t *j;
    /* detect: logged, answered */
    assert_int_equal(api_call(&p, "POST", "/v1/payment_intents", "amount=100&currency=usd&description=1%27+OR+%271%27%3D%271", &j),
                     200);
    json_decref(j);
    /* the route override blocks on /v1/tokens */
    assert_int_equal(api_call(&p, "POST", "/v1/tokens",
                              "card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2034&card[name]=%3Cscript%3E",
                              &j),
                     403);
    assert_string_equal(jstr(j, "error.code"), "request_blocked");
    assert_string_equal(jstr(j, "error.type"), "invalid_request_error");
    assert_non_null(jstr(j, "error.request_id"));
    json_decref(j);
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "waf: request matched (detect mode)"));
    /* the card number of the blocked token request is nowhere in the log */
    assert_null(strstr(log, "4242424242424242"));
    free(log);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
}

static void
bad_rules_stop_the_start_with_the_line(void **state)
{
    (void)state;
    char path[] = "/tmp/payd-rules-XXXXXX";
    int fd = mkstemp(path);
    const char text[] = "# ok\n990001 custom 1 5 any norm fine\n990002 custom 7 5 any norm bad\n";
    assert_true(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    char set[400], dir[] = "/tmp/payd-waf-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(set, sizeof(set), "waf.rules_file=%s", path);
    const char *argv[] = {PAYD_BIN, "--dev", "--data-dir", dir, "--check-config", "--set", set, NULL};
    char *out = NULL;
    int rc = pd_h_run(argv, &out);
    char want[400];
    snprintf(want, sizeof(want), "%s:3: paranoia must be 1 to 4", path);
    bool found = out != NULL && strstr(out, want) != NULL;
    if (!found)
        print_error("expected \"%s\" in: %s\n", want, out);
    free(out);
    unlink(path);
    char rm[300];
    snprintf(rm, sizeof(rm), "rm -rf %s", dir);
    assert_int_equal(system(rm), 0);
    assert_int_not_equal(rc, 0);
    assert_true(found);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_rules_stop_the_start_with_the_line),
        cmocka_unit_test(detect_mode_and_route_overrides),
        cmocka_unit_test(corpus_gate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
