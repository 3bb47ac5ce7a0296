/*
 * Many clients on several event loops whose requests wait on other threads (the
 * vault, the store writer): payd answers all of them and exits cleanly. Under the
 * sanitizers this catches h2o objects shared between loop threads (a socket made
 * on one thread and read on another once corrupted buffers this way).
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api_helpers.h"

enum { CLIENTS = 16, PER_CLIENT = 150 };

static pd_h_payd_t payd;

typedef struct {
    int ok;
} client_t;

static void *
client_main(void *arg)
{
    client_t *cl = arg;
    pd_h_client_t *c = pd_h_client_new(&payd);
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_sk);
    const char *hdrs[] = {auth, "Content-Type: application/x-www-form-urlencoded", NULL};
    for (int i = 0; i < PER_CLIENT; i++) {
        pd_h_req_t rq = {.headers = hdrs,
                         .body = i % 3 == 0 ? "amount=500&currency=usd&payment_method=pm_card_visa&confirm=true"
                                            : "type=card&card[number]=4242424242424242&card[exp_month]=12"
                                              "&card[exp_year]=2034&card[cvc]=123"};
        pd_h_resp_t r;
        if (pd_h_do(c, "POST", i % 3 == 0 ? "/v1/payment_intents" : "/v1/payment_methods", &rq, &r) == 0 &&
            r.status == 200)
            cl->ok++;
        pd_h_resp_free(&r);
    }
    pd_h_client_free(c);
    return NULL;
}

static void
async_requests_on_two_loops(void **state)
{
    (void)state;
    const char *args[] = {"--set", "api.threads=2", "--set", "waf.ip_rate_limit=1000000", NULL};
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&payd, &o), 0);
    api_load_credentials(&payd);
    pthread_t th[CLIENTS];
    client_t cl[CLIENTS] = {0};
    for (int i = 0; i < CLIENTS; i++)
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    int ok = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        ok += cl[i].ok;
    }
    assert_int_equal(ok, CLIENTS * PER_CLIENT);
    assert_int_equal(pd_h_stop(&payd, SIGTERM, 20000), 0);
    pd_h_cleanup(&payd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(async_requests_on_two_loops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
