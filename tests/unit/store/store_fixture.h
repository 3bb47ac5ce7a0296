/*
 * The store under a unit test: a fresh temp dir per test, and with PAYD_TEST_STORE=postgres
 * a database of its own on the test's PostgreSQL (tests/integration/pg_server.h), so every
 * store test runs on both backends with the same code.
 */
#ifndef PAYD_TEST_STORE_FIXTURE_H
#define PAYD_TEST_STORE_FIXTURE_H

#include <stdint.h>

#include "payd/store.h"

/* the current test's data dir */
extern char pd_tf_dir[64];

/* cmocka setup/teardown: the dir (and the database, named NAME_N) made, then removed */
int pd_tf_setup(const char *name);
int pd_tf_teardown(void);

/* Opens a store with *c (max_batch, max_queue, readers, ... as the test wants) on the
 * backend in force: c's backend, url and (on PostgreSQL) writers are set here. */
pd_store_t *pd_tf_open(pd_store_config_t *c, int64_t pg_writers);

#endif
