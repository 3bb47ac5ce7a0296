/*
 * The store's writer thread and group commit, and per-thread readers.
 * See include/payd/store.h for the contract.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include <openssl/crypto.h>

#include "payd/cred.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/time.h"
#include "payd/wal_archive.h"
#include "store/internal.h"

typedef struct job {
    struct job *next;
    pd_write_fn fn;
    pd_committed_fn committed;
    pd_done_fn done;
    void *arg;
    int rc;
} job_t;

typedef struct reader {
    struct reader *next;
    pthread_t thread;
    pd_db_t *db;
} reader_t;

#define MAX_WRITERS 64

typedef struct {
    pd_store_t *s;
    pd_db_t *db;
    pthread_t thread;
    bool started;
} writer_t;

struct pd_store {
    char path[4096];
    int backend;
    char *url;      /* PostgreSQL */
    pd_cred_t *cred; /* PostgreSQL: the password of password_file or password_secret (wiped at close) */
    const char *cred_setting; /* the setting that gave it, for errors */
    pd_db_t *writer; /* the first writer: migrations, and the sync thread's connection */
    writer_t writers[MAX_WRITERS];
    int nwriters;
    int version;
    int64_t max_batch, max_queue;
    int64_t read_timeout_ms; /* the reader threads' bound on PostgreSQL (0: none) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *head, *tail;
    int64_t queued;
    bool closing, started;
    int failed;  /* a sync failed: what was committed may not be durable; no more writes */
    uint64_t next_probe_ms; /* no probe before (pd_mono_ms) */
    int failing; /* the last batch failed (or a write in it found the disk full); 0 once one commits a write */
    /* deferred sync (when the backend supports it): committed batches wait here
     * for the sync thread, which makes them durable and then calls their done */
    bool deferred;
    pthread_t sync_thread;
    bool sync_started, sync_closing;
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    job_t *sync_head, *sync_tail;
    pthread_key_t reader_key;
    reader_t *readers; /* all reader connections, for close */
    pthread_mutex_t readers_mu;
    pd_read_pool_t *pool; /* reader threads of pd_store_read (NULL: reads run inline) */
    pd_store_stats_t stats;
};

static void
finish_jobs(job_t *j)
{
    while (j != NULL) {
        job_t *next = j->next;
        if (j->done != NULL)
            j->done(j->arg, j->rc);
        free(j);
        j = next;
    }
}

/*
 * Keeps s->failing: set when the batch failed or a write in it found the disk full,
 * cleared when a batch commits at least one write (an empty commit proves nothing).
 */
static void
note_outcome(pd_store_t *s, job_t *batch, int batch_rc)
{
    int refused = batch_rc;
    bool wrote = false;
    for (job_t *j = batch; j != NULL; j = j->next) {
        if (j->rc == 0)
            wrote = true;
        else if (j->rc == -ENOSPC && refused == 0)
            refused = j->rc;
    }
    pthread_mutex_lock(&s->mu);
    if (refused != 0 && s->failing == 0)
        pd_log_error("store refuses writes: not ready until one succeeds", PD_LERR(refused));
    else if (refused == 0 && wrote && s->failing != 0)
        pd_log_info("store accepts writes again");
    if (refused != 0)
        s->failing = refused;
    else if (wrote)
        s->failing = 0;
    pthread_mutex_unlock(&s->mu);
}

