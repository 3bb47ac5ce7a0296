/*
 * The setup intents' repository (src/store/repo_setup_intents.c) on SQLite and
 * PostgreSQL: a round trip of every column, an update version-checked (a stale one is a
 * conflict, nothing changed), the list's two filters (customer, payment method) alone and
 * together with its pagination, and the processing intents listed for recovery only once
 * their last change is old enough.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "payd/records.h"
#include "payd/store.h"
#include "payd/time.h"
#include "store_fixture.h"

static pd_store_t *store;

static int
setup(void **state)
{
    (void)state;
    if (pd_tf_setup("setup_intents") != 0)
        return -1;
    pd_store_config_t cfg = {.max_batch = 64, .max_queue = 1000};
    store = pd_tf_open(&cfg, 1);
    return store != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    pd_store_close(store);
    return pd_tf_teardown();
}

static void
seti(pd_seti_rec_t *s, int i, const char *customer, const char *pm, const char *status)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "seti_%d", i);
    snprintf(s->merchant_id, sizeof(s->merchant_id), "acct_s");
    snprintf(s->status, sizeof(s->status), "%s", status);
    snprintf(s->customer, sizeof(s->customer), "%s", customer);
    snprintf(s->payment_method, sizeof(s->payment_method), "%s", pm);
    snprintf(s->usage, sizeof(s->usage), "off_session");
    s->metadata = "{}";
    s->created = 100 + i;
    s->seq = i + 1;
    s->version = 1;
}

/* seti_0..4: customers A A B A -, payment methods pm_x on 1 and 3; seti_4 processing */
static int
insert_five(pd_db_t *tx, void *arg)
{
    (void)arg;
    const char *cus[] = {"cus_A", "cus_A", "cus_B", "cus_A", ""};
    const char *pm[] = {"", "pm_x", "pm_y", "pm_x", "pm_z"};
    for (int i = 0; i < 5; i++) {
        pd_seti_rec_t s;
        seti(&s, i, cus[i], pm[i], i == 4 ? "processing" : "requires_payment_method");
        if (i == 4)
            s.idempotency_key = "key-4";
        int r = pd_seti_insert(tx, &s);
        if (r != 0)
            return r;
    }
    return 0;
}

static int
update_one(pd_db_t *tx, void *arg)
{
    return pd_seti_update(tx, arg);
}

typedef struct {
    char ids[8][PD_ID_MAX];
    int n;
} seen_t;

static int
seen(void *rec, void *arg)
{
    seen_t *s = arg;
    snprintf(s->ids[s->n++], PD_ID_MAX, "%s", ((pd_seti_rec_t *)rec)->id);
    return 0;
}

static seen_t
list(const char *customer, const char *pm, int64_t limit, const char *after, bool *more)
{
    seen_t s = {.n = 0};
    pd_list_q_t q = {.limit = limit, .filter = customer, .filter2 = pm, .starting_after = after,
                     .created_gte = INT64_MIN, .created_lte = INT64_MAX};
    pd_arena_t a;
    pd_arena_init(&a, 1 << 20);
    assert_int_equal(pd_seti_list(pd_store_reader(store), &a, "acct_s", false, &q, seen, &s, more), 0);
    pd_arena_free(&a);
    return s;
}

static void
round_trip_and_version_check(void **state)
{
    (void)state;
    pd_arena_t a;
    pd_seti_rec_t s;
    pd_arena_init(&a, 1 << 20);
    assert_int_equal(pd_store_write_sync(store, insert_five, NULL), 0);
    assert_int_equal(pd_seti_get(pd_store_reader(store), &a, "acct_s", false, "seti_1", &s), 0);
    assert_string_equal(s.customer, "cus_A");
    assert_string_equal(s.payment_method, "pm_x");
    assert_string_equal(s.usage, "off_session");
    assert_string_equal(s.status, "requires_payment_method");
    assert_null(s.description);
    assert_null(s.last_setup_error);
    assert_int_equal(s.version, 1);
    /* another merchant, or live mode: not found */
    assert_int_equal(pd_seti_get(pd_store_reader(store), &a, "acct_other", false, "seti_1", &s), PD_ERR_NOTFOUND);
    assert_int_equal(pd_seti_get(pd_store_reader(store), &a, "acct_s", true, "seti_1", &s), PD_ERR_NOTFOUND);

    assert_int_equal(pd_seti_get(pd_store_reader(store), &a, "acct_s", false, "seti_1", &s), 0);
    pd_seti_rec_t stale = s;
    s.version++;
    snprintf(s.status, sizeof(s.status), "requires_payment_method");
    s.last_setup_error = "{\"code\":\"card_declined\"}";
    s.description = "tried";
    s.payment_method[0] = '\0';
    assert_int_equal(pd_store_write_sync(store, update_one, &s), 0);
    stale.version++; /* made from version 1, which is gone */
    stale.description = "lost";
    assert_int_equal(pd_store_write_sync(store, update_one, &stale), PD_ERR_CONFLICT);
    assert_int_equal(pd_seti_get(pd_store_reader(store), &a, "acct_s", false, "seti_1", &s), 0);
    assert_int_equal(s.version, 2);
    assert_string_equal(s.description, "tried");
    assert_string_equal(s.last_setup_error, "{\"code\":\"card_declined\"}");
    assert_string_equal(s.payment_method, "");
    pd_arena_free(&a);
}

static void
list_filters_and_pages(void **state)
{
    (void)state;
    bool more = false;
    seen_t s = list("cus_A", NULL, 10, NULL, &more);
    assert_int_equal(s.n, 3);
    assert_false(more);
    assert_string_equal(s.ids[0], "seti_3");
    assert_string_equal(s.ids[1], "seti_1");
    assert_string_equal(s.ids[2], "seti_0");
    s = list(NULL, "pm_x", 10, NULL, &more);
    assert_int_equal(s.n, 1); /* seti_1's method was taken off by the update */
    assert_string_equal(s.ids[0], "seti_3");
    s = list("cus_B", "pm_x", 10, NULL, &more);
    assert_int_equal(s.n, 0);
    s = list("cus_B", "pm_y", 10, NULL, &more);
    assert_int_equal(s.n, 1);
    s = list(NULL, NULL, 2, NULL, &more);
    assert_int_equal(s.n, 2);
    assert_true(more);
    assert_string_equal(s.ids[0], "seti_4");
    s = list(NULL, NULL, 2, "seti_3", &more);
    assert_int_equal(s.n, 2);
    assert_true(more);
    assert_string_equal(s.ids[0], "seti_2");
    assert_string_equal(s.ids[1], "seti_1");
}

static void
processing_intents_for_recovery(void **state)
{
    (void)state;
    pd_arena_t a;
    seen_t s = {.n = 0};
    pd_arena_init(&a, 1 << 20);
    /* changed just now: not yet due an hour ago, due from now on */
    assert_int_equal(pd_seti_list_processing(pd_store_reader(store), &a, pd_unix_now() - 3600, seen, &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(pd_seti_list_processing(pd_store_reader(store), &a, pd_unix_now() + 1, seen, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], "seti_4");
    pd_seti_rec_t r;
    assert_int_equal(pd_seti_get(pd_store_reader(store), &a, "acct_s", false, "seti_4", &r), 0);
    assert_string_equal(r.idempotency_key, "key-4");
    pd_arena_free(&a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_and_version_check),
        cmocka_unit_test(list_filters_and_pages),
        cmocka_unit_test(processing_intents_for_recovery),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
