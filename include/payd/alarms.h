/*
 * The built-in alarm evaluator (src/obs/alarms*.c), with CloudWatch semantics.
 *
 * An alarm watches one value (its source, read from payd's metrics registry or a
 * probe) over fixed periods, reduces each period to one datapoint with its statistic,
 * and compares the datapoint with its threshold. The alarm is ALARM when each of the
 * last evaluation_periods datapoints breached, OK otherwise, and INSUFFICIENT_DATA
 * until evaluation_periods periods have been evaluated since start. A period without
 * a datapoint (no commit to measure, no baseline yet) counts as not breaching
 * (CloudWatch's treat_missing_data = notBreaching).
 *
 * The set of alarms is the table pd_alarm_defs (one row per alarm; later components
 * add rows). docs/alarms.md documents every row.
 *
 * Threads: pd_alarms_start runs an evaluator thread and a notifier thread;
 * pd_alarms_render may run on any thread (a mutex guards the states).
 */
#ifndef PAYD_ALARMS_H
#define PAYD_ALARMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/error.h"

typedef enum { PD_ALARM_INSUFFICIENT_DATA, PD_ALARM_OK, PD_ALARM_ALARM } pd_alarm_state_t;
typedef enum { PD_ALARM_GT, PD_ALARM_GE } pd_alarm_cmp_t;

/* the rows of pd_alarm_defs */
enum {
    PD_ALARM_CPU,
    PD_ALARM_MEMORY,
    PD_ALARM_DB,
    PD_ALARM_UNHEALTHY,
    PD_ALARM_API_4XX,
    PD_ALARM_API_5XX,
    PD_ALARM_BACKUP,
    PD_ALARM_N
};

#define PD_ALARM_MAX_PERIODS 100 /* the largest evaluation_periods */

struct pd_alarm_source;
typedef struct {
    const char *name;        /* config prefix and alertname: cpu, memory, ... */
    const char *statistic;   /* how a period becomes a datapoint ("Average", "Sum", "p99", "Maximum") */
    const char *unit;        /* of the value and the threshold ("percent", "count", "ms") */
    const char *summary;     /* one line for notifications */
    pd_alarm_cmp_t cmp;
    const char *threshold;   /* defaults, in config text */
    const char *period;
    const char *evaluation_periods;
    const char *severity;    /* label of the notification: "critical" or "warning" */
} pd_alarm_def_t;

extern const pd_alarm_def_t pd_alarm_defs[PD_ALARM_N];

const char *pd_alarm_state_name(pd_alarm_state_t s);
const char *pd_alarm_cmp_name(pd_alarm_cmp_t c);

/* --- the state machine of one alarm (pure: no clock, no thread; unit-tested) --- */
typedef struct {
    const pd_alarm_def_t *def;
    double threshold;
    int64_t period_ms;
    int evaluation_periods;
    pd_alarm_state_t state;
    int64_t since;            /* unix seconds of the last state change (start: the start time) */
    int64_t evaluated;        /* periods evaluated since start */
    bool breached[PD_ALARM_MAX_PERIODS]; /* ring of the last evaluation_periods outcomes */
    bool have_value;          /* the last datapoint exists */
    double value;             /* the last datapoint */
    char reason[256];         /* why the state is what it is (CloudWatch's StateReason) */
} pd_alarm_t;

void pd_alarm_init(pd_alarm_t *a, const pd_alarm_def_t *def, double threshold, int64_t period_ms, int evaluation_periods,
                   int64_t now);
/* Evaluates one finished period: have false when the period has no datapoint
 * (missing: not breaching). note (may be NULL) is added to the reason. Returns true
 * when the state changed (*prev gets the old one). */
bool pd_alarm_step(pd_alarm_t *a, bool have, double value, const char *note, int64_t now, pd_alarm_state_t *prev);

/* --- [alarms] --- */
typedef struct {
    char *threshold; /* a number >= 0, in the row's unit */
    int64_t period_ms;
    int64_t evaluation_periods;
    bool enabled;
} pd_alarm_config_t;

