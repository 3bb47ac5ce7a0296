/* One process per directory (src/core/lockfile.c). */
#ifndef PAYD_LOCKFILE_H
#define PAYD_LOCKFILE_H

#include <stddef.h>

#include "payd/error.h"

/* Takes an exclusive lock on DIR/NAME (created 0600), held while *fd stays open: for
 * the life of the process, released by the kernel when it ends, crash included.
 * PD_ERR_BUSY when another process holds it (err names the directory and that
 * process's pid); -errno when the file cannot be opened or written. */
int pd_dir_lock(const char *dir, const char *name, int *fd, char *err, size_t cap) PD_WUR;

#endif
