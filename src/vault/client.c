/*
 * The vault client: one I/O thread per connection, many requests in flight
 * (request ids), per-request deadlines, reconnect for socket connections.
 * Callbacks run on the I/O thread. See include/payd/vault.h.
 *
 * TCP failover: the address may list several vault instances (on one shared
 * database). A connection goes to the first that accepts it, in list order, skipping
 * for ADDR_DOWN_MS an instance whose connect or handshake just failed. When the
 * connection drops, the requests in flight on it fail with PD_ERR_CLOSED (none is
 * resent: the vault may have done it, and a tokenization or an audited detokenization
 * is not the caller's to repeat unasked), and the next request goes to the next
 * instance that answers. A client on a later instance goes back to the first one
 * when it is idle (nothing in flight) and the first accepts a connection again,
 * checked every ADDR_HOME_MS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "payd/config.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/time.h"
#include "vault/msg.h"
#include "vault/transport.h"

#define BUCKETS 1024
#define WBUF_MAX (64u * 1024 * 1024)
#define RBUF_MAX (2u * (PD_IPC_HEADER + PD_IPC_MAX_PAYLOAD))
#define MAX_ADDRS 8
#define ADDR_DOWN_MS 5000
#define ADDR_HOME_MS 5000

typedef enum { K_CARD, K_PAN, K_GENERIC } kind_t;

typedef struct pending {
    struct pending *next;
    uint64_t id;
    uint16_t type;
    kind_t kind;
    void *cb;
    void *arg;
    uint64_t deadline_ms;
    uint64_t start_ns; /* for payd_vault_request_duration_seconds */
} pending_t;

struct pd_vault_client {
    int fd;
    SSL *ssl; /* mutual TLS to a vault on another host, else NULL */
    SSL_CTX *tls;
    int wake;
    char path[108];
    char addrs[MAX_ADDRS][300]; /* "host:port" of each TCP vault instance, in order of preference */
    int naddrs, cur;            /* cur: the instance of the connection (I/O thread) */
    uint64_t down_until[MAX_ADDRS]; /* an instance that just failed is skipped until then */
    uint64_t next_home_ms;      /* next look at whether the first instance is back */
    uint64_t addr_warned_ms;
    uint64_t tls_warned_ms; /* last handshake failure logged (reconnects retry every 200 ms) */
    int adopt_fd;           /* guarded by mu: a new descriptor for the I/O thread to switch to, or -1 */
    char principal[16];
    char credential[PD_MSG_CRED_MAX];
    int64_t timeout_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pd_buf_t wbuf; /* guarded by mu */
    pd_buf_t rbuf; /* I/O thread only */
    pending_t *buckets[BUCKETS];
    size_t npending;
    uint64_t next_id;
    bool connected, stopping;
    uint64_t auth_id;
    void (*on_change)(void *arg, const char *name);
    void *on_change_arg;
};

/* a standalone vault (Unix socket or TCP): reconnected when the connection drops */
static bool
remote(const pd_vault_client_t *c)
{
    return c->path[0] != '\0' || c->naddrs > 0;
}

static size_t
mx_result(int rc)
{
    return rc == 0                                          ? PD_MX_RESULT_OK
           : rc == PD_ERR_TIMEOUT                           ? PD_MX_RESULT_TIMEOUT
           : rc == PD_ERR_CLOSED || rc == PD_ERR_UNAVAILABLE ? PD_MX_RESULT_UNAVAILABLE
                                                            : PD_MX_RESULT_ERROR;
}

static void
complete(pending_t *p, int rc, uint16_t type, pd_view_t payload)
{
    pd_mx_vault_request(p->type, mx_result(rc == 0 && type == PD_MSG_ERROR ? PD_ERR_INTERNAL : rc),
                        (double)(pd_mono_ns() - p->start_ns) / 1e9);
    if (p->kind == K_CARD) {
        pd_vault_card_t card;
        memset(&card, 0, sizeof(card));
        if (rc == 0 && pd_msg_card_dec(payload, &card) != 0)
            rc = PD_ERR_PROTOCOL;
        ((pd_vault_card_cb)p->cb)(p->arg, rc, rc == 0 ? &card : NULL);
    } else if (p->kind == K_PAN) {
        pd_vault_pan_t pan;
        memset(&pan, 0, sizeof(pan));
        if (rc == 0 && pd_msg_pan_dec(payload, &pan) != 0)
            rc = PD_ERR_PROTOCOL;
        ((pd_vault_pan_cb)p->cb)(p->arg, rc, rc == 0 ? &pan : NULL);
        pd_vault_pan_wipe(&pan);
    } else {
        pd_vault_reply_t r;
        memset(&r, 0, sizeof(r));
        if (rc == 0 && pd_msg_data_dec(payload, &r) != 0)
            rc = PD_ERR_PROTOCOL;
        else if (rc != 0 && type == PD_MSG_ERROR) {
            int code = 0;
            if (pd_msg_error_dec(payload, &code, r.text, sizeof(r.text)) == 0)
                rc = code;
            else
                rc = PD_ERR_PROTOCOL;
        }
        if (p->cb != NULL)
            ((pd_vault_cb)p->cb)(p->arg, rc, &r);
        pd_vault_reply_free(&r);
    }
    free(p);
}

