/*
 * Raw TLS and HTTP/2 for the edge's tests: a TLS connection from a chosen loopback
 * source address, and HTTP/2 frames written and read by hand (the audit's rapid-reset
 * and slow-body clients). HPACK is literal only: indexed static entries for :method
 * and :scheme, literal values without indexing for the rest; no Huffman coding.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "harness.h"

int
pd_h_tls_open(pd_h_tls_t *t, uint16_t port, const char *src, const char *alpn, int timeout_ms)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    unsigned char wire[32];
    size_t al = strlen(alpn);

    memset(t, 0, sizeof(*t));
    t->fd = -1;
    if (al + 1 > sizeof(wire))
        return -1;
    wire[0] = (unsigned char)al;
    memcpy(wire + 1, alpn, al);
    if ((t->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        goto fail;
    if (src != NULL) {
        struct sockaddr_in me = {.sin_family = AF_INET};
        if (inet_pton(AF_INET, src, &me.sin_addr) != 1 || bind(t->fd, (struct sockaddr *)&me, sizeof(me)) != 0)
            goto fail;
    }
    setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(t->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(t->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto fail;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    t->ssl_ctx = ctx;
    if (ctx == NULL || SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)(al + 1)) != 0)
        goto fail;
    SSL *ssl = SSL_new(ctx);
    t->ssl = ssl;
    if (ssl == NULL)
        goto fail;
    SSL_set_fd(ssl, t->fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (SSL_connect(ssl) != 1)
        goto fail;
    return 0;
fail:
    ERR_clear_error();
    pd_h_tls_close(t);
    return -1;
}

void
pd_h_tls_close(pd_h_tls_t *t)
{
    if (t->ssl != NULL)
        SSL_free(t->ssl);
    if (t->ssl_ctx != NULL)
        SSL_CTX_free(t->ssl_ctx);
    if (t->fd >= 0)
        close(t->fd);
    t->ssl = t->ssl_ctx = NULL;
    t->fd = -1;
}

size_t
pd_h_h2_frame(uint8_t *out, size_t cap, uint8_t type, uint8_t flags, uint32_t stream, const void *payload, size_t len)
{
    if (len > 0xffffff || cap < 9 + len)
        return 0;
    out[0] = (uint8_t)(len >> 16);
    out[1] = (uint8_t)(len >> 8);
    out[2] = (uint8_t)len;
    out[3] = type;
    out[4] = flags;
    out[5] = (uint8_t)(stream >> 24 & 0x7f);
    out[6] = (uint8_t)(stream >> 16);
    out[7] = (uint8_t)(stream >> 8);
    out[8] = (uint8_t)stream;
    if (len > 0)
        memcpy(out + 9, payload, len);
    return 9 + len;
}

/* an HPACK string (no Huffman), lengths below 127 */
static size_t
hpack_str(uint8_t *o, const char *s, size_t n)
{
    if (n >= 127)
        return 0;
    o[0] = (uint8_t)n;
    memcpy(o + 1, s, n);
    return n + 1;
}

size_t
pd_h_h2_headers(uint8_t *out, size_t cap, uint32_t stream, uint8_t flags, const char *method, const char *path,
                const char *const *extra)
{
    uint8_t blk[4096];
    size_t n = 0;
    if (strcmp(method, "GET") == 0) {
        blk[n++] = 0x82; /* :method GET (static index 2) */
    } else {
        blk[n++] = 0x02; /* literal without indexing, name :method */
        n += hpack_str(blk + n, method, strlen(method));
    }
    blk[n++] = 0x87; /* :scheme https */
    blk[n++] = 0x04; /* :path, literal */
    n += hpack_str(blk + n, path, strlen(path));
    blk[n++] = 0x01; /* :authority, literal */
    n += hpack_str(blk + n, "localhost", 9);
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        const char *c = strchr(extra[i], ':');
        if (c == NULL || n + 256 > sizeof(blk))
            return 0;
        const char *v = c + 1;
        while (*v == ' ')
            v++;
        blk[n++] = 0x00; /* literal without indexing, new name */
        n += hpack_str(blk + n, extra[i], (size_t)(c - extra[i]));
        n += hpack_str(blk + n, v, strlen(v));
    }
    return pd_h_h2_frame(out, cap, 1, flags, stream, blk, n);
}

