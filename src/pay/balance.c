/* Balance transactions (payd/transitions.h): built here only. */
#include <stdio.h>
#include <string.h>

#include "payd/transitions.h"

static int
btxn_new(pd_btxn_rec_t *bt, const pd_charge_rec_t *ch, const char *type, const char *source, int64_t now)
{
    memset(bt, 0, sizeof(*bt));
    int r = pd_id_new("txn", bt->id, sizeof(bt->id));
    if (r != 0)
        return r;
    snprintf(bt->merchant_id, sizeof(bt->merchant_id), "%s", ch->merchant_id);
    bt->livemode = ch->livemode;
    snprintf(bt->currency, sizeof(bt->currency), "%s", ch->currency);
    snprintf(bt->type, sizeof(bt->type), "%s", type);
    snprintf(bt->source, sizeof(bt->source), "%s", source);
    bt->created = now;
    bt->seq = pd_next_seq();
    return 0;
}

int
pd_btxn_for_capture(pd_btxn_rec_t *bt, const pd_charge_rec_t *ch, int64_t captured, int64_t fee, int64_t now)
{
    int r = btxn_new(bt, ch, "charge", ch->id, now);
    if (r != 0)
        return r;
    bt->amount = captured;
    bt->fee = fee;
    bt->net = captured - fee;
    snprintf(bt->status, sizeof(bt->status), "pending");
    bt->available_on = now + PD_AVAILABLE_AFTER_S;
    bt->description = ch->description;
    return 0;
}

int
pd_btxn_for_refund(pd_btxn_rec_t *bt, const pd_charge_rec_t *ch, const char *refund_id, int64_t amount, int64_t now)
{
    int r = btxn_new(bt, ch, "refund", refund_id, now);
    if (r != 0)
        return r;
    bt->amount = -amount;
    bt->net = -amount;
    snprintf(bt->status, sizeof(bt->status), "available");
    bt->available_on = now;
    return 0;
}

int
pd_btxn_for_dispute(pd_btxn_rec_t *bt, const pd_charge_rec_t *ch, const char *dispute_id, int64_t amount, int64_t fee,
                    bool reinstated, int64_t now)
{
    int r = btxn_new(bt, ch, "adjustment", dispute_id, now);
    if (r != 0)
        return r;
    bt->amount = reinstated ? amount : -amount;
    bt->fee = reinstated ? -fee : fee;
    bt->net = bt->amount - bt->fee;
    snprintf(bt->status, sizeof(bt->status), "available");
    bt->available_on = now;
    bt->description = reinstated ? "Chargeback reversal" : "Chargeback withdrawal";
    return 0;
}
