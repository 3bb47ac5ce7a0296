#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "payd/json.h"

static void
writer_produces_compact_valid_json(void **state)
{
    (void)state;
    pd_buf_t b;
    pd_jw_t w;
    pd_buf_init(&b, 4096);
    pd_jw_init(&w, &b);
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "id", "pi_1");
    pd_jw_kint(&w, "amount", 1099);
    pd_jw_kbool(&w, "livemode", false);
    pd_jw_knull(&w, "description");
    pd_jw_key(&w, "list");
    pd_jw_arr_begin(&w);
    pd_jw_int(&w, 1);
    pd_jw_str(&w, "two");
    pd_jw_obj_begin(&w);
    pd_jw_obj_end(&w);
    pd_jw_arr_end(&w);
    pd_jw_obj_end(&w);
    assert_int_equal(pd_jw_finish(&w), 0);
    const char *s;
    assert_int_equal(pd_buf_cstr(&b, &s), 0);
    assert_string_equal(s, "{\"id\":\"pi_1\",\"amount\":1099,\"livemode\":false,\"description\":null,\"list\":[1,\"two\",{}]}");
    pd_buf_free(&b);
}

static void
escaping_handles_controls_quotes_and_invalid_utf8(void **state)
{
    (void)state;
    pd_buf_t b;
    pd_buf_init(&b, 4096);
    const uint8_t in[] = {'a', '"', '\\', '\n', 0x01, 0xC3, 0xA9, 0xFF, 'z'};
    assert_int_equal(pd_json_escape(&b, in, sizeof(in)), 0);
    const char *s;
    assert_int_equal(pd_buf_cstr(&b, &s), 0);
    assert_string_equal(s, "\"a\\\"\\\\\\n\\u0001\xC3\xA9\\ufffdz\"");
    pd_buf_free(&b);
}

static void
unbalanced_writer_reports_an_error(void **state)
{
    (void)state;
    pd_buf_t b;
    pd_jw_t w;
    pd_buf_init(&b, 64);
    pd_jw_init(&w, &b);
    pd_jw_obj_begin(&w);
    assert_int_not_equal(pd_jw_finish(&w), 0);
    pd_buf_free(&b);
}

static void
writer_error_is_sticky_when_the_buffer_is_full(void **state)
{
    (void)state;
    pd_buf_t b;
    pd_jw_t w;
    pd_buf_init(&b, 8);
    pd_jw_init(&w, &b);
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "key", "a long value that does not fit");
    pd_jw_obj_end(&w);
    assert_int_equal(pd_jw_finish(&w), PD_ERR_TOOBIG);
    pd_buf_free(&b);
}

static void
utf8_validation_rejects_overlongs_and_surrogates(void **state)
{
    (void)state;
    const char *ok = "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80";
    assert_true(pd_utf8_valid((const uint8_t *)ok, strlen(ok)));
    assert_false(pd_utf8_valid((const uint8_t *)"\xC0\xAF", 2));         /* overlong '/' */
    assert_false(pd_utf8_valid((const uint8_t *)"\xED\xA0\x80", 3));     /* surrogate */
    assert_false(pd_utf8_valid((const uint8_t *)"\xF4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(pd_utf8_valid((const uint8_t *)"\xE2\x82", 2));         /* truncated */
}

static void
parser_rejects_duplicates_depth_and_trailing_data(void **state)
{
    (void)state;
    char err[200];
    json_t *v = pd_json_parse(PD_VIEW_LIT("{\"a\":1,\"b\":[1,2]}"), 8, err, sizeof(err));
    assert_non_null(v);
    json_decref(v);
    assert_null(pd_json_parse(PD_VIEW_LIT("{\"a\":1,\"a\":2}"), 8, err, sizeof(err)));
    assert_non_null(strstr(err, "duplicate"));
    assert_null(pd_json_parse(PD_VIEW_LIT("[[[[1]]]]"), 3, err, sizeof(err)));
    assert_non_null(strstr(err, "deeper"));
    assert_null(pd_json_parse(PD_VIEW_LIT("{} x"), 8, err, sizeof(err)));
    assert_null(pd_json_parse(PD_VIEW_LIT("{\"a\":\"\xFF\"}"), 8, err, sizeof(err)));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writer_produces_compact_valid_json),
        cmocka_unit_test(escaping_handles_controls_quotes_and_invalid_utf8),
        cmocka_unit_test(unbalanced_writer_reports_an_error),
        cmocka_unit_test(writer_error_is_sticky_when_the_buffer_is_full),
        cmocka_unit_test(utf8_validation_rejects_overlongs_and_surrogates),
        cmocka_unit_test(parser_rejects_duplicates_depth_and_trailing_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
