/*
 * The child vault dies (kill -9): payd reports not ready, restarts it, hands the new
 * connections to its clients, and cards are tokenized and charged again; what the
 * vault stored before the crash (cards, keys) is still there.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"

/* the pid of the n-th (1-based) "vault started as a child" line in payd's output, or 0 */
static pid_t
child_pid(const pd_h_payd_t *p, int nth)
{
    char *log = pd_h_log(p);
    const char *at = log;
    pid_t pid = 0;
    for (int i = 0; i < nth && at != NULL; i++) {
        at = strstr(at, "\"msg\":\"vault started as a child\"");
        if (at != NULL) {
            const char *q = strstr(at, "\"pid\":");
            pid = q != NULL ? (pid_t)strtol(q + 6, NULL, 10) : 0;
            at++;
        } else {
            pid = 0;
        }
    }
    free(log);
    return pid;
}

static long
readyz(const pd_h_payd_t *p)
{
    pd_h_resp_t r;
    pd_h_req_t rq = {.admin = true, .timeout_ms = 1000};
    long s = pd_h_request(p, "GET", "/readyz", &rq, &r) == 0 ? r.status : -1;
    pd_h_resp_free(&r);
    return s;
}

static void
a_killed_child_vault_is_restarted(void **state)
{
    (void)state;
    pd_h_payd_t p;
    json_t *o;
    char before[64], after[64];
    assert_int_equal(pd_h_start(&p, NULL), 0);
    api_load_credentials(&p);
    assert_int_equal(api_card_pm(&p, "4242424242424242", before, sizeof(before)), 200);

    pid_t first = child_pid(&p, 1);
    assert_true(first > 0);
    assert_int_equal(kill(first, SIGKILL), 0);
    /* not ready while the vault is away, ready again once the new child answers */
    bool seen_down = false;
    long s = 0;
    for (int i = 0; i < 300; i++) {
        s = readyz(&p);
        seen_down |= s == 503;
        if (seen_down && s == 200)
            break;
        usleep(20000);
    }
    assert_true(seen_down);
    assert_int_equal(s, 200);
    pid_t second = child_pid(&p, 2);
    assert_true(second > 0 && second != first);

    /* new cards and the card stored before the crash both work */
    assert_int_equal(api_card_pm(&p, "5555555555554444", after, sizeof(after)), 200);
    assert_int_equal(api_charge(&p, after, 900, "usd", &o), 200);
    assert_string_equal(jstr(o, "status"), "succeeded");
    json_decref(o);
    assert_int_equal(api_charge(&p, before, 800, "usd", &o), 200);
    assert_string_equal(jstr(o, "status"), "succeeded");
    json_decref(o);
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "\"msg\":\"vault child exited; restarting it\""));
    assert_non_null(strstr(log, "\"signal\":9"));
    free(log);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 10000), 0);
    pd_h_cleanup(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_killed_child_vault_is_restarted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
