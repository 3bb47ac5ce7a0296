/*
 * Reads of the API off the event loop (internal.h, pd_api_read): the read runs on a
 * store reader thread, its continuation on the request's loop. One mapping of a
 * failed read to a response (pd_resp_read_failed) serves every handler.
 */
#include <stddef.h>

#include "api/internal.h"
#include "api/pii.h"

typedef struct {
    pd_task_t task; /* first: the task is the job */
    pd_req_t *r;
    pd_api_read_fn read;
    pd_api_then_fn then;
    void *ctx;
    int rc;
} read_job_t;

static void
then_on_loop(pd_req_t *r, void *arg)
{
    read_job_t *j = arg;
    j->then(r, j->ctx, j->rc);
}

static void
on_loop(pd_task_t *t)
{
    read_job_t *j = (read_job_t *)t;
    pd_req_continue(j->r, then_on_loop, j);
}

/* on a reader thread: j and the request's arena are this job's alone until it posts */
static void
on_reader(pd_db_t *db, void *arg)
{
    read_job_t *j = arg;
    j->rc = db != NULL ? j->read(db, j->r, j->ctx) : PD_ERR_UNAVAILABLE;
    j->task.fn = on_loop;
    pd_loop_post(j->r->loop, &j->task);
}

void
pd_api_read(pd_req_t *r, pd_api_read_fn read, pd_api_then_fn then, void *ctx)
{
    pd_store_t *store = pd_api_of(r)->store;
    if (!pd_store_reads_offloaded(store)) {
        /* SQLite without reader threads: a local snapshot read, inline (store.h) */
        pd_db_t *db = pd_store_reader(store);
        then(r, ctx, db != NULL ? read(db, r, ctx) : PD_ERR_UNAVAILABLE);
        return;
    }
    read_job_t *j = pd_arena_calloc(&r->arena, sizeof(*j));
    if (j == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    j->r = r;
    j->read = read;
    j->then = then;
    j->ctx = ctx;
    pd_req_hold(r);
    int rc = pd_store_read(store, on_reader, j);
    if (rc != 0) {
        /* not queued: answer now (the response releases the hold) */
        pd_resp_read_failed(r, rc == PD_ERR_CLOSED ? PD_ERR_UNAVAILABLE : rc);
    }
}

void
pd_resp_read_failed_msg(pd_req_t *r, int rc, const char *msg)
{
    if (rc == PD_ERR_UNAVAILABLE || rc == PD_ERR_AGAIN || rc == PD_ERR_CLOSED) {
        /* no database answer now (a failover, or every reader busy): come back */
        pd_resp_header(r, "Retry-After", "1");
        pd_resp_error(r, 503, "api_error", "storage_unavailable",
                      msg != NULL ? msg : "The server cannot read its database right now. Retry the request later.",
                      NULL);
        return;
    }
    pd_resp_error(r, 500, "api_error", NULL, "An internal error occurred while reading.", NULL);
}

void
pd_resp_read_failed(pd_req_t *r, int rc)
{
    pd_resp_read_failed_msg(r, rc, NULL);
}

void
pd_resp_read_error(pd_req_t *r, int rc, const char *what, const char *param, const char *id)
{
    if (rc == PD_ERR_NOTFOUND)
        pd_resp_missing(r, what, param, id);
    else
        pd_resp_read_failed(r, rc);
}

typedef struct {
    char id[PD_ID_MAX];
    const char *what;
    pd_get_fn fn;
    pd_view_t json;
} get_t;

static int
get_read(pd_db_t *db, pd_req_t *r, void *ctx)
{
    get_t *g = ctx;
    int rc = g->fn(db, r, g->id, &g->json);
    if (rc == 0 && g->json.p != NULL && pd_expand_wanted(r))
        rc = pd_expand(db, r, &r->arena, &g->json);
    return rc;
}

static void
get_then(pd_req_t *r, void *ctx, int rc)
{
    get_t *g = ctx;
    if (rc == 0 && g->json.p == NULL)
        pd_resp_error(r, 500, "api_error", NULL, "The response is too large.", NULL);
    else if (rc == 0)
        pd_pii_respond(r, 200, g->json); /* expanded customers opened */
    else
        pd_resp_read_error(r, rc, g->what, "id", g->id);
}

void
pd_get_respond(pd_req_t *r, const char *what, pd_get_fn fn)
{
    get_t *g = pd_arena_calloc(&r->arena, sizeof(*g));
    if (g == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    g->what = what;
    g->fn = fn;
    if (pd_view_to_cstr(pd_req_param(r, "id"), g->id, sizeof(g->id)) != 0) {
        pd_resp_missing(r, what, "id", "");
        return;
    }
    pd_api_read(r, get_read, get_then, g);
}
