/* Core dumps off, not dumpable, and dropping root for the vault's user (privs.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "payd/privsep.h"
#include "vault/privs.h"

#define NOBODY_UID 65534

static int
fail_errno(char *err, size_t errcap, const char *what, const char *path)
{
    int e = errno != 0 ? errno : EIO;
    snprintf(err, errcap, "%s%s%s: %s", what, path != NULL ? " " : "", path != NULL ? path : "", strerror(e));
    return -e;
}

int
pd_vault_harden(char *err, size_t errcap)
{
    struct rlimit no = {0, 0}, now;
    if (setrlimit(RLIMIT_CORE, &no) != 0)
        return fail_errno(err, errcap, "cannot turn core dumps off (setrlimit RLIMIT_CORE)", NULL);
    if (getrlimit(RLIMIT_CORE, &now) != 0 || now.rlim_cur != 0 || now.rlim_max != 0) {
        snprintf(err, errcap, "core dumps are still allowed after setrlimit RLIMIT_CORE");
        return PD_ERR_PERM;
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        return fail_errno(err, errcap, "cannot make the process non-dumpable (prctl PR_SET_DUMPABLE)", NULL);
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) {
        snprintf(err, errcap, "the process is still dumpable after prctl PR_SET_DUMPABLE");
        return PD_ERR_PERM;
    }
    return 0;
}

int
pd_vault_chown_tree(const char *dir, uid_t uid, gid_t gid, char *err, size_t errcap)
{
    return pd_privsep_chown_tree(dir, uid, gid, NULL, err, errcap);
}

int
pd_vault_drop_privileges(const char *user, const char *dir, char *err, size_t errcap)
{
    if (geteuid() != 0 || user == NULL || user[0] == '\0')
        return 0;
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        if (errno != 0)
            return fail_errno(err, errcap, "cannot look up the user", user);
        snprintf(err, errcap, "no such user: %s", user);
        return PD_ERR_CONFIG;
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    if (uid == 0) {
        snprintf(err, errcap, "the vault's user must not be root (%s has uid 0)", user);
        return PD_ERR_CONFIG;
    }
    /* every service of the host may run as nobody: the vault's files and socket would
     * be theirs too */
    if (uid == NOBODY_UID || strcmp(user, "nobody") == 0) {
        snprintf(err, errcap, "the vault's user must not be nobody (uid %u): use a dedicated user such as payd-vault",
                 (unsigned)uid);
        return PD_ERR_CONFIG;
    }
    int r = pd_vault_chown_tree(dir, uid, gid, err, errcap);
    if (r != 0)
        return r;
    if (setgroups(0, NULL) != 0)
        return fail_errno(err, errcap, "cannot drop the supplementary groups (setgroups)", NULL);
    if (setresgid(gid, gid, gid) != 0)
        return fail_errno(err, errcap, "cannot change the group (setresgid)", NULL);
    /* nothing the vault could execute may gain a capability back */
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
            return fail_errno(err, errcap, "cannot empty the capability bounding set (prctl PR_CAPBSET_DROP)", NULL);
    if (setresuid(uid, uid, uid) != 0)
        return fail_errno(err, errcap, "cannot change the user (setresuid)", user);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return fail_errno(err, errcap, "cannot set no_new_privs (prctl PR_SET_NO_NEW_PRIVS)", NULL);
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != uid || eu != uid || su != uid ||
        rg != gid || eg != gid || sg != gid || setuid(0) == 0 || setgid(0) == 0) {
        snprintf(err, errcap, "privileges were not dropped to %s", user);
        return PD_ERR_PERM;
    }
    /* a change of credentials makes the process dumpable again */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 || prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
        return fail_errno(err, errcap, "cannot make the process non-dumpable after dropping privileges (prctl)", NULL);
    return 0;
}
