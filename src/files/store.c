/* The file store: encrypted bytes in [files] dir, their index in the payments store
 * (include/payd/file_store.h has the contract, docs/files.md the operator's view). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "payd/file_store.h"
#include "payd/id.h"
#include "payd/log.h"
#include "payd/time.h"

#define LEFTOVER_AGE_S 3600 /* bytes without a row, and temporary files, younger than this may be a write in progress */
#define SWEEP_EXPIRED_MAX 1000

static const pd_config_key_t keys[] = {
#define C(f) offsetof(pd_files_config_t, f)
    {"dir", PD_CT_PATH, C(dir), "",
     .help = "directory of the file store (empty: DATA_DIR/files); nodes share it by mounting one shared file system "
             "there"},
    {"report_expiry", PD_CT_MS, C(report_expiry_ms), "30d", 3600000, 3650LL * 86400000,
     .help = "a report run's file is removed this long after it is made"},
    {"backup_expiry", PD_CT_MS, C(backup_expiry_ms), "30d", 86400000, 3650LL * 86400000,
     .help = "a backup kept in the file store (payctl backup create without --out) is removed this long after"},
    {"janitor_interval", PD_CT_MS, C(janitor_interval_ms), "60s", 1000, 86400000,
     .help = "how often expired files and leftovers of interrupted writes are removed"},
#undef C
};

static pd_files_config_t g_cfg = {"", 30LL * 86400000, 30LL * 86400000, 60000};

int
pd_files_config_register(pd_config_t *cfg)
{
    return pd_config_add(cfg, "files", keys, sizeof(keys) / sizeof(keys[0]), &g_cfg);
}

const pd_files_config_t *
pd_files_config(void)
{
    return &g_cfg;
}

struct pd_files {
    char dir[4096];
    pd_store_t *store;
    pd_vault_client_t *vault;
};

struct pd_files_put {
    pd_files_t *f;
    pd_file_writer_t *w;
    pd_file_rec_t rec;
};

