/* Disputes, charges.disputed and the workers' cursors. */
#include "store/repo.h"

#define DP_COLS                                                                                                        \
    "id, merchant_id, livemode, charge, payment_intent, processor_ref, amount, currency, reason, status, evidence, "  \
    "evidence_submitted, metadata, created, updated, seq, version"

static int
decode_dispute(const pd_row_t *r, pd_arena_t *a, void *rec)
{
    pd_dispute_rec_t *d = rec;
    COPY(r, 0, d->id);
    COPY(r, 1, d->merchant_id);
    d->livemode = pd_row_int(r, 2) != 0;
    COPY(r, 3, d->charge);
    COPY(r, 4, d->payment_intent);
    COPY(r, 5, d->processor_ref);
    d->amount = pd_row_int(r, 6);
    COPY(r, 7, d->currency);
    COPY(r, 8, d->reason);
    COPY(r, 9, d->status);
    d->evidence = pd_repo_dup(a, r, 10);
    d->evidence_submitted = pd_row_int(r, 11) != 0;
    d->metadata = pd_repo_dup(a, r, 12);
    d->created = pd_row_int(r, 13);
    d->updated = pd_row_int(r, 14);
    d->seq = pd_row_int(r, 15);
    d->version = pd_row_int(r, 16);
    return d->evidence != NULL && d->metadata != NULL ? 0 : PD_ERR_NOMEM;
}

int
pd_dispute_insert(pd_db_t *tx, const pd_dispute_rec_t *d)
{
    return pd_db_exec(tx,
                      "INSERT INTO disputes (" DP_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      PD_SQL_ARGS(PD_SQL_S(d->id), PD_SQL_S(d->merchant_id), PD_SQL_I(d->livemode),
                                  PD_SQL_S(d->charge), PD_SQL_S(d->payment_intent), PD_SQL_S(d->processor_ref),
                                  PD_SQL_I(d->amount), PD_SQL_S(d->currency), PD_SQL_S(d->reason),
                                  PD_SQL_S(d->status), PD_SQL_S(d->evidence != NULL ? d->evidence : "{}"),
                                  PD_SQL_I(d->evidence_submitted), PD_SQL_S(d->metadata != NULL ? d->metadata : "{}"),
                                  PD_SQL_I(d->created), PD_SQL_I(d->updated), PD_SQL_I(d->seq),
                                  PD_SQL_I(d->version)),
                      NULL);
}

int
pd_dispute_update(pd_db_t *tx, const pd_dispute_rec_t *d)
{
    int64_t n = 0;
    int r = pd_db_exec(tx,
                       "UPDATE disputes SET status = ?, evidence = ?, evidence_submitted = ?, metadata = ?, "
                       "updated = ?, version = ? WHERE id = ? AND version = ?",
                       PD_SQL_ARGS(PD_SQL_S(d->status), PD_SQL_S(d->evidence != NULL ? d->evidence : "{}"),
                                   PD_SQL_I(d->evidence_submitted),
                                   PD_SQL_S(d->metadata != NULL ? d->metadata : "{}"), PD_SQL_I(d->updated),
                                   PD_SQL_I(d->version), PD_SQL_S(d->id), PD_SQL_I(d->version - 1)),
                       &n);
    return r != 0 ? r : n == 1 ? 0 : PD_ERR_CONFLICT;
}

int
pd_dispute_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id, pd_dispute_rec_t *out)
{
    return pd_get_one(db, "SELECT " DP_COLS " FROM disputes WHERE id = ? AND merchant_id = ? AND livemode = ?",
                      decode_dispute, a, out, merchant, livemode, id);
}

typedef struct {
    pd_arena_t *a;
    pd_dispute_rec_t *out;
    bool found;
    pd_rec_fn fn;
    void *arg;
} dp_row_t;

static int
one_dispute(const pd_row_t *r, void *arg)
{
    dp_row_t *x = arg;
    int rc = decode_dispute(r, x->a, x->out);
    x->found = rc == 0;
    return rc != 0 ? rc : 1;
}

