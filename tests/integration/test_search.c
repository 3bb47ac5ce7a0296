/*
 * Stripe's Search API against payd --dev (integration/search and
 * integration/search/postgres): GET /v1/payment_intents/search, /v1/charges/search and
 * /v1/customers/search with each field and operator, AND, OR and negation, metadata,
 * pagination through next_page (nothing repeated or missed, also across the scan bound,
 * which this payd sets to SCAN_LIMIT rows), other merchants' and live-mode objects never
 * returned, every syntax error with param "query", bad page tokens with param "page".
 *
 * The fixture: 12 payment intents, amounts 1001..1012 in creation order; odd ones usd,
 * even ones eur; metadata order=ord-N, kind "gift card" for N % 3 == 0 else "plain";
 * customer A on 1..4; 2, 5 and 8 confirmed (succeeded, with a charge each), 3 canceled.
 * Every other intent a test creates has an amount of 5000 or more.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "api_helpers.h"

#define SCAN_LIMIT 40

static pd_h_payd_t payd;
static char cus_a[64];

static json_t *
payctl_json(const char *const *args)
{
    char *out = NULL;
    if (pd_h_payctl(&payd, args, &out) != 0 || out == NULL || strchr(out, '{') == NULL)
        fail_msg("payctl %s %s: %s", args[0], args[1], out != NULL ? out : "");
    json_error_t e;
    json_t *o = json_loads(strchr(out, '{'), JSON_DISABLE_EOF_CHECK, &e);
    free(out);
    if (o == NULL)
        abort();
    return o;
}

static void
post_ok(const char *key, const char *path, const char *body, char *id, size_t cap)
{
    json_t *o;
    long st = api_call_as(&payd, key, "POST", path, body, NULL, &o);
    if (st != 200)
        fail_msg("POST %s %s: %ld %s", path, body, st, json_dumps(o, 0));
    if (id != NULL)
        snprintf(id, cap, "%s", jstr(o, "id"));
    json_decref(o);
}

static int
setup(void **state)
{
    (void)state;
    char scan[64];
    snprintf(scan, sizeof(scan), "payments.search_scan_limit=%d", SCAN_LIMIT);
    const char *args[] = {"--set", scan, NULL};
    pd_h_opts_t o = {.args = args};
    if (pd_h_start(&payd, &o) != 0)
        return -1;
    api_load_credentials(&payd);
    post_ok(api_sk, "/v1/customers", "email=a%40example.com", cus_a, sizeof(cus_a));
    for (int i = 1; i <= 12; i++) {
        char body[400], id[64], path[128];
        snprintf(body, sizeof(body), "amount=%d&currency=%s&metadata[order]=ord-%d&metadata[kind]=%s%s%s%s", 1000 + i,
                 i % 2 ? "usd" : "eur", i, i % 3 == 0 ? "gift+card" : "plain", i <= 4 ? "&customer=" : "",
                 i <= 4 ? cus_a : "", i == 2 || i == 5 || i == 8 ? "&confirm=true&payment_method=pm_card_visa" : "");
        post_ok(api_sk, "/v1/payment_intents", body, id, sizeof(id));
        if (i == 3) {
            snprintf(path, sizeof(path), "/v1/payment_intents/%s/cancel", id);
            post_ok(api_sk, path, "", NULL, 0);
        }
    }
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

/* GET path?query=q&extra as key; *out the body */
static long
search_as(const char *key, const char *path, const char *q, const char *extra, json_t **out)
{
    char url[4096];
    char *enc = curl_easy_escape(NULL, q, 0);
    snprintf(url, sizeof(url), "%s?query=%s%s%s", path, enc, extra != NULL ? "&" : "", extra != NULL ? extra : "");
    curl_free(enc);
    return api_call_as(&payd, key, "GET", url, NULL, NULL, out);
}

