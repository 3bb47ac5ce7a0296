/*
 * The webhook engine's queue (pd_webhook_queue_t, payd/webhook.h) over the store's
 * delivery queue (payd/outbox.h), with the fair scheduler (payd/webhook_sched.h)
 * deciding who gets the engine's free slots.
 *
 * next_due, on the engine thread:
 *   1. candidates: the live endpoints with due deliveries, each with how many are due
 *      in its two lanes (retries, first attempts);
 *   2. the scheduler shares the free slots among them (per-endpoint cap, round-robin
 *      across merchants and endpoints, retries taking turns with first attempts);
 *   3. each granted endpoint's oldest due rows of each lane are read and leased in one
 *      durable write (a delete that commits first leaves nothing to lease);
 *   4. each leased row becomes a signed delivery, and the scheduler counts it in flight.
 * record: the attempt's outcome; the scheduler counts it out of flight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/internal.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/outbox.h"
#include "payd/time.h"

#define PAYLOAD_MAX (260u * 1024)

/* --- 1. candidates --- */

typedef struct {
    pd_webhook_cand_t *c; /* PD_WEBHOOK_SCHED_MAX_CANDIDATES of them */
    size_t n;
    size_t seen;               /* endpoints the look went through */
    char last_seen[PD_ID_MAX]; /* the last of them */
} cands_t;

static int
add_candidate(const char *endpoint, const char *merchant, int due_retries, int due_first, void *arg)
{
    cands_t *x = arg;
    if (x->seen == PD_WEBHOOK_SCHED_MAX_CANDIDATES)
        return 1;
    x->seen++;
    snprintf(x->last_seen, sizeof(x->last_seen), "%s", endpoint);
    if (merchant == NULL || due_retries + due_first == 0)
        return 0; /* deleted or disabled, or nothing due yet */
    pd_webhook_cand_t *c = &x->c[x->n++];
    memset(c, 0, sizeof(*c));
    snprintf(c->endpoint, sizeof(c->endpoint), "%s", endpoint);
    snprintf(c->merchant, sizeof(c->merchant), "%s", merchant);
    c->due_retries = due_retries;
    c->due_first = due_first;
    return 0;
}

/* A look goes through at most PD_WEBHOOK_SCHED_MAX_CANDIDATES endpoints with pending
 * deliveries; when there are more, the next look starts after the last one seen, so
 * each gets its turn. */
static int
find_candidates(pd_relay_t *rl, pd_db_t *db, int64_t now, cands_t *x)
{
    x->n = x->seen = 0;
    int r = pd_delivery_candidates(db, rl->cursor, PD_WEBHOOK_SCHED_MAX_CANDIDATES, now, rl->per_endpoint,
                                   add_candidate, x);
    if (r == 0 && x->seen == PD_WEBHOOK_SCHED_MAX_CANDIDATES)
        snprintf(rl->cursor, sizeof(rl->cursor), "%s", x->last_seen);
    else
        rl->cursor[0] = '\0';
    return r;
}

/* --- 3. the granted rows, and their lease --- */

typedef struct {
    pd_delivery_due_t *d;
    bool *leased;
    int n, max;
    int64_t now, until;
} dues_t;

static int
read_granted(pd_db_t *db, const cands_t *c, dues_t *x)
{
    int r = 0;
    for (size_t i = 0; i < c->n && r == 0; i++) {
        const pd_webhook_cand_t *g = &c->c[i];
        if (g->grant_retries > 0)
            r = pd_delivery_due(db, g->endpoint, true, x->now, g->grant_retries, x->d, x->max, &x->n);
        if (r == 0 && g->grant_first > 0)
            r = pd_delivery_due(db, g->endpoint, false, x->now, g->grant_first, x->d, x->max, &x->n);
    }
    return r;
}

/* Leases each row past the attempt timeout (a crash mid-attempt retries it later). This
 * write is what orders a lease against an endpoint's delete (pd_we_delete). */
static int
write_lease(pd_db_t *tx, void *arg)
{
    dues_t *x = arg;
    int r = 0;
    for (int i = 0; i < x->n && r == 0; i++)
        r = pd_delivery_lease(tx, x->d[i].id, x->now, x->until, &x->leased[i]);
    return r;
}

/* --- 4. deliveries --- */

