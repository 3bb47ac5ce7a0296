#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "payd/schema.h"

static const char *const capture_methods[] = {"automatic", "manual", NULL};
static const pd_field_t fields[] = {
    {"amount", PD_FT_INT, PD_FF_REQUIRED, 1, 99999999},
    {"currency", PD_FT_CURRENCY, PD_FF_REQUIRED},
    {"capture_method", PD_FT_ENUM, 0, .choices = capture_methods},
    {"confirm", PD_FT_BOOL, 0},
    {"description", PD_FT_STRING, PD_FF_UNSET, 0, 1000},
    {"metadata", PD_FT_MAP, PD_FF_UNSET},
    {"expand", PD_FT_LIST, 0, .max_items = 3},
    {"receipt_email", PD_FT_EMAIL, 0},
    {"payment_method", PD_FT_ID, 0},
    {"card[number]", PD_FT_DIGITS, 0, 12, 19},
};
static const pd_schema_t schema = PD_SCHEMA(fields);
static pd_arena_t arena;

static int
check_form(const char *body, pd_schema_error_t *e)
{
    pd_params_t p;
    pd_params_error_t pe;
    pd_arena_free(&arena);
    pd_arena_init(&arena, 1 << 20);
    assert_int_equal(pd_params_parse_form(&arena, pd_view_cstr(body), &p, &pe), 0);
    return pd_schema_check(&schema, &p, e);
}

static void
accepts_valid_requests(void **state)
{
    (void)state;
    pd_schema_error_t e;
    assert_int_equal(check_form("amount=1099&currency=usd&capture_method=manual&confirm=true&description=x"
                                "&metadata[order]=42&expand[]=latest_charge&receipt_email=a@b.example"
                                "&payment_method=pm_card_visa&card[number]=4242424242424242",
                                &e),
                     0);
    assert_int_equal(check_form("amount=1&currency=JPY&description=", &e), 0); /* empty = unset where allowed */
}

static void
refuses_with_stripe_codes_and_param(void **state)
{
    (void)state;
    static const struct {
        const char *body, *code, *param;
    } cases[] = {
        {"amount=1099&currency=usd&colour=red", "parameter_unknown", "colour"},
        {"currency=usd", "parameter_missing", "amount"},
        {"amount=10.99&currency=usd", "parameter_invalid_integer", "amount"},
        {"amount=-5&currency=usd", "parameter_invalid_integer", "amount"},
        {"amount=0&currency=usd", "parameter_invalid_integer", "amount"},
        {"amount=100000000&currency=usd", "parameter_invalid_integer", "amount"},
        {"amount=01&currency=usd", "parameter_invalid_integer", "amount"},
        {"amount=1e3&currency=usd", "parameter_invalid_integer", "amount"},
        {"amount=1&currency=us", "parameter_invalid_currency", "currency"},
        {"amount=1&currency=usd&capture_method=later", "parameter_invalid", "capture_method"},
        {"amount=1&currency=usd&confirm=yes", "parameter_invalid_boolean", "confirm"},
        {"amount=1&currency=usd&receipt_email=nope", "email_invalid", "receipt_email"},
        {"amount=1&currency=usd&card[number]=4242-4242", "parameter_invalid", "card[number]"},
        {"amount=1&currency=usd&card[cvc]=123", "parameter_unknown", "card[cvc]"},
        {"amount=1&currency=usd&metadata[a][b]=1", "parameter_unknown", "metadata[a][b]"},
        {"amount=1&currency=usd&expand[]=a&expand[]=b&expand[]=c&expand[]=d", "parameter_invalid", "expand"},
        {"amount=&currency=usd", "parameter_invalid_empty", "amount"},
        {"amount=1&currency=usd&payment_method=pm%20x", "resource_missing", "payment_method"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pd_schema_error_t e;
        assert_int_equal(check_form(cases[i].body, &e), PD_ERR_INVALID);
        if (strcmp(e.code, cases[i].code) != 0 || strcmp(e.param, cases[i].param) != 0)
            fail_msg("%s: got %s/%s, want %s/%s", cases[i].body, e.code, e.param, cases[i].code, cases[i].param);
        assert_true(strlen(e.message) > 0);
    }
}

static void
metadata_limits(void **state)
{
    (void)state;
    pd_schema_error_t e;
    char body[8192];
    size_t n = (size_t)snprintf(body, sizeof(body), "amount=1&currency=usd");
    for (int i = 0; i < 51; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "&metadata[k%d]=v", i);
    assert_int_equal(check_form(body, &e), PD_ERR_INVALID);
    assert_string_equal(e.param, "metadata");
    char longkey[128];
    snprintf(longkey, sizeof(longkey), "amount=1&currency=usd&metadata[%041d]=v", 0);
    assert_int_equal(check_form(longkey, &e), PD_ERR_INVALID);
    char longval[700];
    n = (size_t)snprintf(longval, sizeof(longval), "amount=1&currency=usd&metadata[k]=");
    memset(longval + n, 'x', 501);
    longval[n + 501] = '\0';
    assert_int_equal(check_form(longval, &e), PD_ERR_INVALID);
    assert_string_equal(e.code, "parameter_invalid_string_too_long");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_valid_requests),
        cmocka_unit_test(refuses_with_stripe_codes_and_param),
        cmocka_unit_test(metadata_limits),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    pd_arena_free(&arena);
    return r;
}