int
pd_h_h2_write(pd_h_h2_t *h, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        int n = SSL_write(h->tls.ssl, p, len > 65536 ? 65536 : (int)len);
        if (n <= 0) {
            ERR_clear_error();
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
pd_h_h2_open(pd_h_h2_t *h, uint16_t port, int timeout_ms)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    uint8_t buf[64];
    memset(h, 0, sizeof(*h));
    if (pd_h_tls_open(&h->tls, port, NULL, "h2", timeout_ms) != 0)
        return -1;
    const unsigned char *a = NULL;
    unsigned al = 0;
    SSL_get0_alpn_selected(h->tls.ssl, &a, &al);
    if (al != 2 || memcmp(a, "h2", 2) != 0) {
        pd_h_tls_close(&h->tls);
        return -1;
    }
    memcpy(buf, preface, 24);
    size_t n = 24 + pd_h_h2_frame(buf + 24, sizeof(buf) - 24, 4, 0, 0, NULL, 0);
    return pd_h_h2_write(h, buf, n);
}

void
pd_h_h2_close(pd_h_h2_t *h)
{
    pd_h_tls_close(&h->tls);
}

/* reads more bytes into h->in; 0, 1 on timeout, -1 when closed */
static int
fill(pd_h_h2_t *h, int timeout_ms)
{
    SSL *ssl = h->tls.ssl;
    if (SSL_pending(ssl) == 0) {
        struct pollfd pf = {.fd = h->tls.fd, .events = POLLIN};
        int r = poll(&pf, 1, timeout_ms);
        if (r == 0)
            return 1;
        if (r < 0)
            return -1;
    }
    if (h->inlen == sizeof(h->in))
        return -1; /* a frame larger than we read: not from these tests' server */
    int n = SSL_read(ssl, h->in + h->inlen, (int)(sizeof(h->in) - h->inlen));
    if (n > 0) {
        h->inlen += (size_t)n;
        return 0;
    }
    int e = SSL_get_error(ssl, n);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)))
        return 1;
    return -1;
}

int
pd_h_h2_read(pd_h_h2_t *h, int timeout_ms, uint8_t *type, uint8_t *flags, uint32_t *stream, uint8_t *payload,
             size_t cap, size_t *len)
{
    for (;;) {
        if (h->inlen >= 9) {
            size_t fl = (size_t)h->in[0] << 16 | (size_t)h->in[1] << 8 | h->in[2];
            if (h->inlen >= 9 + fl) {
                *type = h->in[3];
                *flags = h->in[4];
                *stream = ((uint32_t)h->in[5] << 24 | (uint32_t)h->in[6] << 16 | (uint32_t)h->in[7] << 8 | h->in[8]) &
                          0x7fffffffu;
                *len = fl;
                memcpy(payload, h->in + 9, fl < cap ? fl : cap);
                memmove(h->in, h->in + 9 + fl, h->inlen - 9 - fl);
                h->inlen -= 9 + fl;
                if (*type == 4 && (*flags & 1) == 0) {
                    uint8_t ack[9];
                    size_t an = pd_h_h2_frame(ack, sizeof(ack), 4, 1, 0, NULL, 0);
                    (void)pd_h_h2_write(h, ack, an);
                }
                return 0;
            }
        }
        int r = fill(h, timeout_ms);
        if (r != 0)
            return r;
    }
}

long
pd_h_cpu_ticks(int pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* fields after the command name in parentheses: state is the 3rd, utime the 14th, stime the 15th */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st) != 2)
        return -1;
    return ut + st;
}
