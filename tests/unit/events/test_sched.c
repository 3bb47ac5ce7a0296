/* The webhook scheduler: per-endpoint cap, round-robin across merchants and endpoints, retry turns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "payd/webhook_sched.h"

static pd_webhook_cand_t
cand(const char *endpoint, const char *merchant, int retries, int first)
{
    pd_webhook_cand_t c = {.due_retries = retries, .due_first = first};
    snprintf(c.endpoint, sizeof(c.endpoint), "%s", endpoint);
    snprintf(c.merchant, sizeof(c.merchant), "%s", merchant);
    return c;
}

static int
granted(const pd_webhook_cand_t *c)
{
    return c->grant_retries + c->grant_first;
}

/* starts every granted attempt */
static void
start_all(pd_webhook_sched_t *s, const pd_webhook_cand_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < granted(&c[i]); k++)
            pd_webhook_sched_started(s, c[i].endpoint);
}

static void
an_endpoint_never_has_more_than_its_cap_in_flight(void **state)
{
    (void)state;
    pd_webhook_sched_t *s;
    assert_int_equal(pd_webhook_sched_new(&s, 8), 0);
    pd_webhook_cand_t c = cand("we_a", "acct_1", 0, 100);
    assert_int_equal(pd_webhook_sched_plan(s, &c, 1, 64), 8);
    assert_int_equal(c.grant_first, 8);
    start_all(s, &c, 1);
    assert_int_equal(pd_webhook_sched_in_flight(s, "we_a"), 8);
    /* full: nothing more until one ends */
    c = cand("we_a", "acct_1", 0, 92);
    assert_int_equal(pd_webhook_sched_plan(s, &c, 1, 56), 0);
    pd_webhook_sched_finished(s, "we_a");
    assert_int_equal(pd_webhook_sched_plan(s, &c, 1, 56), 1);
    /* never more than is due */
    c = cand("we_a", "acct_1", 0, 0);
    assert_int_equal(pd_webhook_sched_plan(s, &c, 1, 56), 0);
    assert_int_equal(pd_webhook_sched_new(&s, 0), PD_ERR_INVALID);
    pd_webhook_sched_free(NULL);
    pd_webhook_sched_free(s);
}

/* the case: one endpoint hangs (its attempts never end), another answers at once */
static void
a_hanging_endpoint_keeps_only_its_cap_and_the_healthy_one_gets_the_rest(void **state)
{
    (void)state;
    pd_webhook_sched_t *s;
    assert_int_equal(pd_webhook_sched_new(&s, 8), 0);
    int in_flight = 0, healthy = 0;
    for (int round = 0; round < 100; round++) {
        pd_webhook_cand_t c[2] = {cand("we_hang", "acct_1", round > 0 ? 50 : 0, 1000), cand("we_ok", "acct_2", 0, 1000)};
        int n = pd_webhook_sched_plan(s, c, 2, 64 - in_flight);
        assert_true(n >= 0);
        start_all(s, c, 2);
        in_flight += n;
        /* the healthy endpoint's attempts all end before the next plan */
        for (int k = 0; k < granted(&c[1]); k++)
            pd_webhook_sched_finished(s, "we_ok");
        in_flight -= granted(&c[1]);
        healthy += granted(&c[1]);
        assert_true(pd_webhook_sched_in_flight(s, "we_hang") <= 8);
    }
    assert_int_equal(pd_webhook_sched_in_flight(s, "we_hang"), 8);
    assert_int_equal(healthy, 100 * 8);
    pd_webhook_sched_free(s);
}

