/* payctl commands of backups: backup create|verify|restore|list (docs/backup.md). The
 * work is in src/backup/; this file reads the flags and prints. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include "payd/audit.h"
#include "payd/backup.h"
#include "payd/backup_config.h"
#include "payd/cluster_store.h"
#include "payd/records.h"
#include "payd/time.h"
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
 * keep_s after now */
static int
store_backup(payctl_t *ctx, const char *id, int64_t keep_s, int64_t *expires)
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
        rec.expires_at = (int64_t)now + keep_s;
        if ((r = pd_files_adopt(f, &rec, &got)) == 0)
            *expires = got.expires_at;
    }
    pd_files_close(f);
    pd_store_close(s);
    return r;
}

/* what a backup made: where (a path, or a file id in the file store), its figures */
typedef struct {
    char where[4300];
    bool in_store;
    int64_t expires; /* in the file store */
    pd_backup_stats_t st;
    double secs;
} made_t;

/* makes an archive at out, or (out NULL) in the file store kept keep_s; 0, or an exit
 * code after the message */
static int
make_backup(payctl_t *ctx, const char *out, int64_t keep_s, made_t *m)
{
    char db[4200], err[1024], files_dir[4200], id[PD_ID_MAX] = "";
    int rc;
    memset(m, 0, sizeof(*m));
    files_dir_of(ctx, files_dir, sizeof(files_dir));
    m->in_store = out == NULL;
    if (ctx->store.backend == PD_STORE_POSTGRES)
        return payctl_fail(ctx, "[store] backend = postgres: payctl backup copies the SQLite store only; back up "
                                "payd's PostgreSQL database with its own tools (pg_basebackup and WAL archiving, or "
                                "pg_dump), see docs/backup.md");
    if (m->in_store) {
        /* written in the store's directory under a new file id (bytes an interrupted run
         * leaves without a row are the janitor's after an hour), then given its row */
        if (mkdir(files_dir, 0700) != 0 && errno != EEXIST)
            return payctl_fail(ctx, "cannot create the file store's directory %s: %s", files_dir, strerror(errno));
        if (pd_id_new("file", id, sizeof(id)) != 0)
            return payctl_fail(ctx, "cannot make a file id");
        snprintf(m->where, sizeof(m->where), "%s/%s", files_dir, id);
    } else {
        snprintf(m->where, sizeof(m->where), "%s", out);
    }
    if (ctx->store.path != NULL && ctx->store.path[0] != '\0')
        snprintf(db, sizeof(db), "%s", ctx->store.path);
    else
        snprintf(db, sizeof(db), "%s/payd.db", ctx->data_dir);
    pd_backup_create_opts_t o = {.vault = payctl_vault(ctx), .data_dir = ctx->data_dir, .payd_db = db,
                                 .out = m->where, .files_dir = files_dir, .progress = progress, .arg = ctx,
                                 .cancel = &interrupted};
    catch_signals();
    double t0 = now_s();
    if ((rc = pd_backup_create(&o, &m->st, err, sizeof(err))) != 0)
        return payctl_fail(ctx, "backup failed: %s", err);
    m->secs = now_s() - t0;
    if (m->in_store) {
        if ((rc = store_backup(ctx, id, keep_s, &m->expires)) != 0) {
            unlink(m->where);
            return payctl_fail(ctx, "the backup was made but cannot be stored in the file store: %s",
                               pd_strerror(rc));
        }
        snprintf(m->where, sizeof(m->where), "%s", id);
    }
    if (m->st.dev)
        fprintf(stderr, "\n  *** payctl: WARNING: %s holds this DEV vault's passphrase in clear: anyone with the file\n"
                        "  *** can decrypt every part of it. Dev mode only; never for real cards.\n\n",
                m->where);
    return 0;
}

