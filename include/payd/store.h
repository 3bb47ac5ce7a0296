/*
 * The store: durable state of payd with group commit.
 *
 * Writes: callers from any thread submit a write function. A writer thread takes
 * every write that is queued, runs each inside its own savepoint of one
 * transaction (a write that returns an error is rolled back alone) and commits
 * once. SQLite has one writer. PostgreSQL has `writers` of them, each on its own
 * connection committing its own batch, so one batch's round trips overlap another's
 * (and other nodes may write the same database): two writes submitted one after the
 * other without waiting for the first's done may commit in either order, and a
 * version-checked update that lost a race to another writer fails (the caller
 * decides again) rather than being applied. Where the backend can defer its sync (SQLite), a sync thread then makes
 * every batch committed so far durable with one fsync while the writer already
 * runs the next batch. Only then is each write's done callback called with its
 * result: nobody is told "ok" before their write is durable. Readers may see a
 * committed batch up to one fsync before its writers are answered.
 *
 * Reads: pd_store_reader() returns the calling thread's own read connection
 * (SQLite: WAL snapshot reads that never wait for the writer; PostgreSQL: a
 * connection of its own, autocommit, READ COMMITTED). Event-loop threads never call
 * it on PostgreSQL: they hand their reads to pd_store_read(), which runs them on
 * one of `readers` reader threads, each with its own connection, so a slow or
 * stuck database stalls only those threads, never a loop.
 */
#ifndef PAYD_STORE_H
#define PAYD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/config.h"
#include "payd/db.h"

typedef struct pd_store pd_store_t;

enum { PD_STORE_SQLITE = 0, PD_STORE_POSTGRES = 1 };

typedef struct {
    int backend;          /* PD_STORE_SQLITE or PD_STORE_POSTGRES */
    const char *path;     /* SQLite file ("" = DATA_DIR/payd.db) */
    const char *url;      /* PostgreSQL: libpq URI or conninfo string */
    const char *password_file; /* PostgreSQL: file with the password ("" = none; the URL's or libpq's own) */
    const char *password_secret; /* PostgreSQL: vault secret with the password ("" = none; see docs/postgres.md) */
    const struct pd_secret_source *secrets; /* where password_secret is read (payd: the vault link; NULL: none) */
    int64_t writers;      /* PostgreSQL: writer connections (SQLite: always one) */
    int64_t readers;      /* reader threads of pd_store_read (-1: 4 on PostgreSQL, 0 on SQLite; 0: inline) */
    int64_t read_queue;   /* reads waiting for a reader thread before pd_store_read refuses with PD_ERR_AGAIN */
    int64_t read_timeout_ms; /* PostgreSQL: a reader thread's statement unanswered this long gives up its
                              * connection (PD_ERR_UNAVAILABLE); 0 = no bound */
    int64_t max_batch;    /* most writes per transaction */
    int64_t max_queue;    /* writes waiting before submit refuses with PD_ERR_AGAIN */
} pd_store_config_t;

int pd_store_config_register(pd_config_t *cfg, pd_store_config_t *c) PD_WUR;

/* Opens (creating if needed), applies pending migrations, starts the writer(s). A
 * failure is logged in one line naming the cause and the setting (store.url,
 * store.path, store.password_file, store.password_secret): PD_ERR_UNAVAILABLE (unreachable), PD_ERR_AUTH
 * (password refused), PD_ERR_STATE (not payd's database, or a newer schema),
 * PD_ERR_CONFIG (bad settings). */
int pd_store_open(pd_store_t **out, const pd_store_config_t *c, const char *data_dir) PD_WUR;
/* The password in a store.password_file (one line; a trailing newline is not part of
 * it) into *out (free it after OPENSSL_cleanse). A missing, empty or multi-line file
 * is PD_ERR_CONFIG, logged with the path and the setting, never the content. */
int pd_store_read_password(const char *path, char **out) PD_WUR;
/* Finishes queued writes, stops the writer, closes every connection. */
void pd_store_close(pd_store_t *s);

