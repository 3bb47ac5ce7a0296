#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "payd/json.h"

void
pd_jw_init(pd_jw_t *w, pd_buf_t *b)
{
    w->b = b;
    w->err = 0;
    w->depth = 0;
    w->first[0] = true;
    w->after_key = false;
}

int
pd_jw_finish(pd_jw_t *w)
{
    if (w->err == 0 && w->depth != 0)
        w->err = PD_ERR_INTERNAL;
    return w->err;
}

static void
jw_put(pd_jw_t *w, const char *s, size_t n)
{
    if (w->err == 0)
        w->err = pd_buf_put(w->b, s, n);
}

/* separator before a value (array element, top level) or before a key */
static void
jw_sep(pd_jw_t *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (!w->first[w->depth])
        jw_put(w, ",", 1);
    w->first[w->depth] = false;
}

static void
jw_open(pd_jw_t *w, char c)
{
    jw_sep(w);
    if (w->depth + 1 >= PD_JW_MAX_DEPTH) {
        if (w->err == 0)
            w->err = PD_ERR_TOOBIG;
        return;
    }
    jw_put(w, &c, 1);
    w->first[++w->depth] = true;
}

static void
jw_close(pd_jw_t *w, char c)
{
    if (w->depth == 0) {
        if (w->err == 0)
            w->err = PD_ERR_INTERNAL;
        return;
    }
    w->depth--;
    jw_put(w, &c, 1);
}

void pd_jw_obj_begin(pd_jw_t *w) { jw_open(w, '{'); }
void pd_jw_obj_end(pd_jw_t *w) { jw_close(w, '}'); }
void pd_jw_arr_begin(pd_jw_t *w) { jw_open(w, '['); }
void pd_jw_arr_end(pd_jw_t *w) { jw_close(w, ']'); }

void
pd_jw_keyv(pd_jw_t *w, pd_view_t k)
{
    jw_sep(w);
    if (w->err == 0)
        w->err = pd_json_escape(w->b, k.p, k.len);
    jw_put(w, ":", 1);
    w->after_key = true;
}

void
pd_jw_key(pd_jw_t *w, const char *k)
{
    pd_jw_keyv(w, pd_view_cstr(k));
}

void
pd_jw_strv(pd_jw_t *w, pd_view_t s)
{
    jw_sep(w);
    if (w->err == 0)
        w->err = pd_json_escape(w->b, s.p, s.len);
}

void
pd_jw_str(pd_jw_t *w, const char *s)
{
    if (s == NULL)
        pd_jw_null(w);
    else
        pd_jw_strv(w, pd_view_cstr(s));
}

void
pd_jw_int(pd_jw_t *w, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    jw_sep(w);
    jw_put(w, tmp, (size_t)n);
}

void
pd_jw_bool(pd_jw_t *w, bool v)
{
    jw_sep(w);
    if (v)
        jw_put(w, "true", 4);
    else
        jw_put(w, "false", 5);
}

void
pd_jw_null(pd_jw_t *w)
{
    jw_sep(w);
    jw_put(w, "null", 4);
}

void
pd_jw_raw(pd_jw_t *w, pd_view_t json)
{
    jw_sep(w);
    jw_put(w, (const char *)json.p, json.len);
}

void
pd_jw_json(pd_jw_t *w, json_t *v)
{
    const char *k;
    json_t *e;
    size_t i;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        pd_jw_obj_begin(w);
        json_object_foreach(v, k, e) {
            pd_jw_key(w, k);
            pd_jw_json(w, e);
        }
        pd_jw_obj_end(w);
        break;
    case JSON_ARRAY:
        pd_jw_arr_begin(w);
        json_array_foreach(v, i, e) pd_jw_json(w, e);
        pd_jw_arr_end(w);
        break;
    case JSON_STRING:
        pd_jw_strv(w, pd_view(json_string_value(v), json_string_length(v)));
        break;
    case JSON_INTEGER:
        pd_jw_int(w, (int64_t)json_integer_value(v));
        break;
    case JSON_REAL: {
        char tmp[40];
        int n = snprintf(tmp, sizeof(tmp), "%.17g", json_real_value(v));
        jw_sep(w);
        jw_put(w, tmp, (size_t)n);
        break;
    }
    case JSON_TRUE: pd_jw_bool(w, true); break;
    case JSON_FALSE: pd_jw_bool(w, false); break;
    case JSON_NULL: pd_jw_null(w); break;
    }
}

size_t
pd_utf8_valid_prefix(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (len - i < n)
            return i;
        for (size_t j = 1; j < n; j++) {
            if ((p[i + j] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (p[i + j] & 0x3F);
        }
        /* overlong forms, surrogates and values past U+10FFFF are invalid */
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return i;
        i += n;
    }
    return i;
}

int
pd_json_escape(pd_buf_t *b, const uint8_t *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = b->len;
    int r;

    /* worst case is 6 bytes per input byte; reserve the common case up front */
    if ((r = pd_buf_reserve(b, len + 2)) != 0)
        return r;
    b->p[b->len++] = '"';
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            /* run of plain ASCII */
            size_t j = i + 1;
            while (j < len && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\')
                j++;
            if ((r = pd_buf_put(b, s + i, j - i)) != 0)
                goto fail;
            i = j;
            continue;
        }
        if (c < 0x80) {
            char esc[7];
            size_t n = 2;
            esc[0] = '\\';
            switch (c) {
            case '"': esc[1] = '"'; break;
            case '\\': esc[1] = '\\'; break;
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            case '\b': esc[1] = 'b'; break;
            case '\f': esc[1] = 'f'; break;
            default:
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                n = 6;
            }
            if ((r = pd_buf_put(b, esc, n)) != 0)
                goto fail;
            i++;
            continue;
        }
        size_t ok = pd_utf8_valid_prefix(s + i, len - i);
        if (ok > 0) {
            /* copy the valid multibyte run up to the next ASCII byte */
            size_t j = i;
            while (j < i + ok && s[j] >= 0x80)
                j++;
            if ((r = pd_buf_put(b, s + i, j - i)) != 0)
                goto fail;
            i = j;
        } else {
            if ((r = pd_buf_put(b, "\\ufffd", 6)) != 0)
                goto fail;
            i++;
        }
    }
    if ((r = pd_buf_put_byte(b, '"')) != 0)
        goto fail;
    return 0;
fail:
    b->len = start;
    return r;
}

static int
json_depth_ok(json_t *v, int left)
{
    const char *k;
    json_t *e;
    size_t i;

    if (left < 0)
        return 0;
    if (json_is_object(v)) {
        json_object_foreach(v, k, e) if (!json_depth_ok(e, left - 1)) return 0;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e) if (!json_depth_ok(e, left - 1)) return 0;
    }
    return 1;
}

json_t *
pd_json_parse(pd_view_t in, int max_depth, char *errbuf, size_t errcap)
{
    json_error_t jerr;
    json_t *v;

    /* jansson limits nesting to 2048 itself, so recursion below is bounded */
    v = json_loadb((const char *)in.p, in.len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (v == NULL) {
        if (errbuf != NULL)
            snprintf(errbuf, errcap, "%s at line %d column %d", jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_depth_ok(v, max_depth)) {
        if (errbuf != NULL)
            snprintf(errbuf, errcap, "JSON nesting deeper than %d levels", max_depth);
        json_decref(v);
        return NULL;
    }
    return v;
}
