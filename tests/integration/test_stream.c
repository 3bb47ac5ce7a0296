/*
 * The transaction stream over a real redis-server ([stream], payd/stream.h): after
 * payments by several merchants, the partitions hold every event exactly once
 * (counted by id), spread over every partition, each where hash(merchant) puts it,
 * its payload an envelope; a consumer group reads them all through payctl stream
 * read (and acknowledges them); a principal the vault does not let decrypt
 * alias/events prints nothing and acknowledges nothing, and another consumer claims
 * the entry it left pending; after kill -9 of payd during publication no event is
 * missing and duplicates carry the same id; entries older than the retention are
 * trimmed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api_helpers.h"
#include "payd/redis_link.h"
#include "payd/stream.h"
#include "payd/vault_crypto.h"
#include "redis_server.h"

#define MAX_EVENTS 4000
#define PARTS 3

typedef struct {
    char id[64], merchant[64], type[64], created[24], entry[40];
    int part, seen;
    size_t payload_len;
} ev_t;

static pd_h_redis_t g_rs;
static char g_url[100], g_urlset[120];

static int
start_redis(void **state)
{
    (void)state;
    if (pd_h_redis_start(&g_rs, NULL) != 0)
        return -1;
    snprintf(g_url, sizeof(g_url), "redis://127.0.0.1:%u", (unsigned)g_rs.port);
    snprintf(g_urlset, sizeof(g_urlset), "cache.url=%s", g_url);
    return 0;
}

static int
stop_redis(void **state)
{
    (void)state;
    pd_h_redis_stop(&g_rs, SIGTERM);
    pd_h_redis_cleanup(&g_rs);
    return 0;
}

static pd_rlink_t *
link_open(void)
{
    pd_rlink_t *l = NULL;
    char err[300];
    assert_int_equal(pd_rlink_new(&l, g_url, NULL, NULL, 5000, err, sizeof(err)), 0);
    assert_int_equal(pd_rlink_connect(l, NULL, err, sizeof(err)), 0);
    return l;
}

static void
redis_do(const char *const *args)
{
    pd_rlink_t *l = link_open();
    const char *a[16];
    int n = 0;
    for (; args[n] != NULL && n < 16; n++)
        a[n] = args[n];
    redisReply *rep = NULL;
    assert_int_equal(pd_rlink_cmd(l, &rep, n, a), 0);
    assert_int_not_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    pd_rlink_free(l);
}

static const redisReply *
fv_get(const redisReply *fv, const char *name)
{
    for (size_t i = 0; fv->type == REDIS_REPLY_ARRAY && i + 1 < fv->elements; i += 2)
        if (strcmp(fv->element[i]->str, name) == 0)
            return fv->element[i + 1];
    return NULL;
}

/* every entry of every partition into out (*n); payload_json: whether payloads are plain JSON */
static void
read_stream(ev_t *out, int *n, bool payload_json)
{
    pd_rlink_t *l = link_open();
    *n = 0;
    for (int p = 0; p < PARTS; p++) {
        char key[32];
        snprintf(key, sizeof(key), "payd:txn:%d", p);
        const char *a[] = {"XRANGE", key, "-", "+"};
        redisReply *rep = NULL;
        assert_int_equal(pd_rlink_cmd(l, &rep, 4, a), 0);
        assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
        for (size_t i = 0; i < rep->elements && *n < MAX_EVENTS; i++) {
            const redisReply *e = rep->element[i], *fv = e->element[1];
            ev_t *x = &out[(*n)++];
            memset(x, 0, sizeof(*x));
            snprintf(x->entry, sizeof(x->entry), "%s", e->element[0]->str);
            const redisReply *id = fv_get(fv, "id"), *m = fv_get(fv, "merchant"), *t = fv_get(fv, "type"),
                             *c = fv_get(fv, "created"), *lm = fv_get(fv, "livemode"), *pl = fv_get(fv, "payload");
            assert_non_null(id);
            assert_non_null(m);
            assert_non_null(t);
            assert_non_null(c);
            assert_non_null(lm);
            assert_non_null(pl);
            snprintf(x->id, sizeof(x->id), "%s", id->str);
            snprintf(x->merchant, sizeof(x->merchant), "%s", m->str);
            snprintf(x->type, sizeof(x->type), "%s", t->str);
            snprintf(x->created, sizeof(x->created), "%s", c->str);
            x->part = p;
            x->payload_len = pl->len;
            assert_string_equal(lm->str, "false");
            if (payload_json) {
                assert_int_equal(pl->str[0], '{');
                assert_non_null(strstr(pl->str, x->id));
            } else {
                /* an envelope's hex (the vault's format, PDE + version 1): no trace of the event
                 * in it, neither as text nor once decoded */
                assert_true(pl->len > 2 * PD_ENV_OVERHEAD && pl->len % 2 == 0);
                assert_int_equal(strspn(pl->str, "0123456789abcdef"), pl->len);
                assert_null(strstr(pl->str, "payment_intent"));
                uint8_t *env = malloc(pl->len / 2);
                assert_non_null(env);
                assert_int_equal(pd_unhex(pl->str, pl->len, env), 0);
                assert_memory_equal(env, "PDE\x01", 4);
                assert_null(memmem(env, pl->len / 2, "payment_intent", 14));
                assert_null(memmem(env, pl->len / 2, x->id, strlen(x->id)));
                free(env);
            }
        }
        freeReplyObject(rep);
    }
    pd_rlink_free(l);
}

