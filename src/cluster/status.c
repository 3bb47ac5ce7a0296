/* payctl cluster status (payd/cluster.h): the node table and who holds each lease, at
 * the database's clock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payd/cluster.h"
#include "payd/json.h"

#define MAX_LEASES 64
#define MAX_NODES 1024

typedef struct {
    pd_lease_rec_t l[MAX_LEASES];
    size_t n;
} leases_t;

typedef struct {
    pd_node_rec_t *v;
    size_t n;
} nodes_t;

static int
lease_add(const pd_lease_rec_t *l, void *arg)
{
    leases_t *ls = arg;
    if (ls->n == MAX_LEASES)
        return 1;
    ls->l[ls->n++] = *l;
    return 0;
}

static int
node_add(const pd_node_rec_t *n, void *arg)
{
    nodes_t *ns = arg;
    if (ns->n == MAX_NODES)
        return 1;
    ns->v[ns->n++] = *n;
    return 0;
}

static const char *
state_of(const pd_node_rec_t *n, int64_t now)
{
    return n->stopped ? "stopped" : pd_node_dead(n, now) ? "dead" : "alive";
}

static bool
holds(const pd_lease_rec_t *l, const char *id, int64_t now)
{
    return strcmp(l->holder, id) == 0 && l->expires_at > now;
}

static int render(const nodes_t *ns, const leases_t *ls, int64_t now, bool json, pd_buf_t *out);

int
pd_cluster_status(pd_db_t *db, bool json, pd_buf_t *out)
{
    leases_t ls = {.n = 0};
    nodes_t ns = {calloc(MAX_NODES, sizeof(pd_node_rec_t)), 0}; /* ~700 KiB: not on the stack */
    int64_t now;
    int r;
    if (ns.v == NULL)
        return PD_ERR_NOMEM;
    if ((r = pd_db_clock_ms(db, &now)) != 0 || (r = pd_node_list(db, node_add, &ns)) != 0 ||
        (r = pd_lease_list(db, lease_add, &ls)) != 0)
        goto out;
    r = render(&ns, &ls, now, json, out);
out:
    free(ns.v);
    return r;
#undef ls
}

static int
render(const nodes_t *ns, const leases_t *ls, int64_t now, bool json, pd_buf_t *out)
{
    int r;
    if (json) {
        pd_jw_t w;
        pd_jw_init(&w, out);
        pd_jw_obj_begin(&w);
        pd_jw_kint(&w, "now_ms", now);
        pd_jw_key(&w, "nodes");
        pd_jw_arr_begin(&w);
        for (size_t i = 0; i < ns->n; i++) {
            const pd_node_rec_t *n = &ns->v[i];
            pd_jw_obj_begin(&w);
            pd_jw_kstr(&w, "id", n->id);
            pd_jw_kstr(&w, "hostname", n->hostname);
            pd_jw_kint(&w, "pid", n->pid);
            pd_jw_kstr(&w, "version", n->version);
            pd_jw_kstr(&w, "admin", n->admin);
            pd_jw_kint(&w, "started_at_ms", n->started_at);
            pd_jw_kint(&w, "last_beat_age_ms", now - n->beat_at);
            pd_jw_kint(&w, "heartbeat_interval_ms", n->interval_ms);
            pd_jw_kstr(&w, "state", state_of(n, now));
            pd_jw_key(&w, "leases");
            pd_jw_arr_begin(&w);
            for (size_t j = 0; j < ls->n; j++)
                if (holds(&ls->l[j], n->id, now))
                    pd_jw_str(&w, ls->l[j].name);
            pd_jw_arr_end(&w);
            pd_jw_obj_end(&w);
        }
        pd_jw_arr_end(&w);
        pd_jw_key(&w, "leases");
        pd_jw_arr_begin(&w);
        for (size_t j = 0; j < ls->n; j++) {
            const pd_lease_rec_t *l = &ls->l[j];
            bool live = l->expires_at > now;
            pd_jw_obj_begin(&w);
            pd_jw_kstr(&w, "name", l->name);
            pd_jw_key(&w, "holder");
            if (live)
                pd_jw_str(&w, l->holder);
            else
                pd_jw_null(&w);
            pd_jw_kint(&w, "token", l->token);
            pd_jw_kint(&w, "expires_in_ms", live ? l->expires_at - now : 0);
            pd_jw_kint(&w, "held_for_ms", live ? now - l->acquired_at : 0);
            pd_jw_obj_end(&w);
        }
        pd_jw_arr_end(&w);
        pd_jw_obj_end(&w);
        return pd_jw_finish(&w);
    }
    r = pd_buf_printf(out, "%-24s %-8s %10s  %-20s %8s  %-10s %s\n", "NODE", "STATE", "LAST BEAT", "HOST", "PID",
                      "VERSION", "LEASES");
    for (size_t i = 0; i < ns->n && r == 0; i++) {
        const pd_node_rec_t *n = &ns->v[i];
        char held[256] = "";
        size_t hl = 0;
        for (size_t j = 0; j < ls->n; j++)
            if (holds(&ls->l[j], n->id, now) && hl < sizeof(held)) {
                int k = snprintf(held + hl, sizeof(held) - hl, "%s%s", hl > 0 ? "," : "", ls->l[j].name);
                hl += k > 0 ? (size_t)k : 0;
            }
        r = pd_buf_printf(out, "%-24s %-8s %8.1fs  %-20s %8lld  %-10s %s\n", n->id, state_of(n, now),
                          (double)(now - n->beat_at) / 1000.0, n->hostname, (long long)n->pid, n->version,
                          held[0] != '\0' ? held : "-");
    }
    for (size_t j = 0; j < ls->n && r == 0; j++) {
        const pd_lease_rec_t *l = &ls->l[j];
        if (l->expires_at > now)
            r = pd_buf_printf(out, "lease %-10s held by %s (token %lld, expires in %.1fs)\n", l->name, l->holder,
                              (long long)l->token, (double)(l->expires_at - now) / 1000.0);
        else
            r = pd_buf_printf(out, "lease %-10s free (token %lld)\n", l->name, (long long)l->token);
    }
    return r;
}