/* the amounts of a search's first page (at most 100), newest first, as "1008,1005" */
static void
expect_amounts(const char *path, const char *q, const char *want)
{
    json_t *o;
    long st = search_as(api_sk, path, q, "limit=100", &o);
    if (st != 200)
        fail_msg("%s %s: %ld %s", path, q, st, json_dumps(o, 0));
    assert_string_equal(jstr(o, "object"), "search_result");
    char got[2048] = "";
    size_t n = 0;
    json_t *data = json_object_get(o, "data"), *it;
    size_t i;
    json_array_foreach(data, i, it)
    {
        n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%lld", i ? "," : "", jint(it, "amount"));
    }
    if (strcmp(got, want) != 0)
        fail_msg("%s query %s: amounts [%s], want [%s]", path, q, got, want);
    json_decref(o);
}

static void
each_field_and_operator(void **state)
{
    (void)state;
    const char *pis = "/v1/payment_intents/search";
    char q[300];
    expect_amounts(pis, "status:'succeeded'", "1008,1005,1002");
    expect_amounts(pis, "status:\"SUCCEEDED\"", "1008,1005,1002"); /* exact match ignores case */
    expect_amounts(pis, "status~\"ceed\"", "1008,1005,1002");
    expect_amounts(pis, "status:\"canceled\"", "1003");
    expect_amounts(pis, "amount:1007", "1007");
    expect_amounts(pis, "amount:\"1007\"", "1007");
    expect_amounts(pis, "amount>1010 amount<2000", "1012,1011");
    expect_amounts(pis, "amount>=1010 AND amount<1012", "1011,1010");
    expect_amounts(pis, "amount<=1002", "1002,1001");
    expect_amounts(pis, "currency:\"eur\" AND amount<1005", "1004,1002");
    expect_amounts(pis, "currency:'USD' amount<1004", "1003,1001");
    snprintf(q, sizeof(q), "customer:\"%s\"", cus_a);
    expect_amounts(pis, q, "1004,1003,1002,1001");
    snprintf(q, sizeof(q), "customer~\"%s\"", cus_a + 6);
    expect_amounts(pis, q, "1004,1003,1002,1001");
    expect_amounts(pis, "metadata['order']:'ord-7'", "1007");
    expect_amounts(pis, "metadata[\"kind\"]~\"gift\"", "1012,1009,1006,1003");
    expect_amounts(pis, "metadata['kind']:'gift card' AND amount>1006", "1012,1009");
    expect_amounts(pis, "metadata['nope']:'x'", "");
    expect_amounts(pis, "created>0 amount:1001", "1001");
    expect_amounts(pis, "created<1000000", "");
    char now[64];
    snprintf(now, sizeof(now), "created<=%lld amount<1002", (long long)time(NULL) + 5);
    expect_amounts(pis, now, "1001");
    /* charges: the three confirmed intents' */
    const char *chs = "/v1/charges/search";
    expect_amounts(chs, "status:'succeeded'", "1008,1005,1002");
    expect_amounts(chs, "amount>1004 currency:'eur'", "1008");
    snprintf(q, sizeof(q), "customer:'%s'", cus_a);
    expect_amounts(chs, q, "1002");
    expect_amounts(chs, "metadata['order']:'ord-2'", ""); /* a charge's metadata is its own: {} */
    expect_amounts(chs, "-status:'failed' amount<1006", "1005,1002");
}

static void
and_or_and_negation(void **state)
{
    (void)state;
    const char *pis = "/v1/payment_intents/search";
    expect_amounts(pis, "status:\"canceled\" OR amount:1001", "1003,1001");
    /* reads as SQL injection to the WAF's signatures (rule 942100): the query is the
     * parser's, not scanned (PD_FF_NOSCAN) */
    expect_amounts(pis, "status:'canceled' OR amount>1010", "1012,1011,1003");
    expect_amounts(pis, "status:\"canceled\" or amount:1001 OR amount:1012", "1012,1003,1001");
    expect_amounts(pis, "-status:\"requires_payment_method\" amount<2000", "1008,1005,1003,1002");
    expect_amounts(pis, "-metadata['kind']:'plain' amount<1013", "1012,1009,1006,1003");
    expect_amounts(pis, "-amount>1002 -amount<1001", "1002,1001");
    expect_amounts(pis, "-currency:'usd' and -currency:'eur'", "");
    expect_amounts(pis, "-metadata['order']~'ord' OR amount:1005", "1005"); /* every intent of the fixture has one */
    expect_amounts(pis, "amount:1001 OR -amount<5000", "1001"); /* the only ones < 5000 are the fixture's */
}

