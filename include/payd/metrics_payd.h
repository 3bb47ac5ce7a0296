/*
 * payd's metrics (src/obs/metrics_payd.c): the family table served at GET /metrics on
 * the admin listener, the closed label lists, and one-line recording helpers for the
 * components. Every family is documented in docs/metrics.md (a test compares).
 *
 * pd_mx is the process's registry: set once by payd before its threads start
 * (pd_mx_open), NULL when [metrics] enabled = false or in programs and tests that
 * do not set it; every helper then does nothing.
 */
#ifndef PAYD_METRICS_PAYD_H
#define PAYD_METRICS_PAYD_H

#include "payd/metrics.h"

/* family indexes into pd_mx_defs */
enum {
    PD_MX_HTTP_REQUESTS,      /* payd_http_requests_total{method,route,code} */
    PD_MX_HTTP_DURATION,      /* payd_http_request_duration_seconds{method,route} */
    PD_MX_HTTP_CONNECTIONS,   /* payd_http_connections{listener} */
    PD_MX_TLS_HANDSHAKES,     /* payd_tls_handshakes_total{result} */
    PD_MX_WAF_DECISIONS,      /* payd_waf_decisions_total{action,family} */
    PD_MX_LIMIT_REFUSALS,     /* payd_limit_refusals_total{limit} */
    PD_MX_PAYMENTS,           /* payd_payments_total{outcome} */
    PD_MX_PAYMENT_AMOUNT,     /* payd_payment_amount_minor_total{currency} */
    PD_MX_REFUNDS,            /* payd_refunds_total{outcome} */
    PD_MX_STORE_BATCHES,      /* payd_store_batches_total */
    PD_MX_STORE_BATCH_WRITES, /* payd_store_batch_writes */
    PD_MX_STORE_COMMIT,       /* payd_store_commit_seconds */
    PD_MX_STORE_QUEUE_DEPTH,  /* payd_store_queue_depth (collected) */
    PD_MX_DB_CONNECTIONS,     /* payd_db_connections{role} (collected) */
    PD_MX_VAULT_REQUESTS,     /* payd_vault_requests_total{op,result} */
    PD_MX_VAULT_DURATION,     /* payd_vault_request_duration_seconds */
    PD_MX_PROCESSOR_REQUESTS, /* payd_processor_requests_total{op,result} */
    PD_MX_WEBHOOK_DELIVERIES, /* payd_webhook_deliveries_total{result} */
    PD_MX_WEBHOOK_BACKLOG,    /* payd_webhook_backlog (collected) */
    PD_MX_STREAM_PUBLISHED,   /* payd_stream_published_total */
    PD_MX_STREAM_BACKLOG,     /* payd_stream_backlog (collected) */
    PD_MX_RECOVERY_RESOLVED,  /* payd_recovery_resolved_total{kind} */
    PD_MX_BACKUP_LAST_SUCCESS, /* payd_backup_last_success_timestamp_seconds (read every 30 s) */
    PD_MX_WAL_ARCHIVE_RECORDS, /* payd_wal_archive_records_total ([backup] wal_archive) */
    PD_MX_WAL_ARCHIVE_FAILURES, /* payd_wal_archive_failures_total */
    PD_MX_WAL_ARCHIVE_LAST,   /* payd_wal_archive_last_record_timestamp_seconds */
    PD_MX_BUILD_INFO,         /* payd_build_info{version} (collected: 1) */
    /* counters the components kept before the registry existed (collected) */
    PD_MX_EDGE_REFUSALS,      /* payd_edge_refusals_total{reason} */
    PD_MX_HTTP_MAX_CONNECTIONS, /* payd_http_max_connections */
    PD_MX_STORE_WRITES,       /* payd_store_writes_total */
    PD_MX_STORE_QUEUE_FULL,   /* payd_store_queue_full_total */
    PD_MX_STORE_SYNCS,        /* payd_store_syncs_total */
    PD_MX_STORE_SYNC_SECONDS, /* payd_store_sync_seconds_total */
    PD_MX_STORE_READ_QUEUE,   /* payd_store_read_queue_depth (collected) */
    PD_MX_STORE_READS_BUSY,   /* payd_store_reads_running (collected) */
    PD_MX_STORE_READ_QUEUE_FULL, /* payd_store_read_queue_full_total (collected) */
    PD_MX_RECONCILE_MISMATCHES, /* payd_reconciliation_mismatches_total */
    PD_MX_ALARM_STATE,        /* payd_alarm_state{alarm,state} (collected) */
    PD_MX_ALARM_NOTIFICATIONS, /* payd_alarm_notifications_total{result} */
    PD_MX_CLUSTER_NODES,      /* payd_cluster_nodes{state} (collected) */
    PD_MX_LEASE_HELD,         /* payd_lease_held{lease} (collected) */
    PD_MX_CACHE_SHARED,       /* payd_cache_shared (collected) */
    PD_MX_CACHE_FALLBACKS,    /* payd_cache_fallbacks_total (collected) */
    PD_MX_CACHE_FALLBACK_OPS, /* payd_cache_fallback_operations_total (collected) */
    PD_MX_PROCESS,            /* the four process_* families, in pd_metrics_process_defs order */
    PD_MX_NFAMILIES = PD_MX_PROCESS + 4
};

/* label lists (closed sets); the enums index them */
enum { PD_MX_METHOD_GET, PD_MX_METHOD_POST, PD_MX_METHOD_DELETE, PD_MX_METHOD_PUT, PD_MX_METHOD_PATCH,
       PD_MX_METHOD_HEAD, PD_MX_METHOD_OPTIONS, PD_MX_METHOD_OTHER };
