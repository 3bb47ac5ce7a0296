/*
 * A connector that counts every call of another one in payd_processor_requests_total
 * {op,result} (include/payd/processor.h, pd_processor_metered): the one place every
 * processor call passes, requests, workers and reconciliation alike.
 */
#include <stdlib.h>

#include "payd/metrics_payd.h"
#include "payd/processor.h"

typedef struct {
    pd_processor_t pub;
    pd_processor_t *inner;
} metered_t;

typedef struct {
    size_t op;
    pd_proc_cb cb;
    void *arg;
} call_t;

static size_t
result_of(pd_proc_outcome_t o)
{
    switch (o) {
    case PD_PROC_APPROVED: return PD_MX_PROC_APPROVED;
    case PD_PROC_DECLINED: return PD_MX_PROC_DECLINED;
    case PD_PROC_UNKNOWN: return PD_MX_PROC_UNKNOWN;
    case PD_PROC_NOT_FOUND: return PD_MX_PROC_NOT_FOUND;
    }
    return PD_MX_PROC_ERROR;
}

static void
answered(void *arg, const pd_proc_result_t *res)
{
    call_t *c = arg;
    pd_proc_cb cb = c->cb;
    void *cb_arg = c->arg;
    pd_mx_inc2(PD_MX_PROCESSOR_REQUESTS, c->op, result_of(res->outcome));
    free(c);
    cb(cb_arg, res);
}

/* the wrapped callback, or NULL (then the call goes out unwrapped, uncounted, rather than failing) */
static call_t *
wrap(size_t op, pd_proc_cb cb, void *arg)
{
    call_t *c = pd_mx != NULL ? malloc(sizeof(*c)) : NULL;
    if (c != NULL) {
        c->op = op;
        c->cb = cb;
        c->arg = arg;
    }
    return c;
}

#define INNER(p) (((metered_t *)(void *)(p))->inner)

static void
m_authorize(pd_processor_t *p, const pd_proc_auth_t *req, pd_proc_cb cb, void *arg)
{
    call_t *c = wrap(PD_MX_PROC_AUTHORIZE, cb, arg);
    INNER(p)->authorize(INNER(p), req, c != NULL ? answered : cb, c != NULL ? (void *)c : arg);
}

static void
m_capture(pd_processor_t *p, const char *reference, int64_t amount, pd_proc_cb cb, void *arg)
{
    call_t *c = wrap(PD_MX_PROC_CAPTURE, cb, arg);
    INNER(p)->capture(INNER(p), reference, amount, c != NULL ? answered : cb, c != NULL ? (void *)c : arg);
}

static void
m_cancel(pd_processor_t *p, const char *reference, pd_proc_cb cb, void *arg)
{
    call_t *c = wrap(PD_MX_PROC_CANCEL, cb, arg);
    INNER(p)->cancel(INNER(p), reference, c != NULL ? answered : cb, c != NULL ? (void *)c : arg);
}

static void
m_refund(pd_processor_t *p, const char *reference, int64_t amount, const char *refund_id, pd_proc_cb cb, void *arg)
{
    call_t *c = wrap(PD_MX_PROC_REFUND, cb, arg);
    INNER(p)->refund(INNER(p), reference, amount, refund_id, c != NULL ? answered : cb, c != NULL ? (void *)c : arg);
}

static void
m_query(pd_processor_t *p, const char *charge_id, pd_proc_cb cb, void *arg)
{
    call_t *c = wrap(PD_MX_PROC_QUERY, cb, arg);
    INNER(p)->query(INNER(p), charge_id, c != NULL ? answered : cb, c != NULL ? (void *)c : arg);
}

static int
m_list(pd_processor_t *p, int64_t since, int64_t until, pd_proc_record_fn fn, void *arg)
{
    int r = INNER(p)->list(INNER(p), since, until, fn, arg);
    pd_mx_inc2(PD_MX_PROCESSOR_REQUESTS, PD_MX_PROC_LIST, r == 0 ? PD_MX_PROC_OK : PD_MX_PROC_ERROR);
    return r;
}

static int
m_disputes(pd_processor_t *p, int64_t after, pd_proc_dispute_fn fn, void *arg)
{
    int r = INNER(p)->disputes(INNER(p), after, fn, arg);
    pd_mx_inc2(PD_MX_PROCESSOR_REQUESTS, PD_MX_PROC_DISPUTES, r == 0 ? PD_MX_PROC_OK : PD_MX_PROC_ERROR);
    return r;
}

static void
m_dispute_respond(pd_processor_t *p, const char *reference, const char *evidence, bool submit, bool accept,
                  pd_proc_cb cb, void *arg)
{
    call_t *c = wrap(PD_MX_PROC_DISPUTE_RESPOND, cb, arg);
    INNER(p)->dispute_respond(INNER(p), reference, evidence, submit, accept, c != NULL ? answered : cb,
                              c != NULL ? (void *)c : arg);
}

static void
m_free(pd_processor_t *p)
{
    if (p == NULL)
        return;
    pd_processor_t *inner = INNER(p);
    if (inner != NULL)
        inner->free(inner);
    free(p);
}

int
pd_processor_metered(pd_processor_t **out, pd_processor_t *inner)
{
    metered_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return PD_ERR_NOMEM;
    m->inner = inner;
    m->pub.name = inner->name;
    m->pub.authorize = m_authorize;
    m->pub.capture = m_capture;
    m->pub.cancel = m_cancel;
    m->pub.refund = m_refund;
    m->pub.query = m_query;
    m->pub.list = m_list;
    m->pub.free = m_free;
    if (inner->disputes != NULL && inner->dispute_respond != NULL) {
        m->pub.disputes = m_disputes;
        m->pub.dispute_respond = m_dispute_respond;
    }
    *out = &m->pub;
    return 0;
}