/* error replies for card/pan calls carry a message too; it is logged, not returned */
static int
error_code(pd_view_t payload)
{
    int code = 0;
    char msg[256];
    if (pd_msg_error_dec(payload, &code, msg, sizeof(msg)) != 0)
        return PD_ERR_PROTOCOL;
    return code;
}

static pending_t *
take(pd_vault_client_t *c, uint64_t id)
{
    pending_t **pp = &c->buckets[id % BUCKETS];
    for (; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            pending_t *p = *pp;
            *pp = p->next;
            c->npending--;
            return p;
        }
    }
    return NULL;
}

/* fails every pending request (connection lost or client freed) */
static void
fail_all(pd_vault_client_t *c, int rc)
{
    pending_t *list = NULL;
    pthread_mutex_lock(&c->mu);
    for (size_t b = 0; b < BUCKETS; b++) {
        while (c->buckets[b] != NULL) {
            pending_t *p = c->buckets[b];
            c->buckets[b] = p->next;
            p->next = list;
            list = p;
        }
    }
    c->npending = 0;
    OPENSSL_cleanse(c->wbuf.p, c->wbuf.cap);
    c->wbuf.len = 0;
    pthread_mutex_unlock(&c->mu);
    while (list != NULL) {
        pending_t *n = list->next;
        complete(list, rc, 0, PD_VIEW_NULL);
        list = n;
    }
}

