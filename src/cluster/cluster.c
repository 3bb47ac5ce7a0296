/*
 * The keeper (payd/cluster.h): one thread that writes the node's heartbeat and takes
 * or renews the worker leases, each tick one durable write through the store's queue.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "payd/cluster.h"
#include "payd/log.h"
#include "payd/metrics_payd.h"
#include "payd/time.h"

/* nodes without a beat for this long are removed from the table (a node that comes
 * back registers again); until then a dead one is listed and counted */
#define PRUNE_AFTER_MS (24LL * 3600 * 1000)

struct pd_cluster {
    pd_store_t *store;
    pd_cluster_config_t cfg;
    pd_node_rec_t me;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    /* per lease: the monotonic time (ns) until which this node may run its worker (0:
     * not held) and the fencing token it took it with; written by the keeper only */
    _Atomic uint64_t until_ns[PD_LEASE_N];
    _Atomic int64_t token[PD_LEASE_N];
    _Atomic int64_t alive, dead;
    _Atomic bool counted;
    uint64_t warned_ns;
};

pd_cluster_t *_Atomic pd_cluster;

/* what one tick writes and what it learnt */
typedef struct {
    pd_cluster_t *c;
    bool beat, leases, first, last;
    bool held[PD_LEASE_N], busy[PD_LEASE_N]; /* busy: row locked by another transaction, unchanged */
    int64_t token[PD_LEASE_N];
    int64_t alive, dead;
} tick_t;

static int
write_tick(pd_db_t *tx, void *arg)
{
    tick_t *t = arg;
    pd_cluster_t *c = t->c;
    int64_t now;
    int r;
    if ((r = pd_db_clock_ms(tx, &now)) != 0)
        return r;
    if (t->first) {
        /* what this node's previous process held is free: taking it again bumps the token */
        c->me.started_at = now;
        if ((r = pd_lease_release_all(tx, c->me.id)) != 0)
            return r;
    }
    if (t->last) {
        for (unsigned i = 0; i < PD_LEASE_N; i++)
            if ((r = pd_lease_release(tx, pd_mx_lease_names[i], c->me.id)) != 0)
                return r;
        return pd_node_stopped(tx, c->me.id, now);
    }
    if (t->beat) {
        if ((r = pd_node_beat(tx, &c->me, now)) != 0 || (r = pd_node_prune(tx, now - PRUNE_AFTER_MS)) != 0 ||
            (r = pd_node_count_dead(tx, now, &t->dead, &t->alive)) != 0)
            return r;
    }
    if (t->leases) {
        for (unsigned i = 0; i < PD_LEASE_N; i++) {
            int64_t exp = 0;
            r = pd_lease_acquire(tx, pd_mx_lease_names[i], c->me.id, now, c->cfg.lease_ttl_ms, &t->held[i],
                                 &t->token[i], &exp);
            if (r == PD_ERR_AGAIN)
                t->busy[i] = true;
            else if (r != 0)
                return r;
        }
    }
    return 0;
}

/* one tick; returns the store's result, or PD_ERR_AGAIN when it was written but a
 * lease row was busy (locked by another node's keeper at that moment) */
