/* Events: inserted in the same transaction as the change they describe (the outbox). */
#include <stdio.h>
#include <string.h>

#include "payd/payments.h"

static _Thread_local const char *tl_version;

void
pd_emit_set_version(const char *api_version)
{
    tl_version = api_version;
}

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
    pd_buf_init(&data, PD_OBJECT_MAX + 64);
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
    e.data = text;
    snprintf(e.request_id, sizeof(e.request_id), "%s", request_id ? request_id : "");
    e.idempotency_key = idem_key != NULL && idem_key[0] ? idem_key : NULL;
    snprintf(e.api_version, sizeof(e.api_version), "%s", tl_version != NULL ? tl_version : "");
    e.created = now;
    e.seq = pd_next_seq();
    r = pd_event_insert(tx, &e);
    pd_buf_free(&data);
    return r;
}
