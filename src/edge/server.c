/*
 * Event-loop threads, listeners, and the lifecycle of the edge (start, reload, drain).
 *
 * Each loop thread owns an h2o event loop, an h2o context and its own listening
 * sockets (SO_REUSEPORT, so the kernel spreads connections without a shared accept
 * lock). The main thread only starts, reloads and drains.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stddef.h>

#include <h2o.h>
#include <openssl/ssl.h>

#include "edge/internal.h"
#include "payd/log.h"
#include "payd/time.h"

static void
on_task(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_linklist_t *link = messages->next;
        h2o_linklist_unlink(link);
        pd_task_t *t = (pd_task_t *)(void *)link;
        t->fn(t);
    }
}

void
pd_loop_post(pd_loop_t *loop, pd_task_t *t)
{
    _Static_assert(sizeof(((pd_task_t *)0)->_link) == sizeof(h2o_linklist_t), "link layout");
    memset(t->_link, 0, sizeof(t->_link));
    h2o_multithread_send_message(&loop->receiver, (h2o_multithread_message_t *)(void *)t);
}

static void
on_later(h2o_timeout_entry_t *e)
{
    pd_later_t *t = (pd_later_t *)(void *)e;
    t->fn(t);
}

void
pd_loop_later(pd_loop_t *loop, pd_later_t *t)
{
    _Static_assert(sizeof(((pd_later_t *)0)->_entry) >= sizeof(h2o_timeout_entry_t), "entry layout");
    _Static_assert(offsetof(pd_later_t, _entry) == 0, "entry first");
    h2o_timeout_entry_t *e = (h2o_timeout_entry_t *)(void *)t->_entry;
    memset(e, 0, sizeof(*e));
    e->cb = on_later;
    h2o_timeout_link(loop->evloop, &loop->later, e);
}

int
pd_loop_index(const pd_loop_t *loop)
{
    return loop->index;
}

pd_server_t *
pd_loop_server(pd_loop_t *loop)
{
    return loop->srv;
}

/* Closes the listeners. Connections the kernel has queued on them would be reset
 * with the socket: they are accepted first and served like the others. */
static void
stop_listening(pd_loop_t *loop)
{
    pd_accept_loop_stop(loop);
    if (loop->api_sock != NULL) {
        pd_accept_queued(loop, loop->api_sock, SIZE_MAX);
        h2o_socket_read_stop(loop->api_sock);
        h2o_socket_close(loop->api_sock);
        loop->api_sock = NULL;
    }
    if (loop->admin_sock != NULL) {
        pd_accept_queued(loop, loop->admin_sock, SIZE_MAX);
        h2o_socket_read_stop(loop->admin_sock);
        h2o_socket_close(loop->admin_sock);
        loop->admin_sock = NULL;
    }
}

/* Starts this loop's drain (see pd_server_drain): once, on the loop thread. */
static void
drain_begin(pd_loop_t *loop)
{
    const pd_edge_api_config_t *api = loop->srv->api;
    int64_t grace = api->drain_grace_ms < api->drain_timeout_ms ? api->drain_grace_ms : api->drain_timeout_ms;

    if (loop->drain_started)
        return;
    loop->drain_started = true;
    loop->grace_end_ms = pd_mono_ms() + (uint64_t)grace;
    stop_listening(loop);
    /* HTTP/2: GOAWAY; HTTP/1: requests read from now on are answered Connection: close */
    h2o_context_request_shutdown(&loop->ctx);
}

static void
on_drain_task(pd_task_t *t)
{
    drain_begin((pd_loop_t *)(void *)((char *)t - offsetof(pd_loop_t, drain_task)));
}

/* One step of a started drain; true when the loop may end: nothing in flight, no connection open. */
static bool
drain_step(pd_loop_t *loop)
{
    if (pd_mono_ms() >= loop->grace_end_ms) {
        size_t n = pd_conn_close_idle(loop);
        if (n > 0)
            pd_log_debug("drain: closed idle connections", PD_LI("loop", loop->index), PD_LI("closed", (int64_t)n),
                         PD_LI("open", (int64_t)loop->nconns));
    }
    return loop->inflight == 0 && loop->nconns == 0;
}

/*
 * Creates the loop's h2o objects on the loop thread itself: h2o sockets take their
 * buffer allocator from the creating thread's thread-local prototype, so a socket
 * made on another thread (the task queue's pipe, the listeners) would share that
 * thread's recycling allocator with every loop, unlocked.
 */
