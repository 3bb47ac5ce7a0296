/* GET /v1/files, GET /v1/files/:id, GET /v1/files/:id/contents: the merchant's files in
 * the file store (report CSVs). The contents are decrypted and streamed a chunk at a
 * time: the row is read off the loop, the data key unwrapped by the vault
 * asynchronously, and each piece read and decrypted on the loop when the previous one
 * was sent (as h2o's own file handler reads files), so memory stays one chunk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api/internal.h"
#include "payd/file_store.h"
#include "payd/log.h"
#include "payd/reports.h"

static void
render_file_cb(pd_jw_t *w, const void *rec)
{
    pd_render_file(w, rec);
}

static int
get_file(pd_db_t *db, pd_req_t *r, const char *id, pd_view_t *json)
{
    const pd_auth_t *au = r->auth;
    pd_file_rec_t f;
    int rc = pd_file_get(db, au->merchant_id, au->livemode, id, &f);
    if (rc == 0)
        *json = pd_render_to_arena(&r->arena, render_file_cb, &f);
    return rc;
}

void
pd_h_file_get(pd_req_t *r)
{
    pd_get_respond(r, "file", get_file);
}

static int
each_file(void *rec, void *arg)
{
    pd_render_file(arg, rec);
    return 0;
}

void
pd_h_file_list(pd_req_t *r)
{
    pd_list_respond(r, "/v1/files", "file", "purpose", pd_file_list, each_file);
}

/* --- contents --- */

typedef struct {
    char id[PD_ID_MAX];
    pd_file_rec_t rec;
} contents_t;

/* malloc'd, not in the request's arena: it lives until the stream is disposed */
typedef struct {
    pd_task_t task;
    pd_req_t *r;
    pd_file_rec_t rec;
    pd_file_reader_t *reader;
    int rc;
    uint8_t key[PD_FILE_KEY_LEN];
} stream_ctx_t;

static void
stream_dispose(void *arg)
{
    stream_ctx_t *s = arg;
    pd_file_reader_close(s->reader);
    OPENSSL_cleanse(s->key, sizeof(s->key));
    free(s);
}

static int
stream_pull(void *arg, uint8_t *buf, size_t cap, size_t *n, bool *done)
{
    stream_ctx_t *s = arg;
    int r = pd_file_reader_read(s->reader, buf, cap, n);
    if (r != 0) {
        pd_log_error("files: a file failed its check while it was sent; the response is cut short",
                     PD_LS("file", s->rec.id), PD_LERR(r));
        return r;
    }
    *done = *n == 0;
    return 0;
}

/* on the loop, with the data key or the vault's refusal */
static void
after_key(pd_task_t *t)
{
    stream_ctx_t *s = (stream_ctx_t *)t;
    pd_req_t *r = s->r;
    int rc = s->rc;
    if (rc != 0) {
        pd_log_error("files: the vault did not unwrap a file's key", PD_LS("file", s->rec.id), PD_LERR(rc));
        stream_dispose(s);
        if (rc == PD_ERR_AUTH || rc == PD_ERR_INVALID)
            pd_resp_error(r, 500, "api_error", NULL, "The file cannot be read.", NULL);
        else
            pd_resp_error(r, 503, "api_error", "vault_unavailable", "The vault is unavailable. Retry later.", NULL);
        return;
    }
    pd_file_reader_key(s->reader, s->key);
    OPENSSL_cleanse(s->key, sizeof(s->key));
    char disp[200];
    snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"", s->rec.filename);
    pd_resp_header(r, "Content-Disposition", disp);
    pd_resp_stream(r, 200, strcmp(s->rec.type, "csv") == 0 ? "text/csv" : "application/octet-stream", s->rec.size,
                   stream_pull, stream_dispose, s);
}

static void
on_key(void *arg, int rc, const pd_vault_reply_t *reply)
{
    stream_ctx_t *s = arg;
    s->rc = rc;
    if (rc == 0 && reply->data.len != PD_FILE_KEY_LEN)
        s->rc = PD_ERR_PROTOCOL;
    if (s->rc == 0)
        memcpy(s->key, reply->data.p, PD_FILE_KEY_LEN);
    s->task.fn = after_key;
    pd_loop_post(s->r->loop, &s->task);
}

static int
contents_read(pd_db_t *db, pd_req_t *r, void *ctx)
{
    contents_t *c = ctx;
    const pd_auth_t *au = r->auth;
    return pd_file_get(db, au->merchant_id, au->livemode, c->id, &c->rec);
}

static void
contents_then(pd_req_t *r, void *ctx, int rc)
{
    contents_t *c = ctx;
    pd_api_t *api = pd_api_of(r);
    if (rc != 0) {
        pd_resp_read_error(r, rc, "file", "id", c->id);
        return;
    }
    stream_ctx_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    s->r = r;
    s->rec = c->rec;
    pd_view_t wrapped;
    if ((rc = pd_files_open_bytes(api->files, &s->rec, &s->reader, &wrapped)) != 0) {
        pd_log_error("files: a file's row has no readable bytes", PD_LS("file", s->rec.id), PD_LERR(rc));
        free(s);
        pd_resp_error(r, 500, "api_error", NULL, "The file's contents are missing or damaged.", NULL);
        return;
    }
    char fctx[256];
    pd_files_context(fctx, sizeof(fctx), s->rec.merchant_id, s->rec.id);
    if (r->holds == 0)
        pd_req_hold(r); /* until after_key answers */
    if (pd_vault_decrypt(api->vault->api, pd_view_cstr(fctx), wrapped, on_key, s) != 0) {
        stream_dispose(s);
        pd_resp_error(r, 503, "api_error", "vault_unavailable", "The vault is unavailable. Retry later.", NULL);
    }
}

void
pd_h_file_contents(pd_req_t *r)
{
    contents_t *c = pd_arena_calloc(&r->arena, sizeof(*c));
    if (c == NULL) {
        pd_resp_error(r, 500, "api_error", NULL, "Out of memory.", NULL);
        return;
    }
    if (pd_view_to_cstr(pd_req_param(r, "id"), c->id, sizeof(c->id)) != 0) {
        pd_resp_missing(r, "file", "id", "");
        return;
    }
    pd_api_read(r, contents_read, contents_then, c);
}
