/*
 * Backend-neutral SQL execution. The store's repositories (merchants, keys,
 * payment intents, ...) are written against this interface with portable SQL
 * ("?" placeholders, INTEGER/TEXT/BLOB, no backend-specific functions), so the
 * SQLite backend and the PostgreSQL backend run the same statements.
 *
 * A pd_db_t is one connection. The store hands out the writer's connection inside a
 * write function (see store.h) and a per-thread reader connection for reads.
 * SQL strings must be string literals (the backend caches prepared statements by
 * their address).
 */
#ifndef PAYD_DB_H
#define PAYD_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "payd/buf.h"
#include "payd/error.h"

typedef enum { PD_SQL_NULL, PD_SQL_INT, PD_SQL_TEXT, PD_SQL_BLOB } pd_sqltype_t;

typedef struct {
    pd_sqltype_t t;
    int64_t i;
    const void *p;
    size_t len;
} pd_sqlval_t;

static inline pd_sqlval_t
pd_sql_text(const char *s)
{
    return s != NULL ? (pd_sqlval_t){.t = PD_SQL_TEXT, .p = s, .len = strlen(s)} : (pd_sqlval_t){.t = PD_SQL_NULL};
}

#define PD_SQL_I(x) ((pd_sqlval_t){.t = PD_SQL_INT, .i = (int64_t)(x)})
/* text from a C string; NULL binds SQL NULL */
#define PD_SQL_S(s) pd_sql_text(s)
#define PD_SQL_V(v) ((pd_sqlval_t){.t = PD_SQL_TEXT, .p = (v).p, .len = (v).len})
#define PD_SQL_B(ptr, n) ((pd_sqlval_t){.t = PD_SQL_BLOB, .p = (ptr), .len = (n)})
#define PD_SQL_NIL ((pd_sqlval_t){.t = PD_SQL_NULL})
#define PD_SQL_ARGS(...) (const pd_sqlval_t[]){__VA_ARGS__}, sizeof((const pd_sqlval_t[]){__VA_ARGS__}) / sizeof(pd_sqlval_t)

typedef struct pd_db pd_db_t;
typedef struct pd_row pd_row_t;

/* Row accessors (valid only inside the row callback). Text is NUL-terminated. */
int64_t pd_row_int(const pd_row_t *r, int col);
bool pd_row_is_null(const pd_row_t *r, int col);
pd_view_t pd_row_text(const pd_row_t *r, int col);
/* Copies a text column into dst (cap incl. NUL), truncating never: PD_ERR_TOOBIG if it does not fit. */
int pd_row_copy(const pd_row_t *r, int col, char *dst, size_t cap) PD_WUR;

/* Return 0 to continue, 1 to stop early, < 0 to abort with that error. */
typedef int (*pd_row_fn)(const pd_row_t *row, void *arg);

/* Executes a statement; *changes (may be NULL) gets the number of rows changed. */
int pd_db_exec(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, int64_t *changes) PD_WUR;
/*
 * Executes a statement whose failure only fails the write it is part of (an insert of
 * a new row, an update whose row count does not matter). Inside a transaction the
 * backend may queue it and send it with the next statement (PostgreSQL's pipeline
 * mode): then its error is the answer of a later statement, or of the write's end
 * (pd_db_flush, which the store's writer calls after each write function). Outside a
 * transaction, and on SQLite, it is pd_db_exec. Callers treat a non-zero return as
 * they would pd_db_exec's, and must not depend on the statement's effect except
 * through later statements of the same connection (which see it, in order).
 */
int pd_db_exec_deferred(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs) PD_WUR;
/* Waits for every deferred statement: 0, or the first one's error. */
int pd_db_flush(pd_db_t *db) PD_WUR;
/* Runs a query, calling fn per row. Returns 0, the callback's error, or a db error. */
int pd_db_query(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, pd_row_fn fn, void *arg) PD_WUR;
/* Convenience: the first column of the first row as an integer; PD_ERR_NOTFOUND if no row. */
int pd_db_query_int(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, int64_t *out) PD_WUR;

