/*
 * The store's outbox and webhook delivery queue: the SQL behind the outbox relay and
 * the webhook queue (src/events/relay.c, queue.c). A backend implements these; the
 * workers never write SQL of their own.
 *
 * Outbox: an event commits with a row in the outbox (pd_event_insert). The relay reads
 * the queued rows in order, adds one pending delivery per matching live endpoint, and
 * removes the rows it read, in one write.
 *
 * Deliveries: a pending row is due when next_at <= now. Two lanes per endpoint: first
 * attempts (attempts = 0) and retries. A lease moves next_at past the attempt timeout,
 * so a crash mid-attempt retries the row later; it takes a row only while the row is
 * pending and its endpoint live, so a delete that commits first wins.
 */
#ifndef PAYD_OUTBOX_H
#define PAYD_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/db.h"
#include "payd/error.h"
#include "payd/id.h"

/* --- outbox --- */
typedef struct {
    int64_t seq; /* the outbox row's id: increasing in insertion order (not commit order with several writers) */
    char event_id[PD_ID_MAX], merchant[PD_ID_MAX], type[64];
    bool livemode;
} pd_outbox_ev_t;

/* The oldest queued events, up to max, into out (*n of them). A malformed row comes with
 * an empty event_id: skip it (its seq still counts). */
int pd_outbox_peek(pd_db_t *db, pd_outbox_ev_t *out, size_t max, size_t *n) PD_WUR;
/* fn(endpoint id, enabled_events JSON array) for each live (enabled, not deleted) endpoint
 * of a merchant in a mode; fn returns non-zero to fail the walk. */
typedef int (*pd_outbox_endpoint_fn)(const char *endpoint_id, pd_view_t enabled_events, void *arg);
int pd_outbox_endpoints(pd_db_t *db, const char *merchant, bool livemode, pd_outbox_endpoint_fn fn, void *arg) PD_WUR;

typedef struct {
    char id[PD_ID_MAX], event_id[PD_ID_MAX], endpoint_id[PD_ID_MAX], merchant[PD_ID_MAX];
} pd_delivery_new_t;

/* Inside a write: the nev outbox rows the peek read (ev) removed, then the n new
 * deliveries (pending, due now). Only those rows: with several writers or nodes, ids
 * are not committed in order, so a row with a smaller id may appear after the peek.
 * PD_ERR_CONFLICT (nothing written) when one of them is gone: another relay took it. */
int pd_outbox_relay(pd_db_t *tx, const pd_delivery_new_t *d, size_t n, const pd_outbox_ev_t *ev, size_t nev,
                    int64_t now) PD_WUR;

/* --- the transaction stream's queue (src/events/stream.c) --- */
/* Inside the relay's write: the nev events (ev) queued for the stream. */
int pd_stream_outbox_queue(pd_db_t *tx, const pd_outbox_ev_t *ev, size_t nev) PD_WUR;
/* The oldest events queued for the stream, as pd_outbox_peek. */
int pd_stream_outbox_peek(pd_db_t *db, pd_outbox_ev_t *out, size_t max, size_t *n) PD_WUR;
/* Events queued for the stream now (payd_stream_backlog). */
int pd_stream_outbox_backlog(pd_db_t *db, int64_t *n) PD_WUR;
/* Inside a write: removes the nev rows (by seq) Redis acknowledged; a row already gone
 * (another node published it too: a duplicate entry with the same id) is no error. */
int pd_stream_outbox_done(pd_db_t *tx, const pd_outbox_ev_t *ev, size_t nev) PD_WUR;

/* --- delivery queue --- */
/* fn(endpoint, merchant or NULL when the endpoint is deleted or disabled, due retries,
 * due first attempts), each count up to cap; fn returns non-zero to stop the walk. */
typedef int (*pd_delivery_cand_fn)(const char *endpoint, const char *merchant, int due_retries, int due_first,
                                   void *arg);
/* The endpoints with pending deliveries whose id is after cursor ("" for the start), in
 * id order, at most limit of them. Each lane's index is walked one endpoint at a time,
 * so a backlog behind one endpoint costs a seek, not a scan. */
int pd_delivery_candidates(pd_db_t *db, const char *cursor, int64_t limit, int64_t now, int64_t cap,
                           pd_delivery_cand_fn fn, void *arg) PD_WUR;

typedef struct {
    char id[PD_ID_MAX], event_id[PD_ID_MAX], url[2048], secret_hex[512], merchant[PD_ID_MAX], endpoint[PD_ID_MAX];
    int attempts;
    int64_t first_at;
    bool livemode;
} pd_delivery_due_t;

/* Up to limit due rows of one lane (retries or first attempts) of an endpoint, oldest
 * due first, appended to out[*n .. max). */
int pd_delivery_due(pd_db_t *db, const char *endpoint, bool retries, int64_t now, int64_t limit, pd_delivery_due_t *out,
                    int max, int *n) PD_WUR;
/* Inside a write: leases the row until `until` if it is still pending, due at now and
 * its endpoint live; *leased says whether it was. */
int pd_delivery_lease(pd_db_t *tx, const char *id, int64_t now, int64_t until, bool *leased) PD_WUR;
/* Inside a write: an attempt's outcome (state succeeded, pending with next_at, or
 * failed). A delivery canceled while its attempt was in flight stays canceled. */
int pd_delivery_record(pd_db_t *tx, const char *id, const char *state, int64_t next_at, int http_status,
                       const char *error, int64_t now) PD_WUR;

/* Webhook deliveries pending now (payd_webhook_backlog): one count over the partial
 * indexes of pending rows. */
int pd_delivery_backlog(pd_db_t *db, int64_t *n) PD_WUR;

#endif
