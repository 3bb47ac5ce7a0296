/* The alarm state machine, [alarms] checks and the notification body (payd/alarms.h). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "payd/alarms.h"
#include "payd/config.h"

static const pd_alarm_def_t *
def_of(const char *name)
{
    for (size_t i = 0; i < PD_ALARM_N; i++)
        if (strcmp(pd_alarm_defs[i].name, name) == 0)
            return &pd_alarm_defs[i];
    fail_msg("no alarm %s", name);
    return NULL;
}

static void
insufficient_data_then_alarm_after_n_breaching_periods(void **state)
{
    (void)state;
    pd_alarm_t a;
    pd_alarm_state_t prev;
    pd_alarm_init(&a, def_of("api_4xx"), 100, 300000, 2, 1000);
    assert_int_equal(a.state, PD_ALARM_INSUFFICIENT_DATA);
    assert_int_equal(a.since, 1000);
    /* one breaching period of two: still not enough periods */
    assert_false(pd_alarm_step(&a, true, 150, NULL, 1300, &prev));
    assert_int_equal(a.state, PD_ALARM_INSUFFICIENT_DATA);
    /* the second breaching period: ALARM */
    assert_true(pd_alarm_step(&a, true, 101, NULL, 1600, &prev));
    assert_int_equal(prev, PD_ALARM_INSUFFICIENT_DATA);
    assert_int_equal(a.state, PD_ALARM_ALARM);
    assert_int_equal(a.since, 1600);
    assert_non_null(strstr(a.reason, "2 out of the last 2"));
    /* still breaching: no change, since stays */
    assert_false(pd_alarm_step(&a, true, 500, NULL, 1900, &prev));
    assert_int_equal(a.since, 1600);
    /* one good period: OK */
    assert_true(pd_alarm_step(&a, true, 100, NULL, 2200, &prev)); /* 100 is not > 100 */
    assert_int_equal(prev, PD_ALARM_ALARM);
    assert_int_equal(a.state, PD_ALARM_OK);
    /* one breaching period after OK is not enough */
    assert_false(pd_alarm_step(&a, true, 1000, NULL, 2500, &prev));
    assert_int_equal(a.state, PD_ALARM_OK);
    assert_true(pd_alarm_step(&a, true, 1000, NULL, 2800, &prev));
    assert_int_equal(a.state, PD_ALARM_ALARM);
}

static void
good_periods_give_ok(void **state)
{
    (void)state;
    pd_alarm_t a;
    pd_alarm_init(&a, def_of("cpu"), 80, 1000, 2, 0);
    assert_false(pd_alarm_step(&a, true, 10, NULL, 1, NULL));
    assert_true(pd_alarm_step(&a, true, 10, NULL, 2, NULL));
    assert_int_equal(a.state, PD_ALARM_OK);
}

static void
missing_data_is_not_breaching(void **state)
{
    (void)state;
    pd_alarm_t a;
    pd_alarm_state_t prev;
    pd_alarm_init(&a, def_of("db"), 80, 1000, 2, 0);
    /* no datapoint at all: after N periods the alarm is OK, not ALARM */
    assert_false(pd_alarm_step(&a, false, 0, NULL, 1, &prev));
    assert_true(pd_alarm_step(&a, false, 0, NULL, 2, &prev));
    assert_int_equal(a.state, PD_ALARM_OK);
    assert_false(a.have_value);
    assert_non_null(strstr(a.reason, "treated as not breaching"));
    /* breaching, then a missing period: the gap breaks the run */
    assert_false(pd_alarm_step(&a, true, 900, NULL, 3, &prev));
    assert_false(pd_alarm_step(&a, false, 0, NULL, 4, &prev));
    assert_int_equal(a.state, PD_ALARM_OK);
    assert_false(pd_alarm_step(&a, true, 900, NULL, 5, &prev));
    assert_true(pd_alarm_step(&a, true, INFINITY, "store not writable: down", 6, &prev));
    assert_int_equal(a.state, PD_ALARM_ALARM);
    assert_non_null(strstr(a.reason, "store not writable"));
    /* ALARM, then missing data: back to OK */
    assert_true(pd_alarm_step(&a, false, 0, NULL, 7, &prev));
    assert_int_equal(a.state, PD_ALARM_OK);
}

static void
greater_or_equal_and_one_period(void **state)
{
    (void)state;
    pd_alarm_t a;
    pd_alarm_init(&a, def_of("unhealthy"), 1, 60000, 1, 0);
    assert_true(pd_alarm_step(&a, true, 0, NULL, 1, NULL)); /* INSUFFICIENT_DATA -> OK */
    assert_int_equal(a.state, PD_ALARM_OK);
    assert_true(pd_alarm_step(&a, true, 1, "not ready: draining", 2, NULL)); /* 1 >= 1 */
    assert_int_equal(a.state, PD_ALARM_ALARM);
    assert_true(pd_alarm_step(&a, true, 0, NULL, 3, NULL));
    assert_int_equal(a.state, PD_ALARM_OK);
}

