/*
 * payd-vault: the cardholder-data core as its own hardened process.
 *
 *   payd-vault [--config FILE] --data-dir DIR [--socket PATH] [--fd N:PRINCIPAL]... [--dev]
 *              [--init] [--passphrase-file FILE] [--share-file FILE]... [--user NAME]
 *              [--pkcs11-module LIB --pkcs11-token LABEL [--pkcs11-key LABEL] [--pkcs11-pin-file F]]
 *              [--listen HOST:PORT --tls-cert F --tls-key F --tls-client-ca F]   (mutual TLS)
 *              [--store-url URL [--store-password-file F]]   (tables on PostgreSQL)
 *              [--metrics 127.0.0.1:PORT]   (its own GET /metrics, plain HTTP on loopback)
 *   payd-vault --data-dir DIR --init-shares N --threshold T     (split knowledge)
 *   payd-vault --unwrap-backup-key --data-dir DIR [--passphrase-file F | --share-file F...]
 *              (restore: the wrapped backup key on stdin, the data key to stdout, docs/backup.md)
 *
 * A configuration file has one [vault] section with the same settings as the long
 * options (data_dir, socket, user, passphrase_file, pkcs11_module, ...); options given
 * on the command line override it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "payd/wal_archive.h"
#include "payd/config.h"
#include "payd/lockfile.h"
#include "payd/log.h"
#include "payd/privsep.h"
#include "payd/sdnotify.h"
#include "payd/vault_files.h"
#include "vault/backup.h"
#include "vault/internal.h" /* pd_secmem_region */
#include "vault/metrics.h"
#include "vault/privs.h"
#include "vault/server.h"
#include "vault/transport.h"
#include "vault/unseal.h"

#define MAX_FDS 8
#define MAX_SHARES 16

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: payd-vault [--config FILE] --data-dir DIR [--socket PATH] [--fd N:PRINCIPAL]... [--dev]\n"
               "                  [--init] [--passphrase-file FILE] [--share-file FILE]... [--user NAME]\n"
               "                  [--pkcs11-module LIB --pkcs11-token LABEL [--pkcs11-key LABEL]\n"
               "                   [--pkcs11-pin-file FILE]] [--log-level LEVEL]\n"
               "                  [--listen HOST:PORT --tls-cert F --tls-key F --tls-client-ca F]\n"
               "                  [--store-url URL [--store-password-file FILE]]\n"
               "                  [--metrics 127.0.0.1:PORT] [--wal-archive DIR]\n"
               "       payd-vault --data-dir DIR --init-shares N --threshold T\n"
               "       payd-vault --unwrap-backup-key --data-dir DIR [--passphrase-file F | --share-file F...]\n");
}

/* the settings a configuration file may hold: [vault] */
typedef struct {
    char *data_dir, *socket, *user, *passphrase_file;
    char *pkcs11_module, *pkcs11_token, *pkcs11_key, *pkcs11_pin_file;
    char *listen, *tls_cert, *tls_key, *tls_client_ca;
    char *store_url, *store_password_file;
    char *metrics_listen;
    char *wal_archive;
    int log_level;
} daemon_config_t;

