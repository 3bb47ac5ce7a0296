#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "payd/config.h"

typedef struct {
    char *listen;
    int64_t threads;
    int64_t timeout;
    int64_t body;
    bool hsts;
    int mode;
} sample_t;

static const char *const modes[] = {"block", "detect", "off", NULL};
static const pd_config_key_t keys[] = {
    {"listen", PD_CT_ADDR, offsetof(sample_t, listen), "127.0.0.1:8443"},
    {"threads", PD_CT_INT, offsetof(sample_t, threads), "0", 0, 64},
    {"timeout", PD_CT_MS, offsetof(sample_t, timeout), "10s", 100, 60000},
    {"body", PD_CT_SIZE, offsetof(sample_t, body), "1m", 1024, 8 * 1024 * 1024},
    {"hsts", PD_CT_BOOL, offsetof(sample_t, hsts), "true"},
    {"mode", PD_CT_ENUM, offsetof(sample_t, mode), "block", .choices = modes},
};

static pd_config_t *
make(sample_t *s)
{
    pd_config_t *c;
    assert_int_equal(pd_config_new(&c), 0);
    assert_int_equal(pd_config_add(c, "api", keys, sizeof(keys) / sizeof(keys[0]), s), 0);
    return c;
}

static char *
write_tmp(const char *text)
{
    char *path = strdup("/tmp/payd-config-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void
defaults_are_applied(void **state)
{
    (void)state;
    sample_t s;
    pd_config_t *c = make(&s);
    assert_string_equal(s.listen, "127.0.0.1:8443");
    assert_int_equal(s.timeout, 10000);
    assert_int_equal(s.body, 1024 * 1024);
    assert_true(s.hsts);
    assert_int_equal(s.mode, 0);
    pd_config_free(c);
}

static void
file_then_env_then_flags_override_in_order(void **state)
{
    (void)state;
    sample_t s;
    pd_config_t *c = make(&s);
    char *path = write_tmp("; comment\n[api]\nthreads = 4\ntimeout = 2s\nmode = detect\n");
    assert_int_equal(pd_config_load_file(c, path), 0);
    assert_int_equal(s.threads, 4);
    assert_int_equal(s.timeout, 2000);
    assert_int_equal(s.mode, 1);
    char e1[] = "PAYD_API_THREADS=8", e2[] = "HOME=/root", *env[] = {e1, e2, NULL};
    assert_int_equal(pd_config_load_env(c, env), 0);
    assert_int_equal(s.threads, 8);
    assert_int_equal(pd_config_set_arg(c, "api.threads=2", "--set"), 0);
    assert_int_equal(s.threads, 2);
    unlink(path);
    free(path);
    pd_config_free(c);
}

static void
unknown_key_names_file_line_key_and_accepted_keys(void **state)
{
    (void)state;
    sample_t s;
    pd_config_t *c = make(&s);
    char *path = write_tmp("[api]\nthreads = 1\nlistn = 1.2.3.4:5\n");
    assert_int_equal(pd_config_load_file(c, path), PD_ERR_CONFIG);
    const char *e = pd_config_error(c);
    char want[300];
    snprintf(want, sizeof(want), "%s:3: unknown key \"listn\" in [api]; accepted: listen, threads", path);
    assert_non_null(strstr(e, want));
    unlink(path);
    free(path);
    pd_config_free(c);
}

static void
bad_values_are_refused_with_the_accepted_range(void **state)
{
    (void)state;
    sample_t s;
    pd_config_t *c = make(&s);
    assert_int_equal(pd_config_set(c, "api", "threads", "65", "t"), PD_ERR_CONFIG);
    assert_non_null(strstr(pd_config_error(c), "an integer from 0 to 64"));
    assert_int_equal(pd_config_set(c, "api", "threads", "3x", "t"), PD_ERR_CONFIG);
    assert_int_equal(pd_config_set(c, "api", "timeout", "5 minutes", "t"), PD_ERR_CONFIG);
    assert_int_equal(pd_config_set(c, "api", "timeout", "2m", "t"), PD_ERR_CONFIG); /* > 60000 ms */
    assert_int_equal(pd_config_set(c, "api", "hsts", "maybe", "t"), PD_ERR_CONFIG);
    assert_int_equal(pd_config_set(c, "api", "mode", "blocking", "t"), PD_ERR_CONFIG);
    assert_non_null(strstr(pd_config_error(c), "one of block, detect, off"));
    assert_int_equal(pd_config_set(c, "api", "listen", "localhost", "t"), PD_ERR_CONFIG);
    assert_int_equal(pd_config_set(c, "api", "listen", "1.2.3.4:70000", "t"), PD_ERR_CONFIG);
    assert_int_equal(pd_config_set(c, "nope", "x", "1", "t"), PD_ERR_CONFIG);
    assert_non_null(strstr(pd_config_error(c), "unknown section [nope]; accepted: [api]"));
    assert_int_equal(s.threads, 0); /* nothing half-applied */
    pd_config_free(c);
}

static void
unknown_environment_settings_are_errors(void **state)
{
    (void)state;
    sample_t s;
    pd_config_t *c = make(&s);
    char e1[] = "PAYD_API_THREDS=1", *env[] = {e1, NULL};
    assert_int_equal(pd_config_load_env(c, env), PD_ERR_CONFIG);
    assert_non_null(strstr(pd_config_error(c), "PAYD_API_THREDS"));
    pd_config_free(c);
}

static void
syntax_errors_name_the_line(void **state)
{
    (void)state;
    sample_t s;
    pd_config_t *c = make(&s);
    char *path = write_tmp("[api]\nthreads = 1\nthis line is broken\n");
    assert_int_equal(pd_config_load_file(c, path), PD_ERR_CONFIG);
    assert_non_null(strstr(pd_config_error(c), ":3: syntax error"));
    unlink(path);
    free(path);
    pd_config_free(c);
}

static void
value_parsers(void **state)
{
    (void)state;
    int64_t v;
    bool b;
    char host[64];
    uint16_t port;
    assert_int_equal(pd_config_parse_ms("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(pd_config_parse_ms("30d", &v), 0);
    assert_int_equal(v, 30LL * 86400 * 1000);
    assert_int_not_equal(pd_config_parse_ms("-1s", &v), 0);
    assert_int_not_equal(pd_config_parse_ms("99999999999999999999d", &v), 0);
    assert_int_equal(pd_config_parse_size("16k", &v), 0);
    assert_int_equal(v, 16384);
    assert_int_not_equal(pd_config_parse_size("1t", &v), 0);
    assert_int_equal(pd_config_parse_bool("Yes", &b), 0);
    assert_true(b);
    assert_int_equal(pd_config_parse_addr("[::1]:9090", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9090);
    assert_int_not_equal(pd_config_parse_addr("::1:9090", host, sizeof(host), &port), 0);
    /* whole integers only: a unit, a space, a sign or an overflow is refused, *out untouched */
    assert_int_equal(pd_config_parse_int("3600", 0, 604800, &v), 0);
    assert_int_equal(v, 3600);
    assert_int_equal(pd_config_parse_int("-7", -10, 10, &v), 0);
    assert_int_equal(v, -7);
    v = 42;
    static const char *const not_numbers[] = {"10days", "", "-", " 10", "10 ", "+10", "0x10", "1e3", "1.5", "٣"};
    for (size_t i = 0; i < sizeof(not_numbers) / sizeof(not_numbers[0]); i++)
        assert_int_equal(pd_config_parse_int(not_numbers[i], INT64_MIN, INT64_MAX, &v), PD_ERR_INVALID);
    assert_int_equal(pd_config_parse_int(NULL, 0, 1, &v), PD_ERR_INVALID);
    assert_int_equal(pd_config_parse_int("604801", 0, 604800, &v), PD_ERR_RANGE);
    assert_int_equal(pd_config_parse_int("-1", 0, 604800, &v), PD_ERR_RANGE);
    assert_int_equal(pd_config_parse_int("99999999999999999999", INT64_MIN, INT64_MAX, &v), PD_ERR_RANGE);
    assert_int_equal(v, 42);
    assert_int_not_equal(pd_config_parse_addr(":80", host, sizeof(host), &port), 0);
}

typedef struct {
    char *url;
    char *password;
} conn_t;

static const pd_config_key_t conn_keys[] = {
    {"url", PD_CT_STR, offsetof(conn_t, url), ""},
    {"password", PD_CT_STR, offsetof(conn_t, password), ""},
};

/* --print-config never shows a password, also one written inside a URL or a conninfo */
static void
dump_hides_passwords_inside_values(void **state)
{
    (void)state;
    static const struct {
        const char *url, *shown;
    } cases[] = {
        {"redis://payd:S3cretPw@127.0.0.1:6379/0", "url = redis://payd:(set)@127.0.0.1:6379/0"},
        {"postgresql://payd:S3cretPw@db1:5432,db2:5432/payd?sslmode=verify-full",
         "url = postgresql://payd:(set)@db1:5432,db2:5432/payd?sslmode=verify-full"},
        {"host=db1 user=payd password=S3cretPw dbname=payd", "url = host=db1 user=payd password=(set) dbname=payd"},
        {"host=db1 password='S3 cret\\'Pw' dbname=payd", "url = host=db1 password=(set) dbname=payd"},
        {"redis://127.0.0.1:6379/0", "url = redis://127.0.0.1:6379/0"},
        {"rediss://user@host:1/0", "url = rediss://user@host:1/0"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        conn_t s;
        pd_config_t *c;
        assert_int_equal(pd_config_new(&c), 0);
        assert_int_equal(pd_config_add(c, "store", conn_keys, 2, &s), 0);
        assert_int_equal(pd_config_set(c, "store", "url", cases[i].url, "test"), 0);
        assert_int_equal(pd_config_set(c, "store", "password", "TopS3cret", "test"), 0);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        pd_config_dump(c, f);
        fclose(f);
        if (strstr(text, cases[i].shown) == NULL || strstr(text, "S3") != NULL || strstr(text, "TopS3cret") != NULL)
            fail_msg("case %zu: %s", i, text);
        free(text);
        pd_config_free(c);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_applied),
        cmocka_unit_test(file_then_env_then_flags_override_in_order),
        cmocka_unit_test(unknown_key_names_file_line_key_and_accepted_keys),
        cmocka_unit_test(bad_values_are_refused_with_the_accepted_range),
        cmocka_unit_test(unknown_environment_settings_are_errors),
        cmocka_unit_test(syntax_errors_name_the_line),
        cmocka_unit_test(value_parsers),
        cmocka_unit_test(dump_hides_passwords_inside_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
