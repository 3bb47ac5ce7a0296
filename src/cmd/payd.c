/*
 * payd: the network-facing payment service. This file parses the command line and
 * wires the components; the logic lives in src/<component>.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "payd/alarms.h"
#include "payd/api.h"
#include "payd/backup_config.h"
#include "payd/cache.h"
#include "payd/cluster.h"
#include "payd/config.h"
#include "payd/cred.h"
#include "payd/dashboard.h"
#include "payd/edge.h"
#include "payd/lockfile.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/money.h"
#include "payd/payments.h"
#include "payd/privsep.h"
#include "payd/sdnotify.h"
#include "payd/service.h"
#include "payd/vault_spawn.h"
#include "payd/traffic_log.h"
#include "payd/waf.h"

extern char **environ;

typedef struct {
    pd_config_t *cfg;
    pd_service_config_t svc;
    pd_edge_api_config_t api;
    pd_edge_admin_config_t admin;
    pd_vault_config_t vault;
    pd_store_config_t store;
    pd_processor_config_t processor;
    pd_api_config_t payments;
    pd_waf_config_t waf_cfg;
    pd_waf_t *waf;
    pd_waf_ip_t *waf_ip;
    pd_traffic_log_config_t traffic_cfg;
    pd_mx_config_t metrics_cfg;
    pd_dash_config_t dash_cfg;
    pd_alarms_config_t alarms_cfg;
    pd_alarms_t *alarms;
    pd_cluster_config_t cluster_cfg;
    pd_traffic_log_t *traffic;
    pd_vault_link_t vault_link;
    pd_secret_source_t secrets;    /* the vault link, for [store] and [cache] password_secret */
    pd_store_t *db;
    pd_processor_t *simulator;
    pd_api_t *payments_api;
    pd_merchant_keys_t dev_keys;
    pd_sdnotify_t notify;          /* the service manager (systemd Type=notify); a no-op without one */
    pd_sdnotify_watchdog_t *watchdog;
    bool notified_ready;           /* READY=1 sent */
    char status[512];              /* the last STATUS= sent */
    const char *config_path;
    bool root;                     /* started as root: drops to run_as after binding */
    pd_privsep_user_t run_as;      /* [server] user */
    pd_privsep_user_t vault_user;  /* [vault] user (child mode) */
    bool dev;
    bool check_only;
    bool print_config;
    bool print_reference;
} app_t;

#ifdef PAYD_SANITIZE
/* libh2o keeps per-thread recycled chunks in thread-local storage that it never
 * frees; they become unreachable when a loop thread exits. Not our leak. */
const char *__lsan_default_suppressions(void);
const char *
__lsan_default_suppressions(void)
{
    return "leak:libh2o-evloop.so\n";
}
#endif

/* kept reachable until exit: a started server is not torn down (see pd_server_free) */
static pd_server_t *g_server;

static void
usage(FILE *f)
{
    fprintf(f, "usage: payd [--config FILE] [--dev] [--data-dir DIR] [--listen ADDR:PORT]\n"
               "            [--admin-listen ADDR:PORT] [--set section.key=value]... [--check-config]\n"
               "            [--print-config] [--config-reference] [--version]\n"
               "\n"
               "  --config FILE        INI configuration (see docs/configuration.md)\n"
               "  --dev                development mode: creates DIR/tls with a local CA and server\n"
               "                       certificate on first start, and uses them\n"
               "  --data-dir DIR       same as --set server.data_dir=DIR\n"
               "  --listen ADDR:PORT   same as --set api.listen=ADDR:PORT\n"
               "  --admin-listen A:P   same as --set admin.listen=A:P\n"
               "  --set S.K=V          set any configuration key (after file and environment)\n"
               "  --check-config       validate the configuration and exit (0 when valid)\n"
               "  --print-config       print the effective configuration and exit\n"
               "  --config-reference   print every key as a Markdown table and exit\n");
}

/* the admin listener's address as bound (its configured port may be 0), "" without one */
static void
admin_address(app_t *app, char *out, size_t cap)
{
    char host[256];
    uint16_t port;
    out[0] = '\0';
    if (app->admin.listen[0] != '\0' && pd_config_parse_addr(app->admin.listen, host, sizeof(host), &port) == 0)
        snprintf(out, cap, "%s%s%s:%u", strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
                 pd_server_admin_port(g_server));
}

typedef struct {
    const char *node_id;
    int64_t n;
} expedite_t;

static int
write_expedite_node(pd_db_t *tx, void *arg)
{
    expedite_t *e = arg;
    return pd_charge_expedite_node(tx, e->node_id, &e->n);
}

