/*
 * payd's metric families (include/payd/metrics_payd.h; docs/metrics.md documents each).
 * Label values are closed lists: a value a caller cannot map is "other", never the
 * raw text, so no request can grow the number of series.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "payd/metrics_payd.h"
#include "payd/config.h"
#include "payd/vault_ipc.h"

pd_metrics_t *pd_mx;

static const char *const methods[] = {"GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "other", NULL};
static const char *const codes[] = {"200", "201", "204", "400", "401", "402", "403", "404", "405", "409",
                                    "413", "415", "429", "431", "500", "502", "503", "other", NULL};
static const int code_values[] = {200, 201, 204, 400, 401, 402, 403, 404, 405, 409, 413, 415, 429, 431, 500, 502, 503};
static const char *const listeners[] = {"api", "admin", NULL};
static const char *const tls_results[] = {"success", "failure", "timeout", NULL};
static const char *const waf_actions[] = {"pass", "log", "block", NULL};
const char *const pd_mx_waf_families[] = {"java",    "ldap",    "lfi",  "nodejs", "php",      "protocol",
                                          "rce",     "rfi",     "scanner", "session", "sqli",  "ssti",
                                          "xss",     "denylist", "rate-rule", "none", "other", NULL};
static const char *const limits[] = {"rate",          "quota",           "auth_lockout",   "account_declines",
                                     "card_declines", "cards_per_ip",    "max_connections", "max_connections_per_ip",
                                     NULL};
static const char *const pay_outcomes[] = {"succeeded", "requires_capture", "failed", "unknown", "error", NULL};
static const char *const refund_outcomes[] = {"succeeded", "failed", "unknown", "error", NULL};
static const char *const roles[] = {"writer", "reader", NULL};
static const char *const vault_results[] = {"ok", "error", "timeout", "unavailable", NULL};
static const char *const proc_ops[] = {"authorize", "capture", "cancel",          "refund",
                                       "query",     "list",    "disputes",        "dispute_respond", NULL};
static const char *const proc_results[] = {"approved", "declined", "unknown", "not_found", "error", "ok", NULL};
static const char *const hook_results[] = {"success", "http_error", "timeout", "network_error", "refused",
                                           "not_started", NULL};
static const char *const recovery_kinds[] = {"authorization", "capture", "void", "refund", NULL};
const char *const pd_mx_alarm_names[] = {"cpu", "memory", "db", "unhealthy", "api_4xx", "api_5xx", "backup", NULL};
static const char *const alarm_states[] = {"OK", "ALARM", "INSUFFICIENT_DATA", NULL};
static const char *const notify_results[] = {"delivered", "failed", "no_secret", "queue_full", "command_ok",
                                             "command_failed", NULL};
const char *const pd_mx_lease_names[] = {"relay", "stream", "recovery", "alarms", NULL};
static const char *const node_states[] = {"alive", "dead", NULL};
static const char *const edge_reasons[] = {"out_of_fds", "http2_calm", "http2_request_timeout", "malformed_request",
                                           NULL};

/* the vault's message types as the op label (payd_vault_requests_total) */
static const struct {
    unsigned type;
    const char *name;
} vault_op_types[] = {
    {PD_MSG_AUTH, "auth"},
    {PD_MSG_TOKENIZE, "tokenize"},
    {PD_MSG_CARD_GET, "card_get"},
    {PD_MSG_DETOKENIZE, "detokenize"},
    {PD_MSG_CARD_DELETE, "card_delete"},
    {PD_MSG_ENCRYPT, "encrypt"},
    {PD_MSG_DECRYPT, "decrypt"},
    {PD_MSG_GENERATE_DATA_KEY, "generate_data_key"},
    {PD_MSG_REENCRYPT, "reencrypt"},
    {PD_MSG_SECRET_GET, "secret_get"},
    {PD_MSG_ENCRYPT_BATCH, "encrypt_batch"},
};
#define NVAULT_OPS (sizeof(vault_op_types) / sizeof(vault_op_types[0]))
static const char *const vault_ops[] = {"auth",    "tokenize", "card_get",          "detokenize", "card_delete",
                                        "encrypt", "decrypt",  "generate_data_key", "reencrypt",  "secret_get",
                                        "encrypt_batch", "admin",   "other",    NULL};
