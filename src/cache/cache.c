/* The cache interface over its two backends, [cache] and the process's shared cache. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/internal.h"
#include "payd/redis_link.h"

struct pd_cache {
    pd_mem_t *mem;     /* backend = memory */
    pd_redis_t *redis; /* backend = redis */
    int refs;          /* under g_mu, for the shared one */
};

static const char *const backends[] = {"memory", "redis", NULL};
#define C(f) offsetof(pd_cache_config_t, f)
static const pd_config_key_t keys[] = {
    {"backend", PD_CT_ENUM, C(backend), "memory", .choices = backends,
     .help = "where limits live: memory (this node) or redis (shared by every node; see docs/redis.md)"},
    {"url", PD_CT_STR, C(url), "",
     .help = "redis://[user:password@]host:port/db, rediss://... (TLS) or redis-sentinel://host:port,host:port/master-name"},
    {"tls_ca", PD_CT_PATH, C(tls_ca), "", .help = "CA certificate file for rediss:// (empty: the system's CA store)"},
    {"password_file", PD_CT_PATH, C(password_file), "",
     .help = "file whose first line is the Redis password (instead of one in the url)"},
    {"password_secret", PD_CT_STR, C(password_secret), "",
     .help = "vault secret holding the Redis password (\"PASSWORD\" or \"USER\\nPASSWORD\"; rotations are picked up)"},
    {"timeout_ms", PD_CT_MS, C(timeout_ms), "1s", 10, 60000,
     .help = "Redis connect and round-trip timeout; past it limits fall back to this node until it reconnects"},
};
#undef C

static pd_cache_config_t g_cfg_storage;
static const pd_cache_config_t *g_cfg;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pd_cache_t *g_shared;

int
pd_cache_config_register(pd_config_t *cfg)
{
    int r = pd_config_add(cfg, "cache", keys, sizeof(keys) / sizeof(keys[0]), &g_cfg_storage);
    if (r == 0)
        g_cfg = &g_cfg_storage;
    return r;
}

const pd_cache_config_t *
pd_cache_config(void)
{
    return g_cfg;
}

int
pd_cache_new_memory(pd_cache_t **out, int64_t max_entries)
{
    pd_cache_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return PD_ERR_NOMEM;
    int r = pd_mem_new(&c->mem, max_entries);
    if (r != 0) {
        free(c);
        return r;
    }
    c->refs = 1;
    *out = c;
    return 0;
}

int
pd_cache_new_redis(pd_cache_t **out, const pd_cache_config_t *cfg, int64_t max_entries, char *err, size_t cap)
{
    pd_cache_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return PD_ERR_NOMEM;
    int r = pd_redis_new(&c->redis, cfg, max_entries, err, cap);
    if (r != 0) {
        free(c);
        return r;
    }
    c->refs = 1;
    *out = c;
    return 0;
}

int
pd_cache_open(pd_cache_t **out, int64_t max_entries, char *err, size_t cap)
{
    if (g_cfg == NULL || g_cfg->backend != PD_CACHE_REDIS)
        return pd_cache_new_memory(out, max_entries);
    int r = 0;
    pthread_mutex_lock(&g_mu);
    if (g_shared == NULL)
        r = pd_cache_new_redis(&g_shared, g_cfg, max_entries, err, cap);
    else
        g_shared->refs++;
    if (r == 0)
        *out = g_shared;
    pthread_mutex_unlock(&g_mu);
    return r;
}

void
pd_cache_free(pd_cache_t *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&g_mu);
    bool last = --c->refs == 0;
    if (last && c == g_shared)
        g_shared = NULL;
    pthread_mutex_unlock(&g_mu);
    if (!last)
        return;
    pd_mem_free(c->mem);
    pd_redis_free(c->redis);
    free(c);
}

bool
pd_cache_take(pd_cache_t *c, const char *key, double rate, double burst, int64_t now_ms, int64_t *remaining,
              int64_t *reset_ms, int64_t *retry_ms)
{
    return c->redis != NULL ? pd_redis_take(c->redis, key, rate, burst, now_ms, remaining, reset_ms, retry_ms)
                            : pd_mem_take(c->mem, key, rate, burst, now_ms, remaining, reset_ms, retry_ms);
}

int64_t
pd_cache_hit(pd_cache_t *c, const char *key, int64_t window_ms, int64_t now_ms)
{
    return c->redis != NULL ? pd_redis_hit(c->redis, key, window_ms, now_ms) : pd_mem_hit(c->mem, key, window_ms, now_ms);
}

int64_t
pd_cache_add(pd_cache_t *c, const char *key, int64_t n, int64_t expires_ms, int64_t now_ms)
{
    return c->redis != NULL ? pd_redis_add(c->redis, key, n, expires_ms, now_ms)
                            : pd_mem_add(c->mem, key, n, expires_ms, now_ms);
}

void
pd_cache_block(pd_cache_t *c, const char *key, int64_t until_ms, int64_t now_ms)
{
    if (c->redis != NULL)
        pd_redis_block(c->redis, key, until_ms, now_ms);
    else
        pd_mem_block(c->mem, key, until_ms, now_ms);
}

int64_t
pd_cache_blocked(pd_cache_t *c, const char *key, int64_t now_ms)
{
    return c->redis != NULL ? pd_redis_blocked(c->redis, key, now_ms) : pd_mem_blocked(c->mem, key, now_ms);
}

void
pd_cache_stats(pd_cache_t *c, pd_cache_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (c != NULL && c->redis != NULL)
        pd_redis_stats(c->redis, out);
}

bool
pd_cache_ready(void *cache, char *why, size_t cap)
{
    pd_cache_stats_t st;
    pd_cache_stats(cache, &st);
    if (st.redis && !st.connected)
        snprintf(why, cap, "redis unreachable (%s); limits are per node (in-process fallback) until it is back",
                 st.last_error[0] ? st.last_error : "connecting");
    return true;
}

int
pd_cache_sync(pd_cache_t *c, int timeout_ms)
{
    return c->redis != NULL ? pd_redis_sync(c->redis, timeout_ms) : PD_ERR_STATE;
}
