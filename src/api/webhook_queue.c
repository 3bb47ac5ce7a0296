/*
 * The webhook engine's queue (pd_webhook_queue_t, payd/webhook.h) over the store's
 * webhook_deliveries, with the fair scheduler (payd/webhook_sched.h) deciding who gets
 * the engine's free slots.
 *
 * next_due, on the engine thread:
 *   1. candidates: the live (not deleted, enabled) endpoints with due deliveries, each
 *      with how many are due in its two lanes (retries, first attempts). They are found
 *      by seeking through the pending-delivery indexes endpoint by endpoint, so a
 *      backlog of a million rows behind one hanging endpoint costs a seek, not a scan;
 *   2. the scheduler shares the free slots among them (per-endpoint cap, round-robin
 *      across merchants and endpoints, retries taking turns with first attempts);
 *   3. each granted endpoint's oldest due rows of each lane are read and leased in one
 *      durable write. The lease takes a row only while it is pending and its endpoint
 *      live: a delete that commits first wins, and nothing is sent for it;
 *   4. each leased row becomes a signed delivery, and the scheduler counts it in flight.
 * record: the attempt's outcome; the scheduler counts it out of flight. A delivery
 * canceled while its attempt was in flight stays canceled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "payd/log.h"
#include "payd/time.h"

/* --- 1. candidates --- */

typedef struct {
    pd_webhook_cand_t *c; /* PD_WEBHOOK_SCHED_MAX_CANDIDATES of them */
    size_t n;
    size_t seen;               /* endpoints the look went through */
    char last_seen[PD_ID_MAX]; /* the last of them */
} cands_t;

static int
cand_row(const pd_row_t *r, void *arg)
{
    cands_t *x = arg;
    pd_webhook_cand_t *c = &x->c[x->n];
    if (x->seen == PD_WEBHOOK_SCHED_MAX_CANDIDATES || pd_row_copy(r, 0, x->last_seen, sizeof(x->last_seen)) != 0)
        return 1;
    x->seen++;
    if (pd_row_is_null(r, 1))
        return 0; /* deleted or disabled */
    memset(c, 0, sizeof(*c));
    if (pd_row_copy(r, 0, c->endpoint, sizeof(c->endpoint)) != 0 || pd_row_copy(r, 1, c->merchant, sizeof(c->merchant)) != 0)
        return 0;
    c->due_retries = (int)pd_row_int(r, 2);
    c->due_first = (int)pd_row_int(r, 3);
    if (c->due_retries + c->due_first > 0)
        x->n++;
    return 0;
}

/* The endpoints with pending deliveries after a cursor id, in id order, up to a limit:
 * each lane's partial index is walked one endpoint at a time (the next endpoint id is
 * one seek; n counts the steps), then the due deliveries of each are counted per lane,
 * up to the per-endpoint cap (the scheduler needs no more). merchant_id is NULL for an
 * endpoint deleted or disabled. Parameters, in order: cursor, limit, cursor, limit,
 * limit, now, cap, now, cap. */
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

/* Fills x with the candidates: live endpoints with due deliveries. A look goes through
 * at most PD_WEBHOOK_SCHED_MAX_CANDIDATES endpoints with pending deliveries; when there
 * are more, the next look starts after the last one seen, so each gets its turn. */
static int
find_candidates(pd_api_t *a, pd_db_t *db, int64_t now, cands_t *x)
{
    int64_t cap = a->cfg->webhook_concurrency_per_endpoint, lim = PD_WEBHOOK_SCHED_MAX_CANDIDATES;
    x->n = x->seen = 0;
    int r = pd_db_query(db, cand_sql,
                        PD_SQL_ARGS(PD_SQL_S(a->wh_cursor), PD_SQL_I(lim), PD_SQL_S(a->wh_cursor), PD_SQL_I(lim),
                                    PD_SQL_I(lim), PD_SQL_I(now), PD_SQL_I(cap), PD_SQL_I(now), PD_SQL_I(cap)),
                        cand_row, x);
    if (r == 0 && x->seen == PD_WEBHOOK_SCHED_MAX_CANDIDATES)
        snprintf(a->wh_cursor, sizeof(a->wh_cursor), "%s", x->last_seen);
    else
        a->wh_cursor[0] = '\0';
    return r;
}

/* --- 3. the granted rows, and their lease --- */

typedef struct {
    char id[PD_ID_MAX], event_id[PD_ID_MAX], url[2048], secret_hex[512], merchant[PD_ID_MAX], endpoint[PD_ID_MAX];
    int attempts;
    int64_t first_at;
    bool livemode, leased;
} due_t;

typedef struct {
    due_t *d;
    int n, max;
} dues_t;

