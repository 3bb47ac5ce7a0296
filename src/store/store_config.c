#include <stddef.h>

#include "payd/store.h"

#define S(f) offsetof(pd_store_config_t, f)
static const char *const backends[] = {"sqlite", "postgres", NULL};
static const pd_config_key_t keys[] = {
    {"backend", PD_CT_ENUM, S(backend), "sqlite", .choices = backends, .help = "storage backend"},
    {"path", PD_CT_PATH, S(path), "", .help = "SQLite database file (default DATA_DIR/payd.db)"},
    {"url", PD_CT_STR, S(url), "",
     .help = "PostgreSQL libpq URI or conninfo string, multi-host included (backend = postgres)"},
    {"password_file", PD_CT_PATH, S(password_file), "",
     .help = "file holding the PostgreSQL password (overrides one in url)"},
    {"password_secret", PD_CT_STR, S(password_secret), "",
     .help = "vault secret holding the PostgreSQL password (\"PASSWORD\" or \"USER\\nPASSWORD\"; rotations are picked up)"},
    {"writers", PD_CT_INT, S(writers), "4", 1, 64,
     .help = "PostgreSQL writer connections, each committing its own batch (SQLite has one writer)"},
    {"readers", PD_CT_INT, S(readers), "-1", -1, 64,
     .help = "reader threads, each with its own connection, that run the API's reads off the event loops (-1: 4 on "
             "postgres, 0 on sqlite; 0: reads run on the calling thread)"},
    {"read_queue", PD_CT_INT, S(read_queue), "4096", 16, 1000000,
     .help = "reads waiting for a reader thread before new ones are refused (503)"},
    {"read_timeout_ms", PD_CT_MS, S(read_timeout_ms), "5s", 0, 300000,
     .help = "PostgreSQL: a read of the API's reader threads that the database has not answered within this is "
             "given up (503, the connection dropped and made anew), so a database that stops answering cannot hold "
             "a request past it; 0 = no bound"},
    {"max_batch", PD_CT_INT, S(max_batch), "512", 1, 100000,
     .help = "most writes committed together in one transaction (group commit)"},
    {"max_queue", PD_CT_INT, S(max_queue), "100000", 16, 10000000,
     .help = "writes waiting for the writer before new ones are refused (503)"},
};
#undef S

int
pd_store_config_register(pd_config_t *cfg, pd_store_config_t *c)
{
    return pd_config_add(cfg, "store", keys, sizeof(keys) / sizeof(keys[0]), c);
}
