/*
 * A restore to a point in time (payctl backup restore --until; docs/backup.md "Point in
 * time"): the archive's payments copy rolled forward with the WAL archive's records,
 * from the copy's own WAL position up to the last record archived by the chosen time.
 *
 * Each frame is a whole page, so writing the pages of every commit after the copy's, in
 * order, into the copy gives the store as of the last of those commits. Pages the copy
 * already holds may be written again (a record that straddles the copy's position is
 * written whole): no page of it is older than the copy's, and later records overwrite
 * them. The records are authenticated (AES-GCM) and must follow each other without a
 * gap; their pages are not checked against the WAL's checksums (a record keeps only
 * each page's last version, not the frames).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "backup/internal.h"

#define SEGS_MAX 4096 /* payd-vault unwraps the archive's key and at most this many more */

int
pd_bk_wal_open(pd_bk_wal_t *w, const char *dir, int64_t until_ms, char *err, size_t cap)
{
    memset(w, 0, sizeof(*w));
    w->dir = dir;
    if ((w->segs = calloc(SEGS_MAX, sizeof(*w->segs))) == NULL)
        return PD_ERR_NOMEM;
    int r = pd_wal_segments(dir, w->segs, SEGS_MAX, &w->n, err, cap);
    if (r != 0)
        return r;
    /* a segment made after the time holds no record of it */
    while (w->n > 0 && w->segs[w->n - 1].created_ms > until_ms)
        w->n--;
    if (w->n == 0) {
        snprintf(err, cap, "the WAL archive %s has no segment from before the time given (is it [backup] dir/wal, or "
                           "DATA_DIR/wal-archive? --wal-dir names it)",
                 dir);
        return PD_ERR_NOTFOUND;
    }
    if ((w->keys = calloc(w->n, PD_WAL_KEY_LEN)) == NULL)
        return PD_ERR_NOMEM;
    return 0;
}

void
pd_bk_wal_free(pd_bk_wal_t *w)
{
    if (w->keys != NULL)
        OPENSSL_cleanse(w->keys, w->n * PD_WAL_KEY_LEN);
    free(w->keys);
    free(w->segs);
    memset(w, 0, sizeof(*w));
}

static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int
pwrite_all(int fd, const void *p, size_t n, off_t off)
{
    size_t put = 0;
    while (put < n) {
        ssize_t k = pwrite(fd, (const uint8_t *)p + put, n - put, off + (off_t)put);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : PD_ERR_IO;
        put += (size_t)k;
    }
    return 0;
}

/* the page size the database file's header names (bytes 16-17; 1 means 65536) */
static int
db_page_size(int fd, uint32_t *ps)
{
    uint8_t h[100];
    if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) || memcmp(h, "SQLite format 3", 16) != 0)
        return PD_ERR_INVALID;
    *ps = h[16] << 8 | h[17];
    if (*ps == 1)
        *ps = 65536;
    return 0;
}

/* state of the walk along the chain */
typedef struct {
    bool started, done;
    pd_wal_record_t prev; /* the last record applied (or passed) */
    uint8_t chain[16];
    uint32_t commit_size; /* pages after the last commit applied (0: none) */
} walk_t;

/* whether r is the first record to apply after the copy's position from */
static bool
is_anchor(const pd_wal_record_t *r, const pd_wal_pos_t *from)
{
    if (r->salt1 != from->salt1 || r->salt2 != from->salt2)
        return false;
    return from->frame + 1 >= r->first && from->frame + 1 <= r->first + r->frames - 1;
}

/* r follows the last record of the chain: the next frame of its generation, or frame 1 of
 * the next generation (salt 1 + 1, as SQLite resets the WAL; any after an empty WAL) */
static bool
follows(const walk_t *k, const pd_wal_record_t *r)
{
    const pd_wal_record_t *p = &k->prev;
    if (r->salt1 == p->salt1 && r->salt2 == p->salt2)
        return r->first == p->first + p->frames;
    return r->first == 1 && (r->salt1 == p->salt1 + 1 || r->jump);
}

/* the record's pages into db (authenticated already: pd_wal_record_open) */
static int
apply(walk_t *k, int db, const pd_wal_record_t *r, const uint8_t *entries, char *err, size_t cap)
{
    size_t esz = 4 + (size_t)r->page_size;
    for (uint32_t i = 0; i < r->pages; i++) {
        const uint8_t *e = entries + (size_t)i * esz;
        uint32_t pgno = be32(e);
        if (pgno == 0 || pgno > r->db_size) {
            snprintf(err, cap, "a record of the WAL archive names page %u of a %u-page database", pgno, r->db_size);
            return PD_ERR_INVALID;
        }
        int rc = pwrite_all(db, e + 4, r->page_size, (off_t)(pgno - 1) * r->page_size);
        if (rc != 0) {
            snprintf(err, cap, "cannot write the restored payd.db: %s", pd_strerror(rc));
            return rc;
        }
    }
    k->commit_size = r->db_size;
    return 0;
}

