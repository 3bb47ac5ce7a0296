/* Store internals. Not a public interface. */
#ifndef PAYD_STORE_INTERNAL_H
#define PAYD_STORE_INTERNAL_H

#include "payd/db.h"
#include "payd/store.h"

/* Applies pending migrations on the writer connection; returns the resulting version. */
int pd_store_migrate(pd_db_t *db, int *version);

#endif
