/* Charges (one per confirmation) and refunds. */
#include <stdio.h>

#include "payd/cluster_store.h"
#include "payd/time.h"
#include "store/repo.h"

#define CH_COLS                                                                                                        \
    "id, merchant_id, livemode, payment_intent, payment_method, amount, currency, status, captured, processing, "    \
    "capture_requested, amount_captured, amount_refunded, COALESCE(processor_ref, ''), COALESCE(failure_code, ''), " \
    "COALESCE(failure_message, ''), COALESCE(decline_code, ''), outcome, description, idempotency_key, "              \
    "COALESCE(request_id, ''), created, seq, version, void_requested, pending_idempotency_key, capture_amount, "      \
    "updated, disputed, COALESCE(customer, '')"

static int
decode_charge(const pd_row_t *r, pd_arena_t *a, void *rec)
{
    pd_charge_rec_t *c = rec;
    COPY(r, 0, c->id);
    COPY(r, 1, c->merchant_id);
    c->livemode = pd_row_int(r, 2) != 0;
    COPY(r, 3, c->payment_intent);
    COPY(r, 4, c->payment_method);
    c->amount = pd_row_int(r, 5);
    COPY(r, 6, c->currency);
    COPY(r, 7, c->status);
    c->captured = pd_row_int(r, 8) != 0;
    c->processing = pd_row_int(r, 9) != 0;
    c->capture_requested = pd_row_int(r, 10) != 0;
    c->amount_captured = pd_row_int(r, 11);
    c->amount_refunded = pd_row_int(r, 12);
    COPY(r, 13, c->processor_ref);
    COPY(r, 14, c->failure_code);
    COPY(r, 15, c->failure_message);
    COPY(r, 16, c->decline_code);
    c->outcome = pd_repo_dup(a, r, 17);
    c->description = pd_repo_dup(a, r, 18);
    c->idempotency_key = pd_repo_dup(a, r, 19);
    COPY(r, 20, c->request_id);
    c->created = pd_row_int(r, 21);
    c->seq = pd_row_int(r, 22);
    c->version = pd_row_int(r, 23);
    c->void_requested = pd_row_int(r, 24) != 0;
    c->pending_idempotency_key = pd_repo_dup(a, r, 25);
    c->capture_amount = pd_row_int(r, 26);
    c->updated = pd_row_int(r, 27);
    c->disputed = (int)pd_row_int(r, 28);
    COPY(r, 29, c->customer);
    return 0;
}

/* this node's id, stamped on every charge it writes (set once at start, before any write) */
static char g_node[PD_NODE_ID_MAX];

void
pd_charge_set_node(const char *node_id)
{
    snprintf(g_node, sizeof(g_node), "%s", node_id != NULL ? node_id : "");
}

const char *
pd_charge_node(void)
{
    return g_node;
}

int
pd_charge_insert(pd_db_t *tx, const pd_charge_rec_t *c)
{
    return pd_db_exec_deferred(
        tx,
        "INSERT INTO charges (id, merchant_id, livemode, payment_intent, payment_method, amount, currency, status, "
        "captured, processing, capture_requested, amount_captured, amount_refunded, processor_ref, failure_code, "
        "failure_message, decline_code, outcome, description, idempotency_key, request_id, created, seq, version, "
        "void_requested, capture_amount, updated, node_id, customer) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        PD_SQL_ARGS(PD_SQL_S(c->id), PD_SQL_S(c->merchant_id), PD_SQL_I(c->livemode), PD_SQL_S(c->payment_intent),
                    PD_SQL_S(c->payment_method), PD_SQL_I(c->amount), PD_SQL_S(c->currency), PD_SQL_S(c->status),
                    PD_SQL_I(c->captured), PD_SQL_I(c->processing), PD_SQL_I(c->capture_requested),
                    PD_SQL_I(c->amount_captured), PD_SQL_I(c->amount_refunded), pd_repo_opt(c->processor_ref),
                    pd_repo_opt(c->failure_code), pd_repo_opt(c->failure_message), pd_repo_opt(c->decline_code),
                    PD_SQL_S(c->outcome), PD_SQL_S(c->description), PD_SQL_S(c->idempotency_key),
                    pd_repo_opt(c->request_id), PD_SQL_I(c->created), PD_SQL_I(c->seq), PD_SQL_I(c->version),
                    PD_SQL_I(c->void_requested), PD_SQL_I(c->capture_amount), PD_SQL_I(pd_unix_now()),
                    pd_repo_opt(g_node), pd_repo_opt(c->customer)));
}

