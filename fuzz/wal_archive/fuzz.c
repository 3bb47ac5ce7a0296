/* Fuzzes the readers of point-in-time recovery's inputs (include/payd/wal_archive.h):
 * the first byte picks one. 'P' the archive's WAL position line (an accepted line
 * re-encodes to the same bytes); 'W' a SQLite WAL file (its header, then its frames
 * scanned to the last commit); else a WAL archive segment after its header (every
 * record walked, each one's entries opened with a fixed key: refused, never read out of
 * bounds). Files are memory files: nothing is written to disk. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "payd/backup.h"
#include "payd/wal_archive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
memfile(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd >= 0 && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return -1;
    }
    return fd;
}

static void
walpos(const uint8_t *data, size_t size)
{
    pd_wal_pos_t p;
    int64_t at = 0;
    char again[200];
    if (pd_backup_walpos_dec((const char *)data, size, &p, &at) != 0)
        return;
    int n = pd_backup_walpos_enc(again, sizeof(again), &p, at);
    if (n < 0 || (size_t)n != size || memcmp(again, data, size) != 0)
        abort();
}

static void
wal(const uint8_t *data, size_t size)
{
    int fd = memfile(data, size);
    pd_wal_pos_t p;
    if (fd < 0)
        return;
    if (pd_wal_header(fd, &p) == 0) {
        uint8_t *buf = malloc(PD_WAL_FRAME_HDR + (size_t)p.page_size);
        uint32_t n = 0;
        pd_wal_pos_t before = p;
        if (buf != NULL && pd_wal_scan(fd, &p, UINT32_MAX, buf, &n) == 0 && p.frame != before.frame + n)
            abort();
        free(buf);
    }
    close(fd);
}

static void
segment(const uint8_t *data, size_t size)
{
    pd_wal_segment_t s = {0};
    uint8_t key[PD_WAL_KEY_LEN] = {0};
    memset(s.hdr, 0x11, sizeof(s.hdr));
    /* the input is the records: a header of the real size comes first */
    uint8_t *file = calloc(1, PD_WAL_SEG_HDR + size);
    if (file == NULL)
        return;
    memcpy(file + PD_WAL_SEG_HDR, data, size);
    int fd = memfile(file, PD_WAL_SEG_HDR + size);
    free(file);
    if (fd < 0)
        return;
    pd_wal_reader_t rd = {.fd = fd, .off = PD_WAL_SEG_HDR, .size = PD_WAL_SEG_HDR + size};
    pd_wal_record_t r;
    bool end = false, torn = false;
    for (int i = 0; i < 1000 && pd_wal_reader_next(&rd, &r, &end, &torn) == 0 && !end; i++) {
        if (r.offset + PD_WAL_REC_HDR > rd.size || r.pages > r.frames)
            abort(); /* what the reader hands out lies inside the file */
        uint8_t *out = malloc((size_t)r.pages * (4 + r.page_size) + 1);
        if (out != NULL && pd_wal_record_open(&rd, &s, &r, key, out) == 0)
            abort(); /* no input is authentic under a key it was not sealed with */
        free(out);
    }
    close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] == 'P')
        walpos(data + 1, size - 1);
    else if (data[0] == 'W')
        wal(data + 1, size - 1);
    else
        segment(data + 1, size - 1);
    return 0;
}
