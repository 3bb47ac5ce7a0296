/*
 * The access and flow logs (payd/traffic_log.h).
 *
 * Each loop thread gathers its lines in a buffer of its own and writes it with one
 * write(2) when it holds 32 KiB or its oldest line is 100 ms old (checked on every
 * line and on the loop's tick), and when the loop ends: one system call per many
 * requests, and no contention between threads on the file. A crash loses at most
 * the last 100 ms of lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payd/json.h"
#include "payd/log.h"
#include "payd/time.h"
#include "payd/traffic_log.h"

#define LINE_MAX_BYTES 4096
#define FLUSH_BYTES (32u * 1024)
#define FLUSH_MS 100

/* one per log and loop thread */
typedef struct {
    pd_buf_t buf;
    int64_t oldest_ms;
} pending_t;
static _Thread_local pending_t tl_pending[2]; /* [0] access, [1] flow */

struct pd_traffic_log {
    pd_log_sink_t *access; /* NULL: off */
    pd_log_sink_t *flow;
};

#define C(f) offsetof(pd_traffic_log_config_t, f)
static const pd_config_key_t keys[] = {
    {"access", PD_CT_PATH, C(access), "access.log",
     .help = "access log (a line per request): off, stdout, stderr or a file, relative to data_dir"},
    {"flow", PD_CT_PATH, C(flow), "flow.log",
     .help = "connection (flow) log (a line per connection): off, stdout, stderr or a file, relative to data_dir"},
    {"max_bytes", PD_CT_SIZE, C(max_bytes), "256m", 0, INT64_MAX,
     .help = "rotate an access or flow log file past this size (0: never)"},
    {"max_age", PD_CT_MS, C(max_age_ms), "1d", 0, INT64_MAX,
     .help = "rotate an access or flow log file this long after it was started (0: never)"},
    {"keep", PD_CT_INT, C(keep), "100", 0, 1000,
     .help = "rotated access and flow log files kept at most (with daily rotation, more than the retention)"},
    {"retention", PD_CT_MS, C(retention_ms), "90d", 0, INT64_MAX,
     .help = "rotated access, flow and service log files older than this are removed (0: only keep bounds them); "
             "the seed keeps logs 3 months"},
};
#undef C

int
pd_traffic_log_config_register(pd_config_t *cfg, pd_traffic_log_config_t *c)
{
    return pd_config_add(cfg, "logs", keys, sizeof(keys) / sizeof(keys[0]), c);
}

static int
open_one(pd_log_sink_t **out, const char *what, const pd_traffic_log_config_t *c, const char *data_dir, char *err,
         size_t errcap)
{
    char path[4096];
    *out = NULL;
    if (strcmp(what, "off") == 0)
        return 0;
    if (what[0] == '/' || strcmp(what, "stdout") == 0 || strcmp(what, "stderr") == 0)
        snprintf(path, sizeof(path), "%s", what);
    else
        snprintf(path, sizeof(path), "%s/%s", data_dir, what);
    int r = pd_log_sink_open(out, path, (uint64_t)c->max_bytes, (unsigned)c->keep);
    if (r != 0) {
        snprintf(err, errcap, "cannot open %s: %s", path, pd_strerror(r));
        return r;
    }
    pd_log_sink_set_max_age(*out, (uint64_t)c->max_age_ms);
    pd_log_sink_set_retention(*out, (uint64_t)c->retention_ms);
    return 0;
}

int
pd_traffic_log_open(pd_traffic_log_t **out, const pd_traffic_log_config_t *c, const char *data_dir, char *err,
                    size_t errcap)
{
    pd_traffic_log_t *t = calloc(1, sizeof(*t));
    int r;
    if (t == NULL)
        return PD_ERR_NOMEM;
    if ((r = open_one(&t->access, c->access, c, data_dir, err, errcap)) != 0 ||
        (r = open_one(&t->flow, c->flow, c, data_dir, err, errcap)) != 0) {
        pd_traffic_log_free(t);
        return r;
    }
    *out = t;
    return 0;
}

static void
flush(pd_log_sink_t *sink, pending_t *p)
{
    if (p->buf.len > 0)
        pd_log_sink_write(sink, p->buf.p, p->buf.len);
    pd_buf_reset(&p->buf);
}

