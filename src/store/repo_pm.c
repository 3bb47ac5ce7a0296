/* Payment methods and tokens: vault references and display fields only. */
#include "store/repo.h"

int
pd_pm_insert(pd_db_t *tx, const pd_pm_rec_t *p)
{
    return pd_db_exec(
        tx,
        "INSERT INTO payment_methods (id, object, merchant_id, livemode, vault_token, brand, last4, exp_month, "
        "exp_year, fingerprint, funding, country, cvc_check, billing_name, metadata, used, created, seq, "
        "billing_name_enc, customer, detached) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        PD_SQL_ARGS(PD_SQL_S(p->id), PD_SQL_S(p->object), PD_SQL_S(p->merchant_id), PD_SQL_I(p->livemode),
                    PD_SQL_S(p->vault_token), PD_SQL_S(p->brand), PD_SQL_S(p->last4), PD_SQL_I(p->exp_month),
                    PD_SQL_I(p->exp_year), PD_SQL_S(p->fingerprint), PD_SQL_S(p->funding), pd_repo_opt(p->country),
                    pd_repo_opt(p->cvc_check), PD_SQL_NIL /* the clear name is never stored */,
                    PD_SQL_S(p->metadata ? p->metadata : "{}"), PD_SQL_I(p->used), PD_SQL_I(p->created),
                    PD_SQL_I(p->seq), PD_SQL_S(p->billing_name_enc), pd_repo_opt(p->customer),
                    PD_SQL_I(p->detached)),
        NULL);
}

static int
decode_pm(const pd_row_t *r, pd_arena_t *a, void *rec)
{
    pd_pm_rec_t *p = rec;
    COPY(r, 0, p->id);
    COPY(r, 1, p->object);
    COPY(r, 2, p->merchant_id);
    p->livemode = pd_row_int(r, 3) != 0;
    COPY(r, 4, p->vault_token);
    COPY(r, 5, p->brand);
    COPY(r, 6, p->last4);
    p->exp_month = (int)pd_row_int(r, 7);
    p->exp_year = (int)pd_row_int(r, 8);
    COPY(r, 9, p->fingerprint);
    COPY(r, 10, p->funding);
    COPY(r, 11, p->country);
    COPY(r, 12, p->cvc_check);
    p->billing_name = pd_repo_dup(a, r, 13);
    p->metadata = pd_repo_dup(a, r, 14);
    p->used = pd_row_int(r, 15) != 0;
    p->created = pd_row_int(r, 16);
    p->seq = pd_row_int(r, 17);
    p->billing_name_enc = pd_repo_dup(a, r, 18);
    COPY(r, 19, p->customer);
    p->detached = pd_row_int(r, 20) != 0;
    return 0;
}

#define PM_COLS                                                                                                        \
    "id, object, merchant_id, livemode, vault_token, brand, last4, exp_month, exp_year, fingerprint, funding, "       \
    "COALESCE(country, ''), COALESCE(cvc_check, ''), billing_name, metadata, used, created, seq, billing_name_enc, "  \
    "COALESCE(customer, ''), detached"

int
pd_pm_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id, pd_pm_rec_t *out)
{
    return pd_get_one(db, "SELECT " PM_COLS " FROM payment_methods WHERE id = ? AND merchant_id = ? AND livemode = ?",
                      decode_pm, a, out, merchant, livemode, id);
}

int
pd_pm_mark_used(pd_db_t *tx, const char *id)
{
    int64_t n = 0;
    int r = pd_db_exec(tx, "UPDATE payment_methods SET used = 1 WHERE id = ? AND used = 0", PD_SQL_ARGS(PD_SQL_S(id)),
                       &n);
    return r != 0 ? r : n == 1 ? 0 : PD_ERR_CONFLICT;
}

int
pd_pm_attach(pd_db_t *tx, const char *id, const char *customer)
{
    int64_t n = 0;
    int r = pd_db_exec(tx,
                       "UPDATE payment_methods SET customer = ? WHERE id = ? AND object = 'payment_method' AND "
                       "customer IS NULL AND detached = 0 AND "
                       "EXISTS (SELECT 1 FROM customers WHERE id = ? AND deleted = 0)",
                       PD_SQL_ARGS(PD_SQL_S(customer), PD_SQL_S(id), PD_SQL_S(customer)), &n);
    return r != 0 ? r : n == 1 ? 0 : PD_ERR_CONFLICT;
}

int
pd_pm_detach(pd_db_t *tx, const char *id, const char *customer)
{
    int64_t n = 0;
    int r = pd_db_exec(tx, "UPDATE payment_methods SET customer = NULL, detached = 1 WHERE id = ? AND customer = ?",
                       PD_SQL_ARGS(PD_SQL_S(id), PD_SQL_S(customer)), &n);
    return r != 0 ? r : n == 1 ? 0 : PD_ERR_CONFLICT;
}

int
pd_pm_detach_all(pd_db_t *tx, const char *customer)
{
    return pd_db_exec(tx, "UPDATE payment_methods SET customer = NULL, detached = 1 WHERE customer = ?",
                      PD_SQL_ARGS(PD_SQL_S(customer)), NULL);
}

static const pd_list_def_t pm_list = {
    "SELECT " PM_COLS " FROM payment_methods WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR customer = ?) "
    "AND object = 'payment_method' AND created >= ? AND created <= ? AND (seq, id) < (?, ?) "
    "ORDER BY seq DESC, id DESC LIMIT ?",
    "SELECT " PM_COLS " FROM payment_methods WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR customer = ?) "
    "AND object = 'payment_method' AND created >= ? AND created <= ? AND (seq, id) > (?, ?) "
    "ORDER BY seq ASC, id ASC LIMIT ?",
    "SELECT seq FROM payment_methods WHERE id = ? AND merchant_id = ? AND livemode = ? AND object = 'payment_method'",
    decode_pm,
    sizeof(pd_pm_rec_t),
};

int
pd_pm_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
           void *arg, bool *has_more)
{
    return pd_list_run(db, a, &pm_list, merchant, livemode, q, fn, arg, has_more);
}