/* Endpoint secrets are decrypted at most once a minute per endpoint, rather than with a
 * vault round trip per delivery; a slot is keyed by the wrapped secret too, so a rolled
 * secret is decrypted anew at once. 0, or an error (out untouched). */
#define SECRET_TTL_S 60

static int
endpoint_secret(pd_relay_t *rl, const pd_delivery_due_t *d, pd_buf_t *out)
{
    int64_t now = pd_unix_now();
    pd_relay_secret_t *slot = &rl->secrets[0];
    for (size_t i = 0; i < PD_RELAY_SECRETS; i++) {
        pd_relay_secret_t *c = &rl->secrets[i];
        if (c->at != 0 && now - c->at < SECRET_TTL_S && strcmp(c->endpoint, d->endpoint) == 0 &&
            strcmp(c->wrapped, d->secret_hex) == 0)
            return pd_buf_put(out, c->secret.p, c->secret.len);
        if (c->at < slot->at)
            slot = c; /* the oldest, or an empty one */
    }
    uint8_t env[512];
    char context[160];
    size_t hl = strlen(d->secret_hex);
    if (hl % 2 || hl / 2 > sizeof(env) || pd_unhex(d->secret_hex, hl, env) != 0)
        return PD_ERR_INVALID;
    snprintf(context, sizeof(context), "merchant=%s;purpose=webhook_endpoint;id=%s", d->merchant, d->endpoint);
    pd_vault_reply_t sec;
    if (pd_vault_decrypt_sync(rl->vault, pd_view_cstr(context), pd_view(env, hl / 2), &sec) != 0) {
        pd_vault_reply_free(&sec);
        pd_log_error("cannot decrypt a webhook secret", PD_LS("endpoint", d->endpoint));
        return PD_ERR_CRYPTO;
    }
    pd_buf_free_secure(&slot->secret);
    slot->at = 0;
    pd_buf_init(&slot->secret, 256);
    int r = pd_buf_put(&slot->secret, sec.data.p, sec.data.len);
    pd_vault_reply_free(&sec);
    if (r != 0)
        return r;
    snprintf(slot->endpoint, sizeof(slot->endpoint), "%s", d->endpoint);
    snprintf(slot->wrapped, sizeof(slot->wrapped), "%s", d->secret_hex);
    slot->at = now;
    return pd_buf_put(out, slot->secret.p, slot->secret.len);
}

static void
secrets_forget(pd_relay_t *rl)
{
    for (size_t i = 0; i < PD_RELAY_SECRETS; i++) {
        pd_buf_free_secure(&rl->secrets[i].secret);
        memset(&rl->secrets[i], 0, sizeof(rl->secrets[i]));
    }
}

/* Turns a leased row into a delivery: the event rendered, the endpoint's secret
 * decrypted. 0 or an error (then o holds nothing; the row is retried after its lease). */
static int
make_delivery(pd_relay_t *rl, pd_db_t *db, pd_arena_t *arena, const pd_delivery_due_t *d, pd_delivery_t *o)
{
    pd_event_rec_t ev;
    if (pd_event_get(db, arena, d->merchant, d->livemode, d->event_id, &ev) != 0)
        return PD_ERR_NOTFOUND;
    memset(o, 0, sizeof(*o));
    snprintf(o->delivery_id, sizeof(o->delivery_id), "%s", d->id);
    snprintf(o->event_id, sizeof(o->event_id), "%s", d->event_id);
    snprintf(o->endpoint_id, sizeof(o->endpoint_id), "%s", d->endpoint);
    snprintf(o->url, sizeof(o->url), "%s", d->url);
    pd_buf_init(&o->payload, PAYLOAD_MAX);
    pd_buf_init(&o->secret, 256);
    pd_jw_t w;
    pd_jw_init(&w, &o->payload);
    pd_event_json(&w, &ev);
    int r = pd_jw_finish(&w) == 0 ? endpoint_secret(rl, d, &o->secret) : PD_ERR_NOMEM;
    if (r != 0) {
        pd_buf_free(&o->payload);
        pd_buf_free_secure(&o->secret);
        return r;
    }
    o->attempt = d->attempts + 1;
    o->first_at = d->first_at;
    o->allow_private = !d->livemode && !rl->live_rules_in_test;
    return 0;
}

/* payd_webhook_backlog: a COUNT every 5 s here, on the engine thread, rather than at
 * scrape time on an event loop (a gauge this thread alone moves: it adds the change) */
