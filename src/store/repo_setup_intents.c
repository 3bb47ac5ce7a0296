/* SetupIntents. Updates check the version so concurrent changes cannot both win. */
#include "payd/time.h"
#include "store/repo.h"

#define SETI_COLS                                                                                                      \
    "id, merchant_id, livemode, status, COALESCE(customer, ''), COALESCE(payment_method, ''), usage, description, "   \
    "metadata, last_setup_error, COALESCE(cancellation_reason, ''), idempotency_key, created, updated, seq, version"

static int
decode_seti(const pd_row_t *r, pd_arena_t *a, void *rec)
{
    pd_seti_rec_t *s = rec;
    memset(s, 0, sizeof(*s));
    COPY(r, 0, s->id);
    COPY(r, 1, s->merchant_id);
    s->livemode = pd_row_int(r, 2) != 0;
    COPY(r, 3, s->status);
    COPY(r, 4, s->customer);
    COPY(r, 5, s->payment_method);
    COPY(r, 6, s->usage);
    s->description = pd_repo_dup(a, r, 7);
    s->metadata = pd_repo_dup(a, r, 8);
    s->last_setup_error = pd_repo_dup(a, r, 9);
    COPY(r, 10, s->cancellation_reason);
    s->idempotency_key = pd_repo_dup(a, r, 11);
    s->created = pd_row_int(r, 12);
    s->updated = pd_row_int(r, 13);
    s->seq = pd_row_int(r, 14);
    s->version = pd_row_int(r, 15);
    return s->metadata != NULL ? 0 : PD_ERR_NOMEM;
}

int
pd_seti_insert(pd_db_t *tx, const pd_seti_rec_t *s)
{
    return pd_db_exec(tx,
                      "INSERT INTO setup_intents (id, merchant_id, livemode, status, customer, payment_method, usage, "
                      "description, metadata, last_setup_error, cancellation_reason, idempotency_key, created, "
                      "updated, seq, version, node_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      PD_SQL_ARGS(PD_SQL_S(s->id), PD_SQL_S(s->merchant_id), PD_SQL_I(s->livemode),
                                  PD_SQL_S(s->status), pd_repo_opt(s->customer), pd_repo_opt(s->payment_method),
                                  PD_SQL_S(s->usage), PD_SQL_S(s->description),
                                  PD_SQL_S(s->metadata != NULL ? s->metadata : "{}"), PD_SQL_S(s->last_setup_error),
                                  pd_repo_opt(s->cancellation_reason), pd_repo_opt(s->idempotency_key),
                                  PD_SQL_I(s->created), PD_SQL_I(pd_unix_now()), PD_SQL_I(s->seq),
                                  PD_SQL_I(s->version), pd_repo_opt(pd_charge_node())),
                      NULL);
}

int
pd_seti_update(pd_db_t *tx, const pd_seti_rec_t *s)
{
    int64_t n = 0;
    int r = pd_db_exec(tx,
                       "UPDATE setup_intents SET status = ?, customer = ?, payment_method = ?, usage = ?, "
                       "description = ?, metadata = ?, last_setup_error = ?, cancellation_reason = ?, "
                       "idempotency_key = ?, updated = ?, version = ?, node_id = ? WHERE id = ? AND version = ?",
                       PD_SQL_ARGS(PD_SQL_S(s->status), pd_repo_opt(s->customer), pd_repo_opt(s->payment_method),
                                   PD_SQL_S(s->usage), PD_SQL_S(s->description),
                                   PD_SQL_S(s->metadata != NULL ? s->metadata : "{}"), PD_SQL_S(s->last_setup_error),
                                   pd_repo_opt(s->cancellation_reason), pd_repo_opt(s->idempotency_key),
                                   PD_SQL_I(pd_unix_now()), PD_SQL_I(s->version), pd_repo_opt(pd_charge_node()),
                                   PD_SQL_S(s->id),
                                   PD_SQL_I(s->version - 1)),
                       &n);
    return r != 0 ? r : n == 1 ? 0 : PD_ERR_CONFLICT;
}

int
pd_seti_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id, pd_seti_rec_t *out)
{
    return pd_get_one(db, "SELECT " SETI_COLS " FROM setup_intents WHERE id = ? AND merchant_id = ? AND livemode = ?",
                      decode_seti, a, out, merchant, livemode, id);
}

#define SETI_WHERE                                                                                                     \
    " FROM setup_intents WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR customer = ?) AND "                  \
    "(? IS NULL OR payment_method = ?) AND created >= ? AND created <= ? "

static const pd_list_def_t seti_list = {
    "SELECT " SETI_COLS SETI_WHERE "AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?",
    "SELECT " SETI_COLS SETI_WHERE "AND (seq, id) > (?, ?) ORDER BY seq ASC, id ASC LIMIT ?",
    "SELECT seq FROM setup_intents WHERE id = ? AND merchant_id = ? AND livemode = ?",
    decode_seti,
    sizeof(pd_seti_rec_t),
    true,
};

int
pd_seti_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
             void *arg, bool *has_more)
{
    return pd_list_run(db, a, &seti_list, merchant, livemode, q, fn, arg, has_more);
}

typedef struct {
    pd_arena_t *a;
    pd_rec_fn fn;
    void *arg;
} each_t;

static int
each_row(const pd_row_t *r, void *arg)
{
    each_t *e = arg;
    pd_seti_rec_t s;
    int rc = decode_seti(r, e->a, &s);
    return rc != 0 ? rc : e->fn(&s, e->arg);
}

int
pd_seti_list_processing(pd_db_t *db, pd_arena_t *a, int64_t older_than, pd_rec_fn fn, void *arg)
{
    each_t e = {a, fn, arg};
    /* the predicate of the partial index setup_intents_processing, written the same */
    return pd_db_query(db,
                       "SELECT " SETI_COLS " FROM setup_intents WHERE status = 'processing' AND updated <= ? "
                       "ORDER BY updated LIMIT 500",
                       PD_SQL_ARGS(PD_SQL_I(older_than)), each_row, &e);
}