static void
loop_setup(pd_loop_t *l)
{
    pd_server_t *s = l->srv;
    h2o_linklist_init_anchor(&l->conns);
    l->drain_task.fn = on_drain_task;
    l->evloop = h2o_evloop_create();
    h2o_context_init(&l->ctx, l->evloop, &s->gconf);
    pd_accept_loop_init(l);
    h2o_timeout_init(l->evloop, &l->later, PD_LOOP_LATER_MS);
    l->queue = h2o_multithread_create_queue(l->ctx.loop);
    h2o_multithread_register_receiver(l->queue, &l->receiver, on_task);
    l->api_accept.ctx = &l->ctx;
    l->api_accept.hosts = s->api_hosts;
    pthread_mutex_lock(&s->tls_mu);
    SSL_CTX_up_ref(s->tls_ctx);
    l->api_accept.ssl_ctx = s->tls_ctx;
    pthread_mutex_unlock(&s->tls_mu);
    l->tls_gen = 1;
    l->api_sock = h2o_evloop_socket_create(l->evloop, l->api_fd, H2O_SOCKET_FLAG_DONT_READ);
    l->api_sock->data = l;
    pd_accept_start(l->api_sock);
    if (l->admin_fd >= 0) {
        l->admin_accept.ctx = &l->ctx;
        l->admin_accept.hosts = s->admin_hosts;
        l->admin_sock = h2o_evloop_socket_create(l->evloop, l->admin_fd, H2O_SOCKET_FLAG_DONT_READ);
        l->admin_sock->data = l;
        pd_accept_start(l->admin_sock);
    }
}

static void *
loop_main(void *arg)
{
    pd_loop_t *loop = arg;
    pd_server_t *s = loop->srv;
    char name[16];

    snprintf(name, sizeof(name), "payd-loop-%d", loop->index);
    pthread_setname_np(pthread_self(), name);
    loop_setup(loop);
    atomic_store(&loop->turned_ms, pd_mono_ms());
    sem_post(&loop->ready);
    while (!atomic_load(&loop->stop)) {
        h2o_evloop_run(loop->evloop, 100);
        atomic_store(&loop->turned_ms, pd_mono_ms()); /* the heartbeat: at least every 100 ms plus the work */
        pd_h2guard_sweep(loop);
        if (s->tick_fn != NULL)
            s->tick_fn(false, s->tick_arg);
        if (atomic_load(&s->closing))
            drain_begin(loop); /* in case its task has not run yet */
        if (loop->drain_started && drain_step(loop))
            break;
    }
    stop_listening(loop);
    if (s->tick_fn != NULL)
        s->tick_fn(true, s->tick_arg);
    atomic_store(&loop->exited, true);
    return NULL;
}

/* true when a socket that does not share its port is refused the address: something
 * else holds it (a listener of our own would not exist yet) */
static bool
port_taken(const struct addrinfo *ai)
{
    int one = 1, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false; /* the real bind reports the error */
    bool taken = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
                 bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

static int
make_listener(const char *addr, uint16_t *port_io, bool reuseport, bool *is_loopback)
{
    char host[256], portstr[8];
    uint16_t port;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int fd = -1, one = 1;

    if (pd_config_parse_addr(addr, host, sizeof(host), &port) != 0)
        return PD_ERR_CONFIG;
    if (*port_io != 0)
        port = *port_io; /* later threads join the port the first one got */
    snprintf(portstr, sizeof(portstr), "%u", port);
    if (getaddrinfo(host, portstr, &hints, &ai) != 0 || ai == NULL)
        return PD_ERR_CONFIG;
    if (is_loopback != NULL) {
        if (ai->ai_family == AF_INET)
            *is_loopback = (ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) >> 24) == 127;
        else
            *is_loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
    }
    /* SO_REUSEPORT would let this process join another one's listening port, and the
     * kernel would split the connections between two payds (two databases): the first
     * listener of an address checks first, with a bind that may not share the port */
    if (reuseport && *port_io == 0 && port != 0 && port_taken(ai)) {
        pd_log_error("another process already listens on this address", PD_LS("addr", addr));
        freeaddrinfo(ai);
        return -EADDRINUSE;
    }
    if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        goto fail;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        goto fail;
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0)
        goto fail;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        goto fail;
    *port_io = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                             : ((struct sockaddr_in6 *)&ss)->sin6_port);
    freeaddrinfo(ai);
    return fd;
fail: {
    int e = -errno;
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return e;
}
}

