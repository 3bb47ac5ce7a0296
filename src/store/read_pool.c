/*
 * The store's reader threads (pd_store_read): a fixed set of threads, each reading
 * through its own connection (pd_store_reader on that thread), taking jobs from one
 * bounded FIFO. A job that blocks (a database that stopped answering) holds only
 * its thread; the others go on, and once every thread is stuck new reads wait in
 * the queue up to its bound, then are refused (PD_ERR_AGAIN).
 */
#include <pthread.h>
#include <stdlib.h>

#include "payd/log.h"
#include "store/internal.h"

typedef struct read_job {
    struct read_job *next;
    pd_read_fn fn;
    void *arg;
} read_job_t;

struct pd_read_pool {
    pd_store_t *store;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    read_job_t *head, *tail;
    int64_t queued, max_queue, busy;
    uint64_t done, refused;
    bool closing;
    int nthreads;
    pthread_t threads[];
};

static void *
reader_main(void *arg)
{
    pd_read_pool_t *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->head == NULL && !p->closing)
            pthread_cond_wait(&p->cv, &p->mu);
        read_job_t *j = p->head;
        if (j == NULL)
            break; /* closing and drained */
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->queued--;
        p->busy++;
        pthread_mutex_unlock(&p->mu);
        /* the connection is opened here on first use (and reopened by the backend
         * after a loss), so a database that is down at start costs no thread */
        j->fn(pd_store_pool_reader(p->store), j->arg);
        free(j);
        pthread_mutex_lock(&p->mu);
        p->busy--;
        p->done++;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int
pd_read_pool_new(pd_read_pool_t **out, pd_store_t *s, int nthreads, int64_t max_queue)
{
    pd_read_pool_t *p = calloc(1, sizeof(*p) + (size_t)nthreads * sizeof(pthread_t));
    if (p == NULL)
        return PD_ERR_NOMEM;
    p->store = s;
    p->max_queue = max_queue;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 0; i < nthreads; i++) {
        int r = pthread_create(&p->threads[i], NULL, reader_main, p);
        if (r != 0) {
            pd_log_error("cannot start a store reader thread", PD_LERR(-r));
            pd_read_pool_free(p);
            return -r;
        }
        p->nthreads++;
    }
    *out = p;
    return 0;
}

int
pd_read_pool_submit(pd_read_pool_t *p, pd_read_fn fn, void *arg)
{
    read_job_t *j = malloc(sizeof(*j));
    if (j == NULL)
        return PD_ERR_NOMEM;
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    int r = p->closing ? PD_ERR_CLOSED : p->queued >= p->max_queue ? PD_ERR_AGAIN : 0;
    if (r == 0) {
        if (p->tail != NULL)
            p->tail->next = j;
        else
            p->head = j;
        p->tail = j;
        p->queued++;
        pthread_cond_signal(&p->cv);
    } else if (r == PD_ERR_AGAIN) {
        p->refused++;
    }
    pthread_mutex_unlock(&p->mu);
    if (r != 0)
        free(j);
    return r;
}

void
pd_read_pool_stats(pd_read_pool_t *p, pd_store_stats_t *out)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    out->read_threads = (uint64_t)p->nthreads;
    out->reads_queued = (uint64_t)p->queued;
    out->reads_busy = (uint64_t)p->busy;
    out->reads = p->done;
    out->read_queue_full = p->refused;
    pthread_mutex_unlock(&p->mu);
}

void
pd_read_pool_free(pd_read_pool_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
