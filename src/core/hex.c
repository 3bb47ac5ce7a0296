#include "payd/buf.h"

void
pd_hex(const uint8_t *in, size_t len, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int
nib(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
pd_unhex(const char *in, size_t hexlen, uint8_t *out)
{
    if (hexlen % 2 != 0)
        return PD_ERR_INVALID;
    for (size_t i = 0; i < hexlen / 2; i++) {
        int h = nib(in[2 * i]), l = nib(in[2 * i + 1]);
        if (h < 0 || l < 0)
            return PD_ERR_INVALID;
        out[i] = (uint8_t)(h << 4 | l);
    }
    return 0;
}