int
pd_server_new(pd_server_t **out, const pd_edge_api_config_t *api, const pd_edge_admin_config_t *admin,
              pd_router_t *router)
{
    pd_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return PD_ERR_NOMEM;
    s->api = api;
    s->admin = admin;
    s->router = router;
    pthread_mutex_init(&s->tls_mu, NULL);
    *out = s;
    return 0;
}

int
pd_server_add_filter(pd_server_t *s, pd_stage_t stage, pd_filter_fn fn, void *arg)
{
    if ((unsigned)stage > PD_STAGE_PARSED || s->nfilters[stage] == PD_EDGE_MAX_FILTERS)
        return PD_ERR_TOOBIG;
    s->filters[stage][s->nfilters[stage]].fn = fn;
    s->filters[stage][s->nfilters[stage]++].arg = arg;
    return 0;
}

int
pd_server_add_probe(pd_server_t *s, const char *name, pd_ready_fn fn, void *arg)
{
    if (s->nprobes == PD_EDGE_MAX_PROBES)
        return PD_ERR_TOOBIG;
    s->probes[s->nprobes].name = name;
    s->probes[s->nprobes].fn = fn;
    s->probes[s->nprobes++].arg = arg;
    return 0;
}

int
pd_server_on_finish(pd_server_t *s, pd_finish_fn fn, void *arg)
{
    if (s->nfinish == PD_EDGE_MAX_FILTERS)
        return PD_ERR_TOOBIG;
    s->finish[s->nfinish].fn = fn;
    s->finish[s->nfinish++].arg = arg;
    return 0;
}

void
pd_server_on_tick(pd_server_t *s, pd_tick_fn fn, void *arg)
{
    s->tick_fn = fn;
    s->tick_arg = arg;
}

void
pd_server_on_refused(pd_server_t *s, pd_refused_fn fn, void *arg)
{
    s->refused_fn = fn;
    s->refused_arg = arg;
}

void
pd_server_stats(pd_server_t *s, pd_edge_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->refused_max_connections = atomic_load(&s->stats.refused_max_connections);
    out->refused_per_ip = atomic_load(&s->stats.refused_per_ip);
    out->out_of_fds = atomic_load(&s->stats.out_of_fds);
    out->h2_calm = atomic_load(&s->stats.h2_calm);
    out->h2_request_timeouts = atomic_load(&s->stats.h2_request_timeouts);
    out->malformed = atomic_load(&s->stats.malformed);
    if (s->limit != NULL) {
        out->open_connections = pd_conn_limit_open(s->limit, NULL);
        out->max_connections = pd_conn_limit_max(s->limit);
    }
}

void
pd_server_on_conn_close(pd_server_t *s, pd_conn_fn fn, void *arg)
{
    s->conn_fn = fn;
    s->conn_arg = arg;
}

bool
pd_server_draining(const pd_server_t *s)
{
    return atomic_load(&s->draining);
}

bool
pd_server_ready(pd_server_t *s, char *why, size_t cap)
{
    if (atomic_load(&s->draining)) {
        snprintf(why, cap, "draining");
        return false;
    }
    char note[256] = "";
    for (size_t i = 0; i < s->nprobes; i++) {
        char r[200] = "";
        if (!s->probes[i].fn(s->probes[i].arg, r, sizeof(r))) {
            snprintf(why, cap, "%s: %s", s->probes[i].name, r[0] ? r : "not ready");
            return false;
        }
        if (r[0] != '\0' && note[0] == '\0') /* ready, with a note (a degraded dependency) */
            snprintf(note, sizeof(note), "%s: %s", s->probes[i].name, r);
    }
    snprintf(why, cap, "%s", note);
    return true;
}

bool
pd_server_loops_alive(pd_server_t *s, uint64_t max_age_ms, char *why, size_t cap)
{
    uint64_t now = pd_mono_ms();
    for (int i = 0; i < s->nloops; i++) {
        pd_loop_t *l = &s->loops[i];
        if (!l->started)
            continue;
        if (atomic_load(&l->exited)) {
            snprintf(why, cap, "event loop %d has exited", i);
            return false;
        }
        uint64_t t = atomic_load(&l->turned_ms);
        if (now > t && now - t > max_age_ms) {
            snprintf(why, cap, "event loop %d has not turned for %llu ms", i, (unsigned long long)(now - t));
            return false;
        }
    }
    return true;
}

