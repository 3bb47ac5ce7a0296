/* Shared inside the WAF component. */
#ifndef PAYD_WAF_INTERNAL_H
#define PAYD_WAF_INTERNAL_H

#include "payd/cache.h"
#include "payd/waf.h"

/* rules/payd.rules, embedded at build time (embed_rules.cmake) */
extern const char pd_waf_builtin_rules[];

const pd_waf_config_t *pd_waf_config(const pd_waf_t *w);
/* checks the syntax of [waf] route_modes */
int pd_waf_check_route_modes(const char *s, char *err, size_t errcap);

#endif
