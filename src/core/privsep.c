/* Dropping root for payd's system users, handing trees over, checking modes (privsep.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "payd/privsep.h"

#define CHOWN_MAX_DEPTH 32
#define NOBODY_UID 65534
#define MAX_GROUPS 256

static int
fail_errno(char *err, size_t errcap, const char *what, const char *path)
{
    int e = errno != 0 ? errno : EIO;
    snprintf(err, errcap, "%s%s%s: %s", what, path != NULL ? " " : "", path != NULL ? path : "", strerror(e));
    return -e;
}

int
pd_privsep_user(const char *name, const char *role, const char *create_cmd, pd_privsep_user_t *u, char *err,
                size_t errcap)
{
    if (name == NULL || name[0] == '\0' || strlen(name) >= sizeof(u->name)) {
        snprintf(err, errcap, "%s: a user name is required (1 to %zu characters)", role, sizeof(u->name) - 1);
        return PD_ERR_CONFIG;
    }
    if (strcmp(name, "nobody") == 0) {
        snprintf(err, errcap, "%s must not be nobody: every service of the host may run as nobody and would "
                              "share its files; use a dedicated user", role);
        return PD_ERR_CONFIG;
    }
    errno = 0;
    struct passwd *pw = getpwnam(name);
    if (pw == NULL) {
        if (errno != 0 && errno != ENOENT && errno != ESRCH)
            return fail_errno(err, errcap, "cannot look up the user", name);
        snprintf(err, errcap, "there is no user %s (%s); create it with: %s (scripts/deps.sh does); "
                              "payd creates no user itself", name, role, create_cmd);
        return PD_ERR_CONFIG;
    }
    if (pw->pw_uid == 0 || pw->pw_uid == NOBODY_UID) {
        snprintf(err, errcap, "%s must be a dedicated user, not %s (uid %u)", role, name, (unsigned)pw->pw_uid);
        return PD_ERR_CONFIG;
    }
    snprintf(u->name, sizeof(u->name), "%s", name);
    u->uid = pw->pw_uid;
    u->gid = pw->pw_gid;
    return 0;
}

bool
pd_privsep_in_group(const pd_privsep_user_t *u, gid_t gid)
{
    gid_t groups[MAX_GROUPS];
    int n = MAX_GROUPS;
    if (u->gid == gid)
        return true;
    if (getgrouplist(u->name, u->gid, groups, &n) < 0)
        return false;
    for (int i = 0; i < n; i++)
        if (groups[i] == gid)
            return true;
    return false;
}

/* the effective, permitted and inheritable sets are all empty */
static bool
no_capabilities(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
    memset(d, 0xff, sizeof(d));
    if (syscall(SYS_capget, &h, d) != 0)
        return false;
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
        if (d[i].effective != 0 || d[i].permitted != 0 || d[i].inheritable != 0)
            return false;
    return true;
}

int
pd_privsep_drop(const pd_privsep_user_t *u, char *err, size_t errcap)
{
    int r = PD_ERR_PERM, pdeath = 0;
    /* a change of user clears the parent-death signal; whoever started payd asked for it */
    if (prctl(PR_GET_PDEATHSIG, &pdeath, 0, 0, 0) != 0)
        return fail_errno(err, errcap, "cannot read the parent-death signal (prctl PR_GET_PDEATHSIG)", NULL);
    if (initgroups(u->name, u->gid) != 0)
        return fail_errno(err, errcap, "cannot set the groups of", u->name);
    if (setresgid(u->gid, u->gid, u->gid) != 0)
        return fail_errno(err, errcap, "cannot change the group (setresgid) for", u->name);
    /* the bounding set, while CAP_SETPCAP is still held: nothing executed later can
     * gain a capability back, not even a file with capabilities */
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
            return fail_errno(err, errcap, "cannot empty the capability bounding set (prctl PR_CAPBSET_DROP)", NULL);
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return fail_errno(err, errcap, "cannot clear the ambient capabilities (prctl PR_CAP_AMBIENT)", NULL);
    /* from root to a non-zero uid (no SECBIT_KEEP_CAPS): the kernel empties the
     * permitted and effective sets */
    if (setresuid(u->uid, u->uid, u->uid) != 0)
        return fail_errno(err, errcap, "cannot change the user (setresuid) to", u->name);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return fail_errno(err, errcap, "cannot set no_new_privs (prctl PR_SET_NO_NEW_PRIVS)", NULL);
    if (pdeath != 0 && prctl(PR_SET_PDEATHSIG, pdeath, 0, 0, 0) != 0)
        return fail_errno(err, errcap, "cannot restore the parent-death signal (prctl PR_SET_PDEATHSIG)", NULL);
    /* a change of credentials makes the process dumpable again */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 || prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
        return fail_errno(err, errcap, "cannot make the process non-dumpable after the switch (prctl)", NULL);
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != u->uid || eu != u->uid ||
        su != u->uid || rg != u->gid || eg != u->gid || sg != u->gid || setuid(0) == 0 || setgid(0) == 0) {
        snprintf(err, errcap, "privileges were not dropped to %s", u->name);
        goto out;
    }
    if (!no_capabilities()) {
        snprintf(err, errcap, "capabilities remain after switching to %s", u->name);
        goto out;
    }
    r = 0;
