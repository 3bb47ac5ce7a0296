/*
 * Accepting connections: the open-file limit, the connection limits, what happens
 * when descriptors run out, and the start of TLS and HTTP on an accepted socket.
 *
 * payd accepts itself (accept4 on the listener) instead of h2o_evloop_socket_accept:
 * the peer address is known before any h2o object exists, so a connection past
 * [api] max_connections or max_connections_per_ip costs an accept and a close (with
 * a reset, and a flow-log record), and EMFILE/ENFILE are seen as such. On EMFILE the
 * loop gives up its reserve descriptor to accept and close the first queued client
 * (it learns at once instead of waiting for a handshake that cannot happen), and its
 * listener rests 100 ms: a listener left readable with the queue full would wake the
 * loop over and over (the audit measured 191 % CPU in failing accept4 calls).
 *
 * TLS: h2o_accept's handshake, with payd's own completion (pd_tls_complete), so that
 * an HTTP/2 connection gets its guard (h2guard.c) before libh2o reads a frame of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/http2.h>
#include <openssl/ssl.h>

#include "edge/internal.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/time.h"

#define ACCEPT_PAUSE_MS 100

static pd_warn_limit_t out_of_fds_warn = PD_WARN_LIMIT_INIT;

int
pd_accept_setup(pd_server_t *s)
{
    struct rlimit rl;
    uint64_t max;
    int r;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            r = -errno;
            pd_log_error("cannot raise the open-file limit", PD_LI("soft", (int64_t)was),
                         PD_LI("hard", (int64_t)rl.rlim_max), PD_LERR(r));
            return r;
        }
        pd_log_info("raised the open-file limit to the hard limit", PD_LI("from", (int64_t)was),
                    PD_LI("to", (int64_t)rl.rlim_cur));
    }
    uint64_t nofile = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    if (s->api->max_connections > 0) {
        max = (uint64_t)s->api->max_connections;
        if (max + PD_EDGE_FD_RESERVE > nofile)
            pd_log_warn("[api] max_connections leaves fewer than 256 descriptors of the open-file limit to the rest of "
                        "payd; accepts may fail with EMFILE",
                        PD_LI("max_connections", (int64_t)max), PD_LI("open_file_limit", (int64_t)nofile));
    } else {
        max = nofile > PD_EDGE_FD_RESERVE * 2 ? nofile - PD_EDGE_FD_RESERVE : nofile / 2;
        if (max > 10000000)
            max = 10000000;
    }
    if ((r = pd_conn_limit_new(&s->limit, max, (uint64_t)s->api->max_connections_per_ip)) != 0)
        return r;
    pd_log_info("connection limits", PD_LI("max_connections", (int64_t)max),
                PD_LI("max_connections_per_ip", s->api->max_connections_per_ip),
                PD_LI("open_file_limit", (int64_t)nofile));
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err);

static void
resume(pd_loop_t *loop, h2o_socket_t *listener)
{
    if (listener != NULL && !loop->drain_started)
        h2o_socket_read_start(listener, on_accept);
}

static void
on_api_resume(h2o_timeout_entry_t *e)
{
    pd_loop_t *loop = H2O_STRUCT_FROM_MEMBER(pd_loop_t, api_resume, e);
    resume(loop, loop->api_sock);
}

static void
on_admin_resume(h2o_timeout_entry_t *e)
{
    pd_loop_t *loop = H2O_STRUCT_FROM_MEMBER(pd_loop_t, admin_resume, e);
    resume(loop, loop->admin_sock);
}

void
pd_accept_loop_init(pd_loop_t *loop)
{
    loop->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    h2o_timeout_init(loop->evloop, &loop->accept_pause, ACCEPT_PAUSE_MS);
    loop->api_resume.cb = on_api_resume;
    loop->admin_resume.cb = on_admin_resume;
}

void
pd_accept_start(h2o_socket_t *listener)
{
    h2o_socket_read_start(listener, on_accept);
}

void
pd_accept_loop_stop(pd_loop_t *loop)
{
    h2o_timeout_unlink(&loop->api_resume);
    h2o_timeout_unlink(&loop->admin_resume);
}

static void
on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    /* a few per wakeup; the kernel balances between threads */
    pd_accept_queued(listener->data, listener, 16);
}

