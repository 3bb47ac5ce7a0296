/* pd_sdnotify: the datagrams a service manager receives on its NOTIFY_SOCKET (a path
 * or an abstract name), the environment checks, and the watchdog that pings only
 * while its liveness check passes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "payd/sdnotify.h"

typedef struct {
    int fd;
    char path[108];
    char env[128];
} manager_t;

/* a fake manager: a bound datagram socket, at a path or (abstract) at "@name" */
static void
manager_open(manager_t *m, bool abstract)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    socklen_t len;
    m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(m->fd >= 0);
    if (abstract) {
        snprintf(m->env, sizeof(m->env), "@payd-test-notify-%ld", (long)getpid());
        size_t n = strlen(m->env);
        memcpy(a.sun_path, m->env, n);
        a.sun_path[0] = '\0';
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        m->path[0] = '\0';
    } else {
        snprintf(m->path, sizeof(m->path), "/tmp/payd-test-notify-%ld.sock", (long)getpid());
        unlink(m->path);
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", m->path);
        snprintf(m->env, sizeof(m->env), "%s", m->path);
        len = sizeof(a);
    }
    assert_int_equal(bind(m->fd, (struct sockaddr *)&a, len), 0);
    setenv("NOTIFY_SOCKET", m->env, 1);
}

static void
manager_close(manager_t *m)
{
    close(m->fd);
    if (m->path[0])
        unlink(m->path);
}

