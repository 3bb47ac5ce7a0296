/*
 * The backup archive's parsers (include/payd/backup.h, src/backup/internal.h): the clear
 * header round-trips and every malformation of it is refused with its error (no prefix
 * of a valid header parses, a newer version, trailing bytes, fields out of bounds); part
 * names are plain relative paths; the part stream reads back what was written, and a
 * part whose SHA-256 does not match, a name that climbs out, a stream cut inside a part
 * and bytes after the end mark are each refused, even under a valid encryption.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "backup/internal.h"
#include "payd/backup.h"

static char dir[64];
static uint8_t key[PD_FILE_KEY_LEN];
static uint8_t wrapped[PD_BACKUP_WRAPPED_LEN];
static const char keyfile[] = "payd-vault-keyfile 1\nkdf scrypt 32768 8 1\nsalt 00\nsealed 00\n";
static const char devpass[] = "dev-passphrase-0123456789\n";

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-backup-XXXXXX");
    if (mkdtemp(dir) == NULL || RAND_bytes(key, sizeof(key)) != 1 || RAND_bytes(wrapped, sizeof(wrapped)) != 1)
        return -1;
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

static pd_backup_header_t
dev_header(void)
{
    return (pd_backup_header_t){.version = PD_BACKUP_VERSION,
                                .flags = PD_BACKUP_F_DEV,
                                .unseal = PD_BACKUP_UNSEAL_PASSPHRASE,
                                .wrapped = {wrapped, sizeof(wrapped)},
                                .keyfile = PD_VIEW_LIT(keyfile),
                                .devpass = PD_VIEW_LIT(devpass)};
}

static void
header_round_trips(void **state)
{
    (void)state;
    pd_buf_t b;
    pd_backup_header_t h = dev_header(), got;
    char err[256];
    pd_buf_init(&b, PD_FILE_WRAPPED_MAX);
    assert_int_equal(pd_backup_header_enc(&b, &h), 0);
    assert_true(b.len <= PD_FILE_WRAPPED_MAX);
    assert_int_equal(pd_backup_header_dec(pd_buf_view(&b), &got, err, sizeof(err)), 0);
    assert_int_equal(got.flags, PD_BACKUP_F_DEV);
    assert_int_equal(got.unseal, PD_BACKUP_UNSEAL_PASSPHRASE);
    assert_memory_equal(got.wrapped.p, wrapped, sizeof(wrapped));
    assert_int_equal(got.keyfile.len, strlen(keyfile));
    assert_memory_equal(got.keyfile.p, keyfile, strlen(keyfile));
    assert_int_equal(got.devpass.len, strlen(devpass));
    /* a vault on shares: no key file, no passphrase */
    pd_buf_reset(&b);
    h = (pd_backup_header_t){.version = 1, .unseal = PD_BACKUP_UNSEAL_SHARES, .wrapped = {wrapped, sizeof(wrapped)}};
    assert_int_equal(pd_backup_header_enc(&b, &h), 0);
    assert_int_equal(pd_backup_header_dec(pd_buf_view(&b), &got, err, sizeof(err)), 0);
    assert_int_equal(got.unseal, PD_BACKUP_UNSEAL_SHARES);
    assert_int_equal(got.keyfile.len, 0);
    pd_buf_free(&b);
}

static void
encoder_refuses_what_the_parser_would(void **state)
{
    (void)state;
    pd_buf_t b;
    pd_buf_init(&b, PD_FILE_WRAPPED_MAX);
    pd_backup_header_t h = dev_header();
    h.wrapped.len--;
    assert_int_equal(pd_backup_header_enc(&b, &h), PD_ERR_INVALID);
    h = dev_header();
    h.unseal = PD_BACKUP_UNSEAL_SHARES; /* shares with a key file */
    assert_int_equal(pd_backup_header_enc(&b, &h), PD_ERR_INVALID);
    h = dev_header();
    h.flags = 0; /* a passphrase without the dev flag */
    assert_int_equal(pd_backup_header_enc(&b, &h), PD_ERR_INVALID);
    h = dev_header();
    h.devpass.len = 0; /* the dev flag without a passphrase */
    assert_int_equal(pd_backup_header_enc(&b, &h), PD_ERR_INVALID);
    h = dev_header();
    h.version = 2;
    assert_int_equal(pd_backup_header_enc(&b, &h), PD_ERR_INVALID);
    assert_int_equal(b.len, 0);
    pd_buf_free(&b);
}