static void
print_made(payctl_t *ctx, const made_t *m)
{
    if (ctx->json) {
        json_t *j = json_pack("{s:s,s:I,s:I,s:I,s:b,s:f}", "archive", m->where, "parts", (json_int_t)m->st.parts,
                              "bytes", (json_int_t)m->st.bytes, "archive_bytes", (json_int_t)m->st.archive_bytes,
                              "dev_passphrase_inside", m->st.dev, "seconds", m->secs);
        if (m->in_store)
            json_object_set_new(j, "expires_at", json_integer(m->expires));
        char *s = json_dumps(j, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        printf("backup written: %s%s (%lld parts, %llu bytes of data, %llu bytes archived, %.2f s)\n", m->where,
               m->in_store ? " in the file store" : "", (long long)m->st.parts, (unsigned long long)m->st.bytes,
               (unsigned long long)m->st.archive_bytes, m->secs);
    }
}

static int
cmd_create(payctl_t *ctx, int argc, char **argv)
{
    static const char *const known[] = {"--out", NULL};
    int rc = only(ctx, argc, argv, known, CREATE_USAGE);
    if (rc != 0)
        return rc;
    const char *out = flag(argc, argv, "--out");
    if (out != NULL && out[0] == '\0')
        return payctl_fail(ctx, "--out needs a file name (usage: " CREATE_USAGE ")");
    if (positional(argc, argv) != NULL)
        return payctl_fail(ctx, "unexpected argument %s (usage: " CREATE_USAGE ")", positional(argc, argv));
    made_t m;
    if ((rc = make_backup(ctx, out, pd_files_config()->backup_expiry_ms / 1000, &m)) != 0)
        return rc;
    print_made(ctx, &m);
    return 0;
}

/* --- the scheduled backup (payctl backup run, from deploy/systemd/payd-backup.timer) --- */

#define RUN_USAGE "payctl backup run [--now]"
#define BACKUP_LEASE "backup"
#define BACKUP_LEASE_MS (3600 * 1000) /* longer than a backup takes; released at the end */

typedef struct {
    const char *name;
    int64_t value;
} cursor_t;

static int
set_cursor(pd_db_t *tx, void *arg)
{
    const cursor_t *c = arg;
    return pd_cursor_set(tx, c->name, c->value);
}

typedef struct {
    const char *holder;
    bool take, held;
} lease_t;

static int
lease_write(pd_db_t *tx, void *arg)
{
    lease_t *l = arg;
    int64_t now = 0, token = 0, until = 0;
    int r = pd_db_clock_ms(tx, &now);
    if (r != 0)
        return r;
    if (!l->take)
        return pd_lease_release(tx, BACKUP_LEASE, l->holder);
    return pd_lease_acquire(tx, BACKUP_LEASE, l->holder, now, BACKUP_LEASE_MS, &l->held, &token, &until);
}

typedef struct {
    const char *action, *resource, *outcome, *detail;
} audit_t;

static int
audit_write(pd_db_t *tx, void *arg)
{
    const audit_t *a = arg;
    pd_audit_chain_t chain;
    char origin[64];
    snprintf(origin, sizeof(origin), "payctl:uid=%d", (int)getuid());
    int r = pd_audit_load(tx, &chain);
    pd_audit_rec_t rec = {"admin", a->action, a->resource, a->outcome, origin, a->detail};
    return r != 0 ? r : pd_audit_append(tx, &chain, pd_unix_now(), &rec);
}

/* removes the scheduled archives of dir older than keep_days; how many went */
static int
prune_dir(const char *dir, int64_t keep_days)
{
    DIR *d = opendir(dir);
    int gone = 0;
    time_t limit = time(NULL) - (time_t)keep_days * 86400;
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
        size_t n = strlen(e->d_name);
        struct stat st;
        if (strncmp(e->d_name, "payd-backup-", 12) != 0 || n < 17 || strcmp(e->d_name + n - 5, ".pdbk") != 0 ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
            st.st_mtime >= limit)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            gone++;
    }
    if (d != NULL)
        closedir(d);
    return gone;
}

