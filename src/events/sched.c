/*
 * Fair shares of the webhook engine's slots. See include/payd/webhook_sched.h.
 *
 * State per endpoint: attempts in flight, the turn at which it was last granted a slot,
 * and which of its lanes goes next. Endpoints are kept while they have attempts in
 * flight or were candidates of the last plan, in an array sorted by id. An endpoint
 * dropped from it comes back as never served, which is fair: it had nothing due.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payd/webhook_sched.h"

typedef struct {
    char id[PD_ID_MAX];
    int in_flight;
    uint64_t served;  /* turn of the last slot granted (0: never) */
    bool retry_next;  /* the endpoint's next grant goes to a retry if it has one due */
    bool keep;        /* while rebuilding: still needed */
} ep_t;

struct pd_webhook_sched {
    int per_endpoint;
    uint64_t turn;
    ep_t *ep; /* sorted by id */
    size_t n;
};

int
pd_webhook_sched_new(pd_webhook_sched_t **out, int per_endpoint)
{
    if (per_endpoint < 1)
        return PD_ERR_INVALID;
    pd_webhook_sched_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return PD_ERR_NOMEM;
    s->per_endpoint = per_endpoint;
    *out = s;
    return 0;
}

void
pd_webhook_sched_free(pd_webhook_sched_t *s)
{
    if (s == NULL)
        return;
    free(s->ep);
    free(s);
}

static int
cmp_ep(const void *a, const void *b)
{
    return strcmp(((const ep_t *)a)->id, ((const ep_t *)b)->id);
}

static ep_t *
find(const pd_webhook_sched_t *s, const char *id)
{
    ep_t key;
    snprintf(key.id, sizeof(key.id), "%s", id);
    return s->n > 0 ? bsearch(&key, s->ep, s->n, sizeof(ep_t), cmp_ep) : NULL;
}

static void
ep_init(ep_t *e, const char *id)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->retry_next = true;
}

/* The table becomes: endpoints with attempts in flight, plus the candidates (known
 * ones keep their state, new ones start as never served). */
static int
rebuild(pd_webhook_sched_t *s, const pd_webhook_cand_t *c, size_t n)
{
    size_t fresh = 0, k = 0;
    for (size_t i = 0; i < s->n; i++)
        s->ep[i].keep = s->ep[i].in_flight > 0;
    for (size_t i = 0; i < n; i++) {
        ep_t *e = find(s, c[i].endpoint);
        if (e != NULL)
            e->keep = true;
        else
            fresh++;
    }
    ep_t *t = calloc(s->n + fresh + 1, sizeof(*t));
    if (t == NULL)
        return PD_ERR_NOMEM;
    for (size_t i = 0; i < s->n; i++)
        if (s->ep[i].keep)
            t[k++] = s->ep[i];
    for (size_t i = 0; i < n; i++)
        if (find(s, c[i].endpoint) == NULL)
            ep_init(&t[k++], c[i].endpoint);
    qsort(t, k, sizeof(*t), cmp_ep);
    /* a candidate listed twice would be there twice */
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || strcmp(t[u - 1].id, t[i].id) != 0)
            t[u++] = t[i];
    free(s->ep);
    s->ep = t;
    s->n = u;
    return 0;
}

/* A candidate during one plan. */
typedef struct {
    pd_webhook_cand_t *c;
    ep_t *e;
    int room;        /* slots it may still take */
    uint64_t *mserved; /* its merchant's last turn (shared by the merchant's candidates) */
} slot_t;

static int
cmp_merchant(const void *a, const void *b)
{
    return strcmp(((const slot_t *)a)->c->merchant, ((const slot_t *)b)->c->merchant);
}

/* the candidate next in line: least recently served merchant, then endpoint; NULL when
 * nobody with due work has room */
static slot_t *
next_in_line(slot_t *v, size_t n)
{
    slot_t *best = NULL;
    for (size_t i = 0; i < n; i++) {
        slot_t *x = &v[i];
        if (x->room == 0 || x->c->due_retries + x->c->due_first == 0)
            continue;
        if (best == NULL || *x->mserved < *best->mserved ||
            (*x->mserved == *best->mserved && x->e->served < best->e->served))
            best = x;
    }
    return best;
}

/* grants x one slot, in the lane whose turn it is when it has one due */
static void
grant(pd_webhook_sched_t *s, slot_t *x)
{
    pd_webhook_cand_t *c = x->c;
    bool retry = c->due_retries > 0 && (x->e->retry_next || c->due_first == 0);
    if (retry) {
        c->due_retries--;
        c->grant_retries++;
    } else {
        c->due_first--;
        c->grant_first++;
    }
    x->e->retry_next = !retry;
    x->room--;
    x->e->served = *x->mserved = ++s->turn;
}

int
pd_webhook_sched_plan(pd_webhook_sched_t *s, pd_webhook_cand_t *c, size_t n, int slots)
{
    if (n > PD_WEBHOOK_SCHED_MAX_CANDIDATES)
        n = PD_WEBHOOK_SCHED_MAX_CANDIDATES;
    for (size_t i = 0; i < n; i++)
        c[i].grant_retries = c[i].grant_first = 0;
    if (n == 0 || slots <= 0)
        return 0;
    int r = rebuild(s, c, n);
    slot_t *v = calloc(n, sizeof(*v));
    uint64_t *mserved = calloc(n, sizeof(*mserved));
    if (r != 0 || v == NULL || mserved == NULL) {
        r = PD_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        v[i].c = &c[i];
        v[i].e = find(s, c[i].endpoint);
        v[i].room = s->per_endpoint > v[i].e->in_flight ? s->per_endpoint - v[i].e->in_flight : 0;
    }
    /* a merchant was last served when the last of its candidate endpoints was */
    qsort(v, n, sizeof(*v), cmp_merchant);
    for (size_t i = 0, m = 0; i < n; i++) {
        if (i > 0 && strcmp(v[i].c->merchant, v[i - 1].c->merchant) != 0)
            m++;
        v[i].mserved = &mserved[m];
        if (v[i].e->served > mserved[m])
            mserved[m] = v[i].e->served;
    }
    r = 0;
    slot_t *x;
    while (r < slots && (x = next_in_line(v, n)) != NULL) {
        grant(s, x);
        r++;
    }
out:
    free(v);
    free(mserved);
    return r;
}

void
pd_webhook_sched_started(pd_webhook_sched_t *s, const char *endpoint)
{
    ep_t *e = find(s, endpoint);
    if (e == NULL) {
        /* not planned for (the contract says it is): track it all the same */
        ep_t *t = realloc(s->ep, (s->n + 1) * sizeof(*t));
        if (t == NULL)
            return;
        s->ep = t;
        ep_init(&s->ep[s->n++], endpoint);
        qsort(s->ep, s->n, sizeof(*s->ep), cmp_ep);
        e = find(s, endpoint);
    }
    e->in_flight++;
}

void
pd_webhook_sched_finished(pd_webhook_sched_t *s, const char *endpoint)
{
    ep_t *e = find(s, endpoint);
    if (e != NULL && e->in_flight > 0)
        e->in_flight--;
}

int
pd_webhook_sched_in_flight(const pd_webhook_sched_t *s, const char *endpoint)
{
    const ep_t *e = find(s, endpoint);
    return e != NULL ? e->in_flight : 0;
}
