/*
 * The two-phase processor step (internal.h): phase 1 durable → the processor called →
 * its answer back on the request's loop → 502 on no answer (recovery finishes the
 * recorded request), else phase 2 committed and the op's response sent.
 */
#include <stddef.h>

#include "api/internal.h"
#include "payd/log.h"

void
pd_step_init(pd_step_t *s, pd_op_t *op, void (*call)(pd_step_t *), int (*prepare)(pd_step_t *), pd_op_write_fn phase2,
             const char *operation, const char *object)
{
    s->op = op;
    s->call = call;
    s->prepare = prepare;
    s->phase2 = phase2;
    s->operation = operation;
    s->object = object;
    op->step = s;
}

static void
answered(pd_task_t *t)
{
    pd_step_t *s = (pd_step_t *)((char *)t - offsetof(pd_step_t, task));
    if (s->res.outcome == PD_PROC_UNKNOWN) {
        /* no answer: the processor may have acted; the recorded request stays for recovery */
        pd_log_warn("processor gave no answer; leaving the request to recovery", PD_LS("operation", s->operation));
        pd_resp_no_answer(s->op->r, s->operation, s->object);
        return;
    }
    if (s->prepare != NULL && s->prepare(s) != 0)
        return;
    pd_op_commit(s->op, s->phase2, NULL);
}

void
pd_step_answer(void *arg, const pd_proc_result_t *res)
{
    pd_step_t *s = arg;
    s->res = *res;
    s->task.fn = answered;
    pd_loop_post(s->op->r->loop, &s->task);
}

static void
phase1_done(pd_op_t *op)
{
    if (op->rc != 0 || op->status != 0) {
        pd_op_finish(op); /* replay, conflict, or an error response */
        return;
    }
    op->step->call(op->step);
}

void
pd_step_start(pd_step_t *s, pd_op_write_fn phase1)
{
    pd_op_commit(s->op, phase1, phase1_done);
}
