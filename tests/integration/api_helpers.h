/* Helpers for payments API integration tests: requests with the dev merchant's key, JSON access. */
#ifndef PAYD_TEST_API_HELPERS_H
#define PAYD_TEST_API_HELPERS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "harness.h"

static char api_sk[128], api_pk[128], api_merchant[64];

/* reads DIR/credentials.json written by payd --dev */
static inline void
api_load_credentials(const pd_h_payd_t *p)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/credentials.json", p->dir);
    json_error_t e;
    json_t *o = json_load_file(path, 0, &e);
    if (o == NULL)
        abort();
    snprintf(api_sk, sizeof(api_sk), "%s", json_string_value(json_object_get(o, "secret_key")));
    snprintf(api_pk, sizeof(api_pk), "%s", json_string_value(json_object_get(o, "publishable_key")));
    snprintf(api_merchant, sizeof(api_merchant), "%s", json_string_value(json_object_get(o, "merchant_id")));
    json_decref(o);
}

/* method path with a form (or JSON when the body starts with '{') body, as key `key`
 * (NULL: none); *out gets the parsed JSON (caller json_decref); returns the status */
static inline long
api_call_as(const pd_h_payd_t *p, const char *key, const char *method, const char *path, const char *body,
            const char *idem, json_t **out)
{
    char auth[512], idh[300];
    const char *hdrs[4];
    int n = 0;
    if (key != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
        hdrs[n++] = auth;
    }
    if (body != NULL)
        hdrs[n++] = body[0] == '{' ? "Content-Type: application/json" : "Content-Type: application/x-www-form-urlencoded";
    if (idem != NULL) {
        snprintf(idh, sizeof(idh), "Idempotency-Key: %s", idem);
        hdrs[n++] = idh;
    }
    hdrs[n] = NULL;
    pd_h_req_t rq = {.headers = hdrs, .body = body};
    pd_h_resp_t r;
    long status = pd_h_request(p, method, path, &rq, &r) == 0 ? r.status : -1;
    if (out != NULL) {
        json_error_t e;
        *out = json_loads(r.body, 0, &e);
        if (*out == NULL)
            *out = json_object();
    }
    pd_h_resp_free(&r);
    return status;
}

/* GET /v1/balance as key on client c (its kept-alive connection): the status, -1 on a
 * transport error. For the key checks (revocation, caching). */
static inline long
api_balance_as(pd_h_client_t *c, const char *key)
{
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    const char *hdrs[] = {auth, NULL};
    pd_h_req_t rq = {.headers = hdrs};
    pd_h_resp_t r;
    long st = pd_h_do(c, "GET", "/v1/balance", &rq, &r) == 0 ? r.status : -1;
    pd_h_resp_free(&r);
    return st;
}

static inline long
api_call(const pd_h_payd_t *p, const char *method, const char *path, const char *body, json_t **out)
{
    return api_call_as(p, api_sk, method, path, body, NULL, out);
}

/* tokenizes a test card (12/2031, CVC 123) as the dev merchant; its pm_ id into out.
 * Returns the HTTP status. */
static inline long
api_card_pm(const pd_h_payd_t *p, const char *number, char *out, size_t cap)
{
    char body[200];
    json_t *o;
    snprintf(body, sizeof(body), "type=card&card[number]=%s&card[exp_month]=12&card[exp_year]=2031&card[cvc]=123",
             number);
    long status = api_call(p, "POST", "/v1/payment_methods", body, &o);
    json_t *id = json_object_get(o, "id");
    snprintf(out, cap, "%s", json_is_string(id) ? json_string_value(id) : "");
    json_decref(o);
    return status;
}

/* confirms a new payment of amount (minor units) in currency with pm; returns the
 * status, *o the body (caller json_decref) */
static inline long
api_charge(const pd_h_payd_t *p, const char *pm, long amount, const char *currency, json_t **o)
{
    char body[300];
    snprintf(body, sizeof(body), "amount=%ld&currency=%s&confirm=true&payment_method=%s", amount, currency, pm);
    return api_call(p, "POST", "/v1/payment_intents", body, o);
}

/* true when `payctl ledger verify --with-processor` on p's data directory exits 0:
 * every invariant of the books holds and they agree with the processor's own record
 * (the simulator's database), the second source of truth */
