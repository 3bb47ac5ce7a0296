/*
 * payd-vault's own metrics and their listener (vault/metrics.h).
 *
 * The registry is the vault's alone (payd's pd_mx stays NULL in this process). Labels
 * are the operation (the dispatch table's action names, a closed list) and its
 * result; no label ever holds a token, a card datum or a key id.
 *
 * The listener is a plain TCP socket on a loopback address served by the vault's own
 * poll loop: a tiny HTTP/1.0 server for one request per connection (GET /metrics),
 * so the vault links no HTTP library. A request head is at most 4 KiB and must
 * arrive within 2 s; at most 8 such connections are open at once (more wait in the
 * kernel's queue).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "payd/config.h"
#include "payd/log.h"
#include "payd/time.h"
#include "payd/vault_ipc.h"
#include "vault/internal.h"
#include "vault/metrics.h"
#include "vault/server.h"

#define HEAD_MAX 4096
#define CONN_DEADLINE_MS 2000
#define BODY_MAX (4u * 1024 * 1024)

enum {
    VMX_OPERATIONS,
    VMX_DURATION,
    VMX_AUDIT_RECORDS,
    VMX_CVC_HELD,
    VMX_CVC_SLOTS,
    VMX_PEERS,
    VMX_VIOLATIONS,
    VMX_BUILD_INFO,
    VMX_PROCESS,
    VMX_N = VMX_PROCESS + 4
};

static const char *const results[] = {"ok", "error", NULL};
static const char *const build_version[] = {PAYD_VAULT_VERSION, NULL};
static const double bounds[] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                0.0025,  0.005,    0.01,    0.025,  0.05,    0.1,    0.25, 1};

static const pd_metric_def_t defs[VMX_N] = {
    [VMX_OPERATIONS] = {"payd_vault_operations_total",
                        "Operations the vault ran, by operation (its audit action) and result.", PD_METRIC_COUNTER,
                        PD_METRIC_SPARSE, 2, {{"op", NULL}, {"result", results}}, NULL, 0},
    [VMX_DURATION] = {"payd_vault_operation_duration_seconds",
                      "Time the vault's handler took for an operation (its batch's commit not included).",
                      PD_METRIC_HISTOGRAM, PD_METRIC_SPARSE, 1, {{"op", NULL}}, bounds, sizeof(bounds) / sizeof(bounds[0])},
    [VMX_AUDIT_RECORDS] = {"payd_vault_audit_records_total", "Records in the vault's audit chain (its last sequence "
                           "number).", PD_METRIC_COUNTER, 0, 0, {{0}}, NULL, 0},
    [VMX_CVC_HELD] = {"payd_vault_cvc_held", "CVCs held in memory now (until used once or expired).", PD_METRIC_GAUGE,
                      0, 0, {{0}}, NULL, 0},
    [VMX_CVC_SLOTS] = {"payd_vault_cvc_slots", "Capacity of the in-memory CVC store.", PD_METRIC_GAUGE, 0, 0, {{0}},
                       NULL, 0},
    [VMX_PEERS] = {"payd_vault_peers", "Peers connected to the vault now (payd, payctl).", PD_METRIC_GAUGE, 0, 0,
                   {{0}}, NULL, 0},
    [VMX_VIOLATIONS] = {"payd_vault_violations_total",
                        "Peers dropped for a protocol violation (unknown type, principal not allowed, bad size).",
                        PD_METRIC_COUNTER, 0, 0, {{0}}, NULL, 0},
    [VMX_BUILD_INFO] = {"payd_build_info", "Always 1; the version label says which payd-vault runs.", PD_METRIC_GAUGE,
                        0, 1, {{"version", build_version}}, NULL, 0},
    [VMX_PROCESS] = PD_METRICS_PROCESS_DEFS,
};

static pd_metrics_t *vmx;
static const char *op_names[PD_VAULT_MAX_OPS + 3]; /* distinct actions, "unknown", NULL */
static size_t nnames;
static uint16_t op_types[PD_VAULT_MAX_OPS + 1]; /* message type -> op_label[i], the index of its action */
static size_t op_label[PD_VAULT_MAX_OPS + 1];
static size_t nops;
static pd_vault_state_t *vstate;
static int (*peer_count)(void *arg);
static void *peer_arg;

