#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "payd/config.h"

#define MAX_SECTIONS 32
#define ERR_MAX 1024

typedef struct {
    const char *name;
    const pd_config_key_t *keys;
    size_t nkeys;
    void *base;
} section_t;

struct pd_config {
    section_t sections[MAX_SECTIONS];
    size_t nsections;
    bool partial; /* pd_config_partial: files and environment may name other sections */
    char err[ERR_MAX];
    int first_err;
    /* file parsing state: inih calls our reader once per line, then the handler */
    const char *cur_path;
    FILE *cur_file;
    int cur_line;
};

int
pd_config_new(pd_config_t **out)
{
    pd_config_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return PD_ERR_NOMEM;
    *out = c;
    return 0;
}

static bool
is_string_type(pd_config_type_t t)
{
    return t == PD_CT_STR || t == PD_CT_PATH || t == PD_CT_ADDR;
}

void
pd_config_free(pd_config_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nsections; i++) {
        section_t *s = &c->sections[i];
        for (size_t k = 0; k < s->nkeys; k++) {
            if (is_string_type(s->keys[k].type)) {
                char **slot = (char **)((char *)s->base + s->keys[k].offset);
                free(*slot);
                *slot = NULL;
            }
        }
    }
    free(c);
}

const char *
pd_config_error(const pd_config_t *c)
{
    return c->err;
}

static int
fail(pd_config_t *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(pd_config_t *c, int code, const char *fmt, ...)
{
    va_list ap;
    size_t used = strlen(c->err);
    if (used > 0 && used + 1 < sizeof(c->err))
        c->err[used++] = '\n';
    va_start(ap, fmt);
    if (used < sizeof(c->err))
        vsnprintf(c->err + used, sizeof(c->err) - used, fmt, ap);
    va_end(ap);
    if (c->first_err == 0)
        c->first_err = code;
    return code;
}

int
pd_config_parse_ms(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)s[0]))
        return PD_ERR_INVALID;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || v < 0)
        return PD_ERR_RANGE;
    int64_t mul;
    if (*end == '\0' || strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "m") == 0)
        mul = 60 * 1000;
    else if (strcmp(end, "h") == 0)
        mul = 3600 * 1000;
    else if (strcmp(end, "d") == 0)
        mul = 86400 * 1000;
    else
        return PD_ERR_INVALID;
    if (v > INT64_MAX / mul)
        return PD_ERR_RANGE;
    *out = (int64_t)v * mul;
    return 0;
}

int
pd_config_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    if (s == NULL)
        return PD_ERR_INVALID;
    const char *digits = s[0] == '-' ? s + 1 : s;
    if (digits[0] == '\0' || strspn(digits, "0123456789") != strlen(digits))
        return PD_ERR_INVALID;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0')
        return PD_ERR_INVALID;
    if (errno == ERANGE || v < min || v > max)
        return PD_ERR_RANGE;
    if (errno != 0)
        return PD_ERR_INVALID;
    *out = (int64_t)v;
    return 0;
}

int
pd_config_parse_size(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)s[0]))
        return PD_ERR_INVALID;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || v < 0)
        return PD_ERR_RANGE;
    int64_t mul;
    if (*end == '\0' || strcasecmp(end, "b") == 0)
        mul = 1;
    else if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kb") == 0 || strcasecmp(end, "kib") == 0)
        mul = 1024;
    else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mb") == 0 || strcasecmp(end, "mib") == 0)
        mul = 1024 * 1024;
    else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gb") == 0 || strcasecmp(end, "gib") == 0)
        mul = 1024 * 1024 * 1024;
    else
        return PD_ERR_INVALID;
    if (v > INT64_MAX / mul)
        return PD_ERR_RANGE;
    *out = (int64_t)v * mul;
    return 0;
}

int
pd_config_parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return PD_ERR_INVALID;
}

