/*
 * The web application firewall: signature rules over every decoded request value,
 * compiled into Hyperscan databases at start, with anomaly scoring.
 *
 * Rules come from a built-in rule file (src/waf/rules/payd.rules) and optionally an
 * operator file ([waf] rules_file) in the same format:
 *
 *   # id   family  paranoia  score  target   variant  pattern
 *   942100 sqli    1         5      any      norm     \bunion\b[\s(]+(?:all\s+)?select\b
 *
 * target:  any (parameters, path, header values), args (parameters and path),
 *          headers (header values), ua (User-Agent), hname (header names)
 * variant: which transformation of the value the pattern sees
 *          raw     URL-decoded (twice, '+' as space), lower-cased
 *          norm    raw + HTML entities, \uXXXX / \xHH / %uXXXX escapes, full-width
 *                  forms folded to ASCII, /comments/ removed, whitespace compressed
 *          nospace norm without any whitespace ("f o r m" -> "form")
 * The pattern is the rest of the line (Hyperscan syntax: no back-references or
 * look-around). Matching is case-insensitive. A request whose summed score reaches
 * [waf] threshold is blocked (mode block) or logged (mode detect).
 */
#ifndef PAYD_WAF_H
#define PAYD_WAF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/config.h"
#include "payd/error.h"
#include "payd/http.h"

typedef enum { PD_WAF_BLOCK, PD_WAF_DETECT, PD_WAF_OFF } pd_waf_mode_t;

typedef struct {
    int mode;            /* pd_waf_mode_t */
    int64_t paranoia;    /* rules above this level are not loaded */
    int64_t threshold;   /* anomaly score that blocks */
    char *rules_file;    /* extra operator rules (empty: built-in rules only) */
    char *route_modes;   /* "POST /v1/tokens=detect, GET /v1/events=off" */
    int64_t ip_rate_limit;     /* requests per client address ... */
    int64_t ip_rate_window_ms; /* ... in this sliding window, then 403 */
    char *trusted_proxies;     /* CIDRs whose X-Forwarded-For is believed */
    char *allow;               /* CIDRs never rate-limited */
    char *deny;                /* CIDRs always refused */
    char *cache_dir;           /* compiled rules kept here (empty: DATA_DIR/waf-cache; off: none) */
    const char *cache_path;    /* set by the caller from cache_dir: the directory used, or NULL */
} pd_waf_config_t;

int pd_waf_config_register(pd_config_t *cfg, pd_waf_config_t *c) PD_WUR;

typedef enum { PD_WT_ANY, PD_WT_ARGS, PD_WT_HEADERS, PD_WT_UA, PD_WT_HNAME } pd_waf_target_t;
typedef enum { PD_WV_RAW, PD_WV_NORM, PD_WV_NOSPACE, PD_WV_COUNT } pd_waf_variant_t;

typedef struct {
    uint32_t id;
    char family[24];
    int paranoia;
    int score;
    pd_waf_target_t target;
    pd_waf_variant_t variant;
    char *pattern;
} pd_waf_rule_t;

/* Parses rule text (source names it in errors). Appends to *rules (realloc'd; free
 * with pd_waf_rules_free). On a bad line returns PD_ERR_CONFIG with "source:line:
 * reason" in err. */
int pd_waf_rules_parse(const char *text, size_t len, const char *source, pd_waf_rule_t **rules, size_t *n,
                       char *err, size_t errcap) PD_WUR;
void pd_waf_rules_free(pd_waf_rule_t *rules, size_t n);

/* The transformations: writes the variant of in into out (at most cap bytes, never
 * longer than the input would need); returns the length written. */
size_t pd_waf_transform(pd_waf_variant_t v, const uint8_t *in, size_t len, uint8_t *out, size_t cap);

typedef struct pd_waf pd_waf_t;

/* Loads the built-in rules and cfg->rules_file, compiles them. err explains a failure
 * (rule file line, or the pattern Hyperscan refused and why). */
int pd_waf_new(pd_waf_t **out, const pd_waf_config_t *cfg, char *err, size_t errcap) PD_WUR;
void pd_waf_free(pd_waf_t *w);
size_t pd_waf_rule_count(const pd_waf_t *w);
/* how many of the compiled rule groups came from cfg->cache_path rather than a compile */
size_t pd_waf_groups_cached(const pd_waf_t *w);

#define PD_WAF_MAX_HITS 8
typedef struct {
    int score;
    size_t nhits;
    uint32_t ids[PD_WAF_MAX_HITS];
    const char *family;     /* of the first hit */
    char location[64];      /* where the first hit was: "param:description", "header:user-agent" */
} pd_waf_verdict_t;

/* Scans one value (location names it in the verdict, e.g. "param:metadata[note]") with
 * the rules for target, adding hits to v. Thread-safe (per-thread scratch). */
int pd_waf_scan(pd_waf_t *w, pd_waf_target_t target, const char *location, const uint8_t *value, size_t len,
                pd_waf_verdict_t *v) PD_WUR;

/* The HTTP filter (PD_STAGE_PARSED): scans parameter names and values, the path and
 * header values; blocks with 403 request_blocked when the score reaches the
 * threshold. Records its verdict in r->waf_action and r->waf_rules for the access log. */
int pd_waf_filter(pd_req_t *r, void *arg);
/* The per-client-address rules (PD_STAGE_EARLY): denylist, allowlist, rate rule. */
typedef struct pd_waf_ip pd_waf_ip_t;
int pd_waf_ip_new(pd_waf_ip_t **out, const pd_waf_config_t *cfg, char *err, size_t errcap) PD_WUR;
void pd_waf_ip_free(pd_waf_ip_t *ip);
int pd_waf_ip_filter(pd_req_t *r, void *arg);
/* The edge's refused hook (pd_server_on_refused): a request refused as malformed
 * counts toward its client address's rate rule like any other (allowlisted addresses
 * excepted), so a client sending garbage reaches the limit too. */
void pd_waf_ip_count_refused(pd_req_t *r, void *arg);

#endif
