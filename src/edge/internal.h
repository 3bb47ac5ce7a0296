/* Edge internals shared by server.c, request.c and conn.c. Not a public interface. */
#ifndef PAYD_EDGE_INTERNAL_H
#define PAYD_EDGE_INTERNAL_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include <h2o.h>

#include "payd/edge.h"

typedef struct pd_conn_limit pd_conn_limit_t;

#define PD_EDGE_MAX_FILTERS 16
#define PD_EDGE_MAX_PROBES 16

struct pd_loop {
    pd_server_t *srv;
    int index;
    pthread_t tid;
    bool started;
    sem_t ready;         /* posted by the loop thread once its h2o objects exist */
    _Atomic bool stop;   /* leave the loop now */
    _Atomic bool exited;
    _Atomic uint64_t turned_ms; /* pd_mono_ms() at the loop's last turn (pd_server_loops_alive) */
    bool drain_started;  /* loop thread only */
    uint64_t grace_end_ms; /* drain: idle HTTP/1 connections are closed from then on (loop thread only) */
    pd_task_t drain_task;  /* posted by pd_server_drain to start the drain at once */
    h2o_evloop_t *evloop;
    h2o_context_t ctx;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    h2o_accept_ctx_t api_accept, admin_accept;
    h2o_socket_t *api_sock, *admin_sock;
    int api_fd, admin_fd;
    unsigned tls_gen;
    size_t inflight;                 /* requests not yet disposed (loop thread only) */
    h2o_linklist_t conns;            /* every open accepted connection (conn.c; loop thread only) */
    size_t nconns;                   /* their number */
    _Atomic size_t inflight_shared;  /* the same, readable from the main thread */
    int reserve_fd;                  /* accept.c: a spare descriptor, given up to refuse a client on EMFILE */
    h2o_timeout_t accept_pause;      /* accept.c: how long a listener rests after EMFILE/ENFILE */
    h2o_timeout_entry_t api_resume, admin_resume;
    h2o_timeout_t later;             /* pd_loop_later: PD_LOOP_LATER_MS */
    uint64_t h2_sweep_ms;            /* h2guard.c: when the HTTP/2 request deadlines were last checked */
};

struct pd_server {
    const pd_edge_api_config_t *api;
    const pd_edge_admin_config_t *admin;
    pd_router_t *router;
    h2o_globalconf_t gconf;
    h2o_hostconf_t *api_host, *admin_host;
    h2o_hostconf_t *api_hosts[2], *admin_hosts[2];
    pd_loop_t *loops;
    int nloops;
    bool bound; /* pd_server_bind ran: TLS loaded, listeners open */
    uint16_t api_port, admin_port;
    pthread_mutex_t tls_mu;
    SSL_CTX *tls_ctx; /* current; guarded by tls_mu */
    _Atomic unsigned tls_gen;
    _Atomic bool draining; /* SIGTERM seen: /readyz 503, responses say Connection: close */
    _Atomic bool closing;  /* ... and drain_delay_ms later: the loops close their listeners */
    void *user;
    pd_filter_t filters[2][PD_EDGE_MAX_FILTERS]; /* by pd_stage_t */
    size_t nfilters[2];
    struct {
        pd_finish_fn fn;
        void *arg;
    } finish[PD_EDGE_MAX_FILTERS];
    size_t nfinish;
    pd_conn_fn conn_fn; /* flow log; NULL: connections are not tracked */
    void *conn_arg;
    pd_tick_fn tick_fn;
    void *tick_arg;
    pd_refused_fn refused_fn; /* the WAF's count of malformed requests per address; may be NULL */
    void *refused_arg;
    pd_conn_limit_t *limit;   /* accept.c: open API connections, in all and per address */
    struct {
        _Atomic uint64_t refused_max_connections, refused_per_ip, out_of_fds, h2_calm, h2_request_timeouts,
            malformed;
    } stats;
    struct {
        const char *name;
        pd_ready_fn fn;
        void *arg;
    } probes[PD_EDGE_MAX_PROBES];
    size_t nprobes;
};

/* conn_limit.c: counts of open connections, in all and per client address, shared by
 * the loops (a mutex). An address is 16 bytes (IPv4 as ::ffff:a.b.c.d). */
/* max: connections in all (> 0); per_addr: from one address (0: no limit) */
int pd_conn_limit_new(pd_conn_limit_t **out, uint64_t max, uint64_t per_addr) PD_WUR;
void pd_conn_limit_free(pd_conn_limit_t *l);
/* Takes one connection for addr: 0, or PD_ERR_LIMIT with *why "max_connections" or
 * "max_connections_per_ip" (nothing taken). */
int pd_conn_limit_take(pd_conn_limit_t *l, const uint8_t addr[16], const char **why) PD_WUR;
/* Gives back one connection taken for addr. */
void pd_conn_limit_give(pd_conn_limit_t *l, const uint8_t addr[16]);
/* Open connections in all, and from addr. */
uint64_t pd_conn_limit_open(pd_conn_limit_t *l, const uint8_t *addr);
uint64_t pd_conn_limit_max(const pd_conn_limit_t *l);
/* addr of an IPv4/IPv6 socket address as the 16-byte key; false for other families */
struct sockaddr;
bool pd_conn_limit_key(const struct sockaddr *sa, uint8_t key[16]);

