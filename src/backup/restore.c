/*
 * payctl backup verify / restore (payd/backup.h, docs/backup.md). The archive is
 * opened in a private temporary directory: its data key is unwrapped by payd-vault
 * (--unwrap-backup-key, which alone may hold the root key), every part is written and
 * checked there, then the databases, the ledger and the vault's audit chain are
 * checked. Only a restore that passed all of it is renamed into place.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <openssl/crypto.h>

#include "backup/internal.h"
#include "payd/fileio.h"
#include "payd/audit.h"
#include "payd/db.h"
#include "payd/records.h"
#include "payd/snapshot.h"

#define say(o, ...) pd_backup_say((o)->progress, (o)->arg, __VA_ARGS__)

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)f;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* removes a tree made by this file (no symbolic link is followed) */
static void
rm_tree(const char *dir)
{
    if (dir[0] != '\0')
        (void)nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* 0: absent or an empty directory; PD_ERR_EXISTS otherwise (err says why) */
static int
target_free(const char *target, char *err, size_t cap)
{
    struct stat st;
    if (lstat(target, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, cap, "cannot use %s: %s", target, strerror(errno));
        return -errno;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, cap, "%s exists and is not a directory: restore into a new or empty directory", target);
        return PD_ERR_EXISTS;
    }
    DIR *d = opendir(target);
    if (d == NULL) {
        snprintf(err, cap, "cannot read %s: %s", target, strerror(errno));
        return -errno;
    }
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)) != NULL)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    if (!empty) {
        snprintf(err, cap, "%s exists and is not empty: restore into a new or empty directory", target);
        return PD_ERR_EXISTS;
    }
    return 0;
}

static int
write_file(const char *path, pd_view_t v, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -errno;
    bool ok = write(fd, v.p, v.len) == (ssize_t)v.len && fsync(fd) == 0;
    close(fd);
    return ok ? 0 : PD_ERR_IO;
}

/* a command line built from copies (execv takes char *const *) */
typedef struct {
    char buf[16384];
    size_t used;
    char *v[40];
    int n;
} args_t;

static bool
arg(args_t *a, const char *s)
{
    size_t l = strlen(s) + 1;
    if (a->used + l > sizeof(a->buf) || a->n + 1 >= (int)(sizeof(a->v) / sizeof(a->v[0])))
        return false;
    memcpy(a->buf + a->used, s, l);
    a->v[a->n++] = a->buf + a->used;
    a->v[a->n] = NULL;
    a->used += l;
    return true;
}

/*
 * Runs `payd-vault --unwrap-backup-key --data-dir unseal_dir ...` with the n wrapped keys
 * (n * PD_BACKUP_WRAPPED_LEN bytes) on its stdin and their data keys (n * 32) read from
 * its stdout (a pipe). payd-vault's stderr is the operator's: it says why it refused (a
 * wrong passphrase, another vault's key).
 */
