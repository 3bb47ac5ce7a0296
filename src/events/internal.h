/* Internals of the relay and its webhook queue (relay.c, queue.c). Not a public interface. */
#ifndef PAYD_EVENTS_INTERNAL_H
#define PAYD_EVENTS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "payd/id.h"
#include "payd/relay.h"
#include "payd/stream.h"
#include "payd/webhook.h"
#include "payd/webhook_sched.h"

/* an endpoint's signing secret, decrypted (queue.c) */
#define PD_RELAY_SECRETS 16
typedef struct {
    char endpoint[PD_ID_MAX];
    char wrapped[512]; /* the wrapped secret it came from (webhook_endpoints.secret) */
    pd_buf_t secret;
    int64_t at; /* unix time it was decrypted; 0: the slot is empty */
} pd_relay_secret_t;

struct pd_relay {
    pd_store_t *store;
    pd_vault_client_t *vault;
    int per_endpoint;
    int64_t timeout_ms;
    bool live_rules_in_test; /* test-mode endpoints get the live rules (no private targets) */
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool kicked;
    pd_webhook_engine_t *engine;
    pd_webhook_sched_t *sched; /* the engine thread's (queue.c) */
    char cursor[PD_ID_MAX];    /* where the next look for due endpoints starts */
    pd_stream_t *stream;       /* the transaction stream's publisher, or NULL (stream.c) */
    int64_t backlog_at, backlog; /* queue.c: payd_webhook_backlog, counted every 5 s on the engine thread */
    pd_relay_secret_t secrets[PD_RELAY_SECRETS]; /* queue.c: engine thread only */
};

/* queue.c: the engine with its queue over the store */
int pd_relay_queue_start(pd_relay_t *rl, int max_in_flight) PD_WUR;
void pd_relay_queue_stop(pd_relay_t *rl);

#endif
