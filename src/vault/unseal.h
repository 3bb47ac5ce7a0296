/* Obtaining the root key at vault start. */
#ifndef PAYD_VAULT_UNSEAL_H
#define PAYD_VAULT_UNSEAL_H

#include <stdbool.h>

#include "payd/vault_crypto.h"

typedef struct {
    const char *dir;             /* vault state directory (root.key, vault.db) */
    const char *passphrase_file; /* NULL: PAYD_VAULT_PASSPHRASE or $CREDENTIALS_DIRECTORY/vault-passphrase */
    bool dev;                    /* generate a passphrase on first start */
    bool init;                   /* create a new key file when none exists */
    const char *const *shares;   /* Shamir shares instead of a key file */
    int nshares;
} pd_unseal_opts_t;

/* Fills root. *created tells that a new root key was made (a new vault). err gets a
 * message an operator can act on. */
int pd_unseal(const pd_unseal_opts_t *o, uint8_t root[PD_KEY_LEN], bool *created, char *err, size_t errcap);

#endif
