/*
 * Backups of payd (docs/backup.md): what both sides of the boundary agree on, and
 * the archive's clear header.
 *
 * An archive is one encrypted file of the file store's format (payd/files.h) with the
 * file id PD_BACKUP_FILE_ID. The format's "wrapped key" field of the header holds this
 * backup header instead of a bare wrapped key, so every chunk's authentication covers
 * it too (a changed byte of it fails the first chunk):
 *
 *   "PDBK" | u8 version (1) | u8 flags | u8 unseal | u8 0
 *   | u16 wrapped_len | the data key wrapped by the vault's root key
 *   | u16 keyfile_len | the vault's sealed root.key (0 bytes for Shamir shares)
 *   | u16 devpass_len | the dev passphrase (flags & PD_BACKUP_F_DEV; else 0 bytes)
 *
 * All integers big-endian. The wrapped key is AES-256-GCM under the root key,
 * nonce | ciphertext | tag, with the additional data PD_BACKUP_AAD: only the vault
 * (an admin operation to make it, `payd-vault --unwrap-backup-key` to open it) ever
 * holds the root key. Nothing else in the header is secret but the dev passphrase of
 * a dev vault, which is there on purpose (said loudly when the archive is made).
 */
#ifndef PAYD_BACKUP_H
#define PAYD_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/error.h"
#include "payd/wal_archive.h"

#define PD_BACKUP_FILE_ID "payd-backup"
#define PD_BACKUP_AAD "payd backup v1"
#define PD_BACKUP_KEY_LEN 32
#define PD_BACKUP_WRAPPED_LEN (12 + PD_BACKUP_KEY_LEN + 16)
#define PD_BACKUP_VERSION 1
#define PD_BACKUP_F_DEV 1u          /* the dev passphrase is in the header */
#define PD_BACKUP_KEYFILE_MAX 512   /* a root.key is ~210 bytes */
#define PD_BACKUP_DEVPASS_MAX 128
/* the vault's copy of vault.db, in its directory (0600, the vault user's): backup.snapshot
 * writes it, payctl reads it into the archive and removes it */
#define PD_BACKUP_VAULT_SNAPSHOT "backup-snapshot.db"

typedef enum {
    PD_BACKUP_UNSEAL_PASSPHRASE = 1, /* root.key, sealed under a passphrase */
    PD_BACKUP_UNSEAL_SHARES = 2,     /* Shamir shares (no key file) */
} pd_backup_unseal_t;

/* The payments copy's position in its WAL, a part of the archive when the copy was taken
 * from a running payd (a restore with --until rolls the copy forward from there):
 * "walpos 1 salt1 salt2 page_size frame ck0 ck1 big_endian at_ms\n", decimal, at_ms the
 * time the copy was taken (Unix ms). */
#define PD_BACKUP_WALPOS "payd.db.walpos"
/* the same for the vault's copy of vault.db (the part vault/vault.db.walpos) */
#define PD_BACKUP_VAULT_WALPOS "vault.db.walpos"
/* The line into out: its length, or PD_ERR_TOOBIG */
int pd_backup_walpos_enc(char *out, size_t cap, const pd_wal_pos_t *p, int64_t at_ms);
/* PD_ERR_INVALID unless in is exactly such a line */
int pd_backup_walpos_dec(const char *in, size_t n, pd_wal_pos_t *p, int64_t *at_ms) PD_WUR;

typedef struct {
    uint8_t version;
    uint8_t flags;
    pd_backup_unseal_t unseal;
    pd_view_t wrapped; /* PD_BACKUP_WRAPPED_LEN bytes */
    pd_view_t keyfile; /* the sealed root.key; empty for shares */
    pd_view_t devpass; /* the dev passphrase; empty unless PD_BACKUP_F_DEV */
} pd_backup_header_t;

/* Appends the header to out. PD_ERR_INVALID for a field out of its bounds (a wrapped key
 * of another length, a key file with shares, a passphrase without the flag, ...). */
int pd_backup_header_enc(pd_buf_t *out, const pd_backup_header_t *h) PD_WUR;
/* Parses a header; the views point into in. PD_ERR_INVALID (not a backup header, a
 * field out of its bounds, trailing bytes), PD_ERR_KEY_VERSION (a version this binary
 * does not read), PD_ERR_TRUNCATED (ends inside a field); err says which. */
int pd_backup_header_dec(pd_view_t in, pd_backup_header_t *h, char *err, size_t cap) PD_WUR;

