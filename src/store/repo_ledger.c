/* Ledger entries (immutable, double-entry) and balance transactions. */
#include <stdio.h>

#include "store/repo.h"

/*
 * One statement per posting: the columns every entry shares are bound once, each entry's
 * own (id, account, amount, seq) is a row of VALUES. The text for n entries is a literal
 * of its own (the PostgreSQL backend caches prepared statements by the text's address).
 */
#define LE_HEAD                                                                                                      \
    "INSERT INTO ledger_entries (id, txn_id, merchant_id, livemode, account, currency, amount, source, kind, created, " \
    "seq) SELECT v.column1, ?, ?, ?, v.column2, ?, v.column3, ?, ?, ?, v.column4 FROM (VALUES (?,?,?,?)"
#define LE_ROW ",(?,?,?,?)"
#define LE_TAIL ") AS v"
#define LE_SHARED 7 /* txn, merchant, livemode, currency, source, kind, created */
#define LE_OWN 4    /* id, account, amount, seq */

_Static_assert(PD_LEDGER_MAX_ENTRIES == 8, "le_sql has a statement for each size up to 8");
static const char *const le_sql[PD_LEDGER_MAX_ENTRIES + 1] = {
    NULL,
    LE_HEAD LE_TAIL,
    LE_HEAD LE_ROW LE_TAIL,
    LE_HEAD LE_ROW LE_ROW LE_TAIL,
    LE_HEAD LE_ROW LE_ROW LE_ROW LE_TAIL,
    LE_HEAD LE_ROW LE_ROW LE_ROW LE_ROW LE_TAIL,
    LE_HEAD LE_ROW LE_ROW LE_ROW LE_ROW LE_ROW LE_TAIL,
    LE_HEAD LE_ROW LE_ROW LE_ROW LE_ROW LE_ROW LE_ROW LE_TAIL,
    LE_HEAD LE_ROW LE_ROW LE_ROW LE_ROW LE_ROW LE_ROW LE_ROW LE_TAIL,
};

int
pd_ledger_insert(pd_db_t *tx, const char *merchant, bool livemode, const char *currency, const char *source,
                 const pd_posting_t *p, int64_t now)
{
    char txn[PD_ID_MAX], ids[PD_LEDGER_MAX_ENTRIES][PD_ID_MAX];
    pd_sqlval_t args[LE_SHARED + LE_OWN * PD_LEDGER_MAX_ENTRIES];
    int r;
    if (!pd_posting_balanced(p) || p->n == 0 || p->n > PD_LEDGER_MAX_ENTRIES)
        return PD_ERR_INVALID;
    if ((r = pd_id_new("ltx", txn, sizeof(txn))) != 0)
        return r;
    size_t k = 0;
    args[k++] = PD_SQL_S(txn);
    args[k++] = PD_SQL_S(merchant);
    args[k++] = PD_SQL_I(livemode);
    args[k++] = PD_SQL_S(currency);
    args[k++] = PD_SQL_S(source);
    args[k++] = PD_SQL_S(p->kind);
    args[k++] = PD_SQL_I(now);
    for (size_t i = 0; i < p->n; i++) {
        if ((r = pd_id_new("le", ids[i], sizeof(ids[i]))) != 0)
            return r;
        args[k++] = PD_SQL_S(ids[i]);
        args[k++] = PD_SQL_S(p->e[i].account);
        args[k++] = PD_SQL_I(p->e[i].amount);
        args[k++] = PD_SQL_I(pd_next_seq());
    }
    return pd_db_exec_deferred(tx, le_sql[p->n], args, k);
}

#define BT_COLS "id, merchant_id, livemode, amount, fee, net, currency, type, source, status, available_on, created, seq, description"

/* every column but the description */
static int
decode_btxn_fixed(const pd_row_t *r, pd_btxn_rec_t *b)
{
    COPY(r, 0, b->id);
    COPY(r, 1, b->merchant_id);
    b->livemode = pd_row_int(r, 2) != 0;
    b->amount = pd_row_int(r, 3);
    b->fee = pd_row_int(r, 4);
    b->net = pd_row_int(r, 5);
    COPY(r, 6, b->currency);
    COPY(r, 7, b->type);
    COPY(r, 8, b->source);
    COPY(r, 9, b->status);
    b->available_on = pd_row_int(r, 10);
    b->created = pd_row_int(r, 11);
    b->seq = pd_row_int(r, 12);
    return 0;
}

static int
decode_btxn(const pd_row_t *r, pd_arena_t *a, void *rec)
{
    pd_btxn_rec_t *b = rec;
    int rc = decode_btxn_fixed(r, b);
    if (rc == 0)
        b->description = pd_repo_dup(a, r, 13);
    return rc;
}

int
pd_btxn_insert(pd_db_t *tx, const pd_btxn_rec_t *b)
{
    return pd_db_exec_deferred(tx,
                      "INSERT INTO balance_transactions (id, merchant_id, livemode, amount, fee, net, currency, type, "
                      "source, status, available_on, created, seq, description) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      PD_SQL_ARGS(PD_SQL_S(b->id), PD_SQL_S(b->merchant_id), PD_SQL_I(b->livemode), PD_SQL_I(b->amount),
                                  PD_SQL_I(b->fee), PD_SQL_I(b->net), PD_SQL_S(b->currency), PD_SQL_S(b->type),
                                  PD_SQL_S(b->source), PD_SQL_S(b->status), PD_SQL_I(b->available_on),
                                  PD_SQL_I(b->created), PD_SQL_I(b->seq), PD_SQL_S(b->description)));
}

