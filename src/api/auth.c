/*
 * API keys: creation (shown once, stored as HMAC-SHA256 under the vault's pepper),
 * and the authentication filter (Bearer or Basic, lookup by prefix, constant-time
 * comparison, revocation and expiry, test/live separation, publishable and
 * restricted keys).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "api/internal.h"
#include "payd/log.h"
#include "payd/time.h"
#include "payd/crypto.h"

#define CACHE_SLOTS 64
#define CACHE_TTL_MS 2000
#define KEY_MAX 128

int
pd_api_key_hash(const uint8_t *pepper, size_t pepper_len, pd_view_t key, char out[65])
{
    uint8_t mac[32];
    int r = pd_hmac_sha256(pepper, pepper_len, key.p, key.len, mac);
    if (r == 0)
        pd_hex(mac, 32, out);
    return r;
}

/* --- scopes of restricted keys --- */

/* true when some route names this resource (the list restricted keys may be scoped to) */
static bool
known_resource(const char *p, size_t n)
{
    for (size_t i = 0; i < pd_api_routes_n; i++) {
        const char *res = pd_api_routes[i].resource;
        if (res != NULL && strlen(res) == n && memcmp(res, p, n) == 0)
            return true;
    }
    return false;
}

/* the accepted resources, comma-separated, each once, in route order */
static void
resource_list(char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < pd_api_routes_n; i++) {
        const char *res = pd_api_routes[i].resource;
        bool seen = false;
        if (res == NULL)
            continue;
        for (size_t j = 0; j < i && !seen; j++)
            seen = pd_api_routes[j].resource != NULL && strcmp(pd_api_routes[j].resource, res) == 0;
        if (seen)
            continue;
        int n = snprintf(out + len, cap - len, "%s%s", len ? ", " : "", res);
        if (n < 0 || (size_t)n >= cap - len)
            return;
        len += (size_t)n;
    }
}

