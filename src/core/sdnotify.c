/*
 * sd_notify(3) over its socket protocol: the datagram a service sends to the
 * manager's $NOTIFY_SOCKET, and a watchdog thread that pings only while the caller
 * says its event loops turn. See include/payd/sdnotify.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "payd/config.h"
#include "payd/log.h"
#include "payd/sdnotify.h"

/* a positive whole number of at most 19 digits, nothing else */
static bool
parse_positive(const char *s, uint64_t *out)
{
    int64_t v;
    if (pd_config_parse_int(s, 1, INT64_MAX, &v) != 0)
        return false;
    *out = (uint64_t)v;
    return true;
}

int
pd_sdnotify_open(pd_sdnotify_t *n, char *err, size_t cap)
{
    memset(n, 0, sizeof(*n));
    n->fd = -1;
    const char *sock = getenv("NOTIFY_SOCKET");
    const char *wusec = getenv("WATCHDOG_USEC");
    const char *wpid = getenv("WATCHDOG_PID");
    char path[sizeof(n->addr.sun_path) + 1];
    uint64_t usec = 0, pid = 0;
    int r = PD_ERR_CONFIG;

    if (sock == NULL || sock[0] == '\0') {
        r = 0; /* not started by a service manager: nothing to tell */
        goto out;
    }
    size_t len = strlen(sock);
    if ((sock[0] != '/' && sock[0] != '@') || len < 2 || len > sizeof(n->addr.sun_path) - (sock[0] == '/')) {
        snprintf(err, cap,
                 "NOTIFY_SOCKET must be an absolute path or @name of an AF_UNIX socket, at most %zu bytes, not \"%.120s\"",
                 sizeof(n->addr.sun_path) - 1, sock);
        goto out;
    }
    if (wusec != NULL && wusec[0] != '\0' && !parse_positive(wusec, &usec)) {
        snprintf(err, cap, "WATCHDOG_USEC must be a positive whole number of microseconds, not \"%.60s\"", wusec);
        goto out;
    }
    if (wpid != NULL && wpid[0] != '\0' && !parse_positive(wpid, &pid)) {
        snprintf(err, cap, "WATCHDOG_PID must be a positive whole number (a process id), not \"%.60s\"", wpid);
        goto out;
    }
    if (pid != 0 && pid != (uint64_t)getpid())
        usec = 0; /* the watchdog was asked of another process */
    memcpy(path, sock, len + 1);
    n->addr.sun_family = AF_UNIX;
    memcpy(n->addr.sun_path, path, len);
    if (path[0] == '@')
        n->addr.sun_path[0] = '\0'; /* abstract namespace: the name is the bytes after the NUL, unterminated */
    n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
    if ((n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
        r = -errno;
        snprintf(err, cap, "NOTIFY_SOCKET: cannot make a datagram socket: %s", strerror(errno));
        goto out;
    }
    n->watchdog_usec = usec;
    r = 0;
out:
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    return r;
}

bool
pd_sdnotify_enabled(const pd_sdnotify_t *n)
{
    return n != NULL && n->fd >= 0;
}

int
pd_sdnotify_send(pd_sdnotify_t *n, const char *msg)
{
    if (!pd_sdnotify_enabled(n))
        return 0;
    size_t len = strlen(msg);
    if (len > PD_SDNOTIFY_MAX)
        return PD_ERR_TOOBIG;
    ssize_t w;
    do
        w = sendto(n->fd, msg, len, MSG_NOSIGNAL, (const struct sockaddr *)&n->addr, n->addrlen);
    while (w < 0 && errno == EINTR);
    if (w == (ssize_t)len)
        return 0;
    int e = w < 0 ? errno : EMSGSIZE;
    if (!n->warned) {
        n->warned = true; /* a manager that went away would otherwise fill the log */
        pd_log_warn("cannot notify the service manager (NOTIFY_SOCKET)", PD_LS("reason", strerror(e)));
    }
    return -e;
}

int
pd_sdnotify_status(pd_sdnotify_t *n, const char *prefix, const char *fmt, ...)
{
    char msg[PD_SDNOTIFY_MAX + 1];
    if (!pd_sdnotify_enabled(n))
        return 0;
    int k = snprintf(msg, sizeof(msg), "%sSTATUS=", prefix);
    if (k < 0 || (size_t)k >= sizeof(msg))
        return PD_ERR_TOOBIG;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg + k, sizeof(msg) - (size_t)k, fmt, ap); /* a long status is cut, not refused */
    va_end(ap);
    for (char *p = msg + k; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' '; /* one STATUS line: a newline would start another assignment */
    return pd_sdnotify_send(n, msg);
}

void
pd_sdnotify_close(pd_sdnotify_t *n)
{
    if (n == NULL || n->fd < 0)
        return;
    close(n->fd);
    n->fd = -1;
}

struct pd_sdnotify_watchdog {
    pd_sdnotify_t *n;
    pd_sdnotify_alive_fn alive;
    void *arg;
    uint64_t period_ms;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled by stop; CLOCK_MONOTONIC */
    bool stop;         /* under mu */
    _Atomic uint64_t pings;
};

static void *
watchdog_main(void *arg)
{
    pd_sdnotify_watchdog_t *w = arg;
    bool stalled = false;
    char why[256];

    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        pthread_mutex_unlock(&w->mu);
        why[0] = '\0';
        if (w->alive(w->arg, w->period_ms, why, sizeof(why))) {
            if (stalled)
                pd_log_info("watchdog: the event loops turn again; pinging the service manager");
            stalled = false;
            if (pd_sdnotify_send(w->n, "WATCHDOG=1") == 0)
                atomic_fetch_add(&w->pings, 1);
        } else {
            if (!stalled) {
                /* no ping: the manager ends the process when WatchdogSec passes */
                pd_log_error("watchdog: not pinging the service manager", PD_LS("reason", why));
                if (pd_sdnotify_status(w->n, "", "watchdog: %s", why) != 0) {
                    /* logged by pd_sdnotify_send */
                }
            }
            stalled = true;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + w->period_ms % 1000 * 1000000u;
        ts.tv_sec += (time_t)(w->period_ms / 1000 + ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&w->mu);
        while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mu, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int
pd_sdnotify_watchdog_start(pd_sdnotify_watchdog_t **out, pd_sdnotify_t *n, pd_sdnotify_alive_fn alive, void *arg)
{
    *out = NULL;
    if (!pd_sdnotify_enabled(n) || n->watchdog_usec == 0)
        return 0;
    pd_sdnotify_watchdog_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return PD_ERR_NOMEM;
    w->n = n;
    w->alive = alive;
    w->arg = arg;
    w->period_ms = n->watchdog_usec / 2000; /* sd_watchdog_enabled(3): ping at half the period */
    if (w->period_ms < 500)
        w->period_ms = 500; /* a loop turns at least every 100 ms plus its work; judge it over more */
    pthread_condattr_t ca;
    int r;
    if ((r = pthread_condattr_init(&ca)) != 0) {
        free(w);
        return -r;
    }
    (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    r = pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (r != 0) {
        free(w);
        return -r;
    }
    pthread_mutex_init(&w->mu, NULL);
    if ((r = pthread_create(&w->tid, NULL, watchdog_main, w)) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return -r;
    }
    pd_log_info("watchdog: pinging the service manager", PD_LI("watchdog_usec", (int64_t)n->watchdog_usec),
                PD_LI("every_ms", (int64_t)w->period_ms));
    *out = w;
    return 0;
}

void
pd_sdnotify_watchdog_stop(pd_sdnotify_watchdog_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->tid, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

uint64_t
pd_sdnotify_watchdog_pings(const pd_sdnotify_watchdog_t *w)
{
    return w != NULL ? atomic_load(&w->pings) : 0;
}