int
pd_config_parse_addr(const char *s, char *host, size_t hostcap, uint16_t *port)
{
    const char *colon, *h = s;
    size_t hl;

    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (rb == NULL || rb[1] != ':')
            return PD_ERR_INVALID;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return PD_ERR_INVALID; /* bare IPv6 must be bracketed */
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostcap)
        return PD_ERR_INVALID;
    for (size_t i = 0; i < hl; i++)
        if (!(isalnum((unsigned char)h[i]) || h[i] == '.' || h[i] == '-' || h[i] == ':' || h[i] == '%' || h[i] == '_'))
            return PD_ERR_INVALID;
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) > 5)
        return PD_ERR_INVALID;
    long v = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return PD_ERR_INVALID;
        v = v * 10 + (*p - '0');
    }
    if (v > 65535)
        return PD_ERR_RANGE;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)v;
    return 0;
}

static section_t *
find_section(pd_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->nsections; i++)
        if (strcmp(c->sections[i].name, name) == 0)
            return &c->sections[i];
    return NULL;
}

static const pd_config_key_t *
find_key(const section_t *s, const char *name)
{
    for (size_t i = 0; i < s->nkeys; i++)
        if (strcmp(s->keys[i].name, name) == 0)
            return &s->keys[i];
    return NULL;
}

/* accepted values of a key, for error messages */
static void
describe_accepted(const pd_config_key_t *k, char *out, size_t cap)
{
    switch (k->type) {
    case PD_CT_INT:
        snprintf(out, cap, "an integer from %" PRId64 " to %" PRId64, k->min, k->max);
        break;
    case PD_CT_MS:
        snprintf(out, cap, "a duration from %" PRId64 "ms to %" PRId64 "ms (e.g. 250ms, 10s, 5m, 2h, 30d)", k->min,
                 k->max);
        break;
    case PD_CT_SIZE:
        snprintf(out, cap, "a size from %" PRId64 " to %" PRId64 " bytes (e.g. 512, 16k, 1m)", k->min, k->max);
        break;
    case PD_CT_BOOL:
        snprintf(out, cap, "true or false");
        break;
    case PD_CT_ENUM: {
        size_t used = 0;
        out[0] = '\0';
        for (const char *const *ch = k->choices; *ch != NULL && used < cap; ch++)
            used += (size_t)snprintf(out + used, cap - used, "%s%s", ch == k->choices ? "one of " : ", ", *ch);
        break;
    }
    case PD_CT_ADDR:
        snprintf(out, cap, "host:port, e.g. 127.0.0.1:8443 or [::1]:8443");
        break;
    case PD_CT_STR:
    case PD_CT_PATH:
        snprintf(out, cap, "a string");
        break;
    }
}

static int
set_value(pd_config_t *c, section_t *s, const pd_config_key_t *k, const char *value, const char *origin)
{
    void *slot = (char *)s->base + k->offset;
    char acc[512];
    int64_t n = 0;
    int r = 0;

    switch (k->type) {
    case PD_CT_STR:
    case PD_CT_PATH:
    case PD_CT_ADDR: {
        if (k->type == PD_CT_ADDR && value[0] != '\0') {
            char host[256];
            uint16_t port;
            if (pd_config_parse_addr(value, host, sizeof(host), &port) != 0) {
                r = PD_ERR_CONFIG;
                break;
            }
        }
        if (k->type == PD_CT_PATH && strlen(value) >= 4096) {
            r = PD_ERR_CONFIG;
            break;
        }
        char *dup = strdup(value);
        if (dup == NULL)
            return fail(c, PD_ERR_NOMEM, "%s: out of memory", origin);
        free(*(char **)slot);
        *(char **)slot = dup;
        return 0;
    }
    case PD_CT_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (value[0] == '\0' || *end != '\0' || errno != 0)
            r = PD_ERR_CONFIG;
        n = v;
        break;
    }
    case PD_CT_MS:
        if (pd_config_parse_ms(value, &n) != 0)
            r = PD_ERR_CONFIG;
        break;
    case PD_CT_SIZE:
        if (pd_config_parse_size(value, &n) != 0)
            r = PD_ERR_CONFIG;
        break;
    case PD_CT_BOOL: {
        bool b;
        if (pd_config_parse_bool(value, &b) != 0) {
            r = PD_ERR_CONFIG;
            break;
        }
        *(bool *)slot = b;
        return 0;
    }
    case PD_CT_ENUM:
        for (int i = 0; k->choices[i] != NULL; i++) {
            if (strcmp(k->choices[i], value) == 0) {
                *(int *)slot = i;
                return 0;
            }
        }
        r = PD_ERR_CONFIG;
        break;
    }
    if (r == 0 && (n < k->min || n > k->max))
        r = PD_ERR_CONFIG;
    if (r != 0) {
        describe_accepted(k, acc, sizeof(acc));
        return fail(c, r, "%s: [%s] %s = \"%s\": invalid value; accepted: %s", origin, s->name, k->name, value, acc);
    }
    *(int64_t *)slot = n;
    return 0;
}