static int
unwrap(const pd_backup_restore_opts_t *o, const char *unseal_dir, const char *pass_file, const uint8_t *wrapped,
       size_t n, uint8_t *keys, char *err, size_t cap)
{
    size_t want = n * PD_BACKUP_KEY_LEN;
    static args_t a; /* 16 KiB: not on the stack */
    int in[2] = {-1, -1}, out[2] = {-1, -1}, status = 0, rc = PD_ERR_IO;
    memset(&a, 0, sizeof(a));
    bool ok = arg(&a, o->vault_bin) && arg(&a, "--unwrap-backup-key") && arg(&a, "--data-dir") && arg(&a, unseal_dir);
    if (pass_file != NULL)
        ok = ok && arg(&a, "--passphrase-file") && arg(&a, pass_file);
    for (int i = 0; i < o->nshares; i++)
        ok = ok && arg(&a, "--share-file") && arg(&a, o->share_files[i]);
    if (!ok) {
        snprintf(err, cap, "too many or too long arguments for payd-vault");
        return PD_ERR_TOOBIG;
    }
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        snprintf(err, cap, "cannot make pipes: %s", strerror(errno));
        goto out;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, cap, "cannot start %s: %s", o->vault_bin, strerror(errno));
        goto out;
    }
    if (pid == 0) {
        if (dup2(in[0], STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0)
            _exit(127);
        execv(a.v[0], a.v);
        _exit(127);
    }
    close(in[0]), in[0] = -1;
    close(out[1]), out[1] = -1;
    void (*old)(int) = signal(SIGPIPE, SIG_IGN); /* a vault that exits early must not kill payctl */
    size_t put = 0, len = n * PD_BACKUP_WRAPPED_LEN;
    while (put < len) {
        ssize_t k = write(in[1], wrapped + put, len - put);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        put += (size_t)k;
    }
    bool sent = put == len;
    close(in[1]), in[1] = -1;
    size_t got = 0;
    while (got < want) {
        ssize_t k = read(out[0], keys + got, want - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    uint8_t extra;
    bool more = got == want && read(out[0], &extra, 1) > 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    signal(SIGPIPE, old);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    if (code == 3) {
        snprintf(err, cap, "payd-vault refused to open the archive's key (above): a wrong passphrase or shares, or "
                           "an archive of another vault");
        rc = PD_ERR_AUTH;
    } else if (code != 0 || !sent || got != want || more) {
        snprintf(err, cap, "payd-vault could not unwrap the archive's key (exit code %d)", code);
        rc = code == 2 ? PD_ERR_INVALID : PD_ERR_IO;
    } else {
        rc = 0;
    }
out:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
    }
    if (rc != 0)
        OPENSSL_cleanse(keys, want);
    return rc;
}

/* makes the parent directories of name under work (0700; their final modes are set at the end) */
static int
make_parents(const char *work, const char *name)
{
    char path[4400];
    for (const char *p = strchr(name, '/'); p != NULL; p = strchr(p + 1, '/')) {
        if (pd_bk_path(path, sizeof(path), "%s/%.*s", work, (int)(p - name), name) != 0)
            return PD_ERR_TOOBIG;
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -errno;
    }
    return 0;
}

/* every part into work; their number checked against the end mark */
static int
extract(const pd_backup_restore_opts_t *o, pd_bk_in_t *in, const char *work, pd_backup_report_t *rep, char *err,
        size_t cap)
{
    char path[4600];
    pd_bk_part_t p;
    bool end = false;
    int64_t count = 0;
    int rc;
    while ((rc = pd_bk_next(in, &p, &end, &count, err, cap)) == 0 && !end) {
        if ((rc = pd_bk_path(path, sizeof(path), "%s/%s", work, p.name)) != 0)
            return rc;
        if ((rc = make_parents(work, p.name)) != 0) {
            snprintf(err, cap, "cannot make the directories of %s: %s", p.name, pd_strerror(rc));
            return rc;
        }
        /* O_EXCL: a name twice in an archive is an error, never an overwrite */
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            rc = errno == EEXIST ? PD_ERR_INVALID : -errno;
            snprintf(err, cap, "part %s: %s", p.name, errno == EEXIST ? "twice in the archive" : strerror(errno));
            return rc;
        }
        rc = pd_bk_copy_part(in, &p, fd, err, cap);
        if (rc == 0 && fsync(fd) != 0) {
            rc = -errno;
            snprintf(err, cap, "cannot sync %s: %s", p.name, strerror(errno));
        }
        close(fd);
        /* at most rw for the owner and r for the group, whatever the archive says */
        if (rc == 0 && chmod(path, p.mode & 0640) != 0)
            rc = -errno;
        if (rc != 0)
            return rc;
        rep->parts++;
        rep->bytes += p.size;
        say(o, "  %s (%llu bytes, SHA-256 checked)", p.name, (unsigned long long)p.size);
    }
    if (rc != 0)
        return rc;
    if (count != rep->parts) {
        snprintf(err, cap, "the archive's end mark counts %lld parts, %lld were read", (long long)count,
                 (long long)rep->parts);
        return PD_ERR_INVALID;
    }
    return pd_bk_finish(in, err, cap);
}

