/*
 * The WAL archive and the roll-forward (payd/wal_archive.h, src/backup/wal_replay.c)
 * on a real SQLite store: a writer with the archiving checkpoint thread commits rows
 * (small transactions, and one of 5,000 pages, past the WAL's rewind size, so the WAL
 * is reset and truncated under it), a snapshot is taken with its WAL position half-way,
 * and the snapshot rolled forward to a time holds exactly the rows committed by then,
 * row for row. A flipped byte of a record, and a record removed from the chain, are
 * refused; a torn last record is the archive's end.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "backup/internal.h"
#include "payd/db.h"
#include "payd/snapshot.h"
#include "payd/time.h"

static char dir[64], db_path[128], wal_dir[128], snap[128];
static uint8_t key[PD_WAL_KEY_LEN];

static int
fixed_key(void *arg, uint8_t k[PD_WAL_KEY_LEN], uint8_t wrapped[PD_WAL_WRAPPED_LEN])
{
    (void)arg;
    memcpy(k, key, PD_WAL_KEY_LEN);
    memset(wrapped, 0x5a, PD_WAL_WRAPPED_LEN);
    return 0;
}

static void
exec_ok(pd_db_t *db, const char *sql)
{
    assert_int_equal(db->ops->script(db, sql), 0);
}

/* rows first..first+n-1 in one transaction, each a blob of bytes */
static void
insert(pd_db_t *db, int first, int n, int bytes)
{
    char sql[200];
    exec_ok(db, "BEGIN IMMEDIATE");
    for (int i = first; i < first + n; i++) {
        snprintf(sql, sizeof(sql), "INSERT INTO t(id, v) VALUES (%d, randomblob(%d))", i, bytes);
        exec_ok(db, sql);
    }
    exec_ok(db, "COMMIT");
}

