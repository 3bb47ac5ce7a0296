#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "payd/webhook.h"

static int
hmac_hex(const char *secret, size_t secret_len, int64_t t, pd_view_t payload, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char mac[32];
    char prefix[32];
    int pl = snprintf(prefix, sizeof(prefix), "%" PRId64 ".", t);
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
    char digest[] = "SHA256"; /* OSSL_PARAM takes a mutable buffer */
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0), OSSL_PARAM_construct_end()};
    size_t outl = 0;
    int ok = ctx != NULL && EVP_MAC_init(ctx, (const unsigned char *)secret, secret_len, params) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)pl) == 1 &&
             EVP_MAC_update(ctx, payload.p, payload.len) == 1 && EVP_MAC_final(ctx, mac, &outl, sizeof(mac)) == 1;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
    if (!ok || outl != 32)
        return PD_ERR_CRYPTO;
    for (size_t i = 0; i < 32; i++) {
        hex[2 * i] = digits[mac[i] >> 4];
        hex[2 * i + 1] = digits[mac[i] & 15];
    }
    hex[64] = '\0';
    OPENSSL_cleanse(mac, sizeof(mac));
    return 0;
}

int
pd_webhook_sign(const char *secret, size_t secret_len, int64_t t, pd_view_t payload, char *out, size_t cap)
{
    char hex[65];
    int r = hmac_hex(secret, secret_len, t, payload, hex);
    if (r != 0)
        return r;
    int n = snprintf(out, cap, "t=%" PRId64 ",v1=%s", t, hex);
    return n > 0 && (size_t)n < cap ? 0 : PD_ERR_TOOBIG;
}

int
pd_webhook_verify(const char *secret, size_t secret_len, const char *header, pd_view_t payload, int64_t now,
                  int64_t tolerance_s)
{
    int64_t t = -1;
    bool matched = false;
    char want[65];
    const char *p = header;

    /* first pass: the timestamp */
    while (p != NULL && *p) {
        if (strncmp(p, "t=", 2) == 0) {
            char *end;
            long long v = strtoll(p + 2, &end, 10);
            if (end == p + 2 || (*end != ',' && *end != '\0'))
                return PD_ERR_INVALID;
            t = v;
        }
        p = strchr(p, ',');
        if (p != NULL)
            p++;
    }
    if (t < 0)
        return PD_ERR_INVALID;
    if (tolerance_s > 0 && (t < now - tolerance_s || t > now + tolerance_s))
        return PD_ERR_AUTH;
    if (hmac_hex(secret, secret_len, t, payload, want) != 0)
        return PD_ERR_CRYPTO;
    /* every v1 signature is compared (a rolled secret may produce several) */
    for (p = header; p != NULL && *p;) {
        if (strncmp(p, "v1=", 3) == 0 && strlen(p + 3) >= 64 && (p[3 + 64] == ',' || p[3 + 64] == '\0') &&
            CRYPTO_memcmp(p + 3, want, 64) == 0)
            matched = true;
        p = strchr(p, ',');
        if (p != NULL)
            p++;
    }
    return matched ? 0 : PD_ERR_AUTH;
}

int64_t
pd_webhook_backoff(int attempt, int64_t first_at, int64_t now)
{
    int64_t base = 30;
    for (int i = 1; i < attempt && base < 12 * 3600; i++)
        base *= 2;
    if (base > 12 * 3600)
        base = 12 * 3600;
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        r = 0x7fffffff;
    /* +-25 % jitter so endpoints that recover are not hit by a synchronized wave */
    int64_t q = base / 4;
    int64_t jitter = (int64_t)(r % (uint32_t)(2 * q + 1)) - q; /* in [-q, +q] */
    int64_t next = now + base + jitter;
    if (next - first_at > PD_WEBHOOK_RETRY_WINDOW_S)
        return -1;
    return next - now;
}
