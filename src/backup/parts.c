/* The stream of parts inside an archive's body (internal.h). */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "backup/internal.h"

int
pd_bk_path(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? PD_ERR_TOOBIG : 0;
}

bool
pd_bk_name_ok(const char *name, size_t len)
{
    int components = 1;
    if (len == 0 || len > PD_BK_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool start = i == 0 || name[i - 1] == '/';
        if (c == '/') {
            if (start || i + 1 == len || ++components > 3)
                return false;
            continue;
        }
        if (start && c == '.')
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

static void
be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t
unbe(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int
pd_bk_put_file(pd_bk_out_t *o, const char *name, const char *path, char *err, size_t cap)
{
    uint8_t hdr[1 + 2 + PD_BK_NAME_MAX + 2 + 8], sha[32];
    size_t nlen = strlen(name);
    struct stat st;
    int r = PD_ERR_IO;
    EVP_MD_CTX *md = NULL;
    if (!pd_bk_name_ok(name, nlen))
        return PD_ERR_INVALID;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        r = fd < 0 ? -errno : PD_ERR_INVALID;
        snprintf(err, cap, "cannot read %s: %s", path, fd < 0 ? strerror(errno) : "not a regular file");
        goto out;
    }
    size_t n = 0;
    hdr[n++] = 'F';
    be(hdr + n, nlen, 2), n += 2;
    memcpy(hdr + n, name, nlen), n += nlen;
    be(hdr + n, st.st_mode & 0777, 2), n += 2;
    be(hdr + n, (uint64_t)st.st_size, 8), n += 8;
    if ((md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        r = PD_ERR_CRYPTO;
        goto out;
    }
    if ((r = pd_file_writer_write(o->w, hdr, n)) != 0) {
        snprintf(err, cap, "cannot write the archive: %s", pd_strerror(r));
        goto out;
    }
    /* exactly the size announced: a file that grows or shrinks meanwhile is an error */
    uint64_t left = (uint64_t)st.st_size;
    while (left > 0) {
        if (o->cancel != NULL && *o->cancel) {
            snprintf(err, cap, "interrupted");
            r = PD_ERR_CLOSED;
            goto out;
        }
        ssize_t k = read(fd, o->buf, left < PD_BK_IOBUF ? (size_t)left : PD_BK_IOBUF);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            r = k < 0 ? -errno : PD_ERR_TRUNCATED;
            snprintf(err, cap, "cannot read %s: %s", path, k < 0 ? strerror(errno) : "it shrank while being read");
            goto out;
        }
        if (EVP_DigestUpdate(md, o->buf, (size_t)k) != 1) {
            r = PD_ERR_CRYPTO;
            goto out;
        }
        if ((r = pd_file_writer_write(o->w, o->buf, (size_t)k)) != 0) {
            snprintf(err, cap, "cannot write the archive: %s", pd_strerror(r));
            goto out;
        }
        left -= (uint64_t)k;
    }
    if (EVP_DigestFinal_ex(md, sha, NULL) != 1) {
        r = PD_ERR_CRYPTO;
        goto out;
    }
    if ((r = pd_file_writer_write(o->w, sha, sizeof(sha))) != 0) {
        snprintf(err, cap, "cannot write the archive: %s", pd_strerror(r));
        goto out;
    }
    o->parts++;
    o->bytes += (uint64_t)st.st_size;
    r = 0;
out:
    /* the part's bytes may be secret (credentials, the databases): the buffer is wiped */
    OPENSSL_cleanse(o->buf, PD_BK_IOBUF);
    EVP_MD_CTX_free(md);
    if (fd >= 0)
        close(fd);
    return r;
}

int
pd_bk_put_end(pd_bk_out_t *o)
{
    uint8_t end[5] = {'E'};
    be(end + 1, (uint64_t)o->parts, 4);
    return pd_file_writer_write(o->w, end, sizeof(end));
}

const char *
pd_bk_format_error(int r)
{
    switch (r) {
    case PD_ERR_AUTH: return "the archive was altered or is damaged (authentication failed)";
    case PD_ERR_TRUNCATED: return "the archive is truncated";
    case PD_ERR_INVALID: return "the archive is malformed";
    default: return pd_strerror(r);
    }
}

/* exactly n bytes of plaintext into out (NULL: into nowhere, for the caller's own use of in->buf) */
static int
take(pd_bk_in_t *in, void *out, size_t n, char *err, size_t cap)
{
    uint8_t *o = out;
    while (n > 0) {
        if (in->off == in->len) {
            if (in->eof) {
                snprintf(err, cap, "the archive's contents end early: %s", pd_bk_format_error(PD_ERR_TRUNCATED));
                return PD_ERR_TRUNCATED;
            }
            if (in->cancel != NULL && *in->cancel) {
                snprintf(err, cap, "interrupted");
                return PD_ERR_CLOSED;
            }
            int r = pd_file_reader_read(in->r, in->buf, PD_FILE_CHUNK, &in->len);
            in->off = 0;
            if (r != 0) {
                snprintf(err, cap, "%s", pd_bk_format_error(r));
                return r;
            }
            in->eof = in->len == 0;
            continue;
        }
        size_t k = in->len - in->off < n ? in->len - in->off : n;
        memcpy(o, in->buf + in->off, k);
        o += k;
        in->off += k;
        in->bytes += k;
        n -= k;
    }
    return 0;
}

int
pd_bk_next(pd_bk_in_t *in, pd_bk_part_t *p, bool *end, int64_t *count, char *err, size_t cap)
{
    uint8_t t, b[8];
    int r;
    *end = false;
    if ((r = take(in, &t, 1, err, cap)) != 0)
        return r;
    if (t == 'E') {
        if ((r = take(in, b, 4, err, cap)) != 0)
            return r;
        *end = true;
        *count = (int64_t)unbe(b, 4);
        return 0;
    }
    if (t != 'F') {
        snprintf(err, cap, "the archive's contents are malformed (part type 0x%02x)", t);
        return PD_ERR_INVALID;
    }
    if ((r = take(in, b, 2, err, cap)) != 0)
        return r;
    size_t nlen = (size_t)unbe(b, 2);
    if (nlen == 0 || nlen > PD_BK_NAME_MAX) {
        snprintf(err, cap, "the archive's contents are malformed (a part name of %zu bytes)", nlen);
        return PD_ERR_INVALID;
    }
    if ((r = take(in, p->name, nlen, err, cap)) != 0)
        return r;
    p->name[nlen] = '\0';
    if (!pd_bk_name_ok(p->name, nlen)) {
        snprintf(err, cap, "the archive holds a part whose name is not a plain relative path");
        return PD_ERR_INVALID;
    }
    if ((r = take(in, b, 2, err, cap)) != 0)
        return r;
    p->mode = (mode_t)unbe(b, 2);
    if ((r = take(in, b, 8, err, cap)) != 0)
        return r;
    p->size = unbe(b, 8);
    if (p->mode > 0777) {
        snprintf(err, cap, "part %s: malformed mode", p->name);
        return PD_ERR_INVALID;
    }
    return 0;
}

int
pd_bk_copy_part(pd_bk_in_t *in, const pd_bk_part_t *p, int fd, char *err, size_t cap)
{
    uint8_t sha[32], want[32], tmp[65536];
    int r = PD_ERR_CRYPTO;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    for (uint64_t left = p->size; left > 0;) {
        size_t k = left < sizeof(tmp) ? (size_t)left : sizeof(tmp);
        if ((r = take(in, tmp, k, err, cap)) != 0)
            goto out;
        if (EVP_DigestUpdate(md, tmp, k) != 1) {
            r = PD_ERR_CRYPTO;
            goto out;
        }
        for (size_t off = 0; fd >= 0 && off < k;) {
            ssize_t w = write(fd, tmp + off, k - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                r = w < 0 ? -errno : PD_ERR_IO;
                snprintf(err, cap, "cannot write %s: %s", p->name, w < 0 ? strerror(errno) : "short write");
                goto out;
            }
            off += (size_t)w;
        }
        left -= k;
    }
    if ((r = take(in, want, sizeof(want), err, cap)) != 0)
        goto out;
    if (EVP_DigestFinal_ex(md, sha, NULL) != 1) {
        r = PD_ERR_CRYPTO;
        goto out;
    }
    if (CRYPTO_memcmp(sha, want, sizeof(sha)) != 0) {
        snprintf(err, cap, "part %s: its SHA-256 does not match the archive's", p->name);
        r = PD_ERR_AUTH;
        goto out;
    }
    r = 0;
out:
    OPENSSL_cleanse(tmp, sizeof(tmp));
    EVP_MD_CTX_free(md);
    return r;
}

int
pd_bk_finish(pd_bk_in_t *in, char *err, size_t cap)
{
    uint8_t extra;
    if (in->off != in->len) {
        snprintf(err, cap, "the archive's contents go on after their end mark");
        return PD_ERR_INVALID;
    }
    /* the reader checks the final chunk and the whole SHA-256 on the read that returns 0 */
    int r = take(in, &extra, 1, err, cap);
    if (r == PD_ERR_TRUNCATED && in->eof)
        return 0;
    if (r == 0) {
        snprintf(err, cap, "the archive's contents go on after their end mark");
        return PD_ERR_INVALID;
    }
    return r;
}
