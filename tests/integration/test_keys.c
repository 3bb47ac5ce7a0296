/*
 * API key life cycle against payd --dev with two loop threads:
 * - a revoked key is refused on the very next request on every loop thread (each
 *   thread caches keys; the store's key epoch tells them to drop the entry);
 * - `payctl keys roll` of an expired or revoked key is refused and the key stays dead;
 * - restricted-key scopes are checked at creation (payctl and the library call).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api_helpers.h"
#include "harness.h"
#include "payd/api.h"
#include "payd/time.h"

static pd_h_payd_t payd;

static int
setup(void **state)
{
    (void)state;
    /* the revocation test makes many refused requests from one address on purpose */
    const char *env[] = {"PAYD_API_THREADS=2", "PAYD_PAYMENTS_AUTH_FAIL_LIMIT=1000000", NULL};
    pd_h_opts_t o = {.env = env};
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

/* payctl --json ARGS...; exit code, *out its output (malloc'd) */
static int
payctl(char **out, const char *const *args)
{
    const char *argv[20] = {"--json"};
    int n = 1;
    for (int i = 0; args[i] != NULL && n < 19; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return pd_h_payctl(&payd, argv, out);
}

/* creates a key; its text and id */
static void
new_key(const char *type, const char *scopes, char *key, char *id)
{
    const char *a[] = {"keys", "create", "--merchant", api_merchant, "--type", type, scopes ? "--scopes" : NULL,
                       scopes, NULL};
    char *out = NULL;
    assert_int_equal(payctl(&out, a), 0);
    json_error_t e;
    json_t *o = json_loads(strchr(out, '{'), JSON_DISABLE_EOF_CHECK, &e);
    assert_non_null(o);
    snprintf(key, 128, "%s", jstr(o, "key"));
    snprintf(id, 64, "%s", jstr(o, "id"));
    json_decref(o);
    free(out);
}

#define CONNS 16


/* Each kept-alive connection stays on the loop thread that accepted it; 16 of them
 * land on both of the two threads (SO_REUSEPORT hashes each new connection). Every
 * one uses the key first, so every thread has it cached, then it is revoked, and
 * every connection's next request must be refused. */
static void
revocation_is_immediate_on_every_thread(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        char key[128], id[64];
        new_key("secret", NULL, key, id);
        pd_h_client_t *c[CONNS];
        for (int i = 0; i < CONNS; i++) {
            c[i] = pd_h_client_new(&payd);
            assert_int_equal(api_balance_as(c[i], key), 200);
            assert_int_equal(api_balance_as(c[i], key), 200); /* cached now */
        }
        const char *a[] = {"keys", "revoke", id, NULL};
        char *out = NULL;
        uint64_t t0 = pd_mono_ms();
        assert_int_equal(payctl(&out, a), 0);
        free(out);
        uint64_t took = pd_mono_ms() - t0;
        for (int i = 0; i < CONNS; i++) {
            long st = api_balance_as(c[i], key);
            if (st != 401)
                fail_msg("round %d: connection %d: the revoked key got %ld, %llu ms after the revocation began", round,
                         i, st, (unsigned long long)(pd_mono_ms() - t0));
        }
        print_message("round %d: payctl keys revoke took %llu ms; every connection refused right after\n", round,
                      (unsigned long long)took);
        for (int i = 0; i < CONNS; i++)
            pd_h_client_free(c[i]);
    }
}

/* an expired key cannot be rolled back to life, nor can a revoked one */
static void
roll_keeps_dead_keys_dead(void **state)
{
    (void)state;
    char key[128], id[64], *out = NULL;
    json_t *j;
    new_key("secret", NULL, key, id);
    /* roll with no grace: the old key expires now */
    const char *r1[] = {"keys", "roll", id, "--expires-in", "0", NULL};
    assert_int_equal(payctl(&out, r1), 0);
    free(out);
    assert_int_equal(api_call_as(&payd, key, "GET", "/v1/balance", NULL, NULL, &j), 401);
    assert_non_null(strstr(jstr(j, "error.message"), "Expired API Key"));
    json_decref(j);
    /* rolling the expired key again, with a grace period, is refused: it used to set a
     * new expiry an hour ahead, and the dead key worked again */
    const char *r2[] = {"keys", "roll", id, "--expires-in", "3600", NULL};
    assert_int_not_equal(payctl(&out, r2), 0);
    if (strstr(out, "revoked or expired") == NULL)
        fail_msg("%s", out);
    free(out);
    assert_int_equal(api_call_as(&payd, key, "GET", "/v1/balance", NULL, NULL, &j), 401);
    json_decref(j);
    /* a revoked key likewise */
    char key2[128], id2[64];
    new_key("secret", NULL, key2, id2);
    const char *rv[] = {"keys", "revoke", id2, NULL};
    assert_int_equal(payctl(&out, rv), 0);
    free(out);
    const char *r3[] = {"keys", "roll", id2, NULL};
    assert_int_not_equal(payctl(&out, r3), 0);
    assert_non_null(strstr(out, "revoked or expired"));
    free(out);
    assert_int_equal(api_call_as(&payd, key2, "GET", "/v1/balance", NULL, NULL, &j), 401);
    json_decref(j);
    /* a live key in its grace period rolls again, but its expiry never moves later */
    char key3[128], id3[64];
    new_key("secret", NULL, key3, id3);
    const char *r4[] = {"keys", "roll", id3, "--expires-in", "100", NULL};
    assert_int_equal(payctl(&out, r4), 0);
    free(out);
    const char *r5[] = {"keys", "roll", id3, "--expires-in", "3600", NULL};
    assert_int_equal(payctl(&out, r5), 0);
    free(out);
    char q[200];
    snprintf(q, sizeof(q), "SELECT expires_at - created FROM api_keys WHERE id = '%s'", id3);
    long left = api_sql_long(&payd, "payd.db", q);
    assert_true(left >= 99 && left <= 102);
    assert_int_equal(api_call_as(&payd, key3, "GET", "/v1/balance", NULL, NULL, &j), 200);
    json_decref(j);
    /* an unknown key */
    const char *r6[] = {"keys", "roll", "key_nonexistent", NULL};
    assert_int_not_equal(payctl(&out, r6), 0);
    assert_non_null(strstr(out, "no such key"));
    free(out);
}

