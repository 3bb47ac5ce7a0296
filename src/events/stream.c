/*
 * The transaction stream's publisher (payd/stream.h): one thread that takes the
 * events the relay queued for the stream, XADDs each to its partition (one
 * pipeline per batch), and deletes the rows Redis acknowledged. Its Redis
 * connection is its own (payd/redis_link.h), apart from the cache's.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "payd/arena.h"
#include "payd/cluster.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/outbox.h"
#include "payd/records.h"
#include "payd/redis_link.h"
#include "payd/relay.h"
#include "payd/stream.h"
#include "payd/time.h"

#define STREAM_BATCH 100
#define STREAM_TICK_MS 500
#define STREAM_EVENT_MAX (1u << 20) /* one event's JSON */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define WARN_EVERY_MS 10000

static const pd_config_key_t keys[] = {
#define C(f) offsetof(pd_stream_config_t, f)
    {"backend", PD_CT_STR, C(backend), "",
     .help = "off or redis (empty: redis when [cache] url names a Redis, otherwise off); see docs/redis.md"},
    {"url", PD_CT_STR, C(url), "", .help = "the stream's Redis, in the [cache] url forms (empty: the cache's)"},
    {"partitions", PD_CT_INT, C(partitions), "3", 1, 256,
     .help = "streams payd:txn:0 .. N-1; an event goes to hash(merchant id) mod N"},
    {"retention", PD_CT_MS, C(retention_ms), "24h", 1000, 365LL * 86400000,
     .help = "entries older than this are trimmed (XADD MINID ~)"},
    {"encrypt", PD_CT_BOOL, C(encrypt), "true", .help = "payload envelope-encrypted under alias/events"},
    {"replicas", PD_CT_INT, C(replicas), "0", 0, 16,
     .help = "an entry is published once this many replicas hold it (WAIT); 0: once the master does"},
#undef C
};

static pd_stream_config_t g_cfg_storage;
static const pd_stream_config_t *g_cfg;

int
pd_stream_config_register(pd_config_t *cfg)
{
    int r = pd_config_add(cfg, "stream", keys, sizeof(keys) / sizeof(keys[0]), &g_cfg_storage);
    if (r == 0)
        g_cfg = &g_cfg_storage;
    return r;
}

const pd_stream_config_t *
pd_stream_config(void)
{
    return g_cfg;
}

uint32_t
pd_stream_partition(const char *merchant, int64_t partitions)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)merchant; *p != '\0'; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return partitions > 0 ? (uint32_t)(h % (uint64_t)partitions) : 0;
}

int
pd_stream_context(char *out, size_t cap, const char *event_id, const char *merchant)
{
    int n = snprintf(out, cap, "payd:txn|%s|%s", event_id, merchant);
    return n > 0 && (size_t)n < cap ? 0 : PD_ERR_TOOBIG;
}

int
pd_stream_target(pd_stream_target_t *t, char *err, size_t cap)
{
    const pd_cache_config_t *cc = pd_cache_config();
    const pd_stream_config_t *sc = g_cfg;
    memset(t, 0, sizeof(*t));
    const char *backend = sc != NULL && sc->backend != NULL ? sc->backend : "";
    bool cache_redis = cc != NULL && cc->url != NULL && cc->url[0] != '\0' &&
                       (strncmp(cc->url, "redis://", 8) == 0 || strncmp(cc->url, "rediss://", 9) == 0 ||
                        strncmp(cc->url, "redis-sentinel://", 17) == 0);
    if (strcmp(backend, "off") == 0)
        return 0;
    if (backend[0] != '\0' && strcmp(backend, "redis") != 0) {
        snprintf(err, cap, "[stream] backend: \"%.40s\" is not off or redis", backend);
        return PD_ERR_CONFIG;
    }
    bool own_url = sc != NULL && sc->url != NULL && sc->url[0] != '\0';
    if (backend[0] == '\0' && !own_url && !cache_redis)
        return 0; /* the default: off without a Redis */
    if (!own_url && !cache_redis) {
        snprintf(err, cap, "[stream] backend = redis needs [stream] url or a Redis [cache] url");
        return PD_ERR_CONFIG;
    }
    t->on = true;
    t->url = own_url ? sc->url : cc->url;
    t->tls_ca = cc != NULL ? cc->tls_ca : NULL;
    t->password_file = own_url || cc == NULL ? NULL : cc->password_file;
    t->timeout_ms = cc != NULL && cc->timeout_ms > 0 ? cc->timeout_ms : 1000;
    return 0;
}

