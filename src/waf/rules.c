/* The rule file format (see include/payd/waf.h): one rule per line, strict. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payd/waf.h"

static const char *const targets[] = {"any", "args", "headers", "ua", "hname", NULL};
static const char *const variants[] = {"raw", "norm", "nospace", NULL};

static int
lookup(const char *const *names, const char *s, size_t n)
{
    for (int i = 0; names[i] != NULL; i++)
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0)
            return i;
    return -1;
}

/* next whitespace-separated field of [*p, end); false at the end of the line */
static bool
field(const char **p, const char *end, const char **f, size_t *n)
{
    while (*p < end && (**p == ' ' || **p == '\t'))
        (*p)++;
    *f = *p;
    while (*p < end && **p != ' ' && **p != '\t')
        (*p)++;
    *n = (size_t)(*p - *f);
    return *n > 0;
}

static bool
parse_uint(const char *s, size_t n, long max, long *out)
{
    if (n == 0 || n > 9)
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static int
parse_line(const char *p, const char *end, pd_waf_rule_t *r, const char **why)
{
    const char *f;
    size_t n;
    long v;
    memset(r, 0, sizeof(*r));
    if (!field(&p, end, &f, &n) || !parse_uint(f, n, 999999999, &v) || v == 0)
        return *why = "the id must be a positive integer", -1;
    r->id = (uint32_t)v;
    if (!field(&p, end, &f, &n) || n >= sizeof(r->family))
        return *why = "missing family (at most 23 characters)", -1;
    memcpy(r->family, f, n);
    if (!field(&p, end, &f, &n) || !parse_uint(f, n, 4, &v) || v < 1)
        return *why = "paranoia must be 1 to 4", -1;
    r->paranoia = (int)v;
    if (!field(&p, end, &f, &n) || !parse_uint(f, n, 100, &v) || v < 1)
        return *why = "score must be 1 to 100", -1;
    r->score = (int)v;
    int t;
    if (!field(&p, end, &f, &n) || (t = lookup(targets, f, n)) < 0)
        return *why = "target must be one of any, args, headers, ua, hname", -1;
    r->target = (pd_waf_target_t)t;
    if (!field(&p, end, &f, &n) || (t = lookup(variants, f, n)) < 0)
        return *why = "variant must be one of raw, norm, nospace", -1;
    r->variant = (pd_waf_variant_t)t;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    const char *pe = end;
    while (pe > p && (pe[-1] == ' ' || pe[-1] == '\t' || pe[-1] == '\r'))
        pe--;
    if (pe == p)
        return *why = "missing pattern", -1;
    if (memchr(p, '\0', (size_t)(pe - p)) != NULL)
        return *why = "NUL byte in the pattern (write \\x00)", -1;
    size_t plen = (size_t)(pe - p);
    if ((r->pattern = malloc(plen + 1)) == NULL)
        return *why = "out of memory", -1;
    memcpy(r->pattern, p, plen);
    r->pattern[plen] = '\0';
    return 0;
}

int
pd_waf_rules_parse(const char *text, size_t len, const char *source, pd_waf_rule_t **rules, size_t *n, char *err,
                   size_t errcap)
{
    const char *p = text, *end = text + len;
    int line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        line++;
        const char *q = p;
        while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
            q++;
        if (q < le && *q != '#') {
            pd_waf_rule_t r;
            const char *why = NULL;
            if (memchr(q, '\0', (size_t)(le - q)) != NULL) {
                snprintf(err, errcap, "%s:%d: a NUL byte in the line", source, line);
                return PD_ERR_CONFIG;
            }
            if (parse_line(q, le, &r, &why) != 0) {
                snprintf(err, errcap, "%s:%d: %s", source, line, why);
                return PD_ERR_CONFIG;
            }
            for (size_t i = 0; i < *n; i++) {
                if ((*rules)[i].id == r.id && (*rules)[i].variant == r.variant && (*rules)[i].target == r.target &&
                    strcmp((*rules)[i].pattern, r.pattern) == 0) {
                    snprintf(err, errcap, "%s:%d: rule %u repeats an earlier rule", source, line, r.id);
                    free(r.pattern);
                    return PD_ERR_CONFIG;
                }
            }
            pd_waf_rule_t *grown = realloc(*rules, (*n + 1) * sizeof(**rules));
            if (grown == NULL) {
                free(r.pattern);
                snprintf(err, errcap, "%s:%d: out of memory", source, line);
                return PD_ERR_NOMEM;
            }
            *rules = grown;
            (*rules)[(*n)++] = r;
        }
        p = nl != NULL ? nl + 1 : end;
    }
    return 0;
}

void
pd_waf_rules_free(pd_waf_rule_t *rules, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rules[i].pattern);
    free(rules);
}
