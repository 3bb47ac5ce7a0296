/* The outbox and the webhook delivery queue (payd/outbox.h). */
#include <stdio.h>

#include "payd/outbox.h"
#include "store/repo.h"

/* Rows by the batch: a full chunk is one statement (its text a literal of its own, as the
 * PostgreSQL backend caches statements by address; at most 64 parameters), the rest one
 * statement each. */
#define IDS8 "?,?,?,?,?,?,?,?"
#define IDS_CHUNK 32
#define IDS32 IDS8 "," IDS8 "," IDS8 "," IDS8
#define ROW4 "(?,?,?,?)"
#define ROWS4 ROW4 "," ROW4 "," ROW4 "," ROW4
#define ROWS_CHUNK 16
#define ROWS16 ROWS4 "," ROWS4 "," ROWS4 "," ROWS4

/* DELETE FROM table WHERE id IN (the seqs of ev): *gone the rows deleted */
static int
delete_ids(pd_db_t *tx, const char *one, const char *chunk, const pd_outbox_ev_t *ev, size_t nev, int64_t *gone)
{
    pd_sqlval_t ids[IDS_CHUNK];
    *gone = 0;
    for (size_t i = 0; i < nev;) {
        size_t k = nev - i >= IDS_CHUNK ? IDS_CHUNK : 1;
        for (size_t j = 0; j < k; j++)
            ids[j] = PD_SQL_I(ev[i + j].seq);
        int64_t n = 0;
        int r = pd_db_exec(tx, k == IDS_CHUNK ? chunk : one, ids, k, &n);
        if (r != 0)
            return r;
        *gone += n;
        i += k;
    }
    return 0;
}

typedef struct {
    pd_outbox_ev_t *out;
    size_t max, n;
} peek_t;

static int
outbox_row(const pd_row_t *r, void *arg)
{
    peek_t *p = arg;
    pd_outbox_ev_t *e = &p->out[p->n];
    e->seq = pd_row_int(r, 0);
    e->livemode = pd_row_int(r, 3) != 0;
    if (pd_row_copy(r, 1, e->event_id, sizeof(e->event_id)) != 0 || pd_row_copy(r, 2, e->merchant, sizeof(e->merchant)) != 0 ||
        pd_row_copy(r, 4, e->type, sizeof(e->type)) != 0)
        e->event_id[0] = '\0'; /* malformed: kept (its seq counts) with no event, so it cannot stall the relay */
    return ++p->n == p->max ? 1 : 0;
}

int
pd_outbox_peek(pd_db_t *db, pd_outbox_ev_t *out, size_t max, size_t *n)
{
    peek_t p = {out, max, 0};
    *n = 0;
    if (max == 0)
        return 0;
    int r = pd_db_query(db, "SELECT id, event_id, merchant_id, livemode, type FROM outbox ORDER BY id LIMIT ?",
                        PD_SQL_ARGS(PD_SQL_I((int64_t)max)), outbox_row, &p);
    *n = p.n;
    return r;
}

int
pd_stream_outbox_queue(pd_db_t *tx, const pd_outbox_ev_t *ev, size_t nev)
{
    static const char one[] = "INSERT INTO stream_outbox (event_id, merchant_id, livemode, type) VALUES " ROW4;
    static const char chunk[] = "INSERT INTO stream_outbox (event_id, merchant_id, livemode, type) VALUES " ROWS16;
    pd_sqlval_t v[4 * ROWS_CHUNK];
    size_t rows = 0;
    int r;
    for (size_t i = 0; i < nev; i++) {
        if (ev[i].event_id[0] == '\0')
            continue; /* malformed: nothing to publish */
        pd_sqlval_t *row = &v[4 * rows];
        row[0] = PD_SQL_S(ev[i].event_id);
        row[1] = PD_SQL_S(ev[i].merchant);
        row[2] = PD_SQL_I(ev[i].livemode);
        row[3] = PD_SQL_S(ev[i].type);
        if (++rows == ROWS_CHUNK) {
            if ((r = pd_db_exec_deferred(tx, chunk, v, 4 * ROWS_CHUNK)) != 0)
                return r;
            rows = 0;
        }
    }
    for (size_t j = 0; j < rows; j++)
        if ((r = pd_db_exec_deferred(tx, one, &v[4 * j], 4)) != 0)
            return r;
    return 0;
}

int
pd_stream_outbox_peek(pd_db_t *db, pd_outbox_ev_t *out, size_t max, size_t *n)
{
    peek_t p = {out, max, 0};
    *n = 0;
    if (max == 0)
        return 0;
    int r = pd_db_query(db, "SELECT id, event_id, merchant_id, livemode, type FROM stream_outbox ORDER BY id LIMIT ?",
                        PD_SQL_ARGS(PD_SQL_I((int64_t)max)), outbox_row, &p);
    *n = p.n;
    return r;
}

int
pd_stream_outbox_backlog(pd_db_t *db, int64_t *n)
{
    return pd_db_query_int(db, "SELECT COUNT(*) FROM stream_outbox", NULL, 0, n);
}

