/*
 * The ledger verifier (payctl ledger verify): recomputes what must hold and
 * reports the first problems.
 *   - every ledger transaction sums to zero per currency
 *   - every charge: captured <= authorized, refunded <= captured, and its refunded
 *     amount equals its succeeded and pending refunds
 *   - every charge holds exactly what its state says: the authorized amount while it is
 *     authorized and neither captured nor voided, nothing once captured, voided or
 *     failed (and nothing before its authorization is recorded)
 *   - the processor owes what was captured (the capture's receivable equals the charge's
 *     amount_captured) less what was refunded (each succeeded refund posts its amount,
 *     any other refund posts nothing) and what disputes took back (each dispute posts
 *     its amount unless it is an inquiry or was won)
 *   - each merchant balance in the ledger equals the sum of its balance transactions
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "store/repo.h"

static void problem(pd_ledger_report_t *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
problem(pd_ledger_report_t *rep, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (rep->nproblems < PD_LEDGER_MAX_PROBLEMS)
        vsnprintf(rep->problems[rep->nproblems], sizeof(rep->problems[0]), fmt, ap);
    va_end(ap);
    rep->nproblems++;
}

static int
unbalanced_row(const pd_row_t *r, void *arg)
{
    pd_ledger_report_t *rep = arg;
    char txn[PD_ID_MAX];
    if (pd_row_copy(r, 0, txn, sizeof(txn)) == 0)
        problem(rep, "ledger transaction %s does not sum to zero (off by %" PRId64 ")", txn, pd_row_int(r, 1));
    return 0;
}

static int
charge_row(const pd_row_t *r, void *arg)
{
    pd_ledger_report_t *rep = arg;
    char id[PD_ID_MAX];
    if (pd_row_copy(r, 0, id, sizeof(id)) == 0)
        problem(rep, "charge %s breaks captured <= authorized or refunded <= captured (captured %" PRId64 ")", id,
                pd_row_int(r, 1));
    return 0;
}

static int
hold_row(const pd_row_t *r, void *arg)
{
    pd_ledger_report_t *rep = arg;
    char id[PD_ID_MAX];
    if (pd_row_copy(r, 0, id, sizeof(id)) == 0)
        problem(rep, "charge %s holds %" PRId64 " where its state calls for %" PRId64, id, pd_row_int(r, 1),
                pd_row_int(r, 2));
    return 0;
}

static int
receivable_row(const pd_row_t *r, void *arg)
{
    pd_ledger_report_t *rep = arg;
    char id[PD_ID_MAX];
    if (pd_row_copy(r, 0, id, sizeof(id)) == 0)
        problem(rep, "%s posts %" PRId64 " to processor_receivable where its record calls for %" PRId64, id,
                pd_row_int(r, 1), pd_row_int(r, 2));
    return 0;
}

static int
refunded_row(const pd_row_t *r, void *arg)
{
    pd_ledger_report_t *rep = arg;
    char id[PD_ID_MAX];
    if (pd_row_copy(r, 0, id, sizeof(id)) == 0)
        problem(rep, "charge %s has amount_refunded %" PRId64 " but refunds of %" PRId64, id, pd_row_int(r, 1),
                pd_row_int(r, 2));
    return 0;
}

static int
balance_row(const pd_row_t *r, void *arg)
{
    pd_ledger_report_t *rep = arg;
    char m[PD_ID_MAX];
    if (pd_row_copy(r, 0, m, sizeof(m)) == 0)
        problem(rep, "merchant %s: ledger balance and balance transactions differ by %" PRId64, m, pd_row_int(r, 1));
    return 0;
}

static int
count_row(const pd_row_t *r, void *arg)
{
    *(int64_t *)arg = pd_row_int(r, 0);
    return 1;
}

int
pd_ledger_verify(pd_db_t *db, pd_ledger_report_t *rep)
{
    int r;
    memset(rep, 0, sizeof(*rep));
    if ((r = pd_db_query(db, "SELECT COUNT(*) FROM ledger_entries", NULL, 0, count_row, &rep->entries)) != 0 ||
        (r = pd_db_query(db, "SELECT COUNT(*) FROM charges", NULL, 0, count_row, &rep->charges)) != 0)
        return r;
    if ((r = pd_db_query(db,
                         "SELECT txn_id, SUM(amount) FROM ledger_entries GROUP BY txn_id, currency "
                         "HAVING SUM(amount) != 0 LIMIT 20",
                         NULL, 0, unbalanced_row, rep)) != 0)
        return r;
    if ((r = pd_db_query(db,
                         "SELECT id, amount_captured FROM charges WHERE amount_captured > amount OR "
                         "amount_refunded > amount_captured OR amount_captured < 0 OR amount_refunded < 0 LIMIT 20",
                         NULL, 0, charge_row, rep)) != 0)
        return r;
    /* aggregates joined (not correlated per row), so a large ledger is read once */
    if ((r = pd_db_query(db,
                         "SELECT c.id, c.amount_refunded, COALESCE(f.s, 0) FROM charges c LEFT JOIN "
                         "(SELECT charge, SUM(amount) AS s FROM refunds WHERE status IN ('succeeded', 'pending') "
                         " GROUP BY charge) f ON f.charge = c.id WHERE c.amount_refunded != COALESCE(f.s, 0) LIMIT 20",
                         NULL, 0, refunded_row, rep)) != 0)
        return r;
    /* the hold a charge's state calls for: its amount while authorized (including with a
     * capture or void requested), else nothing */
    if ((r = pd_db_query(db,
                         "SELECT id, held, expected FROM (SELECT c.id, COALESCE(h.s, 0) AS held, "
                         " CASE WHEN c.status = 'succeeded' AND c.captured = 0 AND c.processing = 0 "
                         "  AND p.status != 'canceled' THEN c.amount ELSE 0 END AS expected "
                         " FROM charges c JOIN payment_intents p ON p.id = c.payment_intent LEFT JOIN "
                         " (SELECT source, SUM(amount) AS s FROM ledger_entries WHERE account = 'card_holds' "
                         "  GROUP BY source) h ON h.source = c.id) holds WHERE held != expected LIMIT 20",
                         NULL, 0, hold_row, rep)) != 0)
        return r;
    if ((r = pd_db_query(db,
                         "WITH recv AS (SELECT source, SUM(amount) AS s FROM ledger_entries "
                         " WHERE account = 'processor_receivable' GROUP BY source) "
                         "SELECT id, posted, expected FROM ("
                         " SELECT c.id, COALESCE(e.s, 0) AS posted, "
                         "  CASE WHEN c.captured = 1 THEN c.amount_captured ELSE 0 END AS expected "
                         "  FROM charges c LEFT JOIN recv e ON e.source = c.id "
                         " UNION ALL SELECT f.id, COALESCE(e.s, 0), CASE WHEN f.status = 'succeeded' THEN -f.amount "
                         "  ELSE 0 END FROM refunds f LEFT JOIN recv e ON e.source = f.id "
                         /* a dispute takes its amount back from the processor unless it is an
                          * inquiry, and gives it back when won */
                         " UNION ALL SELECT d.id, COALESCE(e.s, 0), CASE WHEN d.status IN ('warning_needs_response', "
                         "  'won') THEN 0 ELSE -d.amount END FROM disputes d LEFT JOIN recv e ON e.source = d.id) posts "
                         "WHERE posted != expected LIMIT 20",
                         NULL, 0, receivable_row, rep)) != 0)
        return r;
    /* the merchant_balance account is a credit balance: it plus the net of all balance transactions is zero */
    if ((r = pd_db_query(db,
                         "SELECT merchant_id, SUM(v) FROM ("
                         " SELECT merchant_id, livemode, currency, amount AS v FROM ledger_entries WHERE account = 'merchant_balance'"
                         " UNION ALL SELECT merchant_id, livemode, currency, net AS v FROM balance_transactions"
                         ") lines GROUP BY merchant_id, livemode, currency HAVING SUM(v) != 0 LIMIT 20",
                         NULL, 0, balance_row, rep)) != 0)
        return r;
    return rep->nproblems == 0 ? 0 : PD_ERR_STATE;
}
