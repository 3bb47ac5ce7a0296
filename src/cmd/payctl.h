/* payctl: shared context of the operator CLI's command files. */
#ifndef PAYD_PAYCTL_H
#define PAYD_PAYCTL_H

#include <stdbool.h>
#include <stdio.h>

#include "payd/config.h"
#include "payd/edge.h"
#include "payd/service.h"
#include "payd/store.h"
#include "payd/vault.h"

typedef struct {
    const char *data_dir;      /* payd's [server] data_dir (default /var/lib/payd like payd; dev: .dev) */
    const char *vault_socket;  /* default DATA_DIR/vault/vault.sock */
    const char *credential;    /* admin credential file, default DATA_DIR/vault/credentials/admin */
    bool json;                 /* --json output */
    pd_vault_client_t *vault;  /* connected on first use */
    /* payd's configuration as payd reads it (defaults, --config FILE, PAYD_* variables,
     * --set), for the sections payctl uses: [server], [store], [cache], [stream] */
    pd_config_t *cfg;
    pd_service_config_t server;
    pd_store_config_t store;
    pd_edge_api_config_t api;     /* registered for [admin] (payctl alarms) */
    pd_edge_admin_config_t admin;
    const char *admin_url;        /* --admin URL: payd's admin listener (default http://[admin] listen) */
} payctl_t;

typedef int (*payctl_fn)(payctl_t *ctx, int argc, char **argv);

typedef struct {
    const char *area, *command, *usage, *help;
    payctl_fn fn;
} payctl_cmd_t;

extern const payctl_cmd_t payctl_vault_cmds[];
extern const size_t payctl_vault_ncmds;
extern const payctl_cmd_t payctl_payments_cmds[];
extern const size_t payctl_payments_ncmds;
extern const payctl_cmd_t payctl_stream_cmds[];
extern const size_t payctl_stream_ncmds;
extern const payctl_cmd_t payctl_store_cmds[];
extern const size_t payctl_store_ncmds;
extern const payctl_cmd_t payctl_alarms_cmds[];
extern const size_t payctl_alarms_ncmds;
extern const payctl_cmd_t payctl_cluster_cmds[];
extern const size_t payctl_cluster_ncmds;
extern const payctl_cmd_t payctl_files_cmds[];
extern const size_t payctl_files_ncmds;
extern const payctl_cmd_t payctl_backup_cmds[];
extern const size_t payctl_backup_ncmds;

/* the admin vault connection (exits with a message when it cannot connect) */
pd_vault_client_t *payctl_vault(payctl_t *ctx);
/* The vault as principal (its credential DATA_DIR/vault/credentials/PRINCIPAL unless
 * --credential); NULL after reporting why. payctl_vault: as admin, exiting on failure. */
pd_vault_client_t *payctl_vault_as(payctl_t *ctx, const char *principal, int64_t timeout_ms);
/* The payments store payd uses, opened with one writer and inline reads; exits after a
 * message when it cannot be opened. */
pd_store_t *payctl_store_open(payctl_t *ctx);
/* prints an error in the chosen format and returns the exit code 1 */
int payctl_fail(payctl_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* pretty-prints a JSON text for humans, or as-is with --json */
void payctl_print_json(payctl_t *ctx, const char *json);

#endif
