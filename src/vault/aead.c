/* AES-256-GCM, HMAC-SHA256 and hex helpers over OpenSSL EVP. */
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "payd/vault_crypto.h"

int
pd_aead_seal(const uint8_t key[PD_KEY_LEN], const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t ptlen,
             uint8_t *out)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int r = PD_ERR_CRYPTO, n = 0;
    uint8_t *nonce = out, *ct = out + PD_GCM_NONCE, *tag = out + PD_GCM_NONCE + ptlen;

    if (c == NULL || ptlen > INT32_MAX || aadlen > INT32_MAX || RAND_bytes(nonce, PD_GCM_NONCE) != 1)
        goto out;
    if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) != 1 ||
        (aadlen > 0 && EVP_EncryptUpdate(c, NULL, &n, aad, (int)aadlen) != 1) ||
        (ptlen > 0 && EVP_EncryptUpdate(c, ct, &n, pt, (int)ptlen) != 1) || EVP_EncryptFinal_ex(c, ct + n, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, PD_GCM_TAG, tag) != 1)
        goto out;
    r = 0;
out:
    EVP_CIPHER_CTX_free(c);
    return r;
}

int
pd_aead_open(const uint8_t key[PD_KEY_LEN], const uint8_t *aad, size_t aadlen, const uint8_t *in, size_t inlen,
             uint8_t *out)
{
    EVP_CIPHER_CTX *c;
    int r = PD_ERR_CRYPTO, n = 0;

    if (inlen < PD_GCM_NONCE + PD_GCM_TAG)
        return PD_ERR_TRUNCATED;
    size_t ctlen = inlen - PD_GCM_NONCE - PD_GCM_TAG;
    if (ctlen > INT32_MAX || aadlen > INT32_MAX || (c = EVP_CIPHER_CTX_new()) == NULL)
        return PD_ERR_CRYPTO;
    if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, in) != 1 ||
        (aadlen > 0 && EVP_DecryptUpdate(c, NULL, &n, aad, (int)aadlen) != 1) ||
        (ctlen > 0 && EVP_DecryptUpdate(c, out, &n, in + PD_GCM_NONCE, (int)ctlen) != 1) ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, PD_GCM_TAG, (void *)(in + PD_GCM_NONCE + ctlen)) != 1)
        goto out;
    if (EVP_DecryptFinal_ex(c, out + n, &n) != 1) {
        /* never hand back unauthenticated bytes */
        OPENSSL_cleanse(out, ctlen);
        r = PD_ERR_AUTH;
        goto out;
    }
    r = 0;
out:
    EVP_CIPHER_CTX_free(c);
    return r;
}

/*
 * HMAC contexts are kept per thread and re-keyed per call: EVP_Q_mac fetches the
 * algorithm and builds a context on every call, which costs more than the MAC
 * itself at the rates of fingerprints, client secrets and audit chains.
 */
static pthread_key_t mac_key;
static pthread_once_t mac_once = PTHREAD_ONCE_INIT;
static EVP_MAC *mac_hmac;

static void
mac_ctx_free(void *ctx)
{
    EVP_MAC_CTX_free(ctx);
}

static void
mac_init(void)
{
    mac_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (pthread_key_create(&mac_key, mac_ctx_free) != 0) {
        EVP_MAC_free(mac_hmac);
        mac_hmac = NULL;
    }
}

static EVP_MAC_CTX *
mac_ctx(void)
{
    pthread_once(&mac_once, mac_init);
    if (mac_hmac == NULL)
        return NULL;
    EVP_MAC_CTX *c = pthread_getspecific(mac_key);
    if (c != NULL)
        return c;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if ((c = EVP_MAC_CTX_new(mac_hmac)) == NULL || EVP_MAC_CTX_set_params(c, params) != 1 ||
        pthread_setspecific(mac_key, c) != 0) {
        EVP_MAC_CTX_free(c);
        return NULL;
    }
    return c;
}

int
pd_hmac_sha256(const uint8_t *key, size_t keylen, const uint8_t *msg, size_t msglen, uint8_t out[32])
{
    EVP_MAC_CTX *c = mac_ctx();
    size_t outl = 0;
    /* EVP_MAC_init with a key starts a new MAC; a zero-length key is legal for HMAC */
    static const uint8_t empty[1];
    if (c == NULL || EVP_MAC_init(c, keylen > 0 ? key : empty, keylen, NULL) != 1 ||
        EVP_MAC_update(c, msg, msglen) != 1 || EVP_MAC_final(c, out, &outl, 32) != 1 || outl != 32)
        return PD_ERR_CRYPTO;
    return 0;
}

int
pd_secret_base62(char *out, size_t n)
{
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    size_t have = 0;
    while (have < n) {
        unsigned char c;
        /* the private DRBG, one byte at a time: nothing is left over in memory */
        if (RAND_priv_bytes(&c, 1) != 1)
            return PD_ERR_CRYPTO;
        if (c < 248)
            out[have++] = b62[c % 62];
    }
    return 0;
}
