/*
 * One process per directory: an exclusive flock(2) on a lock file in it. The kernel
 * drops the lock when the process ends, however it ends, so a crash never leaves a
 * stale lock behind; the holder's pid is written into the file for the message a
 * second process prints.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "payd/lockfile.h"

int
pd_dir_lock(const char *dir, const char *name, int *fd_out, char *err, size_t cap)
{
    char path[4200], pid[32] = "";
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(err, cap, "cannot open the lock file %s: %s", path, strerror(e));
        return -e;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        if (e == EWOULDBLOCK) {
            snprintf(err, cap, "%s is in use by another process (pid %s holds %s)", dir, pid[0] ? pid : "?", path);
            return PD_ERR_BUSY;
        }
        snprintf(err, cap, "cannot lock %s: %s", path, strerror(e));
        return -e;
    }
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        int e = errno;
        close(fd);
        snprintf(err, cap, "cannot write the lock file %s: %s", path, strerror(e));
        return -e;
    }
    *fd_out = fd;
    return 0;
}
