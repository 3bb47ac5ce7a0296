/* The PaymentIntent state machine (Stripe's statuses and the actions each allows). */
#include <stdio.h>
#include <string.h>

#include "payd/pay.h"

static const char *const names[PD_PI_STATUS_COUNT] = {
    "requires_payment_method", "requires_confirmation", "requires_action", "processing",
    "requires_capture",        "canceled",              "succeeded",
};

static const char *const actions[PD_PI_ACTION_COUNT] = {"update", "confirm", "capture", "cancel"};

/* allowed[status][action] */
static const bool allowed[PD_PI_STATUS_COUNT][PD_PI_ACTION_COUNT] = {
    /*                         update confirm capture cancel */
    [PD_PI_REQUIRES_PAYMENT_METHOD] = {true, true, false, true},
    [PD_PI_REQUIRES_CONFIRMATION] = {true, true, false, true},
    [PD_PI_REQUIRES_ACTION] = {true, true, false, true},
    [PD_PI_PROCESSING] = {false, false, false, false},
    [PD_PI_REQUIRES_CAPTURE] = {false, false, true, true},
    [PD_PI_CANCELED] = {false, false, false, false},
    [PD_PI_SUCCEEDED] = {false, false, false, false},
};

const char *
pd_pi_status_name(pd_pi_status_t s)
{
    return (unsigned)s < PD_PI_STATUS_COUNT ? names[s] : "unknown";
}

int
pd_pi_status_parse(pd_view_t s)
{
    for (int i = 0; i < PD_PI_STATUS_COUNT; i++)
        if (pd_view_eq_cstr(s, names[i]))
            return i;
    return -1;
}

bool
pd_pi_allowed(pd_pi_status_t s, pd_pi_action_t a)
{
    return (unsigned)s < PD_PI_STATUS_COUNT && (unsigned)a < PD_PI_ACTION_COUNT && allowed[s][a];
}

void
pd_pi_refusal(pd_pi_status_t s, pd_pi_action_t a, char *msg, size_t cap)
{
    snprintf(msg, cap, "You cannot %s this PaymentIntent because it has a status of %s.",
             (unsigned)a < PD_PI_ACTION_COUNT ? actions[a] : "act on", pd_pi_status_name(s));
}

pd_pi_status_t
pd_pi_after_authorization(bool approved, bool capture_automatic)
{
    if (!approved)
        return PD_PI_REQUIRES_PAYMENT_METHOD;
    return capture_automatic ? PD_PI_SUCCEEDED : PD_PI_REQUIRES_CAPTURE;
}
