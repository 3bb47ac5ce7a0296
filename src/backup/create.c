/*
 * payctl backup create (payd/backup.h, docs/backup.md): snapshots of the payments
 * store and of the vault, the vault's files and payd's dev files, in one archive under
 * a data key that only the vault's root key unwraps.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "backup/internal.h"
#include "payd/db.h"
#include "payd/snapshot.h"
#include "payd/time.h"
#include "payd/vault.h"

/* payd's files that `payd --dev` needs to start on the restored state (when present) */
static const char *const dev_files[] = {"credentials.json", "node_id", "tls/ca.pem", "tls/ca-key.pem",
                                        "tls/server.pem", "tls/server-key.pem"};
/* the vault's credentials (DIR/credentials/<principal>) */
static const char *const principals[] = {"admin", "api", "processor", "rotation"};

#define say(o, ...) pd_backup_say((o)->progress, (o)->arg, __VA_ARGS__)

/* a small file's whole content (at most cap bytes) */
static int
slurp(const char *path, uint8_t *out, size_t cap, size_t *n, char *err, size_t ecap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, ecap, "cannot read %s: %s", path, strerror(errno));
        return -errno;
    }
    ssize_t k = read(fd, out, cap);
    uint8_t extra;
    bool more = k >= 0 && (size_t)k == cap && read(fd, &extra, 1) == 1;
    close(fd);
    if (k <= 0 || more) {
        snprintf(err, ecap, "%s is %s", path, k <= 0 ? "empty or unreadable" : "too long");
        return PD_ERR_INVALID;
    }
    *n = (size_t)k;
    return 0;
}

/* the vault's WAL position in the work dir, before it goes into the archive as vault/... */
#define VAULT_WALPOS_FILE "vault-" PD_BACKUP_VAULT_WALPOS

/* a new file (0600) holding n bytes, synced */
static int
write_small(const char *path, const char *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    int r = write(fd, p, n) == (ssize_t)n && fsync(fd) == 0 ? 0 : (errno != 0 ? -errno : PD_ERR_IO);
    close(fd);
    return r;
}

/* the vault's admin operation op; its JSON into *json (the caller frees) and its secret part into r */
static int
vault_op(const pd_backup_create_opts_t *o, const char *op, pd_vault_reply_t *r, json_t **json, char *err, size_t cap)
{
    const char *text = NULL;
    json_error_t je;
    int rc = pd_vault_admin_sync(o->vault, op, PD_VIEW_LIT("{}"), r);
    if (rc != 0) {
        snprintf(err, cap, "the vault refused %s: %s", op, r->text[0] != '\0' ? r->text : pd_strerror(rc));
        return rc;
    }
    if (pd_buf_cstr(&r->data, &text) != 0 || (*json = json_loads(text, 0, &je)) == NULL || !json_is_object(*json)) {
        snprintf(err, cap, "the vault's answer to %s is not a JSON object", op);
        return PD_ERR_PROTOCOL;
    }
    return 0;
}

static bool
exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

typedef struct {
    char work[4300];     /* private temporary dir next to the archive */
    char vault_dir[4200];
    char snapshot[4200]; /* the vault's copy of vault.db ("" when none) */
    uint8_t key[PD_BACKUP_KEY_LEN];
    uint8_t wrapped[PD_BACKUP_WRAPPED_LEN];
    uint8_t keyfile[PD_BACKUP_KEYFILE_MAX];
    uint8_t devpass[PD_BACKUP_DEVPASS_MAX];
    size_t keyfile_len, devpass_len;
} job_t;

/* the data key, from the vault */
static int
get_key(const pd_backup_create_opts_t *o, job_t *j, char *err, size_t cap)
{
    pd_vault_reply_t r;
    json_t *js = NULL;
    int rc = vault_op(o, "backup.key", &r, &js, err, cap);
    const char *hex = rc == 0 ? json_string_value(json_object_get(js, "wrapped")) : NULL;
    if (rc == 0 && (hex == NULL || strlen(hex) != 2 * PD_BACKUP_WRAPPED_LEN || r.data2.len != PD_BACKUP_KEY_LEN ||
                    pd_unhex(hex, strlen(hex), j->wrapped) != 0)) {
        snprintf(err, cap, "the vault's answer to backup.key is malformed");
        rc = PD_ERR_PROTOCOL;
    }
    if (rc == 0)
        memcpy(j->key, r.data2.p, PD_BACKUP_KEY_LEN);
    json_decref(js);
    pd_vault_reply_free(&r);
    return rc;
}

