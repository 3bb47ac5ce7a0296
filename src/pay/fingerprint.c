#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "payd/pay.h"

static int
cmp_param(const void *a, const void *b)
{
    const pd_param_t *x = *(const pd_param_t *const *)a, *y = *(const pd_param_t *const *)b;
    size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = memcmp(x->key.p, y->key.p, n);
    return c != 0 ? c : (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

static void
feed(EVP_MD_CTX *md, pd_view_t v)
{
    uint8_t len[4] = {(uint8_t)(v.len >> 24), (uint8_t)(v.len >> 16), (uint8_t)(v.len >> 8), (uint8_t)v.len};
    EVP_DigestUpdate(md, len, 4);
    if (v.len > 0)
        EVP_DigestUpdate(md, v.p, v.len);
}

int
pd_request_fingerprint(pd_view_t method, pd_view_t path, const pd_params_t *params, char out[65])
{
    const pd_param_t *sorted[PD_PARAMS_MAX];
    uint8_t d[32];
    unsigned int dl = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return PD_ERR_CRYPTO;
    }
    size_t n = params->n < PD_PARAMS_MAX ? params->n : PD_PARAMS_MAX;
    for (size_t i = 0; i < n; i++)
        sorted[i] = &params->v[i];
    qsort(sorted, n, sizeof(sorted[0]), cmp_param);
    feed(md, method);
    feed(md, path);
    for (size_t i = 0; i < n; i++) {
        /* values compare as text: 1 and "1", true and "true" are the same request */
        feed(md, sorted[i]->key);
        feed(md, sorted[i]->value);
    }
    int ok = EVP_DigestFinal_ex(md, d, &dl) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return PD_ERR_CRYPTO;
    pd_hex(d, 32, out);
    return 0;
}
