/* The sealed root key file (see include/payd/vault_crypto.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "payd/vault_crypto.h"

#define KF_MAGIC "payd-vault-keyfile 1"
#define KF_AAD "payd-root-key"
#define KF_MAX 4096
/* scrypt cost: 2^15 * 8 * 128 B = 32 MiB, ~0.1 s: a passphrase guess costs the same */
#define KF_N 32768
#define KF_R 8
#define KF_P 1

static int
derive(const char *pass, size_t passlen, const uint8_t *salt, uint64_t n, uint64_t r, uint64_t p, uint8_t out[PD_KEY_LEN])
{
    if (EVP_PBE_scrypt(pass, passlen, salt, 16, n, r, p, 256u * 1024 * 1024, out, PD_KEY_LEN) != 1)
        return PD_ERR_CRYPTO;
    return 0;
}

int
pd_keyfile_write(const char *path, const uint8_t root[PD_KEY_LEN], const char *pass, size_t passlen)
{
    uint8_t salt[16], kek[PD_KEY_LEN], sealed[PD_GCM_NONCE + PD_KEY_LEN + PD_GCM_TAG];
    char salthex[33], sealedhex[2 * sizeof(sealed) + 1], tmp[4200];
    int r, fd = -1;

    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return PD_ERR_CRYPTO;
    if ((r = derive(pass, passlen, salt, KF_N, KF_R, KF_P, kek)) != 0)
        goto out;
    if ((r = pd_aead_seal(kek, (const uint8_t *)KF_AAD, strlen(KF_AAD), root, PD_KEY_LEN, sealed)) != 0)
        goto out;
    pd_hex(salt, sizeof(salt), salthex);
    pd_hex(sealed, sizeof(sealed), sealedhex);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        r = -errno;
        goto out;
    }
    char text[512];
    int n = snprintf(text, sizeof(text), "%s\nkdf scrypt %d %d %d\nsalt %s\nsealed %s\n", KF_MAGIC, KF_N, KF_R, KF_P,
                     salthex, sealedhex);
    if (write(fd, text, (size_t)n) != n || fsync(fd) != 0) {
        r = PD_ERR_IO;
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) {
        r = -errno;
        goto out;
    }
    r = 0;
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    OPENSSL_cleanse(kek, sizeof(kek));
    return r;
}

/* next line of text into line (NUL-terminated); false at the end */
static bool
next_line(pd_view_t *t, char *line, size_t cap)
{
    if (t->len == 0)
        return false;
    const uint8_t *nl = memchr(t->p, '\n', t->len);
    size_t n = nl ? (size_t)(nl - t->p) : t->len;
    size_t c = n < cap - 1 ? n : cap - 1;
    memcpy(line, t->p, c);
    line[c] = '\0';
    if (memchr(line, '\0', c) != NULL)
        line[0] = '\x01'; /* embedded NUL: make the line unparseable */
    t->p += nl ? n + 1 : n;
    t->len -= nl ? n + 1 : n;
    return true;
}

int
pd_keyfile_parse(pd_view_t text, const char *pass, size_t passlen, uint8_t root[PD_KEY_LEN], char *err, size_t errcap)
{
    char line[256], salthex[64], sealedhex[200];
    uint8_t salt[16], sealed[PD_GCM_NONCE + PD_KEY_LEN + PD_GCM_TAG], kek[PD_KEY_LEN];
    unsigned long long n = 0, r = 0, p = 0;
    int rc;

    if (text.len > KF_MAX || !next_line(&text, line, sizeof(line)) || strcmp(line, KF_MAGIC) != 0) {
        snprintf(err, errcap, "not a payd vault key file (first line must be \"%s\")", KF_MAGIC);
        return PD_ERR_INVALID;
    }
    if (!next_line(&text, line, sizeof(line)) || sscanf(line, "kdf scrypt %llu %llu %llu", &n, &r, &p) != 3 ||
        n < 1024 || n > (1u << 22) || (n & (n - 1)) != 0 || r < 1 || r > 32 || p < 1 || p > 16) {
        snprintf(err, errcap, "key file: bad kdf line (expected \"kdf scrypt N r p\" with N a power of two)");
        return PD_ERR_INVALID;
    }
    if (!next_line(&text, line, sizeof(line)) || sscanf(line, "salt %63s", salthex) != 1 || strlen(salthex) != 32 ||
        pd_unhex(salthex, 32, salt) != 0) {
        snprintf(err, errcap, "key file: bad salt line");
        return PD_ERR_INVALID;
    }
    if (!next_line(&text, line, sizeof(line)) || sscanf(line, "sealed %199s", sealedhex) != 1 ||
        strlen(sealedhex) != 2 * sizeof(sealed) || pd_unhex(sealedhex, strlen(sealedhex), sealed) != 0) {
        snprintf(err, errcap, "key file: bad sealed line");
        return PD_ERR_INVALID;
    }
    if ((rc = derive(pass, passlen, salt, n, r, p, kek)) != 0) {
        snprintf(err, errcap, "key file: key derivation failed");
        return rc;
    }
    rc = pd_aead_open(kek, (const uint8_t *)KF_AAD, strlen(KF_AAD), sealed, sizeof(sealed), root);
    OPENSSL_cleanse(kek, sizeof(kek));
    if (rc == PD_ERR_AUTH)
        snprintf(err, errcap, "wrong unseal passphrase (or the key file was altered)");
    else if (rc != 0)
        snprintf(err, errcap, "key file: cannot open the sealed key");
    return rc;
}

int
pd_keyfile_read(const char *path, const char *pass, size_t passlen, uint8_t root[PD_KEY_LEN], char *err, size_t errcap)
{
    char buf[KF_MAX + 1];
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return PD_ERR_NOTFOUND;
    }
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    int r = pd_keyfile_parse(pd_view(buf, n), pass, passlen, root, err, errcap);
    OPENSSL_cleanse(buf, sizeof(buf));
    return r;
}
