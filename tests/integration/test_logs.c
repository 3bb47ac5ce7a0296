/*
 * Traffic logs over HTTPS: the access log's fields (parsed as JSON) for a payment, a
 * WAF block, an unknown route and an unauthenticated call; the W3C trace context
 * (continued when valid, started when not, echoed in traceparent); the flow log's
 * accepted and rejected connections with TLS details and byte counts; rotation by
 * size and reopening on SIGUSR1; and that no log file ever holds a test card
 * number or CVC.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "api_helpers.h"

#define TRACE_ID "4bf92f3577b34da6a3ce929d0e0e4736"

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc(1, (size_t)n + 1);
    if (s != NULL && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    return s;
}

/* the first line of the log in DIR/name (every line must be JSON) whose key equals value;
 * waits up to 3 s for it to appear */
static json_t *
find_line(const pd_h_payd_t *p, const char *name, const char *key, const char *value)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", p->dir, name);
    for (int tries = 0; tries < 60; tries++) {
        char *text = slurp(path), *save = NULL;
        for (char *l = text != NULL ? strtok_r(text, "\n", &save) : NULL; l != NULL; l = strtok_r(NULL, "\n", &save)) {
            json_error_t e;
            json_t *o = json_loads(l, 0, &e);
            if (o == NULL)
                fail_msg("%s: a line is not JSON: %s", name, l);
            const char *v = jstr(o, key);
            if (v != NULL && strstr(v, value) != NULL) {
                free(text);
                return o;
            }
            json_decref(o);
        }
        free(text);
        usleep(50000);
    }
    fail_msg("%s: no line with %s = %s", name, key, value);
    return NULL;
}

static long
call(const pd_h_payd_t *p, const char *key, const char *method, const char *path, const char *body,
     const char *traceparent, pd_h_resp_t *r)
{
    char auth[200], tp[200];
    const char *hdrs[4] = {NULL};
    int n = 0;
    if (key != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
        hdrs[n++] = auth;
    }
    if (traceparent != NULL) {
        snprintf(tp, sizeof(tp), "traceparent: %s", traceparent);
        hdrs[n++] = tp;
    }
    if (body != NULL)
        hdrs[n++] = "Content-Type: application/x-www-form-urlencoded";
    pd_h_req_t rq = {.headers = hdrs, .body = body, .http2 = true};
    return pd_h_request(p, method, path, &rq, r) == 0 ? r->status : -1;
}