/* the vault's own copy of vault.db, and where its directory is */
static int
get_vault_snapshot(const pd_backup_create_opts_t *o, job_t *j, char *err, size_t cap)
{
    pd_vault_reply_t r;
    json_t *js = NULL;
    int rc = vault_op(o, "backup.snapshot", &r, &js, err, cap);
    const char *path = rc == 0 ? json_string_value(json_object_get(js, "path")) : NULL;
    const char *dir = rc == 0 ? json_string_value(json_object_get(js, "dir")) : NULL;
    char want[4300];
    struct stat sb;
    if (rc == 0 && (path == NULL || dir == NULL || dir[0] != '/' || strstr(dir, "/../") != NULL ||
                    snprintf(want, sizeof(want), "%s/%s", dir, PD_BACKUP_VAULT_SNAPSHOT) >= (int)sizeof(want) ||
                    strcmp(path, want) != 0)) {
        /* payctl runs as root: it reads and removes only the one file the vault may name */
        snprintf(err, cap, "the vault's answer to backup.snapshot is malformed");
        rc = PD_ERR_PROTOCOL;
    }
    if (rc == 0 && lstat(path, &sb) != 0) {
        snprintf(err, cap, "cannot read the vault's copy %s (is payctl on the vault's host?): %s", path,
                 strerror(errno));
        rc = PD_ERR_IO;
    } else if (rc == 0 && !S_ISREG(sb.st_mode)) {
        snprintf(err, cap, "the vault's copy %s is not a regular file", path);
        rc = PD_ERR_IO;
    }
    if (rc == 0) {
        snprintf(j->snapshot, sizeof(j->snapshot), "%s", path);
        snprintf(j->vault_dir, sizeof(j->vault_dir), "%s", dir);
        say(o, "vault store: %lld pages copied by the vault", (long long)json_integer_value(json_object_get(js, "pages")));
    }
    /* the copy's place in vault.db's WAL, when the vault archives it ([backup] wal_archive) */
    json_t *wal = rc == 0 ? json_object_get(js, "wal") : NULL;
    if (wal != NULL) {
        static const char *const f[] = {"salt1", "salt2", "page_size", "frame", "ck0", "ck1", "big_endian"};
        json_int_t v[7];
        bool ok = json_is_object(wal);
        for (size_t i = 0; ok && i < 7; i++) {
            json_t *x = json_object_get(wal, f[i]);
            ok = json_is_integer(x) && (v[i] = json_integer_value(x)) >= 0 && v[i] <= UINT32_MAX;
        }
        pd_wal_pos_t pos = {.salt1 = (uint32_t)v[0], .salt2 = (uint32_t)v[1], .page_size = (uint32_t)v[2],
                            .frame = (uint32_t)v[3], .ck = {(uint32_t)v[4], (uint32_t)v[5]}, .big_endian = v[6] != 0};
        char line[200], walpos[4400];
        int n = ok ? pd_backup_walpos_enc(line, sizeof(line), &pos, pd_real_ms()) : PD_ERR_PROTOCOL;
        snprintf(walpos, sizeof(walpos), "%s/%s", j->work, VAULT_WALPOS_FILE);
        if ((rc = n < 0 ? n : write_small(walpos, line, (size_t)n)) != 0)
            snprintf(err, cap, "the vault's WAL position: %s", pd_strerror(rc));
    }
    json_decref(js);
    pd_vault_reply_free(&r);
    return rc;
}

