/*
 * payctl files list|get|rm: the file store (payd/file_store.h) from the operator's side.
 * The store and [files] dir are payd's (--config, --set, PAYD_*); data keys are
 * unwrapped by the vault as admin (alias/files lets admin decrypt).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/payctl.h"
#include "payd/file_store.h"
#include "payd/id.h"
#include "payd/records.h"

static const char *
flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

/* the store and the file store over it; exits after a message on failure */
static pd_files_t *
open_files(payctl_t *ctx, pd_store_t **store, bool vault)
{
    *store = payctl_store_open(ctx);
    pd_files_t *f = NULL;
    int r = pd_files_open(&f, pd_files_config(), ctx->data_dir, *store, vault ? payctl_vault(ctx) : NULL);
    if (r != 0) {
        pd_store_close(*store);
        exit(payctl_fail(ctx, "cannot open the file store: %s (files.dir)", pd_strerror(r)));
    }
    return f;
}

static json_t *
file_json(const pd_file_rec_t *f)
{
    return json_pack("{s:s,s:s,s:b,s:s,s:s,s:s,s:I,s:s,s:I,s:I}", "id", f->id, "merchant", f->merchant_id, "livemode",
                     f->livemode, "purpose", f->purpose, "filename", f->filename, "type", f->type, "size",
                     (json_int_t)f->size, "sha256", f->sha256, "created", (json_int_t)f->created, "expires_at",
                     (json_int_t)f->expires_at);
}

static int
list_one(void *rec, void *arg)
{
    const pd_file_rec_t *f = rec;
    payctl_t *ctx = arg;
    if (ctx->json) {
        json_t *o = file_json(f);
        char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        if (text != NULL)
            printf("%s\n", text);
        free(text);
        json_decref(o);
    } else {
        printf("%-36s %-20s %12lld  %-38s %s\n", f->id, f->purpose, (long long)f->size,
               f->merchant_id[0] != '\0' ? f->merchant_id : "(payd)", f->filename);
    }
    return 0;
}

static int
cmd_files_list(payctl_t *ctx, int argc, char **argv)
{
    const char *purpose = flag(argc, argv, "--purpose");
    pd_store_t *s;
    pd_files_t *f = open_files(ctx, &s, false);
    if (!ctx->json)
        printf("%-36s %-20s %12s  %-38s %s\n", "ID", "PURPOSE", "SIZE", "MERCHANT", "FILENAME");
    int r = pd_file_list_all(pd_store_reader(s), purpose, list_one, ctx);
    pd_files_close(f);
    pd_store_close(s);
    return r != 0 ? payctl_fail(ctx, "cannot list the files: %s", pd_strerror(r)) : 0;
}

/* the file id argument (argv[1]); NULL after a message */
static const char *
file_id(payctl_t *ctx, int argc, char **argv, const char *usage)
{
    if (argc < 2 || argv[1][0] == '-') {
        payctl_fail(ctx, "usage: payctl files %s", usage);
        return NULL;
    }
    if (!pd_id_valid(pd_view_cstr(argv[1]), "file")) {
        payctl_fail(ctx, "not a file id: %s (file_...)", argv[1]);
        return NULL;
    }
    return argv[1];
}

/* a backup's bytes (an archive sealed under the vault's root key, which the store does
 * not open: payctl backup verify/restore does) into fd, checked against the row's SHA-256 */
