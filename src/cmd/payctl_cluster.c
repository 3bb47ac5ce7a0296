/*
 * payctl cluster status [--json]: the nodes that share the store (their heartbeat's
 * age, alive/dead/stopped) and which lease each holds; payctl cluster forget NODE
 * removes a node that is gone for good. Both read [store] as payd does
 * (docs/cluster.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/payctl.h"
#include "payd/cluster.h"

static pd_store_t *
open_store(payctl_t *ctx)
{
    pd_store_config_t c = ctx->store;
    c.writers = 1;
    pd_store_t *s = NULL;
    int r = pd_store_open(&s, &c, ctx->data_dir);
    if (r != 0)
        exit(payctl_fail(ctx, "cannot open the payments database %s: %s",
                         c.backend == PD_STORE_POSTGRES ? "(store.url)" : ctx->data_dir, pd_strerror(r)));
    return s;
}

static int
cmd_status(payctl_t *ctx, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--json") != 0)
            return payctl_fail(ctx, "cluster status: unknown argument %s (usage: payctl cluster status [--json])",
                               argv[i]);
    pd_store_t *s = open_store(ctx);
    pd_buf_t out;
    pd_buf_init(&out, 4u << 20);
    pd_db_t *db = pd_store_reader(s);
    int r = db != NULL ? pd_cluster_status(db, ctx->json, &out) : PD_ERR_UNAVAILABLE;
    pd_store_close(s);
    if (r != 0) {
        pd_buf_free(&out);
        return payctl_fail(ctx, "cannot read the cluster's nodes: %s", pd_strerror(r));
    }
    fwrite(out.p, 1, out.len, stdout);
    if (ctx->json)
        fputc('\n', stdout);
    pd_buf_free(&out);
    return 0;
}

typedef struct {
    const char *id;
    bool gone;
} forget_t;

static int
write_forget(pd_db_t *tx, void *arg)
{
    forget_t *f = arg;
    return pd_node_forget(tx, f->id, &f->gone);
}

static int
cmd_forget(payctl_t *ctx, int argc, char **argv)
{
    if (argc != 2 || !pd_cluster_id_valid(argv[1]))
        return payctl_fail(ctx, "usage: payctl cluster forget NODE_ID (a node id as payctl cluster status lists it)");
    pd_store_t *s = open_store(ctx);
    forget_t f = {argv[1], false};
    int r = pd_store_write_sync(s, write_forget, &f);
    pd_store_close(s);
    if (r != 0)
        return payctl_fail(ctx, "cannot forget node %s: %s", argv[1], pd_strerror(r));
    if (!f.gone)
        return payctl_fail(ctx, "no node %s in the cluster", argv[1]);
    if (ctx->json)
        printf("{\"forgotten\":\"%s\"}\n", argv[1]);
    else
        printf("node %s forgotten (it registers again if it beats)\n", argv[1]);
    return 0;
}

const payctl_cmd_t payctl_cluster_cmds[] = {
    {"cluster", "status", "[--json]",
     "the nodes sharing the store: last heartbeat, alive/dead/stopped, the leases each holds", cmd_status},
    {"cluster", "forget", "NODE_ID", "remove a node that is gone for good from the cluster's table", cmd_forget},
};
const size_t payctl_cluster_ncmds = sizeof(payctl_cluster_cmds) / sizeof(payctl_cluster_cmds[0]);
