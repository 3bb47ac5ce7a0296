/* SQLite's WAL read frame by frame (payd/wal_archive.h; the format is SQLite's
 * documented one: https://sqlite.org/fileformat2.html#walformat). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "payd/fileio.h"
#include "payd/wal_archive.h"

#define WAL_MAGIC 0x377f0682u
#define WAL_VERSION 3007000u

static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t
le32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* SQLite's WAL checksum over n bytes (a multiple of 8), chained from ck */
static void
checksum(bool big_endian, const uint8_t *d, size_t n, uint32_t ck[2])
{
    uint32_t s0 = ck[0], s1 = ck[1];
    for (size_t i = 0; i + 8 <= n; i += 8) {
        s0 += (big_endian ? be32(d + i) : le32(d + i)) + s1;
        s1 += (big_endian ? be32(d + i + 4) : le32(d + i + 4)) + s0;
    }
    ck[0] = s0;
    ck[1] = s1;
}

int
pd_wal_header(int fd, pd_wal_pos_t *p)
{
    uint8_t h[PD_WAL_HDR];
    int r = pd_pread_all(fd, h, sizeof(h), 0);
    if (r == PD_ERR_TRUNCATED)
        return PD_ERR_NOTFOUND;
    if (r != 0)
        return r;
    uint32_t magic = be32(h), ps = be32(h + 8);
    if ((magic & ~1u) != WAL_MAGIC || be32(h + 4) != WAL_VERSION || ps < 512 || ps > 65536 || (ps & (ps - 1)) != 0)
        return PD_ERR_INVALID;
    memset(p, 0, sizeof(*p));
    p->big_endian = (magic & 1u) != 0;
    p->page_size = ps;
    p->salt1 = be32(h + 16);
    p->salt2 = be32(h + 20);
    checksum(p->big_endian, h, 24, p->ck);
    if (p->ck[0] != be32(h + 24) || p->ck[1] != be32(h + 28))
        return PD_ERR_INVALID;
    return 0;
}

bool
pd_wal_frame_next(pd_wal_pos_t *p, const uint8_t *f, uint32_t *commit_size)
{
    if (be32(f) == 0 || be32(f + 8) != p->salt1 || be32(f + 12) != p->salt2)
        return false;
    uint32_t ck[2] = {p->ck[0], p->ck[1]};
    checksum(p->big_endian, f, 8, ck);
    checksum(p->big_endian, f + PD_WAL_FRAME_HDR, p->page_size, ck);
    if (ck[0] != be32(f + 16) || ck[1] != be32(f + 20))
        return false;
    p->ck[0] = ck[0];
    p->ck[1] = ck[1];
    p->frame++;
    *commit_size = be32(f + 4);
    return true;
}

int
pd_wal_scan(int fd, pd_wal_pos_t *p, uint32_t max_frames, uint8_t *buf, uint32_t *frames)
{
    pd_wal_pos_t at = *p;
    size_t fsz = PD_WAL_FRAME_HDR + (size_t)p->page_size;
    *frames = 0;
    for (uint32_t i = 0; i < max_frames; i++) {
        int r = pd_pread_all(fd, buf, fsz, PD_WAL_HDR + (off_t)at.frame * (off_t)fsz);
        if (r == PD_ERR_TRUNCATED)
            break;
        if (r != 0)
            return r;
        uint32_t size = 0;
        if (!pd_wal_frame_next(&at, buf, &size))
            break;
        if (size != 0) { /* a commit: the position moves here */
            *frames = at.frame - p->frame;
            *p = at;
        }
    }
    return 0;
}

int
pd_wal_tail(const char *path, pd_wal_pos_t *p)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? PD_ERR_NOTFOUND : -errno;
    int r = pd_wal_header(fd, p);
    uint8_t *buf = r == 0 ? malloc(PD_WAL_FRAME_HDR + (size_t)p->page_size) : NULL;
    uint32_t n = 0;
    if (r == 0)
        r = buf == NULL ? PD_ERR_NOMEM : pd_wal_scan(fd, p, UINT32_MAX, buf, &n);
    free(buf);
    close(fd);
    return r;
}