int
pd_bk_wal_replay(const pd_bk_wal_t *w, const char *db_path, const pd_wal_pos_t *from, int64_t until_ms,
                 pd_bk_replay_t *st, char *err, size_t cap)
{
    walk_t k = {0};
    uint8_t *buf = NULL;
    size_t buf_cap = 0;
    int rc = 0;
    uint32_t db_ps = 0;
    memset(st, 0, sizeof(*st));
    int db = open(db_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (db < 0) {
        snprintf(err, cap, "cannot open the restored payd.db: %s", strerror(errno));
        return -errno;
    }
    if ((rc = db_page_size(db, &db_ps)) != 0) {
        snprintf(err, cap, "the restored payd.db is not a SQLite database");
        goto out;
    }
    for (size_t i = 0; i < w->n && rc == 0 && !k.done; i++) {
        const pd_wal_segment_t *s = &w->segs[i];
        pd_wal_reader_t rd;
        if (k.started && memcmp(s->chain, k.chain, 16) != 0) {
            k.done = true; /* the chain ended (payd started a new one): nothing later follows the copy */
            st->chain_ended_ms = s->created_ms;
            break;
        }
        if ((rc = pd_wal_reader_open(&rd, w->dir, s)) != 0) {
            snprintf(err, cap, "cannot read the WAL archive's %s: %s", s->name, pd_strerror(rc));
            break;
        }
        pd_wal_record_t r;
        bool end = false, torn = false;
        while (rc == 0 && !k.done && (rc = pd_wal_reader_next(&rd, &r, &end, &torn)) == 0 && !end) {
            if (!k.started) {
                if (!is_anchor(&r, from)) {
                    /* the record that ends at the copy's position: the next one is the first */
                    if (r.salt1 == from->salt1 && r.salt2 == from->salt2 && r.first + r.frames - 1 == from->frame) {
                        k.started = true;
                        k.prev = r;
                        memcpy(k.chain, s->chain, 16);
                    }
                    continue;
                }
                k.started = true;
                memcpy(k.chain, s->chain, 16);
            } else if (!follows(&k, &r)) {
                snprintf(err, cap, "the WAL archive has a gap before %s (record %llu): frames are missing", s->name,
                         (unsigned long long)r.index);
                rc = PD_ERR_INVALID;
                break;
            }
            if (r.stamp_ms > until_ms) {
                k.done = true;
                break;
            }
            if (r.page_size != db_ps) {
                snprintf(err, cap, "the WAL archive's pages (%u bytes) are not the restored payd.db's (%u)",
                         r.page_size, db_ps);
                rc = PD_ERR_INVALID;
                break;
            }
            size_t need = (size_t)r.pages * (4 + (size_t)r.page_size);
            if (need > buf_cap) {
                uint8_t *nb = realloc(buf, need);
                if (nb == NULL) {
                    rc = PD_ERR_NOMEM;
                    break;
                }
                buf = nb;
                buf_cap = need;
            }
            if ((rc = pd_wal_record_open(&rd, s, &r, w->keys + i * PD_WAL_KEY_LEN, buf)) != 0) {
                snprintf(err, cap, "a record of the WAL archive's %s does not open (%s): tampered, or not this "
                                   "vault's",
                         s->name, pd_strerror(rc));
                break;
            }
            if ((rc = apply(&k, db, &r, buf, err, cap)) != 0)
                break;
            k.prev = r;
            st->records++;
            st->frames += r.frames;
            st->pages += r.pages;
            st->last_ms = r.stamp_ms;
        }
        pd_wal_reader_close(&rd);
    }
    if (rc != 0)
        goto out;
    if (!k.started) {
        snprintf(err, cap, "the WAL archive holds no record after this backup's position (generation %u, frame %u): "
                           "it does not reach back to the backup, or [backup] wal_archive was off when it was taken",
                 from->salt1, from->frame);
        rc = PD_ERR_NOTFOUND;
        goto out;
    }
    /* the last commit's size, and the header back to rollback-journal mode (bytes 18-19:
     * the copy is one file without a -wal, as the archive's copy was) */
    static const uint8_t legacy[2] = {1, 1};
    if ((k.commit_size != 0 && ftruncate(db, (off_t)k.commit_size * db_ps) != 0) ||
        pwrite_all(db, legacy, 2, 18) != 0 || fsync(db) != 0) {
        rc = -errno;
        snprintf(err, cap, "cannot finish the restored payd.db: %s", strerror(errno));
    }
out:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, buf_cap);
        free(buf);
    }
    close(db);
    return rc;
}
