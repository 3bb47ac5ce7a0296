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

int
pd_sqlite_snapshot(const char *src, const char *dst, int64_t *pages, char *err, size_t cap)
{
    char u[8400], wal[4200];
    sqlite3 *s = NULL, *d = NULL;
    sqlite3_stmt *st = NULL;
    int r = PD_ERR_IO;
    bool created = false;

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
    if (s != NULL)
        sqlite3_close(s);
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