/* "id merchant" per event in the store */
static int
db_events(const pd_h_payd_t *p, ev_t *out)
{
    char path[400], *text = NULL;
    snprintf(path, sizeof(path), "%s/payd.db", p->dir);
    const char *argv[] = {"/usr/bin/sqlite3", "-readonly", path, "SELECT id || ' ' || merchant_id FROM events", NULL};
    assert_int_equal(pd_h_run(argv, &text), 0);
    int n = 0;
    for (char *line = text; line != NULL && *line != '\0' && n < MAX_EVENTS;) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        memset(&out[n], 0, sizeof(out[n]));
        if (sscanf(line, "%63s %63s", out[n].id, out[n].merchant) == 2)
            n++;
        line = nl != NULL ? nl + 1 : NULL;
    }
    free(text);
    return n;
}

/* waits until the outbox and the stream's queue are empty (15 s) */
static void
wait_drained(const pd_h_payd_t *p)
{
    for (int i = 0; i < 300; i++) {
        if (api_sql_long(p, "payd.db", "SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM stream_outbox)") == 0)
            return;
        usleep(50 * 1000);
    }
    fail_msg("the stream's queue did not drain in 15 s");
}

static void
pay(const pd_h_payd_t *p, const char *key)
{
    json_t *j;
    assert_int_equal(api_call_as(p, key, "POST", "/v1/payment_intents",
                                 "amount=1000&currency=usd&payment_method=pm_card_visa&confirm=true", NULL, &j),
                     200);
    json_decref(j);
}

/* a payment whose events are the largest payd makes: 50 metadata keys of 40 bytes, each
 * value 500 control bytes that JSON escapes to 6 bytes each (\u0001), ~150 KB of JSON
 * per event, far past Encrypt's 4096 bytes; the publisher sends such an event alone */
static void
pay_big(const pd_h_payd_t *p, const char *key)
{
    enum { NKEYS = 50, KLEN = 40, VLEN = 500 };
    static char body[NKEYS * (KLEN + 3 * VLEN + 16) + 200];
    size_t n = (size_t)snprintf(body, sizeof(body), "amount=1000&currency=usd&payment_method=pm_card_visa&confirm=true");
    for (int k = 0; k < NKEYS; k++) {
        n += (size_t)snprintf(body + n, sizeof(body) - n, "&metadata[k%02d%.*s]=", k, KLEN - 3,
                              "_padded_to_forty_bytes_of_key_name_____");
        for (int i = 0; i < VLEN; i++)
            n += (size_t)snprintf(body + n, sizeof(body) - n, "%%01");
    }
    json_t *j;
    assert_int_equal(api_call_as(p, key, "POST", "/v1/payment_intents", body, NULL, &j), 200);
    assert_int_equal(json_object_size(json_object_get(j, "metadata")), NKEYS);
    json_decref(j);
}

