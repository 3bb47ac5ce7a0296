/* The vault's operations on a real vault.db (no IPC): cards, KMS, secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "payd/time.h"
#include "vault/internal.h"

static char dir[64], db_path[128];
static int64_t fake_now;
static int64_t now_fn(void) { return fake_now; }
static const uint8_t root[PD_KEY_LEN] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 8, 7, 6, 5, 4,
                                         3, 2, 1, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};

static pd_vault_state_t *
open_vault(void)
{
    pd_vault_state_t *v;
    assert_int_equal(pd_vault_state_open(&v, db_path, root), 0);
    v->now = now_fn;
    return v;
}

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-vault-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(db_path, sizeof(db_path), "%s/vault.db", dir);
    fake_now = pd_unix_now();
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return getenv("PAYD_TEST_KEEP") || system(cmd) == 0 ? 0 : -1;
}

/* commits what a test did (the server wraps requests in transactions; tests do it by hand) */
static void
in_txn(pd_vault_state_t *v, int (*fn)(pd_vault_state_t *, void *), void *arg, int want)
{
    assert_int_equal(pd_db_begin(v->db), 0);
    int r = fn(v, arg);
    assert_int_equal(r, want);
    assert_int_equal(r == 0 ? pd_db_commit(v->db) : pd_db_rollback(v->db), 0);
}

static void
luhn_and_brands(void **state)
{
    (void)state;
    static const struct {
        const char *pan, *brand;
    } cases[] = {{"4242424242424242", "visa"},        {"5555555555554444", "mastercard"},
                 {"2223003122003222", "mastercard"},  {"378282246310005", "amex"},
                 {"6011111111111117", "discover"},    {"3566002020360505", "jcb"},
                 {"3056930009020004", "diners"},      {"36227206271667", "diners"},
                 {"6200000000000005", "unionpay"},    {"6759649826438453", "maestro"},
                 {"4000056655665556", "visa"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].pan);
        assert_true(pd_card_luhn(cases[i].pan, n));
        if (strcmp(pd_card_brand(cases[i].pan, n), cases[i].brand) != 0)
            fail_msg("%s: %s", cases[i].pan, pd_card_brand(cases[i].pan, n));
    }
    assert_false(pd_card_luhn("4242424242424241", 16));
    assert_false(pd_card_luhn("42424242424", 11));
    assert_false(pd_card_luhn("424242424242424242424", 21));
    assert_false(pd_card_luhn("4242x24242424242", 16));
    assert_string_equal(pd_card_funding("4000056655665556", 16), "debit");
}

typedef struct {
    pd_vault_card_in_t in;
    pd_vault_card_t out;
} tok_t;

static int
do_tokenize(pd_vault_state_t *v, void *arg)
{
    tok_t *t = arg;
    return pd_cards_tokenize(v, &t->in, &t->out);
}

static tok_t
card(const char *merchant, const char *pan, const char *cvc)
{
    tok_t t;
    memset(&t, 0, sizeof(t));
    snprintf(t.in.merchant_id, sizeof(t.in.merchant_id), "%s", merchant);
    snprintf(t.in.pan, sizeof(t.in.pan), "%s", pan);
    snprintf(t.in.cvc, sizeof(t.in.cvc), "%s", cvc);
    t.in.exp_month = 12;
    t.in.exp_year = 2034;
    return t;
}

