/*
 * How payd reaches its vault: [vault] configuration, and starting payd-vault as a
 * child (single-node / dev mode) with one socketpair per principal, or connecting
 * to a standalone vault's Unix socket.
 */
#ifndef PAYD_VAULT_SPAWN_H
#define PAYD_VAULT_SPAWN_H

#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "payd/config.h"
#include "payd/vault.h"

enum { PD_VAULT_CHILD = 0, PD_VAULT_SOCKET = 1, PD_VAULT_TCP = 2 };

typedef struct {
    int mode;               /* PD_VAULT_CHILD, PD_VAULT_SOCKET or PD_VAULT_TCP */
    char *dir;              /* child: vault state ("" = DATA_DIR/vault) */
    char *binary;           /* child: payd-vault ("" = next to payd) */
    char *user;             /* child started as root: the user it runs as */
    char *passphrase_file;  /* child: unseal passphrase (dev mode generates one) */
    char *socket;           /* socket mode: path of the vault's socket */
    char *api_credential;   /* socket mode: credential files */
    char *processor_credential;
    char *address;          /* tcp mode: host:port of the vault */
    char *tls_ca;           /* tcp mode: CA of the vault's certificate */
    char *api_tls_cert, *api_tls_key;             /* tcp mode: client certificates, CN = principal */
    char *processor_tls_cert, *processor_tls_key;
    int64_t timeout_ms;     /* per request */
    char *metrics_listen;   /* child: loopback host:port of the vault's own /metrics ("" = none) */
    bool wal_archive;       /* child: archive vault.db's WAL in its DIR/wal-archive (set by payd from
                             * [backup] wal_archive, not a key of [vault]) */
} pd_vault_config_t;

int pd_vault_config_register(pd_config_t *cfg, pd_vault_config_t *c) PD_WUR;
/* Checks what the configuration alone can tell (--check-config and before start):
 * [vault] metrics_listen, when set, is a numeric loopback address. PD_ERR_CONFIG with
 * the reason in err otherwise. */
int pd_vault_config_check(const pd_vault_config_t *c, char *err, size_t cap) PD_WUR;

/* child mode: the vault's privileged parent (src/vault/monitor.h) */
typedef struct {
    int fd;    /* control channel, -1 when none */
    pid_t pid; /* the parent process, 0 when none */
} pd_vault_monitor_t;

typedef struct {
    pid_t child;                   /* the vault's pid (child mode; its parent is the monitor) */
    pd_vault_monitor_t monitor;    /* child mode: starts and reaps the vault for payd */
    bool prepared;                 /* pd_vault_link_prepare ran */
    /* child mode: a supervisor thread restarts a child that dies and hands the clients
     * the new connections */
    pthread_t supervisor;
    bool supervised;
    _Atomic bool closing;
    const pd_vault_config_t *cfg;
    const char *data_dir;
    bool dev;
    pd_vault_client_t *api;        /* principal api */
    pd_vault_client_t *processor;  /* principal processor */
    pthread_mutex_t mu;            /* guards the pepper (replaced when the secret rotates) */
    uint8_t pepper[256];           /* the API-key pepper (secret payd/api-key-pepper) */
    size_t pepper_len;
    struct {
        char name[256];
        void (*fn)(void *carg, pd_view_t value);
        void *carg;
    } watch[8];                    /* under mu: secrets other components follow (pd_vault_link_secrets) */
} pd_vault_link_t;

/* Child mode: forks the vault's privileged parent (see src/vault/monitor.h), which
 * starts the vault as [vault] user when payd runs as root. Call it before payd drops
 * root and before it starts any thread; a no-op in socket and tcp modes. Initializes
 * l (pd_vault_link_open then uses it). */
int pd_vault_link_prepare(pd_vault_link_t *l, const pd_vault_config_t *c, const char *data_dir, bool dev) PD_WUR;
/* Checks the modes of the vault's files payd can see: in child mode the credentials
 * directory and files of the vault's directory and its socket (owned by vault_uid
 * unless it is (uid_t)-1), in socket and tcp modes the credential files (and client
 * keys) and the socket payd is configured with. Missing files are fine (a vault not
 * yet created). PD_ERR_PERM with the file, its mode and the fix in err otherwise. */
int pd_vault_link_check_files(const pd_vault_config_t *c, const char *data_dir, uid_t vault_uid, char *err,
                              size_t errcap) PD_WUR;
/* Starts (through the privileged parent) or connects, then loads the API-key pepper (which also proves the vault
 * is unsealed and answering). data_dir is payd's; dev passes --dev to the child. */
int pd_vault_link_open(pd_vault_link_t *l, const pd_vault_config_t *c, const char *data_dir, bool dev) PD_WUR;
/* Copies the current API-key pepper (thread-safe). */
int pd_vault_link_pepper(pd_vault_link_t *l, uint8_t *out, size_t cap, size_t *len) PD_WUR;
/* The vault as a source of secrets (payd/cred.h) for [store] and [cache]
 * password_secret: fetch reads CURRENT as the api principal (which may read the
 * secrets named payd/...), watch follows the vault's rotation notices. */
struct pd_secret_source;
void pd_vault_link_secrets(pd_vault_link_t *l, struct pd_secret_source *out);
/* link_secrets.c, called by the link when the vault says name's CURRENT moved */
void pd_vault_link_secret_changed(pd_vault_link_t *l, const char *name);
/* Closes the clients; a child vault exits when its descriptors close. */
void pd_vault_link_close(pd_vault_link_t *l);

#endif
