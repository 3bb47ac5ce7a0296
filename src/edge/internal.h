/* Edge internals shared by server.c, request.c and conn.c. Not a public interface. */
#ifndef PAYD_EDGE_INTERNAL_H
#define PAYD_EDGE_INTERNAL_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include <h2o.h>

#include "payd/edge.h"

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
    _Atomic bool draining;
    void *user;
    struct {
        pd_filter_fn fn;
        void *arg;
    } filters[2][PD_EDGE_MAX_FILTERS]; /* by pd_stage_t */
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
    struct {
        const char *name;
        pd_ready_fn fn;
        void *arg;
    } probes[PD_EDGE_MAX_PROBES];
    size_t nprobes;
};

/* conn.c: the loop's open connections and their flow records. pd_conn_track before
 * h2o_accept: it counts the connection in loop->nconns until its socket closes, and
 * returns PD_ERR_NOMEM (the caller closes the socket) when it cannot. pd_conn_tls_info
 * and pd_conn_tls_msg are the server SSL_CTX's info and message callbacks
 * (pd_conn_tls_init once before). */
int pd_conn_track(pd_loop_t *loop, h2o_socket_t *sock, pd_listener_kind_t kind) PD_WUR;
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

/* request.c: installs the request handler on a host */
void pd_edge_register_handler(pd_server_t *s, h2o_hostconf_t *host, pd_listener_kind_t kind);

#endif
