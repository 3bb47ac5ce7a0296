/*
 * Card-testing defence: velocity limits on charge attempts, in the cache next to the
 * usage plans (in-process now, Redis-shaped).
 *   - one card (fingerprint, per merchant): card_decline_limit declines within
 *     card_decline_window_ms -> further attempts with it are declined (402
 *     card_declined, decline_code card_velocity_exceeded) for that window;
 *   - one client address: more than ip_card_limit distinct cards within
 *     ip_card_window_ms -> 429 rate_limit for that window;
 *   - one merchant: merchant_decline_limit declines within merchant_decline_window_ms
 *     -> 429 rate_limit on charge attempts for that window (a card-testing run in
 *     progress), audited.
 * A refused attempt reaches neither the vault nor the processor and creates no charge.
 */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "payd/log.h"
#include "payd/time.h"

int
pd_velocity_check(pd_api_t *api, pd_req_t *r, const char *merchant_id, const char *fingerprint)
{
    const pd_api_config_t *cfg = api->cfg;
    int64_t now = pd_real_ms(), left;
    char key[160];

    snprintf(key, sizeof(key), "vm:%s", merchant_id);
    if ((left = pd_cache_blocked(api->limits, key, now)) > 0)
        return pd_limits_too_many(r, PD_MX_LIMIT_ACCOUNT_DECLINES, left, "Too many declined payments for this account in a short time. Retry later.");
    if (fingerprint[0] == '\0')
        return 0; /* not a card */
    snprintf(key, sizeof(key), "vc:%s:%s", merchant_id, fingerprint);
    if (pd_cache_blocked(api->limits, key, now) > 0) {
        pd_mx_inc(PD_MX_LIMIT_REFUSALS, PD_MX_LIMIT_CARD_DECLINES);
        pd_resp_error_x(r, 402, "card_error", "card_declined",
                        "Your card was declined: it was declined too many times recently.", NULL,
                        "\"decline_code\":\"card_velocity_exceeded\"");
        return 1;
    }
    snprintf(key, sizeof(key), "vi:%s", r->peer);
    if ((left = pd_cache_blocked(api->limits, key, now)) > 0)
        return pd_limits_too_many(r, PD_MX_LIMIT_CARDS_PER_IP, left, "Too many different cards were used from this address. Retry later.");
    /* a card not seen from this address within the window counts once */
    snprintf(key, sizeof(key), "vic:%s:%s:%s", r->peer, merchant_id, fingerprint);
    if (pd_cache_add(api->limits, key, 1, now + cfg->ip_card_window_ms, now) != 1)
        return 0;
    snprintf(key, sizeof(key), "vin:%s", r->peer);
    if (pd_cache_hit(api->limits, key, cfg->ip_card_window_ms, now) <= cfg->ip_card_limit)
        return 0;
    snprintf(key, sizeof(key), "vi:%s", r->peer);
    pd_cache_block(api->limits, key, now + cfg->ip_card_window_ms, now);
    pd_log_warn("audit: card testing suspected: too many cards from one address", PD_LS("event", "velocity.ip"),
                PD_LS("peer", r->peer), PD_LI("limit", cfg->ip_card_limit), PD_LS("request_id", r->id));
    return pd_limits_too_many(r, PD_MX_LIMIT_CARDS_PER_IP, cfg->ip_card_window_ms, "Too many different cards were used from this address. Retry later.");
}

void
pd_velocity_declined(pd_api_t *api, const char *merchant_id, const char *fingerprint)
{
    const pd_api_config_t *cfg = api->cfg;
    int64_t now = pd_real_ms();
    char key[160];

    if (fingerprint[0] == '\0')
        return;
    snprintf(key, sizeof(key), "vcn:%s:%s", merchant_id, fingerprint);
    if (pd_cache_hit(api->limits, key, cfg->card_decline_window_ms, now) >= cfg->card_decline_limit) {
        snprintf(key, sizeof(key), "vc:%s:%s", merchant_id, fingerprint);
        pd_cache_block(api->limits, key, now + cfg->card_decline_window_ms, now);
    }
    snprintf(key, sizeof(key), "vmn:%s", merchant_id);
    if (pd_cache_hit(api->limits, key, cfg->merchant_decline_window_ms, now) >= cfg->merchant_decline_limit) {
        snprintf(key, sizeof(key), "vm:%s", merchant_id);
        if (pd_cache_blocked(api->limits, key, now) == 0) {
            pd_cache_block(api->limits, key, now + cfg->merchant_decline_window_ms, now);
            pd_log_warn("audit: card testing suspected: charge attempts paused for the account",
                        PD_LS("event", "velocity.merchant"), PD_LS("merchant", merchant_id),
                        PD_LI("declines", cfg->merchant_decline_limit),
                        PD_LI("pause_ms", cfg->merchant_decline_window_ms));
        }
    }
}
