/* GET /v1/charges/:id, GET /v1/charges; GET /v1/balance, GET /v1/balance_transactions. */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "payd/time.h"

typedef struct {
    pd_charge_rec_t ch;
    pd_pm_rec_t pm;
    bool have_pm;
} charge_view_t;

static void
render_charge_cb(pd_jw_t *w, const void *rec)
{
    const charge_view_t *v = rec;
    pd_render_charge(w, &v->ch, v->have_pm ? &v->pm : NULL);
}

static int
get_charge(pd_db_t *db, pd_req_t *r, const char *id, pd_view_t *json)
{
    const pd_auth_t *au = r->auth;
    charge_view_t v;
    int rc = pd_charge_get(db, &r->arena, au->merchant_id, au->livemode, id, &v.ch);
    if (rc != 0)
        return rc;
    rc = pd_pm_get(db, &r->arena, au->merchant_id, au->livemode, v.ch.payment_method, &v.pm);
    if (rc != 0 && rc != PD_ERR_NOTFOUND)
        return rc; /* a failed read is not a missing payment method */
    v.have_pm = rc == 0;
    *json = pd_render_to_arena(&r->arena, render_charge_cb, &v);
    return 0;
}

void
pd_h_charge_get(pd_req_t *r)
{
    pd_get_respond(r, "charge", get_charge);
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

typedef struct {
    pd_view_t json;
} balance_t;

/* on a reader thread: the balance rendered into r's arena */
static int
balance_read(pd_db_t *db, pd_req_t *r, void *ctx)
{
    balance_t *out = ctx;
    pd_balance_row_t rows[32];
    size_t n = 0;
    pd_buf_t b;
    pd_jw_t w;
    const pd_auth_t *au = r->auth;
    int rc = pd_balance(db, au->merchant_id, au->livemode, pd_unix_now(), rows, 32, &n);
    if (rc != 0)
        return rc;
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
    rc = pd_jw_finish(&w);
    if (rc == 0) {
        pd_view_t v = pd_buf_view(&b);
        char *p = pd_arena_alloc(&r->arena, v.len + 1);
        if (p == NULL)
            rc = PD_ERR_NOMEM;
        else {
            memcpy(p, v.p, v.len);
            out->json = pd_view(p, v.len);
        }
    }
    pd_buf_free(&b);
    return rc;
}

static void
balance_then(pd_req_t *r, void *ctx, int rc)
{
    balance_t *b = ctx;
    if (rc == 0)
        pd_resp_json(r, 200, b->json);
    else
        pd_resp_read_failed(r, rc);
}

void
pd_h_balance_get(pd_req_t *r)
{
    balance_t *b = pd_arena_calloc(&r->arena, sizeof(*b));
    if (b == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    pd_api_read(r, balance_read, balance_then, b);
}
