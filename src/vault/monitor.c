/* The vault's privileged parent: starts and reaps payd-vault for payd (monitor.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vault/monitor.h"

enum { MSG_SPAWNED = 1, MSG_FAILED = 2, MSG_EXITED = 3 };
#define MSG_LEN 12
#define REQ_SPAWN 'S'
#define CTL_FD 3

static volatile sig_atomic_t g_child_exited;

static void
on_sigchld(int sig)
{
    (void)sig;
    g_child_exited = 1;
}

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int
send_msg(int fd, uint32_t type, int32_t pid, int32_t value, const int *fds, int nfds)
{
    uint8_t b[MSG_LEN];
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {b, sizeof(b)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    put32(b, type), put32(b + 4, (uint32_t)pid), put32(b + 8, (uint32_t)value);
    if (nfds > 0) {
        memset(&u, 0, sizeof(u));
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == MSG_LEN ? 0 : n < 0 ? -errno : PD_ERR_IO;
}

/* one message; descriptors that came with it go to fds (up to 2, the rest closed) */
static int
recv_msg(int fd, int timeout_ms, uint32_t *type, int32_t *pid, int32_t *value, int fds[2], int *nfds)
{
    uint8_t b[MSG_LEN + 1];
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {b, sizeof(b)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, timeout_ms);
    *nfds = 0;
    if (r == 0 || (r < 0 && errno == EINTR))
        return 0;
    if (r < 0)
        return -errno;
    ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int got[4];
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        memcpy(got, CMSG_DATA(c), k * sizeof(int));
        for (size_t i = 0; i < k; i++) {
            if (*nfds < 2)
                fds[(*nfds)++] = got[i];
            else
                close(got[i]);
        }
    }
    if (n == 0)
        return PD_ERR_CLOSED;
    if (n != MSG_LEN || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0)
        return PD_ERR_PROTOCOL;
    *type = get32(b), *pid = (int32_t)get32(b + 4), *value = (int32_t)get32(b + 8);
    return 1;
}

static void
close_fds(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* in the parent: a vault with fresh socketpairs; the child's ends become its fds 3 and 4 */
static int
start_vault(char *const *argv, const char *traverse_dir, int out[2], pid_t *pid)
{
    int api[2], proc[2];
    if (traverse_dir != NULL && chmod(traverse_dir, 0711) != 0)
        return -errno;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, api) != 0)
        return -errno;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, proc) != 0) {
        int e = -errno;
        close(api[0]), close(api[1]);
        return e;
    }
    pid_t p = fork();
    if (p < 0) {
        int e = -errno;
        close(api[0]), close(api[1]), close(proc[0]), close(proc[1]);
        return e;
    }
    if (p == 0) {
        sigset_t none;
        sigemptyset(&none);
        signal(SIGCHLD, SIG_DFL), signal(SIGINT, SIG_DFL), signal(SIGHUP, SIG_DFL), signal(SIGUSR1, SIG_DFL),
            signal(SIGPIPE, SIG_DFL);
        /* above 4 first, so that placing one end cannot overwrite the other */
        int a = fcntl(api[1], F_DUPFD_CLOEXEC, 10), b = fcntl(proc[1], F_DUPFD_CLOEXEC, 10);
        if (a < 0 || b < 0 || dup2(a, 3) != 3 || dup2(b, 4) != 4 || sigprocmask(SIG_SETMASK, &none, NULL) != 0)
            _exit(126);
        prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    close(api[1]), close(proc[1]);
    out[0] = api[0], out[1] = proc[0];
    *pid = p;
    return 0;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* payd is gone or done: the vault ends with it (it exits when its descriptors close) */
static void
end_vault(pid_t vault)
{
    int st;
    for (int i = 0; vault > 0 && i < 500; i++) {
        if (waitpid(vault, &st, WNOHANG) != 0)
            return;
        if (i == 300)
            kill(vault, SIGTERM);
        sleep_ms(10);
    }
    if (vault > 0) {
        kill(vault, SIGKILL);
        waitpid(vault, &st, 0);
    }
}

static void __attribute__((noreturn))
monitor_main(int ctl, char *const *argv, const char *traverse_dir, pid_t payd)
{
    pid_t vault = 0;
    /* ends with payd, however payd ends */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != payd)
        _exit(1);
    prctl(PR_SET_NAME, "payd-vaultmon", 0, 0, 0);
    /* nothing of payd's but the channel: no listener, no lock, no log file */
    if ((ctl != CTL_FD && dup2(ctl, CTL_FD) != CTL_FD) || fcntl(CTL_FD, F_SETFD, FD_CLOEXEC) != 0 ||
        close_range(CTL_FD + 1, ~0U, 0) != 0)
        _exit(1);
    sigset_t chld, waitmask;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigemptyset(&waitmask);
    struct sigaction sa = {.sa_handler = on_sigchld}, ign = {.sa_handler = SIG_IGN};
    /* payd takes the terminal's and the operator's signals; this process ends with it */
    if (sigaction(SIGCHLD, &sa, NULL) != 0 || sigaction(SIGINT, &ign, NULL) != 0 ||
        sigaction(SIGHUP, &ign, NULL) != 0 || sigaction(SIGUSR1, &ign, NULL) != 0 ||
        sigaction(SIGPIPE, &ign, NULL) != 0 || sigprocmask(SIG_SETMASK, &chld, NULL) != 0)
        _exit(1);
    for (;;) {
        if (g_child_exited) {
            int st;
            pid_t p;
            g_child_exited = 0;
            while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
                if (p == vault) {
                    vault = 0;
                    if (send_msg(CTL_FD, MSG_EXITED, p, st, NULL, 0) != 0)
                        _exit(0); /* payd is gone */
                }
            }
        }
        struct pollfd pfd = {.fd = CTL_FD, .events = POLLIN};
        int n = ppoll(&pfd, 1, NULL, &waitmask); /* SIGCHLD only arrives in here */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        uint8_t req;
        ssize_t got = recv(CTL_FD, &req, 1, 0);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got != 1)
            break; /* payd closed the channel, or it is broken */
        if (req != REQ_SPAWN) {
            if (send_msg(CTL_FD, MSG_FAILED, 0, PD_ERR_PROTOCOL, NULL, 0) != 0)
                break;
            continue;
        }
        int fds[2];
        pid_t p = 0;
        int r = vault > 0 ? PD_ERR_BUSY : start_vault(argv, traverse_dir, fds, &p);
        if (r == 0) {
            vault = p;
            r = send_msg(CTL_FD, MSG_SPAWNED, p, 0, fds, 2);
            close_fds(fds, 2);
            if (r != 0)
                break;
        } else if (send_msg(CTL_FD, MSG_FAILED, 0, r, NULL, 0) != 0) {
            break;
        }
    }
    end_vault(vault);
    _exit(0);
}