static bool
admin_enabled(const pd_server_t *s)
{
    return s->admin->listen != NULL && s->admin->listen[0] != '\0';
}

static void
setup_globalconf(pd_server_t *s)
{
    h2o_config_init(&s->gconf);
    s->gconf.server_name = h2o_iovec_init(H2O_STRLIT("payd"));
    /* h2o rejects bodies past this itself (plain-text 413, connection closed);
     * below it our pipeline answers with a JSON 413, so give it headroom */
    s->gconf.max_request_entity_size = (size_t)s->api->max_body_bytes * 2 + 65536;
    s->gconf.handshake_timeout = (uint64_t)s->api->handshake_timeout_ms;
    s->gconf.http1.req_timeout = (uint64_t)s->api->request_timeout_ms;
    s->gconf.http1.upgrade_to_http2 = 0;
    s->gconf.http2.idle_timeout = (uint64_t)s->api->idle_timeout_ms;
    s->gconf.http2.graceful_shutdown_timeout = (uint64_t)s->api->drain_timeout_ms;
    s->api_host = h2o_config_register_host(&s->gconf, h2o_iovec_init(H2O_STRLIT("api")), 65535);
    s->admin_host = h2o_config_register_host(&s->gconf, h2o_iovec_init(H2O_STRLIT("admin")), 65535);
    pd_edge_register_handler(s, s->api_host, PD_L_API);
    pd_edge_register_handler(s, s->admin_host, PD_L_ADMIN);
    s->api_hosts[0] = s->api_host;
    s->admin_hosts[0] = s->admin_host;
}

int
pd_server_bind(pd_server_t *s)
{
    char err[512];
    bool loopback = true;
    int r;

    s->nloops = s->api->threads > 0 ? (int)s->api->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (s->nloops < 1)
        s->nloops = 1;
    if ((r = pd_tls_server_ctx(&s->tls_ctx, s->api->tls_cert, s->api->tls_key, s->api->tls_client_ca, err,
                               sizeof(err))) != 0) {
        pd_log_error("TLS setup failed", PD_LS("reason", err));
        return r;
    }
    atomic_store(&s->tls_gen, 1);
    /* chunked bodies are decoded by payd's strict decoder (chunked.c), or not at all */
    if (!pd_chunked_bound()) {
        pd_log_error("libh2o's chunked-body decoder is not payd's strict one (phr_decode_chunked is not bound to "
                     "the executable's definition); refusing to start");
        return PD_ERR_INTERNAL;
    }
    if ((r = pd_accept_setup(s)) != 0)
        return r;
    if ((s->loops = calloc((size_t)s->nloops, sizeof(*s->loops))) == NULL)
        return PD_ERR_NOMEM;

    for (int i = 0; i < s->nloops; i++) {
        pd_loop_t *l = &s->loops[i];
        l->srv = s;
        l->index = i;
        l->api_fd = l->admin_fd = -1;
        if ((l->api_fd = make_listener(s->api->listen, &s->api_port, true, NULL)) < 0) {
            pd_log_error("cannot listen", PD_LS("listener", "api"), PD_LS("addr", s->api->listen),
                         PD_LERR(l->api_fd));
            return l->api_fd;
        }
        if (admin_enabled(s)) {
            if ((l->admin_fd = make_listener(s->admin->listen, &s->admin_port, true, &loopback)) < 0) {
                pd_log_error("cannot listen", PD_LS("listener", "admin"), PD_LS("addr", s->admin->listen),
                             PD_LERR(l->admin_fd));
                return l->admin_fd;
            }
            if (!loopback && !s->admin->allow_public) {
                pd_log_error("refusing a non-loopback admin listener (private-subnet rule); "
                             "set [admin] allow_public = true to override",
                             PD_LS("addr", s->admin->listen));
                return PD_ERR_CONFIG;
            }
        }
    }
    s->bound = true;
    return 0;
}

int
pd_server_start(pd_server_t *s)
{
    int r;
    if (!s->bound && (r = pd_server_bind(s)) != 0)
        return r;
    setup_globalconf(s);
    for (int i = 0; i < s->nloops; i++) {
        pd_loop_t *l = &s->loops[i];
        sem_init(&l->ready, 0, 0);
        if ((r = pthread_create(&l->tid, NULL, loop_main, l)) != 0)
            return -r;
        l->started = true;
        sem_wait(&l->ready);
    }
    pd_log_info("listening", PD_LS("api", s->api->listen), PD_LI("api_port", s->api_port),
                PD_LS("admin", admin_enabled(s) ? s->admin->listen : NULL), PD_LI("admin_port", s->admin_port),
                PD_LI("threads", s->nloops));
    return 0;
}

