/*
 * Server TLS policy: TLS 1.2 and 1.3 only; for 1.2 only ECDHE key exchange with AEAD
 * ciphers (forward secrecy); the server's order wins; no compression, no
 * renegotiation; ALPN offers h2 then http/1.1.
 */
#include <string.h>

#include <h2o.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "edge/internal.h"

static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char tls13_suites[] = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

static void
ssl_error(char *err, size_t cap, const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char detail[256] = "";
    if (e != 0)
        ERR_error_string_n(e, detail, sizeof(detail));
    ERR_clear_error();
    snprintf(err, cap, "%s%s%s: %s", what, path ? " " : "", path ? path : "", detail[0] ? detail : "failed");
}

int
pd_tls_server_ctx(SSL_CTX **out, const char *cert, const char *key, const char *client_ca, char *err, size_t errcap)
{
    SSL_CTX *ctx = NULL;
    int r = PD_ERR_CRYPTO;

    if (cert == NULL || cert[0] == '\0' || key == NULL || key[0] == '\0') {
        snprintf(err, errcap, "[api] tls_cert and tls_key must be set (or use --dev)");
        return PD_ERR_CONFIG;
    }
    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
        ssl_error(err, errcap, "SSL_CTX_new", NULL);
        goto out;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    char groups[] = "X25519:P-256:P-384"; /* the macro casts its argument to char * */
    if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1 || SSL_CTX_set_ciphersuites(ctx, tls13_suites) != 1 ||
        SSL_CTX_set1_groups_list(ctx, groups) != 1) {
        ssl_error(err, errcap, "cipher policy", NULL);
        goto out;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_error(err, errcap, "cannot load certificate", cert);
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ssl_error(err, errcap, "cannot load private key", key);
        goto out;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error(err, errcap, "private key does not match certificate", key);
        goto out;
    }
    if (client_ca != NULL && client_ca[0] != '\0') {
        if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1) {
            ssl_error(err, errcap, "cannot load client CA", client_ca);
            goto out;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    pd_conn_tls_init();
    SSL_CTX_set_info_callback(ctx, pd_conn_tls_info);
    SSL_CTX_set_msg_callback(ctx, pd_conn_tls_msg);
    *out = ctx;
    ctx = NULL;
    r = 0;
out:
    SSL_CTX_free(ctx);
    return r;
}
