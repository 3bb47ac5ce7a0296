#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "payd/schema.h"

#define DEFAULT_STRING_MAX 5000
#define DEFAULT_MAP_ITEMS 50
#define DEFAULT_LIST_ITEMS 100
#define MAP_KEY_MAX 40
#define MAP_VALUE_MAX 500

static int
fail(pd_schema_error_t *e, const char *code, pd_view_t param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(pd_schema_error_t *e, const char *code, pd_view_t param, const char *fmt, ...)
{
    va_list ap;
    e->code = code;
    snprintf(e->param, sizeof(e->param), "%.*s", (int)param.len, (const char *)param.p);
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return PD_ERR_INVALID;
}

/* does key match field f? sets *sub to the part inside the brackets for MAP/LIST */
static bool
matches(const pd_field_t *f, pd_view_t key, pd_view_t *sub)
{
    size_t nl = strlen(f->name);
    if (key.len < nl || memcmp(key.p, f->name, nl) != 0)
        return false;
    if (key.len == nl) {
        *sub = PD_VIEW_NULL;
        return true;
    }
    if (f->type != PD_FT_MAP && f->type != PD_FT_LIST)
        return false;
    if (key.p[nl] != '[' || key.p[key.len - 1] != ']')
        return false;
    pd_view_t inner = pd_view(key.p + nl + 1, key.len - nl - 2);
    if (memchr(inner.p, '[', inner.len) != NULL || memchr(inner.p, ']', inner.len) != NULL)
        return false; /* deeper nesting is not part of these types */
    if (f->type == PD_FT_LIST) {
        if (inner.len == 0 || inner.len > 4)
            return false;
        for (size_t i = 0; i < inner.len; i++)
            if (inner.p[i] < '0' || inner.p[i] > '9')
                return false;
    }
    *sub = inner;
    return true;
}

static bool
is_choice(const char *const *choices, pd_view_t v)
{
    for (size_t i = 0; choices != NULL && choices[i] != NULL; i++)
        if (pd_view_eq_cstr(v, choices[i]))
            return true;
    return false;
}

static void
list_choices(const char *const *choices, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; choices != NULL && choices[i] != NULL && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? ", " : "", choices[i]);
}

static bool
no_controls(pd_view_t v)
{
    for (size_t i = 0; i < v.len; i++)
        if (v.p[i] < 0x20 || v.p[i] == 0x7f || v.p[i] == ' ')
            return false;
    return true;
}