/* the databases' integrity, the ledger, the vault's audit chain */
static int
check(const pd_backup_restore_opts_t *o, const char *work, pd_backup_report_t *rep, char *err, size_t cap)
{
    char path[4400];
    static const char *const dbs[] = {"payd.db", "vault/vault.db", "simulator.db"};
    pd_db_t *db = NULL;
    int rc;
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        if ((rc = pd_bk_path(path, sizeof(path), "%s/%s", work, dbs[i])) != 0)
            return rc;
        if (i == 2 && access(path, F_OK) != 0)
            continue;
        if (access(path, F_OK) != 0) {
            snprintf(err, cap, "the archive has no %s", dbs[i]);
            return PD_ERR_INVALID;
        }
        if ((rc = pd_sqlite_integrity(path, err, cap)) != 0)
            return rc;
        say(o, "%s: integrity_check ok", dbs[i]);
    }
    pd_ledger_report_t lr;
    if ((rc = pd_bk_path(path, sizeof(path), "%s/payd.db", work)) != 0)
        return rc;
    if ((rc = pd_db_open_sqlite(&db, path, false)) != 0) {
        snprintf(err, cap, "cannot open the restored payd.db: %s", pd_strerror(rc));
        return rc;
    }
    rc = pd_ledger_verify(db, &lr);
    db->ops->close(db);
    if (rc != 0) {
        snprintf(err, cap, "the restored ledger %s%s", rc == PD_ERR_STATE ? "is broken: " : "cannot be verified: ",
                 rc == PD_ERR_STATE && lr.nproblems > 0 ? lr.problems[0] : pd_strerror(rc));
        return rc == PD_ERR_STATE ? rc : PD_ERR_INVALID;
    }
    rep->ledger_entries = lr.entries;
    rep->charges = lr.charges;
    say(o, "ledger verified: %lld entries, %lld charges", (long long)lr.entries, (long long)lr.charges);
    pd_audit_report_t ar;
    if ((rc = pd_bk_path(path, sizeof(path), "%s/vault/vault.db", work)) != 0)
        return rc;
    if ((rc = pd_db_open_sqlite(&db, path, false)) != 0) {
        snprintf(err, cap, "cannot open the restored vault.db: %s", pd_strerror(rc));
        return rc;
    }
    rc = pd_audit_verify(db, &ar);
    db->ops->close(db);
    if (rc != 0) {
        if (rc == PD_ERR_AUTH)
            snprintf(err, cap, "the vault's audit chain is broken at record %lld: %s", (long long)ar.first_bad_seq,
                     ar.problem);
        else
            snprintf(err, cap, "the vault's audit chain cannot be verified: %s", pd_strerror(rc));
        return PD_ERR_STATE;
    }
    rep->audit_records = ar.records;
    say(o, "vault audit chain verified: %lld records", (long long)ar.records);
    return 0;
}

static int
chown_entry(const char *path, const struct stat *sb, int flag, struct FTW *f);
static const pd_backup_restore_opts_t *g_owner_opts; /* nftw has no argument: set for one walk */
static size_t g_work_len;

static int
chown_entry(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    const char *rel = path + g_work_len;
    bool vault = strncmp(rel, "/vault", 6) == 0 && (rel[6] == '\0' || rel[6] == '/');
    const pd_backup_restore_opts_t *o = g_owner_opts;
    return lchown(path, vault ? o->vault_uid : o->payd_uid, vault ? o->vault_gid : o->payd_gid) != 0 ? -1 : 0;
}