static const pd_list_def_t btxn_list = {
    "SELECT " BT_COLS " FROM balance_transactions WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR type = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?",
    "SELECT " BT_COLS " FROM balance_transactions WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR type = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) > (?, ?) ORDER BY seq ASC, id ASC LIMIT ?",
    "SELECT seq FROM balance_transactions WHERE id = ? AND merchant_id = ? AND livemode = ?",
    decode_btxn,
    sizeof(pd_btxn_rec_t),
};

int
pd_btxn_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
             void *arg, bool *has_more)
{
    return pd_list_run(db, a, &btxn_list, merchant, livemode, q, fn, arg, has_more);
}

typedef struct {
    pd_balance_row_t *rows;
    size_t cap, n;
} bal_t;

static int
bal_row(const pd_row_t *r, void *arg)
{
    bal_t *b = arg;
    if (b->n == b->cap)
        return 1;
    pd_balance_row_t *row = &b->rows[b->n++];
    COPY(r, 0, row->currency);
    row->available = pd_row_int(r, 1);
    row->pending = pd_row_int(r, 2);
    return 0;
}

int
pd_balance(pd_db_t *db, const char *merchant, bool livemode, int64_t now, pd_balance_row_t *rows, size_t cap, size_t *n)
{
    bal_t b = {rows, cap, 0};
    int r = pd_db_query(db,
                        "SELECT currency, COALESCE(SUM(CASE WHEN available_on <= ? THEN net ELSE 0 END), 0), "
                        "COALESCE(SUM(CASE WHEN available_on > ? THEN net ELSE 0 END), 0) FROM balance_transactions "
                        "WHERE merchant_id = ? AND livemode = ? GROUP BY currency ORDER BY currency",
                        PD_SQL_ARGS(PD_SQL_I(now), PD_SQL_I(now), PD_SQL_S(merchant), PD_SQL_I(livemode)), bal_row, &b);
    *n = b.n;
    return r;
}

/* --- the reports' reads (src/pay/report.c) --- */

typedef struct {
    pd_rec_fn fn;
    void *arg;
} btxn_each_t;

/* the row decoded without an arena: the description points into the row, valid for the callback */
static int
each_btxn_row(const pd_row_t *r, void *arg)
{
    btxn_each_t *e = arg;
    pd_btxn_rec_t b;
    int rc = decode_btxn_fixed(r, &b);
    if (rc != 0)
        return rc;
    b.description = pd_row_is_null(r, 13) ? NULL : (const char *)pd_row_text(r, 13).p;
    return e->fn(&b, e->arg);
}

int
pd_btxn_each_created(pd_db_t *db, const char *merchant, bool livemode, const char *currency, int64_t start,
                     int64_t end, pd_rec_fn fn, void *arg)
{
    btxn_each_t e = {fn, arg};
    const char *cur = currency != NULL && currency[0] != '\0' ? currency : NULL;
    return pd_db_query(db,
                       "SELECT " BT_COLS " FROM balance_transactions WHERE merchant_id = ? AND livemode = ? "
                       "AND (? IS NULL OR currency = ?) AND created >= ? AND created < ? ORDER BY created, seq, id",
                       PD_SQL_ARGS(PD_SQL_S(merchant), PD_SQL_I(livemode), PD_SQL_S(cur), PD_SQL_S(cur),
                                   PD_SQL_I(start), PD_SQL_I(end)),
                       each_btxn_row, &e);
}

typedef struct {
    pd_btxn_sums_t *rows;
    size_t cap, n;
} sums_t;

static int
sums_row(const pd_row_t *r, void *arg)
{
    sums_t *s = arg;
    if (s->n == s->cap)
        return PD_ERR_TOOBIG;
    pd_btxn_sums_t *x = &s->rows[s->n++];
    COPY(r, 0, x->currency);
    x->before_net = pd_row_int(r, 1);
    x->gross = pd_row_int(r, 2);
    x->fee = pd_row_int(r, 3);
    x->net = pd_row_int(r, 4);
    return 0;
}

int
pd_btxn_sums(pd_db_t *db, const char *merchant, bool livemode, const char *currency, int64_t start, int64_t end,
             pd_btxn_sums_t *rows, size_t cap, size_t *n)
{
    sums_t s = {rows, cap, 0};
    const char *cur = currency != NULL && currency[0] != '\0' ? currency : NULL;
    int r = pd_db_query(db,
                        "SELECT currency, COALESCE(SUM(CASE WHEN created < ? THEN net ELSE 0 END), 0), "
                        "COALESCE(SUM(CASE WHEN created >= ? THEN amount ELSE 0 END), 0), "
                        "COALESCE(SUM(CASE WHEN created >= ? THEN fee ELSE 0 END), 0), "
                        "COALESCE(SUM(CASE WHEN created >= ? THEN net ELSE 0 END), 0) FROM balance_transactions "
                        "WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR currency = ?) AND created < ? "
                        "GROUP BY currency ORDER BY currency",
                        PD_SQL_ARGS(PD_SQL_I(start), PD_SQL_I(start), PD_SQL_I(start), PD_SQL_I(start),
                                    PD_SQL_S(merchant), PD_SQL_I(livemode), PD_SQL_S(cur), PD_SQL_S(cur),
                                    PD_SQL_I(end)),
                        sums_row, &s);
    *n = s.n;
    return r;
}