static int
cmd_run(payctl_t *ctx, int argc, char **argv)
{
    bool force = false; /* --now takes no value, unlike the other commands' flags */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--now") != 0)
            return payctl_fail(ctx, "unexpected argument %s (usage: " RUN_USAGE ")", argv[i]);
        force = true;
    }
    int rc;
    const pd_backup_config_t *bc = pd_backup_config();
    int minute = 0;
    if (pd_backup_schedule_parse(bc->schedule, &minute) != 0)
        return payctl_fail(ctx, "[backup] schedule = \"%s\": a daily time HH:MM (local) or off", bc->schedule);
    if (minute < 0 && !force) {
        printf("scheduled backups are off ([backup] schedule = off)\n");
        return 0;
    }
    int64_t now = pd_unix_now(), last = 0;
    pd_store_t *s = payctl_store_open(ctx);
    if ((rc = pd_cursor_get(pd_store_reader(s), PD_BACKUP_LAST_SUCCESS, &last)) != 0) {
        pd_store_close(s);
        return payctl_fail(ctx, "cannot read the last backup's time: %s", pd_strerror(rc));
    }
    int64_t slot = minute >= 0 ? pd_backup_last_slot(minute, now) : now;
    if (!force && last >= slot) {
        pd_store_close(s);
        printf("not due: the last scheduled backup (%lld) is after today's slot (%s)\n", (long long)last,
               bc->schedule);
        return 0;
    }
    /* one node of a cluster makes it: the others find the lease taken */
    char holder[200], host[128] = "";
    (void)gethostname(host, sizeof(host) - 1);
    snprintf(holder, sizeof(holder), "payctl@%s:%d", host, (int)getpid());
    lease_t l = {holder, true, false};
    if ((rc = pd_store_write_sync(s, lease_write, &l)) != 0 || !l.held) {
        pd_store_close(s);
        if (rc != 0)
            return payctl_fail(ctx, "cannot take the backup lease: %s", pd_strerror(rc));
        printf("another node is making the scheduled backup (lease %s held)\n", BACKUP_LEASE);
        return 0;
    }
    char out[4300];
    const char *to = NULL;
    if (bc->dir != NULL && bc->dir[0] != '\0') {
        time_t t = (time_t)now;
        struct tm tm;
        gmtime_r(&t, &tm);
        char name[64];
        strftime(name, sizeof(name), "payd-backup-%Y%m%d-%H%M%S.pdbk", &tm);
        snprintf(out, sizeof(out), "%s/%s", bc->dir, name);
        to = out;
    }
    made_t m;
    rc = make_backup(ctx, to, bc->keep_days * 86400, &m);
    cursor_t c = {rc == 0 ? PD_BACKUP_LAST_SUCCESS : PD_BACKUP_LAST_FAILURE, pd_unix_now()};
    audit_t a = {"backup.scheduled", rc == 0 ? m.where : (to != NULL ? to : "file store"),
                 rc == 0 ? "success" : "failure", rc == 0 ? "" : "see payctl's output"};
    if (pd_store_write_sync(s, set_cursor, &c) != 0 || pd_store_write_sync(s, audit_write, &a) != 0)
        fprintf(stderr, "payctl: warning: the backup's outcome could not be recorded\n");
    int pruned = rc == 0 && to != NULL ? prune_dir(bc->dir, bc->keep_days) : 0;
    l.take = false;
    if (pd_store_write_sync(s, lease_write, &l) != 0)
        fprintf(stderr, "payctl: warning: the backup lease was not released (it expires in an hour)\n");
    pd_store_close(s);
    if (rc != 0)
        return rc;
    print_made(ctx, &m);
    if (pruned > 0 && !ctx->json)
        printf("removed %d scheduled backup(s) older than %lld days from %s\n", pruned, (long long)bc->keep_days,
               bc->dir);
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

/* "2026-12-04T03:15:00Z", "2026-12-04T03:15:00.250Z" or Unix seconds into Unix ms */
static int
parse_until(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    char *end = NULL;
    if (s[0] >= '0' && s[0] <= '9' && strchr(s, '-') == NULL) {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0' || v <= 0 || v > 253402300799LL)
            return PD_ERR_INVALID;
        *ms = v * 1000;
        return 0;
    }
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL)
        return PD_ERR_INVALID;
    int frac = 0;
    if (*end == '.') {
        if (!(end[1] >= '0' && end[1] <= '9' && end[2] >= '0' && end[2] <= '9' && end[3] >= '0' && end[3] <= '9'))
            return PD_ERR_INVALID;
        frac = (end[1] - '0') * 100 + (end[2] - '0') * 10 + (end[3] - '0');
        end += 4;
    }
    if (strcmp(end, "Z") != 0)
        return PD_ERR_INVALID;
    time_t t = timegm(&tm);
    if (t <= 0)
        return PD_ERR_INVALID;
    *ms = (int64_t)t * 1000 + frac;
    return 0;
}

