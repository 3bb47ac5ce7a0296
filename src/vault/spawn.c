/* payd's side of the vault: spawn the child or connect to the socket. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "payd/argv.h"
#include "payd/log.h"
#include "payd/privsep.h"
#include "payd/vault_files.h"
#include "payd/time.h"
#include "payd/vault_spawn.h"
#include "vault/monitor.h"

#define C(f) offsetof(pd_vault_config_t, f)
static const char *const modes[] = {"child", "socket", "tcp", NULL};
static const pd_config_key_t keys[] = {
    {"mode", PD_CT_ENUM, C(mode), "child", .choices = modes,
     .help = "child: payd starts payd-vault itself; socket: a standalone payd-vault's Unix socket; "
             "tcp: a payd-vault on another host, over mutual TLS"},
    {"dir", PD_CT_PATH, C(dir), "", .help = "child mode: the vault's state directory (default DATA_DIR/vault)"},
    {"binary", PD_CT_PATH, C(binary), "", .help = "child mode: the payd-vault program (default: next to payd)"},
    {"user", PD_CT_STR, C(user), "payd-vault",
     .help = "child mode, started as root: the user the vault runs as (never nobody, never [server] user)"},
    {"passphrase_file", PD_CT_PATH, C(passphrase_file), "",
     .help = "child mode: file with the unseal passphrase (else PAYD_VAULT_PASSPHRASE or a systemd credential)"},
    {"socket", PD_CT_PATH, C(socket), "", .help = "socket mode: path of the vault's Unix socket"},
    {"api_credential", PD_CT_PATH, C(api_credential), "", .help = "socket/tcp mode: credential file of principal api"},
    {"processor_credential", PD_CT_PATH, C(processor_credential), "",
     .help = "socket/tcp mode: credential file of principal processor"},
    {"address", PD_CT_STR, C(address), "",
     .help = "tcp mode: the vault's host:port, or a comma-separated list of instances on one database (failover)"},
    {"tls_ca", PD_CT_PATH, C(tls_ca), "", .help = "tcp mode: CA of the vault's certificate"},
    {"api_tls_cert", PD_CT_PATH, C(api_tls_cert), "", .help = "tcp mode: client certificate of principal api (CN api)"},
    {"api_tls_key", PD_CT_PATH, C(api_tls_key), "", .help = "tcp mode: its private key"},
    {"processor_tls_cert", PD_CT_PATH, C(processor_tls_cert), "",
     .help = "tcp mode: client certificate of principal processor (CN processor)"},
    {"processor_tls_key", PD_CT_PATH, C(processor_tls_key), "", .help = "tcp mode: its private key"},
    {"timeout_ms", PD_CT_MS, C(timeout_ms), "5s", 100, 600000, .help = "deadline of one vault request"},
    {"metrics_listen", PD_CT_ADDR, C(metrics_listen), "",
     .help = "child mode: loopback host:port where the vault serves its own GET /metrics (\"\": none)"},
};
#undef C

int
pd_vault_config_register(pd_config_t *cfg, pd_vault_config_t *c)
{
    return pd_config_add(cfg, "vault", keys, sizeof(keys) / sizeof(keys[0]), c);
}

int
pd_vault_config_check(const pd_vault_config_t *c, char *err, size_t cap)
{
    char host[256];
    uint16_t port;
    uint8_t a[16];
    if (c->metrics_listen == NULL || c->metrics_listen[0] == '\0')
        return 0;
    bool loopback = pd_config_parse_addr(c->metrics_listen, host, sizeof(host), &port) == 0 &&
                    ((inet_pton(AF_INET, host, a) == 1 && a[0] == 127) ||
                     (inet_pton(AF_INET6, host, a) == 1 && memcmp(a, in6addr_loopback.s6_addr, 16) == 0));
    if (!loopback) {
        snprintf(err, cap, "[vault] metrics_listen = %s: the vault's metrics are served on a numeric loopback "
                           "address only (127.0.0.1:PORT or [::1]:PORT)", c->metrics_listen);
        return PD_ERR_CONFIG;
    }
    return 0;
}

static void
vault_dir(const pd_vault_config_t *c, const char *data_dir, char *out, size_t cap)
{
    if (c->dir[0] != '\0')
        snprintf(out, cap, "%s", c->dir);
    else
        snprintf(out, cap, "%s/vault", data_dir);
}

int
pd_vault_link_prepare(pd_vault_link_t *l, const pd_vault_config_t *c, const char *data_dir, bool dev)
{
    char dir[4200], bin[4200], sock[4300], self[4096];
    memset(l, 0, sizeof(*l));
    l->monitor.fd = -1;
    pthread_mutex_init(&l->mu, NULL);
    l->prepared = true;
    if (c->mode != PD_VAULT_CHILD)
        return 0;
    vault_dir(c, data_dir, dir, sizeof(dir));
    if (c->binary[0] != '\0') {
        snprintf(bin, sizeof(bin), "%s", c->binary);
    } else {
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
            return -errno;
        self[n] = '\0';
        *strrchr(self, '/') = '\0';
        snprintf(bin, sizeof(bin), "%s/payd-vault", self);
    }
    snprintf(sock, sizeof(sock), "%s/vault.sock", dir);
    /* the command line is fixed here, in the parent's copy of this memory: payd can
     * later ask for a vault, not say which */
    const char *argv[24];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--data-dir";
    argv[n++] = dir;
    argv[n++] = "--fd";
    argv[n++] = "3:api";
    argv[n++] = "--fd";
    argv[n++] = "4:processor";
    argv[n++] = "--socket"; /* for payctl (principal admin) */
    argv[n++] = sock;
    if (dev)
        argv[n++] = "--dev";
    if (c->passphrase_file[0] != '\0') {
        argv[n++] = "--passphrase-file";
        argv[n++] = c->passphrase_file;
    }
    if (c->metrics_listen[0] != '\0') {
        argv[n++] = "--metrics";
        argv[n++] = c->metrics_listen;
    }
    char wal[4300];
    if (c->wal_archive) {
        snprintf(wal, sizeof(wal), "%s/wal-archive", dir);
        argv[n++] = "--wal-archive";
        argv[n++] = wal;
    }
    bool root = geteuid() == 0;
    if (root && c->user[0] != '\0') {
        argv[n++] = "--user";
        argv[n++] = c->user;
    }
    argv[n] = NULL;
    /* a vault that drops to its own user must be able to reach its directory
     * through payd's (0711: traverse, not list) */
    const char *traverse = root && c->user[0] != '\0' && c->dir[0] == '\0' ? data_dir : NULL;
    char **av = pd_argv_dup(argv);
    if (av == NULL)
        return PD_ERR_NOMEM;
    int r = pd_vault_monitor_start(&l->monitor, av, traverse); /* the monitor keeps its own copy */
    pd_argv_free(av);
    return r;
}

