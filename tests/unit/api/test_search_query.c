/* The search query parser (src/api/search_query.c): the AST of valid queries, the
 * connectives, quoting and escapes, and the position named by each refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/search_query.h"

static int
parse(const char *q, pd_sq_resource_t res, pd_sq_t *out, char *err)
{
    return pd_sq_parse(q, strlen(q), res, out, err, 512);
}

static void
clauses_and_connectives(void **state)
{
    (void)state;
    pd_sq_t t;
    char err[512];
    assert_int_equal(parse("status:'succeeded' AND -amount>=1000 metadata[\"order id\"]~\"ab\\\"c\"", PD_SQ_PAYMENT_INTENTS,
                           &t, err),
                     0);
    assert_int_equal(t.n, 3);
    assert_false(t.any);
    assert_int_equal(t.c[0].field, PD_SQF_STATUS);
    assert_int_equal(t.c[0].op, PD_SQ_EQ);
    assert_string_equal(t.c[0].str, "succeeded");
    assert_int_equal(t.c[1].field, PD_SQF_AMOUNT);
    assert_int_equal(t.c[1].op, PD_SQ_GE);
    assert_true(t.c[1].negated);
    assert_true(t.c[1].is_num);
    assert_int_equal(t.c[1].num, 1000);
    assert_int_equal(t.c[2].field, PD_SQF_METADATA);
    assert_string_equal(t.c[2].key, "order id");
    assert_int_equal(t.c[2].op, PD_SQ_SUB);
    assert_string_equal(t.c[2].str, "ab\"c");
    assert_int_equal(parse("currency:'usd' or currency:'eur' OR amount<5", PD_SQ_CHARGES, &t, err), 0);
    assert_true(t.any);
    assert_int_equal(t.n, 3);
    assert_int_equal(t.c[2].op, PD_SQ_LT);
    assert_int_equal(parse("  created>-5\tand created<=\"7\"  ", PD_SQ_CUSTOMERS, &t, err), 0);
    assert_int_equal(t.c[0].num, -5);
    assert_int_equal(t.c[1].num, 7);
    assert_int_equal(t.c[1].op, PD_SQ_LE);
    assert_int_equal(parse("metadata['n']:42", PD_SQ_PAYMENT_INTENTS, &t, err), 0); /* a bare number as text */
    assert_string_equal(t.c[0].str, "42");
    assert_int_equal(parse("email:\"a@b.c\"", PD_SQ_CUSTOMERS, &t, err), 0);
    assert_int_equal(t.c[0].field, PD_SQF_EMAIL);
}

static void
refusals_name_the_position(void **state)
{
    (void)state;
    static const struct {
        pd_sq_resource_t res;
        const char *q, *msg;
    } bad[] = {
        {PD_SQ_PAYMENT_INTENTS, "status:succeeded", "position 7"},
        {PD_SQ_PAYMENT_INTENTS, "  foo:'x'", "Unknown field 'foo' at position 2"},
        {PD_SQ_PAYMENT_INTENTS, "status:'a' AND status:'b' OR status:'c'", "cannot be combined in one query (position 26)"},
        {PD_SQ_PAYMENT_INTENTS, "status:'a' OR status:'b' status:'c'", "cannot be combined in one query (position 25)"},
        {PD_SQ_PAYMENT_INTENTS, "status:'abc", "starting at position 7"},
        {PD_SQ_PAYMENT_INTENTS, "amount>1 AND", "found the end of the query"},
        {PD_SQ_PAYMENT_INTENTS, "amount > 1", "right after 'amount' at position 7"},
        {PD_SQ_PAYMENT_INTENTS, "status~'ab'", "at least 3"},
        {PD_SQ_PAYMENT_INTENTS, "amount~'100'", "is a number"},
        {PD_SQ_PAYMENT_INTENTS, "status<'x'", "compares numbers"},
        {PD_SQ_CUSTOMERS, "email~'abc'", "exact match only"},
        {PD_SQ_CUSTOMERS, "name:'x'", "encrypted"},
        {PD_SQ_CUSTOMERS, "amount>5", "Unknown field 'amount'"},
        {PD_SQ_PAYMENT_INTENTS, "status:'x'ANDamount>1", "position 10"},
        {PD_SQ_PAYMENT_INTENTS, "a", "Unknown field 'a'"},
        {PD_SQ_PAYMENT_INTENTS, "amount:1e5", "Invalid number at position 7"},
        {PD_SQ_PAYMENT_INTENTS, "status:'x' #", "Unexpected character '#' at position 11"},
        {PD_SQ_PAYMENT_INTENTS, "status:'\x01'\x7f", "byte 0x7f at position 10"},
    };
    pd_sq_t t;
    char err[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i].q, bad[i].res, &t, err) != -1)
            fail_msg("accepted: %s", bad[i].q);
        if (strstr(err, bad[i].msg) == NULL)
            fail_msg("%s: %s (want %s)", bad[i].q, err, bad[i].msg);
    }
    /* ten clauses pass, the eleventh does not */
    char q[400] = "amount:0";
    for (int i = 1; i < 10; i++)
        snprintf(q + strlen(q), sizeof(q) - strlen(q), " amount:%d", i);
    assert_int_equal(parse(q, PD_SQ_PAYMENT_INTENTS, &t, err), 0);
    assert_int_equal(t.n, 10);
    snprintf(q + strlen(q), sizeof(q) - strlen(q), " amount:10");
    assert_int_equal(parse(q, PD_SQ_PAYMENT_INTENTS, &t, err), -1);
    assert_non_null(strstr(err, "at most 10"));
    /* a value longer than the bound */
    char longq[400] = "status:'";
    memset(longq + 8, 'x', PD_SQ_VALUE_MAX + 1);
    longq[8 + PD_SQ_VALUE_MAX + 1] = '\'';
    longq[8 + PD_SQ_VALUE_MAX + 2] = '\0';
    assert_int_equal(parse(longq, PD_SQ_PAYMENT_INTENTS, &t, err), -1);
    assert_non_null(strstr(err, "longer than"));
}

static void
comparisons(void **state)
{
    (void)state;
    assert_true(pd_sq_str_eq("Succeeded", 9, "succeeDED", 9));
    assert_false(pd_sq_str_eq("succeeded", 9, "succeede", 8));
    assert_true(pd_sq_str_contains("Gift Card", 9, "t ca", 4));
    assert_false(pd_sq_str_contains("ab", 2, "abc", 3));
    pd_sq_clause_t c = {.op = PD_SQ_GT, .num = 5, .is_num = true};
    assert_true(pd_sq_num_holds(&c, 6));
    assert_false(pd_sq_num_holds(&c, 5));
    c.op = PD_SQ_LE;
    assert_true(pd_sq_num_holds(&c, 5));
    assert_false(pd_sq_num_holds(&c, 6));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clauses_and_connectives),
        cmocka_unit_test(refusals_name_the_position),
        cmocka_unit_test(comparisons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
