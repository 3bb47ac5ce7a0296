/*
 * The customers' and saved cards' repository (src/store/repo_customers.c, repo_pm.c) on
 * SQLite and PostgreSQL: an update is version-checked and refused once deleted, a
 * deletion erases the envelope and the email index and happens once, the list filters by
 * the email index and leaves deleted customers out, a payment method is attached to one
 * customer only and detached for good, and a deletion detaches its methods.
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
#include "store_fixture.h"

static pd_store_t *store;
static char cus0[] = "cus_0", cus2[] = "cus_2", pma[] = "pm_a", pmb[] = "pm_b", pmc[] = "pm_c";

static int
setup(void **state)
{
    (void)state;
    if (pd_tf_setup("customers") != 0)
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
customer(pd_customer_rec_t *c, const char *id, const char *index, int64_t seq)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->merchant_id, sizeof(c->merchant_id), "acct_c");
    snprintf(c->email_index, sizeof(c->email_index), "%s", index);
    c->pii_enc = "00ff";
    c->metadata = "{}";
    c->created = c->updated = 100 + seq;
    c->seq = seq;
    c->version = 1;
}

static int
insert_three(pd_db_t *tx, void *arg)
{
    (void)arg;
    const char *idx[] = {"aaaa", "bbbb", "aaaa"};
    for (int i = 0; i < 3; i++) {
        pd_customer_rec_t c;
        char id[16];
        snprintf(id, sizeof(id), "cus_%d", i);
        customer(&c, id, idx[i], i + 1);
        int r = pd_customer_insert(tx, &c);
        if (r != 0)
            return r;
    }
    return 0;
}

static int
update_one(pd_db_t *tx, void *arg)
{
    return pd_customer_update(tx, arg);
}

static int
delete_one(pd_db_t *tx, void *arg)
{
    int r = pd_customer_delete(tx, "acct_c", false, arg, 500);
    return r != 0 ? r : pd_pm_detach_all(tx, arg);
}

typedef struct {
    char ids[8][PD_ID_MAX];
    int n;
} seen_t;

static int
seen(void *rec, void *arg)
{
    seen_t *s = arg;
    snprintf(s->ids[s->n++], PD_ID_MAX, "%s", ((pd_customer_rec_t *)rec)->id);
    return 0;
}

static seen_t
list(const char *filter)
{
    seen_t s = {.n = 0};
    pd_list_q_t q = {.limit = 10, .filter = filter, .created_gte = INT64_MIN, .created_lte = INT64_MAX};
    pd_arena_t a;
    bool more = true;
    pd_arena_init(&a, 1 << 20);
    assert_int_equal(pd_customer_list(pd_store_reader(store), &a, "acct_c", false, &q, seen, &s, &more), 0);
    assert_false(more);
    pd_arena_free(&a);
    return s;
}

static void
customers_update_delete_and_list(void **state)
{
    (void)state;
    pd_arena_t a;
    pd_customer_rec_t c;
    pd_arena_init(&a, 1 << 20);
    assert_int_equal(pd_store_write_sync(store, insert_three, NULL), 0);

    seen_t s = list("aaaa");
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ids[0], "cus_2"); /* newest first */
    assert_string_equal(s.ids[1], "cus_0");
    assert_int_equal(list(NULL).n, 3);

    /* version-checked: a stale update is a conflict */
    assert_int_equal(pd_customer_get(pd_store_reader(store), &a, "acct_c", false, "cus_1", &c), 0);
    assert_string_equal(c.email_index, "bbbb");
    c.version = 2;
    c.description = "changed";
    snprintf(c.default_payment_method, sizeof(c.default_payment_method), "pm_1");
    assert_int_equal(pd_store_write_sync(store, update_one, &c), 0);
    assert_int_equal(pd_store_write_sync(store, update_one, &c), PD_ERR_CONFLICT);
    assert_int_equal(pd_customer_get(pd_store_reader(store), &a, "acct_c", false, "cus_1", &c), 0);
    assert_string_equal(c.description, "changed");
    assert_string_equal(c.default_payment_method, "pm_1");
    /* another merchant or mode does not see it */
    assert_int_equal(pd_customer_get(pd_store_reader(store), &a, "acct_other", false, "cus_1", &c), PD_ERR_NOTFOUND);
    assert_int_equal(pd_customer_get(pd_store_reader(store), &a, "acct_c", true, "cus_1", &c), PD_ERR_NOTFOUND);

    /* deleted once: the envelope and the index erased, off the list, no update */
    assert_int_equal(pd_store_write_sync(store, delete_one, cus0), 0);
    assert_int_equal(pd_store_write_sync(store, delete_one, cus0), PD_ERR_NOTFOUND);
    assert_int_equal(pd_customer_get(pd_store_reader(store), &a, "acct_c", false, "cus_0", &c), 0);
    assert_true(c.deleted);
    assert_null(c.pii_enc);
    assert_string_equal(c.email_index, "");
    s = list("aaaa");
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], "cus_2");
    c.version++;
    assert_int_equal(pd_store_write_sync(store, update_one, &c), PD_ERR_CONFLICT);
    pd_arena_free(&a);
}