static void
tokenize_detokenize_and_cvc_is_single_use(void **state)
{
    (void)state;
    pd_vault_state_t *v = open_vault();
    tok_t t = card("acct_1", "4242424242424242", "123");
    in_txn(v, do_tokenize, &t, 0);
    assert_memory_equal(t.out.token, "card_", 5);
    assert_string_equal(t.out.brand, "visa");
    assert_string_equal(t.out.last4, "4242");
    assert_string_equal(t.out.bin, "42424242");
    assert_true(t.out.cvc_held);
    pd_vault_pan_t pan;
    assert_int_equal(pd_cards_detokenize(v, "acct_1", t.out.token, &pan), 0);
    assert_string_equal(pan.pan, "4242424242424242");
    assert_string_equal(pan.cvc, "123");
    assert_int_equal(pan.exp_year, 2034);
    /* the CVC served one authorization and is gone */
    assert_int_equal(pd_cards_detokenize(v, "acct_1", t.out.token, &pan), 0);
    assert_string_equal(pan.cvc, "");
    /* another merchant cannot see the card */
    assert_int_equal(pd_cards_detokenize(v, "acct_2", t.out.token, &pan), PD_ERR_NOTFOUND);
    pd_vault_card_t meta;
    assert_int_equal(pd_cards_get(v, "acct_1", t.out.token, &meta), 0);
    assert_string_equal(meta.fingerprint, t.out.fingerprint);
    assert_false(meta.cvc_held);

    /* fingerprint: same card, same merchant -> same; other merchant -> different */
    tok_t t2 = card("acct_1", "4242424242424242", ""), t3 = card("acct_2", "4242424242424242", "");
    in_txn(v, do_tokenize, &t2, 0);
    in_txn(v, do_tokenize, &t3, 0);
    assert_string_equal(t2.out.fingerprint, t.out.fingerprint);
    assert_string_not_equal(t3.out.fingerprint, t.out.fingerprint);

    /* CVC expires after 10 minutes */
    tok_t t4 = card("acct_1", "5555555555554444", "999");
    in_txn(v, do_tokenize, &t4, 0);
    fake_now += 601;
    pd_cards_tick(v);
    assert_int_equal(pd_cards_detokenize(v, "acct_1", t4.out.token, &pan), 0);
    assert_string_equal(pan.cvc, "");

    /* invalid cards */
    tok_t bad = card("acct_1", "4242424242424241", "");
    in_txn(v, do_tokenize, &bad, PD_ERR_INVALID);
    bad = card("acct_1", "4242424242424242", "12");
    in_txn(v, do_tokenize, &bad, PD_ERR_INVALID);
    bad = card("acct_1", "4242424242424242", "");
    bad.in.exp_year = 2001;
    in_txn(v, do_tokenize, &bad, PD_ERR_RANGE);
    bad.in.exp_year = 2034;
    bad.in.exp_month = 13;
    in_txn(v, do_tokenize, &bad, PD_ERR_RANGE);

    /* delete */
    assert_int_equal(pd_db_begin(v->db), 0);
    assert_int_equal(pd_cards_delete(v, "acct_1", t2.out.token), 0);
    assert_int_equal(pd_db_commit(v->db), 0);
    assert_int_equal(pd_cards_detokenize(v, "acct_1", t2.out.token, &pan), PD_ERR_NOTFOUND);
    pd_vault_state_close(v);

    /* a different root key cannot open this vault */
    uint8_t other[PD_KEY_LEN] = {0};
    pd_vault_state_t *v2;
    assert_int_equal(pd_vault_state_open(&v2, db_path, other), PD_ERR_AUTH);
    /* the database holds no PAN or CVC in the clear */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "cat %s/vault.db* | grep -c -a -e 4242424242424242 -e 5555555555554444", dir);
    FILE *p = popen(cmd, "r");
    int hits = -1;
    assert_int_equal(fscanf(p, "%d", &hits), 1);
    pclose(p);
    assert_int_equal(hits, 0);
}

