/*
 * SQLite backend of pd_db_t: WAL, synchronous=FULL on the writer (or NORMAL with
 * the store's own WAL fsync, see s_defer_sync), checkpoints on a thread of their
 * own, a per-connection cache of prepared statements keyed by the SQL literal's
 * address.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "payd/log.h"
#include "payd/time.h"
#include "payd/wal_archive.h"
#include "store/internal.h"

#define CACHE_SLOTS 256

typedef struct {
    pd_db_t super;
    sqlite3 *db;
    pd_checkpointer_t *ckpt; /* writer only */
    bool in_txn;             /* holds the checkpointer's writer mutex (BEGIN to its end) */
    char *path;
    int wal_fd; /* our own descriptor of the WAL file, for s_sync (-1: commits sync) */
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cache[CACHE_SLOTS];
} sqlite_db_t;

typedef struct {
    pd_row_t super;
    sqlite3_stmt *st;
} sqlite_row_t;

static int
map_error(sqlite_db_t *d, int rc, const char *sql)
{
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        return PD_ERR_EXISTS;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return PD_ERR_AGAIN;
    case SQLITE_FULL:
        pd_log_error("database full", PD_LS("error", sqlite3_errmsg(d->db)));
        return -28; /* -ENOSPC */
    default:
        pd_log_error("database error", PD_LS("error", sqlite3_errmsg(d->db)), PD_LI("code", rc),
                     PD_LV("sql", pd_view(sql, strlen(sql) > 120 ? 120 : strlen(sql))));
        return PD_ERR_IO;
    }
}

static sqlite3_stmt *
stmt_get(sqlite_db_t *d, const char *sql, int *rc)
{
    size_t h = ((uintptr_t)sql >> 3) % CACHE_SLOTS;
    for (size_t i = 0; i < 8; i++) {
        size_t k = (h + i) % CACHE_SLOTS;
        if (d->cache[k].sql == sql)
            return d->cache[k].st;
        if (d->cache[k].sql == NULL) {
            sqlite3_stmt *st = NULL;
            if ((*rc = sqlite3_prepare_v3(d->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL)) != SQLITE_OK)
                return NULL;
            d->cache[k].sql = sql;
            d->cache[k].st = st;
            return st;
        }
    }
    *rc = SQLITE_FULL; /* cache full: a bug (too many distinct statements), reported as such */
    return NULL;
}

static int
bind_all(sqlite3_stmt *st, const pd_sqlval_t *args, size_t n)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    for (size_t i = 0; i < n; i++) {
        int idx = (int)i + 1, rc;
        switch (args[i].t) {
        case PD_SQL_NULL: rc = sqlite3_bind_null(st, idx); break;
        case PD_SQL_INT: rc = sqlite3_bind_int64(st, idx, args[i].i); break;
        case PD_SQL_TEXT: rc = sqlite3_bind_text64(st, idx, args[i].p, args[i].len, SQLITE_STATIC, SQLITE_UTF8); break;
        case PD_SQL_BLOB: rc = sqlite3_bind_blob64(st, idx, args[i].p, args[i].len, SQLITE_STATIC); break;
        default: rc = SQLITE_MISUSE;
        }
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

static int
s_exec(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, int64_t *changes)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    int rc = SQLITE_OK;
    sqlite3_stmt *st = stmt_get(d, sql, &rc);
    if (st == NULL)
        return map_error(d, rc, sql);
    if ((rc = bind_all(st, args, nargs)) != SQLITE_OK)
        return map_error(d, rc, sql);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    int r = rc == SQLITE_DONE ? 0 : map_error(d, rc, sql);
    if (changes != NULL)
        *changes = r == 0 ? sqlite3_changes64(d->db) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

static int
s_query(pd_db_t *db, const char *sql, const pd_sqlval_t *args, size_t nargs, pd_row_fn fn, void *arg)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    int rc = SQLITE_OK, r = 0;
    sqlite3_stmt *st = stmt_get(d, sql, &rc);
    if (st == NULL)
        return map_error(d, rc, sql);
    if ((rc = bind_all(st, args, nargs)) != SQLITE_OK)
        return map_error(d, rc, sql);
    sqlite_row_t row = {{db->ops}, st};
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int cr = fn(&row.super, arg);
        if (cr != 0) {
            r = cr < 0 ? cr : 0;
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE)
        r = map_error(d, rc, sql);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

static int64_t
s_row_int(const pd_row_t *r, int col)
{
    return sqlite3_column_int64(((const sqlite_row_t *)r)->st, col);
}

static bool
s_row_is_null(const pd_row_t *r, int col)
{
    return sqlite3_column_type(((const sqlite_row_t *)r)->st, col) == SQLITE_NULL;
}

static pd_view_t
s_row_text(const pd_row_t *r, int col)
{
    sqlite3_stmt *st = ((const sqlite_row_t *)r)->st;
    const unsigned char *p = sqlite3_column_text(st, col);
    if (p == NULL)
        return pd_view("", 0);
    return pd_view(p, (size_t)sqlite3_column_bytes(st, col));
}

static int
s_simple(pd_db_t *db, const char *sql)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    char *err = NULL;
    int rc = sqlite3_exec(d->db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        pd_log_error("database error", PD_LS("sql", sql), PD_LS("error", err ? err : sqlite3_errmsg(d->db)));
        sqlite3_free(err);
        return (rc & 0xff) == SQLITE_FULL ? -28 : PD_ERR_IO;
    }
    return 0;
}

