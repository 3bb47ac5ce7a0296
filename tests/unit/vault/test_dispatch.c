/* The dispatcher table and the admin messages: one type per operation, admin only,
 * the audit action is the operation's name, and each type's size bounds are exactly
 * what its encoder can produce and its decoder accepts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vault/msg.h"
#include "vault/server.h"

static const char *const admin_ops[] = {
    "kms.list",           "kms.describe",    "kms.create",          "kms.rotate",
    "kms.set_rotation",   "kms.set_min_decrypt", "kms.schedule_deletion", "kms.cancel_deletion",
    "kms.rewrap",         "secrets.list",    "secrets.history",     "secrets.get",
    "secrets.put",        "secrets.create",  "secrets.rotate",      "audit.verify",
    "backup.key",         "backup.snapshot",
};

/* encodes op with args (JSON) and returns the payload length, failing the test on error */
static size_t
encoded_len(const char *op, const char *args, uint16_t *type)
{
    pd_buf_t p;
    char err[256] = "";
    pd_buf_init(&p, PD_IPC_MAX_PAYLOAD);
    int r = pd_msg_admin_request(op, pd_view_cstr(args), type, &p, err, sizeof(err));
    if (r != 0)
        fail_msg("%s %s: %s", op, args, err);
    size_t n = p.len;
    pd_buf_free(&p);
    return n;
}

static char *
repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void
every_admin_operation_is_its_own_admin_only_row(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(admin_ops) / sizeof(admin_ops[0]); i++) {
        uint16_t type = pd_msg_admin_type(admin_ops[i]);
        assert_int_not_equal(type, 0);
        const pd_vault_dispatch_t *d = pd_vault_dispatch_find(type);
        if (d == NULL)
            fail_msg("%s: no dispatcher row for type %u", admin_ops[i], type);
        assert_string_equal(d->action, admin_ops[i]);
        /* but backup.key, which payd's WAL archive asks for too (a key per segment) */
        assert_int_equal(d->allowed, strcmp(admin_ops[i], "backup.key") == 0 ? PD_PRINCIPAL_ADMIN | PD_PRINCIPAL_API
                                                                             : PD_PRINCIPAL_ADMIN);
        /* only the rotation (one transaction per step) and the snapshot (after the batch's
         * commit) run outside the batch */
        assert_int_equal(d->own_txn, strcmp(admin_ops[i], "secrets.rotate") == 0 ||
                                         strcmp(admin_ops[i], "backup.snapshot") == 0);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(pd_msg_admin_type(admin_ops[j]), type);
    }
    /* the retired ADMIN type and the reply/error types are no rows */
    assert_null(pd_vault_dispatch_find(40));
    assert_null(pd_vault_dispatch_find(PD_MSG_ERROR));
    assert_null(pd_vault_dispatch_find(PD_MSG_KMS_ROTATE | PD_MSG_REPLY));
    assert_int_equal(pd_msg_admin_type("admin"), 0);
    /* no row admits more than a frame carries, none has inverted bounds */
    for (uint32_t t = 0; t <= UINT16_MAX; t++) {
        const pd_vault_dispatch_t *d = pd_vault_dispatch_find((uint16_t)t);
        if (d != NULL) {
            assert_true(d->min_len <= d->max_len);
            assert_true(d->max_len <= PD_IPC_MAX_PAYLOAD);
            assert_non_null(d->handler);
            assert_non_null(d->action);
        }
    }
}

