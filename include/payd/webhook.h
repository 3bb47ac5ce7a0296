/*
 * Webhook delivery: Stripe-compatible signatures and a delivery engine.
 *
 * Signature header (what stripe.webhooks.constructEvent verifies):
 *   Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>
 *
 * The engine POSTs events to endpoints from its own thread with libcurl's multi
 * interface (many deliveries in flight, per-request timeout), so a slow or dead
 * endpoint never blocks the API. It takes due deliveries from a queue the caller
 * implements (the store) and reports each attempt back to it, with the time of the
 * next attempt (exponential backoff with jitter, for up to PD_WEBHOOK_RETRY_WINDOW).
 */
#ifndef PAYD_WEBHOOK_H
#define PAYD_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/error.h"
#include "payd/id.h"

#define PD_WEBHOOK_RETRY_WINDOW_S (3 * 86400)
#define PD_WEBHOOK_SIG_MAX 128

/* Writes "t=...,v1=..." into out (cap >= PD_WEBHOOK_SIG_MAX). */
int pd_webhook_sign(const char *secret, size_t secret_len, int64_t t, pd_view_t payload, char *out, size_t cap) PD_WUR;
/* Verifies a header against the secret with a tolerance (seconds) around now;
 * constant-time comparison. Returns 0, PD_ERR_AUTH or PD_ERR_INVALID. */
int pd_webhook_verify(const char *secret, size_t secret_len, const char *header, pd_view_t payload, int64_t now,
                      int64_t tolerance_s) PD_WUR;
/* Seconds until the attempt after `attempt` (1-based) failed: ~min(2^attempt * 30 s,
 * 12 h) with +-25 % jitter; -1 when the retry window from first_at is exhausted. */
int64_t pd_webhook_backoff(int attempt, int64_t first_at, int64_t now);

typedef struct {
    char delivery_id[PD_ID_MAX]; /* caller's id of this (event, endpoint) delivery */
    char event_id[PD_ID_MAX];
    char endpoint_id[PD_ID_MAX]; /* the caller's endpoint (the engine only passes it back in record) */
    char url[2048];
    pd_buf_t payload;   /* the event JSON (owned; freed by the engine) */
    pd_buf_t secret;    /* the endpoint's signing secret (owned; wiped and freed by the engine) */
    int attempt;        /* this attempt's number, 1-based */
    int64_t first_at;   /* unix time of the first attempt */
    bool allow_private; /* test mode: loopback/private targets allowed */
} pd_delivery_t;

typedef struct {
    int http_status;   /* 0 when no response */
    char error[160];   /* transport error, SSRF refusal, timeout */
    bool ok;           /* 2xx */
    int64_t next_at;   /* unix time of the next attempt; 0 when done (ok or gave up) */
    int64_t duration_ms;
} pd_attempt_t;

/* one finished attempt, as record receives it */
typedef struct {
    const pd_delivery_t *d;
    pd_attempt_t a;
} pd_hook_outcome_t;

typedef struct {
    /* Fills up to max due deliveries (next_at <= now) into out, returns how many (< 0 on error).
     * Handing a delivery out leases it: the queue moves its next_at past the attempt
     * timeout, so an attempt lost in a crash is retried later, never dropped.
     * Called on the engine thread. */
    int (*next_due)(void *ctx, int64_t now, pd_delivery_t *out, int max);
    /* Records the outcomes of n attempts (engine thread): every attempt that finished in
     * one pass of the engine comes in one call, so the queue can write them at once.
     * Every delivery next_due handed out is recorded exactly once, also one the engine
     * could not start, except those still in flight when the engine stops (their lease
     * expires and they are retried). */
    void (*record)(void *ctx, const pd_hook_outcome_t *o, size_t n);
    void *ctx;
} pd_webhook_queue_t;

typedef struct pd_webhook_engine pd_webhook_engine_t;

typedef struct {
    int max_in_flight;   /* concurrent deliveries (default 64) */
    int64_t timeout_ms;  /* per attempt (default 10 s) */
    int64_t poll_ms;     /* how often to look for due deliveries when idle (default 500 ms) */
    const char *user_agent;
} pd_webhook_opts_t;

int pd_webhook_engine_start(pd_webhook_engine_t **out, const pd_webhook_queue_t *q, const pd_webhook_opts_t *o) PD_WUR;
/* Wakes the engine now (e.g. after new events were committed). Thread-safe. */
void pd_webhook_engine_kick(pd_webhook_engine_t *e);
/* Stops after in-flight attempts finish or time out. */
void pd_webhook_engine_stop(pd_webhook_engine_t *e);

/* SSRF rule for live mode: true when the address is loopback, private, link-local,
 * unique-local, multicast, unspecified or otherwise not publicly routable. IPv6 forms
 * that embed an IPv4 address (::ffff:a.b.c.d, ::ffff:0:a.b.c.d, NAT64 64:ff9b::/96,
 * 6to4 2002::/16) are judged by that address; IPv4-compatible ::a.b.c.d, local-use
 * NAT64 64:ff9b:1::/48, discard 100::/64 and Teredo 2001::/32 are always private.
 * Used both when an endpoint is registered and when libcurl connects. */
struct sockaddr;
bool pd_addr_is_private(const struct sockaddr *sa);

#endif
