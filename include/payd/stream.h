/*
 * The transaction stream ([stream], src/events/stream.c): every event, published to
 * Redis streams payd:txn:0 .. payd:txn:(partitions-1), the partition being
 * pd_stream_partition(merchant id). One entry per event with the fields id, type,
 * merchant, livemode ("true"/"false"), created (Unix seconds) and payload: the event
 * JSON, or (encrypt = true, the default) the hex of its envelope under alias/events
 * with the context pd_stream_context(). XADD trims with MINID ~ at the retention.
 *
 * Delivery is at least once: the relay moves an event to the stream's queue
 * (pd_stream_outbox_*) in the write that makes its webhook deliveries, and the
 * publisher deletes the row only after Redis acknowledged the entry. A crash between
 * the two repeats the entry with the same id; consumers de-duplicate by id. Redis
 * down: rows wait (webhooks are not affected), the publisher retries with back-off
 * (100 ms doubling to 5 s) and logs once per 10 s.
 */
#ifndef PAYD_STREAM_H
#define PAYD_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/config.h"
#include "payd/error.h"
#include "payd/store.h"
#include "payd/vault.h"

typedef struct {
    char *backend;        /* "off", "redis" or "" (redis when [cache] url names a Redis) */
    char *url;            /* "" : the cache's url (with its tls_ca and password_file) */
    int64_t partitions;   /* streams payd:txn:0 .. N-1 */
    int64_t retention_ms; /* MINID ~ trimming */
    bool encrypt;         /* payload under alias/events */
    int64_t replicas;     /* an entry counts as published once this many replicas hold it (WAIT) */
} pd_stream_config_t;

#define PD_STREAM_KEY_PREFIX "payd:txn:"
#define PD_STREAM_KEY_ALIAS "alias/events"

/* Registers [stream] in cfg. */
int pd_stream_config_register(pd_config_t *cfg) PD_WUR;
/* The [stream] values in force (NULL when never registered). */
const pd_stream_config_t *pd_stream_config(void);
/* The partition of a merchant: FNV-1a (32-bit) of its id, mod partitions. */
uint32_t pd_stream_partition(const char *merchant, int64_t partitions);
/* The encryption context of an entry's payload: "payd:txn|<event id>|<merchant id>". */
int pd_stream_context(char *out, size_t cap, const char *event_id, const char *merchant) PD_WUR;

/* Where the stream goes, resolved from [stream] and [cache]: *on false for backend =
 * off (or the default with no Redis cache); else url, tls_ca and password_file point
 * into the configs. A bad backend value is PD_ERR_CONFIG with err. */
typedef struct {
    bool on;
    const char *url, *tls_ca, *password_file;
    int64_t timeout_ms;
} pd_stream_target_t;
int pd_stream_target(pd_stream_target_t *t, char *err, size_t cap) PD_WUR;

typedef struct pd_stream pd_stream_t;
/* Starts the publisher thread when the stream is on (*out NULL when off). A bad url
 * or credentials Redis refuses at start are errors; an unreachable Redis is not. */
int pd_stream_start(pd_stream_t **out, pd_store_t *store, pd_vault_client_t *vault, char *err, size_t cap) PD_WUR;
/* Events were queued for the stream: publish now rather than at the next tick. Accepts NULL. */
void pd_stream_kick(pd_stream_t *s);
/* Stops the publisher (an entry in flight is published or left queued). Accepts NULL. */
void pd_stream_stop(pd_stream_t *s);

#endif
