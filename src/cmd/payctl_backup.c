/* payctl commands of backups: backup create|verify|restore|list (docs/backup.md). The
 * work is in src/backup/; this file reads the flags and prints. */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/payctl.h"
#include "payd/backup.h"
#include "payd/file_store.h"
#include "payd/id.h"

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

#define CREATE_USAGE "payctl backup create [--out FILE]"

/* [files] dir as payd has it */
static void
files_dir_of(payctl_t *ctx, char *out, size_t cap)
{
    const pd_files_config_t *fc = pd_files_config();
    if (fc != NULL && fc->dir != NULL && fc->dir[0] != '\0')
        snprintf(out, cap, "%s", fc->dir);
    else
        snprintf(out, cap, "%s/files", ctx->data_dir);
}

/* the archive written at the file store's DIR/<id> becomes its `backup` file, expiring
 * after [files] backup_expiry */
static int
store_backup(payctl_t *ctx, const char *id, int64_t *expires)
{
    pd_store_t *s = payctl_store_open(ctx);
    pd_files_t *f = NULL;
    int r = pd_files_open(&f, pd_files_config(), ctx->data_dir, s, NULL);
    if (r == 0) {
        pd_file_rec_t rec = {.livemode = false}, got;
        snprintf(rec.id, sizeof(rec.id), "%s", id);
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(rec.purpose, sizeof(rec.purpose), "backup");
        snprintf(rec.type, sizeof(rec.type), "pdbackup");
        strftime(rec.filename, sizeof(rec.filename), "payd-backup-%Y%m%d-%H%M%S.pdbk", &tm);
        rec.expires_at = (int64_t)now + pd_files_config()->backup_expiry_ms / 1000;
        if ((r = pd_files_adopt(f, &rec, &got)) == 0)
            *expires = got.expires_at;
    }
    pd_files_close(f);
    pd_store_close(s);
    return r;
}