/* scopes name a resource of the API and read or write, nothing else */
static void
restricted_key_scopes_are_validated(void **state)
{
    (void)state;
    static const struct {
        const char *scopes, *says;
    } bad[] = {
        {"payment_intents:write ", "unknown scope level"},
        {"refunds:readx", "unknown scope level"},
        {"x", "unknown scope resource"},
        {" payment_intents:write", "unknown scope resource"},
        {"payment_intent:write", "unknown scope resource"},
        {"refunds:read,,charges:read", "unknown scope resource"},
        {"refunds:read,", "unknown scope resource"},
        {"refunds:", "unknown scope level"},
        {"refunds:read,refunds:write", "given twice"},
        {"", "needs scopes"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *a[] = {"keys", "create", "--merchant", api_merchant, "--type", "restricted", "--scopes",
                           bad[i].scopes, NULL};
        char *out = NULL;
        int rc = payctl(&out, a);
        if (rc == 0 || strstr(out, bad[i].says) == NULL)
            fail_msg("\"%s\": exit %d: %s", bad[i].scopes, rc, out);
        /* the message lists what is accepted */
        if (strstr(bad[i].says, "resource") != NULL &&
            (strstr(out, "payment_intents") == NULL || strstr(out, "refunds") == NULL ||
             strstr(out, "webhook_endpoints") == NULL))
            fail_msg("\"%s\": no list of resources: %s", bad[i].scopes, out);
        if (strstr(bad[i].says, "level") != NULL && strstr(out, "read and write") == NULL)
            fail_msg("\"%s\": no list of levels: %s", bad[i].scopes, out);
        free(out);
    }
    /* nothing was stored */
    char q[200];
    snprintf(q, sizeof(q), "SELECT COUNT(*) FROM api_keys WHERE merchant_id = '%s' AND kind = 'restricted'",
             api_merchant);
    long before = api_sql_long(&payd, "payd.db", q);
    /* scopes on a secret key are refused too */
    const char *sa[] = {"keys", "create", "--merchant", api_merchant, "--type", "secret", "--scopes", "refunds:read",
                        NULL};
    char *out = NULL;
    assert_int_not_equal(payctl(&out, sa), 0);
    free(out);
    /* a valid set: it grants what it says */
    char key[128], id[64];
    new_key("restricted", "refunds:read,payment_intents:write", key, id);
    assert_int_equal(api_sql_long(&payd, "payd.db", q), before + 1);
    json_t *j;
    assert_int_equal(api_call_as(&payd, key, "GET", "/v1/refunds", NULL, NULL, &j), 200);
    json_decref(j);
    assert_int_equal(api_call_as(&payd, key, "POST", "/v1/payment_intents", "amount=100&currency=usd", NULL, &j), 200);
    json_decref(j);
    assert_int_equal(api_call_as(&payd, key, "GET", "/v1/charges", NULL, NULL, &j), 403);
    json_decref(j);

    /* the library call refuses the same, before anything is stored (no store needed) */
    char err[600], k[80], kid[PD_ID_MAX];
    uint8_t pepper[32] = {1};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pd_api_scopes_check(bad[i].scopes, err, sizeof(err)), PD_ERR_INVALID);
        assert_int_equal(pd_api_create_key(NULL, pepper, sizeof(pepper), api_merchant, "restricted", false,
                                           bad[i].scopes, 0, k, sizeof(k), kid),
                         PD_ERR_INVALID);
    }
    assert_int_equal(pd_api_create_key(NULL, pepper, sizeof(pepper), api_merchant, "restricted", false, NULL, 0, k,
                                       sizeof(k), kid),
                     PD_ERR_INVALID);
    assert_int_equal(pd_api_scopes_check("payment_methods:write,tokens:write,balance:read,events:read", err, sizeof(err)),
                     0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(revocation_is_immediate_on_every_thread),
        cmocka_unit_test(roll_keeps_dead_keys_dead),
        cmocka_unit_test(restricted_key_scopes_are_validated),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
