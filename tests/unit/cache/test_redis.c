/*
 * The Redis backend against a real redis-server on loopback: each script's
 * semantics (burst, refill, shares, window edges, expiry, blocks), the backend
 * shared by several nodes (several caches in this process, each with its own
 * connection and sync thread), the overshoot with three nodes, NOSCRIPT, the
 * fallback and reconnection, and bad input (url, password, ACL user, TLS, a
 * non-master named by a sentinel).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache/internal.h"
#include "payd/time.h"
#include "redis_server.h"

static pd_h_redis_t g_redis;

static int
setup(void **state)
{
    (void)state;
    return pd_h_redis_start(&g_redis, NULL);
}

static int
teardown(void **state)
{
    (void)state;
    pd_h_redis_stop(&g_redis, SIGTERM);
    pd_h_redis_cleanup(&g_redis);
    return 0;
}

static void
flushall(uint16_t port)
{
    const char *a[] = {"FLUSHALL", NULL};
    free(pd_h_redis_cli(port, a));
}

static void
cfg_for(pd_cache_config_t *c, char *url, size_t cap, unsigned port)
{
    memset(c, 0, sizeof(*c));
    snprintf(url, cap, "redis://127.0.0.1:%u", port);
    c->backend = PD_CACHE_REDIS;
    c->url = url;
    c->timeout_ms = 500;
}

static pd_cache_t *
node(uint16_t port)
{
    pd_cache_config_t cfg;
    char url[128], err[512] = "";
    cfg_for(&cfg, url, sizeof(url), port);
    pd_cache_t *c = NULL;
    if (pd_cache_new_redis(&c, &cfg, 100000, err, sizeof(err)) != 0)
        fail_msg("cache: %s", err);
    return c;
}

/* --- the scripts, called directly --- */

static pd_rconn_t g_conn;

static void
open_conn(void)
{
    char err[256];
    assert_int_equal(pd_rconn_open(&g_conn, "127.0.0.1", g_redis.port, NULL, 2000, err, sizeof(err)), 0);
    for (int i = 0; i < PD_RS__N; i++) {
        redisReply *rp;
        const char *a[] = {"SCRIPT", "LOAD", pd_rscript_body((pd_rscript_t)i)};
        assert_int_equal(pd_rconn_cmd(&g_conn, &rp, 3, a), 0);
        assert_int_equal(rp->type, REDIS_REPLY_STRING);
        assert_string_equal(rp->str, pd_rscript_sha((pd_rscript_t)i));
        freeReplyObject(rp);
    }
}

/* EVALSHA script with nkeys keys then args; the integer answers into out */
static void
eval(pd_rscript_t s, int nkeys, const char *const *kv, int n, int64_t *out, size_t nout)
{
    const char *argv[16];
    char nk[4];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[0] = "EVALSHA", argv[1] = pd_rscript_sha(s), argv[2] = nk;
    for (int i = 0; i < n; i++)
        argv[3 + i] = kv[i];
    redisReply *rp;
    assert_int_equal(pd_rconn_cmd(&g_conn, &rp, 3 + n, argv), 0);
    if (rp->type != REDIS_REPLY_ARRAY || rp->elements != nout)
        fail_msg("script answer: type %d %s", rp->type, rp->type == REDIS_REPLY_ERROR ? rp->str : "");
    for (size_t i = 0; i < nout; i++)
        out[i] = rp->element[i]->integer;
    freeReplyObject(rp);
}

static void
take(const char *key, const char *rate, const char *burst, const char *debt, const char *want, const char *back,
     const char *nodes, int64_t out[4])
{
    const char *kv[] = {key, rate, burst, debt, want, back, nodes};
    eval(PD_RS_TAKE, 1, kv, 7, out, 4);
}

