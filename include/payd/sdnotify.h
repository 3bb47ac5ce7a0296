/*
 * The service manager's notification protocol (sd_notify(3)) spoken directly: one
 * datagram of newline-separated KEY=VALUE lines to the AF_UNIX socket named by
 * $NOTIFY_SOCKET ("/path" or "@abstract"). No libsystemd: the protocol is a sendto().
 * Used by payd and payd-vault (src/core/sdnotify.c; docs/deploy.md).
 *
 *   READY=1      the service is ready (payd: what /readyz reports; payd-vault: its socket listens)
 *   STOPPING=1   the drain has begun
 *   RELOADING=1  a SIGHUP reload has begun (READY=1 again when it is done)
 *   WATCHDOG=1   alive; sent by pd_sdnotify_watchdog_start at half of $WATCHDOG_USEC
 *   STATUS=...   one line for `systemctl status`
 */
#ifndef PAYD_SDNOTIFY_H
#define PAYD_SDNOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "payd/error.h"

/* longest message pd_sdnotify_send takes (STATUS lines are cut to fit) */
#define PD_SDNOTIFY_MAX 1024

typedef struct {
    int fd;                    /* datagram socket; -1: not under a service manager (every send is a no-op) */
    struct sockaddr_un addr;   /* $NOTIFY_SOCKET */
    socklen_t addrlen;
    uint64_t watchdog_usec;    /* $WATCHDOG_USEC for this process; 0: no watchdog asked for */
    bool warned;               /* a failed send was logged once */
} pd_sdnotify_t;

/*
 * Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID and removes them from the
 * environment, so that a child (payd's vault) never speaks to the manager in this
 * process's name. Unset NOTIFY_SOCKET: 0 with n->fd == -1. A watchdog whose
 * $WATCHDOG_PID names another process is not ours (watchdog_usec 0). Returns
 * PD_ERR_CONFIG, with err naming the variable and the value it expects, when
 * NOTIFY_SOCKET is neither an absolute path nor "@name" or is too long, or
 * WATCHDOG_USEC / WATCHDOG_PID is not a positive whole number; -errno when the
 * socket cannot be made. Call before any thread or child exists (setenv/unsetenv).
 */
int pd_sdnotify_open(pd_sdnotify_t *n, char *err, size_t cap) PD_WUR;

/* true when NOTIFY_SOCKET was set (notifications go somewhere) */
bool pd_sdnotify_enabled(const pd_sdnotify_t *n);

/*
 * Sends msg (KEY=VALUE lines, at most PD_SDNOTIFY_MAX bytes) as one datagram. A no-op
 * returning 0 when not enabled. -errno when the manager's socket refuses it (the first
 * failure is also logged as a warning). Thread-safe: one sendto per call.
 */
int pd_sdnotify_send(pd_sdnotify_t *n, const char *msg) PD_WUR;

/* Sends "STATUS=" plus the formatted text (newlines become spaces; cut to fit), after
 * the lines in prefix ("READY=1\n", "STOPPING=1\n" or ""). Same returns as send. */
int pd_sdnotify_status(pd_sdnotify_t *n, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4))) PD_WUR;

/* Closes the socket; n may be NULL or never opened (fd -1). */
void pd_sdnotify_close(pd_sdnotify_t *n);

/*
 * The watchdog: a thread that, every watchdog_usec / 2, asks alive() and sends
 * WATCHDOG=1 only when it answers true. A false answer (an event loop that stopped
 * turning) sends no ping and a STATUS line with why (logged once per stall), so the
 * manager kills the process when WatchdogSec passes without a ping. alive() runs on
 * the watchdog thread and must be thread-safe; max_age_ms is the interval it is given
 * to judge by (half the watchdog period, at least 500 ms).
 */
typedef bool (*pd_sdnotify_alive_fn)(void *arg, uint64_t max_age_ms, char *why, size_t cap);
typedef struct pd_sdnotify_watchdog pd_sdnotify_watchdog_t;

/* *out NULL and 0 when n has no watchdog (not enabled, or no WATCHDOG_USEC) */
int pd_sdnotify_watchdog_start(pd_sdnotify_watchdog_t **out, pd_sdnotify_t *n, pd_sdnotify_alive_fn alive,
                               void *arg) PD_WUR;
/* Stops and joins the thread (within one check, not one period); NULL is a no-op. */
void pd_sdnotify_watchdog_stop(pd_sdnotify_watchdog_t *w);
/* pings sent so far (for logs and tests) */
uint64_t pd_sdnotify_watchdog_pings(const pd_sdnotify_watchdog_t *w);

#endif
