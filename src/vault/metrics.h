/*
 * payd-vault's metrics (vault_metrics.c, docs/metrics.md): the vault's own registry,
 * recorded by the server's loop, and a loopback HTTP/1.0 listener serving it at
 * GET /metrics from the same loop ([vault] metrics_listen, payd-vault --metrics ADDR).
 * Everything here runs on the vault's one thread.
 */
#ifndef PAYD_VAULT_METRICS_H
#define PAYD_VAULT_METRICS_H

#include <poll.h>
#include <stdint.h>

#include "payd/metrics.h"

#define PD_VMX_MAX_CONNS 8

struct pd_vault_state;
/* Makes the registry (op label: the dispatch table's actions); npeers(arg) gives the
 * number of connected peers when scraped. */
int pd_vmx_open(struct pd_vault_state *v, int (*npeers)(void *arg), void *arg) PD_WUR;
void pd_vmx_close(void);
/* One operation of an IPC message type ran (rc its outcome) in ns nanoseconds. */
void pd_vmx_operation(uint16_t type, int rc, uint64_t ns);
/* A peer was dropped for a protocol violation. */
void pd_vmx_violation(void);
pd_metrics_t *pd_vmx_registry(void);

typedef struct pd_vmx_http pd_vmx_http_t;
/* Listens on addr (host:port, a numeric loopback address; port 0 picks one).
 * PD_ERR_CONFIG with the reason in err for a non-loopback or malformed address. */
int pd_vmx_listen(pd_vmx_http_t **out, const char *addr, char *err, size_t cap) PD_WUR;
uint16_t pd_vmx_port(const pd_vmx_http_t *h);
void pd_vmx_free(pd_vmx_http_t *h);
/* Fills pfd with the listener's and its connections' descriptors (at most
 * 1 + PD_VMX_MAX_CONNS), returns how many; then, after poll, pd_vmx_handle with the
 * same entries serves them (reads requests, writes responses, closes the finished and
 * those past their 2 s deadline). */
int pd_vmx_pollfds(pd_vmx_http_t *h, struct pollfd *pfd);
void pd_vmx_handle(pd_vmx_http_t *h, const struct pollfd *pfd, int n);

#endif
