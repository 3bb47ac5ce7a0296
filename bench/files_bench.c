/*
 * The encrypted file format's streaming cost (payd/files.h): writes a file of N MiB
 * (default 1024) through pd_file_writer in 64 KiB pieces, reads it back through
 * pd_file_reader, and prints MiB/s each way and the process's peak RSS, which must stay
 * near one chunk per side whatever N is.
 *   build/bench/files_bench [MIB] [DIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "payd/files.h"

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
peak_rss_kib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

int
main(int argc, char **argv)
{
    long mib = argc > 1 ? strtol(argv[1], NULL, 10) : 1024;
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    uint8_t key[PD_FILE_KEY_LEN], piece[65536];
    if (mib <= 0 || RAND_bytes(key, sizeof(key)) != 1 || RAND_bytes(piece, sizeof(piece)) != 1)
        return 2;
    long rss0 = peak_rss_kib();
    pd_file_writer_t *w;
    if (pd_file_writer_open(&w, dir, "payd-files-bench", "file_bench", key, pd_view("wrapped", 7)) != 0) {
        fprintf(stderr, "files_bench: cannot create a file in %s\n", dir);
        return 1;
    }
    double t0 = now_s();
    for (long i = 0; i < mib * 16; i++)
        if (pd_file_writer_write(w, piece, sizeof(piece)) != 0)
            return 1;
    if (pd_file_writer_commit(w, NULL, NULL) != 0)
        return 1;
    double t1 = now_s();
    char path[4200];
    snprintf(path, sizeof(path), "%s/payd-files-bench", dir);
    pd_file_reader_t *r;
    pd_view_t id, wk;
    if (pd_file_reader_open(&r, path, &id, &wk) != 0)
        return 1;
    pd_file_reader_key(r, key);
    size_t n = 0, total = 0;
    int e;
    while ((e = pd_file_reader_read(r, piece, sizeof(piece), &n)) == 0 && n > 0)
        total += n;
    pd_file_reader_close(r);
    double t2 = now_s();
    unlink(path);
    if (e != 0 || total != (size_t)mib << 20) {
        fprintf(stderr, "files_bench: read back %zu bytes (%s)\n", total, pd_strerror(e));
        return 1;
    }
    printf("%ld MiB: write (seal, fsync, rename) %.0f MiB/s, read (open, verify) %.0f MiB/s; peak RSS %ld KiB "
           "(%ld KiB before the file)\n",
           mib, (double)mib / (t1 - t0), (double)mib / (t2 - t1), peak_rss_kib(), rss0);
    return 0;
}
