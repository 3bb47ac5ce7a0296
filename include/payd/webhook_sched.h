/*
 * Fair shares of the webhook engine's slots among endpoints and merchants.
 *
 * The queue knows what is due; the scheduler decides who gets the free slots and
 * keeps count of the attempts in flight to each endpoint. Its rules:
 *  - an endpoint never has more than `per_endpoint` attempts in flight, so an endpoint
 *    that hangs holds that many slots for the attempt timeout and no more;
 *  - each free slot goes to the merchant served least recently among those with due
 *    work and room, and within that merchant to its endpoint served least recently:
 *    merchants share the slots equally whatever their number of endpoints, and a
 *    merchant's endpoints share its part equally (round-robin at both levels);
 *  - within an endpoint, due retries and due first attempts take turns, so a retry
 *    never waits behind the endpoint's whole backlog of first attempts.
 * The scheduler is work-conserving: a slot nobody else can use goes to whoever can.
 *
 * Not thread-safe: a scheduler belongs to the engine thread (the queue's next_due and
 * record run there).
 */
#ifndef PAYD_WEBHOOK_SCHED_H
#define PAYD_WEBHOOK_SCHED_H

#include <stddef.h>

#include "payd/error.h"
#include "payd/id.h"

/* most candidates one plan takes (the queue looks for no more at once) */
#define PD_WEBHOOK_SCHED_MAX_CANDIDATES 1024

typedef struct pd_webhook_sched pd_webhook_sched_t;

/* An endpoint with due deliveries, as the queue found it. */
typedef struct {
    char endpoint[PD_ID_MAX], merchant[PD_ID_MAX];
    int due_retries, due_first; /* due deliveries in each lane; counting up to per_endpoint is enough */
    int grant_retries, grant_first; /* out: how many of each to start now (oldest first) */
} pd_webhook_cand_t;

/* per_endpoint >= 1. */
int pd_webhook_sched_new(pd_webhook_sched_t **out, int per_endpoint) PD_WUR;
void pd_webhook_sched_free(pd_webhook_sched_t *s);

/* Shares up to `slots` among the n candidates (one entry per endpoint) by the rules
 * above, setting every candidate's grant_* fields; returns the number of slots
 * granted, or PD_ERR_NOMEM (then nothing is granted). A grant is a permission: the
 * queue reports each attempt it really starts with pd_webhook_sched_started. */
int pd_webhook_sched_plan(pd_webhook_sched_t *s, pd_webhook_cand_t *c, size_t n, int slots) PD_WUR;
/* An attempt to the endpoint started (the endpoint was a candidate of the last plan,
 * or has attempts in flight); and one ended. Each started attempt ends exactly once. */
void pd_webhook_sched_started(pd_webhook_sched_t *s, const char *endpoint);
void pd_webhook_sched_finished(pd_webhook_sched_t *s, const char *endpoint);
/* Attempts in flight to the endpoint. */
int pd_webhook_sched_in_flight(const pd_webhook_sched_t *s, const char *endpoint);

#endif