static void
access_log_fields(void **state)
{
    (void)state;
    pd_h_payd_t p;
    pd_h_resp_t r;
    char rid[64], tp[128];
    assert_int_equal(pd_h_start(&p, NULL), 0);
    api_load_credentials(&p);

    /* a payment, continuing the caller's trace */
    assert_int_equal(call(&p, api_sk, "POST", "/v1/payment_intents",
                          "amount=1099&currency=usd&payment_method=pm_card_visa&confirm=true",
                          "00-" TRACE_ID "-00f067aa0ba902b7-01", &r),
                     200);
    assert_true(pd_h_resp_header(&r, "request-id", rid, sizeof(rid)));
    assert_true(pd_h_resp_header(&r, "traceparent", tp, sizeof(tp)));
    assert_int_equal(strlen(tp), 55);
    assert_memory_equal(tp, "00-" TRACE_ID "-", 36);
    assert_memory_not_equal(tp + 36, "00f067aa0ba902b7", 16); /* our own span */
    assert_string_equal(tp + 52, "-01");
    pd_h_resp_free(&r);
    json_t *o = find_line(&p, "access.log", "requestId", rid);
    assert_string_equal(jstr(o, "type"), "access");
    assert_string_equal(jstr(o, "ip"), "127.0.0.1");
    assert_non_null(jstr(o, "caller"));
    assert_memory_equal(jstr(o, "caller"), "key_", 4);
    assert_null(strstr(jstr(o, "caller"), api_sk)); /* the key id, never the key */
    assert_string_equal(jstr(o, "httpMethod"), "POST");
    assert_string_equal(jstr(o, "resourcePath"), "/v1/payment_intents");
    assert_int_equal(jint(o, "status"), 200);
    assert_string_equal(jstr(o, "protocol"), "HTTP/2");
    assert_true(jint(o, "responseLength") > 100);
    assert_true(json_is_real(json_object_get(o, "latency_ms")));
    assert_non_null(jstr(o, "requestTime"));
    assert_string_equal(jstr(o, "waf.action"), "pass");
    assert_string_equal(jstr(o, "traceId"), TRACE_ID);
    assert_memory_equal(jstr(o, "spanId"), tp + 36, 16);
    json_decref(o);

    /* a WAF block: action and rule ids, no value */
    assert_int_equal(call(&p, api_sk, "POST", "/v1/payment_intents",
                          "amount=1099&currency=usd&description=%3Cscript%3Ealert(1)%3C%2Fscript%3E", NULL, &r),
                     403);
    assert_true(pd_h_resp_header(&r, "request-id", rid, sizeof(rid)));
    pd_h_resp_free(&r);
    o = find_line(&p, "access.log", "requestId", rid);
    assert_int_equal(jint(o, "status"), 403);
    assert_string_equal(jstr(o, "waf.action"), "block");
    assert_true(strlen(jstr(o, "waf.rules")) >= 6);
    assert_string_equal(jstr(o, "errorCode"), "request_blocked");
    json_decref(o);

    /* an unknown route (no template), no key, and a malformed traceparent (a new trace) */
    assert_int_equal(call(&p, NULL, "GET", "/v1/nothing/here", NULL, "00-" "00000000000000000000000000000000"
                                                                       "-00f067aa0ba902b7-01", &r),
                     404);
    assert_true(pd_h_resp_header(&r, "request-id", rid, sizeof(rid)));
    assert_true(pd_h_resp_header(&r, "traceparent", tp, sizeof(tp)));
    assert_memory_not_equal(tp + 3, "00000000000000000000000000000000", 32);
    pd_h_resp_free(&r);
    o = find_line(&p, "access.log", "requestId", rid);
    assert_true(json_is_null(json_object_get(o, "resourcePath")));
    assert_true(json_is_null(json_object_get(o, "caller")));
    assert_int_equal(jint(o, "status"), 404);
    assert_memory_equal(jstr(o, "traceId"), tp + 3, 32);
    json_decref(o);

    assert_int_equal(call(&p, "sk_test_wrongwrongwrongwrong", "GET", "/v1/balance", NULL, NULL, &r), 401);
    assert_true(pd_h_resp_header(&r, "request-id", rid, sizeof(rid)));
    pd_h_resp_free(&r);
    o = find_line(&p, "access.log", "requestId", rid);
    assert_true(json_is_null(json_object_get(o, "caller")));
    assert_string_equal(jstr(o, "resourcePath"), "/v1/balance");
    json_decref(o);

    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

static void
flow_log_fields(void **state)
{
    (void)state;
    pd_h_payd_t p;
    pd_h_resp_t r;
    pd_h_tls_info_t ti;
    assert_int_equal(pd_h_start(&p, NULL), 0);

    /* refused handshakes: TLS 1.1, and a TLS 1.2 suite without forward secrecy or AEAD */
    assert_int_not_equal(pd_h_tls_probe(p.api_port, TLS1_1_VERSION, TLS1_1_VERSION, NULL, &ti), 0);
    json_t *o = find_line(&p, "flow.log", "reason", "protocol version");
    assert_string_equal(jstr(o, "action"), "reject");
    assert_string_equal(jstr(o, "listener"), "api");
    assert_int_equal(jint(o, "localPort"), p.api_port);
    assert_true(json_is_null(json_object_get(o, "tlsVersion")));
    json_decref(o);
    assert_int_not_equal(pd_h_tls_probe(p.api_port, TLS1_2_VERSION, TLS1_2_VERSION, "AES128-SHA", &ti), 0);
    o = find_line(&p, "flow.log", "reason", "handshake failure");
    assert_string_equal(jstr(o, "action"), "reject");
    json_decref(o);

    /* an accepted connection: closed after one request, then logged with its totals */
    pd_h_req_t rq = {.http2 = true};
    assert_int_equal(pd_h_request(&p, "GET", "/healthz", &rq, &r), 0);
    assert_int_equal(r.status, 200);
    pd_h_resp_free(&r);
    o = find_line(&p, "flow.log", "tlsVersion", "TLSv1.3");
    assert_string_equal(jstr(o, "action"), "accept");
    assert_string_equal(jstr(o, "peer"), "127.0.0.1");
    assert_true(jint(o, "peerPort") > 0);
    assert_string_equal(jstr(o, "tlsVersion"), "TLSv1.3");
    assert_non_null(jstr(o, "tlsCipher"));
    assert_true(jint(o, "bytesIn") > 100);
    assert_true(jint(o, "bytesOut") > 100);
    assert_true(jint(o, "duration_ms") >= 0);
    assert_true(json_is_null(json_object_get(o, "reason")));
    json_decref(o);
    /* a plain-HTTP admin connection (the harness's readiness checks) counts both ways too */
    o = find_line(&p, "flow.log", "listener", "admin");
    assert_string_equal(jstr(o, "action"), "accept");
    assert_true(jint(o, "bytesIn") > 20);
    assert_true(jint(o, "bytesOut") > 20);
    json_decref(o);

    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

static bool
exists(const pd_h_payd_t *p, const char *name)
{
    char path[400];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", p->dir, name);
    return stat(path, &st) == 0;
}

static void
rotation_and_reopen(void **state)
{
    (void)state;
    pd_h_payd_t p;
    const char *args[] = {"--set", "logs.max_bytes=2k", "--set", "logs.keep=2", NULL};
    pd_h_opts_t opts = {.args = args};
    assert_int_equal(pd_h_start(&p, &opts), 0);
    pd_h_client_t *c = pd_h_client_new(&p);
    for (int i = 0; i < 40; i++) {
        pd_h_resp_t r;
        assert_int_equal(pd_h_do(c, "GET", "/healthz", NULL, &r), 0);
        pd_h_resp_free(&r);
        if (i % 8 == 7)
            usleep(250000); /* lines are written in batches at most 100 ms apart */
    }
    assert_true(exists(&p, "access.log.1"));
    assert_true(exists(&p, "access.log.2"));
    assert_false(exists(&p, "access.log.3")); /* retention: keep = 2 */

    /* an external rotation: move the file away, then SIGUSR1 makes payd start a new one */
    char from[400], to[400];
    snprintf(from, sizeof(from), "%s/access.log", p.dir);
    snprintf(to, sizeof(to), "%s/access.log.moved", p.dir);
    assert_int_equal(rename(from, to), 0);
    assert_int_equal(kill(p.pid, SIGUSR1), 0);
    usleep(300000);
    pd_h_resp_t r;
    assert_int_equal(pd_h_do(c, "GET", "/healthz", NULL, &r), 0);
    char rid[64];
    assert_true(pd_h_resp_header(&r, "request-id", rid, sizeof(rid)));
    pd_h_resp_free(&r);
    json_t *o = find_line(&p, "access.log", "requestId", rid);
    json_decref(o);
    pd_h_client_free(c);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

/* no file under dir (recursively) and no payd output contains a card number, and no
 * line that mentions a CVC carries its value */
static void
scan_dir(const char *dir, const char *const *pans, const char *cvc, int *hits)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char path[600];
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            scan_dir(path, pans, cvc, hits);
            continue;
        }
        size_t len = strlen(e->d_name);
        if (!S_ISREG(st.st_mode) || (strstr(e->d_name, ".log") == NULL && (len < 4 || strcmp(e->d_name + len - 4, ".out") != 0)))
            continue;
        char *text = slurp(path), *save = NULL;
        for (char *l = text != NULL ? strtok_r(text, "\n", &save) : NULL; l != NULL; l = strtok_r(NULL, "\n", &save)) {
            for (int i = 0; pans[i] != NULL; i++)
                if (strstr(l, pans[i]) != NULL) {
                    print_error("card number in %s: %s\n", path, l);
                    (*hits)++;
                }
            if (strcasestr(l, "cvc") != NULL && strstr(l, cvc) != NULL) {
                print_error("CVC in %s: %s\n", path, l);
                (*hits)++;
            }
        }
        free(text);
    }
    closedir(d);
}