enum { PD_MX_LISTENER_API, PD_MX_LISTENER_ADMIN };
enum { PD_MX_TLS_SUCCESS, PD_MX_TLS_FAILURE, PD_MX_TLS_TIMEOUT };
enum { PD_MX_WAF_PASS, PD_MX_WAF_LOG, PD_MX_WAF_BLOCK };
enum { PD_MX_LIMIT_RATE, PD_MX_LIMIT_QUOTA, PD_MX_LIMIT_AUTH_LOCKOUT, PD_MX_LIMIT_ACCOUNT_DECLINES,
       PD_MX_LIMIT_CARD_DECLINES, PD_MX_LIMIT_CARDS_PER_IP, PD_MX_LIMIT_MAX_CONNECTIONS,
       PD_MX_LIMIT_MAX_CONNECTIONS_PER_IP };
enum { PD_MX_PAY_SUCCEEDED, PD_MX_PAY_REQUIRES_CAPTURE, PD_MX_PAY_FAILED, PD_MX_PAY_UNKNOWN, PD_MX_PAY_ERROR };
enum { PD_MX_REFUND_SUCCEEDED, PD_MX_REFUND_FAILED, PD_MX_REFUND_UNKNOWN, PD_MX_REFUND_ERROR };
enum { PD_MX_RESULT_OK, PD_MX_RESULT_ERROR, PD_MX_RESULT_TIMEOUT, PD_MX_RESULT_UNAVAILABLE }; /* vault */
enum { PD_MX_PROC_AUTHORIZE, PD_MX_PROC_CAPTURE, PD_MX_PROC_CANCEL, PD_MX_PROC_REFUND, PD_MX_PROC_QUERY,
       PD_MX_PROC_LIST, PD_MX_PROC_DISPUTES, PD_MX_PROC_DISPUTE_RESPOND };
enum { PD_MX_PROC_APPROVED, PD_MX_PROC_DECLINED, PD_MX_PROC_UNKNOWN, PD_MX_PROC_NOT_FOUND, PD_MX_PROC_ERROR,
       PD_MX_PROC_OK /* list() read */ };
enum { PD_MX_HOOK_SUCCESS, PD_MX_HOOK_HTTP_ERROR, PD_MX_HOOK_TIMEOUT, PD_MX_HOOK_NETWORK_ERROR,
       PD_MX_HOOK_REFUSED, PD_MX_HOOK_NOT_STARTED };
enum { PD_MX_RECOVERY_AUTHORIZATION, PD_MX_RECOVERY_CAPTURE, PD_MX_RECOVERY_VOID, PD_MX_RECOVERY_REFUND };
/* the alarm label is in pd_alarm_defs order (payd/alarms.h; checked in alarms.c) */
extern const char *const pd_mx_alarm_names[];
enum { PD_MX_ALARM_OK, PD_MX_ALARM_ALARM, PD_MX_ALARM_INSUFFICIENT_DATA };
enum { PD_MX_NOTIFY_DELIVERED, PD_MX_NOTIFY_FAILED, PD_MX_NOTIFY_NO_SECRET, PD_MX_NOTIFY_QUEUE_FULL,
       PD_MX_NOTIFY_COMMAND_OK, PD_MX_NOTIFY_COMMAND_FAILED };
/* the lease label, in the order of payd/cluster.h's PD_LEASE_* (the lease table's names) */
extern const char *const pd_mx_lease_names[];
enum { PD_MX_NODES_ALIVE, PD_MX_NODES_DEAD };
enum { PD_MX_EDGE_OUT_OF_FDS, PD_MX_EDGE_HTTP2_CALM, PD_MX_EDGE_HTTP2_REQUEST_TIMEOUT, PD_MX_EDGE_MALFORMED };

extern const pd_metric_def_t pd_mx_defs[PD_MX_NFAMILIES];
/* the WAF rule families payd ships (payd.rules), then the address rules' refusals and
 * "none" (a pass) and "other" (a family of a custom rule file): NULL-terminated */
extern const char *const pd_mx_waf_families[];
#define PD_MX_WAF_FAMILY_NONE 15 /* "none" in pd_mx_waf_families (checked in metrics_payd.c) */

extern pd_metrics_t *pd_mx;

/* [metrics] */
typedef struct {
    bool enabled; /* record and serve GET /metrics; false: nothing is recorded (benchmarks compare) */
} pd_mx_config_t;
struct pd_config;
int pd_mx_config_register(struct pd_config *cfg, pd_mx_config_t *c) PD_WUR;

/* Makes the registry, sets pd_mx, attaches the process metrics and build_info
 * (version). currencies: the supported currency codes (label of
 * payd_payment_amount_minor_total), in the order of their indexes. */
int pd_mx_open(const char *version, const char *const *currencies, size_t ncurrencies) PD_WUR;
/* Clears pd_mx and frees it (after every recording thread stopped). */
void pd_mx_close(void);

/* helpers (no-ops while pd_mx is NULL) */
static inline void
pd_mx_inc(unsigned fam, size_t series)
{
    pd_metric_add(pd_mx, fam, series, 1);
}
static inline void
pd_mx_inc2(unsigned fam, size_t a, size_t b)
{
    size_t idx[2] = {a, b};
    pd_metric_add(pd_mx, fam, pd_metric_series(pd_mx, fam, idx), 1);
}
/* the index of a WAF family name in pd_mx_waf_families ("other" when unknown) */
size_t pd_mx_waf_family(const char *family);
/* the code label's index of an HTTP status ("other" for one outside the list) */
size_t pd_mx_http_code(int status);
/* payd_vault_requests_total{op,result} and the duration, for an IPC message type */
void pd_mx_vault_request(unsigned msg_type, size_t result, double seconds);
/* payd_store_*: one committed batch of n writes whose COMMIT took seconds */
void pd_mx_store_batch(size_t n, double seconds);

#endif
