#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "payd/buf.h"

pd_view_t
pd_view_cstr(const char *s)
{
    return s == NULL ? PD_VIEW_NULL : (pd_view_t){(const uint8_t *)s, strlen(s)};
}

bool
pd_view_eq(pd_view_t a, pd_view_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool
pd_view_eq_cstr(pd_view_t a, const char *s)
{
    return pd_view_eq(a, pd_view_cstr(s));
}

bool
pd_view_case_eq_cstr(pd_view_t a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && (n == 0 || strncasecmp((const char *)a.p, s, n) == 0);
}

bool
pd_view_starts_with(pd_view_t a, const char *prefix)
{
    size_t n = strlen(prefix);
    return a.len >= n && memcmp(a.p, prefix, n) == 0;
}

int
pd_view_to_cstr(pd_view_t v, char *dst, size_t cap)
{
    if (cap == 0 || v.len >= cap)
        return PD_ERR_TOOBIG;
    if (v.len > 0)
        memcpy(dst, v.p, v.len);
    dst[v.len] = '\0';
    return 0;
}

int
pd_view_to_i64(pd_view_t v, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t acc = 0;

    if (v.len == 0)
        return PD_ERR_INVALID;
    if (v.p[0] == '-') {
        neg = true;
        i = 1;
        if (v.len == 1)
            return PD_ERR_INVALID;
    }
    for (; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return PD_ERR_INVALID;
        uint64_t d = (uint64_t)(v.p[i] - '0');
        if (acc > (UINT64_C(9223372036854775808) - d) / 10)
            return PD_ERR_RANGE;
        acc = acc * 10 + d;
    }
    if (!neg && acc > INT64_MAX)
        return PD_ERR_RANGE;
    *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return 0;
}

void
pd_buf_init(pd_buf_t *b, size_t max)
{
    b->p = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void
pd_buf_free(pd_buf_t *b)
{
    if (b == NULL)
        return;
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void
pd_buf_free_secure(pd_buf_t *b)
{
    if (b == NULL)
        return;
    if (b->p != NULL)
        OPENSSL_cleanse(b->p, b->cap);
    pd_buf_free(b);
}

int
pd_buf_reserve(pd_buf_t *b, size_t extra)
{
    /* one spare byte is always kept for pd_buf_cstr()'s terminator */
    if (extra > b->max || b->len > b->max - extra)
        return PD_ERR_TOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap *= 2;
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    uint8_t *np = realloc(b->p, ncap);
    if (np == NULL)
        return PD_ERR_NOMEM;
    b->p = np;
    b->cap = ncap;
    return 0;
}

int
pd_buf_put(pd_buf_t *b, const void *p, size_t len)
{
    int r;
    if ((r = pd_buf_reserve(b, len)) != 0)
        return r;
    if (len > 0)
        memcpy(b->p + b->len, p, len);
    b->len += len;
    return 0;
}

int
pd_buf_put_cstr(pd_buf_t *b, const char *s)
{
    return pd_buf_put(b, s, strlen(s));
}

int
pd_buf_put_byte(pd_buf_t *b, uint8_t c)
{
    return pd_buf_put(b, &c, 1);
}

int
pd_buf_vprintf(pd_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n, r;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return PD_ERR_INVALID;
    if ((r = pd_buf_reserve(b, (size_t)n)) != 0)
        return r;
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int
pd_buf_printf(pd_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = pd_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

int
pd_buf_cstr(pd_buf_t *b, const char **out)
{
    int r;
    if ((r = pd_buf_reserve(b, 0)) != 0)
        return r;
    b->p[b->len] = '\0';
    *out = (const char *)b->p;
    return 0;
}