static int
insert_pm(pd_db_t *tx, void *arg)
{
    pd_pm_rec_t p;
    memset(&p, 0, sizeof(p));
    snprintf(p.id, sizeof(p.id), "%s", (const char *)arg);
    snprintf(p.object, sizeof(p.object), "payment_method");
    snprintf(p.merchant_id, sizeof(p.merchant_id), "acct_c");
    snprintf(p.vault_token, sizeof(p.vault_token), "card_x");
    snprintf(p.brand, sizeof(p.brand), "visa");
    snprintf(p.last4, sizeof(p.last4), "4242");
    snprintf(p.fingerprint, sizeof(p.fingerprint), "fp");
    snprintf(p.funding, sizeof(p.funding), "credit");
    p.metadata = "{}";
    p.created = 100;
    p.seq = 1;
    return pd_pm_insert(tx, &p);
}

typedef struct {
    const char *pm, *customer;
    bool detach;
} att_t;

static int
attach(pd_db_t *tx, void *arg)
{
    att_t *x = arg;
    return x->detach ? pd_pm_detach(tx, x->pm, x->customer) : pd_pm_attach(tx, x->pm, x->customer);
}

static void
payment_methods_attach_once_and_detach_for_good(void **state)
{
    (void)state;
    pd_arena_t a;
    pd_pm_rec_t p;
    pd_arena_init(&a, 1 << 20);
    assert_int_equal(pd_store_write_sync(store, insert_three, NULL), 0);
    assert_int_equal(pd_store_write_sync(store, insert_pm, pma), 0);
    assert_int_equal(pd_store_write_sync(store, insert_pm, pmb), 0);
    att_t a1 = {"pm_a", "cus_1", false}, a2 = {"pm_a", "cus_2", false}, d1 = {"pm_a", "cus_1", true};
    assert_int_equal(pd_store_write_sync(store, attach, &a1), 0);
    assert_int_equal(pd_store_write_sync(store, attach, &a2), PD_ERR_CONFLICT); /* one customer only */
    assert_int_equal(pd_pm_get(pd_store_reader(store), &a, "acct_c", false, "pm_a", &p), 0);
    assert_string_equal(p.customer, "cus_1");
    assert_false(p.detached);
    assert_int_equal(pd_store_write_sync(store, attach, &d1), 0);
    assert_int_equal(pd_store_write_sync(store, attach, &d1), PD_ERR_CONFLICT); /* not attached any more */
    assert_int_equal(pd_store_write_sync(store, attach, &a1), PD_ERR_CONFLICT); /* detached for good */
    assert_int_equal(pd_pm_get(pd_store_reader(store), &a, "acct_c", false, "pm_a", &p), 0);
    assert_string_equal(p.customer, "");
    assert_true(p.detached);

    /* a deleted customer's methods are detached */
    att_t b2 = {"pm_b", "cus_2", false};
    assert_int_equal(pd_store_write_sync(store, attach, &b2), 0);
    assert_int_equal(pd_store_write_sync(store, delete_one, cus2), 0);
    assert_int_equal(pd_pm_get(pd_store_reader(store), &a, "acct_c", false, "pm_b", &p), 0);
    assert_string_equal(p.customer, "");
    assert_true(p.detached);
    /* nothing is attached to a deleted customer */
    assert_int_equal(pd_store_write_sync(store, insert_pm, pmc), 0);
    att_t c2 = {"pm_c", "cus_2", false};
    assert_int_equal(pd_store_write_sync(store, attach, &c2), PD_ERR_CONFLICT);
    pd_arena_free(&a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(customers_update_delete_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(payment_methods_attach_once_and_detach_for_good, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
