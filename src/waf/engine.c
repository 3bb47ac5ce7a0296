/*
 * The signature engine: rules grouped by what they look at (parameters, header
 * values, the User-Agent, header names) and by value transformation, each group
 * compiled into one Hyperscan block-mode database at start. A scan transforms the
 * value once per variant and runs the matching databases over it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hs/hs.h>

#include "payd/log.h"
#include "payd/waf.h"
#include "waf/internal.h"

enum { K_ARGS, K_HEADERS, K_UA, K_HNAME, K_COUNT };
#define VALUE_MAX (64 * 1024) /* longer values are scanned on their first 64 KiB */

struct pd_waf {
    pd_waf_config_t cfg;
    pd_waf_rule_t *rules;
    size_t nrules;
    hs_database_t *db[K_COUNT][PD_WV_COUNT];
    hs_scratch_t *proto;
    pthread_key_t scratch_key;
    pd_waf_route_mode_t *route_modes; /* [waf] route_modes, parsed at start */
    size_t nroute_modes;
    size_t groups_cached; /* databases read from cfg.cache_path */
};

static bool
rule_in(const pd_waf_rule_t *r, int kind)
{
    switch (kind) {
    case K_ARGS: return r->target == PD_WT_ANY || r->target == PD_WT_ARGS;
    case K_HEADERS: return r->target == PD_WT_ANY || r->target == PD_WT_HEADERS;
    case K_UA: return r->target == PD_WT_ANY || r->target == PD_WT_HEADERS || r->target == PD_WT_UA;
    default: return r->target == PD_WT_HNAME;
    }
}

static int
compile_group(pd_waf_t *w, int kind, pd_waf_variant_t v, char *err, size_t errcap)
{
    size_t n = 0;
    const char **exprs = calloc(w->nrules + 1, sizeof(*exprs));
    unsigned *flags = calloc(w->nrules + 1, sizeof(*flags)), *ids = calloc(w->nrules + 1, sizeof(*ids));
    int rc = 0;
    if (exprs == NULL || flags == NULL || ids == NULL) {
        rc = PD_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < w->nrules; i++) {
        const pd_waf_rule_t *r = &w->rules[i];
        if (r->variant != v || !rule_in(r, kind) || r->paranoia > w->cfg.paranoia)
            continue;
        exprs[n] = r->pattern;
        flags[n] = HS_FLAG_CASELESS | HS_FLAG_DOTALL | HS_FLAG_SINGLEMATCH;
        ids[n] = (unsigned)i;
        n++;
    }
    if (n == 0)
        goto out;
    uint8_t key[32];
    const char *cache = w->cfg.cache_path;
    if (cache != NULL && pd_waf_dbcache_key(exprs, flags, ids, n, HS_MODE_BLOCK, key) != 0)
        cache = NULL;
    hs_compile_error_t *ce = NULL;
    if (cache != NULL && pd_waf_dbcache_load(cache, key, &w->db[kind][v]) == 0) {
        w->groups_cached++;
    } else if (hs_compile_multi(exprs, flags, ids, (unsigned)n, HS_MODE_BLOCK, NULL, &w->db[kind][v], &ce) !=
               HS_SUCCESS) {
        if (ce != NULL && ce->expression >= 0) {
            const pd_waf_rule_t *r = &w->rules[ids[ce->expression]];
            snprintf(err, errcap, "rule %u: pattern refused by Hyperscan: %s", r->id, ce->message);
        } else {
            snprintf(err, errcap, "cannot compile the rules: %s", ce != NULL ? ce->message : "unknown error");
        }
        hs_free_compile_error(ce);
        rc = PD_ERR_CONFIG;
        goto out;
    } else if (cache != NULL) {
        pd_waf_dbcache_save(cache, key, w->db[kind][v]);
    }
    if (hs_alloc_scratch(w->db[kind][v], &w->proto) != HS_SUCCESS) {
        snprintf(err, errcap, "cannot allocate Hyperscan scratch space");
        rc = PD_ERR_NOMEM;
    }
out:
    free(exprs);
    free(flags);
    free(ids);
    return rc;
}

static void
scratch_free(void *p)
{
    hs_free_scratch(p);
}

static int
load_file(pd_waf_t *w, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errcap, "%s: cannot open the rule file", path);
        return PD_ERR_CONFIG;
    }
    char *text = NULL;
    size_t len = 0, cap = 0, got;
    char chunk[8192];
    int rc = 0;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (len + got > 16u * 1024 * 1024) {
            snprintf(err, errcap, "%s: rule file larger than 16 MiB", path);
            rc = PD_ERR_CONFIG;
            break;
        }
        if (len + got > cap) {
            cap = (len + got) * 2;
            char *t = realloc(text, cap);
            if (t == NULL) {
                rc = PD_ERR_NOMEM;
                break;
            }
            text = t;
        }
        memcpy(text + len, chunk, got);
        len += got;
    }
    fclose(f);
    if (rc == 0)
        rc = pd_waf_rules_parse(text != NULL ? text : "", len, path, &w->rules, &w->nrules, err, errcap);
    free(text);
    return rc;
}

