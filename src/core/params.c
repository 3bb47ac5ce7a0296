#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "payd/json.h"
#include "payd/params.h"

/* growable array of params in the arena (doubling, copies on growth) */
typedef struct {
    pd_arena_t *a;
    pd_params_t *out;
    size_t cap;
    pd_params_error_t *err;
} builder_t;

static int
fail(pd_params_error_t *err, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(pd_params_error_t *err, const char *param, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        snprintf(err->param, sizeof(err->param), "%s", param != NULL ? param : "");
    }
    return PD_ERR_INVALID;
}

static int
push(builder_t *b, const char *key, size_t klen, const char *val, size_t vlen, pd_ptype_t type)
{
    pd_params_t *p = b->out;
    if (p->n == PD_PARAMS_MAX)
        return fail(b->err, NULL, "Too many parameters (at most %d).", PD_PARAMS_MAX);
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].key.len == klen && memcmp(p->v[i].key.p, key, klen) == 0)
            return fail(b->err, key, "Parameter %s was given more than once.", key);
    if (p->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 16;
        pd_param_t *nv = pd_arena_alloc(b->a, ncap * sizeof(*nv));
        if (nv == NULL)
            return PD_ERR_NOMEM;
        if (p->n > 0)
            memcpy(nv, p->v, p->n * sizeof(*nv));
        p->v = nv;
        b->cap = ncap;
    }
    char *k = pd_arena_strndup(b->a, key, klen);
    char *v = pd_arena_strndup(b->a, val, vlen);
    if (k == NULL || v == NULL)
        return PD_ERR_NOMEM;
    p->v[p->n++] = (pd_param_t){pd_view(k, klen), pd_view(v, vlen), type, false, v};
    return 0;
}

