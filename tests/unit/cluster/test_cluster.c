/* The keeper, the node id and [cluster]'s checks (payd/cluster.h), over an SQLite store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "payd/cluster.h"
#include "payd/time.h"

static char dir[64];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-cluster-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static pd_cluster_config_t
config(void)
{
    return (pd_cluster_config_t){.node_id = "", .lease_ttl_ms = 3000, .heartbeat_interval_ms = 200};
}

/* made once per data dir (0600), then read back; the setting wins; a bad file fails */
static void
node_id_is_stable_per_data_dir(void **state)
{
    (void)state;
    pd_cluster_config_t c = config();
    char a[PD_NODE_ID_MAX], b[PD_NODE_ID_MAX], path[128];
    assert_int_equal(pd_cluster_node_id(&c, dir, a, sizeof(a)), 0);
    assert_int_equal(strncmp(a, "node-", 5), 0);
    assert_int_equal(strlen(a), 17);
    assert_int_equal(pd_cluster_node_id(&c, dir, b, sizeof(b)), 0);
    assert_string_equal(a, b);
    snprintf(path, sizeof(path), "%s/node_id", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    c.node_id = "web-1";
    assert_int_equal(pd_cluster_node_id(&c, dir, b, sizeof(b)), 0);
    assert_string_equal(b, "web-1");

    c.node_id = "";
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not an id!\n", f);
    fclose(f);
    assert_int_equal(pd_cluster_node_id(&c, dir, b, sizeof(b)), PD_ERR_CONFIG);
}

static void
config_checks_name_the_setting(void **state)
{
    (void)state;
    char err[256];
    pd_cluster_config_t c = config();
    assert_int_equal(pd_cluster_config_check(&c, err, sizeof(err)), 0);
    c.node_id = "a b";
    assert_int_equal(pd_cluster_config_check(&c, err, sizeof(err)), PD_ERR_CONFIG);
    assert_non_null(strstr(err, "cluster.node_id"));
    c.node_id = "";
    c.heartbeat_interval_ms = 3000;
    assert_int_equal(pd_cluster_config_check(&c, err, sizeof(err)), PD_ERR_CONFIG);
    assert_non_null(strstr(err, "cluster.heartbeat_interval"));
    assert_true(pd_cluster_id_valid("node-0a.b_C"));
    assert_false(pd_cluster_id_valid(""));
    assert_false(pd_cluster_id_valid("x/y"));
    char long_id[80];
    memset(long_id, 'a', 64);
    long_id[64] = '\0';
    assert_false(pd_cluster_id_valid(long_id));
}

typedef struct {
    const char *holder;
    bool held;
    int64_t token, exp;
} other_t;

/* another node's live lease on relay, from the database's clock */
static int
take_relay(pd_db_t *tx, void *arg)
{
    other_t *o = arg;
    int64_t now;
    int r = pd_db_clock_ms(tx, &now);
    return r != 0 ? r : pd_lease_acquire(tx, "relay", o->holder, now, 60000, &o->held, &o->token, &o->exp);
}

static int
fence_relay(pd_db_t *tx, void *arg)
{
    (void)arg;
    return pd_lease_fence(tx, PD_LEASE_RELAY);
}

typedef struct {
    const char *id;
    int n;
    bool stopped;
    char held[4][PD_LEASE_NAME_MAX];
    int nheld;
} seen_t;

static int
seen_node(const pd_node_rec_t *n, void *arg)
{
    seen_t *s = arg;
    if (strcmp(n->id, s->id) == 0) {
        s->n++;
        s->stopped = n->stopped;
    }
    return 0;
}

static int
seen_lease(const pd_lease_rec_t *l, void *arg)
{
    seen_t *s = arg;
    if (strcmp(l->holder, s->id) == 0 && l->expires_at > 0 && s->nheld < 4)
        snprintf(s->held[s->nheld++], sizeof(s->held[0]), "%s", l->name);
    return 0;
}

/* the keeper takes what is free, not what another node holds; the fence follows the
 * lease; a clean stop releases everything and marks the node stopped */
static void
keeper_takes_free_leases_and_releases_them(void **state)
{
    (void)state;
    pd_store_config_t sc = {.backend = PD_STORE_SQLITE, .path = "", .max_batch = 64, .max_queue = 1000};
    pd_store_t *s;
    assert_int_equal(pd_store_open(&s, &sc, dir), 0);
    other_t o = {.holder = "node-other"};
    assert_int_equal(pd_store_write_sync(s, take_relay, &o), 0);
    assert_true(o.held);

    assert_true(pd_lease_held(PD_LEASE_RELAY)); /* no keeper: the only node */
    assert_int_equal(pd_store_write_sync(s, fence_relay, NULL), 0);

    pd_cluster_config_t c = config();
    pd_cluster_deps_t d = {.store = s, .node_id = "node-me", .version = "0.1.0", .admin = "127.0.0.1:1"};
    assert_int_equal(pd_cluster_start(&c, &d), 0);
    assert_false(pd_lease_held(PD_LEASE_RELAY));
    assert_true(pd_lease_held(PD_LEASE_STREAM));
    assert_true(pd_lease_held(PD_LEASE_RECOVERY));
    assert_true(pd_lease_held(PD_LEASE_ALARMS));
    assert_false(pd_lease_held(PD_LEASE_N));
    assert_int_equal(pd_store_write_sync(s, fence_relay, NULL), PD_ERR_CONFLICT);
    int64_t alive = 0, dead = 0;
    assert_true(pd_cluster_counts(&alive, &dead));
    assert_int_equal(alive, 1);
    assert_int_equal(dead, 0);

    /* renewals keep the leases past their TTL (3 s) */
    usleep(3500 * 1000);
    assert_true(pd_lease_held(PD_LEASE_STREAM));
    assert_false(pd_lease_held(PD_LEASE_RELAY));

    pd_buf_t out;
    pd_buf_init(&out, 1u << 20);
    assert_int_equal(pd_cluster_status(pd_store_reader(s), true, &out), 0);
    assert_int_equal(pd_buf_put_byte(&out, 0), 0);
    assert_non_null(strstr((char *)out.p, "\"id\":\"node-me\""));
    assert_non_null(strstr((char *)out.p, "\"state\":\"alive\""));
    assert_non_null(strstr((char *)out.p, "\"name\":\"relay\",\"holder\":\"node-other\""));
    pd_buf_free(&out);

    pd_cluster_stop();
    assert_true(pd_lease_held(PD_LEASE_RELAY)); /* no keeper again */
    seen_t seen = {.id = "node-me"};
    assert_int_equal(pd_node_list(pd_store_reader(s), seen_node, &seen), 0);
    assert_int_equal(pd_lease_list(pd_store_reader(s), seen_lease, &seen), 0);
    assert_int_equal(seen.n, 1);
    assert_true(seen.stopped);
    assert_int_equal(seen.nheld, 0);
    pd_store_close(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(node_id_is_stable_per_data_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(config_checks_name_the_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(keeper_takes_free_leases_and_releases_them, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
