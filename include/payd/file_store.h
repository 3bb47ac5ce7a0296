/*
 * The file store (issue 16, docs/files.md): payd's own files (report CSVs, backups) in
 * one directory, `[files] dir` (default DATA_DIR/files; several nodes share it by
 * mounting one shared file system, NFS or EFS, at that path).
 *
 * A file is two things: its bytes, DIR/<id> in the encrypted format of files.h under a
 * fresh data key from the vault's alias/files (encryption context
 * "merchant=M;purpose=file;id=ID", so a file's key opens no other file), and its row in
 * the payments store's `files` table (merchant, purpose, size, SHA-256, expiry). The
 * bytes are committed first (temp name, fsync, rename), then the row; removal deletes
 * the row first, then the bytes. So a crash leaves at worst bytes without a row, which
 * the janitor (pd_files_sweep) removes once they are an hour old, never a row without
 * bytes, except when a file is removed by hand.
 *
 * Every call here blocks on the vault, the disk or the store (pd_store_write_sync):
 * worker threads and payctl only, never an event loop.
 */
#ifndef PAYD_FILE_STORE_H
#define PAYD_FILE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "payd/config.h"
#include "payd/files.h"
#include "payd/records.h"
#include "payd/store.h"
#include "payd/vault.h"

typedef struct {
    const char *dir;            /* "" = DATA_DIR/files */
    int64_t report_expiry_ms;   /* a report run's file expires this long after it is made */
    int64_t backup_expiry_ms;   /* a backup kept in the file store expires this long after */
    int64_t janitor_interval_ms; /* how often expired files and leftovers are removed */
} pd_files_config_t;

/* Registers [files]; pd_files_config() is what was loaded (the defaults before). */
int pd_files_config_register(pd_config_t *cfg) PD_WUR;
const pd_files_config_t *pd_files_config(void);

typedef struct pd_files pd_files_t;

/* Opens the store's directory (dir "" = DATA_DIR/files), creating it 0700 if it does not
 * exist (owned like DATA_DIR when created by root). PD_ERR_CONFIG, logged with the path
 * and the setting, when it is not a directory or not writable. */
int pd_files_open(pd_files_t **out, const pd_files_config_t *c, const char *data_dir, pd_store_t *store,
                  pd_vault_client_t *vault) PD_WUR;
void pd_files_close(pd_files_t *f);
const char *pd_files_dir(const pd_files_t *f);

/* The encryption context of a file's data key. */
void pd_files_context(char *out, size_t cap, const char *merchant, const char *id);

/* --- writing: begin, write any number of times, then commit or abort --- */
typedef struct pd_files_put pd_files_put_t;
/* Starts a file for rec's merchant_id, livemode, purpose, filename, type and
 * expires_at; the id is made here (pd_files_put_rec). Gets the data key from the vault. */
int pd_files_begin(pd_files_t *f, const pd_file_rec_t *rec, pd_files_put_t **out) PD_WUR;
const pd_file_rec_t *pd_files_put_rec(const pd_files_put_t *p);
int pd_files_write(pd_files_put_t *p, const void *buf, size_t n) PD_WUR;
/* Commits the bytes, then the row; out (may be NULL) gets the row as stored. Frees p
 * either way; on failure nothing is left (the bytes are removed again). */
int pd_files_commit(pd_files_put_t *p, pd_file_rec_t *out) PD_WUR;
void pd_files_abort(pd_files_put_t *p);

/* Adopts a file payd already sealed by other means (a backup archive, under a key the
 * vault's root key wraps, restorable without the vault), written by its maker at
 * pd_files_path(rec->id) (an id from pd_id_new("file", ...)): its row is inserted with
 * rec's merchant_id, livemode, purpose, filename, type and expires_at; out (may be NULL)
 * gets the row. Its sha256 is of the bytes as stored (not of a plaintext), and the
 * store's reader does not open it: its owner does (payctl backup). Bytes left without a
 * row by a failure are the janitor's after an hour. */
int pd_files_adopt(pd_files_t *f, const pd_file_rec_t *rec, pd_file_rec_t *out) PD_WUR;
/* The path of a file's bytes (DIR/<id>). */
void pd_files_path(const pd_files_t *f, const char *id, char *out, size_t cap);
/* The SHA-256 (hex) and size of the bytes at path, read in chunks. */
int pd_files_hash_bytes(const char *path, char sha_hex[65], int64_t *size) PD_WUR;

/* --- reading --- */
/* Opens rec's bytes and checks that they are rec's file (the header's id): *wrapped is
 * the data key to unwrap (under pd_files_context), valid until the reader is closed.
 * PD_ERR_NOTFOUND when the bytes are missing, PD_ERR_AUTH when the file there is
 * another's. The caller unwraps the key (pd_file_reader_key) before reading. */
int pd_files_open_bytes(const pd_files_t *f, const pd_file_rec_t *rec, pd_file_reader_t **out,
                        pd_view_t *wrapped) PD_WUR;
/* pd_files_open_bytes, with the key unwrapped through the vault: ready to read. */
int pd_files_reader(pd_files_t *f, const pd_file_rec_t *rec, pd_file_reader_t **out) PD_WUR;

/* Removes a file: its row, then its bytes. PD_ERR_NOTFOUND when there is no such row. */
int pd_files_remove(pd_files_t *f, const char *id) PD_WUR;

/* The janitor's pass: removes the files expired at `now` (at most 1000), then bytes
 * without a row and abandoned temporary files, each at least an hour old. *removed
 * (may be NULL) gets how many files went. */
int pd_files_sweep(pd_files_t *f, int64_t now, int64_t *removed) PD_WUR;

#endif
