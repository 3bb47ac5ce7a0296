/* PaymentIntents. Updates check the version so concurrent changes cannot both win. */
#include "payd/pay.h"
#include "store/repo.h"

#define PI_COLS                                                                                                        \
    "id, merchant_id, livemode, amount, currency, status, capture_method, COALESCE(payment_method, ''), "             \
    "description, metadata, statement_descriptor, receipt_email, amount_capturable, amount_received, "                \
    "COALESCE(latest_charge, ''), last_payment_error, COALESCE(cancellation_reason, ''), COALESCE(canceled_at, 0), " \
    "created, seq, version, COALESCE(customer, ''), COALESCE(setup_future_usage, '')"

static int
decode_pi(const pd_row_t *r, pd_arena_t *a, void *rec)
{
    pd_pi_rec_t *p = rec;
    COPY(r, 0, p->id);
    COPY(r, 1, p->merchant_id);
    p->livemode = pd_row_int(r, 2) != 0;
    p->amount = pd_row_int(r, 3);
    COPY(r, 4, p->currency);
    p->status = pd_pi_status_parse(pd_row_text(r, 5));
    if (p->status < 0)
        return PD_ERR_INVALID;
    COPY(r, 6, p->capture_method);
    COPY(r, 7, p->payment_method);
    p->description = pd_repo_dup(a, r, 8);
    p->metadata = pd_repo_dup(a, r, 9);
    p->statement_descriptor = pd_repo_dup(a, r, 10);
    p->receipt_email = pd_repo_dup(a, r, 11);
    p->amount_capturable = pd_row_int(r, 12);
    p->amount_received = pd_row_int(r, 13);
    COPY(r, 14, p->latest_charge);
    p->last_payment_error = pd_repo_dup(a, r, 15);
    COPY(r, 16, p->cancellation_reason);
    p->canceled_at = pd_row_int(r, 17);
    p->created = pd_row_int(r, 18);
    p->seq = pd_row_int(r, 19);
    p->version = pd_row_int(r, 20);
    COPY(r, 21, p->customer);
    COPY(r, 22, p->setup_future_usage);
    return 0;
}

int
pd_pi_insert(pd_db_t *tx, const pd_pi_rec_t *p)
{
    return pd_db_exec_deferred(
        tx,
        "INSERT INTO payment_intents (id, merchant_id, livemode, amount, currency, status, capture_method, "
        "payment_method, description, metadata, statement_descriptor, receipt_email, amount_capturable, "
        "amount_received, latest_charge, last_payment_error, cancellation_reason, canceled_at, created, seq, version, "
        "customer, setup_future_usage) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        PD_SQL_ARGS(PD_SQL_S(p->id), PD_SQL_S(p->merchant_id), PD_SQL_I(p->livemode), PD_SQL_I(p->amount),
                    PD_SQL_S(p->currency), PD_SQL_S(pd_pi_status_name(p->status)), PD_SQL_S(p->capture_method),
                    pd_repo_opt(p->payment_method), PD_SQL_S(p->description), PD_SQL_S(p->metadata ? p->metadata : "{}"),
                    PD_SQL_S(p->statement_descriptor), PD_SQL_S(p->receipt_email), PD_SQL_I(p->amount_capturable),
                    PD_SQL_I(p->amount_received), pd_repo_opt(p->latest_charge), PD_SQL_S(p->last_payment_error),
                    pd_repo_opt(p->cancellation_reason), p->canceled_at ? PD_SQL_I(p->canceled_at) : PD_SQL_NIL,
                    PD_SQL_I(p->created), PD_SQL_I(p->seq), PD_SQL_I(p->version), pd_repo_opt(p->customer),
                    pd_repo_opt(p->setup_future_usage)));
}

int
pd_pi_update(pd_db_t *tx, const pd_pi_rec_t *p)
{
    int64_t n = 0;
    int r = pd_db_exec(
        tx,
        "UPDATE payment_intents SET amount = ?, currency = ?, status = ?, capture_method = ?, payment_method = ?, "
        "description = ?, metadata = ?, statement_descriptor = ?, receipt_email = ?, amount_capturable = ?, "
        "amount_received = ?, latest_charge = ?, last_payment_error = ?, cancellation_reason = ?, canceled_at = ?, "
        "customer = ?, setup_future_usage = ?, version = ? WHERE id = ? AND version = ?",
        PD_SQL_ARGS(PD_SQL_I(p->amount), PD_SQL_S(p->currency), PD_SQL_S(pd_pi_status_name(p->status)),
                    PD_SQL_S(p->capture_method), pd_repo_opt(p->payment_method), PD_SQL_S(p->description),
                    PD_SQL_S(p->metadata ? p->metadata : "{}"), PD_SQL_S(p->statement_descriptor),
                    PD_SQL_S(p->receipt_email), PD_SQL_I(p->amount_capturable), PD_SQL_I(p->amount_received),
                    pd_repo_opt(p->latest_charge), PD_SQL_S(p->last_payment_error), pd_repo_opt(p->cancellation_reason),
                    p->canceled_at ? PD_SQL_I(p->canceled_at) : PD_SQL_NIL, pd_repo_opt(p->customer),
                    pd_repo_opt(p->setup_future_usage), PD_SQL_I(p->version), PD_SQL_S(p->id),
                    PD_SQL_I(p->version - 1)),
        &n);
    return r != 0 ? r : n == 1 ? 0 : PD_ERR_CONFLICT;
}

int
pd_pi_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id, pd_pi_rec_t *out)
{
    return pd_get_one(db, "SELECT " PI_COLS " FROM payment_intents WHERE id = ? AND merchant_id = ? AND livemode = ?",
                      decode_pi, a, out, merchant, livemode, id);
}

static const pd_list_def_t pi_list = {
    "SELECT " PI_COLS " FROM payment_intents WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR customer = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?",
    "SELECT " PI_COLS " FROM payment_intents WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR customer = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) > (?, ?) ORDER BY seq ASC, id ASC LIMIT ?",
    "SELECT seq FROM payment_intents WHERE id = ? AND merchant_id = ? AND livemode = ?",
    decode_pi,
    sizeof(pd_pi_rec_t),
};

int
pd_pi_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
           void *arg, bool *has_more)
{
    return pd_list_run(db, a, &pi_list, merchant, livemode, q, fn, arg, has_more);
}

int
pd_pi_search(pd_db_t *db, const pd_search_q_t *q, pd_search_fn fn, void *arg, int64_t *rows)
{
    return pd_search_run(db,
                         "SELECT " PI_COLS ", " PD_SEARCH_PRE_SQL " FROM payment_intents WHERE merchant_id = ? AND "
                         "livemode = ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?",
                         PD_SQL_ARGS(PD_SEARCH_PRE_ARGS(q), PD_SQL_S(q->merchant), PD_SQL_I(q->livemode),
                                     PD_SQL_I(q->after_seq), PD_SQL_S(q->after_id), PD_SQL_I(q->limit)),
                         19, 23, decode_pi, sizeof(pd_pi_rec_t), fn, arg, rows);
}
