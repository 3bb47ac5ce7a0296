/*
 * The WAF in the request pipeline (PD_STAGE_PARSED): every parameter name and
 * value, the path, and every header value but the structural ones are scanned; a
 * request reaching the threshold is refused with 403 request_blocked. Logs name the
 * rules, family and location, never the value (it could hold cardholder data).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/schema.h"
#include "waf/internal.h"

static const char *const modes[] = {"block", "detect", "off", NULL};

#define C(f) offsetof(pd_waf_config_t, f)
static const pd_config_key_t keys[] = {
    {"mode", PD_CT_ENUM, C(mode), "block", .choices = modes,
     .help = "block: refuse with 403; detect: log only; off: do not scan"},
    {"paranoia", PD_CT_INT, C(paranoia), "1", 1, 4, .help = "load rules up to this paranoia level"},
    {"threshold", PD_CT_INT, C(threshold), "5", 1, 1000, .help = "anomaly score at which a request is blocked"},
    {"rules_file", PD_CT_STR, C(rules_file), "", .help = "extra rules in the payd rule format (docs/waf.md)"},
    {"route_modes", PD_CT_STR, C(route_modes), "",
     .help = "per-route modes, e.g. \"POST /v1/tokens=detect, GET /v1/events=off\""},
    {"ip_rate_limit", PD_CT_INT, C(ip_rate_limit), "2000", 1, 100000000,
     .help = "requests per client address within ip_rate_window_ms; more are refused with 403"},
    {"ip_rate_window_ms", PD_CT_MS, C(ip_rate_window_ms), "5m", 1000, 86400000, .help = "window of the rate rule"},
    {"trusted_proxies", PD_CT_STR, C(trusted_proxies), "",
     .help = "CIDRs of proxies whose X-Forwarded-For names the client (e.g. 10.0.0.0/8)"},
    {"allow", PD_CT_STR, C(allow), "", .help = "CIDRs exempt from the rate rule"},
    {"deny", PD_CT_STR, C(deny), "", .help = "CIDRs always refused with 403"},
    {"cache_dir", PD_CT_STR, C(cache_dir), "",
     .help = "compiled rules are kept here, so a start does not compile them again (empty: DATA_DIR/waf-cache; "
             "off: never kept)"},
};
#undef C

int
pd_waf_config_register(pd_config_t *cfg, pd_waf_config_t *c)
{
    return pd_config_add(cfg, "waf", keys, sizeof(keys) / sizeof(keys[0]), c);
}

/* the mode for this request: its route_modes entry, else the default */
static pd_waf_mode_t
route_mode(const pd_waf_t *w, const pd_req_t *r)
{
    size_t n;
    const pd_waf_route_mode_t *m = pd_waf_route_modes(w, &n);
    for (size_t i = 0; r->route != NULL && i < n; i++)
        if (strcmp(m[i].template, r->route->pattern) == 0 && strlen(m[i].method) == r->method.len &&
            memcmp(m[i].method, r->method.p, r->method.len) == 0)
            return m[i].mode;
    return (pd_waf_mode_t)pd_waf_config(w)->mode;
}

/* one "METHOD /template=mode" entry of [waf] route_modes (between p and e) into out */
static bool
parse_route_mode(const char *p, const char *e, pd_waf_route_mode_t *out)
{
    const char *sp = memchr(p, ' ', (size_t)(e - p)), *eq = memchr(p, '=', (size_t)(e - p));
    const char *end = e;
    while (end > p && end[-1] == ' ')
        end--;
    if (sp == NULL || eq == NULL || sp > eq || sp[1] != '/' || (size_t)(sp - p) >= sizeof(out->method) ||
        (size_t)(eq - sp - 1) >= sizeof(out->template))
        return false;
    snprintf(out->method, sizeof(out->method), "%.*s", (int)(sp - p), p);
    snprintf(out->template, sizeof(out->template), "%.*s", (int)(eq - sp - 1), sp + 1);
    for (int m = 0; modes[m] != NULL; m++) {
        if ((size_t)(end - eq - 1) == strlen(modes[m]) && memcmp(eq + 1, modes[m], strlen(modes[m])) == 0) {
            out->mode = (pd_waf_mode_t)m;
            return true;
        }
    }
    return false;
}

int
pd_waf_route_modes_parse(const char *s, pd_waf_route_mode_t **out, size_t *n, char *err, size_t errcap)
{
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    for (const char *p = s; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        const char *e = p + strcspn(p, ",");
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            pd_waf_route_mode_t *grown = realloc(*out, cap * sizeof(**out));
            if (grown == NULL) {
                free(*out);
                *out = NULL;
                return PD_ERR_NOMEM;
            }
            *out = grown;
        }
        if (!parse_route_mode(p, e, &(*out)[*n])) {
            snprintf(err, errcap, "[waf] route_modes: \"%.*s\" is not METHOD /route/template=block|detect|off",
                     (int)(e - p), p);
            free(*out);
            *out = NULL;
            *n = 0;
            return PD_ERR_CONFIG;
        }
        (*n)++;
        p = e;
    }
    return 0;
}

