/*
 * ENCRYPT_BATCH on a real vault.db (no IPC): the handler seals each payload under its
 * own context, as Encrypt would; it refuses an empty batch, too many entries, a payload
 * or a total past the bounds (each with a message naming the bound), a malformed
 * message (dropped as a protocol violation), a key the principal may not use; and its
 * dispatcher row admits the api principal only.
 */
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
#include "vault/handlers.h"
#include "vault/msg.h"
#include "vault/server.h"

static char dir[64], db_path[128];
static const uint8_t root[PD_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6,
                                         7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2};
static pd_vault_state_t *g_v;
static uint8_t g_big[PD_IPC_MAX_PAYLOAD];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-batch-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(db_path, sizeof(db_path), "%s/vault.db", dir);
    assert_int_equal(pd_vault_state_open(&g_v, db_path, root), 0);
    memset(g_big, 'e', sizeof(g_big));
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

/* runs the handler on a payload as principal; reply (decoded) and msg for the caller */
static int
run(unsigned principal, pd_view_t payload, pd_vault_reply_t *out, char *msg, size_t cap)
{
    pd_buf_t reply;
    pd_buf_init(&reply, PD_IPC_MAX_PAYLOAD);
    pd_hctx_t h = {.v = g_v, .principal = principal, .payload = payload, .reply = &reply};
    int rc = pd_h_encrypt_batch(&h);
    snprintf(msg, cap, "%s", h.msg);
    memset(out, 0, sizeof(*out));
    if (rc == 0)
        assert_int_equal(pd_msg_data_dec(pd_buf_view(&reply), out), 0);
    pd_buf_free(&reply);
    return rc;
}

static int
run_items(unsigned principal, const char *key, const pd_vault_batch_item_t *it, size_t n, pd_vault_reply_t *out,
          char *msg, size_t cap)
{
    pd_buf_t p;
    pd_buf_init(&p, PD_IPC_MAX_PAYLOAD);
    assert_int_equal(pd_msg_encrypt_batch_enc(&p, key, it, n), 0);
    int rc = run(principal, pd_buf_view(&p), out, msg, cap);
    pd_buf_free(&p);
    return rc;
}

