/* Leases and node heartbeats (payd/cluster_store.h). Every statement is the same text
 * on SQLite (>= 3.35 for RETURNING; Debian 12 has 3.40) and PostgreSQL, but the clock
 * (read by its own statement) and PostgreSQL's row locks taken without waiting. */
#include <string.h>

#include "payd/cluster_store.h"
#include "store/repo.h"

static bool
is_pg(pd_db_t *db)
{
    return strcmp(db->ops->name, "postgres") == 0;
}

static int
count_row(const pd_row_t *r, void *arg)
{
    (void)r;
    ++*(int *)arg;
    return 0;
}

/*
 * PostgreSQL: the lease row's lock, taken without waiting. The lease statements run
 * inside the store's group-commit batches, beside other writes; a statement that
 * waited for a lease row held by another batch (another node's keeper, this node's
 * keeper on another writer) could close a lock cycle with those batch-mates. So
 * nobody waits for a lease row: 0 when this transaction holds the lock now (or there
 * is no row yet), PD_ERR_AGAIN when another transaction holds it. SQLite has one
 * writer and needs nothing.
 */
static int
lock_lease_row(pd_db_t *tx, const char *name)
{
    int locked = 0, exists = 0, r;
    if (!is_pg(tx))
        return 0;
    if ((r = pd_db_query(tx, "SELECT token FROM leases WHERE name = ? FOR UPDATE SKIP LOCKED",
                         PD_SQL_ARGS(PD_SQL_S(name)), count_row, &locked)) != 0)
        return r;
    if (locked > 0)
        return 0;
    if ((r = pd_db_query(tx, "SELECT token FROM leases WHERE name = ?", PD_SQL_ARGS(PD_SQL_S(name)), count_row,
                         &exists)) != 0)
        return r;
    return exists > 0 ? PD_ERR_AGAIN : 0;
}

int
pd_db_clock_ms(pd_db_t *db, int64_t *out)
{
    /* clock_timestamp(), not now(): now() is the transaction's start, which a batch of
     * the group commit may have taken well before this write */
    if (strcmp(db->ops->name, "postgres") == 0)
        return pd_db_query_int(db, "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)", NULL, 0,
                               out);
    return pd_db_query_int(db, "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)", NULL, 0, out);
}

typedef struct {
    bool got;
    int64_t token, expires_at;
} acq_t;

static int
acq_row(const pd_row_t *r, void *arg)
{
    acq_t *a = arg;
    a->got = true;
    a->token = pd_row_int(r, 0);
    a->expires_at = pd_row_int(r, 1);
    return 0;
}

int
pd_lease_acquire(pd_db_t *tx, const char *name, const char *holder, int64_t now, int64_t ttl_ms, bool *held,
                 int64_t *token, int64_t *expires_at)
{
    acq_t a = {0};
    *held = false;
    int r = lock_lease_row(tx, name);
    if (r != 0)
        return r;
    /* one statement: insert a free lease, or update it where it is expired or ours. A
     * live lease of ours is renewed with its token; anything else is a takeover and
     * bumps it. SET reads the row as it was before the update on both backends. */
    r = pd_db_query(tx,
                        "INSERT INTO leases (name, holder, expires_at, token, acquired_at) VALUES (?, ?, ?, 1, ?) "
                        "ON CONFLICT (name) DO UPDATE SET "
                        "token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > ? "
                        "  THEN leases.token ELSE leases.token + 1 END, "
                        "acquired_at = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > ? "
                        "  THEN leases.acquired_at ELSE excluded.acquired_at END, "
                        "holder = excluded.holder, expires_at = excluded.expires_at "
                        "WHERE leases.expires_at <= ? OR leases.holder = excluded.holder "
                        "RETURNING token, expires_at",
                        PD_SQL_ARGS(PD_SQL_S(name), PD_SQL_S(holder), PD_SQL_I(now + ttl_ms), PD_SQL_I(now),
                                    PD_SQL_I(now), PD_SQL_I(now), PD_SQL_I(now)),
                        acq_row, &a);
    if (r != 0)
        return r;
    if (a.got) {
        *held = true;
        *token = a.token;
        *expires_at = a.expires_at;
    }
    return 0;
}

int
pd_lease_release(pd_db_t *tx, const char *name, const char *holder)
{
    return pd_db_exec(tx, "UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ?",
                      PD_SQL_ARGS(PD_SQL_S(name), PD_SQL_S(holder)), NULL);
}

int
pd_lease_release_all(pd_db_t *tx, const char *holder)
{
    return pd_db_exec(tx, "UPDATE leases SET expires_at = 0 WHERE holder = ?", PD_SQL_ARGS(PD_SQL_S(holder)), NULL);
}

int
pd_lease_check(pd_db_t *tx, const char *name, const char *holder, int64_t token, int64_t now)
{
    /* a read, not a lock: a worker's write must never wait for the keeper's batch (see
     * lock_lease_row). On PostgreSQL a takeover may still commit between this check and
     * the caller's COMMIT; only a holder whose transaction spans its own expiry can
     * meet that, and the writes that use the check are safe without it (cluster.md) */
    int n = 0;
    int r = pd_db_query(tx, "SELECT token FROM leases WHERE name = ? AND holder = ? AND token = ? AND expires_at > ?",
                        PD_SQL_ARGS(PD_SQL_S(name), PD_SQL_S(holder), PD_SQL_I(token), PD_SQL_I(now)), count_row, &n);
    if (r != 0)
        return r;
    return n == 1 ? 0 : PD_ERR_CONFLICT;
}