out:
    return r;
}

/* chowns every entry of the open directory dfd (path: for messages), depth first */
static int
chown_below(int dfd, const char *path, uid_t uid, gid_t gid, const char *skip, int depth, char *err, size_t errcap)
{
    char sub[4096];
    if (depth > CHOWN_MAX_DEPTH) {
        snprintf(err, errcap, "%s: more than %d directories deep", path, CHOWN_MAX_DEPTH);
        return PD_ERR_TOOBIG;
    }
    int dup_fd = dup(dfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (d == NULL) {
        int r = fail_errno(err, errcap, "cannot read the directory", path);
        if (dup_fd >= 0)
            close(dup_fd);
        return r;
    }
    int r = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            if (errno != 0)
                r = fail_errno(err, errcap, "cannot read the directory", path);
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            (skip != NULL && strcmp(e->d_name, skip) == 0))
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            r = fail_errno(err, errcap, "cannot stat", sub);
            break;
        }
        if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
            snprintf(err, errcap, "refusing to chown %s: it has %ju hard links (it also lives outside the directory)",
                     sub, (uintmax_t)st.st_nlink);
            r = PD_ERR_PERM;
            break;
        }
        /* a symbolic link is changed itself, never what it points to */
        if (fchownat(dfd, e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
            r = fail_errno(err, errcap, "cannot chown", sub);
            break;
        }
        if (!S_ISDIR(st.st_mode))
            continue;
        /* O_NOFOLLOW: a directory swapped for a link since the fstatat is not entered */
        int cfd = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0) {
            r = fail_errno(err, errcap, "cannot open the directory", sub);
            break;
        }
        r = chown_below(cfd, sub, uid, gid, NULL, depth + 1, err, errcap);
        close(cfd);
        if (r != 0)
            break;
    }
    closedir(d);
    return r;
}

int
pd_privsep_chown_tree(const char *dir, uid_t uid, gid_t gid, const char *skip, char *err, size_t errcap)
{
    /* dir itself is the operator's path (it may be a link to where the state lives) */
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return fail_errno(err, errcap, "cannot open", dir);
    int r = 0;
    if (fchown(fd, uid, gid) != 0)
        r = fail_errno(err, errcap, "cannot chown", dir);
    else
        r = chown_below(fd, dir, uid, gid, skip, 0, err, errcap);
    close(fd);
    return r;
}

int
pd_privsep_check_mode(const char *path, uid_t owner, mode_t max, char *err, size_t errcap)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return -ENOENT;
        return fail_errno(err, errcap, "cannot stat", path);
    }
    mode_t mode = st.st_mode & 07777;
    if ((mode & ~max) != 0) {
        snprintf(err, errcap, "%s has mode %04o, which lets more users in than it may (at most %04o); "
                              "fix it with: chmod %04o %s", path, (unsigned)mode, (unsigned)max,
                 (unsigned)(mode & max), path);
        return PD_ERR_PERM;
    }
    if (owner != (uid_t)-1 && st.st_uid != owner) {
        snprintf(err, errcap, "%s belongs to uid %u, not to uid %u", path, (unsigned)st.st_uid, (unsigned)owner);
        return PD_ERR_PERM;
    }
    return 0;
}