int
pd_stream_outbox_done(pd_db_t *tx, const pd_outbox_ev_t *ev, size_t nev)
{
    int64_t gone;
    return delete_ids(tx, "DELETE FROM stream_outbox WHERE id IN (?)", "DELETE FROM stream_outbox WHERE id IN (" IDS32 ")",
                      ev, nev, &gone);
}

typedef struct {
    pd_outbox_endpoint_fn fn;
    void *arg;
} endpoints_t;

static int
endpoint_row(const pd_row_t *r, void *arg)
{
    endpoints_t *x = arg;
    char id[PD_ID_MAX];
    COPY(r, 0, id);
    return x->fn(id, pd_row_text(r, 1), x->arg);
}

int
pd_outbox_endpoints(pd_db_t *db, const char *merchant, bool livemode, pd_outbox_endpoint_fn fn, void *arg)
{
    endpoints_t x = {fn, arg};
    return pd_db_query(db,
                       "SELECT id, enabled_events FROM webhook_endpoints WHERE merchant_id = ? AND livemode = ? "
                       "AND deleted = 0 AND status = 'enabled'",
                       PD_SQL_ARGS(PD_SQL_S(merchant), PD_SQL_I(livemode)), endpoint_row, &x);
}

int
pd_outbox_relay(pd_db_t *tx, const pd_delivery_new_t *d, size_t n, const pd_outbox_ev_t *ev, size_t nev, int64_t now)
{
    int r;
    /* exactly the rows the peek read, each still there: with several writers (or nodes)
     * ids do not commit in order, so "id <= last" could take a row the peek never saw;
     * and a row another relay took first fails this write whole (its deliveries too) */
    int64_t gone = 0;
    if ((r = delete_ids(tx, "DELETE FROM outbox WHERE id IN (?)", "DELETE FROM outbox WHERE id IN (" IDS32 ")", ev, nev,
                        &gone)) != 0)
        return r;
    if (gone != (int64_t)nev)
        return PD_ERR_CONFLICT;
    for (size_t i = 0; i < n; i++) {
        if ((r = pd_db_exec(tx,
                            "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, merchant_id, state, attempts, "
                            "first_at, next_at, updated) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                            PD_SQL_ARGS(PD_SQL_S(d[i].id), PD_SQL_S(d[i].event_id), PD_SQL_S(d[i].endpoint_id),
                                        PD_SQL_S(d[i].merchant), PD_SQL_I(now), PD_SQL_I(now), PD_SQL_I(now)),
                            NULL)) != 0)
            return r;
    }
    return 0;
}

/* The endpoints with pending deliveries after a cursor id, in id order, up to a limit:
 * each lane's partial index is walked one endpoint at a time (the next endpoint id is
 * one seek; n counts the steps), then the due deliveries of each are counted per lane,
 * up to the per-endpoint cap. merchant_id is NULL for an endpoint deleted or disabled.
 * Parameters, in order: cursor, limit, cursor, limit, limit, now, cap, now, cap. */
static const char cand_sql[] =
    "WITH RECURSIVE "
    "f(id, n) AS (SELECT (SELECT endpoint_id FROM webhook_deliveries WHERE state = 'pending' AND attempts = 0 "
    "                     AND endpoint_id > ? ORDER BY endpoint_id LIMIT 1), 1 "
    "  UNION ALL SELECT (SELECT endpoint_id FROM webhook_deliveries WHERE state = 'pending' AND attempts = 0 "
    "                     AND endpoint_id > f.id ORDER BY endpoint_id LIMIT 1), f.n + 1 "
    "  FROM f WHERE f.id IS NOT NULL AND f.n < ?), "
    "r(id, n) AS (SELECT (SELECT endpoint_id FROM webhook_deliveries WHERE state = 'pending' AND attempts > 0 "
    "                     AND endpoint_id > ? ORDER BY endpoint_id LIMIT 1), 1 "
    "  UNION ALL SELECT (SELECT endpoint_id FROM webhook_deliveries WHERE state = 'pending' AND attempts > 0 "
    "                     AND endpoint_id > r.id ORDER BY endpoint_id LIMIT 1), r.n + 1 "
    "  FROM r WHERE r.id IS NOT NULL AND r.n < ?), "
    "e(id) AS (SELECT id FROM f WHERE id IS NOT NULL UNION SELECT id FROM r WHERE id IS NOT NULL ORDER BY 1 LIMIT ?) "
    "SELECT e.id, w.merchant_id, "
    "  (SELECT COUNT(*) FROM (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'pending' "
    "                         AND d.attempts > 0 AND d.next_at <= ? LIMIT ?) dr), "
    "  (SELECT COUNT(*) FROM (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'pending' "
    "                         AND d.attempts = 0 AND d.next_at <= ? LIMIT ?) df) "
    "FROM e LEFT JOIN webhook_endpoints w ON w.id = e.id AND w.deleted = 0 AND w.status = 'enabled' "
    "ORDER BY e.id";

typedef struct {
    pd_delivery_cand_fn fn;
    void *arg;
} cands_t;