/* --- creating, verifying and restoring archives (payctl backup; docs/backup.md) --- */

#include <signal.h>
#include <sys/types.h>

typedef struct pd_vault_client pd_vault_client_t;

/* a line of progress for the operator (never a secret) */
typedef void (*pd_backup_progress_fn)(void *arg, const char *line);

typedef struct {
    pd_vault_client_t *vault;  /* an admin connection to the running vault */
    const char *data_dir;      /* payd's data dir (the dev files: credentials.json, tls/, ...) */
    const char *payd_db;       /* payd's SQLite store */
    const char *out;           /* the archive to write: must not exist, its directory must */
    const char *files_dir;     /* the file store's directory ([files] dir); NULL: none */
    pd_backup_progress_fn progress;
    void *arg;
    /* may be NULL; once it reads nonzero (a signal handler sets it) the work stops at the
     * next chunk with PD_ERR_CLOSED and everything made so far is removed */
    const volatile sig_atomic_t *cancel;
} pd_backup_create_opts_t;

typedef struct {
    int64_t parts;
    uint64_t bytes;         /* the parts' bytes (plaintext) */
    uint64_t archive_bytes; /* the archive's size */
    bool dev;               /* the dev passphrase travels in the archive */
} pd_backup_stats_t;

/*
 * Makes an archive of a running payd: a data key from the vault (backup.key), the
 * payments store (SQLite backup API), then the vault's copy of its own database
 * (backup.snapshot) — in that order, so every card the payments snapshot references is
 * in the vault's — the vault's sealed root key, credentials and dev passphrase, payd's
 * dev files, and the file store's files that the payments snapshot's `files` table lists
 * (but backups: an archive never holds another). Written through the encrypted file format (temporary name, fsync,
 * rename): on failure nothing is left at out, and err says what failed.
 */
int pd_backup_create(const pd_backup_create_opts_t *o, pd_backup_stats_t *st, char *err, size_t cap) PD_WUR;

typedef struct {
    const char *archive;
    const char *target;             /* restore into this dir (absent or empty); NULL: verify only */
    const char *passphrase_file;    /* NULL: a dev archive's own passphrase, or PAYD_VAULT_PASSPHRASE */
    const char *const *share_files; /* a vault on Shamir shares: one share per file */
    int nshares;
    const char *vault_bin;          /* payd-vault, which unwraps the data key (--unwrap-backup-key) */
    bool set_owners;                /* restore as root: vault/ to the vault's user, the rest to payd's */
    uid_t payd_uid, vault_uid;
    gid_t payd_gid, vault_gid;
    pd_backup_progress_fn progress;
    void *arg;
    const volatile sig_atomic_t *cancel; /* as for create */
    /* > 0: payd.db rolled forward to this time (Unix ms) with the WAL archive in wal_dir
     * (restore only; docs/backup.md "Point in time") */
    int64_t until_ms;
    const char *wal_dir;
    const char *vault_wal_dir; /* the vault's WAL archive (may be NULL or hold none: vault.db as of the backup) */
} pd_backup_restore_opts_t;

typedef struct {
    int64_t parts;
    uint64_t bytes;
    int64_t ledger_entries, charges; /* the restored ledger, verified */
    int64_t audit_records;           /* the vault's audit chain, verified */
    bool dev;
    int64_t wal_records, wal_frames; /* rolled forward with (--until) */
    int64_t rolled_to_ms;            /* the last record's time (0: none was applied) */
} pd_backup_report_t;

/*
 * Decrypts the archive into a private temporary directory (target's parent when
 * restoring, else $TMPDIR), checking the authentication of every chunk, each part's
 * SHA-256, the databases' integrity, the ledger (pd_ledger_verify) and the vault's
 * audit chain (pd_audit_verify). Verify: the directory is removed. Restore: modes and
 * owners are set and it is renamed to target. On any failure the temporary directory
 * is removed (nothing appears at target) and err says what failed: PD_ERR_EXISTS (a
 * non-empty target), PD_ERR_AUTH (wrong passphrase, another vault, tampering),
 * PD_ERR_TRUNCATED, PD_ERR_INVALID (not an archive, malformed), PD_ERR_KEY_VERSION
 * (an archive version this binary does not read), PD_ERR_STATE (a broken ledger or
 * audit chain).
 */
int pd_backup_restore(const pd_backup_restore_opts_t *o, pd_backup_report_t *rep, char *err, size_t cap) PD_WUR;

#endif
