/*
 * The encrypted file format (include/payd/files.h): files of every size around the chunk
 * boundaries read back as written; a flipped byte, a wrong key, a changed header or
 * SHA-256, chunks swapped, a chunk or the final chunk dropped, and bytes appended are each
 * refused with their error; a writer aborted or failed leaves nothing under the name.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "payd/files.h"

#define CHUNK_REC(n) (5 + (n) + 16) /* a chunk on disk: length and flags, ciphertext, tag */

static char dir[64], path[128];
static uint8_t key[PD_FILE_KEY_LEN];
static const char wrapped[] = "wrapped-data-key-envelope";

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-files-XXXXXX");
    if (mkdtemp(dir) == NULL || RAND_bytes(key, sizeof(key)) != 1)
        return -1;
    snprintf(path, sizeof(path), "%s/file_1", dir);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* byte i of the test plaintext */
static uint8_t
pt(size_t i)
{
    return (uint8_t)(i * 2654435761u >> 13);
}

/* writes n bytes of the test plaintext in pieces of step bytes */
static void
write_file(size_t n, size_t step)
{
    pd_file_writer_t *w;
    assert_int_equal(pd_file_writer_open(&w, dir, "file_1", "file_1", key, pd_view(wrapped, strlen(wrapped))), 0);
    uint8_t *b = malloc(step);
    assert_non_null(b);
    for (size_t o = 0; o < n; o += step) {
        size_t k = n - o < step ? n - o : step;
        for (size_t i = 0; i < k; i++)
            b[i] = pt(o + i);
        assert_int_equal(pd_file_writer_write(w, b, k), 0);
    }
    free(b);
    uint64_t size = 0;
    assert_int_equal(pd_file_writer_commit(w, NULL, &size), 0);
    assert_int_equal(size, n);
}

/* reads the file with k: 0 and *got bytes matching the plaintext, or the error */
static int
read_file(const uint8_t *k, size_t *got)
{
    pd_file_reader_t *r;
    pd_view_t id, wk;
    int e = pd_file_reader_open(&r, path, &id, &wk);
    if (e != 0)
        return e;
    assert_int_equal(id.len, 6);
    assert_memory_equal(id.p, "file_1", 6);
    assert_int_equal(wk.len, strlen(wrapped));
    pd_file_reader_key(r, k);
    static uint8_t buf[300000];
    size_t total = 0, n = 0;
    do {
        if ((e = pd_file_reader_read(r, buf, sizeof(buf), &n)) != 0)
            break;
        for (size_t i = 0; i < n; i++)
            if (buf[i] != pt(total + i))
                fail_msg("byte %zu differs", total + i);
        total += n;
    } while (n > 0);
    pd_file_reader_close(r);
    *got = total;
    return e;
}

static long
file_size(void)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void
flip_byte(long off)
{
    int fd = open(path, O_RDWR);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x40;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static long
header_len(void)
{
    return 4 + 2 + 2 + 6 + 2 + (long)strlen(wrapped) + 4 + 32;
}

static void
files_of_every_size_read_back(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, PD_FILE_CHUNK - 1, PD_FILE_CHUNK, PD_FILE_CHUNK + 1, 3 * PD_FILE_CHUNK + 12345};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        write_file(sizes[i], 65536 + 7);
        size_t got = 0;
        assert_int_equal(read_file(key, &got), 0);
        assert_int_equal(got, sizes[i]);
        /* a file of N bytes: the header, full chunks, then one final chunk (empty when N is a
         * multiple of the chunk size and not 0, since a full chunk is sealed only once more comes) */
        size_t full = sizes[i] / PD_FILE_CHUNK, last = sizes[i] % PD_FILE_CHUNK;
        if (last == 0 && full > 0)
            full--, last = PD_FILE_CHUNK;
        assert_int_equal(file_size(), header_len() + (long)(full * CHUNK_REC(PD_FILE_CHUNK) + CHUNK_REC(last)));
    }
}

static void
tampering_is_refused(void **state)
{
    (void)state;
    size_t got;
    long h = header_len(), c0 = h, c1 = h + CHUNK_REC(PD_FILE_CHUNK);
    write_file(2 * PD_FILE_CHUNK + 10, 1 << 20);
    /* a byte of the first chunk's ciphertext */
    flip_byte(c0 + 5 + 1000);
    assert_int_equal(read_file(key, &got), PD_ERR_AUTH);
    /* the file id in the header */
    write_file(2 * PD_FILE_CHUNK + 10, 1 << 20);
    flip_byte(4 + 2 + 2 + 3);
    pd_file_reader_t *r;
    pd_view_t id, wk;
    assert_int_equal(pd_file_reader_open(&r, path, &id, &wk), 0);
    pd_file_reader_key(r, key);
    uint8_t buf[64];
    size_t n;
    assert_int_equal(pd_file_reader_read(r, buf, sizeof(buf), &n), PD_ERR_AUTH);
    pd_file_reader_close(r);
    /* the recorded SHA-256 (authenticated with the final chunk) */
    write_file(2 * PD_FILE_CHUNK + 10, 1 << 20);
    flip_byte(h - 1);
    assert_int_equal(read_file(key, &got), PD_ERR_AUTH);
    /* the final flag of the first chunk (it would end the file early) */
    write_file(2 * PD_FILE_CHUNK + 10, 1 << 20);
    flip_byte(c0 + 4);
    assert_int_not_equal(read_file(key, &got), 0);
    /* a wrong key */
    write_file(2 * PD_FILE_CHUNK + 10, 1 << 20);
    uint8_t other[PD_FILE_KEY_LEN];
    memcpy(other, key, sizeof(other));
    other[0] ^= 1;
    assert_int_equal(read_file(other, &got), PD_ERR_AUTH);
    (void)c1;
}

