/* Stripe error bodies (payd/json.h): the one writer, for the edge's answers and the
 * bodies the API stores with idempotency keys. */
#include "payd/json.h"

int
pd_error_json(pd_buf_t *body, const char *type, const char *code, const char *param, const char *extra_members,
              const char *request_id, const char *message)
{
    pd_jw_t w;
    pd_buf_reset(body);
    pd_jw_init(&w, body);
    pd_jw_obj_begin(&w);
    pd_jw_key(&w, "error");
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "type", type);
    if (code != NULL)
        pd_jw_kstr(&w, "code", code);
    pd_jw_kstr(&w, "message", message);
    if (param != NULL)
        pd_jw_kstr(&w, "param", param);
    if (extra_members != NULL && extra_members[0] != '\0')
        pd_jw_raw(&w, pd_view_cstr(extra_members));
    if (request_id != NULL && request_id[0] != '\0')
        pd_jw_kstr(&w, "request_id", request_id);
    pd_jw_obj_end(&w);
    pd_jw_obj_end(&w);
    return pd_jw_finish(&w);
}
