/*
 * [cache] password_secret: the Redis login from a vault secret, one credential for
 * the process (the cache's sync thread and the stream's link share it), counted by
 * reference. A refused password (WRONGPASS after a rotation this node has not heard
 * of yet) fetches the secret again and tries once more.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cache/internal.h"
#include "payd/cred.h"
#include "payd/log.h"

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static const pd_secret_source_t *g_src;
static pd_cred_t *g_cred;
static int g_refs;

void
pd_cache_set_secrets(const pd_secret_source_t *src)
{
    pthread_mutex_lock(&g_mu);
    g_src = src;
    pthread_mutex_unlock(&g_mu);
}

int
pd_rcred_acquire(const pd_cache_config_t *cfg, pd_cred_t **out, char *err, size_t cap)
{
    char why[512] = "";
    int r = 0;
    *out = NULL;
    if (cfg->password_secret == NULL || cfg->password_secret[0] == '\0')
        return 0;
    if (cfg->password_file != NULL && cfg->password_file[0] != '\0') {
        snprintf(err, cap, "[cache] password_secret and password_file are both set; keep one");
        return PD_ERR_CONFIG;
    }
    pthread_mutex_lock(&g_mu);
    if (g_cred == NULL && (r = pd_cred_new_secret(&g_cred, g_src, cfg->password_secret, why, sizeof(why))) != 0)
        snprintf(err, cap, "[cache] password_secret: cannot read the Redis password from the vault: %s", why);
    if (r == 0) {
        g_refs++;
        *out = g_cred;
    }
    pthread_mutex_unlock(&g_mu);
    return r != 0 ? PD_ERR_CONFIG : 0;
}

void
pd_rcred_release(pd_cred_t *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&g_mu);
    if (c == g_cred && --g_refs == 0) {
        pd_cred_free(g_cred);
        g_cred = NULL;
    }
    pthread_mutex_unlock(&g_mu);
}

/* the credential into u: its user when the value names one, its password */
static int
apply(pd_cred_t *c, pd_rurl_t *u, uint64_t *gen)
{
    char user[PD_CRED_USER_MAX], pw[PD_CRED_PASSWORD_MAX + 1];
    bool has = false;
    int r = pd_cred_get(c, user, sizeof(user), pw, sizeof(pw), &has, gen);
    size_t ul = r == 0 ? strlen(user) : 0, pl = r == 0 ? strlen(pw) : 0;
    if (r == 0 && (ul >= sizeof(u->user) || pl >= sizeof(u->password)))
        r = PD_ERR_TOOBIG;
    if (r == 0) {
        if (ul > 0)
            memcpy(u->user, user, ul + 1);
        OPENSSL_cleanse(u->password, sizeof(u->password));
        memcpy(u->password, pw, pl + 1);
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    return r;
}

int
pd_rcred_connect(pd_rconn_t *c, pd_rurl_t *u, pd_cred_t *cred, SSL_CTX *ctx, int timeout_ms, bool *fatal, char *err,
                 size_t cap)
{
    int r;
    for (int attempt = 0;; attempt++) {
        uint64_t gen = 0;
        if (cred != NULL && (r = apply(cred, u, &gen)) != 0) {
            snprintf(err, cap, "[cache] password_secret: the value does not fit a Redis user and password");
            *fatal = true;
            return r;
        }
        *fatal = false;
        r = pd_rmaster_connect(c, u, ctx, timeout_ms, fatal, err, cap);
        if (r == 0 || cred == NULL || !pd_cred_is_secret(cred) || attempt > 0 || strstr(err, "WRONGPASS") == NULL)
            return r;
        pd_log_warn("redis refused the password: fetching the secret again", PD_LS("secret", pd_cred_secret_name(cred)),
                    PD_LS("reply", "WRONGPASS"));
        if (pd_cred_refresh(cred, gen) != 0)
            return r;
    }
}
