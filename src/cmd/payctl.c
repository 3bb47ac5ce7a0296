/*
 * payctl: the operator CLI. A thin dispatcher over tables of commands; each area's
 * commands live in payctl_<area>.c.
 *
 *   payctl [--config FILE] [--set section.key=value]... [--data-dir DIR] [--vault-socket PATH]
 *          [--credential FILE] [--admin URL] [--json] AREA COMMAND [ARGS]
 *
 * The configuration is payd's, read the way payd reads it (defaults, then --config FILE,
 * then PAYD_* variables, then --set and --data-dir), for the sections payctl uses.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "cmd/payctl.h"
#include "payd/cache.h"
#include "payd/backup_config.h"
#include "payd/file_store.h"
#include "payd/log.h"
#include "payd/stream.h"

extern char **environ;

static const struct {
    const payctl_cmd_t *cmds;
    const size_t *n;
} tables[] = {
    {payctl_vault_cmds, &payctl_vault_ncmds},
    {payctl_payments_cmds, &payctl_payments_ncmds},
    {payctl_stream_cmds, &payctl_stream_ncmds},
    {payctl_store_cmds, &payctl_store_ncmds},
    {payctl_alarms_cmds, &payctl_alarms_ncmds},
    {payctl_cluster_cmds, &payctl_cluster_ncmds},
    {payctl_files_cmds, &payctl_files_ncmds},
    {payctl_backup_cmds, &payctl_backup_ncmds},
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: payctl [--config FILE] [--set section.key=value]... [--data-dir DIR] [--vault-socket PATH]\n"
               "              [--credential FILE] [--admin URL] [--json] AREA COMMAND [ARGS]\n"
               "  --config, --set and PAYD_* variables as for payd ([server], [store], [cache] and [stream] are used;\n"
               "  other sections of the file are left to payd); --data-dir is --set server.data_dir=DIR\n"
               "  --admin URL: payd's admin listener (default http://[admin] listen)\n\n");
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
        for (size_t i = 0; i < *tables[t].n; i++)
            fprintf(f, "  payctl %s%s%s %s\n      %s\n", tables[t].cmds[i].area,
                    tables[t].cmds[i].command[0] ? " " : "", tables[t].cmds[i].command, tables[t].cmds[i].usage,
                    tables[t].cmds[i].help);
}

int
payctl_fail(payctl_t *ctx, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ctx->json) {
        json_t *o = json_pack("{s:{s:s}}", "error", "message", msg);
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        fprintf(stderr, "payctl: %s\n", msg);
    }
    return 1;
}

void
payctl_print_json(payctl_t *ctx, const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    char *s = v ? json_dumps(v, ctx->json ? JSON_COMPACT : JSON_INDENT(2)) : NULL;
    printf("%s\n", s != NULL ? s : text);
    free(s);
    json_decref(v);
}

pd_vault_client_t *
payctl_vault_as(payctl_t *ctx, const char *principal, int64_t timeout_ms)
{
    char sock[4200], credpath[4200], cred[256] = "";
    if (ctx->vault != NULL)
        return ctx->vault;
    snprintf(sock, sizeof(sock), "%s", ctx->vault_socket ? ctx->vault_socket : "");
    if (sock[0] == '\0')
        snprintf(sock, sizeof(sock), "%s/vault/vault.sock", ctx->data_dir);
    snprintf(credpath, sizeof(credpath), "%s", ctx->credential ? ctx->credential : "");
    if (credpath[0] == '\0')
        snprintf(credpath, sizeof(credpath), "%s/vault/credentials/%s", ctx->data_dir, principal);
    FILE *f = fopen(credpath, "re");
    if (f == NULL || fgets(cred, sizeof(cred), f) == NULL) {
        if (f)
            fclose(f);
        payctl_fail(ctx, "cannot read the %s credential %s (is the vault initialized? use --credential)", principal,
                    credpath);
        return NULL;
    }
    fclose(f);
    cred[strcspn(cred, "\r\n")] = '\0';
    pd_vault_client_opts_t o = {.fd = -1, .socket_path = sock, .principal = principal, .credential = cred,
                                .timeout_ms = timeout_ms};
    int r = pd_vault_client_new(&ctx->vault, &o);
    OPENSSL_cleanse(cred, sizeof(cred));
    if (r != 0) {
        payctl_fail(ctx, "cannot connect to the vault at %s: %s", sock, pd_strerror(r));
        return NULL;
    }
    return ctx->vault;
}

pd_vault_client_t *
payctl_vault(payctl_t *ctx)
{
    pd_vault_client_t *v = payctl_vault_as(ctx, "admin", 60000);
    if (v == NULL)
        exit(1);
    return v;
}

pd_store_t *
payctl_store_open(payctl_t *ctx)
{
    /* the store payd uses: [store] from --config, PAYD_STORE_* and --set, as payd reads it */
    pd_store_config_t c = ctx->store;
    c.writers = 1; /* a tool's few writes: one connection */
    c.readers = 0; /* and its reads on its own thread */
    /* while payd archives the WAL, only payd checkpoints (payd/wal_archive.h) */
    if (pd_backup_config()->wal_archive && c.backend == PD_STORE_SQLITE)
        pd_sqlite_wal_archive(PD_WAL_ARCHIVE_HOLD, NULL);
    pd_store_t *s = NULL;
    int r = pd_store_open(&s, &c, ctx->data_dir);
    if (r != 0)
        exit(payctl_fail(ctx, "cannot open the payments database %s: %s",
                         c.backend == PD_STORE_POSTGRES ? "(store.url)" : ctx->data_dir, pd_strerror(r)));
    return s;
}

