/*
 * The vault's backup operations on a real vault.db (no IPC): backup.key answers a fresh
 * data key (the reply's secret part, marked for wiping) and its copy wrapped by the root
 * key, which only that root key unwraps (another root key, a changed byte, another
 * length are refused); backup.snapshot writes a consistent, self-contained copy of
 * vault.db (0600, no -wal, integrity ok, the vault's cards and keys in it) and a second
 * one replaces the first; both refuse a payload (a protocol violation).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "payd/snapshot.h"
#include "vault/backup.h"
#include "vault/handlers.h"
#include "vault/msg.h"

static char dir[64], db_path[128];
static const uint8_t root[PD_KEY_LEN] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 8, 7, 6, 5, 4,
                                         3, 2, 1, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 8};
static pd_vault_state_t *g_v;

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-vbackup-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(db_path, sizeof(db_path), "%s/vault.db", dir);
    assert_int_equal(pd_vault_state_open(&g_v, db_path, root), 0);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    pd_vault_state_close(g_v);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return getenv("PAYD_TEST_KEEP") || system(cmd) == 0 ? 0 : -1;
}

/* runs handler with payload as admin; the decoded reply into out, the JSON into *json */
static int
run(pd_handler_t handler, pd_view_t payload, pd_vault_reply_t *out, json_t **json, bool *secret)
{
    pd_buf_t reply;
    pd_buf_init(&reply, PD_IPC_MAX_PAYLOAD);
    pd_hctx_t h = {.v = g_v, .principal = PD_PRINCIPAL_ADMIN, .payload = payload, .reply = &reply};
    int rc = handler(&h);
    memset(out, 0, sizeof(*out));
    *json = NULL;
    if (rc == 0) {
        const char *text;
        json_error_t e;
        assert_int_equal(pd_msg_data_dec(pd_buf_view(&reply), out), 0);
        assert_int_equal(pd_buf_cstr(&out->data, &text), 0);
        *json = json_loads(text, 0, &e);
        assert_non_null(*json);
        assert_string_equal(h.resource, "backup");
    }
    if (secret != NULL)
        *secret = h.reply_secret;
    pd_buf_free(&reply);
    return rc;
}

static void
the_key_is_wrapped_by_the_root_key_only(void **state)
{
    (void)state;
    pd_vault_reply_t r, r2;
    json_t *j, *j2;
    bool secret = false;
    uint8_t wrapped[PD_BACKUP_WRAPPED_LEN], key[PD_BACKUP_KEY_LEN];
    assert_int_equal(run(pd_h_backup_key, PD_VIEW_NULL, &r, &j, &secret), 0);
    assert_true(secret);
    assert_int_equal(r.data2.len, PD_BACKUP_KEY_LEN);
    const char *hex = json_string_value(json_object_get(j, "wrapped"));
    assert_non_null(hex);
    assert_int_equal(strlen(hex), 2 * PD_BACKUP_WRAPPED_LEN);
    assert_int_equal(pd_unhex(hex, strlen(hex), wrapped), 0);
    assert_int_equal(pd_vault_backup_unwrap(root, (pd_view_t){wrapped, sizeof(wrapped)}, key), 0);
    assert_memory_equal(key, r.data2.p, PD_BACKUP_KEY_LEN);
    /* another vault's root key, a changed byte, a cut copy */
    uint8_t other[PD_KEY_LEN];
    memcpy(other, root, sizeof(other));
    other[0] ^= 1;
    assert_int_equal(pd_vault_backup_unwrap(other, (pd_view_t){wrapped, sizeof(wrapped)}, key), PD_ERR_AUTH);
    for (size_t i = 0; i < sizeof(wrapped); i += 7) {
        wrapped[i] ^= 0x40;
        assert_int_equal(pd_vault_backup_unwrap(root, (pd_view_t){wrapped, sizeof(wrapped)}, key), PD_ERR_AUTH);
        wrapped[i] ^= 0x40;
    }
    assert_int_equal(pd_vault_backup_unwrap(root, (pd_view_t){wrapped, sizeof(wrapped) - 1}, key), PD_ERR_INVALID);
    /* a fresh key each time */
    assert_int_equal(run(pd_h_backup_key, PD_VIEW_NULL, &r2, &j2, NULL), 0);
    assert_memory_not_equal(r.data2.p, r2.data2.p, PD_BACKUP_KEY_LEN);
    pd_vault_reply_free(&r);
    pd_vault_reply_free(&r2);
    json_decref(j);
    json_decref(j2);
    /* the operation takes no payload */
    assert_int_equal(run(pd_h_backup_key, PD_VIEW_LIT("x"), &r, &j, NULL), PD_ERR_PROTOCOL);
}

static int
count_rows(const char *path, const char *table)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "/usr/bin/sqlite3 -readonly %s 'SELECT count(*) FROM %s'", path, table);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p == NULL || fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p != NULL)
        pclose(p);
    return n;
}

static void
the_snapshot_is_a_consistent_copy(void **state)
{
    (void)state;
    pd_vault_reply_t r;
    json_t *j;
    char path[200], err[256];
    struct stat st;
    pd_vault_card_in_t in = {.exp_month = 12, .exp_year = 2031};
    pd_vault_card_t card;
    snprintf(in.merchant_id, sizeof(in.merchant_id), "acct_1");
    snprintf(in.pan, sizeof(in.pan), "4242424242424242");
    assert_int_equal(pd_db_begin(g_v->db), 0);
    assert_int_equal(pd_cards_tokenize(g_v, &in, &card), 0);
    assert_int_equal(pd_db_commit(g_v->db), 0);

    assert_int_equal(run(pd_h_backup_snapshot, PD_VIEW_NULL, &r, &j, NULL), 0);
    snprintf(path, sizeof(path), "%s/%s", dir, PD_VAULT_SNAPSHOT_NAME);
    assert_string_equal(json_string_value(json_object_get(j, "path")), path);
    assert_string_equal(json_string_value(json_object_get(j, "dir")), dir);
    assert_true(json_integer_value(json_object_get(j, "pages")) > 0);
    json_decref(j);
    pd_vault_reply_free(&r);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(pd_sqlite_integrity(path, err, sizeof(err)), 0);
    char side[240];
    snprintf(side, sizeof(side), "%s-wal", path);
    assert_int_not_equal(access(side, F_OK), 0);
    assert_int_equal(count_rows(path, "cards"), 1);
    assert_true(count_rows(path, "kms_keys") >= 7);

    /* the vault keeps writing; a second snapshot replaces the first and holds the new card */
    snprintf(in.pan, sizeof(in.pan), "5555555555554444");
    assert_int_equal(pd_db_begin(g_v->db), 0);
    assert_int_equal(pd_cards_tokenize(g_v, &in, &card), 0);
    assert_int_equal(pd_db_commit(g_v->db), 0);
    assert_int_equal(run(pd_h_backup_snapshot, PD_VIEW_NULL, &r, &j, NULL), 0);
    json_decref(j);
    pd_vault_reply_free(&r);
    assert_int_equal(count_rows(path, "cards"), 2);
    /* no temporary file is left */
    snprintf(side, sizeof(side), "%s/.%s.tmp", dir, PD_VAULT_SNAPSHOT_NAME);
    assert_int_not_equal(access(side, F_OK), 0);
    assert_int_equal(run(pd_h_backup_snapshot, PD_VIEW_LIT("x"), &r, &j, NULL), PD_ERR_PROTOCOL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_key_is_wrapped_by_the_root_key_only),
        cmocka_unit_test(the_snapshot_is_a_consistent_copy),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