static void
expire(pd_vault_client_t *c)
{
    pending_t *list = NULL;
    uint64_t now = pd_mono_ms();
    pthread_mutex_lock(&c->mu);
    for (size_t b = 0; b < BUCKETS; b++) {
        pending_t **pp = &c->buckets[b];
        while (*pp != NULL) {
            if ((*pp)->deadline_ms <= now) {
                pending_t *p = *pp;
                *pp = p->next;
                c->npending--;
                p->next = list;
                list = p;
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    while (list != NULL) {
        pending_t *n = list->next;
        complete(list, PD_ERR_TIMEOUT, 0, PD_VIEW_NULL);
        list = n;
    }
}

static int
enqueue(pd_vault_client_t *c, uint16_t type, pd_view_t payload, kind_t kind, void *cb, void *arg)
{
    pending_t *p = calloc(1, sizeof(*p));
    int r;
    if (p == NULL)
        return PD_ERR_NOMEM;
    pthread_mutex_lock(&c->mu);
    if (c->stopping || (!c->connected && !remote(c))) {
        pthread_mutex_unlock(&c->mu);
        free(p);
        return PD_ERR_CLOSED;
    }
    p->id = ++c->next_id;
    p->type = type;
    p->kind = kind;
    p->cb = cb;
    p->arg = arg;
    p->deadline_ms = pd_mono_ms() + (uint64_t)c->timeout_ms;
    p->start_ns = pd_mono_ns();
    if ((r = pd_ipc_frame(&c->wbuf, type, p->id, payload)) != 0) {
        pthread_mutex_unlock(&c->mu);
        free(p);
        return r;
    }
    p->next = c->buckets[p->id % BUCKETS];
    c->buckets[p->id % BUCKETS] = p;
    c->npending++;
    pthread_mutex_unlock(&c->mu);
    uint64_t one = 1;
    if (write(c->wake, &one, sizeof(one)) < 0) {
        /* the eventfd counter is saturated: the thread is awake anyway */
    }
    return 0;
}

static void
handle_frame(pd_vault_client_t *c, const pd_ipc_hdr_t *h, pd_view_t payload)
{
    if (h->id == 0 && h->type == PD_MSG_SECRET_CHANGED) {
        char name[PD_MSG_NAME_MAX];
        if (pd_msg_name_dec(payload, name) == 0 && c->on_change != NULL)
            c->on_change(c->on_change_arg, name);
        return;
    }
    pthread_mutex_lock(&c->mu);
    pending_t *p = take(c, h->id);
    pthread_mutex_unlock(&c->mu);
    if (p == NULL)
        return; /* timed out earlier */
    if (h->type == (p->type | PD_MSG_REPLY)) {
        complete(p, 0, h->type, payload);
    } else if (h->type == PD_MSG_ERROR) {
        if (p->kind == K_GENERIC)
            complete(p, PD_ERR_INTERNAL, h->type, payload);
        else
            complete(p, error_code(payload), h->type, payload);
    } else {
        /* the reply type does not match the request: the peer is broken */
        pd_log_error("vault client: reply type does not match the request");
        complete(p, PD_ERR_PROTOCOL, h->type, PD_VIEW_NULL);
        c->connected = false;
    }
}

/* TCP + TLS handshake (blocking, bounded by the request timeout), verifying the
 * vault's certificate against the configured CA and the host name or address */
static int
connect_tls(pd_vault_client_t *c, int idx, SSL **out)
{
    char host[256], port[8];
    uint16_t p;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    if (pd_config_parse_addr(c->addrs[idx], host, sizeof(host), &p) != 0)
        return PD_ERR_CONFIG;
    snprintf(port, sizeof(port), "%u", p);
    if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL)
        return PD_ERR_UNAVAILABLE;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = c->timeout_ms / 1000, .tv_usec = (c->timeout_ms % 1000) * 1000};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int e = fd < 0 ? -errno : PD_ERR_UNAVAILABLE;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return e;
    }
    freeaddrinfo(ai);
    SSL *ssl = SSL_new(c->tls);
    struct in6_addr a6;
    struct in_addr a4;
    bool is_ip = inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
        (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) : SSL_set1_host(ssl, host)) != 1 ||
        (!is_ip && SSL_set_tlsext_host_name(ssl, host) != 1) || SSL_connect(ssl) != 1) {
        if (pd_mono_ms() - c->tls_warned_ms >= 10000) {
            c->tls_warned_ms = pd_mono_ms();
            pd_log_warn("vault client: TLS handshake with the vault failed", PD_LS("vault", c->addrs[idx]),
                        PD_LS("verify", ssl != NULL ? X509_verify_cert_error_string(SSL_get_verify_result(ssl)) : "-"));
        }
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
        return PD_ERR_AUTH;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    *out = ssl;
    return fd;
}

/* the first instance, in list order, that accepts a connection (skipping those that
 * failed within ADDR_DOWN_MS, unless all did); c->cur gets its index */
static int
connect_any(pd_vault_client_t *c, SSL **ssl)
{
    uint64_t now = pd_mono_ms();
    int e = PD_ERR_UNAVAILABLE;
    bool all_down = true;
    for (int i = 0; i < c->naddrs; i++)
        all_down = all_down && c->down_until[i] > now;
    for (int i = 0; i < c->naddrs; i++) {
        if (!all_down && c->down_until[i] > now)
            continue;
        int fd = connect_tls(c, i, ssl);
        if (fd >= 0) {
            if (i != c->cur || c->naddrs > 1)
                pd_log_info("vault client: connected", PD_LS("vault", c->addrs[i]), PD_LS("principal", c->principal),
                            PD_LI("instance", i + 1), PD_LI("instances", c->naddrs));
            c->down_until[i] = 0;
            c->cur = i;
            c->next_home_ms = now + ADDR_HOME_MS;
            return fd;
        }
        e = fd;
        c->down_until[i] = pd_mono_ms() + ADDR_DOWN_MS;
        if (c->naddrs > 1 && pd_mono_ms() - c->addr_warned_ms >= 10000) {
            c->addr_warned_ms = pd_mono_ms();
            pd_log_warn("vault client: a vault instance does not answer; trying the next", PD_LS("vault", c->addrs[i]),
                        PD_LS("principal", c->principal), PD_LERR(e));
        }
    }
    return e;
}

