/* Events: written in the same transaction as the change they describe (the outbox). */
#include <string.h>

#include "api/internal.h"

int
pd_emit(pd_db_t *tx, pd_op_t *op, const char *type, pd_view_t obj)
{
    return pd_emit_raw(tx, op->auth->merchant_id, op->auth->livemode, type, obj, op->r->id,
                       op->has_idem ? op->idem_key : NULL, op->now);
}

static void
render_event_cb(pd_jw_t *w, const void *rec)
{
    pd_event_json(w, rec);
}

static int
get_event(pd_db_t *db, pd_req_t *r, const char *id, pd_view_t *json)
{
    const pd_auth_t *au = r->auth;
    pd_event_rec_t e;
    int rc = pd_event_get(db, &r->arena, au->merchant_id, au->livemode, id, &e);
    if (rc == 0)
        *json = pd_render_to_arena(&r->arena, render_event_cb, &e);
    return rc;
}

void
pd_h_event_get(pd_req_t *r)
{
    pd_get_respond(r, "event", get_event);
}

static int
each_event(void *rec, void *arg)
{
    pd_event_json(arg, rec);
    return 0;
}

void
pd_h_event_list(pd_req_t *r)
{
    pd_list_respond(r, "/v1/events", "event", "type", pd_event_list, each_event);
}
