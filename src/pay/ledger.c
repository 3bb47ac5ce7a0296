/* Double-entry postings of each money movement. Every posting sums to zero. */
#include <string.h>

#include "payd/pay.h"

static void
add(pd_posting_t *p, const char *account, int64_t amount)
{
    if (p->n < PD_LEDGER_MAX_ENTRIES && amount != 0)
        p->e[p->n++] = (pd_entry_t){account, amount};
}

int64_t
pd_fee(int64_t amount, int exponent)
{
    int64_t fixed = exponent == 0 ? 0 : exponent == 3 ? 300 : 30;
    /* 2.9 %, rounded half up, in integer arithmetic */
    int64_t fee = (amount * 29 + 500) / 1000 + fixed;
    return fee > amount ? amount : fee;
}

void
pd_post_authorization(pd_posting_t *p, int64_t authorized)
{
    memset(p, 0, sizeof(*p));
    p->kind = "authorization";
    add(p, "card_holds", authorized);
    add(p, "merchant_holds", -authorized);
}

void
pd_post_capture(pd_posting_t *p, int64_t authorized, int64_t captured, int64_t fee)
{
    memset(p, 0, sizeof(*p));
    p->kind = captured < authorized ? "capture_partial" : "capture";
    /* the whole hold is released; the captured part becomes real money */
    add(p, "merchant_holds", authorized);
    add(p, "card_holds", -authorized);
    add(p, "processor_receivable", captured);
    add(p, "merchant_balance", -(captured - fee));
    add(p, "fees", -fee);
}

void
pd_post_void(pd_posting_t *p, int64_t authorized)
{
    memset(p, 0, sizeof(*p));
    p->kind = "void";
    add(p, "merchant_holds", authorized);
    add(p, "card_holds", -authorized);
}

void
pd_post_refund(pd_posting_t *p, int64_t refunded)
{
    memset(p, 0, sizeof(*p));
    p->kind = "refund";
    add(p, "merchant_balance", refunded);
    add(p, "processor_receivable", -refunded);
}

void
pd_post_dispute_withdrawal(pd_posting_t *p, int64_t amount, int64_t fee)
{
    memset(p, 0, sizeof(*p));
    p->kind = "dispute";
    add(p, "processor_receivable", -amount);
    add(p, "merchant_balance", amount + fee);
    add(p, "fees", -fee);
}

void
pd_post_dispute_reinstatement(pd_posting_t *p, int64_t amount, int64_t fee)
{
    memset(p, 0, sizeof(*p));
    p->kind = "dispute_reversal";
    add(p, "processor_receivable", amount);
    add(p, "merchant_balance", -(amount + fee));
    add(p, "fees", fee);
}

int64_t
pd_dispute_fee(int exponent)
{
    return exponent == 0 ? 15 : exponent == 3 ? 15000 : 1500;
}

bool
pd_posting_balanced(const pd_posting_t *p)
{
    int64_t sum = 0;
    for (size_t i = 0; i < p->n; i++)
        sum += p->e[i].amount;
    return sum == 0;
}
