/* [cache] url: redis://, rediss:// and redis-sentinel:// forms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/internal.h"

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* percent-decodes s[0..n) into out (cap bytes, NUL-terminated); false if malformed or too long */
static bool
decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return false;
            ch = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        }
        if (ch == '\0' || o + 1 >= cap)
            return false;
        out[o++] = ch;
    }
    out[o] = '\0';
    return true;
}

static bool
parse_port(const char *s, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5)
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* "host:port" or "[v6]:port" */
static bool
parse_hostport(const char *s, size_t n, char *host, size_t hcap, uint16_t *port)
{
    const char *colon;
    size_t hl;
    const char *h = s;
    if (n > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (rb == NULL || (size_t)(rb - s) + 1 >= n || rb[1] != ':')
            return false;
        h = s + 1;
        hl = (size_t)(rb - s) - 1;
        colon = rb + 1;
    } else {
        colon = NULL;
        for (size_t i = n; i > 0; i--)
            if (s[i - 1] == ':') {
                colon = s + i - 1;
                break;
            }
        if (colon == NULL)
            return false;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hcap)
        return false;
    for (size_t i = 0; i < hl; i++) {
        char ch = h[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '-' || ch == ':' || ch == '_'))
            return false;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    return parse_port(colon + 1, (size_t)(s + n - colon - 1), port);
}

static bool
parse_db(const char *s, size_t n, int *db)
{
    if (n == 0 || n > 2)
        return false;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *db = v;
    return v <= 15;
}

int
pd_rurl_parse(pd_rurl_t *u, const char *s, char *err, size_t cap)
{
    memset(u, 0, sizeof(*u));
    static const struct {
        const char *scheme;
        pd_rurl_kind_t kind;
    } schemes[] = {{"redis://", PD_RURL_PLAIN}, {"rediss://", PD_RURL_TLS}, {"redis-sentinel://", PD_RURL_SENTINEL}};
    const char *p = NULL;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t l = strlen(schemes[i].scheme);
        if (s != NULL && strncmp(s, schemes[i].scheme, l) == 0) {
            p = s + l;
            u->kind = schemes[i].kind;
        }
    }
    if (p == NULL) {
        snprintf(err, cap, "[cache] url: must start with redis://, rediss:// or redis-sentinel://");
        return PD_ERR_CONFIG;
    }
    if (strlen(p) > 2048) {
        snprintf(err, cap, "[cache] url: longer than 2048 characters");
        return PD_ERR_CONFIG;
    }
    /* userinfo: up to the last '@' before the first '/' */
    const char *slash = strchr(p, '/');
    const char *end = slash != NULL ? slash : p + strlen(p);
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ul = colon != NULL ? (size_t)(colon - p) : (size_t)(at - p);
        if (!decode(p, ul, u->user, sizeof(u->user))) {
            snprintf(err, cap, "[cache] url: the user name is malformed or too long");
            return PD_ERR_CONFIG;
        }
        if (colon == NULL) { /* redis://password@host is the older AUTH form; take it as the password */
            memcpy(u->password, u->user, sizeof(u->password) < sizeof(u->user) ? sizeof(u->password) : sizeof(u->user));
            u->user[0] = '\0';
        } else if (!decode(colon + 1, (size_t)(at - colon - 1), u->password, sizeof(u->password))) {
            snprintf(err, cap, "[cache] url: the password is malformed (percent-encode reserved characters) or too long");
            return PD_ERR_CONFIG;
        }
        p = at + 1;
    }
    /* hosts: one, or comma-separated sentinels */
    for (const char *h = p; h < end;) {
        const char *comma = memchr(h, ',', (size_t)(end - h));
        const char *he = comma != NULL ? comma : end;
        if (u->nhosts == PD_RURL_MAX_HOSTS) {
            snprintf(err, cap, "[cache] url: more than %d hosts", PD_RURL_MAX_HOSTS);
            return PD_ERR_CONFIG;
        }
        if (!parse_hostport(h, (size_t)(he - h), u->hosts[u->nhosts].host, sizeof(u->hosts[0].host),
                            &u->hosts[u->nhosts].port)) {
            snprintf(err, cap, "[cache] url: \"%.*s\" is not host:port (port 1-65535)", (int)(he - h > 200 ? 200 : he - h),
                     h);
            return PD_ERR_CONFIG;
        }
        u->nhosts++;
        h = comma != NULL ? comma + 1 : end;
    }
    if (u->nhosts == 0) {
        snprintf(err, cap, "[cache] url: no host:port");
        return PD_ERR_CONFIG;
    }
    if (u->kind != PD_RURL_SENTINEL && u->nhosts > 1) {
        snprintf(err, cap, "[cache] url: several hosts need redis-sentinel://host:port,host:port/master-name");
        return PD_ERR_CONFIG;
    }
    const char *path = slash != NULL ? slash + 1 : NULL;
    if (u->kind == PD_RURL_SENTINEL) {
        const char *ps = path != NULL ? strchr(path, '/') : NULL;
        size_t ml = path == NULL ? 0 : ps != NULL ? (size_t)(ps - path) : strlen(path);
        if (ml == 0 || ml >= sizeof(u->master)) {
            snprintf(err, cap, "[cache] url: redis-sentinel:// needs the master's name: redis-sentinel://host:port,host:port/master-name");
            return PD_ERR_CONFIG;
        }
        for (size_t i = 0; i < ml; i++)
            if (path[i] <= ' ' || path[i] == '%' || path[i] == '?' || path[i] == '#') {
                snprintf(err, cap, "[cache] url: the master name holds a space, '%%', '?' or '#'");
                return PD_ERR_CONFIG;
            }
        memcpy(u->master, path, ml);
        path = ps != NULL ? ps + 1 : NULL;
    }
    if (path != NULL && *path != '\0' && !parse_db(path, strlen(path), &u->db)) {
        snprintf(err, cap, "[cache] url: the database is a number 0-15 after the last '/'");
        return PD_ERR_CONFIG;
    }
    return 0;
}