static int
connect_socket(pd_vault_client_t *c, SSL **ssl)
{
    *ssl = NULL;
    if (c->naddrs > 0)
        return connect_any(c, ssl);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* makes fd the connection and queues AUTH ahead of everything else; idle_only: only
 * when nothing is in flight or queued (else false, and fd is closed) */
static bool
install(pd_vault_client_t *c, int fd, SSL *ssl, bool idle_only)
{
    pd_buf_t auth, frame;
    pd_buf_init(&auth, 512);
    pd_buf_init(&frame, WBUF_MAX);
    pthread_mutex_lock(&c->mu);
    if (idle_only && (c->npending > 0 || c->wbuf.len > 0 || c->stopping)) {
        pthread_mutex_unlock(&c->mu);
        SSL_free(ssl);
        close(fd);
        pd_buf_free_secure(&auth);
        pd_buf_free_secure(&frame);
        return false;
    }
    if (idle_only) {
        /* the connection it replaces has nothing in flight: closed without a failure */
        SSL_free(c->ssl);
        if (c->fd >= 0)
            close(c->fd);
        OPENSSL_cleanse(c->rbuf.p, c->rbuf.cap);
        c->rbuf.len = 0;
    }
    c->auth_id = ++c->next_id;
    if (pd_msg_auth_enc(&auth, c->principal, c->credential) != 0 ||
        pd_ipc_frame(&frame, PD_MSG_AUTH, c->auth_id, pd_buf_view(&auth)) != 0 ||
        pd_buf_put(&frame, c->wbuf.p, c->wbuf.len) != 0) {
        if (idle_only) {
            c->fd = -1;
            c->ssl = NULL;
            c->connected = false;
        }
        pthread_mutex_unlock(&c->mu);
        SSL_free(ssl);
        close(fd);
        pd_buf_free_secure(&auth);
        pd_buf_free_secure(&frame);
        return false;
    }
    pd_buf_free_secure(&c->wbuf);
    c->wbuf = frame;
    c->fd = fd;
    c->ssl = ssl;
    c->connected = true;
    pthread_mutex_unlock(&c->mu);
    pd_buf_free_secure(&auth);
    return true;
}

/* (re)connects a socket client */
static void
try_connect(pd_vault_client_t *c)
{
    SSL *ssl;
    int fd = connect_socket(c, &ssl);
    if (fd >= 0)
        (void)install(c, fd, ssl, false);
}

/* on a later instance while idle: back to the first one if it accepts a connection */
static void
try_home(pd_vault_client_t *c)
{
    uint64_t now = pd_mono_ms();
    if (c->naddrs < 2 || c->cur == 0 || c->fd < 0 || now < c->next_home_ms)
        return;
    c->next_home_ms = now + ADDR_HOME_MS;
    pthread_mutex_lock(&c->mu);
    bool idle = c->npending == 0 && c->wbuf.len == 0;
    pthread_mutex_unlock(&c->mu);
    if (!idle || c->down_until[0] > now)
        return;
    SSL *ssl = NULL;
    int fd = connect_tls(c, 0, &ssl);
    if (fd < 0) {
        c->down_until[0] = pd_mono_ms() + ADDR_DOWN_MS;
        return;
    }
    if (install(c, fd, ssl, true)) {
        c->cur = 0;
        pd_log_info("vault client: back on the first vault instance", PD_LS("vault", c->addrs[0]),
                    PD_LS("principal", c->principal));
    }
}

static void
disconnect(pd_vault_client_t *c, int rc)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    pthread_mutex_lock(&c->mu);
    c->connected = false;
    /* unsent frames belong to the requests failed below, and the head of the buffer may
     * be the rest of a frame half written: a new connection starts clean */
    if (c->wbuf.p != NULL)
        OPENSSL_cleanse(c->wbuf.p, c->wbuf.len);
    c->wbuf.len = 0;
    pthread_mutex_unlock(&c->mu);
    OPENSSL_cleanse(c->rbuf.p, c->rbuf.cap);
    c->rbuf.len = 0;
    fail_all(c, rc);
}