static void
customers_by_email_created_and_metadata(void **state)
{
    (void)state;
    char c1[64], c2[64], c3[64];
    post_ok(api_sk, "/v1/customers", "email=jenny%40example.com&name=Jenny&metadata[tier]=gold", c1, sizeof(c1));
    post_ok(api_sk, "/v1/customers", "email=bob%40example.com&metadata[tier]=silver", c2, sizeof(c2));
    post_ok(api_sk, "/v1/customers", "email=Jenny%40Example.com&metadata[tier]=silver", c3, sizeof(c3));
    json_t *o;
    assert_int_equal(search_as(api_sk, "/v1/customers/search", "email:\"jenny@example.com\"", NULL, &o), 200);
    json_t *d = json_object_get(o, "data");
    assert_int_equal(json_array_size(d), 2);
    assert_string_equal(jstr(json_array_get(d, 0), "id"), c3);
    assert_string_equal(jstr(json_array_get(d, 1), "id"), c1);
    assert_string_equal(jstr(json_array_get(d, 1), "email"), "jenny@example.com"); /* opened through the vault */
    assert_string_equal(jstr(json_array_get(d, 1), "name"), "Jenny");
    assert_null(json_object_get(json_array_get(d, 0), "__pii"));
    assert_string_equal(jstr(o, "url"), "/v1/customers/search");
    json_decref(o);
    assert_int_equal(search_as(api_sk, "/v1/customers/search", "metadata['tier']:'gold' OR email:'bob@example.com'",
                               NULL, &o),
                     200);
    d = json_object_get(o, "data");
    assert_int_equal(json_array_size(d), 2);
    assert_string_equal(jstr(json_array_get(d, 0), "id"), c2);
    assert_string_equal(jstr(json_array_get(d, 1), "id"), c1);
    json_decref(o);
    assert_int_equal(search_as(api_sk, "/v1/customers/search", "-email:'jenny@example.com' metadata['tier']~'silv'",
                               NULL, &o),
                     200);
    d = json_object_get(o, "data");
    assert_int_equal(json_array_size(d), 1);
    assert_string_equal(jstr(json_array_get(d, 0), "id"), c2);
    json_decref(o);
    assert_int_equal(search_as(api_sk, "/v1/customers/search", "email:'jenny@example.com' created>0", NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 2);
    json_decref(o);
    /* a deleted customer is not found */
    char path[128];
    snprintf(path, sizeof(path), "/v1/customers/%s", c3);
    assert_int_equal(api_call(&payd, "DELETE", path, NULL, &o), 200);
    json_decref(o);
    assert_int_equal(search_as(api_sk, "/v1/customers/search", "email:\"JENNY@example.com\"", NULL, &o), 200);
    d = json_object_get(o, "data");
    assert_int_equal(json_array_size(d), 1);
    assert_string_equal(jstr(json_array_get(d, 0), "id"), c1);
    json_decref(o);
    /* what is encrypted cannot be searched, and says why */
    const char *refused[][2] = {{"email~\"jenny\"", "exact match only"},
                                {"name:\"Jenny\"", "encrypted"},
                                {"phone:\"+15555550100\"", "encrypted"},
                                {"status:\"active\"", "Unknown field 'status'"}};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        assert_int_equal(search_as(api_sk, "/v1/customers/search", refused[i][0], NULL, &o), 400);
        api_expect_error(o, "parameter_invalid", "query");
        if (strstr(jstr(o, "error.message"), refused[i][1]) == NULL)
            fail_msg("%s: %s", refused[i][0], jstr(o, "error.message"));
        json_decref(o);
    }
}

