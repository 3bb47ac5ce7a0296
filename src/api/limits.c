/*
 * Usage plans and abuse limits on the API (in the authentication filter):
 *   - per API key: token bucket (rate/s, burst) and a calendar-month quota -> 429
 *     rate_limit with Retry-After and X-RateLimit-Limit/Remaining/Reset;
 *   - per client address: failed authentications in a window -> lockout (429),
 *     audited in the service log.
 * Counters live in the cache (src/cache): in-process now, Redis-shaped.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/internal.h"
#include "payd/log.h"
#include "payd/time.h"

static void
header_int(pd_req_t *r, const char *name, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    pd_resp_header(r, name, buf);
}

int
pd_limits_too_many(pd_req_t *r, size_t limit, int64_t retry_ms, const char *msg)
{
    pd_mx_inc(PD_MX_LIMIT_REFUSALS, limit);
    header_int(r, "Retry-After", (retry_ms + 999) / 1000);
    pd_resp_error(r, 429, "invalid_request_error", "rate_limit", msg, NULL);
    return 1;
}

int
pd_limits_locked(pd_api_t *api, pd_req_t *r)
{
    char key[96];
    snprintf(key, sizeof(key), "lock:%s", r->peer);
    int64_t left = pd_cache_blocked(api->limits, key, pd_real_ms());
    if (left == 0)
        return 0;
    return pd_limits_too_many(r, PD_MX_LIMIT_AUTH_LOCKOUT, left, "Too many failed authentication attempts from this address. Retry later.");
}

void
pd_limits_auth_failed(pd_api_t *api, pd_req_t *r)
{
    char key[96];
    int64_t now = pd_real_ms();
    snprintf(key, sizeof(key), "authfail:%s", r->peer);
    int64_t n = pd_cache_hit(api->limits, key, api->cfg->auth_fail_window_ms, now);
    if (n < api->cfg->auth_fail_limit)
        return;
    snprintf(key, sizeof(key), "lock:%s", r->peer);
    if (pd_cache_blocked(api->limits, key, now) > 0)
        return;
    pd_cache_block(api->limits, key, now + api->cfg->auth_lockout_ms, now);
    pd_log_warn("audit: client locked out after failed authentications", PD_LS("event", "auth.lockout"),
                PD_LS("peer", r->peer), PD_LI("failures", n), PD_LI("window_ms", api->cfg->auth_fail_window_ms),
                PD_LI("lockout_ms", api->cfg->auth_lockout_ms), PD_LS("request_id", r->id));
}

/* seconds from now to the start of next month (UTC) and "YYYYMM" of this one */
static int64_t
month(int64_t now_s, char *ym, size_t cap)
{
    time_t t = (time_t)now_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(ym, cap, "%04u%02u", (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u);
    tm.tm_mon += 1;
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (int64_t)timegm(&tm) - now_s;
}

int
pd_limits_plan(pd_api_t *api, pd_req_t *r, const pd_auth_t *a)
{
    char key[96], ym[16];
    int64_t now = pd_real_ms(), remaining, reset_ms, retry_ms;
    snprintf(key, sizeof(key), "rl:%s", a->key_id);
    bool ok = pd_cache_take(api->limits, key, (double)a->rate_per_s, (double)a->burst, now, &remaining, &reset_ms,
                            &retry_ms);
    /* one bucket, three views of it: its size, what is left in it now, when it is full again */
    header_int(r, "X-RateLimit-Limit", a->burst);
    header_int(r, "X-RateLimit-Remaining", remaining);
    header_int(r, "X-RateLimit-Reset", (now + reset_ms + 999) / 1000);
    if (!ok)
        return pd_limits_too_many(r, PD_MX_LIMIT_RATE, retry_ms, "Too many requests hit the API too quickly. Retry with exponential backoff.");
    int64_t to_next = month(now / 1000, ym, sizeof(ym));
    snprintf(key, sizeof(key), "quota:%s:%s", a->key_id, ym);
    if (pd_cache_add(api->limits, key, 1, now + (to_next + 86400) * 1000, now) > a->monthly_quota)
        return pd_limits_too_many(r, PD_MX_LIMIT_QUOTA, to_next * 1000, "The monthly request quota of this API key is exhausted.");
    return 0;
}