/* verify (target NULL) or restore */
static int
open_archive(payctl_t *ctx, int argc, char **argv, bool restore)
{
    static const char *const known_v[] = {"--passphrase-file", "--share-file", NULL};
    static const char *const known_r[] = {"--passphrase-file", "--share-file", "--data-dir", "--until", "--wal-dir",
                                          "--vault-wal-dir", NULL};
    const char *usage = restore ? "payctl backup restore FILE --data-dir NEW [--passphrase-file F | --share-file F...] "
                                  "[--until TIME [--wal-dir DIR] [--vault-wal-dir DIR]]"
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
    /* --until: the time the payments store is rolled forward to, with the WAL archive */
    int64_t until_ms = 0;
    char wal_dir[4200] = "", vault_wal_dir[4200] = "";
    const char *until = restore ? flag(argc, argv, "--until") : NULL, *wd = restore ? flag(argc, argv, "--wal-dir") : NULL;
    const char *vwd = restore ? flag(argc, argv, "--vault-wal-dir") : NULL;
    if ((wd != NULL || vwd != NULL) && until == NULL)
        return payctl_fail(ctx, "%s goes with --until (usage: %s)", wd != NULL ? "--wal-dir" : "--vault-wal-dir", usage);
    if (until != NULL) {
        if (parse_until(until, &until_ms) != 0)
            return payctl_fail(ctx, "--until %s: give a UTC time as 2026-12-04T03:15:00Z (or with .mmm), or Unix "
                                    "seconds",
                               until);
        if (until_ms > pd_real_ms())
            return payctl_fail(ctx, "--until %s is in the future", until);
        if (wd != NULL)
            snprintf(wal_dir, sizeof(wal_dir), "%s", wd);
        else if (pd_backup_wal_dir(wal_dir, sizeof(wal_dir), ctx->data_dir) != 0)
            return payctl_fail(ctx, "the WAL archive's path is too long");
        /* the vault's own: in its directory (payd --dev's child vault: DATA_DIR/vault) */
        int vn = vwd != NULL ? snprintf(vault_wal_dir, sizeof(vault_wal_dir), "%s", vwd)
                             : snprintf(vault_wal_dir, sizeof(vault_wal_dir), "%s/vault/wal-archive", ctx->data_dir);
        if (vn < 0 || (size_t)vn >= sizeof(vault_wal_dir))
            return payctl_fail(ctx, "the vault's WAL archive's path is too long");
    }
    if (vault_bin(bin, sizeof(bin)) != 0)
        return payctl_fail(ctx, "cannot find payd-vault next to payctl: it unwraps the archive's key");
    char path[4300];
    if ((rc = archive_path(ctx, file, path, sizeof(path))) != 0)
        return rc;
    pd_backup_restore_opts_t o = {.archive = path, .target = target,
                                  .passphrase_file = flag(argc, argv, "--passphrase-file"), .share_files = shares,
                                  .nshares = nshares, .vault_bin = bin, .progress = progress, .arg = ctx,
                                  .cancel = &interrupted, .until_ms = until_ms, .wal_dir = wal_dir,
                                  .vault_wal_dir = vault_wal_dir};
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
        char to[80] = "";
        if (until_ms > 0) {
            time_t t = (time_t)(rep.rolled_to_ms / 1000);
            struct tm tm;
            gmtime_r(&t, &tm);
            size_t n = strftime(to, sizeof(to), "; payments store as of %Y-%m-%dT%H:%M:%S", &tm);
            snprintf(to + n, sizeof(to) - n, ".%03dZ", (int)(rep.rolled_to_ms % 1000));
        }
        printf("restored %s into %s (%lld parts%s; ledger and audit chain verified, %.2f s); start it with: payd --dev "
               "--data-dir %s\n",
               file, target, (long long)rep.parts, to, secs, target);
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
    const char *name = f->id[0] != '\0' ? f->id : f->filename; /* a file id, or an archive of [backup] dir */
    char created[32], expires[32];
    struct tm tm;
    time_t t = (time_t)f->created, e = (time_t)f->expires_at;
    gmtime_r(&t, &tm);
    strftime(created, sizeof(created), "%Y-%m-%d %H:%M:%S", &tm);
    gmtime_r(&e, &tm);
    strftime(expires, sizeof(expires), "%Y-%m-%d %H:%M:%S", &tm);
    if (ctx->json) {
        json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:s}", "id", name, "filename", f->filename, "size",
                              (json_int_t)f->size, "created", (json_int_t)f->created, "expires_at",
                              (json_int_t)f->expires_at, "sha256", f->sha256);
        char *s = json_dumps(j, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        printf("%-36s %s UTC  %14lld  expires %s UTC\n", name, created, (long long)f->size, expires);
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
    if (r != 0)
        return payctl_fail(ctx, "cannot list the backups: %s", pd_strerror(r));
    /* and the scheduled archives of [backup] dir */
    const char *dir = pd_backup_config()->dir;
    DIR *d = dir != NULL && dir[0] != '\0' ? opendir(dir) : NULL;
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
        struct stat st;
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "payd-backup-", 12) != 0 || n < 17 || strcmp(e->d_name + n - 5, ".pdbk") != 0 ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        pd_file_rec_t f = {.size = st.st_size, .created = st.st_mtime,
                           .expires_at = st.st_mtime + pd_backup_config()->keep_days * 86400};
        snprintf(f.filename, sizeof(f.filename), "%.127s", e->d_name); /* listed by name, in [backup] dir */
        list_one(&f, ctx);
    }
    if (d != NULL)
        closedir(d);
    return 0;
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
    {"backup", "list", "", "the backups kept in the file store, newest first, then those of [backup] dir", cmd_list},
    {"backup", "run", "[--now]",
     "the scheduled backup, when due ([backup] schedule), on one node (a lease); run it from a timer", cmd_run},
};
const size_t payctl_backup_ncmds = sizeof(payctl_backup_cmds) / sizeof(payctl_backup_cmds[0]);
