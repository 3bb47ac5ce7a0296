/* payctl against the vault that payd --dev started. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "harness.h"

static pd_h_payd_t payd;

static int
setup(void **state)
{
    (void)state;
    return pd_h_start(&payd, NULL);
}

static int
teardown(void **state)
{
    (void)state;
    int rc = pd_h_stop(&payd, SIGTERM, 15000);
    pd_h_cleanup(&payd);
    return rc == 0 ? 0 : -1;
}

/* runs payctl with the dev data dir; returns the exit code, output in *out */
static int
payctl(char **out, const char *a1, const char *a2, const char *a3, const char *a4, const char *a5)
{
    const char *a[] = {a1, a2, a3, a4, a5, NULL};
    return pd_h_payctl(&payd, a, out); /* stops at the first NULL */
}

static void
kms_list_shows_the_standard_keys(void **state)
{
    (void)state;
    char *out;
    assert_int_equal(payctl(&out, "--json", "kms", "list", NULL, NULL), 0);
    static const char *aliases[] = {"alias/cards", "alias/secrets", "alias/events", "alias/files",
                                    "alias/cache", "alias/webhooks", "alias/fingerprint"};
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (strstr(out, aliases[i]) == NULL)
            fail_msg("%s missing from: %s", aliases[i], out);
    free(out);
}

