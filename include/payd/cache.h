/*
 * Counters for rate limits, quotas and lockouts. In-process (sharded, no global
 * lock) now; the operations are the ones a Redis backend implements with one
 * script each, so limits become global across nodes by swapping the backend.
 * Keys are short strings ("rl:key_123", "ip:203.0.113.9"); times are Unix ms.
 */
#ifndef PAYD_CACHE_H
#define PAYD_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "payd/error.h"

typedef struct pd_cache pd_cache_t;

/* max_entries bounds memory (an attacker cycling keys evicts the oldest, not us). */
int pd_cache_new_memory(pd_cache_t **out, int64_t max_entries) PD_WUR;
void pd_cache_free(pd_cache_t *c);

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