static void
kms_policy_rotation_min_version_and_deletion(void **state)
{
    (void)state;
    pd_vault_state_t *v = open_vault();
    pd_kms_key_t k;
    pd_buf_t env1, env2, pt;
    pd_buf_init(&env1, 4096);
    pd_buf_init(&env2, 4096);
    pd_buf_init(&pt, 4096);
    pd_view_t ctx = PD_VIEW_LIT("merchant=acct_1;purpose=webhooks;id=we_1");
    assert_int_equal(pd_kms_get(v, "alias/webhooks", &k), 0);
    assert_int_equal(pd_kms_check(&k, PD_KMS_ENCRYPT, PD_PRINCIPAL_API), 0);
    assert_int_equal(pd_kms_check(&k, PD_KMS_ENCRYPT, PD_PRINCIPAL_PROCESSOR), PD_ERR_PERM);
    assert_int_equal(pd_kms_check(&k, PD_KMS_MANAGE, PD_PRINCIPAL_API), PD_ERR_PERM);
    pd_kms_key_t cards;
    assert_int_equal(pd_kms_get(v, "alias/cards", &cards), 0);
    assert_int_equal(pd_kms_check(&cards, PD_KMS_DECRYPT, PD_PRINCIPAL_API), PD_ERR_PERM);

    assert_int_equal(pd_kms_encrypt(v, &k, ctx, PD_VIEW_LIT("whsec_abc"), &env1), 0);
    assert_int_equal(pd_db_begin(v->db), 0);
    assert_int_equal(pd_kms_rotate(v, &k), 0);
    assert_int_equal(pd_db_commit(v->db), 0);
    assert_int_equal(k.current_version, 2);
    assert_int_equal(pd_kms_encrypt(v, &k, ctx, PD_VIEW_LIT("whsec_def"), &env2), 0);
    pd_kms_key_t used;
    /* old ciphertexts still decrypt after rotation */
    assert_int_equal(pd_kms_decrypt(v, ctx, pd_buf_view(&env1), &pt, &used), 0);
    assert_memory_equal(pt.p, "whsec_abc", 9);
    /* min decryption version retires version 1 */
    assert_int_equal(pd_db_begin(v->db), 0);
    assert_int_equal(pd_kms_set_min_decrypt(v, &k, 2), 0);
    assert_int_equal(pd_db_commit(v->db), 0);
    pd_buf_reset(&pt);
    assert_int_equal(pd_kms_decrypt(v, ctx, pd_buf_view(&env1), &pt, &used), PD_ERR_KEY_VERSION);
    assert_int_equal(pd_kms_decrypt(v, ctx, pd_buf_view(&env2), &pt, &used), 0);
    /* rotation periods outside 90..2560 days are refused */
    assert_int_equal(pd_kms_set_rotation(v, &k, 30), PD_ERR_RANGE);
    /* scheduled deletion: 7..30 days; all use fails during the window; cancel restores */
    assert_int_equal(pd_kms_schedule_deletion(v, &k, 3), PD_ERR_RANGE);
    assert_int_equal(pd_db_begin(v->db), 0);
    assert_int_equal(pd_kms_schedule_deletion(v, &k, 7), 0);
    assert_int_equal(pd_db_commit(v->db), 0);
    assert_int_equal(pd_kms_check(&k, PD_KMS_ENCRYPT, PD_PRINCIPAL_API), PD_ERR_KEY_DISABLED);
    pd_buf_reset(&pt);
    assert_int_equal(pd_kms_decrypt(v, ctx, pd_buf_view(&env2), &pt, &used), PD_ERR_KEY_DISABLED);
    assert_int_equal(pd_db_begin(v->db), 0);
    assert_int_equal(pd_kms_cancel_deletion(v, &k), 0);
    assert_int_equal(pd_db_commit(v->db), 0);
    pd_buf_reset(&pt);
    assert_int_equal(pd_kms_decrypt(v, ctx, pd_buf_view(&env2), &pt, &used), 0);
    /* past the window the material is destroyed for good */
    assert_int_equal(pd_db_begin(v->db), 0);
    assert_int_equal(pd_kms_schedule_deletion(v, &k, 7), 0);
    assert_int_equal(pd_db_commit(v->db), 0);
    fake_now += 8 * 86400;
    pd_kms_tick(v);
    assert_int_equal(pd_kms_get(v, "alias/webhooks", &k), 0);
    assert_string_equal(k.state, "Deleted");
    pd_buf_reset(&pt);
    assert_int_not_equal(pd_kms_decrypt(v, ctx, pd_buf_view(&env2), &pt, &used), 0);
    pd_buf_free(&env1);
    pd_buf_free(&env2);
    pd_buf_free(&pt);
    pd_vault_state_close(v);
}

