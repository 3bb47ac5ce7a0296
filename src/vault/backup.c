/* The backup data key, wrapped by the root key (vault/backup.h). */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "vault/backup.h"

_Static_assert(PD_BACKUP_KEY_LEN == PD_KEY_LEN, "one key size");
_Static_assert(PD_BACKUP_WRAPPED_LEN == PD_BACKUP_KEY_LEN + PD_GCM_NONCE + PD_GCM_TAG, "nonce | ct | tag");

int
pd_vault_backup_wrap(const uint8_t root[PD_KEY_LEN], uint8_t key[PD_BACKUP_KEY_LEN],
                     uint8_t wrapped[PD_BACKUP_WRAPPED_LEN])
{
    if (RAND_priv_bytes(key, PD_BACKUP_KEY_LEN) != 1)
        return PD_ERR_CRYPTO;
    int r = pd_aead_seal(root, (const uint8_t *)PD_BACKUP_AAD, strlen(PD_BACKUP_AAD), key, PD_BACKUP_KEY_LEN, wrapped);
    if (r != 0)
        OPENSSL_cleanse(key, PD_BACKUP_KEY_LEN);
    return r;
}

int
pd_vault_backup_unwrap(const uint8_t root[PD_KEY_LEN], pd_view_t wrapped, uint8_t key[PD_BACKUP_KEY_LEN])
{
    if (wrapped.len != PD_BACKUP_WRAPPED_LEN)
        return PD_ERR_INVALID;
    int r = pd_aead_open(root, (const uint8_t *)PD_BACKUP_AAD, strlen(PD_BACKUP_AAD), wrapped.p, wrapped.len, key);
    if (r != 0)
        OPENSSL_cleanse(key, PD_BACKUP_KEY_LEN);
    return r != 0 ? PD_ERR_AUTH : 0;
}
