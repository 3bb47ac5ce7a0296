/*
 * Test-only admin routes, registered only when [admin] test_endpoints = true:
 * GET /debug/sleep?ms=N answers after N ms (at most 30 s), holding a request in
 * flight so tests can observe draining; GET /debug/stall?ms=N blocks the event loop
 * that serves it for N ms (at most 30 s), so tests can watch the systemd watchdog
 * stop pinging for a loop that does not turn.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "payd/edge.h"
#include "payd/schema.h"

typedef struct {
    pd_task_t task;
    pd_req_t *r;
    long ms;
} sleeper_t;

static void
wake(pd_task_t *t)
{
    sleeper_t *s = (sleeper_t *)t;
    pd_resp_json(s->r, 200, PD_VIEW_LIT("{\"slept\":true}"));
    free(s);
}

static void *
sleeper_main(void *arg)
{
    sleeper_t *s = arg;
    struct timespec ts = {s->ms / 1000, (s->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    pd_loop_post(s->r->loop, &s->task);
    return NULL;
}

static void
debug_sleep(pd_req_t *r)
{
    int64_t ms = 0;
    /* the schema guarantees a present, in-range integer */
    if (pd_view_to_i64(pd_params_get(&r->params, "ms")->value, &ms) != 0) {
        pd_resp_invalid(r, "parameter_invalid_integer", "ms", "ms must be an integer");
        return;
    }
    sleeper_t *s = calloc(1, sizeof(*s));
    pthread_t tid;
    if (s == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "out of memory", NULL);
        return;
    }
    s->task.fn = wake;
    s->r = r;
    s->ms = (long)ms;
    pd_req_hold(r);
    if (pthread_create(&tid, NULL, sleeper_main, s) != 0) {
        free(s);
        pd_resp_error(r, 500, "api_error", NULL, "cannot start timer", NULL);
        return;
    }
    pthread_detach(tid);
}

static void
debug_stall(pd_req_t *r)
{
    int64_t ms = 0;
    if (pd_view_to_i64(pd_params_get(&r->params, "ms")->value, &ms) != 0) {
        pd_resp_invalid(r, "parameter_invalid_integer", "ms", "ms must be an integer");
        return;
    }
    /* on the loop thread, on purpose: nothing else of this loop runs meanwhile */
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    pd_resp_json(r, 200, PD_VIEW_LIT("{\"stalled\":true}"));
}

static const pd_field_t sleep_fields[] = {{"ms", PD_FT_INT, PD_FF_REQUIRED, 0, 30000}};
static const pd_schema_t sleep_schema = PD_SCHEMA(sleep_fields);

const pd_route_t pd_debug_routes[] = {
    {PD_M_GET, "/debug/sleep", debug_sleep, PD_L_ADMIN, PD_ROUTE_PUBLIC, &sleep_schema, NULL},
    {PD_M_GET, "/debug/stall", debug_stall, PD_L_ADMIN, PD_ROUTE_PUBLIC, &sleep_schema, NULL},
};
const size_t pd_debug_routes_n = sizeof(pd_debug_routes) / sizeof(pd_debug_routes[0]);
