/*
 * Limits shared across nodes through Redis ([cache] backend = redis): two payd
 * nodes with the same API key (the second's data dir is a copy of the first's) on
 * one redis-server started by the test: the usage plan, the lockout, the
 * per-address rule and the card-velocity limit are each shared; Redis killed under
 * load (payd keeps answering on its fallback, then limits are global again); a
 * Sentinel failover (no failed request, limits resume on the new master); bad
 * input at start (url, password, TLS to a plain server) and a sentinel naming a
 * replica (a logged fallback).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"
#include "redis_server.h"

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long
balance(pd_h_client_t *c, const char *key)
{
    char auth[200];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
    const char *hdrs[] = {auth, NULL};
    pd_h_req_t rq = {.headers = hdrs, .timeout_ms = 5000};
    pd_h_resp_t r;
    long s = pd_h_do(c, "GET", "/v1/balance", &rq, &r) == 0 ? r.status : -1;
    pd_h_resp_free(&r);
    return s;
}

static char g_url[200];

/* two nodes with one merchant and key, on Redis at url; extra: more --set pairs */
static void
start_pair(pd_h_payd_t *a, pd_h_payd_t *b, const char *const *extra)
{
    const char *args[40] = {"--set", "cache.backend=redis", "--set", g_url};
    int n = 4;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 38; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(a, &o), 0);
    assert_int_equal(pd_h_stop(a, SIGTERM, 20000), 0);
    char dir[] = "/tmp/payd-it-XXXXXX", cmd[700];
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof(cmd), "cp -a %s/. %s/ && rm -f %s/payd.log", a->dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    pd_h_opts_t oa = {.args = args, .reuse_dir = a->dir}, ob = {.args = args, .reuse_dir = dir};
    assert_int_equal(pd_h_start(a, &oa), 0);
    assert_int_equal(pd_h_start(b, &ob), 0);
    api_load_credentials(a);
}

static void
stop_pair(pd_h_payd_t *a, pd_h_payd_t *b)
{
    assert_int_equal(pd_h_stop(a, SIGTERM, 20000), 0);
    assert_int_equal(pd_h_stop(b, SIGTERM, 20000), 0);
    pd_h_cleanup(a);
    pd_h_cleanup(b);
}

static char *
readyz(const pd_h_payd_t *p)
{
    pd_h_req_t rq = {.admin = true};
    pd_h_resp_t r;
    if (pd_h_request(p, "GET", "/readyz", &rq, &r) != 0)
        return NULL;
    char *body = r.body != NULL ? strdup(r.body) : NULL;
    pd_h_resp_free(&r);
    return body;
}

