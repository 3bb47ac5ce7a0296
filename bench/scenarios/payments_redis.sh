# The payments scenario twice in one run: the in-process cache, then [cache] backend = redis
# (a redis-server started here on loopback, no persistence). Limits are raised as in
# `payments` but still charged on every request (usage plan, per-address rule, velocity), so
# the second run pays for the Redis mirror and its sync thread. Target: a cost of 10 % or less.
# (The transaction stream of issue 13 is not part of this variant yet.)
scenario_payments_redis() {
  local rport rdir
  rport=$(free_port); rdir=$BENCH_TMP/redis
  mkdir -p "$rdir"
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$rdir" \
    --logfile "$rdir/redis.log" &
  BENCH_PIDS+=($!)
  local redis_pid=$!
  for _ in $(seq 1 100); do redis-cli -p "$rport" PING 2>/dev/null | grep -q PONG && break; sleep 0.05; done
  local results=()
  for backend in memory redis; do
    start_payd_with_card "payments-$backend" --set cache.backend=$backend --set "cache.url=redis://127.0.0.1:$rport"
    bench_post_lua "$BENCH_TMP/payments-$backend.lua" "$BENCH_SK" application/x-www-form-urlencoded \
      "amount=1999&currency=usd&confirm=true&payment_method=$BENCH_PM&description=bench"
    results+=("$(run_wrk "https://127.0.0.1:$PAYD_PORT/v1/payment_intents" -s "$BENCH_TMP/payments-$backend.lua")")
    if [[ $backend == redis ]] && grep -q "in-process fallback" "$PAYD_DIR/payd.log"; then
      echo "  warning: the redis run fell back to the in-process cache (see $PAYD_DIR/payd.log)"
    fi
    stop_payd
  done
  local keys
  keys=$(redis-cli -p "$rport" DBSIZE)
  kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null || true
  read -r m_rps m_p50 m_p99 <<<"${results[0]}"
  read -r r_rps r_p50 r_p99 <<<"${results[1]}"
  printf '%-40s %12s %9s %9s\n' "payments, cache backend" "req/s" "p50 ms" "p99 ms"
  printf '%-40s %12s %9s %9s\n' "  memory (in-process)" "$m_rps" "$m_p50" "$m_p99"
  printf '%-40s %12s %9s %9s\n' "  redis (shared limits)" "$r_rps" "$r_p50" "$r_p99"
  printf '  ratio redis/memory: %s req/s (target >= 0.90); keys in Redis after the run: %s\n' \
    "$(ratio "$r_rps" "$m_rps")" "$keys"
}
