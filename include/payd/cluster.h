/*
 * The node's place in a cluster (src/cluster/, docs/cluster.md): its id, its
 * heartbeat in the store, and the leases that let exactly one node run each singleton
 * worker (the outbox relay, the stream publisher, recovery with reconciliation and the
 * idempotency-key purge, the cluster-wide part of the unhealthy alarm).
 *
 * One keeper thread per node beats every heartbeat_interval and takes or renews every
 * lease every lease_ttl / 3 (payd/cluster_store.h: one statement each, the database's
 * clock). A worker asks pd_lease_held() before each unit of work (a relay batch, a
 * recovery pass): it is true only while the node holds the lease and the lease's
 * local deadline has not passed. The local deadline is when the keeper sent the
 * statement that took or renewed the lease, plus 9/10 of the TTL: the database set the
 * expiry from its own clock after that moment, so a node that cannot renew (its
 * database unreachable, the process stalled) stops before anyone else may take over.
 *
 * pd_cluster is process-wide, like pd_mx: set by pd_cluster_start, NULL in programs
 * and tests that run no keeper; then every worker runs as the only node
 * (pd_lease_held is true).
 */
#ifndef PAYD_CLUSTER_H
#define PAYD_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "payd/buf.h"
#include "payd/cluster_store.h"
#include "payd/config.h"
#include "payd/error.h"
#include "payd/store.h"

/* The leases payd knows; their names are pd_mx_lease_names[] (payd/metrics_payd.h:
 * the lease label of payd_lease_held, and the lease table's name column). */
enum { PD_LEASE_RELAY, PD_LEASE_STREAM, PD_LEASE_RECOVERY, PD_LEASE_ALARMS, PD_LEASE_N };

/* [cluster] */
typedef struct {
    const char *node_id;        /* "" = DATA_DIR/node_id, made at the first start */
    int64_t lease_ttl_ms;       /* a lease lasts this long unless renewed (renewed every ttl / 3) */
    int64_t heartbeat_interval_ms; /* a node beats this often; dead after 3 missed beats */
} pd_cluster_config_t;
int pd_cluster_config_register(pd_config_t *cfg, pd_cluster_config_t *c) PD_WUR;
/* After loading: the node id's form and heartbeat_interval < lease_ttl. A failure
 * names the setting in err. */
int pd_cluster_config_check(const pd_cluster_config_t *c, char *err, size_t cap) PD_WUR;

/* The node's id into out: cluster.node_id when set, else the one in DATA_DIR/node_id,
 * written there (0600, "node-" and 12 random hex digits) when the file does not exist
 * yet: stable for a data dir. PD_ERR_CONFIG for a file that holds no valid id. */
int pd_cluster_node_id(const pd_cluster_config_t *c, const char *data_dir, char *out, size_t cap) PD_WUR;
/* Whether s is a node id: 1-63 characters of [A-Za-z0-9._-]. */
bool pd_cluster_id_valid(const char *s);

typedef struct pd_cluster pd_cluster_t;
extern pd_cluster_t *_Atomic pd_cluster;

typedef struct {
    pd_store_t *store;
    const char *node_id, *version, *admin; /* admin: the admin listener's address as bound ("" if none) */
} pd_cluster_deps_t;

/* Registers the node (its previous process's leases released), takes the leases it
 * can, starts the keeper thread and sets pd_cluster. The first beat is written before
 * it returns: a database that refuses it fails the start. */
int pd_cluster_start(const pd_cluster_config_t *c, const pd_cluster_deps_t *d) PD_WUR;
/* Stops the keeper, releases the node's leases and marks it stopped (a clean exit is
 * not a dead node), clears pd_cluster. Call it after the workers stopped. */
void pd_cluster_stop(void);

/* Whether this node may run the worker of lease now (true without a keeper). */
bool pd_lease_held(unsigned lease);
/* Inside a write that a stale holder must not make: PD_ERR_CONFLICT unless this node
 * still holds lease with the token it took it with (0 without a keeper). */
int pd_lease_fence(pd_db_t *tx, unsigned lease) PD_WUR;
/* The node counts of the last beat: alive and dead (payd/cluster_store.h's rule);
 * false until one was read. */
bool pd_cluster_counts(int64_t *alive, int64_t *dead);

/* payctl cluster status: the nodes with their last beat's age, alive/dead/stopped and
 * the leases each holds, as text or (json) one JSON object. */
int pd_cluster_status(pd_db_t *db, bool json, pd_buf_t *out) PD_WUR;

#endif