static void
two_nodes_share_limits(void **state)
{
    (void)state;
    pd_h_redis_t rs;
    assert_int_equal(pd_h_redis_start(&rs, NULL), 0);
    snprintf(g_url, sizeof(g_url), "cache.url=redis://127.0.0.1:%u", (unsigned)rs.port);
    const char *extra[] = {"--set", "payments.rate_per_s=1", "--set", "payments.burst=10",
                           "--set", "payments.auth_fail_limit=3", "--set", "payments.auth_lockout_ms=3s",
                           "--set", "waf.ip_rate_limit=60", "--set", "waf.ip_rate_window_ms=10m", NULL};
    pd_h_payd_t a, b;
    start_pair(&a, &b, extra);
    pd_h_client_t *ca = pd_h_client_new(&a), *cb = pd_h_client_new(&b);
    int hits = 0;

    /* the usage plan: one bucket of 10 for both nodes */
    int64_t t0 = now_ms();
    int ok_a = 0, ok_b = 0, refused_b = 0;
    /* a node spends only what Redis granted it: on a loaded machine a's grant may come after
     * its next request, which is then refused (an undershoot, docs/redis.md); a retries */
    for (int tries = 0; ok_a < 6 && tries < 20; tries++, hits++) {
        if (balance(ca, api_sk) == 200)
            ok_a++;
        else
            usleep(50000);
    }
    for (int i = 0; i < 10; i++, hits++) {
        long s = balance(cb, api_sk);
        ok_b += s == 200;
        refused_b += s == 429;
    }
    int64_t secs = (now_ms() - t0 + 999) / 1000;
    printf("usage plan burst 10 on two nodes: %d + %d allowed in %lld s\n", ok_a, ok_b, (long long)secs);
    assert_int_equal(ok_a, 6);
    assert_true(refused_b > 0); /* per node it would be 10 on b too */
    assert_true(ok_a + ok_b <= 10 + 1 + secs); /* the burst, b's first answer before it heard, the refill */

    /* a lockout on a refuses on b: 3 failed authentications on a, then the right key on b */
    for (int i = 0; i < 3; i++, hits++)
        assert_int_equal(balance(ca, "sk_test_wrong"), 401);
    usleep(100000);
    long s = balance(cb, api_sk);
    hits++;
    assert_int_equal(s, 429);
    char *log = pd_h_log(&a);
    assert_non_null(strstr(log, "client locked out after failed authentications"));
    free(log);
    sleep(4); /* the lockout passes */

    /* the per-address rule (60 in 10 minutes) counts both nodes' requests */
    int forbidden = 0, passed = 0;
    for (int i = 0; hits < 80; i++, hits++) {
        long st = balance(i % 2 ? cb : ca, api_sk);
        forbidden += st == 403;
        passed += st != 403;
    }
    printf("per-address rule 60 on two nodes: %d of 80 requests passed it in all (%d after the first %d)\n",
           80 - forbidden, passed, 80 - passed - forbidden);
    assert_true(forbidden > 0);
    assert_true(80 - forbidden <= 60 + 2); /* each node's first look at the key before it heard */
    pd_h_client_free(ca);
    pd_h_client_free(cb);
    stop_pair(&a, &b);

    /* card velocity: 2 declines on a and 2 on b block the card on both */
    const char *vx[] = {"--set", "payments.card_decline_limit=3", NULL};
    const char *fl[] = {"FLUSHALL", NULL};
    free(pd_h_redis_cli(rs.port, fl));
    start_pair(&a, &b, vx);
    char bad[64], bad_b[64];
    json_t *o;
    assert_int_equal(api_card_pm(&a, "4000000000000002", bad, sizeof(bad)), 200);
    assert_int_equal(api_card_pm(&b, "4000000000000002", bad_b, sizeof(bad_b)), 200);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(api_charge(&a, bad, 500, "usd", &o), 402);
        assert_string_equal(jstr(o, "error.decline_code"), "generic_decline");
        json_decref(o);
        assert_int_equal(api_charge(&b, bad_b, 500, "usd", &o), 402);
        assert_string_equal(jstr(o, "error.decline_code"), "generic_decline");
        json_decref(o);
    }
    usleep(100000);
    assert_int_equal(api_charge(&a, bad, 500, "usd", &o), 402);
    assert_string_equal(jstr(o, "error.decline_code"), "card_velocity_exceeded"); /* per node: 2 < 3 */
    json_decref(o);
    assert_int_equal(api_charge(&b, bad_b, 500, "usd", &o), 402);
    assert_string_equal(jstr(o, "error.decline_code"), "card_velocity_exceeded");
    json_decref(o);
    stop_pair(&a, &b);
    pd_h_redis_stop(&rs, SIGTERM);
    pd_h_redis_cleanup(&rs);
}

typedef struct {
    const pd_h_payd_t *p;
    atomic_bool stop;
    int64_t ok, limited, failed;
} load_t;

static void *
load(void *arg)
{
    load_t *l = arg;
    pd_h_client_t *c = pd_h_client_new(l->p);
    while (!atomic_load(&l->stop)) {
        long s = balance(c, api_sk);
        if (s == 200)
            l->ok++;
        else if (s == 429)
            l->limited++;
        else
            l->failed++;
        usleep(2000);
    }
    pd_h_client_free(c);
    return NULL;
}

