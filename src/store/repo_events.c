/* Events (the transactional outbox) and webhook endpoints. */
#include "store/repo.h"

/* pending_webhooks (Stripe's): the deliveries of the event not yet made and still being
 * tried (an indexed count per event: webhook_deliveries_event) */
#define EV_COLS                                                                                                        \
    "id, merchant_id, livemode, type, data, COALESCE(request_id, ''), idempotency_key, created, seq, "              \
    "COALESCE(api_version, ''), "                                                                                  \
    "(SELECT COUNT(*) FROM webhook_deliveries d WHERE d.event_id = events.id AND d.state = 'pending')"

static int
decode_event(const pd_row_t *r, pd_arena_t *a, void *rec)
{
    pd_event_rec_t *e = rec;
    COPY(r, 0, e->id);
    COPY(r, 1, e->merchant_id);
    e->livemode = pd_row_int(r, 2) != 0;
    COPY(r, 3, e->type);
    e->data = pd_repo_dup(a, r, 4);
    COPY(r, 5, e->request_id);
    e->idempotency_key = pd_repo_dup(a, r, 6);
    e->created = pd_row_int(r, 7);
    e->seq = pd_row_int(r, 8);
    COPY(r, 9, e->api_version);
    e->pending_webhooks = pd_row_int(r, 10);
    return e->data != NULL ? 0 : PD_ERR_NOMEM;
}

int
pd_event_insert(pd_db_t *tx, const pd_event_rec_t *e)
{
    int r = pd_db_exec_deferred(tx,
                       "INSERT INTO events (id, merchant_id, livemode, type, data, request_id, idempotency_key, created, "
                       "seq, api_version) VALUES (?,?,?,?,?,?,?,?,?,?)",
                       PD_SQL_ARGS(PD_SQL_S(e->id), PD_SQL_S(e->merchant_id), PD_SQL_I(e->livemode), PD_SQL_S(e->type),
                                   PD_SQL_S(e->data), pd_repo_opt(e->request_id), PD_SQL_S(e->idempotency_key),
                                   PD_SQL_I(e->created), PD_SQL_I(e->seq), pd_repo_opt(e->api_version)));
    if (r != 0)
        return r;
    /* the outbox row commits with the event: the relay publishes what is queued there */
    return pd_db_exec_deferred(tx, "INSERT INTO outbox (event_id, merchant_id, livemode, type) VALUES (?,?,?,?)",
                      PD_SQL_ARGS(PD_SQL_S(e->id), PD_SQL_S(e->merchant_id), PD_SQL_I(e->livemode), PD_SQL_S(e->type)));
}

int
pd_event_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id, pd_event_rec_t *out)
{
    return pd_get_one(db, "SELECT " EV_COLS " FROM events WHERE id = ? AND merchant_id = ? AND livemode = ?",
                      decode_event, a, out, merchant, livemode, id);
}

static const pd_list_def_t event_list = {
    "SELECT " EV_COLS " FROM events WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR type = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?",
    "SELECT " EV_COLS " FROM events WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR type = ?) "
    "AND created >= ? AND created <= ? AND (seq, id) > (?, ?) ORDER BY seq ASC, id ASC LIMIT ?",
    "SELECT seq FROM events WHERE id = ? AND merchant_id = ? AND livemode = ?",
    decode_event,
    sizeof(pd_event_rec_t),
};

int
pd_event_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
              void *arg, bool *has_more)
{
    return pd_list_run(db, a, &event_list, merchant, livemode, q, fn, arg, has_more);
}

#define WE_COLS "id, merchant_id, livemode, url, enabled_events, secret, status, description, metadata, created, seq"

static int
decode_we(const pd_row_t *r, pd_arena_t *a, void *rec)
{
    pd_we_rec_t *w = rec;
    COPY(r, 0, w->id);
    COPY(r, 1, w->merchant_id);
    w->livemode = pd_row_int(r, 2) != 0;
    w->url = pd_repo_dup(a, r, 3);
    w->enabled_events = pd_repo_dup(a, r, 4);
    w->secret = pd_repo_dup(a, r, 5);
    COPY(r, 6, w->status);
    w->description = pd_repo_dup(a, r, 7);
    w->metadata = pd_repo_dup(a, r, 8);
    w->created = pd_row_int(r, 9);
    w->seq = pd_row_int(r, 10);
    return w->url != NULL && w->enabled_events != NULL ? 0 : PD_ERR_NOMEM;
}