static void
no_card_data_in_logs(void **state)
{
    (void)state;
    pd_h_payd_t p;
    json_t *o;
    assert_int_equal(pd_h_start(&p, NULL), 0);
    api_load_credentials(&p);
    /* card numbers pass through payd's memory: it never dumps core */
    char lim_path[64], *limits = NULL;
    snprintf(lim_path, sizeof(lim_path), "/proc/%d/limits", (int)p.pid);
    const char *cat[] = {"/bin/cat", lim_path, NULL};
    assert_int_equal(pd_h_run(cat, &limits), 0);
    const char *core = strstr(limits, "Max core file size");
    assert_non_null(core);
    char soft[32] = "", hard[32] = "";
    assert_int_equal(sscanf(core + strlen("Max core file size"), "%31s %31s", soft, hard), 2);
    assert_string_equal(soft, "0");
    assert_string_equal(hard, "0");
    free(limits);
    /* cards through every path: tokenized, declined, refused by the schema, blocked by the WAF */
    assert_int_equal(api_call(&p, "POST", "/v1/payment_methods",
                              "type=card&card[number]=4000056655665556&card[exp_month]=12&card[exp_year]=2031"
                              "&card[cvc]=9183",
                              &o),
                     200);
    json_decref(o);
    assert_int_equal(api_call(&p, "POST", "/v1/payment_methods",
                              "type=card&card[number]=4000000000000002&card[exp_month]=12&card[exp_year]=2031"
                              "&card[cvc]=9183",
                              &o),
                     200);
    char pm[64];
    snprintf(pm, sizeof(pm), "%s", jstr(o, "id"));
    json_decref(o);
    char body[200];
    snprintf(body, sizeof(body), "amount=500&currency=usd&confirm=true&payment_method=%s", pm);
    assert_int_equal(api_call(&p, "POST", "/v1/payment_intents", body, &o), 402);
    json_decref(o);
    assert_int_equal(api_call(&p, "POST", "/v1/payment_methods",
                              "type=card&card[number]=4111111111111111&card[exp_month]=13&card[exp_year]=2031"
                              "&card[cvc]=9183",
                              &o),
                     400);
    json_decref(o);
    assert_int_equal(api_call(&p, "POST", "/v1/payment_intents",
                              "amount=500&currency=usd&description=4242424242424242%20cvc%209183%20%3Cscript%3E", &o),
                     403);
    json_decref(o);
    assert_int_equal(api_call(&p, "GET", "/v1/payment_methods/4242424242424242", NULL, &o), 404);
    json_decref(o);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);

    const char *pans[] = {"4000056655665556", "4000000000000002", "4111111111111111", "4242424242424242", NULL};
    int hits = 0;
    scan_dir(p.dir, pans, "9183", &hits);
    char *out = pd_h_log(&p); /* payd's own stdout and stderr: the service and WAF log */
    assert_non_null(out);
    for (int i = 0; pans[i] != NULL; i++)
        if (strstr(out, pans[i]) != NULL) {
            print_error("card number in payd's output\n");
            hits++;
        }
    free(out);
    assert_int_equal(hits, 0);
    pd_h_cleanup(&p);
}

