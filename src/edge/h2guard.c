/*
 * HTTP/2 limits that libh2o 2.2.5 lacks: the rapid-reset flood (CVE-2023-44487) and
 * a deadline for a stream's request.
 *
 * libh2o offers no hook per frame, but its HTTP/2 connection reads through one socket
 * callback, set once in h2o_http2_accept and parsing every complete frame of the
 * socket's input before it returns (a partial frame stays in the buffer, at its
 * start). The guard sits in front of that callback: it walks the same complete frames
 * first, counting per connection and second the streams the client opens (HEADERS on
 * a new stream id) and its RST_STREAM frames, and noting when each stream whose
 * request is not complete yet began. Past a limit it swaps the connection's frame
 * parser for one that fails with ENHANCE_YOUR_CALM, so libh2o itself sends GOAWAY
 * with that code and closes the connection, the way patched servers answer the flood.
 * Frames are counted before libh2o handles them, so a stream reset before its
 * request was complete (which never reaches payd's handler) is counted too.
 *
 * The deadline: every 100 ms each loop looks at the streams it noted; one still
 * receiving its headers or body request_timeout_ms after its HEADERS is reset
 * (RST_STREAM CANCEL to the client, the stream closed in libh2o), as HTTP/1 is cut
 * off by libh2o's own request timeout. Other streams of the connection go on.
 *
 * Not covered: frames that create no stream and are not RST_STREAM (PING, SETTINGS,
 * PRIORITY, WINDOW_UPDATE floods) are not limited here; libh2o answers PING and
 * SETTINGS itself.
 */
#include <stdlib.h>
#include <string.h>

#include <h2o.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>

#include "edge/internal.h"
#include "payd/log.h"
#include "payd/time.h"

#define PENDING_MAX 128 /* above the 100 concurrent streams libh2o advertises */
#define SWEEP_MS 100
#define PREFACE_LEN 24

struct pd_h2guard {
    pd_loop_t *loop;
    h2o_http2_conn_t *conn;
    h2o_socket_cb h2o_read; /* libh2o's own read callback */
    bool preface_seen;
    bool calm;           /* the connection is being closed with ENHANCE_YOUR_CALM */
    uint64_t window_ms;  /* start of the current one-second window */
    uint64_t streams, resets;
    uint32_t max_stream_id;
    size_t npending;
    struct {
        uint32_t id;
        uint64_t start_ms;
    } pending[PENDING_MAX]; /* streams whose request is not complete */
};

static pd_warn_limit_t calm_warn = PD_WARN_LIMIT_INIT;
static pd_warn_limit_t timeout_warn = PD_WARN_LIMIT_INIT;

void
pd_h2guard_free(pd_h2guard_t *g)
{
    free(g);
}

static const char *calm_reason = "too many streams or stream resets";

/* the frame parser of a connection past a limit: libh2o sends GOAWAY with this code and closes */
static ssize_t
expect_calm(h2o_http2_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc)
{
    (void)conn;
    (void)src;
    (void)len;
    *err_desc = calm_reason;
    return H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM;
}

static void
calm(pd_h2guard_t *g, const char *why)
{
    pd_server_t *s = g->loop->srv;
    uint64_t n;
    char peer[64] = "";
    struct sockaddr_storage ss;
    uint16_t port;

    g->calm = true;
    g->conn->_read_expect = expect_calm;
    atomic_fetch_add(&s->stats.h2_calm, 1);
    if (g->conn->sock != NULL && h2o_socket_getpeername(g->conn->sock, (struct sockaddr *)&ss) != 0)
        pd_edge_addr_text((struct sockaddr *)&ss, peer, sizeof(peer), &port);
    if (pd_warn_limit(&calm_warn, &n))
        pd_log_warn("http2: connection closed with GOAWAY ENHANCE_YOUR_CALM", PD_LS("reason", why), PD_LS("peer", peer),
                    PD_LI("streams_per_s", (int64_t)g->streams), PD_LI("resets_per_s", (int64_t)g->resets),
                    PD_LI("times", (int64_t)n));
}

static void
pending_drop(pd_h2guard_t *g, uint32_t id)
{
    for (size_t i = 0; i < g->npending; i++) {
        if (g->pending[i].id == id) {
            g->pending[i] = g->pending[--g->npending];
            return;
        }
    }
}

