/*
 * payctl ledger verify's checks (src/store/ledger_verify.c) against books written as payd
 * writes them: each charge state with its right postings verifies, and the same state with
 * a posting missing, reversed or unbalanced is reported. Runs on SQLite and PostgreSQL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "payd/pay.h"
#include "payd/records.h"
#include "payd/store.h"
#include "store_fixture.h"

#define AMOUNT 1000
#define FEE 59

typedef enum { AUTHORIZED, CAPTURED, VOIDED, FAILED } state_t;
typedef enum { RIGHT, NO_VOID, REVERSED_VOID, NO_CAPTURE, HALF_CAPTURE, UNBALANCED } books_t;

typedef struct {
    state_t state;
    books_t books;
} case_t;

static int
setup(void **state)
{
    (void)state;
    return pd_tf_setup("ledger");
}

static int
teardown(void **state)
{
    (void)state;
    return pd_tf_teardown();
}

static void
flip(pd_posting_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        p->e[i].amount = -p->e[i].amount;
}

/* one merchant, one intent and its charge in the case's state, with the case's postings */
static int
write_case(pd_db_t *tx, void *arg)
{
    const case_t *c = arg;
    int r = pd_db_exec(tx, "INSERT INTO merchants (id, name, created) VALUES ('acct_l', 'l', 1)", NULL, 0, NULL);
    if (r != 0)
        return r;
    pd_pi_rec_t pi = {.id = "pi_l", .merchant_id = "acct_l", .amount = AMOUNT, .currency = "usd",
                      .latest_charge = "ch_l", .created = 1, .seq = 1, .version = 1};
    snprintf(pi.capture_method, sizeof(pi.capture_method), "%s", c->state == CAPTURED ? "automatic" : "manual");
    pi.status = c->state == AUTHORIZED ? PD_PI_REQUIRES_CAPTURE
                : c->state == CAPTURED ? PD_PI_SUCCEEDED
                : c->state == VOIDED   ? PD_PI_CANCELED
                                       : PD_PI_REQUIRES_PAYMENT_METHOD;
    pd_charge_rec_t ch = {.id = "ch_l", .merchant_id = "acct_l", .payment_intent = "pi_l", .amount = AMOUNT,
                          .currency = "usd", .created = 1, .seq = 2, .version = 1};
    snprintf(ch.status, sizeof(ch.status), "%s", c->state == FAILED ? "failed" : "succeeded");
    ch.captured = c->state == CAPTURED;
    ch.amount_captured = c->state == CAPTURED ? AMOUNT : 0;
    if ((r = pd_pi_insert(tx, &pi)) != 0 || (r = pd_charge_insert(tx, &ch)) != 0)
        return r;
    if (c->state == FAILED)
        return 0; /* a declined authorization posts nothing */
    pd_posting_t p;
    pd_post_authorization(&p, AMOUNT);
    if ((r = pd_ledger_insert(tx, "acct_l", false, "usd", "ch_l", &p, 1)) != 0)
        return r;
    if (c->state == VOIDED && c->books != NO_VOID) {
        pd_post_void(&p, AMOUNT);
        if (c->books == REVERSED_VOID)
            flip(&p);
        r = pd_ledger_insert(tx, "acct_l", false, "usd", "ch_l", &p, 1);
    }
    if (c->state == CAPTURED && c->books != NO_CAPTURE) {
        pd_post_capture(&p, AMOUNT, c->books == HALF_CAPTURE ? AMOUNT / 2 : AMOUNT, FEE);
        if ((r = pd_ledger_insert(tx, "acct_l", false, "usd", "ch_l", &p, 1)) != 0)
            return r;
        pd_btxn_rec_t bt = {.id = "txn_l", .merchant_id = "acct_l", .amount = AMOUNT, .fee = FEE,
                            .net = c->books == HALF_CAPTURE ? AMOUNT / 2 - FEE : AMOUNT - FEE, .currency = "usd",
                            .type = "charge", .source = "ch_l", .status = "pending", .created = 1, .seq = 3};
        r = pd_btxn_insert(tx, &bt);
    }
    if (r == 0 && c->books == UNBALANCED)
        r = pd_db_exec(tx,
                       "INSERT INTO ledger_entries (id, txn_id, merchant_id, livemode, account, currency, amount, "
                       "source, kind, created, seq) VALUES ('le_x', 'ltx_x', 'acct_l', 0, 'fees', 'usd', -1, 'ch_l', "
                       "'capture', 1, 9)",
                       NULL, 0, NULL);
    return r;
}

/* the case's books verified: 0, or PD_ERR_STATE with at least one problem named */
static int
verify(state_t st, books_t books, pd_ledger_report_t *rep)
{
    pd_store_config_t cfg = {.max_batch = 64, .max_queue = 1000};
    pd_store_t *s = pd_tf_open(&cfg, 1);
    assert_non_null(s);
    case_t c = {st, books};
    assert_int_equal(pd_store_write_sync(s, write_case, &c), 0);
    int r = pd_ledger_verify(pd_store_reader(s), rep);
    pd_store_close(s);
    for (int i = 0; i < rep->nproblems; i++)
        print_message("  problem: %s\n", rep->problems[i]);
    assert_true(r == 0 ? rep->nproblems == 0 : rep->nproblems > 0);
    return r;
}

static void
every_state_with_its_postings_verifies(void **state)
{
    (void)state;
    static const state_t states[] = {AUTHORIZED, CAPTURED, VOIDED, FAILED};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        pd_ledger_report_t rep;
        assert_int_equal(teardown(NULL), 0);
        assert_int_equal(setup(NULL), 0);
        assert_int_equal(verify(states[i], RIGHT, &rep), 0);
        assert_int_equal(rep.charges, 1);
    }
}

static void
a_void_without_its_posting_is_reported(void **state)
{
    (void)state;
    pd_ledger_report_t rep;
    assert_int_equal(verify(VOIDED, NO_VOID, &rep), PD_ERR_STATE);
    assert_non_null(strstr(rep.problems[0], "ch_l"));
}

static void
a_reversed_void_is_reported(void **state)
{
    (void)state;
    pd_ledger_report_t rep;
    assert_int_equal(verify(VOIDED, REVERSED_VOID, &rep), PD_ERR_STATE);
}

static void
a_capture_without_its_posting_is_reported(void **state)
{
    (void)state;
    pd_ledger_report_t rep;
    assert_int_equal(verify(CAPTURED, NO_CAPTURE, &rep), PD_ERR_STATE);
}

static void
a_capture_posted_for_less_than_captured_is_reported(void **state)
{
    (void)state;
    pd_ledger_report_t rep;
    assert_int_equal(verify(CAPTURED, HALF_CAPTURE, &rep), PD_ERR_STATE);
}

static void
an_unbalanced_transaction_is_reported(void **state)
{
    (void)state;
    pd_ledger_report_t rep;
    assert_int_equal(verify(CAPTURED, UNBALANCED, &rep), PD_ERR_STATE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_state_with_its_postings_verifies, setup, teardown),
        cmocka_unit_test_setup_teardown(a_void_without_its_posting_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(a_reversed_void_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(a_capture_without_its_posting_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(a_capture_posted_for_less_than_captured_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(an_unbalanced_transaction_is_reported, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
