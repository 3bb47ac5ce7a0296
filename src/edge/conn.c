/*
 * The loop's open connections, and their records for the flow log: one record per
 * accepted TCP connection, reported when the connection closes (accepted or
 * rejected, peer, ports, TLS version and cipher, bytes in and out, duration, and
 * why it was rejected). The drain counts the open connections and closes the idle
 * HTTP/1 ones.
 *
 * Hooks into h2o 2.2: the socket's on_close callback (called from dispose_socket,
 * after the TLS state is gone but before the evloop frees the socket), and OpenSSL
 * info and message callbacks on the server context: they note the negotiated
 * version and cipher, the client certificate, the alert that ended a failed
 * handshake, and count the TLS records in each direction (bytes on the wire).
 */
#include <arpa/inet.h>
#include <linux/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "edge/internal.h"
#include "payd/metrics_payd.h"
#include "payd/time.h"

typedef struct {
    h2o_linklist_t link; /* in loop->conns */
    pd_loop_t *loop;
    h2o_socket_t *sock;
    pd_conn_info_t info;
    uint64_t start_ms;
    char peer[64];
    char client_cn[128];
    char alert[64];
    bool handshake_done;
    bool shut; /* pd_conn_close_idle shut it down; h2o is closing it */
    bool counted; /* holds a place in the server's connection limits under key */
    uint8_t key[16];
    pd_h2guard_t *h2g; /* HTTP/2 connections only (h2guard.c) */
} conn_t;

void
pd_edge_addr_text(const struct sockaddr *sa, char *out, size_t cap, uint16_t *port)
{
    out[0] = '\0';
    *port = 0;
    if (sa->sa_family == AF_INET && cap >= 16) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        const uint8_t *a = (const uint8_t *)&in->sin_addr;
        char *o = out;
        /* dotted quad by hand: glibc's inet_ntop goes through sprintf, and this runs per request */
        for (int i = 0; i < 4; i++) {
            if (a[i] >= 100)
                *o++ = (char)('0' + a[i] / 100);
            if (a[i] >= 10)
                *o++ = (char)('0' + a[i] / 10 % 10);
            *o++ = (char)('0' + a[i] % 10);
            *o++ = i < 3 ? '.' : '\0';
        }
        *port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)cap);
        *port = ntohs(in6->sin6_port);
    }
}

static void
on_close(void *data)
{
    conn_t *c = data;
    pd_server_t *s = c->loop->srv;
    pd_conn_info_t *i = &c->info;

    h2o_linklist_unlink(&c->link);
    c->loop->nconns--;
    pd_metric_gauge_add(pd_mx, PD_MX_HTTP_CONNECTIONS, i->listener == PD_L_API ? PD_MX_LISTENER_API : PD_MX_LISTENER_ADMIN, -1);
    if (c->counted)
        pd_conn_limit_give(s->limit, c->key);
    pd_h2guard_free(c->h2g);
    c->h2g = NULL;
    if (s->conn_fn == NULL) {
        free(c);
        return;
    }
    if (i->listener == PD_L_ADMIN) {
        /* plain HTTP: h2o counts what it wrote (the socket is disposed but not yet
         * freed, so its counter is still valid); bytes_in is noted per response */
        i->bytes_out = c->sock->bytes_written;
    }
    i->duration_ms = pd_mono_ms() - c->start_ms;
    if (i->listener == PD_L_API && !c->handshake_done)
        i->reject_reason = c->alert[0] ? c->alert : "tls handshake not completed";
    i->client_cn = c->client_cn[0] ? c->client_cn : NULL;
    s->conn_fn(i, s->conn_arg);
    free(c);
}

int
pd_conn_track(pd_loop_t *loop, h2o_socket_t *sock, pd_listener_kind_t kind, bool counted, const uint8_t key[16])
{
    struct sockaddr_storage ss;
    char local[64];
    conn_t *c;

    if ((c = calloc(1, sizeof(*c))) == NULL)
        return PD_ERR_NOMEM;
    h2o_linklist_insert(&loop->conns, &c->link);
    loop->nconns++;
    pd_metric_gauge_add(pd_mx, PD_MX_HTTP_CONNECTIONS, kind == PD_L_API ? PD_MX_LISTENER_API : PD_MX_LISTENER_ADMIN, 1);
    c->loop = loop;
    c->sock = sock;
    c->start_ms = pd_mono_ms();
    c->info.listener = kind;
    c->info.peer = c->peer;
    c->counted = counted;
    memcpy(c->key, key, 16);
    if (h2o_socket_getpeername(sock, (struct sockaddr *)&ss) != 0)
        pd_edge_addr_text((struct sockaddr *)&ss, c->peer, sizeof(c->peer), &c->info.peer_port);
    if (h2o_socket_getsockname(sock, (struct sockaddr *)&ss) != 0)
        pd_edge_addr_text((struct sockaddr *)&ss, local, sizeof(local), &c->info.local_port);
    sock->on_close.cb = on_close;
    sock->on_close.data = c;
    return 0;
}

void
pd_conn_log_refused(pd_loop_t *loop, pd_listener_kind_t kind, const struct sockaddr *peer, const char *why)
{
    pd_server_t *s = loop->srv;
    char text[64];
    pd_conn_info_t i = {.listener = kind, .peer = text, .reject_reason = why};
    if (s->conn_fn == NULL)
        return;
    pd_edge_addr_text(peer, text, sizeof(text), &i.peer_port);
    s->conn_fn(&i, s->conn_arg);
}

