/* Merchants and their API keys. */
#include "store/repo.h"

int
pd_merchant_insert(pd_db_t *tx, const pd_merchant_rec_t *m)
{
    return pd_db_exec(tx, "INSERT INTO merchants (id, name, created) VALUES (?, ?, ?)",
                      PD_SQL_ARGS(PD_SQL_S(m->id), PD_SQL_S(m->name), PD_SQL_I(m->created)), NULL);
}

static int
merchant_row(const pd_row_t *r, void *arg)
{
    pd_merchant_rec_t *m = arg;
    COPY(r, 0, m->id);
    COPY(r, 1, m->name);
    m->created = pd_row_int(r, 2);
    return 1;
}

int
pd_merchant_get(pd_db_t *db, const char *id, pd_merchant_rec_t *out)
{
    out->id[0] = '\0';
    int r = pd_db_query(db, "SELECT id, name, created FROM merchants WHERE id = ?", PD_SQL_ARGS(PD_SQL_S(id)),
                        merchant_row, out);
    return r != 0 ? r : out->id[0] ? 0 : PD_ERR_NOTFOUND;
}

typedef struct {
    pd_rec_fn fn;
    void *arg;
} each_merchant_t;

static int
each_merchant_row(const pd_row_t *r, void *arg)
{
    each_merchant_t *e = arg;
    pd_merchant_rec_t m;
    COPY(r, 0, m.id);
    COPY(r, 1, m.name);
    m.created = pd_row_int(r, 2);
    return e->fn(&m, e->arg);
}

int
pd_merchant_list(pd_db_t *db, pd_rec_fn fn, void *arg)
{
    each_merchant_t e = {fn, arg};
    return pd_db_query(db, "SELECT id, name, created FROM merchants ORDER BY created, id", NULL, 0,
                       each_merchant_row, &e);
}

int
pd_key_insert(pd_db_t *tx, const pd_key_rec_t *k)
{
    return pd_db_exec(
        tx,
        "INSERT INTO api_keys (id, merchant_id, kind, livemode, prefix, hash, last4, scopes, name, created, "
        "expires_at, revoked_at, rate_per_s, burst, monthly_quota) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        PD_SQL_ARGS(PD_SQL_S(k->id), PD_SQL_S(k->merchant_id), PD_SQL_S(k->kind), PD_SQL_I(k->livemode),
                    PD_SQL_S(k->prefix), PD_SQL_S(k->hash), PD_SQL_S(k->last4), PD_SQL_S(k->scopes), PD_SQL_S(k->name),
                    PD_SQL_I(k->created), k->expires_at ? PD_SQL_I(k->expires_at) : PD_SQL_NIL,
                    k->revoked_at ? PD_SQL_I(k->revoked_at) : PD_SQL_NIL,
                    k->rate_per_s ? PD_SQL_I(k->rate_per_s) : PD_SQL_NIL, k->burst ? PD_SQL_I(k->burst) : PD_SQL_NIL,
                    k->monthly_quota ? PD_SQL_I(k->monthly_quota) : PD_SQL_NIL),
        NULL);
}

#define KEY_COLS                                                                                                       \
    "id, merchant_id, kind, livemode, prefix, hash, last4, scopes, name, created, COALESCE(expires_at, 0), "          \
    "COALESCE(revoked_at, 0), COALESCE(rate_per_s, 0), COALESCE(burst, 0), COALESCE(monthly_quota, 0)"

static int
decode_key(const pd_row_t *r, pd_key_rec_t *k)
{
    COPY(r, 0, k->id);
    COPY(r, 1, k->merchant_id);
    COPY(r, 2, k->kind);
    k->livemode = pd_row_int(r, 3) != 0;
    COPY(r, 4, k->prefix);
    COPY(r, 5, k->hash);
    COPY(r, 6, k->last4);
    COPY(r, 7, k->scopes);
    COPY(r, 8, k->name);
    k->created = pd_row_int(r, 9);
    k->expires_at = pd_row_int(r, 10);
    k->revoked_at = pd_row_int(r, 11);
    k->rate_per_s = pd_row_int(r, 12);
    k->burst = pd_row_int(r, 13);
    k->monthly_quota = pd_row_int(r, 14);
    return 0;
}

static int
key_row(const pd_row_t *r, void *arg)
{
    int rc = decode_key(r, arg);
    return rc != 0 ? rc : 1;
}

int
pd_key_by_prefix(pd_db_t *db, const char *prefix, pd_key_rec_t *out)
{
    out->id[0] = '\0';
    int r = pd_db_query(db, "SELECT " KEY_COLS " FROM api_keys WHERE prefix = ?", PD_SQL_ARGS(PD_SQL_S(prefix)),
                        key_row, out);
    return r != 0 ? r : out->id[0] ? 0 : PD_ERR_NOTFOUND;
}

int
pd_key_get(pd_db_t *db, const char *id, pd_key_rec_t *out)
{
    out->id[0] = '\0';
    int r = pd_db_query(db, "SELECT " KEY_COLS " FROM api_keys WHERE id = ?", PD_SQL_ARGS(PD_SQL_S(id)), key_row, out);
    return r != 0 ? r : out->id[0] ? 0 : PD_ERR_NOTFOUND;
}

/* every change that can end a key's life moves the epoch in the same transaction:
 * the auth caches of every thread and node compare it on each request */
static int
bump_epoch(pd_db_t *tx)
{
    return pd_db_exec(tx, "UPDATE api_key_epoch SET epoch = epoch + 1", NULL, 0, NULL);
}

int
pd_key_epoch(pd_db_t *db, int64_t *out)
{
    return pd_db_query_int(db, "SELECT epoch FROM api_key_epoch", NULL, 0, out);
}

int
pd_key_revoke(pd_db_t *tx, const char *id, int64_t when)
{
    int64_t n = 0;
    int r = pd_db_exec(tx, "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                       PD_SQL_ARGS(PD_SQL_I(when), PD_SQL_S(id)), &n);
    if (r == 0 && n != 1)
        r = PD_ERR_NOTFOUND;
    return r != 0 ? r : bump_epoch(tx);
}

int
pd_key_set_expiry(pd_db_t *tx, const char *id, int64_t when, int64_t now)
{
    int64_t n = 0;
    /* only a live key gets an expiry, and never a later one than it has: an expired or
     * revoked key stays dead */
    int r = pd_db_exec(tx,
                       "UPDATE api_keys SET expires_at = CASE WHEN expires_at IS NOT NULL AND expires_at < ? "
                       "THEN expires_at ELSE ? END WHERE id = ? AND revoked_at IS NULL "
                       "AND (expires_at IS NULL OR expires_at > ?)",
                       PD_SQL_ARGS(PD_SQL_I(when), PD_SQL_I(when), PD_SQL_S(id), PD_SQL_I(now)), &n);
    if (r == 0 && n != 1)
        r = PD_ERR_STATE;
    return r != 0 ? r : bump_epoch(tx);
}

typedef struct {
    pd_rec_fn fn;
    void *arg;
} each_t;

static int
each_key(const pd_row_t *r, void *arg)
{
    each_t *e = arg;
    pd_key_rec_t k;
    int rc = decode_key(r, &k);
    return rc != 0 ? rc : e->fn(&k, e->arg);
}

int
pd_key_list(pd_db_t *db, const char *merchant_id, pd_rec_fn fn, void *arg)
{
    each_t e = {fn, arg};
    return pd_db_query(db, "SELECT " KEY_COLS " FROM api_keys WHERE merchant_id = ? ORDER BY created, id",
                       PD_SQL_ARGS(PD_SQL_S(merchant_id)), each_key, &e);
}