static void ckpt_hold(pd_checkpointer_t *c);
static void ckpt_release(pd_checkpointer_t *c);

/* a writer's transaction holds its checkpointer's writer mutex from BEGIN until it has
 * ended (COMMIT, ROLLBACK, or SQLite's own rollback after an error), so a WAL rewind
 * runs between transactions (see checkpointer()) */
static void
txn_ended(sqlite_db_t *d)
{
    if (d->in_txn && sqlite3_get_autocommit(d->db)) {
        d->in_txn = false;
        ckpt_release(d->ckpt);
    }
}

/* transaction control goes through the statement cache: a savepoint per write
 * must not cost a parse */
static int
s_begin(pd_db_t *db)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    if (d->ckpt != NULL && !d->in_txn) {
        ckpt_hold(d->ckpt);
        d->in_txn = true;
    }
    int r = s_exec(db, "BEGIN IMMEDIATE", NULL, 0, NULL);
    txn_ended(d);
    return r;
}

static int
s_commit(pd_db_t *db)
{
    int r = s_exec(db, "COMMIT", NULL, 0, NULL);
    txn_ended((sqlite_db_t *)db);
    return r;
}

/* after some errors (SQLITE_FULL, SQLITE_IOERR in a COMMIT) SQLite has rolled back already */
static int
s_rollback(pd_db_t *db)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    int r = sqlite3_get_autocommit(d->db) ? 0 : s_simple(db, "ROLLBACK");
    txn_ended(d);
    return r;
}
static int s_savepoint(pd_db_t *db) { return s_exec(db, "SAVEPOINT w", NULL, 0, NULL); }
static int s_release(pd_db_t *db) { return s_exec(db, "RELEASE w", NULL, 0, NULL); }

static int
s_rollback_to(pd_db_t *db)
{
    int r = s_exec(db, "ROLLBACK TO w", NULL, 0, NULL);
    return r != 0 ? r : s_exec(db, "RELEASE w", NULL, 0, NULL);
}

/*
 * Lock waits. SQLite's own busy handler sleeps 1, 2, 5, 10, ... ms between tries,
 * while the locks met here are held for far less (a reader's snapshot, the last
 * copy of a checkpoint): a write that met one would sleep for milliseconds after
 * the lock was free. These retry every 50 us and give up after timeout_ms (the
 * count of tries bounds it from below: a sleep never takes less than asked).
 */
static int
busy_retry(void *arg, int count)
{
    int64_t timeout_ms = (int64_t)(intptr_t)arg;
    if ((int64_t)count * 50 >= timeout_ms * 1000)
        return 0;
    struct timespec ts = {0, 50 * 1000};
    nanosleep(&ts, NULL);
    return 1;
}