/* every page of a search with limit; ids appended to ids (n of them); the pages' count */
static int
all_pages(const char *key, const char *path, const char *q, int limit, char ids[][64], size_t cap, size_t *n)
{
    char extra[1024];
    char page[600] = "";
    int pages = 0;
    *n = 0;
    for (;;) {
        json_t *o;
        snprintf(extra, sizeof(extra), "limit=%d%s%s", limit, page[0] ? "&page=" : "", page);
        long st = search_as(key, path, q, extra, &o);
        if (st != 200)
            fail_msg("page %d: %ld %s", pages, st, json_dumps(o, 0));
        pages++;
        json_t *d = json_object_get(o, "data"), *it;
        size_t i;
        assert_true(json_array_size(d) <= (size_t)limit);
        json_array_foreach(d, i, it)
        {
            assert_true(*n < cap);
            snprintf(ids[(*n)++], 64, "%s", jstr(it, "id"));
        }
        bool more = json_is_true(json_object_get(o, "has_more"));
        json_t *np = json_object_get(o, "next_page");
        if (!more) {
            assert_true(json_is_null(np));
            json_decref(o);
            return pages;
        }
        assert_true(json_is_string(np));
        snprintf(page, sizeof(page), "%s", json_string_value(np));
        json_decref(o);
        assert_true(pages < 1000);
    }
}

static void
pagination_visits_each_once(void **state)
{
    (void)state;
    char made[25][64], got[200][64];
    for (int i = 0; i < 25; i++) {
        char body[200];
        snprintf(body, sizeof(body), "amount=%d&currency=usd&metadata[batch]=pages", 5000 + i);
        post_ok(api_sk, "/v1/payment_intents", body, made[i], sizeof(made[i]));
    }
    size_t n;
    /* 4 a page, and the scan bound (SCAN_LIMIT rows) ends some pages early */
    int pages = all_pages(api_sk, "/v1/payment_intents/search", "metadata['batch']:'pages'", 4, got, 200, &n);
    assert_int_equal(n, 25);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(got[i], made[24 - i]); /* newest first, each once */
    assert_true(pages >= 7);
    /* OR and negation page the same way */
    pages = all_pages(api_sk, "/v1/payment_intents/search", "amount>=5000 OR amount:1001", 7, got, 200, &n);
    assert_true(n >= 26);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            assert_string_not_equal(got[i], got[j]);
    assert_string_equal(got[0], made[24]);
    assert_string_equal(got[24], made[0]);
}

