/* The backup component's internals: the stream of parts inside an archive's body. */
#ifndef PAYD_BACKUP_INTERNAL_H
#define PAYD_BACKUP_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "payd/backup.h"
#include "payd/files.h"
#include "payd/wal_archive.h"

/*
 * The body (the encrypted file's plaintext) is a sequence of parts and an end mark:
 *   part  'F' | u16 name_len | name | u16 mode | u64 size | size bytes | SHA-256 of them
 *   end   'E' | u32 number of parts
 * A name is a relative path of the data dir ("payd.db", "vault/root.key"): at most
 * PD_BK_NAME_MAX bytes, at most 3 components of [A-Za-z0-9._-], none empty or starting
 * with '.', so a restore never writes outside its directory.
 */
#define PD_BK_NAME_MAX 128
#define PD_BK_IOBUF (256u * 1024)

/* whether name is one a part may have (above) */
bool pd_bk_name_ok(const char *name, size_t len);

typedef struct {
    pd_file_writer_t *w;
    int64_t parts;
    uint64_t bytes;
    uint8_t *buf; /* PD_BK_IOBUF */
    const volatile sig_atomic_t *cancel; /* may be NULL: nonzero stops the copy (PD_ERR_CLOSED) */
} pd_bk_out_t;

/* Appends the file at path as part name (mode & 0777), its bytes streamed and hashed.
 * err says which file failed. */
int pd_bk_put_file(pd_bk_out_t *o, const char *name, const char *path, char *err, size_t cap) PD_WUR;
int pd_bk_put_end(pd_bk_out_t *o) PD_WUR;

typedef struct {
    pd_file_reader_t *r;
    uint8_t *buf; /* PD_FILE_CHUNK: one chunk of plaintext */
    size_t len, off;
    bool eof;
    uint64_t bytes;
    const volatile sig_atomic_t *cancel; /* may be NULL: nonzero stops the read (PD_ERR_CLOSED) */
} pd_bk_in_t;

typedef struct {
    char name[PD_BK_NAME_MAX + 1];
    mode_t mode;
    uint64_t size;
} pd_bk_part_t;

/* The next part's header into p, or *end with *count the end mark's part count. A
 * malformed stream is PD_ERR_INVALID, a cut one PD_ERR_TRUNCATED; the file format's
 * errors (PD_ERR_AUTH, ...) pass through; err says what. */
int pd_bk_next(pd_bk_in_t *in, pd_bk_part_t *p, bool *end, int64_t *count, char *err, size_t cap) PD_WUR;
/* The part's bytes into fd (-1: only hashed), then its SHA-256 checked: PD_ERR_AUTH on a mismatch. */
int pd_bk_copy_part(pd_bk_in_t *in, const pd_bk_part_t *p, int fd, char *err, size_t cap) PD_WUR;
/* After the end mark: the file must end there (its SHA-256 is checked by this read). */
int pd_bk_finish(pd_bk_in_t *in, char *err, size_t cap) PD_WUR;

/* snprintf into out, PD_ERR_TOOBIG when it does not fit (paths: never used cut short) */
int pd_bk_path(char *out, size_t cap, const char *fmt, ...) PD_WUR __attribute__((format(printf, 3, 4)));

/* a file-format error as text for an operator */
const char *pd_bk_format_error(int r);

/* a progress line through progress(arg, line) (NULL: none) */
void pd_backup_say(pd_backup_progress_fn progress, void *arg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* --- a restore to a point in time (wal_replay.c) --- */

typedef struct {
    const char *dir;
    pd_wal_segment_t *segs; /* those made at or before the time, oldest first */
    size_t n;
    uint8_t *keys;          /* n data keys (the caller has payd-vault unwrap them) */
} pd_bk_wal_t;

typedef struct {
    int64_t records, frames, pages; /* the frames the records cover, the pages they hold */
    int64_t last_ms;        /* the stamp of the last record applied (0: none) */
    int64_t chain_ended_ms; /* a new chain began here, before the time (0: the chain goes on) */
} pd_bk_replay_t;

/* The segments of dir that may hold records up to until_ms (at least one, else
 * PD_ERR_NOTFOUND), and room for their keys. */
int pd_bk_wal_open(pd_bk_wal_t *w, const char *dir, int64_t until_ms, char *err, size_t cap) PD_WUR;
/* Rolls the copy at db_path forward from its WAL position from through every record of
 * its chain stamped at or before until_ms; the copy is left in rollback-journal mode. */
int pd_bk_wal_replay(const pd_bk_wal_t *w, const char *db_path, const pd_wal_pos_t *from, int64_t until_ms,
                     pd_bk_replay_t *st, char *err, size_t cap) PD_WUR;
void pd_bk_wal_free(pd_bk_wal_t *w);

#endif