static bool
wait_ready_note(const pd_h_payd_t *p, bool degraded, int timeout_ms)
{
    for (int64_t end = now_ms() + timeout_ms; now_ms() < end; usleep(100000)) {
        char *b = readyz(p);
        bool d = b != NULL && strstr(b, "\"degraded\"") != NULL;
        bool ready = b != NULL && strstr(b, "\"status\":\"ready\"") != NULL;
        free(b);
        if (ready && d == degraded)
            return true;
    }
    return false;
}

static void
redis_killed_under_load(void **state)
{
    (void)state;
    pd_h_redis_t rs;
    assert_int_equal(pd_h_redis_start(&rs, NULL), 0);
    snprintf(g_url, sizeof(g_url), "cache.url=redis://127.0.0.1:%u", (unsigned)rs.port);
    const char *extra[] = {"--set", "payments.rate_per_s=5", "--set", "payments.burst=20", "--set",
                           "waf.ip_rate_limit=1000000", NULL};
    pd_h_payd_t a, b;
    start_pair(&a, &b, extra);
    load_t la = {.p = &a}, lb = {.p = &b};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, load, &la), 0);
    assert_int_equal(pthread_create(&tb, NULL, load, &lb), 0);
    sleep(1);
    assert_true(api_metric(&a, "payd_cache_shared") == 1);
    assert_true(api_metric(&a, "payd_cache_fallbacks_total") == 0);
    pd_h_redis_stop(&rs, SIGKILL);
    /* on the fallback: ready, with the note; the log and /metrics say so */
    assert_true(wait_ready_note(&a, true, 5000));
    assert_true(api_metric(&a, "payd_cache_shared") == 0);
    assert_true(api_metric(&a, "payd_cache_fallbacks_total") >= 1);
    assert_true(api_metric(&a, "payd_cache_fallback_operations_total") > 0);
    char *body = readyz(&a);
    assert_non_null(strstr(body, "in-process fallback"));
    free(body);
    sleep(1);
    pd_h_redis_opts_t ro = {.port = rs.port};
    pd_h_redis_cleanup(&rs);
    assert_int_equal(pd_h_redis_start(&rs, &ro), 0);
    assert_true(wait_ready_note(&a, false, 10000));
    assert_true(wait_ready_note(&b, false, 10000));
    assert_true(api_metric(&a, "payd_cache_shared") == 1);
    atomic_store(&la.stop, true);
    atomic_store(&lb.stop, true);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    printf("under load with redis killed and back: a %lld ok / %lld 429 / %lld failed, b %lld / %lld / %lld\n",
           (long long)la.ok, (long long)la.limited, (long long)la.failed, (long long)lb.ok, (long long)lb.limited,
           (long long)lb.failed);
    assert_int_equal(la.failed + lb.failed, 0); /* every request answered, none refused for Redis */
    assert_true(la.ok > 0 && lb.ok > 0);
    char *log = pd_h_log(&a);
    assert_non_null(strstr(log, "in-process fallback"));
    assert_non_null(strstr(log, "cache: redis connected; limits are shared by every node"));
    free(log);
    /* global again: the fresh Redis has one full bucket of 20 for both nodes */
    sleep(2); /* the reserves of the load go back */
    pd_h_client_t *ca = pd_h_client_new(&a), *cb = pd_h_client_new(&b);
    int64_t t0 = now_ms();
    int ok = 0;
    for (int i = 0; i < 20; i++)
        ok += balance(ca, api_sk) == 200, ok += balance(cb, api_sk) == 200;
    int64_t secs = (now_ms() - t0 + 999) / 1000;
    printf("after redis came back: %d of 40 allowed on two nodes (burst 20, 5/s, %lld s)\n", ok, (long long)secs);
    assert_true(ok <= 20 + 2 + 5 * secs);
    pd_h_client_free(ca);
    pd_h_client_free(cb);
    stop_pair(&a, &b);
    pd_h_redis_stop(&rs, SIGTERM);
    pd_h_redis_cleanup(&rs);
}

