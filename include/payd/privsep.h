/*
 * Privilege separation helpers for processes started as root: looking up the system
 * users payd runs as, dropping root and every capability for good, handing a
 * directory tree to a user, and checking the modes of files that only some users
 * may read. Each returns 0 or a PD_ERR_* / -errno code with a message in err that
 * names the user, file or call that failed; the caller refuses to start.
 */
#ifndef PAYD_PRIVSEP_H
#define PAYD_PRIVSEP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "payd/error.h"

typedef struct {
    char name[64];
    uid_t uid;
    gid_t gid; /* primary group */
} pd_privsep_user_t;

/* Looks up the system user name (role says what it is for, for messages). Refuses a
 * missing user (the message gives the command that creates it: create_cmd), root,
 * and nobody (uid 65534 or the name): every service of a host may share nobody. */
int pd_privsep_user(const char *name, const char *role, const char *create_cmd, pd_privsep_user_t *u, char *err,
                    size_t errcap) PD_WUR;

/* Whether user u is a member (primary or supplementary) of group gid. */
bool pd_privsep_in_group(const pd_privsep_user_t *u, gid_t gid);

/* Switches a root process to u for good: u's groups (initgroups), gid, uid (real,
 * effective and saved), an empty capability bounding set, no ambient capabilities,
 * no_new_privs, and not dumpable. Then checks it: every id is u's, root cannot be
 * regained, and the effective, permitted and inheritable capability sets are empty.
 * Call it before any thread is created (the bounding set and no_new_privs are per
 * thread). */
int pd_privsep_drop(const pd_privsep_user_t *u, char *err, size_t errcap) PD_WUR;

/* chown -R dir to uid:gid without following symbolic links below dir (a link is
 * changed itself, never what it points to; no directory is entered through one). A
 * non-directory with more than one hard link is refused (PD_ERR_PERM): chowning it
 * would hand over a file that also lives outside dir. An entry of dir itself named
 * skip (NULL: none) is left alone with everything below it. Stops at the first
 * failure. */
int pd_privsep_chown_tree(const char *dir, uid_t uid, gid_t gid, const char *skip, char *err, size_t errcap) PD_WUR;

/* Checks that path (not followed if it is a link) grants nothing beyond the mode bits
 * in max (e.g. 0640: group read at most, nothing for others) and, unless owner is
 * (uid_t)-1, belongs to owner. -ENOENT when it does not exist (no message); otherwise
 * PD_ERR_PERM with a message that names the file, its mode and the chmod that fixes it. */
int pd_privsep_check_mode(const char *path, uid_t owner, mode_t max, char *err, size_t errcap) PD_WUR;

#endif