static int
check_one(const char *path, uid_t owner, mode_t max, char *err, size_t errcap)
{
    int r = pd_privsep_check_mode(path, owner, max, err, errcap);
    return r == -ENOENT ? 0 : r;
}

int
pd_vault_link_check_files(const pd_vault_config_t *c, const char *data_dir, uid_t vault_uid, char *err,
                          size_t errcap)
{
    static const char *const principals[] = {"api", "processor", "admin", "rotation"};
    char dir[4200], path[4400];
    int r = 0;
    if (c->mode == PD_VAULT_CHILD) {
        vault_dir(c, data_dir, dir, sizeof(dir));
        snprintf(path, sizeof(path), "%s/credentials", dir);
        if ((r = check_one(path, vault_uid, PD_VAULT_DIR_MODE, err, errcap)) != 0)
            return r;
        for (size_t i = 0; i < sizeof(principals) / sizeof(principals[0]); i++) {
            snprintf(path, sizeof(path), "%s/credentials/%s", dir, principals[i]);
            if ((r = check_one(path, vault_uid, pd_vault_cred_max(principals[i]), err, errcap)) != 0)
                return r;
        }
        snprintf(path, sizeof(path), "%s/vault.sock", dir);
        return check_one(path, vault_uid, PD_VAULT_SOCKET_MODE, err, errcap);
    }
    /* the operator's files: payd reads them after it dropped root, as [server] user
     * (the owner or, through the vault's group, a reader) */
    const char *const creds[] = {c->api_credential, c->processor_credential,
                                 c->mode == PD_VAULT_TCP ? c->api_tls_key : "",
                                 c->mode == PD_VAULT_TCP ? c->processor_tls_key : ""};
    for (size_t i = 0; i < sizeof(creds) / sizeof(creds[0]); i++)
        if (creds[i][0] != '\0' && (r = check_one(creds[i], (uid_t)-1, PD_VAULT_CRED_PAYD_MODE, err, errcap)) != 0)
            return r;
    if (c->mode == PD_VAULT_SOCKET && c->socket[0] != '\0')
        r = check_one(c->socket, (uid_t)-1, PD_VAULT_SOCKET_MODE, err, errcap);
    return r;
}

/* a vault from the privileged parent: the clients' new connections */
static int
spawn_child(pd_vault_link_t *l, int fds[2])
{
    char dir[4200];
    pid_t pid = 0;
    int r = pd_vault_monitor_spawn(&l->monitor, fds, &pid);
    if (r != 0)
        return r;
    l->child = pid;
    vault_dir(l->cfg, l->data_dir, dir, sizeof(dir));
    pd_log_info("vault started as a child", PD_LI("pid", pid), PD_LS("dir", dir));
    return 0;
}