static void
scan_bound_answers_what_matched_and_resumes(void **state)
{
    (void)state;
    /* nothing matches: each page reads SCAN_LIMIT rows, answers none, and resumes after
     * them; the last page finds the oldest row */
    json_t *o;
    int64_t total = 0;
    size_t n;
    for (int i = 0; i < 30; i++)
        post_ok(api_sk, "/v1/payment_intents", "amount=6000&currency=usd", NULL, 0);
    char got[400][64];
    int pages = all_pages(api_sk, "/v1/payment_intents/search", "amount>0", 100, got, 400, &n);
    total = (int64_t)n;
    assert_true(total > SCAN_LIMIT); /* the fixture and the other tests' intents */
    assert_int_equal(pages, (int)((total + SCAN_LIMIT - 1) / SCAN_LIMIT) + (total % SCAN_LIMIT == 0));
    pages = all_pages(api_sk, "/v1/payment_intents/search", "metadata['none']:'none'", 10, got, 400, &n);
    assert_int_equal(n, 0);
    assert_int_equal(pages, (int)((total + SCAN_LIMIT - 1) / SCAN_LIMIT) + (total % SCAN_LIMIT == 0));
    /* the first of those pages: empty, has_more, a next_page */
    assert_int_equal(search_as(api_sk, "/v1/payment_intents/search", "metadata['none']:'none'", NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 0);
    assert_true(json_is_true(json_object_get(o, "has_more")));
    assert_true(json_is_string(json_object_get(o, "next_page")));
    json_decref(o);
}

static void
other_merchants_and_live_mode_never_returned(void **state)
{
    (void)state;
    char other_sk[160], live_sk[160], theirs[64], live[64], mine[64];
    const char *ma[] = {"merchant", "create", "--name", "Other shop", NULL};
    json_t *m = payctl_json(ma);
    snprintf(other_sk, sizeof(other_sk), "%s", jstr(m, "secret_key"));
    json_decref(m);
    const char *ka[] = {"keys", "create", "--merchant", api_merchant, "--type", "secret", "--live", NULL};
    m = payctl_json(ka);
    snprintf(live_sk, sizeof(live_sk), "%s", jstr(m, "key"));
    json_decref(m);
    const char *body = "amount=7777&currency=usd&metadata[batch]=apart";
    post_ok(other_sk, "/v1/payment_intents", body, theirs, sizeof(theirs));
    post_ok(live_sk, "/v1/payment_intents", body, live, sizeof(live));
    post_ok(api_sk, "/v1/payment_intents", body, mine, sizeof(mine));
    post_ok(other_sk, "/v1/customers", "email=apart%40example.com", NULL, 0);
    const char *keys[] = {api_sk, other_sk, live_sk};
    const char *want[] = {mine, theirs, live};
    for (int k = 0; k < 3; k++) {
        char got[10][64];
        size_t n;
        all_pages(keys[k], "/v1/payment_intents/search", "metadata['batch']:'apart' OR amount:7777", 10, got, 10, &n);
        assert_int_equal(n, 1);
        assert_string_equal(got[0], want[k]);
    }
    json_t *o;
    assert_int_equal(search_as(api_sk, "/v1/customers/search", "email:'apart@example.com'", NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 0);
    json_decref(o);
    assert_int_equal(search_as(other_sk, "/v1/customers/search", "email:'apart@example.com'", NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 1);
    json_decref(o);
    /* one merchant's page token is not another's */
    assert_int_equal(search_as(api_sk, "/v1/payment_intents/search", "amount>0", "limit=1", &o), 200);
    char tok[600];
    snprintf(tok, sizeof(tok), "page=%s", jstr(o, "next_page"));
    json_decref(o);
    assert_int_equal(search_as(other_sk, "/v1/payment_intents/search", "amount>0", tok, &o), 400);
    api_expect_error(o, "parameter_invalid", "page");
    json_decref(o);
}

static void
syntax_errors_name_the_query(void **state)
{
    (void)state;
    const char *bad[][2] = {
        {"status:succeeded", "quoted value at position 7"},
        {"foo:\"x\"", "Unknown field 'foo' at position 0"},
        {"email:\"a@b.c\"", "Unknown field 'email'"},
        {"status>\"a\"", "compares numbers"},
        {"amount~\"100\"", "is a number"},
        {"status~\"ab\"", "at least 3 characters"},
        {"status:\"a\" AND status:\"b\" OR status:\"c\"", "cannot be combined"},
        {"status:\"a\" status:\"b\" OR status:\"c\"", "cannot be combined"},
        {"amount:1 amount:2 amount:3 amount:4 amount:5 amount:6 amount:7 amount:8 amount:9 amount:10 amount:11",
         "at most 10"},
        {"status:\"x", "Unterminated string starting at position 7"},
        {"status:'x\\", "Unterminated"},
        {"status \"x\"", "Expected an operator"},
        {"status: \"x\"", "right after ':' at position 8"},
        {"status:\"a\"amount>5", "Expected whitespace, AND or OR between clauses at position 10"},
        {"metadata[order]:\"x\"", "quoted key"},
        {"metadata:\"x\"", "Expected '['"},
        {"metadata['k'\"x\"", "Expected ']'"},
        {"   ", "empty"},
        {"amount:1.5", "Invalid number at position 7"},
        {"amount:\"ten\"", "whole number"},
        {"status:\"a\" AND", "end of the query"},
        {"status:\"a\" OR ", "end of the query"},
        {"AND status:\"a\"", "Unknown field 'AND'"},
        {"$", "Unexpected character '$' at position 0"},
        {"-", "found the end of the query"},
        {"amount>99999999999999999999999", "too large"},
    };
    json_t *o;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long st = search_as(api_sk, "/v1/payment_intents/search", bad[i][0], NULL, &o);
        if (st != 400)
            fail_msg("%s: %ld %s", bad[i][0], st, json_dumps(o, 0));
        assert_string_equal(jstr(o, "error.type"), "invalid_request_error");
        api_expect_error(o, "parameter_invalid", "query");
        if (strstr(jstr(o, "error.message"), bad[i][1]) == NULL)
            fail_msg("%s: message %s, want %s", bad[i][0], jstr(o, "error.message"), bad[i][1]);
        json_decref(o);
    }
    /* the route is the search, not an intent id: without a query it asks for one */
    assert_int_equal(api_call(&payd, "GET", "/v1/payment_intents/search", NULL, &o), 400);
    api_expect_error(o, "parameter_missing", "query");
    json_decref(o);
    assert_int_equal(api_call(&payd, "GET", "/v1/charges/search", NULL, &o), 400);
    api_expect_error(o, "parameter_missing", "query");
    json_decref(o);
    const char *limits[] = {"limit=0", "limit=101", "limit=x"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(search_as(api_sk, "/v1/payment_intents/search", "amount>0", limits[i], &o), 400);
        assert_string_equal(jstr(o, "error.param"), "limit");
        json_decref(o);
    }
}

static void
bad_page_tokens_name_the_page(void **state)
{
    (void)state;
    json_t *o;
    assert_int_equal(search_as(api_sk, "/v1/payment_intents/search", "amount>0", "limit=1", &o), 200);
    char tok[600];
    snprintf(tok, sizeof(tok), "%s", jstr(o, "next_page"));
    json_decref(o);
    char extra[700];
    /* the token works for its query */
    snprintf(extra, sizeof(extra), "limit=1&page=%s", tok);
    assert_int_equal(search_as(api_sk, "/v1/payment_intents/search", "amount>0", extra, &o), 200);
    json_decref(o);
    /* and nowhere else: another query, another resource, an edited token, not hex */
    char edited[600];
    snprintf(edited, sizeof(edited), "%s", tok);
    edited[20] = edited[20] == '0' ? '1' : '0';
    char e1[700], e2[700];
    snprintf(e1, sizeof(e1), "page=%s", edited);
    snprintf(e2, sizeof(e2), "page=%.20s", tok);
    struct {
        const char *path, *q, *extra;
    } cases[] = {
        {"/v1/payment_intents/search", "amount>1", extra},
        {"/v1/charges/search", "amount>0", extra},
        {"/v1/payment_intents/search", "amount>0", e1},
        {"/v1/payment_intents/search", "amount>0", e2},
        {"/v1/payment_intents/search", "amount>0", "page=zz"},
        {"/v1/payment_intents/search", "amount>0", "page=pi_123"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(search_as(api_sk, cases[i].path, cases[i].q, cases[i].extra, &o), 400);
        api_expect_error(o, "parameter_invalid", "page");
        json_decref(o);
    }
}

static void
expand_works_on_search_results(void **state)
{
    (void)state;
    json_t *o;
    assert_int_equal(
        search_as(api_sk, "/v1/payment_intents/search", "status:'succeeded'", "expand[]=data.latest_charge", &o), 200);
    json_t *d = json_object_get(o, "data");
    assert_int_equal(json_array_size(d), 3);
    assert_string_equal(jstr(json_array_get(d, 0), "latest_charge.object"), "charge");
    assert_int_equal(jint(json_array_get(d, 0), "latest_charge.amount"), 1008);
    json_decref(o);
    char q[200];
    snprintf(q, sizeof(q), "customer:'%s'", cus_a);
    assert_int_equal(search_as(api_sk, "/v1/charges/search", q, "expand[]=data.customer", &o), 200);
    d = json_object_get(o, "data");
    assert_int_equal(json_array_size(d), 1);
    assert_string_equal(jstr(json_array_get(d, 0), "customer.email"), "a@example.com");
    json_decref(o);
    assert_int_equal(search_as(api_sk, "/v1/payment_intents/search", "amount>0", "expand[]=latest_charge", &o), 400);
    api_expect_error(o, "parameter_invalid", "expand");
    json_decref(o);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_field_and_operator),
        cmocka_unit_test(and_or_and_negation),
        cmocka_unit_test(customers_by_email_created_and_metadata),
        cmocka_unit_test(syntax_errors_name_the_query),
        cmocka_unit_test(bad_page_tokens_name_the_page),
        cmocka_unit_test(expand_works_on_search_results),
        cmocka_unit_test(pagination_visits_each_once),
        cmocka_unit_test(other_merchants_and_live_mode_never_returned),
        cmocka_unit_test(scan_bound_answers_what_matched_and_resumes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
