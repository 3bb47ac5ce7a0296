/* [backup] (payd/backup_config.h): the scheduled backup's settings and its time slots. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "payd/backup_config.h"
#include "payd/error.h"

static const pd_config_key_t keys[] = {
#define C(f) offsetof(pd_backup_config_t, f)
    {"schedule", PD_CT_STR, C(schedule), "03:00",
     .help = "daily time (HH:MM, local) of the scheduled backup that payctl backup run makes, or off"},
    {"keep_days", PD_CT_INT, C(keep_days), "7", 7, 35,
     .help = "scheduled backups older than this many days are removed"},
    {"dir", PD_CT_PATH, C(dir), "", .help = "directory of the scheduled backups (empty: the file store)"},
    {"wal_archive", PD_CT_BOOL, C(wal_archive), "false",
     .help = "keep the SQLite store's WAL between backups (in DIR/wal, or DATA_DIR/wal-archive), for restores to a "
             "point in time (payctl backup restore --until)"},
#undef C
};

static pd_backup_config_t g_cfg = {"03:00", 7, "", false};

int
pd_backup_config_register(pd_config_t *cfg)
{
    return pd_config_add(cfg, "backup", keys, sizeof(keys) / sizeof(keys[0]), &g_cfg);
}

const pd_backup_config_t *
pd_backup_config(void)
{
    return &g_cfg;
}

int
pd_backup_wal_dir(char *out, size_t cap, const char *data_dir)
{
    int n = g_cfg.dir[0] != '\0' ? snprintf(out, cap, "%s/wal", g_cfg.dir) : snprintf(out, cap, "%s/wal-archive", data_dir);
    return n < 0 || (size_t)n >= cap ? PD_ERR_TOOBIG : 0;
}

int
pd_backup_schedule_parse(const char *s, int *minute)
{
    if (s != NULL && strcmp(s, "off") == 0) {
        *minute = -1;
        return 0;
    }
    if (s == NULL || strlen(s) != 5 || s[2] != ':')
        return PD_ERR_CONFIG;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return PD_ERR_CONFIG;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 23 || m > 59)
        return PD_ERR_CONFIG;
    *minute = h * 60 + m;
    return 0;
}

int64_t
pd_backup_last_slot(int minute, int64_t now)
{
    time_t t = (time_t)now;
    struct tm tm;
    localtime_r(&t, &tm);
    tm.tm_hour = minute / 60;
    tm.tm_min = minute % 60;
    tm.tm_sec = 0;
    tm.tm_isdst = -1; /* as the day has it */
    time_t slot = mktime(&tm);
    if (slot > t) { /* not yet today: yesterday's */
        localtime_r(&t, &tm);
        tm.tm_mday -= 1;
        tm.tm_hour = minute / 60;
        tm.tm_min = minute % 60;
        tm.tm_sec = 0;
        tm.tm_isdst = -1;
        slot = mktime(&tm);
    }
    return (int64_t)slot;
}
