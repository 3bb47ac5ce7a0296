/*
 * The vault's privileged parent (child mode). payd forks it before it drops root; it
 * keeps root (when payd was started as root) and does one thing: on payd's request it
 * starts payd-vault with a command line fixed when it was forked, hands payd the two
 * socketpair ends (api, processor), and tells payd when that vault exits. payd decides
 * when to restart (its back-off); the parent never starts a second vault while one
 * runs and ends when payd does (parent-death signal, and the end of the control
 * socket), after its vault. So the network-facing payd needs no privilege to restart a
 * crashed vault as the vault's user (OpenSSH's privileged listener apart from its
 * network children).
 *
 * Control channel: a SOCK_SEQPACKET socketpair. payd sends one byte 'S' (start a
 * vault); the parent answers with 12-byte messages {u32 type, i32 pid, i32 value},
 * big-endian: SPAWNED (pid, the two descriptors in SCM_RIGHTS), FAILED (value = -errno
 * or PD_ERR_*), EXITED (pid, value = the wait status).
 */
#ifndef PAYD_VAULT_MONITOR_H
#define PAYD_VAULT_MONITOR_H

#include <sys/types.h>

#include "payd/error.h"
#include "payd/vault_spawn.h"

/* Forks the parent. argv: payd-vault's command line (NULL-terminated). traverse_dir:
 * made 0711 before each start (the vault's directory inside payd's data dir must be
 * reachable by the vault's user), or NULL. Call it before payd starts any thread. */
int pd_vault_monitor_start(pd_vault_monitor_t *m, char *const *argv, const char *traverse_dir) PD_WUR;
/* Asks for a vault: fds[0] is the api end, fds[1] the processor end (close-on-exec). */
int pd_vault_monitor_spawn(pd_vault_monitor_t *m, int fds[2], pid_t *pid) PD_WUR;
/* Waits up to timeout_ms for the running vault to exit: 1 when it did (*pid, *status
 * as from waitpid), 0 when the time passed, < 0 when the parent is gone. */
int pd_vault_monitor_wait(pd_vault_monitor_t *m, int timeout_ms, pid_t *pid, int *status) PD_WUR;
/* Closes the channel and reaps the parent, which first ends its vault (the vault
 * exits when its descriptors close; after 3 s it gets SIGTERM, after 5 s SIGKILL). */
void pd_vault_monitor_stop(pd_vault_monitor_t *m);

#endif
