/* Card numbers in free text: what pd_text_has_card_number finds and what it leaves alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/internal.h"

static void
card_numbers_are_found_in_text(void **state)
{
    (void)state;
    static const char *found[] = {
        "4242424242424242",
        "card 4242424242424242 exp 12/31",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "378282246310005",     /* 15 digits (Amex) */
        "6011111111111117",    /* Discover */
        "x4000056655665556y",  /* glued to letters */
        "4222222222222",       /* 13 digits */
        "6200000000000005",
    };
    static const char *not_found[] = {
        "",
        "order 12345",
        "4242424242424241",              /* Luhn fails */
        "424242424242",                  /* 12 digits */
        "42424242424242424242",          /* 20 digits: an identifier, not a card */
        "4242  4242 4242 4242",          /* two separators end the run */
        "4242.4242.4242.4242",
        "+1 555 0100",
        "2024-01-31",
        "ref-0000000000000000000000000", /* a long run of zeros */
    };
    for (size_t i = 0; i < sizeof(found) / sizeof(found[0]); i++)
        if (!pd_text_has_card_number(pd_view_cstr(found[i])))
            fail_msg("not found in \"%s\"", found[i]);
    for (size_t i = 0; i < sizeof(not_found) / sizeof(not_found[0]); i++)
        if (pd_text_has_card_number(pd_view_cstr(not_found[i])))
            fail_msg("found in \"%s\"", not_found[i]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(card_numbers_are_found_in_text)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
