/*
 * Consistent copies of SQLite databases while their owner keeps writing (backups,
 * docs/backup.md), and the checks a restore runs on such a copy. Shared by payctl
 * (the payments store) and payd-vault (its own vault.db): it lives in the store
 * component, which both link, so neither links the other's code.
 */
#ifndef PAYD_SNAPSHOT_H
#define PAYD_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/error.h"
#include "payd/wal_archive.h"

/*
 * Copies the database at src into dst, a new file (PD_ERR_EXISTS when dst exists),
 * with SQLite's online backup API in a single step: the copy is the database as of one
 * commit, and writers on other connections are not stopped (WAL). A src whose -wal file
 * does not exist (its owner is not running) is read as immutable, so this never creates
 * a -wal or -shm file next to it (which would carry the caller's uid). dst is mode
 * 0600, one self-contained file in rollback-journal mode (no -wal), synced. *pages (may
 * be NULL) gets its page count. On failure dst is removed and err says why.
 */
int pd_sqlite_snapshot(const char *src, const char *dst, int64_t *pages, char *err, size_t cap) PD_WUR;

/* The same, and the WAL position of the copy's commit into *pos (*have_pos) when src's
 * owner is running (its -wal and -shm exist): taken under src's write lock for the moment
 * it takes to read the WAL, so writers wait that long (a WAL of 16 MiB: ~10 ms). */
int pd_sqlite_snapshot_at(const char *src, const char *dst, int64_t *pages, pd_wal_pos_t *pos, bool *have_pos,
                          char *err, size_t cap) PD_WUR;

/* PRAGMA integrity_check on path, opened read-only (nothing is created next to it):
 * 0 when it answers "ok"; PD_ERR_INVALID with the first problem in err otherwise
 * (also for a file that is not a database). */
int pd_sqlite_integrity(const char *path, char *err, size_t cap) PD_WUR;

#endif
