/*
 * The alarm evaluator in the real payd: api_4xx with a 2 s period and threshold 5
 * goes to ALARM when the test induces 404s (GET /alarms and payctl alarms list show
 * it), the notify_url receiver (a loopback listener in this test) gets one signed
 * firing notification, and once the 404s stop the alarm is OK again with one
 * resolved notification. The signing secret is read as docs/alarms.md tells an
 * operator to: payctl secrets get payd/alarms --reveal. Bad [alarms] settings stop
 * the start with a message naming the key.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"
#include "expect_exit.h"
#include "payd/alarms.h"

#define MAX_HOOKS 32

static pd_h_payd_t payd;
static int hook_fd = -1;
static uint16_t hook_port;
static pthread_t hook_thread;
static _Atomic bool hook_stop;
static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char sig[80];
    char *body;
} hooks[MAX_HOOKS];
static int nhooks;
static int nrefused; /* the receiver answers 503 to its first request: the notifier retries */
static char cmd_dir[] = "/tmp/payd-alarm-cmd-XXXXXX";

/* one request: headers to \r\n\r\n, then Content-Length bytes; answers 200 */
static void
serve_one(int c)
{
    char buf[65536];
    buf[0] = '\0';
    size_t len = 0;
    char *end = NULL;
    while (len < sizeof(buf) - 1 && (end = strstr(buf, "\r\n\r\n")) == NULL) {
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0)
            return;
        ssize_t n = read(c, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            return;
        len += (size_t)n;
        buf[len] = '\0';
    }
    if (end == NULL)
        return;
    size_t hlen = (size_t)(end - buf) + 4, clen = 0;
    char sig[80] = "";
    for (char *l = buf; l < end; l = strstr(l, "\r\n") + 2) {
        if (strncasecmp(l, "content-length:", 15) == 0)
            clen = strtoul(l + 15, NULL, 10);
        if (strncasecmp(l, "x-payd-signature:", 17) == 0)
            sscanf(l + 17, " %79[0-9a-fA-F]", sig);
    }
    if (clen > sizeof(buf) - 1 - hlen)
        return;
    while (len < hlen + clen) {
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0)
            return;
        ssize_t n = read(c, buf + len, hlen + clen - len);
        if (n <= 0)
            return;
        len += (size_t)n;
    }
    pthread_mutex_lock(&hook_mu);
    if (nrefused == 0) {
        nrefused++;
        pthread_mutex_unlock(&hook_mu);
        const char *busy = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        (void)!write(c, busy, strlen(busy));
        return;
    }
    if (nhooks < MAX_HOOKS) {
        snprintf(hooks[nhooks].sig, sizeof(hooks[nhooks].sig), "%s", sig);
        hooks[nhooks].body = strndup(buf + hlen, clen);
        nhooks++;
    }
    pthread_mutex_unlock(&hook_mu);
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    (void)!write(c, ok, strlen(ok));
}

static void *
hook_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&hook_stop)) {
        struct pollfd p = {hook_fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(hook_fd, NULL, NULL);
        if (c < 0)
            continue;
        serve_one(c);
        close(c);
    }
    return NULL;
}

