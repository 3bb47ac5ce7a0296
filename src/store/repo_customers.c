/* Customers. The personal data is stored as an envelope only (pii_enc), see records.h. */
#include "store/repo.h"

#define CUS_COLS                                                                                                       \
    "id, merchant_id, livemode, pii_enc, COALESCE(email_index, ''), description, metadata, "                          \
    "COALESCE(default_payment_method, ''), deleted, created, updated, seq, version"

static int
decode_customer(const pd_row_t *r, pd_arena_t *a, void *rec)
{
    pd_customer_rec_t *c = rec;
    memset(c, 0, sizeof(*c));
    COPY(r, 0, c->id);
    COPY(r, 1, c->merchant_id);
    c->livemode = pd_row_int(r, 2) != 0;
    c->pii_enc = pd_repo_dup(a, r, 3);
    COPY(r, 4, c->email_index);
    c->description = pd_repo_dup(a, r, 5);
    c->metadata = pd_repo_dup(a, r, 6);
    COPY(r, 7, c->default_payment_method);
    c->deleted = pd_row_int(r, 8) != 0;
    c->created = pd_row_int(r, 9);
    c->updated = pd_row_int(r, 10);
    c->seq = pd_row_int(r, 11);
    c->version = pd_row_int(r, 12);
    return c->metadata != NULL ? 0 : PD_ERR_NOMEM;
}

int
pd_customer_insert(pd_db_t *tx, const pd_customer_rec_t *c)
{
    return pd_db_exec(tx,
                      "INSERT INTO customers (id, merchant_id, livemode, pii_enc, email_index, description, metadata, "
                      "default_payment_method, deleted, created, updated, seq, version) "
                      "VALUES (?,?,?,?,?,?,?,?,0,?,?,?,?)",
                      PD_SQL_ARGS(PD_SQL_S(c->id), PD_SQL_S(c->merchant_id), PD_SQL_I(c->livemode),
                                  pd_repo_opt(c->pii_enc), pd_repo_opt(c->email_index), PD_SQL_S(c->description),
                                  PD_SQL_S(c->metadata != NULL ? c->metadata : "{}"),
                                  pd_repo_opt(c->default_payment_method), PD_SQL_I(c->created), PD_SQL_I(c->updated),
                                  PD_SQL_I(c->seq), PD_SQL_I(c->version)),
                      NULL);
}

int
pd_customer_update(pd_db_t *tx, const pd_customer_rec_t *c)
{
    int64_t n = 0;
    int r = pd_db_exec(tx,
                       "UPDATE customers SET pii_enc = ?, email_index = ?, description = ?, metadata = ?, "
                       "default_payment_method = ?, updated = ?, version = ? WHERE id = ? AND version = ? AND "
                       "deleted = 0",
                       PD_SQL_ARGS(pd_repo_opt(c->pii_enc), pd_repo_opt(c->email_index), PD_SQL_S(c->description),
                                   PD_SQL_S(c->metadata != NULL ? c->metadata : "{}"),
                                   pd_repo_opt(c->default_payment_method), PD_SQL_I(c->updated), PD_SQL_I(c->version),
                                   PD_SQL_S(c->id), PD_SQL_I(c->version - 1)),
                       &n);
    return r != 0 ? r : n == 1 ? 0 : PD_ERR_CONFLICT;
}

int
pd_customer_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id,
                pd_customer_rec_t *out)
{
    return pd_get_one(db, "SELECT " CUS_COLS " FROM customers WHERE id = ? AND merchant_id = ? AND livemode = ?",
                      decode_customer, a, out, merchant, livemode, id);
}

static const pd_list_def_t customer_list = {
    "SELECT " CUS_COLS " FROM customers WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR email_index = ?) "
    "AND deleted = 0 AND created >= ? AND created <= ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?",
    "SELECT " CUS_COLS " FROM customers WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR email_index = ?) "
    "AND deleted = 0 AND created >= ? AND created <= ? AND (seq, id) > (?, ?) ORDER BY seq ASC, id ASC LIMIT ?",
    "SELECT seq FROM customers WHERE id = ? AND merchant_id = ? AND livemode = ?",
    decode_customer,
    sizeof(pd_customer_rec_t),
};

int
pd_customer_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
                 void *arg, bool *has_more)
{
    return pd_list_run(db, a, &customer_list, merchant, livemode, q, fn, arg, has_more);
}

int
pd_customer_delete(pd_db_t *tx, const char *merchant, bool livemode, const char *id, int64_t now)
{
    int64_t n = 0;
    int r = pd_db_exec(tx,
                       "UPDATE customers SET deleted = 1, pii_enc = NULL, email_index = NULL, "
                       "default_payment_method = NULL, updated = ?, version = version + 1 "
                       "WHERE id = ? AND merchant_id = ? AND livemode = ? AND deleted = 0",
                       PD_SQL_ARGS(PD_SQL_I(now), PD_SQL_S(id), PD_SQL_S(merchant), PD_SQL_I(livemode)), &n);
    return r != 0 ? r : n == 1 ? 0 : PD_ERR_NOTFOUND;
}

int
pd_customer_clear_default_pm(pd_db_t *tx, const char *customer, const char *pm)
{
    return pd_db_exec(tx,
                      "UPDATE customers SET default_payment_method = NULL, version = version + 1 "
                      "WHERE id = ? AND default_payment_method = ?",
                      PD_SQL_ARGS(PD_SQL_S(customer), PD_SQL_S(pm)), NULL);
}

int
pd_customer_search(pd_db_t *db, const pd_search_q_t *q, pd_search_fn fn, void *arg, int64_t *rows)
{
    /* the email's index names the few rows to read: +seq keeps the planner off the list
     * index (which would spare the sort of those rows but read all the merchant's) */
    if (q->email_index != NULL)
        return pd_search_run(
            db,
            "SELECT " CUS_COLS ", CASE WHEN created >= ? AND created <= ? THEN 1 ELSE 0 END FROM customers "
            "WHERE merchant_id = ? AND livemode = ? AND email_index = ? AND deleted = 0 AND (+seq, id) < (?, ?) "
            "ORDER BY +seq DESC, id DESC LIMIT ?",
            PD_SQL_ARGS(PD_SQL_I(q->created_gte), PD_SQL_I(q->created_lte), PD_SQL_S(q->merchant),
                        PD_SQL_I(q->livemode), PD_SQL_S(q->email_index), PD_SQL_I(q->after_seq),
                        PD_SQL_S(q->after_id), PD_SQL_I(q->limit)),
            11, 13, decode_customer, sizeof(pd_customer_rec_t), fn, arg, rows);
    return pd_search_run(db,
                         "SELECT " CUS_COLS ", CASE WHEN created >= ? AND created <= ? THEN 1 ELSE 0 END FROM "
                         "customers WHERE merchant_id = ? AND livemode = ? AND deleted = 0 AND (seq, id) < (?, ?) "
                         "ORDER BY seq DESC, id DESC LIMIT ?",
                         PD_SQL_ARGS(PD_SQL_I(q->created_gte), PD_SQL_I(q->created_lte), PD_SQL_S(q->merchant),
                                     PD_SQL_I(q->livemode), PD_SQL_I(q->after_seq), PD_SQL_S(q->after_id),
                                     PD_SQL_I(q->limit)),
                         11, 13, decode_customer, sizeof(pd_customer_rec_t), fn, arg, rows);
}