static void
table_has_the_seeds(void **state)
{
    (void)state;
    const char *names[] = {"cpu", "memory", "db", "unhealthy", "api_4xx", "api_5xx"};
    const char *th[] = {"80", "85", "80", "1", "100", "10"};
    const char *period[] = {"5m", "5m", "5m", "1m", "5m", "5m"};
    for (size_t i = 0; i < 6; i++) {
        const pd_alarm_def_t *d = def_of(names[i]);
        assert_string_equal(d->threshold, th[i]);
        assert_string_equal(d->period, period[i]);
        assert_string_equal(d->evaluation_periods, "2");
    }
}

/* loads text as an INI file into a fresh config with [alarms]; returns the load result and the check's */
static int
load(const char *ini, pd_alarms_config_t *c, char *err, size_t cap, int *check)
{
    char path[] = "/tmp/test_alarms_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(ini, f);
    fclose(f);
    pd_config_t *cfg;
    assert_int_equal(pd_config_new(&cfg), 0);
    assert_int_equal(pd_alarms_config_register(cfg, c), 0);
    int r = pd_config_load_file(cfg, path);
    unlink(path);
    err[0] = '\0';
    if (r != 0)
        snprintf(err, cap, "%s", pd_config_error(cfg));
    else
        *check = pd_alarms_config_check(c, err, cap);
    pd_config_free(cfg);
    return r;
}

static void
config_defaults_and_errors(void **state)
{
    (void)state;
    pd_alarms_config_t c;
    char err[1024];
    int check = -1;
    pd_config_t *cfg;
    assert_int_equal(pd_config_new(&cfg), 0);
    assert_int_equal(pd_alarms_config_register(cfg, &c), 0);
    assert_string_equal(c.alarm[PD_ALARM_API_4XX].threshold, "100");
    assert_int_equal(c.alarm[PD_ALARM_API_4XX].period_ms, 300000);
    assert_int_equal(c.alarm[PD_ALARM_UNHEALTHY].period_ms, 60000);
    assert_int_equal(c.alarm[PD_ALARM_CPU].evaluation_periods, 2);
    assert_true(c.alarm[PD_ALARM_MEMORY].enabled);
    assert_string_equal(c.notify_secret, "payd/alarms");
    assert_int_equal(pd_alarms_config_check(&c, err, sizeof(err)), 0);
    pd_config_free(cfg);

    assert_int_equal(load("[alarms]\napi_4xx_threshold = 5\napi_4xx_period = 2s\napi_4xx_evaluation_periods = 1\n"
                          "db_threshold = 12.5\nnotify_url = http://127.0.0.1:9/a, https://example.com/b\n",
                          &c, err, sizeof(err), &check),
                     0);
    assert_int_equal(check, 0);

    /* an unknown alarm name */
    assert_int_not_equal(load("[alarms]\nfoo_threshold = 5\n", &c, err, sizeof(err), &check), 0);
    assert_non_null(strstr(err, "foo_threshold"));
    /* a negative threshold, a word */
    assert_int_equal(load("[alarms]\ncpu_threshold = -1\n", &c, err, sizeof(err), &check), 0);
    assert_int_equal(check, PD_ERR_CONFIG);
    assert_non_null(strstr(err, "cpu_threshold"));
    assert_non_null(strstr(err, "negative"));
    assert_int_equal(load("[alarms]\nmemory_threshold = lots\n", &c, err, sizeof(err), &check), 0);
    assert_int_equal(check, PD_ERR_CONFIG);
    assert_non_null(strstr(err, "memory_threshold"));
    /* notify URLs: ftp, empty item, no host */
    const char *bad[] = {"ftp://x", "http://ok/a,,http://ok/b", "http://", "https:///p", "x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char ini[200];
        snprintf(ini, sizeof(ini), "[alarms]\nnotify_url = %s\n", bad[i]);
        assert_int_equal(load(ini, &c, err, sizeof(err), &check), 0);
        assert_int_equal(check, PD_ERR_CONFIG);
        assert_non_null(strstr(err, "notify_url"));
    }
    /* credentials in a bad URL stay out of the message */
    assert_int_equal(load("[alarms]\nnotify_url = ftp://ops:hunter2@x/y\n", &c, err, sizeof(err), &check), 0);
    assert_int_equal(check, PD_ERR_CONFIG);
    assert_null(strstr(err, "hunter2"));
    assert_non_null(strstr(err, "ftp://***@x/y"));
    assert_int_equal(load("[alarms]\nnotify_command = notify.sh\n", &c, err, sizeof(err), &check), 0);
    assert_int_equal(check, PD_ERR_CONFIG);
    assert_non_null(strstr(err, "notify_command"));
    /* out-of-range period and evaluation periods are the loader's */
    assert_int_not_equal(load("[alarms]\ncpu_period = 10ms\n", &c, err, sizeof(err), &check), 0);
    assert_non_null(strstr(err, "cpu_period"));
    assert_int_not_equal(load("[alarms]\ncpu_evaluation_periods = 0\n", &c, err, sizeof(err), &check), 0);
    assert_non_null(strstr(err, "cpu_evaluation_periods"));
}

