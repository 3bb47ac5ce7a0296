/* The connection counts behind [api] max_connections and max_connections_per_ip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "edge/internal.h"

static void
addr(uint8_t k[16], uint32_t n)
{
    memset(k, 0, 16);
    k[10] = k[11] = 0xff;
    k[12] = (uint8_t)(n >> 24);
    k[13] = (uint8_t)(n >> 16);
    k[14] = (uint8_t)(n >> 8);
    k[15] = (uint8_t)n;
}

static void
refuses_past_the_per_address_limit_only_for_that_address(void **state)
{
    (void)state;
    pd_conn_limit_t *l;
    uint8_t a[16], b[16];
    const char *why = NULL;
    addr(a, 0x7f000001);
    addr(b, 0x7f000002);
    assert_int_equal(pd_conn_limit_new(&l, 100, 3), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pd_conn_limit_take(l, a, &why), 0);
    assert_int_equal(pd_conn_limit_take(l, a, &why), PD_ERR_LIMIT);
    assert_string_equal(why, "max_connections_per_ip");
    assert_int_equal(pd_conn_limit_take(l, b, &why), 0);
    assert_int_equal(pd_conn_limit_open(l, NULL), 4);
    assert_int_equal(pd_conn_limit_open(l, a), 3);
    pd_conn_limit_give(l, a);
    assert_int_equal(pd_conn_limit_take(l, a, &why), 0);
    pd_conn_limit_free(l);
}

static void
refuses_past_the_global_limit(void **state)
{
    (void)state;
    pd_conn_limit_t *l;
    uint8_t k[16];
    const char *why = NULL;
    assert_int_equal(pd_conn_limit_new(&l, 5, 0), 0);
    for (uint32_t i = 0; i < 5; i++) {
        addr(k, i);
        assert_int_equal(pd_conn_limit_take(l, k, &why), 0);
    }
    addr(k, 99);
    assert_int_equal(pd_conn_limit_take(l, k, &why), PD_ERR_LIMIT);
    assert_string_equal(why, "max_connections");
    addr(k, 0);
    pd_conn_limit_give(l, k);
    addr(k, 99);
    assert_int_equal(pd_conn_limit_take(l, k, &why), 0);
    pd_conn_limit_free(l);
}

/* many addresses (the table grows), taken and given back in a shuffled order: every
 * count stays right through the backward-shift deletions */
static void
counts_stay_right_through_growth_and_deletion(void **state)
{
    (void)state;
    enum { N = 5000 };
    pd_conn_limit_t *l;
    uint8_t k[16];
    const char *why;
    static uint32_t order[N];
    assert_int_equal(pd_conn_limit_new(&l, 1000000, 2), 0);
    for (uint32_t i = 0; i < N; i++) {
        addr(k, i * 2654435761u);
        assert_int_equal(pd_conn_limit_take(l, k, &why), 0);
        assert_int_equal(pd_conn_limit_take(l, k, &why), 0);
        order[i] = i;
    }
    srand(7);
    for (uint32_t i = N - 1; i > 0; i--) {
        uint32_t j = (uint32_t)rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (uint32_t i = 0; i < N; i++) {
        addr(k, order[i] * 2654435761u);
        assert_int_equal(pd_conn_limit_open(l, k), 2);
        assert_int_equal(pd_conn_limit_take(l, k, &why), PD_ERR_LIMIT);
        pd_conn_limit_give(l, k);
        pd_conn_limit_give(l, k);
        assert_int_equal(pd_conn_limit_open(l, k), 0);
        /* the addresses not yet given back are all still found */
        if (i % 500 == 0)
            for (uint32_t j = i + 1; j < N; j++) {
                addr(k, order[j] * 2654435761u);
                assert_int_equal(pd_conn_limit_open(l, k), 2);
            }
    }
    assert_int_equal(pd_conn_limit_open(l, NULL), 0);
    pd_conn_limit_free(l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refuses_past_the_per_address_limit_only_for_that_address),
        cmocka_unit_test(refuses_past_the_global_limit),
        cmocka_unit_test(counts_stay_right_through_growth_and_deletion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