static int
copy_raw(pd_files_t *f, const pd_file_rec_t *rec, int fd)
{
    char path[4200], sha[65];
    int64_t size = 0;
    pd_files_path(f, rec->id, path, sizeof(path));
    int r = pd_files_hash_bytes(path, sha, &size);
    if (r != 0)
        return r;
    if (strcmp(sha, rec->sha256) != 0 || size != rec->size)
        return PD_ERR_AUTH;
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    static uint8_t buf[256 * 1024];
    ssize_t n;
    while (r == 0 && (n = read(in, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            r = errno == EINTR ? 0 : -errno;
            continue;
        }
        for (ssize_t o = 0; r == 0 && o < n;) {
            ssize_t w = write(fd, buf + o, (size_t)(n - o));
            if (w < 0 && errno != EINTR)
                r = -errno;
            else if (w > 0)
                o += w;
        }
    }
    close(in);
    return r;
}

/* the plaintext into fd; 0 once every byte was checked (chunks and SHA-256) */
static int
copy_out(pd_file_reader_t *rd, int fd)
{
    static uint8_t buf[256 * 1024];
    for (;;) {
        size_t n = 0;
        int r = pd_file_reader_read(rd, buf, sizeof(buf), &n);
        if (r != 0)
            return r;
        if (n == 0)
            return 0;
        for (size_t o = 0; o < n;) {
            ssize_t w = write(fd, buf + o, n - o);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return -errno;
            o += (size_t)w;
        }
    }
}

static int
cmd_files_get(payctl_t *ctx, int argc, char **argv)
{
    const char *id = file_id(ctx, argc, argv, "get FILE_ID [--out FILE]");
    if (id == NULL)
        return 1;
    const char *out = flag(argc, argv, "--out");
    pd_store_t *s;
    pd_files_t *f = open_files(ctx, &s, true);
    pd_file_rec_t rec;
    pd_file_reader_t *rd = NULL;
    int r = pd_file_get_any(pd_store_reader(s), id, &rec);
    if (r == PD_ERR_NOTFOUND) {
        r = payctl_fail(ctx, "no such file: %s", id);
        goto done;
    }
    bool raw = r == 0 && strcmp(rec.purpose, "backup") == 0;
    if (r == 0 && !raw)
        r = pd_files_reader(f, &rec, &rd);
    if (r != 0) {
        r = payctl_fail(ctx, "cannot open %s: %s", id, pd_strerror(r));
        goto done;
    }
    /* with --out the plaintext goes to a temporary file renamed to FILE only once it is
     * verified: a file that fails its check leaves nothing under FILE */
    char tmp[4200];
    int fd = STDOUT_FILENO;
    if (out != NULL) {
        if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", out) >= (int)sizeof(tmp) || (fd = mkstemp(tmp)) < 0) {
            r = payctl_fail(ctx, "--out %s: %s", out, strerror(errno));
            goto done;
        }
    }
    r = raw ? copy_raw(f, &rec, fd) : copy_out(rd, fd);
    if (out != NULL) {
        if (r == 0 && (fsync(fd) != 0 || rename(tmp, out) != 0))
            r = -errno;
        close(fd);
        if (r != 0)
            unlink(tmp);
    }
    if (r == PD_ERR_AUTH || r == PD_ERR_TRUNCATED || r == PD_ERR_INVALID)
        r = payctl_fail(ctx, "%s failed its check (%s): it was altered or cut short%s", id, pd_strerror(r),
                        out != NULL ? "; nothing was written" : "; discard what was printed");
    else if (r != 0)
        r = payctl_fail(ctx, "cannot write %s: %s", out != NULL ? out : "the output", pd_strerror(r));
    else if (out != NULL && !ctx->json)
        fprintf(stderr, "%s: %lld bytes, SHA-256 %s verified\n", out, (long long)rec.size, rec.sha256);
done:
    pd_file_reader_close(rd);
    pd_files_close(f);
    pd_store_close(s);
    return r;
}

static int
cmd_files_rm(payctl_t *ctx, int argc, char **argv)
{
    const char *id = file_id(ctx, argc, argv, "rm FILE_ID");
    if (id == NULL)
        return 1;
    pd_store_t *s;
    pd_files_t *f = open_files(ctx, &s, false);
    int r = pd_files_remove(f, id);
    pd_files_close(f);
    pd_store_close(s);
    if (r == PD_ERR_NOTFOUND)
        return payctl_fail(ctx, "no such file: %s", id);
    if (r != 0)
        return payctl_fail(ctx, "cannot remove %s: %s", id, pd_strerror(r));
    if (!ctx->json)
        printf("removed %s\n", id);
    return 0;
}

const payctl_cmd_t payctl_files_cmds[] = {
    {"files", "list", "[--purpose P]", "list the file store's files (reports, backups), newest first", cmd_files_list},
    {"files", "get", "FILE_ID [--out FILE]",
     "decrypt a file through the vault and verify its SHA-256 (to stdout, or FILE once verified)", cmd_files_get},
    {"files", "rm", "FILE_ID", "remove a file: its row, then its bytes", cmd_files_rm},
};
const size_t payctl_files_ncmds = sizeof(payctl_files_cmds) / sizeof(payctl_files_cmds[0]);