/* the node's heartbeat and the worker leases (docs/cluster.md) */
static int
start_cluster(app_t *app)
{
    char id[PD_NODE_ID_MAX], admin[300];
    int r = pd_cluster_node_id(&app->cluster_cfg, app->svc.data_dir, id, sizeof(id));
    if (r != 0) {
        pd_log_error("cannot determine the node id (cluster.node_id)", PD_LERR(r));
        return r;
    }
    /* what this node's previous run left requested is in flight nowhere now: recovery
     * settles it at its next pass, not recovery_after_ms later. Before this run stamps
     * its own writes with the id, so none of them is taken for the previous run's. */
    expedite_t e = {id, 0};
    if ((r = pd_store_write_sync(app->db, write_expedite_node, &e)) != 0)
        pd_log_warn("cannot mark the charges a previous run left requested; recovery finds them later",
                    PD_LERR(r));
    else if (e.n > 0)
        pd_log_info("charges a previous run of this node left requested are due for recovery now",
                    PD_LI("charges", e.n), PD_LS("node_id", id));
    pd_charge_set_node(id);
    admin_address(app, admin, sizeof(admin));
    pd_cluster_deps_t d = {.store = app->db, .node_id = id, .version = PAYD_VERSION, .admin = admin};
    if ((r = pd_cluster_start(&app->cluster_cfg, &d)) != 0)
        pd_log_error("cannot register the node in the cluster", PD_LERR(r));
    return r;
}

static int
register_config(app_t *app)
{
    int r;
    if ((r = pd_config_new(&app->cfg)) != 0 || (r = pd_service_config_register(app->cfg, &app->svc)) != 0 ||
        (r = pd_edge_config_register(app->cfg, &app->api, &app->admin)) != 0 ||
        (r = pd_vault_config_register(app->cfg, &app->vault)) != 0 ||
        (r = pd_store_config_register(app->cfg, &app->store)) != 0 ||
        (r = pd_processor_config_register(app->cfg, &app->processor)) != 0 ||
        (r = pd_api_config_register(app->cfg, &app->payments)) != 0 ||
        (r = pd_waf_config_register(app->cfg, &app->waf_cfg)) != 0 ||
        (r = pd_traffic_log_config_register(app->cfg, &app->traffic_cfg)) != 0 ||
        (r = pd_mx_config_register(app->cfg, &app->metrics_cfg)) != 0 ||
        (r = pd_dash_config_register(app->cfg, &app->dash_cfg)) != 0 ||
        (r = pd_alarms_config_register(app->cfg, &app->alarms_cfg)) != 0 ||
        (r = pd_cluster_config_register(app->cfg, &app->cluster_cfg)) != 0) {
        fprintf(stderr, "payd: internal configuration error: %s\n", app->cfg ? pd_config_error(app->cfg) : "");
        return r;
    }
    return 0;
}

/* Applies file, environment, then flags. Returns 0 or prints every error and returns < 0. */
static int
load_config(app_t *app, int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"dev", no_argument, NULL, 'd'},
        {"data-dir", required_argument, NULL, 'D'}, {"listen", required_argument, NULL, 'l'},
        {"admin-listen", required_argument, NULL, 'a'}, {"set", required_argument, NULL, 's'},
        {"check-config", no_argument, NULL, 'C'},   {"print-config", no_argument, NULL, 'P'},
        {"config-reference", no_argument, NULL, 'R'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    int c, r = 0;
    char arg[4200];

    /* first pass: find the file and the mode flags */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': app->config_path = optarg; break;
        case 'd': app->dev = true; break;
        case 'C': app->check_only = true; break;
        case 'P': app->print_config = true; break;
        case 'R': app->print_reference = true; break;
        case 'V': printf("payd %s\n", PAYD_VERSION); exit(0);
        case 'h': usage(stdout); exit(0);
        case '?':
            fprintf(stderr, "payd: unknown or incomplete option \"%s\"\n", argv[optind - 1]);
            usage(stderr);
            return PD_ERR_CONFIG;
        default: break;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "payd: unexpected argument \"%s\"\n", argv[optind]);
        return PD_ERR_CONFIG;
    }
    if (app->config_path != NULL && pd_config_load_file(app->cfg, app->config_path) != 0)
        r = PD_ERR_CONFIG;
    if (pd_config_load_env(app->cfg, environ) != 0)
        r = PD_ERR_CONFIG;
    /* second pass: flags that set keys, in order */
    optind = 1;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        const char *key = NULL;
        switch (c) {
        case 'D': key = "server.data_dir"; break;
        case 'l': key = "api.listen"; break;
        case 'a': key = "admin.listen"; break;
        case 's':
            if (pd_config_set_arg(app->cfg, optarg, "--set") != 0)
                r = PD_ERR_CONFIG;
            continue;
        default: continue;
        }
        snprintf(arg, sizeof(arg), "%s=%s", key, optarg);
        if (pd_config_set_arg(app->cfg, arg, argv[optind - 2]) != 0)
            r = PD_ERR_CONFIG;
    }
    if (r != 0)
        fprintf(stderr, "payd: configuration error:\n%s\n", pd_config_error(app->cfg));
    return r;
}