int
pd_we_insert(pd_db_t *tx, const pd_we_rec_t *w)
{
    return pd_db_exec(tx,
                      "INSERT INTO webhook_endpoints (id, merchant_id, livemode, url, enabled_events, secret, status, "
                      "description, metadata, created, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                      PD_SQL_ARGS(PD_SQL_S(w->id), PD_SQL_S(w->merchant_id), PD_SQL_I(w->livemode), PD_SQL_S(w->url),
                                  PD_SQL_S(w->enabled_events), PD_SQL_S(w->secret), PD_SQL_S(w->status),
                                  PD_SQL_S(w->description), PD_SQL_S(w->metadata ? w->metadata : "{}"),
                                  PD_SQL_I(w->created), PD_SQL_I(w->seq)),
                      NULL);
}

int
pd_we_get(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id, pd_we_rec_t *out)
{
    return pd_get_one(db,
                      "SELECT " WE_COLS " FROM webhook_endpoints WHERE id = ? AND merchant_id = ? AND livemode = ? "
                      "AND deleted = 0",
                      decode_we, a, out, merchant, livemode, id);
}

int
pd_we_get_any(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const char *id, pd_we_rec_t *out)
{
    return pd_get_one(db,
                      "SELECT " WE_COLS " FROM webhook_endpoints WHERE id = ? AND merchant_id = ? AND livemode = ?",
                      decode_we, a, out, merchant, livemode, id);
}

int
pd_we_update(pd_db_t *tx, const pd_we_rec_t *w)
{
    int64_t n = 0;
    int r = pd_db_exec(tx,
                       "UPDATE webhook_endpoints SET url = ?, enabled_events = ?, status = ?, description = ?, "
                       "metadata = ? WHERE id = ? AND merchant_id = ? AND livemode = ? AND deleted = 0",
                       PD_SQL_ARGS(PD_SQL_S(w->url), PD_SQL_S(w->enabled_events), PD_SQL_S(w->status),
                                   PD_SQL_S(w->description), PD_SQL_S(w->metadata ? w->metadata : "{}"),
                                   PD_SQL_S(w->id), PD_SQL_S(w->merchant_id), PD_SQL_I(w->livemode)),
                       &n);
    return r != 0 ? r : n == 1 ? 0 : PD_ERR_NOTFOUND;
}

int
pd_we_delete(pd_db_t *tx, const char *merchant, bool livemode, const char *id, int64_t now)
{
    int64_t n = 0;
    int r = pd_db_exec(tx,
                       "UPDATE webhook_endpoints SET deleted = 1, status = 'disabled' WHERE id = ? AND merchant_id = ? "
                       "AND livemode = ? AND deleted = 0",
                       PD_SQL_ARGS(PD_SQL_S(id), PD_SQL_S(merchant), PD_SQL_I(livemode)), &n);
    if (r != 0 || n != 1)
        return r != 0 ? r : PD_ERR_NOTFOUND;
    /* one statement per lane, so that each reads its lane's partial index */
    r = pd_db_exec(tx,
                   "UPDATE webhook_deliveries SET state = 'canceled', last_error = 'endpoint deleted', updated = ? "
                   "WHERE endpoint_id = ? AND state = 'pending' AND attempts = 0",
                   PD_SQL_ARGS(PD_SQL_I(now), PD_SQL_S(id)), NULL);
    if (r == 0)
        r = pd_db_exec(tx,
                       "UPDATE webhook_deliveries SET state = 'canceled', last_error = 'endpoint deleted', updated = ? "
                       "WHERE endpoint_id = ? AND state = 'pending' AND attempts > 0",
                       PD_SQL_ARGS(PD_SQL_I(now), PD_SQL_S(id)), NULL);
    return r;
}

static const pd_list_def_t we_list = {
    "SELECT " WE_COLS " FROM webhook_endpoints WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR ? = '') "
    "AND deleted = 0 AND created >= ? AND created <= ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ?",
    "SELECT " WE_COLS " FROM webhook_endpoints WHERE merchant_id = ? AND livemode = ? AND (? IS NULL OR ? = '') "
    "AND deleted = 0 AND created >= ? AND created <= ? AND (seq, id) > (?, ?) ORDER BY seq ASC, id ASC LIMIT ?",
    "SELECT seq FROM webhook_endpoints WHERE id = ? AND merchant_id = ? AND livemode = ?",
    decode_we,
    sizeof(pd_we_rec_t),
};

int
pd_we_list(pd_db_t *db, pd_arena_t *a, const char *merchant, bool livemode, const pd_list_q_t *q, pd_rec_fn fn,
           void *arg, bool *has_more)
{
    return pd_list_run(db, a, &we_list, merchant, livemode, q, fn, arg, has_more);
}
