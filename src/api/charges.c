/* GET /v1/charges/:id, GET /v1/charges; GET /v1/balance, GET /v1/balance_transactions. */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "payd/time.h"

void
pd_h_charge_get(pd_req_t *r)
{
    pd_charge_rec_t ch;
    pd_pm_rec_t pm;
    pd_buf_t b;
    pd_jw_t w;
    char id[PD_ID_MAX] = "";
    const pd_auth_t *au = r->auth;
    pd_db_t *db = pd_reader(r);
    if (pd_view_to_cstr(pd_req_param(r, "id"), id, sizeof(id)) != 0 ||
        pd_charge_get(db, &r->arena, au->merchant_id, au->livemode, id, &ch) != 0) {
        pd_resp_missing(r, "charge", "id", id);
        return;
    }
    bool have_pm = pd_pm_get(db, &r->arena, au->merchant_id, au->livemode, ch.payment_method, &pm) == 0;
    pd_buf_init(&b, RESP_MAX);
    pd_jw_init(&w, &b);
    pd_render_charge(&w, &ch, have_pm ? &pm : NULL);
    pd_resp_jw(r, 200, &w);
    pd_buf_free(&b);
}

static int
each_charge(void *rec, void *arg)
{
    pd_render_charge(arg, rec, NULL);
    return 0;
}

static int
each_btxn(void *rec, void *arg)
{
    pd_render_btxn(arg, rec);
    return 0;
}

void
pd_h_charge_list(pd_req_t *r)
{
    pd_list_respond(r, "/v1/charges", "charge", "payment_intent", pd_charge_list, each_charge);
}

void
pd_h_btxn_list(pd_req_t *r)
{
    pd_list_respond(r, "/v1/balance_transactions", "balance_transaction", "type", pd_btxn_list, each_btxn);
}

void
pd_h_balance_get(pd_req_t *r)
{
    pd_balance_row_t rows[32];
    size_t n = 0;
    pd_buf_t b;
    pd_jw_t w;
    const pd_auth_t *au = r->auth;
    if (pd_balance(pd_reader(r), au->merchant_id, au->livemode, pd_unix_now(), rows, 32, &n) != 0) {
        pd_resp_error(r, 500, "api_error", NULL, "Cannot compute the balance.", NULL);
        return;
    }
    pd_buf_init(&b, 64 * 1024);
    pd_jw_init(&w, &b);
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "object", "balance");
    for (int pass = 0; pass < 2; pass++) {
        pd_jw_key(&w, pass == 0 ? "available" : "pending");
        pd_jw_arr_begin(&w);
        for (size_t i = 0; i < n; i++) {
            pd_jw_obj_begin(&w);
            pd_jw_kint(&w, "amount", pass == 0 ? rows[i].available : rows[i].pending);
            pd_jw_kstr(&w, "currency", rows[i].currency);
            pd_jw_key(&w, "source_types");
            pd_jw_obj_begin(&w);
            pd_jw_kint(&w, "card", pass == 0 ? rows[i].available : rows[i].pending);
            pd_jw_obj_end(&w);
            pd_jw_obj_end(&w);
        }
        pd_jw_arr_end(&w);
    }
    pd_jw_kbool(&w, "livemode", au->livemode);
    pd_jw_obj_end(&w);
    pd_resp_jw(r, 200, &w);
    pd_buf_free(&b);
}
