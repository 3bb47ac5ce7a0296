-- The statements payd issues for one POST /v1/payment_intents confirm=true with an
-- Idempotency-Key, on payd's own tables (captured with log_statement=all from payd on
-- PostgreSQL; bench/scenarios/payments_pg.sh runs this with pgbench -M prepared). The
-- JSON bodies are stand-ins of the sizes payd writes. __MERCHANT__ is the dev merchant.
-- Each transaction is sent in pipeline mode, as payd sends the statements inside its
-- transactions (docs/postgres.md, "The writer"); a posting's ledger entries are one
-- statement, as payd writes them (src/store/repo_ledger.c).
-- Not included: the outbox relay's DELETE (payd batches it over many payments).
\set r random(1, 1000000000000000)
\set now 1796185846
-- the request's reads: the API key, the idempotency key, the payment method
SELECT epoch FROM api_key_epoch;
SELECT id, merchant_id, kind, livemode, prefix, hash FROM api_keys WHERE prefix = 'sk_test_bench' || (:r::bigint % 10);
SELECT fingerprint, state, COALESCE(status, 0), body, created, redacted FROM idempotency_keys
  WHERE merchant_id = '__MERCHANT__' AND livemode = 0 AND key = 'k' || :r::bigint;
SELECT id, vault_token, brand, last4 FROM payment_methods WHERE id = 'pm_bench' AND merchant_id = '__MERCHANT__' AND livemode = 0;
-- phase 1: claim the key, the intent and its charge (processing), an event in the outbox
\startpipeline
BEGIN;
SAVEPOINT w;
INSERT INTO idempotency_keys (merchant_id, livemode, key, fingerprint, state, created)
  VALUES ('__MERCHANT__', 0, 'k' || :r::bigint, md5('f' || :r::bigint) || md5('g' || :r::bigint), 'in_flight', :now)
  ON CONFLICT (merchant_id, livemode, key) DO NOTHING;
INSERT INTO events (id, merchant_id, livemode, type, data, request_id, idempotency_key, created, seq)
  VALUES ('evt_a' || :r::bigint, '__MERCHANT__', 0, 'payment_intent.created', repeat('x', 1400), 'req_' || :r::bigint, 'k' || :r::bigint, :now, :r::bigint * 16);
INSERT INTO outbox (event_id, merchant_id, livemode, type) VALUES ('evt_a' || :r::bigint, '__MERCHANT__', 0, 'payment_intent.created');
INSERT INTO payment_intents (id, merchant_id, livemode, amount, currency, status, capture_method, payment_method, description,
    metadata, statement_descriptor, receipt_email, amount_capturable, amount_received, latest_charge, last_payment_error,
    cancellation_reason, canceled_at, created, seq, version)
  VALUES ('pi_' || :r::bigint, '__MERCHANT__', 0, 1999, 'usd', 'processing', 'automatic', 'pm_bench', 'bench', '{}', NULL, NULL, 0, 0,
    'ch_' || :r::bigint, NULL, NULL, NULL, :now, :r::bigint * 16 + 1, 1);
INSERT INTO charges (id, merchant_id, livemode, payment_intent, payment_method, amount, currency, status, captured, processing,
    capture_requested, amount_captured, amount_refunded, processor_ref, failure_code, failure_message, decline_code, outcome,
    description, idempotency_key, request_id, created, seq, version, void_requested, capture_amount, updated)
  VALUES ('ch_' || :r::bigint, '__MERCHANT__', 0, 'pi_' || :r::bigint, 'pm_bench', 1999, 'usd', 'pending', 0, 1, 0, 0, 0, NULL, NULL, NULL, NULL,
    NULL, 'bench', 'k' || :r::bigint, 'req_' || :r::bigint, :now, :r::bigint * 16 + 2, 1, 0, 0, :now);