static int
setup(void **state)
{
    (void)state;
    hook_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (hook_fd < 0 || bind(hook_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(hook_fd, 16) != 0 ||
        getsockname(hook_fd, (struct sockaddr *)&sa, &sl) != 0)
        return -1;
    hook_port = ntohs(sa.sin_port);
    if (pthread_create(&hook_thread, NULL, hook_main, NULL) != 0)
        return -1;
    /* notify_command: a program that appends each notification on its stdin to a file */
    static char cmd_arg[400];
    char script[300], text[600];
    if (mkdtemp(cmd_dir) == NULL || chmod(cmd_dir, 0777) != 0) /* run as root, payd drops to its user */
        return -1;
    snprintf(script, sizeof(script), "%s/notify.sh", cmd_dir);
    snprintf(text, sizeof(text), "#!/bin/sh\n{ cat; echo; } >> %s/got.jsonl\n", cmd_dir);
    if (pd_h_write_file(script, text) != 0 || chmod(script, 0755) != 0)
        return -1;
    snprintf(cmd_arg, sizeof(cmd_arg), "alarms.notify_command=%s", script);
    static char url[128];
    snprintf(url, sizeof(url), "alarms.notify_url=http://127.0.0.1:%u/hook", hook_port);
    const char *args[] = {"--set", "alarms.api_4xx_threshold=5", "--set", "alarms.api_4xx_period=2s", "--set",
                          "alarms.api_4xx_evaluation_periods=1", "--set", url, "--set", "alarms.instance=it-node", "--set", cmd_arg,
                          "--set", "waf.ip_rate_limit=1000000", NULL};
    pd_h_opts_t o = {.args = args};
    if (pd_h_start(&payd, &o) != 0)
        return -1;
    api_load_credentials(&payd);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    pd_h_stop(&payd, SIGTERM, 20000);
    pd_h_cleanup(&payd);
    atomic_store(&hook_stop, true);
    pthread_join(hook_thread, NULL);
    close(hook_fd);
    for (int i = 0; i < nhooks; i++)
        free(hooks[i].body);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", cmd_dir);
    (void)!system(cmd);
    return 0;
}

/* the state of alarm name in GET /alarms (checks the shape of every entry) */
static void
alarm_state(const char *name, char *state, size_t cap)
{
    pd_h_req_t rq = {.admin = true};
    pd_h_resp_t r;
    assert_int_equal(pd_h_request(&payd, "GET", "/alarms", &rq, &r), 0);
    assert_int_equal(r.status, 200);
    json_error_t e;
    json_t *arr = json_loads(r.body, 0, &e);
    pd_h_resp_free(&r);
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), PD_ALARM_N);
    state[0] = '\0';
    size_t i;
    json_t *a;
    json_array_foreach(arr, i, a) {
        assert_non_null(json_string_value(json_object_get(a, "name")));
        assert_non_null(json_string_value(json_object_get(a, "state")));
        assert_non_null(json_string_value(json_object_get(a, "reason")));
        assert_true(json_is_number(json_object_get(a, "threshold")));
        assert_non_null(json_object_get(a, "value"));
        const char *since = json_string_value(json_object_get(a, "since"));
        assert_non_null(since);
        assert_int_equal(strlen(since), 24); /* 2026-01-01T00:00:00.000Z */
        if (strcmp(json_string_value(json_object_get(a, "name")), name) == 0)
            snprintf(state, cap, "%s", json_string_value(json_object_get(a, "state")));
    }
    json_decref(arr);
}

static bool
wait_state(const char *name, const char *want, int timeout_ms)
{
    char st[32];
    for (int t = 0; t < timeout_ms; t += 100) {
        alarm_state(name, st, sizeof(st));
        if (strcmp(st, want) == 0)
            return true;
        usleep(100000);
    }
    print_error("alarm %s stayed %s (wanted %s)\n", name, st, want);
    return false;
}

