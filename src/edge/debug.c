/*
 * Test-only admin route: GET /debug/sleep?ms=N answers after N ms (at most 30 s),
 * holding a request in flight so tests can observe draining. Registered only when
 * [admin] test_endpoints = true.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "payd/edge.h"

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
    pd_view_t q = r->query;
    if (!pd_view_starts_with(q, "ms=") || pd_view_to_i64(pd_view(q.p + 3, q.len - 3), &ms) != 0 || ms < 0 ||
        ms > 30000) {
        pd_resp_invalid(r, "parameter_invalid_integer", "ms", "ms must be an integer from 0 to 30000");
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

const pd_route_t pd_debug_routes[] = {
    {PD_M_GET, "/debug/sleep", debug_sleep, PD_L_ADMIN, PD_ROUTE_PUBLIC, NULL, NULL},
};
const size_t pd_debug_routes_n = sizeof(pd_debug_routes) / sizeof(pd_debug_routes[0]);
