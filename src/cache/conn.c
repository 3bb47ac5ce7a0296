/*
 * One Redis connection: our own TCP socket, optionally OpenSSL on it (hiredis 0.14
 * has no TLS), hiredis's redisFormatCommandArgv to encode commands and its
 * redisReader to parse replies. Blocking, with SO_RCVTIMEO/SO_SNDTIMEO as the
 * deadline of each read and write: only the cache's own sync thread uses it, never
 * an event-loop thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "cache/internal.h"

#define READER_MAX (16u << 20) /* a reply larger than this is a protocol error */

static void
ssl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        snprintf(buf, cap, "the server closed the connection or spoke no TLS");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
}

int
pd_rconn_tls_ctx(SSL_CTX **out, const char *ca_file, char *err, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, cap, "[cache] cannot create a TLS context");
        return PD_ERR_CRYPTO;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file != NULL && ca_file[0] != '\0' ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                                   : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        char why[160];
        ssl_reason(why, sizeof(why));
        snprintf(err, cap, "[cache] tls_ca: cannot load %s (%s)", ca_file != NULL && ca_file[0] ? ca_file : "the system CA store",
                 why);
        SSL_CTX_free(ctx);
        return PD_ERR_CONFIG;
    }
    *out = ctx;
    return 0;
}

static int
tcp_connect(const char *host, uint16_t port, int timeout_ms, int *fdout, char *err, size_t cap)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    int g = getaddrinfo(host, ps, &hints, &ai);
    if (g != 0) {
        snprintf(err, cap, "cannot resolve %s: %s", host, gai_strerror(g));
        return PD_ERR_UNAVAILABLE;
    }
    int r = PD_ERR_UNAVAILABLE, fd = -1, last = 0;
    for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            int pr = poll(&pf, 1, timeout_ms);
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (pr == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) {
                r = 0;
                break;
            }
            last = pr == 0 ? ETIMEDOUT : soerr != 0 ? soerr : errno;
        } else {
            last = errno;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (r != 0) {
        snprintf(err, cap, "cannot connect to %s:%u: %s", host, (unsigned)port, strerror(last));
        return r;
    }
    int fl = fcntl(fd, F_GETFL);
    int one = 1;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        snprintf(err, cap, "cannot set up the socket to %s:%u: %s", host, (unsigned)port, strerror(errno));
        close(fd);
        return -errno;
    }
    *fdout = fd;
    return 0;
}

int
pd_rconn_open(pd_rconn_t *c, const char *host, uint16_t port, SSL_CTX *ctx, int timeout_ms, char *err, size_t cap)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->timeout_ms = timeout_ms;
    snprintf(c->peer, sizeof(c->peer), "%s:%u", host, (unsigned)port);
    int r = tcp_connect(host, port, timeout_ms, &c->fd, err, cap);
    if (r != 0)
        return r;
    if (ctx != NULL) {
        c->ssl = SSL_new(ctx);
        unsigned char ip[16];
        bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
        if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
            (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) != 1
                   : (SSL_set_tlsext_host_name(c->ssl, host) != 1 || SSL_set1_host(c->ssl, host) != 1))) {
            snprintf(err, cap, "cannot set up TLS to %s", c->peer);
            pd_rconn_close(c);
            return PD_ERR_CRYPTO;
        }
        if (SSL_connect(c->ssl) != 1) {
            char why[200];
            long v = SSL_get_verify_result(c->ssl);
            if (v != X509_V_OK)
                snprintf(why, sizeof(why), "certificate not trusted: %s", X509_verify_cert_error_string(v));
            else
                ssl_reason(why, sizeof(why));
            snprintf(err, cap, "TLS handshake with %s failed (%s); a plain server needs redis://, a TLS one the CA in [cache] tls_ca",
                     c->peer, why);
            pd_rconn_close(c);
            return PD_ERR_CRYPTO;
        }
    }
    c->rd = redisReaderCreate();
    if (c->rd == NULL) {
        pd_rconn_close(c);
        return PD_ERR_NOMEM;
    }
    c->rd->maxbuf = 1u << 20;
    return 0;
}