static void
each_payload_is_sealed_under_its_own_context(void **state)
{
    (void)state;
    static const char *const ctx[] = {"payd:txn|evt_1|acct_a", "payd:txn|evt_2|acct_a", "payd:txn|evt_3|acct_b"};
    static const char *const pt[] = {"{\"id\":\"evt_1\"}", "{\"id\":\"evt_2\",\"x\":1}", ""};
    pd_vault_batch_item_t it[3];
    for (int i = 0; i < 3; i++)
        it[i] = (pd_vault_batch_item_t){pd_view_cstr(ctx[i]), pd_view_cstr(pt[i])};
    pd_vault_reply_t r;
    char msg[256];
    assert_int_equal(run_items(PD_PRINCIPAL_API, "alias/events", it, 3, &r, msg, sizeof(msg)), 0);
    pd_kms_key_t k, used;
    assert_int_equal(pd_kms_get(g_v, "alias/events", &k), 0);
    assert_string_equal(r.text, k.id);
    assert_int_equal(r.n1, k.current_version);
    assert_int_equal(r.n2, 3);
    pd_view_t env[3];
    assert_int_equal(pd_vault_batch_envelopes(pd_buf_view(&r.data), env, 3), 0);
    assert_int_not_equal(pd_vault_batch_envelopes(pd_buf_view(&r.data), env, 2), 0);
    pd_buf_t out;
    pd_buf_init(&out, 8192);
    for (int i = 0; i < 3; i++) {
        /* an envelope like Encrypt's: no plaintext in it, opened by Decrypt with its context only */
        assert_int_equal(env[i].len, strlen(pt[i]) + PD_ENV_OVERHEAD);
        if (pt[i][0] != '\0')
            assert_null(memmem(env[i].p, env[i].len, pt[i], strlen(pt[i])));
        pd_buf_reset(&out);
        assert_int_equal(pd_kms_decrypt(g_v, pd_view_cstr(ctx[i]), env[i], &out, &used), 0);
        assert_int_equal(out.len, strlen(pt[i]));
        assert_memory_equal(out.p, pt[i], out.len);
        pd_buf_reset(&out);
        assert_int_equal(pd_kms_decrypt(g_v, pd_view_cstr(ctx[(i + 1) % 3]), env[i], &out, &used), PD_ERR_AUTH);
    }
    /* two seals of one payload differ (a nonce each) */
    pd_view_t a = env[0];
    pd_vault_reply_t r2;
    assert_int_equal(run_items(PD_PRINCIPAL_API, "alias/events", it, 1, &r2, msg, sizeof(msg)), 0);
    pd_view_t b;
    assert_int_equal(pd_vault_batch_envelopes(pd_buf_view(&r2.data), &b, 1), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_not_equal(a.p, b.p, a.len);
    pd_buf_free(&out);
    pd_vault_reply_free(&r);
    pd_vault_reply_free(&r2);
}

static void
bounds_are_refused_with_the_bound_named(void **state)
{
    (void)state;
    pd_vault_batch_item_t it[PD_VAULT_BATCH_MAX + 1];
    const size_t each = PD_VAULT_BATCH_BYTES / PD_VAULT_BATCH_MAX; /* 64 of them fill the total */
    char too_big[96];
    snprintf(too_big, sizeof(too_big), "a batch of %u plaintext bytes: at most %u in all", PD_VAULT_BATCH_BYTES + 1,
             PD_VAULT_BATCH_BYTES);
    for (size_t i = 0; i <= PD_VAULT_BATCH_MAX; i++)
        it[i] = (pd_vault_batch_item_t){PD_VIEW_LIT("payd:txn|evt|acct"), pd_view(g_big, each)};
    pd_vault_reply_t r;
    char msg[256];
    /* the largest batch within the bounds: its reply fits a data reply */
    assert_int_equal(run_items(PD_PRINCIPAL_API, "alias/events", it, PD_VAULT_BATCH_MAX, &r, msg, sizeof(msg)), 0);
    assert_int_equal(r.n2, PD_VAULT_BATCH_MAX);
    assert_true(r.data.len <= PD_MSG_ENVS_MAX);
    pd_vault_reply_free(&r);
    /* one entry too many */
    assert_int_equal(run_items(PD_PRINCIPAL_API, "alias/events", it, PD_VAULT_BATCH_MAX + 1, &r, msg, sizeof(msg)),
                     PD_ERR_TOOBIG);
    assert_string_equal(msg, "a batch of 65 entries: at most 64");
    /* none */
    assert_int_equal(run_items(PD_PRINCIPAL_API, "alias/events", it, 0, &r, msg, sizeof(msg)), PD_ERR_INVALID);
    assert_string_equal(msg, "an empty batch: at least one entry");
    /* one payload may take the whole total (past Encrypt's 4096 bytes), not a byte more */
    it[0].pt = pd_view(g_big, PD_VAULT_BATCH_BYTES);
    assert_int_equal(run_items(PD_PRINCIPAL_API, "alias/events", it, 1, &r, msg, sizeof(msg)), 0);
    pd_view_t one;
    assert_int_equal(pd_vault_batch_envelopes(pd_buf_view(&r.data), &one, 1), 0);
    assert_int_equal(one.len, PD_VAULT_BATCH_BYTES + PD_ENV_OVERHEAD);
    /* and Decrypt (what payctl stream read sends) opens it, within Decrypt's row bounds */
    pd_buf_t req, reply;
    pd_buf_init(&req, PD_IPC_MAX_PAYLOAD);
    pd_buf_init(&reply, PD_IPC_MAX_PAYLOAD);
    assert_int_equal(pd_msg_kms_enc(&req, "", it[0].context, one), 0);
    const pd_vault_dispatch_t *dd = pd_vault_dispatch_find(PD_MSG_DECRYPT);
    assert_true(req.len <= dd->max_len);
    pd_hctx_t h = {.v = g_v, .principal = PD_PRINCIPAL_API, .payload = pd_buf_view(&req), .reply = &reply};
    assert_int_equal(pd_h_decrypt(&h), 0);
    pd_vault_reply_t dr;
    memset(&dr, 0, sizeof(dr));
    assert_int_equal(pd_msg_data_dec(pd_buf_view(&reply), &dr), 0);
    assert_int_equal(dr.data.len, PD_VAULT_BATCH_BYTES);
    assert_memory_equal(dr.data.p, g_big, PD_VAULT_BATCH_BYTES);
    pd_vault_reply_free(&dr);
    pd_buf_free(&req);
    pd_buf_free_secure(&reply);
    pd_vault_reply_free(&r);
    it[0].pt.len++;
    assert_int_equal(run_items(PD_PRINCIPAL_API, "alias/events", it, 1, &r, msg, sizeof(msg)), PD_ERR_TOOBIG);
    assert_string_equal(msg, too_big);
    /* every payload within its bound, the total one byte past */
    for (size_t i = 0; i < 8; i++)
        it[i].pt = pd_view(g_big, PD_VAULT_BATCH_BYTES / 8);
    it[7].pt.len++;
    assert_int_equal(run_items(PD_PRINCIPAL_API, "alias/events", it, 8, &r, msg, sizeof(msg)), PD_ERR_TOOBIG);
    assert_string_equal(msg, too_big);
    it[7].pt.len--;
    assert_int_equal(run_items(PD_PRINCIPAL_API, "alias/events", it, 8, &r, msg, sizeof(msg)), 0);
    pd_vault_reply_free(&r);
}

static void
malformed_messages_are_protocol_violations(void **state)
{
    (void)state;
    pd_vault_batch_item_t it[2] = {{PD_VIEW_LIT("c1"), PD_VIEW_LIT("p1")}, {PD_VIEW_LIT("c2"), PD_VIEW_LIT("p2")}};
    pd_vault_reply_t r;
    char msg[256];
    pd_buf_t p;
    pd_buf_init(&p, PD_IPC_MAX_PAYLOAD);
    assert_int_equal(pd_msg_encrypt_batch_enc(&p, "alias/events", it, 2), 0);
    /* truncated anywhere: every prefix but the whole is malformed */
    for (size_t len = 0; len < p.len; len++)
        assert_int_equal(run(PD_PRINCIPAL_API, pd_view(p.p, len), &r, msg, sizeof(msg)), PD_ERR_PROTOCOL);
    /* a trailing byte */
    assert_int_equal(pd_buf_put(&p, "x", 1), 0);
    assert_int_equal(run(PD_PRINCIPAL_API, pd_buf_view(&p), &r, msg, sizeof(msg)), PD_ERR_PROTOCOL);
    /* a count of 3 over two entries */
    pd_buf_reset(&p);
    assert_int_equal(pd_msg_encrypt_batch_enc(&p, "alias/events", it, 2), 0);
    size_t at = PD_WIRE_STR(strlen("alias/events"));
    p.p[at + 1] = 3;
    assert_int_equal(run(PD_PRINCIPAL_API, pd_buf_view(&p), &r, msg, sizeof(msg)), PD_ERR_PROTOCOL);
    /* a context longer than any context */
    it[0].context = pd_view(g_big, PD_MSG_CTX_MAX + 1);
    pd_buf_reset(&p);
    assert_int_equal(pd_msg_encrypt_batch_enc(&p, "alias/events", it, 2), 0);
    assert_int_equal(run(PD_PRINCIPAL_API, pd_buf_view(&p), &r, msg, sizeof(msg)), PD_ERR_PROTOCOL);
    /* a key name with a NUL */
    pd_buf_reset(&p);
    it[0].context = PD_VIEW_LIT("c1");
    assert_int_equal(pd_msg_encrypt_batch_enc(&p, "alias/events", it, 2), 0);
    p.p[2 + 3] = '\0';
    assert_int_equal(run(PD_PRINCIPAL_API, pd_buf_view(&p), &r, msg, sizeof(msg)), PD_ERR_PROTOCOL);
    pd_buf_free(&p);
}

static void
only_api_and_only_keys_its_policy_allows(void **state)
{
    (void)state;
    /* the dispatcher: the api principal only (the stream publisher), bounds within a frame */
    const pd_vault_dispatch_t *d = pd_vault_dispatch_find(PD_MSG_ENCRYPT_BATCH);
    assert_non_null(d);
    assert_int_equal(d->allowed, PD_PRINCIPAL_API);
    assert_string_equal(d->action, "kms.encrypt_batch");
    assert_false(d->own_txn);
    assert_int_equal(d->min_len, PD_WIRE_STR(1) + 2);
    assert_int_equal(d->max_len, PD_IPC_MAX_PAYLOAD);
    /* the key policy: alias/events lets only api encrypt; alias/cards lets no principal here */
    pd_vault_batch_item_t it[1] = {{PD_VIEW_LIT("c"), PD_VIEW_LIT("{}")}};
    pd_vault_reply_t r;
    char msg[256];
    assert_int_equal(run_items(PD_PRINCIPAL_PROCESSOR, "alias/events", it, 1, &r, msg, sizeof(msg)), PD_ERR_PERM);
    assert_string_equal(msg, "the key policy does not allow this principal");
    assert_int_equal(run_items(PD_PRINCIPAL_API, "alias/cards", it, 1, &r, msg, sizeof(msg)), PD_ERR_PERM);
    assert_int_equal(run_items(PD_PRINCIPAL_API, "alias/nope", it, 1, &r, msg, sizeof(msg)), PD_ERR_NOTFOUND);
    assert_string_equal(msg, "no such key: alias/nope");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_payload_is_sealed_under_its_own_context),
        cmocka_unit_test(bounds_are_refused_with_the_bound_named),
        cmocka_unit_test(malformed_messages_are_protocol_violations),
        cmocka_unit_test(only_api_and_only_keys_its_policy_allows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