static void
script_token_bucket(void **state)
{
    (void)state;
    flushall(g_redis.port);
    open_conn();
    int64_t o[4];
    take("payd:tb:a", "10", "10", "0", "100", "0", "1", o);
    assert_int_equal(o[0], 10); /* the whole burst to the one node */
    assert_int_equal(o[1], 0);
    assert_true(o[2] >= 999 && o[2] <= 1000); /* empty to full at 10/s */
    take("payd:tb:a", "10", "10", "0", "5", "0", "1", o);
    assert_int_equal(o[0], 0); /* spent */
    /* a rate or burst of 0 is refused before the bucket is touched */
    const char *zero[] = {"EVALSHA", pd_rscript_sha(PD_RS_TAKE), "1", "payd:tb:z", "0", "0", "0", "1", "0", "1"};
    redisReply *zr;
    assert_int_equal(pd_rconn_cmd(&g_conn, &zr, 10, zero), 0);
    assert_int_equal(zr->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(zr->str, "rate and burst must be positive"));
    freeReplyObject(zr);
    const char *ex[] = {"EXISTS", "payd:tb:z", NULL};
    char *n = pd_h_redis_cli(g_redis.port, ex);
    assert_int_equal(strtol(n, NULL, 10), 0);
    free(n);
    usleep(300000);
    take("payd:tb:a", "10", "10", "0", "100", "0", "1", o);
    assert_true(o[0] >= 2 && o[0] <= 4); /* refilled by Redis's clock: 10/s for 0.3 s */
    /* shares: with 3 nodes a grant is at most a third of what is left */
    take("payd:tb:b", "1", "10", "0", "100", "0", "3", o);
    assert_int_equal(o[0], 3);
    assert_int_equal(o[1], 7);
    take("payd:tb:b", "1", "10", "0", "100", "0", "3", o);
    assert_int_equal(o[0], 2);
    take("payd:tb:b", "1", "10", "0", "0", "0", "3", o);
    assert_int_equal(o[0], 0);
    assert_int_equal(o[1], 5);
    /* a debt is charged; a grant given back returns, never past the burst */
    take("payd:tb:c", "0.001", "10", "4", "0", "0", "1", o);
    assert_int_equal(o[1], 6);
    take("payd:tb:c", "0.001", "10", "0", "0", "3", "1", o);
    assert_int_equal(o[1], 9);
    take("payd:tb:c", "0.001", "10", "0", "0", "30", "1", o);
    assert_int_equal(o[1], 10);
    /* debts stop at minus the burst */
    take("payd:tb:c", "0.001", "10", "1000", "0", "0", "1", o);
    assert_int_equal(o[1], -10);
    /* the key expires once the bucket would be full again */
    redisReply *rp;
    const char *pt[] = {"PTTL", "payd:tb:a"};
    assert_int_equal(pd_rconn_cmd(&g_conn, &rp, 2, pt), 0);
    assert_true(rp->integer > 0 && rp->integer <= 2000);
    freeReplyObject(rp);
    pd_rconn_close(&g_conn);
}

static void
hit(const char *key, const char *w, const char *n, int64_t o[4])
{
    const char *kv[] = {key, w, n};
    eval(PD_RS_HIT, 1, kv, 3, o, 4);
}

static void
script_sliding_window(void **state)
{
    (void)state;
    flushall(g_redis.port);
    open_conn();
    int64_t o[4];
    hit("payd:sw:a", "1000", "0", o); /* a read creates nothing */
    assert_int_equal(o[1], 0);
    /* start early in a window so the next calls share it */
    usleep((useconds_t)((1000 - o[3] % 1000 + 20) * 1000));
    hit("payd:sw:a", "1000", "1", o);
    int64_t start = o[0];
    assert_int_equal(start % 1000, 0);
    assert_int_equal(o[1], 1);
    hit("payd:sw:a", "1000", "3", o);
    assert_int_equal(o[0], start);
    assert_int_equal(o[1], 4);
    assert_int_equal(o[2], 0);
    /* the next window: the current one becomes the previous */
    usleep((useconds_t)((start + 1000 - o[3] + 20) * 1000));
    hit("payd:sw:a", "1000", "1", o);
    assert_int_equal(o[0], start + 1000);
    assert_int_equal(o[1], 1);
    assert_int_equal(o[2], 4);
    /* a window skipped: nothing carries over */
    usleep((useconds_t)((start + 3000 - o[3] + 20) * 1000));
    hit("payd:sw:a", "1000", "1", o);
    assert_int_equal(o[0], start + 3000);
    assert_int_equal(o[1], 1);
    assert_int_equal(o[2], 0);
    /* and the key lives two windows */
    redisReply *rp;
    const char *pt[] = {"PTTL", "payd:sw:a"};
    assert_int_equal(pd_rconn_cmd(&g_conn, &rp, 2, pt), 0);
    assert_true(rp->integer > 1900 && rp->integer <= 2000);
    freeReplyObject(rp);
    pd_rconn_close(&g_conn);
}

