/*
 * The outbox relay.
 *
 * Events are committed with the changes they describe, together with a row in the
 * outbox queue. The relay thread turns each queued event into one delivery per
 * matching enabled endpoint and removes it from the queue, in one durable write. The
 * webhook engine (src/events) takes due deliveries from webhook_queue.c, signs and
 * POSTs them, and reports each attempt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/internal.h"
#include "payd/time.h"

#define RELAY_BATCH 500

typedef struct {
    char event_id[PD_ID_MAX], merchant[PD_ID_MAX], type[64];
    bool livemode;
} ev_t;

typedef struct {
    char id[PD_ID_MAX], event_id[PD_ID_MAX], endpoint_id[PD_ID_MAX], merchant[PD_ID_MAX];
} dl_t;

typedef struct {
    ev_t ev[RELAY_BATCH];
    size_t nev;
    int64_t last; /* outbox id of the last event taken */
    dl_t *dl;
    size_t ndl, dlcap;
    int64_t now;
} relay_batch_t;

static int
ev_row(const pd_row_t *r, void *arg)
{
    relay_batch_t *b = arg;
    ev_t *e = &b->ev[b->nev];
    b->last = pd_row_int(r, 0);
    if (pd_row_copy(r, 1, e->event_id, sizeof(e->event_id)) != 0 ||
        pd_row_copy(r, 2, e->merchant, sizeof(e->merchant)) != 0 || pd_row_copy(r, 4, e->type, sizeof(e->type)) != 0)
        return 0; /* skip a malformed row rather than stall the relay */
    e->livemode = pd_row_int(r, 3) != 0;
    b->nev++;
    return b->nev == RELAY_BATCH ? 1 : 0;
}

typedef struct {
    relay_batch_t *b;
    const ev_t *e;
} match_t;

static int
endpoint_row(const pd_row_t *r, void *arg)
{
    match_t *m = arg;
    char want[80];
    pd_view_t enabled = pd_row_text(r, 1);
    snprintf(want, sizeof(want), "\"%s\"", m->e->type);
    /* enabled_events is a JSON array of strings written by payd itself */
    bool match = memmem(enabled.p, enabled.len, "\"*\"", 3) != NULL || memmem(enabled.p, enabled.len, want, strlen(want)) != NULL;
    if (!match)
        return 0;
    relay_batch_t *b = m->b;
    if (b->ndl == b->dlcap) {
        size_t ncap = b->dlcap ? b->dlcap * 2 : 64;
        dl_t *n = realloc(b->dl, ncap * sizeof(*n));
        if (n == NULL)
            return PD_ERR_NOMEM;
        b->dl = n;
        b->dlcap = ncap;
    }
    dl_t *d = &b->dl[b->ndl];
    if (pd_id_new("whd", d->id, sizeof(d->id)) != 0 || pd_row_copy(r, 0, d->endpoint_id, sizeof(d->endpoint_id)) != 0)
        return 0;
    snprintf(d->event_id, sizeof(d->event_id), "%s", m->e->event_id);
    snprintf(d->merchant, sizeof(d->merchant), "%s", m->e->merchant);
    b->ndl++;
    return 0;
}

static int
write_relay(pd_db_t *tx, void *arg)
{
    relay_batch_t *b = arg;
    int r;
    for (size_t i = 0; i < b->ndl; i++) {
        dl_t *d = &b->dl[i];
        if ((r = pd_db_exec(tx,
                            "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, merchant_id, state, attempts, "
                            "first_at, next_at, updated) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                            PD_SQL_ARGS(PD_SQL_S(d->id), PD_SQL_S(d->event_id), PD_SQL_S(d->endpoint_id),
                                        PD_SQL_S(d->merchant), PD_SQL_I(b->now), PD_SQL_I(b->now), PD_SQL_I(b->now)),
                            NULL)) != 0)
            return r;
    }
    /* the single writer gives queue rows increasing ids while the row with the
     * largest id is present, so every row up to `last` is one this pass read */
    return pd_db_exec(tx, "DELETE FROM outbox WHERE id <= ?", PD_SQL_ARGS(PD_SQL_I(b->last)), NULL);
}

/* one pass: returns the number of events published */
static size_t
relay_once(pd_api_t *a)
{
    relay_batch_t *b = calloc(1, sizeof(*b));
    size_t n = 0;
    if (b == NULL)
        return 0;
    pd_db_t *db = pd_store_reader(a->store);
    b->now = pd_unix_now();
    if (db == NULL ||
        pd_db_query(db, "SELECT id, event_id, merchant_id, livemode, type FROM outbox ORDER BY id LIMIT 500", NULL, 0,
                    ev_row, b) != 0)
        goto out;
    for (size_t i = 0; i < b->nev; i++) {
        match_t m = {b, &b->ev[i]};
        if (pd_db_query(db,
                        "SELECT id, enabled_events FROM webhook_endpoints WHERE merchant_id = ? AND livemode = ? "
                        "AND deleted = 0 AND status = 'enabled'",
                        PD_SQL_ARGS(PD_SQL_S(b->ev[i].merchant), PD_SQL_I(b->ev[i].livemode)), endpoint_row, &m) != 0)
            goto out;
    }
    if (b->last > 0 && pd_store_write_sync(a->store, write_relay, b) == 0) {
        n = b->nev;
        if (b->ndl > 0)
            pd_webhook_engine_kick(a->webhooks);
    }
out:
    free(b->dl);
    free(b);
    return n;
}

static void *
relay_main(void *arg)
{
    pd_api_t *a = arg;
    pthread_setname_np(pthread_self(), "payd-outbox");
    while (!atomic_load(&a->stop)) {
        if (relay_once(a) == RELAY_BATCH)
            continue; /* more may be waiting */
        pthread_mutex_lock(&a->kick_mu);
        if (!a->kicked && !atomic_load(&a->stop)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 500 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&a->kick_cv, &a->kick_mu, &ts);
        }
        a->kicked = false;
        pthread_mutex_unlock(&a->kick_mu);
    }
    return NULL;
}

void
pd_api_kick(pd_api_t *a)
{
    pthread_mutex_lock(&a->kick_mu);
    a->kicked = true;
    pthread_cond_signal(&a->kick_cv);
    pthread_mutex_unlock(&a->kick_mu);
}

int
pd_relay_start(pd_api_t *a)
{
    int r = pd_webhooks_start(a);
    if (r != 0)
        return r;
    if (pthread_create(&a->relay, NULL, relay_main, a) != 0)
        return PD_ERR_INTERNAL;
    return 0;
}

void
pd_relay_stop(pd_api_t *a)
{
    pthread_join(a->relay, NULL);
    pd_webhooks_stop(a);
}