static int
tick(pd_cluster_t *c, bool beat, bool leases, bool first)
{
    tick_t t = {.c = c, .beat = beat, .leases = leases, .first = first};
    /* the local deadline starts before the statement: the database's expiry is later */
    uint64_t sent = pd_mono_ns();
    bool busy = false;
    /* a store whose writes fail decides itself when it takes writes again (after a full
     * disk only once there is room for real batches): a heartbeat that happened to fit
     * in a few free pages must not declare it recovered. Nothing is written meanwhile,
     * so the leases lapse at their deadline, as they would for a failed write. */
    char why[200] = "";
    int r = !first && !pd_store_writable(c->store, why, sizeof(why)) ? PD_ERR_UNAVAILABLE
                                                                      : pd_store_write_sync(c->store, write_tick, &t);
    if (r != 0) {
        /* leases lapse on their own (until_ns); say so at most every 10 s */
        if (sent - c->warned_ns > 10000000000ull || c->warned_ns == 0) {
            c->warned_ns = sent;
            pd_log_warn("cluster: cannot write the heartbeat or renew the leases; held leases lapse at their deadline",
                        PD_LERR(r), PD_LS("store", why[0] != '\0' ? why : "writable"));
        }
        return r;
    }
    if (beat) {
        atomic_store(&c->alive, t.alive);
        atomic_store(&c->dead, t.dead);
        atomic_store(&c->counted, true);
    }
    if (leases) {
        uint64_t until = sent + (uint64_t)c->cfg.lease_ttl_ms * 900000ull; /* 9/10 of the TTL, in ns */
        for (unsigned i = 0; i < PD_LEASE_N; i++) {
            bool had = atomic_load(&c->until_ns[i]) > pd_mono_ns();
            if (t.busy[i]) {
                busy = true; /* neither renewed nor lost: its deadline stands */
            } else if (t.held[i]) {
                atomic_store(&c->token[i], t.token[i]);
                atomic_store(&c->until_ns[i], until);
                if (!had)
                    pd_log_info("cluster: lease taken", PD_LS("lease", pd_mx_lease_names[i]),
                                PD_LI("token", t.token[i]), PD_LS("node_id", c->me.id));
            } else {
                atomic_store(&c->until_ns[i], 0);
                if (had)
                    pd_log_warn("cluster: lease lost to another node", PD_LS("lease", pd_mx_lease_names[i]));
            }
        }
    }
    return busy ? PD_ERR_AGAIN : 0; /* AGAIN: the keeper tries the leases again soon */
}