/* the modes (and owners, as root) payd and payd-vault expect at their start */
static int
settle(const pd_backup_restore_opts_t *o, const char *work, char *err, size_t cap)
{
    char path[4400];
    static const struct {
        const char *dir;
        mode_t mode;
    } dirs[] = {{"vault", 0710}, {"vault/credentials", 0710}, {"tls", 0700}, {"files", 0700}};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        if (pd_bk_path(path, sizeof(path), "%s/%s", work, dirs[i].dir) != 0)
            return PD_ERR_TOOBIG;
        if (access(path, F_OK) == 0 && chmod(path, dirs[i].mode) != 0) {
            snprintf(err, cap, "cannot chmod %s: %s", path, strerror(errno));
            return -errno;
        }
    }
    /* the vault's user passes through payd's data dir to its own, as payd --dev sets it */
    if (chmod(work, o->set_owners ? 0711 : 0700) != 0) {
        snprintf(err, cap, "cannot chmod %s: %s", work, strerror(errno));
        return -errno;
    }
    if (o->set_owners) {
        g_owner_opts = o;
        g_work_len = strlen(work);
        if (nftw(work, chown_entry, 16, FTW_PHYS) != 0) {
            snprintf(err, cap, "cannot give the restored files to their users: %s", strerror(errno));
            return PD_ERR_PERM;
        }
    }
    return 0;
}

/* "YYYY-MM-DD HH:MM:SS.mmm UTC" */
static const char *
utc(char *out, size_t cap, int64_t ms)
{
    struct tm tm;
    time_t t = (time_t)(ms / 1000);
    gmtime_r(&t, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03d UTC", (int)(ms % 1000));
    return out;
}

/* --until: a database of the archive (payd.db, or vault/vault.db) rolled forward from its
 * WAL position (the part NAME.walpos) with the WAL archive wal. 0 with *missing when the
 * archive holds no position for it. */
static int
roll_one(const pd_backup_restore_opts_t *o, const char *work, const char *db, const pd_bk_wal_t *wal,
         pd_bk_replay_t *st, int64_t *at_ms, bool *missing, char *err, size_t cap)
{
    char path[4600], line[200], t1[64], t2[64];
    pd_wal_pos_t from;
    ssize_t n = -1;
    *missing = false;
    if (pd_bk_path(path, sizeof(path), "%s/%s.walpos", work, db) != 0)
        return PD_ERR_TOOBIG;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        *missing = true;
        return 0;
    }
    n = read(fd, line, sizeof(line));
    close(fd);
    (void)unlink(path); /* the archive's, not a file of a data dir */
    if (n <= 0 || pd_backup_walpos_dec(line, (size_t)n, &from, at_ms) != 0) {
        snprintf(err, cap, "the archive's %s.walpos is malformed", db);
        return PD_ERR_INVALID;
    }
    if (o->until_ms < *at_ms) {
        snprintf(err, cap, "--until %s is before this backup's copy of %s (%s): restore an older backup",
                 utc(t1, sizeof(t1), o->until_ms), db, utc(t2, sizeof(t2), *at_ms));
        return PD_ERR_RANGE;
    }
    if (pd_bk_path(path, sizeof(path), "%s/%s", work, db) != 0)
        return PD_ERR_TOOBIG;
    int rc = pd_bk_wal_replay(wal, path, &from, o->until_ms, st, err, cap);
    if (rc != 0)
        return rc;
    if (st->chain_ended_ms != 0) {
        snprintf(err, cap, "the WAL archive %s: its chain from this backup ends at %s (a new chain started then, "
                           "docs/backup.md): a restore to a later time needs a backup taken after it",
                 wal->dir, utc(t1, sizeof(t1), st->chain_ended_ms));
        return PD_ERR_RANGE;
    }
    say(o, "%s rolled forward: %lld records of the WAL archive (%lld frames, %lld pages), to %s", db,
        (long long)st->records, (long long)st->frames, (long long)st->pages,
        utc(t1, sizeof(t1), st->last_ms != 0 ? st->last_ms : *at_ms));
    return 0;
}

