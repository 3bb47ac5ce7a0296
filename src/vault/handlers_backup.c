/*
 * Admin operations of backups (docs/backup.md), one handler per message type like the
 * others (the dispatcher table in server.c; audited there, as backup.key and
 * backup.snapshot, resource "backup").
 *
 *   backup.key       a fresh data key for one archive: the reply's data is
 *                    {"wrapped": hex of the key wrapped by the root key}, its secret
 *                    part (wiped after sending) the key itself, for payctl (admin).
 *   backup.snapshot  a consistent copy of vault.db (SQLite's backup API) written to
 *                    DIR/backup-snapshot.db (0600): {"path", "dir", "pages"}. It runs
 *                    after the batch's commit (own_txn), so it holds every card and key
 *                    acknowledged before it. The vault's loop waits for the copy (~1 s
 *                    for tens of MB). Tables on PostgreSQL: refused (PD_ERR_STATE), the
 *                    database's own backups are the way (docs/backup.md).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "payd/json.h"
#include "payd/snapshot.h"
#include "vault/backup.h"
#include "vault/handlers.h"
#include "vault/msg.h"

int
pd_h_backup_key(pd_hctx_t *h)
{
    uint8_t key[PD_BACKUP_KEY_LEN], wrapped[PD_BACKUP_WRAPPED_LEN];
    char hex[2 * PD_BACKUP_WRAPPED_LEN + 1];
    pd_buf_t out;
    pd_jw_t w;
    if (h->payload.len != 0)
        return PD_ERR_PROTOCOL;
    snprintf(h->resource, sizeof(h->resource), "backup");
    int r = pd_vault_backup_wrap(h->v->sec->root, key, wrapped);
    if (r != 0) {
        snprintf(h->msg, sizeof(h->msg), "cannot make a backup key: %s", pd_strerror(r));
        return r;
    }
    pd_hex(wrapped, sizeof(wrapped), hex);
    pd_buf_init(&out, 1024);
    pd_jw_init(&w, &out);
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "wrapped", hex);
    pd_jw_obj_end(&w);
    if ((r = pd_jw_finish(&w)) == 0 &&
        (r = pd_msg_data_enc(h->reply, pd_buf_view(&out), (pd_view_t){key, sizeof(key)}, "", 0, 0)) == 0)
        h->reply_secret = true;
    OPENSSL_cleanse(key, sizeof(key));
    pd_buf_free(&out);
    return r;
}

int
pd_h_backup_snapshot(pd_hctx_t *h)
{
    char dir[4096], path[4200], tmp[4200], err[512];
    int64_t pages = 0;
    pd_buf_t out;
    pd_jw_t w;
    if (h->payload.len != 0)
        return PD_ERR_PROTOCOL;
    snprintf(h->resource, sizeof(h->resource), "backup");
    if (h->v->shared || h->v->db_path[0] == '\0') {
        snprintf(h->msg, sizeof(h->msg), "the vault's tables are on PostgreSQL (store_url): back up that database "
                                         "with its own tools (docs/backup.md); payctl backup copies SQLite vaults");
        return PD_ERR_STATE;
    }
    snprintf(dir, sizeof(dir), "%s", h->v->db_path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    snprintf(path, sizeof(path), "%s/%s", dir, PD_VAULT_SNAPSHOT_NAME);
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, PD_VAULT_SNAPSHOT_NAME);
    (void)unlink(tmp); /* left by a snapshot that stopped half-way */
    pd_wal_pos_t pos;
    bool have_pos = false;
    int r = pd_sqlite_snapshot_at(h->v->db_path, tmp, &pages, &pos, &have_pos, err, sizeof(err));
    if (r == 0 && rename(tmp, path) != 0) {
        r = -errno;
        snprintf(err, sizeof(err), "cannot rename the snapshot to %.300s: %.100s", path, strerror(errno));
        (void)unlink(tmp);
    }
    if (r != 0) {
        snprintf(h->msg, sizeof(h->msg), "cannot copy vault.db: %.220s", err);
        return r;
    }
    pd_buf_init(&out, 16384);
    pd_jw_init(&w, &out);
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "path", path);
    pd_jw_kstr(&w, "dir", dir);
    pd_jw_kint(&w, "pages", pages);
    if (have_pos) { /* the copy's place in vault.db's WAL: a restore --until rolls it forward from there */
        pd_jw_key(&w, "wal");
        pd_jw_obj_begin(&w);
        pd_jw_kint(&w, "salt1", pos.salt1);
        pd_jw_kint(&w, "salt2", pos.salt2);
        pd_jw_kint(&w, "page_size", pos.page_size);
        pd_jw_kint(&w, "frame", pos.frame);
        pd_jw_kint(&w, "ck0", pos.ck[0]);
        pd_jw_kint(&w, "ck1", pos.ck[1]);
        pd_jw_kint(&w, "big_endian", pos.big_endian);
        pd_jw_obj_end(&w);
    }
    pd_jw_obj_end(&w);
    if ((r = pd_jw_finish(&w)) == 0)
        r = pd_msg_data_enc(h->reply, pd_buf_view(&out), PD_VIEW_NULL, "", 0, 0);
    pd_buf_free(&out);
    if (r != 0)
        (void)unlink(path);
    return r;
}
