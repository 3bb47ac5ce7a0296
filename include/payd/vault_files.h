/*
 * The modes of the vault's files, which both payd-vault (creating them, and refusing
 * to start past them) and payd (refusing to start past them) check. Nothing is for
 * other users: the vault's user owns every file, and the vault's group (its user's
 * primary group; payd's user is a member, see scripts/deps.sh) reaches only what
 * payd needs in socket mode: the api and processor credentials and the socket.
 */
#ifndef PAYD_VAULT_FILES_H
#define PAYD_VAULT_FILES_H

#include <string.h>
#include <sys/types.h>

#define PD_VAULT_DIR_MODE 0710       /* DIR and DIR/credentials: the group may pass, not list */
#define PD_VAULT_CRED_PAYD_MODE 0640 /* credentials/api and credentials/processor (payd) */
#define PD_VAULT_CRED_MODE 0600      /* credentials/admin and credentials/rotation (payctl as root) */
#define PD_VAULT_SOCKET_MODE 0660    /* vault.sock */

/* the most a principal's credential file (api, processor, admin, rotation) may grant */
static inline mode_t
pd_vault_cred_max(const char *principal)
{
    return strcmp(principal, "api") == 0 || strcmp(principal, "processor") == 0 ? PD_VAULT_CRED_PAYD_MODE
                                                                              : PD_VAULT_CRED_MODE;
}

#endif