#define C(f) offsetof(daemon_config_t, f)
static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
static const pd_config_key_t daemon_keys[] = {
    {"data_dir", PD_CT_PATH, C(data_dir), "", .help = "state directory (root key file, vault.db)"},
    {"socket", PD_CT_PATH, C(socket), "", .help = "Unix socket to listen on"},
    {"user", PD_CT_STR, C(user), "", .help = "when started as root, the user to run as"},
    {"passphrase_file", PD_CT_PATH, C(passphrase_file), "", .help = "file holding the unseal passphrase"},
    {"pkcs11_module", PD_CT_PATH, C(pkcs11_module), "", .help = "PKCS#11 library holding the root key's wrapping key"},
    {"pkcs11_token", PD_CT_STR, C(pkcs11_token), "", .help = "label of the PKCS#11 token"},
    {"pkcs11_key", PD_CT_STR, C(pkcs11_key), "payd-root", .help = "label of the wrapping key in the token"},
    {"pkcs11_pin_file", PD_CT_PATH, C(pkcs11_pin_file), "", .help = "file holding the token's user PIN"},
    {"log_level", PD_CT_ENUM, C(log_level), "info", .choices = levels, .help = "least severe level logged"},
    {"listen", PD_CT_ADDR, C(listen), "", .help = "host:port of a mutual-TLS listener for payd on other hosts"},
    {"tls_cert", PD_CT_PATH, C(tls_cert), "", .help = "the listener's certificate (PEM, with chain)"},
    {"tls_key", PD_CT_PATH, C(tls_key), "", .help = "the listener's private key"},
    {"tls_client_ca", PD_CT_PATH, C(tls_client_ca), "", .help = "CA of the clients' certificates (CN = principal)"},
    {"store_url", PD_CT_STR, C(store_url), "",
     .help = "PostgreSQL URL of the vault's own database (instances on one database share cards and keys); "
             "empty: DIR/vault.db"},
    {"store_password_file", PD_CT_PATH, C(store_password_file), "",
     .help = "file holding the password of store_url's role (overrides a password in the URL)"},
    {"metrics_listen", PD_CT_ADDR, C(metrics_listen), "",
     .help = "loopback host:port where the vault serves GET /metrics (plain HTTP/1.0; \"\": none)"},
    {"wal_archive", PD_CT_PATH, C(wal_archive), "",
     .help = "directory where vault.db's WAL is archived for restores to a point in time (payd's [backup] "
             "wal_archive; \"\": none)"},
};
#undef C

static const char *
opt(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/*
 * [vault] wal_archive (payd's [backup] wal_archive, docs/backup.md "Point in time"):
 * vault.db's checkpoint thread archives its WAL as payd's does for payd.db, each
 * segment's data key wrapped by the root key here, in the vault (a copy of the root in
 * locked memory, for that thread).
 */
static uint8_t *g_wal_root;

static int
wal_key(void *arg, uint8_t key[PD_WAL_KEY_LEN], uint8_t wrapped[PD_WAL_WRAPPED_LEN])
{
    (void)arg;
    return pd_vault_backup_wrap(g_wal_root, key, wrapped);
}

static int
wal_archive_setup(const char *dir, const char *db, const uint8_t root[PD_KEY_LEN])
{
    bool locked = false;
    if ((g_wal_root = pd_secmem_region(PD_KEY_LEN, &locked)) == NULL)
        return PD_ERR_NOMEM;
    memcpy(g_wal_root, root, PD_KEY_LEN);
    pd_wal_archive_opts_t o = {.dir = dir, .keep_ms = 36LL * 86400000, /* the longest [backup] keep_days + 1 */
                               .segment_ms = 3600000, .segment_max = 64u << 20, .key = wal_key};
    pd_sqlite_wal_archive(PD_WAL_ARCHIVE_ON, &o);
    pd_sqlite_wal_archive_bind(db);
    return 0;
}

/* a whole number option from min to max; exits the start (code 2) with a message otherwise */
static bool
number_opt(const char *name, const char *value, int64_t min, int64_t max, int *out)
{
    int64_t n;
    if (pd_config_parse_int(value, min, max, &n) != 0) {
        fprintf(stderr, "payd-vault: %s expects a whole number from %lld to %lld, not \"%s\"\n", name, (long long)min,
                (long long)max, value);
        return false;
    }
    *out = (int)n;
    return true;
}

static int open_failed(int r, const pd_vault_store_t *st, const char *db);

static atomic_bool leaving; /* the loop has returned: the watchdog's probe has nobody to answer it */

/*
 * The watchdog's liveness check (payd/sdnotify.h): a connection to the vault's own
 * socket that says nothing and closes its side at once. Only the vault's loop can
 * answer it, by accepting the peer, reading its end of file and closing it (no log,
 * no audit record: an unauthenticated peer that leaves is simply dropped), so an end
 * of file within max_age_ms means the loop turned. arg: the socket's path.
 */
static bool
loop_answers(void *arg, uint64_t max_age_ms, char *why, size_t cap)
{
    const char *path = arg;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    bool ok = false;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, cap, "cannot make a socket to probe the vault's loop: %s", strerror(errno));
        return false;
    }
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        /* EAGAIN: the listen backlog is full, nobody accepts */
        snprintf(why, cap, "the vault's socket %s refuses a connection: %s", path, strerror(errno));
        goto out;
    }
    (void)shutdown(fd, SHUT_WR);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, (int)max_age_ms);
    char c;
    if (n == 1 && read(fd, &c, 1) <= 0)
        ok = true; /* end of file (or reset): the loop accepted, read and closed it */
    else
        snprintf(why, cap, "the vault's loop did not answer on %s within %llu ms", path, (unsigned long long)max_age_ms);
