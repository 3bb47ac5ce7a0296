/* Whole reads and writes of file descriptors, and directory syncs: the loops every file
 * format of payd needs (EINTR retried, short transfers continued). */
#ifndef PAYD_FILEIO_H
#define PAYD_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

#include "payd/error.h"

/* all of n bytes, or -errno (PD_ERR_IO for a write that made no progress) */
int pd_write_all(int fd, const void *p, size_t n) PD_WUR;
/* all of n bytes at off, or -errno; PD_ERR_TRUNCATED when the file ends first */
int pd_pread_all(int fd, void *p, size_t n, off_t off) PD_WUR;
/* fsync of a directory, so that a rename or a new name in it is durable */
int pd_fsync_dir(const char *dir) PD_WUR;

#endif