static void
count_backlog(pd_relay_t *rl, pd_db_t *db, int64_t now)
{
    int64_t n;
    if (pd_mx == NULL || db == NULL || (rl->backlog_at != 0 && now - rl->backlog_at < 5))
        return;
    rl->backlog_at = now;
    if (pd_delivery_backlog(db, &n) == 0) {
        pd_metric_gauge_add(pd_mx, PD_MX_WEBHOOK_BACKLOG, 0, n - rl->backlog);
        rl->backlog = n;
    }
}

static int
queue_next_due(void *ctx, int64_t now, pd_delivery_t *out, int max)
{
    pd_relay_t *rl = ctx;
    cands_t c = {.c = calloc(PD_WEBHOOK_SCHED_MAX_CANDIDATES, sizeof(pd_webhook_cand_t))};
    dues_t x = {calloc((size_t)max, sizeof(pd_delivery_due_t)), calloc((size_t)max, sizeof(bool)), 0, max, now,
                now + (rl->timeout_ms / 1000) * 3 + 30};
    int n = 0;
    pd_arena_t arena;
    pd_arena_init(&arena, 4u << 20);
    pd_db_t *db = pd_store_reader(rl->store);
    count_backlog(rl, db, now);
    if (c.c == NULL || x.d == NULL || x.leased == NULL || db == NULL || find_candidates(rl, db, now, &c) != 0 ||
        pd_webhook_sched_plan(rl->sched, c.c, c.n, max) <= 0 || read_granted(db, &c, &x) != 0 || x.n == 0)
        goto out;
    if (pd_store_write_sync(rl->store, write_lease, &x) != 0)
        goto out;
    for (int i = 0; i < x.n; i++) {
        if (x.leased[i] && make_delivery(rl, db, &arena, &x.d[i], &out[n]) == 0) {
            pd_webhook_sched_started(rl->sched, x.d[i].endpoint);
            n++;
        }
    }
out:
    pd_arena_free(&arena);
    free(x.leased);
    free(x.d);
    free(c.c);
    return n;
}

/* --- record --- */

typedef struct {
    const pd_hook_outcome_t *o;
    size_t n;
    int64_t now;
} rec_t;

static int
write_attempts(pd_db_t *tx, void *arg)
{
    rec_t *x = arg;
    int r = 0;
    for (size_t i = 0; i < x->n && r == 0; i++) {
        const pd_attempt_t *a = &x->o[i].a;
        const char *state = a->ok ? "succeeded" : a->next_at ? "pending" : "failed";
        r = pd_delivery_record(tx, x->o[i].d->delivery_id, state, a->next_at ? a->next_at : x->now, a->http_status,
                               a->error, x->now);
    }
    return r;
}

/* the outcomes of one engine pass, in one durable write */
static void
queue_record(void *ctx, const pd_hook_outcome_t *o, size_t n)
{
    pd_relay_t *rl = ctx;
    rec_t x = {o, n, pd_unix_now()};
    for (size_t i = 0; i < n; i++)
        pd_webhook_sched_finished(rl->sched, o[i].d->endpoint_id);
    if (pd_store_write_sync(rl->store, write_attempts, &x) != 0)
        pd_log_error("cannot record webhook attempts", PD_LS("delivery", o[0].d->delivery_id),
                     PD_LI("attempts", (int64_t)n));
}

int
pd_relay_queue_start(pd_relay_t *rl, int max_in_flight)
{
    int r = pd_webhook_sched_new(&rl->sched, rl->per_endpoint);
    if (r != 0)
        return r;
    rl->cursor[0] = '\0';
    pd_webhook_queue_t q = {queue_next_due, queue_record, rl};
    pd_webhook_opts_t o = {.max_in_flight = max_in_flight, .timeout_ms = rl->timeout_ms, .poll_ms = 1000};
    if ((r = pd_webhook_engine_start(&rl->engine, &q, &o)) != 0) {
        pd_webhook_sched_free(rl->sched);
        rl->sched = NULL;
    }
    return r;
}

void
pd_relay_queue_stop(pd_relay_t *rl)
{
    pd_webhook_engine_stop(rl->engine);
    rl->engine = NULL;
    secrets_forget(rl);
    pd_webhook_sched_free(rl->sched);
    rl->sched = NULL;
}
