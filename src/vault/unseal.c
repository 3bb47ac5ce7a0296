/*
 * Where the root key comes from: a passphrase-sealed key file, Shamir shares, a
 * PKCS#11 token (pkcs11.c), or (dev mode) a passphrase generated on first start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "payd/log.h"
#include "vault/unseal.h"

#define PASS_MAX 1024

static int
read_small_file(const char *path, char *out, size_t cap, char *err, size_t errcap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return -errno;
    }
    size_t n = fread(out, 1, cap - 1, f);
    fclose(f);
    out[n] = '\0';
    /* one trailing newline is not part of the passphrase */
    if (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
    if (n > 0 && out[n - 1] == '\r')
        out[--n] = '\0';
    if (n == 0) {
        snprintf(err, errcap, "%s is empty", path);
        return PD_ERR_INVALID;
    }
    return 0;
}

/* the passphrase: flag file, then PAYD_VAULT_PASSPHRASE, then a systemd credential */
static int
get_passphrase(const pd_unseal_opts_t *o, char *pass, char *err, size_t errcap)
{
    const char *env = getenv("PAYD_VAULT_PASSPHRASE");
    const char *credsdir = getenv("CREDENTIALS_DIRECTORY");
    char path[4200];
    if (o->passphrase_file != NULL)
        return read_small_file(o->passphrase_file, pass, PASS_MAX, err, errcap);
    if (env != NULL && env[0] != '\0') {
        snprintf(pass, PASS_MAX, "%s", env);
        return 0;
    }
    if (credsdir != NULL) {
        snprintf(path, sizeof(path), "%s/vault-passphrase", credsdir);
        if (access(path, R_OK) == 0)
            return read_small_file(path, pass, PASS_MAX, err, errcap);
    }
    if (o->dev) {
        snprintf(path, sizeof(path), "%s/dev-passphrase", o->dir);
        if (access(path, R_OK) == 0)
            return read_small_file(path, pass, PASS_MAX, err, errcap);
    }
    snprintf(err, errcap,
             "no unseal passphrase: use --passphrase-file FILE, PAYD_VAULT_PASSPHRASE, or a systemd credential "
             "named vault-passphrase");
    return PD_ERR_CONFIG;
}

static int
write_secret_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t n = strlen(text);
    bool ok = write(fd, text, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    close(fd);
    return ok ? 0 : PD_ERR_IO;
}

int
pd_unseal(const pd_unseal_opts_t *o, uint8_t root[PD_KEY_LEN], bool *created, char *err, size_t errcap)
{
    char keyfile[4200], pass[PASS_MAX];
    int r;

    *created = false;
    snprintf(keyfile, sizeof(keyfile), "%s/root.key", o->dir);
    if (o->nshares > 0)
        return pd_shamir_combine(o->shares, o->nshares, root, err, errcap);
    if (o->p11 != NULL) {
        char p11file[4200];
        snprintf(p11file, sizeof(p11file), "%s/root.p11", o->dir);
        if (access(p11file, F_OK) == 0)
            return pd_p11_unwrap(o->p11, p11file, root, err, errcap);
        if (!o->init) {
            snprintf(err, errcap, "%s does not exist (run with --init to create a new vault)", p11file);
            return PD_ERR_NOTFOUND;
        }
        if ((r = pd_p11_wrap_new(o->p11, p11file, root, err, errcap)) == 0)
            *created = true;
        return r;
    }
    bool exists = access(keyfile, F_OK) == 0;
    if (!exists && o->dev) {
        /* first dev start: a generated passphrase next to the key file, said loudly */
        char devpass[64], path[4200];
        snprintf(path, sizeof(path), "%s/dev-passphrase", o->dir);
        if (access(path, F_OK) != 0) {
            if (pd_secret_base62(devpass, 40) != 0)
                return PD_ERR_CRYPTO;
            devpass[40] = '\0';
            if ((r = write_secret_file(path, devpass)) != 0) {
                snprintf(err, errcap, "cannot write %s", path);
                return r;
            }
            OPENSSL_cleanse(devpass, sizeof(devpass));
            fprintf(stderr, "\n"
                            "  *** payd-vault DEV MODE: a new root key was created and sealed under a generated\n"
                            "  *** passphrase stored in %s.\n"
                            "  *** Anyone who can read that file can unseal this vault. Never use dev mode for real cards.\n\n",
                    path);
            pd_log_warn("vault dev mode: generated unseal passphrase stored next to the key file", PD_LS("path", path));
        }
    }
    if ((r = get_passphrase(o, pass, err, errcap)) != 0)
        return r;
    if (!exists) {
        if (!o->init && !o->dev) {
            OPENSSL_cleanse(pass, sizeof(pass));
            snprintf(err, errcap, "%s does not exist (run with --init to create a new vault)", keyfile);
            return PD_ERR_NOTFOUND;
        }
        if (RAND_priv_bytes(root, PD_KEY_LEN) != 1) {
            OPENSSL_cleanse(pass, sizeof(pass));
            return PD_ERR_CRYPTO;
        }
        r = pd_keyfile_write(keyfile, root, pass, strlen(pass));
        OPENSSL_cleanse(pass, sizeof(pass));
        if (r != 0)
            snprintf(err, errcap, "cannot write %s", keyfile);
        *created = r == 0;
        return r;
    }
    r = pd_keyfile_read(keyfile, pass, strlen(pass), root, err, errcap);
    OPENSSL_cleanse(pass, sizeof(pass));
    return r;
}