int
pd_dispute_by_ref(pd_db_t *db, pd_arena_t *a, const char *ref, pd_dispute_rec_t *out)
{
    dp_row_t x = {a, out, false, NULL, NULL};
    int r = pd_db_query(db, "SELECT " DP_COLS " FROM disputes WHERE processor_ref = ?", PD_SQL_ARGS(PD_SQL_S(ref)),
                        one_dispute, &x);
    return r != 0 ? r : x.found ? 0 : PD_ERR_NOTFOUND;
}

static const pd_list_def_t dispute_list = {
    "SELECT " DP_COLS " FROM disputes WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR charge = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?",
    "SELECT " DP_COLS " FROM disputes WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR charge = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) > (?, ?) ORDER BY seq ASC, id ASC LIMIT ?",
    "SELECT seq FROM disputes WHERE id = ? AND merchant_id = ? AND livemode = ?",
    decode_dispute,
    sizeof(pd_dispute_rec_t),
};

static const pd_list_def_t dispute_list_pi = {
    "SELECT " DP_COLS " FROM disputes WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR payment_intent = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?",
    "SELECT " DP_COLS " FROM disputes WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR payment_intent = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) > (?, ?) ORDER BY seq ASC, id ASC LIMIT ?",
    "SELECT seq FROM disputes WHERE id = ? AND merchant_id = ? AND livemode = ?",
    decode_dispute,
    sizeof(pd_dispute_rec_t),
};

int
pd_dispute_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
                void *arg, bool *has_more)
{
    return pd_list_run(db, a, &dispute_list, merchant, livemode, q, fn, arg, has_more);
}

int
pd_dispute_list_by_pi(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q,
                      pd_rec_fn fn, void *arg, bool *has_more)
{
    return pd_list_run(db, a, &dispute_list_pi, merchant, livemode, q, fn, arg, has_more);
}

static int
each_dispute(const pd_row_t *r, void *arg)
{
    dp_row_t *x = arg;
    int rc = decode_dispute(r, x->a, x->out);
    return rc != 0 ? rc : x->fn(x->out, x->arg);
}

int
pd_dispute_list_all(pd_db_t *db, pd_arena_t *a, pd_rec_fn fn, void *arg)
{
    pd_dispute_rec_t d;
    dp_row_t x = {a, &d, false, fn, arg};
    return pd_db_query(db, "SELECT " DP_COLS " FROM disputes ORDER BY created, id", NULL, 0, each_dispute, &x);
}

int
pd_charge_set_disputed(pd_db_t *tx, const char *charge_id, int disputed)
{
    int64_t n = 0;
    int r = pd_db_exec(tx, "UPDATE charges SET disputed = ?, version = version + 1 WHERE id = ?",
                       PD_SQL_ARGS(PD_SQL_I(disputed), PD_SQL_S(charge_id)), &n);
    return r != 0 ? r : n == 1 ? 0 : PD_ERR_NOTFOUND;
}

int
pd_cursor_get(pd_db_t *db, const char *name, int64_t *out)
{
    int r = pd_db_query_int(db, "SELECT value FROM worker_cursors WHERE name = ?", PD_SQL_ARGS(PD_SQL_S(name)), out);
    if (r == PD_ERR_NOTFOUND) {
        *out = 0;
        return 0;
    }
    return r;
}

int
pd_cursor_set(pd_db_t *tx, const char *name, int64_t value)
{
    int64_t n = 0;
    int r = pd_db_exec(tx, "UPDATE worker_cursors SET value = ? WHERE name = ?",
                       PD_SQL_ARGS(PD_SQL_I(value), PD_SQL_S(name)), &n);
    if (r == 0 && n == 0)
        r = pd_db_exec(tx, "INSERT INTO worker_cursors (name, value) VALUES (?, ?)",
                       PD_SQL_ARGS(PD_SQL_S(name), PD_SQL_I(value)), NULL);
    return r;
}
