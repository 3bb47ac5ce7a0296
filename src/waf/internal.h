/* Shared inside the WAF component. */
#ifndef PAYD_WAF_INTERNAL_H
#define PAYD_WAF_INTERNAL_H

#include <hs/hs.h>

#include "payd/cache.h"
#include "payd/waf.h"

/* rules/payd.rules, embedded at build time (embed_rules.cmake) */
extern const char pd_waf_builtin_rules[];

const pd_waf_config_t *pd_waf_config(const pd_waf_t *w);

/* one entry of [waf] route_modes: "METHOD /route/template=block|detect|off" */
typedef struct {
    char method[16];
    char template[256];
    pd_waf_mode_t mode;
} pd_waf_route_mode_t;

/* Parses [waf] route_modes once at start into a malloc'd array (*out, *n; NULL and 0
 * when empty); PD_ERR_CONFIG with the malformed entry in err, so a typo stops payd. */
int pd_waf_route_modes_parse(const char *s, pd_waf_route_mode_t **out, size_t *n, char *err, size_t errcap);
/* the parsed route modes of w */
const pd_waf_route_mode_t *pd_waf_route_modes(const pd_waf_t *w, size_t *n);

/* dbcache.c: compiled databases on disk. The key is the SHA-256 of what one
 * hs_compile_multi call compiles; load gives 0 and *db, or PD_ERR_NOTFOUND (absent or
 * not intact: compile it); save keeps db under key, logging (once per call) when it
 * cannot. */
int pd_waf_dbcache_key(const char *const *exprs, const unsigned *flags, const unsigned *ids, size_t n, unsigned mode,
                       uint8_t key[32]) PD_WUR;
int pd_waf_dbcache_load(const char *dir, const uint8_t key[32], hs_database_t **db) PD_WUR;
void pd_waf_dbcache_save(const char *dir, const uint8_t key[32], const hs_database_t *db);

#endif