static int
cand_row(const pd_row_t *r, void *arg)
{
    cands_t *x = arg;
    char endpoint[PD_ID_MAX], merchant[PD_ID_MAX];
    bool live = !pd_row_is_null(r, 1);
    COPY(r, 0, endpoint);
    if (live)
        COPY(r, 1, merchant);
    return x->fn(endpoint, live ? merchant : NULL, (int)pd_row_int(r, 2), (int)pd_row_int(r, 3), x->arg);
}

int
pd_delivery_candidates(pd_db_t *db, const char *cursor, int64_t limit, int64_t now, int64_t cap,
                       pd_delivery_cand_fn fn, void *arg)
{
    cands_t x = {fn, arg};
    return pd_db_query(db, cand_sql,
                       PD_SQL_ARGS(PD_SQL_S(cursor), PD_SQL_I(limit), PD_SQL_S(cursor), PD_SQL_I(limit), PD_SQL_I(limit),
                                   PD_SQL_I(now), PD_SQL_I(cap), PD_SQL_I(now), PD_SQL_I(cap)),
                       cand_row, &x);
}

typedef struct {
    pd_delivery_due_t *out;
    int max, *n;
} dues_t;

static int
due_row(const pd_row_t *r, void *arg)
{
    dues_t *x = arg;
    if (*x->n == x->max)
        return 1;
    pd_delivery_due_t *d = &x->out[*x->n];
    if (pd_row_copy(r, 0, d->id, sizeof(d->id)) != 0 || pd_row_copy(r, 1, d->event_id, sizeof(d->event_id)) != 0 ||
        pd_row_copy(r, 4, d->url, sizeof(d->url)) != 0 || pd_row_copy(r, 5, d->secret_hex, sizeof(d->secret_hex)) != 0 ||
        pd_row_copy(r, 7, d->merchant, sizeof(d->merchant)) != 0 || pd_row_copy(r, 8, d->endpoint, sizeof(d->endpoint)) != 0)
        return 0; /* a row that does not fit is skipped (it stays pending) rather than stall the queue */
    d->attempts = (int)pd_row_int(r, 2);
    d->first_at = pd_row_int(r, 3);
    d->livemode = pd_row_int(r, 6) != 0;
    (*x->n)++;
    return 0;
}

#define DUE_COLS "d.id, d.event_id, d.attempts, d.first_at, w.url, w.secret, w.livemode, w.merchant_id, w.id "
/* one lane of one endpoint, oldest due first (each statement reads its lane's index) */
static const char due_retries_sql[] =
    "SELECT " DUE_COLS "FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id "
    "WHERE d.endpoint_id = ? AND d.state = 'pending' AND d.attempts > 0 AND d.next_at <= ? ORDER BY d.next_at LIMIT ?";
static const char due_first_sql[] =
    "SELECT " DUE_COLS "FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id "
    "WHERE d.endpoint_id = ? AND d.state = 'pending' AND d.attempts = 0 AND d.next_at <= ? ORDER BY d.next_at LIMIT ?";

int
pd_delivery_due(pd_db_t *db, const char *endpoint, bool retries, int64_t now, int64_t limit, pd_delivery_due_t *out,
                int max, int *n)
{
    dues_t x = {out, max, n};
    return pd_db_query(db, retries ? due_retries_sql : due_first_sql,
                       PD_SQL_ARGS(PD_SQL_S(endpoint), PD_SQL_I(now), PD_SQL_I(limit)), due_row, &x);
}

int
pd_delivery_lease(pd_db_t *tx, const char *id, int64_t now, int64_t until, bool *leased)
{
    int64_t changed = 0;
    int r = pd_db_exec(tx,
                       "UPDATE webhook_deliveries SET next_at = ? WHERE id = ? AND state = 'pending' AND next_at <= ? "
                       "AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = webhook_deliveries.endpoint_id "
                       "AND w.deleted = 0 AND w.status = 'enabled')",
                       PD_SQL_ARGS(PD_SQL_I(until), PD_SQL_S(id), PD_SQL_I(now)), &changed);
    *leased = r == 0 && changed == 1;
    return r;
}

int
pd_delivery_record(pd_db_t *tx, const char *id, const char *state, int64_t next_at, int http_status,
                   const char *error, int64_t now)
{
    return pd_db_exec(tx,
                      "UPDATE webhook_deliveries SET attempts = attempts + 1, "
                      "state = CASE WHEN state = 'canceled' THEN state ELSE ? END, next_at = ?, last_status = ?, "
                      "last_error = ?, updated = ? WHERE id = ?",
                      PD_SQL_ARGS(PD_SQL_S(state), PD_SQL_I(next_at), PD_SQL_I(http_status),
                                  error != NULL && error[0] ? PD_SQL_S(error) : PD_SQL_NIL, PD_SQL_I(now), PD_SQL_S(id)),
                      NULL);
}

int
pd_delivery_backlog(pd_db_t *db, int64_t *n)
{
    return pd_db_query_int(db, "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'", NULL, 0, n);
}
