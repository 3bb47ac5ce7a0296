/*
 * Versioned migrations. Each runs in one transaction together with the update of
 * schema_version, so a crash leaves either the old or the new version. Applied in
 * order at start; applying is idempotent. SQL stays within what SQLite and
 * PostgreSQL both accept (TEXT, INTEGER, BLOB-as-BYTEA is avoided: hashes are hex).
 *
 * Conventions: ids are prefixed random strings; money is INTEGER minor units +
 * lower-case ISO currency; times are unix seconds; `seq` is a store-wide monotonic
 * number used for newest-first lists; metadata and snapshots are JSON text.
 */
#include <stdio.h>

#include "payd/log.h"
#include "store/internal.h"

static const char *const migrations[] = {
    /* 1: merchants, keys, payments */
    "CREATE TABLE merchants ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, created INTEGER NOT NULL);"
    "CREATE TABLE api_keys ("
    "  id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL REFERENCES merchants(id),"
    "  kind TEXT NOT NULL, livemode INTEGER NOT NULL, prefix TEXT NOT NULL UNIQUE, hash TEXT NOT NULL,"
    "  last4 TEXT NOT NULL, scopes TEXT NOT NULL DEFAULT '', name TEXT NOT NULL DEFAULT '',"
    "  created INTEGER NOT NULL, expires_at INTEGER, revoked_at INTEGER,"
    "  rate_per_s INTEGER, burst INTEGER, monthly_quota INTEGER);"
    "CREATE INDEX api_keys_merchant ON api_keys(merchant_id);"
    "CREATE TABLE payment_methods ("
    "  id TEXT PRIMARY KEY, object TEXT NOT NULL, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL,"
    "  vault_token TEXT NOT NULL, brand TEXT NOT NULL, last4 TEXT NOT NULL, exp_month INTEGER NOT NULL,"
    "  exp_year INTEGER NOT NULL, fingerprint TEXT NOT NULL, funding TEXT NOT NULL, country TEXT,"
    "  cvc_check TEXT, billing_name TEXT, metadata TEXT NOT NULL DEFAULT '{}', used INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL, seq INTEGER NOT NULL);"
    "CREATE INDEX payment_methods_list ON payment_methods(merchant_id, livemode, seq);"
    "CREATE TABLE payment_intents ("
    "  id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL,"
    "  amount INTEGER NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL, capture_method TEXT NOT NULL,"
    "  payment_method TEXT, description TEXT, metadata TEXT NOT NULL DEFAULT '{}', statement_descriptor TEXT,"
    "  receipt_email TEXT, amount_capturable INTEGER NOT NULL DEFAULT 0, amount_received INTEGER NOT NULL DEFAULT 0,"
    "  latest_charge TEXT, last_payment_error TEXT, cancellation_reason TEXT, canceled_at INTEGER,"
    "  created INTEGER NOT NULL, seq INTEGER NOT NULL, version INTEGER NOT NULL);"
    "CREATE INDEX payment_intents_list ON payment_intents(merchant_id, livemode, seq);"
    "CREATE TABLE charges ("
    "  id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL, payment_intent TEXT NOT NULL,"
    "  payment_method TEXT NOT NULL, amount INTEGER NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL,"
    "  captured INTEGER NOT NULL DEFAULT 0, amount_captured INTEGER NOT NULL DEFAULT 0,"
    "  amount_refunded INTEGER NOT NULL DEFAULT 0, processing INTEGER NOT NULL DEFAULT 0, capture_requested INTEGER NOT NULL DEFAULT 0,"
    "  processor_ref TEXT, failure_code TEXT, failure_message TEXT, decline_code TEXT, outcome TEXT,"
    "  description TEXT, idempotency_key TEXT, request_id TEXT, created INTEGER NOT NULL, seq INTEGER NOT NULL,"
    "  version INTEGER NOT NULL);"
    "CREATE INDEX charges_list ON charges(merchant_id, livemode, seq);"
    "CREATE INDEX charges_intent ON charges(payment_intent);"
    "CREATE INDEX charges_processing ON charges(processing);"
    "CREATE TABLE refunds ("
    "  id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL, charge TEXT NOT NULL,"
    "  payment_intent TEXT NOT NULL, amount INTEGER NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL,"
    "  reason TEXT, metadata TEXT NOT NULL DEFAULT '{}', failure_reason TEXT, created INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL);"
    "CREATE INDEX refunds_list ON refunds(merchant_id, livemode, seq);"
    "CREATE INDEX refunds_charge ON refunds(charge);"
    "CREATE TABLE ledger_entries ("
    "  id TEXT PRIMARY KEY, txn_id TEXT NOT NULL, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL,"
    "  account TEXT NOT NULL, currency TEXT NOT NULL, amount INTEGER NOT NULL, source TEXT NOT NULL,"
    "  kind TEXT NOT NULL, created INTEGER NOT NULL, seq INTEGER NOT NULL);"
    "CREATE INDEX ledger_account ON ledger_entries(merchant_id, livemode, account, currency);"
    "CREATE INDEX ledger_txn ON ledger_entries(txn_id);"
    "CREATE TABLE balance_transactions ("
    "  id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL, amount INTEGER NOT NULL,"
    "  fee INTEGER NOT NULL, net INTEGER NOT NULL, currency TEXT NOT NULL, type TEXT NOT NULL,"
    "  source TEXT NOT NULL, status TEXT NOT NULL, available_on INTEGER NOT NULL, description TEXT,"
    "  created INTEGER NOT NULL, seq INTEGER NOT NULL);"
    "CREATE INDEX balance_transactions_list ON balance_transactions(merchant_id, livemode, seq);"
    "CREATE TABLE events ("
    "  id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL, type TEXT NOT NULL,"
    "  data TEXT NOT NULL, request_id TEXT, idempotency_key TEXT, created INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL, published INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX events_list ON events(merchant_id, livemode, seq);"
    "CREATE INDEX events_type ON events(merchant_id, livemode, type, seq);"
    "CREATE INDEX events_unpublished ON events(published, seq);"
    "CREATE TABLE webhook_endpoints ("
    "  id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL, url TEXT NOT NULL,"
    "  enabled_events TEXT NOT NULL, secret TEXT NOT NULL, status TEXT NOT NULL, description TEXT,"
    "  metadata TEXT NOT NULL DEFAULT '{}', created INTEGER NOT NULL, seq INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX webhook_endpoints_list ON webhook_endpoints(merchant_id, livemode, seq);"
    "CREATE TABLE webhook_deliveries ("
    "  id TEXT PRIMARY KEY, event_id TEXT NOT NULL, endpoint_id TEXT NOT NULL, merchant_id TEXT NOT NULL,"
    "  state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, first_at INTEGER NOT NULL,"
    "  next_at INTEGER NOT NULL, last_status INTEGER, last_error TEXT, updated INTEGER NOT NULL);"
    "CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_at);"
    "CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_id);"
    "CREATE TABLE idempotency_keys ("
    "  merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,"
    "  state TEXT NOT NULL, status INTEGER, body TEXT, created INTEGER NOT NULL,"
    "  PRIMARY KEY (merchant_id, livemode, key));"
    "CREATE INDEX idempotency_created ON idempotency_keys(created);"
    "CREATE TABLE audit_log ("
    "  seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,"
    "  resource TEXT NOT NULL, outcome TEXT NOT NULL, origin TEXT NOT NULL, detail TEXT NOT NULL,"
    "  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);",
    /* 2: partial indexes for the two queues (in-flight charges, unpublished events), so a
     * payment's writes no longer move entries of every settled row through them */
    "DROP INDEX charges_processing;"
    "CREATE INDEX charges_inflight ON charges(created) WHERE processing = 1 OR capture_requested = 1;"
    "DROP INDEX events_unpublished;"
    "CREATE INDEX events_unpublished ON events(seq) WHERE published = 0;",
    /* 3: ledger entries keyed by their (time-ordered) id alone: no separate rowid tree,
     * and no indexes the request path never reads (the verifier scans) */
    "CREATE TABLE ledger_entries_new ("
    "  id TEXT PRIMARY KEY, txn_id TEXT NOT NULL, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL,"
    "  account TEXT NOT NULL, currency TEXT NOT NULL, amount INTEGER NOT NULL, source TEXT NOT NULL,"
    "  kind TEXT NOT NULL, created INTEGER NOT NULL, seq INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO ledger_entries_new SELECT id, txn_id, merchant_id, livemode, account, currency, amount, source, kind,"
    "  created, seq FROM ledger_entries;"
    "DROP TABLE ledger_entries;"
    "ALTER TABLE ledger_entries_new RENAME TO ledger_entries;",
    /* 4: idempotency keys clustered by their key (one random page per new key instead of
     * a random index page plus a table page) */
    "CREATE TABLE idempotency_keys_new ("
    "  merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,"
    "  state TEXT NOT NULL, status INTEGER, body TEXT, created INTEGER NOT NULL,"
    "  PRIMARY KEY (merchant_id, livemode, key)) WITHOUT ROWID;"
    "INSERT INTO idempotency_keys_new SELECT merchant_id, livemode, key, fingerprint, state, status, body, created"
    "  FROM idempotency_keys;"
    "DROP TABLE idempotency_keys;"
    "ALTER TABLE idempotency_keys_new RENAME TO idempotency_keys;"
    "CREATE INDEX idempotency_created ON idempotency_keys(created);",
    /* 5: the outbox is a queue of its own: publishing an event deletes a small queue
     * row instead of rewriting the event (up to a few KB of JSON) to set a flag */
    "CREATE TABLE outbox ("
    "  id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL,"
    "  type TEXT NOT NULL);"
    "INSERT INTO outbox (event_id, merchant_id, livemode, type)"
    "  SELECT id, merchant_id, livemode, type FROM events WHERE published = 0 ORDER BY seq;"
    "DROP INDEX events_unpublished;"
    "ALTER TABLE events DROP COLUMN published;",
    /* 6: idempotency keys in insertion order with the key in an index: a claim appends
     * its row next to the other new claims and adds one small index entry; completing
     * it rewrites a recent page instead of a random one (migration 4 made every claim
     * and every completion rewrite a random page full of response bodies) */
    "CREATE TABLE idempotency_keys_new ("
    "  id INTEGER PRIMARY KEY, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL, key TEXT NOT NULL,"
    "  fingerprint TEXT NOT NULL, state TEXT NOT NULL, status INTEGER, body TEXT, created INTEGER NOT NULL);"
    "INSERT INTO idempotency_keys_new (merchant_id, livemode, key, fingerprint, state, status, body, created)"
    "  SELECT merchant_id, livemode, key, fingerprint, state, status, body, created FROM idempotency_keys"
    "  ORDER BY created;"
    "DROP TABLE idempotency_keys;"
    "ALTER TABLE idempotency_keys_new RENAME TO idempotency_keys;"
    "CREATE UNIQUE INDEX idempotency_key ON idempotency_keys(merchant_id, livemode, key);",
    /* 7: voids and refunds are two-phase toward the processor like authorizations and
     * captures: a durable request first (void_requested; a pending refund that keeps
     * what the recovery worker needs to finish it), then the processor, then the outcome */
    "ALTER TABLE charges ADD COLUMN void_requested INTEGER NOT NULL DEFAULT 0;"
    "DROP INDEX charges_inflight;"
    "CREATE INDEX charges_inflight ON charges(created)"
    "  WHERE processing = 1 OR capture_requested = 1 OR void_requested = 1;"
    "ALTER TABLE refunds ADD COLUMN idempotency_key TEXT;"
    "ALTER TABLE refunds ADD COLUMN request_id TEXT;"
    "CREATE INDEX refunds_pending ON refunds(created) WHERE status = 'pending';",
    /* 8: the idempotency key of the capture or cancel request in flight on a charge, so
     * the recovery worker that finishes it also completes the key (a retry replays) */
    "ALTER TABLE charges ADD COLUMN pending_idempotency_key TEXT;",
    /* 9: the amount a capture in flight asked for (recovery sends it if the processor
     * never got it) and when a charge last changed: recovery waits on the time an
     * operation was requested, not on the charge's creation, and reconciliation reads
     * the charges changed since its last pass */
    "ALTER TABLE charges ADD COLUMN capture_amount INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE charges ADD COLUMN updated INTEGER NOT NULL DEFAULT 0;"
    "UPDATE charges SET updated = created;"
    "DROP INDEX charges_inflight;"
    "CREATE INDEX charges_inflight ON charges(updated)"
    "  WHERE processing = 1 OR capture_requested = 1 OR void_requested = 1;"
    "CREATE INDEX charges_updated ON charges(updated);"
    "CREATE INDEX refunds_created ON refunds(created);",
    /* 10: the webhook queue is read endpoint by endpoint in two lanes (due retries, due
     * first attempts) by the fair scheduler, each lane from its own index */
    "DROP INDEX webhook_deliveries_due;"
    "CREATE INDEX webhook_deliveries_first ON webhook_deliveries(endpoint_id, next_at)"
    "  WHERE state = 'pending' AND attempts = 0;"
    "CREATE INDEX webhook_deliveries_retry ON webhook_deliveries(endpoint_id, next_at)"
    "  WHERE state = 'pending' AND attempts > 0;",
    /* 11: deleting an endpoint cancels its pending deliveries; those of endpoints deleted
     * before this version are canceled here */
    "UPDATE webhook_deliveries SET state = 'canceled', last_error = 'endpoint deleted'"
    "  WHERE state = 'pending' AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE deleted = 1);",
    /* 12: secrets out of the clear. A stored response that held a secret (a webhook
     * endpoint's whsec_, a cardholder name) is stored without it, `redacted` naming the
     * record its value is re-derived from on replay; the cardholder name is stored
     * encrypted under alias/pii; and a store-wide epoch, bumped with every change of an
     * API key's revocation or expiry, tells every node's key cache to drop its entries */
    "ALTER TABLE idempotency_keys ADD COLUMN redacted TEXT;"
    "ALTER TABLE payment_methods ADD COLUMN billing_name_enc TEXT;"
    "CREATE TABLE api_key_epoch (epoch INTEGER NOT NULL);"
    "INSERT INTO api_key_epoch (epoch) VALUES (0);",
    /* 13: the transaction stream's queue: the relay moves an event here when it has made
     * its webhook deliveries, and the stream publisher deletes the row only after Redis
     * acknowledged the entry, so webhooks never wait on Redis nor the stream on webhooks */
    "CREATE TABLE stream_outbox ("
    "  id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL,"
    "  type TEXT NOT NULL);",
    /* 14: a cluster (docs/cluster.md). leases: who runs a singleton worker (the outbox
     * relay, the stream publisher, recovery) until when, with a fencing token bumped on
     * every takeover; cluster_nodes: each node's heartbeat. Times are milliseconds of
     * the database's clock. */
    "CREATE TABLE leases ("
    "  name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL, token INTEGER NOT NULL,"
    "  acquired_at INTEGER NOT NULL);"
    "CREATE TABLE cluster_nodes ("
    "  id TEXT PRIMARY KEY, hostname TEXT NOT NULL, pid INTEGER NOT NULL, version TEXT NOT NULL,"
    "  admin TEXT NOT NULL, started_at INTEGER NOT NULL, beat_at INTEGER NOT NULL, interval_ms INTEGER NOT NULL,"
    "  stopped INTEGER NOT NULL DEFAULT 0);",
    /* 15: the node that last wrote a charge (its request's node while an operation is
     * requested): a node starting again makes the charges its previous run left
     * requested due for recovery at once (pd_charge_expedite_node) */
    "ALTER TABLE charges ADD COLUMN node_id TEXT;",
    /* 16: the file store's index (src/files/store.c: each file's bytes are DIR/<id>,
     * encrypted; expires_at 0 = never) and report runs (src/pay/report_worker.c): a run
     * stays 'pending' until a worker writes its file; claimed_until is the claim of the
     * worker generating it (a worker that died leaves it to the next after that time) */
    "CREATE TABLE files ("
    "  id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL, purpose TEXT NOT NULL,"
    "  filename TEXT NOT NULL, type TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    "  created INTEGER NOT NULL, expires_at INTEGER NOT NULL, seq INTEGER NOT NULL);"
    "CREATE INDEX files_list ON files(merchant_id, livemode, seq);"
    "CREATE INDEX files_expiry ON files(expires_at) WHERE expires_at > 0;"
    "CREATE TABLE report_runs ("
    "  id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL, report_type TEXT NOT NULL,"
    "  interval_start INTEGER NOT NULL, interval_end INTEGER NOT NULL, currency TEXT, columns TEXT NOT NULL,"
    "  status TEXT NOT NULL, error TEXT, result_file TEXT, created INTEGER NOT NULL,"
    "  succeeded_at INTEGER NOT NULL DEFAULT 0, claimed_until INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL);"
    "CREATE INDEX report_runs_list ON report_runs(merchant_id, livemode, seq);"
    "CREATE INDEX report_runs_pending ON report_runs(created) WHERE status = 'pending';",
    /* 17: the Stripe-Version of the request that made an event (NULL: payd's own version) */
    "ALTER TABLE events ADD COLUMN api_version TEXT;",
    /* 18: disputes (chargebacks), imported from the processor by the recovery worker
     * (src/pay/dispute.c); processor_ref is the processor's dispute id, each imported
     * once. charges.disputed: 0 none, 1 disputed (not refundable), 2 the dispute was won.
     * worker_cursors: where a worker's reading of an outside record stopped (the
     * processor's dispute seq), moved in the write that applied what it read */
    "CREATE TABLE disputes ("
    "  id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL, charge TEXT NOT NULL,"
    "  payment_intent TEXT NOT NULL, processor_ref TEXT NOT NULL UNIQUE, amount INTEGER NOT NULL,"
    "  currency TEXT NOT NULL, reason TEXT NOT NULL, status TEXT NOT NULL, evidence TEXT NOT NULL,"
    "  evidence_submitted INTEGER NOT NULL, metadata TEXT NOT NULL, created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL, seq INTEGER NOT NULL, version INTEGER NOT NULL);"
    "CREATE INDEX disputes_list ON disputes(merchant_id, livemode, seq);"
    "CREATE INDEX disputes_charge ON disputes(charge);"
    "ALTER TABLE charges ADD COLUMN disputed INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE worker_cursors (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    /* 19: customers (src/api/customers.c). Their personal data is one envelope under
     * alias/pii (pii_enc); email_index is a keyed hash of the normalized email, so the
     * list's email filter is an index lookup with nothing decrypted; a deleted customer
     * keeps its row (deleted = 1) without either. payment_methods.customer: the customer
     * a method is attached to; detached: it was detached and is never used again.
     * payment_intents.customer and setup_future_usage, charges.customer: Stripe's fields */
    "CREATE TABLE customers ("
    "  id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL, pii_enc TEXT,"
    "  email_index TEXT, description TEXT, metadata TEXT NOT NULL, default_payment_method TEXT,"
    "  deleted INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL, updated INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL, version INTEGER NOT NULL);"
    "CREATE INDEX customers_list ON customers(merchant_id, livemode, seq);"
    "CREATE INDEX customers_email ON customers(merchant_id, livemode, email_index) WHERE email_index IS NOT NULL;"
    "ALTER TABLE payment_methods ADD COLUMN customer TEXT;"
    "ALTER TABLE payment_methods ADD COLUMN detached INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX payment_methods_customer ON payment_methods(customer, seq) WHERE customer IS NOT NULL;"
    "ALTER TABLE payment_intents ADD COLUMN customer TEXT;"
    "ALTER TABLE payment_intents ADD COLUMN setup_future_usage TEXT;"
    "ALTER TABLE charges ADD COLUMN customer TEXT;",
    /* 20: setup intents (src/api/setup_intents.c). A confirmation leaves one processing
     * (phase 1) until its verification is recorded; the recovery worker finds those by
     * setup_intents_processing. idempotency_key: the confirming request's, completed by
     * recovery; node_id: the node that last wrote it, as charges.node_id */
    "CREATE TABLE setup_intents ("
    "  id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, livemode INTEGER NOT NULL, status TEXT NOT NULL,"
    "  customer TEXT, payment_method TEXT, usage TEXT NOT NULL, description TEXT, metadata TEXT NOT NULL,"
    "  last_setup_error TEXT, cancellation_reason TEXT, idempotency_key TEXT, created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL, seq INTEGER NOT NULL, version INTEGER NOT NULL, node_id TEXT);"
    "CREATE INDEX setup_intents_list ON setup_intents(merchant_id, livemode, seq);"
    "CREATE INDEX setup_intents_customer ON setup_intents(customer, seq) WHERE customer IS NOT NULL;"
    "CREATE INDEX setup_intents_processing ON setup_intents(updated) WHERE status = 'processing';",
};

