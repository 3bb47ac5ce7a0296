/*
 * The outbox relay and the webhook queue over the store (src/events/relay.c, queue.c).
 *
 * Events commit with the changes they describe and a row in the outbox. The relay
 * thread turns each queued event into one delivery per matching live endpoint and
 * removes it from the outbox, in one durable write. The webhook engine
 * (payd/webhook.h) takes due deliveries from the queue (fair shares by
 * payd/webhook_sched.h), signs and POSTs them, and records each attempt.
 */
#ifndef PAYD_RELAY_H
#define PAYD_RELAY_H

#include <stdint.h>

#include "payd/error.h"
#include "payd/json.h"
#include "payd/records.h"
#include "payd/store.h"
#include "payd/vault.h"

typedef struct pd_relay pd_relay_t;

typedef struct {
    pd_store_t *store;
    pd_vault_client_t *vault; /* decrypts the endpoints' signing secrets */
    int max_in_flight;        /* webhook attempts at once */
    int per_endpoint;         /* ... to one endpoint */
    int64_t timeout_ms;       /* of one attempt */
    bool live_rules_in_test;  /* test-mode deliveries refuse private targets as live mode does */
} pd_relay_opts_t;

/* Starts the webhook engine and the relay thread. */
int pd_relay_start(pd_relay_t **out, const pd_relay_opts_t *o) PD_WUR;
/* New events were committed: the relay looks now rather than at its next tick. */
void pd_relay_kick(pd_relay_t *r);
/* Stops the relay, then the engine (waiting for attempts in flight, up to the attempt
 * timeout). Accepts NULL. */
void pd_relay_stop(pd_relay_t *r);

/* The event object (Stripe's shape), as webhooks deliver it and GET /v1/events returns it. */
void pd_event_json(pd_jw_t *w, const pd_event_rec_t *e);

#endif