int
pd_charge_update(pd_db_t *tx, const pd_charge_rec_t *c)
{
    int64_t n = 0;
    int r = pd_db_exec(
        tx,
        "UPDATE charges SET status = ?, captured = ?, processing = ?, capture_requested = ?, amount_captured = ?, "
        "amount_refunded = ?, processor_ref = ?, failure_code = ?, failure_message = ?, decline_code = ?, outcome = ?, "
        "void_requested = ?, pending_idempotency_key = ?, capture_amount = ?, updated = ?, version = ?, node_id = ? "
        "WHERE id = ? AND version = ?",
        PD_SQL_ARGS(PD_SQL_S(c->status), PD_SQL_I(c->captured), PD_SQL_I(c->processing), PD_SQL_I(c->capture_requested),
                    PD_SQL_I(c->amount_captured), PD_SQL_I(c->amount_refunded), pd_repo_opt(c->processor_ref),
                    pd_repo_opt(c->failure_code), pd_repo_opt(c->failure_message), pd_repo_opt(c->decline_code),
                    PD_SQL_S(c->outcome), PD_SQL_I(c->void_requested), PD_SQL_S(c->pending_idempotency_key),
                    PD_SQL_I(c->capture_amount), PD_SQL_I(pd_unix_now()), PD_SQL_I(c->version), pd_repo_opt(g_node),
                    PD_SQL_S(c->id), PD_SQL_I(c->version - 1)),
        &n);
    return r != 0 ? r : n == 1 ? 0 : PD_ERR_CONFLICT;
}

int
pd_charge_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id, pd_charge_rec_t *out)
{
    return pd_get_one(db, "SELECT " CH_COLS " FROM charges WHERE id = ? AND merchant_id = ? AND livemode = ?",
                      decode_charge, a, out, merchant, livemode, id);
}

static const pd_list_def_t charge_list = {
    "SELECT " CH_COLS " FROM charges WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR payment_intent = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?",
    "SELECT " CH_COLS " FROM charges WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR payment_intent = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) > (?, ?) ORDER BY seq ASC, id ASC LIMIT ?",
    "SELECT seq FROM charges WHERE id = ? AND merchant_id = ? AND livemode = ?",
    decode_charge,
    sizeof(pd_charge_rec_t),
};

int
pd_charge_search(pd_db_t *db, const pd_search_q_t *q, pd_search_fn fn, void *arg, int64_t *rows)
{
    return pd_search_run(db,
                         "SELECT " CH_COLS ", " PD_SEARCH_PRE_SQL " FROM charges WHERE merchant_id = ? AND "
                         "livemode = ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?",
                         PD_SQL_ARGS(PD_SEARCH_PRE_ARGS(q), PD_SQL_S(q->merchant), PD_SQL_I(q->livemode),
                                     PD_SQL_I(q->after_seq), PD_SQL_S(q->after_id), PD_SQL_I(q->limit)),
                         22, 30, decode_charge, sizeof(pd_charge_rec_t), fn, arg, rows);
}

int
pd_charge_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
               void *arg, bool *has_more)
{
    return pd_list_run(db, a, &charge_list, merchant, livemode, q, fn, arg, has_more);
}

typedef struct {
    pd_arena_t *a;
    pd_rec_fn fn;
    void *arg;
} each_t;

static int
each_processing(const pd_row_t *r, void *arg)
{
    each_t *e = arg;
    pd_charge_rec_t c;
    int rc = decode_charge(r, e->a, &c);
    return rc != 0 ? rc : e->fn(&c, e->arg);
}

/* a charge with an operation requested and not yet recorded: the predicate of the partial
 * index charges_inflight (schema.c, migration 9), written the same so the index is used */
#define CH_REQUESTED "(processing = 1 OR capture_requested = 1 OR void_requested = 1)"

int
pd_charge_expedite(pd_db_t *tx, const char *id)
{
    return pd_db_exec(tx,
                      "UPDATE charges SET updated = 0 WHERE id = ? AND " CH_REQUESTED,
                      PD_SQL_ARGS(PD_SQL_S(id)), NULL);
}

