/*
 * The WAL archive (payd/wal_archive.h): the archiver that payd's checkpoint thread runs
 * before every checkpoint, and the reader of its segments (restore, and the archiver's
 * own start, which continues the chain of the last segment when it can prove that the
 * WAL it finds follows it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "payd/fileio.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/time.h"
#include "payd/wal_archive.h"

#define SEG_MAGIC "PDWALSG1"
#define REC_MAGIC "PDWR"
#define REC_MAGIC_JUMP "PDWJ" /* the first record of a generation whose salt 1 is not the last one's + 1 */
#define SEGS_MAX 4096      /* segments a directory may hold (hourly: half a year) */
#define WARN_EVERY_MS 60000
#define PRUNE_EVERY_MS 60000

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void
put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static uint64_t
frame_bytes(uint32_t page_size)
{
    return PD_WAL_FRAME_HDR + (uint64_t)page_size;
}

/* a page's entry in a record's body: its number and its bytes */
static uint64_t
entry_bytes(uint32_t page_size)
{
    return 4 + (uint64_t)page_size;
}

static uint64_t
record_len(const pd_wal_record_t *r)
{
    return PD_WAL_REC_HDR + PD_WAL_NONCE + (uint64_t)r->pages * entry_bytes(r->page_size) + PD_WAL_TAG;
}

static void
record_hdr(uint8_t h[PD_WAL_REC_HDR], const pd_wal_record_t *r)
{
    memcpy(h, r->jump ? REC_MAGIC_JUMP : REC_MAGIC, 4);
    put32(h + 4, r->salt1);
    put32(h + 8, r->salt2);
    put32(h + 12, r->page_size);
    put32(h + 16, r->first);
    put32(h + 20, r->frames);
    put32(h + 24, r->ck[0]);
    put32(h + 28, r->ck[1]);
    put64(h + 32, (uint64_t)r->stamp_ms);
    put32(h + 40, r->pages);
    put32(h + 44, r->db_size);
}

/* the cipher of one record: its key, nonce and additional data set */
static EVP_CIPHER_CTX *
record_cipher(bool enc, const uint8_t key[PD_WAL_KEY_LEN], const uint8_t nonce[PD_WAL_NONCE],
              const uint8_t seg_hdr[PD_WAL_SEG_HDR], const uint8_t rec_hdr[PD_WAL_REC_HDR], uint64_t index)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t idx[8];
    int len = 0;
    put64(idx, index);
    if (c == NULL || EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce, enc ? 1 : 0) != 1 ||
        EVP_CipherUpdate(c, NULL, &len, seg_hdr, PD_WAL_SEG_HDR) != 1 ||
        EVP_CipherUpdate(c, NULL, &len, rec_hdr, PD_WAL_REC_HDR) != 1 || EVP_CipherUpdate(c, NULL, &len, idx, 8) != 1) {
        EVP_CIPHER_CTX_free(c);
        return NULL;
    }
    return c;
}

/* --- reading segments --- */

static int
cmp_seg(const void *a, const void *b)
{
    const pd_wal_segment_t *x = a, *y = b;
    if (x->created_ms != y->created_ms)
        return x->created_ms < y->created_ms ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int
open_in(const char *dir, const char *name, int flags, mode_t mode)
{
    char path[4300];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return PD_ERR_TOOBIG;
    int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW, mode);
    return fd < 0 ? -errno : fd;
}

static int
read_segment(const char *dir, pd_wal_segment_t *s, char *err, size_t cap)
{
    int fd = open_in(dir, s->name, O_RDONLY, 0);
    if (fd < 0) {
        snprintf(err, cap, "cannot read %s/%s: %s", dir, s->name, pd_strerror(fd));
        return fd;
    }
    int r = pd_pread_all(fd, s->hdr, PD_WAL_SEG_HDR, 0);
    close(fd);
    if (r != 0 || memcmp(s->hdr, SEG_MAGIC, 8) != 0 || (s->hdr[40] << 8 | s->hdr[41]) != PD_WAL_WRAPPED_LEN) {
        snprintf(err, cap, "%s/%s is not a WAL archive segment%s", dir, s->name,
                 r == PD_ERR_TRUNCATED ? " (cut short)" : "");
        return r < 0 && r != PD_ERR_TRUNCATED ? r : PD_ERR_INVALID;
    }
    memcpy(s->chain, s->hdr + 8, 16);
    s->seq = get64(s->hdr + 24);
    s->created_ms = (int64_t)get64(s->hdr + 32);
    memcpy(s->wrapped, s->hdr + 42, PD_WAL_WRAPPED_LEN);
    return 0;
}