static void
script_counter_and_block(void **state)
{
    (void)state;
    flushall(g_redis.port);
    open_conn();
    int64_t o[3];
    const char *r0[] = {"payd:ct:q", "0", "300"};
    eval(PD_RS_ADD, 1, r0, 3, o, 3);
    assert_int_equal(o[0], 0); /* a read of nothing */
    const char *a1[] = {"payd:ct:q", "1", "300"};
    eval(PD_RS_ADD, 1, a1, 3, o, 3);
    assert_int_equal(o[0], 1);
    assert_true(o[1] > 250 && o[1] <= 300);
    const char *a2[] = {"payd:ct:q", "2", "100"}; /* a shorter life does not shorten it */
    eval(PD_RS_ADD, 1, a2, 3, o, 3);
    assert_int_equal(o[0], 3);
    assert_true(o[1] > 200);
    usleep(400000);
    eval(PD_RS_ADD, 1, a1, 3, o, 3);
    assert_int_equal(o[0], 1); /* expired, started over */
    /* block: set, read, announced once, expires */
    int64_t b[2];
    const char *k1[] = {"payd:bl:lock:x", "payd:cache:blocks", "300", "lock:x"};
    eval(PD_RS_BLOCK, 2, k1, 4, b, 2);
    assert_true(b[0] > 250 && b[0] <= 300);
    const char *k0[] = {"payd:bl:lock:x", "payd:cache:blocks", "0", "lock:x"};
    eval(PD_RS_BLOCK, 2, k0, 4, b, 2);
    assert_true(b[0] > 0 && b[0] <= 300);
    const char *k2[] = {"payd:bl:lock:x", "payd:cache:blocks", "100", "lock:x"}; /* shorter: nothing new */
    eval(PD_RS_BLOCK, 2, k2, 4, b, 2);
    redisReply *rp;
    const char *xl[] = {"XLEN", "payd:cache:blocks"};
    assert_int_equal(pd_rconn_cmd(&g_conn, &rp, 2, xl), 0);
    assert_int_equal(rp->integer, 1);
    freeReplyObject(rp);
    usleep(350000);
    eval(PD_RS_BLOCK, 2, k0, 4, b, 2);
    assert_int_equal(b[0], 0);
    pd_rconn_close(&g_conn);
}

/* --- the backend --- */

static bool
take_synced(pd_cache_t *c, const char *key, double rate, double burst)
{
    int64_t rem, reset, retry;
    bool ok = pd_cache_take(c, key, rate, burst, pd_real_ms(), &rem, &reset, &retry);
    assert_int_equal(pd_cache_sync(c, 2000), 0);
    return ok;
}

static void
bucket_shared_by_two_nodes(void **state)
{
    (void)state;
    flushall(g_redis.port);
    pd_cache_t *a = node(g_redis.port), *b = node(g_redis.port);
    int ok_a = 0, ok_b = 0;
    for (int i = 0; i < 6; i++)
        ok_a += take_synced(a, "rl:key_1", 0.001, 10);
    assert_int_equal(ok_a, 6);
    /* a's unspent grant goes back to the bucket once it is idle */
    usleep(2300000);
    assert_int_equal(pd_cache_sync(a, 2000), 0);
    for (int i = 0; i < 10; i++)
        ok_b += take_synced(b, "rl:key_1", 0.001, 10);
    assert_int_equal(ok_a + ok_b, 10); /* one bucket of 10 for both nodes */
    int64_t rem, reset, retry;
    assert_false(pd_cache_take(b, "rl:key_1", 0.001, 10, pd_real_ms(), &rem, &reset, &retry));
    assert_int_equal(rem, 0);
    assert_true(retry > 1000);
    pd_cache_stats_t st;
    pd_cache_stats(a, &st);
    assert_true(st.redis && st.connected);
    assert_int_equal(st.nodes, 2); /* both heartbeats */
    pd_cache_free(a);
    pd_cache_free(b);
}