struct pd_stream {
    pd_store_t *store;
    pd_vault_client_t *vault;
    pd_rlink_t *link;
    int64_t partitions, retention_ms, replicas;
    int64_t wait_ms; /* WAIT's timeout: half the link's, so its answer at the deadline is read */
    bool encrypt;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool kicked;
    int64_t backoff_ms, last_warn;
    int64_t last_big; /* when an event too large to encrypt was last logged */
    int64_t backlog_at, backlog; /* payd_stream_backlog: counted every 5 s */
};

typedef struct {
    pd_outbox_ev_t ev[STREAM_BATCH];
    size_t nev;
    bool acked[STREAM_BATCH];
    pd_buf_t payload[STREAM_BATCH]; /* the JSON, then (encrypted) its envelope's hex */
    int64_t created[STREAM_BATCH];
    int rc[STREAM_BATCH];
} sbatch_t;

static void
warn_down(pd_stream_t *s, const char *what, const char *why)
{
    int64_t now = pd_real_ms();
    if (s->last_warn == 0 || now - s->last_warn >= WARN_EVERY_MS) {
        pd_log_warn("stream: redis unavailable; events wait in the outbox and are published when it is back",
                    PD_LS("step", what), PD_LS("reason", why));
        s->last_warn = now;
    }
}

/* one event's JSON into js (its creation time into *created) */
static int
event_json(pd_db_t *db, const pd_outbox_ev_t *e, pd_buf_t *js, int64_t *created)
{
    pd_arena_t a;
    pd_event_rec_t rec;
    int r;
    pd_arena_init(&a, 2 * STREAM_EVENT_MAX);
    if ((r = pd_event_get(db, &a, e->merchant, e->livemode, e->event_id, &rec)) == 0) {
        *created = rec.created;
        pd_jw_t w;
        pd_jw_init(&w, js);
        pd_event_json(&w, &rec);
        r = pd_jw_finish(&w);
    }
    pd_arena_free(&a);
    return r;
}

/*
 * Sealing a batch: the events go to the vault in ENCRYPT_BATCH requests
 * (pd_vault_encrypt_batch: up to PD_VAULT_BATCH_MAX payloads, PD_VAULT_BATCH_BYTES in
 * all, one audit record each), all sent at once, and the publisher waits for the last
 * reply: a batch of the stream costs one round trip and a few vault operations rather
 * than one of each per event. Each envelope is the one Encrypt would make (the stream's
 * format is unchanged). A reply replaces its entries' JSON with the hex of their
 * envelopes, on the client's thread; the publisher touches the entries again only after
 * the count of replies due reached zero.
 */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t left;
} seal_wait_t;

typedef struct {
    seal_wait_t *wait;
    pd_buf_t *payload[PD_VAULT_BATCH_MAX]; /* in: the JSON; out: the envelope's hex */
    size_t n;
    int rc;
} seal_t;

static int
put_hex(pd_buf_t *p, pd_view_t env)
{
    OPENSSL_cleanse(p->p, p->len);
    pd_buf_reset(p);
    int rc = pd_buf_reserve(p, env.len * 2 + 1);
    if (rc == 0) {
        pd_hex(env.p, env.len, (char *)p->p);
        p->len = env.len * 2;
    }
    return rc;
}