/* "wal-" 13 digits "-" 8 digits ".pdwal" */
static bool
segment_name(const char *n, int64_t *created, uint64_t *seq)
{
    if (strlen(n) != 4 + 13 + 1 + 8 + 6 || strncmp(n, "wal-", 4) != 0 || n[17] != '-' || strcmp(n + 26, ".pdwal") != 0)
        return false;
    *created = 0;
    *seq = 0;
    for (int i = 4; i < 26; i++) {
        if (i == 17)
            continue;
        if (n[i] < '0' || n[i] > '9')
            return false;
        if (i < 17)
            *created = *created * 10 + (n[i] - '0');
        else
            *seq = *seq * 10 + (uint64_t)(n[i] - '0');
    }
    return true;
}

int
pd_wal_segments(const char *dir, pd_wal_segment_t *segs, size_t cap, size_t *n, char *err, size_t ecap)
{
    DIR *d = opendir(dir);
    *n = 0;
    if (d == NULL) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, ecap, "cannot read the WAL archive %s: %s", dir, strerror(errno));
        return -errno;
    }
    struct dirent *e;
    int r = 0;
    while (r == 0 && (e = readdir(d)) != NULL) {
        int64_t created;
        uint64_t seq;
        if (!segment_name(e->d_name, &created, &seq))
            continue; /* another file (a temporary one, ...) */
        if (*n == cap) {
            snprintf(err, ecap, "the WAL archive %s holds more than %zu segments", dir, cap);
            r = PD_ERR_TOOBIG;
            break;
        }
        pd_wal_segment_t *s = &segs[*n];
        memcpy(s->name, e->d_name, strlen(e->d_name) + 1); /* segment_name: 32 bytes */
        if ((r = read_segment(dir, s, err, ecap)) == 0 && (s->created_ms != created || s->seq != seq)) {
            snprintf(err, ecap, "%s/%s: its header does not match its name", dir, s->name);
            r = PD_ERR_INVALID;
        }
        if (r == 0)
            (*n)++;
    }
    closedir(d);
    if (r == 0)
        qsort(segs, *n, sizeof(*segs), cmp_seg);
    return r;
}

int
pd_wal_reader_open(pd_wal_reader_t *rd, const char *dir, const pd_wal_segment_t *s)
{
    struct stat st;
    memset(rd, 0, sizeof(*rd));
    rd->fd = open_in(dir, s->name, O_RDONLY, 0);
    if (rd->fd < 0)
        return rd->fd;
    if (fstat(rd->fd, &st) != 0) {
        int r = -errno;
        close(rd->fd);
        rd->fd = -1;
        return r;
    }
    rd->size = (uint64_t)st.st_size;
    rd->off = PD_WAL_SEG_HDR;
    return 0;
}

int
pd_wal_reader_next(pd_wal_reader_t *rd, pd_wal_record_t *r, bool *end, bool *torn)
{
    uint8_t h[PD_WAL_REC_HDR];
    *end = *torn = false;
    if (rd->off >= rd->size) {
        *end = true;
        return 0;
    }
    if (rd->size - rd->off < PD_WAL_REC_HDR) {
        *end = *torn = true;
        return 0;
    }
    int e = pd_pread_all(rd->fd, h, sizeof(h), (off_t)rd->off);
    if (e != 0)
        return e;
    memset(r, 0, sizeof(*r));
    r->salt1 = get32(h + 4);
    r->salt2 = get32(h + 8);
    r->page_size = get32(h + 12);
    r->first = get32(h + 16);
    r->frames = get32(h + 20);
    r->ck[0] = get32(h + 24);
    r->ck[1] = get32(h + 28);
    r->stamp_ms = (int64_t)get64(h + 32);
    r->pages = get32(h + 40);
    r->db_size = get32(h + 44);
    r->offset = rd->off;
    r->index = rd->index;
    r->jump = memcmp(h, REC_MAGIC_JUMP, 4) == 0;
    uint32_t ps = r->page_size;
    if ((memcmp(h, REC_MAGIC, 4) != 0 && !r->jump) || ps < 512 || ps > 65536 || (ps & (ps - 1)) != 0 || r->frames == 0 ||
        r->first == 0 || r->first > UINT32_MAX - r->frames || r->pages == 0 || r->pages > r->frames || r->db_size == 0)
        return PD_ERR_INVALID;
    if (record_len(r) > rd->size - rd->off) {
        *end = *torn = true;
        return 0;
    }
    rd->off += record_len(r);
    rd->index++;
    return 0;
}