static void
new_merchant(const pd_h_payd_t *p, char *id, size_t idcap, char *key, size_t keycap)
{
    const char *args[] = {"--json", "merchant", "create", "--name", "Stream Co", NULL};
    char *out = NULL;
    assert_int_equal(pd_h_payctl(p, args, &out), 0);
    json_error_t e;
    json_t *m = json_loads(strstr(out, "{"), 0, &e);
    assert_non_null(m);
    snprintf(id, idcap, "%s", jstr(m, "merchant_id"));
    snprintf(key, keycap, "%s", jstr(m, "secret_key"));
    json_decref(m);
    free(out);
}

static ev_t g_db[MAX_EVENTS], g_st[MAX_EVENTS];

/* every store event in the stream: exactly once (or at least once), in its merchant's partition */
static void
check_every_event(const pd_h_payd_t *p, bool exactly_once, bool payload_json, int *ndb_out, int *dups_out)
{
    int ndb = db_events(p, g_db), nst = 0, dups = 0;
    read_stream(g_st, &nst, payload_json);
    assert_true(ndb > 0);
    for (int i = 0; i < nst; i++) {
        int k = -1;
        for (int j = 0; j < ndb; j++)
            if (strcmp(g_db[j].id, g_st[i].id) == 0) {
                k = j;
                break;
            }
        assert_true(k >= 0); /* no entry that is not an event */
        assert_string_equal(g_db[k].merchant, g_st[i].merchant);
        assert_int_equal(g_st[i].part, (int)pd_stream_partition(g_st[i].merchant, PARTS));
        if (g_db[k].seen++ > 0) {
            dups++;
            /* a repeated entry is the same event: same id, type, merchant, time */
            for (int j = 0; j < i; j++)
                if (strcmp(g_st[j].id, g_st[i].id) == 0) {
                    assert_string_equal(g_st[j].type, g_st[i].type);
                    assert_string_equal(g_st[j].created, g_st[i].created);
                    assert_int_equal(g_st[j].part, g_st[i].part);
                }
        }
    }
    for (int j = 0; j < ndb; j++) {
        if (g_db[j].seen == 0)
            fail_msg("event %s is missing from the stream", g_db[j].id);
        if (exactly_once && g_db[j].seen != 1)
            fail_msg("event %s is in the stream %d times", g_db[j].id, g_db[j].seen);
    }
    *ndb_out = ndb;
    *dups_out = dups;
}

/* payctl stream ARGS with the stream's url; the output lines into *out */
static int
stream_cmd(const pd_h_payd_t *p, const char *const *args, char **out)
{
    const char *a[20];
    int n = 0;
    for (; args[n] != NULL && n < 15; n++)
        a[n] = args[n];
    a[n++] = "--url";
    a[n++] = g_url;
    a[n] = NULL;
    return pd_h_payctl(p, a, out);
}

static int
count_lines_with_ids(const char *text, int ndb)
{
    int lines = 0;
    for (int j = 0; j < ndb; j++)
        g_db[j].seen = 0;
    for (const char *l = text; l != NULL && *l != '\0';) {
        const char *nl = strchr(l, '\n');
        size_t len = nl != NULL ? (size_t)(nl - l) : strlen(l);
        json_error_t e;
        json_t *o = json_loadb(l, len, 0, &e);
        if (o != NULL) {
            const char *id = json_string_value(json_object_get(o, "id"));
            assert_non_null(id);
            assert_string_equal(json_string_value(json_object_get(o, "object")), "event");
            for (int j = 0; j < ndb; j++)
                if (strcmp(g_db[j].id, id) == 0)
                    g_db[j].seen++;
            lines++;
            json_decref(o);
        }
        l = nl != NULL ? nl + 1 : NULL;
    }
    return lines;
}

