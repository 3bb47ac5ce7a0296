/* AES-256-GCM over OpenSSL EVP (the vault server's data encryption). */
#include <string.h>

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
    uint8_t tag[PD_GCM_TAG]; /* OpenSSL takes the expected tag through a mutable pointer */
    memcpy(tag, in + PD_GCM_NONCE + ctlen, sizeof(tag));
    if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, in) != 1 ||
        (aadlen > 0 && EVP_DecryptUpdate(c, NULL, &n, aad, (int)aadlen) != 1) ||
        (ctlen > 0 && EVP_DecryptUpdate(c, out, &n, in + PD_GCM_NONCE, (int)ctlen) != 1) ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, PD_GCM_TAG, tag) != 1)
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
