/*
 * The in-process cache backend: 64 shards, each a mutex and a chained hash table.
 * An entry is created on first use and dropped when its last use is older than
 * its lifetime; a full shard evicts expired entries, then its oldest one.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/internal.h"

#define SHARDS 64
#define BUCKETS 1024 /* per shard */
#define KEY_MAX 96

typedef struct entry {
    struct entry *next;
    char key[KEY_MAX];
    int64_t expires_ms; /* dropped after this */
    double tokens;      /* token bucket */
    int64_t last_ms;
    int64_t win_start, cur, prev; /* sliding window */
    int64_t value;                /* counter */
    int64_t until_ms;             /* block */
} entry_t;

typedef struct {
    pthread_mutex_t mu;
    entry_t *b[BUCKETS];
    int64_t n;
} shard_t;

struct pd_mem {
    shard_t shards[SHARDS];
    int64_t max_per_shard;
};

static uint64_t
hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

int
pd_mem_new(pd_mem_t **out, int64_t max_entries)
{
    pd_mem_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return PD_ERR_NOMEM;
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&c->shards[i].mu, NULL);
    c->max_per_shard = max_entries / SHARDS > 16 ? max_entries / SHARDS : 16;
    *out = c;
    return 0;
}

void
pd_mem_free(pd_mem_t *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < SHARDS; i++) {
        for (int j = 0; j < BUCKETS; j++) {
            for (entry_t *e = c->shards[i].b[j], *n; e != NULL; e = n) {
                n = e->next;
                free(e);
            }
        }
        pthread_mutex_destroy(&c->shards[i].mu);
    }
    free(c);
}

static void
evict(shard_t *s, int64_t now_ms)
{
    entry_t **oldest = NULL;
    for (int j = 0; j < BUCKETS; j++) {
        for (entry_t **pp = &s->b[j]; *pp != NULL;) {
            if ((*pp)->expires_ms < now_ms) {
                entry_t *dead = *pp;
                *pp = dead->next;
                free(dead);
                s->n--;
                continue;
            }
            if (oldest == NULL || (*pp)->expires_ms < (*oldest)->expires_ms)
                oldest = pp;
            pp = &(*pp)->next;
        }
    }
    if (s->n > 0 && oldest != NULL && *oldest != NULL) {
        entry_t *dead = *oldest;
        *oldest = dead->next;
        free(dead);
        s->n--;
    }
}

/* the entry for key with its shard locked (caller unlocks); NULL only without memory */
static entry_t *
get(pd_mem_t *c, const char *key, int64_t now_ms, shard_t **sh)
{
    uint64_t h = hash(key);
    shard_t *s = &c->shards[h % SHARDS];
    *sh = s;
    pthread_mutex_lock(&s->mu);
    entry_t **head = &s->b[(h / SHARDS) % BUCKETS];
    for (entry_t *e = *head; e != NULL; e = e->next) {
        if (strncmp(e->key, key, KEY_MAX - 1) == 0) {
            if (e->expires_ms < now_ms) { /* expired: start over */
                entry_t *next = e->next;
                memset(e, 0, sizeof(*e));
                e->next = next;
                snprintf(e->key, sizeof(e->key), "%s", key);
            }
            return e;
        }
    }
    if (s->n >= c->max_per_shard)
        evict(s, now_ms);
    entry_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->next = *head;
    *head = e;
    s->n++;
    return e;
}

static void
keep_until(entry_t *e, int64_t t)
{
    if (t > e->expires_ms)
        e->expires_ms = t;
}

bool
pd_mem_take(pd_mem_t *c, const char *key, double rate, double burst, int64_t now_ms, int64_t *remaining,
              int64_t *reset_ms, int64_t *retry_ms)
{
    shard_t *s;
    entry_t *e = get(c, key, now_ms, &s);
    if (e == NULL) {
        pthread_mutex_unlock(&s->mu);
        *remaining = 0, *reset_ms = 0, *retry_ms = 1000;
        return false; /* no memory: refuse rather than let unlimited traffic through */
    }
    if (e->last_ms == 0) {
        e->tokens = burst;
    } else if (now_ms > e->last_ms) {
        e->tokens += (double)(now_ms - e->last_ms) * rate / 1000.0;
        if (e->tokens > burst)
            e->tokens = burst;
    }
    e->last_ms = now_ms;
    bool ok = e->tokens >= 1.0;
    if (ok)
        e->tokens -= 1.0;
    *remaining = (int64_t)e->tokens;
    *reset_ms = (int64_t)((burst - e->tokens) * 1000.0 / rate);
    *retry_ms = ok ? 0 : (int64_t)((1.0 - e->tokens) * 1000.0 / rate) + 1;
    keep_until(e, now_ms + *reset_ms + 1000);
    pthread_mutex_unlock(&s->mu);
    return ok;
}

int64_t
pd_mem_hit(pd_mem_t *c, const char *key, int64_t window_ms, int64_t now_ms)
{
    shard_t *s;
    entry_t *e = get(c, key, now_ms, &s);
    if (e == NULL) {
        pthread_mutex_unlock(&s->mu);
        return INT64_MAX;
    }
    int64_t start = now_ms - now_ms % window_ms;
    if (start != e->win_start) {
        e->prev = start - e->win_start == window_ms ? e->cur : 0;
        e->cur = 0;
        e->win_start = start;
    }
    e->cur++;
    double overlap = 1.0 - (double)(now_ms - start) / (double)window_ms;
    int64_t n = e->cur + (int64_t)((double)e->prev * overlap);
    keep_until(e, start + 2 * window_ms);
    pthread_mutex_unlock(&s->mu);
    return n;
}

int64_t
pd_mem_add(pd_mem_t *c, const char *key, int64_t n, int64_t expires_ms, int64_t now_ms)
{
    shard_t *s;
    entry_t *e = get(c, key, now_ms, &s);
    if (e == NULL) {
        pthread_mutex_unlock(&s->mu);
        return INT64_MAX;
    }
    e->value += n;
    keep_until(e, expires_ms);
    int64_t v = e->value;
    pthread_mutex_unlock(&s->mu);
    return v;
}

void
pd_mem_block(pd_mem_t *c, const char *key, int64_t until_ms, int64_t now_ms)
{
    shard_t *s;
    entry_t *e = get(c, key, now_ms, &s);
    if (e != NULL) {
        e->until_ms = until_ms;
        keep_until(e, until_ms);
    }
    pthread_mutex_unlock(&s->mu);
}

int64_t
pd_mem_blocked(pd_mem_t *c, const char *key, int64_t now_ms)
{
    uint64_t h = hash(key);
    shard_t *s = &c->shards[h % SHARDS];
    int64_t left = 0;
    pthread_mutex_lock(&s->mu);
    for (entry_t *e = s->b[(h / SHARDS) % BUCKETS]; e != NULL; e = e->next)
        if (strncmp(e->key, key, KEY_MAX - 1) == 0 && e->until_ms > now_ms)
            left = e->until_ms - now_ms;
    pthread_mutex_unlock(&s->mu);
    return left;
}