/* how the vault unseals: its key file (and a dev passphrase), or shares; a PKCS#11 root key is refused */
static int
read_unseal(const pd_backup_create_opts_t *o, job_t *j, pd_backup_header_t *h, char *err, size_t cap)
{
    char path[4300];
    int rc;
    snprintf(path, sizeof(path), "%s/root.p11", j->vault_dir);
    if (exists(path)) {
        snprintf(err, cap, "the vault's root key is in a PKCS#11 token (%s): payctl backup supports a passphrase-sealed "
                           "root.key or Shamir shares (docs/backup.md)", path);
        return PD_ERR_STATE;
    }
    snprintf(path, sizeof(path), "%s/root.key", j->vault_dir);
    h->unseal = PD_BACKUP_UNSEAL_SHARES;
    if (exists(path)) {
        if ((rc = slurp(path, j->keyfile, sizeof(j->keyfile), &j->keyfile_len, err, cap)) != 0)
            return rc;
        h->unseal = PD_BACKUP_UNSEAL_PASSPHRASE;
        h->keyfile = (pd_view_t){j->keyfile, j->keyfile_len};
    }
    snprintf(path, sizeof(path), "%s/dev-passphrase", j->vault_dir);
    if (exists(path)) {
        if (h->unseal != PD_BACKUP_UNSEAL_PASSPHRASE) {
            snprintf(err, cap, "%s exists but the vault has no root.key", path);
            return PD_ERR_STATE;
        }
        if ((rc = slurp(path, j->devpass, sizeof(j->devpass), &j->devpass_len, err, cap)) != 0)
            return rc;
        h->flags |= PD_BACKUP_F_DEV;
        h->devpass = (pd_view_t){j->devpass, j->devpass_len};
        say(o, "WARNING: this is a dev vault: its passphrase (%s) travels INSIDE the archive, readable by anyone "
               "who has the archive. Never use dev mode for real cards.", path);
    }
    return 0;
}

typedef struct {
    pd_bk_out_t *out;
    const char *dir;
    char *err;
    size_t cap;
    int64_t added, missing;
} fs_walk_t;

/* one row of the copy's files table: its bytes, when the file store has them */
static int
fs_row(const pd_row_t *row, void *arg)
{
    fs_walk_t *w = arg;
    char id[PD_BK_NAME_MAX], name[PD_BK_NAME_MAX + 8], path[4400];
    if (pd_row_copy(row, 0, id, sizeof(id)) != 0 || !pd_bk_name_ok(id, strlen(id)) ||
        pd_bk_path(path, sizeof(path), "%s/%s", w->dir, id) != 0 ||
        pd_bk_path(name, sizeof(name), "files/%s", id) != 0 || !pd_bk_name_ok(name, strlen(name))) {
        w->missing++;
        return 0;
    }
    if (!exists(path)) {
        w->missing++; /* removed since the copy (expired), or never stored on this host */
        return 0;
    }
    int r = pd_bk_put_file(w->out, name, path, w->err, w->cap);
    if (r != 0)
        return r < 0 ? r : PD_ERR_IO;
    w->added++;
    return 0;
}

/*
 * The file store's files the payments copy lists, but backups (an archive must not hold
 * the ones before it): the copy's index and these bytes agree, since the store writes a
 * file's bytes before its row. Their data keys are wrapped under alias/files, whose key
 * versions are in the vault's copy, taken after.
 */
static int
put_file_store(const pd_backup_create_opts_t *o, job_t *j, pd_bk_out_t *out, char *err, size_t cap)
{
    char path[4500];
    pd_db_t *db = NULL;
    int64_t has = 0;
    fs_walk_t w = {out, o->files_dir, err, cap, 0, 0};
    if (o->files_dir == NULL || pd_bk_path(path, sizeof(path), "%s/payd.db", j->work) != 0)
        return 0;
    err[0] = '\0';
    int rc = pd_db_open_sqlite(&db, path, false);
    if (rc == 0)
        rc = pd_db_query_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'files'", NULL,
                             0, &has);
    if (rc == 0 && has > 0)
        rc = pd_db_query(db, "SELECT id FROM files WHERE purpose <> 'backup' ORDER BY seq", NULL, 0, fs_row, &w);
    if (db != NULL)
        db->ops->close(db);
    if (rc != 0) {
        if (err[0] == '\0')
            snprintf(err, cap, "cannot read the file store's index in the copy of payd.db: %s", pd_strerror(rc));
        return rc;
    }
    if (has > 0)
        say(o, "file store: %lld files%s", (long long)w.added,
            w.missing > 0 ? " (some listed files have no bytes here: not in the archive)" : "");
    return 0;
}

