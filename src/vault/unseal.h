/* Obtaining the root key at vault start. */
#ifndef PAYD_VAULT_UNSEAL_H
#define PAYD_VAULT_UNSEAL_H

#include <stdbool.h>

#include "payd/vault_crypto.h"

/* A root key wrapped by an AES key inside a PKCS#11 token (pkcs11.c). */
typedef struct {
    const char *module;    /* the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so */
    const char *token;     /* token label */
    const char *key_label; /* the wrapping key's label in the token */
    const char *pin_file;  /* NULL: PAYD_VAULT_PKCS11_PIN */
} pd_p11_opts_t;

/* Makes a new root key, wrapped by the token's key (generated in the token if it has
 * none by that label), written to path. */
int pd_p11_wrap_new(const pd_p11_opts_t *o, const char *path, uint8_t root[PD_KEY_LEN], char *err, size_t errcap);
/* Unwraps the root key in path through the token. PD_ERR_AUTH: wrong PIN or the file
 * was altered or wrapped by another key. */
int pd_p11_unwrap(const pd_p11_opts_t *o, const char *path, uint8_t root[PD_KEY_LEN], char *err, size_t errcap);

typedef struct {
    const char *dir;             /* vault state directory (root.key, vault.db) */
    const char *passphrase_file; /* NULL: PAYD_VAULT_PASSPHRASE or $CREDENTIALS_DIRECTORY/vault-passphrase */
    bool dev;                    /* generate a passphrase on first start */
    bool init;                   /* create a new key file when none exists */
    const char *const *shares;   /* Shamir shares instead of a key file */
    int nshares;
    const pd_p11_opts_t *p11;    /* a PKCS#11 token instead of a passphrase (DIR/root.p11) */
} pd_unseal_opts_t;

/* Fills root. *created tells that a new root key was made (a new vault). err gets a
 * message an operator can act on. */
int pd_unseal(const pd_unseal_opts_t *o, uint8_t root[PD_KEY_LEN], bool *created, char *err, size_t errcap);

#endif