static void
on_tick(bool final, void *arg)
{
    pd_traffic_log_t *t = arg;
    pd_log_sink_t *sinks[2] = {t->access, t->flow};
    int64_t now = pd_real_ms();
    for (int i = 0; i < 2; i++) {
        pending_t *p = &tl_pending[i];
        if (sinks[i] != NULL && p->buf.len > 0 && (final || now - p->oldest_ms >= FLUSH_MS))
            flush(sinks[i], p);
        if (final)
            pd_buf_free(&p->buf);
    }
}

/* RFC 3339 UTC with milliseconds; the part up to the second is formatted once a second */
static void
timestamp(int64_t ms, char out[32])
{
    static _Thread_local int64_t cached_s = -1;
    static _Thread_local char prefix[24];
    if (ms / 1000 != cached_s) {
        cached_s = ms / 1000;
        pd_time_rfc3339(ms, prefix, sizeof(prefix)); /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
        prefix[20] = '\0';
    }
    int n = (int)(ms % 1000);
    memcpy(out, prefix, 20);
    out[20] = (char)('0' + n / 100);
    out[21] = (char)('0' + n / 10 % 10);
    out[22] = (char)('0' + n % 10);
    out[23] = 'Z';
    out[24] = '\0';
}

/*
 * Lines are written straight into the thread's pending buffer with memcpy: the
 * values are ids, addresses, route templates, codes and numbers, whose characters
 * need no JSON escaping (checked; anything else goes through the JSON escaper).
 * pd_jw would cost a fifth of a health check's time.
 */
typedef struct {
    pd_buf_t *b;
    size_t start;
    bool err;
} line_t;

static void
put(line_t *l, const char *s, size_t n)
{
    if (l->err || pd_buf_put(l->b, s, n) != 0)
        l->err = true;
}
#define PUT_LIT(l, s) put((l), (s), sizeof(s) - 1)

static bool
plain(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return false;
    }
    return true;
}

/* ,"key": then the string (or null) */
static void
put_str(line_t *l, const char *key_lit, size_t key_len, const char *s, size_t n)
{
    put(l, key_lit, key_len);
    if (s == NULL) {
        PUT_LIT(l, "null");
    } else if (plain(s, n)) {
        put(l, "\"", 1);
        put(l, s, n);
        put(l, "\"", 1);
    } else if (!l->err && pd_json_escape(l->b, (const uint8_t *)s, n) != 0) {
        l->err = true;
    }
}
static void
put_cstr(line_t *l, const char *key_lit, size_t key_len, const char *s)
{
    put_str(l, key_lit, key_len, s, s != NULL ? strlen(s) : 0);
}
#define PUT_STR(l, key, s) put_cstr((l), ",\"" key "\":", sizeof(",\"" key "\":") - 1, (s))