#define WAL_RESTART_FRAMES 4096 /* 16 MiB of 4 KiB pages: a RESTART costs more the longer the WAL */
/* A WAL file this large was held back (a long reader kept it from being rewound): it is
 * truncated, not only rewound, or it would keep that space for good */
#define WAL_TRUNCATE_BYTES ((off_t)2 * WAL_RESTART_FRAMES * 4096)

struct pd_checkpointer {
    pthread_t thread;
    atomic_bool stop;
    char *path;
    char *wal; /* path of the WAL file */
    int interval_ms;
    pthread_mutex_t writer_mu; /* held by the writer's transactions and by a rewind */
    pd_wal_archiver_t *archive; /* [backup] wal_archive: every checkpoint waits for it (NULL: off) */
};

/* [backup] wal_archive (payd/wal_archive.h): how this process's connections checkpoint */
static struct {
    pd_wal_archive_mode_t mode;
    pd_wal_archive_opts_t opts;
    char dir[4200];
    char path[4200]; /* the payments store's file (pd_sqlite_wal_archive_bind) */
} g_archive;

void
pd_sqlite_wal_archive(pd_wal_archive_mode_t mode, const pd_wal_archive_opts_t *opts)
{
    g_archive.mode = mode;
    if (opts != NULL) {
        g_archive.opts = *opts;
        snprintf(g_archive.dir, sizeof(g_archive.dir), "%s", opts->dir);
        g_archive.opts.dir = g_archive.dir;
    }
}

void
pd_sqlite_wal_archive_bind(const char *path)
{
    snprintf(g_archive.path, sizeof(g_archive.path), "%s", path);
}

/* whether path is the payments store while archiving is on (other databases, such as
 * the simulator's, checkpoint as always) */
static bool
archived(const char *path)
{
    return g_archive.mode != PD_WAL_ARCHIVE_OFF && g_archive.path[0] != '\0' && strcmp(path, g_archive.path) == 0;
}

/* no connection to it checkpoints as it closes: the last one to close would copy (and
 * remove) frames the archive may not hold */
static void
hold_on_close(sqlite3 *db, const char *path)
{
    if (archived(path))
        (void)sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
}

static void ckpt_hold(pd_checkpointer_t *c) { pthread_mutex_lock(&c->writer_mu); }
static void ckpt_release(pd_checkpointer_t *c) { pthread_mutex_unlock(&c->writer_mu); }

static off_t
file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/*
 * Rewinds the WAL: RESTART (the next commit writes from the start of the file), or,
 * when the file has grown past WAL_TRUNCATE_BYTES, TRUNCATE, which also cuts it to
 * zero bytes. Both hold the writer lock until they return; truncating adds the
 * time the file system takes to free the file's blocks, logged with each truncation
 * (ext4 here: ~25 ms for a 50 MiB WAL, against ~0.5 ms for a RESTART). Dropping the
 * file's cached pages first, outside the lock, halves that but slows the writes
 * around it more than it saves, so it is not done.
 */
static void
rewind_wal(pd_checkpointer_t *d, sqlite3 *c, bool truncate)
{
    int logsz = 0, done = 0;
    off_t before = truncate ? file_size(d->wal) : 0;
    uint64_t t0 = pd_mono_ns();
    int rc = sqlite3_wal_checkpoint_v2(c, NULL, truncate ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_RESTART,
                                       &logsz, &done);
    uint64_t us = (pd_mono_ns() - t0) / 1000;
    if (truncate && rc == SQLITE_OK)
        pd_log_info("checkpoint: WAL truncated", PD_LS("wal", d->wal), PD_LI("bytes_before", (int64_t)before),
                    PD_LI("took_us", (int64_t)us));
    else
        pd_log_debug("checkpoint: WAL rewound", PD_LS("wal", d->wal), PD_LI("rc", rc), PD_LI("took_us", (int64_t)us));
}

