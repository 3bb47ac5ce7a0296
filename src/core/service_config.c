#include <stddef.h>

#include "payd/service.h"

#define S(f) offsetof(pd_service_config_t, f)
static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
static const pd_config_key_t keys[] = {
    {"data_dir", PD_CT_PATH, S(data_dir), "/var/lib/payd", .help = "directory for databases and generated state"},
    {"user", PD_CT_STR, S(user), "payd",
     .help = "started as root: the user payd serves the network as, after binding its ports and starting the "
             "vault (never root, never nobody, never [vault] user)"},
    {"log_level", PD_CT_ENUM, S(log_level), "info", .choices = levels, .reloadable = true,
     .help = "least severe level written to the service log"},
    {"log_file", PD_CT_PATH, S(log_file), "stderr", .help = "service log destination: stderr or a file path"},
    {"log_max_bytes", PD_CT_SIZE, S(log_max_bytes), "0", 0, INT64_MAX,
     .help = "rotate the log file past this size (0: never; use SIGUSR1 after external rotation)"},
    {"log_keep", PD_CT_INT, S(log_keep), "5", 0, 1000, .help = "rotated log files to keep"},
};
#undef S

int
pd_service_config_register(pd_config_t *cfg, pd_service_config_t *svc)
{
    return pd_config_add(cfg, "server", keys, sizeof(keys) / sizeof(keys[0]), svc);
}