int
pd_api_scopes_check(const char *scopes, char *err, size_t err_cap)
{
    char list[400];
    int r = PD_ERR_INVALID;
    resource_list(list, sizeof(list));
    if (scopes == NULL || scopes[0] == '\0') {
        snprintf(err, err_cap, "a restricted key needs scopes: resource:read or resource:write, comma-separated "
                               "(resources: %s)", list);
        return r;
    }
    if (strlen(scopes) >= sizeof(((pd_key_rec_t *)0)->scopes)) {
        snprintf(err, err_cap, "the scopes are longer than %zu characters", sizeof(((pd_key_rec_t *)0)->scopes) - 1);
        return r;
    }
    for (const char *p = scopes;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', n);
        size_t rl = colon ? (size_t)(colon - p) : n;
        if (colon == NULL || !known_resource(p, rl)) {
            snprintf(err, err_cap, "unknown scope resource \"%.*s\" in \"%.*s\": the accepted resources are %s",
                     (int)(rl > 64 ? 64 : rl), p, (int)(n > 80 ? 80 : n), p, list);
            return r;
        }
        const char *lv = colon + 1;
        size_t ll = n - rl - 1;
        if (!((ll == 4 && memcmp(lv, "read", 4) == 0) || (ll == 5 && memcmp(lv, "write", 5) == 0))) {
            snprintf(err, err_cap, "unknown scope level \"%.*s\" in \"%.*s\": the accepted levels are read and write",
                     (int)(ll > 64 ? 64 : ll), lv, (int)(n > 80 ? 80 : n), p);
            return r;
        }
        /* one level per resource: a second one would be ignored by the filter */
        for (const char *q = scopes; q < p;) {
            const char *qe = strchr(q, ',');
            if (strncmp(q, p, rl + 1) == 0) {
                snprintf(err, err_cap, "the scope resource \"%.*s\" is given twice", (int)rl, p);
                return r;
            }
            q = qe + 1;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

/* a new key's text and record (not stored) */
static int
make_key(const char *merchant_id, const char *kind, bool livemode, const char *scopes, int64_t expires_at,
         const uint8_t *pepper, size_t pepper_len, char *key_out, size_t key_cap, pd_key_rec_t *k)
{
    const char *p = strcmp(kind, "secret") == 0 ? "sk" : strcmp(kind, "publishable") == 0 ? "pk"
                                                     : strcmp(kind, "restricted") == 0 ? "rk" : NULL;
    char err[8];
    int r;
    if (p == NULL || key_cap < 48)
        return PD_ERR_INVALID;
    /* scopes belong to restricted keys, and only scopes that grant something */
    if (strcmp(kind, "restricted") == 0 ? pd_api_scopes_check(scopes, err, sizeof(err)) != 0
                                        : scopes != NULL && scopes[0] != '\0')
        return PD_ERR_INVALID;
    memset(k, 0, sizeof(*k));
    int n = snprintf(key_out, key_cap, "%s_%s_", p, livemode ? "live" : "test");
    if ((r = pd_secret_base62(key_out + n, 32)) != 0)
        return r;
    key_out[n + 32] = '\0';
    if ((r = pd_id_new("key", k->id, sizeof(k->id))) != 0 ||
        (r = pd_api_key_hash(pepper, pepper_len, pd_view_cstr(key_out), k->hash)) != 0) {
        OPENSSL_cleanse(key_out, key_cap);
        return r;
    }
    snprintf(k->merchant_id, sizeof(k->merchant_id), "%s", merchant_id);
    snprintf(k->kind, sizeof(k->kind), "%s", kind);
    k->livemode = livemode;
    memcpy(k->prefix, key_out, PD_KEY_PREFIX_LEN);
    k->prefix[PD_KEY_PREFIX_LEN] = '\0';
    snprintf(k->last4, sizeof(k->last4), "%s", key_out + strlen(key_out) - 4);
    snprintf(k->scopes, sizeof(k->scopes), "%s", scopes ? scopes : "");
    k->created = pd_unix_now();
    k->expires_at = expires_at;
    return 0;
}

static int
insert_key(pd_db_t *tx, void *arg)
{
    return pd_key_insert(tx, arg);
}

int
pd_api_create_key(pd_store_t *store, const uint8_t *pepper, size_t pepper_len, const char *merchant_id,
                  const char *kind, bool livemode, const char *scopes, int64_t expires_at, char *key_out,
                  size_t key_cap, char *key_id_out)
{
    pd_key_rec_t k;
    int r = make_key(merchant_id, kind, livemode, scopes, expires_at, pepper, pepper_len, key_out, key_cap, &k);
    if (r == 0)
        r = pd_store_write_sync(store, insert_key, &k);
    if (r == 0 && key_id_out != NULL)
        snprintf(key_id_out, PD_ID_MAX, "%s", k.id);
    if (r != 0)
        OPENSSL_cleanse(key_out, key_cap);
    return r;
}

typedef struct {
    const char *old_id;
    int64_t grace_s, now;
    const uint8_t *pepper;
    size_t pepper_len;
    char *key_out;
    size_t key_cap;
    pd_key_rec_t k;
} roll_t;

/* one transaction: the old key is live now, the new key is stored, the old one expires */
static int
write_roll(pd_db_t *tx, void *arg)
{
    roll_t *x = arg;
    pd_key_rec_t old;
    int r = pd_key_get(tx, x->old_id, &old);
    if (r != 0)
        return r;
    if (old.revoked_at != 0 || (old.expires_at != 0 && old.expires_at <= x->now))
        return PD_ERR_STATE;
    if ((r = make_key(old.merchant_id, old.kind, old.livemode, old.scopes, 0, x->pepper, x->pepper_len, x->key_out,
                      x->key_cap, &x->k)) != 0 ||
        (r = pd_key_insert(tx, &x->k)) != 0 ||
        (r = pd_key_set_expiry(tx, x->old_id, x->now + x->grace_s, x->now)) != 0)
        return r;
    return 0;
}

int
pd_api_roll_key(pd_store_t *store, const uint8_t *pepper, size_t pepper_len, const char *key_id, int64_t grace_s,
                char *key_out, size_t key_cap, char *key_id_out)
{
    roll_t x = {key_id, grace_s, pd_unix_now(), pepper, pepper_len, key_out, key_cap, {{0}}};
    int r = pd_store_write_sync(store, write_roll, &x);
    if (r == 0)
        snprintf(key_id_out, PD_ID_MAX, "%s", x.k.id);
    else
        OPENSSL_cleanse(key_out, key_cap);
    return r;
}

static int
insert_merchant(pd_db_t *tx, void *arg)
{
    return pd_merchant_insert(tx, arg);
}

int
pd_api_create_merchant(pd_store_t *store, const uint8_t *pepper, size_t pepper_len, const char *name, bool live,
                       pd_merchant_keys_t *out)
{
    pd_merchant_rec_t m;
    int r;
    memset(out, 0, sizeof(*out));
    if ((r = pd_id_new("acct", m.id, sizeof(m.id))) != 0)
        return r;
    snprintf(m.name, sizeof(m.name), "%s", name);
    m.created = pd_unix_now();
    if ((r = pd_store_write_sync(store, insert_merchant, &m)) != 0)
        return r;
    snprintf(out->merchant_id, sizeof(out->merchant_id), "%s", m.id);
    if ((r = pd_api_create_key(store, pepper, pepper_len, m.id, "secret", live, NULL, 0, out->secret_key,
                               sizeof(out->secret_key), out->secret_key_id)) != 0)
        return r;
    return pd_api_create_key(store, pepper, pepper_len, m.id, "publishable", live, NULL, 0, out->publishable_key,
                             sizeof(out->publishable_key), out->publishable_key_id);
}

/* --- the filter --- */

typedef struct {
    pd_key_rec_t rec;
    uint64_t fetched_ms;
    bool used;
} cache_slot_t;

static _Thread_local cache_slot_t key_cache[CACHE_SLOTS];
static _Thread_local int64_t cache_epoch = -1;

static size_t
slot_of(const char *prefix)
{
    size_t h = 5381;
    for (const char *p = prefix; *p; p++)
        h = h * 33 + (uint8_t)*p;
    return h % CACHE_SLOTS;
}

static void
cache_put(const pd_key_rec_t *rec, uint64_t now)
{
    cache_slot_t *s = &key_cache[slot_of(rec->prefix)];
    s->rec = *rec;
    s->fetched_ms = now;
    s->used = true;
}

static bool
cache_get(const char *prefix, uint64_t now, pd_key_rec_t *out)
{
    cache_slot_t *s = &key_cache[slot_of(prefix)];
    if (s->used && strcmp(s->rec.prefix, prefix) == 0 && now - s->fetched_ms < CACHE_TTL_MS) {
        *out = s->rec;
        return true;
    }
    return false;
}

/* a new epoch drops every key this thread cached */
static void
cache_epoch_seen(int64_t epoch)
{
    if (epoch != cache_epoch) {
        memset(key_cache, 0, sizeof(key_cache));
        cache_epoch = epoch;
    }
}

/* the store's key epoch and the key's row, read in that order */
static int
read_key(pd_db_t *db, const char *prefix, int64_t *epoch, pd_key_rec_t *out)
{
    int rc = pd_key_epoch(db, epoch);
    return rc != 0 ? rc : pd_key_by_prefix(db, prefix, out);
}

/*
 * Revocation. A revocation or an expiry moves the store's key epoch in its own
 * transaction, and a loop thread that sees a new epoch drops its cached keys: the
 * cache saves the key's row, not the check; the TTL bounds only how long other
 * changes of a key (its limits) take to be seen.
 * - Reads on the loop (SQLite without reader threads): every request reads the
 *   epoch itself, so once `payctl keys revoke` has returned the next request on any
 *   loop thread refuses the key.
 * - Reads off the loop (PostgreSQL): the epoch comes from key_epoch.c, reread every
 *   PD_KEY_EPOCH_REFRESH_MS and trusted only while fresh; a cache miss, or an epoch
 *   that could not be read lately, sends the lookup to a reader thread.
 */
static bool
lookup_cached(pd_api_t *api, const char *prefix, pd_key_rec_t *out)
{
    int64_t epoch;
    if (api->key_epoch == NULL || !pd_key_epoch_current(api->key_epoch, &epoch))
        return false;
    cache_epoch_seen(epoch);
    return cache_get(prefix, pd_mono_ms(), out);
}

/* on the loop, with reads on the loop */
static int
lookup_inline(pd_req_t *r, const char *prefix, pd_key_rec_t *out)
{
    pd_db_t *db = pd_reader(r);
    uint64_t now = pd_mono_ms();
    int64_t epoch = -1;
    if (db == NULL)
        return PD_ERR_UNAVAILABLE;
    int rc = pd_key_epoch(db, &epoch);
    if (rc != 0)
        return rc;
    cache_epoch_seen(epoch);
    if (cache_get(prefix, now, out))
        return 0;
    rc = pd_key_by_prefix(db, prefix, out);
    if (rc == 0)
        cache_put(out, now);
    return rc;
}

static int
unauthorized(pd_req_t *r, const char *msg)
{
    pd_resp_header(r, "WWW-Authenticate", "Bearer realm=\"payd\"");
    pd_resp_error(r, 401, "invalid_request_error", NULL, msg, NULL);
    return 1;
}

/* extracts the key from "Bearer KEY" or "Basic base64(KEY:)" */
static bool
key_from_header(pd_view_t h, char *out, size_t cap)
{
    if (h.len > 7 && strncasecmp((const char *)h.p, "Bearer ", 7) == 0) {
        pd_view_t k = pd_view(h.p + 7, h.len - 7);
        while (k.len > 0 && k.p[k.len - 1] == ' ')
            k.len--;
        return pd_view_to_cstr(k, out, cap) == 0;
    }
    if (h.len > 6 && strncasecmp((const char *)h.p, "Basic ", 6) == 0) {
        unsigned char dec[256];
        size_t n = h.len - 6;
        if (n > 340)
            return false;
        int dl = EVP_DecodeBlock(dec, h.p + 6, (int)n);
        if (dl <= 0)
            return false;
        /* EVP_DecodeBlock counts padding as zero bytes */
        while (dl > 0 && dec[dl - 1] == '\0')
            dl--;
        const unsigned char *colon = memchr(dec, ':', (size_t)dl);
        size_t kl = colon ? (size_t)(colon - dec) : (size_t)dl;
        bool ok = pd_view_to_cstr(pd_view(dec, kl), out, cap) == 0;
        OPENSSL_cleanse(dec, sizeof(dec));
        return ok;
    }
    return false;
}

static bool
scope_allows(const char *scopes, const char *resource, bool write)
{
    char want[80];
    size_t rl = strlen(resource);
    for (const char *p = scopes; p != NULL && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > rl + 1 && strncmp(p, resource, rl) == 0 && p[rl] == ':') {
            snprintf(want, sizeof(want), "%.*s", (int)(n - rl - 1), p + rl + 1);
            return strcmp(want, "write") == 0 || (!write && strcmp(want, "read") == 0);
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

static void
mask(const char *key, char *out, size_t cap)
{
    size_t n = strlen(key);
    snprintf(out, cap, "%.8s%s%s", key, n > 12 ? "****" : "", n > 12 ? key + n - 4 : "");
}

static int
auth_failed(pd_api_t *api, pd_req_t *r, const char *msg)
{
    pd_limits_auth_failed(api, r);
    return unauthorized(r, msg);
}

/* What the filter carries across a lookup off the loop: never the key itself, only
 * its HMAC (what the store holds too) and its masked form for messages. */
typedef struct {
    pd_api_t *api;
    char prefix[PD_KEY_PREFIX_LEN + 1];
    char hash[65];
    bool hashed;
    char masked[40];
    int64_t epoch;
    pd_key_rec_t rec;
} auth_t;

/* the checks once the key's row is known (rc: the lookup's result): 0 passes the
 * request on, 1 after responding */
static int
auth_decide(pd_req_t *r, auth_t *x, int rc)
{
    pd_api_t *api = x->api;
    const pd_key_rec_t *rec = &x->rec;
    char msg[160];
    snprintf(msg, sizeof(msg), "Invalid API Key provided: %s", x->masked);
    if (rc != 0 && rc != PD_ERR_NOTFOUND) {
        /* the database went away (a failover): 503, come back */
        pd_resp_read_failed_msg(r, rc, "The server cannot check the API key right now. Retry the request later.");
        return 1;
    }
    if (rc != 0 || !x->hashed || CRYPTO_memcmp(x->hash, rec->hash, 64) != 0)
        return auth_failed(api, r, msg);
    r->caller = pd_arena_strndup(&r->arena, rec->id, strlen(rec->id));
    int64_t now = pd_unix_now();
    if (rec->revoked_at != 0 && rec->revoked_at <= now)
        return auth_failed(api, r, msg);
    if (rec->expires_at != 0 && rec->expires_at <= now) {
        snprintf(msg, sizeof(msg), "Expired API Key provided: %s", x->masked);
        return auth_failed(api, r, msg);
    }
    bool write = !pd_view_eq_cstr(r->method, "GET") && !pd_view_eq_cstr(r->method, "HEAD");
    if (strcmp(rec->kind, "publishable") == 0) {
        /* what Stripe.js does: create payment methods and tokens (not attach or detach them) */
        bool ok = r->route->resource != NULL && write &&
                  ((strcmp(r->route->resource, "payment_methods") == 0 && strchr(r->route->pattern, ':') == NULL) ||
                   strcmp(r->route->resource, "tokens") == 0);
        if (!ok) {
            pd_resp_error(r, 403, "invalid_request_error", "secret_key_required",
                          "This API call cannot be made with a publishable API key. Please use a secret API key.", NULL);
            return 1;
        }
    } else if (strcmp(rec->kind, "restricted") == 0) {
        if (r->route->resource == NULL || !scope_allows(rec->scopes, r->route->resource, write)) {
            char m2[200];
            snprintf(m2, sizeof(m2), "The provided key '%s' does not have the required permissions for this endpoint "
                                     "(%s:%s).",
                     x->masked, r->route->resource ? r->route->resource : "?", write ? "write" : "read");
            pd_resp_error(r, 403, "invalid_request_error", "insufficient_permissions", m2, NULL);
            return 1;
        }
    }
    pd_auth_t *a = pd_arena_calloc(&r->arena, sizeof(*a));
    if (a == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return 1;
    }
    snprintf(a->merchant_id, sizeof(a->merchant_id), "%s", rec->merchant_id);
    snprintf(a->key_id, sizeof(a->key_id), "%s", rec->id);
    a->livemode = rec->livemode;
    a->kind = strcmp(rec->kind, "secret") == 0 ? PD_KEY_SECRET : strcmp(rec->kind, "publishable") == 0 ? PD_KEY_PUBLISHABLE
                                                                                                     : PD_KEY_RESTRICTED;
    a->rate_per_s = rec->rate_per_s ? rec->rate_per_s : api->cfg->rate_per_s;
    a->burst = rec->burst ? rec->burst : api->cfg->burst;
    a->monthly_quota = rec->monthly_quota ? rec->monthly_quota : api->cfg->monthly_quota;
    r->auth = a;
    return pd_limits_plan(api, r, a);
}

/* on a reader thread */
static int
auth_read(pd_db_t *db, pd_req_t *r, void *ctx)
{
    (void)r;
    auth_t *x = ctx;
    return read_key(db, x->prefix, &x->epoch, &x->rec);
}

/* back on the loop: the row is cached only when read under the epoch in force */
static void
auth_then(pd_req_t *r, void *ctx, int rc)
{
    auth_t *x = ctx;
    int64_t epoch;
    if (rc == 0 && x->api->key_epoch != NULL && pd_key_epoch_current(x->api->key_epoch, &epoch) &&
        epoch == x->epoch) {
        cache_epoch_seen(epoch);
        cache_put(&x->rec, pd_mono_ms());
    }
    if (auth_decide(r, x, rc) == 0) {
        pd_req_hold(r); /* pd_req_resume ends a hold: the one pd_api_read ended already */
        pd_req_resume(r);
    }
}

int
pd_auth_filter(pd_req_t *r, void *arg)
{
    pd_api_t *api = arg;
    char key[KEY_MAX + 1];
    uint8_t pepper[256];
    size_t pepper_len = 0;

    if (r->route == NULL || (r->route->flags & PD_ROUTE_PUBLIC) || r->listener != PD_L_API)
        return 0;
    if (pd_limits_locked(api, r))
        return 1;
    pd_view_t h = pd_req_header(r, "authorization");
    if (h.p == NULL)
        return auth_failed(api, r, "You did not provide an API key. You need to provide your API key in the Authorization "
                               "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').");
    if (!key_from_header(h, key, sizeof(key)) || strlen(key) < PD_KEY_PREFIX_LEN + 8) {
        OPENSSL_cleanse(key, sizeof(key));
        return auth_failed(api, r, "Invalid API Key provided: the Authorization header must be 'Bearer <key>'.");
    }
    auth_t *x = pd_arena_calloc(&r->arena, sizeof(*x));
    if (x == NULL) {
        OPENSSL_cleanse(key, sizeof(key));
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return 1;
    }
    x->api = api;
    mask(key, x->masked, sizeof(x->masked));
    memcpy(x->prefix, key, PD_KEY_PREFIX_LEN);
    x->prefix[PD_KEY_PREFIX_LEN] = '\0';
    x->hashed = pd_vault_link_pepper(api->vault, pepper, sizeof(pepper), &pepper_len) == 0 &&
                pd_api_key_hash(pepper, pepper_len, pd_view_cstr(key), x->hash) == 0;
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(pepper, sizeof(pepper));
    if (!pd_store_reads_offloaded(api->store))
        return auth_decide(r, x, lookup_inline(r, x->prefix, &x->rec));
    if (lookup_cached(api, x->prefix, &x->rec))
        return auth_decide(r, x, 0);
    pd_api_read(r, auth_read, auth_then, x);
    return PD_FILTER_PENDING;
}