static int
read_credential(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    bool ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return ok && out[0] != '\0' ? 0 : PD_ERR_INVALID;
}

/* a rotated pepper arrives asynchronously: the client thread must not block on itself */
static void
pepper_fetched(void *arg, int rc, const pd_vault_reply_t *r)
{
    pd_vault_link_t *l = arg;
    if (rc != 0 || r->data.len == 0 || r->data.len > sizeof(l->pepper)) {
        pd_log_error("cannot load the rotated API-key pepper", PD_LERR(rc));
        return;
    }
    pthread_mutex_lock(&l->mu);
    OPENSSL_cleanse(l->pepper, sizeof(l->pepper));
    memcpy(l->pepper, r->data.p, r->data.len);
    l->pepper_len = r->data.len;
    pthread_mutex_unlock(&l->mu);
    pd_log_info("API-key pepper reloaded after rotation");
}

static void
secret_changed(void *arg, const char *name)
{
    pd_vault_link_t *l = arg;
    pd_vault_link_secret_changed(l, name);
    if (strcmp(name, "payd/api-key-pepper") == 0 &&
        pd_vault_secret_get(l->api, "payd/api-key-pepper", pepper_fetched, l) != 0)
        pd_log_error("cannot request the rotated API-key pepper");
}

int
pd_vault_link_pepper(pd_vault_link_t *l, uint8_t *out, size_t cap, size_t *len)
{
    pthread_mutex_lock(&l->mu);
    int r = l->pepper_len <= cap ? 0 : PD_ERR_TOOBIG;
    if (r == 0) {
        memcpy(out, l->pepper, l->pepper_len);
        *len = l->pepper_len;
    }
    pthread_mutex_unlock(&l->mu);
    return r;
}

/* the first request also proves the vault is up and unsealed */
static int
load_pepper(pd_vault_link_t *l)
{
    pd_vault_reply_t r;
    int rc = pd_vault_secret_get_sync(l->api, "payd/api-key-pepper", &r);
    if (rc == 0 && (r.data.len == 0 || r.data.len > sizeof(l->pepper)))
        rc = PD_ERR_INVALID;
    if (rc == 0) {
        memcpy(l->pepper, r.data.p, r.data.len);
        l->pepper_len = r.data.len;
        pd_vault_client_on_secret_change(l->api, secret_changed, l);
    } else {
        pd_log_error("the vault did not answer (see its messages above)", PD_LERR(rc));
    }
    pd_vault_reply_free(&r);
    return rc;
}

/* sleeps up to ms, returning early when the link closes */
static void
nap(pd_vault_link_t *l, unsigned ms)
{
    for (unsigned t = 0; t < ms && !atomic_load(&l->closing); t += 50)
        usleep(50000);
}

/*
 * Restarts a child vault that died (crash, kill -9, OOM): notices its exit (polling,
 * so that it also notices the link closing), spawns a new one with fresh socketpairs
 * and gives them to the clients. Requests in flight at the moment of the crash fail
 * (PD_ERR_CLOSED); the readiness probe is false until the new child answers.
 * Restarts back off from 0.5 s to 30 s while they keep failing. pd_vault_link_close
 * joins this thread before it frees the clients.
 */
static void *
supervise(void *arg)
{
    pd_vault_link_t *l = arg;
    unsigned backoff = 500;
    uint64_t started = pd_mono_ms();
    pthread_setname_np(pthread_self(), "payd-vaultsup");
    while (!atomic_load(&l->closing)) {
        int st = 0;
        pid_t p = 0;
        /* 100 ms at a time: it also notices the link closing */
        int w = pd_vault_monitor_wait(&l->monitor, 100, &p, &st);
        if (w == 0)
            continue;
        if (w < 0) {
            pd_log_error("the vault's privileged parent is gone: a vault that exits cannot be restarted",
                         PD_LERR(w));
            break;
        }
        pd_log_error("vault child exited; restarting it", PD_LI("pid", p),
                     PD_LI("exit_status", WIFEXITED(st) ? WEXITSTATUS(st) : -1),
                     PD_LI("signal", WIFSIGNALED(st) ? WTERMSIG(st) : 0));
        l->child = 0;
        if (pd_mono_ms() - started > 60000)
            backoff = 500; /* it had been running fine */
        for (;;) {
            nap(l, backoff);
            backoff = backoff < 15000 ? backoff * 2 : 30000;
            if (atomic_load(&l->closing))
                return NULL;
            int fds[2];
            int r = spawn_child(l, fds);
            started = pd_mono_ms();
            if (r == 0) {
                pd_vault_client_adopt_fd(l->api, fds[0]);
                pd_vault_client_adopt_fd(l->processor, fds[1]);
                break;
            }
            pd_log_error("cannot restart the vault child", PD_LERR(r));
            if (r == PD_ERR_CLOSED)
                return NULL; /* the parent is gone */
        }
    }
    return NULL;
}

