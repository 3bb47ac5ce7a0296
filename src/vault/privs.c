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

#include "vault/privs.h"

#define CHOWN_MAX_DEPTH 32

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

/* chowns every entry of the open directory dfd (path: for messages), depth first */
static int
chown_below(int dfd, const char *path, uid_t uid, gid_t gid, int depth, char *err, size_t errcap)
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
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
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
        r = chown_below(cfd, sub, uid, gid, depth + 1, err, errcap);
        close(cfd);
        if (r != 0)
            break;
    }
    closedir(d);
    return r;
}

int
pd_vault_chown_tree(const char *dir, uid_t uid, gid_t gid, char *err, size_t errcap)
{
    /* dir itself is the operator's path (it may be a link to where the state lives) */
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return fail_errno(err, errcap, "cannot open", dir);
    int r = 0;
    if (fchown(fd, uid, gid) != 0)
        r = fail_errno(err, errcap, "cannot chown", dir);
    else
        r = chown_below(fd, dir, uid, gid, 0, err, errcap);
    close(fd);
    return r;
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
    int r = pd_vault_chown_tree(dir, uid, gid, err, errcap);
    if (r != 0)
        return r;
    if (setgroups(0, NULL) != 0)
        return fail_errno(err, errcap, "cannot drop the supplementary groups (setgroups)", NULL);
    if (setresgid(gid, gid, gid) != 0)
        return fail_errno(err, errcap, "cannot change the group (setresgid)", NULL);
    if (setresuid(uid, uid, uid) != 0)
        return fail_errno(err, errcap, "cannot change the user (setresuid)", user);
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
