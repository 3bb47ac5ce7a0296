/* The vault's byte transport: plain sockets or mutual TLS over TCP (transport.c). */
#ifndef PAYD_VAULT_TRANSPORT_H
#define PAYD_VAULT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

/* read(2)/write(2) semantics on fd, or through ssl when it is not NULL: > 0 bytes,
 * 0 at the end of the stream (read), -1 with errno EAGAIN when it would block (TLS:
 * also while a handshake needs the other direction: poll for SSL_want_write). */
ssize_t pd_vt_read(int fd, SSL *ssl, void *buf, size_t n);
ssize_t pd_vt_write(int fd, SSL *ssl, const void *buf, size_t n);
/* A TLS 1.3 context with this certificate and key, trusting ca for the peer; a server
 * context requires the client's certificate. NULL with err set on failure. */
SSL_CTX *pd_vt_tls_ctx(bool server, const char *cert, const char *key, const char *ca, char *err, size_t errcap);
/* The verified peer certificate's subject CN. */
bool pd_vt_peer_cn(SSL *ssl, char *out, size_t cap);

#endif