out:
    close(fd);
    return ok || atomic_load(&leaving); /* the loop has ended on purpose */
}

static int
init_shares(const char *dir, int n, int t, pd_vault_store_t *st)
{
    uint8_t root[PD_KEY_LEN];
    char shares[MAX_SHARES][PD_SHARE_TEXT], db[4200];
    pd_vault_state_t *v = NULL;
    int r;
    snprintf(db, sizeof(db), "%s/vault.db", dir);
    st->sqlite_path = db;
    if (st->pg_url == NULL && access(db, F_OK) == 0) {
        fprintf(stderr, "payd-vault: %s already exists; shares are made when a vault is created\n", db);
        return 2;
    }
    if (n < 2 || n > MAX_SHARES || t < 2 || t > n) {
        fprintf(stderr, "payd-vault: need 2 <= threshold <= shares <= %d\n", MAX_SHARES);
        return 2;
    }
    if (RAND_priv_bytes(root, sizeof(root)) != 1 || (r = pd_shamir_split(root, n, t, shares)) != 0) {
        fprintf(stderr, "payd-vault: cannot split the root key\n");
        return 1;
    }
    if ((r = pd_vault_state_open_store(&v, st, root)) != 0) {
        OPENSSL_cleanse(root, sizeof(root));
        return open_failed(r, st, db);
    }
    pd_vault_state_close(v);
    OPENSSL_cleanse(root, sizeof(root));
    /* the only copy of the root key now is these shares */
    for (int i = 0; i < n; i++)
        printf("%s\n", shares[i]);
    OPENSSL_cleanse(shares, sizeof(shares));
    fflush(stdout);
    return 0;
}

/* reads one share per file into text (ptrs point at them); false after a message */
static bool
read_shares(const char *const *files, int n, char text[][PD_SHARE_TEXT], const char **ptrs)
{
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(files[i], "re");
        if (f == NULL || fgets(text[i], PD_SHARE_TEXT, f) == NULL) {
            fprintf(stderr, "payd-vault: cannot read share file %s\n", files[i]);
            if (f)
                fclose(f);
            return false;
        }
        fclose(f);
        text[i][strcspn(text[i], "\r\n")] = '\0';
        ptrs[i] = text[i];
    }
    return true;
}

/*
 * --unwrap-backup-key (payctl backup verify/restore): unseals DIR's root key as a start
 * would (DIR/root.key with the passphrase, or the shares), reads wrapped backup keys
 * (1 to UNWRAP_MAX of PD_BACKUP_WRAPPED_LEN bytes each: the archive's, then those of the
 * WAL archive's segments a restore --until replays) on stdin, writes their 32-byte data
 * keys to stdout in the same order and exits. Nothing else is opened (no vault.db, no
 * lock, no socket); stdout must not be a terminal. Exit codes: 0, 2 (usage, bad input),
 * 3 (the passphrase or shares do not open the key file, or a wrapped key is not this
 * root key's), 1 (other).
 */
