/*
 * The ledger verifier (payctl ledger verify): recomputes what must hold and
 * reports the first problems.
 *   - every ledger transaction sums to zero per currency
 *   - every charge: captured <= authorized, refunded <= captured
 *   - holds are released once a charge is captured or voided
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
        problem(rep, "charge %s still holds %" PRId64 " after capture or void", id, pd_row_int(r, 1));
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
    if ((r = pd_db_query(db,
                         "SELECT c.id, SUM(e.amount) FROM charges c JOIN ledger_entries e ON e.source = c.id "
                         "WHERE e.account = 'card_holds' AND (c.captured = 1 OR c.status = 'failed') "
                         "GROUP BY c.id HAVING SUM(e.amount) != 0 LIMIT 20",
                         NULL, 0, hold_row, rep)) != 0)
        return r;
    /* the merchant_balance account is a credit balance: it plus the net of all balance transactions is zero */
    if ((r = pd_db_query(db,
                         "SELECT merchant_id, SUM(v) FROM ("
                         " SELECT merchant_id, livemode, currency, amount AS v FROM ledger_entries WHERE account = 'merchant_balance'"
                         " UNION ALL SELECT merchant_id, livemode, currency, net AS v FROM balance_transactions"
                         ") GROUP BY merchant_id, livemode, currency HAVING SUM(v) != 0 LIMIT 20",
                         NULL, 0, balance_row, rep)) != 0)
        return r;
    return rep->nproblems == 0 ? 0 : PD_ERR_STATE;
}
