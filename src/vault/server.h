/* The vault's event loop: connections, the whitelist dispatcher, group commit. */
#ifndef PAYD_VAULT_SERVER_H
#define PAYD_VAULT_SERVER_H

#include <signal.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "vault/handlers.h"
#include "vault/internal.h"

typedef struct pd_vault_server pd_vault_server_t;

/* One row of the dispatcher: a message type, who may send it, the bounds of its
 * payload, its handler. Anything else a peer sends is a violation (audited, dropped). */
typedef struct {
    uint16_t type;
    const char *action;        /* the audit record's action, e.g. "kms.rotate" */
    unsigned allowed;          /* principals that may send it */
    uint32_t min_len, max_len; /* payload bytes */
    pd_handler_t handler;
    bool own_txn;              /* the handler runs its own transactions: after the batch's commit */
} pd_vault_dispatch_t;

/* the row of a message type, NULL when no peer may send that type */
const pd_vault_dispatch_t *pd_vault_dispatch_find(uint16_t type);
/* the i-th row (NULL past the end; at most PD_VAULT_MAX_OPS rows) */
#define PD_VAULT_MAX_OPS 64
const pd_vault_dispatch_t *pd_vault_dispatch_at(size_t i);

int pd_vault_server_new(pd_vault_server_t **out, pd_vault_state_t *v);
void pd_vault_server_free(pd_vault_server_t *s);
/* A connected descriptor whose principal is fixed (socketpair from payd). */
int pd_vault_server_add_fd(pd_vault_server_t *s, int fd, unsigned principal, const char *origin);
/* Listens on a Unix socket; peers must AUTH with a principal's credential. Creates
 * DIR/credentials/<principal> files (0600) on first use. */
int pd_vault_server_listen(pd_vault_server_t *s, const char *path, const char *cred_dir);
/* Mutual-TLS TCP listener for a payd on another host. tls is the server context
 * (pd_vt_tls_ctx(true, cert, key, client CA): made before privileges are dropped, as
 * its key is often root's alone); the server owns it from the call on, also on
 * failure. Listens on addr ("host:port"); a peer needs a client certificate from that
 * CA whose CN is the principal it authenticates as, and that principal's credential
 * (AUTH), as on the Unix socket. err says what failed. */
int pd_vault_server_listen_tcp(pd_vault_server_t *s, const char *addr, SSL_CTX *tls, const char *cred_dir, char *err,
                               size_t errcap);
/* Serves payd-vault's metrics on h from the server's loop (vault/metrics.h), and
 * records its operations in the vault's registry; the server owns h. Before run. */
struct pd_vmx_http;
int pd_vault_server_metrics(pd_vault_server_t *s, struct pd_vmx_http *h) PD_WUR;
/* Runs until *stop is set, or (exit_when_orphaned) all fixed descriptors closed. */
int pd_vault_server_run(pd_vault_server_t *s, volatile sig_atomic_t *stop, bool exit_when_orphaned);

#endif
