/* The encrypted file format and its streaming writer and reader (payd/files.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "payd/fileio.h"
#include "payd/files.h"

#define MAGIC "PDF1"
#define VERSION 1
#define TAG_LEN 16
#define HEADER_MAX (4 + 2 + 2 + PD_FILE_ID_MAX + 2 + PD_FILE_WRAPPED_MAX + 4 + 32)
#define FLAG_FINAL 1

static void
put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v);
}

static uint32_t
get16(const uint8_t *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t
get32(const uint8_t *p)
{
    return get16(p) << 16 | get16(p + 2);
}

/* read exactly n bytes: 0, PD_ERR_TRUNCATED at an end before them, or an error */
static int
read_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t k = read(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            return PD_ERR_TRUNCATED;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/*
 * Seals or opens one chunk in place: the nonce and additional data of chunk idx with
 * flags (and the SHA-256 when final). enc: seal p (n bytes) and write the tag to tag;
 * else open p and check tag. PD_ERR_AUTH when the tag does not match.
 */
static int
chunk_crypt(bool enc, const uint8_t key[PD_FILE_KEY_LEN], const uint8_t *prefix, size_t prefix_len, uint64_t idx,
            uint8_t flags, const uint8_t sha[32], uint8_t *p, size_t n, uint8_t tag[TAG_LEN])
{
    uint8_t nonce[12] = {0}, ad[9];
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = ad[i] = (uint8_t)(idx >> (56 - 8 * i));
    ad[8] = flags;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, ok = c != NULL && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce, enc ? 1 : 0) == 1 &&
                      EVP_CipherUpdate(c, NULL, &len, prefix, (int)prefix_len) == 1 &&
                      EVP_CipherUpdate(c, NULL, &len, ad, sizeof(ad)) == 1 &&
                      ((flags & FLAG_FINAL) == 0 || EVP_CipherUpdate(c, NULL, &len, sha, 32) == 1) &&
                      (n == 0 || EVP_CipherUpdate(c, p, &len, p, (int)n) == 1);
    int r = ok ? 0 : PD_ERR_CRYPTO;
    if (r == 0 && !enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
        r = PD_ERR_CRYPTO;
    if (r == 0 && EVP_CipherFinal_ex(c, p + n, &len) != 1)
        r = enc ? PD_ERR_CRYPTO : PD_ERR_AUTH;
    if (r == 0 && enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
        r = PD_ERR_CRYPTO;
    EVP_CIPHER_CTX_free(c);
    return r;
}

/* --- the writer --- */

struct pd_file_writer {
    int fd;
    char tmp[4096], path[4096], dir[4096];
    uint8_t key[PD_FILE_KEY_LEN];
    uint8_t header[HEADER_MAX];
    size_t prefix_len; /* the header without its SHA-256 (the SHA follows at this offset) */
    uint64_t idx, size;
    EVP_MD_CTX *sha;
    uint8_t *buf; /* one chunk of plaintext, then its ciphertext in place */
    size_t used;
};

int
pd_file_writer_open(pd_file_writer_t **out, const char *dir, const char *name, const char *id,
                    const uint8_t key[PD_FILE_KEY_LEN], pd_view_t wrapped)
{
    *out = NULL;
    size_t idl = strlen(id);
    if (idl == 0 || idl > PD_FILE_ID_MAX || wrapped.len == 0 || wrapped.len > PD_FILE_WRAPPED_MAX ||
        strchr(name, '/') != NULL || name[0] == '\0' || name[0] == '.')
        return PD_ERR_INVALID;
    pd_file_writer_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return PD_ERR_NOMEM;
    w->fd = -1;
    if ((w->buf = malloc(PD_FILE_CHUNK + TAG_LEN)) == NULL || (w->sha = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) != 1) {
        pd_file_writer_abort(w);
        return PD_ERR_NOMEM;
    }
    memcpy(w->key, key, PD_FILE_KEY_LEN);
    snprintf(w->dir, sizeof(w->dir), "%s", dir);
    snprintf(w->path, sizeof(w->path), "%s/%s", dir, name);
    snprintf(w->tmp, sizeof(w->tmp), "%s/.%s.tmp-XXXXXX", dir, name);
    if ((w->fd = mkostemp(w->tmp, O_CLOEXEC)) < 0) {
        int r = -errno;
        w->tmp[0] = '\0';
        pd_file_writer_abort(w);
        return r;
    }
    uint8_t *h = w->header;
    size_t o = 0;
    memcpy(h, MAGIC, 4), o += 4;
    h[o++] = VERSION;
    h[o++] = 0;
    put16(h + o, (uint32_t)idl), o += 2;
    memcpy(h + o, id, idl), o += idl;
    put16(h + o, (uint32_t)wrapped.len), o += 2;
    memcpy(h + o, wrapped.p, wrapped.len), o += wrapped.len;
    put32(h + o, PD_FILE_CHUNK), o += 4;
    w->prefix_len = o;
    memset(h + o, 0, 32); /* the SHA-256, written at commit */
    int r = pd_write_all(w->fd, h, o + 32);
    if (r != 0) {
        pd_file_writer_abort(w);
        return r;
    }
    *out = w;
    return 0;
}

/* seals the buffered chunk with flags and appends it */
static int
flush_chunk(pd_file_writer_t *w, uint8_t flags, const uint8_t sha[32])
{
    uint8_t rec[5], tag[TAG_LEN];
    put32(rec, (uint32_t)w->used);
    rec[4] = flags;
    int r = chunk_crypt(true, w->key, w->header, w->prefix_len, w->idx, flags, sha, w->buf, w->used, tag);
    if (r == 0 && (r = pd_write_all(w->fd, rec, sizeof(rec))) == 0 && (r = pd_write_all(w->fd, w->buf, w->used)) == 0)
        r = pd_write_all(w->fd, tag, TAG_LEN);
    w->idx++;
    w->used = 0;
    return r;
}

int
pd_file_writer_write(pd_file_writer_t *w, const void *p, size_t n)
{
    const uint8_t *b = p;
    if (n > 0 && EVP_DigestUpdate(w->sha, p, n) != 1)
        return PD_ERR_CRYPTO;
    w->size += n;
    while (n > 0) {
        /* a full chunk is sealed only once more data comes: the last one is the final one */
        if (w->used == PD_FILE_CHUNK) {
            int r = flush_chunk(w, 0, NULL);
            if (r != 0)
                return r;
        }
        size_t k = PD_FILE_CHUNK - w->used < n ? PD_FILE_CHUNK - w->used : n;
        memcpy(w->buf + w->used, b, k);
        w->used += k;
        b += k;
        n -= k;
    }
    return 0;
}

int
pd_file_writer_commit(pd_file_writer_t *w, uint8_t sha[32], uint64_t *size)
{
    uint8_t digest[32];
    unsigned int dl = 0;
    int r = EVP_DigestFinal_ex(w->sha, digest, &dl) == 1 && dl == 32 ? 0 : PD_ERR_CRYPTO;
    if (r == 0)
        r = flush_chunk(w, FLAG_FINAL, digest);
    if (r == 0 && pwrite(w->fd, digest, 32, (off_t)w->prefix_len) != 32)
        r = PD_ERR_IO;
    if (r == 0 && fsync(w->fd) != 0)
        r = -errno;
    if (r == 0 && rename(w->tmp, w->path) != 0)
        r = -errno;
    if (r == 0) {
        w->tmp[0] = '\0'; /* it has its name now */
        r = pd_fsync_dir(w->dir);
    }
    if (r == 0 && sha != NULL)
        memcpy(sha, digest, 32);
    if (r == 0 && size != NULL)
        *size = w->size;
    pd_file_writer_abort(w);
    return r;
}

void
pd_file_writer_abort(pd_file_writer_t *w)
{
    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp[0] != '\0')
        unlink(w->tmp);
    if (w->buf != NULL) {
        OPENSSL_cleanse(w->buf, PD_FILE_CHUNK + TAG_LEN);
        free(w->buf);
    }
    EVP_MD_CTX_free(w->sha);
    OPENSSL_cleanse(w, sizeof(*w));
    free(w);
}

/* --- the reader --- */

struct pd_file_reader {
    int fd;
    uint8_t key[PD_FILE_KEY_LEN];
    bool keyed, done;
    uint8_t header[HEADER_MAX];
    size_t prefix_len, id_off, id_len, wk_off, wk_len;
    uint64_t idx;
    EVP_MD_CTX *sha;
    uint8_t *buf;
    size_t have, pos; /* the current chunk's plaintext: have bytes, pos of them returned */
};

int
pd_file_reader_open(pd_file_reader_t **out, const char *path, pd_view_t *id, pd_view_t *wrapped)
{
    *out = NULL;
    pd_file_reader_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return PD_ERR_NOMEM;
    if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        int e = -errno;
        free(r);
        return e;
    }
    if ((r->buf = malloc(PD_FILE_CHUNK + TAG_LEN)) == NULL || (r->sha = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1) {
        pd_file_reader_close(r);
        return PD_ERR_NOMEM;
    }
    uint8_t *h = r->header;
    size_t o = 0;
    int e = read_all(r->fd, h, 8);
    if (e == 0 && (memcmp(h, MAGIC, 4) != 0 || h[4] != VERSION || h[5] != 0))
        e = PD_ERR_INVALID;
    o = 6;
    if (e == 0) {
        r->id_len = get16(h + o), o += 2, r->id_off = o;
        if (r->id_len == 0 || r->id_len > PD_FILE_ID_MAX)
            e = PD_ERR_INVALID;
    }
    if (e == 0 && (e = read_all(r->fd, h + 8, r->id_len + 2)) == 0) {
        o += r->id_len;
        r->wk_len = get16(h + o), o += 2, r->wk_off = o;
        if (r->wk_len == 0 || r->wk_len > PD_FILE_WRAPPED_MAX)
            e = PD_ERR_INVALID;
    }
    if (e == 0 && (e = read_all(r->fd, h + o, r->wk_len + 4 + 32)) == 0) {
        o += r->wk_len;
        if (get32(h + o) != PD_FILE_CHUNK)
            e = PD_ERR_INVALID;
        r->prefix_len = o + 4;
    }
    if (e != 0) {
        pd_file_reader_close(r);
        return e == PD_ERR_TRUNCATED ? PD_ERR_INVALID : e;
    }
    *id = pd_view(h + r->id_off, r->id_len);
    *wrapped = pd_view(h + r->wk_off, r->wk_len);
    *out = r;
    return 0;
}

void
pd_file_reader_key(pd_file_reader_t *r, const uint8_t key[PD_FILE_KEY_LEN])
{
    memcpy(r->key, key, PD_FILE_KEY_LEN);
    r->keyed = true;
}

const uint8_t *
pd_file_reader_sha(const pd_file_reader_t *r)
{
    return r->header + r->prefix_len;
}

/* the next chunk into buf, opened and checked; after the final one, the SHA-256 and the end */
static int
next_chunk(pd_file_reader_t *r)
{
    uint8_t rec[5], tag[TAG_LEN], extra;
    int e = read_all(r->fd, rec, sizeof(rec));
    if (e != 0)
        return e;
    size_t n = get32(rec);
    uint8_t flags = rec[4];
    if (n > PD_FILE_CHUNK || (flags & ~FLAG_FINAL) != 0)
        return PD_ERR_INVALID;
    if ((e = read_all(r->fd, r->buf, n)) != 0 || (e = read_all(r->fd, tag, TAG_LEN)) != 0)
        return e;
    const uint8_t *sha = pd_file_reader_sha(r);
    if ((e = chunk_crypt(false, r->key, r->header, r->prefix_len, r->idx, flags, sha, r->buf, n, tag)) != 0)
        return e;
    r->idx++;
    r->have = n;
    r->pos = 0;
    if (n > 0 && EVP_DigestUpdate(r->sha, r->buf, n) != 1)
        return PD_ERR_CRYPTO;
    if ((flags & FLAG_FINAL) == 0)
        return 0;
    uint8_t digest[32];
    unsigned int dl = 0;
    if (EVP_DigestFinal_ex(r->sha, digest, &dl) != 1 || dl != 32)
        return PD_ERR_CRYPTO;
    if (CRYPTO_memcmp(digest, sha, 32) != 0)
        return PD_ERR_AUTH;
    ssize_t k = read(r->fd, &extra, 1);
    if (k != 0)
        return k < 0 ? -errno : PD_ERR_INVALID; /* bytes after the final chunk */
    r->done = true;
    return 0;
}

int
pd_file_reader_read(pd_file_reader_t *r, void *buf, size_t cap, size_t *n)
{
    *n = 0;
    if (!r->keyed)
        return PD_ERR_STATE;
    while (r->pos == r->have && !r->done) {
        int e = next_chunk(r);
        if (e != 0)
            return e;
    }
    size_t k = r->have - r->pos < cap ? r->have - r->pos : cap;
    memcpy(buf, r->buf + r->pos, k);
    r->pos += k;
    *n = k;
    return 0;
}

void
pd_file_reader_close(pd_file_reader_t *r)
{
    if (r == NULL)
        return;
    if (r->fd >= 0)
        close(r->fd);
    if (r->buf != NULL) {
        OPENSSL_cleanse(r->buf, PD_FILE_CHUNK + TAG_LEN);
        free(r->buf);
    }
    EVP_MD_CTX_free(r->sha);
    OPENSSL_cleanse(r, sizeof(*r));
    free(r);
}