static void
window_counter_block_shared(void **state)
{
    (void)state;
    flushall(g_redis.port);
    pd_cache_t *a = node(g_redis.port), *b = node(g_redis.port);
    int64_t now = pd_real_ms();
    for (int i = 0; i < 5; i++)
        (void)pd_cache_hit(a, "ip:203.0.113.9", 600000, now);
    assert_int_equal(pd_cache_sync(a, 2000), 0);
    (void)pd_cache_hit(b, "ip:203.0.113.9", 600000, now); /* b's first: it has not heard yet */
    assert_int_equal(pd_cache_sync(b, 2000), 0);
    assert_int_equal(pd_cache_hit(b, "ip:203.0.113.9", 600000, now), 7);
    assert_int_equal(pd_cache_sync(b, 2000), 0);
    assert_int_equal(pd_cache_sync(a, 2000), 0);
    /* a has not heard of b's hits yet: its last answer plus its own; then the global count */
    assert_int_equal(pd_cache_hit(a, "ip:203.0.113.9", 600000, now), 6);
    assert_int_equal(pd_cache_sync(a, 2000), 0);
    assert_int_equal(pd_cache_hit(a, "ip:203.0.113.9", 600000, now), 9);
    /* counters */
    assert_int_equal(pd_cache_add(a, "quota:k:202601", 3, now + 60000, now), 3);
    assert_int_equal(pd_cache_sync(a, 2000), 0);
    (void)pd_cache_add(b, "quota:k:202601", 1, now + 60000, now);
    assert_int_equal(pd_cache_sync(b, 2000), 0);
    assert_int_equal(pd_cache_add(b, "quota:k:202601", 1, now + 60000, now), 5);
    /* a block on a reaches b, which never asked about the key */
    pd_cache_block(a, "lock:198.51.100.7", now + 5000, now);
    assert_int_equal(pd_cache_sync(a, 2000), 0);
    assert_int_equal(pd_cache_sync(b, 2000), 0);
    int64_t left = pd_cache_blocked(b, "lock:198.51.100.7", pd_real_ms());
    assert_true(left > 4000 && left <= 5000);
    /* a node that starts later learns the blocks in force from the stream */
    pd_cache_t *c = node(g_redis.port);
    assert_int_equal(pd_cache_sync(c, 2000), 0);
    assert_true(pd_cache_blocked(c, "lock:198.51.100.7", pd_real_ms()) > 4000);
    assert_int_equal(pd_cache_blocked(c, "lock:other", pd_real_ms()), 0);
    pd_cache_free(a);
    pd_cache_free(b);
    pd_cache_free(c);
}

typedef struct {
    pd_cache_t *c;
    int64_t until_ms;
    int64_t allowed, refused;
} hammer_t;

static void *
hammer(void *arg)
{
    hammer_t *h = arg;
    int64_t rem, reset, retry;
    while (pd_real_ms() < h->until_ms) {
        if (pd_cache_take(h->c, "rl:hot", 50, 1000, pd_real_ms(), &rem, &reset, &retry))
            h->allowed++;
        else
            h->refused++;
        usleep(20); /* ~30k attempts/s per node: far past the plan */
    }
    return NULL;
}