/* the notifications whose status is status, for alertname api_4xx; checks each signature */
static int
count_hooks(const char *status, const char *key)
{
    /* copies under the lock, checks outside it: a failed check must not leave it held */
    char sigs[MAX_HOOKS][80], *bodies[MAX_HOOKS];
    pthread_mutex_lock(&hook_mu);
    int total = nhooks;
    for (int i = 0; i < total; i++) {
        memcpy(sigs[i], hooks[i].sig, sizeof(sigs[i]));
        bodies[i] = strdup(hooks[i].body);
    }
    pthread_mutex_unlock(&hook_mu);
    int n = 0;
    for (int i = 0; i < total; i++) {
        json_error_t e;
        json_t *j = json_loads(bodies[i], 0, &e);
        if (j == NULL)
            fail_msg("notification %d is not JSON: %s", i, bodies[i]);
        char want[65];
        assert_int_equal(pd_alarm_sign((const uint8_t *)key, strlen(key), pd_view_cstr(bodies[i]), want), 0);
        if (strcmp(sigs[i], want) != 0)
            fail_msg("notification %d: X-Payd-Signature %s, want %s", i, sigs[i], want);
        json_t *al = json_array_get(json_object_get(j, "alerts"), 0);
        const char *an = json_string_value(json_object_get(json_object_get(al, "labels"), "alertname"));
        if (an != NULL && strcmp(an, "api_4xx") == 0 &&
            strcmp(json_string_value(json_object_get(j, "status")), status) == 0) {
            assert_string_equal(json_string_value(json_object_get(j, "version")), "4");
            assert_string_equal(json_string_value(json_object_get(al, "status")), status);
            assert_string_equal(json_string_value(json_object_get(json_object_get(al, "labels"), "instance")), "it-node");
            n++;
        }
        json_decref(j);
        free(bodies[i]);
    }
    return n;
}

static bool
wait_hooks(const char *status, const char *key, int want, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 100) {
        if (count_hooks(status, key) >= want)
            return true;
        usleep(100000);
    }
    return false;
}

/* a line of GET /metrics, e.g. the exact series "payd_alarm_state{...} 1" */
static bool
metrics_have(const char *line)
{
    pd_h_req_t rq = {.admin = true};
    pd_h_resp_t r;
    assert_int_equal(pd_h_request(&payd, "GET", "/metrics", &rq, &r), 0);
    assert_int_equal(r.status, 200);
    bool found = strstr(r.body, line) != NULL;
    if (!found)
        print_error("not in /metrics: %s\n", line);
    pd_h_resp_free(&r);
    return found;
}