#define VAULT_OP_ADMIN NVAULT_OPS
#define VAULT_OP_OTHER (NVAULT_OPS + 1)

static const double http_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double write_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
static const double commit_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                       0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
static const double vault_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};

#define L(n, v) {n, v}
#define NB(a) (sizeof(a) / sizeof(a[0]))

const pd_metric_def_t pd_mx_defs[PD_MX_NFAMILIES] = {
    [PD_MX_HTTP_REQUESTS] = {"payd_http_requests_total",
                             "HTTP requests answered, by method, route template (\"unmatched\" when no route "
                             "matched) and status code.",
                             PD_METRIC_COUNTER, PD_METRIC_SPARSE, 3,
                             {L("method", methods), L("route", NULL), L("code", codes)}, NULL, 0},
    [PD_MX_HTTP_DURATION] = {"payd_http_request_duration_seconds",
                             "Time from the request's arrival to its end (response written or client gone).",
                             PD_METRIC_HISTOGRAM, PD_METRIC_SPARSE, 2, {L("method", methods), L("route", NULL)},
                             http_bounds, NB(http_bounds)},
    [PD_MX_HTTP_CONNECTIONS] = {"payd_http_connections", "Connections open now, per listener.", PD_METRIC_GAUGE, 0, 1,
                                {L("listener", listeners)}, NULL, 0},
    [PD_MX_TLS_HANDSHAKES] = {"payd_tls_handshakes_total", "TLS handshakes on the API listener, by result.",
                              PD_METRIC_COUNTER, 0, 1, {L("result", tls_results)}, NULL, 0},
    [PD_MX_WAF_DECISIONS] = {"payd_waf_decisions_total",
                             "WAF verdicts on inspected requests: pass, log (detect mode) or block, by rule family "
                             "of the first match (none for a pass).",
                             PD_METRIC_COUNTER, PD_METRIC_SPARSE, 2,
                             {L("action", waf_actions), L("family", pd_mx_waf_families)}, NULL, 0},
    [PD_MX_LIMIT_REFUSALS] = {"payd_limit_refusals_total",
                              "Requests or connections refused by a limit (usage plan, quota, lockout, velocity, "
                              "connection limits).",
                              PD_METRIC_COUNTER, 0, 1, {L("limit", limits)}, NULL, 0},
    [PD_MX_PAYMENTS] = {"payd_payments_total",
                        "PaymentIntent confirmations that reached the processor, by outcome once recorded.",
                        PD_METRIC_COUNTER, 0, 1, {L("outcome", pay_outcomes)}, NULL, 0},
    [PD_MX_PAYMENT_AMOUNT] = {"payd_payment_amount_minor_total",
                              "Amount of approved payments in minor units, by currency.", PD_METRIC_COUNTER,
                              PD_METRIC_SPARSE, 1, {L("currency", NULL)}, NULL, 0},
    [PD_MX_REFUNDS] = {"payd_refunds_total", "Refunds sent to the processor, by outcome once recorded.",
                       PD_METRIC_COUNTER, 0, 1, {L("outcome", refund_outcomes)}, NULL, 0},
    [PD_MX_STORE_BATCHES] = {"payd_store_batches_total", "Store batches committed (group commit: one transaction each).",
                             PD_METRIC_COUNTER, 0, 0, {{0}}, NULL, 0},
    [PD_MX_STORE_BATCH_WRITES] = {"payd_store_batch_writes", "Writes per committed store batch.", PD_METRIC_HISTOGRAM,
                                  0, 0, {{0}}, write_bounds, NB(write_bounds)},
    [PD_MX_STORE_COMMIT] = {"payd_store_commit_seconds",
                            "Time of a store batch's COMMIT (on SQLite the fsync runs after it, see "
                            "payd_store_sync_seconds_total).",
                            PD_METRIC_HISTOGRAM, 0, 0, {{0}}, commit_bounds, NB(commit_bounds)},
    [PD_MX_STORE_QUEUE_DEPTH] = {"payd_store_queue_depth", "Writes queued for the store's writer now.",
                                 PD_METRIC_GAUGE, 0, 0, {{0}}, NULL, 0},
    [PD_MX_DB_CONNECTIONS] = {"payd_db_connections", "Database connections open, by role.", PD_METRIC_GAUGE, 0, 1,
                              {L("role", roles)}, NULL, 0},
    [PD_MX_VAULT_REQUESTS] = {"payd_vault_requests_total", "Requests to the vault, by operation and result.",
                              PD_METRIC_COUNTER, PD_METRIC_SPARSE, 2, {L("op", vault_ops), L("result", vault_results)},
                              NULL, 0},
    [PD_MX_VAULT_DURATION] = {"payd_vault_request_duration_seconds",
                              "Time from a vault request's submission to its reply (or timeout).", PD_METRIC_HISTOGRAM,
                              0, 0, {{0}}, vault_bounds, NB(vault_bounds)},
    [PD_MX_PROCESSOR_REQUESTS] = {"payd_processor_requests_total", "Calls to the payment processor, by operation and "
                                  "result.", PD_METRIC_COUNTER, PD_METRIC_SPARSE, 2,
                                  {L("op", proc_ops), L("result", proc_results)}, NULL, 0},
    [PD_MX_WEBHOOK_DELIVERIES] = {"payd_webhook_deliveries_total", "Webhook delivery attempts, by result.",
                                  PD_METRIC_COUNTER, 0, 1, {L("result", hook_results)}, NULL, 0},
    [PD_MX_WEBHOOK_BACKLOG] = {"payd_webhook_backlog", "Webhook deliveries pending (not yet delivered or given up).",
                               PD_METRIC_GAUGE, 0, 0, {{0}}, NULL, 0},
    [PD_MX_STREAM_PUBLISHED] = {"payd_stream_published_total",
                                "Events the transaction stream's Redis acknowledged (XADD).", PD_METRIC_COUNTER, 0, 0,
                                {{0}}, NULL, 0},
    [PD_MX_STREAM_BACKLOG] = {"payd_stream_backlog", "Events queued for the transaction stream, not yet published.",
                              PD_METRIC_GAUGE, 0, 0, {{0}}, NULL, 0},
    [PD_MX_RECOVERY_RESOLVED] = {"payd_recovery_resolved_total",
                                 "Interrupted operations the recovery worker finished, by kind.", PD_METRIC_COUNTER, 0,
                                 1, {L("kind", recovery_kinds)}, NULL, 0},
    [PD_MX_BACKUP_LAST_SUCCESS] = {"payd_backup_last_success_timestamp_seconds",
                                   "When the last scheduled backup succeeded (Unix seconds; 0: never).",
                                   PD_METRIC_GAUGE, 0, 0, {{0}}, NULL, 0},
    [PD_MX_WAL_ARCHIVE_RECORDS] = {"payd_wal_archive_records_total",
                                   "Records the WAL archive appended (each the commits of one checkpoint round).",
                                   PD_METRIC_COUNTER, 0, 0, {{0}}, NULL, 0},
    [PD_MX_WAL_ARCHIVE_FAILURES] = {"payd_wal_archive_failures_total",
                                    "Checkpoint rounds the WAL archive could not complete: nothing was checkpointed "
                                    "and the WAL grows until it can.",
                                    PD_METRIC_COUNTER, 0, 0, {{0}}, NULL, 0},
    [PD_MX_WAL_ARCHIVE_LAST] = {"payd_wal_archive_last_record_timestamp_seconds",
                                "When the WAL archive's last record was written (Unix seconds; 0: none yet).",
                                PD_METRIC_GAUGE, 0, 0, {{0}}, NULL, 0},
    [PD_MX_BUILD_INFO] = {"payd_build_info", "Always 1; the version label says which payd runs.", PD_METRIC_GAUGE, 0,
                          1, {L("version", NULL)}, NULL, 0},
    [PD_MX_EDGE_REFUSALS] = {"payd_edge_refusals_total",
                             "Connections or requests the edge refused for a protocol reason.", PD_METRIC_COUNTER, 0,
                             1, {L("reason", edge_reasons)}, NULL, 0},
    [PD_MX_HTTP_MAX_CONNECTIONS] = {"payd_http_max_connections",
                                    "The API listener's limit on open connections ([api] max_connections).",
                                    PD_METRIC_GAUGE, 0, 0, {{0}}, NULL, 0},
    [PD_MX_STORE_WRITES] = {"payd_store_writes_total", "Writes committed by the store.", PD_METRIC_COUNTER, 0, 0,
                            {{0}}, NULL, 0},
    [PD_MX_STORE_QUEUE_FULL] = {"payd_store_queue_full_total",
                                "Writes refused because the store's queue was full (503 server_busy).",
                                PD_METRIC_COUNTER, 0, 0, {{0}}, NULL, 0},
    [PD_MX_STORE_SYNCS] = {"payd_store_syncs_total", "Deferred syncs (fdatasync of the SQLite WAL).",
                           PD_METRIC_COUNTER, 0, 0, {{0}}, NULL, 0},
    [PD_MX_STORE_SYNC_SECONDS] = {"payd_store_sync_seconds_total", "Time spent in deferred syncs.", PD_METRIC_COUNTER,
                                  0, 0, {{0}}, NULL, 0},
    [PD_MX_STORE_READ_QUEUE] = {"payd_store_read_queue_depth", "Reads waiting for one of the store's reader threads.",
                                PD_METRIC_GAUGE, 0, 0, {{0}}, NULL, 0},
    [PD_MX_STORE_READS_BUSY] = {"payd_store_reads_running",
                                "Reader threads running a read now (all of them: reads wait in the queue).",
                                PD_METRIC_GAUGE, 0, 0, {{0}}, NULL, 0},
    [PD_MX_STORE_READ_QUEUE_FULL] = {"payd_store_read_queue_full_total",
                                     "Reads refused because the reader queue was full (503 storage_unavailable).",
                                     PD_METRIC_COUNTER, 0, 0, {{0}}, NULL, 0},
    [PD_MX_RECONCILE_MISMATCHES] = {"payd_reconciliation_mismatches_total",
                                    "Differences reconciliation found between payd's books and the processor's.",
                                    PD_METRIC_COUNTER, 0, 0, {{0}}, NULL, 0},
    [PD_MX_ALARM_STATE] = {"payd_alarm_state",
                           "1 for the state each alarm is in (OK, ALARM or INSUFFICIENT_DATA), 0 for the others.",
                           PD_METRIC_GAUGE, 0, 2, {L("alarm", pd_mx_alarm_names), L("state", alarm_states)}, NULL, 0},
    [PD_MX_ALARM_NOTIFICATIONS] = {"payd_alarm_notifications_total",
                                   "Alarm notifications by result: per URL delivered or failed (after the last "
                                   "attempt), not sent for want of the signing secret, dropped on a full queue, and "
                                   "notify_command runs.",
                                   PD_METRIC_COUNTER, 0, 1, {L("result", notify_results)}, NULL, 0},
    [PD_MX_CLUSTER_NODES] = {"payd_cluster_nodes",
                             "Nodes of the cluster by state at this node's last heartbeat: alive, or dead (no beat "
                             "for 3 of its intervals; a node that stopped cleanly is neither).",
                             PD_METRIC_GAUGE, 0, 1, {L("state", node_states)}, NULL, 0},
    [PD_MX_LEASE_HELD] = {"payd_lease_held", "1 for each worker lease this node holds now, 0 for the others.",
                          PD_METRIC_GAUGE, 0, 1, {L("lease", pd_mx_lease_names)}, NULL, 0},
    [PD_MX_CACHE_SHARED] = {"payd_cache_shared",
                            "1 while the limits are shared through Redis, 0 while this node answers them alone "
                            "(the in-process fallback, or backend = memory).",
                            PD_METRIC_GAUGE, 0, 0, {{0}}, NULL, 0},
    [PD_MX_CACHE_FALLBACKS] = {"payd_cache_fallbacks_total",
                               "Times the cache's Redis connection was lost (or absent at start) and the limits fell "
                               "back to this node's own counters.",
                               PD_METRIC_COUNTER, 0, 0, {{0}}, NULL, 0},
    [PD_MX_CACHE_FALLBACK_OPS] = {"payd_cache_fallback_operations_total",
                                  "Limit operations answered by the in-process fallback while Redis was unreachable.",
                                  PD_METRIC_COUNTER, 0, 0, {{0}}, NULL, 0},
    [PD_MX_PROCESS] = PD_METRICS_PROCESS_DEFS,
};