static long long
group_pending(const pd_h_payd_t *p, const char *group)
{
    const char *a[] = {"--json", "stream", "info", NULL};
    char *out = NULL;
    assert_int_equal(stream_cmd(p, a, &out), 0);
    json_error_t e;
    json_t *o = json_loads(strstr(out, "{"), 0, &e);
    free(out);
    assert_non_null(o);
    long long pending = 0, length = 0;
    json_t *parts = json_object_get(o, "partitions"), *pt;
    size_t i;
    assert_int_equal(json_array_size(parts), PARTS);
    json_array_foreach(parts, i, pt) {
        length += json_integer_value(json_object_get(pt, "length"));
        assert_true(json_is_string(json_object_get(pt, "first_id")));
        assert_true(json_is_string(json_object_get(pt, "last_id")));
        json_t *g;
        size_t k;
        json_array_foreach(json_object_get(pt, "groups"), k, g) {
            if (strcmp(json_string_value(json_object_get(g, "name")), group) == 0)
                pending += json_integer_value(json_object_get(g, "pending"));
        }
    }
    assert_true(length > 0);
    json_decref(o);
    return pending;
}

static void
every_event_once_over_all_partitions_and_a_group_reads_them(void **state)
{
    (void)state;
    const char *args[] = {"--set", "cache.backend=redis", "--set", g_urlset, NULL};
    pd_h_opts_t o = {.args = args};
    pd_h_payd_t p;
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    /* merchants until every partition has one: ids are random, so with 3
     * partitions 40 tries miss one with probability 3 * (2/3)^40, about 3e-7 */
    enum { MAXM = 40 };
    char ids[MAXM][64], keys[MAXM][128];
    int nm = 0;
    bool covered[PARTS] = {false};
    snprintf(ids[0], sizeof(ids[0]), "%s", api_merchant);
    snprintf(keys[0], sizeof(keys[0]), "%s", api_sk);
    covered[pd_stream_partition(api_merchant, PARTS)] = true;
    nm = 1;
    while (nm < MAXM && !(covered[0] && covered[1] && covered[2])) {
        new_merchant(&p, ids[nm], sizeof(ids[nm]), keys[nm], sizeof(keys[nm]));
        covered[pd_stream_partition(ids[nm], PARTS)] = true;
        nm++;
    }
    assert_true(covered[0] && covered[1] && covered[2]);
    for (int r = 0; r < 5; r++)
        for (int m = 0; m < nm; m++)
            pay(&p, keys[m]);
    pay_big(&p, keys[0]);
    pay_big(&p, keys[nm - 1]);
    wait_drained(&p);
    int ndb, dups;
    check_every_event(&p, true, false, &ndb, &dups);
    int per[PARTS] = {0};
    for (int i = 0; i < ndb; i++)
        per[g_st[i].part]++;
    printf("stream: %d events of %d merchants, exactly once; per partition %d/%d/%d\n", ndb, nm, per[0], per[1],
           per[2]);
    assert_true(per[0] > 0 && per[1] > 0 && per[2] > 0);
    /* pay_big's events are in: an envelope of over 100 KB of JSON (hex: twice that) */
    size_t largest = 0;
    for (int i = 0; i < ndb; i++)
        largest = g_st[i].payload_len > largest ? g_st[i].payload_len : largest;
    printf("stream: the largest entry's payload is %zu bytes of hex\n", largest);
    assert_true(largest > 2 * 100000);

    /* a principal the vault does not let decrypt alias/events: nothing printed, nothing acknowledged */
    char admin[400];
    snprintf(admin, sizeof(admin), "%s/vault/credentials/admin", p.dir);
    const char *bad[] = {"--credential", admin, "stream", "read", "--group", "g2", "--consumer", "dead", NULL};
    char *out = NULL;
    assert_int_not_equal(stream_cmd(&p, bad, &out), 0);
    assert_int_equal(count_lines_with_ids(out, ndb), 0);
    assert_non_null(strstr(out, "vault refused"));
    free(out);
    /* what the failed read took stays pending for its consumer (one batch of a partition) */
    long long left = group_pending(&p, "g2");
    assert_true(left >= 1);

    /* the consumer group reads every event once and acknowledges what it printed */
    const char *rd[] = {"stream", "read", "--group", "g1", "--consumer", "c1", NULL};
    assert_int_equal(stream_cmd(&p, rd, &out), 0);
    assert_int_equal(count_lines_with_ids(out, ndb), ndb);
    for (int j = 0; j < ndb; j++)
        assert_int_equal(g_db[j].seen, 1);
    free(out);
    assert_int_equal(group_pending(&p, "g1"), 0);
    assert_int_equal(stream_cmd(&p, rd, &out), 0);
    assert_int_equal(count_lines_with_ids(out, ndb), 0); /* all acknowledged */
    free(out);

    /* --count bounds a read; the rest stays for the next */
    const char *rd3[] = {"stream", "read", "--group", "g3", "--consumer", "c", "--count", "4", NULL};
    assert_int_equal(stream_cmd(&p, rd3, &out), 0);
    assert_int_equal(count_lines_with_ids(out, ndb), 4);
    free(out);

    /* the dead consumer's pending entry is claimed by another, which then reads everything */
    const char *cl[] = {"--json", "stream", "claim", "--group", "g2", "--idle", "0s", "--consumer", "c2", NULL};
    assert_int_equal(stream_cmd(&p, cl, &out), 0);
    char want[64];
    snprintf(want, sizeof(want), "\"claimed\":%lld,", left);
    assert_non_null(strstr(out, want));
    free(out);
    const char *rd2[] = {"stream", "read", "--group", "g2", "--consumer", "c2", NULL};
    assert_int_equal(stream_cmd(&p, rd2, &out), 0);
    assert_int_equal(count_lines_with_ids(out, ndb), ndb);
    free(out);
    assert_int_equal(group_pending(&p, "g2"), 0);

    /* a bad option is a precise error */
    const char *badidle[] = {"stream", "claim", "--group", "g2", "--idle", "soon", NULL};
    assert_int_not_equal(stream_cmd(&p, badidle, &out), 0);
    assert_non_null(strstr(out, "--idle"));
    free(out);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
    const char *del[] = {"DEL", "payd:txn:0", "payd:txn:1", "payd:txn:2", NULL};
    redis_do(del);
}