static void
on_sealed(void *arg, int rc, const pd_vault_reply_t *rep)
{
    seal_t *e = arg;
    pd_view_t envs[PD_VAULT_BATCH_MAX];
    if (rc == 0 && (rep == NULL || pd_vault_batch_envelopes(pd_buf_view(&rep->data), envs, e->n) != 0))
        rc = PD_ERR_PROTOCOL;
    for (size_t i = 0; rc == 0 && i < e->n; i++)
        rc = put_hex(e->payload[i], envs[i]);
    if (rc != 0 && rep != NULL && rep->text[0] != '\0')
        pd_log_warn("stream: the vault refused a batch", PD_LS("reason", rep->text), PD_LERR(rc));
    e->rc = rc;
    pthread_mutex_lock(&e->wait->mu);
    if (--e->wait->left == 0)
        pthread_cond_signal(&e->wait->cv);
    pthread_mutex_unlock(&e->wait->mu);
}

/* sends one request for the n entries in idx (their contexts in ctx) */
static void
seal_send(pd_stream_t *s, seal_wait_t *w, seal_t *seal, pd_buf_t *payload, char (*ctx)[200], const size_t *idx,
          size_t n)
{
    pd_vault_batch_item_t it[PD_VAULT_BATCH_MAX];
    *seal = (seal_t){.wait = w, .n = n};
    for (size_t j = 0; j < n; j++) {
        seal->payload[j] = &payload[idx[j]];
        it[j] = (pd_vault_batch_item_t){pd_view_cstr(ctx[idx[j]]), pd_buf_view(&payload[idx[j]])};
    }
    pthread_mutex_lock(&w->mu);
    w->left++;
    pthread_mutex_unlock(&w->mu);
    int r = pd_vault_encrypt_batch(s->vault, PD_STREAM_KEY_ALIAS, it, n, on_sealed, seal);
    if (r != 0) {
        pthread_mutex_lock(&w->mu);
        w->left--;
        pthread_mutex_unlock(&w->mu);
        seal->rc = r;
    }
}

/* seals the entries whose rc[i] is 0; an entry that fails gets its rc[i] (all of its
 * request's entries do: the vault seals a request whole or not at all) */
static void
seal_batch(pd_stream_t *s, const pd_outbox_ev_t *ev, pd_buf_t *payload, int *rc, size_t n)
{
    seal_wait_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    char ctx[STREAM_BATCH][200];
    seal_t seals[STREAM_BATCH];
    size_t req_of[STREAM_BATCH], nreq = 0, idx[PD_VAULT_BATCH_MAX], k = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc[i] != 0)
            continue;
        if ((rc[i] = pd_stream_context(ctx[i], sizeof(ctx[i]), ev[i].event_id, ev[i].merchant)) != 0)
            continue;
        if (payload[i].len > PD_VAULT_BATCH_BYTES) {
            rc[i] = PD_ERR_TOOBIG; /* logged by the caller: this event waits */
            continue;
        }
        if (k == PD_VAULT_BATCH_MAX || bytes + payload[i].len > PD_VAULT_BATCH_BYTES) {
            seal_send(s, &w, &seals[nreq++], payload, ctx, idx, k);
            k = bytes = 0;
        }
        req_of[i] = nreq;
        idx[k++] = i;
        bytes += payload[i].len;
    }
    if (k > 0)
        seal_send(s, &w, &seals[nreq++], payload, ctx, idx, k);
    pthread_mutex_lock(&w.mu);
    while (w.left > 0)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    for (size_t i = 0; i < n; i++)
        if (rc[i] == 0)
            rc[i] = seals[req_of[i]].rc;
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
}

static int
append_xadd(pd_stream_t *s, const pd_outbox_ev_t *e, int64_t created, const pd_buf_t *p, int64_t minid_ms)
{
    char key[64], minid[32], cr[24];
    snprintf(key, sizeof(key), PD_STREAM_KEY_PREFIX "%u", (unsigned)pd_stream_partition(e->merchant, s->partitions));
    snprintf(minid, sizeof(minid), "%lld-0", (long long)(minid_ms > 0 ? minid_ms : 0));
    snprintf(cr, sizeof(cr), "%lld", (long long)created);
    const char *lm = e->livemode ? "true" : "false";
    const char *argv[] = {"XADD", key,  "MINID",    "~",      minid,       "*",      "id", e->event_id,
                          "type", e->type, "merchant", e->merchant, "livemode", lm, "created", cr,
                          "payload", (const char *)p->p};
    size_t lens[sizeof(argv) / sizeof(argv[0])];
    int argc = (int)(sizeof(argv) / sizeof(argv[0]));
    for (int i = 0; i < argc - 1; i++)
        lens[i] = strlen(argv[i]);
    lens[argc - 1] = p->len;
    return pd_rlink_append(s->link, argc, argv, lens);
}