static const pd_config_key_t config_keys[] = {
    {"enabled", PD_CT_BOOL, offsetof(pd_mx_config_t, enabled), "true",
     .help = "record metrics and serve GET /metrics on the admin listener (docs/metrics.md)"},
};

int
pd_mx_config_register(struct pd_config *cfg, pd_mx_config_t *c)
{
    return pd_config_add(cfg, "metrics", config_keys, sizeof(config_keys) / sizeof(config_keys[0]), c);
}

static const char *build_version[2];

static void
build_info(void *arg, double *out, size_t n)
{
    (void)arg;
    if (n >= 1)
        out[0] = 1;
}

int
pd_mx_open(const char *version, const char *const *currencies, size_t ncurrencies)
{
    pd_metrics_t *m = NULL;
    int r;
    build_version[0] = version;
    build_version[1] = NULL;
    if ((r = pd_metrics_new(&m, pd_mx_defs, PD_MX_NFAMILIES)) != 0 ||
        (r = pd_metrics_set_values(m, PD_MX_BUILD_INFO, 0, build_version, 1)) != 0 ||
        (r = pd_metrics_set_collector(m, PD_MX_BUILD_INFO, build_info, NULL)) != 0 ||
        (r = pd_metrics_process_attach(m, PD_MX_PROCESS)) != 0 ||
        (currencies != NULL && (r = pd_metrics_set_values(m, PD_MX_PAYMENT_AMOUNT, 0, currencies, ncurrencies)) != 0)) {
        pd_metrics_free(m);
        return r;
    }
    pd_mx = m;
    return 0;
}