int
pd_store_schema_latest(void)
{
    return (int)(sizeof(migrations) / sizeof(migrations[0]));
}

static int
migrate_locked(pd_db_t *db, int *version, const char *setting)
{
    int64_t v = 0, tables = 0;
    bool has_version = false;
    int r;

    /* a database with tables of its own and no schema_version is someone else's */
    if ((r = db->ops->user_tables(db, &tables, &has_version)) != 0)
        return r;
    if (!has_version && tables > 0) {
        pd_log_error("cannot open the store: the database is not payd's (it has tables but no schema_version)",
                     PD_LI("tables", tables), PD_LS("setting", setting));
        return PD_ERR_STATE;
    }
    if ((r = pd_db_exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", NULL, 0, NULL)) != 0)
        return r;
    r = pd_db_query_int(db, "SELECT version FROM schema_version", NULL, 0, &v);
    if (r == PD_ERR_NOTFOUND) {
        if ((r = pd_db_exec(db, "INSERT INTO schema_version (version) VALUES (0)", NULL, 0, NULL)) != 0)
            return r;
        v = 0;
    } else if (r != 0) {
        return r;
    }
    size_t n = sizeof(migrations) / sizeof(migrations[0]);
    if (v > (int64_t)n) {
        pd_log_error("cannot open the store: the database schema is newer than this payd", PD_LI("schema", v),
                     PD_LI("known", (int64_t)n), PD_LS("setting", setting));
        return PD_ERR_STATE;
    }
    for (size_t i = (size_t)v; i < n; i++) {
        if ((r = db->ops->begin(db)) != 0)
            return r;
        /* a migration is a script of several statements: run it through the backend's simple executor */
        if ((r = db->ops->script(db, migrations[i])) != 0 ||
            (r = pd_db_exec(db, "UPDATE schema_version SET version = ?", PD_SQL_ARGS(PD_SQL_I(i + 1)), NULL)) != 0 ||
            (r = db->ops->commit(db)) != 0) {
            (void)db->ops->rollback(db);
            pd_log_error("migration failed", PD_LI("version", (int64_t)(i + 1)), PD_LERR(r));
            return r;
        }
        pd_log_info("database migrated", PD_LI("version", (int64_t)(i + 1)));
    }
    *version = (int)n;
    return 0;
}

/* Several nodes may start at once against one database: where the backend has a
 * lock between processes, the whole check-and-apply runs under it, so a migration is
 * applied once and the others find it done. */
int
pd_store_migrate(pd_db_t *db, int *version, const char *setting)
{
    int r;
    if (db->ops->migration_lock != NULL && (r = db->ops->migration_lock(db, true)) != 0)
        return r;
    r = migrate_locked(db, version, setting);
    if (db->ops->migration_lock != NULL)
        (void)db->ops->migration_lock(db, false);
    return r;
}