/*
 * SQLite's WAL-reset race (https://sqlite.org/wal.html#walresetbug; Debian 12 ships
 * 3.40, the fix came in 3.51.3): a checkpoint that read the WAL header just before a
 * commit on another connection reset the WAL could publish a stale backfill mark, and
 * a later checkpoint then skipped frames of acknowledged transactions, which were lost
 * when the WAL was reset again (reproduced here: several processes writing one file,
 * tests/unit/store/test_wal_reset.c). Every checkpoint therefore runs while a read
 * transaction of the checkpointer's own holds a read lock: on a WAL slot it keeps any
 * writer from resetting the WAL meanwhile; on slot 0 (the WAL was wholly copied) it
 * keeps the checkpoint from publishing anything. Either way the race cannot complete.
 */
static bool
guard_begin(sqlite3 *guard)
{
    return sqlite3_exec(guard, "BEGIN; SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) == SQLITE_OK;
}

static void
guard_end(sqlite3 *guard)
{
    (void)sqlite3_exec(guard, "COMMIT", NULL, NULL, NULL);
}

/* The guard, then the archive: a checkpoint under this guard copies no frame past the
 * guard's snapshot, and the archive holds every commit up to it and beyond. false (no
 * checkpoint) when either fails. */
static bool
guard_archived(pd_checkpointer_t *d, sqlite3 *guard)
{
    if (!guard_begin(guard))
        return false;
    if (d->archive != NULL && pd_wal_archiver_step(d->archive) != 0) {
        guard_end(guard);
        return false;
    }
    return true;
}

static void *
checkpointer(void *arg)
{
    pd_checkpointer_t *d = arg;
    sqlite3 *c = NULL, *guard = NULL;
    pthread_setname_np(pthread_self(), "payd-checkpoint");
    if (sqlite3_open_v2(d->path, &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
        sqlite3_open_v2(d->path, &guard, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        pd_log_error("checkpoint: cannot open the database; the WAL is not checkpointed", PD_LS("path", d->path));
        sqlite3_close(c);
        sqlite3_close(guard);
        return NULL;
    }
    hold_on_close(c, d->path);
    hold_on_close(guard, d->path);
    sqlite3_busy_handler(guard, busy_retry, (void *)(intptr_t)1000);
    /* a connection learns that the database is in WAL mode on its first read;
     * until then a checkpoint is a no-op that reports a log size of -1 */
    (void)sqlite3_exec(c, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    int dbfd = open(d->path, O_RDONLY | O_CLOEXEC);
    while (!atomic_load(&d->stop)) {
        struct timespec ts = {d->interval_ms / 1000, (long)(d->interval_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (!guard_archived(d, guard))
            continue;
        int logsz = 0, done = 0;
        /* PASSIVE: copies what it can without blocking the writer or readers (no busy
         * handler: a frame a reader still needs waits for the next round) */
        sqlite3_busy_handler(c, NULL, NULL);
        int rc = sqlite3_wal_checkpoint_v2(c, NULL, SQLITE_CHECKPOINT_PASSIVE, &logsz, &done);
        guard_end(guard);
        /* flush what it copied now, holding no lock: a RESTART holds the writer
         * lock while it syncs the database file, and would pay for it there */
        if (dbfd >= 0 && done > 0)
            (void)fdatasync(dbfd);
        /* under constant reads the WAL is never rewound and grows without bound;
         * past WAL_RESTART_FRAMES, RESTART waits (busy timeout) for the readers of
         * old frames so the next commit writes from the start of the file again.
         * A file grown far past that is truncated as soon as all of it is copied,
         * under load or not. A rewind runs between the writer's transactions (the
         * writer mutex), so the guard, taken after a last PASSIVE, finds the WAL
         * wholly copied and reads from slot 0, which does not hold up the RESTART
         * (and still keeps a RESTART that fell back to PASSIVE, because another
         * process wrote, from publishing) */
        bool oversized = file_size(d->wal) > WAL_TRUNCATE_BYTES;
        if (rc == SQLITE_OK && (logsz >= WAL_RESTART_FRAMES || oversized) && done == logsz) {
            ckpt_hold(d);
            if (guard_archived(d, guard)) {
                /* once more, so the RESTART finds only the frames of the last moments */
                (void)sqlite3_wal_checkpoint_v2(c, NULL, SQLITE_CHECKPOINT_PASSIVE, &logsz, &done);
                guard_end(guard);
            }
            if (dbfd >= 0)
                (void)fdatasync(dbfd);
            if (guard_archived(d, guard)) {
                /* bounds how long a RESTART may wait for readers */
                sqlite3_busy_handler(c, busy_retry, (void *)(intptr_t)20);
                rewind_wal(d, c, oversized);
                guard_end(guard);
            }
            ckpt_release(d);
        }
    }
    /* the last commits into the archive (the WAL stays: the next start goes on from it) */
    if (d->archive != NULL && guard_archived(d, guard))
        guard_end(guard);
    if (dbfd >= 0)
        close(dbfd);
    sqlite3_close(guard);
    sqlite3_close(c);
    return NULL;
}

int
pd_checkpointer_start(pd_checkpointer_t **out, const char *path)
{
    return pd_checkpointer_start_every(out, path, 50);
}

int
pd_checkpointer_start_every(pd_checkpointer_t **out, const char *path, int interval_ms)
{
    pd_checkpointer_t *c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->interval_ms = interval_ms;
        pthread_mutex_init(&c->writer_mu, NULL);
    }
    size_t n = strlen(path) + sizeof("-wal");
    int r = PD_ERR_NOMEM;
    if (c == NULL || (c->path = strdup(path)) == NULL || (c->wal = malloc(n)) == NULL ||
        snprintf(c->wal, n, "%s-wal", path) < 0 ||
        (archived(path) && g_archive.mode == PD_WAL_ARCHIVE_ON &&
         (r = pd_wal_archiver_new(&c->archive, c->wal, &g_archive.opts)) != 0) ||
        pthread_create(&c->thread, NULL, checkpointer, c) != 0) {
        if (c != NULL) {
            pthread_mutex_destroy(&c->writer_mu);
            pd_wal_archiver_free(c->archive);
            free(c->path);
            free(c->wal);
        }
        free(c);
        return r;
    }
    *out = c;
    return 0;
}

void
pd_checkpointer_stop(pd_checkpointer_t *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->stop, true);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->writer_mu);
    pd_wal_archiver_free(c->archive);
    free(c->path);
    free(c->wal);
    free(c);
}

/*
 * Deferred sync. Commits run with synchronous=NORMAL: SQLite writes the WAL frames
 * but does not fsync them (checkpoints still sync the WAL before copying it and
 * the database after), so the database stays consistent across a power loss. The
 * store makes commits durable by calling s_sync, an fdatasync of the WAL file
 * through a descriptor of our own (fsync flushes the file, whichever descriptor
 * names it), from its sync thread while the writer runs the next batch. The WAL
 * file keeps its inode while a connection is open (it is truncated, never
 * replaced), and the writer connection stays open for the store's lifetime.
 */
static int
fsync_dir_of(const char *path)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s", path);
    int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return r;
}

static int
s_defer_sync(pd_db_t *db)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    char wal[4200];
    if (d->path == NULL || d->wal_fd >= 0)
        return PD_ERR_STATE;
    snprintf(wal, sizeof(wal), "%s-wal", d->path);
    /* a read creates the WAL file if this database has none yet */
    (void)sqlite3_exec(d->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    int fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        pd_log_error("cannot open the WAL file", PD_LS("path", wal), PD_LS("error", strerror(e)));
        return -e;
    }
    int r;
    /* the WAL's directory entry, and whatever the file holds now, are durable before
     * the first commit that skips its own fsync */
    if ((r = fsync_dir_of(wal)) != 0 || (r = fdatasync(fd) == 0 ? 0 : -errno) != 0 ||
        (r = s_simple(db, "PRAGMA synchronous=NORMAL")) != 0) {
        close(fd);
        return r;
    }
    d->wal_fd = fd;
    return 0;
}

static int
s_sync(pd_db_t *db)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    if (d->wal_fd < 0)
        return 0; /* commits sync themselves */
    if (fdatasync(d->wal_fd) != 0) {
        int e = errno;
        pd_log_error("cannot sync the WAL file", PD_LS("error", strerror(e)));
        return -e;
    }
    return 0;
}

