/* [cache] url: the three accepted forms and precise errors for the rest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cache/internal.h"

static void
accepted_forms(void **state)
{
    (void)state;
    pd_rurl_t u;
    char err[256];
    assert_int_equal(pd_rurl_parse(&u, "redis://127.0.0.1:6379", err, sizeof(err)), 0);
    assert_int_equal(u.kind, PD_RURL_PLAIN);
    assert_string_equal(u.hosts[0].host, "127.0.0.1");
    assert_int_equal(u.hosts[0].port, 6379);
    assert_int_equal(u.db, 0);
    assert_int_equal(pd_rurl_parse(&u, "redis://payd:s%40cr%3At@cache.internal:6380/3", err, sizeof(err)), 0);
    assert_string_equal(u.user, "payd");
    assert_string_equal(u.password, "s@cr:t");
    assert_string_equal(u.hosts[0].host, "cache.internal");
    assert_int_equal(u.db, 3);
    assert_int_equal(pd_rurl_parse(&u, "rediss://:pw@[::1]:6379/0", err, sizeof(err)), 0);
    assert_int_equal(u.kind, PD_RURL_TLS);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "pw");
    assert_string_equal(u.hosts[0].host, "::1");
    assert_int_equal(pd_rurl_parse(&u, "redis-sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/mymaster", err,
                                   sizeof(err)), 0);
    assert_int_equal(u.kind, PD_RURL_SENTINEL);
    assert_int_equal(u.nhosts, 3);
    assert_int_equal(u.hosts[2].port, 26379);
    assert_string_equal(u.master, "mymaster");
    assert_int_equal(pd_rurl_parse(&u, "redis-sentinel://a:1/m/2", err, sizeof(err)), 0);
    assert_int_equal(u.db, 2);
}

static void
refused_forms(void **state)
{
    (void)state;
    static const struct {
        const char *url, *msg;
    } bad[] = {
        {"", "must start with"},
        {"http://127.0.0.1:6379", "must start with"},
        {"redis://127.0.0.1", "is not host:port"},
        {"redis://127.0.0.1:0", "is not host:port"},
        {"redis://127.0.0.1:70000", "is not host:port"},
        {"redis://127.0.0.1:6379/16", "database"},
        {"redis://127.0.0.1:6379/x", "database"},
        {"redis://a:1,b:2", "redis-sentinel"},
        {"redis-sentinel://a:1,b:2", "master's name"},
        {"redis-sentinel://a:1/", "master's name"},
        {"redis://u:p%4@h:1", "password is malformed"},
        {"redis://u:p%00@h:1", "password is malformed"},
        {"redis://", "no host"},
        {"redis://ho st:1", "is not host:port"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pd_rurl_t u;
        char err[256] = "";
        assert_int_equal(pd_rurl_parse(&u, bad[i].url, err, sizeof(err)), PD_ERR_CONFIG);
        if (strstr(err, bad[i].msg) == NULL)
            fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].url, err, bad[i].msg);
        assert_null(strstr(err, "p%4")); /* never the password */
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(accepted_forms), cmocka_unit_test(refused_forms)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
