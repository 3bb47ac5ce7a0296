/* Fuzzes the configuration loader: arbitrary INI text through inih and every value parser,
 * and the [alarms] checks (thresholds, notify URLs). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "payd/alarms.h"
#include "payd/config.h"
#include "payd/edge.h"
#include "payd/service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/payd-fuzz-config-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    pd_config_t *c = NULL;
    pd_service_config_t svc;
    pd_edge_api_config_t api;
    pd_edge_admin_config_t admin;
    pd_alarms_config_t alarms;
    if (pd_config_new(&c) == 0 && pd_service_config_register(c, &svc) == 0 &&
        pd_edge_config_register(c, &api, &admin) == 0 && pd_alarms_config_register(c, &alarms) == 0) {
        if (pd_config_load_file(c, path) == 0) {
            char err[512];
            (void)!pd_alarms_config_check(&alarms, err, sizeof(err)); /* thresholds, URLs, command */
            FILE *f = fopen("/dev/null", "w");
            pd_config_dump(c, f);
            fclose(f);
        }
    }
    pd_config_free(c);
    unlink(path);
    return 0;
}
