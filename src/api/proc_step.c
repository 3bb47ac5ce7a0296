/*
 * The two-phase processor step (internal.h): phase 1 durable → the processor called →
 * its answer back on the request's loop → 502 on no answer (recovery finishes the
 * recorded request), else phase 2 committed and the op's response sent.
 */
#include <stddef.h>
#include <string.h>

#include "api/internal.h"
#include "payd/log.h"
#include "payd/money.h"
#include "payd/time.h"

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
    s->amount = 0;
    s->currency = NULL;
    s->charge_id = NULL;
    s->unavailable_since_ms = 0;
    op->step = s;
}

/* payd_payments_total / payd_refunds_total: the outcome once it is recorded (ok), or
 * unknown (no answer: left to recovery) or error (phase 2 could not be written) */
static void
count_outcome(const pd_step_t *s, bool ok)
{
    bool payment = strcmp(s->operation, "payment") == 0;
    if (!payment && strcmp(s->operation, "refund") != 0)
        return;
    size_t o;
    if (s->res.outcome == PD_PROC_UNKNOWN)
        o = payment ? PD_MX_PAY_UNKNOWN : PD_MX_REFUND_UNKNOWN;
    else if (!ok)
        o = payment ? PD_MX_PAY_ERROR : PD_MX_REFUND_ERROR;
    else if (s->res.outcome != PD_PROC_APPROVED)
        o = payment ? PD_MX_PAY_FAILED : PD_MX_REFUND_FAILED;
    else if (!payment)
        o = PD_MX_REFUND_SUCCEEDED;
    else
        o = s->res.captured ? PD_MX_PAY_SUCCEEDED : PD_MX_PAY_REQUIRES_CAPTURE;
    pd_mx_inc(payment ? PD_MX_PAYMENTS : PD_MX_REFUNDS, o);
    if (payment && ok && s->res.outcome == PD_PROC_APPROVED && s->amount > 0 && s->currency != NULL)
        pd_metric_add(pd_mx, PD_MX_PAYMENT_AMOUNT, pd_currency_index(s->currency), (uint64_t)s->amount);
}

static void phase2_done(pd_op_t *op);

static void
phase2_again(pd_later_t *t)
{
    pd_step_t *s = (pd_step_t *)((char *)t - offsetof(pd_step_t, again));
    pd_op_commit(s->op, s->phase2, phase2_done);
}

static void
phase2_done(pd_op_t *op)
{
    pd_step_t *s = op->step;
    if (op->rc == PD_ERR_UNAVAILABLE) {
        uint64_t now = pd_mono_ms();
        if (s->unavailable_since_ms == 0) {
            s->unavailable_since_ms = now;
            pd_log_warn("the database is unavailable for a recorded outcome; trying again",
                        PD_LS("operation", s->operation), PD_LS("request_id", op->r->id));
        }
        if (now - s->unavailable_since_ms < PD_STEP_RETRY_MS) {
            s->again.fn = phase2_again;
            pd_loop_later(op->r->loop, &s->again);
            return;
        }
    }
    count_outcome(s, op->rc == 0 && op->status != 0);
    pd_op_finish(op);
}

static void
answered(pd_task_t *t)
{
    pd_step_t *s = (pd_step_t *)((char *)t - offsetof(pd_step_t, task));
    if (s->res.outcome == PD_PROC_UNKNOWN) {
        count_outcome(s, false);
        /* no answer: the processor may have acted; the recorded request stays for recovery */
        pd_log_warn("processor gave no answer; leaving the request to recovery", PD_LS("operation", s->operation));
        pd_resp_no_answer(s->op->r, s->operation, s->object);
        return;
    }
    if (s->prepare != NULL && s->prepare(s) != 0) {
        count_outcome(s, false);
        return;
    }
    pd_op_commit(s->op, s->phase2, phase2_done);
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
