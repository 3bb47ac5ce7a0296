/* [vault] address lists (pd_vault_parse_addresses): what payd accepts and refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "payd/vault.h"

static void
lists_are_split_in_order(void **state)
{
    (void)state;
    char a[8][300];
    int n = 0;
    assert_int_equal(pd_vault_parse_addresses("10.0.2.5:7443", a, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(a[0], "10.0.2.5:7443");
    assert_int_equal(pd_vault_parse_addresses("10.0.2.5:7443, vault2.internal:7443 ,[::1]:9", a, 8, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(a[0], "10.0.2.5:7443");
    assert_string_equal(a[1], "vault2.internal:7443");
    assert_string_equal(a[2], "[::1]:9");
}

static void
bad_lists_are_refused(void **state)
{
    (void)state;
    char a[8][300];
    int n = 0;
    static const char *const bad[] = {
        "",                                  /* nothing */
        "10.0.2.5:7443,",                    /* an empty entry */
        ",10.0.2.5:7443",
        "10.0.2.5:7443,,10.0.3.5:7443",
        "10.0.2.5",                          /* no port */
        "10.0.2.5:7443,10.0.3.5:99999",      /* a port out of range */
        "a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9", /* more than 8 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(pd_vault_parse_addresses(bad[i], a, 8, &n), PD_ERR_CONFIG);
    assert_int_equal(pd_vault_parse_addresses("a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8", a, 8, &n), 0);
    assert_int_equal(n, 8);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lists_are_split_in_order),
        cmocka_unit_test(bad_lists_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