static void
overshoot_with_three_nodes(void **state)
{
    (void)state;
    flushall(g_redis.port);
    hammer_t h[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        h[i] = (hammer_t){.c = node(g_redis.port)};
    for (int i = 0; i < 3; i++) /* every node counted in the shares */
        assert_int_equal(pd_cache_sync(h[i].c, 2000), 0);
    usleep(1100000);
    int64_t t0 = pd_real_ms();
    for (int i = 0; i < 3; i++) {
        h[i].until_ms = t0 + 2000;
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &h[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    int64_t elapsed = pd_real_ms() - t0;
    int64_t allowed = h[0].allowed + h[1].allowed + h[2].allowed;
    double budget = 1000.0 + 50.0 * (double)elapsed / 1000.0;
    double over = ((double)allowed / budget - 1.0) * 100.0;
    printf("overshoot with 3 nodes: burst 1000, rate 50/s, %lld ms: allowed %lld of a budget of %.0f (%+.2f %%); "
           "per node %lld/%lld/%lld; attempts %lld\n",
           (long long)elapsed, (long long)allowed, budget, over, (long long)h[0].allowed, (long long)h[1].allowed,
           (long long)h[2].allowed,
           (long long)(allowed + h[0].refused + h[1].refused + h[2].refused));
    assert_true(over <= 5.0);
    assert_true(over >= -10.0); /* and the plan is not cut short either */
    for (int i = 0; i < 3; i++)
        pd_cache_free(h[i].c);
}

static void
noscript_reloads(void **state)
{
    (void)state;
    flushall(g_redis.port);
    pd_cache_t *a = node(g_redis.port);
    assert_true(take_synced(a, "rl:ns", 1, 10));
    const char *fl[] = {"SCRIPT", "FLUSH", NULL};
    free(pd_h_redis_cli(g_redis.port, fl));
    (void)pd_cache_hit(a, "ip:ns", 10000, pd_real_ms());
    assert_int_equal(pd_cache_sync(a, 2000), 0);
    assert_int_equal(pd_cache_sync(a, 2000), 0);
    assert_int_equal(pd_cache_hit(a, "ip:ns", 10000, pd_real_ms()), 2);
    pd_cache_stats_t st;
    pd_cache_stats(a, &st);
    assert_true(st.connected);
    assert_int_equal(st.fallbacks, 0);
    const char *ex[] = {"EXISTS", "payd:sw:ip:ns", NULL};
    char *out = pd_h_redis_cli(g_redis.port, ex);
    assert_non_null(out);
    assert_int_equal(strtol(out, NULL, 10), 1);
    free(out);
    pd_cache_free(a);
}

static void
fallback_then_global_again(void **state)
{
    (void)state;
    pd_h_redis_t r;
    assert_int_equal(pd_h_redis_start(&r, NULL), 0);
    pd_cache_t *a = node(r.port);
    assert_true(take_synced(a, "rl:fb", 1, 3));
    pd_h_redis_stop(&r, SIGKILL);
    /* the next rounds fail: answered by the fallback, never refused for it */
    pd_cache_stats_t st;
    for (int i = 0; i < 200; i++) {
        pd_cache_stats(a, &st);
        if (!st.connected)
            break;
        (void)pd_cache_hit(a, "ip:fb", 10000, pd_real_ms());
        usleep(10000);
    }
    assert_false(st.connected);
    assert_true(st.fallbacks >= 1);
    char why[256] = "";
    assert_true(pd_cache_ready(a, why, sizeof(why)));
    assert_non_null(strstr(why, "in-process fallback"));
    int64_t rem, reset, retry;
    int ok = 0;
    for (int i = 0; i < 3; i++)
        ok += pd_cache_take(a, "rl:fb", 1, 3, pd_real_ms(), &rem, &reset, &retry);
    assert_int_equal(ok, 3); /* the fallback's own full bucket */
    pd_cache_stats(a, &st);
    assert_true(st.fallback_ops >= 3);
    /* back on the same port: reconnected within the back-off, global again */
    pd_h_redis_opts_t o = {.port = r.port};
    pd_h_redis_cleanup(&r);
    assert_int_equal(pd_h_redis_start(&r, &o), 0);
    for (int i = 0; i < 100; i++) {
        pd_cache_stats(a, &st);
        if (st.connected)
            break;
        usleep(100000);
    }
    assert_true(st.connected);
    why[0] = '\0';
    assert_true(pd_cache_ready(a, why, sizeof(why)));
    assert_string_equal(why, "");
    (void)pd_cache_hit(a, "ip:back", 10000, pd_real_ms());
    assert_int_equal(pd_cache_sync(a, 2000), 0);
    const char *ex[] = {"EXISTS", "payd:sw:ip:back", NULL};
    char *out = pd_h_redis_cli(r.port, ex);
    assert_int_equal(strtol(out, NULL, 10), 1);
    free(out);
    pd_cache_free(a);
    pd_h_redis_stop(&r, SIGTERM);
    pd_h_redis_cleanup(&r);
}

/* A key queued just before the connection is lost is sent by the first round after the
 * reconnect, before any caller touches it again: it must go with its own rate and
 * burst (a bucket of burst 0 emptied Redis's, and the other nodes refused). */
static void
a_key_queued_across_a_reconnect_keeps_its_bucket(void **state)
{
    (void)state;
    pd_h_redis_t r;
    assert_int_equal(pd_h_redis_start(&r, NULL), 0);
    pd_cache_t *a = node(r.port);
    assert_true(take_synced(a, "rl:warm", 1, 3));
    assert_int_equal(kill(r.pid, SIGSTOP), 0);
    usleep(100000); /* a poll round is waiting on the stopped server */
    int64_t rem, reset, retry;
    assert_true(pd_cache_take(a, "rl:queued", 1000, 1000, pd_real_ms(), &rem, &reset, &retry));
    pd_cache_stats_t st;
    for (int i = 0; i < 100; i++) {
        pd_cache_stats(a, &st);
        if (!st.connected)
            break;
        usleep(20000);
    }
    assert_false(st.connected); /* the round timed out: "rl:queued" waits in the queue */
    int64_t fallbacks = st.fallbacks;
    assert_int_equal(kill(r.pid, SIGCONT), 0);
    for (int i = 0; i < 100; i++) {
        pd_cache_stats(a, &st);
        if (st.connected)
            break;
        usleep(50000);
    }
    assert_true(st.connected);
    assert_int_equal(pd_cache_sync(a, 2000), 0);
    assert_int_equal(pd_cache_sync(a, 2000), 0);
    pd_cache_stats(a, &st);
    assert_true(st.connected);
    assert_int_equal(st.fallbacks, fallbacks); /* no script error dropped the connection again */
    const char *hg[] = {"HGET", "payd:tb:rl:queued", "t", NULL};
    char *out = pd_h_redis_cli(r.port, hg);
    assert_true(strtod(out, NULL) >= 990); /* the bucket is full, less this node's grant */
    free(out);
    pd_cache_free(a);
    pd_h_redis_stop(&r, SIGTERM);
    pd_h_redis_cleanup(&r);
}

static int
open_err(const char *url, const char *tls_ca, char *err, size_t cap, pd_cache_t **out)
{
    pd_cache_config_t cfg = {.backend = PD_CACHE_REDIS, .timeout_ms = 500};
    char u[256], ca[300];
    snprintf(u, sizeof(u), "%s", url);
    snprintf(ca, sizeof(ca), "%s", tls_ca != NULL ? tls_ca : "");
    cfg.url = u;
    cfg.tls_ca = ca;
    err[0] = '\0';
    *out = NULL;
    return pd_cache_new_redis(out, &cfg, 1000, err, cap);
}

/* a fake sentinel that names addr:port as the master, for one connection */
typedef struct {
    int lfd;
    uint16_t master_port;
} fake_t;

static void *
fake_sentinel(void *arg)
{
    fake_t *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char buf[512];
    if (read(fd, buf, sizeof(buf)) > 0) {
        char port[8], reply[64];
        snprintf(port, sizeof(port), "%u", (unsigned)f->master_port);
        int n = snprintf(reply, sizeof(reply), "*2\r\n$9\r\n127.0.0.1\r\n$%zu\r\n%s\r\n", strlen(port), port);
        (void)!write(fd, reply, (size_t)n);
    }
    close(fd);
    return NULL;
}

static void
bad_input(void **state)
{
    (void)state;
    char err[512], url[256];
    pd_cache_t *c;
    /* a bad url */
    assert_int_equal(open_err("redis://127.0.0.1", NULL, err, sizeof(err), &c), PD_ERR_CONFIG);
    assert_non_null(strstr(err, "[cache] url"));
    assert_int_equal(open_err("", NULL, err, sizeof(err), &c), PD_ERR_CONFIG);
    assert_non_null(strstr(err, "needs [cache] url"));
    /* a password: wrong, absent, right; an ACL user */
    pd_h_redis_t pw;
    pd_h_redis_opts_t po = {.requirepass = "right-pass", .acl_user = "payd user-pass"};
    assert_int_equal(pd_h_redis_start(&pw, &po), 0);
    snprintf(url, sizeof(url), "redis://:wrong-pass@127.0.0.1:%u", (unsigned)pw.port);
    assert_int_equal(open_err(url, NULL, err, sizeof(err), &c), PD_ERR_CONFIG);
    assert_non_null(strstr(err, "refused the credentials"));
    assert_null(strstr(err, "wrong-pass"));
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", (unsigned)pw.port);
    assert_int_equal(open_err(url, NULL, err, sizeof(err), &c), PD_ERR_CONFIG);
    assert_non_null(strstr(err, "NOAUTH"));
    snprintf(url, sizeof(url), "redis://:right-pass@127.0.0.1:%u/2", (unsigned)pw.port);
    assert_int_equal(open_err(url, NULL, err, sizeof(err), &c), 0);
    assert_true(take_synced(c, "rl:pw", 1, 5));
    pd_cache_free(c);
    snprintf(url, sizeof(url), "redis://payd:user-pass@127.0.0.1:%u", (unsigned)pw.port);
    assert_int_equal(open_err(url, NULL, err, sizeof(err), &c), 0);
    assert_true(take_synced(c, "rl:acl", 1, 5));
    pd_cache_block(c, "lock:acl", pd_real_ms() + 1000, pd_real_ms());
    (void)pd_cache_add(c, "q:acl", 1, pd_real_ms() + 1000, pd_real_ms());
    (void)pd_cache_hit(c, "ip:acl", 1000, pd_real_ms());
    assert_int_equal(pd_cache_sync(c, 2000), 0); /* every script allowed to the ACL user */
    pd_cache_stats_t st;
    pd_cache_stats(c, &st);
    assert_true(st.connected);
    pd_cache_free(c);
    /* TLS to a plain server */
    snprintf(url, sizeof(url), "rediss://127.0.0.1:%u", (unsigned)g_redis.port);
    assert_int_equal(open_err(url, NULL, err, sizeof(err), &c), PD_ERR_CONFIG);
    assert_non_null(strstr(err, "TLS handshake"));
    /* a TLS server: with its CA, and without */
    pd_h_redis_t tls;
    char dir[] = "/tmp/payd-redis-tls-XXXXXX", cert[300], key[300], ca[300];
    assert_non_null(mkdtemp(dir));
    assert_int_equal(pd_h_redis_make_certs(dir), 0);
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    pd_h_redis_opts_t to = {.tls = true, .tls_cert = cert, .tls_key = key, .tls_ca = ca};
    assert_int_equal(pd_h_redis_start(&tls, &to), 0);
    snprintf(url, sizeof(url), "rediss://127.0.0.1:%u", (unsigned)tls.port);
    assert_int_equal(open_err(url, ca, err, sizeof(err), &c), 0);
    assert_true(take_synced(c, "rl:tls", 1, 5));
    pd_cache_free(c);
    assert_int_equal(open_err(url, NULL, err, sizeof(err), &c), PD_ERR_CONFIG);
    assert_non_null(strstr(err, "not trusted"));
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", (unsigned)tls.port); /* plain to TLS: no answer */
    assert_int_equal(open_err(url, NULL, err, sizeof(err), &c), 0);
    pd_cache_stats(c, &st);
    assert_false(st.connected);
    pd_cache_free(c);
    pd_h_redis_stop(&tls, SIGTERM);
    pd_h_redis_cleanup(&tls);
    char rm[400];
    snprintf(rm, sizeof(rm), "rm -rf %s", dir);
    assert_int_equal(system(rm), 0);
    /* nothing listening: not an error at start, the fallback */
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", (unsigned)pd_h_redis_free_port());
    assert_int_equal(open_err(url, NULL, err, sizeof(err), &c), 0);
    pd_cache_stats(c, &st);
    assert_false(st.connected);
    assert_non_null(strstr(st.last_error, "cannot connect"));
    int64_t rem, reset, retry;
    assert_true(pd_cache_take(c, "rl:down", 1, 5, pd_real_ms(), &rem, &reset, &retry));
    pd_cache_free(c);
    /* a sentinel that names a replica */
    pd_h_redis_t rep;
    pd_h_redis_opts_t ro = {.replicaof = g_redis.port};
    assert_int_equal(pd_h_redis_start(&rep, &ro), 0);
    fake_t f = {.lfd = socket(AF_INET, SOCK_STREAM, 0), .master_port = rep.port};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(f.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f.lfd, 4), 0);
    assert_int_equal(getsockname(f.lfd, (struct sockaddr *)&sa, &sl), 0);
    pthread_t ft;
    assert_int_equal(pthread_create(&ft, NULL, fake_sentinel, &f), 0);
    snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%u/mymaster", (unsigned)ntohs(sa.sin_port));
    assert_int_equal(open_err(url, NULL, err, sizeof(err), &c), 0);
    pthread_join(ft, NULL);
    pd_cache_stats(c, &st);
    assert_false(st.connected);
    if (strstr(st.last_error, "is not a master (ROLE: slave)") == NULL)
        fail_msg("last error: %s", st.last_error);
    pd_cache_free(c);
    close(f.lfd);
    pd_h_redis_stop(&rep, SIGTERM);
    pd_h_redis_cleanup(&rep);
    pd_h_redis_stop(&pw, SIGTERM);
    pd_h_redis_cleanup(&pw);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(script_token_bucket),       cmocka_unit_test(script_sliding_window),
        cmocka_unit_test(script_counter_and_block),  cmocka_unit_test(bucket_shared_by_two_nodes),
        cmocka_unit_test(window_counter_block_shared), cmocka_unit_test(overshoot_with_three_nodes),
        cmocka_unit_test(noscript_reloads),          cmocka_unit_test(fallback_then_global_again),
        cmocka_unit_test(a_key_queued_across_a_reconnect_keeps_its_bucket),
        cmocka_unit_test(bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