static int
write_done(pd_db_t *tx, void *arg)
{
    sbatch_t *b = arg;
    pd_outbox_ev_t done[STREAM_BATCH];
    size_t n = 0;
    for (size_t i = 0; i < b->nev; i++)
        if (b->acked[i])
            done[n++] = b->ev[i];
    return pd_stream_outbox_done(tx, done, n);
}


/*
 * WAIT: true once [stream] replicas replicas acknowledged every write of this
 * connection so far (the pass's XADDs), within s->wait_ms. Redis replicates
 * asynchronously: without it, entries the master acknowledged and had not yet sent
 * to a replica are lost when Sentinel promotes that replica.
 */
static bool
replicas_hold(pd_stream_t *s, char *why, size_t cap)
{
    char want[24], ms[24];
    snprintf(want, sizeof(want), "%lld", (long long)s->replicas);
    snprintf(ms, sizeof(ms), "%lld", (long long)s->wait_ms);
    const char *argv[] = {"WAIT", want, ms};
    size_t lens[] = {4, strlen(want), strlen(ms)};
    redisReply *rep = NULL;
    int r = pd_rlink_append(s->link, 3, argv, lens);
    if (r == 0)
        r = pd_rlink_flush(s->link);
    if (r == 0)
        r = pd_rlink_read(s->link, &rep);
    if (r != 0) {
        snprintf(why, cap, "WAIT: %s", pd_strerror(r));
        return false;
    }
    bool ok = rep->type == REDIS_REPLY_INTEGER && rep->integer >= s->replicas;
    if (!ok)
        snprintf(why, cap, "WAIT: %lld of %lld replicas hold the entries after %s ms",
                 rep->type == REDIS_REPLY_INTEGER ? (long long)rep->integer : -1LL, (long long)s->replicas, ms);
    freeReplyObject(rep);
    return ok;
}

