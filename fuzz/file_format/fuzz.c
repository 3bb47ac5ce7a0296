/* Fuzzes the encrypted file reader (payd/files.h) on files of arbitrary bytes, keyed with
 * the seeds' all-zero data key: it must refuse what is malformed, tampered or cut short
 * with one of its documented errors, never crash, hang or read past a buffer, and never
 * return more bytes than the file holds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "payd/files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("payd-fuzz-file", 0);
    if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
        abort();
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    pd_file_reader_t *r;
    pd_view_t id, wk;
    int e = pd_file_reader_open(&r, path, &id, &wk);
    if (e == 0) {
        static const uint8_t key[PD_FILE_KEY_LEN] = {0};
        pd_file_reader_key(r, key);
        static uint8_t buf[65536];
        size_t n = 0, total = 0;
        while ((e = pd_file_reader_read(r, buf, sizeof(buf), &n)) == 0 && n > 0)
            total += n;
        pd_file_reader_close(r);
        if (total > size)
            abort();
    }
    if (e != 0 && e != PD_ERR_INVALID && e != PD_ERR_AUTH && e != PD_ERR_TRUNCATED)
        abort(); /* only the documented refusals */
    close(fd);
    return 0;
}
