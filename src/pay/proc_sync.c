/* Processor calls waited for, for the workers that have no event loop (recovery,
 * reconciliation): the call's callback may run before the call returns or on a
 * connector thread, and either way wakes the caller. */
#include <pthread.h>

#include "payd/payments.h"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    pd_proc_result_t res;
} waiter_t;

#define WAITER_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, {0}}

static void
on_answer(void *arg, const pd_proc_result_t *res)
{
    waiter_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->res = *res;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void
wait_answer(waiter_t *w, pd_proc_result_t *out)
{
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    *out = w->res;
}

void
pd_proc_query_sync(pd_processor_t *p, const char *charge_id, pd_proc_result_t *out)
{
    waiter_t w = WAITER_INIT;
    p->query(p, charge_id, on_answer, &w);
    wait_answer(&w, out);
}

void
pd_proc_capture_sync(pd_processor_t *p, const char *reference, int64_t amount, pd_proc_result_t *out)
{
    waiter_t w = WAITER_INIT;
    p->capture(p, reference, amount, on_answer, &w);
    wait_answer(&w, out);
}

void
pd_proc_cancel_sync(pd_processor_t *p, const char *reference, pd_proc_result_t *out)
{
    waiter_t w = WAITER_INIT;
    p->cancel(p, reference, on_answer, &w);
    wait_answer(&w, out);
}

void
pd_proc_refund_sync(pd_processor_t *p, const char *reference, int64_t amount, const char *refund_id,
                    pd_proc_result_t *out)
{
    waiter_t w = WAITER_INIT;
    p->refund(p, reference, amount, refund_id, on_answer, &w);
    wait_answer(&w, out);
}
