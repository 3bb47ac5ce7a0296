/* Stripe's test payment methods and tokens, usable in test mode like real ones. */
#include <string.h>

#include "api/internal.h"

static const struct {
    const char *suffix; /* after "pm_card_" or "tok_" */
    const char *pan;
} test_cards[] = {
    {"visa", "4242424242424242"},
    {"visa_debit", "4000056655665556"},
    {"mastercard", "5555555555554444"},
    {"mastercard_debit", "5200828282828210"},
    {"mastercard_prepaid", "5105105105105100"},
    {"amex", "378282246310005"},
    {"discover", "6011111111111117"},
    {"diners", "3056930009020004"},
    {"jcb", "3566002020360505"},
    {"unionpay", "6200000000000005"},
    {"chargeDeclined", "4000000000000002"},
    {"chargeDeclinedInsufficientFunds", "4000000000009995"},
    {"chargeDeclinedLostCard", "4000000000009987"},
    {"chargeDeclinedStolenCard", "4000000000009979"},
    {"chargeDeclinedExpiredCard", "4000000000000069"},
    {"chargeDeclinedIncorrectCvc", "4000000000000127"},
    {"chargeDeclinedProcessingError", "4000000000000119"},
    {"chargeCustomerFail", "4000000000000341"},
    {"radarBlock", "4100000000000019"},
    {"createDispute", "4000000000000259"},
};

const char *
pd_test_pm_pan(const char *id)
{
    const char *suffix = NULL;
    if (strncmp(id, "pm_card_", 8) == 0)
        suffix = id + 8;
    else if (strncmp(id, "tok_", 4) == 0)
        suffix = id + 4;
    if (suffix == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(test_cards) / sizeof(test_cards[0]); i++)
        if (strcmp(suffix, test_cards[i].suffix) == 0)
            return test_cards[i].pan;
    return NULL;
}
