/*
 * Where the vault keeps its tables: vault.db (SQLite, one instance) or a PostgreSQL
 * database that several instances share. Versioned migrations, applied under the
 * backend's migration lock, and, on a shared database, the rules that keep two
 * instances from breaking each other's invariants:
 *
 * - every write transaction begins by taking the vault's write lock (a transaction-level
 *   advisory lock) and reading the audit chain's head, so the instances' transactions
 *   run one after the other: the hash chain has one head, and every read-modify-write
 *   (next key version, next data key id, a scheduled rotation's "is it due") sees the
 *   other instance's committed work. No statement runs before the lock, so no
 *   transaction holds a row lock while it waits for it (no deadlock);
 * - scheduled work (automatic rotations, deletions, secret rotations) runs on the one
 *   instance holding the scheduler lease (a session-level advisory lock); if that
 *   instance dies its session ends and another takes the lease on its next tick.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payd/log.h"
#include "vault/internal.h"

/* advisory lock keys in the vault's database: "pdvw" (writes), "pdvs" (scheduler) */
#define WRITE_LOCK "1885631095"
#define LEASE_LOCK 1885631091
#define STUCK_TX_S "10"
#define LOCK_WAIT_S "5"

/* --- migrations --- */

static const char m1[] =
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS kms_keys ("
    "  num INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, alias TEXT UNIQUE, state TEXT NOT NULL,"
    "  current_version INTEGER NOT NULL, min_decrypt_version INTEGER NOT NULL, rotation_days INTEGER NOT NULL,"
    "  next_rotation INTEGER NOT NULL, deletion_at INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL,"
    "  policy TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS kms_versions ("
    "  key_num INTEGER NOT NULL, version INTEGER NOT NULL, material BLOB, created INTEGER NOT NULL,"
    "  PRIMARY KEY (key_num, version));"
    "CREATE TABLE IF NOT EXISTS data_keys ("
    "  id INTEGER PRIMARY KEY, key_num INTEGER NOT NULL, kek_version INTEGER NOT NULL, wrapped BLOB NOT NULL,"
    "  created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cards ("
    "  token TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, dk_id INTEGER NOT NULL, pan BLOB NOT NULL, name BLOB,"
    "  exp_month INTEGER NOT NULL, exp_year INTEGER NOT NULL, brand TEXT NOT NULL, funding TEXT NOT NULL,"
    "  last4 TEXT NOT NULL, bin TEXT NOT NULL, fingerprint TEXT NOT NULL, created INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS secrets ("
    "  name TEXT PRIMARY KEY, rotation_days INTEGER NOT NULL, next_rotation INTEGER NOT NULL,"
    "  handler TEXT NOT NULL, length INTEGER NOT NULL, exclude TEXT NOT NULL, rotation_token TEXT,"
    "  rotation_step TEXT, created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS secret_versions ("
    "  name TEXT NOT NULL, version_id TEXT NOT NULL, stage TEXT NOT NULL, kek_version INTEGER NOT NULL,"
    "  value BLOB NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (name, version_id));"
    "CREATE UNIQUE INDEX IF NOT EXISTS secret_one_current ON secret_versions(name) WHERE stage = 'CURRENT';"
    "CREATE UNIQUE INDEX IF NOT EXISTS secret_one_pending ON secret_versions(name) WHERE stage = 'PENDING';";

/* Migration 1 is the schema vaults had before migrations were versioned (every
 * statement IF NOT EXISTS), with the audit log's (pd_audit_schema), so an existing
 * vault.db takes it as a no-op. Append new
 * migrations; never edit one that shipped. */
static const char *const migrations[] = {m1};
#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

static int
migrate_locked(pd_db_t *db, const char *setting)
{
    int64_t version = 0;
    int r;
    if ((r = pd_db_script(db, "CREATE TABLE IF NOT EXISTS vault_schema_version (version INTEGER NOT NULL);")) != 0)
        return r;
    r = pd_db_query_int(db, "SELECT version FROM vault_schema_version", NULL, 0, &version);
    if (r == PD_ERR_NOTFOUND) {
        version = 0;
        if ((r = pd_db_exec(db, "INSERT INTO vault_schema_version (version) VALUES (0)", NULL, 0, NULL)) != 0)
            return r;
    } else if (r != 0) {
        return r;
    }
    if (version > NMIGRATIONS) {
        pd_log_error("vault: the vault's database has a newer schema than this payd-vault; refusing to start",
                     PD_LS("setting", setting), PD_LI("schema", version), PD_LI("known", NMIGRATIONS));
        return PD_ERR_STATE;
    }
    for (int i = (int)version; i < NMIGRATIONS; i++) {
        if ((r = pd_db_begin(db)) != 0)
            return r;
        if ((r = pd_db_script(db, migrations[i])) != 0 || (i == 0 && (r = pd_db_script(db, pd_audit_schema)) != 0) ||
            (r = pd_db_exec(db, "UPDATE vault_schema_version SET version = ?", PD_SQL_ARGS(PD_SQL_I(i + 1)), NULL)) !=
                0 ||
            (r = pd_db_commit(db)) != 0) {
            (void)pd_db_rollback(db);
            pd_log_error("vault: a schema migration failed", PD_LS("setting", setting), PD_LI("migration", i + 1),
                         PD_LERR(r));
            return r;
        }
    }
    return 0;
}

static int
migrate(pd_db_t *db, const char *setting)
{
    int r;
    if (db->ops->migration_lock != NULL && (r = db->ops->migration_lock(db, true)) != 0)
        return r;
    r = migrate_locked(db, setting);
    if (db->ops->migration_lock != NULL)
        (void)db->ops->migration_lock(db, false);
    return r;
}

/* --- the shared connection: every transaction begins under the write lock --- */

typedef struct {
    pd_db_t super;
    pd_db_t *in;
    pd_vault_state_t *v;
} shared_db_t;

static pd_db_t *
inner(pd_db_t *db)
{
    return ((shared_db_t *)db)->in;
}

static int
s_exec(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, int64_t *changes)
{
    return pd_db_exec(inner(db), sql, args, nargs, changes);
}

static int
s_query(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, pd_row_fn fn, void *arg)
{
    return pd_db_query(inner(db), sql, args, nargs, fn, arg);
}

static int
s_begin(pd_db_t *db)
{
    shared_db_t *s = (shared_db_t *)db;
    int r = pd_db_begin(s->in);
    if (r != 0)
        return r;
    /* the lock before any other statement; then the head the other instance left */
    if ((r = pd_db_exec(s->in, "SELECT pg_advisory_xact_lock(" WRITE_LOCK ")", NULL, 0, NULL)) != 0 ||
        (s->v != NULL && (r = pd_audit_load(s->in, &s->v->audit)) != 0)) {
        (void)pd_db_rollback(s->in);
        return r;
    }
    return 0;
}

static int s_commit(pd_db_t *db) { return pd_db_commit(inner(db)); }
static int s_rollback(pd_db_t *db) { return pd_db_rollback(inner(db)); }
static int s_savepoint(pd_db_t *db) { return pd_db_savepoint(inner(db)); }
static int s_release(pd_db_t *db) { return pd_db_release(inner(db)); }
static int s_rollback_to(pd_db_t *db) { return pd_db_rollback_to(inner(db)); }
static int s_script(pd_db_t *db, const char *sql) { return pd_db_script(inner(db), sql); }

static int
s_migration_lock(pd_db_t *db, bool lock)
{
    pd_db_t *in = inner(db);
    return in->ops->migration_lock != NULL ? in->ops->migration_lock(in, lock) : 0;
}

static int
s_user_tables(pd_db_t *db, int64_t *others, bool *has_version)
{
    pd_db_t *in = inner(db);
    return in->ops->user_tables(in, others, has_version);
}

static void
s_close(pd_db_t *db)
{
    if (db == NULL)
        return;
    pd_db_close(inner(db));
    free(db);
}

static const pd_db_ops_t shared_ops = {
    .name = "postgres (shared vault)",
    .exec = s_exec,
    .query = s_query,
    .begin = s_begin,
    .commit = s_commit,
    .rollback = s_rollback,
    .savepoint = s_savepoint,
    .release = s_release,
    .rollback_to = s_rollback_to,
    .script = s_script,
    .migration_lock = s_migration_lock,
    .user_tables = s_user_tables,
    .close = s_close,
};

int
pd_vault_db_open(pd_vault_state_t *v, const pd_vault_store_t *st)
{
    int r;
    if (st->pg_url == NULL) {
        if ((r = pd_db_open_sqlite(&v->db, st->sqlite_path, true)) != 0) {
            if (st->why != NULL)
                snprintf(st->why, st->whycap, "cannot open %s: %s", st->sqlite_path, pd_strerror(r));
            return r;
        }
        return migrate(v->db, "data_dir");
    }
    pd_db_t *pg = NULL;
    char why[512];
    /* An instance that stops inside a transaction (a paused VM, a stalled disk) holds the
     * write lock: the server ends its session after STUCK_TX_S idle in the transaction,
     * which frees the lock for the others, and no instance waits for a lock longer than
     * LOCK_WAIT_S (its batch fails; the next one tries again). Session settings through
     * libpq's PGOPTIONS, so that they hold on every reconnection too; the operator's own
     * PGOPTIONS, or options= in the URL, win. libpq keeps what it read for the
     * connection's reconnections (PQreset), so the variable goes again right after:
     * other libpq users in this process (secret rotation handlers) do not inherit it. */
    bool set = getenv("PGOPTIONS") == NULL;
    if (set && setenv("PGOPTIONS", "-c idle_in_transaction_session_timeout=" STUCK_TX_S "s -c lock_timeout=" LOCK_WAIT_S
                                   "s",
                      0) != 0)
        return -errno;
    r = pd_db_open_postgres(&pg, st->pg_url, st->pg_password, why, sizeof(why));
    if (set)
        (void)unsetenv("PGOPTIONS");
    if (r != 0) {
        if (st->why != NULL)
            snprintf(st->why, st->whycap, "%s", why);
        return r;
    }
    shared_db_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        pd_db_close(pg);
        return PD_ERR_NOMEM;
    }
    s->super.ops = &shared_ops;
    s->in = pg;
    s->v = v;
    v->db = &s->super;
    v->shared = true;
    /* on the connection itself: the wrapper's transactions read the audit log, which
     * the first migration makes */
    if ((r = migrate(pg, "store_url")) != 0 && st->why != NULL)
        snprintf(st->why, st->whycap, "the vault's schema cannot be applied (%s)", pd_strerror(r));
    return r;
}

bool
pd_vault_leader(pd_vault_state_t *v)
{
    if (!v->shared)
        return v->leader = true;
    int64_t held = 0;
    /* a lease held by this session shows in pg_locks; after a reconnect it is gone */
    if (v->leader &&
        (pd_db_query_int(v->db,
                         "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                         "AND classid = 0 AND objid::bigint = ? AND objsubid = 1 AND granted",
                         PD_SQL_ARGS(PD_SQL_I(LEASE_LOCK)), &held) != 0 ||
         held == 0)) {
        v->leader = false;
        pd_log_warn("vault: scheduler lease lost (database session ended); another instance may take it");
    }
    if (!v->leader) {
        int64_t got = 0;
        if (pd_db_query_int(v->db, "SELECT CASE WHEN pg_try_advisory_lock(?) THEN 1 ELSE 0 END",
                            PD_SQL_ARGS(PD_SQL_I(LEASE_LOCK)), &got) == 0 &&
            got == 1) {
            v->leader = true;
            pd_log_info("vault: this instance runs the scheduled work (rotations, deletions)");
        }
    }
    return v->leader;
}