static bool
cli_has(uint16_t port, const char *const *args, const char *needle)
{
    char *out = pd_h_redis_cli(port, args);
    bool has = out != NULL && strstr(out, needle) != NULL;
    free(out);
    return has;
}

static void
sentinel_failover(void **state)
{
    (void)state;
    pd_h_redis_t m, r, s[3];
    assert_int_equal(pd_h_redis_start(&m, NULL), 0);
    pd_h_redis_opts_t ro = {.replicaof = m.port};
    assert_int_equal(pd_h_redis_start(&r, &ro), 0);
    for (int i = 0; i < 3; i++) {
        pd_h_redis_opts_t so = {.sentinel = true, .monitor = m.port};
        assert_int_equal(pd_h_redis_start(&s[i], &so), 0);
    }
    /* the sentinels know the replica and each other */
    const char *rep[] = {"SENTINEL", "replicas", "mymaster", NULL};
    const char *sen[] = {"SENTINEL", "ckquorum", "mymaster", NULL};
    char rport[16];
    snprintf(rport, sizeof(rport), "%u", (unsigned)r.port);
    int64_t end = now_ms() + 20000;
    while (now_ms() < end && !(cli_has(s[0].port, rep, rport) && cli_has(s[0].port, sen, "3 usable")))
        usleep(200000);
    assert_true(cli_has(s[0].port, sen, "3 usable"));
    snprintf(g_url, sizeof(g_url), "cache.url=redis-sentinel://127.0.0.1:%u,127.0.0.1:%u,127.0.0.1:%u/mymaster",
             (unsigned)s[0].port, (unsigned)s[1].port, (unsigned)s[2].port);
    const char *args[] = {"--set", "cache.backend=redis", "--set", g_url, "--set", "waf.ip_rate_limit=1000000", NULL};
    pd_h_payd_t p;
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    assert_true(wait_ready_note(&p, false, 5000));
    load_t l = {.p = &p};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, load, &l), 0);
    sleep(1);
    int64_t killed = now_ms();
    pd_h_redis_stop(&m, SIGKILL);
    /* the replica becomes the master; payd finds it through the sentinels */
    const char *role[] = {"ROLE", NULL};
    end = now_ms() + 30000;
    while (now_ms() < end && !cli_has(r.port, role, "master"))
        usleep(100000);
    int64_t promoted = now_ms();
    assert_true(cli_has(r.port, role, "master"));
    assert_true(wait_ready_note(&p, false, 15000));
    const char *ex[] = {"EXISTS", "payd:cache:nodes", NULL};
    end = now_ms() + 5000;
    while (now_ms() < end && !cli_has(r.port, ex, "1"))
        usleep(100000);
    int64_t resumed = now_ms();
    assert_true(cli_has(r.port, ex, "1")); /* payd writes to the new master */
    sleep(1);
    atomic_store(&l.stop, true);
    pthread_join(t, NULL);
    printf("sentinel failover: replica promoted %lld ms after the master's SIGKILL, payd's limits on it after %lld ms; "
           "requests %lld ok, %lld 429, %lld failed\n",
           (long long)(promoted - killed), (long long)(resumed - killed), (long long)l.ok, (long long)l.limited,
           (long long)l.failed);
    assert_int_equal(l.failed + l.limited, 0); /* no failed API request */
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "in-process fallback"));
    free(log);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
    for (int i = 0; i < 3; i++) {
        pd_h_redis_stop(&s[i], SIGTERM);
        pd_h_redis_cleanup(&s[i]);
    }
    pd_h_redis_stop(&r, SIGTERM);
    pd_h_redis_cleanup(&r);
    pd_h_redis_cleanup(&m);
}