/* the next datagram within ms, NUL-terminated into buf; false on none */
static bool
manager_recv(manager_t *m, char *buf, size_t cap, int ms)
{
    struct pollfd p = {.fd = m->fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return false;
    ssize_t n = recv(m->fd, buf, cap - 1, 0);
    if (n < 0)
        return false;
    buf[n] = '\0';
    return true;
}

static void
sends_to_a_path_and_clears_the_environment(void **state)
{
    (void)state;
    manager_t m;
    pd_sdnotify_t n;
    char err[256], got[PD_SDNOTIFY_MAX + 1];
    manager_open(&m, false);
    setenv("WATCHDOG_USEC", "2000000", 1);
    assert_int_equal(pd_sdnotify_open(&n, err, sizeof(err)), 0);
    assert_true(pd_sdnotify_enabled(&n));
    assert_int_equal(n.watchdog_usec, 2000000);
    /* a child started from here inherits none of it */
    assert_null(getenv("NOTIFY_SOCKET"));
    assert_null(getenv("WATCHDOG_USEC"));
    assert_int_equal(pd_sdnotify_send(&n, "READY=1"), 0);
    assert_true(manager_recv(&m, got, sizeof(got), 1000));
    assert_string_equal(got, "READY=1");
    /* STATUS: the prefix's lines, then one line (a newline in the text is not a new assignment) */
    assert_int_equal(pd_sdnotify_status(&n, "STOPPING=1\n", "draining %d requests\nMAINPID=1", 3), 0);
    assert_true(manager_recv(&m, got, sizeof(got), 1000));
    assert_string_equal(got, "STOPPING=1\nSTATUS=draining 3 requests MAINPID=1");
    /* a status longer than a datagram may be is cut, not refused */
    char big[2 * PD_SDNOTIFY_MAX];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(pd_sdnotify_status(&n, "", "%s", big), 0);
    assert_true(manager_recv(&m, got, sizeof(got), 1000));
    assert_int_equal(strlen(got), PD_SDNOTIFY_MAX);
    assert_int_equal(pd_sdnotify_send(&n, big), PD_ERR_TOOBIG);
    pd_sdnotify_close(&n);
    manager_close(&m);
}

static void
sends_to_an_abstract_socket(void **state)
{
    (void)state;
    manager_t m;
    pd_sdnotify_t n;
    char err[256], got[256];
    manager_open(&m, true);
    assert_int_equal(pd_sdnotify_open(&n, err, sizeof(err)), 0);
    assert_int_equal(n.watchdog_usec, 0); /* none asked for */
    assert_int_equal(pd_sdnotify_send(&n, "READY=1\nSTATUS=ready"), 0);
    assert_true(manager_recv(&m, got, sizeof(got), 1000));
    assert_string_equal(got, "READY=1\nSTATUS=ready");
    pd_sdnotify_close(&n);
    manager_close(&m);
}

static void
unset_is_a_no_op(void **state)
{
    (void)state;
    pd_sdnotify_t n;
    char err[256];
    unsetenv("NOTIFY_SOCKET");
    setenv("WATCHDOG_USEC", "1000000", 1); /* without a socket: nobody to ping */
    assert_int_equal(pd_sdnotify_open(&n, err, sizeof(err)), 0);
    assert_false(pd_sdnotify_enabled(&n));
    assert_int_equal(pd_sdnotify_send(&n, "READY=1"), 0);
    assert_int_equal(pd_sdnotify_status(&n, "", "x"), 0);
    pd_sdnotify_watchdog_t *w = (void *)1;
    assert_int_equal(pd_sdnotify_watchdog_start(&w, &n, NULL, NULL), 0);
    assert_null(w);
    pd_sdnotify_watchdog_stop(NULL);
    pd_sdnotify_close(&n);
    pd_sdnotify_close(NULL);
}

static void
bad_values_are_refused_by_name(void **state)
{
    (void)state;
    static const struct {
        const char *sock, *usec, *pid, *names;
    } bad[] = {
        {"relative/path.sock", NULL, NULL, "NOTIFY_SOCKET"},
        {"@", NULL, NULL, "NOTIFY_SOCKET"},
        {"vsock:2:1234", NULL, NULL, "NOTIFY_SOCKET"},
        {"/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         NULL, NULL, "NOTIFY_SOCKET"},
        {"/run/notify", "abc", NULL, "WATCHDOG_USEC"},
        {"/run/notify", "0", NULL, "WATCHDOG_USEC"},
        {"/run/notify", "-5", NULL, "WATCHDOG_USEC"},
        {"/run/notify", "100", "12x", "WATCHDOG_PID"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pd_sdnotify_t n;
        char err[256] = "";
        setenv("NOTIFY_SOCKET", bad[i].sock, 1);
        if (bad[i].usec)
            setenv("WATCHDOG_USEC", bad[i].usec, 1);
        if (bad[i].pid)
            setenv("WATCHDOG_PID", bad[i].pid, 1);
        assert_int_equal(pd_sdnotify_open(&n, err, sizeof(err)), PD_ERR_CONFIG);
        assert_non_null(strstr(err, bad[i].names));
        assert_false(pd_sdnotify_enabled(&n));
        assert_null(getenv("NOTIFY_SOCKET"));
        assert_null(getenv("WATCHDOG_USEC"));
        assert_null(getenv("WATCHDOG_PID"));
    }
}

static void
a_watchdog_for_another_pid_is_not_ours(void **state)
{
    (void)state;
    manager_t m;
    pd_sdnotify_t n;
    char err[256], pid[32];
    manager_open(&m, false);
    setenv("WATCHDOG_USEC", "1000000", 1);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(pd_sdnotify_open(&n, err, sizeof(err)), 0);
    assert_int_equal(n.watchdog_usec, 0);
    pd_sdnotify_close(&n);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    setenv("NOTIFY_SOCKET", m.env, 1);
    setenv("WATCHDOG_USEC", "1000000", 1);
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(pd_sdnotify_open(&n, err, sizeof(err)), 0);
    assert_int_equal(n.watchdog_usec, 1000000);
    pd_sdnotify_close(&n);
    manager_close(&m);
}

static atomic_bool loops_turn;
static _Atomic uint64_t asked_max_age;

static bool
fake_alive(void *arg, uint64_t max_age_ms, char *why, size_t cap)
{
    (void)arg;
    atomic_store(&asked_max_age, max_age_ms);
    if (atomic_load(&loops_turn))
        return true;
    snprintf(why, cap, "loop 0 last turned 9000 ms ago");
    return false;
}

/* datagrams received within ms that equal want; others (STATUS) counted in *other */
static int
count(manager_t *m, const char *want, int ms, int *other)
{
    char got[512];
    int k = 0;
    uint64_t end = (uint64_t)ms;
    for (uint64_t t = 0; t < end; t += 50) {
        while (manager_recv(m, got, sizeof(got), 0)) {
            if (strcmp(got, want) == 0)
                k++;
            else if (other)
                (*other)++;
        }
        usleep(50000);
    }
    return k;
}

static void
the_watchdog_pings_only_while_alive(void **state)
{
    (void)state;
    manager_t m;
    pd_sdnotify_t n;
    char err[256];
    manager_open(&m, false);
    setenv("WATCHDOG_USEC", "1000000", 1); /* ping every 500 ms */
    assert_int_equal(pd_sdnotify_open(&n, err, sizeof(err)), 0);
    atomic_store(&loops_turn, true);
    pd_sdnotify_watchdog_t *w;
    assert_int_equal(pd_sdnotify_watchdog_start(&w, &n, fake_alive, NULL), 0);
    assert_non_null(w);
    int other = 0;
    int pings = count(&m, "WATCHDOG=1", 1800, &other);
    assert_in_range(pings, 3, 5); /* at 0, 500, 1000, 1500 ms */
    assert_int_equal(other, 0);
    assert_int_equal(atomic_load(&asked_max_age), 500);
    /* a stuck loop: no ping, one STATUS line saying why */
    atomic_store(&loops_turn, false);
    (void)count(&m, "WATCHDOG=1", 600, NULL); /* the ping of a check before the stall */
    other = 0;
    assert_int_equal(count(&m, "WATCHDOG=1", 1600, &other), 0);
    assert_true(other <= 1);
    /* it turns again: pings again */
    atomic_store(&loops_turn, true);
    assert_true(count(&m, "WATCHDOG=1", 1200, NULL) >= 2);
    uint64_t before = pd_sdnotify_watchdog_pings(w);
    assert_true(before >= 5);
    pd_sdnotify_watchdog_stop(w); /* prompt: within a check, not a period */
    assert_int_equal(count(&m, "WATCHDOG=1", 700, NULL), 0);
    pd_sdnotify_close(&n);
    manager_close(&m);
}

static void
a_gone_manager_is_an_error_not_a_crash(void **state)
{
    (void)state;
    manager_t m;
    pd_sdnotify_t n;
    char err[256];
    manager_open(&m, false);
    assert_int_equal(pd_sdnotify_open(&n, err, sizeof(err)), 0);
    manager_close(&m); /* the socket file is gone */
    assert_true(pd_sdnotify_send(&n, "READY=1") < 0);
    assert_true(pd_sdnotify_send(&n, "READY=1") < 0); /* logged once */
    pd_sdnotify_close(&n);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sends_to_a_path_and_clears_the_environment),
        cmocka_unit_test(sends_to_an_abstract_socket),
        cmocka_unit_test(unset_is_a_no_op),
        cmocka_unit_test(bad_values_are_refused_by_name),
        cmocka_unit_test(a_watchdog_for_another_pid_is_not_ours),
        cmocka_unit_test(the_watchdog_pings_only_while_alive),
        cmocka_unit_test(a_gone_manager_is_an_error_not_a_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
