/* The in-process counters behind usage plans, card-testing limits and lockouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "payd/cache.h"

static void
token_bucket_allows_the_burst_then_the_rate(void **state)
{
    (void)state;
    pd_cache_t *c;
    int64_t rem, reset, retry;
    assert_int_equal(pd_cache_new_memory(&c, 1000), 0);
    int64_t t = 1000000;
    for (int i = 0; i < 10; i++) {
        assert_true(pd_cache_take(c, "rl:k", 5, 10, t, &rem, &reset, &retry));
        assert_int_equal(rem, 9 - i);
        assert_int_equal(retry, 0);
    }
    assert_false(pd_cache_take(c, "rl:k", 5, 10, t, &rem, &reset, &retry)); /* the burst is spent */
    assert_int_equal(rem, 0);
    assert_true(retry > 0 && retry <= 201); /* one token every 200 ms (rounded up) */
    assert_true(reset >= 1900 && reset <= 2000); /* empty to full at 5/s */
    /* a second later five more, not ten */
    for (int i = 0; i < 5; i++)
        assert_true(pd_cache_take(c, "rl:k", 5, 10, t + 1000, &rem, &reset, &retry));
    assert_false(pd_cache_take(c, "rl:k", 5, 10, t + 1000, &rem, &reset, &retry));
    /* another key has its own bucket */
    assert_true(pd_cache_take(c, "rl:other", 5, 10, t + 1000, &rem, &reset, &retry));
    assert_int_equal(rem, 9);
    pd_cache_free(c);
}

static void
sliding_window_counts_recent_events(void **state)
{
    (void)state;
    pd_cache_t *c;
    assert_int_equal(pd_cache_new_memory(&c, 1000), 0);
    int64_t t = 10 * 60000; /* at the start of a window */
    assert_int_equal(pd_cache_hit(c, "authfail:1.2.3.4", 60000, t), 1);
    assert_int_equal(pd_cache_hit(c, "authfail:1.2.3.4", 60000, t + 1000), 2);
    assert_int_equal(pd_cache_hit(c, "authfail:1.2.3.4", 60000, t + 2000), 3);
    /* half a window into the next one: the previous three count half */
    int64_t n = pd_cache_hit(c, "authfail:1.2.3.4", 60000, t + 90000);
    assert_true(n >= 2 && n <= 3);
    /* two windows later nothing of them is left */
    assert_int_equal(pd_cache_hit(c, "authfail:1.2.3.4", 60000, t + 240000), 1);
    pd_cache_free(c);
}

static void
counters_expire_and_blocks_end(void **state)
{
    (void)state;
    pd_cache_t *c;
    assert_int_equal(pd_cache_new_memory(&c, 1000), 0);
    assert_int_equal(pd_cache_add(c, "quota:k:202612", 1, 5000, 1000), 1);
    assert_int_equal(pd_cache_add(c, "quota:k:202612", 4, 5000, 2000), 5);
    assert_int_equal(pd_cache_add(c, "quota:k:202612", 1, 9000, 6000), 1); /* the old one expired at 5000 */
    assert_int_equal(pd_cache_blocked(c, "lock:1.2.3.4", 1000), 0);
    pd_cache_block(c, "lock:1.2.3.4", 31000, 1000);
    assert_int_equal(pd_cache_blocked(c, "lock:1.2.3.4", 1000), 30000);
    assert_int_equal(pd_cache_blocked(c, "lock:1.2.3.4", 30999), 1);
    assert_int_equal(pd_cache_blocked(c, "lock:1.2.3.4", 31000), 0);
    pd_cache_free(c);
}

/* an attacker cycling keys evicts old entries instead of growing the cache without
 * bound, and the newest keys keep working */
static void
many_keys_stay_bounded(void **state)
{
    (void)state;
    pd_cache_t *c;
    assert_int_equal(pd_cache_new_memory(&c, 64 * 16), 0);
    char key[64];
    for (int i = 0; i < 200000; i++) {
        snprintf(key, sizeof(key), "ip:%d", i);
        assert_int_equal(pd_cache_add(c, key, 1, 1LL << 40, 1000 + i), 1);
    }
    /* the first key was evicted long ago: it starts anew */
    assert_int_equal(pd_cache_add(c, "ip:0", 1, 1LL << 40, 300000), 1);
    /* the last one is still there */
    assert_int_equal(pd_cache_add(c, "ip:199999", 1, 1LL << 40, 300001), 2);
    pd_cache_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(token_bucket_allows_the_burst_then_the_rate),
        cmocka_unit_test(sliding_window_counts_recent_events),
        cmocka_unit_test(counters_expire_and_blocks_end),
        cmocka_unit_test(many_keys_stay_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