int
pd_files_open(pd_files_t **out, const pd_files_config_t *c, const char *data_dir, pd_store_t *store,
              pd_vault_client_t *vault)
{
    *out = NULL;
    pd_files_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return PD_ERR_NOMEM;
    int n = c->dir != NULL && c->dir[0] != '\0' ? snprintf(f->dir, sizeof(f->dir), "%s", c->dir)
                                                 : snprintf(f->dir, sizeof(f->dir), "%s/files", data_dir);
    if (n < 0 || (size_t)n >= sizeof(f->dir) - 80) { /* room for "/.<id>.tmp-XXXXXX" */
        pd_log_error("[files] dir is too long", PD_LS("setting", "files.dir"));
        free(f);
        return PD_ERR_CONFIG;
    }
    struct stat st, parent;
    if (mkdir(f->dir, 0700) == 0) {
        /* made by root (payctl, or payd before it drops root): owned like the data dir */
        if (geteuid() == 0 && stat(data_dir, &parent) == 0 && chown(f->dir, parent.st_uid, parent.st_gid) != 0)
            pd_log_warn("files: cannot hand the file store's directory to the data dir's owner",
                        PD_LS("dir", f->dir), PD_LERR(-errno));
    } else if (errno != EEXIST) {
        pd_log_error("files: cannot create the file store's directory", PD_LS("dir", f->dir),
                     PD_LS("setting", "files.dir"), PD_LERR(-errno));
        free(f);
        return PD_ERR_CONFIG;
    }
    if (stat(f->dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(f->dir, W_OK | X_OK) != 0) {
        pd_log_error("files: the file store's directory is not a writable directory", PD_LS("dir", f->dir),
                     PD_LS("setting", "files.dir"));
        free(f);
        return PD_ERR_CONFIG;
    }
    f->store = store;
    f->vault = vault;
    *out = f;
    return 0;
}

void
pd_files_close(pd_files_t *f)
{
    free(f);
}

const char *
pd_files_dir(const pd_files_t *f)
{
    return f->dir;
}

void
pd_files_context(char *out, size_t cap, const char *merchant, const char *id)
{
    snprintf(out, cap, "merchant=%s;purpose=file;id=%s", merchant, id);
}

int
pd_files_begin(pd_files_t *f, const pd_file_rec_t *rec, pd_files_put_t **out)
{
    *out = NULL;
    pd_files_put_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return PD_ERR_NOMEM;
    p->f = f;
    p->rec = *rec;
    int r = pd_id_new("file", p->rec.id, sizeof(p->rec.id));
    if (r != 0) {
        free(p);
        return r;
    }
    char ctx[256];
    pd_files_context(ctx, sizeof(ctx), p->rec.merchant_id, p->rec.id);
    pd_vault_reply_t rep;
    r = pd_vault_generate_data_key_sync(f->vault, "alias/files", pd_view_cstr(ctx), &rep);
    if (r == 0 && rep.data.len != PD_FILE_KEY_LEN)
        r = PD_ERR_PROTOCOL;
    if (r == 0)
        r = pd_file_writer_open(&p->w, f->dir, p->rec.id, p->rec.id, rep.data.p, pd_buf_view(&rep.data2));
    if (r != 0)
        pd_log_error("files: cannot start a file", PD_LS("purpose", p->rec.purpose), PD_LS("dir", f->dir),
                     PD_LS("reason", rep.text), PD_LERR(r));
    pd_vault_reply_free(&rep); /* wipes the data key */
    if (r != 0) {
        free(p);
        return r;
    }
    *out = p;
    return 0;
}

const pd_file_rec_t *
pd_files_put_rec(const pd_files_put_t *p)
{
    return &p->rec;
}

int
pd_files_write(pd_files_put_t *p, const void *buf, size_t n)
{
    return pd_file_writer_write(p->w, buf, n);
}

static int
insert_row(pd_db_t *tx, void *arg)
{
    return pd_file_insert(tx, arg);
}

static void
bytes_path(const pd_files_t *f, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", f->dir, id);
}

void
pd_files_path(const pd_files_t *f, const char *id, char *out, size_t cap)
{
    bytes_path(f, id, out, cap);
}

int
pd_files_hash_bytes(const char *path, char sha_hex[65], int64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t *buf = malloc(1u << 20), sha[32];
    int r = md != NULL && buf != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : PD_ERR_NOMEM;
    int64_t total = 0;
    while (r == 0) {
        ssize_t n = read(fd, buf, 1u << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            r = -errno;
        if (n <= 0)
            break;
        total += n;
        if (EVP_DigestUpdate(md, buf, (size_t)n) != 1)
            r = PD_ERR_CRYPTO;
    }
    if (r == 0 && EVP_DigestFinal_ex(md, sha, NULL) != 1)
        r = PD_ERR_CRYPTO;
    if (r == 0) {
        pd_hex(sha, sizeof(sha), sha_hex);
        *size = total;
    }
    EVP_MD_CTX_free(md);
    free(buf);
    close(fd);
    return r;
}

int
pd_files_adopt(pd_files_t *f, const pd_file_rec_t *rec, pd_file_rec_t *out)
{
    pd_file_rec_t row = *rec;
    char path[4200];
    bytes_path(f, row.id, path, sizeof(path));
    int r = pd_id_valid(pd_view_cstr(row.id), "file") ? pd_files_hash_bytes(path, row.sha256, &row.size)
                                                       : PD_ERR_INVALID;
    row.created = pd_unix_now();
    row.seq = pd_next_seq();
    if (r == 0)
        r = pd_store_write_sync(f->store, insert_row, &row);
    if (r == 0 && out != NULL)
        *out = row;
    return r;
}

int
pd_files_commit(pd_files_put_t *p, pd_file_rec_t *out)
{
    uint8_t sha[32];
    uint64_t size = 0;
    int r = pd_file_writer_commit(p->w, sha, &size);
    p->w = NULL;
    if (r == 0) {
        pd_hex(sha, sizeof(sha), p->rec.sha256);
        p->rec.size = (int64_t)size;
        p->rec.created = pd_unix_now();
        p->rec.seq = pd_next_seq();
        if ((r = pd_store_write_sync(p->f->store, insert_row, &p->rec)) != 0) {
            char path[4200];
            bytes_path(p->f, p->rec.id, path, sizeof(path));
            (void)unlink(path);
        }
    }
    if (r != 0)
        pd_log_error("files: cannot commit a file", PD_LS("id", p->rec.id), PD_LS("purpose", p->rec.purpose),
                     PD_LERR(r));
    else if (out != NULL)
        *out = p->rec;
    free(p);
    return r;
}

void
pd_files_abort(pd_files_put_t *p)
{
    if (p == NULL)
        return;
    pd_file_writer_abort(p->w);
    free(p);
}

int
pd_files_open_bytes(const pd_files_t *f, const pd_file_rec_t *rec, pd_file_reader_t **out, pd_view_t *wrapped)
{
    char path[4200];
    pd_view_t id;
    bytes_path(f, rec->id, path, sizeof(path));
    *out = NULL;
    int r = pd_file_reader_open(out, path, &id, wrapped);
    if (r == -ENOENT)
        return PD_ERR_NOTFOUND;
    if (r != 0)
        return r;
    if (!pd_view_eq_cstr(id, rec->id)) { /* another file's bytes under this name */
        pd_file_reader_close(*out);
        *out = NULL;
        return PD_ERR_AUTH;
    }
    return 0;
}

int
pd_files_reader(pd_files_t *f, const pd_file_rec_t *rec, pd_file_reader_t **out)
{
    pd_view_t wrapped;
    int r = pd_files_open_bytes(f, rec, out, &wrapped);
    if (r != 0)
        return r;
    char ctx[256];
    pd_files_context(ctx, sizeof(ctx), rec->merchant_id, rec->id);
    pd_vault_reply_t rep;
    r = pd_vault_decrypt_sync(f->vault, pd_view_cstr(ctx), wrapped, &rep);
    if (r == 0 && rep.data.len != PD_FILE_KEY_LEN)
        r = PD_ERR_PROTOCOL;
    if (r == 0)
        pd_file_reader_key(*out, rep.data.p);
    pd_vault_reply_free(&rep);
    if (r != 0) {
        pd_file_reader_close(*out);
        *out = NULL;
    }
    return r;
}

static int
delete_row(pd_db_t *tx, void *arg)
{
    return pd_file_delete(tx, *(const char **)arg);
}

/* the row, then the bytes (already gone: fine) */
static int
remove_file(pd_files_t *f, const char *id)
{
    int r = pd_store_write_sync(f->store, delete_row, &id);
    if (r != 0)
        return r;
    char path[4200];
    bytes_path(f, id, path, sizeof(path));
    if (unlink(path) != 0 && errno != ENOENT)
        pd_log_warn("files: the row is gone but the bytes could not be removed (the janitor tries again)",
                    PD_LS("id", id), PD_LERR(-errno));
    return 0;
}

int
pd_files_remove(pd_files_t *f, const char *id)
{
    return remove_file(f, id);
}

typedef struct {
    char (*ids)[PD_ID_MAX];
    size_t n, cap;
} ids_t;

static int
collect_id(void *rec, void *arg)
{
    const pd_file_rec_t *fr = rec;
    ids_t *ids = arg;
    if (ids->n < ids->cap)
        memcpy(ids->ids[ids->n++], fr->id, PD_ID_MAX);
    return 0;
}

/* a name in the directory that is not a live file's bytes and is old enough to be a leftover */
static bool
is_leftover(pd_files_t *f, pd_db_t *db, const char *name, int64_t now)
{
    bool tmp = name[0] == '.' && strncmp(name + 1, "file_", 5) == 0 && strstr(name, ".tmp-") != NULL;
    if (!tmp && !pd_id_valid(pd_view_cstr(name), "file"))
        return false; /* not the store's: never touched */
    char path[4200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || now - st.st_mtime < LEFTOVER_AGE_S)
        return false;
    if (tmp)
        return true;
    pd_file_rec_t rec;
    return pd_file_get_any(db, name, &rec) == PD_ERR_NOTFOUND;
}

int
pd_files_sweep(pd_files_t *f, int64_t now, int64_t *removed)
{
    int64_t gone = 0;
    pd_db_t *db = pd_store_reader(f->store);
    if (db == NULL)
        return PD_ERR_UNAVAILABLE;
    ids_t ids = {calloc(SWEEP_EXPIRED_MAX, PD_ID_MAX), 0, SWEEP_EXPIRED_MAX};
    if (ids.ids == NULL)
        return PD_ERR_NOMEM;
    int r = pd_file_list_expired(db, now, SWEEP_EXPIRED_MAX, collect_id, &ids);
    for (size_t i = 0; r == 0 && i < ids.n; i++) {
        int rr = remove_file(f, ids.ids[i]);
        if (rr == 0)
            gone++;
        else if (rr != PD_ERR_NOTFOUND) /* another node's janitor took it: fine */
            r = rr;
    }
    free(ids.ids);
    DIR *d = r == 0 ? opendir(f->dir) : NULL;
    if (r == 0 && d == NULL)
        r = -errno;
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
        if (!is_leftover(f, db, e->d_name, now))
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
            gone++;
            pd_log_info("files: removed the leftover of an interrupted write", PD_LS("name", e->d_name));
        }
    }
    if (d != NULL)
        closedir(d);
    if (removed != NULL)
        *removed = gone;
    return r;
}