uint16_t
pd_server_api_port(const pd_server_t *s)
{
    return s->api_port;
}

uint16_t
pd_server_admin_port(const pd_server_t *s)
{
    return s->admin_port;
}

int
pd_server_reload_tls(pd_server_t *s)
{
    char err[512];
    SSL_CTX *ctx;
    int r = pd_tls_server_ctx(&ctx, s->api->tls_cert, s->api->tls_key, s->api->tls_client_ca, err, sizeof(err));
    if (r != 0) {
        pd_log_error("TLS reload failed; keeping the current certificate", PD_LS("reason", err));
        return r;
    }
    pthread_mutex_lock(&s->tls_mu);
    SSL_CTX_free(s->tls_ctx);
    s->tls_ctx = ctx;
    atomic_fetch_add(&s->tls_gen, 1);
    pthread_mutex_unlock(&s->tls_mu);
    pd_log_info("TLS certificate reloaded", PD_LS("cert", s->api->tls_cert));
    return 0;
}

int
pd_server_drain(pd_server_t *s)
{
    uint64_t deadline = pd_mono_ms() + (uint64_t)s->api->drain_timeout_ms;
    int left = 0;

    atomic_store(&s->draining, true);
    /* /readyz fails first: the load balancer's check takes the node out while it still
     * accepts and serves (within drain_timeout_ms) */
    uint64_t open_until = pd_mono_ms() + (uint64_t)s->api->drain_delay_ms;
    if (open_until > deadline)
        open_until = deadline;
    if (s->api->drain_delay_ms > 0)
        pd_log_info("drain: /readyz answers 503; the listeners close after the delay",
                    PD_LI("drain_delay_ms", s->api->drain_delay_ms));
    while (pd_mono_ms() < open_until)
        usleep(10000);
    atomic_store(&s->closing, true);
    for (int i = 0; i < s->nloops; i++)
        if (s->loops[i].started)
            pd_loop_post(&s->loops[i], &s->loops[i].drain_task); /* wakes the loop now */
    for (;;) {
        bool all = true;
        for (int i = 0; i < s->nloops; i++)
            if (s->loops[i].started && !atomic_load(&s->loops[i].exited))
                all = false;
        if (all || pd_mono_ms() >= deadline)
            break;
        usleep(10000);
    }
    for (int i = 0; i < s->nloops; i++) {
        pd_loop_t *l = &s->loops[i];
        if (!l->started)
            continue;
        if (!atomic_load(&l->exited))
            left += (int)atomic_load(&l->inflight_shared);
        atomic_store(&l->stop, true);
    }
    for (int i = 0; i < s->nloops; i++) {
        if (s->loops[i].started) {
            /* a loop still waiting on in-flight work wakes within its 100 ms poll */
            pthread_join(s->loops[i].tid, NULL);
            sem_destroy(&s->loops[i].ready);
            s->loops[i].started = false;
        }
    }
    return left;
}

void
pd_server_set_user(pd_server_t *s, void *user)
{
    s->user = user;
}

void *
pd_server_user(pd_server_t *s)
{
    return s->user;
}

int
pd_server_nloops(const pd_server_t *s)
{
    return s->nloops;
}

pd_loop_t *
pd_server_loop(pd_server_t *s, int i)
{
    return i >= 0 && i < s->nloops ? &s->loops[i] : NULL;
}

void
pd_server_free(pd_server_t *s)
{
    if (s == NULL)
        return;
    /* h2o 2.2 cannot close a context's live connections, so a started server is
     * not torn down: the process exits after pd_server_drain() with it still
     * reachable. A server that never started is released fully. */
    if (s->loops != NULL && s->loops[0].evloop != NULL)
        return;
    if (s->loops != NULL) {
        for (int i = 0; i < s->nloops; i++) {
            if (s->loops[i].api_fd >= 0)
                close(s->loops[i].api_fd);
            if (s->loops[i].admin_fd >= 0)
                close(s->loops[i].admin_fd);
        }
        free(s->loops);
    }
    if (s->gconf.hosts != NULL)
        h2o_config_dispose(&s->gconf);
    SSL_CTX_free(s->tls_ctx);
    pd_conn_limit_free(s->limit);
    pthread_mutex_destroy(&s->tls_mu);
    free(s);
}
