/* Shamir secret sharing over GF(2^8) with the AES polynomial (x^8 + x^4 + x^3 + x + 1). */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "payd/vault_crypto.h"

static uint8_t
gf_mul(uint8_t a, uint8_t b)
{
    uint8_t p = 0;
    /* constant-time shift-and-add: no table lookups indexed by secret bytes */
    for (int i = 0; i < 8; i++) {
        p ^= (uint8_t)(-(b & 1) & a);
        uint8_t hi = (uint8_t)(-(a >> 7));
        a = (uint8_t)((a << 1) ^ (hi & 0x1b));
        b >>= 1;
    }
    return p;
}

static uint8_t
gf_inv(uint8_t a)
{
    /* a^254 = a^-1 in GF(256) */
    uint8_t r = 1, x = a;
    for (int e = 254; e > 0; e >>= 1) {
        if (e & 1)
            r = gf_mul(r, x);
        x = gf_mul(x, x);
    }
    return r;
}

/* the share's 8-hex-digit check (its SHA-256's first 4 bytes); PD_ERR_CRYPTO when the
 * digest cannot be computed (never a check of undefined bytes) */
static int
share_check(const char *body, char check[9])
{
    uint8_t md[32];
    unsigned int mdlen = 0;
    if (EVP_Digest(body, strlen(body), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != sizeof(md))
        return PD_ERR_CRYPTO;
    pd_hex(md, 4, check);
    return 0;
}

int
pd_shamir_split(const uint8_t secret[PD_KEY_LEN], int n, int threshold, char shares[][PD_SHARE_TEXT])
{
    uint8_t coef[PD_KEY_LEN][16];
    uint8_t y[16][PD_KEY_LEN];
    int r = 0;

    if (threshold < 2 || threshold > n || n > 16)
        return PD_ERR_RANGE;
    if (RAND_bytes(&coef[0][0], sizeof(coef)) != 1)
        return PD_ERR_CRYPTO;
    for (size_t b = 0; b < PD_KEY_LEN; b++) {
        coef[b][0] = secret[b];
        for (int x = 1; x <= n; x++) {
            /* Horner: f(x) = c0 + c1 x + ... + c(t-1) x^(t-1) */
            uint8_t acc = 0;
            for (int k = threshold - 1; k >= 0; k--)
                acc = (uint8_t)(gf_mul(acc, (uint8_t)x) ^ coef[b][k]);
            y[x - 1][b] = acc;
        }
    }
    for (int x = 1; x <= n; x++) {
        char hex[2 * PD_KEY_LEN + 1], body[96], check[9];
        pd_hex(y[x - 1], PD_KEY_LEN, hex);
        snprintf(body, sizeof(body), "pdshare1-%d-%d-%s", threshold, x, hex);
        if ((r = share_check(body, check)) == 0)
            snprintf(shares[x - 1], PD_SHARE_TEXT, "%s-%s", body, check);
        OPENSSL_cleanse(hex, sizeof(hex));
        OPENSSL_cleanse(body, sizeof(body));
        if (r != 0)
            break;
    }
    OPENSSL_cleanse(coef, sizeof(coef));
    OPENSSL_cleanse(y, sizeof(y));
    if (r != 0)
        OPENSSL_cleanse(shares, (size_t)n * PD_SHARE_TEXT);
    return r;
}

int
pd_shamir_combine(const char *const *shares, int n, uint8_t secret[PD_KEY_LEN], char *err, size_t errcap)
{
    uint8_t xs[16], ys[16][PD_KEY_LEN];
    int threshold = 0, used = 0;
    int r = PD_ERR_INVALID;

    for (int i = 0; i < n && used < 16; i++) {
        int t = 0, x = 0, off = 0;
        char hex[2 * PD_KEY_LEN + 1], check[9], body[PD_SHARE_TEXT], want[9];
        size_t len = strnlen(shares[i], PD_SHARE_TEXT);
        if (len >= PD_SHARE_TEXT || sscanf(shares[i], "pdshare1-%d-%d-%n", &t, &x, &off) != 2 || off == 0 ||
            len != (size_t)off + 2 * PD_KEY_LEN + 1 + 8 || shares[i][off + 2 * PD_KEY_LEN] != '-') {
            snprintf(err, errcap, "share %d is malformed (expected pdshare1-T-I-<64 hex>-<8 hex>)", i + 1);
            goto out;
        }
        memcpy(hex, shares[i] + off, 2 * PD_KEY_LEN);
        hex[2 * PD_KEY_LEN] = '\0';
        memcpy(check, shares[i] + off + 2 * PD_KEY_LEN + 1, 8);
        check[8] = '\0';
        snprintf(body, sizeof(body), "%.*s", off + 2 * PD_KEY_LEN, shares[i]);
        if (share_check(body, want) != 0) {
            snprintf(err, errcap, "cannot compute share %d's check digits", i + 1);
            r = PD_ERR_CRYPTO;
            goto out;
        }
        if (CRYPTO_memcmp(want, check, 8) != 0 || pd_unhex(hex, 2 * PD_KEY_LEN, ys[used]) != 0) {
            snprintf(err, errcap, "share %d is corrupt (its check digits do not match)", i + 1);
            goto out;
        }
        if (t < 2 || t > 16 || x < 1 || x > 16 || (threshold != 0 && t != threshold)) {
            snprintf(err, errcap, "share %d does not belong to this set (threshold %d vs %d)", i + 1, t, threshold);
            goto out;
        }
        threshold = t;
        for (int j = 0; j < used; j++) {
            if (xs[j] == x) {
                snprintf(err, errcap, "share %d is a duplicate of an earlier share (index %d)", i + 1, x);
                goto out;
            }
        }
        xs[used++] = (uint8_t)x;
    }
    if (used < threshold || used == 0) {
        snprintf(err, errcap, "%d share(s) given, %d needed", used, threshold ? threshold : 2);
        r = PD_ERR_RANGE;
        goto out;
    }
    /* Lagrange interpolation at 0 with the first `threshold` shares */
    for (size_t b = 0; b < PD_KEY_LEN; b++) {
        uint8_t acc = 0;
        for (int i = 0; i < threshold; i++) {
            uint8_t num = 1, den = 1;
            for (int j = 0; j < threshold; j++) {
                if (j == i)
                    continue;
                num = gf_mul(num, xs[j]);
                den = gf_mul(den, (uint8_t)(xs[i] ^ xs[j]));
            }
            acc ^= gf_mul(ys[i][b], gf_mul(num, gf_inv(den)));
        }
        secret[b] = acc;
    }
    r = 0;
out:
    OPENSSL_cleanse(ys, sizeof(ys));
    return r;
}
