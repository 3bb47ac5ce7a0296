/*
 * payd and payd-vault under a service manager (systemd Type=notify): the test plays the
 * manager, a datagram socket named by NOTIFY_SOCKET, and checks what arrives and from
 * which process (SCM_CREDENTIALS): READY=1 once payd is ready, WATCHDOG=1 at half of
 * WATCHDOG_USEC while the event loop turns and none while it is stuck, STOPPING=1 at
 * SIGTERM; the vault payd starts as its child never speaks in payd's name.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "payd/argv.h"

static char dir[64], sock_path[96], env_sock[128];
static int mgr = -1;
static pd_h_payd_t *live; /* a payd a failing test leaves running: ended by the test's teardown */
static pid_t live_vault;

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/payd-sdn-XXXXXX");
    if (mkdtemp(dir) == NULL || chmod(dir, 0711) != 0) /* payd's and the vault's users reach the socket */
        return -1;
    snprintf(sock_path, sizeof(sock_path), "%s/notify", dir);
    snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s", sock_path);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
    int one = 1;
    mgr = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (mgr < 0 || bind(mgr, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        setsockopt(mgr, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0)
        return -1;
    /* systemd's socket is writable by the service's user; so is this one */
    return chmod(sock_path, 0666);
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[128];
    close(mgr);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* each test: no datagram of an earlier one; nothing of it left running after */
static int
test_setup(void **state)
{
    (void)state;
    char junk[2048];
    while (recv(mgr, junk, sizeof(junk), MSG_DONTWAIT) >= 0)
        ;
    return 0;
}

static int
test_teardown(void **state)
{
    (void)state;
    if (live != NULL && live->pid > 0) {
        (void)pd_h_stop(live, SIGKILL, 5000);
        pd_h_cleanup(live);
    }
    live = NULL;
    if (live_vault > 0) {
        kill(live_vault, SIGKILL);
        waitpid(live_vault, NULL, 0);
    }
    live_vault = 0;
    return 0;
}

typedef struct {
    char text[1100];
    pid_t pid; /* the sender, from the kernel (SCM_CREDENTIALS) */
} msg_t;

/* the next datagram within ms */
static bool
recv_msg(msg_t *m, int ms)
{
    struct pollfd p = {.fd = mgr, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return false;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(struct ucred))];
    } cm;
    struct iovec iov = {m->text, sizeof(m->text) - 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
    ssize_t n = recvmsg(mgr, &mh, 0);
    if (n < 0)
        return false;
    m->text[n] = '\0';
    m->pid = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred u;
            memcpy(&u, CMSG_DATA(c), sizeof(u));
            m->pid = u.pid;
        }
    return true;
}

/* waits up to ms for a datagram starting with prefix; every datagram must come from pid */
static bool
wait_for(const char *prefix, pid_t pid, int ms, msg_t *out)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    msg_t m;
    while (now_ms() < end) {
        if (!recv_msg(&m, (int)(end - now_ms())))
            break;
        if (m.pid != pid)
            fail_msg("a notification from pid %d (not the service's %d): \"%s\"", (int)m.pid, (int)pid, m.text);
        if (strncmp(m.text, prefix, strlen(prefix)) == 0) {
            if (out)
                *out = m;
            return true;
        }
    }
    return false;
}

/* counts WATCHDOG=1 over ms (and other datagrams in *other); every one from pid */
static int
count_pings(pid_t pid, int ms, int *other, msg_t *last_other)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    int n = 0;
    msg_t m;
    while (now_ms() < end) {
        if (!recv_msg(&m, (int)(end - now_ms())))
            continue;
        assert_int_equal(m.pid, pid);
        if (strcmp(m.text, "WATCHDOG=1") == 0) {
            n++;
        } else {
            if (other)
                (*other)++;
            if (last_other)
                *last_other = m;
        }
    }
    return n;
}

typedef struct {
    pd_h_payd_t *p;
    int rc;
    pd_h_resp_t r;
} stall_t;

static void *
stall(void *arg)
{
    stall_t *s = arg;
    pd_h_req_t rq = {.admin = true, .timeout_ms = 10000};
    s->rc = pd_h_request(s->p, "GET", "/debug/stall?ms=3000", &rq, &s->r);
    return NULL;
}