/* closes with a reset: the client learns at once, and no TIME_WAIT is left here */
static void
close_reset(int fd)
{
    struct linger lg = {1, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* EMFILE/ENFILE: refuse the first queued client with the reserve descriptor, rest the listener */
static void
out_of_fds(pd_loop_t *loop, h2o_socket_t *listener, pd_listener_kind_t kind, int err)
{
    pd_server_t *s = loop->srv;
    uint64_t n;

    atomic_fetch_add(&s->stats.out_of_fds, 1);
    if (pd_warn_limit(&out_of_fds_warn, &n))
        pd_log_warn("accept: out of file descriptors; refusing connections and pausing the listener",
                    PD_LS("error", err == EMFILE ? "EMFILE" : "ENFILE"), PD_LI("times", (int64_t)n),
                    PD_LI("pause_ms", ACCEPT_PAUSE_MS), PD_LI("open_connections", (int64_t)pd_conn_limit_open(s->limit, NULL)));
    if (loop->reserve_fd >= 0) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        close(loop->reserve_fd);
        int fd = accept4(h2o_socket_get_fd(listener), (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (fd >= 0) {
            pd_conn_log_refused(loop, kind, (struct sockaddr *)&ss, "out of file descriptors");
            close_reset(fd);
        }
        loop->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    if (loop->drain_started)
        return; /* the listener is being closed */
    h2o_socket_read_stop(listener);
    h2o_timeout_entry_t *e = listener == loop->api_sock ? &loop->api_resume : &loop->admin_resume;
    if (!h2o_timeout_is_linked(e))
        h2o_timeout_link(loop->evloop, &loop->accept_pause, e);
}

/* TLS: h2o_accept's handshake, finished by pd_tls_complete */
typedef struct {
    h2o_timeout_entry_t timeout;
    h2o_socket_t *sock;
    h2o_accept_ctx_t *actx;
    pd_loop_t *loop;
    struct timeval connected_at;
} handshake_t;

static void
on_handshake_timeout(h2o_timeout_entry_t *e)
{
    handshake_t *h = H2O_STRUCT_FROM_MEMBER(handshake_t, timeout, e);
    h2o_socket_t *sock = h->sock;
    pd_mx_inc(PD_MX_TLS_HANDSHAKES, PD_MX_TLS_TIMEOUT);
    sock->data = NULL;
    free(h);
    h2o_socket_close(sock);
}

static void
on_handshake(h2o_socket_t *sock, const char *err)
{
    handshake_t *h = sock->data;
    sock->data = NULL;
    h2o_timeout_unlink(&h->timeout);
    h2o_accept_ctx_t *actx = h->actx;
    pd_loop_t *loop = h->loop;
    struct timeval at = h->connected_at;
    free(h);
    pd_mx_inc(PD_MX_TLS_HANDSHAKES, err != NULL ? PD_MX_TLS_FAILURE : PD_MX_TLS_SUCCESS);
    if (err != NULL) {
        h2o_socket_close(sock);
        return;
    }
    h2o_iovec_t proto = h2o_socket_ssl_get_selected_protocol(sock);
    for (const h2o_iovec_t *id = h2o_http2_alpn_protocols; id->len != 0; id++) {
        if (proto.len == id->len && memcmp(proto.base, id->base, proto.len) == 0) {
            pd_h2guard_accept(loop, actx, sock, at);
            return;
        }
    }
    h2o_http1_accept(actx, sock, at);
}

static void
start_tls(pd_loop_t *loop, h2o_accept_ctx_t *actx, h2o_socket_t *sock)
{
    handshake_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        h2o_socket_close(sock);
        return;
    }
    h->sock = sock;
    h->actx = actx;
    h->loop = loop;
    h->connected_at = *h2o_get_timestamp(actx->ctx, NULL, NULL);
    h->timeout.cb = on_handshake_timeout;
    h2o_timeout_link(actx->ctx->loop, &actx->ctx->handshake_timeout, &h->timeout);
    sock->data = h;
    h2o_socket_ssl_handshake(sock, actx->ssl_ctx, NULL, on_handshake);
}

void
pd_accept_queued(pd_loop_t *loop, h2o_socket_t *listener, size_t max)
{
    pd_server_t *s = loop->srv;
    pd_listener_kind_t kind = listener == loop->api_sock ? PD_L_API : PD_L_ADMIN;
    h2o_accept_ctx_t *actx = kind == PD_L_API ? &loop->api_accept : &loop->admin_accept;
    int lfd = h2o_socket_get_fd(listener), one = 1;

    /* pick up a reloaded certificate for new connections */
    if (actx->ssl_ctx != NULL && loop->tls_gen != atomic_load(&s->tls_gen)) {
        pthread_mutex_lock(&s->tls_mu);
        SSL_CTX_up_ref(s->tls_ctx);
        SSL_CTX_free(loop->api_accept.ssl_ctx);
        loop->api_accept.ssl_ctx = s->tls_ctx;
        loop->tls_gen = atomic_load(&s->tls_gen);
        pthread_mutex_unlock(&s->tls_mu);
    }
    for (size_t i = 0; i < max; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        uint8_t key[16] = {0};
        const char *why = NULL;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                out_of_fds(loop, listener, kind, errno);
            break; /* EAGAIN: nothing queued */
        }
        /* the limits count API connections: the admin listener is loopback only */
        bool counted = kind == PD_L_API && pd_conn_limit_key((struct sockaddr *)&ss, key);
        if (counted && pd_conn_limit_take(s->limit, key, &why) != 0) {
            bool all = strcmp(why, "max_connections") == 0;
            atomic_fetch_add(all ? &s->stats.refused_max_connections : &s->stats.refused_per_ip, 1);
            pd_mx_inc(PD_MX_LIMIT_REFUSALS, all ? PD_MX_LIMIT_MAX_CONNECTIONS : PD_MX_LIMIT_MAX_CONNECTIONS_PER_IP);
            pd_conn_log_refused(loop, kind, (struct sockaddr *)&ss, why);
            close_reset(fd);
            continue;
        }
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        h2o_socket_t *sock = h2o_evloop_socket_create(loop->evloop, fd, H2O_SOCKET_FLAG_IS_ACCEPTED_CONNECTION);
        /* an untracked connection would not hold up the drain: refuse it */
        if (pd_conn_track(loop, sock, kind, counted, key) != 0) {
            if (counted)
                pd_conn_limit_give(s->limit, key);
            h2o_socket_close(sock);
            continue;
        }
        if (actx->ssl_ctx != NULL)
            start_tls(loop, actx, sock);
        else
            h2o_accept(actx, sock);
    }
}
