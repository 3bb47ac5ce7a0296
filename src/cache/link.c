/* One blocking Redis connection for other components (payd/redis_link.h), over conn.c and sentinel.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cache/internal.h"
#include "payd/redis_link.h"

struct pd_rlink {
    pd_rurl_t url;
    struct pd_cred *cred; /* [cache] password_secret, with pd_rlink_use_cache_secret */
    SSL_CTX *tls;
    pd_rconn_t conn;
    bool up;
    int timeout_ms;
};

int
pd_rlink_new(pd_rlink_t **out, const char *url, const char *tls_ca, const char *password_file, int timeout_ms,
             char *err, size_t cap)
{
    int r;
    *out = NULL;
    pd_rlink_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return PD_ERR_NOMEM;
    l->conn.fd = -1;
    l->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    if (url == NULL || url[0] == '\0') {
        snprintf(err, cap, "no Redis url");
        r = PD_ERR_CONFIG;
        goto fail;
    }
    if ((r = pd_rurl_parse(&l->url, url, err, cap)) != 0)
        goto fail;
    if (password_file != NULL && password_file[0] != '\0' &&
        (r = pd_rpassword_file(password_file, l->url.password, sizeof(l->url.password), err, cap)) != 0)
        goto fail;
    if (l->url.kind == PD_RURL_TLS && (r = pd_rconn_tls_ctx(&l->tls, tls_ca, err, cap)) != 0)
        goto fail;
    *out = l;
    return 0;
fail:
    pd_rlink_free(l);
    return r;
}

int
pd_rlink_new_login(pd_rlink_t **out, const char *url, const char *tls_ca, const char *user, const char *password,
                   int timeout_ms, char *err, size_t cap)
{
    int r = pd_rlink_new(out, url, tls_ca, NULL, timeout_ms, err, cap);
    if (r != 0)
        return r;
    pd_rurl_t *u = &(*out)->url;
    if ((user != NULL && strlen(user) >= sizeof(u->user)) || (password != NULL && strlen(password) >= sizeof(u->password))) {
        snprintf(err, cap, "the Redis user name or password is too long");
        pd_rlink_free(*out);
        *out = NULL;
        return PD_ERR_TOOBIG;
    }
    if (user != NULL && user[0] != '\0')
        snprintf(u->user, sizeof(u->user), "%s", user);
    if (password != NULL)
        snprintf(u->password, sizeof(u->password), "%s", password);
    return 0;
}

int
pd_rlink_use_cache_secret(pd_rlink_t *l, char *err, size_t cap)
{
    const pd_cache_config_t *cc = pd_cache_config();
    if (cc == NULL || l->cred != NULL)
        return 0;
    return pd_rcred_acquire(cc, &l->cred, err, cap);
}

void
pd_rlink_free(pd_rlink_t *l)
{
    if (l == NULL)
        return;
    pd_rlink_drop(l);
    SSL_CTX_free(l->tls);
    pd_rcred_release(l->cred);
    OPENSSL_cleanse(l->url.password, sizeof(l->url.password));
    free(l);
}

int
pd_rlink_connect(pd_rlink_t *l, bool *fatal, char *err, size_t cap)
{
    bool f = false;
    if (l->up)
        return 0;
    int r = pd_rcred_connect(&l->conn, &l->url, l->cred, l->tls, l->timeout_ms, &f, err, cap);
    if (fatal != NULL)
        *fatal = f;
    l->up = r == 0;
    return r;
}

bool
pd_rlink_connected(const pd_rlink_t *l)
{
    return l != NULL && l->up;
}

void
pd_rlink_drop(pd_rlink_t *l)
{
    if (l == NULL)
        return;
    pd_rconn_close(&l->conn);
    l->up = false;
}

const char *
pd_rlink_peer(const pd_rlink_t *l)
{
    return l != NULL && l->up ? l->conn.peer : "";
}

int
pd_rlink_append(pd_rlink_t *l, int argc, const char **argv, const size_t *lens)
{
    if (!l->up)
        return PD_ERR_STATE;
    return pd_rconn_append(&l->conn, argc, argv, lens);
}

int
pd_rlink_flush(pd_rlink_t *l)
{
    if (!l->up)
        return PD_ERR_STATE;
    int r = pd_rconn_flush(&l->conn);
    if (r != 0)
        pd_rlink_drop(l);
    return r;
}

int
pd_rlink_read(pd_rlink_t *l, redisReply **out)
{
    *out = NULL;
    if (!l->up)
        return PD_ERR_STATE;
    int r = pd_rconn_read(&l->conn, out);
    if (r != 0)
        pd_rlink_drop(l);
    return r;
}

int
pd_rlink_cmd(pd_rlink_t *l, redisReply **out, int argc, const char **argv)
{
    *out = NULL;
    if (!l->up)
        return PD_ERR_STATE;
    int r = pd_rconn_cmd(&l->conn, out, argc, argv);
    if (r != 0)
        pd_rlink_drop(l);
    return r;
}
