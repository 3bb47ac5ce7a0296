/*
 * The store's side of a cluster (src/store/repo_cluster.c): leases and node heartbeats,
 * the SQL behind src/cluster/. Several payd nodes share one database; these tables
 * (migration 14) are how they agree on who runs a singleton worker and who is alive.
 *
 * Times are milliseconds of the database's clock (pd_db_clock_ms), read in the same
 * transaction as the statement that uses them: on PostgreSQL every node compares
 * against the server's clock, so the nodes' own clocks may differ. SQLite is one
 * machine's file, so its clock is the machine's.
 *
 * A lease row is never deleted: releasing one sets its expiry to 0 and keeps the
 * fencing token, so the token only grows (a takeover, including one by the same
 * holder after its lease lapsed, bumps it; a renewal of a live lease keeps it).
 */
#ifndef PAYD_CLUSTER_STORE_H
#define PAYD_CLUSTER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "payd/db.h"
#include "payd/error.h"

#define PD_NODE_ID_MAX 64
#define PD_LEASE_NAME_MAX 32

/* The database's clock in unix milliseconds (PostgreSQL: clock_timestamp(); SQLite:
 * the machine's clock as SQLite reads it). */
int pd_db_clock_ms(pd_db_t *db, int64_t *out) PD_WUR;

/* Inside a write: takes or renews lease `name` for `holder` until now + ttl_ms, in one
 * statement that succeeds only if the lease is free, expired (expires_at <= now) or
 * live and already the holder's. *held says whether it did; when held, *token is the
 * fencing token and *expires_at the new expiry (database clock). Not held is no
 * error. PD_ERR_AGAIN (nothing changed, nothing waited for) on PostgreSQL when another
 * transaction holds the lease row's lock at that moment: try again shortly. */
int pd_lease_acquire(pd_db_t *tx, const char *name, const char *holder, int64_t now, int64_t ttl_ms, bool *held,
                     int64_t *token, int64_t *expires_at) PD_WUR;
/* Inside a write: gives up `name` if holder has it (its expiry becomes 0: free at once). */
int pd_lease_release(pd_db_t *tx, const char *name, const char *holder) PD_WUR;
/* Inside a write: gives up every lease of holder (a node starting: what its previous
 * process held is free, and taking it again bumps the token). */
int pd_lease_release_all(pd_db_t *tx, const char *holder) PD_WUR;
/* Inside a write: the fencing check. 0 if holder still holds `name` with `token` and it
 * has not expired at now; PD_ERR_CONFLICT otherwise (a newer holder took over: the
 * caller's write must fail whole). A read: it takes no lock, so on PostgreSQL a
 * takeover can commit between the check and the caller's COMMIT (docs/cluster.md). */
int pd_lease_check(pd_db_t *tx, const char *name, const char *holder, int64_t token, int64_t now) PD_WUR;

typedef struct {
    char name[PD_LEASE_NAME_MAX], holder[PD_NODE_ID_MAX];
    int64_t expires_at, token, acquired_at; /* acquired_at: when the current holder took it */
} pd_lease_rec_t;
/* fn for each lease row, by name; fn returns non-zero to stop. */
typedef int (*pd_lease_fn)(const pd_lease_rec_t *l, void *arg);
int pd_lease_list(pd_db_t *db, pd_lease_fn fn, void *arg) PD_WUR;

typedef struct {
    char id[PD_NODE_ID_MAX], hostname[256], version[64], admin[300];
    int64_t pid, started_at, beat_at, interval_ms; /* interval_ms: the node's heartbeat interval */
    bool stopped;                                  /* it said goodbye (a clean stop) */
} pd_node_rec_t;

/* Inside a write: the node's row, inserted or replaced, with beat_at = now and stopped
 * cleared (a node that comes back with the same id is the same node). */
int pd_node_beat(pd_db_t *tx, const pd_node_rec_t *n, int64_t now) PD_WUR;
/* Inside a write: marks the node stopped (a clean exit: it is neither alive nor dead). */
int pd_node_stopped(pd_db_t *tx, const char *id, int64_t now) PD_WUR;
/* Inside a write: removes a node's row (payctl cluster forget); *gone says whether
 * there was one. Its leases are released too. */
int pd_node_forget(pd_db_t *tx, const char *id, bool *gone) PD_WUR;
/* Inside a write: removes the rows of nodes that have not beaten since before `before`
 * (long gone: a node that comes back re-registers). */
int pd_node_prune(pd_db_t *tx, int64_t before) PD_WUR;
typedef int (*pd_node_fn)(const pd_node_rec_t *n, void *arg);
/* fn for each node row, by id. */
int pd_node_list(pd_db_t *db, pd_node_fn fn, void *arg) PD_WUR;
/* A node is dead when it has not beaten for 3 of its intervals and did not stop cleanly. */
#define PD_NODE_DEAD_BEATS 3
static inline bool
pd_node_dead(const pd_node_rec_t *n, int64_t now)
{
    return !n->stopped && now - n->beat_at > PD_NODE_DEAD_BEATS * n->interval_ms;
}
/* The number of dead nodes at now (the database clock). */
int pd_node_count_dead(pd_db_t *db, int64_t now, int64_t *dead, int64_t *alive) PD_WUR;

#endif
