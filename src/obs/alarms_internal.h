/* Shared by the files of the alarm evaluator (src/obs/alarms*.c); not a public interface. */
#ifndef PAYD_OBS_ALARMS_INTERNAL_H
#define PAYD_OBS_ALARMS_INTERNAL_H

#include <pthread.h>

#include "payd/alarms.h"
#include "payd/metrics.h"

typedef struct {
    bool primed; /* last holds a reading */
    double last; /* the counter at the end of the previous period */
} pd_alarm_src_t;

struct pd_alarms {
    const pd_alarms_config_t *cfg;
    pd_alarms_deps_t deps;
    pthread_mutex_t mu; /* guards alarm[] (the evaluator writes, GET /alarms reads) */
    pthread_cond_t cv;
    pthread_t thread;
    bool thread_started, stopping;
    pd_alarm_t alarm[PD_ALARM_N];
    bool enabled[PD_ALARM_N];
    int64_t due_ms[PD_ALARM_N];     /* monotonic ms of the end of the current period */
    int64_t fired_at[PD_ALARM_N];   /* unix seconds the current ALARM began (startsAt) */
    pd_alarm_src_t src[PD_ALARM_N]; /* evaluator thread only */
    long ncpu;
    double mem_limit;
    int64_t started_at; /* unix seconds: the backup alarm's reference before any backup */
    bool commit_primed;
    pd_metric_hist_t commit_last;
    char instance[256];
    char external_url[512];
    pd_alarm_notifier_t *notifier;
};

/* Readings taken at start so the first period measures from there. */
void pd_alarms_sources_prime(pd_alarms_t *a);
/* The datapoint of alarm i for the period that just ended (false: none); note gets a
 * remark for the reason ("" when none). Evaluator thread only. */
bool pd_alarms_sample(pd_alarms_t *a, size_t i, double period_s, double *value, char *note, size_t cap);
/* cgroup v2 memory.max, else MemTotal, in bytes (0: unknown) */
double pd_alarms_memory_limit(void);

#endif
