/* Events: written in the same transaction as the change they describe (the outbox). */
#include <string.h>

#include "api/internal.h"

int
pd_emit_raw(pd_db_t *tx, const char *merchant, bool livemode, const char *type, pd_view_t obj, const char *request_id,
            const char *idem_key, int64_t now)
{
    pd_event_rec_t e;
    pd_buf_t data;
    memset(&e, 0, sizeof(e));
    int r = pd_id_new("evt", e.id, sizeof(e.id));
    if (r != 0)
        return r;
    pd_buf_init(&data, RESP_MAX + 64);
    if ((r = pd_buf_put_cstr(&data, "{\"object\":")) != 0 || (r = pd_buf_put(&data, obj.p, obj.len)) != 0 ||
        (r = pd_buf_put_byte(&data, '}')) != 0) {
        pd_buf_free(&data);
        return r;
    }
    const char *text;
    if ((r = pd_buf_cstr(&data, &text)) != 0) {
        pd_buf_free(&data);
        return r;
    }
    snprintf(e.merchant_id, sizeof(e.merchant_id), "%s", merchant);
    e.livemode = livemode;
    snprintf(e.type, sizeof(e.type), "%s", type);
    e.data = (char *)text;
    snprintf(e.request_id, sizeof(e.request_id), "%s", request_id ? request_id : "");
    e.idempotency_key = (char *)(idem_key != NULL && idem_key[0] ? idem_key : NULL);
    e.created = now;
    e.seq = pd_next_seq();
    r = pd_event_insert(tx, &e);
    pd_buf_free(&data);
    return r;
}

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

void
pd_h_event_get(pd_req_t *r)
{
    pd_event_rec_t e;
    const pd_auth_t *au = r->auth;
    pd_view_t id = pd_req_param(r, "id");
    char idc[PD_ID_MAX];
    if (pd_view_to_cstr(id, idc, sizeof(idc)) != 0 ||
        pd_event_get(pd_reader(r), &r->arena, au->merchant_id, au->livemode, idc, &e) != 0) {
        pd_resp_missing(r, "event", "id", idc);
        return;
    }
    pd_resp_json(r, 200, pd_render_to_arena(&r->arena, render_event_cb, &e));
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