int
pd_vault_link_open(pd_vault_link_t *l, const pd_vault_config_t *c, const char *data_dir, bool dev)
{
    int r, fds[2] = {-1, -1};
    if (!l->prepared && (r = pd_vault_link_prepare(l, c, data_dir, dev)) != 0)
        return r;
    l->cfg = c;
    l->data_dir = data_dir;
    l->dev = dev;
    if (c->mode == PD_VAULT_CHILD) {
        if ((r = spawn_child(l, fds)) != 0) {
            pd_vault_link_close(l);
            return r;
        }
        pd_vault_client_opts_t oa = {.fd = fds[0], .timeout_ms = c->timeout_ms};
        pd_vault_client_opts_t op = {.fd = fds[1], .timeout_ms = c->timeout_ms};
        if ((r = pd_vault_client_new(&l->api, &oa)) != 0 || (r = pd_vault_client_new(&l->processor, &op)) != 0 ||
            (r = load_pepper(l)) != 0) {
            pd_vault_link_close(l);
            return r;
        }
        if (pthread_create(&l->supervisor, NULL, supervise, l) != 0) {
            pd_vault_link_close(l);
            return PD_ERR_INTERNAL;
        }
        l->supervised = true;
        return 0;
    }
    char cred[256];
    bool tcp = c->mode == PD_VAULT_TCP;
    if ((tcp ? c->address[0] == '\0' || c->tls_ca[0] == '\0' || c->api_tls_cert[0] == '\0' ||
                   c->processor_tls_cert[0] == '\0'
             : c->socket[0] == '\0') ||
        (r = read_credential(c->api_credential, cred, sizeof(cred))) != 0) {
        pd_log_error(tcp ? "vault tcp mode needs [vault] address, tls_ca, api_tls_cert/key, processor_tls_cert/key "
                           "and readable credential files"
                         : "vault socket mode needs [vault] socket and readable credential files",
                     PD_LS("api_credential", c->api_credential));
        return PD_ERR_CONFIG;
    }
    char addrs[8][300];
    int naddrs = 0;
    if (tcp && pd_vault_parse_addresses(c->address, addrs, 8, &naddrs) != 0) {
        pd_log_error("[vault] address: expected host:port or a comma-separated list of up to 8 host:port",
                     PD_LS("address", c->address));
        return PD_ERR_CONFIG;
    }
    pd_vault_client_opts_t oa = {.fd = -1, .socket_path = tcp ? NULL : c->socket, .tcp_address = tcp ? c->address : NULL,
                                 .tls_cert = c->api_tls_cert, .tls_key = c->api_tls_key, .tls_ca = c->tls_ca,
                                 .principal = "api", .credential = cred, .timeout_ms = c->timeout_ms};
    r = pd_vault_client_new(&l->api, &oa);
    OPENSSL_cleanse(cred, sizeof(cred));
    if (r == 0 && (r = read_credential(c->processor_credential, cred, sizeof(cred))) == 0) {
        pd_vault_client_opts_t op = oa;
        op.tls_cert = c->processor_tls_cert;
        op.tls_key = c->processor_tls_key;
        op.principal = "processor";
        op.credential = cred;
        r = pd_vault_client_new(&l->processor, &op);
        OPENSSL_cleanse(cred, sizeof(cred));
    }
    if (r == 0)
        r = load_pepper(l);
    if (r != 0)
        pd_vault_link_close(l);
    return r;
}

void
pd_vault_link_close(pd_vault_link_t *l)
{
    atomic_store(&l->closing, true);
    if (l->supervised) {
        pthread_join(l->supervisor, NULL); /* within 100 ms; no restart after this */
        l->supervised = false;
    }
    OPENSSL_cleanse(l->pepper, sizeof(l->pepper));
    l->pepper_len = 0;
    pd_vault_client_free(l->api);
    pd_vault_client_free(l->processor);
    l->api = l->processor = NULL;
    if (l->monitor.fd >= 0) {
        /* its descriptors are closed: the child finishes its batch and exits, and the
         * parent says so (within 3 s; then the parent ends it) */
        int st;
        pid_t p;
        for (int i = 0; l->child > 0 && i < 30; i++)
            if (pd_vault_monitor_wait(&l->monitor, 100, &p, &st) != 0)
                break;
        pd_vault_monitor_stop(&l->monitor);
        l->child = 0;
    }
}
