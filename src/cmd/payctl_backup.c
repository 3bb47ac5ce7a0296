/* payctl commands of backups: backup create|verify|restore|list (docs/backups.md). The
 * work is in src/backup/; this file reads the flags and prints. */
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/payctl.h"
#include "payd/backup.h"
#include "payd/file_store.h"

#define MAX_SHARE_FILES 16

/* value of "--name V" among the command's arguments, or NULL */
static const char *
flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

/* the first argument that is neither a flag nor a flag's value; every flag takes a value */
static const char *
positional(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0) {
            i++;
            continue;
        }
        return argv[i];
    }
    return NULL;
}

/* every flag is one of known (each takes a value); 0, or an exit code after a message */
static int
only(payctl_t *ctx, int argc, char **argv, const char *const *known, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0)
            continue;
        bool ok = false;
        for (size_t k = 0; known[k] != NULL; k++)
            ok = ok || strcmp(argv[i], known[k]) == 0;
        if (!ok)
            return payctl_fail(ctx, "unknown option %s (usage: %s)", argv[i], usage);
        if (i + 1 == argc)
            return payctl_fail(ctx, "%s needs a value (usage: %s)", argv[i], usage);
        i++;
    }
    return 0;
}

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* SIGINT, SIGTERM and SIGHUP stop the work at its next chunk, so that it removes what it made
 * (the decrypted parts of a restore among them) instead of leaving it behind */
static void
catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigaction(SIGHUP, &sa, NULL);
}