typedef struct {
    const pd_h_payd_t *p;
    atomic_bool stop;
    atomic_int done;
} load_t;

static void *
load_main(void *arg)
{
    load_t *l = arg;
    while (!atomic_load(&l->stop)) {
        json_t *j;
        long s = api_call_as(l->p, api_sk, "POST", "/v1/payment_intents",
                             "amount=1000&currency=usd&payment_method=pm_card_visa&confirm=true", NULL, &j);
        json_decref(j);
        if (s == 200)
            atomic_fetch_add(&l->done, 1);
        else if (s < 0)
            break; /* payd is gone */
    }
    return NULL;
}

static void
kill9_during_publication_loses_no_event(void **state)
{
    (void)state;
    const char *args[] = {"--set", "cache.backend=redis", "--set", g_urlset, NULL};
    pd_h_opts_t o = {.args = args};
    pd_h_payd_t p;
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    load_t l = {.p = &p};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, load_main, &l), 0);
    usleep(1500 * 1000);
    assert_int_equal(pd_h_stop(&p, SIGKILL, 5000), 128 + SIGKILL);
    atomic_store(&l.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    long queued = api_sql_long(&p, "payd.db", "SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM stream_outbox)");
    pd_h_opts_t o2 = {.args = args, .reuse_dir = p.dir};
    assert_int_equal(pd_h_start(&p, &o2), 0);
    wait_drained(&p);
    int ndb, dups;
    check_every_event(&p, false, false, &ndb, &dups);
    printf("kill -9: %d payments, %d events, %ld queued at the kill, %d repeated entries (same ids)\n",
           atomic_load(&l.done), ndb, queued, dups);
    assert_true(atomic_load(&l.done) > 0);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
    const char *del[] = {"DEL", "payd:txn:0", "payd:txn:1", "payd:txn:2", NULL};
    redis_do(del);
}