/* POST /v1/payment_intents with Stripe-Version v (NULL: none) as the dev merchant */
static long
versioned_payment(const pd_h_payd_t *p, const char *v, pd_h_resp_t *r)
{
    char auth[200], sv[200];
    const char *hdrs[4] = {auth, "Content-Type: application/x-www-form-urlencoded", NULL, NULL};
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    if (v != NULL) {
        snprintf(sv, sizeof(sv), "Stripe-Version: %s", v);
        hdrs[2] = sv;
    }
    pd_h_req_t rq = {.headers = hdrs, .body = "amount=1099&currency=usd&payment_method=pm_card_visa&confirm=true"};
    return pd_h_request(p, "POST", "/v1/payment_intents", &rq, r) == 0 ? r->status : -1;
}

/* Stripe-Version: answered, logged, and the version of the events the request made;
 * without one, payd's own; a malformed one refused */
static void
stripe_version_is_answered_logged_and_on_events(void **state)
{
    (void)state;
    pd_h_payd_t p;
    pd_h_resp_t r;
    char got[64], rid[64];
    assert_int_equal(pd_h_start(&p, NULL), 0);
    api_load_credentials(&p);
    assert_int_equal(versioned_payment(&p, "2023-10-16", &r), 200);
    assert_true(pd_h_resp_header(&r, "stripe-version", got, sizeof(got)));
    assert_string_equal(got, "2023-10-16");
    assert_true(pd_h_resp_header(&r, "request-id", rid, sizeof(rid)));
    pd_h_resp_free(&r);
    json_t *o = find_line(&p, "access.log", "requestId", rid);
    assert_string_equal(jstr(o, "stripeVersion"), "2023-10-16");
    json_decref(o);
    json_t *ev;
    assert_int_equal(api_call(&p, "GET", "/v1/events?limit=3", NULL, &ev), 200);
    json_t *data = json_object_get(ev, "data");
    assert_int_equal(json_array_size(data), 3); /* the intent's and its charge's events */
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(jstr(json_array_get(data, i), "api_version"), "2023-10-16");
    json_decref(ev);

    assert_int_equal(versioned_payment(&p, NULL, &r), 200);
    assert_true(pd_h_resp_header(&r, "stripe-version", got, sizeof(got)));
    assert_string_equal(got, "2024-06-20");
    pd_h_resp_free(&r);
    assert_int_equal(api_call(&p, "GET", "/v1/events?limit=1", NULL, &ev), 200);
    assert_string_equal(jstr(json_array_get(json_object_get(ev, "data"), 0), "api_version"), "2024-06-20");
    json_decref(ev);

    const char *bad[] = {"2023-13-01", "2023-10-16.", "2023-1-016", "latest", "2023-10-16.Basil"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(versioned_payment(&p, bad[i], &r), 400);
        assert_non_null(strstr(r.body, "Invalid Stripe API version"));
        pd_h_resp_free(&r);
    }
    assert_int_equal(versioned_payment(&p, "2024-06-20.basil", &r), 200);
    pd_h_resp_free(&r);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(access_log_fields),
        cmocka_unit_test(stripe_version_is_answered_logged_and_on_events),
        cmocka_unit_test(flow_log_fields),
        cmocka_unit_test(rotation_and_reopen),
        cmocka_unit_test(no_card_data_in_logs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