static int
check_value(const pd_field_t *f, const pd_param_t *p, pd_schema_error_t *e)
{
    pd_view_t k = p->key, v = p->value;
    char list[256];

    if (p->type == PD_P_NULL || (v.len == 0 && p->type == PD_P_STR) || p->type == PD_P_EMPTY) {
        if (f->flags & PD_FF_UNSET)
            return 0;
        if (p->type == PD_P_EMPTY && (f->type == PD_FT_MAP || f->type == PD_FT_LIST))
            return 0;
        return fail(e, "parameter_invalid_empty", k,
                    "You passed an empty value for '%.*s'. We assume empty values are an attempt to unset a "
                    "parameter; however '%.*s' cannot be unset.",
                    (int)k.len, (const char *)k.p, (int)k.len, (const char *)k.p);
    }
    if (p->type == PD_P_EMPTY)
        return fail(e, "parameter_invalid", k, "Invalid value for %.*s.", (int)k.len, (const char *)k.p);
    switch (f->type) {
    case PD_FT_STRING:
    case PD_FT_MAP:
    case PD_FT_LIST: {
        if (p->type != PD_P_STR && p->type != PD_P_INT)
            return fail(e, "parameter_invalid_string", k, "Invalid string for %.*s.", (int)k.len, (const char *)k.p);
        int64_t max = f->max > 0 ? f->max : (f->type == PD_FT_MAP ? MAP_VALUE_MAX : DEFAULT_STRING_MAX);
        if ((int64_t)v.len > max)
            return fail(e, "parameter_invalid_string_too_long", k, "%.*s must be at most %lld characters long.",
                        (int)k.len, (const char *)k.p, (long long)max);
        if ((int64_t)v.len < f->min)
            return fail(e, "parameter_invalid_string_too_short", k, "%.*s must be at least %lld characters long.",
                        (int)k.len, (const char *)k.p, (long long)f->min);
        if (f->type == PD_FT_LIST && f->choices != NULL && !is_choice(f->choices, v)) {
            list_choices(f->choices, list, sizeof(list));
            return fail(e, "parameter_invalid", k, "Invalid %.*s: must be one of %s.", (int)k.len, (const char *)k.p,
                        list);
        }
        return 0;
    }
    case PD_FT_INT: {
        int64_t n;
        if ((p->type != PD_P_STR && p->type != PD_P_INT) || pd_view_to_i64(v, &n) != 0 ||
            (v.len > 1 && v.p[0] == '0') || (v.len > 0 && v.p[0] == '-' && f->min >= 0))
            return fail(e, "parameter_invalid_integer", k, "Invalid integer: %.*s", (int)(v.len > 64 ? 64 : v.len),
                        (const char *)v.p);
        if (n < f->min || n > f->max)
            return fail(e, "parameter_invalid_integer", k, "%.*s must be an integer from %lld to %lld.", (int)k.len,
                        (const char *)k.p, (long long)f->min, (long long)f->max);
        return 0;
    }
    case PD_FT_BOOL:
        if (!pd_view_eq_cstr(v, "true") && !pd_view_eq_cstr(v, "false"))
            return fail(e, "parameter_invalid_boolean", k, "Invalid boolean: %.*s", (int)(v.len > 64 ? 64 : v.len),
                        (const char *)v.p);
        return 0;
    case PD_FT_ENUM:
        if (p->type != PD_P_STR || !is_choice(f->choices, v)) {
            list_choices(f->choices, list, sizeof(list));
            return fail(e, "parameter_invalid", k, "Invalid %.*s: must be one of %s.", (int)k.len, (const char *)k.p,
                        list);
        }
        return 0;
    case PD_FT_ID: {
        int64_t max = f->max > 0 ? f->max : 255;
        bool ok = p->type == PD_P_STR && (int64_t)v.len <= max;
        for (size_t i = 0; ok && i < v.len; i++) {
            uint8_t c = v.p[i];
            ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        }
        if (!ok)
            return fail(e, "resource_missing", k, "No such %.*s: '%.*s'", (int)k.len, (const char *)k.p,
                        (int)(v.len > 64 ? 64 : v.len), (const char *)v.p);
        return 0;
    }
    case PD_FT_CURRENCY: {
        bool ok = p->type == PD_P_STR && v.len == 3;
        for (size_t i = 0; ok && i < 3; i++)
            ok = (v.p[i] >= 'a' && v.p[i] <= 'z') || (v.p[i] >= 'A' && v.p[i] <= 'Z');
        if (!ok)
            return fail(e, "parameter_invalid_currency", k, "Invalid currency: %.*s. Use a three-letter ISO code.",
                        (int)(v.len > 16 ? 16 : v.len), (const char *)v.p);
        return 0;
    }
    case PD_FT_EMAIL: {
        const uint8_t *at = memchr(v.p, '@', v.len);
        if (p->type != PD_P_STR || v.len > 512 || at == NULL || at == v.p || at == v.p + v.len - 1 ||
            memchr(at + 1, '@', (size_t)(v.p + v.len - at - 1)) != NULL || !no_controls(v))
            return fail(e, "email_invalid", k, "Invalid email address: %.*s", (int)(v.len > 64 ? 64 : v.len),
                        (const char *)v.p);
        return 0;
    }
    case PD_FT_URL:
        if (p->type != PD_P_STR || v.len > 2048 || !no_controls(v) ||
            !(pd_view_starts_with(v, "https://") || pd_view_starts_with(v, "http://")))
            return fail(e, "url_invalid", k, "Invalid URL: %.*s must be an http(s) URL.", (int)k.len,
                        (const char *)k.p);
        return 0;
    case PD_FT_DIGITS: {
        bool ok = (p->type == PD_P_STR || p->type == PD_P_INT) && (int64_t)v.len >= f->min && (int64_t)v.len <= f->max;
        for (size_t i = 0; ok && i < v.len; i++)
            ok = v.p[i] >= '0' && v.p[i] <= '9';
        if (!ok)
            return fail(e, "parameter_invalid", k, "%.*s must be %lld to %lld digits.", (int)k.len, (const char *)k.p,
                        (long long)f->min, (long long)f->max);
        return 0;
    }
    }
    return PD_ERR_INTERNAL;
}

int
pd_schema_check(const pd_schema_t *s, const pd_params_t *p, pd_schema_error_t *err)
{
    uint32_t counts[64] = {0};
    int r;

    for (size_t i = 0; i < p->n; i++) {
        const pd_param_t *pp = &p->v[i];
        const pd_field_t *f = NULL;
        pd_view_t sub = PD_VIEW_NULL;
        size_t fi;
        for (fi = 0; fi < s->n; fi++) {
            if (matches(&s->fields[fi], pp->key, &sub)) {
                f = &s->fields[fi];
                break;
            }
        }
        if (f == NULL)
            return fail(err, "parameter_unknown", pp->key, "Received unknown parameter: %.*s", (int)pp->key.len,
                        (const char *)pp->key.p);
        if ((f->type == PD_FT_MAP || f->type == PD_FT_LIST) && sub.p != NULL) {
            uint32_t limit = f->max_items ? f->max_items : (f->type == PD_FT_MAP ? DEFAULT_MAP_ITEMS : DEFAULT_LIST_ITEMS);
            if (fi < 64 && ++counts[fi] > limit)
                return fail(err, "parameter_invalid", pd_view_cstr(f->name), "%s can have at most %u entries.", f->name,
                            limit);
            if (f->type == PD_FT_MAP && (sub.len == 0 || sub.len > MAP_KEY_MAX))
                return fail(err, "parameter_invalid", pp->key, "Keys of %s must be 1 to %d characters long.", f->name,
                            MAP_KEY_MAX);
        }
        if ((r = check_value(f, pp, err)) != 0)
            return r;
    }
    for (size_t fi = 0; fi < s->n; fi++) {
        const pd_field_t *f = &s->fields[fi];
        if ((f->flags & PD_FF_REQUIRED) && !pd_params_has_prefix(p, f->name))
            return fail(err, "parameter_missing", pd_view_cstr(f->name), "Missing required param: %s.", f->name);
    }
    return 0;
}

const pd_field_t *
pd_schema_field(const pd_schema_t *s, pd_view_t key)
{
    pd_view_t sub = PD_VIEW_NULL;
    for (size_t fi = 0; s != NULL && fi < s->n; fi++)
        if (matches(&s->fields[fi], key, &sub))
            return &s->fields[fi];
    return NULL;
}