static void
slots_go_round_robin_across_merchants_then_endpoints(void **state)
{
    (void)state;
    pd_webhook_sched_t *s;
    assert_int_equal(pd_webhook_sched_new(&s, 100), 0);
    /* acct_1 has three endpoints, acct_2 one; one slot at a time, every attempt ends at once */
    int got[4] = {0};
    for (int round = 0; round < 120; round++) {
        pd_webhook_cand_t c[4] = {cand("we_1a", "acct_1", 0, 10), cand("we_2", "acct_2", 0, 10),
                                  cand("we_1b", "acct_1", 0, 10), cand("we_1c", "acct_1", 0, 10)};
        assert_int_equal(pd_webhook_sched_plan(s, c, 4, 1), 1);
        for (int i = 0; i < 4; i++)
            got[i] += granted(&c[i]);
    }
    assert_int_equal(got[1], 60);
    assert_int_equal(got[0], 20);
    assert_int_equal(got[2], 20);
    assert_int_equal(got[3], 20);
    /* many slots at once are shared the same way */
    pd_webhook_cand_t c[4] = {cand("we_1a", "acct_1", 0, 10), cand("we_2", "acct_2", 0, 10),
                              cand("we_1b", "acct_1", 0, 10), cand("we_1c", "acct_1", 0, 10)};
    assert_int_equal(pd_webhook_sched_plan(s, c, 4, 12), 12);
    assert_int_equal(granted(&c[1]), 6);
    assert_int_equal(granted(&c[0]) + granted(&c[2]) + granted(&c[3]), 6);
    /* work-conserving: what acct_2 cannot use goes to acct_1 */
    pd_webhook_cand_t d[2] = {cand("we_1a", "acct_1", 0, 10), cand("we_2", "acct_2", 0, 2)};
    assert_int_equal(pd_webhook_sched_plan(s, d, 2, 12), 12);
    assert_int_equal(granted(&d[1]), 2);
    assert_int_equal(granted(&d[0]), 10);
    pd_webhook_sched_free(s);
}

static void
due_retries_take_turns_with_first_attempts(void **state)
{
    (void)state;
    pd_webhook_sched_t *s;
    assert_int_equal(pd_webhook_sched_new(&s, 8), 0);
    int retries = 0, first = 0;
    for (int round = 0; round < 10; round++) {
        pd_webhook_cand_t c = cand("we_a", "acct_1", 5, 1000);
        assert_int_equal(pd_webhook_sched_plan(s, &c, 1, 1), 1);
        retries += c.grant_retries;
        first += c.grant_first;
    }
    assert_int_equal(retries, 5);
    assert_int_equal(first, 5);
    /* in one plan too, and a lane that runs dry leaves the slots to the other */
    pd_webhook_cand_t c = cand("we_a", "acct_1", 2, 1000);
    assert_int_equal(pd_webhook_sched_plan(s, &c, 1, 8), 8);
    assert_int_equal(c.grant_retries, 2);
    assert_int_equal(c.grant_first, 6);
    c = cand("we_a", "acct_1", 20, 0);
    assert_int_equal(pd_webhook_sched_plan(s, &c, 1, 8), 8);
    assert_int_equal(c.grant_retries, 8);
    pd_webhook_sched_free(s);
}

static void
endpoints_that_come_and_go_are_tracked_while_in_flight(void **state)
{
    (void)state;
    pd_webhook_sched_t *s;
    assert_int_equal(pd_webhook_sched_new(&s, 2), 0);
    pd_webhook_cand_t c = cand("we_a", "acct_1", 0, 5);
    assert_int_equal(pd_webhook_sched_plan(s, &c, 1, 10), 2);
    start_all(s, &c, 1);
    /* plans without we_a keep its count while its attempts are in flight */
    for (int i = 0; i < 3; i++) {
        pd_webhook_cand_t o = cand("we_b", "acct_2", 0, 1);
        assert_int_equal(pd_webhook_sched_plan(s, &o, 1, 10), 1);
    }
    c = cand("we_a", "acct_1", 0, 5);
    assert_int_equal(pd_webhook_sched_plan(s, &c, 1, 10), 0);
    pd_webhook_sched_finished(s, "we_a");
    pd_webhook_sched_finished(s, "we_a");
    pd_webhook_sched_finished(s, "we_a"); /* one too many is ignored */
    assert_int_equal(pd_webhook_sched_in_flight(s, "we_a"), 0);
    assert_int_equal(pd_webhook_sched_plan(s, &c, 1, 10), 2);
    /* an attempt started without a plan is counted too */
    pd_webhook_sched_started(s, "we_z");
    assert_int_equal(pd_webhook_sched_in_flight(s, "we_z"), 1);
    assert_int_equal(pd_webhook_sched_in_flight(s, "we_unknown"), 0);
    pd_webhook_sched_free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_endpoint_never_has_more_than_its_cap_in_flight),
        cmocka_unit_test(a_hanging_endpoint_keeps_only_its_cap_and_the_healthy_one_gets_the_rest),
        cmocka_unit_test(slots_go_round_robin_across_merchants_then_endpoints),
        cmocka_unit_test(due_retries_take_turns_with_first_attempts),
        cmocka_unit_test(endpoints_that_come_and_go_are_tracked_while_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