/* dec on bytes; the error and that err says `says` */
static void
expect_dec(const uint8_t *p, size_t n, int want, const char *says)
{
    pd_backup_header_t h;
    char err[256] = "";
    int r = pd_backup_header_dec((pd_view_t){p, n}, &h, err, sizeof(err));
    if (r != want || strstr(err, says) == NULL)
        fail_msg("%zu bytes: got %d \"%s\", expected %d saying \"%s\"", n, r, err, want, says);
}

static void
parser_refuses_every_malformation(void **state)
{
    (void)state;
    pd_buf_t b;
    pd_backup_header_t h = dev_header();
    pd_buf_init(&b, PD_FILE_WRAPPED_MAX + 8);
    assert_int_equal(pd_backup_header_enc(&b, &h), 0);
    uint8_t *v = malloc(b.len + 1);
    memcpy(v, b.p, b.len);
    /* no prefix of a valid header parses */
    for (size_t n = 0; n < b.len; n++) {
        pd_backup_header_t got;
        char err[256];
        int r = pd_backup_header_dec((pd_view_t){v, n}, &got, err, sizeof(err));
        if (r == 0)
            fail_msg("a header cut to %zu of %zu bytes parsed", n, b.len);
        assert_true(r == PD_ERR_TRUNCATED || (n < 4 && r == PD_ERR_INVALID));
    }
    expect_dec(v, b.len - 1, PD_ERR_TRUNCATED, "ends inside its dev passphrase");
    v[b.len] = 0;
    expect_dec(v, b.len + 1, PD_ERR_INVALID, "1 bytes after the backup header");
    v[0] = 'X';
    expect_dec(v, b.len, PD_ERR_INVALID, "not a payd backup");
    v[0] = 'P';
    v[4] = 2;
    expect_dec(v, b.len, PD_ERR_KEY_VERSION, "backup archive version 2: this payctl reads version 1");
    v[4] = 1;
    v[5] = 0x80;
    expect_dec(v, b.len, PD_ERR_INVALID, "unknown flags");
    v[5] = 0; /* a passphrase without the dev flag */
    expect_dec(v, b.len, PD_ERR_INVALID, "a dev passphrase without the dev flag");
    v[5] = PD_BACKUP_F_DEV;
    v[6] = 9;
    expect_dec(v, b.len, PD_ERR_INVALID, "unknown unseal method");
    v[6] = PD_BACKUP_UNSEAL_PASSPHRASE;
    v[7] = 1;
    expect_dec(v, b.len, PD_ERR_INVALID, "reserved byte");
    v[7] = 0;
    expect_dec(v, b.len, 0, "");
    free(v);
    /* a wrapped key one byte short, framed correctly */
    uint8_t w[8 + 2 + PD_BACKUP_WRAPPED_LEN + 2 + sizeof(keyfile) + 2] = {'P', 'D', 'B', 'K', 1, 0, 1, 0,
                                                                         0, PD_BACKUP_WRAPPED_LEN - 1};
    size_t n = 10 + PD_BACKUP_WRAPPED_LEN - 1;
    w[n++] = 0, w[n++] = (uint8_t)strlen(keyfile);
    memcpy(w + n, keyfile, strlen(keyfile)), n += strlen(keyfile);
    w[n++] = 0, w[n++] = 0;
    expect_dec(w, n, PD_ERR_INVALID, "the wrapped key has the wrong length");
    pd_buf_free(&b);
}

