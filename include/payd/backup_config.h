/*
 * [backup]: the daily scheduled backup (docs/backup.md, "Scheduled backups"). payd
 * registers the section (so its configuration is one file for both) and reads the last
 * success for the `backup` alarm; `payctl backup run`, started by a timer
 * (deploy/systemd/payd-backup.timer), makes the backup when it is due.
 */
#ifndef PAYD_BACKUP_CONFIG_H
#define PAYD_BACKUP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/config.h"
#include "payd/wal_archive.h"

typedef struct {
    const char *schedule; /* "HH:MM" local time, daily, or "off" */
    int64_t keep_days;    /* archives older than this are removed (7 to 35, as RDS keeps backups) */
    const char *dir;      /* where archives go ("" = the file store) */
    bool wal_archive;     /* payd archives the SQLite store's WAL (payd/wal_archive.h) */
} pd_backup_config_t;

int pd_backup_config_register(pd_config_t *cfg) PD_WUR;
const pd_backup_config_t *pd_backup_config(void);

/* "HH:MM" as a minute of the day into *minute, or -1 for "off"; PD_ERR_CONFIG otherwise */
int pd_backup_schedule_parse(const char *s, int *minute) PD_WUR;
/* The latest scheduled time at or before now (Unix seconds), in local time */
int64_t pd_backup_last_slot(int minute, int64_t now);

/* The WAL archive's directory: [backup] dir/wal, or DATA_DIR/wal-archive without one */
int pd_backup_wal_dir(char *out, size_t cap, const char *data_dir) PD_WUR;

/* A WAL archive segment's key from the vault's backup.key (a pd_wal_key_fn; arg unused),
 * through the client set by pd_backup_wal_key_source; NULL (before the vault closes)
 * waits for a call in flight, and later calls fail with PD_ERR_UNAVAILABLE. */
typedef struct pd_vault_client pd_vault_client_t;
void pd_backup_wal_key_source(pd_vault_client_t *vault);
int pd_backup_wal_key(void *arg, uint8_t key[PD_WAL_KEY_LEN], uint8_t wrapped[PD_WAL_WRAPPED_LEN]) PD_WUR;

/* The worker_cursors rows of the scheduled backup: Unix seconds of the last success and
 * the last failure (0: none) */
#define PD_BACKUP_LAST_SUCCESS "backup.last_success"
#define PD_BACKUP_LAST_FAILURE "backup.last_failure"

#endif