void
pd_rconn_close(pd_rconn_t *c)
{
    if (c == NULL)
        return;
    if (c->ssl != NULL)
        SSL_free(c->ssl); /* no close_notify: the peer may be gone, and a write could block */
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->rd != NULL)
        redisReaderFree(c->rd);
    c->rd = NULL;
    free(c->out);
    c->out = NULL;
    c->outlen = c->outcap = 0;
}

int
pd_rconn_append(pd_rconn_t *c, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0)
        return PD_ERR_NOMEM;
    int r = 0;
    if (c->outlen + (size_t)n > PD_RCONN_OUT_MAX) {
        r = PD_ERR_TOOBIG;
    } else {
        if (c->outlen + (size_t)n > c->outcap) {
            size_t nc = c->outcap ? c->outcap : 4096;
            while (nc < c->outlen + (size_t)n)
                nc *= 2;
            char *g = realloc(c->out, nc);
            if (g == NULL) {
                r = PD_ERR_NOMEM;
                goto out;
            }
            c->out = g;
            c->outcap = nc;
        }
        memcpy(c->out + c->outlen, cmd, (size_t)n);
        c->outlen += (size_t)n;
    }
out:
    redisFreeCommand(cmd);
    return r;
}

int
pd_rconn_flush(pd_rconn_t *c)
{
    size_t off = 0;
    int r = 0;
    while (off < c->outlen) {
        ssize_t w;
        if (c->ssl != NULL) {
            size_t chunk = c->outlen - off > 1u << 30 ? 1u << 30 : c->outlen - off;
            int sw = SSL_write(c->ssl, c->out + off, (int)chunk);
            if (sw <= 0) {
                ERR_clear_error();
                r = PD_ERR_IO;
                break;
            }
            w = sw;
        } else {
            w = send(c->fd, c->out + off, c->outlen - off, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                r = errno == EAGAIN || errno == EWOULDBLOCK ? PD_ERR_TIMEOUT : PD_ERR_IO;
                break;
            }
        }
        off += (size_t)w;
    }
    c->outlen = 0;
    return r;
}

int
pd_rconn_read(pd_rconn_t *c, redisReply **out)
{
    *out = NULL;
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(c->rd, &reply) != REDIS_OK)
            return PD_ERR_PROTOCOL;
        if (reply != NULL) {
            *out = reply;
            return 0;
        }
        char buf[16384];
        ssize_t n;
        if (c->ssl != NULL) {
            int sr = SSL_read(c->ssl, buf, sizeof(buf));
            if (sr <= 0) {
                int e = SSL_get_error(c->ssl, sr);
                ERR_clear_error();
                return e == SSL_ERROR_ZERO_RETURN ? PD_ERR_CLOSED
                       : (e == SSL_ERROR_WANT_READ || errno == EAGAIN) ? PD_ERR_TIMEOUT
                                                                      : PD_ERR_IO;
            }
            n = sr;
        } else {
            n = recv(c->fd, buf, sizeof(buf), 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0)
                return PD_ERR_CLOSED;
            if (n < 0)
                return errno == EAGAIN || errno == EWOULDBLOCK ? PD_ERR_TIMEOUT : PD_ERR_IO;
        }
        if (c->rd->len + (size_t)n > READER_MAX || redisReaderFeed(c->rd, buf, (size_t)n) != REDIS_OK)
            return PD_ERR_PROTOCOL;
    }
}

int
pd_rconn_cmd(pd_rconn_t *c, redisReply **out, int argc, const char **argv)
{
    size_t lens[16];
    *out = NULL;
    if (argc > 16)
        return PD_ERR_INVALID;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    int r = pd_rconn_append(c, argc, argv, lens);
    if (r == 0)
        r = pd_rconn_flush(c);
    return r != 0 ? r : pd_rconn_read(c, out);
}