typedef struct {
    pd_alarm_config_t alarm[PD_ALARM_N];
    char *notify_url;     /* comma-separated http(s) URLs; "" none */
    char *notify_command; /* program run with the notification on stdin; "" none */
    char *notify_secret;  /* vault secret whose CURRENT value keys X-Payd-Signature */
    char *instance;       /* label "instance" of notifications; "" = the host name */
    char *external_url;   /* externalURL / generatorURL base; "" = http://[admin] listen */
    int64_t notify_timeout_ms;
    int64_t notify_attempts;
} pd_alarms_config_t;

struct pd_config;
int pd_alarms_config_register(struct pd_config *cfg, pd_alarms_config_t *c) PD_WUR;
/* After loading: thresholds are numbers >= 0, every notify_url is http(s)://host...,
 * notify_command is an absolute path. err names the key. PD_ERR_CONFIG on failure. */
int pd_alarms_config_check(const pd_alarms_config_t *c, char *err, size_t cap) PD_WUR;
/* parses a threshold: a finite decimal number >= 0 */
int pd_alarms_parse_threshold(const char *s, double *out) PD_WUR;

/* --- the running evaluator --- */
typedef struct pd_alarms pd_alarms_t;
struct pd_secret_source;
struct pd_metrics;
struct pd_store;

typedef struct {
    struct pd_metrics *mx;                 /* payd's registry (NULL: the metric alarms have no data) */
    bool (*ready)(void *arg, char *why, size_t cap); /* this node's /readyz state (unhealthy) */
    void *ready_arg;
    /* the cluster's dead nodes (unhealthy; payd/cluster.h): false when this node does not
     * count them (it does not hold the alarms lease, or runs no keeper) */
    bool (*dead_nodes)(void *arg, int64_t *dead);
    bool (*db_ok)(void *arg, char *why, size_t cap); /* the store reaches its database (db) */
    void *db_arg;
    bool backups_scheduled;                /* [backup] schedule is not off: the backup alarm watches */
    struct pd_store *store;                /* transitions are audited here (NULL: not audited) */
    const struct pd_secret_source *secrets; /* notify_secret comes from here */
    const char *admin_listen;              /* for externalURL when [alarms] external_url is empty */
} pd_alarms_deps_t;

/* The process's evaluator while it runs (GET /alarms reads it), else NULL. */
extern pd_alarms_t *pd_alarms;

/* Starts the evaluator and notifier threads and sets pd_alarms. The config must outlive it. */
int pd_alarms_start(pd_alarms_t **out, const pd_alarms_config_t *cfg, const pd_alarms_deps_t *deps) PD_WUR;
/* Stops both threads (a notification in flight finishes its current attempt) and frees.
 * After the server's loops have stopped: GET /alarms and the payd_alarm_state collector
 * point at it. NULL ok. */
void pd_alarms_stop(pd_alarms_t *a);
/* Appends [{"name","state","reason","value","threshold","since"}...] (enabled alarms;
 * since in RFC 3339 UTC; value null without a datapoint). */
int pd_alarms_render(pd_alarms_t *a, pd_buf_t *out) PD_WUR;

/* --- notifications (src/obs/alarms_notify.c) --- */
/* The Alertmanager webhook body (version "4") of one transition into out. */
typedef struct {
    const pd_alarm_t *alarm;
    const char *instance, *external_url;
    int64_t starts_at, ends_at; /* unix seconds; ends_at 0 while firing */
} pd_alarm_event_t;
int pd_alarm_payload(const pd_alarm_event_t *e, pd_buf_t *out) PD_WUR;
/* hex HMAC-SHA256 of body under key into hex[65] */
int pd_alarm_sign(const uint8_t *key, size_t keylen, pd_view_t body, char hex[65]) PD_WUR;
/* A notify URL (its first n bytes) as it may be shown in logs and errors: a user:password@
 * part becomes ***@. */
void pd_alarm_url_shown(const char *url, size_t n, char *out, size_t cap);

typedef struct pd_alarm_notifier pd_alarm_notifier_t;
int pd_alarm_notifier_new(pd_alarm_notifier_t **out, const pd_alarms_config_t *cfg,
                          const struct pd_secret_source *secrets) PD_WUR;
/* Queues one body (copied); never blocks: a full queue drops it with a log line. */
void pd_alarm_notify(pd_alarm_notifier_t *n, pd_view_t body);
void pd_alarm_notifier_free(pd_alarm_notifier_t *n);

#endif
