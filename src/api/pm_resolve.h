#ifndef PAYD_API_PM_RESOLVE_H
#define PAYD_API_PM_RESOLVE_H

#include "api/internal.h"

typedef void (*pd_pm_done_fn)(pd_op_t *op);
/* Finds or creates the payment method `id` names into *pm (*pm_new: it must be
 * inserted by the caller's write), then calls done on the loop. Responds itself
 * (and does not call done) when the id is unknown or a token was already used. */
void pd_pm_resolve(pd_op_t *op, const char *id, pd_pm_rec_t *pm, bool *pm_new, pd_pm_done_fn done);

#endif
