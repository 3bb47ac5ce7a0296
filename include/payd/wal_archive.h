/*
 * Point-in-time recovery of the SQLite store (docs/backup.md, "Point in time"):
 * SQLite's WAL read frame by frame, and the archive of its frames that payd keeps
 * between backups when [backup] wal_archive = true.
 *
 * The WAL (https://sqlite.org/fileformat2.html#walformat) is a 32-byte header and
 * frames of a 24-byte header and one page; each frame carries the header's salts and a
 * checksum chained from the header's, and a commit frame carries the database's size.
 * A generation of the WAL lasts from one reset (after a checkpoint copied every frame)
 * to the next, which increments salt 1. Frames are whole pages: replaying the frames
 * of every commit after a snapshot, in order, brings the snapshot to any later commit.
 *
 * The archive is a directory of segments, `wal-<created ms>-<seq>.pdwal`:
 *   segment  "PDWALSG1" | 16-byte chain id | u64 seq | i64 created ms | u16 wrapped_len
 *            | the segment's data key wrapped by the vault's root key (backup.key)
 *   record   "PDWR" (or "PDWJ") | u32 salt1 | u32 salt2 | u32 page size | u32 first frame | u32 frames
 *            | u32 checksum 0 | u32 checksum 1 (after its last frame) | i64 stamp ms
 *            | u32 pages | u32 database size in pages after its last commit
 *            | 12-byte nonce | AES-256-GCM of `pages` entries (u32 page number | page) | 16-byte tag
 * All integers big-endian. A record covers frames first..first+frames-1 of a generation,
 * which end with a commit frame, all of whose commits were made by its stamp; it holds
 * each page they wrote once, at its last version (a record is applied whole). Its
 * additional data is the segment header, the record header and the record's index. Records of one chain follow each other without a gap:
 * the next frame of the same generation, or frame 1 of the next one, whose salt 1 is the
 * last one's + 1 ("PDWJ": any, the first generation after a WAL found empty). A chain starts
 * when payd cannot prove that the WAL it finds continues the archive (docs/backup.md).
 *
 * The archiver (payd, in its checkpoint thread) appends and fsyncs a record before any
 * checkpoint may copy its frames into the database, and the WAL is reset only after a
 * checkpoint copied every frame: so every frame reaches the archive before it can be
 * overwritten. Only that thread checkpoints while archiving is on (payctl opens the
 * store without checkpointing, and no connection checkpoints as it closes).
 */
#ifndef PAYD_WAL_ARCHIVE_H
#define PAYD_WAL_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/error.h"

#define PD_WAL_HDR 32
#define PD_WAL_FRAME_HDR 24
#define PD_WAL_KEY_LEN 32
#define PD_WAL_WRAPPED_LEN 60 /* PD_BACKUP_WRAPPED_LEN */
#define PD_WAL_SEG_HDR (8 + 16 + 8 + 8 + 2 + PD_WAL_WRAPPED_LEN)
#define PD_WAL_REC_HDR 48
#define PD_WAL_NONCE 12
#define PD_WAL_TAG 16

/* one generation of a WAL, and the position reached in it */
typedef struct {
    uint32_t page_size;
    uint32_t salt1, salt2;
    bool big_endian; /* the checksum's word order (the magic's low bit) */
    uint32_t frame;  /* the last frame read (0: none) */
    uint32_t ck[2];  /* the checksum chained to frame (the header's when frame is 0) */
} pd_wal_pos_t;

/* The header of the WAL open on fd into *p (frame 0). PD_ERR_NOTFOUND for a file shorter
 * than a header (empty: no generation yet), PD_ERR_INVALID for a bad one. */
int pd_wal_header(int fd, pd_wal_pos_t *p) PD_WUR;

/* Reads frames after p->frame while they are valid (their salts and chained checksum),
 * at most max_frames of them, and moves p to the last commit frame among them (p is left
 * as it was when there is none). buf holds one frame. *frames gets how many frames p
 * moved by. */
int pd_wal_scan(int fd, pd_wal_pos_t *p, uint32_t max_frames, uint8_t *buf, uint32_t *frames) PD_WUR;

/* The position of the last commit of the WAL at path (frame 0 of its generation when it
 * holds none; PD_ERR_NOTFOUND when it has no header). */
int pd_wal_tail(const char *path, pd_wal_pos_t *p) PD_WUR;

