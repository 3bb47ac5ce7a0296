/* The access and flow logs (payd/traffic_log.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payd/json.h"
#include "payd/log.h"
#include "payd/time.h"
#include "payd/traffic_log.h"

#define LINE_MAX_BYTES 4096

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
    {"keep", PD_CT_INT, C(keep), "14", 0, 1000, .help = "rotated access and flow log files kept (retention)"},
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
emit(pd_log_sink_t *sink, pd_jw_t *w, pd_buf_t *b)
{
    pd_jw_obj_end(w);
    if (pd_jw_finish(w) == 0 && pd_buf_put_byte(b, '\n') == 0)
        pd_log_sink_write(sink, b->p, b->len);
    pd_buf_free(b);
}

static void
begin(pd_jw_t *w, pd_buf_t *b, const char *type, int64_t real_ms)
{
    char ts[32];
    pd_buf_init(b, LINE_MAX_BYTES);
    pd_jw_init(w, b);
    pd_jw_obj_begin(w);
    pd_time_rfc3339(real_ms, ts, sizeof(ts));
    pd_jw_kstr(w, "ts", ts);
    pd_jw_kstr(w, "type", type);
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
    pd_jw_t w;
    pd_buf_t b;
    char ts[32], lat[32];
    uint64_t elapsed_ns = pd_mono_ns() - r->start_ns;
    int64_t now = pd_real_ms();

    begin(&w, &b, "access", now);
    pd_jw_kstr(&w, "requestId", r->id);
    pd_jw_kstr(&w, "ip", r->peer);
    pd_jw_kstr(&w, "caller", r->caller);
    pd_time_rfc3339(now - (int64_t)(elapsed_ns / 1000000u), ts, sizeof(ts));
    pd_jw_kstr(&w, "requestTime", ts);
    pd_jw_kstrv(&w, "httpMethod", r->method.len <= 16 ? r->method : PD_VIEW_LIT("(long)"));
    pd_jw_kstr(&w, "resourcePath", r->route != NULL ? r->route->pattern : NULL);
    /* 499 (nginx's "client closed request"): the client left before the response */
    pd_jw_kint(&w, "status", r->responded ? r->status : 499);
    pd_jw_kstr(&w, "protocol", protocol_name(r->http_version));
    pd_jw_kint(&w, "responseLength", (int64_t)r->resp_bytes);
    snprintf(lat, sizeof(lat), "%.3f", (double)elapsed_ns / 1e6);
    pd_jw_key(&w, "latency_ms");
    pd_jw_raw(&w, pd_view_cstr(lat));
    pd_jw_kstr(&w, "errorCode", r->error_code);
    pd_jw_key(&w, "waf");
    pd_jw_obj_begin(&w);
    pd_jw_kstr(&w, "action", r->waf_action != NULL ? r->waf_action : "none");
    pd_jw_kstr(&w, "rules", r->waf_rules);
    pd_jw_obj_end(&w);
    pd_jw_kstr(&w, "traceId", r->trace_id);
    pd_jw_kstr(&w, "spanId", r->span_id);
    emit(t->access, &w, &b);
}

static void
on_conn(const pd_conn_info_t *c, void *arg)
{
    pd_traffic_log_t *t = arg;
    pd_jw_t w;
    pd_buf_t b;

    begin(&w, &b, "flow", pd_real_ms());
    pd_jw_kstr(&w, "action", c->reject_reason == NULL ? "accept" : "reject");
    pd_jw_kstr(&w, "listener", c->listener == PD_L_API ? "api" : "admin");
    pd_jw_kstr(&w, "peer", c->peer);
    pd_jw_kint(&w, "peerPort", c->peer_port);
    pd_jw_kint(&w, "localPort", c->local_port);
    pd_jw_kstr(&w, "tlsVersion", c->tls_version);
    pd_jw_kstr(&w, "tlsCipher", c->tls_cipher);
    pd_jw_kstr(&w, "clientCertCN", c->client_cn);
    pd_jw_key(&w, "bytesIn");
    if (c->bytes_in_known)
        pd_jw_int(&w, (int64_t)c->bytes_in);
    else
        pd_jw_null(&w);
    pd_jw_kint(&w, "bytesOut", (int64_t)c->bytes_out);
    pd_jw_kint(&w, "duration_ms", (int64_t)c->duration_ms);
    pd_jw_kstr(&w, "reason", c->reject_reason);
    emit(t->flow, &w, &b);
}

int
pd_traffic_log_attach(pd_traffic_log_t *t, pd_server_t *s)
{
    if (t->flow != NULL)
        pd_server_on_conn_close(s, on_conn, t);
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
