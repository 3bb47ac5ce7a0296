/*
 * The server-side scripts: one per operation of include/payd/cache.h, each run with
 * EVALSHA (reloaded with SCRIPT LOAD on NOSCRIPT). Every script reads the time from
 * Redis's TIME, so the nodes' clocks never meet in a key, and returns that time last
 * so a node can place the answer on its own clock.
 *
 * Keys: payd:tb:<key> token bucket (hash t = tokens, ts = ms of t),
 * payd:sw:<key> sliding window (hash s = window start, c = current, p = previous),
 * payd:ct:<key> counter, payd:bl:<key> block (value: until, ms) and payd:cache:blocks,
 * a stream every block is announced on; payd:cache:nodes the live nodes.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "cache/internal.h"

#define NOW "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "

/* KEYS[1]; ARGV rate, burst, debt (tokens spent without a grant), want (a grant
 * asked for), back (an unspent grant returned), nodes. A grant is at most the
 * bucket's share for one node (tokens / nodes), so no node holds the rest. Returns
 * {grant, tokens left, ms until full, now}. */
static const char take_lua[] =
    NOW "local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]) "
    "local debt, want, back, nodes = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]) "
    "if not (rate and burst and rate > 0 and burst > 0) then return redis.error_reply('ERR payd take: rate and burst must be positive') end "
    "local h = redis.call('HMGET', KEYS[1], 't', 'ts') "
    "local tok, ts = tonumber(h[1]), tonumber(h[2]) "
    "if tok == nil or ts == nil then tok = burst ts = now end "
    "if now > ts then tok = math.min(burst, tok + (now - ts) * rate / 1000) end "
    "tok = math.min(burst, tok + back) - debt "
    "if tok < -burst then tok = -burst end "
    "local grant = 0 "
    "if want > 0 and tok >= 1 then "
    "  local share = math.floor(tok / math.max(nodes, 1)) if share < 1 then share = 1 end "
    "  grant = math.min(want, share, math.floor(tok)) tok = tok - grant "
    "end "
    "local full = math.ceil((burst - tok) * 1000 / rate) "
    "redis.call('HSET', KEYS[1], 't', tostring(tok), 'ts', now) "
    "redis.call('PEXPIRE', KEYS[1], full + 1000) "
    "return {grant, math.floor(tok), full, now}";

/* KEYS[1]; ARGV window_ms, n (events to record; 0 reads). Two fixed windows, as the
 * in-process backend. Returns {window start, current, previous, now}. */
static const char hit_lua[] =
    NOW "local w, n = tonumber(ARGV[1]), tonumber(ARGV[2]) "
    "local start = now - now % w "
    "local h = redis.call('HMGET', KEYS[1], 's', 'c', 'p') "
    "local s, c, p = tonumber(h[1]) or start, tonumber(h[2]) or 0, tonumber(h[3]) or 0 "
    "if s ~= start then if start - s == w then p = c else p = 0 end c = 0 s = start end "
    "if n > 0 then c = c + n "
    "  redis.call('HSET', KEYS[1], 's', s, 'c', c, 'p', p) redis.call('PEXPIRE', KEYS[1], 2 * w) end "
    "return {s, c, p, now}";

/* KEYS[1]; ARGV n, ttl_ms (the counter lives at least that long). Returns {value, ms left, now}. */
static const char add_lua[] =
    NOW "local n, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]) "
    "local v = tonumber(redis.call('GET', KEYS[1])) or 0 "
    "if n ~= 0 then v = redis.call('INCRBY', KEYS[1], n) "
    "  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end end "
    "local left = redis.call('PTTL', KEYS[1]) if left < 0 then left = 0 end "
    "return {v, left, now}";

/* KEYS[1] the block, KEYS[2] the stream; ARGV ms (block for that long; 0 reads), the
 * cache key. A longer block than the one in place is announced on the stream. Returns
 * {ms left, now}. */
static const char block_lua[] =
    NOW "local ms = tonumber(ARGV[1]) "
    "local cur = tonumber(redis.call('GET', KEYS[1])) or 0 "
    "if ms > 0 and now + ms > cur then cur = now + ms "
    "  redis.call('SET', KEYS[1], cur, 'PX', ms) "
    "  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'k', ARGV[2], 'u', cur) "
    "  redis.call('PEXPIRE', KEYS[2], 8 * 86400000) end "
    "local left = cur - now if left < 0 then left = 0 end "
    "return {left, now}";

/* KEYS[1]; ARGV node id. Counts the nodes seen in the last 5 s. Returns {nodes, now}. */
static const char nodes_lua[] =
    NOW "redis.call('ZADD', KEYS[1], now, ARGV[1]) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 5000) "
    "redis.call('PEXPIRE', KEYS[1], 60000) "
    "return {redis.call('ZCARD', KEYS[1]), now}";

static const char *const bodies[PD_RS__N] = {take_lua, hit_lua, add_lua, block_lua, nodes_lua};
static char shas[PD_RS__N][41];

const char *
pd_rscript_body(pd_rscript_t s)
{
    return bodies[s];
}

static void
compute_shas(void)
{
    for (int s = 0; s < PD_RS__N; s++) {
        unsigned char d[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)bodies[s], strlen(bodies[s]), d);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
            snprintf(shas[s] + 2 * i, 3, "%02x", d[i]);
    }
}

const char *
pd_rscript_sha(pd_rscript_t s)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, compute_shas);
    return shas[s];
}
