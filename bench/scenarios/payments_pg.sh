# The payments scenario (POST /v1/payment_intents confirm=true, a unique Idempotency-Key
# per request, $BENCH_CONNS keep-alive TLS connections) with payd's store on a local
# PostgreSQL 15 (initdb into the bench's temp dir, fsync=on, synchronous_commit=on, a free
# loopback port, as the postgres system user when run as root, stopped at the end), and in
# the same run:
#   - pgbench with bench/pgbench/payment.sql, the statements payd issues for one payment
#     (phase 1: key claim, intent, charge processing, outbox; phase 2: the outcome, ledger,
#     key completion), each phase its own transaction, at $BENCH_CONNS clients;
#   - payd on SQLite (the plain payments scenario's setting).
# Reports payments/s, p50, p99 and the ratio payd/pgbench.
# Targets (issue 12, 2 cores, PostgreSQL on the same cores): ratio >= 0.8, >= 3,000
# durable payments/s, p99 <= 30 ms.
# Environment: BENCH_PG_BIN (/usr/lib/postgresql/15/bin), BENCH_PG_WRITERS (store.writers, 4).

PG_BIN=${BENCH_PG_BIN:-/usr/lib/postgresql/15/bin}

# pg_as CMD...: runs CMD as the postgres system user when root (initdb and the server refuse root)
pg_as() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# start_pg: initdb and the server on a free loopback port; sets PG_PORT, PG_DIR, PG_URL (database payd)
start_pg() {
  PG_DIR=$BENCH_TMP/pg
  PG_PORT=$(free_port)
  mkdir -p "$PG_DIR"
  echo "bench-pw" >"$PG_DIR/pw"
  if [[ $(id -u) == 0 ]]; then chown -R postgres: "$PG_DIR"; fi
  pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --pwfile "$PG_DIR/pw" --auth-host=scram-sha-256 \
    --auth-local=trust -E UTF8 --locale=C --no-sync --no-instructions >"$PG_DIR/initdb.log" 2>&1
  pg_as "$PG_BIN/postgres" -D "$PG_DIR/data" -p "$PG_PORT" -k "$PG_DIR" -c listen_addresses=127.0.0.1 \
    -c max_connections=300 -c shared_buffers=256MB -c fsync=on -c synchronous_commit=on \
    -c max_wal_size=4GB -c checkpoint_timeout=30min -c log_min_messages=warning >"$PG_DIR/pg.log" 2>&1 &
  BENCH_PIDS+=($!)
  PG_PID=$!
  trap 'stop_pg; bench_cleanup' EXIT
  for _ in $(seq 1 200); do
    if pg_as "$PG_BIN/pg_isready" -q -h "$PG_DIR" -p "$PG_PORT"; then break; fi
    sleep 0.05
  done
  pg_sql postgres "CREATE ROLE payd LOGIN PASSWORD 'bench-pw'" >/dev/null
  PG_URL="postgresql://payd:bench-pw@127.0.0.1:$PG_PORT/payd"
}

