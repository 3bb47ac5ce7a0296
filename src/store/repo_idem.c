/* Idempotency keys: the database is the source of truth. */
#include "store/repo.h"

typedef struct {
    pd_arena_t *a;
    pd_idem_rec_t *rec;
    bool found;
} idem_t;

static int
idem_row(const pd_row_t *r, void *arg)
{
    idem_t *x = arg;
    x->found = true;
    COPY(r, 0, x->rec->fingerprint);
    x->rec->complete = pd_view_eq_cstr(pd_row_text(r, 1), "complete");
    x->rec->status = (int)pd_row_int(r, 2);
    x->rec->body = pd_repo_dup(x->a, r, 3);
    x->rec->created = pd_row_int(r, 4);
    x->rec->redacted = pd_repo_dup(x->a, r, 5);
    return 1;
}

int
pd_idem_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *key, pd_idem_rec_t *out)
{
    idem_t x = {a, out, false};
    int r = pd_db_query(db,
                        "SELECT fingerprint, state, COALESCE(status, 0), body, created, redacted FROM idempotency_keys "
                        "WHERE merchant_id = ? AND livemode = ? AND key = ?",
                        PD_SQL_ARGS(PD_SQL_S(merchant), PD_SQL_I(livemode), PD_SQL_S(key)), idem_row, &x);
    return r != 0 ? r : x.found ? 0 : PD_ERR_NOTFOUND;
}

int
pd_idem_claim(pd_db_t *tx, pd_arena_t *a, const char *merchant, bool livemode, const char *key, const char *fingerprint,
              int64_t now, int64_t expired_before, pd_idem_rec_t *existing)
{
    static const char insert[] = "INSERT INTO idempotency_keys (merchant_id, livemode, key, fingerprint, state, created) "
                                 "VALUES (?, ?, ?, ?, 'in_flight', ?) ON CONFLICT (merchant_id, livemode, key) DO NOTHING";
    int64_t n = 0;
    /* the common case, a new key, costs one index probe: the insert itself */
    int r = pd_db_exec(tx, insert,
                       PD_SQL_ARGS(PD_SQL_S(merchant), PD_SQL_I(livemode), PD_SQL_S(key), PD_SQL_S(fingerprint),
                                   PD_SQL_I(now)),
                       &n);
    if (r != 0 || n == 1)
        return r;
    if ((r = pd_idem_get(tx, a, merchant, livemode, key, existing)) != 0)
        return r;
    if (existing->created >= expired_before)
        return PD_ERR_EXISTS;
    /* an expired key is a new key */
    if ((r = pd_db_exec(tx, "DELETE FROM idempotency_keys WHERE merchant_id = ? AND livemode = ? AND key = ?",
                        PD_SQL_ARGS(PD_SQL_S(merchant), PD_SQL_I(livemode), PD_SQL_S(key)), NULL)) != 0 ||
        (r = pd_db_exec(tx, insert,
                        PD_SQL_ARGS(PD_SQL_S(merchant), PD_SQL_I(livemode), PD_SQL_S(key), PD_SQL_S(fingerprint),
                                    PD_SQL_I(now)),
                        &n)) != 0)
        return r;
    return n == 1 ? 0 : PD_ERR_INTERNAL;
}

int
pd_idem_complete(pd_db_t *tx, const char *merchant, bool livemode, const char *key, int status, pd_view_t body)
{
    return pd_db_exec_deferred(tx,
                      "UPDATE idempotency_keys SET state = 'complete', status = ?, body = ? "
                      "WHERE merchant_id = ? AND livemode = ? AND key = ?",
                      PD_SQL_ARGS(PD_SQL_I(status), PD_SQL_V(body), PD_SQL_S(merchant), PD_SQL_I(livemode),
                                  PD_SQL_S(key)));
}

int
pd_idem_complete_redacted(pd_db_t *tx, const char *merchant, bool livemode, const char *key, int status,
                          pd_view_t body, const char *redacted)
{
    return pd_db_exec_deferred(tx,
                      "UPDATE idempotency_keys SET state = 'complete', status = ?, body = ?, redacted = ? "
                      "WHERE merchant_id = ? AND livemode = ? AND key = ?",
                      PD_SQL_ARGS(PD_SQL_I(status), PD_SQL_V(body), pd_repo_opt(redacted), PD_SQL_S(merchant),
                                  PD_SQL_I(livemode), PD_SQL_S(key)));
}

int
pd_idem_release(pd_db_t *tx, const char *merchant, bool livemode, const char *key)
{
    return pd_db_exec(tx,
                      "DELETE FROM idempotency_keys WHERE merchant_id = ? AND livemode = ? AND key = ? "
                      "AND state = 'in_flight'",
                      PD_SQL_ARGS(PD_SQL_S(merchant), PD_SQL_I(livemode), PD_SQL_S(key)), NULL);
}

/* Keys are stored in the order they were claimed, so the oldest are first: expiry
 * looks at the head of the table only (a claim checks its own key's age exactly). */
int
pd_idem_expired(pd_db_t *db, int64_t before, bool *any)
{
    int64_t oldest = 0;
    int r = pd_db_query_int(db, "SELECT created FROM idempotency_keys ORDER BY id LIMIT 1", NULL, 0, &oldest);
    *any = r == 0 && oldest < before;
    return r == PD_ERR_NOTFOUND ? 0 : r;
}

int
pd_idem_purge(pd_db_t *tx, int64_t before, int64_t limit)
{
    return pd_db_exec(tx,
                      "DELETE FROM idempotency_keys WHERE id IN "
                      "(SELECT id FROM idempotency_keys ORDER BY id LIMIT ?) AND created < ?",
                      PD_SQL_ARGS(PD_SQL_I(limit), PD_SQL_I(before)), NULL);
}
