/*
 * Compiled Hyperscan databases kept on disk ([waf] cache_dir), so that a start does
 * not compile the rules again: compiling the twelve rule groups takes seconds, which
 * every restart of a node (a rolling restart, a crash) would otherwise wait.
 *
 * A file is named by its key, the SHA-256 of everything the database is compiled from
 * (Hyperscan's version, the platform, the mode, every expression with its flags and
 * id), so a changed rule, paranoia level or library never reads an old database. It
 * holds "PDWAFDB1", the SHA-256 of the serialized bytes, their length (u64, little
 * endian) and the bytes. A file that does not check out is compiled anew and
 * replaced. Files are written to a temp name, fsynced and renamed, so two nodes
 * starting at once never read a half-written one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "payd/buf.h"
#include "payd/log.h"
#include "waf/internal.h"

#define MAGIC "PDWAFDB1"
#define HEADER (8 + 32 + 8)
#define FILE_MAX (256u << 20)

int
pd_waf_dbcache_key(const char *const *exprs, const unsigned *flags, const unsigned *ids, size_t n, unsigned mode,
                   uint8_t key[32])
{
    hs_platform_info_t plat;
    memset(&plat, 0, sizeof(plat));
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    const char *ver = hs_version();
    uint64_t nn = n;
    int ok = c != NULL && hs_populate_platform(&plat) == HS_SUCCESS && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(c, "payd-waf-db-1", 14) && EVP_DigestUpdate(c, ver, strlen(ver) + 1) &&
             EVP_DigestUpdate(c, &plat, sizeof(plat)) && EVP_DigestUpdate(c, &mode, sizeof(mode)) &&
             EVP_DigestUpdate(c, &nn, sizeof(nn));
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_DigestUpdate(c, exprs[i], strlen(exprs[i]) + 1) && EVP_DigestUpdate(c, &flags[i], sizeof(flags[i])) &&
             EVP_DigestUpdate(c, &ids[i], sizeof(ids[i]));
    ok = ok && EVP_DigestFinal_ex(c, key, NULL);
    EVP_MD_CTX_free(c);
    return ok ? 0 : PD_ERR_CRYPTO;
}

static void
file_path(char *out, size_t cap, const char *dir, const uint8_t key[32])
{
    char hex[65];
    pd_hex(key, 32, hex);
    snprintf(out, cap, "%s/%s.hsdb", dir, hex);
}

static bool
sha256(const void *p, size_t len, uint8_t out[32])
{
    return EVP_Digest(p, len, out, NULL, EVP_sha256(), NULL) == 1;
}

int
pd_waf_dbcache_load(const char *dir, const uint8_t key[32], hs_database_t **db)
{
    char path[4200];
    file_path(path, sizeof(path), dir, key);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return PD_ERR_NOTFOUND;
    struct stat st;
    uint8_t *b = NULL, sum[32];
    int rc = PD_ERR_NOTFOUND;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < HEADER || (uint64_t)st.st_size > FILE_MAX ||
        (b = malloc((size_t)st.st_size)) == NULL)
        goto out;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t k = read(fd, b + got, (size_t)st.st_size - got);
        if (k <= 0)
            goto out;
        got += (size_t)k;
    }
    uint64_t len = 0;
    for (int i = 0; i < 8; i++)
        len |= (uint64_t)b[40 + i] << (8 * i);
    if (memcmp(b, MAGIC, 8) != 0 || len != (uint64_t)st.st_size - HEADER || !sha256(b + HEADER, len, sum) ||
        memcmp(sum, b + 8, 32) != 0 || hs_deserialize_database((const char *)b + HEADER, len, db) != HS_SUCCESS)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        pd_log_debug("waf: no usable compiled database in the cache; compiling", PD_LS("file", path));
    free(b);
    close(fd);
    return rc;
}

static bool
write_all(int fd, const void *p, size_t len)
{
    const uint8_t *q = p;
    while (len > 0) {
        ssize_t k = write(fd, q, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        q += k;
        len -= (size_t)k;
    }
    return true;
}

void
pd_waf_dbcache_save(const char *dir, const uint8_t key[32], const hs_database_t *db)
{
    char path[4200], tmp[4210];
    char *bytes = NULL;
    size_t len = 0;
    uint8_t head[HEADER];
    if ((mkdir(dir, 0700) != 0 && errno != EEXIST) || hs_serialize_database(db, &bytes, &len) != HS_SUCCESS) {
        pd_log_warn("waf: cannot keep the compiled rules in the cache; the next start compiles them again",
                    PD_LS("dir", dir), PD_LS("reason", strerror(errno)));
        return;
    }
    memcpy(head, MAGIC, 8);
    for (int i = 0; i < 8; i++)
        head[40 + i] = (uint8_t)((uint64_t)len >> (8 * i));
    file_path(path, sizeof(path), dir, key);
    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    int fd = -1;
    bool ok = sha256(bytes, len, head + 8) && (fd = mkstemp(tmp)) >= 0 && write_all(fd, head, sizeof(head)) &&
              write_all(fd, bytes, len) && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    if (!ok) {
        pd_log_warn("waf: cannot keep the compiled rules in the cache; the next start compiles them again",
                    PD_LS("dir", dir), PD_LS("reason", strerror(errno)));
        if (fd >= 0)
            unlink(tmp);
    }
    free(bytes); /* hs_serialize_database allocates with hs's misc allocator: malloc */
}