static void
run_batch(pd_store_t *s, pd_db_t *w, job_t *batch, size_t n)
{
    uint64_t t0 = pd_mono_ns();
    int r = w->ops->begin(w);
    for (job_t *j = batch; r == 0 && j != NULL; j = j->next) {
        if ((j->rc = w->ops->savepoint(w)) != 0)
            break;
        j->rc = j->fn(w, j->arg);
        if (j->rc == 0)
            j->rc = pd_db_flush(w); /* a deferred statement's error is this write's */
        int e = j->rc == 0 ? w->ops->release(w) : w->ops->rollback_to(w);
        if (e != 0) {
            r = e;
            break;
        }
    }
    uint64_t t1 = pd_mono_ns();
    if (r == 0)
        r = w->ops->commit(w);
    uint64_t t2 = pd_mono_ns();
    if (r != 0) {
        /* nothing of this batch is durable: every write learns it */
        (void)w->ops->rollback(w);
        for (job_t *j = batch; j != NULL; j = j->next)
            j->rc = r;
        pd_log_error("store batch failed", PD_LERR(r), PD_LI("writes", (int64_t)n));
    } else {
        pthread_mutex_lock(&s->mu); /* pd_store_stats reads them from other threads */
        s->stats.exec_ns += t1 - t0;
        s->stats.commit_ns += t2 - t1;
        s->stats.batches++;
        s->stats.writes += n;
        if (n > s->stats.max_batch)
            s->stats.max_batch = n;
        pthread_mutex_unlock(&s->mu);
        pd_mx_store_batch(n, (double)(t2 - t1) / 1e9);
    }
    note_outcome(s, batch, r);
    if (r == 0)
        for (job_t *j = batch; j != NULL; j = j->next)
            if (j->rc == 0 && j->committed != NULL)
                j->committed(j->arg);
    if (r != 0 || !s->deferred) {
        finish_jobs(batch);
        return;
    }
    /* committed, not yet durable: the sync thread answers it */
    job_t *last = batch;
    while (last->next != NULL)
        last = last->next;
    pthread_mutex_lock(&s->sync_mu);
    if (s->sync_tail != NULL)
        s->sync_tail->next = batch;
    else
        s->sync_head = batch;
    s->sync_tail = last;
    pthread_cond_signal(&s->sync_cv);
    pthread_mutex_unlock(&s->sync_mu);
}

/*
 * The sync thread: one sync covers every batch committed before it began, so the
 * writer runs the next batch while the disk flushes the previous ones. A failed
 * sync leaves the durability of committed data unknown (the kernel may have dropped
 * the pages): those writes fail, and so does every later one until a restart
 * recovers the database from what the disk holds.
 */
static void *
sync_main(void *arg)
{
    pd_store_t *s = arg;
    pthread_setname_np(pthread_self(), "payd-store-sync");
    pthread_mutex_lock(&s->sync_mu);
    for (;;) {
        while (s->sync_head == NULL && !s->sync_closing)
            pthread_cond_wait(&s->sync_cv, &s->sync_mu);
        if (s->sync_head == NULL)
            break;
        job_t *jobs = s->sync_head;
        s->sync_head = s->sync_tail = NULL;
        pthread_mutex_unlock(&s->sync_mu);
        uint64_t t0 = pd_mono_ns();
        int r = s->writer->ops->sync(s->writer);
        uint64_t t1 = pd_mono_ns();
        pthread_mutex_lock(&s->mu);
        s->stats.syncs++;
        s->stats.sync_ns += t1 - t0;
        if (r != 0 && s->failed == 0) {
            s->failed = r;
            pd_log_error("store sync failed: writes are refused until payd restarts", PD_LERR(r));
        }
        /* a later sync may succeed (Linux reports a lost write once) while the batches
         * it covers build on one that was lost: they fail too */
        r = s->failed;
        pthread_mutex_unlock(&s->mu);
        if (r != 0)
            for (job_t *j = jobs; j != NULL; j = j->next)
                if (j->rc == 0)
                    j->rc = r;
        finish_jobs(jobs);
        pthread_mutex_lock(&s->sync_mu);
    }
    pthread_mutex_unlock(&s->sync_mu);
    return NULL;
}

/* The probe: a write that changes nothing but still commits a page to the WAL. */
static int
probe_write(pd_db_t *tx, void *arg)
{
    (void)arg;
    return pd_db_exec(tx, "UPDATE schema_version SET version = version", NULL, 0, NULL);
}

#define PROBE_MS 1000
#define PROBE_MIN_FREE (4u << 20)

/*
 * After a full disk, a probe is tried only once the file system has PROBE_MIN_FREE
 * again (what an unprivileged user may use): the probe is one small page, which can
 * pass in the pages a failed commit left allocated to the WAL while the next real
 * batch would not.
 */
static bool
probe_due(const pd_store_t *s)
{
    struct statvfs v;
    if (s->failing != -ENOSPC)
        return true;
    return statvfs(s->path, &v) == 0 && (uint64_t)v.f_bavail * v.f_frsize >= PROBE_MIN_FREE;
}

/*
 * Waits (s->mu held) until a write is queued or the store closes. While writes are
 * failing and none comes, queues a probe write every PROBE_MS, so that a store taken
 * out of service (its readiness fails, so callers stop sending) still learns when
 * writes pass again. Not after a failed sync: that failure is final. On PostgreSQL
 * the probe also runs while the store is idle (one per PROBE_MS whatever the number
 * of writers): the primary can go away, or fail over, with no write to notice it, and
 * readiness must say so while no writable primary is reachable.
 */