int
pd_wal_record_open(const pd_wal_reader_t *rd, const pd_wal_segment_t *s, const pd_wal_record_t *r,
                   const uint8_t key[PD_WAL_KEY_LEN], uint8_t *out)
{
    uint8_t h[PD_WAL_REC_HDR], nonce[PD_WAL_NONCE], tag[PD_WAL_TAG];
    uint64_t n = (uint64_t)r->pages * entry_bytes(r->page_size);
    int e;
    record_hdr(h, r);
    if ((e = pd_pread_all(rd->fd, nonce, sizeof(nonce), (off_t)(r->offset + PD_WAL_REC_HDR))) != 0 ||
        (e = pd_pread_all(rd->fd, out, n, (off_t)(r->offset + PD_WAL_REC_HDR + PD_WAL_NONCE))) != 0 ||
        (e = pd_pread_all(rd->fd, tag, sizeof(tag), (off_t)(r->offset + PD_WAL_REC_HDR + PD_WAL_NONCE + n))) != 0)
        return e;
    EVP_CIPHER_CTX *c = record_cipher(false, key, nonce, s->hdr, h, r->index);
    int len = 0, ok = c != NULL;
    for (uint64_t off = 0; ok && off < n; off += (uint64_t)len) {
        int step = n - off > (1u << 30) ? 1 << 30 : (int)(n - off);
        ok = EVP_DecryptUpdate(c, out + off, &len, out + off, step) == 1 && len == step;
    }
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, PD_WAL_TAG, tag) == 1 &&
         EVP_DecryptFinal_ex(c, out + n, &len) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        OPENSSL_cleanse(out, n);
    return ok ? 0 : PD_ERR_AUTH;
}

void
pd_wal_reader_close(pd_wal_reader_t *rd)
{
    if (rd->fd >= 0)
        close(rd->fd);
    rd->fd = -1;
}

/* --- the archiver --- */

struct pd_wal_archiver {
    char wal[4200], dir[4200];
    pd_wal_archive_opts_t o;
    int seg_fd; /* the segment being written (-1: none yet) */
    pd_wal_segment_t seg;
    uint8_t key[PD_WAL_KEY_LEN];
    uint64_t seg_bytes, rec_index;
    bool have_pos;   /* pos: the archive's last frame */
    bool any_next;   /* the WAL was empty: its next generation continues the chain, whatever its salts */
    bool jump;       /* ... and it did: the next record says so (the restore checks salt 1 + 1 otherwise) */
    pd_wal_pos_t pos;
    uint8_t *frame, *out; /* one frame, and its ciphertext */
    size_t frame_cap;
    int64_t last_warn, last_prune;
    int64_t last_gauge_s; /* what payd_wal_archive_last_record_timestamp_seconds says */
    char why[300];
};

static void
warn(pd_wal_archiver_t *a, const char *what, int r)
{
    int64_t now = pd_real_ms();
    pd_mx_inc(PD_MX_WAL_ARCHIVE_FAILURES, 0);
    if (a->last_warn == 0 || now - a->last_warn >= WARN_EVERY_MS) {
        pd_log_error("wal archive: cannot archive the WAL; nothing is checkpointed until it can (the WAL grows)",
                     PD_LS("step", what), PD_LERR(r), PD_LS("dir", a->dir));
        a->last_warn = now;
    }
}

static void
close_segment(pd_wal_archiver_t *a)
{
    if (a->seg_fd >= 0)
        close(a->seg_fd);
    a->seg_fd = -1;
    OPENSSL_cleanse(a->key, sizeof(a->key));
}