/* headers that carry framing or credentials, not content an attacker controls freely */
static bool
structural(pd_view_t name)
{
    static const char *const skip[] = {"host", "content-length", "content-type", "authorization", "connection",
                                       "transfer-encoding", "te", "accept-encoding", ":authority", NULL};
    for (int i = 0; skip[i] != NULL; i++)
        if (name.len == strlen(skip[i]) && memcmp(name.p, skip[i], name.len) == 0)
            return true;
    return false;
}

/* Values the positive model (the route's schema) already confines to a closed form:
 * numbers, booleans, enums, ids, currencies, digits, and http(s) URLs without spaces
 * (webhook URLs, which also pass the SSRF check). Only free text is scanned. */
static bool
closed_type(const pd_req_t *r, pd_view_t key)
{
    const pd_field_t *f = r->route != NULL ? pd_schema_field(r->route->schema, key) : NULL;
    if (f == NULL)
        return false;
    if (f->flags & PD_FF_NOSCAN)
        return true; /* parsed by the handler's grammar, bound as parameters (a search query) */
    switch (f->type) {
    case PD_FT_INT:
    case PD_FT_BOOL:
    case PD_FT_ENUM:
    case PD_FT_ID:
    case PD_FT_CURRENCY:
    case PD_FT_DIGITS:
    case PD_FT_URL: return true;
    default: return false;
    }
}

/* the rule ids of v as "942100,942190" */
static void
rule_ids(const pd_waf_verdict_t *v, char *ids, size_t cap)
{
    size_t used = 0;
    ids[0] = '\0';
    for (size_t i = 0; i < v->nhits && i < PD_WAF_MAX_HITS && used < cap; i++)
        used += (size_t)snprintf(ids + used, cap - used, "%s%u", i ? "," : "", v->ids[i]);
}

static int
scan(pd_waf_t *w, pd_waf_target_t t, const char *kind, pd_view_t what, pd_view_t value, pd_waf_verdict_t *v)
{
    char loc[64];
    snprintf(loc, sizeof(loc), "%s:%.*s", kind, (int)(what.len > 48 ? 48 : what.len), (const char *)what.p);
    return pd_waf_scan(w, t, loc, value.p, value.len, v);
}

int
pd_waf_filter(pd_req_t *r, void *arg)
{
    pd_waf_t *w = arg;
    const pd_waf_config_t *cfg = pd_waf_config(w);
    pd_waf_mode_t mode = route_mode(w, r);
    /* health checks (public, no parameters) reach no application code: not scanned */
    if (mode == PD_WAF_OFF || (r->route != NULL && (r->route->flags & PD_ROUTE_PUBLIC) && r->route->schema == NULL))
        return 0;
    pd_waf_verdict_t *v = pd_arena_calloc(&r->arena, sizeof(*v));
    if (v == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return 1;
    }
    int rc = scan(w, PD_WT_ARGS, "path", PD_VIEW_LIT("path"), r->path, v);
    for (size_t i = 0; rc == 0 && i < r->params.n; i++) {
        const pd_param_t *p = &r->params.v[i];
        if ((rc = scan(w, PD_WT_ARGS, "param-name", p->key, p->key, v)) == 0 && !closed_type(r, p->key))
            rc = scan(w, PD_WT_ARGS, "param", p->key, p->value, v);
    }
    pd_view_t name, value;
    for (size_t i = 0; rc == 0 && pd_req_header_at(r, i, &name, &value); i++) {
        if ((rc = scan(w, PD_WT_HNAME, "header-name", name, name, v)) != 0 || structural(name))
            continue;
        bool ua = name.len == 10 && memcmp(name.p, "user-agent", 10) == 0;
        rc = scan(w, ua ? PD_WT_UA : PD_WT_HEADERS, "header", name, value, v);
    }
    if (rc != 0) {
        /* fail closed: a scan that cannot run does not let the request through */
        pd_log_error("waf: scan failed", PD_LS("request_id", r->id), PD_LERR(rc));
        pd_resp_error(r, 503, "api_error", "waf_unavailable", "The request could not be inspected. Retry later.", NULL);
        return 1;
    }
    if (v->score < cfg->threshold) {
        r->waf_action = "pass";
        pd_mx_inc2(PD_MX_WAF_DECISIONS, PD_MX_WAF_PASS, PD_MX_WAF_FAMILY_NONE);
        return 0;
    }
    r->waf_action = mode == PD_WAF_BLOCK ? "block" : "log";
    pd_mx_inc2(PD_MX_WAF_DECISIONS, mode == PD_WAF_BLOCK ? PD_MX_WAF_BLOCK : PD_MX_WAF_LOG, pd_mx_waf_family(v->family));
    rule_ids(v, r->waf_rules, sizeof(r->waf_rules));
    pd_log_warn(mode == PD_WAF_BLOCK ? "waf: request blocked" : "waf: request matched (detect mode)",
                PD_LS("request_id", r->id), PD_LS("rules", r->waf_rules), PD_LS("family", v->family),
                PD_LS("location", v->location), PD_LI("score", v->score), PD_LS("peer", r->peer),
                PD_LS("route", r->route != NULL ? r->route->pattern : ""));
    if (mode != PD_WAF_BLOCK)
        return 0;
    pd_resp_error(r, 403, "invalid_request_error", "request_blocked",
                  "This request was blocked by the web application firewall. Contact support with the request id "
                  "if you believe this is a mistake.",
                  NULL);
    return 1;
}