COMMIT;
\endpipeline
-- phase 2 (after the processor): the outcome, the ledger, the balance, events, the key's response
\startpipeline
BEGIN;
SAVEPOINT w;
UPDATE charges SET status = 'succeeded', captured = 1, processing = 0, capture_requested = 0, amount_captured = 1999,
    amount_refunded = 0, processor_ref = 'sim_' || :r::bigint, failure_code = NULL, failure_message = NULL, decline_code = NULL,
    outcome = repeat('o', 150), void_requested = 0, pending_idempotency_key = NULL, capture_amount = 0, updated = :now, version = 2
  WHERE id = 'ch_' || :r::bigint AND version = 1;
UPDATE payment_intents SET amount = 1999, currency = 'usd', status = 'succeeded', capture_method = 'automatic',
    payment_method = 'pm_bench', description = 'bench', metadata = '{}', statement_descriptor = NULL, receipt_email = NULL,
    amount_capturable = 0, amount_received = 1999, latest_charge = 'ch_' || :r::bigint, last_payment_error = NULL,
    cancellation_reason = NULL, canceled_at = NULL, version = 2
  WHERE id = 'pi_' || :r::bigint AND version = 1;
INSERT INTO ledger_entries (id, txn_id, merchant_id, livemode, account, currency, amount, source, kind, created, seq)
  SELECT v.column1, 'ltx_a' || :r::bigint, '__MERCHANT__', 0, v.column2, 'usd', v.column3, 'ch_' || :r::bigint, 'authorization', :now, v.column4
  FROM (VALUES ('le_a' || :r::bigint, 'card_holds', 1999, :r::bigint * 16 + 3),
    ('le_b' || :r::bigint, 'merchant_holds', -1999, :r::bigint * 16 + 4)) AS v;
INSERT INTO ledger_entries (id, txn_id, merchant_id, livemode, account, currency, amount, source, kind, created, seq)
  SELECT v.column1, 'ltx_b' || :r::bigint, '__MERCHANT__', 0, v.column2, 'usd', v.column3, 'ch_' || :r::bigint, 'capture', :now, v.column4
  FROM (VALUES ('le_c' || :r::bigint, 'merchant_holds', 1999, :r::bigint * 16 + 5),
    ('le_d' || :r::bigint, 'card_holds', -1999, :r::bigint * 16 + 6),
    ('le_e' || :r::bigint, 'processor_receivable', 1999, :r::bigint * 16 + 7),
    ('le_f' || :r::bigint, 'merchant_balance', -1911, :r::bigint * 16 + 8),
    ('le_g' || :r::bigint, 'fees', -88, :r::bigint * 16 + 9)) AS v;
INSERT INTO balance_transactions (id, merchant_id, livemode, amount, fee, net, currency, type, source, status, available_on,
    created, seq, description)
  VALUES ('txn_' || :r::bigint, '__MERCHANT__', 0, 1999, 88, 1911, 'usd', 'charge', 'ch_' || :r::bigint, 'pending', :now + 172800, :now,
    :r::bigint * 16 + 10, 'bench');
INSERT INTO events (id, merchant_id, livemode, type, data, request_id, idempotency_key, created, seq)
  VALUES ('evt_b' || :r::bigint, '__MERCHANT__', 0, 'charge.succeeded', repeat('x', 1800), 'req_' || :r::bigint, 'k' || :r::bigint, :now, :r::bigint * 16 + 11);
INSERT INTO outbox (event_id, merchant_id, livemode, type) VALUES ('evt_b' || :r::bigint, '__MERCHANT__', 0, 'charge.succeeded');
INSERT INTO events (id, merchant_id, livemode, type, data, request_id, idempotency_key, created, seq)
  VALUES ('evt_c' || :r::bigint, '__MERCHANT__', 0, 'payment_intent.succeeded', repeat('x', 1500), 'req_' || :r::bigint, 'k' || :r::bigint, :now, :r::bigint * 16 + 12);
INSERT INTO outbox (event_id, merchant_id, livemode, type) VALUES ('evt_c' || :r::bigint, '__MERCHANT__', 0, 'payment_intent.succeeded');
UPDATE idempotency_keys SET state = 'complete', status = 200, body = repeat('b', 1300)
  WHERE merchant_id = '__MERCHANT__' AND livemode = 0 AND key = 'k' || :r::bigint;
COMMIT;
\endpipeline
