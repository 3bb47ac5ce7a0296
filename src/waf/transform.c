/*
 * Value transformations for the signature rules (see include/payd/waf.h). Every
 * step only shrinks or keeps the length, so out never needs more than len bytes.
 */
#include <string.h>
#include <strings.h>

#include "payd/waf.h"

static int
hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* code point -> UTF-8, folding full-width forms (U+FF01..FF5E) to ASCII; returns bytes written */
static size_t
put_cp(uint32_t cp, uint8_t *out)
{
    if (cp >= 0xff01 && cp <= 0xff5e)
        cp -= 0xfee0;
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    out[0] = (uint8_t)(0xe0 | ((cp >> 12) & 0x0f));
    out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    out[2] = (uint8_t)(0x80 | (cp & 0x3f));
    return 3;
}

/* %XX, %uXXXX and '+' as space; one pass. Returns the new length. */
static size_t
url_decode(uint8_t *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            s[o++] = (uint8_t)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        } else if (s[i] == '%' && i + 5 < n && (s[i + 1] | 0x20) == 'u' && hexval(s[i + 2]) >= 0 &&
                   hexval(s[i + 3]) >= 0 && hexval(s[i + 4]) >= 0 && hexval(s[i + 5]) >= 0) {
            uint32_t cp = (uint32_t)(hexval(s[i + 2]) << 12 | hexval(s[i + 3]) << 8 | hexval(s[i + 4]) << 4 |
                                     hexval(s[i + 5]));
            uint8_t tmp[3];
            size_t k = put_cp(cp, tmp);
            memcpy(s + o, tmp, k); /* k <= 3 < 6 consumed: never overtakes the reader */
            o += k;
            i += 5;
        } else if (s[i] == '+') {
            s[o++] = ' ';
        } else {
            s[o++] = s[i];
        }
    }
    return o;
}

/* full-width forms written as UTF-8 (EF BC 81 .. EF BD 9E) -> ASCII */
static size_t
fold_fullwidth(uint8_t *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == 0xef && i + 2 < n && (s[i + 1] == 0xbc || s[i + 1] == 0xbd) && (s[i + 2] & 0xc0) == 0x80) {
            uint32_t cp = (uint32_t)(0xf000 | (s[i + 1] & 0x3f) << 6 | (s[i + 2] & 0x3f));
            if (cp >= 0xff01 && cp <= 0xff5e) {
                s[o++] = (uint8_t)(cp - 0xfee0);
                i += 2;
                continue;
            }
        }
        s[o++] = s[i];
    }
    return o;
}

static const struct {
    const char *name;
    uint8_t c;
} entities[] = {
    {"lt", '<'},     {"gt", '>'},     {"quot", '"'},   {"apos", '\''}, {"amp", '&'},    {"tab", '\t'},
    {"newline", '\n'}, {"colon", ':'}, {"lpar", '('},  {"rpar", ')'},  {"sol", '/'},    {"bsol", '\\'},
    {"nbsp", ' '},   {"semi", ';'},   {"equals", '='}, {"grave", '`'}, {"lsqb", '['},   {"rsqb", ']'},
    {"period", '.'}, {"comma", ','},  {"excl", '!'},   {"num", '#'},   {"dollar", '$'}, {"percnt", '%'},
};

/* &name; &#NN; &#xHH; (the ';' optional for numeric forms, as browsers do) */
static size_t
html_decode(uint8_t *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '&' || i + 2 >= n) {
            s[o++] = s[i];
            continue;
        }
        if (s[i + 1] == '#') {
            size_t j = i + 2;
            uint32_t cp = 0;
            bool hex = j < n && (s[j] | 0x20) == 'x';
            if (hex)
                j++;
            size_t start = j;
            while (j < n && j - start < 7 && (hex ? hexval(s[j]) >= 0 : (s[j] >= '0' && s[j] <= '9'))) {
                cp = cp * (hex ? 16u : 10u) + (uint32_t)(hex ? hexval(s[j]) : s[j] - '0');
                j++;
            }
            if (j > start && cp > 0 && cp < 0x10000) {
                if (j < n && s[j] == ';')
                    j++;
                uint8_t tmp[3];
                size_t k = put_cp(cp, tmp);
                if (k <= j - i) {
                    memcpy(s + o, tmp, k);
                    o += k;
                    i = j - 1;
                    continue;
                }
            }
        } else {
            bool done = false;
            for (size_t e = 0; e < sizeof(entities) / sizeof(entities[0]) && !done; e++) {
                size_t nl = strlen(entities[e].name);
                if (i + 1 + nl < n && s[i + 1 + nl] == ';' && strncasecmp((const char *)s + i + 1, entities[e].name, nl) == 0) {
                    s[o++] = entities[e].c;
                    i += nl + 1;
                    done = true;
                }
            }
            if (done)
                continue;
        }
        s[o++] = s[i];
    }
    return o;
}

/* \uXXXX and \xHH (JavaScript / CSS escapes) */
static size_t
escape_decode(uint8_t *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 5 < n && (s[i + 1] | 0x20) == 'u' && hexval(s[i + 2]) >= 0 && hexval(s[i + 3]) >= 0 &&
            hexval(s[i + 4]) >= 0 && hexval(s[i + 5]) >= 0) {
            uint32_t cp = (uint32_t)(hexval(s[i + 2]) << 12 | hexval(s[i + 3]) << 8 | hexval(s[i + 4]) << 4 |
                                     hexval(s[i + 5]));
            uint8_t tmp[3];
            size_t k = put_cp(cp, tmp);
            memcpy(s + o, tmp, k);
            o += k;
            i += 5;
        } else if (s[i] == '\\' && i + 3 < n && (s[i + 1] | 0x20) == 'x' && hexval(s[i + 2]) >= 0 &&
                   hexval(s[i + 3]) >= 0) {
            s[o++] = (uint8_t)(hexval(s[i + 2]) << 4 | hexval(s[i + 3]));
            i += 3;
        } else {
            s[o++] = s[i];
        }
    }
    return o;
}

static void
lower(uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (uint8_t)(s[i] | 0x20);
}

static bool
is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == 0;
}

/* C comments become a space (an unterminated one runs to the end); then runs of
 * whitespace and NULs become one space */
static size_t
compress(uint8_t *s, size_t n, bool drop_all)
{
    size_t o = 0;
    bool in_space = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '/' && i + 1 < n && s[i + 1] == '*') {
            size_t j = i + 2;
            while (j + 1 < n && !(s[j] == '*' && s[j + 1] == '/'))
                j++;
            i = j + 1 < n ? j + 1 : n - 1;
            c = ' ';
        }
        if (is_space(c)) {
            if (!in_space && !drop_all)
                s[o++] = ' ';
            in_space = true;
            continue;
        }
        in_space = false;
        s[o++] = c;
    }
    return o;
}

size_t
pd_waf_transform(pd_waf_variant_t v, const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t n = len < cap ? len : cap;
    memcpy(out, in, n);
    for (int pass = 0; pass < 2; pass++) { /* double encoding */
        size_t m = url_decode(out, n);
        if (m == n)
            break;
        n = m;
    }
    if (v != PD_WV_RAW) {
        n = html_decode(out, n);
        n = escape_decode(out, n);
        n = fold_fullwidth(out, n);
    }
    lower(out, n);
    if (v != PD_WV_RAW)
        n = compress(out, n, v == PD_WV_NOSPACE);
    return n;
}