static void
entries_older_than_the_retention_are_trimmed(void **state)
{
    (void)state;
    /* MINID ~ trims whole macro nodes: small ones, so a few entries show it */
    const char *cfg[] = {"CONFIG", "SET", "stream-node-max-entries", "2", NULL};
    redis_do(cfg);
    const char *args[] = {"--set", "cache.backend=redis", "--set", g_urlset, "--set", "stream.retention=2s",
                          "--set", "stream.encrypt=false", NULL};
    pd_h_opts_t o = {.args = args};
    pd_h_payd_t p;
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    for (int i = 0; i < 4; i++)
        pay(&p, api_sk);
    wait_drained(&p);
    int nold = 0;
    read_stream(g_st, &nold, true);
    assert_true(nold >= 8);
    static ev_t old[MAX_EVENTS];
    memcpy(old, g_st, sizeof(ev_t) * (size_t)nold);
    sleep(3);
    for (int i = 0; i < 4; i++)
        pay(&p, api_sk);
    wait_drained(&p);
    int nnow = 0;
    read_stream(g_st, &nnow, true);
    int old_left = 0;
    for (int i = 0; i < nnow; i++)
        for (int j = 0; j < nold; j++)
            if (strcmp(g_st[i].entry, old[j].entry) == 0)
                old_left++;
    printf("retention 2s: %d entries before, %d after 3 s and new payments, %d of the old ones left\n", nold, nnow,
           old_left);
    /* at most the old entries sharing a node (2) with a new one survive */
    assert_true(old_left <= 2);
    assert_true(nnow - old_left >= 8); /* every new entry is there */
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
    const char *cfg2[] = {"CONFIG", "SET", "stream-node-max-entries", "100", NULL};
    redis_do(cfg2);
}

static int
count_in_log(const pd_h_payd_t *p, const char *what)
{
    char *log = pd_h_log(p);
    int n = 0;
    for (const char *q = log; q != NULL && (q = strstr(q, what)) != NULL; q++)
        n++;
    free(log);
    return n;
}

static void
redis_down_keeps_the_rows_and_publishes_them_when_back(void **state)
{
    (void)state;
    const char *args[] = {"--set", "cache.backend=redis", "--set", g_urlset, NULL};
    pd_h_opts_t o = {.args = args};
    pd_h_payd_t p;
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    uint16_t port = g_rs.port;
    pd_h_redis_stop(&g_rs, SIGKILL);
    pd_h_redis_cleanup(&g_rs);
    for (int i = 0; i < 5; i++)
        pay(&p, api_sk); /* payments do not wait on the stream */
    /* the relay moved every event on (webhook deliveries are made); the stream's rows wait */
    long waiting = 0;
    for (int i = 0; i < 100; i++) {
        if (api_sql_long(&p, "payd.db", "SELECT COUNT(*) FROM outbox") == 0 &&
            (waiting = api_sql_long(&p, "payd.db", "SELECT COUNT(*) FROM stream_outbox")) >= 15)
            break;
        usleep(50 * 1000);
    }
    assert_int_equal(api_sql_long(&p, "payd.db", "SELECT COUNT(*) FROM outbox"), 0);
    assert_true(waiting >= 15);
    sleep(3); /* back-off retries meanwhile: logged once per 10 s */
    assert_int_equal(count_in_log(&p, "stream: redis unavailable"), 1);
    assert_int_equal(api_sql_long(&p, "payd.db", "SELECT COUNT(*) FROM stream_outbox"), waiting);
    /* payd_stream_backlog counts them (every 5 s) */
    double backlog = -1;
    for (int i = 0; i < 70 && backlog != (double)waiting; i++, usleep(100 * 1000))
        backlog = api_metric(&p, "payd_stream_backlog");
    assert_true(backlog == (double)waiting);
    pd_h_redis_opts_t ro = {.port = port};
    assert_int_equal(pd_h_redis_start(&g_rs, &ro), 0);
    wait_drained(&p);
    for (int i = 0; i < 70 && backlog != 0; i++, usleep(100 * 1000))
        backlog = api_metric(&p, "payd_stream_backlog");
    assert_true(backlog == 0);
    int ndb, dups;
    check_every_event(&p, true, false, &ndb, &dups);
    printf("redis down: %ld events waited, then %d published exactly once\n", waiting, ndb);
    assert_true(count_in_log(&p, "stream: redis reachable again") >= 1);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
    const char *del[] = {"DEL", "payd:txn:0", "payd:txn:1", "payd:txn:2", NULL};
    redis_do(del);
}

/* [stream] replicas = 1: the queue lets an entry go only once a replica holds it (WAIT),
 * so a Sentinel failover cannot lose what the master acknowledged; with no replica the
 * rows wait (the entries sent meanwhile repeat, with the same ids) */