static void
s_close(pd_db_t *db)
{
    sqlite_db_t *d = (sqlite_db_t *)db;
    if (d == NULL)
        return;
    if (d->wal_fd >= 0)
        close(d->wal_fd);
    if (d->in_txn) /* closed inside a transaction: SQLite rolls it back */
        ckpt_release(d->ckpt);
    pd_checkpointer_stop(d->ckpt);
    free(d->path);
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        if (d->cache[i].st != NULL)
            sqlite3_finalize(d->cache[i].st);
    sqlite3_close(d->db);
    free(d);
}

static int
s_count_row(const pd_row_t *r, void *arg)
{
    int64_t *n = arg;
    n[0] = s_row_int(r, 0);
    n[1] = s_row_int(r, 1);
    return 1;
}

static int
s_user_tables(pd_db_t *db, int64_t *others, bool *has_version)
{
    int64_t n[2] = {0, 0};
    int r = s_query(db,
                    "SELECT COUNT(*) - COALESCE(SUM(name = 'schema_version'), 0), COALESCE(SUM(name = 'schema_version'), 0) "
                    "FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                    NULL, 0, s_count_row, n);
    *others = n[0];
    *has_version = n[1] > 0;
    return r;
}

static const pd_db_ops_t sqlite_ops = {
    .name = "sqlite",
    .exec = s_exec,
    .query = s_query,
    .row_int = s_row_int,
    .row_is_null = s_row_is_null,
    .row_text = s_row_text,
    .begin = s_begin,
    .commit = s_commit,
    .rollback = s_rollback,
    .savepoint = s_savepoint,
    .release = s_release,
    .rollback_to = s_rollback_to,
    .script = s_simple,
    .migration_lock = NULL, /* one writer: the file's write lock serializes migrations */
    .user_tables = s_user_tables,
    .defer_sync = s_defer_sync,
    .sync = s_sync,
    .close = s_close,
};

static void
sqlite_setup_once(void)
{
    /* memory statistics take one process-wide mutex around every allocation, which
     * the writer, the readers and the simulator then contend on; nothing reads them */
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

void
pd_sqlite_setup(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_setup_once);
}

int
pd_db_open_sqlite(pd_db_t **out, const char *path, bool writer)
{
    pd_sqlite_setup();
    sqlite_db_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return PD_ERR_NOMEM;
    d->super.ops = &sqlite_ops;
    d->wal_fd = -1;
    int flags = SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY);
    if (sqlite3_open_v2(path, &d->db, flags, NULL) != SQLITE_OK) {
        pd_log_error("cannot open database", PD_LS("path", path), PD_LS("error", d->db ? sqlite3_errmsg(d->db) : "?"));
        s_close(&d->super);
        return PD_ERR_IO;
    }
    sqlite3_busy_handler(d->db, busy_retry, (void *)(intptr_t)10000);
    hold_on_close(d->db, path);
    /* the writer's page cache stays small: SQLite 3.40 scans the whole page-cache hash
     * table at the end of every write transaction (pcache1TruncateUnsafe), so a 64 MiB
     * cache spent ~80 us per commit there; pages it misses come from the OS cache */
    const char *pragmas = writer ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                                   "PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=-8192;"
                                   /* each write runs in a savepoint; the pages it saves for a
                                    * rollback would otherwise spill to a temp file */
                                   "PRAGMA temp_store=MEMORY;"
                                 : "PRAGMA query_only=ON; PRAGMA cache_size=-16384;";
    if (s_simple(&d->super, pragmas) != 0) {
        s_close(&d->super);
        return PD_ERR_IO;
    }
    /* HOLD (payctl while payd archives): this process never checkpoints */
    int r = 0;
    if (writer && ((d->path = strdup(path)) == NULL ||
                   (!(archived(path) && g_archive.mode == PD_WAL_ARCHIVE_HOLD) &&
                    (r = pd_checkpointer_start(&d->ckpt, path)) != 0))) {
        r = d->path == NULL ? PD_ERR_NOMEM : r;
        s_close(&d->super);
        return r;
    }
    *out = &d->super;
    return 0;
}