static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* counts the complete frames at the start of the input (libh2o is about to handle exactly these) */
static void
count_frames(pd_h2guard_t *g, const uint8_t *p, size_t n)
{
    const pd_edge_api_config_t *api = g->loop->srv->api;
    uint64_t now = pd_mono_ms();
    size_t off = 0;
    bool overflow = false;

    if (now - g->window_ms >= 1000) {
        g->window_ms = now;
        g->streams = g->resets = 0;
    }
    if (!g->preface_seen) {
        if (n < PREFACE_LEN)
            return;
        g->preface_seen = true;
        off = PREFACE_LEN;
    }
    while (n - off >= 9) {
        size_t len = (size_t)p[off] << 16 | (size_t)p[off + 1] << 8 | p[off + 2];
        uint8_t type = p[off + 3], flags = p[off + 4];
        uint32_t id = be32(p + off + 5) & 0x7fffffffu;
        if (n - off - 9 < len)
            break; /* incomplete: libh2o leaves it in the buffer, and so it is counted next time */
        switch (type) {
        case H2O_HTTP2_FRAME_TYPE_HEADERS:
            if (id > g->max_stream_id) {
                g->max_stream_id = id;
                g->streams++;
                uint8_t whole = H2O_HTTP2_FRAME_FLAG_END_STREAM | H2O_HTTP2_FRAME_FLAG_END_HEADERS;
                if ((flags & whole) != whole) {
                    if (g->npending == PENDING_MAX) {
                        overflow = true;
                    } else {
                        g->pending[g->npending].id = id;
                        g->pending[g->npending++].start_ms = now;
                    }
                }
            }
            break;
        case H2O_HTTP2_FRAME_TYPE_DATA:
            if (flags & H2O_HTTP2_FRAME_FLAG_END_STREAM)
                pending_drop(g, id);
            break;
        case H2O_HTTP2_FRAME_TYPE_RST_STREAM:
            g->resets++;
            pending_drop(g, id);
            break;
        default:
            break;
        }
        off += 9 + len;
    }
    if (g->resets > (uint64_t)api->http2_max_resets_per_s)
        calm(g, "RST_STREAM frames past [api] http2_max_resets_per_s");
    else if (g->streams > (uint64_t)api->http2_max_streams_per_s)
        calm(g, "new streams past [api] http2_max_streams_per_s");
    else if (overflow)
        calm(g, "more streams receiving a request at once than the 100 advertised");
}

static void
on_read(h2o_socket_t *sock, const char *err)
{
    pd_h2guard_t **slot = pd_conn_h2guard_slot(sock), *g = slot != NULL ? *slot : NULL;
    if (g == NULL)
        return; /* cannot happen: the guard lives as long as the connection's record */
    h2o_socket_cb h2o_read = g->h2o_read;
    if (err == NULL && !g->calm)
        count_frames(g, (const uint8_t *)sock->input->bytes, sock->input->size);
    /* last: libh2o may close the connection, and the guard with it */
    h2o_read(sock, err);
}

void
pd_h2guard_accept(pd_loop_t *loop, h2o_accept_ctx_t *actx, h2o_socket_t *sock, struct timeval connected_at)
{
    pd_h2guard_t **slot = pd_conn_h2guard_slot(sock);
    pd_h2guard_t *g = slot != NULL ? calloc(1, sizeof(*g)) : NULL;

    /* what arrived with the end of the handshake waits until the guard is in place */
    h2o_buffer_t *held = sock->input;
    h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    h2o_http2_accept(actx, sock, connected_at);
    h2o_http2_conn_t *conn = sock->data;
    h2o_buffer_dispose(&sock->input);
    sock->input = held;
    if (g == NULL) {
        /* no guard, no unguarded connection: refused at its first frame */
        conn->_read_expect = expect_calm;
        if (sock->input->size != 0)
            sock->_cb.read(sock, NULL);
        return;
    }
    g->loop = loop;
    g->conn = conn;
    g->window_ms = pd_mono_ms();
    g->h2o_read = sock->_cb.read;
    sock->_cb.read = on_read;
    *slot = g;
    if (sock->input->size != 0)
        on_read(sock, NULL);
}

/* resets the streams of g whose request did not arrive whole in time */
static void
sweep_one(pd_loop_t *loop, pd_h2guard_t *g)
{
    pd_server_t *s = loop->srv;
    h2o_http2_conn_t *conn = g->conn;
    uint64_t now = pd_mono_ms(), limit = (uint64_t)s->api->request_timeout_ms, n;

    if (g->npending == 0 || g->calm || conn->state >= H2O_HTTP2_CONN_STATE_IS_CLOSING)
        return;
    for (size_t i = 0; i < g->npending;) {
        h2o_http2_stream_t *st = h2o_http2_conn_get_stream(conn, g->pending[i].id);
        if (st == NULL || st->state >= H2O_HTTP2_STREAM_STATE_REQ_PENDING) {
            g->pending[i] = g->pending[--g->npending]; /* done, or gone */
            continue;
        }
        if (now - g->pending[i].start_ms < limit) {
            i++;
            continue;
        }
        uint32_t id = g->pending[i].id;
        g->pending[i] = g->pending[--g->npending];
        h2o_http2_encode_rst_stream_frame(&conn->_write.buf, id, -H2O_HTTP2_ERROR_CANCEL);
        h2o_http2_conn_request_write(conn);
        h2o_http2_stream_reset(conn, st);
        atomic_fetch_add(&s->stats.h2_request_timeouts, 1);
        if (pd_warn_limit(&timeout_warn, &n))
            pd_log_info("http2: stream reset, its request did not arrive within request_timeout_ms",
                        PD_LI("stream", id), PD_LI("request_timeout_ms", (int64_t)limit), PD_LI("times", (int64_t)n));
    }
}

void
pd_h2guard_sweep(pd_loop_t *loop)
{
    uint64_t now = pd_mono_ms();
    if (now - loop->h2_sweep_ms < SWEEP_MS)
        return;
    loop->h2_sweep_ms = now;
    pd_conn_each_h2guard(loop, sweep_one);
}
