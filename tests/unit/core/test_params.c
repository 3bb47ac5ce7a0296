#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "payd/params.h"

static pd_arena_t arena;

static int
reset(void **state)
{
    (void)state;
    pd_arena_free(&arena);
    pd_arena_init(&arena, 1 << 20);
    return 0;
}

static void
form_decodes_brackets_arrays_and_escapes(void **state)
{
    (void)state;
    pd_params_t p;
    pd_params_error_t e;
    const char *body = "amount=1099&currency=usd&card[number]=4242+4242&metadata[order%5Fid]=A%26B"
                       "&enabled_events[]=charge.succeeded&enabled_events[]=refund.created&empty=";
    assert_int_equal(pd_params_parse_form(&arena, pd_view_cstr(body), &p, &e), 0);
    assert_int_equal(p.n, 7);
    assert_string_equal((const char *)pd_params_get(&p, "amount")->value.p, "1099");
    assert_string_equal((const char *)pd_params_get(&p, "card[number]")->value.p, "4242 4242");
    assert_string_equal((const char *)pd_params_get(&p, "metadata[order_id]")->value.p, "A&B");
    assert_string_equal((const char *)pd_params_get(&p, "enabled_events[0]")->value.p, "charge.succeeded");
    assert_string_equal((const char *)pd_params_get(&p, "enabled_events[1]")->value.p, "refund.created");
    assert_int_equal(pd_params_get(&p, "empty")->value.len, 0);
    assert_true(pd_params_has_prefix(&p, "metadata"));
    assert_false(pd_params_has_prefix(&p, "meta"));
}

static void
form_rejects_malformed_input(void **state)
{
    (void)state;
    pd_params_t p;
    pd_params_error_t e;
    static const char *bad[] = {
        "a=%zz",            /* bad escape */
        "a=%4",             /* truncated escape */
        "a=1&a=2",          /* duplicate */
        "card[number=1",    /* unbalanced */
        "card]x=1",         /* stray bracket */
        "=1",               /* empty name */
        "a=%00",            /* NUL */
        "a=%ff%fe",         /* invalid UTF-8 */
        "a[b][c][d][e][f][g][h][i][j]=1", /* too deep */
        "a[][b]=1",         /* [] not last */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        reset(NULL);
        assert_int_equal(pd_params_parse_form(&arena, pd_view_cstr(bad[i]), &p, &e), PD_ERR_INVALID);
        assert_true(e.message[0] != '\0');
    }
    reset(NULL);
    assert_int_equal(pd_params_parse_form(&arena, PD_VIEW_LIT("amount=1&amount=2"), &p, &e), PD_ERR_INVALID);
    assert_string_equal(e.param, "amount");
}

static void
json_flattens_to_the_same_paths(void **state)
{
    (void)state;
    pd_params_t p;
    pd_params_error_t e;
    const char *body = "{\"amount\":1099,\"confirm\":true,\"card\":{\"number\":\"4242\"},"
                       "\"enabled_events\":[\"a\",\"b\"],\"metadata\":{},\"description\":null,\"rate\":1.5}";
    assert_int_equal(pd_params_parse_json(&arena, pd_view_cstr(body), &p, &e), 0);
    pd_param_t *amount = pd_params_get(&p, "amount");
    assert_int_equal(amount->type, PD_P_INT);
    assert_string_equal((const char *)amount->value.p, "1099");
    assert_int_equal(pd_params_get(&p, "confirm")->type, PD_P_BOOL);
    assert_string_equal((const char *)pd_params_get(&p, "card[number]")->value.p, "4242");
    assert_string_equal((const char *)pd_params_get(&p, "enabled_events[1]")->value.p, "b");
    assert_int_equal(pd_params_get(&p, "metadata")->type, PD_P_EMPTY);
    assert_int_equal(pd_params_get(&p, "description")->type, PD_P_NULL);
    assert_int_equal(pd_params_get(&p, "rate")->type, PD_P_REAL);
}

static void
json_rejects_duplicates_non_objects_and_bracket_keys(void **state)
{
    (void)state;
    pd_params_t p;
    pd_params_error_t e;
    static const char *bad[] = {"{\"a\":1,\"a\":2}", "[1,2]", "\"x\"", "{\"a[b]\":1}", "{\"a\":",
                                "{\"a\":\"\\u0000\"}", "{\"\":1}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        reset(NULL);
        assert_int_equal(pd_params_parse_json(&arena, pd_view_cstr(bad[i]), &p, &e), PD_ERR_INVALID);
    }
    reset(NULL);
    char deep[256];
    size_t n = 0;
    for (int i = 0; i < 12; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"a\":");
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "1");
    for (int i = 0; i < 12; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "}");
    assert_int_equal(pd_params_parse_json(&arena, pd_view_cstr(deep), &p, &e), PD_ERR_INVALID);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(form_decodes_brackets_arrays_and_escapes, reset),
        cmocka_unit_test_setup(form_rejects_malformed_input, reset),
        cmocka_unit_test_setup(json_flattens_to_the_same_paths, reset),
        cmocka_unit_test_setup(json_rejects_duplicates_non_objects_and_bracket_keys, reset),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    pd_arena_free(&arena);
    return r;
}
