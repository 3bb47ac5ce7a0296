/*
 * Online snapshots of SQLite databases (include/payd/snapshot.h): a copy taken while a
 * writer holds an open transaction has exactly the committed rows, is one file (0600,
 * rollback journal, no -wal) that passes integrity_check; a database whose owner is not
 * running (no -wal) is copied without creating a -wal or -shm next to it; an existing
 * destination is refused and left alone; a source that is not a database leaves no
 * destination; integrity_check refuses a file that is not a database and a damaged one.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "payd/snapshot.h"

static char dir[64], src[128], dst[128];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-snap-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(src, sizeof(src), "%s/src.db", dir);
    snprintf(dst, sizeof(dst), "%s/dst.db", dir);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
exec(sqlite3 *db, const char *sql)
{
    char *e = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK)
        fail_msg("%s: %s", sql, e);
}

static int
count(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int n = -1;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static bool
exists(const char *path, const char *suffix)
{
    char p[200];
    snprintf(p, sizeof(p), "%s%s", path, suffix);
    return access(p, F_OK) == 0;
}

static void
a_copy_holds_what_was_committed_while_a_writer_works(void **state)
{
    (void)state;
    sqlite3 *w;
    char err[256];
    int64_t pages = 0;
    assert_int_equal(sqlite3_open(src, &w), SQLITE_OK);
    exec(w, "PRAGMA journal_mode=WAL; CREATE TABLE t (x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
            "FROM n WHERE i < 5000) INSERT INTO t SELECT randomblob(100) FROM n;");
    exec(w, "BEGIN; INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);"); /* not committed */
    assert_int_equal(pd_sqlite_snapshot(src, dst, &pages, err, sizeof(err)), 0);
    assert_true(pages > 10);
    exec(w, "COMMIT;");
    sqlite3_close(w);
    assert_int_equal(count(dst), 5000);
    struct stat st;
    assert_int_equal(stat(dst, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_false(exists(dst, "-wal"));
    assert_int_equal(pd_sqlite_integrity(dst, err, sizeof(err)), 0);
    assert_false(exists(dst, "-wal"));
    assert_false(exists(dst, "-shm"));
    /* the destination must be new: refused, and left as it was */
    assert_int_equal(pd_sqlite_snapshot(src, dst, NULL, err, sizeof(err)), PD_ERR_EXISTS);
    assert_int_equal(count(dst), 5000);
    unlink(dst);
}

static void
a_stopped_database_gets_no_side_files(void **state)
{
    (void)state;
    char err[256];
    /* src is in WAL mode and closed: its -wal and -shm are gone */
    assert_false(exists(src, "-wal"));
    assert_false(exists(src, "-shm"));
    assert_int_equal(pd_sqlite_snapshot(src, dst, NULL, err, sizeof(err)), 0);
    assert_false(exists(src, "-wal"));
    assert_false(exists(src, "-shm"));
    assert_int_equal(count(dst), 5002);
    unlink(dst);
}

static void
what_is_not_a_database_is_refused(void **state)
{
    (void)state;
    char junk[160], err[256] = "";
    snprintf(junk, sizeof(junk), "%s/junk", dir);
    FILE *f = fopen(junk, "w");
    for (int i = 0; i < 1000; i++)
        fputs("not a database at all ", f);
    fclose(f);
    assert_int_not_equal(pd_sqlite_snapshot(junk, dst, NULL, err, sizeof(err)), 0);
    assert_false(exists(dst, ""));
    assert_int_equal(pd_sqlite_integrity(junk, err, sizeof(err)), PD_ERR_INVALID);
    assert_non_null(strstr(err, junk));
    snprintf(junk, sizeof(junk), "%s/absent", dir);
    assert_int_not_equal(pd_sqlite_snapshot(junk, dst, NULL, err, sizeof(err)), 0);
    assert_false(exists(dst, ""));
    /* a copy with a page overwritten: integrity_check finds it */
    assert_int_equal(pd_sqlite_snapshot(src, dst, NULL, err, sizeof(err)), 0);
    int fd = open(dst, O_WRONLY);
    char page[4096];
    memset(page, 0x5a, sizeof(page));
    assert_int_equal(pwrite(fd, page, sizeof(page), 4096 * 5), (ssize_t)sizeof(page));
    close(fd);
    assert_int_equal(pd_sqlite_integrity(dst, err, sizeof(err)), PD_ERR_INVALID);
    unlink(dst);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_copy_holds_what_was_committed_while_a_writer_works),
        cmocka_unit_test(a_stopped_database_gets_no_side_files),
        cmocka_unit_test(what_is_not_a_database_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
