/* The store under a unit test (store_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pg_server.h"
#include "store_fixture.h"

char pd_tf_dir[64];
static char pg_url[256];
static int pg_db_n;

int
pd_tf_setup(const char *name)
{
    snprintf(pd_tf_dir, sizeof(pd_tf_dir), "/tmp/payd-%s-XXXXXX", name);
    if (mkdtemp(pd_tf_dir) == NULL)
        return -1;
    if (pd_pg_wanted()) {
        char db[48];
        snprintf(db, sizeof(db), "%s_%d", name, ++pg_db_n);
        if (pd_pg_database(db, true, pg_url, sizeof(pg_url)) != 0)
            return -1;
    }
    return 0;
}

int
pd_tf_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", pd_tf_dir);
    return system(cmd) == 0 ? 0 : -1;
}

pd_store_t *
pd_tf_open(pd_store_config_t *c, int64_t pg_writers)
{
    c->backend = PD_STORE_SQLITE;
    c->path = "";
    if (pd_pg_wanted()) {
        c->backend = PD_STORE_POSTGRES;
        c->url = pg_url;
        c->writers = pg_writers;
    }
    pd_store_t *s;
    assert_int_equal(pd_store_open(&s, c, pd_tf_dir), 0);
    return s;
}
