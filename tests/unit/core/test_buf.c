#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "payd/arena.h"
#include "payd/buf.h"
#include "payd/id.h"

static void
buf_grows_to_its_maximum_and_fails_closed_past_it(void **state)
{
    (void)state;
    pd_buf_t b;
    pd_buf_init(&b, 10);
    assert_int_equal(pd_buf_put(&b, "0123456789", 10), 0);
    assert_int_equal(pd_buf_put(&b, "x", 1), PD_ERR_TOOBIG);
    assert_int_equal(b.len, 10); /* unchanged after a failed append */
    const char *s;
    assert_int_equal(pd_buf_cstr(&b, &s), 0);
    assert_string_equal(s, "0123456789");
    pd_buf_free(&b);
    pd_buf_free(&b); /* idempotent */
}

static void
buf_printf_appends_and_respects_the_limit(void **state)
{
    (void)state;
    pd_buf_t b;
    pd_buf_init(&b, 16);
    assert_int_equal(pd_buf_printf(&b, "%s-%d", "ab", 42), 0);
    assert_int_equal(pd_buf_printf(&b, "%s", "0123456789abcdef"), PD_ERR_TOOBIG);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.p, "ab-42", 5);
    pd_buf_free(&b);
}

static void
view_to_i64_accepts_only_whole_decimal_numbers(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(pd_view_to_i64(PD_VIEW_LIT("12345"), &v), 0);
    assert_int_equal(v, 12345);
    assert_int_equal(pd_view_to_i64(PD_VIEW_LIT("-7"), &v), 0);
    assert_int_equal(v, -7);
    assert_int_equal(pd_view_to_i64(PD_VIEW_LIT("9223372036854775807"), &v), 0);
    assert_int_equal(pd_view_to_i64(PD_VIEW_LIT("-9223372036854775808"), &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(pd_view_to_i64(PD_VIEW_LIT("9223372036854775808"), &v), PD_ERR_RANGE);
    assert_int_equal(pd_view_to_i64(PD_VIEW_LIT("12a"), &v), PD_ERR_INVALID);
    assert_int_equal(pd_view_to_i64(PD_VIEW_LIT(""), &v), PD_ERR_INVALID);
    assert_int_equal(pd_view_to_i64(PD_VIEW_LIT("-"), &v), PD_ERR_INVALID);
    assert_int_equal(pd_view_to_i64(PD_VIEW_LIT("1.5"), &v), PD_ERR_INVALID);
    assert_int_equal(pd_view_to_i64(PD_VIEW_LIT(" 1"), &v), PD_ERR_INVALID);
}

static void
arena_respects_its_budget(void **state)
{
    (void)state;
    pd_arena_t a;
    pd_arena_init(&a, 64 * 1024);
    for (int i = 0; i < 100; i++) {
        char *p = pd_arena_alloc(&a, 100);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 'x', 100);
    }
    assert_null(pd_arena_alloc(&a, 128 * 1024)); /* over budget */
    char *s = pd_arena_strndup(&a, "hello", 3);
    assert_string_equal(s, "hel");
    pd_arena_free(&a);
    assert_non_null(pd_arena_alloc(&a, 10)); /* reusable after free */
    pd_arena_free(&a);
}

static void
ids_have_prefix_time_and_24_random_base62_chars(void **state)
{
    (void)state;
    char a[PD_ID_MAX], b[PD_ID_MAX];
    assert_int_equal(pd_id_new("pi", a, sizeof(a)), 0);
    assert_int_equal(pd_id_new("pi", b, sizeof(b)), 0);
    assert_int_equal(strlen(a), 3 + PD_ID_TIME_LEN + PD_ID_RAND_LEN);
    assert_memory_equal(a, "pi_", 3);
    assert_string_not_equal(a, b);
    /* the time part sorts: an id made later never sorts before an earlier one */
    assert_true(memcmp(a + 3, b + 3, PD_ID_TIME_LEN) <= 0);
    assert_memory_not_equal(a + 3 + PD_ID_TIME_LEN, b + 3 + PD_ID_TIME_LEN, PD_ID_RAND_LEN);
    assert_true(pd_id_valid(pd_view_cstr(a), "pi"));
    assert_false(pd_id_valid(pd_view_cstr(a), "pm"));
    assert_false(pd_id_valid(PD_VIEW_LIT("pi_abc$defgh"), "pi"));
    assert_false(pd_id_valid(PD_VIEW_LIT("pi_1234567"), "pi")); /* too short */
    char small[8];
    assert_int_equal(pd_id_new("pi", small, sizeof(small)), PD_ERR_TOOBIG);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_grows_to_its_maximum_and_fails_closed_past_it),
        cmocka_unit_test(buf_printf_appends_and_respects_the_limit),
        cmocka_unit_test(view_to_i64_accepts_only_whole_decimal_numbers),
        cmocka_unit_test(arena_respects_its_budget),
        cmocka_unit_test(ids_have_prefix_time_and_24_random_base62_chars),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