int
pd_vault_monitor_start(pd_vault_monitor_t *m, char *const *argv, const char *traverse_dir)
{
    int sv[2];
    m->fd = -1;
    m->pid = 0;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    pid_t self = getpid();
    pid_t p = fork();
    if (p < 0) {
        int e = -errno;
        close(sv[0]), close(sv[1]);
        return e;
    }
    if (p == 0) {
        close(sv[0]);
        monitor_main(sv[1], argv, traverse_dir, self);
    }
    close(sv[1]);
    m->fd = sv[0];
    m->pid = p;
    return 0;
}

int
pd_vault_monitor_spawn(pd_vault_monitor_t *m, int fds[2], pid_t *pid)
{
    uint8_t req = REQ_SPAWN;
    if (m->fd < 0)
        return PD_ERR_CLOSED;
    if (send(m->fd, &req, 1, MSG_NOSIGNAL) != 1)
        return errno == EPIPE || errno == ECONNRESET ? PD_ERR_CLOSED : -errno;
    /* fork and exec: well within 10 s; an EXITED of an earlier vault may come first */
    for (int waited = 0; waited < 10000; waited += 100) {
        uint32_t type = 0;
        int32_t p = 0, value = 0;
        int got[2], ngot = 0;
        int r = recv_msg(m->fd, 100, &type, &p, &value, got, &ngot);
        if (r < 0) {
            close_fds(got, ngot);
            return r;
        }
        if (r == 0)
            continue;
        if (type == MSG_SPAWNED && ngot == 2 && p > 0) {
            fds[0] = got[0], fds[1] = got[1];
            *pid = p;
            return 0;
        }
        close_fds(got, ngot);
        if (type == MSG_FAILED)
            return value < 0 ? value : PD_ERR_INTERNAL;
        if (type != MSG_EXITED)
            return PD_ERR_PROTOCOL;
    }
    return PD_ERR_TIMEOUT;
}

int
pd_vault_monitor_wait(pd_vault_monitor_t *m, int timeout_ms, pid_t *pid, int *status)
{
    uint32_t type = 0;
    int32_t p = 0, value = 0;
    int got[2], ngot = 0;
    if (m->fd < 0)
        return PD_ERR_CLOSED;
    int r = recv_msg(m->fd, timeout_ms, &type, &p, &value, got, &ngot);
    close_fds(got, ngot);
    if (r <= 0)
        return r;
    if (type != MSG_EXITED)
        return PD_ERR_PROTOCOL;
    *pid = p;
    *status = value;
    return 1;
}

void
pd_vault_monitor_stop(pd_vault_monitor_t *m)
{
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
    if (m->pid > 0) {
        int st;
        while (waitpid(m->pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
    m->pid = 0;
}