static int
due_row(const pd_row_t *r, void *arg)
{
    dues_t *x = arg;
    if (x->n == x->max)
        return 1;
    due_t *d = &x->d[x->n];
    if (pd_row_copy(r, 0, d->id, sizeof(d->id)) != 0 || pd_row_copy(r, 1, d->event_id, sizeof(d->event_id)) != 0 ||
        pd_row_copy(r, 4, d->url, sizeof(d->url)) != 0 || pd_row_copy(r, 5, d->secret_hex, sizeof(d->secret_hex)) != 0 ||
        pd_row_copy(r, 7, d->merchant, sizeof(d->merchant)) != 0 || pd_row_copy(r, 8, d->endpoint, sizeof(d->endpoint)) != 0)
        return 0;
    d->attempts = (int)pd_row_int(r, 2);
    d->first_at = pd_row_int(r, 3);
    d->livemode = pd_row_int(r, 6) != 0;
    d->leased = false;
    x->n++;
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

/* reads the rows the plan granted into x */
static int
read_granted(pd_db_t *db, const cands_t *c, int64_t now, dues_t *x)
{
    int r = 0;
    for (size_t i = 0; i < c->n && r == 0; i++) {
        const pd_webhook_cand_t *g = &c->c[i];
        if (g->grant_retries > 0)
            r = pd_db_query(db, due_retries_sql, PD_SQL_ARGS(PD_SQL_S(g->endpoint), PD_SQL_I(now), PD_SQL_I(g->grant_retries)),
                            due_row, x);
        if (r == 0 && g->grant_first > 0)
            r = pd_db_query(db, due_first_sql, PD_SQL_ARGS(PD_SQL_S(g->endpoint), PD_SQL_I(now), PD_SQL_I(g->grant_first)),
                            due_row, x);
    }
    return r;
}

typedef struct {
    dues_t *x;
    int64_t now, until;
} lease_t;

/* Leases each row past the attempt timeout (a crash mid-attempt retries it later) if it
 * is still pending, still due and its endpoint still live; sets leased on those. This
 * write is what orders a lease against an endpoint's delete (pd_we_delete): a delete
 * committed first leaves nothing to lease. */
static int
write_lease(pd_db_t *tx, void *arg)
{
    lease_t *l = arg;
    for (int i = 0; i < l->x->n; i++) {
        int64_t changed = 0;
        int r = pd_db_exec(tx,
                           "UPDATE webhook_deliveries SET next_at = ? WHERE id = ? AND state = 'pending' AND next_at <= ? "
                           "AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = webhook_deliveries.endpoint_id "
                           "AND w.deleted = 0 AND w.status = 'enabled')",
                           PD_SQL_ARGS(PD_SQL_I(l->until), PD_SQL_S(l->x->d[i].id), PD_SQL_I(l->now)), &changed);
        if (r != 0)
            return r;
        l->x->d[i].leased = changed == 1;
    }
    return 0;
}

/* --- 4. deliveries --- */

/* Turns a leased row into a delivery: the event rendered, the endpoint's secret
 * decrypted. 0 or an error (then o holds nothing; the row is retried after its lease). */
static int
make_delivery(pd_api_t *a, pd_db_t *db, pd_arena_t *arena, const due_t *d, pd_delivery_t *o)
{
    pd_event_rec_t ev;
    uint8_t env[512];
    char context[160];
    size_t hl = strlen(d->secret_hex);
    if (pd_event_get(db, arena, d->merchant, d->livemode, d->event_id, &ev) != 0 || hl % 2 || hl / 2 > sizeof(env) ||
        pd_unhex(d->secret_hex, hl, env) != 0)
        return PD_ERR_NOTFOUND;
    snprintf(context, sizeof(context), "merchant=%s;purpose=webhook_endpoint;id=%s", d->merchant, d->endpoint);
    pd_vault_reply_t sec;
    if (pd_vault_decrypt_sync(a->vault->api, pd_view_cstr(context), pd_view(env, hl / 2), &sec) != 0) {
        pd_vault_reply_free(&sec);
        pd_log_error("cannot decrypt a webhook secret", PD_LS("endpoint", d->endpoint));
        return PD_ERR_CRYPTO;
    }
    memset(o, 0, sizeof(*o));
    snprintf(o->delivery_id, sizeof(o->delivery_id), "%s", d->id);
    snprintf(o->event_id, sizeof(o->event_id), "%s", d->event_id);
    snprintf(o->endpoint_id, sizeof(o->endpoint_id), "%s", d->endpoint);
    snprintf(o->url, sizeof(o->url), "%s", d->url);
    pd_buf_init(&o->payload, RESP_MAX + 4096);
    pd_buf_init(&o->secret, 256);
    pd_jw_t w;
    pd_jw_init(&w, &o->payload);
    pd_render_event(&w, &ev);
    bool ok = pd_jw_finish(&w) == 0 && pd_buf_put(&o->secret, sec.data.p, sec.data.len) == 0;
    pd_vault_reply_free(&sec);
    if (!ok) {
        pd_buf_free(&o->payload);
        pd_buf_free_secure(&o->secret);
        return PD_ERR_NOMEM;
    }
    o->attempt = d->attempts + 1;
    o->first_at = d->first_at;
    o->allow_private = !d->livemode && !a->cfg->webhook_live_rules_in_test;
    return 0;
}

static int
queue_next_due(void *ctx, int64_t now, pd_delivery_t *out, int max)
{
    pd_api_t *a = ctx;
    cands_t c = {.c = calloc(PD_WEBHOOK_SCHED_MAX_CANDIDATES, sizeof(pd_webhook_cand_t))};
    dues_t x = {calloc((size_t)max, sizeof(due_t)), 0, max};
    int n = 0;
    pd_arena_t arena;
    pd_arena_init(&arena, 4u << 20);
    pd_db_t *db = pd_store_reader(a->store);
    if (c.c == NULL || x.d == NULL || db == NULL || find_candidates(a, db, now, &c) != 0 ||
        pd_webhook_sched_plan(a->wh_sched, c.c, c.n, max) <= 0 || read_granted(db, &c, now, &x) != 0 || x.n == 0)
        goto out;
    lease_t l = {&x, now, now + (a->cfg->webhook_timeout_ms / 1000) * 3 + 30};
    if (pd_store_write_sync(a->store, write_lease, &l) != 0)
        goto out;
    for (int i = 0; i < x.n; i++) {
        if (x.d[i].leased && make_delivery(a, db, &arena, &x.d[i], &out[n]) == 0) {
            pd_webhook_sched_started(a->wh_sched, x.d[i].endpoint);
            n++;
        }
    }
out:
    pd_arena_free(&arena);
    free(x.d);
    free(c.c);
    return n;
}

/* --- record --- */

typedef struct {
    const pd_delivery_t *d;
    const pd_attempt_t *a;
    int64_t now;
} rec_t;

static int
write_attempt(pd_db_t *tx, void *arg)
{
    rec_t *x = arg;
    const char *state = x->a->ok ? "succeeded" : x->a->next_at ? "pending" : "failed";
    return pd_db_exec(tx,
                      "UPDATE webhook_deliveries SET attempts = attempts + 1, "
                      "state = CASE WHEN state = 'canceled' THEN state ELSE ? END, next_at = ?, last_status = ?, "
                      "last_error = ?, updated = ? WHERE id = ?",
                      PD_SQL_ARGS(PD_SQL_S(state), PD_SQL_I(x->a->next_at ? x->a->next_at : x->now),
                                  PD_SQL_I(x->a->http_status), x->a->error[0] ? PD_SQL_S(x->a->error) : PD_SQL_NIL, PD_SQL_I(x->now),
                                  PD_SQL_S(x->d->delivery_id)),
                      NULL);
}

static void
queue_record(void *ctx, const pd_delivery_t *d, const pd_attempt_t *at)
{
    pd_api_t *a = ctx;
    rec_t x = {d, at, pd_unix_now()};
    pd_webhook_sched_finished(a->wh_sched, d->endpoint_id);
    if (pd_store_write_sync(a->store, write_attempt, &x) != 0)
        pd_log_error("cannot record a webhook attempt", PD_LS("delivery", d->delivery_id));
}

int
pd_webhooks_start(pd_api_t *a)
{
    int r = pd_webhook_sched_new(&a->wh_sched, (int)a->cfg->webhook_concurrency_per_endpoint);
    if (r != 0)
        return r;
    a->wh_cursor[0] = '\0';
    pd_webhook_queue_t q = {queue_next_due, queue_record, a};
    pd_webhook_opts_t o = {.max_in_flight = (int)a->cfg->webhook_concurrency, .timeout_ms = a->cfg->webhook_timeout_ms,
                           .poll_ms = 1000};
    if ((r = pd_webhook_engine_start(&a->webhooks, &q, &o)) != 0) {
        pd_webhook_sched_free(a->wh_sched);
        a->wh_sched = NULL;
    }
    return r;
}

void
pd_webhooks_stop(pd_api_t *a)
{
    pd_webhook_engine_stop(a->webhooks);
    a->webhooks = NULL;
    pd_webhook_sched_free(a->wh_sched);
    a->wh_sched = NULL;
}
