/*
 * HMAC-SHA256 and random base62 secrets: shared by payd (API-key hashes, client
 * secrets, webhook signatures) and the vault (fingerprints, audit chains), so they
 * live in core and payd never links the vault server for them.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "payd/crypto.h"

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
    char digest[] = "SHA256"; /* OSSL_PARAM takes a mutable buffer */
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
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