/* one pass: the number of rows taken (acknowledged or dropped); -1 when Redis failed */
static int
publish_once(pd_stream_t *s)
{
    sbatch_t *b = calloc(1, sizeof(*b));
    int n = 0, r;
    size_t sent = 0;
    bool retry = false;
    char why[300] = "";
    if (b == NULL)
        return 0;
    for (size_t i = 0; i < STREAM_BATCH; i++)
        pd_buf_init(&b->payload[i], 2 * STREAM_EVENT_MAX + 64);
    /* one publisher per cluster (docs/cluster.md): two would only add duplicate entries
     * (consumers de-duplicate by id), but they would race for the same rows */
    if (!pd_lease_held(PD_LEASE_STREAM))
        goto out;
    pd_db_t *db = pd_store_reader(s->store);
    if (db == NULL || pd_stream_outbox_peek(db, b->ev, STREAM_BATCH, &b->nev) != 0 || b->nev == 0)
        goto out;
    bool fatal = false;
    if ((r = pd_rlink_connect(s->link, &fatal, why, sizeof(why))) != 0) {
        warn_down(s, "connect", why);
        n = -1;
        goto out;
    }
    int64_t minid = pd_real_ms() - s->retention_ms;
    for (size_t i = 0; i < b->nev; i++) {
        b->rc[i] = b->ev[i].event_id[0] == '\0' ? PD_ERR_INVALID : event_json(db, &b->ev[i], &b->payload[i], &b->created[i]);
        if (b->rc[i] == PD_ERR_INVALID) {
            b->acked[i] = true; /* malformed row: nothing to publish */
        } else if (b->rc[i] == PD_ERR_NOTFOUND) {
            pd_log_error("stream: a queued event is not in the store; dropped from the stream queue",
                         PD_LS("event", b->ev[i].event_id));
            b->acked[i] = true;
        }
    }
    if (s->encrypt)
        seal_batch(s, b->ev, b->payload, b->rc, b->nev);
    size_t which[STREAM_BATCH];
    for (size_t i = 0; i < b->nev; i++) {
        if (b->acked[i])
            continue;
        if (b->rc[i] == PD_ERR_TOOBIG) {
            /* not transient: no back-off for it (the others go on); it stays queued, and
             * is logged once per 10 s rather than on every pass */
            int64_t now = pd_real_ms();
            if (s->last_big == 0 || now - s->last_big >= WARN_EVERY_MS) {
                pd_log_error("stream: an event is larger than the vault encrypts in one request; it stays queued, "
                             "unpublished",
                             PD_LS("event", b->ev[i].event_id), PD_LI("bytes", (int64_t)b->payload[i].len),
                             PD_LI("max", PD_VAULT_BATCH_BYTES));
                s->last_big = now;
            }
            continue;
        }
        if (b->rc[i] != 0) { /* the vault (or memory): this event waits for the next pass, after a back-off */
            pd_log_warn("stream: cannot build an entry; retried", PD_LS("event", b->ev[i].event_id), PD_LERR(b->rc[i]));
            retry = true;
            continue;
        }
        if ((r = append_xadd(s, &b->ev[i], b->created[i], &b->payload[i], minid)) != 0) {
            snprintf(why, sizeof(why), "%s", pd_strerror(r));
            break;
        }
        which[sent++] = i;
    }
    if (sent > 0 && (r = pd_rlink_flush(s->link)) != 0) {
        snprintf(why, sizeof(why), "write: %s", pd_strerror(r));
        sent = 0;
        n = -1;
    }
    for (size_t k = 0; k < sent; k++) {
        redisReply *rep = NULL;
        if ((r = pd_rlink_read(s->link, &rep)) != 0) {
            snprintf(why, sizeof(why), "read: %s", pd_strerror(r));
            n = -1;
            break;
        }
        if (rep->type == REDIS_REPLY_STRING) {
            b->acked[which[k]] = true;
            pd_mx_inc(PD_MX_STREAM_PUBLISHED, 0);
        } else {
            snprintf(why, sizeof(why), "XADD refused: %.200s", rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply");
            n = -1;
        }
        freeReplyObject(rep);
    }
    if (n == 0 && sent > 0 && s->replicas > 0 && !replicas_hold(s, why, sizeof(why))) {
        /* the master may lose them in a failover: they stay queued and go again (same ids) */
        for (size_t k = 0; k < sent; k++)
            b->acked[which[k]] = false;
        n = -1;
    }
    if (n < 0) {
        warn_down(s, "publish", why);
        if (pd_rlink_connected(s->link) && strstr(why, "READONLY") != NULL)
            pd_rlink_drop(s->link); /* a failover: rediscover the master */
    }
    size_t acked = 0;
    for (size_t i = 0; i < b->nev; i++)
        acked += b->acked[i];
    /* the rows go only once Redis holds their entries: a crash before this write
     * publishes them again (the same ids) */
    if (acked > 0 && (r = pd_store_write_sync(s->store, write_done, b)) != 0)
        pd_log_warn("stream: cannot remove published events from the queue; they will be published again", PD_LERR(r));
    else if (n == 0)
        n = retry ? -1 : (int)b->nev;
out:
    for (size_t i = 0; i < STREAM_BATCH; i++)
        pd_buf_free_secure(&b->payload[i]); /* plaintext events when not encrypted */
    free(b);
    return n;
}

static void
wait_ms(pd_stream_t *s, int64_t ms, bool wake_on_kick)
{
    pthread_mutex_lock(&s->mu);
    if (!(wake_on_kick && s->kicked) && !atomic_load(&s->stop)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    if (wake_on_kick)
        s->kicked = false;
    pthread_mutex_unlock(&s->mu);
}

/* payd_stream_backlog: a COUNT every 5 s on this thread, on every node (the cluster's
 * queue, whichever node publishes), never at scrape time on an event loop */
static void
count_backlog(pd_stream_t *s)
{
    int64_t now = (int64_t)pd_mono_ms(), n;
    pd_db_t *db;
    if (pd_mx == NULL || (s->backlog_at != 0 && now - s->backlog_at < 5000) ||
        (db = pd_store_reader(s->store)) == NULL)
        return;
    s->backlog_at = now;
    if (pd_stream_outbox_backlog(db, &n) == 0) {
        pd_metric_gauge_add(pd_mx, PD_MX_STREAM_BACKLOG, 0, n - s->backlog);
        s->backlog = n;
    }
}

static void *
stream_main(void *arg)
{
    pd_stream_t *s = arg;
    pthread_setname_np(pthread_self(), "payd-stream");
    while (!atomic_load(&s->stop)) {
        count_backlog(s);
        int n = publish_once(s);
        if (n < 0) {
            wait_ms(s, s->backoff_ms, false);
            s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
            continue;
        }
        if (s->last_warn != 0 && n > 0) {
            pd_log_info("stream: redis reachable again; publishing", PD_LS("server", pd_rlink_peer(s->link)));
            s->last_warn = 0;
        }
        s->backoff_ms = BACKOFF_MIN_MS;
        if (n == STREAM_BATCH)
            continue;
        wait_ms(s, STREAM_TICK_MS, true);
    }
    return NULL;
}

int
pd_stream_start(pd_stream_t **out, pd_store_t *store, pd_vault_client_t *vault, char *err, size_t cap)
{
    pd_stream_target_t t;
    *out = NULL;
    int r = pd_stream_target(&t, err, cap);
    if (r != 0 || !t.on)
        return r;
    pd_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return PD_ERR_NOMEM;
    s->store = store;
    s->vault = vault;
    s->partitions = g_cfg != NULL ? g_cfg->partitions : 3;
    s->retention_ms = g_cfg != NULL ? g_cfg->retention_ms : 86400000;
    s->encrypt = g_cfg == NULL || g_cfg->encrypt;
    s->replicas = g_cfg != NULL ? g_cfg->replicas : 0;
    s->wait_ms = t.timeout_ms / 2 > 0 ? t.timeout_ms / 2 : 1;
    s->backoff_ms = BACKOFF_MIN_MS;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    char why[400] = "";
    if ((r = pd_rlink_new(&s->link, t.url, t.tls_ca, t.password_file, (int)t.timeout_ms, why, sizeof(why))) != 0) {
        snprintf(err, cap, "[stream] url: %s", why);
        goto fail;
    }
    /* on the cache's Redis, the cache's login (a vault secret with password_secret) */
    if (t.password_file != NULL && t.url != NULL && (r = pd_rlink_use_cache_secret(s->link, why, sizeof(why))) != 0) {
        snprintf(err, cap, "[stream] %s", why);
        goto fail;
    }
    bool fatal = false;
    if (pd_rlink_connect(s->link, &fatal, why, sizeof(why)) != 0) {
        if (fatal) {
            snprintf(err, cap, "[stream] url: %s", why);
            r = PD_ERR_CONFIG;
            goto fail;
        }
        warn_down(s, "connect at start", why);
    } else {
        pd_log_info("stream: publishing events to redis", PD_LS("server", pd_rlink_peer(s->link)),
                    PD_LI("partitions", s->partitions), PD_LS("encrypted", s->encrypt ? "true" : "false"));
    }
    if (pthread_create(&s->thread, NULL, stream_main, s) != 0) {
        snprintf(err, cap, "[stream] cannot start the publisher thread");
        r = PD_ERR_INTERNAL;
        goto fail;
    }
    *out = s;
    return 0;
fail:
    pd_rlink_free(s->link);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    return r;
}

void
pd_stream_kick(pd_stream_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->kicked = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void
pd_stream_stop(pd_stream_t *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stop, true);
    pd_stream_kick(s);
    pthread_join(s->thread, NULL);
    pd_rlink_free(s->link);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
