/* The event object in Stripe's shape (payd/relay.h). */
#include "payd/relay.h"

static void
kopt(pd_jw_t *w, const char *k, const char *v)
{
    if (v != NULL && v[0] != '\0')
        pd_jw_kstr(w, k, v);
    else
        pd_jw_knull(w, k);
}

void
pd_event_json(pd_jw_t *w, const pd_event_rec_t *e)
{
    pd_jw_obj_begin(w);
    pd_jw_kstr(w, "id", e->id);
    pd_jw_kstr(w, "object", "event");
    pd_jw_kstr(w, "api_version", e->api_version[0] != '\0' ? e->api_version : PD_STRIPE_API_VERSION);
    pd_jw_kint(w, "created", e->created);
    pd_jw_key(w, "data");
    pd_jw_raw(w, pd_view_cstr(e->data));
    pd_jw_kbool(w, "livemode", e->livemode);
    pd_jw_kint(w, "pending_webhooks", e->pending_webhooks);
    pd_jw_key(w, "request");
    pd_jw_obj_begin(w);
    kopt(w, "id", e->request_id);
    kopt(w, "idempotency_key", e->idempotency_key);
    pd_jw_obj_end(w);
    pd_jw_kstr(w, "type", e->type);
    pd_jw_obj_end(w);
}