typedef struct {
    pd_lease_fn fn;
    void *arg;
} lease_walk_t;

static int
lease_row(const pd_row_t *r, void *arg)
{
    lease_walk_t *w = arg;
    pd_lease_rec_t l;
    memset(&l, 0, sizeof(l));
    COPY(r, 0, l.name);
    COPY(r, 1, l.holder);
    l.expires_at = pd_row_int(r, 2);
    l.token = pd_row_int(r, 3);
    l.acquired_at = pd_row_int(r, 4);
    return w->fn(&l, w->arg);
}

int
pd_lease_list(pd_db_t *db, pd_lease_fn fn, void *arg)
{
    lease_walk_t w = {fn, arg};
    return pd_db_query(db, "SELECT name, holder, expires_at, token, acquired_at FROM leases ORDER BY name", NULL, 0,
                       lease_row, &w);
}

int
pd_node_beat(pd_db_t *tx, const pd_node_rec_t *n, int64_t now)
{
    return pd_db_exec(tx,
                      "INSERT INTO cluster_nodes (id, hostname, pid, version, admin, started_at, beat_at, interval_ms, "
                      "stopped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0) "
                      "ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, pid = excluded.pid, "
                      "version = excluded.version, admin = excluded.admin, started_at = excluded.started_at, "
                      "beat_at = excluded.beat_at, interval_ms = excluded.interval_ms, stopped = 0",
                      PD_SQL_ARGS(PD_SQL_S(n->id), PD_SQL_S(n->hostname), PD_SQL_I(n->pid), PD_SQL_S(n->version),
                                  PD_SQL_S(n->admin), PD_SQL_I(n->started_at), PD_SQL_I(now), PD_SQL_I(n->interval_ms)),
                      NULL);
}

int
pd_node_stopped(pd_db_t *tx, const char *id, int64_t now)
{
    return pd_db_exec(tx, "UPDATE cluster_nodes SET stopped = 1, beat_at = ? WHERE id = ?",
                      PD_SQL_ARGS(PD_SQL_I(now), PD_SQL_S(id)), NULL);
}

int
pd_node_forget(pd_db_t *tx, const char *id, bool *gone)
{
    int64_t n = 0;
    int r = pd_db_exec(tx, "DELETE FROM cluster_nodes WHERE id = ?", PD_SQL_ARGS(PD_SQL_S(id)), &n);
    *gone = n > 0;
    return r != 0 ? r : pd_lease_release_all(tx, id);
}

int
pd_node_prune(pd_db_t *tx, int64_t before)
{
    /* PostgreSQL: a row that a node is beating right now is skipped, never waited for */
    if (is_pg(tx))
        return pd_db_exec(tx,
                          "DELETE FROM cluster_nodes WHERE id IN "
                          "(SELECT id FROM cluster_nodes WHERE beat_at < ? FOR UPDATE SKIP LOCKED)",
                          PD_SQL_ARGS(PD_SQL_I(before)), NULL);
    return pd_db_exec(tx, "DELETE FROM cluster_nodes WHERE beat_at < ?", PD_SQL_ARGS(PD_SQL_I(before)), NULL);
}

typedef struct {
    pd_node_fn fn;
    void *arg;
} node_walk_t;

static int
node_row(const pd_row_t *r, void *arg)
{
    node_walk_t *w = arg;
    pd_node_rec_t n;
    memset(&n, 0, sizeof(n));
    COPY(r, 0, n.id);
    COPY(r, 1, n.hostname);
    n.pid = pd_row_int(r, 2);
    COPY(r, 3, n.version);
    COPY(r, 4, n.admin);
    n.started_at = pd_row_int(r, 5);
    n.beat_at = pd_row_int(r, 6);
    n.interval_ms = pd_row_int(r, 7);
    n.stopped = pd_row_int(r, 8) != 0;
    return w->fn(&n, w->arg);
}

int
pd_node_list(pd_db_t *db, pd_node_fn fn, void *arg)
{
    node_walk_t w = {fn, arg};
    return pd_db_query(db,
                       "SELECT id, hostname, pid, version, admin, started_at, beat_at, interval_ms, stopped "
                       "FROM cluster_nodes ORDER BY id",
                       NULL, 0, node_row, &w);
}

typedef struct {
    int64_t now, dead, alive;
} count_t;

static int
count_node(const pd_node_rec_t *n, void *arg)
{
    count_t *c = arg;
    if (pd_node_dead(n, c->now))
        c->dead++;
    else if (!n->stopped)
        c->alive++;
    return 0;
}

int
pd_node_count_dead(pd_db_t *db, int64_t now, int64_t *dead, int64_t *alive)
{
    count_t c = {now, 0, 0};
    int r = pd_node_list(db, count_node, &c);
    *dead = c.dead;
    *alive = c.alive;
    return r;
}
