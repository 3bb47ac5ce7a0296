/* The WAL archive's segment keys (payd/backup_config.h): the vault's backup.key, as payd
 * asks for it from its checkpoint thread (a blocking call, never on an event loop). */
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "payd/backup_config.h"
#include "payd/vault.h"

int
pd_backup_wal_key(void *vault, uint8_t key[PD_WAL_KEY_LEN], uint8_t wrapped[PD_WAL_WRAPPED_LEN])
{
    pd_vault_reply_t rep;
    const char *text = NULL;
    int r = pd_vault_admin_sync(vault, "backup.key", PD_VIEW_LIT("{}"), &rep);
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