static void
card_key_rotation_and_rewrap_keep_cards_readable(void **state)
{
    (void)state;
    pd_vault_state_t *v = open_vault();
    tok_t t[3] = {card("acct_1", "4242424242424242", ""), card("acct_1", "5555555555554444", ""),
                  card("acct_1", "378282246310005", "")};
    in_txn(v, do_tokenize, &t[0], 0);
    pd_kms_key_t k;
    assert_int_equal(pd_kms_get(v, "alias/cards", &k), 0);
    assert_int_equal(pd_db_begin(v->db), 0);
    assert_int_equal(pd_kms_rotate(v, &k), 0);
    assert_int_equal(pd_db_commit(v->db), 0);
    in_txn(v, do_tokenize, &t[1], 0);
    int64_t moved = 0, remaining = 0;
    assert_int_equal(pd_db_begin(v->db), 0);
    assert_int_equal(pd_kms_rewrap(v, &k, 100, &moved, &remaining), 0);
    assert_int_equal(pd_db_commit(v->db), 0);
    assert_int_equal(moved, 1);
    assert_int_equal(remaining, 0);
    /* after rewrap, version 1 can be retired and every card still opens */
    assert_int_equal(pd_db_begin(v->db), 0);
    assert_int_equal(pd_kms_set_min_decrypt(v, &k, 2), 0);
    assert_int_equal(pd_db_commit(v->db), 0);
    pd_vault_state_close(v);
    v = open_vault(); /* cold caches: data keys must unwrap under version 2 */
    in_txn(v, do_tokenize, &t[2], 0);
    for (int i = 0; i < 3; i++) {
        pd_vault_pan_t pan;
        assert_int_equal(pd_cards_detokenize(v, "acct_1", t[i].out.token, &pan), 0);
        assert_string_equal(pan.pan, t[i].in.pan);
    }
    pd_vault_state_close(v);
}

static void
secrets_rotate_through_four_steps_with_one_current(void **state)
{
    (void)state;
    pd_vault_state_t *v = open_vault();
    pd_buf_t val1, val2;
    char vid1[PD_ID_MAX], vid2[PD_ID_MAX];
    pd_buf_init(&val1, 4096);
    pd_buf_init(&val2, 4096);
    assert_int_equal(pd_db_begin(v->db), 0);
    assert_int_equal(pd_secrets_create(v, "db/password", 30, 0, NULL), 0);
    assert_int_equal(pd_db_commit(v->db), 0);
    assert_int_equal(pd_secrets_get(v, "db/password", "CURRENT", &val1, vid1, sizeof(vid1)), 0);
    assert_int_equal(val1.len, 32);
    for (size_t i = 0; i < val1.len; i++)
        assert_null(strchr("\"@/\\", val1.p[i]));
    bool changed = false;
    assert_int_equal(pd_secrets_rotate(v, "db/password", &changed), 0);
    assert_true(changed);
    assert_int_equal(pd_secrets_get(v, "db/password", "CURRENT", &val2, vid2, sizeof(vid2)), 0);
    assert_string_not_equal(vid1, vid2);
    assert_false(val1.len == val2.len && memcmp(val1.p, val2.p, val1.len) == 0);
    pd_buf_reset(&val1);
    char prev[PD_ID_MAX];
    assert_int_equal(pd_secrets_get(v, "db/password", "PREVIOUS", &val1, prev, sizeof(prev)), 0);
    assert_string_equal(prev, vid1);
    int64_t currents = 0;
    assert_int_equal(pd_db_query_int(v->db, "SELECT COUNT(*) FROM secret_versions WHERE name = 'db/password' AND stage = 'CURRENT'",
                                     NULL, 0, &currents),
                     0);
    assert_int_equal(currents, 1);
    /* scheduled: 30 days later the tick rotates again */
    fake_now += 31 * 86400;
    pd_secrets_tick(v, NULL, NULL);
    pd_buf_reset(&val1);
    char vid3[PD_ID_MAX];
    assert_int_equal(pd_secrets_get(v, "db/password", "CURRENT", &val1, vid3, sizeof(vid3)), 0);
    assert_string_not_equal(vid3, vid2);
    char gen[64];
    assert_int_equal(pd_secrets_generate(40, "abcdefghijklmnopqrstuvwxyz", gen, sizeof(gen)), 0);
    assert_int_equal(strlen(gen), 40);
    assert_int_equal(strcspn(gen, "abcdefghijklmnopqrstuvwxyz"), 40);
    pd_buf_free_secure(&val1);
    pd_buf_free_secure(&val2);
    pd_vault_state_close(v);
}

