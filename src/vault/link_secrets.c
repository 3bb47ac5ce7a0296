/*
 * The vault link as a source of secrets (payd/cred.h): [store] and [cache]
 * password_secret read their password here, and hear about rotations. A rotation's
 * notice (the vault sends it to every connected payd when CURRENT moves) makes the
 * link fetch the new value and hand it to each watcher of that secret, so every node
 * holds the new CURRENT before the rotation handler retires the old one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payd/cred.h"
#include "payd/log.h"
#include "payd/vault_spawn.h"

#define NWATCH (sizeof(((pd_vault_link_t *)0)->watch) / sizeof(((pd_vault_link_t *)0)->watch[0]))

static int
fetch(void *arg, const char *name, pd_buf_t *value, char *why, size_t whycap)
{
    pd_vault_link_t *l = arg;
    pd_vault_reply_t r;
    /* payd closes the link after the API and before the store: a store connection
     * made during the shutdown gets no new password (it keeps the one in force) */
    if (atomic_load(&l->closing) || l->api == NULL) {
        snprintf(why, whycap, "the vault is not connected");
        return PD_ERR_UNAVAILABLE;
    }
    int rc = pd_vault_secret_get_sync(l->api, name, &r);
    if (rc == 0 && (r.data.len == 0 || pd_buf_put(value, r.data.p, r.data.len) != 0))
        rc = r.data.len == 0 ? PD_ERR_INVALID : PD_ERR_TOOBIG;
    if (rc != 0)
        snprintf(why, whycap, "secret %s: %s", name, r.text[0] != '\0' ? r.text : pd_strerror(rc));
    pd_vault_reply_free(&r);
    return rc;
}

static int
watch(void *arg, const char *name, void (*fn)(void *carg, pd_view_t value), void *carg)
{
    pd_vault_link_t *l = arg;
    int r = PD_ERR_LIMIT;
    if (strlen(name) >= sizeof(l->watch[0].name))
        return PD_ERR_TOOBIG;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < NWATCH; i++)
        if (l->watch[i].fn == NULL) {
            snprintf(l->watch[i].name, sizeof(l->watch[i].name), "%s", name);
            l->watch[i].fn = fn;
            l->watch[i].carg = carg;
            r = 0;
            break;
        }
    pthread_mutex_unlock(&l->mu);
    return r;
}

static void
unwatch(void *arg, void *carg)
{
    pd_vault_link_t *l = arg;
    pthread_mutex_lock(&l->mu); /* a callback in progress holds mu: it is over once we have it */
    for (size_t i = 0; i < NWATCH; i++)
        if (l->watch[i].carg == carg)
            memset(&l->watch[i], 0, sizeof(l->watch[i]));
    pthread_mutex_unlock(&l->mu);
}

void
pd_vault_link_secrets(pd_vault_link_t *l, pd_secret_source_t *out)
{
    out->fetch = fetch;
    out->watch = watch;
    out->unwatch = unwatch;
    out->arg = l;
}

typedef struct {
    pd_vault_link_t *l;
    char name[256];
} pending_t;

/* on the client thread: the new CURRENT value, to each watcher of the secret */
static void
fetched(void *arg, int rc, const pd_vault_reply_t *r)
{
    pending_t *p = arg;
    pd_vault_link_t *l = p->l;
    if (rc != 0 || r->data.len == 0) {
        /* the watchers keep the value in use; a refused login fetches again */
        pd_log_error("cannot load a rotated secret", PD_LS("secret", p->name), PD_LERR(rc));
    } else {
        pthread_mutex_lock(&l->mu);
        for (size_t i = 0; i < NWATCH; i++)
            if (l->watch[i].fn != NULL && strcmp(l->watch[i].name, p->name) == 0)
                l->watch[i].fn(l->watch[i].carg, pd_buf_view(&r->data));
        pthread_mutex_unlock(&l->mu);
        pd_log_info("rotated secret loaded", PD_LS("secret", p->name));
    }
    free(p);
}

void
pd_vault_link_secret_changed(pd_vault_link_t *l, const char *name)
{
    bool wanted = false;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < NWATCH; i++)
        wanted = wanted || (l->watch[i].fn != NULL && strcmp(l->watch[i].name, name) == 0);
    pthread_mutex_unlock(&l->mu);
    if (!wanted || strlen(name) >= sizeof(((pending_t *)0)->name))
        return;
    pending_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        pd_log_error("cannot load a rotated secret", PD_LS("secret", name), PD_LERR(PD_ERR_NOMEM));
        return;
    }
    p->l = l;
    snprintf(p->name, sizeof(p->name), "%s", name);
    /* asynchronous: this runs on the client's own thread, which must not wait on itself */
    if (pd_vault_secret_get(l->api, name, fetched, p) != 0) {
        pd_log_error("cannot request a rotated secret", PD_LS("secret", name));
        free(p);
    }
}
