#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "payd/buf.h"
#include "payd/vault_crypto.h"

static const uint8_t key[PD_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* RFC 4231 test cases 1, 2 and 6 (a key longer than the block), each twice on the
 * same thread: the context is reused and re-keyed, and must not carry state over */
static void
hmac_sha256_matches_rfc4231_with_a_reused_context(void **state)
{
    (void)state;
    uint8_t key1[20], key6[131], out[32];
    char hex[65];
    memset(key1, 0x0b, sizeof(key1));
    memset(key6, 0xaa, sizeof(key6));
    static const char msg6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    for (int round = 0; round < 2; round++) {
        assert_int_equal(pd_hmac_sha256(key1, sizeof(key1), (const uint8_t *)"Hi There", 8, out), 0);
        pd_hex(out, 32, hex);
        assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
        assert_int_equal(pd_hmac_sha256((const uint8_t *)"Jefe", 4, (const uint8_t *)"what do ya want for nothing?", 28, out), 0);
        pd_hex(out, 32, hex);
        assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_int_equal(pd_hmac_sha256(key6, sizeof(key6), (const uint8_t *)msg6, sizeof(msg6) - 1, out), 0);
        pd_hex(out, 32, hex);
        assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }
}

static void
envelope_round_trip_and_every_tamper_fails_closed(void **state)
{
    (void)state;
    pd_buf_t env, pt;
    pd_env_header_t h;
    pd_buf_init(&env, 4096);
    pd_buf_init(&pt, 4096);
    pd_view_t ctx = PD_VIEW_LIT("merchant=acct_1;record=card_1;purpose=cards");
    assert_int_equal(pd_env_seal(&env, 7, 3, key, ctx, PD_VIEW_LIT("4242424242424242")), 0);
    assert_int_equal(env.len, PD_ENV_OVERHEAD + 16);
    assert_int_equal(pd_env_parse(pd_buf_view(&env), &h), 0);
    assert_int_equal(h.key_num, 7);
    assert_int_equal(h.key_version, 3);
    assert_int_equal(pd_env_open(&pt, key, ctx, pd_buf_view(&env)), 0);
    assert_int_equal(pt.len, 16);
    assert_memory_equal(pt.p, "4242424242424242", 16);

    /* wrong context */
    pd_buf_reset(&pt);
    assert_int_equal(pd_env_open(&pt, key, PD_VIEW_LIT("merchant=acct_2;record=card_1;purpose=cards"), pd_buf_view(&env)),
                     PD_ERR_AUTH);
    assert_int_equal(pt.len, 0);
    /* every single flipped bit */
    for (size_t i = 0; i < env.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            env.p[i] ^= (uint8_t)(1 << bit);
            pd_env_header_t hh;
            int pr = pd_env_parse(pd_buf_view(&env), &hh);
            if (pr == 0) {
                pd_buf_reset(&pt);
                assert_int_equal(pd_env_open(&pt, key, ctx, pd_buf_view(&env)), PD_ERR_AUTH);
            } else {
                assert_true(pr == PD_ERR_INVALID || pr == PD_ERR_KEY_VERSION);
            }
            env.p[i] ^= (uint8_t)(1 << bit);
        }
    }
    /* truncated */
    for (size_t n = 0; n < PD_ENV_OVERHEAD; n++)
        assert_int_equal(pd_env_parse(pd_view(env.p, n), &h), PD_ERR_TRUNCATED);
    pd_buf_reset(&pt);
    assert_int_equal(pd_env_open(&pt, key, ctx, pd_view(env.p, env.len - 1)), PD_ERR_AUTH);
    /* unknown format version */
    env.p[3] = 9;
    assert_int_equal(pd_env_parse(pd_buf_view(&env), &h), PD_ERR_KEY_VERSION);
    pd_buf_free(&env);
    pd_buf_free(&pt);
}

static void
keyfile_seals_under_the_passphrase(void **state)
{
    (void)state;
    char path[64], err[200];
    uint8_t out[PD_KEY_LEN];
    snprintf(path, sizeof(path), "/tmp/payd-keyfile-%d", (int)getpid());
    assert_int_equal(pd_keyfile_write(path, key, "correct horse", 13), 0);
    assert_int_equal(pd_keyfile_read(path, "correct horse", 13, out, err, sizeof(err)), 0);
    assert_memory_equal(out, key, PD_KEY_LEN);
    assert_int_equal(pd_keyfile_read(path, "wrong horse", 11, out, err, sizeof(err)), PD_ERR_AUTH);
    assert_non_null(strstr(err, "wrong unseal passphrase"));
    /* the file holds no plaintext key */
    FILE *f = fopen(path, "r");
    char text[1024];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    char hex[65];
    pd_hex(key, PD_KEY_LEN, hex);
    assert_null(strstr(text, hex));
    assert_int_equal(pd_keyfile_parse(PD_VIEW_LIT("garbage"), "x", 1, out, err, sizeof(err)), PD_ERR_INVALID);
    assert_int_equal(pd_keyfile_parse(PD_VIEW_LIT("payd-vault-keyfile 1\nkdf scrypt 3 8 1\n"), "x", 1, out, err, sizeof(err)),
                     PD_ERR_INVALID);
    unlink(path);
}

static void
shamir_any_threshold_subset_recovers_and_bad_sets_are_refused(void **state)
{
    (void)state;
    char shares[5][PD_SHARE_TEXT];
    uint8_t out[PD_KEY_LEN];
    char err[200];
    assert_int_equal(pd_shamir_split(key, 5, 3, shares), 0);
    /* every 3-subset */
    for (int a = 0; a < 5; a++)
        for (int b = a + 1; b < 5; b++)
            for (int c = b + 1; c < 5; c++) {
                const char *set[] = {shares[a], shares[b], shares[c]};
                memset(out, 0, sizeof(out));
                assert_int_equal(pd_shamir_combine(set, 3, out, err, sizeof(err)), 0);
                assert_memory_equal(out, key, PD_KEY_LEN);
            }
    const char *two[] = {shares[0], shares[1]};
    assert_int_equal(pd_shamir_combine(two, 2, out, err, sizeof(err)), PD_ERR_RANGE);
    assert_non_null(strstr(err, "2 share(s) given, 3 needed"));
    const char *dup[] = {shares[0], shares[0], shares[1]};
    assert_int_equal(pd_shamir_combine(dup, 3, out, err, sizeof(err)), PD_ERR_INVALID);
    assert_non_null(strstr(err, "duplicate"));
    char bad[PD_SHARE_TEXT];
    memcpy(bad, shares[2], PD_SHARE_TEXT);
    bad[20] = bad[20] == 'a' ? 'b' : 'a'; /* one typo */
    const char *typo[] = {shares[0], shares[1], bad};
    assert_int_equal(pd_shamir_combine(typo, 3, out, err, sizeof(err)), PD_ERR_INVALID);
    assert_non_null(strstr(err, "corrupt"));
    const char *junk[] = {"hello", shares[1], shares[2]};
    assert_int_equal(pd_shamir_combine(junk, 3, out, err, sizeof(err)), PD_ERR_INVALID);
    assert_int_equal(pd_shamir_split(key, 2, 3, shares), PD_ERR_RANGE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hmac_sha256_matches_rfc4231_with_a_reused_context),
        cmocka_unit_test(envelope_round_trip_and_every_tamper_fails_closed),
        cmocka_unit_test(keyfile_seals_under_the_passphrase),
        cmocka_unit_test(shamir_any_threshold_subset_recovers_and_bad_sets_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