static void
put_u64(line_t *l, const char *key_lit, size_t key_len, uint64_t v)
{
    char d[24];
    size_t i = sizeof(d);
    do
        d[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    put(l, key_lit, key_len);
    put(l, d + i, sizeof(d) - i);
}
#define PUT_U64(l, key, v) put_u64((l), ",\"" key "\":", sizeof(",\"" key "\":") - 1, (uint64_t)(v))

/* starts a line in the thread's pending buffer: {"ts":...,"type":... */
static void
begin(line_t *l, pending_t *p, const char *type, int64_t now)
{
    char ts[32];
    if (p->buf.max == 0)
        pd_buf_init(&p->buf, FLUSH_BYTES + LINE_MAX_BYTES);
    l->b = &p->buf;
    l->start = p->buf.len;
    l->err = false;
    if (l->start == 0)
        p->oldest_ms = now;
    timestamp(now, ts);
    PUT_LIT(l, "{\"ts\":\"");
    put(l, ts, 24);
    PUT_LIT(l, "\"");
    PUT_STR(l, "type", type);
}

/* ends the line (dropping it whole if it did not fit) and writes the buffer when due */
static void
end(pd_log_sink_t *sink, pending_t *p, line_t *l, int64_t now)
{
    PUT_LIT(l, "}\n");
    if (l->err)
        p->buf.len = l->start;
    if (p->buf.len >= FLUSH_BYTES || now - p->oldest_ms >= FLUSH_MS)
        flush(sink, p);
}

static const char *
protocol_name(int v)
{
    switch (v) {
    case 0x200: return "HTTP/2";
    case 0x101: return "HTTP/1.1";
    case 0x100: return "HTTP/1.0";
    default: return "HTTP";
    }
}

static void
on_request(pd_req_t *r, void *arg)
{
    pd_traffic_log_t *t = arg;
    pending_t *p = &tl_pending[0];
    line_t l;
    char ts[32], lat[32];
    uint64_t elapsed_ns = pd_mono_ns() - r->start_ns;
    int64_t now = pd_real_ms();

    begin(&l, p, "access", now);
    PUT_STR(&l, "requestId", r->id);
    PUT_STR(&l, "ip", r->peer);
    PUT_STR(&l, "caller", r->caller);
    timestamp(now - (int64_t)(elapsed_ns / 1000000u), ts);
    PUT_STR(&l, "requestTime", ts);
    put_str(&l, ",\"httpMethod\":", sizeof(",\"httpMethod\":") - 1, (const char *)r->method.p,
            r->method.len <= 16 ? r->method.len : 16);
    PUT_STR(&l, "resourcePath", r->route != NULL ? r->route->pattern : NULL);
    /* 499 (nginx's "client closed request"): the client left before the response */
    PUT_U64(&l, "status", r->responded ? (unsigned)r->status : 499u);
    PUT_STR(&l, "protocol", protocol_name(r->http_version));
    PUT_U64(&l, "responseLength", r->resp_bytes);
    /* milliseconds with three decimals, without printf */
    uint64_t us = elapsed_ns / 1000u;
    put_u64(&l, ",\"latency_ms\":", sizeof(",\"latency_ms\":") - 1, us / 1000u);
    lat[0] = '.';
    lat[1] = (char)('0' + us / 100u % 10u);
    lat[2] = (char)('0' + us / 10u % 10u);
    lat[3] = (char)('0' + us % 10u);
    put(&l, lat, 4);
    PUT_STR(&l, "errorCode", r->error_code);
    PUT_LIT(&l, ",\"waf\":{\"action\":");
    put_cstr(&l, "", 0, r->waf_action != NULL ? r->waf_action : "none");
    PUT_STR(&l, "rules", r->waf_rules);
    PUT_LIT(&l, "}");
    PUT_STR(&l, "traceId", r->trace_id);
    PUT_STR(&l, "spanId", r->span_id);
    if (r->stripe_version[0] != '\0')
        PUT_STR(&l, "stripeVersion", r->stripe_version);
    end(t->access, p, &l, now);
}

static void
on_conn(const pd_conn_info_t *c, void *arg)
{
    pd_traffic_log_t *t = arg;
    pending_t *p = &tl_pending[1];
    line_t l;
    int64_t now = pd_real_ms();

    begin(&l, p, "flow", now);
    PUT_STR(&l, "action", c->reject_reason == NULL ? "accept" : "reject");
    PUT_STR(&l, "listener", c->listener == PD_L_API ? "api" : "admin");
    PUT_STR(&l, "peer", c->peer);
    PUT_U64(&l, "peerPort", c->peer_port);
    PUT_U64(&l, "localPort", c->local_port);
    PUT_STR(&l, "tlsVersion", c->tls_version);
    PUT_STR(&l, "tlsCipher", c->tls_cipher);
    PUT_STR(&l, "clientCertCN", c->client_cn);
    if (c->bytes_in_known)
        PUT_U64(&l, "bytesIn", c->bytes_in);
    else
        PUT_LIT(&l, ",\"bytesIn\":null");
    PUT_U64(&l, "bytesOut", c->bytes_out);
    PUT_U64(&l, "duration_ms", c->duration_ms);
    PUT_STR(&l, "reason", c->reject_reason);
    end(t->flow, p, &l, now);
}

int
pd_traffic_log_attach(pd_traffic_log_t *t, pd_server_t *s)
{
    if (t->flow != NULL)
        pd_server_on_conn_close(s, on_conn, t);
    pd_server_on_tick(s, on_tick, t);
    return t->access != NULL ? pd_server_on_finish(s, on_request, t) : 0;
}

int
pd_traffic_log_reopen(pd_traffic_log_t *t)
{
    int r = 0, r2 = 0;
    if (t->access != NULL)
        r = pd_log_sink_reopen(t->access);
    if (t->flow != NULL)
        r2 = pd_log_sink_reopen(t->flow);
    return r != 0 ? r : r2;
}

void
pd_traffic_log_free(pd_traffic_log_t *t)
{
    if (t == NULL)
        return;
    pd_log_sink_free(t->access);
    pd_log_sink_free(t->flow);
    free(t);
}