static void
payd_tells_the_manager_ready_watchdog_and_stopping(void **state)
{
    (void)state;
    static pd_h_payd_t p; /* static: the teardown reaches it after a failed assertion */
    const char *env[] = {env_sock, "WATCHDOG_USEC=1000000", NULL};
    /* one loop: a stall of it stalls the whole node */
    const char *args[] = {"--set", "admin.test_endpoints=true", "--set", "api.threads=1", NULL};
    pd_h_opts_t o = {.env = env, .args = args};
    assert_int_equal(pd_h_start(&p, &o), 0);
    live = &p;

    msg_t m;
    /* /readyz answered 200 already: READY=1 came, with the state on a STATUS line */
    assert_true(wait_for("READY=1\n", p.pid, 5000, &m));
    assert_non_null(strstr(m.text, "\nSTATUS=ready: API port "));
    /* pings at half of WATCHDOG_USEC: about 4 in 2 s, never more than 5 (fewer on a loaded
     * machine, where a loop may wait for a CPU longer than the 500 ms it is judged over) */
    int pings = count_pings(p.pid, 2000, NULL, NULL);
    assert_in_range(pings, 2, 5);

    /* the loop blocked for 3 s: no ping, a STATUS line naming the loop; then pings again */
    stall_t s = {.p = &p};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stall, &s), 0);
    usleep(700000); /* the stall begins, and the first check after it passes */
    int other = 0;
    msg_t st = {.text = ""};
    (void)count_pings(p.pid, 300, &other, &st); /* a ping of a check just before the stall */
    assert_int_equal(count_pings(p.pid, 1500, &other, &st), 0);
    assert_non_null(strstr(st.text, "STATUS=watchdog: event loop 0 has not turned for"));
    pthread_join(t, NULL);
    assert_int_equal(s.rc, 0);
    assert_int_equal(s.r.status, 200);
    pd_h_resp_free(&s.r);
    assert_true(count_pings(p.pid, 2000, NULL, NULL) >= 1);

    /* SIGTERM: STOPPING=1 first, then the drain, then exit 0 */
    kill(p.pid, SIGTERM);
    assert_true(wait_for("STOPPING=1\n", p.pid, 5000, &m));
    assert_non_null(strstr(m.text, "STATUS=draining"));
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    live = NULL;
    char *log = pd_h_log(&p);
    bool said = strstr(log, "watchdog: not pinging the service manager") != NULL;
    free(log);
    pd_h_cleanup(&p);
    assert_true(said);
}

static void
without_a_watchdog_only_readiness(void **state)
{
    (void)state;
    static pd_h_payd_t p; /* static: the teardown reaches it after a failed assertion */
    const char *env[] = {env_sock, NULL};
    pd_h_opts_t o = {.env = env};
    assert_int_equal(pd_h_start(&p, &o), 0);
    live = &p;
    assert_true(wait_for("READY=1\n", p.pid, 5000, NULL));
    int other = 0;
    assert_int_equal(count_pings(p.pid, 1500, &other, NULL), 0);
    pid_t pid = p.pid;
    assert_int_equal(pd_h_stop(&p, SIGTERM, 20000), 0);
    live = NULL;
    pd_h_cleanup(&p);
    assert_true(wait_for("STOPPING=1\n", pid, 1000, NULL));
}

static void
a_bad_notify_socket_stops_the_start_by_name(void **state)
{
    (void)state;
    char *out = NULL;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "NOTIFY_SOCKET=relative/notify %s --dev --data-dir %s/bad --check-config 2>&1; echo rc=$?",
             PAYD_BIN, dir);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    out = calloc(1, 4096);
    assert_non_null(out);
    size_t n = fread(out, 1, 4095, f);
    out[n] = '\0';
    pclose(f);
    assert_non_null(strstr(out, "NOTIFY_SOCKET must be an absolute path or @name"));
    assert_non_null(strstr(out, "rc=2"));
    free(out);
}

/* payd-vault on its own socket: READY=1 once it listens, pings, STOPPING=1 */
static void
the_standalone_vault_tells_the_manager_too(void **state)
{
    (void)state;
    char vdir[128], vsock[160], pass[160], log[160];
    snprintf(vdir, sizeof(vdir), "%s/vault", dir);
    snprintf(vsock, sizeof(vsock), "%s/vault.sock", vdir);
    snprintf(pass, sizeof(pass), "%s/passphrase", dir);
    snprintf(log, sizeof(log), "%s/vault.log", dir);
    assert_int_equal(pd_h_write_file(pass, "correct horse battery staple\n"), 0);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        setenv("NOTIFY_SOCKET", sock_path, 1);
        setenv("WATCHDOG_USEC", "1000000", 1);
        const char *argv[] = {PAYD_VAULT_BIN, "--data-dir", vdir, "--socket", vsock, "--passphrase-file", pass,
                              "--init", geteuid() == 0 ? "--user" : NULL, "payd-vault", NULL};
        char **av = pd_argv_dup(argv);
        if (av != NULL)
            execv(PAYD_VAULT_BIN, av);
        _exit(127);
    }
    assert_true(pid > 0);
    live_vault = pid;
    msg_t m;
    bool ready = wait_for("READY=1\n", pid, 20000, &m);
    if (!ready) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "cat %s >&2", log);
        if (system(cmd) != 0) {
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("no READY=1 from payd-vault");
    }
    assert_non_null(strstr(m.text, "STATUS=ready: "));
    assert_int_equal(access(vsock, F_OK), 0); /* it listens */
    /* each ping is a round trip through the vault's own loop */
    int pings = count_pings(pid, 2000, NULL, NULL);
    assert_in_range(pings, 2, 5);
    kill(pid, SIGTERM);
    assert_true(wait_for("STOPPING=1\n", pid, 5000, NULL));
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    live_vault = 0;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(payd_tells_the_manager_ready_watchdog_and_stopping, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(without_a_watchdog_only_readiness, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(a_bad_notify_socket_stops_the_start_by_name, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(the_standalone_vault_tells_the_manager_too, test_setup, test_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