# pg_sql DB SQL: as the superuser over the server's socket; prints the rows (unaligned)
pg_sql() { pg_as "$PG_BIN/psql" -XAtq -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$1" -c "$2"; }

# stop_pg: a fast shutdown of the postmaster (by the pid in its data dir: PG_PID may be runuser's)
stop_pg() {
  local pm
  pm=$(head -1 "$PG_DIR/data/postmaster.pid" 2>/dev/null || true)
  if [[ -n "$pm" ]]; then kill -INT "$pm" 2>/dev/null || true; fi
  wait "$PG_PID" 2>/dev/null || true
}

# run_pgbench DB SCRIPT: prints "<payments/s> <p50 ms> <p99 ms>" for SCRIPT (one payment a run)
run_pgbench() {
  local db=$1 script=$2 log=$BENCH_TMP/pgbench
  mkdir -p "$log"
  if [[ $(id -u) == 0 ]]; then chown postgres: "$log"; cp "$script" "$log/payment.sql"; chown postgres: "$log/payment.sql"; fi
  (cd "$log" && pg_as "$PG_BIN/pgbench" -n -h "$PG_DIR" -p "$PG_PORT" -U postgres -c "$BENCH_CONNS" \
    -j "$BENCH_THREADS" -T "$BENCH_SECONDS" -M prepared -f "$log/payment.sql" -l --log-prefix="$log/tx" "$db" \
    >"$log/out.txt" 2>&1) || { cat "$log/out.txt" >&2; echo "0 0 0"; return; }
  local tps
  tps=$(awk '/^tps = / {print $3}' "$log/out.txt")
  # per-transaction log: client tx_no latency_us script_no time epoch_us
  cat "$log"/tx.* | awk '{print $3}' | sort -n | awk -v tps="$tps" '
    { v[NR] = $1 } END { if (NR == 0) { print tps, 0, 0; exit }
      printf "%.0f %.2f %.2f\n", tps, v[int(NR * 0.50) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000 }'
}

scenario_payments_pg() {
  local script=$BENCH_ROOT/bench/pgbench/payment.sql
  start_pg
  pg_sql postgres "CREATE DATABASE payd OWNER payd" >/dev/null
  # payd on PostgreSQL
  start_payd_with_card payments_pg --set store.backend=postgres --set "store.url=$PG_URL" \
    --set "store.writers=${BENCH_PG_WRITERS:-4}" "$@"
  bench_post_lua "$BENCH_TMP/payments_pg.lua" "$BENCH_SK" application/x-www-form-urlencoded \
    "amount=1999&currency=usd&confirm=true&payment_method=$BENCH_PM&description=bench"
  local pg_r sq_r bench_r stored merchant
  pg_r=$(run_wrk "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" -s "$BENCH_TMP/payments_pg.lua")
  stored=$(pg_sql payd "SELECT count(*) FROM charges WHERE status = 'succeeded'")
  merchant=$(pg_sql payd "SELECT merchant_id FROM payment_intents LIMIT 1")
  stop_payd
  # pgbench: the same statements on the same tables, payd stopped
  pg_sql payd "CREATE TABLE IF NOT EXISTS pgbench_seq (n bigint)" >/dev/null
  sed "s/__MERCHANT__/$merchant/g" "$script" >"$BENCH_TMP/payment.sql"
  bench_r=$(run_pgbench payd "$BENCH_TMP/payment.sql")
  stop_pg
  # payd on SQLite, the same load
  start_payd_with_card payments_sqlite
  bench_post_lua "$BENCH_TMP/payments_sqlite.lua" "$BENCH_SK" application/x-www-form-urlencoded \
    "amount=1999&currency=usd&confirm=true&payment_method=$BENCH_PM&description=bench"
  sq_r=$(run_wrk "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" -s "$BENCH_TMP/payments_sqlite.lua")
  stop_payd
  read -r p_rps p_p50 p_p99 <<<"$pg_r"
  read -r b_rps b_p50 b_p99 <<<"$bench_r"
  read -r s_rps s_p50 s_p99 <<<"$sq_r"
  printf '%-44s %12s %9s %9s\n' "payments on PostgreSQL" "payments/s" "p50 ms" "p99 ms"
  printf '%-44s %12s %9s %9s\n' "  payd POST /v1/payment_intents (postgres)" "$p_rps" "$p_p50" "$p_p99"
  printf '%-44s %12s %9s %9s\n' "  pgbench, payd's statements of one payment" "$b_rps" "$b_p50" "$b_p99"
  printf '%-44s %12s %9s %9s\n' "  payd POST /v1/payment_intents (sqlite)" "$s_rps" "$s_p50" "$s_p99"
  printf '  succeeded charges stored on PostgreSQL: %s; ratio payd/pgbench: %s (targets: >= 0.8, >= 3000 payments/s, p99 <= 30 ms)\n' \
    "$stored" "$(ratio "$p_rps" "$b_rps")"
}
