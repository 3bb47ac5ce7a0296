/* The versioned envelope format (see include/payd/vault_crypto.h). */
#include <string.h>

#include <openssl/crypto.h>

#include "payd/vault_crypto.h"

static void
put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t
get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int
pd_env_parse(pd_view_t env, pd_env_header_t *h)
{
    if (env.len < PD_ENV_OVERHEAD)
        return PD_ERR_TRUNCATED;
    if (memcmp(env.p, "PDE", 3) != 0)
        return PD_ERR_INVALID;
    if (env.p[3] != PD_ENV_VERSION)
        return PD_ERR_KEY_VERSION;
    h->key_num = get_u32(env.p + 4);
    h->key_version = get_u32(env.p + 8);
    return 0;
}

/* AAD = header | context; built on the stack for the common small contexts */
static int
with_aad(const uint8_t *header, pd_view_t context, uint8_t *stackbuf, size_t stackcap, uint8_t **aad, size_t *aadlen)
{
    size_t n = PD_ENV_HEADER + context.len;
    uint8_t *p = n <= stackcap ? stackbuf : OPENSSL_malloc(n);
    if (p == NULL)
        return PD_ERR_NOMEM;
    memcpy(p, header, PD_ENV_HEADER);
    if (context.len > 0)
        memcpy(p + PD_ENV_HEADER, context.p, context.len);
    *aad = p;
    *aadlen = n;
    return 0;
}

int
pd_env_seal(pd_buf_t *out, uint32_t key_num, uint32_t key_version, const uint8_t key[PD_KEY_LEN], pd_view_t context,
            pd_view_t pt)
{
    uint8_t header[PD_ENV_HEADER], stackaad[256], *aad = NULL;
    size_t aadlen = 0, start = out->len;
    int r;

    memcpy(header, "PDE", 3);
    header[3] = PD_ENV_VERSION;
    put_u32(header + 4, key_num);
    put_u32(header + 8, key_version);
    if ((r = pd_buf_reserve(out, PD_ENV_OVERHEAD + pt.len)) != 0)
        return r;
    if ((r = with_aad(header, context, stackaad, sizeof(stackaad), &aad, &aadlen)) != 0)
        return r;
    memcpy(out->p + out->len, header, PD_ENV_HEADER);
    r = pd_aead_seal(key, aad, aadlen, pt.p, pt.len, out->p + out->len + PD_ENV_HEADER);
    if (aad != stackaad)
        OPENSSL_free(aad);
    if (r != 0) {
        out->len = start;
        return r;
    }
    out->len += PD_ENV_OVERHEAD + pt.len;
    return 0;
}

int
pd_env_open(pd_buf_t *out, const uint8_t key[PD_KEY_LEN], pd_view_t context, pd_view_t env)
{
    uint8_t stackaad[256], *aad = NULL;
    size_t aadlen = 0;
    int r;

    if (env.len < PD_ENV_OVERHEAD)
        return PD_ERR_TRUNCATED;
    size_t ptlen = env.len - PD_ENV_OVERHEAD;
    if ((r = pd_buf_reserve(out, ptlen)) != 0)
        return r;
    if ((r = with_aad(env.p, context, stackaad, sizeof(stackaad), &aad, &aadlen)) != 0)
        return r;
    r = pd_aead_open(key, aad, aadlen, env.p + PD_ENV_HEADER, env.len - PD_ENV_HEADER, out->p + out->len);
    if (aad != stackaad)
        OPENSSL_free(aad);
    if (r == 0)
        out->len += ptlen;
    return r;
}