void
pd_mx_close(void)
{
    pd_metrics_t *m = pd_mx;
    pd_mx = NULL;
    pd_metrics_free(m);
}

_Static_assert(sizeof(pd_mx_waf_families) / sizeof(pd_mx_waf_families[0]) == PD_MX_WAF_FAMILY_NONE + 3,
               "none is the third last WAF family");

size_t
pd_mx_waf_family(const char *family)
{
    size_t i = 0;
    for (; pd_mx_waf_families[i] != NULL; i++)
        if (family != NULL && strcmp(pd_mx_waf_families[i], family) == 0)
            return i;
    return i - 1; /* "other" */
}

size_t
pd_mx_http_code(int status)
{
    for (size_t i = 0; i < NB(code_values); i++)
        if (code_values[i] == status)
            return i;
    return NB(code_values); /* "other" */
}

void
pd_mx_vault_request(unsigned msg_type, size_t result, double seconds)
{
    if (pd_mx == NULL)
        return;
    size_t op = VAULT_OP_OTHER;
    for (size_t i = 0; i < NVAULT_OPS; i++)
        if (vault_op_types[i].type == msg_type)
            op = i;
    if (op == VAULT_OP_OTHER && msg_type >= PD_MSG_KMS_LIST && msg_type < PD_MSG_ERROR)
        op = VAULT_OP_ADMIN;
    pd_mx_inc2(PD_MX_VAULT_REQUESTS, op, result);
    pd_metric_observe(pd_mx, PD_MX_VAULT_DURATION, 0, seconds);
}

void
pd_mx_store_batch(size_t n, double seconds)
{
    if (pd_mx == NULL)
        return;
    pd_metric_add(pd_mx, PD_MX_STORE_BATCHES, 0, 1);
    pd_metric_observe(pd_mx, PD_MX_STORE_BATCH_WRITES, 0, (double)n);
    pd_metric_observe(pd_mx, PD_MX_STORE_COMMIT, 0, seconds);
}
