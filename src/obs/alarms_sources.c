/*
 * Where each alarm's datapoint comes from (see docs/alarms.md). A source is read once
 * at the end of each of its alarm's periods; counters are turned into the increase
 * over the period against the reading kept from the period before (the first period
 * after start measures from the start baseline).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "obs/alarms_internal.h"
#include "payd/metrics_payd.h"
#include "payd/time.h"

/* cgroup v2 memory.max of this process, else MemTotal; 0 when neither is readable */
double
pd_alarms_memory_limit(void)
{
    char line[512], path[700];
    double limit = 0;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f != NULL) {
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "0::", 3) != 0)
                continue;
            line[strcspn(line, "\n")] = '\0';
            snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.max", strcmp(line + 3, "/") == 0 ? "" : line + 3);
            FILE *m = fopen(path, "r");
            char v[64];
            if (m != NULL && fgets(v, sizeof(v), m) != NULL && strncmp(v, "max", 3) != 0) {
                char *end;
                double d = strtod(v, &end);
                if (end != v && d > 0)
                    limit = d;
            }
            if (m != NULL)
                fclose(m);
        }
        fclose(f);
    }
    if (limit > 0)
        return limit;
    if ((f = fopen("/proc/meminfo", "r")) == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long kb;
        if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
            limit = (double)kb * 1024.0;
            break;
        }
    }
    fclose(f);
    return limit;
}

/* the cumulative reading a counter-based source compares between periods */
static bool
counter_of(pd_alarms_t *a, size_t i, double *out)
{
    pd_metrics_t *mx = a->deps.mx;
    if (mx == NULL)
        return false;
    switch (i) {
    case PD_ALARM_CPU: {
        int fam = pd_metrics_find(mx, "process_cpu_seconds_total");
        if (fam < 0)
            return false;
        *out = pd_metric_read(mx, (unsigned)fam, 0);
        return true;
    }
    case PD_ALARM_API_4XX:
        *out = pd_metric_read_sum(mx, PD_MX_HTTP_REQUESTS, 2, "4");
        return true;
    case PD_ALARM_API_5XX:
        *out = pd_metric_read_sum(mx, PD_MX_HTTP_REQUESTS, 2, "5");
        return true;
    default: return false;
    }
}

void
pd_alarms_sources_prime(pd_alarms_t *a)
{
    for (size_t i = 0; i < PD_ALARM_N; i++)
        a->src[i].primed = counter_of(a, i, &a->src[i].last);
    a->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (a->ncpu < 1)
        a->ncpu = 1;
    a->mem_limit = pd_alarms_memory_limit();
    a->started_at = pd_unix_now();
    if (a->deps.mx != NULL && pd_metric_read_hist(a->deps.mx, PD_MX_STORE_COMMIT, SIZE_MAX, &a->commit_last) == 0)
        a->commit_primed = true;
}

/* the commits of the period: this reading minus the last one, bucket by bucket */
static bool
commit_p99(pd_alarms_t *a, double *ms)
{
    pd_metric_hist_t now, d;
    if (a->deps.mx == NULL || pd_metric_read_hist(a->deps.mx, PD_MX_STORE_COMMIT, SIZE_MAX, &now) != 0)
        return false;
    bool have = false;
    if (a->commit_primed && now.count > a->commit_last.count) {
        d = now;
        for (size_t b = 0; b <= now.nbounds; b++)
            d.cumulative[b] = now.cumulative[b] - a->commit_last.cumulative[b];
        d.count = now.count - a->commit_last.count;
        d.sum = now.sum - a->commit_last.sum;
        double q = pd_metric_quantile(&d, 0.99);
        if (!isnan(q)) {
            *ms = q * 1000.0;
            have = true;
        }
    }
    a->commit_last = now;
    a->commit_primed = true;
    return have;
}

bool
pd_alarms_sample(pd_alarms_t *a, size_t i, double period_s, double *value, char *note, size_t cap)
{
    note[0] = '\0';
    switch (i) {
    case PD_ALARM_CPU:
    case PD_ALARM_API_4XX:
    case PD_ALARM_API_5XX: {
        double now;
        if (!counter_of(a, i, &now))
            return false;
        bool had = a->src[i].primed;
        double inc = now - a->src[i].last;
        a->src[i].last = now;
        a->src[i].primed = true;
        if (!had || inc < 0)
            return false;
        if (i == PD_ALARM_CPU)
            *value = inc / period_s / (double)a->ncpu * 100.0;
        else
            *value = inc;
        return true;
    }
    case PD_ALARM_MEMORY: {
        int fam = a->deps.mx ? pd_metrics_find(a->deps.mx, "process_resident_memory_bytes") : -1;
        if (fam < 0 || a->mem_limit <= 0)
            return false;
        *value = pd_metric_read(a->deps.mx, (unsigned)fam, 0) / a->mem_limit * 100.0;
        return true;
    }
    case PD_ALARM_DB: {
        char why[200] = "";
        bool have = commit_p99(a, value);
        if (a->deps.db_ok != NULL && !a->deps.db_ok(a->deps.db_arg, why, sizeof(why))) {
            /* a store that cannot reach its database breaches whatever the latency */
            snprintf(note, cap, "store not writable: %s", why);
            *value = INFINITY;
            return true;
        }
        return have;
    }
    case PD_ALARM_UNHEALTHY: {
        char why[200] = "";
        if (a->deps.ready == NULL)
            return false;
        bool ok = a->deps.ready(a->deps.ready_arg, why, sizeof(why));
        int64_t dead = 0;
        /* the node that holds the alarms lease also counts the nodes whose heartbeat
         * stopped: one node reports a dead one, not every survivor */
        if (a->deps.dead_nodes == NULL || !a->deps.dead_nodes(a->deps.ready_arg, &dead))
            dead = 0;
        *value = (ok ? 0 : 1) + (double)dead;
        if (!ok && dead > 0)
            snprintf(note, cap, "not ready: %s; %lld dead node(s) in the cluster", why, (long long)dead);
        else if (!ok)
            snprintf(note, cap, "not ready: %s", why);
        else if (dead > 0)
            snprintf(note, cap, "%lld dead node(s) in the cluster (payctl cluster status)", (long long)dead);
        return true;
    }
    case PD_ALARM_BACKUP: {
        /* hours since the last scheduled backup's success (payd_backup_last_success_timestamp_seconds),
         * or, none yet, since this process started: a node that never saw a backup alarms after 26 h */
        if (!a->deps.backups_scheduled)
            return false; /* scheduled backups are off: nothing to watch */
        int fam = a->deps.mx ? pd_metrics_find(a->deps.mx, "payd_backup_last_success_timestamp_seconds") : -1;
        double last = fam >= 0 ? pd_metric_read(a->deps.mx, (unsigned)fam, 0) : 0;
        double now = (double)pd_unix_now();
        if (last <= 0) {
            last = (double)a->started_at;
            snprintf(note, cap, "no scheduled backup has succeeded since this node started");
        }
        *value = (now - last) / 3600.0;
        return true;
    }
    default: return false;
    }
}
