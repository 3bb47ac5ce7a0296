/* The charge and refund lifecycles (payd/pay.h): enums and transition tables. */
#include <string.h>

#include "payd/pay.h"

static const char *const charge_names[PD_CH_STATE_COUNT] = {
    "processing", "failed", "authorized", "capturing", "voiding", "captured", "voided",
};

#define NONE (-1)
/* next[state][event]: the state an event leads to, NONE where it is not allowed */
static const int charge_next[PD_CH_STATE_COUNT][PD_CH_EVENT_COUNT] = {
    /*                    APPROVE           DECLINE       REQ_CAPTURE      REQ_VOID       CAPTURE         VOID          REFUSE            REFUND */
    [PD_CH_PROCESSING] = {PD_CH_AUTHORIZED, PD_CH_FAILED, NONE,            NONE,          PD_CH_CAPTURED, NONE,         NONE,             NONE},
    [PD_CH_FAILED] =     {NONE,             NONE,         NONE,            NONE,          NONE,           NONE,         NONE,             NONE},
    [PD_CH_AUTHORIZED] = {NONE,             NONE,         PD_CH_CAPTURING, PD_CH_VOIDING, PD_CH_CAPTURED, PD_CH_VOIDED, NONE,             NONE},
    /* what the processor made is the truth, even where payd requested the other */
    [PD_CH_CAPTURING] =  {NONE,             NONE,         NONE,            NONE,          PD_CH_CAPTURED, PD_CH_VOIDED, PD_CH_AUTHORIZED, NONE},
    [PD_CH_VOIDING] =    {NONE,             NONE,         NONE,            NONE,          PD_CH_CAPTURED, PD_CH_VOIDED, PD_CH_AUTHORIZED, NONE},
    [PD_CH_CAPTURED] =   {NONE,             NONE,         NONE,            NONE,          NONE,           NONE,         NONE,             PD_CH_CAPTURED},
    [PD_CH_VOIDED] =     {NONE,             NONE,         NONE,            NONE,          NONE,           NONE,         NONE,             NONE},
};

const char *
pd_charge_state_name(pd_charge_state_t s)
{
    return (unsigned)s < PD_CH_STATE_COUNT ? charge_names[s] : "unknown";
}

int
pd_charge_next(pd_charge_state_t s, pd_charge_event_t e)
{
    if ((unsigned)s >= PD_CH_STATE_COUNT || (unsigned)e >= PD_CH_EVENT_COUNT)
        return NONE;
    return charge_next[s][e];
}

static const char *const refund_names[PD_RF_STATUS_COUNT] = {"pending", "succeeded", "failed", "canceled"};

/* only a pending refund moves; the processor's answer decides where */
static const int refund_next[PD_RF_STATUS_COUNT][PD_RF_EVENT_COUNT] = {
    /*                   APPROVE          DECLINE */
    [PD_RF_PENDING] = {PD_RF_SUCCEEDED, PD_RF_FAILED},
    [PD_RF_SUCCEEDED] = {NONE, NONE},
    [PD_RF_FAILED] = {NONE, NONE},
    [PD_RF_CANCELED] = {NONE, NONE},
};

const char *
pd_refund_status_name(pd_refund_status_t s)
{
    return (unsigned)s < PD_RF_STATUS_COUNT ? refund_names[s] : "unknown";
}

int
pd_refund_status_parse(const char *s)
{
    for (int i = 0; i < PD_RF_STATUS_COUNT; i++)
        if (s != NULL && strcmp(s, refund_names[i]) == 0)
            return i;
    return NONE;
}

int
pd_refund_next(pd_refund_status_t s, pd_refund_event_t e)
{
    if ((unsigned)s >= PD_RF_STATUS_COUNT || (unsigned)e >= PD_RF_EVENT_COUNT)
        return NONE;
    return refund_next[s][e];
}