#define UNWRAP_MAX 4097
static int
unwrap_backup_key(pd_unseal_opts_t *uo, const char *dir, const char *const *share_files, int nshares)
{
    char share_text[MAX_SHARES][PD_SHARE_TEXT], err[4400];
    const char *share_ptrs[MAX_SHARES];
    static uint8_t wrapped[UNWRAP_MAX * PD_BACKUP_WRAPPED_LEN + 1];
    uint8_t root[PD_KEY_LEN], key[PD_BACKUP_KEY_LEN];
    size_t n = 0;
    bool created = false;
    int rc = 1;
    if (isatty(STDOUT_FILENO)) {
        fprintf(stderr, "payd-vault: --unwrap-backup-key writes a key: its output must be a pipe, not a terminal\n");
        return 2;
    }
    while (n < sizeof(wrapped)) {
        ssize_t k = read(STDIN_FILENO, wrapped + n, sizeof(wrapped) - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    if (n == 0 || n % PD_BACKUP_WRAPPED_LEN != 0 || n > UNWRAP_MAX * PD_BACKUP_WRAPPED_LEN) {
        fprintf(stderr, "payd-vault: --unwrap-backup-key expects 1 to %d wrapped keys of %d bytes on stdin, got %s%zu "
                        "bytes\n",
                UNWRAP_MAX, PD_BACKUP_WRAPPED_LEN, n == sizeof(wrapped) ? "more than " : "", n);
        return 2;
    }
    if (!read_shares(share_files, nshares, share_text, share_ptrs))
        return 2;
    uo->dir = dir;
    uo->shares = share_ptrs;
    uo->nshares = nshares;
    uo->dev = false; /* never make a passphrase or a key here */
    uo->init = false;
    int r = pd_unseal(uo, root, &created, err, sizeof(err));
    OPENSSL_cleanse(share_text, sizeof(share_text));
    if (r != 0) {
        fprintf(stderr, "payd-vault: cannot unseal: %s\n", err);
        return r == PD_ERR_AUTH ? 3 : 1;
    }
    for (size_t i = 0; i < n / PD_BACKUP_WRAPPED_LEN; i++) {
        pd_view_t w = {wrapped + i * PD_BACKUP_WRAPPED_LEN, PD_BACKUP_WRAPPED_LEN};
        if ((r = pd_vault_backup_unwrap(root, w, key)) != 0) {
            fprintf(stderr, "payd-vault: %s key was not wrapped by this root key (another vault's archive, or "
                            "shares of another vault)\n",
                    i == 0 ? "the backup's" : "a WAL archive segment's");
            rc = 3;
            goto out;
        }
        for (size_t off = 0; off < sizeof(key);) {
            ssize_t k = write(STDOUT_FILENO, key + off, sizeof(key) - off);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                fprintf(stderr, "payd-vault: cannot write the key to stdout: %s\n", strerror(errno));
                goto out;
            }
            off += (size_t)k;
        }
    }
    rc = 0;
out:
    OPENSSL_cleanse(root, sizeof(root));
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

/* reads the store's password (first line) while still root */
static bool
read_password(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "re");
    bool ok = f != NULL && fgets(out, (int)cap, f) != NULL;
    if (f != NULL)
        fclose(f);
    if (ok)
        out[strcspn(out, "\r\n")] = '\0';
    return ok && out[0] != '\0';
}

/* One line naming the setting and why; the exit code (docs/vault.md): 3 when a secret
 * was refused (the root key, the store's password), 1 when the store cannot be reached */
static int
open_failed(int r, const pd_vault_store_t *st, const char *db)
{
    if (st->pg_url != NULL && st->why[0] != '\0') {
        /* the reason is libpq's (it names the host, never the password); the URL is not
         * printed, as it may hold the password */
        fprintf(stderr, "payd-vault: [vault] store_url: %s: %s\n",
                r == PD_ERR_AUTH ? "the database refused the password (store_url or store_password_file)"
                                 : "cannot use the vault's database",
                st->why);
    } else {
        fprintf(stderr, "payd-vault: cannot open %s: %s\n", st->pg_url != NULL ? "the vault's database (store_url)" : db,
                r == PD_ERR_AUTH ? "the root key does not belong to this vault (wrong passphrase or shares)"
                                 : pd_strerror(r));
    }
    return r == PD_ERR_AUTH ? 3 : 1;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data-dir", required_argument, NULL, 'd'},     {"socket", required_argument, NULL, 's'},
        {"fd", required_argument, NULL, 'f'},           {"dev", no_argument, NULL, 'D'},
        {"init", no_argument, NULL, 'i'},               {"passphrase-file", required_argument, NULL, 'p'},
        {"share-file", required_argument, NULL, 'S'},   {"user", required_argument, NULL, 'u'},
        {"init-shares", required_argument, NULL, 'n'},  {"threshold", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'l'},    {"help", no_argument, NULL, 'h'},
        {"config", required_argument, NULL, 'c'},       {"pkcs11-module", required_argument, NULL, 'M'},
        {"pkcs11-token", required_argument, NULL, 'T'}, {"pkcs11-key", required_argument, NULL, 'K'},
        {"pkcs11-pin-file", required_argument, NULL, 'P'}, {"listen", required_argument, NULL, 'L'},
        {"tls-cert", required_argument, NULL, 'C'},     {"tls-key", required_argument, NULL, 'k'},
        {"tls-client-ca", required_argument, NULL, 'A'}, {"store-url", required_argument, NULL, 'U'},
        {"store-password-file", required_argument, NULL, 'W'},
        {"metrics", required_argument, NULL, 'm'},
        {"wal-archive", required_argument, NULL, 'w'},
        {"unwrap-backup-key", no_argument, NULL, 'B'},
        {NULL, 0, NULL, 0},
    };
    /* option letter -> configuration key */
    static const struct {
        int c;
        const char *key;
    } to_key[] = {{'d', "data_dir"},      {'s', "socket"},        {'u', "user"},         {'p', "passphrase_file"},
                  {'M', "pkcs11_module"}, {'T', "pkcs11_token"},  {'K', "pkcs11_key"},   {'P', "pkcs11_pin_file"},
                  {'l', "log_level"},     {'L', "listen"},        {'C', "tls_cert"},     {'k', "tls_key"},
                  {'A', "tls_client_ca"}, {'U', "store_url"},   {'W', "store_password_file"},
                  {'m', "metrics_listen"}, {'w', "wal_archive"}};
    static daemon_config_t dc; /* static: reachable until exit, also on early returns */
    static pd_config_t *cfg;
    const char *dir = NULL, *sock = NULL, *user = NULL;
    int fds[MAX_FDS];
    unsigned principals[MAX_FDS];
    int nfds = 0, nshare_files = 0, c, init_n = 0, init_t = 0, r;
    bool unwrap_key = false;
    const char *share_files[MAX_SHARES];
    pd_unseal_opts_t uo = {0};

    char err[4400], db[4200];
    umask(077); /* the key file, the database and the journal: the vault's user's alone */
    /* before anything is read: no core file and no ptrace can show a secret */
    if (pd_vault_harden(err, sizeof(err)) != 0) {
        fprintf(stderr, "payd-vault: refusing to start: %s\n", err);
        return 1;
    }
    /* the service manager's variables leave the environment before anything reads a file */
    static pd_sdnotify_t notify;
    if (pd_sdnotify_open(&notify, err, sizeof(err)) != 0) {
        fprintf(stderr, "payd-vault: environment error: %s\n", err);
        return 2;
    }
    if (pd_config_new(&cfg) != 0 || pd_config_add(cfg, "vault", daemon_keys, sizeof(daemon_keys) / sizeof(daemon_keys[0]), &dc) != 0)
        return 1;
    /* the file first, so that options override it */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'c' && pd_config_load_file(cfg, optarg) != 0) {
            fprintf(stderr, "payd-vault: configuration error:\n%s\n", pd_config_error(cfg));
            return 2;
        }
    }
    opterr = 1;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        bool mapped = false;
        for (size_t k = 0; k < sizeof(to_key) / sizeof(to_key[0]); k++) {
            if (to_key[k].c == c) {
                char origin[32];
                snprintf(origin, sizeof(origin), "--%s", to_key[k].key);
                if (pd_config_set(cfg, "vault", to_key[k].key, optarg, origin) != 0) {
                    fprintf(stderr, "payd-vault: %s\n", pd_config_error(cfg));
                    return 2;
                }
                mapped = true;
            }
        }
        if (mapped)
            continue;
        switch (c) {
        case 'c': break;
        case 'f': {
            char num[16];
            const char *colon = strchr(optarg, ':');
            int64_t fd = -1;
            unsigned p = colon ? pd_principal_parse(colon + 1) : 0;
            if (colon != NULL && (size_t)(colon - optarg) < sizeof(num)) {
                memcpy(num, optarg, (size_t)(colon - optarg));
                num[colon - optarg] = '\0';
                if (pd_config_parse_int(num, 3, 65535, &fd) != 0)
                    fd = -1;
            }
            if (nfds == MAX_FDS || fd < 0 || p == 0) {
                fprintf(stderr, "payd-vault: --fd expects N:PRINCIPAL with N a descriptor number from 3 to 65535 and "
                                "PRINCIPAL one of api, processor, admin, rotation (at most %d), not \"%s\"\n",
                        MAX_FDS, optarg);
                return 2;
            }
            fds[nfds] = (int)fd;
            principals[nfds++] = p;
            break;
        }
        case 'D': uo.dev = true; break;
        case 'B': unwrap_key = true; break;
        case 'i': uo.init = true; break;
        case 'S':
            if (nshare_files == MAX_SHARES) {
                fprintf(stderr, "payd-vault: at most %d share files\n", MAX_SHARES);
                return 2;
            }
            share_files[nshare_files++] = optarg;
            break;
        case 'n':
            if (!number_opt("--init-shares", optarg, 2, MAX_SHARES, &init_n))
                return 2;
            break;
        case 't':
            if (!number_opt("--threshold", optarg, 2, MAX_SHARES, &init_t))
                return 2;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    dir = opt(dc.data_dir);
    sock = opt(dc.socket);
    user = opt(dc.user);
    uo.passphrase_file = opt(dc.passphrase_file);
    pd_log_level = (pd_log_level_t)dc.log_level;
    pd_p11_opts_t p11 = {opt(dc.pkcs11_module), opt(dc.pkcs11_token), opt(dc.pkcs11_key), opt(dc.pkcs11_pin_file)};
    if (p11.module != NULL || p11.token != NULL) {
        if (p11.module == NULL || p11.token == NULL || p11.key_label == NULL) {
            fprintf(stderr, "payd-vault: a PKCS#11 root key needs the module, the token label and the key label\n");
            return 2;
        }
        uo.p11 = &p11;
    }
    if (dir == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (unwrap_key)
        return unwrap_backup_key(&uo, dir, share_files, nshare_files);
    if (mkdir(dir, 0700) == 0) {
        /* the vault's group (payd's user) may pass through to the credentials it needs */
        if (chmod(dir, PD_VAULT_DIR_MODE) != 0) {
            fprintf(stderr, "payd-vault: cannot chmod %s: %s\n", dir, strerror(errno));
            return 1;
        }
    } else if (errno != EEXIST) {
        fprintf(stderr, "payd-vault: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    /* nothing of the vault's state is for other users (its files are 0600 or 0640) */
    if (pd_privsep_check_mode(dir, (uid_t)-1, 0750, err, sizeof(err)) != 0) {
        fprintf(stderr, "payd-vault: refusing to start: %s\n", err);
        return 1;
    }
    /* one vault per directory: a second one would sign audit records and write keys
     * into the same database (the lock is held until the process ends). The vault of a
     * payd that was just killed ends on its own moments later (its socket pair closes):
     * a restart in that window waits for it, up to 5 s, rather than refusing */
    int lock_fd = -1, lr;
    for (int i = 0; (lr = pd_dir_lock(dir, "vault.lock", &lock_fd, err, sizeof(err))) == PD_ERR_BUSY && i < 100; i++)
        usleep(50 * 1000);
    if (lr != 0) {
        fprintf(stderr, "payd-vault: refusing to start: %s\n", err);
        return 1;
    }
    (void)lock_fd;
    if ((init_n > 0) != (init_t > 0)) {
        fprintf(stderr, "payd-vault: --init-shares and --threshold go together\n");
        return 2;
    }
    /* the store's password is read while still root, like every other secret */
    static char store_pw[512], store_why[600];
    pd_vault_store_t store = {.pg_url = opt(dc.store_url), .why = store_why, .whycap = sizeof(store_why)};
    if (opt(dc.store_password_file) != NULL) {
        if (store.pg_url == NULL) {
            fprintf(stderr, "payd-vault: [vault] store_password_file is set but store_url is not\n");
            return 2;
        }
        if (!read_password(dc.store_password_file, store_pw, sizeof(store_pw))) {
            fprintf(stderr, "payd-vault: [vault] store_password_file: cannot read a password from %s\n",
                    dc.store_password_file);
            return 2;
        }
        store.pg_password = store_pw;
    }
    if (init_n > 0) {
        /* nothing secret is read: the vault's user makes the vault */
        if (pd_vault_drop_privileges(user, dir, err, sizeof(err)) != 0) {
            fprintf(stderr, "payd-vault: refusing to start: %s\n", err);
            return 1;
        }
        r = init_shares(dir, init_n, init_t, &store);
        OPENSSL_cleanse(store_pw, sizeof(store_pw));
        return r;
    }

    /* the metrics listener: a wrong address stops the start before anything is unsealed;
     * bound before root is dropped, like the other listeners (static: reachable until exit) */
    static pd_vmx_http_t *metrics;
    if (opt(dc.metrics_listen) != NULL && pd_vmx_listen(&metrics, dc.metrics_listen, err, sizeof(err)) != 0) {
        fprintf(stderr, "payd-vault: %s\n", err);
        return 2;
    }

    /* Everything secret the operator hands in (the passphrase file or systemd
     * credential, share files, the token PIN, the TLS key) is read while still root:
     * such files are often root's alone (0600). Only then is root dropped. */
    /* shares from files (one share per file) */
    char share_text[MAX_SHARES][PD_SHARE_TEXT];
    const char *share_ptrs[MAX_SHARES];
    if (!read_shares(share_files, nshare_files, share_text, share_ptrs))
        return 2;
    uo.dir = dir;
    uo.shares = share_ptrs;
    uo.nshares = nshare_files;

    uint8_t root[PD_KEY_LEN];
    bool created = false;
    r = pd_unseal(&uo, root, &created, err, sizeof(err));
    OPENSSL_cleanse(share_text, sizeof(share_text));
    if (r != 0) {
        fprintf(stderr, "payd-vault: cannot unseal: %s\n", err);
        return r == PD_ERR_AUTH ? 3 : 1;
    }
    SSL_CTX *tls = NULL;
    if (opt(dc.listen) != NULL) {
        if (opt(dc.tls_cert) == NULL || opt(dc.tls_key) == NULL || opt(dc.tls_client_ca) == NULL) {
            OPENSSL_cleanse(root, sizeof(root));
            fprintf(stderr, "payd-vault: a TCP listener needs --tls-cert, --tls-key and --tls-client-ca\n");
            return 2;
        }
        if ((tls = pd_vt_tls_ctx(true, dc.tls_cert, dc.tls_key, dc.tls_client_ca, err, sizeof(err))) == NULL) {
            OPENSSL_cleanse(root, sizeof(root));
            fprintf(stderr, "payd-vault: %s\n", err);
            return 2;
        }
    }
    if (pd_vault_drop_privileges(user, dir, err, sizeof(err)) != 0) {
        OPENSSL_cleanse(root, sizeof(root));
        SSL_CTX_free(tls);
        pd_vmx_free(metrics);
        fprintf(stderr, "payd-vault: refusing to start: %s\n", err);
        return 1;
    }
    snprintf(db, sizeof(db), "%s/vault.db", dir);
    store.sqlite_path = db;
    if (opt(dc.wal_archive) != NULL && store.pg_url == NULL && (r = wal_archive_setup(dc.wal_archive, db, root)) != 0) {
        OPENSSL_cleanse(root, sizeof(root));
        fprintf(stderr, "payd-vault: cannot set up the WAL archive %s: %s\n", dc.wal_archive, pd_strerror(r));
        return 1;
    }
    pd_vault_state_t *v = NULL;
    r = pd_vault_state_open_store(&v, &store, root);
    OPENSSL_cleanse(root, sizeof(root)); /* the copies in locked memory are the only ones now */
    OPENSSL_cleanse(store_pw, sizeof(store_pw));
    if (r != 0)
        return open_failed(r, &store, db);
    pd_vault_server_t *srv = NULL;
    if ((r = pd_vault_server_new(&srv, v)) != 0)
        return 1;
    if (metrics != NULL && (r = pd_vault_server_metrics(srv, metrics)) != 0) {
        fprintf(stderr, "payd-vault: cannot set up the metrics: %s\n", pd_strerror(r));
        return 1;
    }
    if (metrics != NULL)
        pd_log_info("vault metrics", PD_LS("listen", dc.metrics_listen), PD_LI("port", pd_vmx_port(metrics)));
    for (int i = 0; i < nfds; i++) {
        char origin[32];
        snprintf(origin, sizeof(origin), "fd:%d", fds[i]);
        if (pd_vault_server_add_fd(srv, fds[i], principals[i], origin) != 0)
            return 1;
    }
    if (sock != NULL) {
        char cred_dir[4200];
        snprintf(cred_dir, sizeof(cred_dir), "%s/credentials", dir);
        if ((r = pd_vault_server_listen(srv, sock, cred_dir)) != 0) {
            fprintf(stderr, "payd-vault: cannot listen on %s: %s\n", sock, pd_strerror(r));
            /* a refused start (a credential file open to other users, ...) frees what it made */
            pd_vault_server_free(srv);
            pd_vault_state_close(v);
            pd_config_free(cfg);
            return 1;
        }
    }
    if (tls != NULL) {
        char cred_dir[4200];
        snprintf(cred_dir, sizeof(cred_dir), "%s/credentials", dir);
        r = pd_vault_server_listen_tcp(srv, dc.listen, tls, cred_dir, err, sizeof(err));
        tls = NULL; /* the server's now */
        if (r != 0) {
            fprintf(stderr, "payd-vault: %s\n", err);
            return r == PD_ERR_CONFIG ? 2 : 1;
        }
    }
    if (nfds == 0 && sock == NULL && opt(dc.listen) == NULL) {
        fprintf(stderr, "payd-vault: nothing to serve (give --socket, --listen or --fd)\n");
        return 2;
    }
    if (notify.watchdog_usec > 0 && sock == NULL) {
        fprintf(stderr, "payd-vault: WATCHDOG_USEC is set (systemd WatchdogSec=) but there is no --socket: the "
                        "watchdog checks the vault's loop through its Unix socket\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal}, ign = {.sa_handler = SIG_IGN};
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGPIPE, &ign, NULL) != 0) {
        fprintf(stderr, "payd-vault: cannot set up signal handling: %s\n", strerror(errno));
        return 1;
    }
    pd_log_info("vault ready", PD_LS("dir", dir), PD_LS("store", store.pg_url != NULL ? "postgres" : "sqlite"), PD_LS("socket", sock), PD_LS("listen", opt(dc.listen)), PD_LI("peers", nfds),
                PD_LB("new_vault", created), PD_LB("key_memory_locked", v->locked));
    /* a child vault (fds from payd) ends when payd goes away */
    if (nfds > 0 && prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0) {
        fprintf(stderr, "payd-vault: cannot ask to end with payd (prctl PR_SET_PDEATHSIG): %s\n", strerror(errno));
        return 1;
    }
    /* the listeners are bound and the state is open: peers that connect now are served */
    if (pd_sdnotify_status(&notify, "READY=1\n", "ready: %s%s%s", sock != NULL ? sock : "",
                           sock != NULL && opt(dc.listen) != NULL ? ", " : "", opt(dc.listen) ? dc.listen : "") != 0) {
        /* logged once; the manager's start timeout decides */
    }
    static pd_sdnotify_watchdog_t *watchdog;
    static char probe_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(probe_path, sizeof(probe_path), "%s", sock != NULL ? sock : "");
    if ((r = pd_sdnotify_watchdog_start(&watchdog, &notify, loop_answers, probe_path)) != 0) {
        fprintf(stderr, "payd-vault: cannot start the watchdog thread: %s\n", pd_strerror(r));
        return 1;
    }
    r = pd_vault_server_run(srv, &stop, nfds > 0);
    atomic_store(&leaving, true);
    if (pd_sdnotify_status(&notify, "STOPPING=1\n", "stopping") != 0) {
        /* logged once */
    }
    pd_sdnotify_watchdog_stop(watchdog);
    pd_sdnotify_close(&notify);
    pd_vault_server_free(srv);
    pd_vault_state_close(v);
    if (sock != NULL)
        unlink(sock);
    pd_log_info("vault stopped");
    pd_config_free(cfg);
    return r == 0 ? 0 : 1;
}