/* the smallest and the largest request each operation can make hit its row's bounds exactly */
static void
size_bounds_are_exact(void **state)
{
    (void)state;
    char *k79 = repeat('k', PD_MSG_KEY_MAX - 1), *n120 = repeat('n', PD_MSG_SECRET_NAME_MAX),
         *s16 = repeat('S', PD_MSG_STAGE_MAX), *v4096 = repeat('v', PD_MSG_SECRET_VALUE_MAX),
         *x63 = repeat('x', PD_MSG_EXCLUDE_MAX);
    char big[8192];
    static const char *const key_ops[] = {"kms.describe", "kms.rotate", "kms.cancel_deletion"};
    static const struct {
        const char *op, *num;
    } key_num_ops[] = {{"kms.set_rotation", "days"},
                       {"kms.set_min_decrypt", "version"},
                       {"kms.schedule_deletion", "days"},
                       {"kms.rewrap", "batch"}};
    struct {
        const char *op;
        char min[256];
        char *max;
    } cases[32];
    size_t n = 0;
    for (size_t i = 0; i < 3; i++) {
        cases[n].op = key_ops[i];
        snprintf(cases[n].min, sizeof(cases[n].min), "{\"key\":\"k\"}");
        cases[n].max = malloc(256);
        snprintf(cases[n].max, 256, "{\"key\":\"%s\"}", k79);
        n++;
    }
    for (size_t i = 0; i < 4; i++) {
        cases[n].op = key_num_ops[i].op;
        snprintf(cases[n].min, sizeof(cases[n].min), "{\"key\":\"k\",\"%s\":1}", key_num_ops[i].num);
        cases[n].max = malloc(256);
        snprintf(cases[n].max, 256, "{\"key\":\"%s\",\"%s\":-9223372036854775807}", k79, key_num_ops[i].num);
        n++;
    }
    cases[n].op = "kms.create";
    snprintf(cases[n].min, sizeof(cases[n].min), "{\"alias\":\"a\"}");
    cases[n].max = malloc(256);
    snprintf(cases[n].max, 256, "{\"alias\":\"%s\",\"rotation_days\":0}", k79);
    n++;
    static const char *const name_ops[] = {"secrets.history", "secrets.rotate"};
    for (size_t i = 0; i < 2; i++) {
        cases[n].op = name_ops[i];
        snprintf(cases[n].min, sizeof(cases[n].min), "{\"name\":\"n\"}");
        cases[n].max = malloc(256);
        snprintf(cases[n].max, 256, "{\"name\":\"%s\"}", n120);
        n++;
    }
    cases[n].op = "secrets.get";
    snprintf(cases[n].min, sizeof(cases[n].min), "{\"name\":\"n\",\"stage\":\"S\"}");
    cases[n].max = malloc(256);
    snprintf(cases[n].max, 256, "{\"name\":\"%s\",\"stage\":\"%s\"}", n120, s16);
    n++;
    cases[n].op = "secrets.put";
    snprintf(cases[n].min, sizeof(cases[n].min), "{\"name\":\"n\",\"value\":\"v\"}");
    snprintf(big, sizeof(big), "{\"name\":\"%s\",\"value\":\"%s\"}", n120, v4096);
    cases[n].max = strdup(big);
    n++;
    cases[n].op = "secrets.create";
    snprintf(cases[n].min, sizeof(cases[n].min), "{\"name\":\"n\"}");
    /* the largest: every field of a handler secret at its maximum */
    char *h16 = repeat('h', PD_MSG_HANDLER_MAX), *u1024 = repeat('u', PD_MSG_URL_MAX), *w63 = repeat('w', PD_MSG_USER_MAX);
    cases[n].max = malloc(2048);
    snprintf(cases[n].max, 2048,
             "{\"name\":\"%s\",\"length\":64,\"rotation_days\":90,\"exclude\":\"%s\",\"handler\":\"%s\","
             "\"url\":\"%s\",\"master_secret\":\"%s\",\"username\":\"%s\",\"grace_s\":5}",
             n120, x63, h16, u1024, n120, w63);
    free(h16);
    free(u1024);
    free(w63);
    n++;
    static const char *const empty_ops[] = {"kms.list", "secrets.list", "audit.verify", "backup.key",
                                            "backup.snapshot"};
    for (size_t i = 0; i < sizeof(empty_ops) / sizeof(empty_ops[0]); i++) {
        cases[n].op = empty_ops[i];
        snprintf(cases[n].min, sizeof(cases[n].min), "{}");
        cases[n].max = strdup("");
        n++;
    }
    assert_int_equal(n, sizeof(admin_ops) / sizeof(admin_ops[0]));
    for (size_t i = 0; i < n; i++) {
        uint16_t t1 = 0, t2 = 0;
        size_t lo = encoded_len(cases[i].op, cases[i].min, &t1), hi = encoded_len(cases[i].op, cases[i].max, &t2);
        assert_int_equal(t1, t2);
        const pd_vault_dispatch_t *d = pd_vault_dispatch_find(t1);
        assert_non_null(d);
        if (lo != d->min_len || hi != d->max_len)
            fail_msg("%s: requests of %zu..%zu bytes, row bounds %u..%u", cases[i].op, lo, hi, d->min_len, d->max_len);
        free(cases[i].max);
    }
    free(k79);
    free(n120);
    free(s16);
    free(v4096);
    free(x63);
}

