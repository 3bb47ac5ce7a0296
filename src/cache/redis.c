/*
 * The Redis backend. No caller ever waits on Redis: each operation is answered at
 * once from this node's mirror of the key (a sharded table like the in-process
 * backend's) and queues the key; one sync thread sends every queued key's change as
 * one script call, all of them pipelined in one round trip, and folds the answers
 * back into the mirror. Rounds run back to back while there is work, and every
 * POLL_MS otherwise (to read the block stream).
 *
 *   token bucket: the node spends tokens it was granted by Redis (a reserve). The
 *     take script refills the bucket by Redis's TIME and grants at most this node's
 *     share (tokens / live nodes) of what is left, so tokens are spent once across
 *     the cluster. A key this node has not heard about yet may spend up to
 *     FIRST_SHARE of the burst (at least 1) before its first answer: that, and
 *     the fallback, are the only overshoot (docs/redis.md). A reserve unused for
 *     IDLE_MS goes back to the bucket.
 *   sliding window, counter: local hits are added to the last global value Redis
 *     returned (the window placed on Redis's clock); other nodes' hits show after
 *     the next round.
 *   block: set in Redis and announced on a stream every node reads each round, so
 *     a lockout on one node holds on the others within a round or POLL_MS.
 *
 * While disconnected every operation goes to the in-process fallback; on reconnect
 * the mirror starts over (a generation count), so nothing stale is pushed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cache/internal.h"
#include "payd/log.h"
#include "payd/time.h"

#define SHARDS 64
#define BUCKETS 1024
#define KEY_MAX 192
#define ROUND_MAX 2048      /* keys per round; the rest wait for the next */
#define POLL_MS 10          /* an idle round: the block stream */
#define IDLE_MS 1000        /* an unused reserve goes back */
#define HEARTBEAT_MS 1000   /* node count */
#define FIRST_SHARE 0.01    /* of the burst, before a key's first answer */
#define WARN_EVERY_MS 10000 /* the fallback's log line */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define STREAM "payd:cache:blocks"
#define NODES "payd:cache:nodes"

enum { K_TAKE, K_HIT, K_ADD, K_BLOCK };
static const char *const kprefix[] = {"payd:tb:", "payd:sw:", "payd:ct:", "payd:bl:"};

typedef struct rentry {
    struct rentry *next;  /* hash chain */
    struct rentry *qnext; /* queue */
    char key[KEY_MAX];
    uint8_t kind;
    bool queued, inflight, known;
    unsigned gen;
    int64_t used_ms, synced_ms; /* caller's clock */
    /* token bucket */
    double rate, burst;
    int64_t reserve, debt, first_debt, spent, tokens, refused;
    int64_t f_debt, f_want, f_back;
    /* window and counter */
    int64_t window_ms, pend, f_pend;
    int64_t ws, wc, wp; /* window start (Redis clock), current, previous */
    int64_t value, left_ms, ttl_ms;
    /* block */
    int64_t until_ms; /* caller's clock */
    int64_t block_ms, f_block_ms;
} rentry_t;

typedef struct {
    pthread_mutex_t mu;
    rentry_t *b[BUCKETS];
    int64_t n;
} rshard_t;

struct pd_redis {
    rshard_t shards[SHARDS];
    int64_t max_per_shard;
    pd_mem_t *fallback;
    pd_rurl_t url;
    struct pd_cred *cred; /* [cache] password_secret (NULL: the url's or password_file's) */
    SSL_CTX *tls;
    int timeout_ms;
    char node_id[96];

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t qmu; /* the queue, the round count, stop */
    pthread_cond_t qcv, donecv;
    rentry_t *qhead, *qtail;
    bool stop;
    int64_t rounds_done;

    _Atomic bool up;
    _Atomic unsigned gen;
    _Atomic int64_t offset_ms; /* Redis's clock minus ours */
    _Atomic int64_t nodes;
    _Atomic int64_t fallback_ops, fallbacks, rounds;
    pthread_mutex_t smu; /* the texts below */
    char server[300], last_error[300];

    /* sync thread only */
    pd_rconn_t conn;
    char last_id[64];
    int64_t next_heartbeat, last_warn, last_sweep;
};