/* Whether a frame (its 24-byte header and page) continues p: same salts, chained
 * checksum; on success p moves to it and *commit_size gets the database's size in pages
 * for a commit frame, else 0. */
bool pd_wal_frame_next(pd_wal_pos_t *p, const uint8_t *frame, uint32_t *commit_size);

/* --- the archiver, in payd --- */

/* A fresh data key and its copy wrapped by the vault's root key (the vault's backup.key). */
typedef int (*pd_wal_key_fn)(void *arg, uint8_t key[PD_WAL_KEY_LEN], uint8_t wrapped[PD_WAL_WRAPPED_LEN]);

typedef struct {
    const char *dir;      /* the segments' directory (made 0700 when missing) */
    int64_t keep_ms;      /* segments whose successor is older than this are removed */
    int64_t segment_ms;   /* a new segment (and key) after this long */
    uint64_t segment_max; /* ... or once a segment holds this many bytes */
    pd_wal_key_fn key;
    void *key_arg;
} pd_wal_archive_opts_t;

typedef struct pd_wal_archiver pd_wal_archiver_t;

/* For the WAL at wal_path (which may not exist yet); opts are copied. */
int pd_wal_archiver_new(pd_wal_archiver_t **out, const char *wal_path, const pd_wal_archive_opts_t *opts) PD_WUR;
/* Appends (and syncs) every commit of the WAL not yet archived. 0: the archive holds
 * every committed frame, so a checkpoint may copy them; otherwise nothing may be
 * checkpointed (the reason is logged, once per minute). */
int pd_wal_archiver_step(pd_wal_archiver_t *a) PD_WUR;
void pd_wal_archiver_free(pd_wal_archiver_t *a);

/* How this process's connections to the payments store (the SQLite file pd_store_open
 * opens) treat checkpoints; set before opening it: OFF as always; HOLD: no checkpoint at
 * all, on close neither (payctl while archiving is on); ON: the checkpoint thread
 * archives first (payd). Other databases are not concerned. */
typedef enum { PD_WAL_ARCHIVE_OFF, PD_WAL_ARCHIVE_HOLD, PD_WAL_ARCHIVE_ON } pd_wal_archive_mode_t;
void pd_sqlite_wal_archive(pd_wal_archive_mode_t mode, const pd_wal_archive_opts_t *opts);
/* pd_store_open: the payments store's file */
void pd_sqlite_wal_archive_bind(const char *path);

/* --- reading the archive (restore) --- */

typedef struct {
    char name[40]; /* in its directory */
    uint8_t chain[16];
    uint64_t seq;
    int64_t created_ms;
    uint8_t wrapped[PD_WAL_WRAPPED_LEN];
    uint8_t hdr[PD_WAL_SEG_HDR]; /* as on disk: the records' additional data */
} pd_wal_segment_t;

typedef struct {
    uint32_t salt1, salt2, page_size, first, frames;
    uint32_t ck[2];
    int64_t stamp_ms;
    uint32_t pages, db_size;
    uint64_t offset; /* of the record in its segment */
    uint64_t index;  /* in its segment */
    bool jump;       /* the first of a generation after an empty WAL: its salts are new ("PDWJ") */
} pd_wal_record_t;

/* The segments of dir, oldest first (*n of them, at most cap; a missing dir has none);
 * an unreadable or malformed segment is an error (err says which). */
int pd_wal_segments(const char *dir, pd_wal_segment_t *segs, size_t cap, size_t *n, char *err, size_t ecap) PD_WUR;

/* Walks a segment's records: each clear header into *r. 0 with *end at the end of the
 * segment (a torn last record counts as its end: *torn). */
typedef struct {
    int fd;
    uint64_t off, size, index;
} pd_wal_reader_t;
int pd_wal_reader_open(pd_wal_reader_t *rd, const char *dir, const pd_wal_segment_t *s) PD_WUR;
int pd_wal_reader_next(pd_wal_reader_t *rd, pd_wal_record_t *r, bool *end, bool *torn) PD_WUR;
/* The entries of record r (read with the reader), decrypted and authenticated into out
 * (r->pages * (4 + page size) bytes). PD_ERR_AUTH when they do not open. */
int pd_wal_record_open(const pd_wal_reader_t *rd, const pd_wal_segment_t *s, const pd_wal_record_t *r,
                       const uint8_t key[PD_WAL_KEY_LEN], uint8_t *out) PD_WUR;
void pd_wal_reader_close(pd_wal_reader_t *rd);

#endif