/* a new segment of the chain (a->seg.chain, seq + 1), with a fresh key */
static int
open_segment(pd_wal_archiver_t *a)
{
    uint8_t wrapped[PD_WAL_WRAPPED_LEN];
    close_segment(a);
    int r = a->o.key(a->o.key_arg, a->key, wrapped);
    if (r != 0)
        return r;
    pd_wal_segment_t *s = &a->seg;
    s->seq++;
    s->created_ms = pd_real_ms();
    memcpy(s->wrapped, wrapped, sizeof(wrapped));
    memcpy(s->hdr, SEG_MAGIC, 8);
    memcpy(s->hdr + 8, s->chain, 16);
    put64(s->hdr + 24, s->seq);
    put64(s->hdr + 32, (uint64_t)s->created_ms);
    s->hdr[40] = PD_WAL_WRAPPED_LEN >> 8;
    s->hdr[41] = PD_WAL_WRAPPED_LEN & 0xff;
    memcpy(s->hdr + 42, wrapped, sizeof(wrapped));
    snprintf(s->name, sizeof(s->name), "wal-%013" PRId64 "-%08" PRIu64 ".pdwal", s->created_ms, s->seq % 100000000);
    a->seg_fd = open_in(a->dir, s->name, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (a->seg_fd < 0)
        return a->seg_fd;
    if ((r = pd_write_all(a->seg_fd, s->hdr, PD_WAL_SEG_HDR)) != 0 || (fdatasync(a->seg_fd) != 0 && (r = -errno)) ||
        (r = pd_fsync_dir(a->dir)) != 0) {
        char path[4300];
        close_segment(a);
        snprintf(path, sizeof(path), "%s/%s", a->dir, s->name);
        unlink(path);
        return r;
    }
    a->seg_bytes = PD_WAL_SEG_HDR;
    a->rec_index = 0;
    pd_log_info("wal archive: new segment", PD_LS("dir", a->dir), PD_LS("name", s->name), PD_LI("seq", (int64_t)s->seq));
    return 0;
}

static void
new_chain(pd_wal_archiver_t *a, const char *why)
{
    close_segment(a);
    (void)RAND_bytes(a->seg.chain, sizeof(a->seg.chain));
    a->seg.seq = 0;
    a->have_pos = false;
    a->any_next = false;
    pd_log_warn("wal archive: a new chain starts; a point-in-time restore to a later time needs a backup taken after "
                "now",
                PD_LS("reason", why), PD_LS("dir", a->dir));
}

/* the frames' page numbers (pgno -> the last frame of it, among n), open addressing */
typedef struct {
    uint32_t *pgno, *last;
    size_t cap;
} pagemap_t;

static int
pagemap_init(pagemap_t *m, uint32_t n)
{
    m->cap = 16;
    while (m->cap < 2 * (size_t)n)
        m->cap *= 2;
    m->pgno = calloc(m->cap, sizeof(*m->pgno));
    m->last = calloc(m->cap, sizeof(*m->last));
    return m->pgno != NULL && m->last != NULL ? 0 : PD_ERR_NOMEM;
}

static uint32_t *
pagemap_slot(pagemap_t *m, uint32_t pgno)
{
    size_t i = (pgno * 2654435761u) & (m->cap - 1);
    while (m->pgno[i] != 0 && m->pgno[i] != pgno)
        i = (i + 1) & (m->cap - 1);
    m->pgno[i] = pgno;
    return &m->last[i];
}

static void
pagemap_free(pagemap_t *m)
{
    free(m->pgno);
    free(m->last);
}

/* frame i (1-based) of the WAL into a->frame */
static int
read_frame(pd_wal_archiver_t *a, int wal_fd, uint32_t i, size_t fsz)
{
    return pd_pread_all(wal_fd, a->frame, fsz, PD_WAL_HDR + (off_t)(i - 1) * (off_t)fsz);
}

/*
 * Appends the commits after a->pos up to to, all made by seen_ms, as one record, synced.
 * A record is applied whole, so it keeps each page once, at its last version among the
 * frames (under load the same pages are rewritten by commit after commit): the frames
 * are read twice, once to check their chain and find each page's last frame, then for
 * those.
 */
static int
append_record(pd_wal_archiver_t *a, int wal_fd, const pd_wal_pos_t *to, int64_t seen_ms)
{
    int r;
    if (a->seg_fd < 0 || pd_real_ms() - a->seg.created_ms >= a->o.segment_ms || a->seg_bytes >= a->o.segment_max) {
        if ((r = open_segment(a)) != 0) {
            snprintf(a->why, sizeof(a->why), "a new segment");
            return r;
        }
    }
    pd_wal_record_t rec = {.salt1 = to->salt1, .salt2 = to->salt2, .page_size = to->page_size,
                           .first = a->pos.frame + 1, .frames = to->frame - a->pos.frame,
                           .ck = {to->ck[0], to->ck[1]}, .stamp_ms = seen_ms, .jump = a->jump};
    size_t fsz = (size_t)frame_bytes(to->page_size);
    pagemap_t map;
    pd_wal_pos_t at = a->pos;
    if ((r = pagemap_init(&map, rec.frames)) != 0) {
        pagemap_free(&map);
        return r;
    }
    /* read again: frames up to a commit do not change until a checkpoint, which waits for this */
    for (uint32_t i = rec.first; r == 0 && i <= to->frame; i++) {
        uint32_t size = 0;
        if ((r = read_frame(a, wal_fd, i, fsz)) == 0 && !pd_wal_frame_next(&at, a->frame, &size))
            r = PD_ERR_STATE;
        if (r == 0) {
            uint32_t *last = pagemap_slot(&map, get32(a->frame));
            rec.pages += *last == 0;
            *last = i;
            rec.db_size = size;
        }
    }
    uint8_t h[PD_WAL_REC_HDR], nonce[PD_WAL_NONCE], tag[PD_WAL_TAG];
    EVP_CIPHER_CTX *c = NULL;
    off_t start = (off_t)a->seg_bytes;
    int len = 0;
    record_hdr(h, &rec);
    if (r == 0 && (RAND_bytes(nonce, sizeof(nonce)) != 1 ||
                   (c = record_cipher(true, a->key, nonce, a->seg.hdr, h, a->rec_index)) == NULL))
        r = PD_ERR_CRYPTO;
    if (r == 0)
        r = pd_write_all(a->seg_fd, h, sizeof(h));
    if (r == 0)
        r = pd_write_all(a->seg_fd, nonce, sizeof(nonce));
    for (uint32_t i = rec.first; r == 0 && i <= to->frame; i++) {
        if ((r = read_frame(a, wal_fd, i, fsz)) != 0 || *pagemap_slot(&map, get32(a->frame)) != i)
            continue; /* a later frame has this page */
        /* the entry: the frame's page number (its first 4 bytes) and its page */
        memmove(a->frame + PD_WAL_FRAME_HDR - 4, a->frame, 4);
        const uint8_t *e = a->frame + PD_WAL_FRAME_HDR - 4;
        int n = (int)entry_bytes(to->page_size);
        if (EVP_EncryptUpdate(c, a->out, &len, e, n) != 1 || len != n)
            r = PD_ERR_CRYPTO;
        else
            r = pd_write_all(a->seg_fd, a->out, (size_t)n);
    }
    pagemap_free(&map);
    if (r == 0 && (EVP_EncryptFinal_ex(c, a->out, &len) != 1 ||
                   EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, PD_WAL_TAG, tag) != 1))
        r = PD_ERR_CRYPTO;
    EVP_CIPHER_CTX_free(c);
    if (r == 0)
        r = pd_write_all(a->seg_fd, tag, sizeof(tag));
    if (r == 0 && fdatasync(a->seg_fd) != 0)
        r = -errno;
    if (r != 0) {
        /* no half record stays: the next step writes it again (a new segment if this one cannot be cut) */
        snprintf(a->why, sizeof(a->why), "a record");
        if (ftruncate(a->seg_fd, start) != 0)
            close_segment(a);
        return r;
    }
    a->seg_bytes += record_len(&rec);
    a->rec_index++;
    a->pos = at;
    a->jump = false;
    pd_mx_inc(PD_MX_WAL_ARCHIVE_RECORDS, 0);
    int64_t now_s = pd_real_ms() / 1000;
    pd_metric_gauge_add(pd_mx, PD_MX_WAL_ARCHIVE_LAST, 0, now_s - a->last_gauge_s); /* the gauge moves to now */
    a->last_gauge_s = now_s;
    return 0;
}