static void
part_names_are_plain_relative_paths(void **state)
{
    (void)state;
    static const char *const ok[] = {"payd.db", "vault/root.key", "vault/credentials/admin", "tls/ca-key.pem", "a_b-1"};
    static const char *const bad[] = {"",          "/etc/passwd", "../x",       "vault/../../x", "a//b",   "a/",
                                      ".hidden",   "vault/.x",    "a/b/c/d",    "a b",           "a\\b",   "é",
                                      "vault/\n"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_true(pd_bk_name_ok(ok[i], strlen(ok[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (pd_bk_name_ok(bad[i], strlen(bad[i])))
            fail_msg("\"%s\" accepted as a part name", bad[i]);
    char longname[PD_BK_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname));
    assert_true(pd_bk_name_ok(longname, PD_BK_NAME_MAX));
    assert_false(pd_bk_name_ok(longname, PD_BK_NAME_MAX + 1));
}

/* an encrypted file whose plaintext is body (raw: the test makes the stream) */
static void
write_body(const char *name, const void *body, size_t n)
{
    pd_file_writer_t *w;
    assert_int_equal(pd_file_writer_open(&w, dir, name, PD_BACKUP_FILE_ID, key, PD_VIEW_LIT("hdr")), 0);
    assert_int_equal(pd_file_writer_write(w, body, n), 0);
    assert_int_equal(pd_file_writer_commit(w, NULL, NULL), 0);
}

static void
open_body(const char *name, pd_bk_in_t *in)
{
    char path[128];
    pd_view_t id, wr;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    memset(in, 0, sizeof(*in));
    assert_int_equal(pd_file_reader_open(&in->r, path, &id, &wr), 0);
    pd_file_reader_key(in->r, key);
    in->buf = malloc(PD_FILE_CHUNK);
}

static void
close_body(pd_bk_in_t *in)
{
    pd_file_reader_close(in->r);
    free(in->buf);
}

static void
parts_read_back_as_written(void **state)
{
    (void)state;
    char src[400], got[128];
    pd_bk_out_t out = {.buf = malloc(PD_BK_IOBUF)};
    /* one part larger than a chunk, one empty, one small */
    static const struct {
        const char *name;
        size_t size;
    } files[] = {{"payd.db", PD_FILE_CHUNK + 12345}, {"vault/empty", 0}, {"vault/credentials/admin", 49}};
    assert_int_equal(pd_file_writer_open(&out.w, dir, "a.pdbk", PD_BACKUP_FILE_ID, key, PD_VIEW_LIT("hdr")), 0);
    for (size_t i = 0; i < 3; i++) {
        snprintf(src, sizeof(src), "%s/src%zu", dir, i);
        FILE *f = fopen(src, "wb");
        for (size_t k = 0; k < files[i].size; k++)
            fputc((int)((k * 31 + i) & 0xff), f);
        fclose(f);
        char err[256];
        assert_int_equal(pd_bk_put_file(&out, files[i].name, src, err, sizeof(err)), 0);
    }
    assert_int_equal(pd_bk_put_end(&out), 0);
    assert_int_equal(pd_file_writer_commit(out.w, NULL, NULL), 0);
    free(out.buf);

    pd_bk_in_t in;
    pd_bk_part_t p;
    bool end;
    int64_t count;
    char err[256];
    open_body("a.pdbk", &in);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(pd_bk_next(&in, &p, &end, &count, err, sizeof(err)), 0);
        assert_false(end);
        assert_string_equal(p.name, files[i].name);
        assert_int_equal(p.size, files[i].size);
        snprintf(got, sizeof(got), "%s/got%zu", dir, i);
        int fd = open(got, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_int_equal(pd_bk_copy_part(&in, &p, fd, err, sizeof(err)), 0);
        close(fd);
        snprintf(src, sizeof(src), "cmp -s %s/src%zu %s", dir, i, got);
        assert_int_equal(system(src), 0);
    }
    assert_int_equal(pd_bk_next(&in, &p, &end, &count, err, sizeof(err)), 0);
    assert_true(end);
    assert_int_equal(count, 3);
    assert_int_equal(pd_bk_finish(&in, err, sizeof(err)), 0);
    close_body(&in);
}

/* a one-part stream "F name mode size data sha" + end mark, as bytes */
static size_t
stream(uint8_t *out, const char *name, const char *data, bool good_sha, bool end)
{
    size_t n = 0, nl = strlen(name), dl = strlen(data);
    out[n++] = 'F';
    out[n++] = 0, out[n++] = (uint8_t)nl;
    memcpy(out + n, name, nl), n += nl;
    out[n++] = 0x01, out[n++] = 0x80; /* 0600 */
    memset(out + n, 0, 7), n += 7;
    out[n++] = (uint8_t)dl;
    memcpy(out + n, data, dl), n += dl;
    uint8_t sha[32];
    EVP_Digest(data, dl, sha, NULL, EVP_sha256(), NULL);
    if (!good_sha)
        sha[31] ^= 1;
    memcpy(out + n, sha, 32), n += 32;
    if (end) {
        out[n++] = 'E';
        out[n++] = 0, out[n++] = 0, out[n++] = 0, out[n++] = 1;
    }
    return n;
}

/* reads the first part of file name: the error of the step that fails, err saying `says` */
static void
expect_stream(const char *name, int want, const char *says)
{
    pd_bk_in_t in;
    pd_bk_part_t p;
    bool end = false;
    int64_t count;
    char err[256] = "";
    open_body(name, &in);
    int r = pd_bk_next(&in, &p, &end, &count, err, sizeof(err));
    if (r == 0)
        r = pd_bk_copy_part(&in, &p, -1, err, sizeof(err));
    if (r == 0)
        r = pd_bk_next(&in, &p, &end, &count, err, sizeof(err));
    if (r == 0)
        r = pd_bk_finish(&in, err, sizeof(err));
    close_body(&in);
    if (r != want || strstr(err, says) == NULL)
        fail_msg("%s: got %d \"%s\", expected %d saying \"%s\"", name, r, err, want, says);
}

static void
a_tampered_stream_is_refused_under_a_valid_encryption(void **state)
{
    (void)state;
    uint8_t b[512];
    size_t n = stream(b, "payd.db", "the database", true, true);
    write_body("good", b, n);
    expect_stream("good", 0, "");
    n = stream(b, "payd.db", "the database", false, true);
    write_body("badsha", b, n);
    expect_stream("badsha", PD_ERR_AUTH, "part payd.db: its SHA-256 does not match");
    n = stream(b, "../../etc/cron.d/x", "* * * * * root sh", true, true);
    write_body("climb", b, n);
    expect_stream("climb", PD_ERR_INVALID, "not a plain relative path");
    n = stream(b, "payd.db", "the database", true, true);
    write_body("cut", b, 20); /* inside the part's bytes */
    expect_stream("cut", PD_ERR_TRUNCATED, "end early");
    b[n] = 'F';
    write_body("after", b, n + 1);
    expect_stream("after", PD_ERR_INVALID, "after their end mark");
    b[0] = 'Z';
    write_body("type", b, n);
    expect_stream("type", PD_ERR_INVALID, "part type 0x5a");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_round_trips),
        cmocka_unit_test(encoder_refuses_what_the_parser_would),
        cmocka_unit_test(parser_refuses_every_malformation),
        cmocka_unit_test(part_names_are_plain_relative_paths),
        cmocka_unit_test(parts_read_back_as_written),
        cmocka_unit_test(a_tampered_stream_is_refused_under_a_valid_encryption),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