pd_h2guard_t **
pd_conn_h2guard_slot(h2o_socket_t *sock)
{
    if (sock == NULL || sock->on_close.cb != on_close)
        return NULL;
    return &((conn_t *)sock->on_close.data)->h2g;
}

void
pd_conn_each_h2guard(pd_loop_t *loop, void (*fn)(pd_loop_t *loop, pd_h2guard_t *g))
{
    h2o_linklist_t *l, *next;
    for (l = loop->conns.next; l != &loop->conns; l = next) {
        next = l->next; /* fn may close the connection */
        conn_t *c = H2O_STRUCT_FROM_MEMBER(conn_t, link, l);
        if (c->h2g != NULL)
            fn(loop, c->h2g);
    }
}

/* HTTP/1: every admin connection (plain HTTP; h2o's upgrade to HTTP/2 is off), and an
 * API connection whose TLS handshake is done and did not choose h2 */
static bool
is_http1(conn_t *c)
{
    if (c->info.listener == PD_L_ADMIN)
        return true;
    if (!c->handshake_done)
        return false;
    h2o_iovec_t proto = h2o_socket_ssl_get_selected_protocol(c->sock);
    return !(proto.len == 2 && memcmp(proto.base, "h2", 2) == 0);
}

/*
 * Nothing received that is not answered: libh2o 2.2 keeps an HTTP/1 request's bytes
 * in the socket's input buffer until its response is written, so an empty buffer
 * means no request in progress, and the kernel holds no bytes of a next one.
 */
static bool
is_idle(conn_t *c)
{
    int fd = h2o_socket_get_fd(c->sock), pending = 0;
    return c->sock->input->size == 0 && fd >= 0 && ioctl(fd, FIONREAD, &pending) == 0 && pending == 0;
}

size_t
pd_conn_close_idle(pd_loop_t *loop)
{
    size_t n = 0;
    for (h2o_linklist_t *l = loop->conns.next; l != &loop->conns; l = l->next) {
        conn_t *c = H2O_STRUCT_FROM_MEMBER(conn_t, link, l);
        if (c->shut || !is_http1(c) || !is_idle(c))
            continue;
        /* h2o then reads the end of the stream and closes the connection as if the
         * client had (TLS: close_notify, then FIN). A request the client sends in the
         * same instant is lost, the race every HTTP/1.1 client must expect on an idle
         * connection (RFC 9112 9.3.1): that is why the drain waits out its grace first */
        if (shutdown(h2o_socket_get_fd(c->sock), SHUT_RD) == 0) {
            c->shut = true;
            n++;
        }
    }
    return n;
}

void
pd_conn_note_received(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock == NULL || sock->on_close.cb != on_close)
        return;
    conn_t *c = sock->on_close.data;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    int fd = h2o_socket_get_fd(sock);
    if (fd >= 0 && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
        len >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received)) {
        c->info.bytes_in = ti.tcpi_bytes_received;
        c->info.bytes_in_known = true;
    }
}

/*
 * The record of the connection an SSL belongs to, or NULL. h2o 2.2 keeps no app data
 * on its SSL objects, but its BIO's data is the h2o socket (h2o's own read/write
 * callbacks find it there); the record is then cached in the SSL's ex_data.
 */
static int ex_index = -1;

/* the connection of a TLS session: remembered on the session once known (the message
 * callback, which gets the session mutable, stores it), else found through its BIO */
static conn_t *
conn_of(const SSL *ssl)
{
    conn_t *c = ex_index >= 0 ? SSL_get_ex_data(ssl, ex_index) : NULL;
    if (c != NULL)
        return c;
    BIO *bio = SSL_get_rbio(ssl);
    h2o_socket_t *sock = bio != NULL ? BIO_get_data(bio) : NULL;
    if (sock == NULL || sock->on_close.cb != on_close || ex_index < 0)
        return NULL;
    return sock->on_close.data;
}

static conn_t *
conn_bind(SSL *ssl)
{
    conn_t *c = conn_of(ssl);
    if (c != NULL && SSL_get_ex_data(ssl, ex_index) == NULL)
        SSL_set_ex_data(ssl, ex_index, c);
    return c;
}

void
pd_conn_tls_init(void)
{
    if (ex_index < 0)
        ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

void
pd_conn_tls_info(const SSL *ssl, int where, int ret)
{
    conn_t *c = conn_of(ssl);
    if (c == NULL)
        return;
    if (where & SSL_CB_HANDSHAKE_DONE) {
        c->handshake_done = true;
        c->info.tls_version = SSL_get_version(ssl);
        c->info.tls_cipher = SSL_get_cipher_name(ssl);
        X509 *peer = SSL_get0_peer_certificate(ssl);
        if (peer != NULL)
            X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, c->client_cn,
                                      (int)sizeof(c->client_cn));
    } else if ((where & SSL_CB_ALERT) && (where & SSL_CB_WRITE) && c->alert[0] == '\0' && !c->handshake_done) {
        /* the alert we sent to end the handshake: "protocol version", "handshake failure", ... */
        snprintf(c->alert, sizeof(c->alert), "tls alert: %s", SSL_alert_desc_string_long(ret));
    }
}

/* counts TLS records in both directions: the connection's bytes on the wire */
void
pd_conn_tls_msg(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    (void)version;
    (void)arg;
    if (content_type != SSL3_RT_HEADER || len < 5)
        return;
    conn_t *c = conn_bind(ssl);
    if (c == NULL)
        return;
    const uint8_t *h = buf;
    uint64_t n = 5u + ((uint64_t)h[3] << 8 | h[4]);
    if (write_p)
        c->info.bytes_out += n;
    else
        c->info.bytes_in += n;
    c->info.bytes_in_known = true;
}