static uint64_t
hash(uint8_t kind, const char *s)
{
    uint64_t h = (1469598103934665603ull ^ kind) * 1099511628211ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static void
set_text(pd_redis_t *r, char *dst, const char *src)
{
    pthread_mutex_lock(&r->smu);
    snprintf(dst, sizeof(r->server), "%s", src);
    pthread_mutex_unlock(&r->smu);
}

/* the mirror starts over for a new connection. The caller's parameters (rate, burst,
 * window, ttl) stay: an entry queued before the reconnect is sent by the next round
 * before any caller sets them again, and a bucket of burst 0 would empty Redis's. */
static void
reset_entry(rentry_t *e, unsigned gen)
{
    rentry_t *next = e->next, *qnext = e->qnext;
    bool queued = e->queued, inflight = e->inflight;
    char key[KEY_MAX];
    uint8_t kind = e->kind;
    double rate = e->rate, burst = e->burst;
    int64_t window_ms = e->window_ms, ttl_ms = e->ttl_ms, used_ms = e->used_ms;
    memcpy(key, e->key, sizeof(key));
    memset(e, 0, sizeof(*e));
    memcpy(e->key, key, sizeof(key));
    e->kind = kind, e->next = next, e->qnext = qnext, e->queued = queued, e->inflight = inflight;
    e->rate = rate, e->burst = burst, e->window_ms = window_ms, e->ttl_ms = ttl_ms, e->used_ms = used_ms;
    e->gen = gen;
}

static void
evict(rshard_t *s)
{
    rentry_t **oldest = NULL;
    for (int j = 0; j < BUCKETS; j++)
        for (rentry_t **pp = &s->b[j]; *pp != NULL; pp = &(*pp)->next)
            if (!(*pp)->queued && !(*pp)->inflight && (oldest == NULL || (*pp)->used_ms < (*oldest)->used_ms))
                oldest = pp;
    if (oldest != NULL) {
        rentry_t *dead = *oldest;
        *oldest = dead->next;
        free(dead);
        s->n--;
    }
}

/* the entry for (kind, key) with its shard locked (caller unlocks); NULL without memory */
static rentry_t *
get(pd_redis_t *r, uint8_t kind, const char *key, rshard_t **sh)
{
    uint64_t h = hash(kind, key);
    rshard_t *s = &r->shards[h % SHARDS];
    *sh = s;
    pthread_mutex_lock(&s->mu);
    unsigned gen = atomic_load(&r->gen);
    rentry_t **head = &s->b[(h / SHARDS) % BUCKETS];
    for (rentry_t *e = *head; e != NULL; e = e->next) {
        if (e->kind == kind && strncmp(e->key, key, KEY_MAX - 1) == 0) {
            if (e->gen != gen)
                reset_entry(e, gen);
            return e;
        }
    }
    if (s->n >= r->max_per_shard)
        evict(s);
    rentry_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->kind = kind;
    e->gen = gen;
    e->next = *head;
    *head = e;
    s->n++;
    return e;
}

/* queues e for the next round (shard locked) */
static void
enqueue(pd_redis_t *r, rentry_t *e)
{
    if (e->queued || e->inflight)
        return; /* an entry in flight is queued again when its answer is in, if it changed */
    e->queued = true;
    pthread_mutex_lock(&r->qmu);
    e->qnext = NULL;
    if (r->qtail != NULL)
        r->qtail->qnext = e;
    else
        r->qhead = e;
    r->qtail = e;
    pthread_cond_signal(&r->qcv);
    pthread_mutex_unlock(&r->qmu);
}

static bool
fall_back(pd_redis_t *r)
{
    if (atomic_load_explicit(&r->up, memory_order_acquire))
        return false;
    atomic_fetch_add_explicit(&r->fallback_ops, 1, memory_order_relaxed);
    return true;
}

/* --- the operations (any thread, never waiting on Redis) --- */

bool
pd_redis_take(pd_redis_t *r, const char *key, double rate, double burst, int64_t now_ms, int64_t *remaining,
              int64_t *reset_ms, int64_t *retry_ms)
{
    if (fall_back(r))
        return pd_mem_take(r->fallback, key, rate, burst, now_ms, remaining, reset_ms, retry_ms);
    rshard_t *s;
    rentry_t *e = get(r, K_TAKE, key, &s);
    if (e == NULL) {
        pthread_mutex_unlock(&s->mu);
        *remaining = 0, *reset_ms = 0, *retry_ms = 1000;
        return false; /* as the in-process backend: no memory refuses */
    }
    e->rate = rate, e->burst = burst, e->used_ms = now_ms;
    int64_t first = (int64_t)(burst * FIRST_SHARE);
    bool ok = false;
    if (e->reserve >= 1) {
        e->reserve--;
        ok = true;
    } else if (!e->known && e->first_debt < (first > 1 ? first : 1)) {
        e->first_debt++;
        e->debt++;
        ok = true;
    } else if (e->known && e->debt + e->f_debt < e->tokens / (4 * atomic_load(&r->nodes))) {
        /* the bucket had plenty at the last answer and this node's grant is on its way: every
         * node together spends at most a quarter of what was left before the next answer */
        e->debt++;
        ok = true;
    }
    if (ok)
        e->spent++;
    else
        e->refused++;
    /* ask for more before the reserve runs out: what was spent since the last round */
    if (!e->known || e->debt > 0 || !ok || e->reserve <= e->spent)
        enqueue(r, e);
    int64_t left = e->tokens + e->reserve;
    if (left < 0)
        left = 0;
    if (left > (int64_t)burst)
        left = (int64_t)burst;
    *remaining = left;
    *reset_ms = (int64_t)((burst - (double)left) * 1000.0 / rate);
    if (ok)
        *retry_ms = 0;
    else if (e->tokens >= 1)
        *retry_ms = 1; /* the bucket has tokens; this node's share is on its way */
    else
        *retry_ms = (int64_t)((1.0 - (double)e->tokens) * 1000.0 / rate) + 1;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* the window's weighted count at now from the last answer plus what is not in it yet */
static int64_t
window_count(const pd_redis_t *r, const rentry_t *e, int64_t now_ms)
{
    int64_t local = e->pend + e->f_pend;
    if (!e->known)
        return local;
    int64_t w = e->window_ms, rn = now_ms + atomic_load(&r->offset_ms);
    int64_t start = rn - rn % w, cur, prev;
    if (start == e->ws)
        cur = e->wc + local, prev = e->wp;
    else if (start == e->ws + w)
        cur = local, prev = e->wc;
    else
        cur = local, prev = 0;
    double overlap = 1.0 - (double)(rn - start) / (double)w;
    return cur + (int64_t)((double)prev * overlap);
}

int64_t
pd_redis_hit(pd_redis_t *r, const char *key, int64_t window_ms, int64_t now_ms)
{
    if (fall_back(r))
        return pd_mem_hit(r->fallback, key, window_ms, now_ms);
    rshard_t *s;
    rentry_t *e = get(r, K_HIT, key, &s);
    if (e == NULL) {
        pthread_mutex_unlock(&s->mu);
        return INT64_MAX;
    }
    if (e->window_ms != window_ms && e->window_ms != 0)
        e->known = false; /* another window on the same key: start over */
    e->window_ms = window_ms, e->used_ms = now_ms;
    e->pend++;
    int64_t n = window_count(r, e, now_ms);
    enqueue(r, e);
    pthread_mutex_unlock(&s->mu);
    return n;
}

int64_t
pd_redis_add(pd_redis_t *r, const char *key, int64_t n, int64_t expires_ms, int64_t now_ms)
{
    if (fall_back(r))
        return pd_mem_add(r->fallback, key, n, expires_ms, now_ms);
    rshard_t *s;
    rentry_t *e = get(r, K_ADD, key, &s);
    if (e == NULL) {
        pthread_mutex_unlock(&s->mu);
        return INT64_MAX;
    }
    e->used_ms = now_ms;
    e->pend += n;
    if (expires_ms - now_ms > e->ttl_ms)
        e->ttl_ms = expires_ms - now_ms;
    int64_t v = e->pend + e->f_pend + (e->known && now_ms < e->synced_ms + e->left_ms ? e->value : 0);
    enqueue(r, e);
    pthread_mutex_unlock(&s->mu);
    return v;
}

void
pd_redis_block(pd_redis_t *r, const char *key, int64_t until_ms, int64_t now_ms)
{
    if (fall_back(r)) {
        pd_mem_block(r->fallback, key, until_ms, now_ms);
        return;
    }
    rshard_t *s;
    rentry_t *e = get(r, K_BLOCK, key, &s);
    if (e != NULL && until_ms > now_ms) {
        e->used_ms = now_ms;
        if (until_ms > e->until_ms)
            e->until_ms = until_ms;
        if (until_ms - now_ms > e->block_ms)
            e->block_ms = until_ms - now_ms;
        enqueue(r, e);
    }
    pthread_mutex_unlock(&s->mu);
}

int64_t
pd_redis_blocked(pd_redis_t *r, const char *key, int64_t now_ms)
{
    if (fall_back(r))
        return pd_mem_blocked(r->fallback, key, now_ms);
    rshard_t *s;
    rentry_t *e = get(r, K_BLOCK, key, &s);
    int64_t left = 0;
    if (e != NULL) {
        e->used_ms = now_ms;
        left = e->until_ms > now_ms ? e->until_ms - now_ms : 0;
        if (!e->known)
            enqueue(r, e); /* asked once; later blocks arrive on the stream */
    }
    pthread_mutex_unlock(&s->mu);
    return left;
}

/* --- the sync thread --- */

typedef struct {
    rentry_t *e;
    rshard_t *s;
} slot_t;

/* moves e's pending change into flight and appends its script call (shard locked) */
static int
snapshot(pd_redis_t *r, rentry_t *e, int64_t now)
{
    char a[6][32], key[KEY_MAX + 16];
    const char *argv[12];
    size_t lens[12];
    int argc = 0, nargs = 0;
    unsigned gen = atomic_load(&r->gen);
    if (e->gen != gen)
        reset_entry(e, gen);
    snprintf(key, sizeof(key), "%s%s", kprefix[e->kind], e->key);
    pd_rscript_t sc = PD_RS_TAKE;
    switch (e->kind) {
    case K_TAKE: {
        sc = PD_RS_TAKE;
        e->f_debt = e->debt, e->debt = 0;
        if (now - e->used_ms > IDLE_MS) {
            e->f_back = e->reserve, e->reserve = 0, e->f_want = 0;
        } else {
            int64_t target = e->spent * 2 > 4 ? e->spent * 2 : 4;
            if (target > (int64_t)e->burst)
                target = (int64_t)e->burst > 0 ? (int64_t)e->burst : 1;
            e->f_want = target > e->reserve ? target - e->reserve : 0;
            e->f_back = 0;
        }
        e->spent = 0, e->refused = 0;
        snprintf(a[0], sizeof(a[0]), "%.17g", e->rate);
        snprintf(a[1], sizeof(a[1]), "%.17g", e->burst);
        snprintf(a[2], sizeof(a[2]), "%lld", (long long)e->f_debt);
        snprintf(a[3], sizeof(a[3]), "%lld", (long long)e->f_want);
        snprintf(a[4], sizeof(a[4]), "%lld", (long long)e->f_back);
        snprintf(a[5], sizeof(a[5]), "%lld", (long long)atomic_load(&r->nodes));
        nargs = 6;
        break;
    }
    case K_HIT:
        sc = PD_RS_HIT;
        e->f_pend = e->pend, e->pend = 0;
        snprintf(a[0], sizeof(a[0]), "%lld", (long long)e->window_ms);
        snprintf(a[1], sizeof(a[1]), "%lld", (long long)e->f_pend);
        nargs = 2;
        break;
    case K_ADD:
        sc = PD_RS_ADD;
        e->f_pend = e->pend, e->pend = 0;
        snprintf(a[0], sizeof(a[0]), "%lld", (long long)e->f_pend);
        snprintf(a[1], sizeof(a[1]), "%lld", (long long)(e->ttl_ms > 0 ? e->ttl_ms : 1));
        nargs = 2;
        break;
    default:
        sc = PD_RS_BLOCK;
        e->f_block_ms = e->block_ms, e->block_ms = 0;
        snprintf(a[0], sizeof(a[0]), "%lld", (long long)e->f_block_ms);
        snprintf(a[1], sizeof(a[1]), "%s", "");
        nargs = 2;
        break;
    }
    argv[argc++] = "EVALSHA";
    argv[argc++] = pd_rscript_sha(sc);
    argv[argc++] = e->kind == K_BLOCK ? "2" : "1";
    argv[argc++] = key;
    if (e->kind == K_BLOCK)
        argv[argc++] = STREAM;
    for (int i = 0; i < nargs; i++)
        argv[argc++] = a[i];
    if (e->kind == K_BLOCK)
        argv[argc - 1] = e->key; /* the cache key, for the stream */
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    e->queued = false;
    e->inflight = true;
    return pd_rconn_append(&r->conn, argc, argv, lens);
}

/* puts the change in flight back into pending (a NOSCRIPT answer: sent again) */
static void
unsnap(rentry_t *e)
{
    e->debt += e->f_debt, e->reserve += e->f_back, e->pend += e->f_pend;
    if (e->f_block_ms > e->block_ms)
        e->block_ms = e->f_block_ms;
    e->f_debt = e->f_want = e->f_back = e->f_pend = e->f_block_ms = 0;
}

static int64_t
ival(const redisReply *x)
{
    if (x->type == REDIS_REPLY_INTEGER)
        return (int64_t)x->integer;
    if (x->type == REDIS_REPLY_STRING)
        return strtoll(x->str, NULL, 10);
    return 0;
}

static bool
int_array(const redisReply *rp, size_t n)
{
    if (rp->type != REDIS_REPLY_ARRAY || rp->elements != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (rp->element[i]->type != REDIS_REPLY_INTEGER)
            return false;
    return true;
}

/* folds one script answer into e (shard locked); false when the answer is malformed */
static bool
apply(pd_redis_t *r, rentry_t *e, const redisReply *rp, int64_t now)
{
    static const size_t want[] = {4, 4, 3, 2};
    if (!int_array(rp, want[e->kind]))
        return false;
    int64_t rnow = ival(rp->element[want[e->kind] - 1]);
    atomic_store(&r->offset_ms, rnow - now);
    switch (e->kind) {
    case K_TAKE:
        e->reserve += ival(rp->element[0]);
        e->tokens = ival(rp->element[1]);
        break;
    case K_HIT:
        e->ws = ival(rp->element[0]), e->wc = ival(rp->element[1]), e->wp = ival(rp->element[2]);
        break;
    case K_ADD:
        e->value = ival(rp->element[0]), e->left_ms = ival(rp->element[1]);
        break;
    default: {
        int64_t left = ival(rp->element[0]);
        if (left > 0 && now + left > e->until_ms)
            e->until_ms = now + left;
        break;
    }
    }
    e->f_debt = e->f_want = e->f_back = e->f_pend = e->f_block_ms = 0;
    e->known = true;
    e->synced_ms = now;
    return true;
}

/* blocks announced by any node: [[stream, [[id, [k, key, u, until], ...]]]] */
static void
apply_stream(pd_redis_t *r, const redisReply *rp, int64_t now)
{
    if (rp->type != REDIS_REPLY_ARRAY || rp->elements != 1 || rp->element[0]->type != REDIS_REPLY_ARRAY ||
        rp->element[0]->elements != 2 || rp->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
        return; /* nil: nothing new */
    const redisReply *list = rp->element[0]->element[1];
    int64_t off = atomic_load(&r->offset_ms);
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *ent = list->element[i];
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 || ent->element[0]->type != REDIS_REPLY_STRING ||
            ent->element[1]->type != REDIS_REPLY_ARRAY || ent->element[0]->len >= sizeof(r->last_id))
            continue;
        memcpy(r->last_id, ent->element[0]->str, ent->element[0]->len + 1);
        const redisReply *f = ent->element[1];
        const char *k = NULL;
        int64_t until = 0;
        for (size_t j = 0; j + 1 < f->elements; j += 2) {
            if (f->element[j]->type != REDIS_REPLY_STRING || f->element[j + 1]->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(f->element[j]->str, "k") == 0)
                k = f->element[j + 1]->str;
            else if (strcmp(f->element[j]->str, "u") == 0)
                until = strtoll(f->element[j + 1]->str, NULL, 10);
        }
        int64_t local_until = until - off;
        if (k == NULL || strlen(k) >= KEY_MAX || local_until <= now)
            continue;
        rshard_t *s;
        rentry_t *e = get(r, K_BLOCK, k, &s);
        if (e != NULL) {
            if (local_until > e->until_ms)
                e->until_ms = local_until;
            e->known = true;
            if (e->used_ms == 0)
                e->used_ms = now;
        }
        pthread_mutex_unlock(&s->mu);
    }
}

static int
load_scripts(pd_redis_t *r, char *err, size_t cap)
{
    for (int i = 0; i < PD_RS__N; i++) {
        redisReply *rp = NULL;
        const char *argv[] = {"SCRIPT", "LOAD", pd_rscript_body((pd_rscript_t)i)};
        int rc = pd_rconn_cmd(&r->conn, &rp, 3, argv);
        if (rc == 0 && (rp->type != REDIS_REPLY_STRING || strcmp(rp->str, pd_rscript_sha((pd_rscript_t)i)) != 0)) {
            snprintf(err, cap, "%s: SCRIPT LOAD refused: %.160s", r->conn.peer,
                     rp->type == REDIS_REPLY_ERROR ? rp->str : "unexpected answer");
            rc = PD_ERR_PROTOCOL;
        } else if (rc != 0) {
            snprintf(err, cap, "%s: SCRIPT LOAD: %s", r->conn.peer, pd_strerror(rc));
        }
        freeReplyObject(rp);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* one round: every queued key (up to ROUND_MAX), the block stream, the heartbeat */
static int
round_trip(pd_redis_t *r, char *err, size_t cap)
{
    int n = 0, rc = 0;
    int64_t now = pd_real_ms();
    slot_t *sl = calloc(ROUND_MAX, sizeof(*sl));
    if (sl == NULL)
        return PD_ERR_NOMEM;
    pthread_mutex_lock(&r->qmu);
    rentry_t *list = r->qhead;
    r->qhead = r->qtail = NULL;
    pthread_mutex_unlock(&r->qmu);
    /* take up to ROUND_MAX; put the rest back at the front */
    rentry_t *rest = list;
    for (int i = 0; i < ROUND_MAX && rest != NULL; i++) {
        sl[n++].e = rest;
        rest = rest->qnext;
    }
    if (rest != NULL) {
        pthread_mutex_lock(&r->qmu);
        rentry_t *tail = rest;
        while (tail->qnext != NULL)
            tail = tail->qnext;
        tail->qnext = r->qhead;
        if (r->qhead == NULL)
            r->qtail = tail;
        r->qhead = rest;
        pthread_mutex_unlock(&r->qmu);
    }
    for (int i = 0; i < n && rc == 0; i++) {
        rentry_t *e = sl[i].e;
        uint64_t h = hash(e->kind, e->key);
        sl[i].s = &r->shards[h % SHARDS];
        pthread_mutex_lock(&sl[i].s->mu);
        rc = snapshot(r, e, now);
        pthread_mutex_unlock(&sl[i].s->mu);
    }
    const char *xr[] = {"XREAD", "COUNT", "1000", "STREAMS", STREAM, r->last_id};
    size_t xl[6];
    for (int i = 0; i < 6; i++)
        xl[i] = strlen(xr[i]);
    if (rc == 0)
        rc = pd_rconn_append(&r->conn, 6, xr, xl);
    bool beat = now >= r->next_heartbeat;
    if (rc == 0 && beat) {
        const char *hb[] = {"EVALSHA", pd_rscript_sha(PD_RS_NODES), "1", NODES, r->node_id};
        size_t hl[5];
        for (int i = 0; i < 5; i++)
            hl[i] = strlen(hb[i]);
        rc = pd_rconn_append(&r->conn, 5, hb, hl);
        r->next_heartbeat = now + HEARTBEAT_MS;
    }
    if (rc == 0)
        rc = pd_rconn_flush(&r->conn);
    bool noscript = false;
    int got = 0;
    for (; rc == 0 && got < n; got++) {
        redisReply *rp = NULL;
        if ((rc = pd_rconn_read(&r->conn, &rp)) != 0)
            break;
        rentry_t *e = sl[got].e;
        now = pd_real_ms();
        pthread_mutex_lock(&sl[got].s->mu);
        e->inflight = false;
        if (rp->type == REDIS_REPLY_ERROR && strncmp(rp->str, "NOSCRIPT", 8) == 0) {
            noscript = true;
            unsnap(e);
        } else if (rp->type == REDIS_REPLY_ERROR) {
            snprintf(err, cap, "%s: %.200s", r->conn.peer, rp->str);
            rc = strncmp(rp->str, "READONLY", 8) == 0 ? PD_ERR_STATE : PD_ERR_PROTOCOL;
        } else if (!apply(r, e, rp, now)) {
            snprintf(err, cap, "%s: unexpected script answer", r->conn.peer);
            rc = PD_ERR_PROTOCOL;
        }
        /* changed while in flight (or sent again): next round */
        if (rc == 0 && (e->pend > 0 || e->debt > 0 || e->block_ms > 0 || noscript ||
                        (e->kind == K_TAKE && (e->spent > 0 || e->refused > 0))))
            enqueue(r, e);
        pthread_mutex_unlock(&sl[got].s->mu);
        freeReplyObject(rp);
    }
    for (int i = got; i < n; i++) { /* not answered: the connection is gone; a reconnect starts over */
        pthread_mutex_lock(&sl[i].s->mu);
        sl[i].e->inflight = false;
        pthread_mutex_unlock(&sl[i].s->mu);
    }
    if (rc == 0) {
        redisReply *rp = NULL;
        if ((rc = pd_rconn_read(&r->conn, &rp)) == 0) {
            if (rp->type == REDIS_REPLY_ERROR) {
                snprintf(err, cap, "%s: XREAD: %.200s", r->conn.peer, rp->str);
                rc = strncmp(rp->str, "READONLY", 8) == 0 ? PD_ERR_STATE : PD_ERR_PROTOCOL;
            } else {
                apply_stream(r, rp, pd_real_ms());
            }
            freeReplyObject(rp);
        }
    }
    if (rc == 0 && beat) {
        redisReply *rp = NULL;
        if ((rc = pd_rconn_read(&r->conn, &rp)) == 0) {
            if (rp->type == REDIS_REPLY_ERROR && strncmp(rp->str, "NOSCRIPT", 8) == 0) {
                noscript = true;
                r->next_heartbeat = 0;
            } else if (rp->type == REDIS_REPLY_ERROR) {
                snprintf(err, cap, "%s: %.200s", r->conn.peer, rp->str);
                rc = strncmp(rp->str, "READONLY", 8) == 0 ? PD_ERR_STATE : PD_ERR_PROTOCOL;
            } else if (int_array(rp, 2)) {
                atomic_store(&r->nodes, ival(rp->element[0]) > 0 ? ival(rp->element[0]) : 1);
            }
            freeReplyObject(rp);
        }
    }
    if (rc == 0 && noscript) /* the server lost its scripts (restart, SCRIPT FLUSH): load them again */
        rc = load_scripts(r, err, cap);
    if (rc != 0 && err[0] == '\0')
        snprintf(err, cap, "%s: %s", r->conn.peer, pd_strerror(rc));
    free(sl);
    return rc;
}

/* gives unused reserves back to their buckets (every IDLE_MS) */
static void
sweep(pd_redis_t *r, int64_t now)
{
    for (int i = 0; i < SHARDS; i++) {
        rshard_t *s = &r->shards[i];
        pthread_mutex_lock(&s->mu);
        for (int j = 0; j < BUCKETS; j++)
            for (rentry_t *e = s->b[j]; e != NULL; e = e->next)
                if (e->kind == K_TAKE && e->reserve > 0 && now - e->used_ms > IDLE_MS)
                    enqueue(r, e);
        pthread_mutex_unlock(&s->mu);
    }
}

static int
connect_master(pd_redis_t *r, bool *fatal, char *err, size_t cap)
{
    int rc = pd_rcred_connect(&r->conn, &r->url, r->cred, r->tls, r->timeout_ms, fatal, err, cap);
    if (rc == 0 && (rc = load_scripts(r, err, cap)) != 0) {
        *fatal = strstr(err, "NOPERM") != NULL;
        pd_rconn_close(&r->conn);
    }
    return rc;
}

static void
went_up(pd_redis_t *r)
{
    atomic_fetch_add(&r->gen, 1); /* the mirror starts over */
    snprintf(r->last_id, sizeof(r->last_id), "0"); /* every block still in the stream */
    r->next_heartbeat = 0;
    set_text(r, r->server, r->conn.peer);
    atomic_store_explicit(&r->up, true, memory_order_release);
}

static void
went_down(pd_redis_t *r, const char *why)
{
    pd_rconn_close(&r->conn);
    atomic_store_explicit(&r->up, false, memory_order_release);
    atomic_fetch_add(&r->fallbacks, 1);
    set_text(r, r->last_error, why);
    int64_t now = pd_real_ms();
    if (now - r->last_warn >= WARN_EVERY_MS) { /* a flapping server: once per 10 s too */
        pd_log_warn("cache: redis connection lost; limits are answered by this node alone (in-process fallback)",
                    PD_LS("reason", why), PD_LS("server", r->server), PD_LI("fallbacks", atomic_load(&r->fallbacks)));
        r->last_warn = now;
    }
}

/* waits on the queue's condition until deadline (Unix ms) or a stop; a wake-up on the way ends it early */
static void
wait_until(pd_redis_t *r, int64_t deadline_ms)
{
    struct timespec ts = {.tv_sec = deadline_ms / 1000, .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
    pthread_mutex_lock(&r->qmu);
    if (!r->stop)
        pthread_cond_timedwait(&r->qcv, &r->qmu, &ts);
    r->rounds_done++; /* a waiter in pd_redis_sync sees the attempt */
    pthread_cond_broadcast(&r->donecv);
    pthread_mutex_unlock(&r->qmu);
}

/* the next attempt: backoff/2 .. backoff from now; backoff doubles up to BACKOFF_MAX_MS */
static int64_t
next_attempt(int64_t *backoff, int64_t now)
{
    int64_t b = *backoff;
    *backoff = b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2;
    return now + b / 2 + (int64_t)(((uint64_t)now * 2654435761u) % (uint64_t)(b / 2 + 1));
}

static void *
sync_main(void *arg)
{
    pd_redis_t *r = arg;
    int64_t backoff = BACKOFF_MIN_MS, next_connect = 0;
    char err[512];
    for (;;) {
        pthread_mutex_lock(&r->qmu);
        bool stop = r->stop;
        pthread_mutex_unlock(&r->qmu);
        if (stop)
            break;
        int64_t now = pd_real_ms();
        if (!atomic_load(&r->up)) {
            if (now < next_connect) {
                wait_until(r, next_connect);
                continue;
            }
            bool fatal = false;
            err[0] = '\0';
            if (connect_master(r, &fatal, err, sizeof(err)) == 0) {
                went_up(r); /* the back-off is reset by a round that works, not by a connect */
                pd_log_info("cache: redis connected; limits are shared by every node", PD_LS("server", r->conn.peer),
                            PD_LI("fallback_ops", atomic_load(&r->fallback_ops)));
                continue;
            }
            set_text(r, r->last_error, err);
            next_connect = next_attempt(&backoff, now);
            if (now - r->last_warn >= WARN_EVERY_MS) {
                pd_log_warn("cache: redis unavailable; limits are answered by this node alone (in-process fallback)",
                            PD_LS("reason", err), PD_LI("fallback_ops", atomic_load(&r->fallback_ops)),
                            PD_LI("retry_ms", next_connect - now));
                r->last_warn = now;
            }
            continue;
        }
        /* wait for work or the poll */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += POLL_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_mutex_lock(&r->qmu);
        if (r->qhead == NULL && !r->stop)
            pthread_cond_timedwait(&r->qcv, &r->qmu, &ts);
        pthread_mutex_unlock(&r->qmu);
        if (now - r->last_sweep >= IDLE_MS) {
            sweep(r, now);
            r->last_sweep = now;
        }
        err[0] = '\0';
        int rc = round_trip(r, err, sizeof(err));
        if (rc != 0) {
            went_down(r, err); /* rediscovers on the next pass (Sentinel rule 3) */
            next_connect = next_attempt(&backoff, pd_real_ms());
        } else {
            atomic_fetch_add_explicit(&r->rounds, 1, memory_order_relaxed);
            backoff = BACKOFF_MIN_MS;
        }
        pthread_mutex_lock(&r->qmu);
        r->rounds_done++;
        pthread_cond_broadcast(&r->donecv);
        pthread_mutex_unlock(&r->qmu);
    }
    pd_rconn_close(&r->conn);
    return NULL;
}

int
pd_rpassword_file(const char *path, char *out, size_t cap, char *err, size_t ecap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, ecap, "[cache] password_file: cannot open %s: %s", path, strerror(errno));
        return PD_ERR_CONFIG;
    }
    int r = 0;
    if (fgets(out, (int)cap, f) == NULL) {
        snprintf(err, ecap, "[cache] password_file: %s is empty", path);
        r = PD_ERR_CONFIG;
    } else {
        size_t n = strcspn(out, "\r\n");
        if (out[n] == '\0' && !feof(f) && n == cap - 1) {
            snprintf(err, ecap, "[cache] password_file: the password in %s is longer than %zu bytes", path, cap - 2);
            r = PD_ERR_CONFIG;
        }
        out[n] = '\0';
        if (r == 0 && n == 0) {
            snprintf(err, ecap, "[cache] password_file: the first line of %s is empty", path);
            r = PD_ERR_CONFIG;
        }
    }
    fclose(f);
    return r;
}

int
pd_redis_new(pd_redis_t **out, const pd_cache_config_t *cfg, int64_t max_entries, char *err, size_t cap)
{
    int rc = PD_ERR_NOMEM;
    pd_redis_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return PD_ERR_NOMEM;
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&r->shards[i].mu, NULL);
    pthread_mutex_init(&r->qmu, NULL);
    pthread_mutex_init(&r->smu, NULL);
    pthread_cond_init(&r->qcv, NULL);
    pthread_cond_init(&r->donecv, NULL);
    r->conn.fd = -1;
    r->max_per_shard = max_entries / SHARDS > 16 ? max_entries / SHARDS : 16;
    r->timeout_ms = (int)cfg->timeout_ms > 0 ? (int)cfg->timeout_ms : 1000;
    atomic_store(&r->nodes, 1);
    snprintf(r->last_id, sizeof(r->last_id), "0");
    if (cfg->url == NULL || cfg->url[0] == '\0') {
        snprintf(err, cap, "[cache] backend = redis needs [cache] url");
        rc = PD_ERR_CONFIG;
        goto fail;
    }
    if ((rc = pd_rurl_parse(&r->url, cfg->url, err, cap)) != 0)
        goto fail;
    if (cfg->password_file != NULL && cfg->password_file[0] != '\0' &&
        (rc = pd_rpassword_file(cfg->password_file, r->url.password, sizeof(r->url.password), err, cap)) != 0)
        goto fail;
    if ((rc = pd_rcred_acquire(cfg, &r->cred, err, cap)) != 0)
        goto fail;
    if (r->url.kind == PD_RURL_PLAIN && cfg->tls_ca != NULL && cfg->tls_ca[0] != '\0') {
        snprintf(err, cap, "[cache] tls_ca is set but the url is not rediss://");
        rc = PD_ERR_CONFIG;
        goto fail;
    }
    if (r->url.kind == PD_RURL_TLS && (rc = pd_rconn_tls_ctx(&r->tls, cfg->tls_ca, err, cap)) != 0)
        goto fail;
    if ((rc = pd_mem_new(&r->fallback, max_entries)) != 0)
        goto fail;
    {
        char host[64] = "";
        (void)gethostname(host, sizeof(host) - 1);
        snprintf(r->node_id, sizeof(r->node_id), "%.63s:%ld:%lld", host, (long)getpid(), (long long)pd_mono_ns());
    }
    /* the first connection at start: a refused password or TLS handshake stops payd */
    bool fatal = false;
    char why[512] = "";
    if (connect_master(r, &fatal, why, sizeof(why)) == 0) {
        went_up(r);
        pd_log_info("cache: redis connected; limits are shared by every node", PD_LS("server", r->conn.peer));
    } else if (fatal) {
        snprintf(err, cap, "[cache] url: %s", why);
        rc = PD_ERR_CONFIG;
        goto fail;
    } else {
        atomic_fetch_add(&r->fallbacks, 1);
        set_text(r, r->last_error, why);
        pd_log_warn("cache: redis unavailable at start; limits are answered by this node alone (in-process fallback) "
                    "until it is reachable",
                    PD_LS("reason", why));
        r->last_warn = pd_real_ms();
    }
    if ((rc = pthread_create(&r->thread, NULL, sync_main, r)) != 0) {
        rc = -rc;
        snprintf(err, cap, "[cache] cannot start the sync thread");
        goto fail;
    }
    r->thread_started = true;
    *out = r;
    return 0;
fail:
    pd_redis_free(r);
    return rc;
}

void
pd_redis_free(pd_redis_t *r)
{
    if (r == NULL)
        return;
    if (r->thread_started) {
        pthread_mutex_lock(&r->qmu);
        r->stop = true;
        pthread_cond_broadcast(&r->qcv);
        pthread_mutex_unlock(&r->qmu);
        pthread_join(r->thread, NULL);
    }
    pd_rconn_close(&r->conn);
    for (int i = 0; i < SHARDS; i++) {
        for (int j = 0; j < BUCKETS; j++)
            for (rentry_t *e = r->shards[i].b[j], *n; e != NULL; e = n) {
                n = e->next;
                free(e);
            }
        pthread_mutex_destroy(&r->shards[i].mu);
    }
    pd_mem_free(r->fallback);
    if (r->tls != NULL)
        SSL_CTX_free(r->tls);
    OPENSSL_cleanse(r->url.password, sizeof(r->url.password));
    pd_rcred_release(r->cred);
    pthread_mutex_destroy(&r->qmu);
    pthread_mutex_destroy(&r->smu);
    pthread_cond_destroy(&r->qcv);
    pthread_cond_destroy(&r->donecv);
    free(r);
}

void
pd_redis_stats(pd_redis_t *r, pd_cache_stats_t *out)
{
    out->redis = true;
    out->connected = atomic_load(&r->up);
    out->nodes = atomic_load(&r->nodes);
    out->fallback_ops = atomic_load(&r->fallback_ops);
    out->fallbacks = atomic_load(&r->fallbacks);
    out->rounds = atomic_load(&r->rounds);
    pthread_mutex_lock(&r->smu);
    snprintf(out->server, sizeof(out->server), "%s", r->server);
    snprintf(out->last_error, sizeof(out->last_error), "%s", r->last_error);
    pthread_mutex_unlock(&r->smu);
}

int
pd_redis_sync(pd_redis_t *r, int timeout_ms)
{
    if (!atomic_load(&r->up))
        return PD_ERR_STATE;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    int rc = 0;
    pthread_mutex_lock(&r->qmu);
    int64_t target = r->rounds_done + 2; /* the one running may have begun before the call */
    pthread_cond_signal(&r->qcv);
    while (r->rounds_done < target && rc == 0)
        rc = pthread_cond_timedwait(&r->donecv, &r->qmu, &ts) == ETIMEDOUT ? PD_ERR_TIMEOUT : 0;
    pthread_mutex_unlock(&r->qmu);
    return rc != 0 ? rc : atomic_load(&r->up) ? 0 : PD_ERR_STATE;
}
