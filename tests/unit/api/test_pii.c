/*
 * Customers' personal data helpers (src/api/pii.c): the email's blind index ignores case
 * and surrounding spaces and nothing else, depends on the merchant, the mode and the key;
 * the personal data's JSON reads back as it was written (absent members stay null); the
 * expanded customer's fields are set from it, an address with all six members.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/pii.h"

static const uint8_t pepper[32] = {1, 2, 3};

static void
the_email_index_normalizes_case_and_spaces_only(void **state)
{
    (void)state;
    char a[65], b[65], c[65];
    assert_int_equal(pd_pii_set_index_key(pepper, sizeof(pepper)), 0);
    assert_int_equal(pd_pii_email_index("acct_1", false, "Jenny.Rosen@Example.com", a), 0);
    assert_int_equal(pd_pii_email_index("acct_1", false, "  jenny.rosen@example.com\t", b), 0);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 64);
    assert_null(strstr(a, "jenny"));
    assert_int_equal(pd_pii_email_index("acct_1", false, "jenny.rosen@example.co", c), 0);
    assert_string_not_equal(a, c);
    assert_int_equal(pd_pii_email_index("acct_1", false, "jenny rosen@example.com", c), 0);
    assert_string_not_equal(a, c);
    /* per merchant and mode */
    assert_int_equal(pd_pii_email_index("acct_2", false, "jenny.rosen@example.com", c), 0);
    assert_string_not_equal(a, c);
    assert_int_equal(pd_pii_email_index("acct_1", true, "jenny.rosen@example.com", c), 0);
    assert_string_not_equal(a, c);
    /* and per key: another vault's pepper gives another index */
    uint8_t other[32] = {9};
    assert_int_equal(pd_pii_set_index_key(other, sizeof(other)), 0);
    assert_int_equal(pd_pii_email_index("acct_1", false, "jenny.rosen@example.com", c), 0);
    assert_string_not_equal(a, c);
    /* past the bound: refused, not truncated into another address's index */
    char longer[700];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    assert_int_equal(pd_pii_email_index("acct_1", false, longer, c), PD_ERR_TOOBIG);
}

static void
the_personal_data_reads_back(void **state)
{
    (void)state;
    pd_arena_t a;
    pd_arena_init(&a, 1 << 16);
    pd_customer_rec_t in, out;
    memset(&in, 0, sizeof(in));
    memset(&out, 0, sizeof(out));
    assert_false(pd_pii_present(&in));
    in.email = "j@example.com";
    in.phone = "+1 555 \"quoted\"";
    in.address.city = "Springfield";
    in.address.country = "US";
    assert_true(pd_pii_present(&in));
    size_t len = 0;
    char *text = pd_pii_encode(&a, &in, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_int_equal(pd_pii_decode(&a, text, len, &out), 0);
    assert_string_equal(out.email, "j@example.com");
    assert_string_equal(out.phone, "+1 555 \"quoted\"");
    assert_null(out.name);
    assert_string_equal(out.address.city, "Springfield");
    assert_string_equal(out.address.country, "US");
    assert_null(out.address.line1);
    assert_int_equal(pd_pii_decode(&a, "not json", 8, &out), PD_ERR_INVALID);

    /* onto an expanded customer: every member set, the address complete */
    json_t *o = json_pack("{s:s, s:n, s:n, s:n, s:n}", "id", "cus_1", "email", "name", "phone", "address");
    assert_int_equal(pd_pii_put_json(o, text, len), 0);
    assert_string_equal(json_string_value(json_object_get(o, "email")), "j@example.com");
    assert_true(json_is_null(json_object_get(o, "name")));
    json_t *ad = json_object_get(o, "address");
    assert_int_equal(json_object_size(ad), 6);
    assert_string_equal(json_string_value(json_object_get(ad, "city")), "Springfield");
    assert_true(json_is_null(json_object_get(ad, "line2")));
    json_decref(o);
    pd_arena_free(&a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_email_index_normalizes_case_and_spaces_only),
        cmocka_unit_test(the_personal_data_reads_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