static int
cmd_create(payctl_t *ctx, int argc, char **argv)
{
    static const char *const known[] = {"--out", NULL};
    char db[4200], err[1024];
    int rc = only(ctx, argc, argv, known, CREATE_USAGE);
    if (rc != 0)
        return rc;
    const char *out = flag(argc, argv, "--out");
    char files_dir[4200], tmp[4300], id[PD_ID_MAX] = "";
    files_dir_of(ctx, files_dir, sizeof(files_dir));
    bool into_store = out == NULL;
    if (out != NULL && out[0] == '\0')
        return payctl_fail(ctx, "--out needs a file name (usage: " CREATE_USAGE ")");
    if (into_store) {
        /* written in the store's directory under a new file id (bytes an interrupted run
         * leaves without a row are the janitor's after an hour), then given its row */
        if (mkdir(files_dir, 0700) != 0 && errno != EEXIST)
            return payctl_fail(ctx, "cannot create the file store's directory %s: %s", files_dir, strerror(errno));
        if (pd_id_new("file", id, sizeof(id)) != 0)
            return payctl_fail(ctx, "cannot make a file id");
        snprintf(tmp, sizeof(tmp), "%s/%s", files_dir, id);
        out = tmp;
    }
    if (positional(argc, argv) != NULL)
        return payctl_fail(ctx, "unexpected argument %s (usage: " CREATE_USAGE ")", positional(argc, argv));
    if (ctx->store.backend == PD_STORE_POSTGRES)
        return payctl_fail(ctx, "[store] backend = postgres: payctl backup copies the SQLite store only; back up "
                                "payd's PostgreSQL database with its own tools (pg_basebackup and WAL archiving, or "
                                "pg_dump), see docs/backup.md");
    if (ctx->store.path != NULL && ctx->store.path[0] != '\0')
        snprintf(db, sizeof(db), "%s", ctx->store.path);
    else
        snprintf(db, sizeof(db), "%s/payd.db", ctx->data_dir);
    pd_backup_create_opts_t o = {.vault = payctl_vault(ctx), .data_dir = ctx->data_dir, .payd_db = db, .out = out,
                                 .files_dir = files_dir, .progress = progress, .arg = ctx, .cancel = &interrupted};
    catch_signals();
    pd_backup_stats_t st;
    double t0 = now_s();
    if ((rc = pd_backup_create(&o, &st, err, sizeof(err))) != 0)
        return payctl_fail(ctx, "backup failed: %s", err);
    double secs = now_s() - t0;
    int64_t expires = 0;
    if (into_store && (rc = store_backup(ctx, id, &expires)) != 0) {
        unlink(tmp);
        return payctl_fail(ctx, "the backup was made but cannot be stored in the file store: %s", pd_strerror(rc));
    }
    if (into_store)
        out = id;
    if (st.dev)
        fprintf(stderr, "\n  *** payctl: WARNING: %s holds this DEV vault's passphrase in clear: anyone with the file\n"
                        "  *** can decrypt every part of it. Dev mode only; never for real cards.\n\n",
                out);
    if (ctx->json) {
        json_t *j = json_pack("{s:s,s:I,s:I,s:I,s:b,s:f}", "archive", out, "parts", (json_int_t)st.parts, "bytes",
                              (json_int_t)st.bytes, "archive_bytes", (json_int_t)st.archive_bytes, "dev_passphrase_inside",
                              st.dev, "seconds", secs);
        if (into_store)
            json_object_set_new(j, "expires_at", json_integer(expires));
        char *s = json_dumps(j, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        printf("backup written: %s%s (%lld parts, %llu bytes of data, %llu bytes archived, %.2f s)\n", out,
               into_store ? " in the file store" : "", (long long)st.parts, (unsigned long long)st.bytes,
               (unsigned long long)st.archive_bytes, secs);
    }
    return 0;
}

/* FILE, or a backup's file id in the file store, as a path into out; 0 or an exit code */
static int
archive_path(payctl_t *ctx, const char *file, char *out, size_t cap)
{
    snprintf(out, cap, "%s", file);
    if (access(file, F_OK) == 0 || !pd_id_valid(pd_view_cstr(file), "file"))
        return 0;
    pd_store_t *s = payctl_store_open(ctx);
    pd_file_rec_t rec;
    int r = pd_file_get_any(pd_store_reader(s), file, &rec);
    pd_store_close(s);
    if (r == PD_ERR_NOTFOUND)
        return payctl_fail(ctx, "no such file: %s (neither a path nor a file of the file store)", file);
    if (r != 0)
        return payctl_fail(ctx, "cannot read the file store's index: %s", pd_strerror(r));
    if (strcmp(rec.purpose, "backup") != 0)
        return payctl_fail(ctx, "%s is a %s file, not a backup", file, rec.purpose);
    char dir[4200];
    files_dir_of(ctx, dir, sizeof(dir));
    snprintf(out, cap, "%s/%s", dir, rec.id);
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
    char path[4300];
    if ((rc = archive_path(ctx, file, path, sizeof(path))) != 0)
        return rc;
    pd_backup_restore_opts_t o = {.archive = path, .target = target,
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
list_one(void *rec, void *arg)
{
    const pd_file_rec_t *f = rec;
    payctl_t *ctx = arg;
    char created[32], expires[32];
    struct tm tm;
    time_t t = (time_t)f->created, e = (time_t)f->expires_at;
    gmtime_r(&t, &tm);
    strftime(created, sizeof(created), "%Y-%m-%d %H:%M:%S", &tm);
    gmtime_r(&e, &tm);
    strftime(expires, sizeof(expires), "%Y-%m-%d %H:%M:%S", &tm);
    if (ctx->json) {
        json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:s}", "id", f->id, "filename", f->filename, "size",
                              (json_int_t)f->size, "created", (json_int_t)f->created, "expires_at",
                              (json_int_t)f->expires_at, "sha256", f->sha256);
        char *s = json_dumps(j, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        printf("%-36s %s UTC  %14lld  expires %s UTC\n", f->id, created, (long long)f->size, expires);
    }
    return 0;
}

static int
cmd_list(payctl_t *ctx, int argc, char **argv)
{
    static const char *const known[] = {NULL};
    int rc = only(ctx, argc, argv, known, "payctl backup list");
    if (rc != 0)
        return rc;
    if (positional(argc, argv) != NULL)
        return payctl_fail(ctx, "unexpected argument %s (usage: payctl backup list)", positional(argc, argv));
    pd_store_t *s = payctl_store_open(ctx);
    if (!ctx->json)
        printf("%-36s %-23s  %14s  %s\n", "ID", "CREATED", "BYTES", "EXPIRES");
    int r = pd_file_list_all(pd_store_reader(s), "backup", list_one, ctx);
    pd_store_close(s);
    return r != 0 ? payctl_fail(ctx, "cannot list the backups: %s", pd_strerror(r)) : 0;
}

const payctl_cmd_t payctl_backup_cmds[] = {
    {"backup", "create", "[--out FILE]",
     "an encrypted, consistent archive of the running payd and its vault, to FILE or into the file store "
     "(docs/backup.md)",
     cmd_create},
    {"backup", "verify", "FILE|FILE_ID [--passphrase-file F | --share-file F...]",
     "decrypt and check every part of an archive (SHA-256, integrity, ledger, audit chain) without restoring",
     cmd_verify},
    {"backup", "restore", "FILE|FILE_ID --data-dir NEW [--passphrase-file F | --share-file F...]",
     "restore an archive into a new or empty directory (then: payd --dev --data-dir NEW)", cmd_restore},
    {"backup", "list", "", "the backups kept in the file store, newest first", cmd_list},
};
const size_t payctl_backup_ncmds = sizeof(payctl_backup_cmds) / sizeof(payctl_backup_cmds[0]);