static void *
io_main(void *arg)
{
    pd_vault_client_t *c = arg;
    uint64_t next_retry = 0;
    pthread_setname_np(pthread_self(), "payd-vaultcli");
    for (;;) {
        pthread_mutex_lock(&c->mu);
        int adopt = c->adopt_fd;
        c->adopt_fd = -1;
        pthread_mutex_unlock(&c->mu);
        if (adopt >= 0) {
            /* a restarted child vault: what was in flight on the old connection is lost */
            disconnect(c, PD_ERR_CLOSED);
            fcntl(adopt, F_SETFL, fcntl(adopt, F_GETFL) | O_NONBLOCK);
            pthread_mutex_lock(&c->mu);
            c->fd = adopt;
            c->connected = true;
            pthread_mutex_unlock(&c->mu);
        }
        pthread_mutex_lock(&c->mu);
        bool stopping = c->stopping, want_write = c->wbuf.len > 0 || (c->ssl != NULL && SSL_want_write(c->ssl));
        pthread_mutex_unlock(&c->mu);
        if (stopping)
            break;
        if (c->fd < 0 && remote(c) && pd_mono_ms() >= next_retry) {
            try_connect(c);
            next_retry = pd_mono_ms() + 200;
        }
        try_home(c);
        struct pollfd pfd[2] = {{.fd = c->wake, .events = POLLIN},
                                {.fd = c->fd, .events = (short)(POLLIN | (want_write ? POLLOUT : 0))}};
        int pr = poll(pfd, c->fd >= 0 ? 2 : 1, 50);
        if (pr < 0 && errno != EINTR)
            break;
        if (pfd[0].revents & POLLIN) {
            uint64_t v;
            if (read(c->wake, &v, sizeof(v)) < 0) {
                /* nothing to do: spurious wakeup */
            }
        }
        if (c->fd >= 0 && (pfd[1].revents & POLLOUT)) {
            pthread_mutex_lock(&c->mu);
            ssize_t n = c->wbuf.len > 0 ? pd_vt_write(c->fd, c->ssl, c->wbuf.p, c->wbuf.len) : 0;
            if (n > 0) {
                OPENSSL_cleanse(c->wbuf.p, (size_t)n);
                memmove(c->wbuf.p, c->wbuf.p + n, c->wbuf.len - (size_t)n);
                c->wbuf.len -= (size_t)n;
            }
            pthread_mutex_unlock(&c->mu);
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                disconnect(c, PD_ERR_CLOSED);
                continue;
            }
        }
        if (c->fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            bool lost = false;
            for (;;) {
                if (pd_buf_reserve(&c->rbuf, 65536) != 0)
                    break;
                ssize_t n = pd_vt_read(c->fd, c->ssl, c->rbuf.p + c->rbuf.len, c->rbuf.cap - c->rbuf.len - 1);
                if (n > 0) {
                    c->rbuf.len += (size_t)n;
                    continue;
                }
                lost = n == 0 || (errno != EAGAIN && errno != EINTR);
                break;
            }
            size_t off = 0;
            while (c->rbuf.len - off >= PD_IPC_HEADER) {
                pd_ipc_hdr_t h;
                if (pd_ipc_hdr_decode(c->rbuf.p + off, &h) != 0) {
                    lost = true;
                    break;
                }
                if (c->rbuf.len - off - PD_IPC_HEADER < h.len)
                    break;
                pd_view_t payload = pd_view(c->rbuf.p + off + PD_IPC_HEADER, h.len);
                if (h.id == c->auth_id && h.id != 0) {
                    if (h.type != (PD_MSG_AUTH | PD_MSG_REPLY))
                        lost = true;
                } else {
                    handle_frame(c, &h, payload);
                }
                off += PD_IPC_HEADER + h.len;
            }
            if (off > 0) {
                OPENSSL_cleanse(c->rbuf.p, off);
                memmove(c->rbuf.p, c->rbuf.p + off, c->rbuf.len - off);
                c->rbuf.len -= off;
            }
            if (lost || !c->connected) {
                disconnect(c, PD_ERR_CLOSED);
                continue;
            }
        }
        expire(c);
    }
    return NULL;
}

int
pd_vault_parse_addresses(const char *list, char out[][300], int max, int *n)
{
    *n = 0;
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        char host[256];
        uint16_t port;
        if (*n == max || len == 0 || len >= 300)
            return PD_ERR_CONFIG;
        memcpy(out[*n], p, len);
        out[*n][len] = '\0';
        if (pd_config_parse_addr(out[*n], host, sizeof(host), &port) != 0)
            return PD_ERR_CONFIG;
        (*n)++;
        if (e == NULL)
            return 0;
        p = e + 1;
    }
}

