/*
 * The standard process_* metrics of the Prometheus client libraries, read from
 * /proc/self when scraped (include/payd/metrics.h).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "payd/metrics.h"

const pd_metric_def_t pd_metrics_process_defs[4] = {PD_METRICS_PROCESS_DEFS};

static void
cpu_seconds(void *arg, double *out, size_t n)
{
    (void)arg;
    struct rusage ru;
    if (n < 1 || getrusage(RUSAGE_SELF, &ru) != 0)
        return;
    out[0] = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
             (double)ru.ru_stime.tv_usec / 1e6;
}

static void
resident_bytes(void *arg, double *out, size_t n)
{
    (void)arg;
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f == NULL)
        return;
    if (n >= 1 && fscanf(f, "%llu %llu", &size, &resident) == 2)
        out[0] = (double)resident * (double)sysconf(_SC_PAGESIZE);
    fclose(f);
}

static void
open_fds(void *arg, double *out, size_t n)
{
    (void)arg;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL || n < 1) {
        if (d != NULL)
            closedir(d);
        return;
    }
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            count++;
    closedir(d);
    out[0] = (double)(count > 0 ? count - 1 : 0); /* less the directory's own descriptor */
}

/* /proc/self/stat field 22 (start time in clock ticks after boot) + /proc/stat btime */
static void
start_time(void *arg, double *out, size_t n)
{
    (void)arg;
    char buf[1024];
    unsigned long long btime = 0, ticks = 0;
    FILE *f = fopen("/proc/self/stat", "re");
    if (f == NULL || n < 1) {
        if (f != NULL)
            fclose(f);
        return;
    }
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces and ')' */
    if (p == NULL)
        return;
    /* after ") ": field 3 (state) onwards; field 22 is the 20th from there */
    p++;
    for (int field = 3; field <= 22 && p != NULL; field++) {
        while (*p == ' ')
            p++;
        if (field == 22) {
            char *end;
            ticks = strtoull(p, &end, 10);
            if (end == p)
                return;
            break;
        }
        p = strchr(p, ' ');
    }
    if ((f = fopen("/proc/stat", "re")) == NULL)
        return;
    while (fgets(buf, sizeof(buf), f) != NULL)
        if (strncmp(buf, "btime ", 6) == 0) {
            btime = strtoull(buf + 6, NULL, 10);
            break;
        }
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (btime > 0 && hz > 0)
        out[0] = (double)btime + (double)ticks / (double)hz;
}

int
pd_metrics_process_attach(pd_metrics_t *m, unsigned first)
{
    static const pd_metric_collect_fn fns[4] = {cpu_seconds, resident_bytes, open_fds, start_time};
    for (unsigned i = 0; i < 4; i++) {
        const pd_metric_def_t *d = pd_metrics_def(m, first + i);
        if (d == NULL || strcmp(d->name, pd_metrics_process_defs[i].name) != 0)
            return PD_ERR_INVALID;
        int r = pd_metrics_set_collector(m, first + i, fns[i], NULL);
        if (r != 0)
            return r;
    }
    return 0;
}