static size_t
op_index(uint16_t type)
{
    for (size_t i = 0; i < nops; i++)
        if (op_types[i] == type)
            return op_label[i];
    return nnames - 1; /* "unknown" */
}

static void
one(void *arg, double *out, size_t n)
{
    (void)arg;
    if (n >= 1)
        out[0] = 1;
}

static void
audit_records(void *arg, double *out, size_t n)
{
    (void)arg;
    if (n >= 1 && vstate != NULL)
        out[0] = (double)vstate->audit.seq;
}

/* the vault is one thread: the scrape runs on it, between batches */
static void
cvc_held(void *arg, double *out, size_t n)
{
    (void)arg;
    if (n < 1 || vstate == NULL)
        return;
    int64_t now = vstate->now();
    size_t held = 0;
    for (size_t i = 0; i < PD_VAULT_CVC_SLOTS; i++)
        if (vstate->sec->cvc[i].token[0] != '\0' && vstate->sec->cvc[i].expires > now)
            held++;
    out[0] = (double)held;
}

static void
cvc_slots(void *arg, double *out, size_t n)
{
    (void)arg;
    if (n >= 1)
        out[0] = PD_VAULT_CVC_SLOTS;
}

static void
peers(void *arg, double *out, size_t n)
{
    (void)arg;
    if (n >= 1 && peer_count != NULL)
        out[0] = peer_count(peer_arg);
}

int
pd_vmx_open(pd_vault_state_t *v, int (*npeers)(void *arg), void *arg)
{
    int r;
    nops = nnames = 0;
    op_names[nnames++] = "auth";
    op_types[nops] = PD_MSG_AUTH;
    op_label[nops++] = 0;
    for (size_t i = 0; i < PD_VAULT_MAX_OPS; i++) {
        const pd_vault_dispatch_t *d = pd_vault_dispatch_at(i);
        if (d == NULL)
            break;
        size_t k = 0;
        while (k < nnames && strcmp(op_names[k], d->action) != 0)
            k++; /* two types may share an action (secrets.get: CURRENT or any stage) */
        if (k == nnames)
            op_names[nnames++] = d->action;
        op_types[nops] = d->type;
        op_label[nops++] = k;
    }
    op_names[nnames++] = "unknown";
    op_names[nnames] = NULL;
    vstate = v;
    peer_count = npeers;
    peer_arg = arg;
    if ((r = pd_metrics_new(&vmx, defs, VMX_N)) != 0)
        return r;
    if ((r = pd_metrics_set_values(vmx, VMX_OPERATIONS, 0, op_names, nnames)) != 0 ||
        (r = pd_metrics_set_values(vmx, VMX_DURATION, 0, op_names, nnames)) != 0 ||
        (r = pd_metrics_set_collector(vmx, VMX_AUDIT_RECORDS, audit_records, NULL)) != 0 ||
        (r = pd_metrics_set_collector(vmx, VMX_CVC_HELD, cvc_held, NULL)) != 0 ||
        (r = pd_metrics_set_collector(vmx, VMX_CVC_SLOTS, cvc_slots, NULL)) != 0 ||
        (r = pd_metrics_set_collector(vmx, VMX_PEERS, peers, NULL)) != 0 ||
        (r = pd_metrics_set_collector(vmx, VMX_BUILD_INFO, one, NULL)) != 0 ||
        (r = pd_metrics_process_attach(vmx, VMX_PROCESS)) != 0) {
        pd_metrics_free(vmx);
        vmx = NULL;
        return r;
    }
    return 0;
}

void
pd_vmx_close(void)
{
    pd_metrics_free(vmx);
    vmx = NULL;
    vstate = NULL;
}