int
pd_vault_client_new(pd_vault_client_t **out, const pd_vault_client_opts_t *o)
{
    pd_vault_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return PD_ERR_NOMEM;
    c->fd = -1;
    c->adopt_fd = -1;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    pthread_mutex_init(&c->mu, NULL);
    pd_buf_init(&c->wbuf, WBUF_MAX);
    pd_buf_init(&c->rbuf, RBUF_MAX);
    if ((c->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        free(c);
        return -errno;
    }
    if (o->fd >= 0) {
        c->fd = o->fd;
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        c->connected = true;
    } else {
        const char *where = o->tcp_address != NULL ? o->tcp_address : o->socket_path;
        char err[300];
        if (where == NULL || (o->tcp_address == NULL && strlen(where) >= sizeof(c->path)) ||
            (o->tcp_address != NULL && pd_vault_parse_addresses(o->tcp_address, c->addrs, MAX_ADDRS, &c->naddrs) != 0) ||
            o->principal == NULL || o->credential == NULL ||
            strlen(o->credential) >= sizeof(c->credential) ||
            (o->tcp_address != NULL && (o->tls_cert == NULL || o->tls_key == NULL || o->tls_ca == NULL))) {
            close(c->wake);
            free(c);
            return PD_ERR_INVALID;
        }
        if (o->tcp_address != NULL) {
            if ((c->tls = pd_vt_tls_ctx(false, o->tls_cert, o->tls_key, o->tls_ca, err, sizeof(err))) == NULL) {
                pd_log_error("vault client: TLS setup failed", PD_LS("reason", err));
                close(c->wake);
                free(c);
                return PD_ERR_CONFIG;
            }
        } else {
            snprintf(c->path, sizeof(c->path), "%s", o->socket_path);
        }
        snprintf(c->principal, sizeof(c->principal), "%s", o->principal);
        snprintf(c->credential, sizeof(c->credential), "%s", o->credential);
        try_connect(c);
        if (c->fd < 0) {
            SSL *ssl;
            int e = connect_socket(c, &ssl); /* for the error code */
            if (e >= 0) {
                SSL_free(ssl);
                close(e);
            }
            close(c->wake);
            SSL_CTX_free(c->tls);
            OPENSSL_cleanse(c->credential, sizeof(c->credential));
            free(c);
            return e < 0 ? e : PD_ERR_UNAVAILABLE;
        }
    }
    if (pthread_create(&c->thread, NULL, io_main, c) != 0) {
        close(c->wake);
        free(c);
        return PD_ERR_INTERNAL;
    }
    *out = c;
    return 0;
}

void
pd_vault_client_free(pd_vault_client_t *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_mutex_unlock(&c->mu);
    uint64_t one = 1;
    if (write(c->wake, &one, sizeof(one)) < 0) {
        /* saturated: the thread will see stopping within its poll interval */
    }
    pthread_join(c->thread, NULL);
    if (c->adopt_fd >= 0)
        close(c->adopt_fd);
    SSL_free(c->ssl);
    c->ssl = NULL;
    SSL_CTX_free(c->tls);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    fail_all(c, PD_ERR_CLOSED);
    close(c->wake);
    pd_buf_free_secure(&c->wbuf);
    pd_buf_free_secure(&c->rbuf);
    OPENSSL_cleanse(c->credential, sizeof(c->credential));
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void
pd_vault_client_adopt_fd(pd_vault_client_t *c, int fd)
{
    pthread_mutex_lock(&c->mu);
    if (c->adopt_fd >= 0)
        close(c->adopt_fd);
    c->adopt_fd = fd;
    pthread_mutex_unlock(&c->mu);
    uint64_t one = 1;
    if (write(c->wake, &one, sizeof(one)) < 0) {
        /* saturated: the thread looks within its poll interval */
    }
}

bool
pd_vault_client_connected(pd_vault_client_t *c)
{
    pthread_mutex_lock(&c->mu);
    bool up = c->connected;
    pthread_mutex_unlock(&c->mu);
    return up;
}

void
pd_vault_client_on_secret_change(pd_vault_client_t *c, void (*fn)(void *arg, const char *name), void *arg)
{
    pthread_mutex_lock(&c->mu);
    c->on_change = fn;
    c->on_change_arg = arg;
    pthread_mutex_unlock(&c->mu);
}

void
pd_vault_reply_free(pd_vault_reply_t *r)
{
    if (r == NULL)
        return;
    pd_buf_free_secure(&r->data);
    pd_buf_free_secure(&r->data2);
}

/* encodes with f into a scratch buffer, then enqueues */
#define SEND(c, type, kind, cb, arg, ENC)                                                                             \
    do {                                                                                                               \
        pd_buf_t _p;                                                                                                   \
        pd_buf_init(&_p, PD_IPC_MAX_PAYLOAD);                                                                          \
        int _r = (ENC);                                                                                                \
        if (_r == 0)                                                                                                   \
            _r = enqueue((c), (type), pd_buf_view(&_p), (kind), (void *)(cb), (arg));                                 \
        pd_buf_free_secure(&_p);                                                                                       \
        return _r;                                                                                                     \
    } while (0)

int
pd_vault_tokenize(pd_vault_client_t *c, const pd_vault_card_in_t *in, pd_vault_card_cb cb, void *arg)
{
    SEND(c, PD_MSG_TOKENIZE, K_CARD, cb, arg, pd_msg_tokenize_enc(&_p, in));
}

int
pd_vault_card_get(pd_vault_client_t *c, const char *merchant, const char *token, pd_vault_card_cb cb, void *arg)
{
    SEND(c, PD_MSG_CARD_GET, K_CARD, cb, arg, pd_msg_ref_enc(&_p, merchant, token));
}

int
pd_vault_detokenize(pd_vault_client_t *c, const char *merchant, const char *token, pd_vault_pan_cb cb, void *arg)
{
    SEND(c, PD_MSG_DETOKENIZE, K_PAN, cb, arg, pd_msg_ref_enc(&_p, merchant, token));
}

int
pd_vault_card_delete(pd_vault_client_t *c, const char *merchant, const char *token, pd_vault_cb cb, void *arg)
{
    SEND(c, PD_MSG_CARD_DELETE, K_GENERIC, cb, arg, pd_msg_ref_enc(&_p, merchant, token));
}

int
pd_vault_encrypt(pd_vault_client_t *c, const char *key, pd_view_t context, pd_view_t pt, pd_vault_cb cb, void *arg)
{
    SEND(c, PD_MSG_ENCRYPT, K_GENERIC, cb, arg, pd_msg_kms_enc(&_p, key, context, pt));
}

int
pd_vault_encrypt_batch(pd_vault_client_t *c, const char *key, const pd_vault_batch_item_t *items, size_t n,
                       pd_vault_cb cb, void *arg)
{
    SEND(c, PD_MSG_ENCRYPT_BATCH, K_GENERIC, cb, arg, pd_msg_encrypt_batch_enc(&_p, key, items, n));
}

int
pd_vault_decrypt(pd_vault_client_t *c, pd_view_t context, pd_view_t env, pd_vault_cb cb, void *arg)
{
    SEND(c, PD_MSG_DECRYPT, K_GENERIC, cb, arg, pd_msg_kms_enc(&_p, "", context, env));
}

int
pd_vault_generate_data_key(pd_vault_client_t *c, const char *key, pd_view_t context, pd_vault_cb cb, void *arg)
{
    SEND(c, PD_MSG_GENERATE_DATA_KEY, K_GENERIC, cb, arg, pd_msg_kms_enc(&_p, key, context, PD_VIEW_NULL));
}

int
pd_vault_reencrypt(pd_vault_client_t *c, pd_view_t context, pd_view_t env, pd_vault_cb cb, void *arg)
{
    SEND(c, PD_MSG_REENCRYPT, K_GENERIC, cb, arg, pd_msg_kms_enc(&_p, "", context, env));
}

int
pd_vault_secret_get(pd_vault_client_t *c, const char *name, pd_vault_cb cb, void *arg)
{
    SEND(c, PD_MSG_SECRET_GET, K_GENERIC, cb, arg, pd_msg_name_enc(&_p, name));
}

/* encodes an admin operation as its own message type (admin_req.c) and sends it;
 * err gets the reason when the request cannot be made */
static int
admin_send(pd_vault_client_t *c, const char *op, pd_view_t args_json, pd_vault_cb cb, void *arg, char *err,
           size_t errcap)
{
    pd_buf_t p;
    uint16_t type = 0;
    pd_buf_init(&p, PD_IPC_MAX_PAYLOAD);
    int r = pd_msg_admin_request(op, args_json, &type, &p, err, errcap);
    if (r == 0)
        r = enqueue(c, type, pd_buf_view(&p), K_GENERIC, (void *)cb, arg);
    pd_buf_free_secure(&p);
    return r;
}

int
pd_vault_admin(pd_vault_client_t *c, const char *op, pd_view_t args_json, pd_vault_cb cb, void *arg)
{
    char err[256];
    int r = admin_send(c, op, args_json, cb, arg, err, sizeof(err));
    if (r == PD_ERR_INVALID)
        pd_log_warn("vault client: admin request not sent", PD_LS("reason", err));
    return r;
}

/* --- blocking wrappers --- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
    pd_vault_reply_t *reply;
    pd_vault_card_t *card;
    pd_vault_pan_t *pan;
} waiter_t;

#define WAITER_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, NULL, NULL, NULL}

static void
signal_done(waiter_t *w, int rc)
{
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int
wait_done(waiter_t *w, int submit_rc)
{
    if (submit_rc != 0)
        return submit_rc;
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return w->rc;
}

static void
on_generic(void *arg, int rc, const pd_vault_reply_t *r)
{
    waiter_t *w = arg;
    pd_vault_reply_t *out = w->reply;
    memset(out, 0, sizeof(*out));
    pd_buf_init(&out->data, PD_MSG_JSON_MAX);
    pd_buf_init(&out->data2, PD_MSG_DATA_MAX);
    if (r != NULL) {
        memcpy(out->text, r->text, sizeof(out->text));
        out->n1 = r->n1;
        out->n2 = r->n2;
        if (pd_buf_put(&out->data, r->data.p, r->data.len) != 0 || pd_buf_put(&out->data2, r->data2.p, r->data2.len) != 0)
            rc = rc == 0 ? PD_ERR_NOMEM : rc;
    }
    signal_done(w, rc);
}

static void
on_card(void *arg, int rc, const pd_vault_card_t *card)
{
    waiter_t *w = arg;
    if (card != NULL)
        *w->card = *card;
    signal_done(w, rc);
}

static void
on_pan(void *arg, int rc, pd_vault_pan_t *pan)
{
    waiter_t *w = arg;
    if (pan != NULL)
        *w->pan = *pan;
    signal_done(w, rc);
}

int
pd_vault_admin_sync(pd_vault_client_t *c, const char *op, pd_view_t args_json, pd_vault_reply_t *out)
{
    waiter_t w = WAITER_INIT;
    w.reply = out;
    memset(out, 0, sizeof(*out));
    /* a request that cannot be made says why in out->text, as the vault's errors do */
    return wait_done(&w, admin_send(c, op, args_json, on_generic, &w, out->text, sizeof(out->text)));
}

int
pd_vault_secret_get_sync(pd_vault_client_t *c, const char *name, pd_vault_reply_t *out)
{
    waiter_t w = WAITER_INIT;
    w.reply = out;
    memset(out, 0, sizeof(*out));
    return wait_done(&w, pd_vault_secret_get(c, name, on_generic, &w));
}

int
pd_vault_encrypt_sync(pd_vault_client_t *c, const char *key, pd_view_t context, pd_view_t pt, pd_vault_reply_t *out)
{
    waiter_t w = WAITER_INIT;
    w.reply = out;
    memset(out, 0, sizeof(*out));
    return wait_done(&w, pd_vault_encrypt(c, key, context, pt, on_generic, &w));
}

int
pd_vault_decrypt_sync(pd_vault_client_t *c, pd_view_t context, pd_view_t env, pd_vault_reply_t *out)
{
    waiter_t w = WAITER_INIT;
    w.reply = out;
    memset(out, 0, sizeof(*out));
    return wait_done(&w, pd_vault_decrypt(c, context, env, on_generic, &w));
}

int
pd_vault_generate_data_key_sync(pd_vault_client_t *c, const char *key, pd_view_t context, pd_vault_reply_t *out)
{
    waiter_t w = WAITER_INIT;
    w.reply = out;
    memset(out, 0, sizeof(*out));
    return wait_done(&w, pd_vault_generate_data_key(c, key, context, on_generic, &w));
}

int
pd_vault_tokenize_sync(pd_vault_client_t *c, const pd_vault_card_in_t *in, pd_vault_card_t *out)
{
    waiter_t w = WAITER_INIT;
    w.card = out;
    return wait_done(&w, pd_vault_tokenize(c, in, on_card, &w));
}

int
pd_vault_detokenize_sync(pd_vault_client_t *c, const char *merchant, const char *token, pd_vault_pan_t *out)
{
    waiter_t w = WAITER_INIT;
    w.pan = out;
    return wait_done(&w, pd_vault_detokenize(c, merchant, token, on_pan, &w));
}
