/*
 * The vault's byte transport: a plain socket (socketpair, Unix socket) or mutual TLS
 * over TCP for a vault on another host. Both ends use the same read/write calls, so
 * the framing code does not care which it has.
 *
 * TLS policy: TLS 1.3 only (both ends are payd's), a certificate on both sides
 * verified against a configured CA; the server requires the client's certificate.
 */
#include <errno.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "vault/transport.h"

ssize_t
pd_vt_read(int fd, SSL *ssl, void *buf, size_t n)
{
    if (ssl == NULL)
        return read(fd, buf, n);
    int r = SSL_read(ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: errno = EAGAIN; return -1;
    case SSL_ERROR_ZERO_RETURN: return 0;
    default: ERR_clear_error(); errno = EIO; return -1;
    }
}

ssize_t
pd_vt_write(int fd, SSL *ssl, const void *buf, size_t n)
{
    if (ssl == NULL) {
        /* a vault that went away is an EPIPE for the caller, never a SIGPIPE for the process */
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        return w < 0 && errno == ENOTSOCK ? write(fd, buf, n) : w;
    }
    int r = SSL_write(ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: errno = EAGAIN; return -1;
    default: ERR_clear_error(); errno = EIO; return -1;
    }
}

static void
tls_error(char *err, size_t cap, const char *what, const char *path)
{
    char detail[200] = "";
    unsigned long e = ERR_get_error();
    if (e != 0)
        ERR_error_string_n(e, detail, sizeof(detail));
    ERR_clear_error();
    snprintf(err, cap, "%s %s: %s", what, path, detail[0] ? detail : "failed");
}

SSL_CTX *
pd_vt_tls_ctx(bool server, const char *cert, const char *key, const char *ca, char *err, size_t errcap)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errcap, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    /* writers retry from a buffer that may have moved, and take partial writes */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        tls_error(err, errcap, "cannot load certificate", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        tls_error(err, errcap, "cannot load private key", key);
        goto fail;
    }
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        tls_error(err, errcap, "cannot load CA", ca);
        goto fail;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

bool
pd_vt_peer_cn(SSL *ssl, char *out, size_t cap)
{
    out[0] = '\0';
    X509 *peer = SSL_get0_peer_certificate(ssl);
    if (peer == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
        return false;
    return X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, out, (int)cap) > 0;
}
