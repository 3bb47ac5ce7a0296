/* The PostgreSQL credential of the store: store.password_secret (a vault secret, the
 * production way: rotations are picked up) or store.password_file (read once). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "payd/cred.h"
#include "payd/log.h"
#include "store/internal.h"

int
pd_store_read_password(const char *path, char **out)
{
    char buf[PD_CRED_PASSWORD_MAX + 2];
    int r = PD_ERR_CONFIG;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        pd_log_error("cannot read the database password file", PD_LS("path", path), PD_LS("error", strerror(errno)),
                     PD_LS("setting", "store.password_file"));
        return PD_ERR_CONFIG;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    bool more = n == sizeof(buf) - 1;
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    if (more || n == 0 || memchr(buf, '\0', n) != NULL || memchr(buf, '\n', n) != NULL)
        pd_log_error(more ? "the database password file is too long" : "the database password file holds no one-line password",
                     PD_LS("path", path), PD_LS("setting", "store.password_file"));
    else if ((*out = strdup(buf)) == NULL)
        r = PD_ERR_NOMEM;
    else
        r = 0;
    OPENSSL_cleanse(buf, sizeof(buf));
    return r;
}

/* store.password_file as a fixed credential */
static int
read_password(const char *path, pd_cred_t **out)
{
    char *pw = NULL;
    int r = pd_store_read_password(path, &pw);
    if (r == 0) {
        r = pd_cred_new_static(out, pw);
        OPENSSL_cleanse(pw, strlen(pw));
        free(pw);
    }
    return r;
}

int
pd_store_cred_open(const pd_store_config_t *c, pd_cred_t **out, const char **setting)
{
    char why[512];
    bool secret = c->password_secret != NULL && c->password_secret[0] != '\0';
    bool file = c->password_file != NULL && c->password_file[0] != '\0';
    if (secret && file) {
        pd_log_error("cannot open the store: store.password_secret and store.password_file are both set; keep one",
                     PD_LS("setting", "store.password_secret"));
        return PD_ERR_CONFIG;
    }
    if (secret) {
        *setting = "store.password_secret";
        int r = pd_cred_new_secret(out, c->secrets, c->password_secret, why, sizeof(why));
        if (r != 0)
            pd_log_error("cannot open the store: cannot read the database password from the vault",
                         PD_LS("secret", c->password_secret), PD_LS("reason", why),
                         PD_LS("setting", "store.password_secret"));
        return r != 0 ? PD_ERR_CONFIG : 0;
    }
    if (file) {
        *setting = "store.password_file";
        return read_password(c->password_file, out);
    }
    *setting = "store.url";
    return pd_cred_new_static(out, NULL);
}