void
pd_vmx_operation(uint16_t type, int rc, uint64_t ns)
{
    if (vmx == NULL)
        return;
    size_t idx[2] = {op_index(type), rc == 0 ? 0 : 1};
    pd_metric_add(vmx, VMX_OPERATIONS, pd_metric_series(vmx, VMX_OPERATIONS, idx), 1);
    pd_metric_observe(vmx, VMX_DURATION, idx[0], (double)ns / 1e9);
}

void
pd_vmx_violation(void)
{
    pd_metric_add(vmx, VMX_VIOLATIONS, 0, 1);
}

pd_metrics_t *
pd_vmx_registry(void)
{
    return vmx;
}

/* --- the listener --- */

typedef struct {
    int fd;
    uint64_t deadline_ms;
    char head[HEAD_MAX];
    size_t nhead;
    pd_buf_t out; /* the response, once the request is read */
    size_t sent;
} mconn_t;

struct pd_vmx_http {
    int listen_fd;
    mconn_t conns[PD_VMX_MAX_CONNS];
    int nconns;
};

int
pd_vmx_listen(pd_vmx_http_t **out, const char *addr, char *err, size_t cap)
{
    char host[256];
    uint16_t port;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *ai = NULL;
    char ports[8];
    int fd = -1, one = 1;

    if (pd_config_parse_addr(addr, host, sizeof(host), &port) != 0) {
        snprintf(err, cap, "[vault] metrics_listen: \"%s\" is not host:port", addr);
        return PD_ERR_CONFIG;
    }
    snprintf(ports, sizeof(ports), "%u", port);
    if (getaddrinfo(host, ports, &hints, &ai) != 0 || ai == NULL) {
        snprintf(err, cap, "[vault] metrics_listen: \"%s\" is not a numeric address (127.0.0.1:PORT or [::1]:PORT)",
                 addr);
        return PD_ERR_CONFIG;
    }
    bool loopback = ai->ai_family == AF_INET
                        ? (ntohl(((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr.s_addr) >> 24) == 127
                        : IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr);
    if (!loopback) {
        freeaddrinfo(ai);
        snprintf(err, cap, "[vault] metrics_listen: %s is not a loopback address; the vault's metrics are served on "
                           "loopback only", addr);
        return PD_ERR_CONFIG;
    }
    if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        listen(fd, 16) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        snprintf(err, cap, "[vault] metrics_listen: cannot listen on %s: %s", addr, strerror(e));
        return -e;
    }
    freeaddrinfo(ai);
    pd_vmx_http_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        close(fd);
        return PD_ERR_NOMEM;
    }
    h->listen_fd = fd;
    *out = h;
    return 0;
}

uint16_t
pd_vmx_port(const pd_vmx_http_t *h)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (h == NULL || getsockname(h->listen_fd, (struct sockaddr *)&ss, &sl) != 0)
        return 0;
    return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void
mconn_close(pd_vmx_http_t *h, int i)
{
    close(h->conns[i].fd);
    pd_buf_free(&h->conns[i].out);
    h->conns[i] = h->conns[--h->nconns];
}

void
pd_vmx_free(pd_vmx_http_t *h)
{
    if (h == NULL)
        return;
    while (h->nconns > 0)
        mconn_close(h, 0);
    close(h->listen_fd);
    free(h);
}

int
pd_vmx_pollfds(pd_vmx_http_t *h, struct pollfd *pfd)
{
    int n = 0;
    if (h == NULL)
        return 0;
    pfd[n++] = (struct pollfd){.fd = h->nconns < PD_VMX_MAX_CONNS ? h->listen_fd : -1, .events = POLLIN};
    for (int i = 0; i < h->nconns; i++)
        pfd[n++] = (struct pollfd){.fd = h->conns[i].fd, .events = h->conns[i].out.len > 0 ? POLLOUT : POLLIN};
    return n;
}