int
pd_waf_new(pd_waf_t **out, const pd_waf_config_t *cfg, char *err, size_t errcap)
{
    pd_waf_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return PD_ERR_NOMEM;
    w->cfg = *cfg;
    if (pthread_key_create(&w->scratch_key, scratch_free) != 0) {
        free(w);
        return PD_ERR_NOMEM;
    }
    int rc = pd_waf_route_modes_parse(cfg->route_modes, &w->route_modes, &w->nroute_modes, err, errcap);
    if (rc == 0)
        rc = pd_waf_rules_parse(pd_waf_builtin_rules, strlen(pd_waf_builtin_rules), "built-in rules", &w->rules,
                                &w->nrules, err, errcap);
    if (rc == 0 && cfg->rules_file != NULL && cfg->rules_file[0] != '\0')
        rc = load_file(w, cfg->rules_file, err, errcap);
    for (int k = 0; rc == 0 && k < K_COUNT; k++)
        for (int v = 0; rc == 0 && v < PD_WV_COUNT; v++)
            rc = compile_group(w, k, (pd_waf_variant_t)v, err, errcap);
    w->cfg.cache_path = NULL; /* used only here: the caller's may not outlive this call */
    if (rc != 0) {
        pd_waf_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void
pd_waf_free(pd_waf_t *w)
{
    if (w == NULL)
        return;
    hs_scratch_t *mine = pthread_getspecific(w->scratch_key);
    if (mine != NULL)
        hs_free_scratch(mine);
    pthread_key_delete(w->scratch_key);
    for (int k = 0; k < K_COUNT; k++)
        for (int v = 0; v < PD_WV_COUNT; v++)
            hs_free_database(w->db[k][v]);
    hs_free_scratch(w->proto);
    pd_waf_rules_free(w->rules, w->nrules);
    free(w->route_modes);
    free(w);
}

size_t
pd_waf_groups_cached(const pd_waf_t *w)
{
    return w->groups_cached;
}

size_t
pd_waf_rule_count(const pd_waf_t *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->nrules; i++)
        n += w->rules[i].paranoia <= w->cfg.paranoia;
    return n;
}

const pd_waf_config_t *
pd_waf_config(const pd_waf_t *w)
{
    return &w->cfg;
}

const pd_waf_route_mode_t *
pd_waf_route_modes(const pd_waf_t *w, size_t *n)
{
    *n = w->nroute_modes;
    return w->route_modes;
}

typedef struct {
    const pd_waf_t *w;
    pd_waf_verdict_t *v;
    const char *location;
} match_ctx_t;

static int
on_match(unsigned int idx, unsigned long long from, unsigned long long to, unsigned int flags, void *arg)
{
    (void)from;
    (void)to;
    (void)flags;
    match_ctx_t *m = arg;
    const pd_waf_rule_t *r = &m->w->rules[idx];
    pd_waf_verdict_t *v = m->v;
    for (size_t i = 0; i < v->nhits && i < PD_WAF_MAX_HITS; i++)
        if (v->ids[i] == r->id)
            return 0; /* a rule counts once per request */
    if (v->nhits == 0) {
        v->family = r->family;
        snprintf(v->location, sizeof(v->location), "%s", m->location);
    }
    if (v->nhits < PD_WAF_MAX_HITS)
        v->ids[v->nhits] = r->id;
    v->nhits++;
    v->score += r->score;
    return 0;
}

int
pd_waf_scan(pd_waf_t *w, pd_waf_target_t target, const char *location, const uint8_t *value, size_t len,
            pd_waf_verdict_t *v)
{
    int kind = target == PD_WT_ARGS ? K_ARGS : target == PD_WT_UA ? K_UA : target == PD_WT_HNAME ? K_HNAME : K_HEADERS;
    hs_scratch_t *s = pthread_getspecific(w->scratch_key);
    if (s == NULL) {
        if (hs_clone_scratch(w->proto, &s) != HS_SUCCESS)
            return PD_ERR_NOMEM;
        pthread_setspecific(w->scratch_key, s);
    }
    if (len > VALUE_MAX)
        len = VALUE_MAX;
    static _Thread_local uint8_t buf[VALUE_MAX];
    match_ctx_t m = {w, v, location};
    for (int var = 0; var < PD_WV_COUNT; var++) {
        hs_database_t *db = w->db[kind][var];
        if (db == NULL)
            continue;
        size_t n = pd_waf_transform((pd_waf_variant_t)var, value, len, buf, sizeof(buf));
        if (n == 0)
            continue;
        if (hs_scan(db, (const char *)buf, (unsigned)n, 0, s, on_match, &m) != HS_SUCCESS)
            return PD_ERR_INTERNAL;
    }
    return 0;
}