/* Runs on the writer thread inside a savepoint; return 0 to keep the changes, < 0 to
 * roll back this write only (the error goes to done). */
typedef int (*pd_write_fn)(pd_db_t *tx, void *arg);
/* Runs on the writer or the sync thread once the batch is durable (rc 0) or failed. */
typedef void (*pd_done_fn)(void *arg, int rc);

/* Queues a write. PD_ERR_AGAIN when the queue is full (backpressure), PD_ERR_CLOSED
 * after close. On error done is not called. */
int pd_store_submit(pd_store_t *s, pd_write_fn fn, pd_done_fn done, void *arg) PD_WUR;
/* Runs on the writer thread as soon as the batch holding a write that returned 0 is
 * committed, before it is durable: for work that may start early but whose result
 * must wait for done (payd reads a card from the vault while the fsync runs). */
typedef void (*pd_committed_fn)(void *arg);
/* pd_store_submit with a committed hook (NULL: none). */
int pd_store_submit_ex(pd_store_t *s, pd_write_fn fn, pd_committed_fn committed, pd_done_fn done, void *arg) PD_WUR;
/* Submits and waits (for tools, tests and start-up; never from an event loop). */
int pd_store_write_sync(pd_store_t *s, pd_write_fn fn, void *arg) PD_WUR;

/*
 * Whether the store takes writes: false while they fail (the last batch failed, or a
 * write in it found the disk full; true again once a batch commits a write: while
 * none is submitted the writer tries a write that changes nothing every second,
 * after a full disk only once the file system has 4 MiB free), and for good after a
 * failed sync (see the sync thread in store.c). why (may be NULL) gets the reason,
 * e.g. "writes failing (No space left on device)". Thread-safe.
 */
bool pd_store_writable(pd_store_t *s, char *why, size_t cap);

/* The calling thread's read connection (opened on first use). NULL when it cannot be
 * opened (logged). */
pd_db_t *pd_store_reader(pd_store_t *s);

/*
 * Reads off the calling thread. fn runs once with a reader connection (NULL when
 * none can be opened: fn must treat that as PD_ERR_UNAVAILABLE) on one of the
 * store's reader threads, in submission order per thread, never concurrently with
 * itself for one job; whatever it needs to answer (posting to an event loop) it does
 * itself. With readers = 0 fn runs inline, before pd_store_read returns.
 * PD_ERR_AGAIN when read_queue reads are waiting already, PD_ERR_CLOSED after close:
 * then fn is not called.
 */
typedef void (*pd_read_fn)(pd_db_t *db, void *arg);
int pd_store_read(pd_store_t *s, pd_read_fn fn, void *arg) PD_WUR;
/* Whether pd_store_read runs its reads on reader threads (false: inline). */
bool pd_store_reads_offloaded(const pd_store_t *s);

/* Statistics: batches committed, writes committed, largest batch, writes refused
 * for a full queue, the writer's time running writes and committing them, and the
 * deferred syncs (see pd_db_ops_t.defer_sync) with their time; now: writes queued,
 * writer connections and reader connections open; the read pool: its threads, reads
 * waiting, reads running now, reads run, reads refused for a full queue. */
typedef struct {
    uint64_t batches, writes, max_batch, queue_full;
    uint64_t exec_ns, commit_ns, syncs, sync_ns;
    uint64_t queued, writers, readers;
    uint64_t read_threads, reads_queued, reads_busy, reads, read_queue_full;
} pd_store_stats_t;
void pd_store_stats(pd_store_t *s, pd_store_stats_t *out);

/* Collectors of the store's metrics in pd_mx (src/store/store_metrics.c): queue depth,
 * connections, writes, syncs. A no-op without pd_mx. */
int pd_store_metrics_attach(pd_store_t *s) PD_WUR;

/* Schema version after migrations. */
int pd_store_schema_version(pd_store_t *s);

#endif
