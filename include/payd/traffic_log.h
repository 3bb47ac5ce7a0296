/*
 * Traffic logs of the edge, one JSON object per line:
 *   - the access log: one line per request (request id, client address, caller key
 *     id, method, route template, status, protocol, response size, latency, the
 *     WAF's action and rule ids, W3C trace id);
 *   - the flow log: one line per connection when it closes (accepted or rejected
 *     and why, peer and ports, TLS version and cipher, bytes in/out, duration).
 * Neither ever contains a parameter value, a header value other than the trace
 * context, or a key: cardholder data cannot reach them.
 * [logs] in the configuration; files rotate by size and age, and reopen on SIGUSR1.
 */
#ifndef PAYD_TRAFFIC_LOG_H
#define PAYD_TRAFFIC_LOG_H

#include "payd/config.h"
#include "payd/edge.h"

typedef struct {
    char *access;      /* "off", "stdout", "stderr", or a file (relative: under data_dir) */
    char *flow;
    int64_t max_bytes; /* rotate a file past this size (0: never) */
    int64_t max_age_ms; /* rotate a file this long after it was started (0: never) */
    int64_t keep;      /* rotated files kept per log */
    int64_t retention_ms; /* rotated files older than this removed ([logs] retention; the service log too) */
} pd_traffic_log_config_t;

int pd_traffic_log_config_register(pd_config_t *cfg, pd_traffic_log_config_t *c) PD_WUR;

typedef struct pd_traffic_log pd_traffic_log_t;
/* Opens the configured files; err names the file that could not be opened. */
int pd_traffic_log_open(pd_traffic_log_t **out, const pd_traffic_log_config_t *c, const char *data_dir, char *err,
                        size_t errcap) PD_WUR;
/* Hooks the logs into the server (before pd_server_start). */
int pd_traffic_log_attach(pd_traffic_log_t *t, pd_server_t *s) PD_WUR;
/* Reopens the files (after an external rotation; SIGUSR1). */
int pd_traffic_log_reopen(pd_traffic_log_t *t) PD_WUR;
void pd_traffic_log_free(pd_traffic_log_t *t);

#endif
