/*
 * The API key epoch, kept fresh off the event loops (internal.h, pd_key_epoch_*).
 * When the store's reads leave the loops (PostgreSQL), a request does not read
 * api_key_epoch itself: this thread reads it every PD_KEY_EPOCH_REFRESH_MS through
 * its own connection, and a loop thread trusts its cached keys only while the last
 * successful read is at most PD_KEY_EPOCH_STALE_MS old. A revocation that returned
 * is therefore honoured by every request that starts one refresh period (plus one
 * round trip) later; while the epoch cannot be read the cache is not used at all
 * and every lookup goes to the database (docs/api-keys.md).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "api/internal.h"
#include "payd/log.h"
#include "payd/time.h"

struct pd_key_epoch {
    pd_store_t *store;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    bool stop;
    _Atomic int64_t epoch;
    _Atomic uint64_t ok_ms; /* pd_mono_ms of the last successful read (0: none) */
};

static void
refresh(pd_key_epoch_t *k)
{
    pd_db_t *db = pd_store_reader(k->store);
    int64_t e = -1;
    if (db != NULL && pd_key_epoch(db, &e) == 0) {
        atomic_store(&k->epoch, e);
        atomic_store(&k->ok_ms, pd_mono_ms());
    }
}

static void *
epoch_main(void *arg)
{
    pd_key_epoch_t *k = arg;
    pthread_mutex_lock(&k->mu);
    while (!k->stop) {
        pthread_mutex_unlock(&k->mu);
        refresh(k);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += PD_KEY_EPOCH_REFRESH_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&k->mu);
        while (!k->stop && pthread_cond_timedwait(&k->cv, &k->mu, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

int
pd_key_epoch_start(pd_key_epoch_t **out, pd_store_t *store)
{
    pd_key_epoch_t *k = calloc(1, sizeof(*k));
    pthread_condattr_t ca;
    if (k == NULL)
        return PD_ERR_NOMEM;
    k->store = store;
    atomic_init(&k->epoch, -1);
    atomic_init(&k->ok_ms, 0);
    pthread_mutex_init(&k->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    refresh(k); /* the first value before the first request (a database down now: no cache until it is back) */
    int r = pthread_create(&k->thread, NULL, epoch_main, k);
    if (r != 0) {
        pd_log_error("cannot start the API key epoch thread", PD_LERR(-r));
        pthread_mutex_destroy(&k->mu);
        pthread_cond_destroy(&k->cv);
        free(k);
        return -r;
    }
    *out = k;
    return 0;
}

bool
pd_key_epoch_current(pd_key_epoch_t *k, int64_t *epoch)
{
    uint64_t ok = atomic_load(&k->ok_ms);
    if (ok == 0 || pd_mono_ms() - ok > PD_KEY_EPOCH_STALE_MS)
        return false;
    *epoch = atomic_load(&k->epoch);
    return true;
}

void
pd_key_epoch_stop(pd_key_epoch_t *k)
{
    if (k == NULL)
        return;
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k);
}