/* accept.c: accepts up to max connections queued on listener (refusing those past the
 * limits, each with a flow-log record), and starts TLS or HTTP on the others. */
void pd_accept_queued(pd_loop_t *loop, h2o_socket_t *listener, size_t max);
/* the loop's accept state (reserve descriptor, pause timer); on the loop thread */
void pd_accept_loop_init(pd_loop_t *loop);
/* starts accepting on a listener (its data is the loop) */
void pd_accept_start(h2o_socket_t *listener);
/* stops the pause timers before the listeners close */
void pd_accept_loop_stop(pd_loop_t *loop);
/* Raises the soft RLIMIT_NOFILE to the hard limit and sets s->limit from the
 * configuration (max_connections 0: the open-file limit less PD_EDGE_FD_RESERVE). */
int pd_accept_setup(pd_server_t *s) PD_WUR;
#define PD_EDGE_FD_RESERVE 256

/* conn.c: the loop's open connections and their flow records. pd_conn_track before
 * h2o_accept: it counts the connection in loop->nconns until its socket closes, and
 * returns PD_ERR_NOMEM (the caller closes the socket) when it cannot. counted: the
 * connection holds a place in s->limit under key (given back when it closes).
 * pd_conn_tls_info and pd_conn_tls_msg are the server SSL_CTX's info and message
 * callbacks (pd_conn_tls_init once before). */
int pd_conn_track(pd_loop_t *loop, h2o_socket_t *sock, pd_listener_kind_t kind, bool counted,
                  const uint8_t key[16]) PD_WUR;
/* A flow-log record for a connection refused at accept (no h2o socket was made). */
void pd_conn_log_refused(pd_loop_t *loop, pd_listener_kind_t kind, const struct sockaddr *peer, const char *why);
/* The HTTP/2 guard of an accepted connection's socket (h2guard.c), NULL if it has none. */
typedef struct pd_h2guard pd_h2guard_t;
pd_h2guard_t **pd_conn_h2guard_slot(h2o_socket_t *sock);
/* Calls fn for every open connection of the loop that has an HTTP/2 guard. */
void pd_conn_each_h2guard(pd_loop_t *loop, void (*fn)(pd_loop_t *loop, pd_h2guard_t *g));
/* Closes the loop's idle HTTP/1 connections: no request in progress and nothing
 * received, neither by h2o nor in the kernel. HTTP/2 connections and TLS handshakes
 * are left to h2o. Returns how many it closed. For draining only. */
size_t pd_conn_close_idle(pd_loop_t *loop);
/* Plain-HTTP (admin) connections: h2o 2.2 does not count what it reads, and closes the
 * descriptor before the close callback, so each response notes the kernel's count of
 * bytes received so far for the flow log. */
void pd_conn_note_received(h2o_req_t *req);
void pd_conn_tls_init(void);
void pd_conn_tls_info(const SSL *ssl, int where, int ret);
void pd_conn_tls_msg(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg);

/* conn.c: an IPv4/IPv6 socket address as text (no port) and its port */
struct sockaddr;
void pd_edge_addr_text(const struct sockaddr *sa, char *out, size_t cap, uint16_t *port);

/* h2guard.c: HTTP/2 limits libh2o 2.2 does not have. pd_h2guard_accept replaces
 * h2o_http2_accept for a TLS connection that chose h2: it counts the client's new
 * streams and RST_STREAM frames per second (past [api] http2_max_streams_per_s or
 * http2_max_resets_per_s: GOAWAY ENHANCE_YOUR_CALM, then close) and notes when each
 * stream began; pd_h2guard_sweep (from the loop, every 100 ms) resets a stream whose
 * request has not arrived whole within request_timeout_ms. */
void pd_h2guard_accept(pd_loop_t *loop, h2o_accept_ctx_t *actx, h2o_socket_t *sock, struct timeval connected_at);
void pd_h2guard_sweep(pd_loop_t *loop);
void pd_h2guard_free(pd_h2guard_t *g);

/* chunked.c: true when libh2o's chunked-body decoding is payd's strict one */
bool pd_chunked_bound(void);

/* request.c: a warning said at most every 10 s, with the number of times it happened
 * (shared by the loops) */
typedef struct {
    pthread_mutex_t mu;
    uint64_t last_ms, count;
} pd_warn_limit_t;
#define PD_WARN_LIMIT_INIT {PTHREAD_MUTEX_INITIALIZER, 0, 0}
/* true when the caller should log now; *count gets the occurrences since the last line */
bool pd_warn_limit(pd_warn_limit_t *w, uint64_t *count);

/* metrics_route.c: records a finished request (payd_http_requests_total, its duration)
 * in pd_mx; on the loop thread, from the request's disposal */
void pd_edge_metrics_request(const pd_req_t *r);

/* request.c: installs the request handler on a host */
void pd_edge_register_handler(pd_server_t *s, h2o_hostconf_t *host, pd_listener_kind_t kind);

#endif
