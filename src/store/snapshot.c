/* Online snapshots of SQLite databases and their integrity check (payd/snapshot.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "payd/snapshot.h"

#define BUSY_MS 10000 /* a checkpoint of the owner may hold the database briefly */

static int
fail(sqlite3 *db, const char *what, char *err, size_t cap)
{
    snprintf(err, cap, "%s: %s", what, db != NULL ? sqlite3_errmsg(db) : "out of memory");
    return PD_ERR_IO;
}

/* a file: URI for path (immutable: no locks, no -shm), percent-encoding what a URI reserves */
static int
uri(char *out, size_t cap, const char *path, bool immutable)
{
    size_t n = (size_t)snprintf(out, cap, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     strchr("/._-~", *p) != NULL;
        int w = plain ? snprintf(out + n, cap - n, "%c", *p) : snprintf(out + n, cap - n, "%%%02X", *p);
        if (w < 0 || (size_t)w >= cap - n)
            return PD_ERR_TOOBIG;
        n += (size_t)w;
    }
    int w = snprintf(out + n, cap - n, "%s", immutable ? "?immutable=1" : "");
    return w < 0 || (size_t)w >= cap - n ? PD_ERR_TOOBIG : 0;
}

/*
 * The snapshot's WAL position (a restore rolls the copy forward from it, docs/backup.md
 * "Point in time"): the read transaction of s begins while lock holds the write lock, so
 * no commit is under way and the WAL's last commit is the one the snapshot sees.
 * Leaves s in that read transaction, which the backup's step then uses. Nothing here
 * checkpoints as it closes (the owner's WAL archive needs every frame).
 */
static int
begin_at(const char *u, sqlite3 *s, const char *wal, pd_wal_pos_t *pos, char *err, size_t cap)
{
    sqlite3 *lock = NULL;
    int r = PD_ERR_IO;
    if (sqlite3_open_v2(u, &lock, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
        r = fail(lock, "cannot open the store to read its WAL position", err, cap);
        goto out;
    }
    (void)sqlite3_db_config(lock, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    sqlite3_busy_timeout(lock, BUSY_MS);
    if (sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        r = fail(lock, "cannot take the store's write lock", err, cap);
        goto out;
    }
    if (sqlite3_exec(s, "BEGIN; SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) != SQLITE_OK) {
        r = fail(s, "cannot begin the snapshot", err, cap);
        goto out;
    }
    if ((r = pd_wal_tail(wal, pos)) != 0)
        snprintf(err, cap, "cannot read the WAL position of %s: %s", wal, pd_strerror(r));
out:
    if (lock != NULL) {
        (void)sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(lock);
    }
    return r;
}

int
pd_sqlite_snapshot(const char *src, const char *dst, int64_t *pages, char *err, size_t cap)
{
    return pd_sqlite_snapshot_at(src, dst, pages, NULL, NULL, err, cap);
}

int
pd_sqlite_snapshot_at(const char *src, const char *dst, int64_t *pages, pd_wal_pos_t *pos, bool *have_pos, char *err,
                      size_t cap)
{
    char u[8400], wal[4200], shm[4200];
    sqlite3 *s = NULL, *d = NULL;
    sqlite3_stmt *st = NULL;
    int r = PD_ERR_IO;
    bool created = false;
    if (have_pos != NULL)
        *have_pos = false;

    snprintf(wal, sizeof(wal), "%s-wal", src);
    if (access(src, R_OK) != 0) {
        snprintf(err, cap, "cannot read %s: %s", src, strerror(errno));
        return -errno;
    }
    if ((r = uri(u, sizeof(u), src, access(wal, F_OK) != 0)) != 0) {
        snprintf(err, cap, "path too long: %s", src);
        return r;
    }
    /* the copy's mode is set here, not by SQLite and the umask */
    int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        r = errno == EEXIST ? PD_ERR_EXISTS : -errno;
        snprintf(err, cap, "cannot create %s: %s", dst, strerror(errno));
        return r;
    }
    close(fd);
    created = true;
    r = PD_ERR_IO;
    if (sqlite3_open_v2(u, &s, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
        r = fail(s, src, err, cap);
        goto out;
    }
    sqlite3_busy_timeout(s, BUSY_MS);
    (void)sqlite3_db_config(s, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    /* with its owner's -wal and -shm there (as root, SQLite would make a -shm of root's) */
    snprintf(shm, sizeof(shm), "%s-shm", src);
    if (pos != NULL && access(wal, F_OK) == 0 && access(shm, F_OK) == 0) {
        if ((r = begin_at(u, s, wal, pos, err, cap)) != 0)
            goto out;
        *have_pos = true;
        r = PD_ERR_IO;
    }
    if (sqlite3_open_v2(dst, &d, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        r = fail(d, dst, err, cap);
        goto out;
    }
    sqlite3_busy_timeout(d, BUSY_MS);
    sqlite3_backup *b = sqlite3_backup_init(d, "main", s, "main");
    if (b == NULL) {
        r = fail(d, "cannot start the backup", err, cap);
        goto out;
    }
    /* one step copies every page under one read transaction: one commit's state */
    int sr = sqlite3_backup_step(b, -1);
    if (pages != NULL)
        *pages = sqlite3_backup_pagecount(b);
    int fr = sqlite3_backup_finish(b);
    if (sr != SQLITE_DONE || fr != SQLITE_OK) {
        snprintf(err, cap, "backup of %s: %s", src, sqlite3_errstr(sr != SQLITE_DONE ? sr : fr));
        goto out;
    }
    /* one file: the copy needs no -wal to be read (its owner switches it back to WAL) */
    if (sqlite3_prepare_v2(d, "PRAGMA journal_mode=DELETE", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW || sqlite3_column_text(st, 0) == NULL ||
        strcmp((const char *)sqlite3_column_text(st, 0), "delete") != 0) {
        r = fail(d, "cannot set the copy's journal mode", err, cap);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_close(d) != SQLITE_OK) {
        r = fail(d, dst, err, cap);
        d = NULL;
        goto out;
    }
    d = NULL;
    if ((fd = open(dst, O_RDONLY | O_CLOEXEC)) < 0 || fsync(fd) != 0) {
        snprintf(err, cap, "cannot sync %s: %s", dst, strerror(errno));
        r = -errno;
        if (fd >= 0)
            close(fd);
        goto out;
    }
    close(fd);
    r = 0;
out:
    sqlite3_finalize(st);
    if (d != NULL)
        sqlite3_close(d);
    if (s != NULL) {
        (void)sqlite3_exec(s, "ROLLBACK", NULL, NULL, NULL); /* begin_at's read transaction */
        sqlite3_close(s);
    }
    if (r != 0 && created)
        unlink(dst);
    return r;
}

int
pd_sqlite_integrity(const char *path, char *err, size_t cap)
{
    char u[8400];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int r = PD_ERR_INVALID;
    /* immutable: a copy nobody writes; opening it creates no journal, -wal or -shm */
    if (uri(u, sizeof(u), path, true) != 0) {
        snprintf(err, cap, "path too long: %s", path);
        return PD_ERR_TOOBIG;
    }
    if (sqlite3_open_v2(u, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, cap, "%s is not a readable SQLite database: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    int sr = sqlite3_step(st);
    const unsigned char *t = sr == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    if (t == NULL || strcmp((const char *)t, "ok") != 0) {
        snprintf(err, cap, "%s fails its integrity check: %s", path,
                 t != NULL ? (const char *)t : sqlite3_errmsg(db));
        goto out;
    }
    r = 0;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return r;
}
