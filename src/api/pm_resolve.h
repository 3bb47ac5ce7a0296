#ifndef PAYD_API_PM_RESOLVE_H
#define PAYD_API_PM_RESOLVE_H

#include "api/internal.h"

typedef void (*pd_pm_done_fn)(pd_op_t *op);
/* Finds or creates the payment method `id` names into *pm (*pm_new: it must be
 * inserted by the caller's write), then calls done on the loop. Responds itself
 * (and does not call done) when the id is unknown or a token was already used. */
void pd_pm_resolve(pd_op_t *op, const char *id, pd_pm_rec_t *pm, bool *pm_new, pd_pm_done_fn done);
/* The same in two halves, for a handler whose load (pd_op_load) reads the payment
 * method together with what else it reads, in one hop to a reader thread:
 * pd_pm_resolve_read on the reader thread (its result as pd_pm_get's), then
 * pd_pm_resolve_with with that result on the loop. */
int pd_pm_resolve_read(pd_db_t *db, pd_op_t *op, const char *id, pd_pm_rec_t *pm);
void pd_pm_resolve_with(pd_op_t *op, int rc, const char *id, pd_pm_rec_t *pm, bool *pm_new, pd_pm_done_fn done);

#endif
