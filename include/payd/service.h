/* Process-level settings of payd: [server] in the configuration. */
#ifndef PAYD_SERVICE_H
#define PAYD_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "payd/config.h"

typedef struct {
    char *data_dir;     /* state: databases, dev TLS material, credentials */
    char *user;         /* started as root: the user payd switches to */
    int log_level;      /* pd_log_level_t: debug, info, warn, error */
    char *log_file;     /* "stderr" or a path */
    int64_t log_max_bytes;
    int64_t log_keep;
} pd_service_config_t;

int pd_service_config_register(pd_config_t *cfg, pd_service_config_t *svc) PD_WUR;

#endif
