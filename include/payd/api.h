/*
 * The payments API service: Stripe-compatible /v1 routes, API-key authentication,
 * idempotency, the two-phase confirmation around the processor, the outbox relay
 * feeding webhook deliveries, and the recovery worker.
 */
#ifndef PAYD_API_H
#define PAYD_API_H

#include <stdbool.h>
#include <stdint.h>

#include "payd/config.h"
#include "payd/edge.h"
#include "payd/processor.h"
#include "payd/store.h"
#include "payd/vault_spawn.h"

typedef struct {
    int64_t rate_per_s;        /* usage plan defaults per API key */
    int64_t burst;
    int64_t monthly_quota;
    int64_t auth_fail_limit;     /* failed authentications from one address ... */
    int64_t auth_fail_window_ms; /* ... within this window ... */
    int64_t auth_lockout_ms;     /* ... lock it out for this long */
    int64_t card_decline_limit;  /* card testing: declines of one card ... */
    int64_t card_decline_window_ms;
    int64_t ip_card_limit;       /* ... distinct cards from one address ... */
    int64_t ip_card_window_ms;
    int64_t merchant_decline_limit; /* ... declines of one merchant, each within its window */
    int64_t merchant_decline_window_ms;
    int64_t idempotency_ttl_ms;
    int64_t recovery_after_ms; /* a charge still processing after this is resolved by the recovery worker */
    int64_t reconcile_interval_ms; /* reconciliation with the processor every this long (0: never) */
    int64_t reconcile_window_ms;   /* each pass compares what changed this long back */
    int64_t webhook_timeout_ms;
    int64_t webhook_concurrency;              /* attempts in flight at once ... */
    int64_t webhook_concurrency_per_endpoint; /* ... and to one endpoint */
    bool webhook_live_rules_in_test; /* test-mode endpoints too: https only, no private addresses */
    bool refuse_card_numbers_in_text; /* a Luhn-valid 13-19 digit run in description/metadata: 400 */
    int64_t search_scan_limit; /* rows one search request reads at most (then has_more with a resuming next_page) */
} pd_api_config_t;

int pd_api_config_register(pd_config_t *cfg, pd_api_config_t *c) PD_WUR;

typedef struct pd_api pd_api_t;

typedef struct {
    const pd_api_config_t *config;
    pd_store_t *store;
    pd_vault_link_t *vault;
    pd_processor_t *processor; /* test mode (the simulator) */
    const char *data_dir;
} pd_api_deps_t;

int pd_api_new(pd_api_t **out, const pd_api_deps_t *deps) PD_WUR;
/* Adds the /v1 routes and the authentication filter. */
int pd_api_register(pd_api_t *a, pd_router_t *rt, pd_server_t *srv) PD_WUR;
/* Starts the outbox relay, webhook deliveries and the recovery worker. */
int pd_api_start(pd_api_t *a) PD_WUR;
void pd_api_stop(pd_api_t *a);
void pd_api_free(pd_api_t *a);


/* Whether an expand[] path can be followed on the objects of a route's resource
 * ("payment_intents", ...), a list's when list (src/api/expand.c; exposed for its fuzz
 * target). */
bool pd_expand_path_ok(const char *resource, bool list, pd_view_t path);

/* The routes (for the OpenAPI consistency test and docs). */
extern const pd_route_t pd_api_routes[];
extern const size_t pd_api_routes_n;

/* --- merchants and keys (payctl, dev bootstrap) --- */
typedef struct {
    char merchant_id[PD_ID_MAX];
    char secret_key[80], publishable_key[80];
    char secret_key_id[PD_ID_MAX], publishable_key_id[PD_ID_MAX];
} pd_merchant_keys_t;

/* Creates a merchant with a secret and a publishable key for test mode (and live
 * mode when live is set: then the live keys replace the test ones in out). */
int pd_api_create_merchant(pd_store_t *store, const uint8_t *pepper, size_t pepper_len, const char *name, bool live,
                           pd_merchant_keys_t *out) PD_WUR;
/* Creates a key: kind "secret", "publishable" or "restricted" (scopes like
 * "payment_intents:write,refunds:read"). The key text (shown once) goes to key_out. */
int pd_api_create_key(pd_store_t *store, const uint8_t *pepper, size_t pepper_len, const char *merchant_id,
                      const char *kind, bool livemode, const char *scopes, int64_t expires_at, char *key_out,
                      size_t key_cap, char *key_id_out) PD_WUR;
/* Replaces a live key (not revoked, not expired): a new key of the same merchant, kind,
 * mode and scopes is stored and the old one expires grace_s seconds from now (or at
 * its earlier expiry), in one transaction. PD_ERR_NOTFOUND: no such key;
 * PD_ERR_STATE: the key is revoked or expired (a dead key stays dead). */
int pd_api_roll_key(pd_store_t *store, const uint8_t *pepper, size_t pepper_len, const char *key_id, int64_t grace_s,
                    char *key_out, size_t key_cap, char *key_id_out) PD_WUR;
/* Checks the scopes of a restricted key: "resource:level" items separated by commas,
 * no spaces, each resource one of the API's (payment_intents, refunds, ...) at most
 * once, each level read or write. 0, or PD_ERR_INVALID with the reason and the
 * accepted values in err. pd_api_create_key refuses what this refuses. */
int pd_api_scopes_check(const char *scopes, char *err, size_t err_cap) PD_WUR;
/* HMAC-SHA256 of a key under the pepper, hex. */
int pd_api_key_hash(const uint8_t *pepper, size_t pepper_len, pd_view_t key, char out[65]) PD_WUR;

/* Dev mode: on first start creates a demo merchant and writes DATA_DIR/credentials.json
 * ({"secret_key", "publishable_key", "merchant_id"}); later starts read it back. */
int pd_api_dev_bootstrap(pd_store_t *store, pd_vault_link_t *vault, const char *data_dir,
                         pd_merchant_keys_t *out) PD_WUR;

#endif