static long
query_long(const char *path, const char *sql)
{
    sqlite3 *d = NULL;
    sqlite3_stmt *st = NULL;
    long v = -1;
    assert_int_equal(sqlite3_open_v2(path, &d, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(d, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(d);
    return v;
}

/* the SHA3 of every row, by the sqlite3 shell */
static void
rows_hash(const char *path, char *out, size_t cap)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "sqlite3 -readonly %s \"SELECT hex(sha3_query('SELECT id, v FROM t ORDER BY id'))\"",
             path);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    assert_non_null(fgets(out, (int)cap, f));
    assert_int_equal(pclose(f), 0);
    assert_true(strlen(out) > 60);
}

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-walarch-XXXXXX");
    if (mkdtemp(dir) == NULL || RAND_bytes(key, sizeof(key)) != 1)
        return -1;
    snprintf(db_path, sizeof(db_path), "%s/payd.db", dir);
    snprintf(wal_dir, sizeof(wal_dir), "%s/wal", dir);
    snprintf(snap, sizeof(snap), "%s/snap.db", dir);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* a copy of the snapshot, rolled forward to until: rc, and the copy's path in out */
static int
roll(int64_t until, const pd_wal_pos_t *from, char *out, size_t cap, pd_bk_replay_t *st, char *err, size_t ecap)
{
    char cmd[400];
    static int n;
    snprintf(out, cap, "%s/roll-%d.db", dir, n++);
    snprintf(cmd, sizeof(cmd), "cp %s %s", snap, out);
    assert_int_equal(system(cmd), 0);
    pd_bk_wal_t w;
    int rc = pd_bk_wal_open(&w, wal_dir, until, err, ecap);
    for (size_t i = 0; rc == 0 && i < w.n; i++)
        memcpy(w.keys + i * PD_WAL_KEY_LEN, key, PD_WAL_KEY_LEN);
    if (rc == 0)
        rc = pd_bk_wal_replay(&w, out, from, until, st, err, ecap);
    pd_bk_wal_free(&w);
    return rc;
}

static void
rolls_forward_to_each_time(void **state)
{
    (void)state;
    pd_wal_archive_opts_t o = {.dir = wal_dir, .keep_ms = 86400000, .segment_ms = 3600000, .segment_max = 8u << 10,
                               .key = fixed_key};
    pd_sqlite_wal_archive(PD_WAL_ARCHIVE_ON, &o);
    pd_sqlite_wal_archive_bind(db_path);
    pd_db_t *db = NULL;
    assert_int_equal(pd_db_open_sqlite(&db, db_path, true), 0);
    exec_ok(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    insert(db, 1, 50, 300);
    usleep(200 * 1000);

    pd_wal_pos_t from;
    bool have = false;
    int64_t pages = 0;
    char err[512];
    assert_int_equal(pd_sqlite_snapshot_at(db_path, snap, &pages, &from, &have, err, sizeof(err)), 0);
    assert_true(have);
    assert_int_equal(query_long(snap, "SELECT count(*) FROM t"), 50);

    /* after the snapshot: small commits, one large one (5,000 pages: the WAL is rewound
     * and truncated under it), and a time noted between each step */
    int64_t marks[4];
    int rows[4];
    insert(db, 51, 20, 300);
    usleep(200 * 1000);
    marks[0] = pd_real_ms(), rows[0] = 70;
    usleep(100 * 1000);
    insert(db, 71, 5000, 3000);
    usleep(500 * 1000);
    marks[1] = pd_real_ms(), rows[1] = 5070;
    usleep(100 * 1000);
    for (int i = 0; i < 30; i++) {
        insert(db, 5071 + i, 1, 100);
        usleep(10 * 1000);
    }
    usleep(200 * 1000);
    marks[2] = pd_real_ms(), rows[2] = 5100;
    usleep(100 * 1000);
    insert(db, 5101, 10, 100);
    db->ops->close(db); /* the checkpoint thread's last round archives the tail */
    marks[3] = pd_real_ms(), rows[3] = 5110;

    char path[300];
    pd_bk_replay_t st;
    for (int m = 0; m < 4; m++) {
        if (roll(marks[m], &from, path, sizeof(path), &st, err, sizeof(err)) != 0)
            fail_msg("roll forward to mark %d: %s", m, err);
        assert_int_equal(query_long(path, "SELECT count(*) FROM t"), rows[m]);
        assert_int_equal(query_long(path, "SELECT max(id) FROM t"), rows[m]);
        char ierr[300];
        assert_int_equal(pd_sqlite_integrity(path, ierr, sizeof(ierr)), 0);
    }
    printf("wal archive: 5,110 rows, the last mark after %lld records (%lld frames, %lld pages)\n",
           (long long)st.records, (long long)st.frames, (long long)st.pages);
    /* the same rows as the live store, byte for byte */
    char h1[200], h2[200];
    rows_hash(path, h1, sizeof(h1));
    rows_hash(db_path, h2, sizeof(h2));
    assert_string_equal(h1, h2);
    pd_sqlite_wal_archive(PD_WAL_ARCHIVE_OFF, NULL);
}

static void
tampering_is_refused(void **state)
{
    (void)state;
    pd_wal_segment_t segs[64];
    size_t n = 0;
    char err[512], path[400], seg[300];
    assert_int_equal(pd_wal_segments(wal_dir, segs, 64, &n, err, sizeof(err)), 0);
    assert_true(n >= 3); /* 8 KiB segments: a new one after every record or two */
    /* a flipped byte inside the last segment's first record */
    snprintf(seg, sizeof(seg), "%s/%s", wal_dir, segs[n - 1].name);
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    off_t at = PD_WAL_SEG_HDR + PD_WAL_REC_HDR + PD_WAL_NONCE + 10;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 1;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    pd_wal_pos_t from;
    bool have = false;
    /* the snapshot's position from the first test is in snap.db's owner's WAL no more:
     * roll from a position at the start of the archive instead */
    pd_wal_reader_t rd;
    pd_wal_record_t r;
    bool end, torn;
    assert_int_equal(pd_wal_reader_open(&rd, wal_dir, &segs[0]), 0);
    assert_int_equal(pd_wal_reader_next(&rd, &r, &end, &torn), 0);
    pd_wal_reader_close(&rd);
    from = (pd_wal_pos_t){.salt1 = r.salt1, .salt2 = r.salt2, .page_size = r.page_size, .frame = 0};
    (void)have;
    pd_bk_replay_t st;
    assert_int_equal(roll(pd_real_ms(), &from, path, sizeof(path), &st, err, sizeof(err)), PD_ERR_AUTH);
    assert_non_null(strstr(err, "does not open"));
    b ^= 1;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    /* a torn tail: the archive ends before it, without an error */
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    assert_int_equal(ftruncate(fd, sb.st_size - 7), 0);
    close(fd);
    assert_int_equal(roll(pd_real_ms(), &from, path, sizeof(path), &st, err, sizeof(err)), 0);
    /* a segment in the middle removed: a gap */
    {
        snprintf(seg, sizeof(seg), "%s/%s", wal_dir, segs[1].name);
        assert_int_equal(unlink(seg), 0);
        assert_int_equal(roll(pd_real_ms(), &from, path, sizeof(path), &st, err, sizeof(err)), PD_ERR_INVALID);
        assert_non_null(strstr(err, "gap"));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rolls_forward_to_each_time),
        cmocka_unit_test(tampering_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
