/* The WAL archive's segment keys (payd/backup_config.h): the vault's backup.key, as payd
 * asks for it from its checkpoint thread (a blocking call, never on an event loop). */
#include <pthread.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "payd/backup_config.h"
#include "payd/vault.h"

/* the client the keys come from; held across a call, so that taking it away waits for it */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pd_vault_client_t *g_vault;

void
pd_backup_wal_key_source(pd_vault_client_t *vault)
{
    pthread_mutex_lock(&g_mu);
    g_vault = vault;
    pthread_mutex_unlock(&g_mu);
}

int
pd_backup_wal_key(void *arg, uint8_t key[PD_WAL_KEY_LEN], uint8_t wrapped[PD_WAL_WRAPPED_LEN])
{
    (void)arg;
    pd_vault_reply_t rep;
    const char *text = NULL;
    pthread_mutex_lock(&g_mu);
    if (g_vault == NULL) {
        pthread_mutex_unlock(&g_mu);
        return PD_ERR_UNAVAILABLE; /* payd is stopping: the next start goes on with the WAL */
    }
    int r = pd_vault_admin_sync(g_vault, "backup.key", PD_VIEW_LIT("{}"), &rep);
    pthread_mutex_unlock(&g_mu);
    json_t *js = r == 0 && pd_buf_cstr(&rep.data, &text) == 0 ? json_loads(text, 0, NULL) : NULL;
    const char *hex = json_string_value(json_object_get(js, "wrapped"));
    if (r == 0 && (hex == NULL || strlen(hex) != 2 * PD_WAL_WRAPPED_LEN || rep.data2.len != PD_WAL_KEY_LEN ||
                   pd_unhex(hex, strlen(hex), wrapped) != 0))
        r = PD_ERR_PROTOCOL;
    if (r == 0)
        memcpy(key, rep.data2.p, PD_WAL_KEY_LEN);
    json_decref(js);
    pd_vault_reply_free(&rep);
    return r;
}