static void
decoders_refuse_empty_long_and_trailing_fields(void **state)
{
    (void)state;
    char key[PD_MSG_KEY_MAX], name[PD_MSG_SECRET_NAME_MAX + 1], stage[PD_MSG_STAGE_MAX + 1];
    int64_t n;
    pd_view_t v;
    pd_buf_t b;
    pd_buf_init(&b, PD_IPC_MAX_PAYLOAD);

    assert_int_equal(pd_msg_key_num_enc(&b, "alias/cards", -5), 0);
    assert_int_equal(pd_msg_key_num_dec(pd_buf_view(&b), key, &n), 0);
    assert_string_equal(key, "alias/cards");
    assert_int_equal(n, -5);
    /* one byte more than the fields */
    assert_int_equal(pd_buf_put(&b, "x", 1), 0);
    assert_int_not_equal(pd_msg_key_num_dec(pd_buf_view(&b), key, &n), 0);
    /* an empty key */
    pd_buf_reset(&b);
    assert_int_equal(pd_msg_key_enc(&b, ""), 0);
    assert_int_not_equal(pd_msg_key_dec(pd_buf_view(&b), key), 0);
    /* a key of PD_MSG_KEY_MAX bytes does not fit */
    char *k80 = repeat('k', PD_MSG_KEY_MAX);
    pd_buf_reset(&b);
    assert_int_equal(pd_msg_key_enc(&b, k80), 0);
    assert_int_not_equal(pd_msg_key_dec(pd_buf_view(&b), key), 0);
    free(k80);
    /* a secret name of 121 bytes, an empty stage, an empty or oversized value */
    char *n121 = repeat('n', PD_MSG_SECRET_NAME_MAX + 1);
    pd_buf_reset(&b);
    assert_int_equal(pd_msg_secret_enc(&b, n121), 0);
    assert_int_not_equal(pd_msg_secret_dec(pd_buf_view(&b), name), 0);
    free(n121);
    pd_buf_reset(&b);
    assert_int_equal(pd_msg_secret_stage_enc(&b, "db/app", ""), 0);
    assert_int_not_equal(pd_msg_secret_stage_dec(pd_buf_view(&b), name, stage), 0);
    pd_buf_reset(&b);
    assert_int_equal(pd_msg_secret_put_enc(&b, "db/app", PD_VIEW_NULL), 0);
    assert_int_not_equal(pd_msg_secret_put_dec(pd_buf_view(&b), name, &v), 0);
    char *v4097 = repeat('v', PD_MSG_SECRET_VALUE_MAX + 1);
    pd_buf_reset(&b);
    assert_int_equal(pd_msg_secret_put_enc(&b, "db/app", pd_view_cstr(v4097)), 0);
    assert_int_not_equal(pd_msg_secret_put_dec(pd_buf_view(&b), name, &v), 0);
    free(v4097);
    pd_buf_free(&b);
}

static void
the_client_refuses_what_it_cannot_encode(void **state)
{
    (void)state;
    static const struct {
        const char *op, *args, *says;
    } cases[] = {
        {"kms.frobnicate", "{}", "unknown admin operation"},
        {"admin", "{}", "unknown admin operation"},
        {"kms.rotate", "{}", "key is missing"},
        {"kms.rotate", "{\"key\":5}", "key must be a string"},
        {"kms.rotate", "{\"key\":\"alias/cards\",\"days\":3}", "days is not one"},
        {"kms.schedule_deletion", "{\"key\":\"alias/cards\"}", "days is missing"},
        {"kms.schedule_deletion", "{\"key\":\"alias/cards\",\"days\":\"7\"}", "days must be an integer"},
        {"secrets.get", "{\"name\":\"\"}", "name must be 1 to 120"},
        {"secrets.put", "{\"name\":\"db/app\"}", "value is missing"},
        {"kms.list", "[1]", "must be a JSON object"},
        {"kms.list", "{", "must be a JSON object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pd_buf_t p;
        char err[256] = "";
        uint16_t type = 0;
        pd_buf_init(&p, PD_IPC_MAX_PAYLOAD);
        int r = pd_msg_admin_request(cases[i].op, pd_view_cstr(cases[i].args), &type, &p, err, sizeof(err));
        assert_int_equal(r, PD_ERR_INVALID);
        if (strstr(err, cases[i].says) == NULL)
            fail_msg("%s %s: \"%s\" does not say \"%s\"", cases[i].op, cases[i].args, err, cases[i].says);
        pd_buf_free(&p);
    }
    /* defaults: secrets.get reads CURRENT, kms.rewrap batches 1000 */
    pd_buf_t p;
    char err[256], name[PD_MSG_SECRET_NAME_MAX + 1], stage[PD_MSG_STAGE_MAX + 1], key[PD_MSG_KEY_MAX];
    uint16_t type;
    int64_t n;
    pd_buf_init(&p, PD_IPC_MAX_PAYLOAD);
    assert_int_equal(pd_msg_admin_request("secrets.get", PD_VIEW_LIT("{\"name\":\"db/app\"}"), &type, &p, err, sizeof(err)),
                     0);
    assert_int_equal(type, PD_MSG_SECRETS_GET_STAGE);
    assert_int_equal(pd_msg_secret_stage_dec(pd_buf_view(&p), name, stage), 0);
    assert_string_equal(stage, "CURRENT");
    pd_buf_reset(&p);
    assert_int_equal(pd_msg_admin_request("kms.rewrap", PD_VIEW_LIT("{\"key\":\"alias/cards\"}"), &type, &p, err, sizeof(err)),
                     0);
    assert_int_equal(pd_msg_key_num_dec(pd_buf_view(&p), key, &n), 0);
    assert_int_equal(n, 1000);
    pd_buf_reset(&p);
    /* no arguments at all is {} */
    assert_int_equal(pd_msg_admin_request("audit.verify", PD_VIEW_NULL, &type, &p, err, sizeof(err)), 0);
    assert_int_equal(type, PD_MSG_AUDIT_VERIFY);
    assert_int_equal(p.len, 0);
    pd_buf_free(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_admin_operation_is_its_own_admin_only_row),
        cmocka_unit_test(size_bounds_are_exact),
        cmocka_unit_test(decoders_refuse_empty_long_and_trailing_fields),
        cmocka_unit_test(the_client_refuses_what_it_cannot_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