int
pd_charge_expedite_node(pd_db_t *tx, const char *node_id, int64_t *n)
{
    int64_t charges = 0, setis = 0;
    int r = pd_db_exec(tx, "UPDATE charges SET updated = 0 WHERE node_id = ? AND updated > 0 AND " CH_REQUESTED,
                       PD_SQL_ARGS(PD_SQL_S(node_id)), &charges);
    if (r == 0)
        r = pd_db_exec(tx,
                       "UPDATE setup_intents SET updated = 0 WHERE node_id = ? AND updated > 0 AND "
                       "status = 'processing'",
                       PD_SQL_ARGS(PD_SQL_S(node_id)), &setis);
    if (r == 0 && n != NULL)
        *n = charges + setis;
    return r;
}

int
pd_charge_list_processing(pd_db_t *db, pd_arena_t *a, int64_t older_than, pd_rec_fn fn, void *arg)
{
    each_t e = {a, fn, arg};
    return pd_db_query(db,
                       "SELECT " CH_COLS " FROM charges WHERE " CH_REQUESTED " AND updated <= ? ORDER BY updated LIMIT 500",
                       PD_SQL_ARGS(PD_SQL_I(older_than)), each_processing, &e);
}

typedef struct {
    pd_arena_t *a;
    pd_charge_rec_t *out;
    bool found;
} one_charge_t;

static int
one_charge(const pd_row_t *r, void *arg)
{
    one_charge_t *o = arg;
    o->found = true;
    return decode_charge(r, o->a, o->out);
}

int
pd_charge_get_any(pd_db_t *db, pd_arena_t *a, const char *id, pd_charge_rec_t *out)
{
    one_charge_t o = {a, out, false};
    int r = pd_db_query(db, "SELECT " CH_COLS " FROM charges WHERE id = ?", PD_SQL_ARGS(PD_SQL_S(id)), one_charge, &o);
    return r != 0 ? r : o.found ? 0 : PD_ERR_NOTFOUND;
}

int
pd_charge_list_updated(pd_db_t *db, pd_arena_t *a, int64_t updated, const char *after_id, int64_t limit, pd_rec_fn fn,
                       void *arg)
{
    each_t e = {a, fn, arg};
    return pd_db_query(db,
                       "SELECT " CH_COLS " FROM charges WHERE updated > ?1 OR (updated = ?1 AND id > ?2) "
                       "ORDER BY updated, id LIMIT ?3",
                       PD_SQL_ARGS(PD_SQL_I(updated), PD_SQL_S(after_id), PD_SQL_I(limit)), each_processing, &e);
}

static int
found_row(const pd_row_t *r, void *arg)
{
    (void)r;
    *(bool *)arg = true;
    return 0;
}

int
pd_charge_busy(pd_db_t *db, const pd_charge_rec_t *c, bool *busy)
{
    *busy = c->processing || c->capture_requested || c->void_requested;
    if (*busy)
        return 0;
    return pd_db_query(db, "SELECT 1 FROM refunds WHERE charge = ? AND status = 'pending' LIMIT 1",
                       PD_SQL_ARGS(PD_SQL_S(c->id)), found_row, busy);
}

/* --- refunds --- */

#define RE_COLS                                                                                                        \
    "id, merchant_id, livemode, charge, payment_intent, amount, currency, status, COALESCE(reason, ''), metadata, "   \
    "COALESCE(failure_reason, ''), created, seq, idempotency_key, COALESCE(request_id, '')"

static int
decode_refund(const pd_row_t *r, pd_arena_t *a, void *rec)
{
    pd_refund_rec_t *f = rec;
    COPY(r, 0, f->id);
    COPY(r, 1, f->merchant_id);
    f->livemode = pd_row_int(r, 2) != 0;
    COPY(r, 3, f->charge);
    COPY(r, 4, f->payment_intent);
    f->amount = pd_row_int(r, 5);
    COPY(r, 6, f->currency);
    COPY(r, 7, f->status);
    COPY(r, 8, f->reason);
    f->metadata = pd_repo_dup(a, r, 9);
    COPY(r, 10, f->failure_reason);
    f->created = pd_row_int(r, 11);
    f->seq = pd_row_int(r, 12);
    f->idempotency_key = pd_repo_dup(a, r, 13);
    COPY(r, 14, f->request_id);
    return 0;
}