/* registers the sections payctl reads; 0, or an exit code after a message */
static int
configure(payctl_t *ctx, const char *file, char **sets, int nsets)
{
    int r;
    if ((r = pd_config_new(&ctx->cfg)) != 0 || (r = pd_service_config_register(ctx->cfg, &ctx->server)) != 0 ||
        (r = pd_store_config_register(ctx->cfg, &ctx->store)) != 0 || (r = pd_cache_config_register(ctx->cfg)) != 0 ||
        (r = pd_stream_config_register(ctx->cfg)) != 0 || (r = pd_files_config_register(ctx->cfg)) != 0 ||
        (r = pd_backup_config_register(ctx->cfg)) != 0 ||
        (r = pd_edge_config_register(ctx->cfg, &ctx->api, &ctx->admin)) != 0) {
        fprintf(stderr, "payctl: internal configuration error: %s\n", ctx->cfg ? pd_config_error(ctx->cfg) : "");
        return 1;
    }
    pd_config_partial(ctx->cfg);
    if ((file != NULL && pd_config_load_file(ctx->cfg, file) != 0) || pd_config_load_env(ctx->cfg, environ) != 0) {
        fprintf(stderr, "payctl: %s\n", pd_config_error(ctx->cfg));
        return 2;
    }
    for (int i = 0; i < nsets; i++)
        if (pd_config_set_arg(ctx->cfg, sets[i], "--set") != 0) {
            fprintf(stderr, "payctl: %s\n", pd_config_error(ctx->cfg));
            return 2;
        }
    ctx->data_dir = ctx->server.data_dir;
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'f'},       {"set", required_argument, NULL, 'S'},
        {"data-dir", required_argument, NULL, 'd'},     {"vault-socket", required_argument, NULL, 's'},
        {"credential", required_argument, NULL, 'c'},   {"json", no_argument, NULL, 'j'},
        {"admin", required_argument, NULL, 'a'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    payctl_t ctx = {0};
    const char *file = NULL;
    char **sets = calloc((size_t)argc + 1, sizeof(*sets)), dirset[4200];
    int nsets = 0, c;

    pd_log_level = PD_LOG_WARN;
    if (sets == NULL)
        return 1;
    /* options stop at the first non-option: command flags belong to the command */
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': file = optarg; break;
        case 'S': sets[nsets++] = optarg; break;
        case 'd':
            snprintf(dirset, sizeof(dirset), "server.data_dir=%s", optarg);
            sets[nsets++] = dirset;
            break;
        case 's': ctx.vault_socket = optarg; break;
        case 'c': ctx.credential = optarg; break;
        case 'j': ctx.json = true; break;
        case 'a': ctx.admin_url = optarg; break;
        case 'h': usage(stdout); free(sets); return 0;
        default: usage(stderr); free(sets); return 2;
        }
    }
    int rc = configure(&ctx, file, sets, nsets);
    free(sets);
    if (rc != 0) {
        pd_config_free(ctx.cfg);
        return rc;
    }
    if (argc - optind < 1) {
        usage(stderr);
        pd_config_free(ctx.cfg);
        return 2;
    }
    /* AREA COMMAND [ARGS], or AREA [ARGS] for a command of its own (command "") */
    const char *area = argv[optind], *command = optind + 1 < argc ? argv[optind + 1] : "";
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        for (size_t i = 0; i < *tables[t].n; i++) {
            const payctl_cmd_t *cmd = &tables[t].cmds[i];
            bool alone = cmd->command[0] == '\0' && (command[0] == '\0' || command[0] == '-');
            if (strcmp(cmd->area, area) == 0 && (alone || strcmp(cmd->command, command) == 0)) {
                int skip = alone ? 0 : 1;
                rc = cmd->fn(&ctx, argc - optind - skip, argv + optind + skip);
                pd_vault_client_free(ctx.vault);
                pd_config_free(ctx.cfg);
                return rc;
            }
        }
    }
    fprintf(stderr, "payctl: unknown command \"%s %s\"\n\n", area, command);
    usage(stderr);
    pd_config_free(ctx.cfg);
    return 2;
}