/* merchant list and show: the dev merchant, its keys redacted; an unknown id is refused */
static void
merchants_list_and_show(void **state)
{
    (void)state;
    char *out, id[64] = "";
    assert_int_equal(payctl(&out, "--json", "merchant", "list", NULL, NULL), 0);
    const char *p = strstr(out, "\"id\":\"");
    assert_non_null(p);
    snprintf(id, sizeof(id), "%.*s", (int)strcspn(p + 6, "\""), p + 6);
    assert_true(strncmp(id, "acct_", 5) == 0 || strlen(id) > 8);
    free(out);
    assert_int_equal(payctl(&out, "--json", "merchant", "show", id, NULL), 0);
    assert_non_null(strstr(out, "\"keys\":["));
    assert_non_null(strstr(out, "\"redacted\""));
    free(out);
    /* never a whole key: the dev secret key is not in the listing */
    char path[400], creds[2048] = "", sk[128] = "";
    snprintf(path, sizeof(path), "%s/credentials.json", payd.dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    creds[fread(creds, 1, sizeof(creds) - 1, f)] = '\0';
    fclose(f);
    const char *k = strstr(creds, "sk_test_");
    assert_non_null(k);
    snprintf(sk, sizeof(sk), "%.*s", (int)strcspn(k, "\""), k);
    assert_int_equal(payctl(&out, "--json", "merchant", "show", id, NULL), 0);
    assert_null(strstr(out, sk));
    free(out);
    assert_int_equal(payctl(&out, "merchant", "show", "acct_nope", NULL, NULL), 1);
    assert_non_null(strstr(out, "no such merchant"));
    free(out);
}

static void
rotate_and_rewrap_print_progress_and_a_count(void **state)
{
    (void)state;
    char *out;
    assert_int_equal(payctl(&out, "kms", "rotate", "alias/cards", NULL, NULL), 0);
    assert_non_null(strstr(out, "\"current_version\": 2"));
    free(out);
    assert_int_equal(payctl(&out, "kms", "rewrap", "alias/cards", "--batch", "10"), 0);
    assert_non_null(strstr(out, "rewrap alias/cards complete"));
    free(out);
    assert_int_equal(payctl(&out, "kms", "schedule-deletion", "alias/cache", "2", NULL), 1);
    assert_non_null(strstr(out, "7 to 30 days"));
    free(out);
}

static void
secrets_and_audit(void **state)
{
    (void)state;
    char *out;
    assert_int_equal(payctl(&out, "secrets", "create", "demo/db", "--rotation-days", "30"), 0);
    free(out);
    assert_int_equal(payctl(&out, "secrets", "rotate", "demo/db", NULL, NULL), 0);
    assert_non_null(strstr(out, "PREVIOUS"));
    free(out);
    assert_int_equal(payctl(&out, "secrets", "history", "demo/db", NULL, NULL), 0);
    assert_non_null(strstr(out, "CURRENT"));
    free(out);
    /* never to a pipe without --reveal */
    assert_int_equal(payctl(&out, "secrets", "get", "demo/db", NULL, NULL), 1);
    assert_non_null(strstr(out, "--reveal"));
    free(out);
    assert_int_equal(payctl(&out, "secrets", "get", "demo/db", "--reveal", NULL), 0);
    assert_true(strlen(out) >= 32);
    free(out);
    assert_int_equal(payctl(&out, "audit", "verify", NULL, NULL, NULL), 0);
    assert_non_null(strstr(out, "audit log intact"));
    free(out);
    assert_int_equal(payctl(&out, "kms", "frobnicate", NULL, NULL, NULL), 2);
    free(out);
}

/* runs payctl --data-dir DIR ARGS... (NULL-terminated) */
static int
payctl_args(char **out, const char *const *args)
{
    return pd_h_payctl(&payd, args, out);
}

/* the merchant's keys as payctl lists them */
static json_t *
list_keys(const char *merchant)
{
    char *out;
    const char *const a[] = {"--json", "keys", "list", "--merchant", merchant, NULL};
    assert_int_equal(payctl_args(&out, a), 0);
    json_error_t e;
    json_t *keys = json_loads(out, 0, &e);
    free(out);
    assert_true(json_is_array(keys));
    return keys;
}

/* payctl reads payd's own configuration file: its sections ([server], [store], ...)
 * as payd does, other sections left to payd, and every bad value refused by name */
static void
payctl_reads_payds_config_file(void **state)
{
    (void)state;
    char cfg[400], text[1200], *out;
    snprintf(cfg, sizeof(cfg), "%s/payd.ini", payd.dir);
    snprintf(text, sizeof(text),
             "[server]\ndata_dir = %s\n\n[api]\nlisten = 127.0.0.1:8443\n\n[store]\nbackend = sqlite\n", payd.dir);
    assert_int_equal(pd_h_write_file(cfg, text), 0);
    const char *ok[] = {PAYCTL_BIN, "--config", cfg, "--json", "merchant", "list", NULL};
    assert_int_equal(pd_h_run(ok, &out), 0);
    assert_non_null(strstr(out, "\"id\":\""));
    free(out);
    /* --set after the file, as for payd */
    const char *verify[] = {PAYCTL_BIN, "--config", cfg, "--set", "store.max_batch=8", "ledger", "verify", NULL};
    assert_int_equal(pd_h_run(verify, &out), 0);
    free(out);
    static const struct {
        const char *set, *why;
    } bad[] = {
        {"store.backend=mysql", "--set: [store] backend"},
        {"store.bakend=sqlite", "unknown key \"bakend\" in [store]"},
        {"nosuch.key=1", "unknown section [nosuch]"},
        {"store.writers=0", "[store] writers"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *a[] = {PAYCTL_BIN, "--config", cfg, "--set", bad[i].set, "ledger", "verify", NULL};
        int rc = pd_h_run(a, &out);
        if (rc != 2 || strstr(out, bad[i].why) == NULL)
            fail_msg("--set %s: exit %d, %s (wanted exit 2 and \"%s\")", bad[i].set, rc, out, bad[i].why);
        free(out);
    }
    /* a bad value in the file names its line */
    snprintf(text, sizeof(text), "[server]\ndata_dir = %s\n[store]\nbackend = oracle\n", payd.dir);
    assert_int_equal(pd_h_write_file(cfg, text), 0);
    const char *badfile[] = {PAYCTL_BIN, "--config", cfg, "ledger", "verify", NULL};
    int rc = pd_h_run(badfile, &out);
    if (rc != 2 || strstr(out, "payd.ini:4") == NULL || strstr(out, "oracle") == NULL)
        fail_msg("bad file: exit %d, %s", rc, out);
    free(out);
    unlink(cfg);
}

static void
keys_roll_takes_a_whole_number_of_seconds_only(void **state)
{
    (void)state;
    char *out;
    json_error_t e;
    const char *const mc[] = {"--json", "merchant", "create", "--name", "Roll Test", NULL};
    assert_int_equal(payctl_args(&out, mc), 0);
    json_t *m = json_loads(out, 0, &e);
    free(out);
    assert_non_null(m);
    char merchant[64];
    snprintf(merchant, sizeof(merchant), "%s", json_string_value(json_object_get(m, "merchant_id")));
    json_decref(m);
    const char *const kc[] = {"--json", "keys", "create", "--merchant", merchant, "--type", "secret", NULL};
    assert_int_equal(payctl_args(&out, kc), 0);
    json_t *k = json_loads(out, 0, &e);
    free(out);
    assert_non_null(k);
    char id[64];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(k, "id")));
    json_decref(k);
    json_t *before = list_keys(merchant);
    size_t nkeys = json_array_size(before);
    json_decref(before);

    /* "10days" was read as 10 seconds; now it, and every other non-number or value out
     * of range, is refused with the value named, and nothing is rolled */
    static const char *const bad[] = {"10days", "-5", "604801", "", "1e3", " 60", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *const roll[] = {"keys", "roll", id, "--expires-in", bad[i], NULL};
        int rc = payctl_args(&out, roll);
        char want[96];
        snprintf(want, sizeof(want), "not \"%s\"", bad[i]);
        if (rc != 1 || strstr(out, "--expires-in takes a whole number of seconds from 0 to 604800") == NULL ||
            strstr(out, want) == NULL)
            fail_msg("--expires-in '%s': exit %d, %s", bad[i], rc, out);
        free(out);
    }
    const char *const novalue[] = {"keys", "roll", id, "--expires-in", NULL};
    assert_int_equal(payctl_args(&out, novalue), 1);
    assert_non_null(strstr(out, "--expires-in needs a number of seconds"));
    free(out);
    json_t *after = list_keys(merchant);
    assert_int_equal(json_array_size(after), nkeys);
    for (size_t i = 0; i < json_array_size(after); i++)
        assert_null(json_object_get(json_array_get(after, i), "expires_at"));
    json_decref(after);

    /* a whole number rolls the key: a new one, the old one expiring in that many seconds */
    const char *const good[] = {"--json", "keys", "roll", id, "--expires-in", "3600", NULL};
    assert_int_equal(payctl_args(&out, good), 0);
    free(out);
    after = list_keys(merchant);
    assert_int_equal(json_array_size(after), nkeys + 1);
    json_int_t expires = 0;
    for (size_t i = 0; i < json_array_size(after); i++) {
        json_t *o = json_array_get(after, i);
        if (strcmp(json_string_value(json_object_get(o, "id")), id) == 0)
            expires = json_integer_value(json_object_get(o, "expires_at"));
    }
    json_decref(after);
    json_int_t now = (json_int_t)time(NULL);
    assert_true(expires >= now + 3500 && expires <= now + 3600);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kms_list_shows_the_standard_keys),
        cmocka_unit_test(merchants_list_and_show),
        cmocka_unit_test(rotate_and_rewrap_print_progress_and_a_count),
        cmocka_unit_test(secrets_and_audit),
        cmocka_unit_test(keys_roll_takes_a_whole_number_of_seconds_only),
        cmocka_unit_test(payctl_reads_payds_config_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