/* --until: the payments copy, and the vault's when the vault archives its WAL too */
static int
roll_forward(const pd_backup_restore_opts_t *o, const char *work, const pd_bk_wal_t *wal, const pd_bk_wal_t *vwal,
             pd_backup_report_t *rep, char *err, size_t cap)
{
    pd_bk_replay_t st, vst;
    int64_t at_ms = 0, vat_ms = 0;
    bool missing = false;
    int rc = roll_one(o, work, "payd.db", wal, &st, &at_ms, &missing, err, cap);
    if (rc == 0 && missing) {
        snprintf(err, cap, "this archive holds no WAL position (made while payd was stopped, or by an older payctl): it "
                           "restores to its own time only, without --until");
        rc = PD_ERR_STATE;
    }
    if (rc != 0)
        return rc;
    rep->wal_records = st.records;
    rep->wal_frames = st.frames;
    rep->rolled_to_ms = st.last_ms != 0 ? st.last_ms : at_ms;
    if (vwal->n == 0 || (rc = roll_one(o, work, "vault/vault.db", vwal, &vst, &vat_ms, &missing, err, cap)) != 0 ||
        missing)
        say(o, "vault/vault.db: as of the backup (%s)", vwal->n == 0 ? "its WAL archive has no segment before the time"
                                                                   : "the archive holds no WAL position for it");
    return rc;
}