static int64_t
count(pd_vault_state_t *v, const char *sql)
{
    int64_t n = -1;
    assert_int_equal(pd_db_query_int(v->db, sql, NULL, 0, &n), 0);
    return n;
}

/* the audit table refuses records of one action (as a full disk or a second writer would) */
static void
refuse_audit(pd_vault_state_t *v, const char *action)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "CREATE TRIGGER audit_refused BEFORE INSERT ON audit_log WHEN NEW.action = '%s' "
             "BEGIN SELECT RAISE(ABORT, 'audit refused by the test'); END",
             action);
    assert_int_equal(pd_db_script(v->db, sql), 0);
}

static void
scheduled_key_work_whose_audit_fails_is_undone(void **state)
{
    (void)state;
    pd_vault_state_t *v = open_vault();
    pd_kms_key_t k;
    assert_int_equal(pd_db_script(v->db, "UPDATE kms_keys SET next_rotation = 1 WHERE alias = 'webhooks'"), 0);
    size_t nkek = v->sec->nkek;
    refuse_audit(v, "kms.rotate.automatic");
    pd_vault_tick(v);
    /* no new version, in the database or in memory, and no record */
    assert_int_equal(pd_kms_get(v, "alias/webhooks", &k), 0);
    assert_int_equal(k.current_version, 1);
    assert_int_equal(v->sec->nkek, nkek);
    assert_int_equal(count(v, "SELECT COUNT(*) FROM kms_versions WHERE key_num = (SELECT num FROM kms_keys "
                              "WHERE alias = 'webhooks')"),
                     1);
    assert_int_equal(pd_db_script(v->db, "DROP TRIGGER audit_refused"), 0);
    pd_vault_tick(v);
    assert_int_equal(pd_kms_get(v, "alias/webhooks", &k), 0);
    assert_int_equal(k.current_version, 2);
    assert_int_equal(v->sec->nkek, nkek + 1);
    assert_int_equal(count(v, "SELECT COUNT(*) FROM audit_log WHERE action = 'kms.rotate.automatic' "
                              "AND outcome = 'success'"),
                     1);

    /* a deletion whose record cannot be written does not happen: the key keeps its material */
    assert_int_equal(pd_kms_get(v, "alias/cache", &k), 0);
    assert_int_equal(pd_db_begin(v->db), 0);
    assert_int_equal(pd_kms_schedule_deletion(v, &k, 7), 0);
    assert_int_equal(pd_db_commit(v->db), 0);
    fake_now += 8 * 86400;
    refuse_audit(v, "kms.delete.complete");
    pd_vault_tick(v);
    assert_int_equal(pd_kms_get(v, "alias/cache", &k), 0);
    assert_string_equal(k.state, "PendingDeletion");
    assert_non_null(pd_kms_material(v, k.num, 1));
    assert_int_equal(count(v, "SELECT COUNT(*) FROM kms_versions WHERE material IS NULL"), 0);
    assert_int_equal(pd_db_script(v->db, "DROP TRIGGER audit_refused"), 0);
    pd_vault_tick(v);
    assert_int_equal(pd_kms_get(v, "alias/cache", &k), 0);
    assert_string_equal(k.state, "Deleted");
    assert_null(pd_kms_material(v, k.num, 1));
    pd_vault_state_close(v);
}

