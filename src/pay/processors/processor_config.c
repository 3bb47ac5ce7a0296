#include <stddef.h>

#include "payd/processor.h"

#define P(f) offsetof(pd_processor_config_t, f)
static const pd_config_key_t keys[] = {
    {"simulator_latency_ms", PD_CT_MS, P(simulator_latency_ms), "0", 0, 60000,
     .help = "latency the test-mode simulator adds to every processor call"},
    {"simulator_db", PD_CT_PATH, P(simulator_db), "",
     .help = "the simulator's record of authorizations (default DATA_DIR/simulator.db)"},
};
#undef P

int
pd_processor_config_register(pd_config_t *cfg, pd_processor_config_t *c)
{
    return pd_config_add(cfg, "processor", keys, sizeof(keys) / sizeof(keys[0]), c);
}