static inline bool
api_ledger_verifies(const pd_h_payd_t *p)
{
    const char *argv[] = {PAYCTL_BIN, "--data-dir", p->dir, "ledger", "verify", "--with-processor", NULL};
    char *out = NULL;
    bool ok = pd_h_run(argv, &out) == 0 && out != NULL && strstr(out, "every invariant holds") != NULL &&
              strstr(out, "processor agrees") != NULL;
    if (!ok)
        fprintf(stderr, "payctl ledger verify --with-processor:\n%s\n", out != NULL ? out : "(no output)");
    free(out);
    return ok;
}

/* the first column of the first row of query on DIR/db (sqlite3 -readonly); -1 on error */
static inline long
api_sql_long(const pd_h_payd_t *p, const char *db, const char *query)
{
    char path[400], url[400];
    snprintf(path, sizeof(path), "%s/%s", p->dir, db);
    const char *argv[] = {"/usr/bin/sqlite3", "-readonly", path, query, NULL};
    /* on PostgreSQL the payments store is the data dir's database there */
    const char *pg_argv[] = {"/usr/lib/postgresql/15/bin/psql", "-XAtq", "-d", url + strlen("store.url="), "-c", query,
                             NULL};
    bool pg = strcmp(db, "payd.db") == 0 && pd_h_store_args(p->dir, NULL, url, sizeof(url));
    char *out = NULL;
    long n = -1;
    if (pd_h_run(pg ? pg_argv : argv, &out) == 0 && out != NULL)
        n = strtol(out, NULL, 10);
    free(out);
    return n;
}

/* the value of one series of GET /metrics ("name" with no labels); -1 when absent */
static inline double
api_metric(const pd_h_payd_t *p, const char *name)
{
    pd_h_req_t rq = {.admin = true};
    pd_h_resp_t r;
    double v = -1;
    size_t n = strlen(name);
    if (pd_h_request(p, "GET", "/metrics", &rq, &r) != 0)
        return v;
    for (const char *q = r.body; q != NULL && (q = strstr(q, name)) != NULL; q += n)
        if ((q == r.body || q[-1] == '\n') && q[n] == ' ') {
            v = strtod(q + n + 1, NULL);
            break;
        }
    pd_h_resp_free(&r);
    return v;
}

static inline const char *
jstr(json_t *o, const char *path)
{
    /* "a.b.c" */
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = o;
    char *save = NULL;
    for (char *k = strtok_r(buf, ".", &save); k != NULL && cur != NULL; k = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, k);
    return json_is_string(cur) ? json_string_value(cur) : NULL;
}

static inline long long
jint(json_t *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = o;
    char *save = NULL;
    for (char *k = strtok_r(buf, ".", &save); k != NULL && cur != NULL; k = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, k);
    return json_is_integer(cur) ? (long long)json_integer_value(cur) : -1;
}

/* fails the test unless j is a Stripe error with this code (and this param, unless NULL) */
static inline void
api_expect_error(json_t *j, const char *code, const char *param)
{
    const char *got = jstr(j, "error.code"), *gp = jstr(j, "error.param");
    if (got == NULL || strcmp(got, code) != 0)
        fail_msg("expected error code %s, got %s", code, json_dumps(j, 0));
    if (param != NULL && (gp == NULL || strcmp(gp, param) != 0))
        fail_msg("expected param %s, got %s", param, json_dumps(j, 0));
}

/* available + pending of GET /v1/balance in currency (the balance a report or a dispute moves) */
static inline long long
api_balance_total(const pd_h_payd_t *p, const char *currency)
{
    json_t *j;
    long long t = 0;
    if (api_call(p, "GET", "/v1/balance", NULL, &j) != 200)
        fail_msg("GET /v1/balance failed: %s", json_dumps(j, 0));
    const char *parts[] = {"available", "pending"};
    for (int k = 0; k < 2; k++) {
        json_t *a = json_object_get(j, parts[k]);
        for (size_t i = 0; i < json_array_size(a); i++)
            if (strcmp(jstr(json_array_get(a, i), "currency"), currency) == 0)
                t += jint(json_array_get(a, i), "amount");
    }
    json_decref(j);
    return t;
}

#endif
