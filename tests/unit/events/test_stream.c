/* The transaction stream's pure parts: the partition of a merchant, the payload's
 * encryption context, and where [stream] and [cache] send the stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "payd/cache.h"
#include "payd/stream.h"

static void
partition_is_fnv1a_of_the_merchant_mod_n(void **state)
{
    (void)state;
    /* FNV-1a 32: "" = 0x811c9dc5, "a" = 0xe40c292c (the published test vectors) */
    assert_int_equal(pd_stream_partition("", 1000000007), 0x811c9dc5u % 1000000007u);
    assert_int_equal(pd_stream_partition("a", 1000000007), 0xe40c292cu % 1000000007u);
    assert_int_equal(pd_stream_partition("a", 3), 0xe40c292cu % 3u);
    /* stable, in range, and spread: 300 merchant-like ids over 3 partitions */
    int per[3] = {0};
    for (int i = 0; i < 300; i++) {
        char id[32];
        snprintf(id, sizeof(id), "acct_%08x", (unsigned)(i * 2654435761u));
        uint32_t p = pd_stream_partition(id, 3);
        assert_true(p < 3);
        assert_int_equal(p, pd_stream_partition(id, 3));
        per[p]++;
    }
    for (int i = 0; i < 3; i++)
        assert_true(per[i] > 60);
    assert_int_equal(pd_stream_partition("acct_x", 1), 0);
}

static void
context_binds_the_event_and_the_merchant(void **state)
{
    (void)state;
    char c[64];
    assert_int_equal(pd_stream_context(c, sizeof(c), "evt_1", "acct_2"), 0);
    assert_string_equal(c, "payd:txn|evt_1|acct_2");
    char small[10];
    assert_int_equal(pd_stream_context(small, sizeof(small), "evt_1", "acct_2"), PD_ERR_TOOBIG);
}

static pd_config_t *
config(const char *const *sets)
{
    pd_config_t *c = NULL;
    assert_int_equal(pd_config_new(&c), 0);
    assert_int_equal(pd_cache_config_register(c), 0);
    assert_int_equal(pd_stream_config_register(c), 0);
    for (int i = 0; sets != NULL && sets[i] != NULL; i++)
        assert_int_equal(pd_config_set_arg(c, sets[i], "test"), 0);
    return c;
}

static void
target_follows_stream_then_cache(void **state)
{
    (void)state;
    pd_stream_target_t t;
    char err[200] = "";
    /* defaults: no Redis, no stream */
    pd_config_t *c = config(NULL);
    assert_int_equal(pd_stream_target(&t, err, sizeof(err)), 0);
    assert_false(t.on);
    pd_config_free(c);
    /* a Redis cache: the stream is on, on the cache's url and password file */
    const char *s1[] = {"cache.url=redis://127.0.0.1:6379/0", "cache.password_file=/etc/pw", NULL};
    c = config(s1);
    assert_int_equal(pd_stream_target(&t, err, sizeof(err)), 0);
    assert_true(t.on);
    assert_string_equal(t.url, "redis://127.0.0.1:6379/0");
    assert_string_equal(t.password_file, "/etc/pw");
    pd_config_free(c);
    /* off wins */
    const char *s2[] = {"cache.url=redis://127.0.0.1:6379/0", "stream.backend=off", NULL};
    c = config(s2);
    assert_int_equal(pd_stream_target(&t, err, sizeof(err)), 0);
    assert_false(t.on);
    pd_config_free(c);
    /* a url of its own, without the cache's password file */
    const char *s3[] = {"cache.url=redis://127.0.0.1:6379/0", "cache.password_file=/etc/pw",
                        "stream.url=rediss://10.0.0.5:6380/1", NULL};
    c = config(s3);
    assert_int_equal(pd_stream_target(&t, err, sizeof(err)), 0);
    assert_true(t.on);
    assert_string_equal(t.url, "rediss://10.0.0.5:6380/1");
    assert_null(t.password_file);
    pd_config_free(c);
    /* redis with nowhere to go, and a backend that is neither: precise errors */
    const char *s4[] = {"stream.backend=redis", NULL};
    c = config(s4);
    assert_int_equal(pd_stream_target(&t, err, sizeof(err)), PD_ERR_CONFIG);
    assert_non_null(strstr(err, "[stream] backend = redis needs"));
    pd_config_free(c);
    const char *s5[] = {"stream.backend=kinesis", NULL};
    c = config(s5);
    assert_int_equal(pd_stream_target(&t, err, sizeof(err)), PD_ERR_CONFIG);
    assert_non_null(strstr(err, "\"kinesis\" is not off or redis"));
    pd_config_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(partition_is_fnv1a_of_the_merchant_mod_n),
        cmocka_unit_test(context_binds_the_event_and_the_merchant),
        cmocka_unit_test(target_follows_stream_then_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
