/*
 * The alarm table and the state machine of one alarm (payd/alarms.h): CloudWatch's
 * "N out of N" evaluation with missing data treated as not breaching.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "payd/alarms.h"

/* The seeds: CPU > 80 %, memory > 85 %, database > 80 (here: commit p99 in ms, or the
 * store unable to reach its database), unhealthy >= 1 per minute, 4xx > 100 and
 * 5xx > 10 per 5 minutes; 2 evaluation periods each. */
const pd_alarm_def_t pd_alarm_defs[PD_ALARM_N] = {
    [PD_ALARM_CPU] = {"cpu", "Average", "percent", "payd's CPU use is high", PD_ALARM_GT, "80", "5m", "2",
                      "warning"},
    [PD_ALARM_MEMORY] = {"memory", "Maximum", "percent", "payd's resident memory is close to its limit", PD_ALARM_GT,
                         "85", "5m", "2", "warning"},
    [PD_ALARM_DB] = {"db", "p99", "ms", "database commits are slow or the database is unreachable", PD_ALARM_GT, "80",
                     "5m", "2", "critical"},
    [PD_ALARM_UNHEALTHY] = {"unhealthy", "Maximum", "count", "this node is not ready (/readyz) or a node of the cluster is dead", PD_ALARM_GE, "1", "1m",
                            "2", "critical"},
    [PD_ALARM_API_4XX] = {"api_4xx", "Sum", "count", "many API requests end in 4xx", PD_ALARM_GT, "100", "5m", "2",
                          "warning"},
    [PD_ALARM_API_5XX] = {"api_5xx", "Sum", "count", "API requests end in 5xx", PD_ALARM_GT, "10", "5m", "2",
                          "critical"},
    /* the issue's: the last scheduled backup's success older than 26 h ([backup] schedule off: no data) */
    [PD_ALARM_BACKUP] = {"backup", "Maximum", "hours", "the last scheduled backup succeeded too long ago, or never",
                         PD_ALARM_GT, "26", "5m", "1", "critical"},
};

const char *
pd_alarm_state_name(pd_alarm_state_t s)
{
    switch (s) {
    case PD_ALARM_OK: return "OK";
    case PD_ALARM_ALARM: return "ALARM";
    default: return "INSUFFICIENT_DATA";
    }
}

const char *
pd_alarm_cmp_name(pd_alarm_cmp_t c)
{
    return c == PD_ALARM_GE ? "GreaterThanOrEqualToThreshold" : "GreaterThanThreshold";
}

void
pd_alarm_init(pd_alarm_t *a, const pd_alarm_def_t *def, double threshold, int64_t period_ms, int evaluation_periods,
              int64_t now)
{
    memset(a, 0, sizeof(*a));
    a->def = def;
    a->threshold = threshold;
    a->period_ms = period_ms;
    if (evaluation_periods < 1)
        evaluation_periods = 1;
    if (evaluation_periods > PD_ALARM_MAX_PERIODS)
        evaluation_periods = PD_ALARM_MAX_PERIODS;
    a->evaluation_periods = evaluation_periods;
    a->state = PD_ALARM_INSUFFICIENT_DATA;
    a->since = now;
    snprintf(a->reason, sizeof(a->reason), "Unchecked: fewer than %d periods evaluated since start", evaluation_periods);
}

static bool
breaches(const pd_alarm_t *a, double v)
{
    if (isnan(v))
        return false;
    return a->def->cmp == PD_ALARM_GE ? v >= a->threshold : v > a->threshold;
}

bool
pd_alarm_step(pd_alarm_t *a, bool have, double value, const char *note, int64_t now, pd_alarm_state_t *prev)
{
    int n = a->evaluation_periods;
    bool b = have && breaches(a, value); /* missing: not breaching */
    a->breached[a->evaluated % n] = b;
    a->evaluated++;
    a->have_value = have;
    a->value = have ? value : 0;

    pd_alarm_state_t next = a->state;
    int nb = 0;
    if (a->evaluated >= n) {
        for (int i = 0; i < n; i++)
            nb += a->breached[i] ? 1 : 0;
        next = nb == n ? PD_ALARM_ALARM : PD_ALARM_OK;
    }
    char v[48];
    if (have)
        snprintf(v, sizeof(v), "%.6g", value);
    else
        snprintf(v, sizeof(v), "no datapoint (treated as not breaching)");
    if (a->evaluated < n)
        snprintf(a->reason, sizeof(a->reason), "Unchecked: %lld of %d periods evaluated; last %s%s%s",
                 (long long)a->evaluated, n, v, note ? ": " : "", note ? note : "");
    else
        snprintf(a->reason, sizeof(a->reason), "Threshold Crossed: %d out of the last %d datapoints %s %.6g %s; last %s%s%s",
                 nb, n, a->def->cmp == PD_ALARM_GE ? ">=" : ">", a->threshold, a->def->unit, v, note ? ": " : "",
                 note ? note : "");
    if (prev != NULL)
        *prev = a->state;
    if (next == a->state)
        return false;
    a->state = next;
    a->since = now;
    return true;
}