/* removes the segments whose successor is older than keep_ms */
static void
prune(pd_wal_archiver_t *a)
{
    size_t n = 0;
    char err[300], path[4300];
    int64_t now = pd_real_ms();
    if (now - a->last_prune < PRUNE_EVERY_MS)
        return;
    a->last_prune = now;
    pd_wal_segment_t *segs = calloc(SEGS_MAX, sizeof(*segs));
    if (segs == NULL || pd_wal_segments(a->dir, segs, SEGS_MAX, &n, err, sizeof(err)) != 0)
        n = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", a->dir, segs[i].name);
        if (segs[i + 1].created_ms < now - a->o.keep_ms && unlink(path) == 0)
            pd_log_info("wal archive: segment removed (older than keep_days)", PD_LS("path", path));
    }
    free(segs);
}

int
pd_wal_archiver_step(pd_wal_archiver_t *a)
{
    int fd = open(a->wal, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno; /* no WAL: nothing to archive, nothing to checkpoint */
    pd_wal_pos_t h;
    int r = pd_wal_header(fd, &h);
    if (r == PD_ERR_NOTFOUND) { /* emptied by a truncating checkpoint: every frame was archived */
        close(fd);
        a->any_next = a->have_pos;
        return 0;
    }
    if (r != 0) {
        close(fd);
        warn(a, "the WAL's header", r);
        return r;
    }
    if (a->have_pos && (h.salt1 != a->pos.salt1 || h.salt2 != a->pos.salt2)) {
        /* a new generation: it continues the chain only right after the last one */
        if (h.salt1 == a->pos.salt1 + 1 || a->any_next) {
            a->jump = h.salt1 != a->pos.salt1 + 1;
            a->pos = h;
        } else
            new_chain(a, "the WAL was reset outside payd's checkpoints");
    }
    if (!a->have_pos) {
        a->pos = h;
        a->have_pos = true;
    }
    a->any_next = false;
    size_t fsz = (size_t)frame_bytes(h.page_size);
    if (fsz > a->frame_cap) {
        uint8_t *f = realloc(a->frame, fsz), *o = f != NULL ? realloc(a->out, fsz + PD_WAL_TAG) : NULL;
        if (f != NULL)
            a->frame = f;
        if (o != NULL)
            a->out = o;
        if (f == NULL || o == NULL) {
            close(fd);
            return PD_ERR_NOMEM;
        }
        a->frame_cap = fsz;
    }
    for (;;) {
        pd_wal_pos_t to = a->pos;
        uint32_t n = 0;
        /* records of at most 4096 frames, but a transaction larger than that is one record */
        if ((r = pd_wal_scan(fd, &to, 4096, a->frame, &n)) == 0 && n == 0)
            r = pd_wal_scan(fd, &to, UINT32_MAX, a->frame, &n);
        if (r != 0 || n == 0)
            break;
        /* the record's time: its commits were all made by now (not when it is written,
         * which may wait on the vault for a segment's key) */
        if ((r = append_record(a, fd, &to, pd_real_ms())) != 0)
            break;
    }
    close(fd);
    if (r != 0) {
        warn(a, a->why[0] != '\0' ? a->why : "reading the WAL", r);
        return r;
    }
    prune(a);
    return 0;
}

/*
 * Where the archive of the last run ended, and whether the WAL found now follows it: its
 * last record's frames are still the WAL's (same generation, same checksum at its last
 * frame), or the WAL is empty or in the next generation (a checkpoint copied, hence
 * archived, every frame). Then the chain goes on in a new segment; otherwise a new one
 * starts. A torn last record (a crash while writing it, before its fsync, so before any
 * checkpoint of its frames) is cut off: its frames are archived again.
 */
static void
resume(pd_wal_archiver_t *a)
{
    size_t n = 0;
    char err[300], path[4300];
    pd_wal_segment_t *segs = calloc(SEGS_MAX, sizeof(*segs));
    if (segs == NULL || pd_wal_segments(a->dir, segs, SEGS_MAX, &n, err, sizeof(err)) != 0) {
        pd_log_error("wal archive: cannot read the archive", PD_LS("reason", segs == NULL ? "out of memory" : err));
        new_chain(a, "the archive cannot be read");
        free(segs);
        return;
    }
    if (n == 0) {
        new_chain(a, "the archive is empty");
        free(segs);
        return;
    }
    pd_wal_segment_t last = segs[n - 1];
    free(segs);
    snprintf(path, sizeof(path), "%s/%s", a->dir, last.name);
    pd_wal_reader_t rd;
    pd_wal_record_t rec, prev = {0};
    bool end = false, torn = false, have = false;
    int r = pd_wal_reader_open(&rd, a->dir, &last);
    while (r == 0 && (r = pd_wal_reader_next(&rd, &rec, &end, &torn)) == 0 && !end) {
        prev = rec;
        have = true;
    }
    uint64_t good = rd.off;
    pd_wal_reader_close(&rd);
    a->seg = last;
    if (r == 0 && torn && truncate(path, (off_t)good) != 0)
        r = -errno;
    if (r != 0) {
        new_chain(a, "the last segment cannot be read");
        return;
    }
    if (!have) { /* a segment without records: the chain's position is unknown */
        new_chain(a, "the last segment holds no record");
        return;
    }
    pd_wal_pos_t w;
    int fd = open(a->wal, O_RDONLY | O_CLOEXEC);
    r = fd < 0 ? (errno == ENOENT ? PD_ERR_NOTFOUND : -errno) : pd_wal_header(fd, &w);
    a->pos = (pd_wal_pos_t){.page_size = prev.page_size, .salt1 = prev.salt1, .salt2 = prev.salt2,
                            .frame = prev.first + prev.frames - 1, .ck = {prev.ck[0], prev.ck[1]}};
    bool follows = false;
    if (r == PD_ERR_NOTFOUND && fd >= 0) { /* empty */
        follows = true;
        a->any_next = true;
    } else if (r == 0 && w.salt1 == prev.salt1 + 1) {
        follows = true;
    } else if (r == 0 && w.salt1 == prev.salt1 && w.salt2 == prev.salt2 && w.page_size == prev.page_size) {
        /* the WAL's frames chain to the record's first and last ones: the record is
         * written again from the WAL (it may be one whose fsync the crash cut short) */
        uint8_t *buf = malloc((size_t)frame_bytes(w.page_size));
        pd_wal_pos_t before = w, at;
        uint32_t k = 0;
        if (buf != NULL && prev.first > 1 && pd_wal_scan(fd, &before, prev.first - 1, buf, &k) != 0)
            before.frame = 0;
        at = before;
        if (buf != NULL && before.frame == prev.first - 1 && pd_wal_scan(fd, &at, prev.frames, buf, &k) == 0 &&
            at.frame == a->pos.frame && at.ck[0] == prev.ck[0] && at.ck[1] == prev.ck[1] &&
            truncate(path, (off_t)prev.offset) == 0) {
            follows = true;
            a->pos = before;
            a->jump = prev.jump; /* written again as it was */
        }
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    if (!follows) {
        new_chain(a, r == PD_ERR_NOTFOUND && fd < 0 ? "the WAL was removed since the last record"
                                                    : "the WAL does not continue the last record");
        return;
    }
    a->have_pos = true;
    pd_log_info("wal archive: the chain goes on", PD_LS("after", path), PD_LI("frame", (int64_t)a->pos.frame));
}

int
pd_wal_archiver_new(pd_wal_archiver_t **out, const char *wal_path, const pd_wal_archive_opts_t *opts)
{
    pd_wal_archiver_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return PD_ERR_NOMEM;
    a->o = *opts;
    a->seg_fd = -1;
    if (snprintf(a->wal, sizeof(a->wal), "%s", wal_path) >= (int)sizeof(a->wal) ||
        snprintf(a->dir, sizeof(a->dir), "%s", opts->dir) >= (int)sizeof(a->dir)) {
        free(a);
        return PD_ERR_TOOBIG;
    }
    a->o.dir = a->dir;
    if (mkdir(a->dir, 0700) != 0 && errno != EEXIST) {
        int r = -errno;
        pd_log_error("wal archive: cannot make its directory", PD_LS("dir", a->dir), PD_LERR(r));
        free(a);
        return r;
    }
    resume(a);
    *out = a;
    return 0;
}

void
pd_wal_archiver_free(pd_wal_archiver_t *a)
{
    if (a == NULL)
        return;
    close_segment(a);
    free(a->frame);
    free(a->out);
    free(a);
}