static void
respond(mconn_t *c, const char *status, const char *ctype, pd_view_t body)
{
    pd_buf_reset(&c->out);
    if (pd_buf_printf(&c->out, "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      status, ctype, body.len) != 0 ||
        pd_buf_put(&c->out, body.p, body.len) != 0)
        pd_buf_reset(&c->out);
    c->sent = 0;
}

/* the request head is complete: GET /metrics or an error */
static void
answer(mconn_t *c)
{
    /* the request line: METHOD SP PATH SP HTTP/1.x */
    const char *h = c->head;
    size_t mlen = strcspn(h, " \r\n");
    const char *path = h[mlen] == ' ' ? h + mlen + 1 : h + mlen;
    size_t plen = strcspn(path, " \r\n");
    bool http = mlen > 0 && h[mlen] == ' ' && plen > 0 && strncmp(path + plen, " HTTP/1.", 8) == 0;
    bool get = http && mlen == 3 && memcmp(h, "GET", 3) == 0, head_only = http && mlen == 4 && memcmp(h, "HEAD", 4) == 0;
    if (!http || (!get && !head_only)) {
        respond(c, http ? "405 Method Not Allowed" : "400 Bad Request", "text/plain; charset=utf-8",
                http ? PD_VIEW_LIT("only GET\n") : PD_VIEW_LIT("bad request\n"));
        return;
    }
    if (!((plen == 8 && memcmp(path, "/metrics", 8) == 0) || (plen > 8 && memcmp(path, "/metrics?", 9) == 0))) {
        respond(c, "404 Not Found", "text/plain; charset=utf-8", PD_VIEW_LIT("not found: the vault serves /metrics\n"));
        return;
    }
    pd_buf_t body;
    pd_buf_init(&body, BODY_MAX);
    if (vmx == NULL || pd_metrics_render(vmx, &body) != 0) {
        respond(c, "500 Internal Server Error", "text/plain; charset=utf-8", PD_VIEW_LIT("cannot render\n"));
    } else {
        respond(c, "200 OK", PD_METRICS_CONTENT_TYPE, pd_buf_view(&body));
        if (head_only) /* the length of the GET, no body */
            c->out.len -= body.len;
    }
    pd_buf_free(&body);
}

void
pd_vmx_handle(pd_vmx_http_t *h, const struct pollfd *pfd, int n)
{
    if (h == NULL || n <= 0)
        return;
    uint64_t now = pd_mono_ms();
    int had = h->nconns; /* pfd[1 + i] is conns[i] for i < had */
    bool closed[PD_VMX_MAX_CONNS] = {false};
    for (int i = 0; i < had && 1 + i < n; i++) {
        mconn_t *c = &h->conns[i];
        short ev = pfd[1 + i].revents;
        if (ev & (POLLERR | POLLNVAL)) {
            closed[i] = true;
        } else if (c->out.len > 0 && (ev & POLLOUT)) {
            ssize_t w = send(c->fd, c->out.p + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                closed[i] = true;
            else if (w > 0 && (c->sent += (size_t)w) == c->out.len)
                closed[i] = true; /* HTTP/1.0: the response ends with the connection */
        } else if (c->out.len == 0 && (ev & (POLLIN | POLLHUP))) {
            ssize_t r = recv(c->fd, c->head + c->nhead, sizeof(c->head) - 1 - c->nhead, 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                closed[i] = true;
            } else if (r > 0) {
                c->nhead += (size_t)r;
                c->head[c->nhead] = '\0';
                if (strstr(c->head, "\r\n\r\n") != NULL || strstr(c->head, "\n\n") != NULL)
                    answer(c);
                else if (c->nhead == sizeof(c->head) - 1)
                    respond(c, "431 Request Header Fields Too Large", "text/plain; charset=utf-8",
                            PD_VIEW_LIT("request head too large\n"));
            }
        }
        if (!closed[i] && now >= c->deadline_ms)
            closed[i] = true;
    }
    for (int i = had; i-- > 0;)
        if (closed[i])
            mconn_close(h, i);
    if (pfd[0].revents & POLLIN) {
        while (h->nconns < PD_VMX_MAX_CONNS) {
            int fd = accept4(h->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                break;
            mconn_t *c = &h->conns[h->nconns++];
            memset(c, 0, sizeof(*c));
            c->fd = fd;
            c->deadline_ms = now + CONN_DEADLINE_MS;
            pd_buf_init(&c->out, BODY_MAX + 4096);
        }
    }
}