static int
mkdir_p(const char *dir, mode_t mode)
{
    char tmp[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(tmp))
        return PD_ERR_INVALID;
    memcpy(tmp, dir, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* dev mode: data dir, TLS material */
static int
prepare_dev(app_t *app)
{
    char tls_dir[4096], path[4200], err[512];
    int r;

    if ((r = mkdir_p(app->svc.data_dir, 0700)) != 0) {
        fprintf(stderr, "payd: cannot create data dir %s: %s\n", app->svc.data_dir, pd_strerror(r));
        return r;
    }
    snprintf(tls_dir, sizeof(tls_dir), "%s/tls", app->svc.data_dir);
    if ((r = pd_devcert_ensure(tls_dir, err, sizeof(err))) != 0) {
        fprintf(stderr, "payd: %s\n", err);
        return r;
    }
    if (app->api.tls_cert == NULL || app->api.tls_cert[0] == '\0') {
        snprintf(path, sizeof(path), "api.tls_cert=%s/server.pem", tls_dir);
        if ((r = pd_config_set_arg(app->cfg, path, "--dev")) != 0)
            return r;
        snprintf(path, sizeof(path), "api.tls_key=%s/server-key.pem", tls_dir);
        if ((r = pd_config_set_arg(app->cfg, path, "--dev")) != 0)
            return r;
    }
    return 0;
}

static void
print_banner(app_t *app)
{
    char host[256];
    uint16_t port;
    if (pd_config_parse_addr(app->api.listen, host, sizeof(host), &port) != 0)
        return;
    const char *h = strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ? "127.0.0.1" : host;
    bool v6 = strchr(h, ':') != NULL;
    char url[300];
    snprintf(url, sizeof(url), "https://%s%s%s:%u", v6 ? "[" : "", h, v6 ? "]" : "", pd_server_api_port(g_server));
    printf("\npayd is running (%s mode)\n", app->dev ? "dev" : "production");
    printf("  API:    %s\n", url);
    if (app->admin.listen[0] != '\0') {
        printf("  admin:  http://%s\n", app->admin.listen);
        if (app->metrics_cfg.enabled)
            printf("  dashboard: http://%s/dashboard\n", app->admin.listen);
    }
    if (app->dev) {
        /* the key itself stays in the file: captured output (a terminal log, a CI job,
         * journald) would keep it at rest */
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "%.12s", app->dev_keys.secret_key);
        printf("  CA:     %s/tls/ca.pem\n", app->svc.data_dir);
        printf("  keys:   %s/credentials.json (merchant %s, secret key %s...)\n", app->svc.data_dir,
               app->dev_keys.merchant_id, prefix);
        printf("  try:    curl --cacert %s/tls/ca.pem %s/v1/payment_intents \\\n"
               "            -u \"$(grep -o 'sk_test_[A-Za-z0-9]*' %s/credentials.json):\" \\\n"
               "            -d amount=1099 -d currency=usd -d payment_method=pm_card_visa -d confirm=true\n",
               app->svc.data_dir, url, app->svc.data_dir);
    }
    printf("\n");
    fflush(stdout);
}

static int
apply_logging(app_t *app)
{
    pd_log_level = (pd_log_level_t)app->svc.log_level;
    if (strcmp(app->svc.log_file, "stderr") == 0)
        return 0;
    pd_log_sink_t *sink;
    int r = pd_log_sink_open(&sink, app->svc.log_file, (uint64_t)app->svc.log_max_bytes, (unsigned)app->svc.log_keep);
    if (r != 0) {
        fprintf(stderr, "payd: cannot open log file %s: %s\n", app->svc.log_file, pd_strerror(r));
        return r;
    }
    pd_log_sink_set_retention(sink, (uint64_t)app->traffic_cfg.retention_ms);
    pd_log_set_sink(sink);
    return 0;
}

/* SIGHUP: re-read the file and apply what can change without a restart */
static void
reload(app_t *app)
{
    pd_config_t *fresh = NULL;
    pd_service_config_t svc;
    pd_edge_api_config_t api;
    pd_edge_admin_config_t admin;

    pd_log_info("SIGHUP: reloading");
    if (app->config_path != NULL) {
        if (pd_config_new(&fresh) != 0 || pd_service_config_register(fresh, &svc) != 0 ||
            pd_edge_config_register(fresh, &api, &admin) != 0 || pd_config_load_file(fresh, app->config_path) != 0 ||
            pd_config_load_env(fresh, environ) != 0) {
            pd_log_error("reload: configuration invalid; keeping the running one",
                         PD_LS("reason", fresh ? pd_config_error(fresh) : "out of memory"));
            pd_config_free(fresh);
            return;
        }
        pd_log_level = (pd_log_level_t)svc.log_level;
        app->svc.log_level = svc.log_level;
        pd_config_free(fresh);
    }
    /* certificate files may have been replaced in place */
    if (pd_server_reload_tls(g_server) != 0)
        return; /* logged; the old certificate stays in use */
}

static bool
vault_ready(void *arg, char *why, size_t cap)
{
    pd_vault_link_t *l = arg;
    if (l->api == NULL || !pd_vault_client_connected(l->api) || !pd_vault_client_connected(l->processor)) {
        snprintf(why, cap, "not connected");
        return false;
    }
    return true;
}

static bool
store_ready(void *arg, char *why, size_t cap)
{
    return pd_store_writable(arg, why, cap);
}

/* the registry of payd's metrics (pd_mx), its currency label from the supported list */
static int
open_metrics(void)
{
    static const char *currencies[512];
    size_t n = pd_currency_count();
    if (n >= sizeof(currencies) / sizeof(currencies[0]))
        return PD_ERR_TOOBIG;
    for (size_t i = 0; i < n; i++)
        currencies[i] = pd_currency_at(i);
    return pd_mx_open(PAYD_VERSION, currencies, n);
}

/* [backup] wal_archive (docs/backup.md, "Point in time"): the SQLite store's checkpoints
 * wait for the WAL archive, whose segment keys come from the vault */
static int
wal_archive_setup(app_t *app)
{
    static char dir[4200];
    const pd_backup_config_t *bc = pd_backup_config();
    if (!bc->wal_archive)
        return 0;
    if (app->store.backend != PD_STORE_SQLITE) {
        pd_log_error("[backup] wal_archive = true archives the SQLite store's WAL; PostgreSQL archives its own "
                     "(archive_command, docs/postgres.md)");
        return PD_ERR_CONFIG;
    }
    if (pd_backup_wal_dir(dir, sizeof(dir), app->svc.data_dir) != 0)
        return PD_ERR_TOOBIG;
    pd_wal_archive_opts_t o = {.dir = dir,
                               .keep_ms = (bc->keep_days + 1) * 86400000LL, /* the oldest backup's roll-forward */
                               .segment_ms = 3600000,
                               .segment_max = 64u << 20,
                               .key = pd_backup_wal_key};
    pd_backup_wal_key_source(app->vault_link.api);
    pd_sqlite_wal_archive(PD_WAL_ARCHIVE_ON, &o);
    pd_log_info("wal archive on: every commit of the store is kept until it is older than keep_days + 1",
                PD_LS("dir", dir), PD_LI("keep_days", bc->keep_days));
    return 0;
}

/* storage, vault, processor and the payments API; in dev mode also the demo merchant */
static int
start_services(app_t *app, pd_router_t *router)
{
    char sim_db[4200], err[512], waf_cache[4200];
    int r;
    /* [waf] cache_dir: compiled rules kept for the next start (docs/waf.md) */
    snprintf(waf_cache, sizeof(waf_cache), "%s/waf-cache", app->svc.data_dir);
    app->waf_cfg.cache_path = strcmp(app->waf_cfg.cache_dir, "off") == 0 ? NULL
                              : app->waf_cfg.cache_dir[0] != '\0'         ? app->waf_cfg.cache_dir
                                                                          : waf_cache;
    r = pd_waf_new(&app->waf, &app->waf_cfg, err, sizeof(err));
    app->waf_cfg.cache_path = NULL; /* waf_cache is this frame's */
    if (r != 0) {
        pd_log_error("cannot load the WAF rules", PD_LS("reason", err));
        return r;
    }
    pd_log_info("waf ready", PD_LS("mode", app->waf_cfg.mode == PD_WAF_BLOCK ? "block" : app->waf_cfg.mode == PD_WAF_DETECT ? "detect" : "off"),
                PD_LI("rules", (int64_t)pd_waf_rule_count(app->waf)), PD_LI("paranoia", app->waf_cfg.paranoia),
                PD_LI("groups_from_cache", (int64_t)pd_waf_groups_cached(app->waf)));
    /* the vault before the cache (opened by the WAF's address rules) and the store:
     * [cache] and [store] password_secret are read from it */
    if ((r = pd_vault_link_open(&app->vault_link, &app->vault, app->svc.data_dir, app->dev)) != 0) {
        pd_log_error("cannot reach the vault", PD_LERR(r));
        return r;
    }
    pd_vault_link_secrets(&app->vault_link, &app->secrets);
    app->store.secrets = &app->secrets;
    pd_cache_set_secrets(&app->secrets);
    if ((r = pd_waf_ip_new(&app->waf_ip, &app->waf_cfg, err, sizeof(err))) != 0) {
        pd_log_error("cannot set up the WAF address rules (address lists, rate rule and its cache)", PD_LS("reason", err));
        return r;
    }
    /* the address rules run first, before authentication and its lookups */
    if ((r = pd_server_add_filter(g_server, PD_STAGE_EARLY, pd_waf_ip_filter, app->waf_ip)) != 0 ||
        (r = pd_server_add_filter(g_server, PD_STAGE_PARSED, pd_waf_filter, app->waf)) != 0)
        return r;
    pd_server_on_refused(g_server, pd_waf_ip_count_refused, app->waf_ip); /* malformed requests count too */
    if ((r = wal_archive_setup(app)) != 0)
        return r;
    if ((r = pd_store_open(&app->db, &app->store, app->svc.data_dir)) != 0) {
        pd_log_error("cannot open the store", PD_LERR(r));
        return r;
    }
    if ((r = pd_store_metrics_attach(app->db)) != 0 || (r = pd_reconcile_metrics_attach()) != 0 ||
        (r = pd_edge_metrics_attach(g_server)) != 0)
        return r;
    /* after the store: the data directory exists now */
    if ((r = pd_traffic_log_open(&app->traffic, &app->traffic_cfg, app->svc.data_dir, err, sizeof(err))) != 0) {
        pd_log_error("cannot open the access or flow log", PD_LS("reason", err));
        return r;
    }
    if ((r = pd_traffic_log_attach(app->traffic, g_server)) != 0)
        return r;
    snprintf(sim_db, sizeof(sim_db), "%s", app->processor.simulator_db);
    if (sim_db[0] == '\0')
        snprintf(sim_db, sizeof(sim_db), "%s/simulator.db", app->svc.data_dir);
    pd_processor_t *sim = NULL;
    if ((r = pd_simulator_new(&sim, sim_db, app->processor.simulator_latency_ms)) != 0)
        return r;
    if ((r = pd_processor_metered(&app->simulator, sim)) != 0) { /* payd_processor_requests_total */
        sim->free(sim);
        return r;
    }
    pd_api_deps_t deps = {&app->payments, app->db, &app->vault_link, app->simulator, app->svc.data_dir};
    if ((r = pd_api_new(&app->payments_api, &deps)) != 0 || (r = pd_api_register(app->payments_api, router, g_server)) != 0 ||
        (r = pd_server_add_probe(g_server, "vault", vault_ready, &app->vault_link)) != 0 ||
        (r = pd_server_add_probe(g_server, "store", store_ready, app->db)) != 0)
        return r;
    if (app->dev && (r = pd_api_dev_bootstrap(app->db, &app->vault_link, app->svc.data_dir, &app->dev_keys)) != 0) {
        pd_log_error("cannot create the dev merchant", PD_LERR(r));
        return r;
    }
    /* the leases before the workers: a worker asks for its lease before each batch */
    if ((r = start_cluster(app)) != 0)
        return r;
    return pd_api_start(app->payments_api);
}

static bool
node_ready(void *arg, char *why, size_t cap)
{
    (void)arg;
    return pd_server_ready(g_server, why, cap);
}

/* the cluster's dead nodes, counted by the holder of the alarms lease only */
static bool
dead_nodes(void *arg, int64_t *dead)
{
    int64_t alive;
    (void)arg;
    return pd_cluster != NULL && pd_lease_held(PD_LEASE_ALARMS) && pd_cluster_counts(&alive, dead);
}

/* the watchdog's liveness check: every event loop turned lately (a stuck loop stops the pings) */
static bool
loops_alive(void *arg, uint64_t max_age_ms, char *why, size_t cap)
{
    (void)arg;
    return pd_server_loops_alive(g_server, max_age_ms, why, cap);
}

/*
 * Tells the service manager what /readyz would say: READY=1 the first time payd is
 * ready (listeners bound, store writable, vault connected: the probes), then a
 * STATUS= line whenever that changes. The watchdog starts with READY=1.
 */
static void
notify_state(app_t *app)
{
    char why[256] = "", status[512];
    if (!pd_sdnotify_enabled(&app->notify))
        return; /* no manager: the probes are not run for nobody */
    bool ready = pd_server_ready(g_server, why, sizeof(why));
    if (ready)
        snprintf(status, sizeof(status), "ready%s%s: API port %u, admin port %u", why[0] ? ", degraded: " : "", why,
                 pd_server_api_port(g_server), pd_server_admin_port(g_server));
    else
        snprintf(status, sizeof(status), "not ready: %s", why);
    if (ready && !app->notified_ready) {
        app->notified_ready = true;
        if (pd_sdnotify_status(&app->notify, "READY=1\n", "%s", status) != 0)
            return; /* logged once; the manager's start timeout decides */
        snprintf(app->status, sizeof(app->status), "%s", status);
        int r = pd_sdnotify_watchdog_start(&app->watchdog, &app->notify, loops_alive, NULL);
        if (r != 0)
            pd_log_error("cannot start the watchdog thread; the service manager will end payd", PD_LERR(r));
        return;
    }
    if (app->notified_ready && strcmp(status, app->status) != 0) {
        snprintf(app->status, sizeof(app->status), "%s", status);
        if (pd_sdnotify_status(&app->notify, "", "%s", status) != 0) {
            /* logged once by pd_sdnotify_send */
        }
    }
}

static int
render_alarms(void *arg, pd_buf_t *out)
{
    return pd_alarms_render(arg, out);
}

/* the alarm evaluator over pd_mx, /readyz and the store; GET /alarms reads it */
static int
start_alarms(app_t *app)
{
    /* externalURL: the admin listener as bound (its configured port may be 0) */
    static char admin[300];
    admin_address(app, admin, sizeof(admin));
    int backup_minute = -1;
    bool backups = pd_backup_schedule_parse(pd_backup_config()->schedule, &backup_minute) == 0 && backup_minute >= 0;
    pd_alarms_deps_t deps = {.mx = pd_mx, .ready = node_ready, .dead_nodes = dead_nodes, .db_ok = store_ready, .db_arg = app->db,
                             .store = app->db, .secrets = &app->secrets, .admin_listen = admin,
                             .backups_scheduled = backups};
    int r = pd_alarms_start(&app->alarms, &app->alarms_cfg, &deps);
    if (r != 0) {
        pd_log_error("cannot start the alarm evaluator", PD_LERR(r));
        return r;
    }
    pd_edge_alarms_set(render_alarms, app->alarms);
    return 0;
}

/* after the drain: workers, vault, processor, store (each finishes its queued work) */
static void
stop_services(app_t *app)
{
    pd_dash_stop();
    pd_alarms_stop(app->alarms); /* it audits into the store and reads the vault link */
    app->alarms = NULL;
    pd_api_stop(app->payments_api);
    pd_cluster_stop(); /* the workers have stopped: their leases go to the other nodes now */
    pd_backup_wal_key_source(NULL); /* the WAL archive's keys came from the link */
    pd_vault_link_close(&app->vault_link);
    if (app->simulator != NULL)
        app->simulator->free(app->simulator);
    app->simulator = NULL;
    pd_store_close(app->db);
    app->db = NULL;
    pd_waf_free(app->waf);
    app->waf = NULL;
    pd_waf_ip_free(app->waf_ip);
    app->waf_ip = NULL;
    pd_traffic_log_free(app->traffic); /* the loops have exited: nothing writes to it any more */
    app->traffic = NULL;
}

/* Started as root: [server] user and, in child mode, [vault] user must exist, be
 * dedicated (not root, not nobody) and differ. payd creates no user itself. */
static int
check_users(app_t *app)
{
    char err[1024], cmd[300];
    app->root = geteuid() == 0;
    if (!app->root)
        return 0;
    bool child = app->vault.mode == PD_VAULT_CHILD;
    /* payd joins the vault's group to read the credentials and the socket of a standalone vault */
    snprintf(cmd, sizeof(cmd), "useradd --system --user-group --no-create-home --home-dir /nonexistent --shell "
                               "/usr/sbin/nologin --groups %s %s", app->vault.user[0] ? app->vault.user : "payd-vault",
             app->svc.user);
    if (pd_privsep_user(app->svc.user, "[server] user, the user payd serves the network as", cmd, &app->run_as, err,
                        sizeof(err)) != 0) {
        fprintf(stderr, "payd: refusing to start as root: %s\n", err);
        return PD_ERR_CONFIG;
    }
    if (!child)
        return 0;
    snprintf(cmd, sizeof(cmd), "useradd --system --user-group --no-create-home --home-dir /nonexistent --shell "
                               "/usr/sbin/nologin %s", app->vault.user);
    if (pd_privsep_user(app->vault.user, "[vault] user, the user the vault runs as", cmd, &app->vault_user, err,
                        sizeof(err)) != 0) {
        fprintf(stderr, "payd: refusing to start as root: %s\n", err);
        return PD_ERR_CONFIG;
    }
    if (app->vault_user.uid == app->run_as.uid) {
        fprintf(stderr, "payd: refusing to start as root: [server] user and [vault] user are both uid %u; the vault "
                        "must run as a user of its own, or payd could read its keys\n",
                (unsigned)app->run_as.uid);
        return PD_ERR_CONFIG;
    }
    return 0;
}

/* --dev as root: the data dir (what payd made as root: TLS material, the lock) goes
 * to [server] user; the vault's directory is the vault's */
static int
give_data_dir(app_t *app)
{
    char err[4400];
    const char *skip = app->vault.mode == PD_VAULT_CHILD && app->vault.dir[0] == '\0' ? "vault" : NULL;
    int r = pd_privsep_chown_tree(app->svc.data_dir, app->run_as.uid, app->run_as.gid, skip, err, sizeof(err));
    if (r != 0)
        pd_log_error("refusing to start: cannot give the data dir to payd's user", PD_LS("user", app->run_as.name),
                     PD_LS("reason", err));
    return r;
}

/* After binding and forking the vault's parent: payd leaves root for good, or says
 * loudly that there is no boundary between it and the vault. */
static int
drop_root(app_t *app)
{
    char err[1024];
    int r;
    if (!app->root) {
        if (app->vault.mode == PD_VAULT_CHILD) {
            fprintf(stderr, "\npayd: WARNING: the vault is NOT isolated: it runs as uid %u, the same user as payd, "
                            "so anything that takes over payd can read the vault's keys and every stored card.\n"
                            "payd: start payd as root (with the users payd and payd-vault, see scripts/deps.sh) "
                            "for the privilege boundary; see docs/vault.md.\n\n",
                    (unsigned)geteuid());
            pd_log_warn("the vault is not isolated: payd and the vault run as the same user",
                        PD_LI("uid", (int64_t)geteuid()));
        }
        return 0;
    }
    if ((r = pd_privsep_drop(&app->run_as, err, sizeof(err))) != 0) {
        pd_log_error("refusing to start: cannot drop root", PD_LS("reason", err));
        return r;
    }
    if (access(app->svc.data_dir, R_OK | W_OK | X_OK) != 0) {
        pd_log_error("refusing to start: payd's user cannot write its data dir; give it to that user",
                     PD_LS("data_dir", app->svc.data_dir), PD_LS("user", app->run_as.name),
                     PD_LS("fix", "chown -R [server] user: DATA_DIR (the vault's directory stays the vault's)"));
        return PD_ERR_PERM;
    }
    pd_log_info("dropped root", PD_LS("user", app->run_as.name), PD_LI("uid", (int64_t)app->run_as.uid),
                PD_LS("vault_user", app->vault.mode == PD_VAULT_CHILD ? app->vault_user.name : NULL),
                PD_LI("capabilities", 0));
    return 0;
}

static int
run(app_t *app)
{
    pd_router_t *router = NULL;
    sigset_t set;
    int r, sig;

    /* one payd per data dir: a second one would write the same databases and files */
    char lock_err[512];
    int lock_fd = -1;
    if ((r = pd_dir_lock(app->svc.data_dir, "payd.lock", &lock_fd, lock_err, sizeof(lock_err))) != 0) {
        pd_log_error("refusing to start: the data dir is taken", PD_LS("data_dir", app->svc.data_dir),
                     PD_LS("reason", lock_err));
        return r;
    }
    (void)lock_fd; /* held until the process ends */
    if (app->dev && app->root && (r = give_data_dir(app)) != 0)
        return r;
    if ((r = pd_router_new(&router)) != 0 || (r = pd_router_add(router, pd_health_routes, pd_health_routes_n)) != 0)
        return r;
    if (app->admin.test_endpoints && (r = pd_router_add(router, pd_debug_routes, pd_debug_routes_n)) != 0)
        return r;
    if ((r = pd_router_add(router, pd_metrics_routes, pd_metrics_routes_n)) != 0 ||
        (r = pd_router_add(router, pd_dashboard_routes, pd_dashboard_routes_n)) != 0 ||
        (r = pd_router_add(router, pd_alarms_routes, pd_alarms_routes_n)) != 0)
        return r;
    if ((r = pd_server_new(&g_server, &app->api, &app->admin, router)) != 0)
        return r;
    /* as root: the ports (any port), the TLS key; then the vault's parent, which keeps
     * root to start the vault as its user; then payd leaves root. No thread exists yet. */
    if ((r = pd_server_bind(g_server)) != 0)
        return r;
    char files_err[4400];
    uid_t vault_uid = app->vault.mode != PD_VAULT_CHILD ? (uid_t)-1 : app->root ? app->vault_user.uid : geteuid();
    if ((r = pd_vault_link_check_files(&app->vault, app->svc.data_dir, vault_uid, files_err, sizeof(files_err))) != 0) {
        pd_log_error("refusing to start: a vault file is open to more users than the vault's and payd's",
                     PD_LS("reason", files_err));
        fprintf(stderr, "payd: refusing to start: %s\n", files_err);
        return r;
    }
    /* [backup] wal_archive: the child vault archives vault.db's WAL too (docs/backup.md) */
    app->vault.wal_archive = pd_backup_config()->wal_archive && app->store.backend == PD_STORE_SQLITE;
    if ((r = pd_vault_link_prepare(&app->vault_link, &app->vault, app->svc.data_dir, app->dev)) != 0) {
        pd_log_error("cannot start the vault's privileged parent", PD_LERR(r));
        return r;
    }
    if ((r = drop_root(app)) != 0)
        return r;

    /* signals are taken synchronously by this thread; loops inherit the mask */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* the metrics registry exists before the first thread that records (store, vault client) */
    if (app->metrics_cfg.enabled && (r = open_metrics()) != 0) {
        pd_log_error("cannot set up the metrics", PD_LERR(r));
        return r;
    }
    if ((r = start_services(app, router)) != 0)
        return r;
    if ((r = pd_edge_metrics_routes(router)) != 0) /* every route is known now */
        return r;
    /* after the route labels: the sampler reads the request families by route */
    if ((r = pd_dash_start(&app->dash_cfg)) != 0) {
        pd_log_error("cannot start the dashboard's sampler", PD_LERR(r));
        return r;
    }
    if ((r = start_alarms(app)) != 0)
        return r;
    if ((r = pd_server_start(g_server)) != 0)
        return r;
    print_banner(app);
    for (;;) {
        /* between signals: readiness for the service manager, checked often until the first READY=1 */
        notify_state(app);
        bool soon = pd_sdnotify_enabled(&app->notify) && !app->notified_ready;
        struct timespec wait = {soon ? 0 : 1, soon ? 50000000L : 0};
        if ((sig = sigtimedwait(&set, NULL, &wait)) < 0)
            continue; /* EAGAIN: the time passed; EINTR */
        if (sig == SIGHUP) {
            struct timespec now;
            char pre[96];
            clock_gettime(CLOCK_MONOTONIC, &now);
            snprintf(pre, sizeof(pre), "RELOADING=1\nMONOTONIC_USEC=%llu\n",
                     (unsigned long long)now.tv_sec * 1000000ull + (unsigned long long)now.tv_nsec / 1000);
            if (pd_sdnotify_status(&app->notify, pre, "reloading (SIGHUP)") != 0) {
                /* logged once */
            }
            app->status[0] = '\0'; /* the next check says the state again */
            reload(app);
            if (app->notified_ready && pd_sdnotify_send(&app->notify, "READY=1") != 0) {
                /* logged once */
            }
        } else if (sig == SIGUSR1) {
            pd_log_sink_t *cur = pd_log_set_sink(NULL);
            if (pd_log_sink_reopen(cur) != 0)
                fprintf(stderr, "payd: cannot reopen log file\n");
            pd_log_set_sink(cur);
            if (pd_traffic_log_reopen(app->traffic) != 0)
                pd_log_error("SIGUSR1: cannot reopen the access or flow log");
            pd_log_info("SIGUSR1: log files reopened");
        } else {
            pd_log_info("shutting down: draining in-flight requests", PD_LS("signal", strsignal(sig)),
                        PD_LI("drain_timeout_ms", app->api.drain_timeout_ms));
            if (pd_sdnotify_status(&app->notify, "STOPPING=1\n", "draining in-flight requests (%s)", strsignal(sig)) != 0) {
                /* logged once */
            }
            /* the loops end during the drain: that is no stall (systemd stops watching at STOPPING=1) */
            pd_sdnotify_watchdog_stop(app->watchdog);
            app->watchdog = NULL;
            int left = pd_server_drain(g_server);
            if (left > 0)
                pd_log_warn("drain deadline passed with requests in flight", PD_LI("requests", left));
            stop_services(app);
            pd_log_info("stopped");
            return 0;
        }
    }
}

int
main(int argc, char **argv)
{
    app_t app = {0};
    int rc = 2; /* exit code: 0 ok, 1 runtime failure, 2 configuration error */

    umask(077); /* databases, keys and logs are private to payd's user */
    /* card numbers pass through this process (request bodies, detokenized cards): no
     * core dump may hold them, and no other process of this user may read its memory */
    struct rlimit no_core = {0, 0};
    if (setrlimit(RLIMIT_CORE, &no_core) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        fprintf(stderr, "payd: cannot disable core dumps: %s\n", strerror(errno));
        return 1;
    }
    if (register_config(&app) != 0 || load_config(&app, argc, argv) != 0)
        goto out;
    /* before any child (the vault's parent) or thread: the variables are taken out of the environment */
    char notify_err[512];
    if (pd_sdnotify_open(&app.notify, notify_err, sizeof(notify_err)) != 0) {
        fprintf(stderr, "payd: environment error:\n%s\n", notify_err);
        goto out;
    }
    if (app.print_reference) {
        pd_config_reference(app.cfg, stdout);
        rc = 0;
        goto out;
    }
    if (check_users(&app) != 0)
        goto out;
    if (app.dev && prepare_dev(&app) != 0) {
        rc = 1;
        goto out;
    }
    if (!app.dev && (app.api.tls_cert[0] == '\0' || app.api.tls_key[0] == '\0')) {
        fprintf(stderr, "payd: configuration error:\n[api] tls_cert and tls_key are required (or run with --dev)\n");
        goto out;
    }
    if (app.print_config) {
        pd_config_dump(app.cfg, stdout);
        rc = 0;
        goto out;
    }
    char admin_err[512];
    if (pd_edge_admin_check(&app.admin, admin_err, sizeof(admin_err)) != 0 ||
        pd_vault_config_check(&app.vault, admin_err, sizeof(admin_err)) != 0 ||
        pd_alarms_config_check(&app.alarms_cfg, admin_err, sizeof(admin_err)) != 0 ||
        pd_cluster_config_check(&app.cluster_cfg, admin_err, sizeof(admin_err)) != 0) {
        fprintf(stderr, "payd: configuration error:\n%s\n", admin_err);
        goto out;
    }
    if (app.check_only) {
        char err[512];
        SSL_CTX *ctx;
        if (pd_tls_server_ctx(&ctx, app.api.tls_cert, app.api.tls_key, app.api.tls_client_ca, err, sizeof(err)) != 0) {
            fprintf(stderr, "payd: configuration error:\n%s\n", err);
            goto out;
        }
        SSL_CTX_free(ctx);
        pd_waf_t *waf = NULL;
        if (pd_waf_new(&waf, &app.waf_cfg, err, sizeof(err)) != 0) {
            fprintf(stderr, "payd: configuration error:\n[waf] %s\n", err);
            goto out;
        }
        pd_waf_free(waf);
        printf("configuration ok\n");
        rc = 0;
        goto out;
    }
    rc = 1;
    if (apply_logging(&app) != 0)
        goto out;
    int r = run(&app);
    if (r != 0)
        pd_log_error("payd failed to start", PD_LERR(r));
    else
        rc = 0;
out:
    /* the loops have stopped; nothing reads the configuration any more */
    pd_sdnotify_watchdog_stop(app.watchdog);
    pd_sdnotify_close(&app.notify);
    pd_config_free(app.cfg);
    return rc;
}