int
pd_config_add(pd_config_t *c, const char *section, const pd_config_key_t *keys, size_t nkeys, void *base)
{
    if (c->nsections == MAX_SECTIONS || find_section(c, section) != NULL)
        return PD_ERR_INTERNAL;
    section_t *s = &c->sections[c->nsections++];
    s->name = section;
    s->keys = keys;
    s->nkeys = nkeys;
    s->base = base;
    for (size_t i = 0; i < nkeys; i++) {
        if (is_string_type(keys[i].type))
            *(char **)((char *)base + keys[i].offset) = NULL;
        int r = set_value(c, s, &keys[i], keys[i].def != NULL ? keys[i].def : "", "default");
        if (r != 0)
            return r; /* a bad default is a bug; the message says which */
    }
    return 0;
}

static void
describe_keys(const section_t *s, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < s->nkeys && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? ", " : "", s->keys[i].name);
}

static void
describe_sections(const pd_config_t *c, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->nsections && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s[%s]", i ? ", " : "", c->sections[i].name);
}

void
pd_config_partial(pd_config_t *c)
{
    c->partial = true;
}

int
pd_config_set(pd_config_t *c, const char *section, const char *key, const char *value, const char *origin)
{
    char acc[768];
    section_t *s = find_section(c, section);
    if (s == NULL) {
        describe_sections(c, acc, sizeof(acc));
        return fail(c, PD_ERR_CONFIG, "%s: unknown section [%s]; accepted: %s", origin, section, acc);
    }
    const pd_config_key_t *k = find_key(s, key);
    if (k == NULL) {
        describe_keys(s, acc, sizeof(acc));
        return fail(c, PD_ERR_CONFIG, "%s: unknown key \"%s\" in [%s]; accepted: %s", origin, key, section, acc);
    }
    return set_value(c, s, k, value, origin);
}

int
pd_config_set_arg(pd_config_t *c, const char *arg, const char *origin)
{
    char sec[64], key[64];
    const char *dot = strchr(arg, '.'), *eq = strchr(arg, '=');
    if (dot == NULL || eq == NULL || dot > eq || (size_t)(dot - arg) >= sizeof(sec) ||
        (size_t)(eq - dot - 1) >= sizeof(key) || dot == arg || eq == dot + 1)
        return fail(c, PD_ERR_CONFIG, "%s: \"%s\": expected section.key=value", origin, arg);
    memcpy(sec, arg, (size_t)(dot - arg));
    sec[dot - arg] = '\0';
    memcpy(key, dot + 1, (size_t)(eq - dot - 1));
    key[eq - dot - 1] = '\0';
    return pd_config_set(c, sec, key, eq + 1, origin);
}

static char *
line_reader(char *str, int num, void *stream)
{
    pd_config_t *c = stream;
    char *r = fgets(str, num, c->cur_file);
    if (r != NULL)
        c->cur_line++;
    return r;
}