/* payd refuses to start with this cache url; its log names why */
static void
refused_at_start(const char *url, const char *why)
{
    char set[300];
    snprintf(set, sizeof(set), "cache.url=%s", url);
    const char *args[] = {"--set", "cache.backend=redis", "--set", set, NULL};
    pd_h_payd_t p;
    pd_h_opts_t o = {.args = args, .no_wait = true};
    assert_int_equal(pd_h_start(&p, &o), 0);
    int rc = pd_h_stop(&p, 0, 60000); /* a refused start: slow on a loaded machine */
    char *log = pd_h_log(&p);
    assert_int_not_equal(rc, 0);
    if (strstr(log, why) == NULL)
        fail_msg("%s: \"%s\" not in the log:\n%s", url, why, log);
    assert_null(strstr(log, "wrong-pass")); /* never the password */
    free(log);
    pd_h_cleanup(&p);
}

typedef struct {
    int lfd;
    uint16_t port;
    atomic_bool stop;
} fake_t;

/* a sentinel that names 127.0.0.1:port (a replica) as the master, to every asker */
static void *
fake_sentinel(void *arg)
{
    fake_t *f = arg;
    while (!atomic_load(&f->stop)) {
        struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
        setsockopt(f->lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        char buf[512], port[8], reply[64];
        if (read(fd, buf, sizeof(buf)) > 0) {
            snprintf(port, sizeof(port), "%u", (unsigned)f->port);
            int n = snprintf(reply, sizeof(reply), "*2\r\n$9\r\n127.0.0.1\r\n$%zu\r\n%s\r\n", strlen(port), port);
            (void)!write(fd, reply, (size_t)n);
        }
        close(fd);
    }
    return NULL;
}

static void
bad_input(void **state)
{
    (void)state;
    char url[200];
    pd_h_redis_t pw;
    pd_h_redis_opts_t po = {.requirepass = "right-pass"};
    assert_int_equal(pd_h_redis_start(&pw, &po), 0);
    refused_at_start("redis://127.0.0.1", "[cache] url: \\\"127.0.0.1\\\" is not host:port");
    refused_at_start("memcached://127.0.0.1:11211", "[cache] url: must start with redis://");
    snprintf(url, sizeof(url), "redis://:wrong-pass@127.0.0.1:%u", (unsigned)pw.port);
    refused_at_start(url, "refused the credentials of [cache] url");
    snprintf(url, sizeof(url), "rediss://127.0.0.1:%u", (unsigned)pw.port);
    refused_at_start(url, "TLS handshake with 127.0.0.1");
    /* a sentinel naming a replica: payd starts on its fallback and says why */
    pd_h_redis_t rep;
    pd_h_redis_opts_t ro = {.replicaof = pw.port};
    assert_int_equal(pd_h_redis_start(&rep, &ro), 0);
    fake_t f = {.lfd = socket(AF_INET, SOCK_STREAM, 0), .port = rep.port};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(f.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f.lfd, 16), 0);
    assert_int_equal(getsockname(f.lfd, (struct sockaddr *)&sa, &sl), 0);
    pthread_t ft;
    assert_int_equal(pthread_create(&ft, NULL, fake_sentinel, &f), 0);
    snprintf(g_url, sizeof(g_url), "cache.url=redis-sentinel://127.0.0.1:%u/mymaster", (unsigned)ntohs(sa.sin_port));
    const char *args[] = {"--set", "cache.backend=redis", "--set", g_url, NULL};
    pd_h_payd_t p;
    pd_h_opts_t o = {.args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    pd_h_client_t *c = pd_h_client_new(&p);
    assert_int_equal(balance(c, api_sk), 200); /* limits on the fallback */
    pd_h_client_free(c);
    char *body = readyz(&p);
    assert_non_null(strstr(body, "is not a master (ROLE: slave)"));
    free(body);
    char *log = pd_h_log(&p);
    assert_non_null(strstr(log, "is not a master (ROLE: slave)"));
    free(log);
    atomic_store(&f.stop, true);
    pthread_join(ft, NULL);
    close(f.lfd);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
    pd_h_redis_stop(&rep, SIGTERM);
    pd_h_redis_cleanup(&rep);
    pd_h_redis_stop(&pw, SIGTERM);
    pd_h_redis_cleanup(&pw);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_nodes_share_limits),
        cmocka_unit_test(redis_killed_under_load),
        cmocka_unit_test(sentinel_failover),
        cmocka_unit_test(bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
