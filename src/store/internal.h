/* Store internals. Not a public interface. */
#ifndef PAYD_STORE_INTERNAL_H
#define PAYD_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "payd/db.h"
#include "payd/store.h"

/* Applies pending migrations on the writer connection; returns the resulting version.
 * Refuses (PD_ERR_STATE, logged with the cause) a database that has tables but no
 * schema_version (not payd's) and a schema newer than this binary; the log line names
 * setting (the store.* key that points at the database). */
int pd_store_migrate(pd_db_t *db, int *version, const char *setting);
/* store_cred.c: the PostgreSQL credential of c (store.password_secret, else
 * store.password_file, else none: the URL's or libpq's own). A failure is logged in
 * one line naming the setting; *setting gets the one in force, for later errors. */
struct pd_cred;
int pd_store_cred_open(const pd_store_config_t *c, struct pd_cred **out, const char **setting);
/* read_pool.c: the reader threads of pd_store_read. free finishes the queued reads
 * (each runs: its caller waits for its answer), then joins the threads. */
typedef struct pd_read_pool pd_read_pool_t;
/* The calling reader thread's connection, with [store] read_timeout_ms in force on PostgreSQL. */
pd_db_t *pd_store_pool_reader(pd_store_t *s);
int pd_read_pool_new(pd_read_pool_t **out, pd_store_t *s, int nthreads, int64_t max_queue);
int pd_read_pool_submit(pd_read_pool_t *p, pd_read_fn fn, void *arg);
void pd_read_pool_stats(pd_read_pool_t *p, pd_store_stats_t *out);
void pd_read_pool_free(pd_read_pool_t *p);
/* The number of migrations this binary knows. */
int pd_store_schema_latest(void);

/* PostgreSQL SQL translation (pg_sql.c), token-aware: quoted strings, quoted
 * identifiers and comments are never rewritten.
 * pd_pg_params: "?" and "?NNN" placeholders to "$1".."$n" into out (cap bytes incl. NUL);
 * *nparams gets n, is_null_ctx[i] whether placeholder i is followed by IS (so a NULL
 * bound there needs an explicit type). PD_ERR_TOOBIG past cap or max_params. */
int pd_pg_params(const char *sql, char *out, size_t cap, size_t *nparams, bool *is_null_ctx, size_t max_params);
/* pd_pg_ddl: the migrations' SQLite types to PostgreSQL's (INTEGER -> BIGINT,
 * INTEGER PRIMARY KEY -> identity, BLOB -> BYTEA, WITHOUT ROWID dropped, a table
 * rename renames its primary key index and identity sequence). PD_ERR_TOOBIG past cap. */
int pd_pg_ddl(const char *sql, char *out, size_t cap);

#endif
