/* A credential that a vault secret can replace at run time (payd/cred.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "payd/cred.h"

#define VALUE_MAX 4096

struct pd_cred {
    pthread_mutex_t mu;
    pd_secret_source_t src; /* fetch == NULL: static */
    bool watching;
    char name[256];
    char user[PD_CRED_USER_MAX];
    char password[PD_CRED_PASSWORD_MAX + 1];
    bool has_password;
    uint64_t gen;
};

int
pd_cred_parse(pd_view_t value, char *user, size_t ucap, char *password, size_t pcap)
{
    const uint8_t *nl = value.len > 0 ? memchr(value.p, '\n', value.len) : NULL;
    size_t ulen = nl != NULL ? (size_t)(nl - value.p) : 0;
    size_t off = nl != NULL ? ulen + 1 : 0;
    size_t plen = value.len - off;
    if (memchr(value.p, '\0', value.len) != NULL || plen == 0 || plen >= pcap ||
        (nl != NULL && (ulen == 0 || ulen >= ucap)) || memchr(value.p + off, '\n', plen) != NULL)
        return PD_ERR_INVALID;
    memcpy(user, value.p, ulen);
    user[ulen] = '\0';
    memcpy(password, value.p + off, plen);
    password[plen] = '\0';
    return 0;
}

static pd_cred_t *
alloc_cred(void)
{
    pd_cred_t *c = calloc(1, sizeof(*c));
    if (c != NULL)
        pthread_mutex_init(&c->mu, NULL);
    return c;
}

int
pd_cred_new_static(pd_cred_t **out, const char *password)
{
    pd_cred_t *c = alloc_cred();
    if (c == NULL)
        return PD_ERR_NOMEM;
    if (password != NULL) {
        if (strlen(password) > PD_CRED_PASSWORD_MAX) {
            pd_cred_free(c);
            return PD_ERR_TOOBIG;
        }
        snprintf(c->password, sizeof(c->password), "%s", password);
        c->has_password = true;
    }
    *out = c;
    return 0;
}

/* value -> the credential, under c->mu */
static int
set_value(pd_cred_t *c, pd_view_t value)
{
    char user[PD_CRED_USER_MAX], pw[PD_CRED_PASSWORD_MAX + 1];
    int r = pd_cred_parse(value, user, sizeof(user), pw, sizeof(pw));
    if (r == 0) {
        OPENSSL_cleanse(c->password, sizeof(c->password));
        memcpy(c->user, user, sizeof(user));
        memcpy(c->password, pw, sizeof(pw));
        c->has_password = true;
        c->gen++;
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    return r;
}

static int
fetch(pd_cred_t *c, char *why, size_t whycap)
{
    pd_buf_t v;
    char w[512] = "";
    pd_buf_init(&v, VALUE_MAX);
    int r = c->src.fetch(c->src.arg, c->name, &v, w, sizeof(w));
    if (r == 0) {
        pthread_mutex_lock(&c->mu);
        r = set_value(c, pd_buf_view(&v));
        pthread_mutex_unlock(&c->mu);
        if (r != 0)
            snprintf(w, sizeof(w), "the value of secret %s is not a password or \"USER\\nPASSWORD\"", c->name);
    }
    pd_buf_free_secure(&v);
    if (r != 0 && why != NULL && whycap > 0)
        snprintf(why, whycap, "%s", w[0] != '\0' ? w : pd_strerror(r));
    return r;
}

static void
changed(void *arg, pd_view_t value)
{
    pd_cred_t *c = arg;
    pthread_mutex_lock(&c->mu);
    (void)set_value(c, value); /* a malformed value keeps the one in use; the next refusal fetches again */
    pthread_mutex_unlock(&c->mu);
}

int
pd_cred_new_secret(pd_cred_t **out, const pd_secret_source_t *src, const char *name, char *why, size_t whycap)
{
    if (src == NULL || src->fetch == NULL) {
        snprintf(why, whycap, "no vault to read secret %s from", name);
        return PD_ERR_CONFIG;
    }
    if (strlen(name) >= sizeof(((pd_cred_t *)0)->name)) {
        snprintf(why, whycap, "the secret name is longer than 255 bytes");
        return PD_ERR_CONFIG;
    }
    pd_cred_t *c = alloc_cred();
    if (c == NULL)
        return PD_ERR_NOMEM;
    c->src = *src;
    snprintf(c->name, sizeof(c->name), "%s", name);
    int r = fetch(c, why, whycap);
    if (r == 0 && src->watch != NULL) {
        if ((r = src->watch(src->arg, name, changed, c)) == 0)
            c->watching = true;
        else
            snprintf(why, whycap, "cannot watch secret %s for rotations: %s", name, pd_strerror(r));
    }
    if (r != 0) {
        pd_cred_free(c);
        return r;
    }
    *out = c;
    return 0;
}

void
pd_cred_free(pd_cred_t *c)
{
    if (c == NULL)
        return;
    if (c->watching && c->src.unwatch != NULL)
        c->src.unwatch(c->src.arg, c);
    pthread_mutex_destroy(&c->mu);
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}

int
pd_cred_get(pd_cred_t *c, char *user, size_t ucap, char *password, size_t pcap, bool *has_password, uint64_t *gen)
{
    int r = 0;
    pthread_mutex_lock(&c->mu);
    if (strlen(c->user) >= ucap || strlen(c->password) >= pcap) {
        r = PD_ERR_TOOBIG;
    } else {
        snprintf(user, ucap, "%s", c->user);
        snprintf(password, pcap, "%s", c->password);
        *has_password = c->has_password;
        if (gen != NULL)
            *gen = c->gen;
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

int
pd_cred_refresh(pd_cred_t *c, uint64_t gen)
{
    if (c->src.fetch == NULL)
        return PD_ERR_STATE;
    pthread_mutex_lock(&c->mu);
    bool newer = c->gen != gen;
    pthread_mutex_unlock(&c->mu);
    if (newer)
        return 0; /* a rotation's value arrived since that login was tried */
    return fetch(c, NULL, 0);
}

bool
pd_cred_is_secret(const pd_cred_t *c)
{
    return c != NULL && c->src.fetch != NULL;
}

const char *
pd_cred_secret_name(const pd_cred_t *c)
{
    return c != NULL ? c->name : "";
}
