/* The vault process's privileges: no core dumps, not dumpable, and the switch from
 * root to the vault's user (payd-vault only). Each returns 0 or an error with a
 * message in err that names the call that failed; the caller refuses to start. */
#ifndef PAYD_VAULT_PRIVS_H
#define PAYD_VAULT_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

#include "payd/error.h"

/* RLIMIT_CORE 0 and PR_SET_DUMPABLE 0 (no core file, no ptrace or /proc/PID/mem by
 * same-uid processes), both checked, and read back. */
int pd_vault_harden(char *err, size_t errcap) PD_WUR;

/* chown -R dir to uid:gid without following symbolic links below dir (a link is
 * changed itself, never what it points to; no directory is entered through one). A
 * non-directory with more than one hard link is refused (PD_ERR_PERM): chowning it
 * would hand over a file that also lives outside dir. Stops at the first failure. */
int pd_vault_chown_tree(const char *dir, uid_t uid, gid_t gid, char *err, size_t errcap) PD_WUR;

/* When running as root and user is given: hands dir (recursively) to user, drops the
 * supplementary groups, the group and the user, checks that root cannot be regained,
 * and makes the process non-dumpable again (setuid resets it). A no-op otherwise. */
int pd_vault_drop_privileges(const char *user, const char *dir, char *err, size_t errcap) PD_WUR;

#endif