static void
rows_wait_until_a_replica_holds_the_entries(void **state)
{
    (void)state;
    const char *args[] = {"--set", "cache.backend=redis", "--set", g_urlset, "--set", "stream.replicas=1", NULL};
    pd_h_opts_t o = {.args = args};
    pd_h_payd_t p;
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    for (int i = 0; i < 3; i++)
        pay(&p, api_sk);
    sleep(3); /* several passes, each WAITing 1 s for a replica that is not there */
    long waiting = api_sql_long(&p, "payd.db", "SELECT COUNT(*) FROM stream_outbox");
    assert_true(waiting >= 9);
    /* the reason is logged with the first refused pass (then once per 10 s) */
    for (int i = 0; i < 120 && count_in_log(&p, "0 of 1 replicas hold the entries") < 1; i++)
        usleep(100 * 1000);
    if (count_in_log(&p, "0 of 1 replicas hold the entries") < 1) {
        char *log = pd_h_log(&p);
        printf("%s\n", log); /* the whole log: fail_msg cuts it, and longjmps past a free */
        free(log);
        fail_msg("no WAIT failure in the log (the log is above)");
    }
    pd_h_redis_t rep;
    pd_h_redis_opts_t ro = {.replicaof = g_rs.port};
    assert_int_equal(pd_h_redis_start(&rep, &ro), 0);
    wait_drained(&p);
    int ndb, dups;
    check_every_event(&p, false, false, &ndb, &dups);
    printf("replicas=1: %ld events waited for a replica, then published (%d repeats)\n", waiting, dups);
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    pd_h_cleanup(&p);
    pd_h_redis_stop(&rep, SIGTERM);
    pd_h_redis_cleanup(&rep);
    const char *del[] = {"DEL", "payd:txn:0", "payd:txn:1", "payd:txn:2", NULL};
    redis_do(del);
}

static void
stream_refused_at_start(const char *set, const char *why)
{
    const char *args[] = {"--set", "cache.backend=redis", "--set", g_urlset, "--set", set, NULL};
    pd_h_payd_t p;
    pd_h_opts_t o = {.args = args, .no_wait = true};
    assert_int_equal(pd_h_start(&p, &o), 0);
    int rc = pd_h_stop(&p, 0, 60000); /* a start refused late (after the vault): slow on a loaded machine */
    char *log = pd_h_log(&p);
    assert_int_not_equal(rc, 0);
    if (strstr(log, why) == NULL)
        fail_msg("%s: \"%s\" not in the log:\n%s", set, why, log);
    assert_null(strstr(log, "wrong-pass")); /* never the password */
    free(log);
    pd_h_cleanup(&p);
}