/* every part, in the order restore writes them */
static int
put_parts(const pd_backup_create_opts_t *o, job_t *j, pd_bk_out_t *out, char *err, size_t cap)
{
    char path[4500], name[PD_BK_NAME_MAX + 1];
    int rc;
    snprintf(path, sizeof(path), "%s/payd.db", j->work);
    if ((rc = pd_bk_put_file(out, "payd.db", path, err, cap)) != 0)
        return rc;
    snprintf(path, sizeof(path), "%s/%s", j->work, PD_BACKUP_WALPOS);
    if (exists(path) && (rc = pd_bk_put_file(out, PD_BACKUP_WALPOS, path, err, cap)) != 0)
        return rc;
    snprintf(path, sizeof(path), "%s/simulator.db", j->work);
    if (exists(path) && (rc = pd_bk_put_file(out, "simulator.db", path, err, cap)) != 0)
        return rc;
    for (size_t i = 0; i < sizeof(dev_files) / sizeof(dev_files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", o->data_dir, dev_files[i]);
        if (exists(path) && (rc = pd_bk_put_file(out, dev_files[i], path, err, cap)) != 0)
            return rc;
    }
    if ((rc = put_file_store(o, j, out, err, cap)) != 0)
        return rc;
    if ((rc = pd_bk_put_file(out, "vault/vault.db", j->snapshot, err, cap)) != 0)
        return rc;
    snprintf(path, sizeof(path), "%s/%s", j->work, VAULT_WALPOS_FILE);
    if (exists(path) && (rc = pd_bk_put_file(out, "vault/" PD_BACKUP_VAULT_WALPOS, path, err, cap)) != 0)
        return rc;
    static const char *const vault_files[] = {"root.key", "dev-passphrase"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", j->vault_dir, vault_files[i]);
        snprintf(name, sizeof(name), "vault/%s", vault_files[i]);
        if (exists(path) && (rc = pd_bk_put_file(out, name, path, err, cap)) != 0)
            return rc;
    }
    for (size_t i = 0; i < sizeof(principals) / sizeof(principals[0]); i++) {
        snprintf(path, sizeof(path), "%s/credentials/%s", j->vault_dir, principals[i]);
        snprintf(name, sizeof(name), "vault/credentials/%s", principals[i]);
        if (exists(path) && (rc = pd_bk_put_file(out, name, path, err, cap)) != 0)
            return rc;
    }
    return pd_bk_put_end(out);
}

static void
cleanup(job_t *j)
{
    char path[4400];
    static const char *const work_files[] = {"payd.db", "simulator.db", PD_BACKUP_WALPOS, VAULT_WALPOS_FILE};
    for (size_t i = 0; j->work[0] != '\0' && i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s", j->work, work_files[i]);
        (void)unlink(path);
    }
    if (j->work[0] != '\0')
        (void)rmdir(j->work);
    if (j->snapshot[0] != '\0')
        (void)unlink(j->snapshot);
    OPENSSL_cleanse(j->key, sizeof(j->key));
    OPENSSL_cleanse(j->devpass, sizeof(j->devpass));
}

int
pd_backup_create(const pd_backup_create_opts_t *o, pd_backup_stats_t *st, char *err, size_t cap)
{
    char dir[4200], src[4400], dst[4500];
    const char *base;
    job_t *j = calloc(1, sizeof(*j));
    pd_bk_out_t out = {.cancel = o->cancel};
    pd_buf_t hdr;
    pd_backup_header_t h = {.version = PD_BACKUP_VERSION};
    int64_t pages = 0;
    struct stat sb;
    int rc = PD_ERR_NOMEM;

    memset(st, 0, sizeof(*st));
    pd_buf_init(&hdr, PD_FILE_WRAPPED_MAX);
    if (j == NULL || (out.buf = malloc(PD_BK_IOBUF)) == NULL) {
        snprintf(err, cap, "out of memory");
        goto out;
    }
    /* the archive's place: a new file in a directory that exists */
    snprintf(dir, sizeof(dir), "%s", o->out);
    char *slash = strrchr(dir, '/');
    base = slash != NULL ? o->out + (slash - dir) + 1 : o->out;
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        snprintf(err, cap, "--out %s: not a file name", o->out);
        rc = PD_ERR_INVALID;
        goto out;
    }
    if (lstat(o->out, &sb) == 0) {
        snprintf(err, cap, "--out %s exists: refusing to overwrite it", o->out);
        rc = PD_ERR_EXISTS;
        goto out;
    }
    const char *why = NULL;
    if (stat(dir, &sb) != 0)
        why = strerror(errno);
    else if (!S_ISDIR(sb.st_mode))
        why = "not a directory";
    else if (access(dir, W_OK | X_OK) != 0)
        why = strerror(errno);
    if (why != NULL) {
        snprintf(err, cap, "--out %s: cannot write in %s: %s", o->out, dir, why);
        rc = PD_ERR_PERM;
        goto out;
    }
    snprintf(j->work, sizeof(j->work), "%s/.payd-backup-XXXXXX", dir);
    if (mkdtemp(j->work) == NULL) {
        rc = -errno;
        snprintf(err, cap, "cannot make a temporary directory in %s: %s", dir, strerror(errno));
        j->work[0] = '\0';
        goto out;
    }
    if ((rc = get_key(o, j, err, cap)) != 0)
        goto out;
    /* the payments store first, then the vault: every card the payments reference is in the vault's copy */
    snprintf(dst, sizeof(dst), "%s/payd.db", j->work);
    pd_wal_pos_t pos;
    bool have_pos = false;
    if ((rc = pd_sqlite_snapshot_at(o->payd_db, dst, &pages, &pos, &have_pos, err, cap)) != 0)
        goto out;
    int64_t at_ms = pd_real_ms(); /* the copy holds no commit made after this */
    say(o, "payments store: %lld pages copied from %s", (long long)pages, o->payd_db);
    if (have_pos) {
        char line[200], walpos[4400];
        snprintf(walpos, sizeof(walpos), "%s/%s", j->work, PD_BACKUP_WALPOS);
        int n = pd_backup_walpos_enc(line, sizeof(line), &pos, at_ms);
        if ((rc = n < 0 ? n : write_small(walpos, line, (size_t)n)) != 0) {
            snprintf(err, cap, "cannot write %s: %s", walpos, pd_strerror(rc));
            goto out;
        }
        say(o, "payments store: the copy is at frame %u of its WAL (a restore can roll it forward: --until)", pos.frame);
    }
    snprintf(src, sizeof(src), "%s/simulator.db", o->data_dir);
    if (exists(src)) {
        snprintf(dst, sizeof(dst), "%s/simulator.db", j->work);
        if ((rc = pd_sqlite_snapshot(src, dst, &pages, err, cap)) != 0)
            goto out;
        say(o, "dev processor simulator: %lld pages copied", (long long)pages);
    }
    if ((rc = get_vault_snapshot(o, j, err, cap)) != 0)
        goto out;
    if ((rc = read_unseal(o, j, &h, err, cap)) != 0)
        goto out;
    st->dev = (h.flags & PD_BACKUP_F_DEV) != 0;
    h.wrapped = (pd_view_t){j->wrapped, sizeof(j->wrapped)};
    if ((rc = pd_backup_header_enc(&hdr, &h)) != 0) {
        snprintf(err, cap, "cannot encode the archive's header: %s", pd_strerror(rc));
        goto out;
    }
    if ((rc = pd_file_writer_open(&out.w, dir, base, PD_BACKUP_FILE_ID, j->key, pd_buf_view(&hdr))) != 0) {
        snprintf(err, cap, "cannot write %s: %s", o->out, pd_strerror(rc));
        goto out;
    }
    if ((rc = put_parts(o, j, &out, err, cap)) != 0) {
        pd_file_writer_abort(out.w);
        goto out;
    }
    if (o->cancel != NULL && *o->cancel) {
        pd_file_writer_abort(out.w);
        snprintf(err, cap, "interrupted");
        rc = PD_ERR_CLOSED;
        goto out;
    }
    rc = pd_file_writer_commit(out.w, NULL, NULL);
    if (rc != 0) {
        snprintf(err, cap, "cannot write %s: %s", o->out, pd_strerror(rc));
        goto out;
    }
    st->parts = out.parts;
    st->bytes = out.bytes;
    if (stat(o->out, &sb) == 0)
        st->archive_bytes = (uint64_t)sb.st_size;
    say(o, "archive %s: %lld parts, %llu bytes", o->out, (long long)st->parts, (unsigned long long)st->archive_bytes);
out:
    if (j != NULL)
        cleanup(j);
    free(j);
    free(out.buf);
    pd_buf_free_secure(&hdr);
    return rc;
}
