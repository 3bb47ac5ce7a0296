/* The vault's part of backups (docs/backup.md): the backup data key under the root
 * key, and the consistent copy of vault.db. */
#ifndef PAYD_VAULT_BACKUP_H
#define PAYD_VAULT_BACKUP_H

#include "payd/backup.h"
#include "payd/vault_crypto.h"

/* A fresh data key into key and its copy wrapped by root (AAD PD_BACKUP_AAD) into wrapped. */
int pd_vault_backup_wrap(const uint8_t root[PD_KEY_LEN], uint8_t key[PD_BACKUP_KEY_LEN],
                         uint8_t wrapped[PD_BACKUP_WRAPPED_LEN]) PD_WUR;
/* The data key a wrapped key holds. PD_ERR_AUTH when root is not the key that wrapped
 * it (another vault, a changed byte); PD_ERR_INVALID for another length. */
int pd_vault_backup_unwrap(const uint8_t root[PD_KEY_LEN], pd_view_t wrapped, uint8_t key[PD_BACKUP_KEY_LEN]) PD_WUR;

#define PD_VAULT_SNAPSHOT_NAME PD_BACKUP_VAULT_SNAPSHOT

#endif