/* Backend interface (implemented by sqlite.c and postgres.c). */
typedef struct {
    const char *name;
    int (*exec)(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, int64_t *changes);
    /* optional (NULL: exec): pd_db_exec_deferred and pd_db_flush */
    int (*exec_deferred)(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs);
    int (*flush)(pd_db_t *db);
    int (*query)(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, pd_row_fn fn, void *arg);
    int64_t (*row_int)(const pd_row_t *r, int col);
    bool (*row_is_null)(const pd_row_t *r, int col);
    pd_view_t (*row_text)(const pd_row_t *r, int col);
    /* transaction control on the writer connection */
    int (*begin)(pd_db_t *db);
    int (*commit)(pd_db_t *db);
    int (*rollback)(pd_db_t *db);
    int (*savepoint)(pd_db_t *db);
    int (*release)(pd_db_t *db);
    int (*rollback_to)(pd_db_t *db);
    /* runs a multi-statement script without parameters (migrations) */
    int (*script)(pd_db_t *db, const char *sql);
    /* optional: a lock that serializes migrations between processes sharing the
     * database (PostgreSQL: an advisory lock); lock = false releases it */
    int (*migration_lock)(pd_db_t *db, bool lock);
    /* the number of tables in the database (its default schema) besides
     * schema_version, and whether schema_version exists */
    int (*user_tables)(pd_db_t *db, int64_t *others, bool *has_version);
    /* optional (NULL when the backend cannot): defer_sync makes commit stop waiting
     * for the disk (the database stays consistent across a power loss, recent
     * commits may be missing); sync then makes every commit made before the call
     * durable. sync may run on another thread while the writer works. */
    int (*defer_sync)(pd_db_t *db);
    int (*sync)(pd_db_t *db);
    void (*close)(pd_db_t *db);
} pd_db_ops_t;

struct pd_db {
    const pd_db_ops_t *ops;
};

/* Opens an SQLite connection: writer (read-write, created if missing, WAL,
 * synchronous=FULL) or a read-only reader. */
int pd_db_open_sqlite(pd_db_t **out, const char *path, bool writer) PD_WUR;
/* Opens a PostgreSQL connection. url: a libpq URI or conninfo string (multi-host,
 * sslmode, sslrootcert, target_session_attrs ... as libpq reads them); password (may
 * be NULL) overrides the URL's. On failure why gets libpq's one-line reason (it names
 * the host, never the password): PD_ERR_AUTH for a refused password, else
 * PD_ERR_UNAVAILABLE. */
int pd_db_open_postgres(pd_db_t **out, const char *url, const char *password, char *why, size_t whycap) PD_WUR;
/* The same with a credential that can change (payd/cred.h, not owned: it outlives the
 * connection): every reconnection uses the value in force, and a password refused
 * (28P01) when the credential is a vault secret fetches the secret and retries once. */
struct pd_cred;
int pd_db_open_postgres_cred(pd_db_t **out, const char *url, struct pd_cred *cred, char *why,
                             size_t whycap) PD_WUR;
/* Bounds each statement run outside a transaction on PostgreSQL connection db (0: no
 * bound): one the server has not answered within ms gives up the connection (the next
 * statement makes a new one, its login bounded by the same time) and fails with
 * PD_ERR_UNAVAILABLE. For the reader threads, whose reads are single statements. */
void pd_db_postgres_set_timeout(pd_db_t *db, int64_t ms);
/* Process-wide SQLite settings; every SQLite user calls it before its first open
 * (the settings only take before SQLite initializes). Idempotent, thread-safe. */
void pd_sqlite_setup(void);
/* WAL checkpoints of the SQLite database at path on a thread and connection of their
 * own, so no checkpoint (and none of its fsyncs) runs inside a writer's commit; the
 * writer turns wal_autocheckpoint off. Every writer connection of pd_db_open_sqlite
 * has one. */
typedef struct pd_checkpointer pd_checkpointer_t;
int pd_checkpointer_start(pd_checkpointer_t **out, const char *path) PD_WUR;
/* the same, a checkpoint every interval_ms instead of every 50 ms (tests) */
int pd_checkpointer_start_every(pd_checkpointer_t **out, const char *path, int interval_ms) PD_WUR;
void pd_checkpointer_stop(pd_checkpointer_t *c);
/* Transaction helpers on a writer connection. */
static inline int pd_db_begin(pd_db_t *db) { return db->ops->begin(db); }
static inline int pd_db_commit(pd_db_t *db) { return db->ops->commit(db); }
static inline int pd_db_rollback(pd_db_t *db) { return db->ops->rollback(db); }
static inline int pd_db_savepoint(pd_db_t *db) { return db->ops->savepoint(db); }
static inline int pd_db_release(pd_db_t *db) { return db->ops->release(db); }
static inline int pd_db_rollback_to(pd_db_t *db) { return db->ops->rollback_to(db); }
static inline int pd_db_script(pd_db_t *db, const char *sql) { return db->ops->script(db, sql); }
static inline void pd_db_close(pd_db_t *db) { if (db != NULL) db->ops->close(db); }

struct pd_row {
    const pd_db_ops_t *ops;
};

#endif