static int
ini_cb(void *user, const char *section, const char *name, const char *value)
{
    pd_config_t *c = user;
    char origin[4200];

    snprintf(origin, sizeof(origin), "%s:%d", c->cur_path, c->cur_line);
    if (section[0] == '\0') {
        fail(c, PD_ERR_CONFIG, "%s: key \"%s\" outside any [section]", origin, name);
        return 0;
    }
    if (c->partial && find_section(c, section) == NULL)
        return 1; /* another program's section */
    return pd_config_set(c, section, name, value, origin) == 0 ? 1 : 0;
}

int
pd_config_load_file(pd_config_t *c, const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return fail(c, PD_ERR_CONFIG, "%s: cannot open: %s", path, strerror(errno));
    c->cur_path = path;
    c->cur_file = f;
    c->cur_line = 0;
    c->first_err = 0;
    int line = ini_parse_stream(line_reader, c, ini_cb, c);
    fclose(f);
    c->cur_file = NULL;
    if (line > 0 && c->first_err == 0) /* a syntax error inih found itself */
        return fail(c, PD_ERR_CONFIG, "%s:%d: syntax error (expected [section] or key = value)", path, line);
    if (line < 0)
        return fail(c, PD_ERR_CONFIG, "%s: cannot read", path);
    return c->first_err;
}

int
pd_config_load_env(pd_config_t *c, char **envp)
{
    static const char prefix[] = "PAYD_";
    int first = 0;

    for (char **e = envp; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (strncmp(*e, prefix, sizeof(prefix) - 1) != 0 || eq == NULL)
            continue;
        char name[128];
        size_t nl = (size_t)(eq - *e);
        if (nl >= sizeof(name))
            continue;
        memcpy(name, *e, nl);
        name[nl] = '\0';
        /* find the section whose upper-cased name + '_' prefixes the rest */
        const char *rest = name + sizeof(prefix) - 1;
        bool matched = false, own_section = false;
        for (size_t i = 0; i < c->nsections && !matched; i++) {
            section_t *s = &c->sections[i];
            size_t sl = strlen(s->name);
            bool same = strlen(rest) > sl + 1 && rest[sl] == '_';
            for (size_t j = 0; same && j < sl; j++)
                same = toupper((unsigned char)s->name[j]) == rest[j];
            if (!same)
                continue;
            own_section = true;
            for (size_t k = 0; k < s->nkeys && !matched; k++) {
                const char *kn = s->keys[k].name, *en = rest + sl + 1;
                size_t j = 0;
                while (kn[j] != '\0' && toupper((unsigned char)kn[j]) == en[j])
                    j++;
                if (kn[j] == '\0' && en[j] == '\0') {
                    matched = true;
                    int r = set_value(c, s, &s->keys[k], eq + 1, name);
                    if (r != 0 && first == 0)
                        first = r;
                }
            }
        }
        if (!matched && !pd_config_env_ignored(name) && !(c->partial && !own_section)) {
            int r = fail(c, PD_ERR_CONFIG, "environment: %s: no such setting (names are PAYD_<SECTION>_<KEY>)", name);
            if (first == 0)
                first = r;
        }
    }
    return first;
}

static bool
is_secret_name(const char *name)
{
    return strstr(name, "secret") != NULL || strstr(name, "password") != NULL || strstr(name, "passphrase") != NULL;
}

/* Hides a password inside a value: the userinfo of a URL (scheme://user:PASSWORD@host) and
 * a libpq conninfo's password=VALUE. */