static void
progress(void *arg, const char *line)
{
    payctl_t *ctx = arg;
    if (!ctx->json)
        fprintf(stderr, "%s\n", line);
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define CREATE_USAGE "payctl backup create --out FILE"

static int
cmd_create(payctl_t *ctx, int argc, char **argv)
{
    static const char *const known[] = {"--out", NULL};
    char db[4200], err[1024];
    int rc = only(ctx, argc, argv, known, CREATE_USAGE);
    if (rc != 0)
        return rc;
    const char *out = flag(argc, argv, "--out");
    if (out == NULL || out[0] == '\0')
        return payctl_fail(ctx, "--out FILE is required: backups into the file store (without --out) are not "
                                "available yet (usage: " CREATE_USAGE ")");
    if (positional(argc, argv) != NULL)
        return payctl_fail(ctx, "unexpected argument %s (usage: " CREATE_USAGE ")", positional(argc, argv));
    if (ctx->store.backend == PD_STORE_POSTGRES)
        return payctl_fail(ctx, "[store] backend = postgres: payctl backup copies the SQLite store only; back up "
                                "payd's PostgreSQL database with its own tools (pg_basebackup and WAL archiving, or "
                                "pg_dump), see docs/backups.md");
    if (ctx->store.path != NULL && ctx->store.path[0] != '\0')
        snprintf(db, sizeof(db), "%s", ctx->store.path);
    else
        snprintf(db, sizeof(db), "%s/payd.db", ctx->data_dir);
    char files_dir[4200];
    const pd_files_config_t *fc = pd_files_config();
    if (fc != NULL && fc->dir != NULL && fc->dir[0] != '\0')
        snprintf(files_dir, sizeof(files_dir), "%s", fc->dir);
    else
        snprintf(files_dir, sizeof(files_dir), "%s/files", ctx->data_dir);
    pd_backup_create_opts_t o = {.vault = payctl_vault(ctx), .data_dir = ctx->data_dir, .payd_db = db, .out = out,
                                 .files_dir = files_dir, .progress = progress, .arg = ctx, .cancel = &interrupted};
    catch_signals();
    pd_backup_stats_t st;
    double t0 = now_s();
    if ((rc = pd_backup_create(&o, &st, err, sizeof(err))) != 0)
        return payctl_fail(ctx, "backup failed: %s", err);
    double secs = now_s() - t0;
    if (st.dev)
        fprintf(stderr, "\n  *** payctl: WARNING: %s holds this DEV vault's passphrase in clear: anyone with the file\n"
                        "  *** can decrypt every part of it. Dev mode only; never for real cards.\n\n",
                out);
    if (ctx->json) {
        json_t *j = json_pack("{s:s,s:I,s:I,s:I,s:b,s:f}", "archive", out, "parts", (json_int_t)st.parts, "bytes",
                              (json_int_t)st.bytes, "archive_bytes", (json_int_t)st.archive_bytes, "dev_passphrase_inside",
                              st.dev, "seconds", secs);
        char *s = json_dumps(j, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        printf("backup written: %s (%lld parts, %llu bytes of data, %llu bytes archived, %.2f s)\n", out,
               (long long)st.parts, (unsigned long long)st.bytes, (unsigned long long)st.archive_bytes, secs);
    }
    return 0;
}

/* payd-vault next to payctl */
static int
vault_bin(char *out, size_t cap)
{
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0)
        return PD_ERR_NOTFOUND;
    self[len] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return PD_ERR_NOTFOUND;
    *slash = '\0';
    int n = snprintf(out, cap, "%s/payd-vault", self);
    return n < 0 || (size_t)n >= cap || access(out, X_OK) != 0 ? PD_ERR_NOTFOUND : 0;
}

/* verify (target NULL) or restore */
static int
open_archive(payctl_t *ctx, int argc, char **argv, bool restore)
{
    static const char *const known_v[] = {"--passphrase-file", "--share-file", NULL};
    static const char *const known_r[] = {"--passphrase-file", "--share-file", "--data-dir", NULL};
    const char *usage = restore ? "payctl backup restore FILE --data-dir NEW [--passphrase-file F | --share-file F...]"
                                : "payctl backup verify FILE [--passphrase-file F | --share-file F...]";
    const char *shares[MAX_SHARE_FILES];
    char bin[4200], err[1024];
    int nshares = 0, rc = only(ctx, argc, argv, restore ? known_r : known_v, usage);
    if (rc != 0)
        return rc;
    const char *file = positional(argc, argv), *target = restore ? flag(argc, argv, "--data-dir") : NULL;
    if (file == NULL)
        return payctl_fail(ctx, "missing FILE (usage: %s)", usage);
    if (restore && (target == NULL || target[0] == '\0'))
        return payctl_fail(ctx, "--data-dir NEW is required: the directory to restore into (usage: %s)", usage);
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--share-file") == 0) {
            if (nshares == MAX_SHARE_FILES)
                return payctl_fail(ctx, "at most %d --share-file", MAX_SHARE_FILES);
            shares[nshares++] = argv[++i];
        }
    if (vault_bin(bin, sizeof(bin)) != 0)
        return payctl_fail(ctx, "cannot find payd-vault next to payctl: it unwraps the archive's key");
    pd_backup_restore_opts_t o = {.archive = file, .target = target,
                                  .passphrase_file = flag(argc, argv, "--passphrase-file"), .share_files = shares,
                                  .nshares = nshares, .vault_bin = bin, .progress = progress, .arg = ctx,
                                  .cancel = &interrupted};
    catch_signals();
    if (restore && geteuid() == 0) {
        /* as payd --dev and payd-vault expect at their start: the vault's files are its user's */
        const char *pu = ctx->server.user != NULL && ctx->server.user[0] != '\0' ? ctx->server.user : "payd";
        struct passwd *p = getpwnam(pu);
        if (p != NULL) {
            o.payd_uid = p->pw_uid;
            o.payd_gid = p->pw_gid;
        }
        struct passwd *v = getpwnam("payd-vault");
        if (p == NULL || v == NULL)
            return payctl_fail(ctx, "restoring as root gives the files to the users %s and payd-vault, and %s does not "
                                    "exist (see scripts/deps.sh)", pu, p == NULL ? pu : "payd-vault");
        o.vault_uid = v->pw_uid;
        o.vault_gid = v->pw_gid;
        o.set_owners = true;
    }
    pd_backup_report_t rep;
    double t0 = now_s();
    if ((rc = pd_backup_restore(&o, &rep, err, sizeof(err))) != 0)
        return payctl_fail(ctx, "%s failed: %s", restore ? "restore" : "verify", err);
    double secs = now_s() - t0;
    if (ctx->json) {
        json_t *j = json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:f}", "ok", 1, "parts", (json_int_t)rep.parts, "bytes",
                              (json_int_t)rep.bytes, "ledger_entries", (json_int_t)rep.ledger_entries, "charges",
                              (json_int_t)rep.charges, "audit_records", (json_int_t)rep.audit_records, "seconds", secs);
        char *s = json_dumps(j, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else if (restore) {
        printf("restored %s into %s (%lld parts; ledger and audit chain verified, %.2f s); start it with: payd --dev "
               "--data-dir %s\n",
               file, target, (long long)rep.parts, secs, target);
    } else {
        printf("backup verified: %s (%lld parts, %llu bytes; ledger: %lld entries; audit chain: %lld records; %.2f s)\n",
               file, (long long)rep.parts, (unsigned long long)rep.bytes, (long long)rep.ledger_entries,
               (long long)rep.audit_records, secs);
    }
    return 0;
}

static int cmd_verify(payctl_t *c, int n, char **v) { return open_archive(c, n, v, false); }
static int cmd_restore(payctl_t *c, int n, char **v) { return open_archive(c, n, v, true); }

static int
cmd_list(payctl_t *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return payctl_fail(ctx, "backup list needs backups in the file store, which payctl backup create cannot write "
                            "yet: archives made with --out are where you put them");
}

const payctl_cmd_t payctl_backup_cmds[] = {
    {"backup", "create", "--out FILE",
     "an encrypted, consistent archive of the running payd and its vault (docs/backups.md)", cmd_create},
    {"backup", "verify", "FILE [--passphrase-file F | --share-file F...]",
     "decrypt and check every part of an archive (SHA-256, integrity, ledger, audit chain) without restoring",
     cmd_verify},
    {"backup", "restore", "FILE --data-dir NEW [--passphrase-file F | --share-file F...]",
     "restore an archive into a new or empty directory (then: payd --dev --data-dir NEW)", cmd_restore},
    {"backup", "list", "", "backups in the file store (not available yet)", cmd_list},
};
const size_t payctl_backup_ncmds = sizeof(payctl_backup_cmds) / sizeof(payctl_backup_cmds[0]);