int
pd_backup_restore(const pd_backup_restore_opts_t *o, pd_backup_report_t *rep, char *err, size_t cap)
{
    char work[4500] = "", unseal[4600], pass[4700], parent[4300];
    uint8_t key[PD_BACKUP_KEY_LEN];
    pd_bk_in_t in = {.cancel = o->cancel};
    pd_view_t id, wrapped;
    pd_backup_header_t h;
    pd_bk_wal_t wal = {0}, vwal = {0};
    uint8_t *wrapped_all = NULL, *keys = NULL;
    size_t nkeys = 1;
    int rc;

    memset(rep, 0, sizeof(*rep));
    if (o->target != NULL && (rc = target_free(o->target, err, cap)) != 0)
        return rc;
    /* --until: the segments that may matter, whose keys payd-vault unwraps with the archive's */
    if (o->until_ms > 0 && o->target != NULL) {
        if ((rc = pd_bk_wal_open(&wal, o->wal_dir, o->until_ms, err, cap)) != 0) {
            pd_bk_wal_free(&wal);
            return rc;
        }
        nkeys += wal.n;
        say(o, "WAL archive %s: %zu segments made before the time", o->wal_dir, wal.n);
        /* the vault's, when it archives too: optional (a vault without it is restored as of the backup) */
        char verr[512];
        if (o->vault_wal_dir != NULL && pd_bk_wal_open(&vwal, o->vault_wal_dir, o->until_ms, verr, sizeof(verr)) == 0) {
            nkeys += vwal.n;
            say(o, "vault WAL archive %s: %zu segments made before the time", o->vault_wal_dir, vwal.n);
        } else {
            pd_bk_wal_free(&vwal);
        }
    }
    if ((rc = pd_file_reader_open(&in.r, o->archive, &id, &wrapped)) != 0) {
        if (rc == PD_ERR_INVALID || rc == PD_ERR_TRUNCATED)
            snprintf(err, cap, "%s is not a payd backup archive (%s)", o->archive,
                     rc == PD_ERR_TRUNCATED ? "its header is cut short" : "no encrypted-file header");
        else
            snprintf(err, cap, "cannot read %s: %s", o->archive, pd_strerror(rc));
        return rc == PD_ERR_TRUNCATED ? PD_ERR_INVALID : rc;
    }
    if (id.len != strlen(PD_BACKUP_FILE_ID) || memcmp(id.p, PD_BACKUP_FILE_ID, id.len) != 0) {
        snprintf(err, cap, "%s is an encrypted payd file but not a backup archive", o->archive);
        rc = PD_ERR_INVALID;
        goto out;
    }
    char herr[256];
    if ((rc = pd_backup_header_dec(wrapped, &h, herr, sizeof(herr))) != 0) {
        snprintf(err, cap, "%s: %s", o->archive, herr);
        goto out;
    }
    rep->dev = (h.flags & PD_BACKUP_F_DEV) != 0;
    if (o->passphrase_file == NULL && !rep->dev && o->nshares == 0 && h.unseal == PD_BACKUP_UNSEAL_PASSPHRASE &&
        getenv("PAYD_VAULT_PASSPHRASE") == NULL) {
        snprintf(err, cap, "this archive's root key is sealed under the vault's passphrase: give --passphrase-file F");
        rc = PD_ERR_AUTH;
        goto out;
    }
    if (h.unseal == PD_BACKUP_UNSEAL_SHARES && o->nshares == 0) {
        snprintf(err, cap, "this archive's vault is unsealed by Shamir shares: give --share-file F for each share");
        rc = PD_ERR_AUTH;
        goto out;
    }
    /* a private directory: target's parent (the rename at the end stays on one file system), else $TMPDIR */
    if (o->target != NULL) {
        snprintf(parent, sizeof(parent), "%s", o->target);
        size_t n = strlen(parent);
        while (n > 1 && parent[n - 1] == '/')
            parent[--n] = '\0';
        char *slash = strrchr(parent, '/');
        const char *base = slash != NULL ? slash + 1 : parent;
        char dir[4300];
        if (slash == NULL)
            snprintf(dir, sizeof(dir), ".");
        else
            snprintf(dir, sizeof(dir), "%.*s", slash == parent ? 1 : (int)(slash - parent), parent);
        if ((rc = pd_bk_path(work, sizeof(work), "%s/.%s.restore-XXXXXX", dir, base)) != 0) {
            snprintf(err, cap, "path too long: %s", o->target);
            work[0] = '\0';
            goto out;
        }
        snprintf(parent, sizeof(parent), "%s", dir);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(work, sizeof(work), "%s/payd-verify-XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    }
    if (mkdtemp(work) == NULL) {
        rc = -errno;
        snprintf(err, cap, "cannot make a temporary directory %s: %s", work, strerror(errno));
        work[0] = '\0';
        goto out;
    }
    /* the sealed root key (and a dev passphrase) from the clear header, for payd-vault only */
    snprintf(unseal, sizeof(unseal), "%s/.unseal", work);
    if (mkdir(unseal, 0700) != 0) {
        rc = -errno;
        snprintf(err, cap, "cannot make %s: %s", unseal, strerror(errno));
        goto out;
    }
    snprintf(pass, sizeof(pass), "%s/root.key", unseal);
    if (h.keyfile.len > 0 && (rc = write_file(pass, h.keyfile, 0600)) != 0) {
        snprintf(err, cap, "cannot write %s: %s", pass, pd_strerror(rc));
        goto out;
    }
    const char *pass_file = o->passphrase_file;
    if (pass_file == NULL && rep->dev) {
        snprintf(pass, sizeof(pass), "%s/dev-passphrase", unseal);
        if ((rc = write_file(pass, h.devpass, 0600)) != 0) {
            snprintf(err, cap, "cannot write %s: %s", pass, pd_strerror(rc));
            goto out;
        }
        pass_file = pass;
        say(o, "dev archive: unsealing with the dev passphrase it carries");
    }
    if ((wrapped_all = malloc(nkeys * PD_BACKUP_WRAPPED_LEN)) == NULL ||
        (keys = malloc(nkeys * PD_BACKUP_KEY_LEN)) == NULL) {
        rc = PD_ERR_NOMEM;
        goto out;
    }
    memcpy(wrapped_all, h.wrapped.p, PD_BACKUP_WRAPPED_LEN);
    for (size_t i = 0; i < wal.n; i++)
        memcpy(wrapped_all + (i + 1) * PD_BACKUP_WRAPPED_LEN, wal.segs[i].wrapped, PD_BACKUP_WRAPPED_LEN);
    for (size_t i = 0; i < vwal.n; i++)
        memcpy(wrapped_all + (1 + wal.n + i) * PD_BACKUP_WRAPPED_LEN, vwal.segs[i].wrapped, PD_BACKUP_WRAPPED_LEN);
    if ((rc = unwrap(o, unseal, pass_file, wrapped_all, nkeys, keys, err, cap)) != 0)
        goto out;
    memcpy(key, keys, PD_BACKUP_KEY_LEN);
    if (wal.n > 0)
        memcpy(wal.keys, keys + PD_BACKUP_KEY_LEN, wal.n * PD_WAL_KEY_LEN);
    if (vwal.n > 0)
        memcpy(vwal.keys, keys + (1 + wal.n) * PD_BACKUP_KEY_LEN, vwal.n * PD_WAL_KEY_LEN);
    OPENSSL_cleanse(keys, nkeys * PD_BACKUP_KEY_LEN);
    pd_file_reader_key(in.r, key);
    OPENSSL_cleanse(key, sizeof(key));
    rm_tree(unseal);
    say(o, "archive key unwrapped by the vault's root key; decrypting");
    if ((in.buf = malloc(PD_FILE_CHUNK)) == NULL) {
        rc = PD_ERR_NOMEM;
        goto out;
    }
    if ((rc = extract(o, &in, work, rep, err, cap)) != 0)
        goto out;
    if (wal.n > 0 && (rc = roll_forward(o, work, &wal, &vwal, rep, err, cap)) != 0)
        goto out;
    /* the WAL positions are the archive's, not files of a data dir */
    if (pd_bk_path(pass, sizeof(pass), "%s/%s", work, PD_BACKUP_WALPOS) == 0)
        (void)unlink(pass);
    if (pd_bk_path(pass, sizeof(pass), "%s/vault/%s", work, PD_BACKUP_VAULT_WALPOS) == 0)
        (void)unlink(pass);
    if ((rc = check(o, work, rep, err, cap)) != 0)
        goto out;
    if (o->target == NULL) {
        say(o, "archive verified: %lld parts, %llu bytes", (long long)rep->parts, (unsigned long long)rep->bytes);
        goto out; /* verify: the temporary directory goes */
    }
    if (o->cancel != NULL && *o->cancel) {
        snprintf(err, cap, "interrupted");
        rc = PD_ERR_CLOSED;
        goto out;
    }
    if ((rc = settle(o, work, err, cap)) != 0)
        goto out;
    /* an empty target is replaced by the rename; one that appeared meanwhile stops it */
    if ((rc = target_free(o->target, err, cap)) != 0)
        goto out;
    if (rename(work, o->target) != 0) {
        rc = -errno;
        snprintf(err, cap, "cannot rename %s to %s: %s", work, o->target, strerror(errno));
        goto out;
    }
    work[0] = '\0';
    if ((rc = pd_fsync_dir(parent)) != 0) {
        snprintf(err, cap, "restored, but cannot sync %s: %s", parent, pd_strerror(rc));
        goto out;
    }
    say(o, "restored into %s: %lld parts, %llu bytes", o->target, (long long)rep->parts,
        (unsigned long long)rep->bytes);
out:
    if (in.buf != NULL) {
        OPENSSL_cleanse(in.buf, PD_FILE_CHUNK);
        free(in.buf);
    }
    if (keys != NULL)
        OPENSSL_cleanse(keys, nkeys * PD_BACKUP_KEY_LEN);
    free(keys);
    free(wrapped_all);
    pd_bk_wal_free(&wal);
    pd_bk_wal_free(&vwal);
    pd_file_reader_close(in.r);
    rm_tree(work);
    return rc;
}