static void
wait_for_work(pd_store_t *s)
{
    bool idle_probe = s->backend == PD_STORE_POSTGRES;
    while (s->head == NULL && !s->closing) {
        if ((s->failing == 0 && !idle_probe) || s->failed != 0) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += PROBE_MS / 1000;
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != ETIMEDOUT || s->head != NULL || s->closing ||
            !probe_due(s))
            continue;
        uint64_t now = pd_mono_ms();
        if (now < s->next_probe_ms)
            continue; /* another writer probed within PROBE_MS */
        s->next_probe_ms = now + PROBE_MS;
        job_t *probe = calloc(1, sizeof(*probe));
        if (probe == NULL)
            continue;
        probe->fn = probe_write;
        s->head = s->tail = probe;
        s->queued++;
    }
}

static void *
writer_main(void *arg)
{
    writer_t *w = arg;
    pd_store_t *s = w->s;
    pthread_setname_np(pthread_self(), "payd-store");
    pthread_mutex_lock(&s->mu);
    for (;;) {
        wait_for_work(s);
        if (s->head == NULL && s->closing)
            break;
        /* take up to max_batch queued writes */
        job_t *batch = s->head, *last = s->head;
        size_t n = 1;
        while (last->next != NULL && (int64_t)n < s->max_batch) {
            last = last->next;
            n++;
        }
        s->head = last->next;
        if (s->head == NULL)
            s->tail = NULL;
        last->next = NULL;
        s->queued -= (int64_t)n;
        pthread_mutex_unlock(&s->mu);
        run_batch(s, w->db, batch, n);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int
pd_store_submit(pd_store_t *s, pd_write_fn fn, pd_done_fn done, void *arg)
{
    return pd_store_submit_ex(s, fn, NULL, done, arg);
}

int
pd_store_submit_ex(pd_store_t *s, pd_write_fn fn, pd_committed_fn committed, pd_done_fn done, void *arg)
{
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return PD_ERR_NOMEM;
    j->fn = fn;
    j->committed = committed;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&s->mu);
    if (s->closing || s->failed != 0) {
        int r = s->closing ? PD_ERR_CLOSED : s->failed;
        pthread_mutex_unlock(&s->mu);
        free(j);
        return r;
    }
    if (s->queued >= s->max_queue) {
        s->stats.queue_full++;
        pthread_mutex_unlock(&s->mu);
        free(j);
        return PD_ERR_AGAIN;
    }
    if (s->tail != NULL)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->queued++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
} waiter_t;

static void
wake(void *arg, int rc)
{
    waiter_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->rc = rc;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

typedef struct {
    pd_write_fn fn;
    void *arg;
    waiter_t w;
} sync_job_t;

static int
sync_fn(pd_db_t *tx, void *arg)
{
    sync_job_t *sj = arg;
    return sj->fn(tx, sj->arg);
}

static void
sync_done(void *arg, int rc)
{
    wake(&((sync_job_t *)arg)->w, rc);
}

int
pd_store_write_sync(pd_store_t *s, pd_write_fn fn, void *arg)
{
    sync_job_t sj = {fn, arg, {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0}};
    int r;
    for (int tries = 0; (r = pd_store_submit(s, sync_fn, sync_done, &sj)) == PD_ERR_AGAIN && tries < 1000; tries++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (r != 0)
        return r;
    pthread_mutex_lock(&sj.w.mu);
    while (!sj.w.done)
        pthread_cond_wait(&sj.w.cv, &sj.w.mu);
    pthread_mutex_unlock(&sj.w.mu);
    return sj.w.rc;
}

pd_db_t *
pd_store_reader(pd_store_t *s)
{
    reader_t *rd = pthread_getspecific(s->reader_key);
    if (rd != NULL)
        return rd->db;
    if ((rd = calloc(1, sizeof(*rd))) == NULL)
        return NULL;
    char why[512];
    int r = s->backend == PD_STORE_POSTGRES ? pd_db_open_postgres_cred(&rd->db, s->url, s->cred, why, sizeof(why))
                                            : pd_db_open_sqlite(&rd->db, s->path, false);
    if (r != 0) {
        if (s->backend == PD_STORE_POSTGRES)
            pd_log_error("cannot open a database reader connection", PD_LS("reason", why), PD_LS("setting", "store.url"));
        free(rd);
        return NULL;
    }
    rd->thread = pthread_self();
    pthread_setspecific(s->reader_key, rd);
    pthread_mutex_lock(&s->readers_mu);
    rd->next = s->readers;
    s->readers = rd;
    pthread_mutex_unlock(&s->readers_mu);
    return rd->db;
}

pd_db_t *
pd_store_pool_reader(pd_store_t *s)
{
    pd_db_t *db = pd_store_reader(s);
    if (db != NULL && s->backend == PD_STORE_POSTGRES)
        pd_db_postgres_set_timeout(db, s->read_timeout_ms);
    return db;
}

int
pd_store_read(pd_store_t *s, pd_read_fn fn, void *arg)
{
    if (s->pool != NULL)
        return pd_read_pool_submit(s->pool, fn, arg);
    fn(pd_store_reader(s), arg);
    return 0;
}

bool
pd_store_reads_offloaded(const pd_store_t *s)
{
    return s->pool != NULL;
}

bool
pd_store_writable(pd_store_t *s, char *why, size_t cap)
{
    pthread_mutex_lock(&s->mu);
    int failed = s->failed, failing = s->failing;
    pthread_mutex_unlock(&s->mu);
    if (why != NULL && cap > 0) {
        if (failed != 0)
            snprintf(why, cap, "writes refused until restart: a sync failed (%s)", pd_strerror(failed));
        else if (failing != 0)
            snprintf(why, cap, "writes failing (%s)", pd_strerror(failing));
        else
            why[0] = '\0';
    }
    return failed == 0 && failing == 0;
}

void
pd_store_stats(pd_store_t *s, pd_store_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    out->queued = s->queued > 0 ? (uint64_t)s->queued : 0;
    pthread_mutex_unlock(&s->mu);
    out->writers = (uint64_t)s->nwriters;
    out->readers = 0;
    pthread_mutex_lock(&s->readers_mu);
    for (reader_t *rd = s->readers; rd != NULL; rd = rd->next)
        out->readers++;
    pthread_mutex_unlock(&s->readers_mu);
    pd_read_pool_stats(s->pool, out);
}

int
pd_store_schema_version(pd_store_t *s)
{
    return s->version;
}

static int
open_writer(pd_store_t *s, pd_db_t **out)
{
    char why[512];
    int r;
    if (s->backend == PD_STORE_SQLITE)
        return pd_db_open_sqlite(out, s->path, true);
    if ((r = pd_db_open_postgres_cred(out, s->url, s->cred, why, sizeof(why))) != 0)
        pd_log_error(r == PD_ERR_AUTH ? "cannot open the store: the database refused the password"
                                      : "cannot open the store: the database is unreachable",
                     PD_LS("reason", why), PD_LS("setting", r == PD_ERR_AUTH ? s->cred_setting : "store.url"));
    return r;
}

int
pd_store_open(pd_store_t **out, const pd_store_config_t *c, const char *data_dir)
{
    pd_store_t *s;
    int r;

    if (c->backend != PD_STORE_SQLITE && c->backend != PD_STORE_POSTGRES)
        return PD_ERR_CONFIG;
    if (c->backend == PD_STORE_POSTGRES && (c->url == NULL || c->url[0] == '\0')) {
        pd_log_error("cannot open the store: store.backend is postgres and store.url is empty",
                     PD_LS("setting", "store.url"));
        return PD_ERR_CONFIG;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return PD_ERR_NOMEM;
    s->backend = c->backend;
    if (c->backend == PD_STORE_POSTGRES)
        snprintf(s->path, sizeof(s->path), "%s", data_dir); /* for the free-space check after a full disk */
    else if (c->path != NULL && c->path[0] != '\0')
        snprintf(s->path, sizeof(s->path), "%s", c->path);
    else
        snprintf(s->path, sizeof(s->path), "%s/payd.db", data_dir);
    if (c->backend == PD_STORE_SQLITE)
        pd_sqlite_wal_archive_bind(s->path); /* [backup] wal_archive concerns this file */
    s->max_batch = c->max_batch;
    s->max_queue = c->max_queue;
    s->read_timeout_ms = c->read_timeout_ms;
    s->nwriters = c->backend == PD_STORE_POSTGRES ? (int)(c->writers < 1 ? 1 : c->writers > MAX_WRITERS ? MAX_WRITERS : c->writers) : 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_init(&s->readers_mu, NULL);
    pthread_mutex_init(&s->sync_mu, NULL);
    pthread_cond_init(&s->sync_cv, NULL);
    pthread_key_create(&s->reader_key, NULL);
    if (c->backend == PD_STORE_POSTGRES) {
        if ((s->url = strdup(c->url)) == NULL) {
            pd_store_close(s);
            return PD_ERR_NOMEM;
        }
        if ((r = pd_store_cred_open(c, &s->cred, &s->cred_setting)) != 0) {
            pd_store_close(s);
            return r;
        }
    }
    const char *setting = c->backend == PD_STORE_POSTGRES ? "store.url" : "store.path";
    if ((r = open_writer(s, &s->writers[0].db)) != 0) {
        pd_store_close(s);
        return r;
    }
    s->writer = s->writers[0].db;
    if ((r = pd_store_migrate(s->writer, &s->version, setting)) != 0) {
        pd_store_close(s);
        return r;
    }
    for (int i = 1; i < s->nwriters; i++)
        if ((r = open_writer(s, &s->writers[i].db)) != 0) {
            pd_store_close(s);
            return r;
        }
    if (s->writer->ops->defer_sync != NULL && s->writer->ops->defer_sync(s->writer) == 0) {
        if ((r = pthread_create(&s->sync_thread, NULL, sync_main, s)) != 0) {
            pd_store_close(s);
            return -r;
        }
        s->sync_started = s->deferred = true;
    }
    for (int i = 0; i < s->nwriters; i++) {
        s->writers[i].s = s;
        if ((r = pthread_create(&s->writers[i].thread, NULL, writer_main, &s->writers[i])) != 0) {
            pd_store_close(s);
            return -r;
        }
        s->writers[i].started = s->started = true;
    }
    /* SQLite reads are local WAL snapshot reads that never wait for the writer (a
     * few microseconds): a hop to a reader thread and back would cost more than the
     * read, so they stay inline unless store.readers asks for threads */
    int64_t nreaders = c->readers >= 0 ? c->readers : c->backend == PD_STORE_POSTGRES ? 4 : 0;
    if (nreaders > 0 && (r = pd_read_pool_new(&s->pool, s, (int)nreaders, c->read_queue > 0 ? c->read_queue : 4096)) != 0) {
        pd_store_close(s);
        return r;
    }
    if (c->backend == PD_STORE_POSTGRES)
        pd_log_info("store open", PD_LS("backend", "postgres"), PD_LI("writers", s->nwriters),
                    PD_LI("readers", nreaders), PD_LI("schema", s->version));
    *out = s;
    return 0;
}

void
pd_store_close(pd_store_t *s)
{
    if (s == NULL)
        return;
    pd_read_pool_free(s->pool); /* its reads may still submit writes: before the writers stop */
    s->pool = NULL;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->closing = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < s->nwriters; i++)
            if (s->writers[i].started)
                pthread_join(s->writers[i].thread, NULL);
    }
    if (s->sync_started) {
        /* the writer is done: the sync thread answers what it committed last */
        pthread_mutex_lock(&s->sync_mu);
        s->sync_closing = true;
        pthread_cond_signal(&s->sync_cv);
        pthread_mutex_unlock(&s->sync_mu);
        pthread_join(s->sync_thread, NULL);
    }
    if (s->started)
        pd_log_info("store closed", PD_LI("batches", s->stats.batches), PD_LI("writes", s->stats.writes),
                    PD_LI("max_batch", s->stats.max_batch), PD_LI("syncs", s->stats.syncs),
                    PD_LI("exec_ms", (int64_t)(s->stats.exec_ns / 1000000)),
                    PD_LI("commit_ms", (int64_t)(s->stats.commit_ns / 1000000)),
                    PD_LI("sync_ms", (int64_t)(s->stats.sync_ns / 1000000)));
    for (int i = 0; i < s->nwriters; i++)
        pd_db_close(s->writers[i].db);
    pd_cred_free(s->cred);
    free(s->url);
    reader_t *rd = s->readers;
    while (rd != NULL) {
        reader_t *n = rd->next;
        rd->db->ops->close(rd->db);
        free(rd);
        rd = n;
    }
    pthread_key_delete(s->reader_key);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->readers_mu);
    pthread_mutex_destroy(&s->sync_mu);
    pthread_cond_destroy(&s->sync_cv);
    free(s);
}