static void
a_rotation_step_whose_audit_fails_is_not_taken(void **state)
{
    (void)state;
    pd_vault_state_t *v = open_vault();
    pd_buf_t val;
    char before[PD_ID_MAX], after[PD_ID_MAX];
    bool changed = true;
    pd_buf_init(&val, 4096);
    assert_int_equal(pd_db_begin(v->db), 0);
    assert_int_equal(pd_secrets_create(v, "db/app", 30, 0, NULL), 0);
    assert_int_equal(pd_db_commit(v->db), 0);
    assert_int_equal(pd_secrets_get(v, "db/app", "CURRENT", &val, before, sizeof(before)), 0);
    refuse_audit(v, "secrets.rotate.finish");
    assert_int_not_equal(pd_secrets_rotate(v, "db/app", &changed), 0);
    assert_false(changed);
    /* CURRENT is the old version; the rotation waits at its last recorded step */
    pd_buf_reset(&val);
    assert_int_equal(pd_secrets_get(v, "db/app", "CURRENT", &val, after, sizeof(after)), 0);
    assert_string_equal(after, before);
    assert_int_equal(count(v, "SELECT COUNT(*) FROM secrets WHERE name = 'db/app' AND rotation_step = 'test'"), 1);
    assert_int_equal(count(v, "SELECT COUNT(*) FROM audit_log WHERE action = 'secrets.rotate.finish'"), 0);
    /* the first steps were recorded, each with its change */
    assert_int_equal(count(v, "SELECT COUNT(*) FROM audit_log WHERE action IN ('secrets.rotate.create', "
                              "'secrets.rotate.set', 'secrets.rotate.test')"),
                     3);
    assert_int_equal(pd_db_script(v->db, "DROP TRIGGER audit_refused"), 0);
    assert_int_equal(pd_secrets_rotate(v, "db/app", &changed), 0);
    assert_true(changed);
    pd_buf_reset(&val);
    assert_int_equal(pd_secrets_get(v, "db/app", "CURRENT", &val, after, sizeof(after)), 0);
    assert_string_not_equal(after, before);
    assert_int_equal(count(v, "SELECT COUNT(*) FROM audit_log WHERE action = 'secrets.rotate.finish'"), 1);
    pd_buf_free_secure(&val);
    pd_vault_state_close(v);
}

/* what a rolled-back tokenization made in memory goes with it: after an undo, cards
 * tokenized next are readable by a fresh process */
static void
an_undone_transaction_leaves_nothing_in_memory(void **state)
{
    (void)state;
    pd_vault_state_t *v = open_vault();
    tok_t lost = card("acct_1", "4242424242424242", "123"), kept = card("acct_1", "5555555555554444", "");
    pd_vault_mark_t m = pd_vault_mark(v);
    assert_int_equal(pd_db_begin(v->db), 0);
    assert_int_equal(do_tokenize(v, &lost), 0); /* makes the first card data key, holds the CVC */
    assert_true(lost.out.cvc_held);
    assert_int_equal(pd_db_rollback(v->db), 0);
    pd_vault_undo(v, &m);
    pd_vault_settle(v);
    pd_vault_card_t meta;
    assert_int_equal(pd_cards_get(v, "acct_1", lost.out.token, &meta), PD_ERR_NOTFOUND);
    assert_int_equal(count(v, "SELECT COUNT(*) FROM data_keys"), 0);
    in_txn(v, do_tokenize, &kept, 0);
    pd_vault_state_close(v);
    v = open_vault();
    pd_vault_pan_t pan;
    assert_int_equal(pd_cards_detokenize(v, "acct_1", kept.out.token, &pan), 0);
    assert_string_equal(pan.pan, "5555555555554444");
    pd_vault_pan_wipe(&pan);
    pd_vault_state_close(v);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(luhn_and_brands),
        cmocka_unit_test_setup_teardown(tokenize_detokenize_and_cvc_is_single_use, setup, teardown),
        cmocka_unit_test_setup_teardown(kms_policy_rotation_min_version_and_deletion, setup, teardown),
        cmocka_unit_test_setup_teardown(card_key_rotation_and_rewrap_keep_cards_readable, setup, teardown),
        cmocka_unit_test_setup_teardown(secrets_rotate_through_four_steps_with_one_current, setup, teardown),
        cmocka_unit_test_setup_teardown(scheduled_key_work_whose_audit_fails_is_undone, setup, teardown),
        cmocka_unit_test_setup_teardown(a_rotation_step_whose_audit_fails_is_not_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(an_undone_transaction_leaves_nothing_in_memory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