static void
api_4xx_fires_and_resolves_with_signed_notifications(void **state)
{
    (void)state;
    char *out = NULL;
    /* the operator's steps (docs/alarms.md): create the signing secret, read it */
    const char *create[] = {"secrets", "create", "payd/alarms", NULL};
    int rc = pd_h_payctl(&payd, create, &out);
    if (rc != 0)
        fail_msg("payctl secrets create payd/alarms: %d %s", rc, out);
    free(out);
    const char *get[] = {"secrets", "get", "payd/alarms", "--reveal", NULL};
    assert_int_equal(pd_h_payctl(&payd, get, &out), 0);
    char key[256];
    snprintf(key, sizeof(key), "%s", out);
    key[strcspn(key, "\r\n")] = '\0';
    free(out);
    assert_true(strlen(key) >= 16);

    /* 404s: many more than 5 in one 2 s period */
    for (int i = 0; i < 30; i++)
        assert_int_equal(api_call(&payd, "GET", "/v1/payment_intents/pi_doesnotexist", NULL, NULL), 404);
    assert_true(wait_state("api_4xx", "ALARM", 8000));
    assert_true(metrics_have("\npayd_alarm_state{alarm=\"api_4xx\",state=\"ALARM\"} 1\n"));

    char adm[64];
    snprintf(adm, sizeof(adm), "http://127.0.0.1:%u", payd.admin_port);
    const char *list[] = {"--admin", adm, "alarms", "list", NULL};
    assert_int_equal(pd_h_payctl(&payd, list, &out), 0);
    char *line = strstr(out, "api_4xx");
    if (line == NULL || strstr(line, "ALARM") == NULL || strstr(out, "INSUFFICIENT_DATA") == NULL)
        fail_msg("payctl alarms list:\n%s", out);
    free(out);

    assert_true(wait_hooks("firing", key, 1, 10000)); /* its first attempt got a 503: a retry */
    pthread_mutex_lock(&hook_mu);
    assert_int_equal(nrefused, 1);
    pthread_mutex_unlock(&hook_mu);
    char *warn = pd_h_log(&payd);
    if (strstr(warn, "\"alarm notification failed\"") == NULL)
        fail_msg("the refused attempt is not logged:\n%s", warn);
    free(warn);
    /* quiet: the next period has no 4xx */
    assert_true(wait_state("api_4xx", "OK", 8000));
    assert_true(wait_hooks("resolved", key, 1, 10000));
    sleep(3); /* nothing more arrives for api_4xx: one of each */
    assert_int_equal(count_hooks("firing", key), 1);
    assert_int_equal(count_hooks("resolved", key), 1);

    /* notify_command got the same two bodies on its standard input */
    char got[300];
    snprintf(got, sizeof(got), "%s/got.jsonl", cmd_dir);
    FILE *f = fopen(got, "r");
    assert_non_null(f);
    char row[8192];
    int firing = 0, resolved = 0;
    while (fgets(row, sizeof(row), f) != NULL) {
        json_error_t e;
        json_t *j = json_loads(row, 0, &e);
        if (j == NULL)
            continue; /* the blank line echo adds */
        const char *st = json_string_value(json_object_get(j, "status"));
        firing += st != NULL && strcmp(st, "firing") == 0 ? 1 : 0;
        resolved += st != NULL && strcmp(st, "resolved") == 0 ? 1 : 0;
        json_decref(j);
    }
    fclose(f);
    assert_int_equal(firing, 1);
    assert_int_equal(resolved, 1);
    assert_true(metrics_have("\npayd_alarm_state{alarm=\"api_4xx\",state=\"OK\"} 1\n"));
    assert_true(metrics_have("\npayd_alarm_notifications_total{result=\"delivered\"} 2\n"));
    assert_true(metrics_have("\npayd_alarm_notifications_total{result=\"command_ok\"} 2\n"));

    /* the transitions are in payd's audit log */
    char *log = pd_h_log(&payd);
    assert_non_null(strstr(log, "\"alarm state changed\",\"alarm\":\"api_4xx\""));
    free(log);
    /* ... and in payd's audit log: to ALARM and back to OK */
    assert_int_equal(api_sql_long(&payd, "payd.db",
                                  "SELECT count(*) FROM audit_log WHERE action = 'alarm.state_change' AND "
                                  "resource = 'api_4xx' AND outcome IN ('success:ALARM', 'success:OK')"),
                     2);
}

static void
bad_alarm_settings_stop_the_start(void **state)
{
    (void)state;
    char dir[] = "/tmp/payd-alarms-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char datadir[300];
    snprintf(datadir, sizeof(datadir), "--data-dir=%s", dir);
    const char *unknown[] = {"--dev", datadir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--set",
                             "alarms.foo_threshold=5", NULL};
    expect_exit(unknown, 2, "foo_threshold");
    const char *neg[] = {"--dev", datadir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--set",
                         "alarms.api_5xx_threshold=-3", NULL};
    expect_exit(neg, 2, "[alarms] api_5xx_threshold = \"-3\": negative thresholds are refused");
    const char *ftp[] = {"--dev", datadir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--set",
                         "alarms.notify_url=ftp://x", NULL};
    expect_exit(ftp, 2, "[alarms] notify_url: \"ftp://x\" is not an http:// or https:// URL");
    const char *check[] = {"--dev", datadir, "--set", "alarms.notify_url=http://ok/a,ftp://x", "--check-config", NULL};
    expect_exit(check, 2, "\"ftp://x\"");
    const char *missing[] = {"--dev", datadir, "--set", "alarms.notify_command=/nonexistent/pager", "--check-config",
                             NULL};
    expect_exit(missing, 2, "[alarms] notify_command = \"/nonexistent/pager\": No such file or directory");
    const char *fine[] = {"--dev", datadir, "--set", "alarms.api_4xx_period=2s", "--check-config", NULL};
    expect_exit(fine, 0, "configuration ok");
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    (void)!system(cmd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(api_4xx_fires_and_resolves_with_signed_notifications),
        cmocka_unit_test(bad_alarm_settings_stop_the_start),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