static void
threshold_parser(void **state)
{
    (void)state;
    double v;
    assert_int_equal(pd_alarms_parse_threshold("0", &v), 0);
    assert_int_equal(pd_alarms_parse_threshold("12.5", &v), 0);
    assert_true(v == 12.5);
    assert_int_equal(pd_alarms_parse_threshold("-0.1", &v), PD_ERR_RANGE);
    const char *bad[] = {"", " 1", "1 ", "1e3", "inf", "nan", "0x10", "1%", "--1", "1.2.3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_not_equal(pd_alarms_parse_threshold(bad[i], &v), 0);
}

static void
payload_is_alertmanager_v4(void **state)
{
    (void)state;
    pd_alarm_t a;
    pd_alarm_init(&a, def_of("api_5xx"), 10, 300000, 1, 0);
    assert_true(pd_alarm_step(&a, true, 42, NULL, 1767225600, NULL)); /* 2026-01-01T00:00:00Z */
    pd_alarm_event_t e = {&a, "node-1", "http://127.0.0.1:9090", 1767225600, 0};
    pd_buf_t b;
    pd_buf_init(&b, 65536);
    assert_int_equal(pd_alarm_payload(&e, &b), 0);
    json_error_t je;
    json_t *j = json_loadb((const char *)b.p, b.len, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "version")), "4");
    assert_string_equal(json_string_value(json_object_get(j, "status")), "firing");
    assert_string_equal(json_string_value(json_object_get(j, "receiver")), "payd");
    assert_string_equal(json_string_value(json_object_get(j, "groupKey")), "{}:{alertname=\"api_5xx\"}");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "groupLabels"), "alertname")), "api_5xx");
    assert_string_equal(json_string_value(json_object_get(j, "externalURL")), "http://127.0.0.1:9090");
    json_t *al = json_array_get(json_object_get(j, "alerts"), 0);
    assert_non_null(al);
    json_t *labels = json_object_get(al, "labels");
    assert_string_equal(json_string_value(json_object_get(labels, "alertname")), "api_5xx");
    assert_string_equal(json_string_value(json_object_get(labels, "severity")), "critical");
    assert_string_equal(json_string_value(json_object_get(labels, "instance")), "node-1");
    assert_non_null(json_string_value(json_object_get(json_object_get(al, "annotations"), "summary")));
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(al, "annotations"), "description")), "42"));
    assert_string_equal(json_string_value(json_object_get(al, "startsAt")), "2026-01-01T00:00:00.000Z");
    assert_string_equal(json_string_value(json_object_get(al, "endsAt")), "0001-01-01T00:00:00Z");
    assert_string_equal(json_string_value(json_object_get(al, "generatorURL")), "http://127.0.0.1:9090/alarms");
    assert_int_equal(strlen(json_string_value(json_object_get(al, "fingerprint"))), 16);
    json_decref(j);

    /* resolved */
    assert_true(pd_alarm_step(&a, true, 0, NULL, 1767225900, NULL));
    e.ends_at = 1767225900;
    pd_buf_reset(&b);
    assert_int_equal(pd_alarm_payload(&e, &b), 0);
    j = json_loadb((const char *)b.p, b.len, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "resolved");
    al = json_array_get(json_object_get(j, "alerts"), 0);
    assert_string_equal(json_string_value(json_object_get(al, "endsAt")), "2026-01-01T00:05:00.000Z");
    json_decref(j);
    pd_buf_free(&b);
}

static void
signature_is_hex_hmac_sha256(void **state)
{
    (void)state;
    /* RFC 4231 test case 2 */
    char hex[65];
    assert_int_equal(pd_alarm_sign((const uint8_t *)"Jefe", 4, pd_view_cstr("what do ya want for nothing?"), hex), 0);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(insufficient_data_then_alarm_after_n_breaching_periods),
        cmocka_unit_test(good_periods_give_ok),
        cmocka_unit_test(missing_data_is_not_breaching),
        cmocka_unit_test(greater_or_equal_and_one_period),
        cmocka_unit_test(table_has_the_seeds),
        cmocka_unit_test(config_defaults_and_errors),
        cmocka_unit_test(threshold_parser),
        cmocka_unit_test(payload_is_alertmanager_v4),
        cmocka_unit_test(signature_is_hex_hmac_sha256),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