int
pd_refund_insert(pd_db_t *tx, const pd_refund_rec_t *f)
{
    return pd_db_exec_deferred(tx,
                      "INSERT INTO refunds (id, merchant_id, livemode, charge, payment_intent, amount, currency, status, "
                      "reason, metadata, failure_reason, created, seq, idempotency_key, request_id) "
                      "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      PD_SQL_ARGS(PD_SQL_S(f->id), PD_SQL_S(f->merchant_id), PD_SQL_I(f->livemode), PD_SQL_S(f->charge),
                                  PD_SQL_S(f->payment_intent), PD_SQL_I(f->amount), PD_SQL_S(f->currency),
                                  PD_SQL_S(f->status), pd_repo_opt(f->reason), PD_SQL_S(f->metadata ? f->metadata : "{}"),
                                  pd_repo_opt(f->failure_reason), PD_SQL_I(f->created), PD_SQL_I(f->seq),
                                  PD_SQL_S(f->idempotency_key), pd_repo_opt(f->request_id)));
}

int
pd_refund_finish(pd_db_t *tx, const pd_refund_rec_t *f)
{
    int64_t n = 0;
    int r = pd_db_exec(tx, "UPDATE refunds SET status = ?, failure_reason = ? WHERE id = ? AND status = 'pending'",
                       PD_SQL_ARGS(PD_SQL_S(f->status), pd_repo_opt(f->failure_reason), PD_SQL_S(f->id)), &n);
    return r != 0 ? r : n == 1 ? 0 : PD_ERR_STATE;
}

static int
each_refund_row(const pd_row_t *r, void *arg)
{
    each_t *e = arg;
    pd_refund_rec_t f;
    int rc = decode_refund(r, e->a, &f);
    return rc != 0 ? rc : e->fn(&f, e->arg);
}

int
pd_refund_list_pending(pd_db_t *db, pd_arena_t *a, int64_t older_than, pd_rec_fn fn, void *arg)
{
    each_t e = {a, fn, arg};
    return pd_db_query(db,
                       "SELECT " RE_COLS " FROM refunds WHERE status = 'pending' AND created <= ? ORDER BY seq LIMIT 500",
                       PD_SQL_ARGS(PD_SQL_I(older_than)), each_refund_row, &e);
}

int
pd_refund_list_of_charge(pd_db_t *db, pd_arena_t *a, const char *charge, pd_rec_fn fn, void *arg)
{
    each_t e = {a, fn, arg};
    return pd_db_query(db, "SELECT " RE_COLS " FROM refunds WHERE charge = ? ORDER BY seq",
                       PD_SQL_ARGS(PD_SQL_S(charge)), each_refund_row, &e);
}

static int
each_charge_id(const pd_row_t *r, void *arg)
{
    each_t *e = arg;
    char id[PD_ID_MAX];
    COPY(r, 0, id);
    return e->fn(id, e->arg);
}

int
pd_refund_list_charges_since(pd_db_t *db, pd_arena_t *a, int64_t since, pd_rec_fn fn, void *arg)
{
    each_t e = {a, fn, arg};
    return pd_db_query(db, "SELECT DISTINCT charge FROM refunds WHERE created >= ?", PD_SQL_ARGS(PD_SQL_I(since)),
                       each_charge_id, &e);
}

int
pd_refund_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id, pd_refund_rec_t *out)
{
    return pd_get_one(db, "SELECT " RE_COLS " FROM refunds WHERE id = ? AND merchant_id = ? AND livemode = ?",
                      decode_refund, a, out, merchant, livemode, id);
}

static const pd_list_def_t refund_list = {
    "SELECT " RE_COLS " FROM refunds WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR payment_intent = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?",
    "SELECT " RE_COLS " FROM refunds WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR payment_intent = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) > (?, ?) ORDER BY seq ASC, id ASC LIMIT ?",
    "SELECT seq FROM refunds WHERE id = ? AND merchant_id = ? AND livemode = ?",
    decode_refund,
    sizeof(pd_refund_rec_t),
};

int
pd_refund_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
               void *arg, bool *has_more)
{
    return pd_list_run(db, a, &refund_list, merchant, livemode, q, fn, arg, has_more);
}

static const pd_list_def_t refund_list_charge = {
    "SELECT " RE_COLS " FROM refunds WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR charge = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?",
    "SELECT " RE_COLS " FROM refunds WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR charge = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) > (?, ?) ORDER BY seq ASC, id ASC LIMIT ?",
    "SELECT seq FROM refunds WHERE id = ? AND merchant_id = ? AND livemode = ?",
    decode_refund,
    sizeof(pd_refund_rec_t),
};

int
pd_refund_list_by_charge(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q,
                         pd_rec_fn fn, void *arg, bool *has_more)
{
    return pd_list_run(db, a, &refund_list_charge, merchant, livemode, q, fn, arg, has_more);
}
