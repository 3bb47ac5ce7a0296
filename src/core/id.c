#include <string.h>

#include <openssl/rand.h>

#include "payd/id.h"

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

int
pd_rand_base62(char *out, size_t n)
{
    unsigned char rnd[64];
    size_t have = 0, pos = sizeof(rnd);

    while (have < n) {
        if (pos == sizeof(rnd)) {
            if (RAND_bytes(rnd, sizeof(rnd)) != 1)
                return PD_ERR_CRYPTO;
            pos = 0;
        }
        unsigned char c = rnd[pos++];
        /* rejection sampling keeps the distribution uniform: 248 = 62 * 4 */
        if (c < 248)
            out[have++] = b62[c % 62];
    }
    return 0;
}

int
pd_id_new(const char *prefix, char *out, size_t cap)
{
    size_t pl = strlen(prefix);
    if (cap < pl + 1 + PD_ID_RAND_LEN + 1)
        return PD_ERR_TOOBIG;
    memcpy(out, prefix, pl);
    out[pl] = '_';
    int r = pd_rand_base62(out + pl + 1, PD_ID_RAND_LEN);
    if (r != 0)
        return r;
    out[pl + 1 + PD_ID_RAND_LEN] = '\0';
    return 0;
}

bool
pd_id_valid(pd_view_t v, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (v.len < pl + 1 + 8 || v.len > pl + 1 + 64 || memcmp(v.p, prefix, pl) != 0 || v.p[pl] != '_')
        return false;
    for (size_t i = pl + 1; i < v.len; i++) {
        uint8_t c = v.p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return false;
    }
    return true;
}
