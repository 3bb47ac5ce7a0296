/*
 * The caller of an API request, as resolved by the authentication filter and left
 * in pd_req_t.auth for later filters (usage plans, velocity limits) and handlers.
 * Holds identifiers only: never the API key itself.
 */
#ifndef PAYD_AUTH_H
#define PAYD_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "payd/id.h"

typedef enum { PD_KEY_SECRET, PD_KEY_PUBLISHABLE, PD_KEY_RESTRICTED } pd_key_kind_t;

typedef struct {
    char merchant_id[PD_ID_MAX];
    char key_id[PD_ID_MAX]; /* the API key record's id (key_…), safe to log */
    bool livemode;
    pd_key_kind_t kind;
    /* usage plan of this key (defaults from configuration, overridable per key) */
    int64_t rate_per_s;
    int64_t burst;
    int64_t monthly_quota;
} pd_auth_t;

#endif