/* rewrites the file as header + the chunk records in the order given (indexes into the original) */
static void
rearrange(const int *order, size_t n)
{
    long h = header_len(), rec = CHUNK_REC(PD_FILE_CHUNK), total = file_size();
    uint8_t *all = malloc((size_t)total), *out = malloc(2 * (size_t)total); /* a record may repeat */
    int fd = open(path, O_RDONLY);
    assert_int_equal(read(fd, all, (size_t)total), total);
    close(fd);
    memcpy(out, all, (size_t)h);
    long o = h;
    for (size_t i = 0; i < n; i++) {
        long from = h + order[i] * rec, len = from + rec <= total ? rec : total - from;
        memcpy(out + o, all + from, (size_t)len);
        o += len;
    }
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, out, (size_t)o), o);
    close(fd);
    free(all);
    free(out);
}

static void
reordered_dropped_and_cut_files_are_refused(void **state)
{
    (void)state;
    size_t got;
    /* three full chunks and a final one of 10 bytes */
    write_file(3 * PD_FILE_CHUNK + 10, 1 << 20);
    rearrange((const int[]){1, 0, 2, 3}, 4); /* two chunks swapped */
    assert_int_equal(read_file(key, &got), PD_ERR_AUTH);
    write_file(3 * PD_FILE_CHUNK + 10, 1 << 20);
    rearrange((const int[]){0, 2, 3}, 3); /* a chunk dropped */
    assert_int_equal(read_file(key, &got), PD_ERR_AUTH);
    write_file(3 * PD_FILE_CHUNK + 10, 1 << 20);
    rearrange((const int[]){0, 1, 2}, 3); /* the final chunk dropped: the file ends early */
    assert_int_equal(read_file(key, &got), PD_ERR_TRUNCATED);
    write_file(3 * PD_FILE_CHUNK + 10, 1 << 20);
    assert_int_equal(truncate(path, file_size() - 3), 0); /* cut inside the final chunk */
    assert_int_equal(read_file(key, &got), PD_ERR_TRUNCATED);
    write_file(3 * PD_FILE_CHUNK + 10, 1 << 20);
    rearrange((const int[]){0, 1, 2, 3, 3}, 5); /* bytes after the final chunk */
    assert_int_equal(read_file(key, &got), PD_ERR_INVALID);
    /* not this format at all */
    FILE *f = fopen(path, "w");
    fputs("just text, not an encrypted file\n", f);
    fclose(f);
    assert_int_equal(read_file(key, &got), PD_ERR_INVALID);
}

/* nothing under the name unless committed, and no temporary left behind either way */
static void
an_aborted_writer_leaves_nothing(void **state)
{
    (void)state;
    pd_file_writer_t *w;
    assert_int_equal(pd_file_writer_open(&w, dir, "file_2", "file_2", key, pd_view(wrapped, strlen(wrapped))), 0);
    uint8_t b[1000] = {1};
    assert_int_equal(pd_file_writer_write(w, b, sizeof(b)), 0);
    char p2[160];
    snprintf(p2, sizeof(p2), "%s/file_2", dir);
    assert_int_not_equal(access(p2, F_OK), 0); /* not under its name while being written */
    pd_file_writer_abort(w);
    assert_int_not_equal(access(p2, F_OK), 0);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s)\"", dir);
    assert_int_equal(system(cmd), 0); /* the temporary is gone too */
    /* bad arguments are refused before anything is made */
    assert_int_equal(pd_file_writer_open(&w, dir, "../x", "x", key, pd_view(wrapped, 3)), PD_ERR_INVALID);
    assert_int_equal(pd_file_writer_open(&w, dir, "x", "", key, pd_view(wrapped, 3)), PD_ERR_INVALID);
    assert_int_equal(pd_file_writer_open(&w, "/nonexistent-dir", "x", "x", key, pd_view(wrapped, 3)), -ENOENT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(files_of_every_size_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(tampering_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(reordered_dropped_and_cut_files_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(an_aborted_writer_leaves_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