static void
bad_stream_config_is_an_error_at_start(void **state)
{
    (void)state;
    stream_refused_at_start("stream.backend=kinesis", "[stream] backend: \\\"kinesis\\\" is not off or redis");
    stream_refused_at_start("stream.url=redis://127.0.0.1", "[stream] url:");
    pd_h_redis_t pw;
    pd_h_redis_opts_t ro = {.requirepass = "right-pass"};
    assert_int_equal(pd_h_redis_start(&pw, &ro), 0);
    char set[200];
    snprintf(set, sizeof(set), "stream.url=redis://:wrong-pass@127.0.0.1:%u", (unsigned)pw.port);
    stream_refused_at_start(set, "[stream] url:");
    pd_h_redis_stop(&pw, SIGTERM);
    pd_h_redis_cleanup(&pw);
}

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* a loopback listener; *port its port */
static int
listener(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* a webhook endpoint that answers every request 200, one at a time, counting them */
typedef struct {
    int fd;
    atomic_int requests;
    atomic_bool stop;
} sink_t;

static void *
sink_main(void *arg)
{
    sink_t *k = arg;
    while (!atomic_load(&k->stop)) {
        int c = accept(k->fd, NULL, NULL);
        if (c < 0)
            break;
        struct timeval tv = {1, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char buf[65536];
        size_t got = 0;
        for (;;) {
            ssize_t n = read(c, buf + got, sizeof(buf) - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            buf[got] = '\0';
            char *h = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "content-length:");
            if (h != NULL && cl != NULL && got >= (size_t)(h + 4 - buf) + strtoul(cl + 15, NULL, 10)) {
                const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                if (write(c, ok, sizeof(ok) - 1) > 0)
                    atomic_fetch_add(&k->requests, 1);
                break;
            }
            if (got == sizeof(buf) - 1)
                break;
        }
        close(c);
    }
    return NULL;
}

static void
hook(const pd_h_payd_t *p, uint16_t port)
{
    char body[200];
    json_t *j;
    snprintf(body, sizeof(body), "url=http://127.0.0.1:%u/hook&enabled_events[]=*", (unsigned)port);
    assert_int_equal(api_call(p, "POST", "/v1/webhook_endpoints", body, &j), 200);
    json_decref(j);
}

static void
webhooks_and_the_stream_do_not_wait_on_each_other(void **state)
{
    (void)state;
    const char *args[] = {"--set", "cache.backend=redis", "--set", g_urlset, NULL};
    pd_h_opts_t o = {.args = args};
    pd_h_payd_t p;
    assert_int_equal(pd_h_start(&p, &o), 0);
    api_load_credentials(&p);
    /* Redis down: webhooks still go out (Redis restarts empty: this comes first) */
    int ndb, dups;
    sink_t k = {0};
    uint16_t sink_port;
    k.fd = listener(&sink_port);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sink_main, &k), 0);
    hook(&p, sink_port);
    uint16_t port = g_rs.port;
    pd_h_redis_stop(&g_rs, SIGKILL);
    pd_h_redis_cleanup(&g_rs);
    for (int i = 0; i < 3; i++)
        pay(&p, api_sk);
    for (int i = 0; i < 200 && atomic_load(&k.requests) < 9; i++)
        usleep(50 * 1000);
    long waiting = api_sql_long(&p, "payd.db", "SELECT COUNT(*) FROM stream_outbox");
    printf("redis down: %d webhooks delivered, %ld events waiting for the stream\n", atomic_load(&k.requests), waiting);
    assert_true(atomic_load(&k.requests) >= 9);
    assert_true(waiting >= 9);
    pd_h_redis_opts_t ro = {.port = port};
    assert_int_equal(pd_h_redis_start(&g_rs, &ro), 0);
    wait_drained(&p);
    /* the sink goes: the next deliveries are the hanging endpoint's */
    json_t *j;
    assert_int_equal(api_call(&p, "GET", "/v1/webhook_endpoints", NULL, &j), 200);
    char del[120];
    snprintf(del, sizeof(del), "/v1/webhook_endpoints/%s", jstr(json_array_get(json_object_get(j, "data"), 0), "id"));
    json_decref(j);
    assert_int_equal(api_call(&p, "DELETE", del, NULL, &j), 200);
    json_decref(j);

    /* a webhook endpoint that never answers (it never even accepts): the stream is not slowed */
    uint16_t hang_port;
    int hang = listener(&hang_port);
    hook(&p, hang_port);
    int64_t t0 = mono_ms();
    for (int i = 0; i < 5; i++)
        pay(&p, api_sk);
    wait_drained(&p);
    int64_t took = mono_ms() - t0;
    long pending = api_sql_long(&p, "payd.db", "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'");
    check_every_event(&p, true, false, &ndb, &dups);
    printf("hanging webhook: %d events in the stream %lld ms after the first payment, %ld deliveries still pending\n",
           ndb, (long long)took, pending);
    assert_true(pending >= 15);
    assert_true(took < 5000);
    close(hang);

    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    atomic_store(&k.stop, true);
    shutdown(k.fd, SHUT_RDWR);
    close(k.fd);
    pthread_join(th, NULL);
    pd_h_cleanup(&p);
    const char *dk[] = {"DEL", "payd:txn:0", "payd:txn:1", "payd:txn:2", NULL};
    redis_do(dk);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_event_once_over_all_partitions_and_a_group_reads_them),
        cmocka_unit_test(kill9_during_publication_loses_no_event),
        cmocka_unit_test(entries_older_than_the_retention_are_trimmed),
        cmocka_unit_test(redis_down_keeps_the_rows_and_publishes_them_when_back),
        cmocka_unit_test(rows_wait_until_a_replica_holds_the_entries),
        cmocka_unit_test(bad_stream_config_is_an_error_at_start),
        cmocka_unit_test(webhooks_and_the_stream_do_not_wait_on_each_other),
    };
    return cmocka_run_group_tests(tests, start_redis, stop_redis);
}