static int
hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long
pd_url_decode(const uint8_t *in, size_t len, char *out, size_t cap, bool plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        if (c == '%') {
            int h, l;
            if (i + 2 >= len || (h = hexval(in[i + 1])) < 0 || (l = hexval(in[i + 2])) < 0)
                return -1;
            c = (uint8_t)(h * 16 + l);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}

static bool
name_char(uint8_t c)
{
    /* parameter names and metadata keys: printable, no brackets or controls */
    return c >= 0x20 && c != '[' && c != ']' && c != 0x7f;
}

/*
 * Normalizes a decoded form key: "a[b][]" -> "a[b][N]" where N counts earlier
 * "a[b][]" keys. Checks bracket structure and depth.
 */
static int
normalize_form_key(builder_t *b, const char *k, size_t klen, char *out, size_t cap, size_t *outlen)
{
    size_t i = 0, o = 0, depth = 0;
    while (i < klen && k[i] != '[') {
        if (!name_char((uint8_t)k[i]))
            return fail(b->err, k, "Invalid parameter name: %s", k);
        i++;
    }
    if (i == 0)
        return fail(b->err, k, "Invalid parameter name: %s", k);
    if (i >= cap)
        return fail(b->err, NULL, "Parameter name too long.");
    memcpy(out, k, i);
    o = i;
    while (i < klen) {
        if (k[i] != '[')
            return fail(b->err, k, "Invalid parameter name: %s", k);
        size_t j = i + 1;
        while (j < klen && k[j] != ']') {
            if (!name_char((uint8_t)k[j]))
                return fail(b->err, k, "Invalid parameter name: %s", k);
            j++;
        }
        if (j == klen)
            return fail(b->err, k, "Unbalanced brackets in parameter name: %s", k);
        if (++depth > PD_PARAMS_MAX_DEPTH)
            return fail(b->err, k, "Parameter nested too deeply: %s", k);
        if (j == i + 1) {
            /* "[]" (only as the last segment): the next index of this array is the
             * number of keys "<prefix>[N]" already present */
            if (j + 1 != klen)
                return fail(b->err, k, "\"[]\" may only end a parameter name: %s", k);
            size_t count = 0;
            for (size_t p = 0; p < b->out->n; p++) {
                pd_view_t ek = b->out->v[p].key;
                if (ek.len > o + 2 && memcmp(ek.p, out, o) == 0 && ek.p[o] == '[' && ek.p[ek.len - 1] == ']' &&
                    memchr(ek.p + o + 1, '[', ek.len - o - 1) == NULL)
                    count++;
            }
            int n = snprintf(out + o, cap - o, "[%zu]", count);
            if (n < 0 || (size_t)n >= cap - o)
                return fail(b->err, NULL, "Parameter name too long.");
            o += (size_t)n;
        } else {
            if (o + (j - i + 1) >= cap)
                return fail(b->err, NULL, "Parameter name too long.");
            memcpy(out + o, k + i, j - i + 1);
            o += j - i + 1;
        }
        i = j + 1;
    }
    out[o] = '\0';
    *outlen = o;
    return 0;
}

int
pd_params_parse_form(pd_arena_t *a, pd_view_t in, pd_params_t *out, pd_params_error_t *err)
{
    builder_t b = {a, out, 0, err};
    char kbuf[PD_PARAMS_MAX_KEY], nkey[PD_PARAMS_MAX_KEY];
    size_t i = 0;
    int r;

    out->v = NULL;
    out->n = 0;
    while (i < in.len) {
        size_t j = i;
        while (j < in.len && in.p[j] != '&')
            j++;
        if (j > i) {
            const uint8_t *eq = memchr(in.p + i, '=', j - i);
            size_t kl = eq ? (size_t)(eq - (in.p + i)) : j - i;
            const uint8_t *vp = eq ? eq + 1 : in.p + j;
            size_t vl = eq ? (size_t)(in.p + j - vp) : 0;
            long dk = pd_url_decode(in.p + i, kl, kbuf, sizeof(kbuf), true);
            if (dk < 0)
                return fail(err, NULL, "Invalid encoding or length of a parameter name.");
            if (dk == 0)
                return fail(err, NULL, "Empty parameter name.");
            if (memchr(kbuf, '\0', (size_t)dk) != NULL || !pd_utf8_valid((const uint8_t *)kbuf, (size_t)dk))
                return fail(err, NULL, "Parameter names must be valid UTF-8 without NUL bytes.");
            char *vbuf = pd_arena_alloc(a, vl + 1);
            if (vbuf == NULL)
                return PD_ERR_NOMEM;
            long dv = pd_url_decode(vp, vl, vbuf, vl + 1, true);
            if (dv < 0)
                return fail(err, kbuf, "Invalid percent-encoding in the value of %s.", kbuf);
            if (memchr(vbuf, '\0', (size_t)dv) != NULL)
                return fail(err, kbuf, "The value of %s contains a NUL byte.", kbuf);
            if (!pd_utf8_valid((const uint8_t *)vbuf, (size_t)dv))
                return fail(err, kbuf, "The value of %s is not valid UTF-8.", kbuf);
            size_t nl = 0;
            if ((r = normalize_form_key(&b, kbuf, (size_t)dk, nkey, sizeof(nkey), &nl)) != 0)
                return r;
            if ((r = push(&b, nkey, nl, vbuf, (size_t)dv, PD_P_STR)) != 0)
                return r;
        }
        i = j + 1;
    }
    return 0;
}

static int
flatten(builder_t *b, json_t *v, char *path, size_t plen, size_t cap, int depth)
{
    char tmp[48];
    int r;

    if (depth > PD_PARAMS_MAX_DEPTH)
        return fail(b->err, path, "Parameter nested too deeply: %s", path);
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *e;
        if (json_object_size(v) == 0 && plen > 0)
            return push(b, path, plen, "", 0, PD_P_EMPTY);
        json_object_foreach(v, k, e) {
            size_t kl = strlen(k);
            if (kl == 0)
                return fail(b->err, path, "Empty key inside %s.", plen ? path : "the body");
            for (size_t i = 0; i < kl; i++)
                if (!name_char((uint8_t)k[i]))
                    return fail(b->err, k, "Invalid character in key: %s", k);
            size_t need = plen ? plen + kl + 2 : kl;
            if (need >= cap)
                return fail(b->err, NULL, "Parameter name too long.");
            if (plen) {
                path[plen] = '[';
                memcpy(path + plen + 1, k, kl);
                path[plen + 1 + kl] = ']';
            } else {
                memcpy(path, k, kl);
            }
            path[need] = '\0';
            if ((r = flatten(b, e, path, need, cap, depth + 1)) != 0)
                return r;
            path[plen] = '\0';
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        if (json_array_size(v) == 0)
            return push(b, path, plen, "", 0, PD_P_EMPTY);
        json_array_foreach(v, i, e) {
            int n = snprintf(path + plen, cap - plen, "[%zu]", i);
            if (n < 0 || (size_t)n >= cap - plen)
                return fail(b->err, NULL, "Parameter name too long.");
            if ((r = flatten(b, e, path, plen + (size_t)n, cap, depth + 1)) != 0)
                return r;
            path[plen] = '\0';
        }
        return 0;
    }
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t sl = json_string_length(v);
        if (memchr(s, '\0', sl) != NULL)
            return fail(b->err, path, "The value of %s contains a NUL byte.", path);
        return push(b, path, plen, s, sl, PD_P_STR);
    }
    case JSON_INTEGER: {
        int n = snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return push(b, path, plen, tmp, (size_t)n, PD_P_INT);
    }
    case JSON_REAL: {
        int n = snprintf(tmp, sizeof(tmp), "%.17g", json_real_value(v));
        return push(b, path, plen, tmp, (size_t)n, PD_P_REAL);
    }
    case JSON_TRUE: return push(b, path, plen, "true", 4, PD_P_BOOL);
    case JSON_FALSE: return push(b, path, plen, "false", 5, PD_P_BOOL);
    case JSON_NULL: return push(b, path, plen, "", 0, PD_P_NULL);
    }
    return PD_ERR_INTERNAL;
}

int
pd_params_parse_json(pd_arena_t *a, pd_view_t in, pd_params_t *out, pd_params_error_t *err)
{
    builder_t b = {a, out, 0, err};
    char path[PD_PARAMS_MAX_KEY];
    char jerr[160];

    out->v = NULL;
    out->n = 0;
    json_t *root = pd_json_parse(in, PD_PARAMS_MAX_DEPTH + 1, jerr, sizeof(jerr));
    if (root == NULL)
        return fail(err, NULL, "Invalid JSON body: %s", jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(err, NULL, "The JSON body must be an object.");
    }
    path[0] = '\0';
    int r = flatten(&b, root, path, 0, sizeof(path), 0);
    json_decref(root);
    return r;
}

pd_param_t *
pd_params_get(pd_params_t *p, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i].key.len == kl && memcmp(p->v[i].key.p, key, kl) == 0) {
            p->v[i].used = true;
            return &p->v[i];
        }
    }
    return NULL;
}

bool
pd_params_has_prefix(const pd_params_t *p, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < p->n; i++) {
        pd_view_t k = p->v[i].key;
        if (k.len >= nl && memcmp(k.p, name, nl) == 0 && (k.len == nl || k.p[nl] == '['))
            return true;
    }
    return false;
}