static void *
keeper_main(void *arg)
{
    pd_cluster_t *c = arg;
    pthread_setname_np(pthread_self(), "payd-cluster");
    uint64_t beat_ns = (uint64_t)c->cfg.heartbeat_interval_ms * 1000000ull;
    uint64_t lease_ns = (uint64_t)c->cfg.lease_ttl_ms * 1000000ull / 3;
    uint64_t next_beat = pd_mono_ns() + beat_ns, next_lease = pd_mono_ns() + lease_ns;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        uint64_t now = pd_mono_ns();
        bool beat = now >= next_beat, leases = now >= next_lease;
        if (beat || leases) {
            pthread_mutex_unlock(&c->mu);
            int r = tick(c, beat, leases, false);
            pthread_mutex_lock(&c->mu);
            now = pd_mono_ns();
            /* a failed tick is tried again soon: a lease that lapses cannot wait a whole period */
            uint64_t retry = now + 500000000ull;
            if (beat)
                next_beat = r == 0 ? next_beat + beat_ns : retry;
            if (leases)
                next_lease = r == 0 ? next_lease + lease_ns : retry;
            if (next_beat < now)
                next_beat = now + beat_ns;
            if (next_lease < now)
                next_lease = now + lease_ns;
            continue;
        }
        uint64_t wake = next_beat < next_lease ? next_beat : next_lease;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t wait = wake - now;
        ts.tv_sec += (time_t)(wait / 1000000000ull);
        ts.tv_nsec += (long)(wait % 1000000000ull);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void
lease_held_metric(void *arg, double *out, size_t n)
{
    (void)arg;
    for (size_t i = 0; i < n && i < PD_LEASE_N; i++)
        out[i] = pd_lease_held((unsigned)i) && atomic_load(&pd_cluster) != NULL ? 1 : 0;
}

static void
nodes_metric(void *arg, double *out, size_t n)
{
    (void)arg;
    int64_t alive = 0, dead = 0;
    (void)pd_cluster_counts(&alive, &dead);
    if (n >= 2) {
        out[PD_MX_NODES_ALIVE] = (double)alive;
        out[PD_MX_NODES_DEAD] = (double)dead;
    }
}

int
pd_cluster_start(const pd_cluster_config_t *cfg, const pd_cluster_deps_t *d)
{
    pd_cluster_t *c = calloc(1, sizeof(*c));
    int r = PD_ERR_INTERNAL;
    if (c == NULL)
        return PD_ERR_NOMEM;
    c->store = d->store;
    c->cfg = *cfg;
    snprintf(c->me.id, sizeof(c->me.id), "%s", d->node_id);
    if (gethostname(c->me.hostname, sizeof(c->me.hostname)) != 0)
        snprintf(c->me.hostname, sizeof(c->me.hostname), "unknown");
    c->me.hostname[sizeof(c->me.hostname) - 1] = '\0';
    snprintf(c->me.version, sizeof(c->me.version), "%s", d->version);
    snprintf(c->me.admin, sizeof(c->me.admin), "%s", d->admin != NULL ? d->admin : "");
    c->me.pid = (int64_t)getpid();
    c->me.interval_ms = cfg->heartbeat_interval_ms;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    if ((r = tick(c, true, true, true)) != 0 && r != PD_ERR_AGAIN) {
        pd_log_error("cluster: cannot register the node in the store", PD_LS("node_id", c->me.id), PD_LERR(r));
        goto fail;
    }
    if (pd_mx != NULL && ((r = pd_metrics_set_collector(pd_mx, PD_MX_LEASE_HELD, lease_held_metric, NULL)) != 0 ||
                          (r = pd_metrics_set_collector(pd_mx, PD_MX_CLUSTER_NODES, nodes_metric, NULL)) != 0))
        goto fail;
    atomic_store(&pd_cluster, c);
    if (pthread_create(&c->thread, NULL, keeper_main, c) != 0) {
        atomic_store(&pd_cluster, NULL);
        r = PD_ERR_INTERNAL;
        goto fail;
    }
    pd_log_info("cluster: node registered", PD_LS("node_id", c->me.id), PD_LS("hostname", c->me.hostname),
                PD_LI("lease_ttl_ms", cfg->lease_ttl_ms), PD_LI("heartbeat_interval_ms", cfg->heartbeat_interval_ms));
    return 0;
fail:
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
    return r;
}

void
pd_cluster_stop(void)
{
    pd_cluster_t *c = atomic_load(&pd_cluster);
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    for (unsigned i = 0; i < PD_LEASE_N; i++)
        atomic_store(&c->until_ns[i], 0);
    /* the leases go at once (another node takes them at its next renewal), and the node
     * is "stopped", not dead */
    tick_t t = {.c = c, .last = true};
    int r = pd_store_write_sync(c->store, write_tick, &t);
    if (r != 0)
        pd_log_warn("cluster: cannot release the leases at stop; they expire after lease_ttl", PD_LERR(r));
    atomic_store(&pd_cluster, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

bool
pd_lease_held(unsigned lease)
{
    pd_cluster_t *c = atomic_load(&pd_cluster);
    if (c == NULL)
        return true;
    if (lease >= PD_LEASE_N)
        return false;
    return pd_mono_ns() < atomic_load(&c->until_ns[lease]);
}

int
pd_lease_fence(pd_db_t *tx, unsigned lease)
{
    pd_cluster_t *c = atomic_load(&pd_cluster);
    int64_t now;
    int r;
    if (c == NULL)
        return 0;
    if (lease >= PD_LEASE_N || !pd_lease_held(lease))
        return PD_ERR_CONFLICT;
    if ((r = pd_db_clock_ms(tx, &now)) != 0)
        return r;
    return pd_lease_check(tx, pd_mx_lease_names[lease], c->me.id, atomic_load(&c->token[lease]), now);
}

bool
pd_cluster_counts(int64_t *alive, int64_t *dead)
{
    pd_cluster_t *c = atomic_load(&pd_cluster);
    *alive = *dead = 0;
    if (c == NULL || !atomic_load(&c->counted))
        return false;
    *alive = atomic_load(&c->alive);
    *dead = atomic_load(&c->dead);
    return true;
}