static void
mask_embedded_password(char *v, size_t cap)
{
    char tmp[4200];
    const char *scheme = strstr(v, "://");
    if (scheme != NULL) {
        const char *auth = scheme + 3, *end = auth + strcspn(auth, "/?#");
        const char *at = NULL;
        for (const char *p = auth; p < end; p++)
            if (*p == '@')
                at = p;
        const char *colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon != NULL) {
            snprintf(tmp, sizeof(tmp), "%.*s(set)%s", (int)(colon + 1 - v), v, at);
            snprintf(v, cap, "%s", tmp);
        }
        return;
    }
    char *pw = strstr(v, "password=");
    if (pw != NULL && (pw == v || pw[-1] == ' ')) {
        char *val = pw + strlen("password="), *after = val;
        if (*after == '\'') {
            for (after++; *after != '\0' && *after != '\''; after++)
                if (*after == '\\' && after[1] != '\0')
                    after++;
            if (*after == '\'')
                after++;
        } else {
            after += strcspn(after, " ");
        }
        snprintf(tmp, sizeof(tmp), "%.*s(set)%s", (int)(val - v), v, after);
        snprintf(v, cap, "%s", tmp);
    }
}

static void
format_value(const pd_config_key_t *k, const void *base, char *out, size_t cap)
{
    const void *slot = (const char *)base + k->offset;
    switch (k->type) {
    case PD_CT_STR:
    case PD_CT_PATH:
    case PD_CT_ADDR: {
        const char *v = *(char *const *)slot;
        snprintf(out, cap, "%s", v != NULL ? v : "");
        break;
    }
    case PD_CT_INT:
    case PD_CT_SIZE:
        snprintf(out, cap, "%" PRId64, *(const int64_t *)slot);
        break;
    case PD_CT_MS:
        snprintf(out, cap, "%" PRId64 "ms", *(const int64_t *)slot);
        break;
    case PD_CT_BOOL:
        snprintf(out, cap, "%s", *(const bool *)slot ? "true" : "false");
        break;
    case PD_CT_ENUM:
        snprintf(out, cap, "%s", k->choices[*(const int *)slot]);
        break;
    }
}

void
pd_config_dump(const pd_config_t *c, void *file)
{
    FILE *f = file;
    char v[4200];
    for (size_t i = 0; i < c->nsections; i++) {
        const section_t *s = &c->sections[i];
        fprintf(f, "%s[%s]\n", i ? "\n" : "", s->name);
        for (size_t k = 0; k < s->nkeys; k++) {
            format_value(&s->keys[k], s->base, v, sizeof(v));
            if (is_secret_name(s->keys[k].name) && v[0] != '\0')
                snprintf(v, sizeof(v), "(set)");
            else
                mask_embedded_password(v, sizeof(v));
            fprintf(f, "%s = %s\n", s->keys[k].name, v);
        }
    }
}

void
pd_config_reference(const pd_config_t *c, void *file)
{
    FILE *f = file;
    char acc[512], env[160];
    for (size_t i = 0; i < c->nsections; i++) {
        const section_t *s = &c->sections[i];
        fprintf(f, "\n### [%s]\n\n| key | default | accepted | reload | environment | meaning |\n|---|---|---|---|---|---|\n",
                s->name);
        for (size_t k = 0; k < s->nkeys; k++) {
            const pd_config_key_t *key = &s->keys[k];
            size_t n = (size_t)snprintf(env, sizeof(env), "PAYD_%s_%s", s->name, key->name);
            for (size_t j = 0; j < n && j < sizeof(env); j++)
                env[j] = (char)toupper((unsigned char)env[j]);
            describe_accepted(key, acc, sizeof(acc));
            fprintf(f, "| `%s` | `%s` | %s | %s | `%s` | %s |\n", key->name, key->def ? key->def : "", acc,
                    key->reloadable ? "SIGHUP" : "restart", env, key->help ? key->help : "");
        }
    }
}

bool
pd_config_env_ignored(const char *name)
{
    static const char *const ignored[] = {"PAYD_VAULT_PASSPHRASE", NULL};
    for (size_t i = 0; ignored[i] != NULL; i++)
        if (strncmp(name, ignored[i], strlen(ignored[i])) == 0)
            return true;
    return false;
}
