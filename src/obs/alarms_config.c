/*
 * [alarms]: four keys per row of pd_alarm_defs (<name>_threshold, _period,
 * _evaluation_periods, _enabled), built from the table so a new row brings its keys,
 * and the notification keys. An unknown alarm name is an unknown key to the loader.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "payd/alarms.h"
#include "payd/config.h"

#define PER_ALARM 4
#define NOTIFY_KEYS 7
#define NKEYS (PD_ALARM_N * PER_ALARM + NOTIFY_KEYS)

#define C(f) offsetof(pd_alarms_config_t, f)
static pd_config_key_t keys[NKEYS];
static char names[PD_ALARM_N][PER_ALARM][64];
static char helps[PD_ALARM_N][PER_ALARM][160];

static const pd_config_key_t notify_keys[NOTIFY_KEYS] = {
    {"notify_url", PD_CT_STR, C(notify_url), "",
     .help = "comma-separated http(s) URLs that get every state change (Alertmanager webhook format, version 4)"},
    {"notify_command", PD_CT_PATH, C(notify_command), "",
     .help = "absolute path of a program run (no shell) with each notification's JSON on standard input"},
    {"notify_secret", PD_CT_STR, C(notify_secret), "payd/alarms",
     .help = "vault secret whose CURRENT value keys the X-Payd-Signature HMAC-SHA256 of each notification"},
    {"notify_timeout", PD_CT_MS, C(notify_timeout_ms), "5s", 100, 60000,
     .help = "deadline of one notification attempt (a POST or the command)"},
    {"notify_attempts", PD_CT_INT, C(notify_attempts), "5", 1, 20,
     .help = "attempts per notification and URL, with back-off 1s, 2s, 4s, ... (at most 30s)"},
    {"instance", PD_CT_STR, C(instance), "", .help = "label instance of notifications (default: the host name)"},
    {"external_url", PD_CT_STR, C(external_url), "",
     .help = "externalURL of notifications (default: http://[admin] listen)"},
};

static void
build_keys(void)
{
    for (size_t i = 0; i < PD_ALARM_N; i++) {
        const pd_alarm_def_t *d = &pd_alarm_defs[i];
        size_t base = C(alarm) + i * sizeof(pd_alarm_config_t);
        pd_config_key_t *k = &keys[i * PER_ALARM];
        snprintf(names[i][0], sizeof(names[i][0]), "%s_threshold", d->name);
        snprintf(helps[i][0], sizeof(helps[i][0]), "alarm %s: threshold in %s (%s, %s), a number >= 0", d->name,
                 d->unit, d->statistic, pd_alarm_cmp_name(d->cmp));
        k[0] = (pd_config_key_t){names[i][0], PD_CT_STR, base + offsetof(pd_alarm_config_t, threshold), d->threshold,
                                 .help = helps[i][0]};
        snprintf(names[i][1], sizeof(names[i][1]), "%s_period", d->name);
        snprintf(helps[i][1], sizeof(helps[i][1]), "alarm %s: length of one evaluation period", d->name);
        k[1] = (pd_config_key_t){names[i][1], PD_CT_MS, base + offsetof(pd_alarm_config_t, period_ms), d->period, 1000,
                                 86400000, .help = helps[i][1]};
        snprintf(names[i][2], sizeof(names[i][2]), "%s_evaluation_periods", d->name);
        snprintf(helps[i][2], sizeof(helps[i][2]), "alarm %s: consecutive breaching periods that raise the alarm",
                 d->name);
        k[2] = (pd_config_key_t){names[i][2], PD_CT_INT, base + offsetof(pd_alarm_config_t, evaluation_periods),
                                 d->evaluation_periods, 1, PD_ALARM_MAX_PERIODS, .help = helps[i][2]};
        snprintf(names[i][3], sizeof(names[i][3]), "%s_enabled", d->name);
        snprintf(helps[i][3], sizeof(helps[i][3]), "alarm %s: evaluated and listed", d->name);
        k[3] = (pd_config_key_t){names[i][3], PD_CT_BOOL, base + offsetof(pd_alarm_config_t, enabled), "true",
                                 .help = helps[i][3]};
    }
    memcpy(&keys[PD_ALARM_N * PER_ALARM], notify_keys, sizeof(notify_keys));
}
#undef C

int
pd_alarms_config_register(struct pd_config *cfg, pd_alarms_config_t *c)
{
    build_keys();
    return pd_config_add(cfg, "alarms", keys, NKEYS, c);
}

int
pd_alarms_parse_threshold(const char *s, double *out)
{
    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return PD_ERR_INVALID;
    for (const char *p = s; *p != '\0'; p++)
        if (!isdigit((unsigned char)*p) && *p != '.' && *p != '-')
            return PD_ERR_INVALID; /* no exponents, hex, inf, nan, spaces or suffixes */
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || errno != 0 || !isfinite(v))
        return PD_ERR_INVALID;
    if (v < 0)
        return PD_ERR_RANGE;
    *out = v;
    return 0;
}

/* one URL of notify_url: http:// or https:// and a host */
static bool
url_ok(const char *u, size_t n)
{
    size_t skip = n >= 7 && strncmp(u, "http://", 7) == 0 ? 7 : n >= 8 && strncmp(u, "https://", 8) == 0 ? 8 : 0;
    if (skip == 0 || n == skip || u[skip] == '/' || u[skip] == ':')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)u[i] <= ' ' || u[i] == 0x7f)
            return false;
    return true;
}

int
pd_alarms_config_check(const pd_alarms_config_t *c, char *err, size_t cap)
{
    for (size_t i = 0; i < PD_ALARM_N; i++) {
        double v;
        int r = pd_alarms_parse_threshold(c->alarm[i].threshold, &v);
        if (r != 0) {
            snprintf(err, cap, "[alarms] %s_threshold = \"%s\": %s; accepted: a number >= 0 in %s (e.g. %s)",
                     pd_alarm_defs[i].name, c->alarm[i].threshold,
                     r == PD_ERR_RANGE ? "negative thresholds are refused" : "not a number", pd_alarm_defs[i].unit,
                     pd_alarm_defs[i].threshold);
            return PD_ERR_CONFIG;
        }
    }
    const char *p = c->notify_url;
    while (p != NULL && *p != '\0') {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (!url_ok(p, n)) {
            char shown[1100];
            pd_alarm_url_shown(p, n, shown, sizeof(shown)); /* never the password */
            snprintf(err, cap, "[alarms] notify_url: \"%s\" is not an http:// or https:// URL with a host", shown);
            return PD_ERR_CONFIG;
        }
        p = e ? e + 1 : NULL;
    }
    if (c->notify_command != NULL && c->notify_command[0] != '\0' && c->notify_command[0] != '/') {
        snprintf(err, cap, "[alarms] notify_command = \"%s\": must be an absolute path (it is run without a shell)",
                 c->notify_command);
        return PD_ERR_CONFIG;
    }
    if (c->notify_command != NULL && c->notify_command[0] != '\0' && access(c->notify_command, X_OK) != 0) {
        snprintf(err, cap, "[alarms] notify_command = \"%s\": %s", c->notify_command,
                 errno == EACCES ? "not executable" : strerror(errno));
        return PD_ERR_CONFIG;
    }
    if (c->notify_url[0] != '\0' && c->notify_secret[0] == '\0') {
        snprintf(err, cap, "[alarms] notify_secret is empty: notifications to notify_url are always signed");
        return PD_ERR_CONFIG;
    }
    return 0;
}
