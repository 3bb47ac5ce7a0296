/*
 * Counters for rate limits, quotas and lockouts, behind one interface with two
 * backends ([cache] backend):
 *   - memory: in-process, sharded, no global lock; limits are per node;
 *   - redis: shared across nodes. Every operation is answered at once from this
 *     node's mirror of the key, never by waiting on Redis; a sync thread reconciles
 *     the mirror with Redis in the background, one server-side script per operation
 *     (docs/redis.md: how far a global limit can overshoot). While Redis cannot be
 *     reached the operations fall back to an in-process backend (fail-open: a request
 *     is never refused because Redis is down), shown in a log line every 10 s, in
 *     pd_cache_stats and in the cache's readiness note.
 * Keys are short strings ("rl:key_123", "ip:203.0.113.9", at most 191 bytes); times
 * are Unix ms on the caller's clock (the Redis scripts use Redis's clock; only
 * durations cross between the two).
 */
#ifndef PAYD_CACHE_H
#define PAYD_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include <stddef.h>

#include "payd/config.h"
#include "payd/error.h"

typedef struct pd_cache pd_cache_t;

typedef enum { PD_CACHE_MEMORY, PD_CACHE_REDIS } pd_cache_backend_t;
typedef struct {
    int backend;          /* pd_cache_backend_t */
    char *url;            /* redis://, rediss:// or redis-sentinel:// */
    char *tls_ca;         /* CA file for rediss:// (empty: the system's) */
    char *password_file;  /* the password (first line), instead of the URL's */
    char *password_secret; /* or a vault secret with it ("PASSWORD" or "USER\nPASSWORD"; rotations picked up) */
    int64_t timeout_ms;   /* connect and each round trip */
} pd_cache_config_t;

/* Where [cache] password_secret is read (payd: the vault link); call before the
 * first pd_cache_open. NULL: nowhere (password_secret is then an error). */
struct pd_secret_source;
void pd_cache_set_secrets(const struct pd_secret_source *src);

/* Registers [cache] in cfg and makes its values the ones pd_cache_open uses. */
int pd_cache_config_register(pd_config_t *cfg) PD_WUR;

/* max_entries bounds memory (an attacker cycling keys evicts the oldest, not us). */
int pd_cache_new_memory(pd_cache_t **out, int64_t max_entries) PD_WUR;
/* A Redis-backed cache for cfg. A bad url, tls_ca or password_file, a TLS handshake
 * that fails, or credentials the server refuses are errors (err says which, never
 * the password); a server that cannot be reached is not: the cache starts on its
 * fallback and connects when it can (back-off 100 ms doubling to 5 s). */
int pd_cache_new_redis(pd_cache_t **out, const pd_cache_config_t *cfg, int64_t max_entries, char *err,
                       size_t cap) PD_WUR;
/* The process's cache as [cache] says: a new in-process one for each caller with
 * backend = memory (or when [cache] was never registered), else one Redis-backed
 * cache shared by every caller (the API's limits and the WAF's address rule),
 * counted by reference. */
int pd_cache_open(pd_cache_t **out, int64_t max_entries, char *err, size_t cap) PD_WUR;
/* Releases one reference (the last one stops the sync thread). Accepts NULL. */
void pd_cache_free(pd_cache_t *c);

typedef struct {
    bool redis;              /* the redis backend */
    bool connected;          /* limits are global now */
    int64_t nodes;           /* live nodes Redis counts (shares of a bucket) */
    int64_t fallback_ops;    /* operations answered by the in-process fallback */
    int64_t fallbacks;       /* times the connection was lost (or absent at start) */
    int64_t rounds;          /* sync round trips */
    char server[300];        /* the master in use, host:port */
    char last_error[300];    /* why the last connection failed */
} pd_cache_stats_t;
void pd_cache_stats(pd_cache_t *c, pd_cache_stats_t *out);
/* Serves payd_cache_shared and the fallback's counters from c on /metrics (a no-op
 * before pd_mx_open). c must outlive the metrics registry's readers. */
int pd_cache_metrics_attach(pd_cache_t *c) PD_WUR;
/* A readiness probe (pd_ready_fn): always ready (limits fail open); on the fallback
 * it writes a note into why ("redis unreachable: ...; limits per node"). */
bool pd_cache_ready(void *cache, char *why, size_t cap);
/* Tests: waits until a sync round that began after the call has finished (0), or
 * timeout_ms; PD_ERR_STATE on the memory backend or while disconnected. */
int pd_cache_sync(pd_cache_t *c, int timeout_ms) PD_WUR;

/* Token bucket (rate tokens/s, capacity burst): takes one token if there is one.
 * *remaining: whole tokens left; *reset_ms: ms until the bucket is full again;
 * *retry_ms: ms until a token is available when refused (0 when taken). */
bool pd_cache_take(pd_cache_t *c, const char *key, double rate, double burst, int64_t now_ms, int64_t *remaining,
                   int64_t *reset_ms, int64_t *retry_ms);
/* Sliding window: records one event and returns how many fell in the last window_ms
 * (two fixed windows, the previous one weighted by its overlap). */
int64_t pd_cache_hit(pd_cache_t *c, const char *key, int64_t window_ms, int64_t now_ms);
/* Adds n to a counter that lives until expires_ms; returns the new value. */
int64_t pd_cache_add(pd_cache_t *c, const char *key, int64_t n, int64_t expires_ms, int64_t now_ms);
/* Blocks key until until_ms; pd_cache_blocked returns the ms left (0: not blocked). */
void pd_cache_block(pd_cache_t *c, const char *key, int64_t until_ms, int64_t now_ms);
int64_t pd_cache_blocked(pd_cache_t *c, const char *key, int64_t now_ms);

#endif
