/*
 * The outbox relay (payd/relay.h): one thread that publishes what the outbox queues.
 * Each pass reads up to RELAY_BATCH queued events, adds one delivery per matching live
 * endpoint, and removes the events from the outbox, in one durable write; then it
 * wakes the webhook engine.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events/internal.h"
#include "payd/cluster.h"
#include "payd/log.h"
#include "payd/outbox.h"
#include "payd/time.h"

#define RELAY_BATCH 500
#define RELAY_TICK_MS 500

typedef struct {
    pd_outbox_ev_t ev[RELAY_BATCH];
    size_t nev;
    pd_delivery_new_t *dl;
    size_t ndl, dlcap;
    int64_t now;
    bool stream; /* queue the events for the transaction stream too */
} batch_t;

typedef struct {
    batch_t *b;
    const pd_outbox_ev_t *e;
} match_t;

/* enabled_events is a JSON array of strings written by payd itself */
static bool
subscribed(pd_view_t enabled, const char *type)
{
    char want[80];
    int n = snprintf(want, sizeof(want), "\"%s\"", type);
    return memmem(enabled.p, enabled.len, "\"*\"", 3) != NULL ||
           (n > 0 && (size_t)n < sizeof(want) && memmem(enabled.p, enabled.len, want, (size_t)n) != NULL);
}

static int
match_endpoint(const char *endpoint_id, pd_view_t enabled, void *arg)
{
    match_t *m = arg;
    batch_t *b = m->b;
    if (!subscribed(enabled, m->e->type))
        return 0;
    if (b->ndl == b->dlcap) {
        size_t ncap = b->dlcap ? b->dlcap * 2 : 64;
        pd_delivery_new_t *n = realloc(b->dl, ncap * sizeof(*n));
        if (n == NULL)
            return PD_ERR_NOMEM;
        b->dl = n;
        b->dlcap = ncap;
    }
    pd_delivery_new_t *d = &b->dl[b->ndl];
    if (pd_id_new("whd", d->id, sizeof(d->id)) != 0)
        return PD_ERR_INTERNAL;
    snprintf(d->endpoint_id, sizeof(d->endpoint_id), "%s", endpoint_id);
    snprintf(d->event_id, sizeof(d->event_id), "%s", m->e->event_id);
    snprintf(d->merchant, sizeof(d->merchant), "%s", m->e->merchant);
    b->ndl++;
    return 0;
}

static int
write_batch(pd_db_t *tx, void *arg)
{
    batch_t *b = arg;
    /* the fencing check (docs/cluster.md): a node whose relay lease passed to another
     * while it prepared the batch writes nothing. The outbox rows' delete-exactly-these
     * check already keeps a stale batch from publishing twice; this keeps it from
     * running at all. */
    int r = pd_lease_fence(tx, PD_LEASE_RELAY);
    if (r == 0)
        r = pd_outbox_relay(tx, b->dl, b->ndl, b->ev, b->nev, b->now);
    /* the stream's own queue, in the same write: its publisher deletes a row only after
     * Redis acknowledged the entry, and neither side waits on the other */
    if (r == 0 && b->stream)
        r = pd_stream_outbox_queue(tx, b->ev, b->nev);
    return r;
}

/* one pass: returns the number of events taken */
static size_t
relay_once(pd_relay_t *rl)
{
    batch_t *b = calloc(1, sizeof(*b));
    size_t n = 0;
    if (b == NULL)
        return 0;
    /* one relay per cluster: the node holding the relay lease (payd/cluster.h) */
    if (!pd_lease_held(PD_LEASE_RELAY))
        goto out;
    pd_db_t *db = pd_store_reader(rl->store);
    b->now = pd_unix_now();
    b->stream = rl->stream != NULL;
    if (db == NULL || pd_outbox_peek(db, b->ev, RELAY_BATCH, &b->nev) != 0 || b->nev == 0)
        goto out;
    for (size_t i = 0; i < b->nev; i++) {
        match_t m = {b, &b->ev[i]};
        if (b->ev[i].event_id[0] != '\0' &&
            pd_outbox_endpoints(db, b->ev[i].merchant, b->ev[i].livemode, match_endpoint, &m) != 0)
            goto out;
    }
    if (pd_store_write_sync(rl->store, write_batch, b) == 0) {
        n = b->nev;
        if (b->ndl > 0)
            pd_webhook_engine_kick(rl->engine);
        pd_stream_kick(rl->stream);
    }
out:
    free(b->dl);
    free(b);
    return n;
}

static void *
relay_main(void *arg)
{
    pd_relay_t *rl = arg;
    pthread_setname_np(pthread_self(), "payd-outbox");
    while (!atomic_load(&rl->stop)) {
        if (relay_once(rl) == RELAY_BATCH)
            continue; /* more may be waiting */
        pthread_mutex_lock(&rl->mu);
        if (!rl->kicked && !atomic_load(&rl->stop)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += RELAY_TICK_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&rl->cv, &rl->mu, &ts);
        }
        rl->kicked = false;
        pthread_mutex_unlock(&rl->mu);
    }
    return NULL;
}

void
pd_relay_kick(pd_relay_t *rl)
{
    if (rl == NULL)
        return;
    pthread_mutex_lock(&rl->mu);
    rl->kicked = true;
    pthread_cond_signal(&rl->cv);
    pthread_mutex_unlock(&rl->mu);
}

int
pd_relay_start(pd_relay_t **out, const pd_relay_opts_t *o)
{
    pd_relay_t *rl = calloc(1, sizeof(*rl));
    int r;
    *out = NULL;
    if (rl == NULL)
        return PD_ERR_NOMEM;
    rl->store = o->store;
    rl->vault = o->vault;
    rl->per_endpoint = o->per_endpoint;
    rl->timeout_ms = o->timeout_ms;
    rl->live_rules_in_test = o->live_rules_in_test;
    pthread_mutex_init(&rl->mu, NULL);
    pthread_cond_init(&rl->cv, NULL);
    char err[600] = "";
    if ((r = pd_stream_start(&rl->stream, o->store, o->vault, err, sizeof(err))) != 0) {
        pd_log_error("cannot start the transaction stream", PD_LS("reason", err), PD_LERR(r));
        goto fail;
    }
    if ((r = pd_relay_queue_start(rl, o->max_in_flight)) != 0) {
        pd_stream_stop(rl->stream);
        goto fail;
    }
    if (pthread_create(&rl->thread, NULL, relay_main, rl) != 0) {
        pd_relay_queue_stop(rl);
        pd_stream_stop(rl->stream);
        r = PD_ERR_INTERNAL;
        goto fail;
    }
    *out = rl;
    return 0;
fail:
    pthread_mutex_destroy(&rl->mu);
    pthread_cond_destroy(&rl->cv);
    free(rl);
    return r;
}

void
pd_relay_stop(pd_relay_t *rl)
{
    if (rl == NULL)
        return;
    atomic_store(&rl->stop, true);
    pd_relay_kick(rl);
    pthread_join(rl->thread, NULL);
    pd_stream_stop(rl->stream);
    pd_relay_queue_stop(rl);
    pthread_mutex_destroy(&rl->mu);
    pthread_cond_destroy(&rl->cv);
    free(rl);
}
